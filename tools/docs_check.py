"""The docs check: every shell command in README.md and docs/*.md is run here or named by a test.

A command is a line (with its `\\` continuations, or a whole `for ... done` loop) of a fenced
```bash, ```sh, ```shell or ```console block (in a console block, the lines after `$ `). Each one
must be in `RUN` (this script runs it, or the short form given, in a temporary folder) or in
`EXERCISED_BY` (long commands: the tests that run an equivalent short form; every test id must
exist). A command in neither fails the check, so a new command cannot slip into the docs
unexercised; an entry that no doc holds any more fails it too. On top of that every `sigid`
command line is parsed by sigid's own parser, and every `sigid-train` command line's overrides
are composed into a config (a sweep by its first value), so a misspelt option or key fails here
even where the command itself is too long to run.

    python tools/docs_check.py            # check, and run the RUN commands
    python tools/docs_check.py --no-run   # check only (seconds)
    python tools/docs_check.py --list     # every command, with where it is exercised
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHELL_BLOCKS = {"bash", "sh", "shell", "console"}
# The docs write CEDAR's folder as the tests find it: ../shared/data/cedar beside the checkout.
CEDAR_IN_DOCS = "../shared/data/cedar"
# A command's limit: the slowest (tools/stored_threshold.py, about 60 s alone) took over 120 s
# on a loaded 2-core machine, so the limit leaves room for load; a hung command still ends.
RUN_TIMEOUT_S = 300

# Commands run as written, or (value not None) in the short form given, in one temporary
# folder, in the docs' order. In a short form `{cedar}` is the CEDAR folder (the command is
# skipped where there is none), `{root}` this checkout and `{python}` this interpreter.
SCANS = "sigid synth scans --writers 6 --per-writer 8 --forgeries 0 --json > /dev/null"
RUN: dict[str, str | None] = {
    "sigid-train experiment=paper_snn": "sigid-train experiment=paper_snn debug=fdr",
    "sigid scan /path/to/my/scans": f"{SCANS} && sigid scan scans",
    "sigid-train model=siamese_conv data=folders data.root=/path/to/my/scans": (
        f"{SCANS} && sigid-train model=siamese_conv data=folders data.root=scans debug=fdr"
    ),
    "sigid-train experiment=cedar_cnn --cfg job": None,
    "sigid scan ../shared/data/cedar": "sigid scan {cedar}",
    "sigid scan ../shared/data/cedar --json": "sigid scan {cedar} --json",
    "sigid synth --out OUT --writers 8 --per-writer 88 --forgeries 24 --seed 0 "
    "--preview grid.png": (
        "sigid synth --out OUT --writers 3 --per-writer 4 --forgeries 2 --seed 0 --preview grid.png"
    ),
    "sigid synth --out OUT --writers 12 --per-writer 6 --forgeries 2 --script mixed "
    "--name-sharing 3 --preview grid.png": (
        "sigid synth --out MIXED --writers 6 --per-writer 2 --forgeries 1 --script mixed "
        "--name-sharing 3 --preview grid.png"
    ),
    "sigid augment SRC --out DST --per-writer 2000 --seed 0 --preset paper": (
        "sigid synth --out OUT --writers 3 --per-writer 4 --forgeries 2 --json > /dev/null && "
        "sigid augment OUT --out DST --per-writer 6 --seed 0 --preset paper"
    ),
    "sigid-train debug=fdr": None,
    ".venv/bin/python tools/mutation.py": "{python} {root}/tools/mutation.py --list",
    ".venv/bin/python tools/mutation.py --list": "{python} {root}/tools/mutation.py --list",
    ".venv/bin/python tools/mutation.py --only preprocess-paper-kept": (
        "{python} {root}/tools/mutation.py --only preprocess-paper-kept --list"
    ),
    ".venv/bin/python tools/mutation.py --only metrics-far-strict --tests tests/test_metrics.py": (
        "{python} {root}/tools/mutation.py --only metrics-far-strict --list"
        " && test -f {root}/tests/test_metrics.py"
    ),
    ".venv/bin/python tools/docs_check.py --list": "{python} {root}/tools/docs_check.py --list",
    "python tools/stored_threshold.py $M data=cedar data.root=../shared/data/cedar "
    "data.split.fold=F": (
        "{python} {root}/tools/stored_threshold.py {root}/sigid/inference/weights/verifier.ckpt"
        " data=cedar data.root={cedar} data.split.fold=0"
    ),
    "python tools/gallery_ann_bench.py --writers 100000 --queries 200": (
        "{python} {root}/tools/gallery_ann_bench.py --writers 300 --queries 5 --dim 16"
    ),
}

T = "tests/test_training.py::"
INF = "tests/test_inference.py::"
PROT = "tests/test_protocols.py::"
ENS = "tests/test_ensemble.py::"
CNN_RUN = T + "test_cnn_run_writes_metrics_checkpoint_and_tensorboard"
SNN_RUN = T + "test_siamese_run_stores_its_validation_threshold_and_logs_figures"
SWEEP = T + "test_multirun_writes_summary_and_accuracy_plot_and_survives_a_failed_job"
DDP_SNN = (
    "tests/test_ddp_siamese.py::"
    "test_two_gloo_processes_report_what_one_process_reports_on_the_same_checkpoint"
)
EXPERIMENTS = T + "test_every_experiment_composes_and_instantiates"
PRETRAIN = T + "test_the_pretraining_experiment_builds_cedar_snns_network_for_init_from"
RECOMMENDED = (
    T + "test_the_recommended_cedar_recipe_is_cedar_snn_from_the_pretraining_for_20_epochs"
)
INIT_FROM = T + "test_init_from_copies_the_fitting_weights_and_starts_fresh_heads"
GALLERY_CLI = INF + "test_cli_enroll_then_identify_and_verify_with_the_gallery"
VERIFY_CLI = INF + "test_cli_verify_a_pair"
IDENTIFY_CLI = INF + "test_cli_identify_with_a_cnn"
RUN_FOLDER = INF + "test_a_run_folder_is_taken_for_its_best_checkpoint"
WD_CLI = PROT + "test_cli_writer_dependent_on_cedar"
ROBUST_CLI = "tests/test_robustness.py::test_the_command_on_real_cedar_scans"
WI = PROT + "test_writer_independent_summary_is_mean_and_std_over_the_folds"
WI_SEEDS = PROT + "test_writer_independent_summarises_several_seeds_per_fold"
FOLD_SWEEP = "tests/test_sweep.py::test_a_fold_sweep_is_labelled_by_its_fold_alone"
LAUNCHER = "tests/test_launcher.py::"
LAUNCHER_RUN = LAUNCHER + "test_a_two_job_sweep_runs_as_submitit_jobs_and_is_summarised"
LAUNCHER_CFG = (
    LAUNCHER + "test_the_slurm_launcher_composes_with_sigids_defaults_and_takes_the_clusters_own"
)
CEDAR_SPLIT = "tests/test_config.py::test_cedar_config_reads_the_real_set_with_a_16_4_4_split"
RESUME = [
    T + "test_an_interrupted_run_is_recorded_and_resumed_from_its_last_checkpoint",
    "tests/test_exact_resume.py::test_a_resumed_run_is_the_run_that_was_not_interrupted",
]
BENCH = "tests/test_bench.py::"
BENCH_EPOCH = "tests/test_bench_epoch.py::"
STORE = "tests/test_gallery_store.py::"
MILVUS = "tests/test_gallery_milvus.py::"
MILVUS_CLI = MILVUS + "test_sigid_commands_on_a_milvus_lite_gallery"
DOCS = "tests/test_docs_commands.py::"
NAMES = "tests/test_chinese_names.py::"
EXTRA = "tests/test_extra_collections.py::"
# `CI`: .ci/run runs this line itself (each `&&` part not a sigid command; `--quiet` aside).
CI = "CI"
TODO_MERGE = "TODO-MERGE"

# Long commands (a full training, CEDAR, a GPU) and the tests that run their short form.
# "TODO-MERGE: ..." marks a command of a feature another branch is adding: the lead wires it
# to its tests after the merge (test_docs_commands.py fails while a doc holds one).
EXERCISED_BY: dict[str, list[str]] = {
    # README
    "python3 -m venv .venv && .venv/bin/pip install -e '.[dev]'": [CI],
    "python3 -m venv .venv && .venv/bin/pip install -e '.[dev]' && "
    ".venv/bin/sigid-train experiment=paper_cnn": [CI, CNN_RUN],
    ".venv/bin/python -m pytest -q": [CI],
    "tensorboard --logdir outputs/": [CNN_RUN, SNN_RUN],
    "sigid-train -m model.depth=2,3,4,5 trainer.max_epochs=5,25": [SWEEP],
    "sigid enroll --ckpt outputs/<date>/<time> --gallery people.sqlite --writer alice a1.png "
    "a2.png a3.png": [RUN_FOLDER, GALLERY_CLI],
    "sigid evaluate --protocol writer-dependent --ckpt outputs/<date>/<time> --out eval/snn": [
        PROT + "test_a_run_folder_is_evaluated_as_its_best_checkpoint",
        WD_CLI,
    ],
    "sigid verify a.png b.png --ckpt snn.ckpt": [VERIFY_CLI],
    "sigid enroll --gallery people.sqlite --writer bob b1.png b2.png b3.png": [GALLERY_CLI],
    "sigid verify --gallery people.sqlite --writer alice q.png": [GALLERY_CLI],
    "sigid identify --gallery people.sqlite q.png --json": [GALLERY_CLI],
    "sigid identify --ckpt cnn.ckpt q.png --top-k 5": [IDENTIFY_CLI],
    "sigid-train experiment=cedar_snn_pretrained data.root=/path/to/cedar data.split.fold=0": [
        RECOMMENDED,
        EXPERIMENTS,
    ],
    # docs/bench.md
    "sigid bench": [
        BENCH + "test_the_json_holds_each_headline_figure",
        BENCH + "test_the_table_has_a_block_per_part",
    ],
    "sigid bench --only train peak --rounds 5 --steps 20": [
        BENCH + "test_only_runs_the_parts_asked"
    ],
    "sigid bench --only loader --data data=cedar data.root=PATH data.num_workers=2": [
        BENCH + "test_only_runs_the_parts_asked"
    ],
    "sigid bench --only gallery --gallery-sizes 1000,100000 --json": [
        BENCH + "test_the_json_holds_each_headline_figure",
        BENCH + "test_bad_gallery_sizes_are_refused_by_the_parser",
    ],
    "sigid bench --device cuda": [BENCH + "test_the_json_holds_each_headline_figure"],
    "sigid bench --only epoch --data data=cedar data.root=PATH data.split.fold=0": [
        BENCH_EPOCH + "test_the_epoch_phases_add_up_to_its_fit"
    ],
    "sigid bench --only inference --ckpt snn.ckpt": [
        BENCH_EPOCH + "test_inference_uses_the_checkpoint_asked"
    ],
    # docs/data.md (the collection's own folder: a scan of it, as sigid scan runs it)
    "sigid scan ../shared/data/chinese_names": [
        NAMES + "test_the_real_collection_has_60_writers_of_40_files_in_600_units"
    ],
    # docs/evaluation.md
    "sigid evaluate --protocol identification --ckpt cnn.ckpt --out eval/cnn data=cedar "
    "data.root=PATH": [PROT + "test_identification_reports_top1_top5_and_the_confusion_matrix"],
    "sigid evaluate --protocol writer-dependent --ckpt snn.ckpt --references 5 12 --out eval/snn "
    "data=cedar data.root=PATH data.split.fold=0": [WD_CLI],
    "sigid evaluate --protocol writer-dependent --ckpt snn.ckpt --tta 9 data=cedar data.root=PATH "
    "data.split.fold=0": [
        "tests/test_tta.py::test_the_writer_dependent_protocol_and_command_embed_with_tta"
    ],
    "sigid-train -m experiment=cedar_snn data.root=PATH data.split.fold=0,1,2,3,4": [
        EXPERIMENTS,
        FOLD_SWEEP,
        T + "test_writer_batch_training_with_writer_loss_gives_a_plain_verifier",
    ],
    "sigid evaluate --protocol writer-independent --sweep outputs/multirun/<date>/<time> --json": [
        WI
    ],
    "sigid evaluate --protocol same-name --ckpt snn.ckpt --out eval/names data=chinese_names "
    "data.root=PATH data.split.fold=0": [
        NAMES + "test_same_name_protocol_runs_on_a_checkpoint_trained_on_the_layout"
    ],
    "sigid-train experiment=cedar_snn data.root=PATH data.acquisition='{p: 0.5, strengths: "
    "[low, middle]}'": [
        "tests/test_acquisition.py::test_training_batches_are_changed_on_the_raw_scans_when_asked",
        "tests/test_acquisition.py::test_a_run_with_acquisition_augmentation_trains_other_weights",
    ],
    "sigid-train experiment=cedar_snn data.root=PATH data.acquisition='{p: 0.5, strengths: "
    "[low, middle], variants: 4}'": [
        "tests/test_acquisition_variants.py::test_training_batches_use_the_variants",
        "tests/test_acquisition_variants.py::test_a_seeded_run_with_variants_trains_the_same_twice",
    ],
    "sigid evaluate --protocol robustness --ckpt snn.ckpt --out eval/robust data=cedar "
    "data.root=PATH data.split.fold=0": [ROBUST_CLI],
    "sigid evaluate --protocol robustness --ckpt snn.ckpt --transforms jpeg,stamp --strengths "
    "middle --json data=cedar data.root=PATH data.split.fold=0": [ROBUST_CLI],
    # docs/data.md, training on two collections
    "sigid-train experiment=cedar_snn data.root=PATH data.split.fold=0 "
    "'data.extra=[{root:PATH,layout:chinese_names,fold:true}]'": [
        EXTRA + "test_a_run_on_two_collections_is_evaluated_on_the_extras_unseen_writers"
    ],
    "sigid evaluate --protocol same-name --ckpt snn.ckpt data=chinese_names data.root=PATH "
    "data.split.fold=0": [
        EXTRA + "test_a_run_on_two_collections_is_evaluated_on_the_extras_unseen_writers"
    ],
    "sigid evaluate --protocol robustness --ckpt snn.ckpt --strengths middle data=cedar "
    "data.root=PATH data.split.fold=0 data.preprocess.remove_lines=true": [
        "tests/test_preprocess_robust.py::test_the_robustness_protocol_prepares_with_the_added_option"
    ],
    # docs/export.md
    "pip install -e '.[export]'": [
        "tests/test_export.py::test_exported_models_match_pytorch_for_any_batch_size"
    ],
    "sigid export --ckpt outputs/<date>/<time>/checkpoints/best.ckpt --out deploy/": [
        "tests/test_export.py::test_cli_default_is_both_formats"
    ],
    "sigid export --ckpt best.ckpt --out deploy/ --format torchscript --name writers --json": [
        "tests/test_export.py::test_cli_exports_torchscript_without_the_onnx_packages"
    ],
    # docs/reproducing.md
    "sigid-train experiment=synth_pretrain hydra.run.dir=outputs/synth_pretrain": [PRETRAIN],
    "sigid-train experiment=synth_pretrain data.synthetic.script=mixed "
    "data.synthetic.name_sharing=3": [
        "tests/test_synthetic_scripts.py::"
        "test_the_pretraining_run_with_shared_names_trains_on_same_name_negatives"
    ],
    "sigid-train experiment=synth_pretrain data.synthetic.writers=600 trainer.max_epochs=4 "
    "hydra.run.dir=outputs/synth_pretrain600": [PRETRAIN],
    "sigid-train experiment=paper_cnn": [
        CNN_RUN,
        T + "test_evaluate_reproduces_a_runs_test_metrics_from_the_checkpoint_alone",
    ],
    "sigid-train -m experiment=cedar_snn_pretrained data.root=C data.seed=0 seed=0,1,2,3,4 "
    "data.split.fold=0,1,2,3,4": [RECOMMENDED, WI_SEEDS],
    "sigid evaluate --protocol writer-independent --sweep outputs/multirun/<date>/<time>": [
        WI,
        WI_SEEDS,
    ],
    "sigid evaluate --protocol writer-dependent --ckpt <fold-run> --score normalized data=cedar "
    "data.root=C data.split.fold=F": [WD_CLI, PROT + "test_the_normalized_score_by_hand"],
    # docs/training.md
    "sigid-train model=cnn model.depth=4 trainer.max_epochs=10 data.preprocess.mode=normalized": [
        CNN_RUN,
        "tests/test_config.py::test_preprocessing_split_and_augmentation_are_config",
    ],
    "sigid-train experiment=cedar_cnn data.root=/path/to/cedar": [EXPERIMENTS, CEDAR_SPLIT],
    "sigid-train experiment=paper_snn debug=overfit": [
        "tests/test_debug.py::test_a_debug_run_runs_in_its_own_folder_and_is_marked"
    ],
    "sigid-train experiment=cedar_snn data.root=PATH hydra.run.dir=outputs/f0": RESUME,
    "sigid-train experiment=cedar_snn data.root=PATH hydra.run.dir=outputs/f0 "
    "ckpt_path=outputs/f0/checkpoints/last.ckpt": RESUME,
    "sigid-train model=siamese_conv data=folders data.root=/path/to/my/scans "
    "init_from=/path/to/cedar/best.ckpt": [
        INIT_FROM,
        T + "test_a_run_started_from_a_checkpoint_records_it",
    ],
    "sigid-train -m experiment=cedar_snn_pretrained data.root=/path/to/cedar "
    "data.split.fold=0,1,2,3,4 hydra.sweep.dir=outputs/ft300": [RECOMMENDED, FOLD_SWEEP],
    "sigid-train -m experiment=chinese_names_pretrained data.root=/path/to/chinese_names "
    "data.split.fold=0,1,2,3,4": [EXPERIMENTS, INIT_FROM, FOLD_SWEEP],
    "sigid-train -m experiment=cedar_snn data.root=PATH "
    "init_from=outputs/synth_pretrain600/checkpoints/best.ckpt data.split.fold=0,1,2,3,4 "
    "hydra.sweep.dir=outputs/ft600": [PRETRAIN, INIT_FROM, FOLD_SWEEP],
    "for F in 0 1 2 3 4; do sigid ensemble --out outputs/ensemble/$F outputs/ft300/$F "
    "outputs/ft600/$F data=cedar data.root=PATH data.split.fold=$F; done": [
        ENS + "test_the_run_folder_holds_what_a_training_run_leaves",
        ENS + "test_the_command_prints_the_ensemble_and_fails_cleanly",
    ],
    "sigid evaluate --protocol writer-independent --sweep outputs/ensemble": [
        ENS + "test_ensemble_folds_summarise_like_training_runs"
    ],
    "sigid-train -m model.depth=2,3,4,5 trainer.max_epochs=5,25 trainer=gpu": [SWEEP],
    "sigid-train experiment=cedar_snn data.root=PATH trainer=ddp trainer.devices=4": [DDP_SNN],
    "sigid-train model=siamese_conv trainer.strategy=ddp trainer.devices=2": [DDP_SNN],
    "sigid summarize outputs/multirun/<date>/<time>": [
        "tests/test_sweep.py::test_summarize_writes_the_summary_of_an_interrupted_sweep"
    ],
    "sigid summarize outputs/depths --json": [
        "tests/test_sweep.py::test_summarize_takes_a_folder_of_python_api_runs"
    ],
    "tensorboard --logdir outputs/multirun/<date>/<time>": [SWEEP, CNN_RUN],
    # docs/testing.md: the docs check itself, as tests/test_docs_commands.py runs it
    ".venv/bin/python tools/docs_check.py --no-run": [
        DOCS + "test_every_doc_command_is_run_or_exercised_by_a_named_test",
        DOCS + "test_every_sigid_command_in_the_docs_parses",
        DOCS + "test_every_sigid_train_command_in_the_docs_composes",
    ],
    ".venv/bin/python tools/docs_check.py": [DOCS + "test_the_short_commands_run"],
    # docs/using-models.md, and its CEDAR walkthrough (the tests run these commands on CEDAR)
    "sigid enroll --ckpt snn.ckpt --gallery people.sqlite --writer alice a1.png a2.png a3.png": [
        GALLERY_CLI
    ],
    "CEDAR=../shared/data/cedar": [GALLERY_CLI],
    "sigid-train experiment=cedar_snn data.root=$CEDAR data.split.fold=0": [EXPERIMENTS, SNN_RUN],
    "sigid-train experiment=cedar_cnn data.root=$CEDAR": [EXPERIMENTS, CEDAR_SPLIT],
    "SNN=outputs/<date>/<time>/checkpoints/best.ckpt; CNN=...; G=$CEDAR/signatures/full_org; "
    "F=$CEDAR/signatures/full_forg": [RUN_FOLDER],
    "sigid verify $G/original_4_1.png $G/original_4_2.png --ckpt $SNN": [VERIFY_CLI],
    "sigid verify $G/original_4_1.png $F/forgeries_4_1.png --ckpt $SNN": [VERIFY_CLI],
    "sigid enroll --ckpt $SNN --gallery cedar.sqlite --writer 4 $G/original_4_{1..5}.png": [
        GALLERY_CLI
    ],
    "sigid enroll --gallery cedar.sqlite --writer 12 $G/original_12_{1..5}.png": [GALLERY_CLI],
    "sigid enroll --gallery cedar.sqlite --writer 17 $G/original_17_{1..5}.png": [GALLERY_CLI],
    "sigid identify --gallery cedar.sqlite $G/original_12_20.png": [GALLERY_CLI],
    "sigid identify --gallery cedar.sqlite $G/original_19_3.png --json": [
        GALLERY_CLI,
        INF + "test_nobody_close_enough_is_an_unknown_writer",
    ],
    "sigid verify --gallery cedar.sqlite --writer 4 $G/original_4_20.png": [GALLERY_CLI],
    "sigid verify --gallery cedar.sqlite --writer 4 $F/forgeries_4_3.png": [GALLERY_CLI],
    "sigid identify --ckpt $CNN $G/original_4_20.png --top-k 3": [IDENTIFY_CLI],
    # docs/cli.md
    "sigid identify --gallery people.sqlite questioned/": [
        "tests/test_batch.py::test_identify_answers_a_folder_and_files_one_json_line_each"
    ],
    # docs/cli.md and docs/gallery.md: the gallery store
    "sigid gallery info people.sqlite": [STORE + "test_sigid_gallery_info_list_and_convert"],
    "sigid gallery list people.sqlite": [STORE + "test_sigid_gallery_info_list_and_convert"],
    "sigid gallery list people.sqlite --json": [
        STORE + "test_eight_sigid_enroll_processes_at_once_all_enrol",
        STORE + "test_sigid_gallery_remove_says_so_and_the_bytes_are_gone",
    ],
    "sigid gallery remove people.sqlite --writer alice": [
        STORE + "test_sigid_gallery_remove_says_so_and_the_bytes_are_gone"
    ],
    "sigid gallery convert old.npz people.sqlite": [
        STORE + "test_an_npz_gallery_is_read_only_and_converts_to_the_same_answers"
    ],
    "sigid gallery convert people.npz people.sqlite": [
        STORE + "test_an_npz_gallery_is_read_only_and_converts_to_the_same_answers"
    ],
    "sigid identify --ckpt cnn.ckpt a.png b.png --format csv > answers.csv": [
        "tests/test_batch.py::test_identify_with_a_cnn_and_text_blocks",
        "tests/test_batch.py::test_identify_writes_a_csv_table",
    ],
    "sigid verify --gallery people.sqlite --writer alice q1.png q2.png scans/ --format csv": [
        "tests/test_batch.py::test_verify_many_images_against_an_enrolled_writer"
    ],
    # docs/gallery.md: Milvus and the faiss index
    "pip install 'sigid[milvus]'": [MILVUS + "test_round_trip"],  # the dev extra installs it
    "sigid enroll --gallery people.milvus.db --ckpt snn.ckpt --writer alice a1.png a2.png": [
        MILVUS_CLI
    ],
    "sigid identify --gallery milvus://milvus.example.org:19530/people q.png": [
        MILVUS + "test_locations",
        MILVUS_CLI,
    ],
    "sigid gallery convert people.sqlite people.milvus.db": [MILVUS_CLI],
    "pip install 'sigid[faiss]'": [  # the dev extra installs it
        "tests/test_gallery_ann.py::test_faiss_two_stage_finds_the_exact_top_1"
    ],
    # docs/configuration.md
    "sigid-train --config-dir myconf experiment=mine": [
        "tests/test_config_dir.py::test_an_own_experiment_and_logger_in_a_config_dir_compose_and_run"
    ],
    "sigid-train hydra.searchpath=[file://$PWD/myconf] experiment=mine": [
        "tests/test_config_dir.py::test_the_python_api_finds_own_configs_on_the_searchpath_and_takes_a_logger_by_target"
    ],
    "sigid-train -m model.depth=2,3 trainer.max_epochs=1,2": [
        "tests/test_axes.py::test_tensorboard_names_each_sweep_job_by_its_settings_and_shows_them_first"
    ],
    "pip install 'sigid[optuna]'": [  # the dev extra installs the sweeper
        "tests/test_hparams_search.py::test_two_trials_run_as_jobs_of_a_sweep_and_optuna_keeps_the_best"
    ],
    "sigid-train hparams_search=cnn_optuna": [
        "tests/test_hparams_search.py::test_two_trials_run_as_jobs_of_a_sweep_and_optuna_keeps_the_best"
    ],
    "sigid-train hparams_search=cnn_optuna experiment=paper_cnn hydra.sweeper.n_trials=40": [
        "tests/test_hparams_search.py::test_two_trials_run_as_jobs_of_a_sweep_and_optuna_keeps_the_best"
    ],
    "sigid-train hparams_search=cnn_optuna 'model.hidden=choice(128,256)'": [
        "tests/test_hparams_search.py::test_two_trials_run_as_jobs_of_a_sweep_and_optuna_keeps_the_best"
    ],
    "pip install 'sigid[slurm]'": [LAUNCHER_RUN],  # the dev extra installs the launcher
    "sigid-train -m hydra/launcher=slurm hydra.launcher.partition=gpu trainer=gpu "
    "model.depth=2,3,4,5": [LAUNCHER_CFG],  # no cluster: composed only
    "sigid-train -m hydra/launcher=local model.depth=2,3": [LAUNCHER_RUN],
    "sigid-train -m model.depth=2,3,4 model.optimizer.lr=0.0001,0.001,0.01": [SWEEP],
    'python -c "import csv,sys; rows=[r for r in csv.DictReader(open(sys.argv[1])) if '
    "r['val_best']]; print(min(rows, key=lambda r: float(r['val_best'])))\" "
    "outputs/multirun/<date>/<time>/summary.csv": [SWEEP],
    # docs/shipped-model.md
    "M=sigid/inference/weights/verifier.ckpt": [
        "tests/test_shipped.py::test_the_shipped_verifier_is_a_few_mb_and_loads_weights_only"
    ],
    "sigid evaluate --protocol writer-dependent --ckpt $M --references 5 12 data=cedar "
    "data.root=../shared/data/cedar data.split.fold=F": [WD_CLI],
    "python -c \"import sigid; print(sigid.evaluate('$M', ['data=cedar', "
    "'data.root=../shared/data/cedar', 'data.split.fold=F']))\"": [WI],
    "sigid verify a.png b.png": [
        "tests/test_shipped.py::test_verify_without_ckpt_uses_the_shipped_verifier"
    ],
    "sigid enroll --gallery people.sqlite --writer alice a1.png a2.png a3.png": [
        "tests/test_shipped.py::test_enroll_and_identify_without_ckpt_use_the_shipped_verifier"
    ],
    "sigid identify --gallery people.sqlite q.png": [
        "tests/test_shipped.py::test_enroll_and_identify_without_ckpt_use_the_shipped_verifier"
    ],
    "sigid-train experiment=shipped_verifier hydra.run.dir=outputs/shipped_verifier": [
        EXPERIMENTS,
        "tests/test_shipped.py::test_ship_keeps_what_verifies_and_records_how_it_was_made",
    ],
    "sigid ship outputs/shipped_verifier": [
        "tests/test_shipped.py::test_ship_keeps_what_verifies_and_records_how_it_was_made"
    ],
}

# Commands of features still to be wired to their tests (none today; see coverage_problems).
PENDING: dict[str, list[str]] = {}


@dataclass(frozen=True)
class Command:
    """One command of a doc: the file, the line it starts on, its text on one line."""

    doc: str
    line: int
    text: str


def docs(root: Path = ROOT) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def _strip_comment(line: str) -> str:
    """The line without a trailing `# comment` (a `#` outside quotes, after a space)."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip()
    return line.rstrip()


def commands(path: Path, root: Path = ROOT) -> list[Command]:
    """The shell commands of one Markdown file's fenced shell blocks."""
    found: list[Command] = []
    lang = None
    pending: list[str] = []
    start = 0
    loop_depth = 0
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        stripped = raw.strip()
        # A fence: ``` and an info string without backticks (CommonMark); the language is its
        # first word, and only a bare ``` closes the block.
        if lang is None and stripped.startswith("```") and "`" not in stripped[3:]:
            lang = (stripped[3:].split() or ["text"])[0].lower()
            continue
        if lang is not None and stripped.rstrip("`") == "" and len(stripped) >= 3:
            lang = None
            continue
        if lang not in SHELL_BLOCKS:
            continue
        if lang == "console":
            if not stripped.startswith("$ "):
                continue
            stripped = stripped[2:]
        text = _strip_comment(stripped)
        if not text:
            continue
        if not pending:
            start = number
        words = text.split()
        loop_depth += sum(w in ("for", "while", "until") for w in words[:1])
        loop_depth -= sum(w in ("done", "done;") for w in words[:1])
        continued = text.endswith("\\")
        text = text.rstrip("\\").strip()
        if loop_depth > 0 and not continued and not text.endswith((" do", ";", " then")):
            text += ";"  # a loop's lines, one command line: `for ...; do ...; done`
        pending.append(text)
        if not continued and loop_depth <= 0:
            loop_depth = 0
            found.append(
                Command(str(path.relative_to(root)), start, " ".join(" ".join(pending).split()))
            )
            pending = []
    return found


def all_commands(root: Path = ROOT) -> list[Command]:
    return [command for doc in docs(root) for command in commands(doc, root)]


def test_ids(root: Path = ROOT) -> set[str]:
    """`tests/test_x.py::test_name` of every test function in tests/ (classes as Class::test)."""
    ids = set()
    for path in sorted((root / "tests").glob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        prefix = f"tests/{path.name}"
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                ids.add(f"{prefix}::{node.name}")
            elif isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, ast.FunctionDef) and item.name.startswith("test_"):
                        ids.add(f"{prefix}::{node.name}::{item.name}")
    return ids


def coverage_problems(
    found: Iterable[Command],
    run: dict[str, str | None] = RUN,
    exercised_by: dict[str, list[str]] = EXERCISED_BY,
    known_tests: set[str] | None = None,
    pending: dict[str, list[str]] = PENDING,
    root: Path = ROOT,
) -> list[str]:
    """What keeps the docs' commands from being exercised: one line per problem."""
    found = list(found)
    known_tests = test_ids(root) if known_tests is None else known_tests
    problems = []
    for command in found:
        if command.text in run and command.text in exercised_by:
            problems.append(f"{command.doc}:{command.line}: both run and mapped: {command.text}")
        elif command.text not in run and command.text not in exercised_by | pending:
            problems.append(
                f"{command.doc}:{command.line}: neither run nor exercised by a test "
                f"(add it to RUN or EXERCISED_BY in tools/docs_check.py): {command.text}"
            )
    texts = {command.text for command in found}
    for text in [*run, *exercised_by]:
        if text not in texts:
            problems.append(f"tools/docs_check.py: no doc holds this command any more: {text}")
    for command in found:
        if command.text in pending:
            problems.append(
                f"{command.doc}:{command.line}: {TODO_MERGE}: name its test in EXERCISED_BY "
                f"(or RUN it) and drop it from PENDING: {command.text}"
            )
    ci_lines = _ci_lines(root)
    for text, tests in exercised_by.items():
        if not tests:
            problems.append(f"tools/docs_check.py: no test named for: {text}")
        for test in tests:
            if test == CI:
                missing = [part for part in _shell_parts(text) if part not in ci_lines]
                if missing:
                    problems.append(f".ci/run does not run {missing[0]!r} (for: {text})")
            elif test.split("[")[0] not in known_tests:
                problems.append(f"tools/docs_check.py: no such test {test} (for: {text})")
    return problems


def _ci_lines(root: Path) -> set[str]:
    path = root / ".ci" / "run"
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    return {" ".join(line.replace("--quiet ", "").split()) for line in text.splitlines()}


def _shell_parts(text: str) -> list[str]:
    """The `&&` parts of a command line that CI must run itself (sigid's own commands aside)."""
    parts = [" ".join(part.split()) for part in text.split("&&")]
    return [part for part in parts if not re.search(r"(^|/)sigid(-train)?( |$)", part)]


def _words(text: str) -> list[str] | None:
    """The command's words up to an output redirection (`> FILE` is the shell's, not sigid's)."""
    try:
        words = shlex.split(text)
    except ValueError:
        return None
    cut = [n for n, w in enumerate(words) if w in (">", ">>", "2>")]
    return words[: cut[0]] if cut else words


def parse_problems(found: Iterable[Command]) -> list[str]:
    """`sigid` command lines the parser refuses (an unknown subcommand or option)."""
    from sigid.cli import build_parser

    parser = build_parser()
    problems = []
    for command in found:
        words = _words(command.text)
        if not words or Path(words[0]).name != "sigid" or any(w in ("|", ";", "&&") for w in words):
            continue
        try:
            with open(os.devnull, "w") as devnull:
                stdout, stderr = sys.stdout, sys.stderr
                sys.stdout = sys.stderr = devnull
                try:
                    parser.parse_args(words[1:])
                finally:
                    sys.stdout, sys.stderr = stdout, stderr
        except SystemExit as exit_:
            if exit_.code not in (0, None):
                problems.append(f"{command.doc}:{command.line}: sigid refuses: {command.text}")
    return problems


def _first_of_each_sweep(overrides: list[str]) -> list[str]:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    chosen = []
    for override in OverridesParser.create().parse_overrides(overrides):
        if override.is_sweep_override():
            first = next(iter(override.sweep_string_iterator()))
            chosen.append(f"{override.get_key_element()}={first}")
        else:
            chosen.append(override.input_line)
    return chosen


def compose_problems(found: Iterable[Command]) -> list[str]:
    """`sigid-train` command lines whose overrides do not compose into a config."""
    from hydra import compose, initialize_config_module

    problems = []
    with initialize_config_module("sigid.conf", version_base="1.3"):
        for command in found:
            words = _words(command.text)
            if not words or Path(words[0]).name != "sigid-train":
                continue
            if any(w in ("|", ";", "&&") for w in words):
                continue
            if "--config-dir" in words or any("hydra.searchpath" in w for w in words):
                continue  # own config folders: tests/test_config_dir.py composes and runs them
            overrides = [w for w in words[1:] if not w.startswith("-") and w != "job"]
            try:
                compose(
                    "train", overrides=_first_of_each_sweep(overrides), return_hydra_config=True
                )
            except Exception as error:
                message = str(error).splitlines()[0] if str(error) else type(error).__name__
                problems.append(
                    f"{command.doc}:{command.line}: does not compose ({message}): {command.text}"
                )
    return problems


def cedar() -> Path | None:
    for candidate in (os.environ.get("SIGID_CEDAR"), ROOT.parent / "shared" / "data" / "cedar"):
        if candidate and (Path(candidate) / "signatures" / "full_org").is_dir():
            return Path(candidate)
    return None


def short_form(text: str) -> str | None:
    """The command line RUN runs for a doc's command; None where it needs CEDAR and none is here."""
    line = (RUN[text] or text).replace("{root}", shlex.quote(str(ROOT)))
    line = line.replace("{python}", shlex.quote(sys.executable))
    if "{cedar}" in line:
        root = cedar()
        if root is None:
            return None
        line = line.replace("{cedar}", shlex.quote(str(root)))
    return line


def run_one(text: str, workdir: Path, timeout_s: float = RUN_TIMEOUT_S) -> tuple[bool, str]:
    """Run one RUN command in workdir, with the environment's own sigid first on PATH; one that
    runs past timeout_s is stopped, with every process it started (its own session), and
    reported as failed."""
    line = short_form(text)
    if line is None:
        return True, "skipped: no CEDAR here (set SIGID_CEDAR)"
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("SIGID_CACHE", str(workdir / "cache"))
    with subprocess.Popen(
        ["bash", "-c", line],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    ) as process:
        try:
            output, _ = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            return False, f"timed out after {timeout_s:g} s: {line}"
    tail = output.strip().splitlines()[-5:]
    report = f"exit {process.returncode}: {line}\n    " + "\n    ".join(tail)
    return process.returncode == 0, report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-run", action="store_true", help="check only, run nothing")
    parser.add_argument("--list", action="store_true", help="list every command and its check")
    args = parser.parse_args(argv)
    found = all_commands()
    if args.list:
        for command in found:
            where = (
                "run" if command.text in RUN else ", ".join(EXERCISED_BY.get(command.text, ["-"]))
            )
            print(f"{command.doc}:{command.line}: {command.text}\n    {where}")
        return 0
    problems = coverage_problems(found) + parse_problems(found) + compose_problems(found)
    if not args.no_run:
        with tempfile.TemporaryDirectory(prefix="sigid-docs-") as tmp:
            for text in dict.fromkeys(c.text for c in found if c.text in RUN):
                ok, report = run_one(text, Path(tmp))
                print(("ok   " if ok else "FAIL ") + report.splitlines()[0])
                if not ok:
                    problems.append(report)
    for line in problems:
        print(line, file=sys.stderr)
    print(
        f"{len(found)} commands in {len(docs())} docs; {len(problems)} problems"
        + f"; {len(PENDING)} {TODO_MERGE} placeholders in PENDING"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
