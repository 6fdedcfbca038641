"""End-to-end training: configs, both models, checkpoints, TensorBoard, sweeps, the Python API."""

import contextlib
import csv
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf
from runs import QUIET, SMALL, SMALL_NET, tiny_checkpoint
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_chinese_names import write_chinese_names

import sigid
from sigid.runs.folder import check_new_run_dir, check_new_sweep_dir
from sigid.tasks.build import build_datamodule, build_module
from sigid.tasks.classifier import ClassifierModule
from sigid.tasks.siamese import SiameseModule
from sigid.training.callbacks import MetricHistory
from sigid.training.transfer import init_from
from sigid.training.writer_branch import pretrain_writer_branch

EXPERIMENTS = [
    "paper_cnn", "paper_snn", "cedar_cnn", "cedar_snn", "cedar_snn_pixel", "synth_pretrain",
    "cedar_snn_pretrained", "chinese_names_pretrained",
]  # fmt: skip
SMALL_CNN = ["model.channels=[8,16,16,16,16]", "model.hidden=32"]
TESTS = Path(__file__).resolve().parent


def _cfg(*overrides):
    with initialize_config_module("sigid.conf", version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=False)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_instantiates(experiment, request, tmp_path):
    # only the CEDAR experiments need CEDAR: the others run (and are checked) without it
    extra = SMALL
    if experiment.startswith("cedar"):
        extra = [f"data.root={request.getfixturevalue('cedar_root')}"]
    elif experiment.startswith("chinese_names"):  # a generated collection of 20 writers
        extra = [f"data.root={write_chinese_names(tmp_path / 'names', writers=20)}"]
    cfg = _cfg(f"experiment={experiment}", *extra)
    datamodule = build_datamodule(cfg)
    datamodule.setup("fit")
    module = build_module(cfg, datamodule)
    cnn = cfg.model._target_.endswith("ClassifierModule")
    assert isinstance(module, ClassifierModule if cnn else SiameseModule)
    assert module.preprocessing == datamodule.preprocess
    if experiment == "cedar_snn":  # classifies each training writer and their forgeries
        assert module.writer_head.out_features == 2 * len(datamodule.train_writers) == 70
    if experiment == "chinese_names_pretrained":  # identities are (writer, name) units
        assert datamodule.table.layout == "chinese_names" and cfg.trainer.max_epochs == 40
        people = {unit.split("/")[0] for unit in datamodule.train_writers}
        assert len(datamodule.train_writers) == 10 * len(people) == 130  # 20 - 4 test - 3 val


def _train(tmp_path, *overrides):
    return sigid.train([*SMALL, f"hydra.run.dir={tmp_path / 'run'}", *overrides])


def _tags(run_dir: Path) -> dict[str, set[str]]:
    tags: dict[str, set[str]] = {"scalars": set(), "images": set(), "histograms": set()}
    plugins = set()
    for events in (run_dir / "tensorboard").glob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events), size_guidance={"tensors": 0})
        acc.Reload()
        for kind in tags:
            tags[kind] |= set(acc.Tags()[kind])
        with contextlib.suppress(KeyError):  # no hparams summary in this file
            plugins |= set(acc.PluginTagToContent("hparams"))
    tags["hparams"] = plugins
    return tags


def test_cnn_run_writes_metrics_checkpoint_and_tensorboard(tmp_path):
    result = _train(tmp_path, "model=cnn", "model.depth=2", *SMALL_CNN)
    saved = json.loads((result.output_dir / "metrics.json").read_text())
    assert {"test/acc", "test/loss", "val_best", "best_epoch", "wall_time_s"} <= set(saved)
    assert saved == result.metrics and 0.0 <= saved["test/acc"] <= 1.0
    assert json.loads((result.output_dir / "status.json").read_text())["status"] == "ok"
    split = json.loads((result.output_dir / "split.json").read_text())
    assert set(split) == {"train", "val", "test"}
    loaded = ClassifierModule.load_from_checkpoint(result.checkpoint, map_location="cpu")
    assert loaded.class_names == [f"writer0{i}" for i in range(1, 7)]
    assert loaded.preprocessing == {"mode": "normalized", "size": [32, 64]}
    assert loaded(torch.zeros(1, 1, 32, 64)).shape == (1, 6)
    tags = _tags(result.output_dir)
    assert {"train/loss", "train/acc", "val/loss", "val/acc", "test/acc"} <= tags["scalars"]
    assert {"train/augmented_samples", "test/confusion_matrix"} <= tags["images"]
    assert tags["hparams"], "the HPARAMS tab is empty"
    # hparams.yaml holds what HPARAMS shows (Lightning writes it before the run's params exist)
    hparams = OmegaConf.load(result.output_dir / "tensorboard" / "hparams.yaml")
    assert hparams["model.depth"] == 2 and hparams["init_from"] == "None"
    assert hparams["trainer.max_epochs"] == 2 and "experiment" in hparams
    assert "hp/best_val_loss" in tags["scalars"]  # the best value, named after its metric
    history = json.loads((result.output_dir / "history.json").read_text())
    assert [h["epoch"] for h in history] == [0, 1] and "val/acc" in history[0]
    assert len(result.history) == saved["epochs"] == 2
    assert sorted(p.name for p in (result.output_dir / "checkpoints").iterdir()) == [
        "best.ckpt", "last.ckpt"
    ]  # fmt: skip


@pytest.mark.parametrize("embedding", ["pixel", "conv"])
def test_siamese_run_stores_its_validation_threshold_and_logs_figures(tmp_path, embedding):
    model = "siamese" if embedding == "pixel" else "siamese_conv"
    extra = ["model.depth=2", "model.channels=[8,16,16,16,16]"] if embedding == "conv" else []
    result = _train(tmp_path, f"model={model}", *extra)
    metrics = result.metrics
    assert {"test/acc", "test/eer", "test/auroc", "test/far", "test/frr"} <= set(metrics)
    assert {"test/eer_skilled", "test/eer_random"} <= set(metrics)
    loaded = SiameseModule.load_from_checkpoint(result.checkpoint, map_location="cpu")
    assert loaded.hparams.embedding == embedding
    assert float(loaded.threshold) == pytest.approx(metrics["test/threshold"])
    tags = _tags(result.output_dir)
    assert {"val/eer", "test/eer"} <= tags["scalars"]
    assert {"test/roc", "train/augmented_samples"} <= tags["images"]
    assert {"test/distance_same", "test/distance_different"} <= tags["histograms"]
    assert (result.output_dir / "tensorboard" / "projector_config.pbtxt").is_file()


# cedar_snn's recipe, small; a writer branch is added by the tests that need one.
WRITER_BATCHES = [
    "model=siamese_conv",
    "model.depth=2",
    "model.channels=[8,16,16,16,16]",
    "data.pairs.batch={writers:3,genuine:2,forgeries:2}",
    "data.pairs.forgery_classes=true",
    "model.pair_weighting=kind",
    "model.writer_loss=0.3",
]
PRETRAINED_BRANCH = (
    "model.writer_branch={weight:5.0,depth:2,channels:[4,8],hidden:8,batch_norm:true,"
    "pretrain_epochs:3}"
)


def test_writer_batch_training_with_writer_loss_gives_a_plain_verifier(tmp_path):
    """cedar_snn's recipe end to end (writer batches, kind weights, writer + forgery classes)
    with a writer branch added; the checkpoint then verifies and embeds like any other."""
    branch = "model.writer_branch={weight:5.0,depth:2,channels:[4,8],hidden:8}"
    result = _train(tmp_path, *WRITER_BATCHES, branch)
    assert {"test/eer_skilled", "test/eer_random"} <= set(result.metrics)
    verifier = sigid.Verifier.from_checkpoint(result.checkpoint)
    # SMALL: 6 writers, 3 folds, 1 validation writer -> 3 training writers, and their forgeries
    assert verifier.module.writer_head.out_features == 6
    assert verifier.module.branch_head.out_features == 3  # genuine writers only
    images = [np.full((40, 90), 255, np.uint8) for _ in range(2)]
    for image, row in zip(images, (slice(10, 14), slice(20, 30)), strict=True):
        image[row, 10:80] = 0
    embeddings = verifier.embed(images)
    assert embeddings.shape == (2, verifier.dim) and verifier.dim == 128 + 8
    assert np.allclose(np.linalg.norm(embeddings[:, 128:], axis=1), 5.0, atol=1e-4)
    assert 0.0 < verifier.similarity(images[0], images[1]) < 1.0


def test_a_pretrained_writer_branch_leaves_the_pair_embedding_as_without_it(tmp_path):
    """With the same seed, the pair embedding trains bit for bit as in the run without a
    branch (the branch's pretraining draws from its own random streams), so that comparing the
    two runs measures the branch and not run-to-run spread."""
    one_epoch = [*WRITER_BATCHES, *QUIET, "trainer.max_epochs=1"]
    plain = sigid.train([*SMALL, *one_epoch, f"hydra.run.dir={tmp_path / 'plain'}"])
    fused = sigid.train(
        [*SMALL, *one_epoch, PRETRAINED_BRANCH, f"hydra.run.dir={tmp_path / 'fused'}"]
    )
    assert fused.metrics["writer_branch_pretraining"]["epochs"] == 3
    # the pair embedding's own validation EER, to choose the epoch by (model.monitor)
    assert all("val/eer_pair" in row for row in fused.history)
    assert not any("val/eer_pair" in row for row in plain.history)
    assert fused.metrics["writer_branch_pretraining"]["writers"] == 3
    before = torch.load(plain.checkpoint, weights_only=True)["state_dict"]
    after = torch.load(fused.checkpoint, weights_only=True)["state_dict"]
    pair = {k: v for k, v in before.items() if k.startswith("net.embedding.")}
    assert pair and not any(k.startswith("branch_head") for k in after)
    for key, value in pair.items():
        assert torch.equal(value, after[key.replace("net.embedding.", "net.embedding.pair.")]), key
    assert torch.equal(before["writer_head.weight"], after["writer_head.weight"])
    verifier = sigid.Verifier.from_checkpoint(fused.checkpoint)
    assert verifier.dim == 128 + 8 and verifier.module.net.embedding.writer_frozen


def _draw_from_each_stream() -> tuple[float, float, float]:
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_writer_branch_pretraining_trains_the_branch_then_the_pair_training_leaves_it(tmp_path):
    cfg = _cfg(*SMALL, *WRITER_BATCHES, PRETRAINED_BRANCH, f"paths.output_dir={tmp_path}")
    datamodule = build_datamodule(cfg)
    datamodule.setup("fit")
    module = build_module(cfg, datamodule)
    branch = module.net.embedding.writer
    initial = {k: v.clone() for k, v in branch.state_dict().items()}
    L.seed_everything(3, verbose=False)
    expected = _draw_from_each_stream()
    L.seed_everything(3, verbose=False)
    measured = pretrain_writer_branch(module, datamodule, cfg.trainer)
    # drawn on the side: the pair training draws as if no pretraining had run
    assert _draw_from_each_stream() == expected
    assert measured["epochs"] == 3 and measured["writers"] == len(datamodule.train_writers) == 3
    assert 0.0 <= measured["train_acc"] <= 1.0 and measured["train_loss"] > 0
    pretrained = {k: v.clone() for k, v in branch.state_dict().items()}
    changed = [k for k in initial if not torch.equal(initial[k], pretrained[k])]
    assert "body.0.weight" in changed and "body.1.running_mean" in changed  # conv and BatchNorm
    assert module.branch_head is None
    assert not any(p.requires_grad for p in branch.parameters())
    module.train()
    assert not branch.training  # its BatchNorm statistics are not updated by the pair batches
    trainer = L.Trainer(
        max_epochs=1, limit_train_batches=3, limit_val_batches=1, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    pair = module.net.embedding.pair
    pair_before = {k: v.clone() for k, v in pair.state_dict().items()}
    trainer.fit(module, datamodule=datamodule)
    for key, value in branch.state_dict().items():
        assert torch.equal(value, pretrained[key]), key
    assert any(not torch.equal(v, pair_before[k]) for k, v in pair.state_dict().items())


def test_evaluate_reproduces_a_runs_test_metrics_from_the_checkpoint_alone(tmp_path):
    result = _train(
        tmp_path, "model=cnn", "model.depth=2", *SMALL_CNN, "data.test_distortion=heavy"
    )
    assert OmegaConf.load(result.output_dir / ".hydra" / "config.yaml").data.test_distortion
    # the run's own data settings by default: its small set, and its heavier test images
    again = sigid.evaluate(result.checkpoint)
    assert again["test/acc"] == pytest.approx(result.metrics["test/acc"])
    assert again["test/loss"] == pytest.approx(result.metrics["test/loss"])
    plain = sigid.evaluate(result.checkpoint, ["data.test_distortion=null"])  # overrides win
    assert plain["test/loss"] != pytest.approx(result.metrics["test/loss"])  # other images
    with pytest.raises(ValueError, match="trained on writers"):
        sigid.evaluate(result.checkpoint, ["data.synthetic.writers=3"])


def test_same_seed_gives_the_same_metrics_with_or_without_tensorboard(tmp_path):
    # TensorBoard's sample grid draws a batch before training: it must not shift the seed's draws
    runs = [
        sigid.train([*SMALL, *SMALL_CNN, f"hydra.run.dir={tmp_path / name}", "seed=7", logger])
        for name, logger in (("a", "logger=tensorboard"), ("b", "logger=none"))
    ]
    varying = ("wall_time_s", "checkpoint")
    same = [{k: v for k, v in r.metrics.items() if k not in varying} for r in runs]
    assert same[0] == same[1]


def _sigid_train(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "sigid-train"
    # the tests' own callbacks (`runs.InterruptAt`) importable as overrides
    path = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        [str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=900, check=False,
        env={**os.environ, "PYTHONPATH": path},
    )  # fmt: skip


def test_multirun_writes_summary_and_accuracy_plot_and_survives_a_failed_job(tmp_path):
    done = _sigid_train(
        tmp_path, "-m", *SMALL, *SMALL_CNN, "logger=none", "hydra.sweep.dir=sweep",
        "model.depth=2,3,9", "trainer.max_epochs=1,2",
    )  # fmt: skip
    # every job ran; the exit status says that some failed, and which
    assert done.returncode == 1, done.stderr[-3000:]
    assert "sigid-train: 2 job(s) failed: " in done.stderr
    assert done.stderr.count("depth") >= 2 and "Traceback" not in done.stderr
    sweep = tmp_path / "sweep"
    with (sweep / "summary.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6  # one per job: no mean or std rows across depths and epoch counts
    ok = [r for r in rows if r["status"] == "ok"]
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(ok) == 4 and all(r["test/acc"] for r in ok)
    assert len(failed) == 2 and all("depth" in r["error"] for r in failed)
    axes = {frozenset(r["overrides"].split()) for r in ok}
    assert frozenset({"model.depth=2", "trainer.max_epochs=1"}) in axes
    assert (sweep / "summary.md").read_text().count("\n") == 8
    assert (sweep / "accuracy_vs_epoch.png").stat().st_size > 5000
    job = sweep / ok[0]["job"]
    assert "run folder: " in (job / "train.log").read_text()  # each job's log, as documented


def test_configs_are_found_after_a_regular_install(tmp_path):
    target = tmp_path / "site"
    root = Path(__file__).resolve().parents[1]
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
    subprocess.run([*pip, "--target", str(target), str(root)], check=True, timeout=600)
    probe = (
        "from hydra import compose, initialize_config_module\n"
        "import sigid\n"
        "assert 'site' in sigid.__file__, sigid.__file__\n"
        "with initialize_config_module('sigid.conf', version_base='1.3'):\n"
        "    cfg = compose('train', overrides=['experiment=paper_snn'])\n"
        "print(cfg.model.embedding)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "pixel"
    shutil.rmtree(target)


def test_a_bad_setting_ends_a_single_run_with_a_one_line_error(tmp_path):
    done = _sigid_train(tmp_path, "data=folders", f"data.root={tmp_path / 'nowhere'}")
    assert done.returncode == 1
    assert "sigid-train: error:" in done.stderr and "nowhere: no such file or folder" in done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("nowhere: no such file") == 1
    # the run folder says so too: status.json, and the details in train.log
    (run,) = (tmp_path / "outputs").glob("*/*")
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "failed" and "nowhere: no such file" in status["error"]
    assert "nowhere: no such file" in (run / "train.log").read_text()


def test_a_failed_python_api_run_raises_and_records_why(tmp_path):
    run = f"hydra.run.dir={tmp_path / 'run'}"
    with pytest.raises(ValueError, match="nowhere: no such file or folder"):
        sigid.train(["data=folders", f"data.root={tmp_path / 'nowhere'}", run])
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["status"] == "failed" and "nowhere: no such file" in status["error"]
    # an override that does not compose is a ValueError too, before any run folder is made
    with pytest.raises(ValueError, match=r"config overrides: Could not override 'data.nope'"):
        sigid.train(["data.nope=1", f"hydra.run.dir={tmp_path / 'other'}"])
    assert not (tmp_path / "other").exists()
    # a trainer setting Lightning refuses: a ValueError naming the group, before any data
    with pytest.raises(ValueError, match=r"^trainer: Precision 'bogus' is invalid"):
        sigid.train(["trainer.precision=bogus", f"hydra.run.dir={tmp_path / 'precision'}"])
    assert not (tmp_path / "precision" / "split.json").exists()
    # one string is not a list of overrides
    with pytest.raises(TypeError, match="overrides must be a list of strings"):
        sigid.train("experiment=paper_cnn")


def test_ddp_refuses_writer_branch_pretraining_by_name_before_any_data_is_prepared(tmp_path):
    # the Siamese network itself trains under DDP (tests/test_ddp_siamese.py); the branch's
    # pretraining is a one-device Trainer of its own
    branch = "model.writer_branch={weight:1.0,depth:2,channels:[4,8],hidden:8,pretrain_epochs:2}"
    with pytest.raises(
        ValueError, match=r"^model\.writer_branch\.pretrain_epochs=2: .* one process"
    ):
        _train(tmp_path, "model=siamese_conv", "trainer=ddp", branch)
    assert not (tmp_path / "run" / "split.json").exists()


class OneProcessTask(SiameseModule):
    """A task that says it cannot be split over processes (``distributed = False``)."""

    distributed = False


def test_ddp_is_refused_for_a_task_that_cannot_be_split_before_any_data_is_prepared(tmp_path):
    task = f"model._target_={__name__}.OneProcessTask"
    with pytest.raises(ValueError, match=r"^trainer\.strategy=ddp: OneProcessTask cannot be split"):
        _train(tmp_path, "model=siamese_conv", task, "trainer=ddp")
    assert not (tmp_path / "run" / "split.json").exists()


def _finished_run(folder: Path) -> str:
    """A run folder as a finished run leaves it; returns its overrides record."""
    (folder / ".hydra").mkdir(parents=True)
    record = "- experiment=paper_cnn\n"
    (folder / ".hydra" / "overrides.yaml").write_text(record)
    (folder / "metrics.json").write_text(json.dumps({"test/acc": 0.9}))
    return record


def test_a_folder_holding_a_finished_run_is_refused_before_anything_is_written(tmp_path):
    record = _finished_run(tmp_path / "done")
    done = _sigid_train(tmp_path, *SMALL, "trainer.max_epochs=0", "hydra.run.dir=done")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip() == (
        "sigid-train: error: done: holds a finished run (its metrics.json); train into another "
        "folder (hydra.run.dir=...) or remove that one first"
    )
    assert (tmp_path / "done" / ".hydra" / "overrides.yaml").read_text() == record
    assert not (tmp_path / "done" / "status.json").exists()
    # the same from Python, and for a sweep folder holding a finished job
    with pytest.raises(ValueError, match="done: holds a finished run"):
        sigid.train([*SMALL, f"hydra.run.dir={tmp_path / 'done'}"])
    assert (tmp_path / "done" / ".hydra" / "overrides.yaml").read_text() == record
    _finished_run(tmp_path / "sweep" / "1")
    done = _sigid_train(tmp_path, "-m", *SMALL, "seed=0,1", "hydra.sweep.dir=sweep")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "sweep: holds the jobs of an earlier sweep (1), which would be summarised" in done.stderr
    assert not (tmp_path / "sweep" / "0").exists()
    # a file is not a run folder
    (tmp_path / "file").write_text("x")
    done = _sigid_train(tmp_path, *SMALL, "hydra.run.dir=file")
    assert done.returncode == 1 and "file: cannot write a run there: it is a file" in done.stderr
    assert "Traceback" not in done.stderr


def test_what_a_new_run_or_sweep_may_not_share_a_folder_with(tmp_path):
    failed = tmp_path / "failed"  # failed before any checkpoint: may be reused
    (failed / ".hydra").mkdir(parents=True)
    (failed / "status.json").write_text(json.dumps({"status": "failed", "error": "OOM"}))
    check_new_run_dir(failed)
    (failed / "checkpoints").mkdir()  # died after its first epoch: its checkpoint would mix in
    (failed / "checkpoints" / "best.ckpt").write_bytes(b"x")
    with pytest.raises(ValueError, match=re.escape(
        "failed: holds checkpoints of a run that did not finish (status.json: failed: OOM); "
        "train into another folder (hydra.run.dir=...)"
    )):  # fmt: skip
        check_new_run_dir(failed)
    with pytest.raises(ValueError, match=r"train into another folder \(hydra\.sweep\.dir=\.\.\.\)"):
        check_new_sweep_dir(failed)  # a sweep into a run's folder: the sweep's option is named
    check_new_sweep_dir(tmp_path / "new")


@pytest.mark.parametrize(("epochs", "shown"), [("0", "0"), ("abc", "'abc'")])
def test_an_epoch_count_that_trains_nothing_is_refused(tmp_path, epochs, shown):
    done = _sigid_train(tmp_path, *SMALL, f"trainer.max_epochs={epochs}")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"trainer.max_epochs={shown}: expected an integer >= 1" in done.stderr


def test_the_pretraining_experiment_builds_cedar_snns_network_for_init_from():
    pretrain = _cfg("experiment=synth_pretrain")
    cedar = _cfg("experiment=cedar_snn")
    assert pretrain.model == cedar.model and pretrain.data.preprocess == cedar.data.preprocess
    assert pretrain.data.pairs == cedar.data.pairs and pretrain.data.augment == cedar.data.augment
    assert pretrain.data.synthetic.writers == 300 and pretrain.data.root is None


def test_the_recommended_cedar_recipe_is_cedar_snn_from_the_pretraining_for_20_epochs(
    tmp_path, cedar_root
):
    recipe = _cfg("experiment=cedar_snn_pretrained")
    assert recipe.init_from == "outputs/synth_pretrain/checkpoints/best.ckpt"
    assert recipe.trainer.max_epochs == 20
    recipe.init_from, recipe.trainer.max_epochs = None, 12
    assert recipe == _cfg("experiment=cedar_snn")
    # without the pretraining run, it stops before any data is read and names the checkpoint
    done = _sigid_train(tmp_path, "experiment=cedar_snn_pretrained", f"data.root={cedar_root}")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "outputs/synth_pretrain/checkpoints/best.ckpt: checkpoint not found" in done.stderr


def _module(*overrides):
    cfg = _cfg(*SMALL, *overrides)
    datamodule = build_datamodule(cfg)
    datamodule.setup("fit")
    return build_module(cfg, datamodule)


def test_init_from_copies_the_fitting_weights_and_starts_fresh_heads(tmp_path, siamese_ckpt):
    """Pretrain on some writers, fine-tune on others: the embedding starts from the checkpoint,
    a head sized by another run's writers starts fresh, and mismatched runs are refused."""
    source = torch.load(siamese_ckpt, weights_only=True)["state_dict"]
    module = _module(*WRITER_BATCHES, "model.dim=16")
    fresh_head = module.writer_head.weight.clone()
    copied = init_from(module, siamese_ckpt)
    mine = module.state_dict()
    embedding = [k for k in source if k.startswith("net.embedding.")]
    assert embedding and copied["copied"] >= len(embedding)
    for key in embedding:
        assert torch.equal(mine[key], source[key]), key
    # the source has no writer head; this run's (sized by its own writers) keeps its initialisation
    assert "writer_head.weight" in copied["kept_initialised"]
    assert torch.equal(module.writer_head.weight, fresh_head)
    # the threshold and typical genuine distance belong to the other run's validation writers
    assert float(source["threshold"]) != 0.5 and float(module.threshold) == 0.5
    assert math.isnan(float(module.genuine_distance))

    wider = _module("model=siamese_conv", "data.preprocess.size=[48,96]")
    with pytest.raises(ValueError, match=rf"{siamese_ckpt.name}: its images were prepared as"):
        init_from(wider, siamese_ckpt)
    assert "preprocessing" not in copied  # the same preprocessing: nothing to record
    with pytest.raises(ValueError, match="a SiameseModule checkpoint cannot start a Classifier"):
        init_from(_module("model=cnn", *SMALL_CNN), siamese_ckpt)
    with pytest.raises(ValueError, match="checkpoint not found"):
        init_from(module, tmp_path / "missing.ckpt")
    # the pixel embedding shares only the similarity head's two scalars
    with pytest.raises(ValueError, match=r"only 2 of its \d+ weights fit this model"):
        init_from(_module("model=siamese", "model.dim=16"), siamese_ckpt)


def test_init_from_fine_tunes_to_other_robustness_options_but_not_another_mode(siamese_ckpt):
    """A checkpoint prepared without the normaliser's robustness options starts a run that uses
    them (the run records both preprocessings); another mode is still refused."""
    robust = ("data.preprocess.crop_main=true", "data.preprocess.ink_contrast=true")
    module = _module(*WRITER_BATCHES, "model.dim=16", *robust)
    started = init_from(module, siamese_ckpt)
    assert started["copied"] > 0
    assert started["preprocessing"] == {
        "checkpoint": {"mode": "normalized", "size": [32, 64]},
        "run": {"mode": "normalized", "size": [32, 64], "crop_main": True, "ink_contrast": True},
    }
    paper = _module(*WRITER_BATCHES, "model.dim=16", "data.preprocess.mode=paper")
    with pytest.raises(ValueError, match=r"its images were prepared as .*'normalized'"):
        init_from(paper, siamese_ckpt)


def test_a_run_started_from_a_checkpoint_records_it(tmp_path, siamese_ckpt):
    model = ["model=siamese_conv", *SMALL_NET, "model.dim=16"]
    result = _train(tmp_path, *QUIET, *model, f"init_from={siamese_ckpt}")
    assert result.metrics["init_from"]["checkpoint"] == str(siamese_ckpt.resolve())
    done = _sigid_train(tmp_path, f"init_from={tmp_path / 'nowhere.ckpt'}")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "nowhere.ckpt: checkpoint not found" in done.stderr


def test_an_interrupted_run_is_recorded_and_resumed_from_its_last_checkpoint(tmp_path):
    # Ctrl-C after the first epoch: `runs.InterruptAt` raises KeyboardInterrupt as the
    # terminal would, and Lightning ends the process with exit status 1
    args = [*SMALL, *SMALL_NET, "logger=none", "trainer.max_epochs=3", "hydra.run.dir=run"]
    stop = "+callbacks.stop={_target_:runs.InterruptAt,epoch:1}"
    done = _sigid_train(tmp_path, *args, stop)
    run = tmp_path / "run"
    assert done.returncode == 1, done.stderr[-2000:]
    assert json.loads((run / "status.json").read_text())["status"] == "interrupted"
    assert not (run / "metrics.json").exists() and (run / "checkpoints" / "last.ckpt").is_file()
    log = (run / "train.log").read_text()  # what it trained on, and what it left out
    assert "data: train: 6 writers," in log and "data: test: 6 writers," in log
    assert re.search(r"data: skipped \S+synthetic\.json: not inside a writer folder", log)
    # resumed with other settings (another split): refused, and the record stays as it was
    record = {n: (run / n).read_bytes() for n in ("status.json", "split.json")}
    other = _sigid_train(tmp_path, *args, "data.seed=1", "ckpt_path=run/checkpoints/last.ckpt")
    assert other.returncode == 1 and "Traceback" not in other.stderr
    assert "resuming takes the run's own data, model, experiment, seed" in other.stderr
    assert "this command lacks none and adds data.seed=1" in other.stderr
    assert {n: (run / n).read_bytes() for n in record} == record
    # the same command again is refused, and the message says how to resume
    again = _sigid_train(tmp_path, *args)
    assert again.returncode == 1 and "Traceback" not in again.stderr
    assert f"resume it (ckpt_path=run{os.sep}checkpoints{os.sep}last.ckpt)" in again.stderr
    resumed = _sigid_train(tmp_path, *args, "ckpt_path=run/checkpoints/last.ckpt")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Checkpoint directory" not in resumed.stderr  # its own folder, as it should be
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs"] == 3 and "test/acc" in metrics
    assert metrics["resumed_from"] == str((run / "checkpoints" / "last.ckpt").resolve())
    history = json.loads((run / "history.json").read_text())
    assert [h["epoch"] for h in history] == [0, 1, 2]  # the first epoch came with the checkpoint
    assert all("train/loss" in h and "val/acc" in h for h in history)
    assert json.loads((run / "status.json").read_text())["status"] == "ok"


def test_a_run_stopped_by_sigterm_exits_with_status_1_and_is_recorded(tmp_path):
    stop = "+callbacks.stop={_target_:runs.InterruptAt,epoch:1,sigterm:true}"
    args = [*SMALL, *SMALL_NET, "logger=none", "trainer.max_epochs=3", "hydra.run.dir=run"]
    done = _sigid_train(tmp_path, *args, stop)
    assert done.returncode == 1, done.stderr[-2000:]  # a scheduler must not see success
    assert json.loads((tmp_path / "run" / "status.json").read_text())["status"] == "interrupted"
    assert "run interrupted" in (tmp_path / "run" / "train.log").read_text()


def test_resuming_another_network_or_another_folders_run_is_refused_by_name(tmp_path):
    other = tiny_checkpoint(tmp_path / "other", "model=cnn", "model.depth=3")
    with pytest.raises(ValueError, match="ckpt_path resumes a run in its own folder"):
        _train(tmp_path, "model=cnn", *SMALL_NET, *QUIET, f"ckpt_path={other}")
    with pytest.raises(ValueError, match=r"nowhere.ckpt: checkpoint not found \(ckpt_path\)"):
        _train(tmp_path, f"ckpt_path={tmp_path / 'nowhere.ckpt'}")
    # resumed with other settings than the run's own: a depth-3 network into a depth-2 run
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    shutil.copy(other, last)
    status = tmp_path / "run" / "status.json"
    status.write_text('{"status": "interrupted", "error": "interrupted before it finished"}')
    same = [*SMALL, "model=cnn", *SMALL_NET, *QUIET]  # the run's record: these overrides
    (tmp_path / "run" / ".hydra" / "overrides.yaml").write_text("".join(f"- '{o}'\n" for o in same))
    with pytest.raises(ValueError, match=re.escape(f"{last}: its network differs from this")):
        _train(tmp_path, "model=cnn", *SMALL_NET, *QUIET, f"ckpt_path={last}")
    assert not (tmp_path / "run" / "metrics.json").exists()
    assert not (tmp_path / "run" / "split.json").exists()  # a refusal writes nothing there
    assert json.loads(status.read_text())["status"] == "interrupted"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["model.monitor=val/acc"],
            "model.monitor=val/acc is better when higher: set model.monitor_mode=max",
        ),
        (
            ["callbacks.model_checkpoint.monitor=val/acc", "callbacks.model_checkpoint.mode=max"],
            "callbacks.model_checkpoint: ModelCheckpoint watches val/acc (max), but the run "
            "reports model.monitor=val/loss (min); set model.monitor and model.monitor_mode",
        ),
        (
            ["+callbacks.early_stopping.patience=1"],
            "callbacks.early_stopping: not one of this run's callbacks (model_checkpoint, "
            "last_checkpoint, learning_rate_monitor, metric_history, epoch_line, sample_grid), "
            "so it has no _target_",
        ),
        (["+model.lr=0.01"], "model.lr: not a setting of this model"),
        (["seed=null"], "seed=null: expected an integer from 0 to 4294967295"),
    ],
)  # fmt: skip
def test_settings_that_would_report_another_epoch_or_crash_are_refused_in_one_line(
    tmp_path, overrides, message
):
    done = _sigid_train(tmp_path, *SMALL, *SMALL_NET, "logger=none", *overrides)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]  # after Lightning's device lines, if any
    assert last.startswith("sigid-train: error: ") and message in last


def test_a_default_callback_or_logger_set_to_null_is_turned_off(tmp_path):
    result = _train(tmp_path, "model=cnn", *SMALL_NET, "callbacks.sample_grid=null")
    assert "train/augmented_samples" not in _tags(result.output_dir)["images"]
    assert "val/loss" in _tags(result.output_dir)["scalars"]
    quiet = sigid.train(
        [*SMALL, *SMALL_NET, "logger.tensorboard=null", f"hydra.run.dir={tmp_path / 'quiet'}"]
    )
    assert quiet.checkpoint.is_file() and not (tmp_path / "quiet" / "tensorboard").exists()


def test_paths_output_dir_naming_a_finished_run_is_refused_and_that_run_kept(tmp_path):
    record = _finished_run(tmp_path / "done")
    before = {p.name: p.read_bytes() for p in (tmp_path / "done").rglob("*") if p.is_file()}
    done = _sigid_train(
        tmp_path, *SMALL, f"paths.output_dir={tmp_path / 'done'}", "hydra.run.dir=new"
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert (
        "done: holds a finished run (its metrics.json); train into another folder "
        "(paths.output_dir=...)" in done.stderr
    )
    after = {p.name: p.read_bytes() for p in (tmp_path / "done").rglob("*") if p.is_file()}
    assert (
        after == before and (tmp_path / "done" / ".hydra" / "overrides.yaml").read_text() == record
    )


def test_the_csv_logger_writes_every_epochs_metrics_beside_tensorboard(tmp_path):
    result = _train(tmp_path, "model=cnn", *SMALL_NET, "logger=[tensorboard,csv]")
    with (result.output_dir / "csv" / "version_0" / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    epochs = sorted({int(r["epoch"]) for r in rows if r.get("val/loss")})
    assert epochs == [0, 1] and any(r.get("test/acc") for r in rows)
    assert "val/loss" in _tags(result.output_dir)["scalars"]


def test_testing_the_best_checkpoint_keeps_the_whole_metric_history(tmp_path):
    """Lightning restores every callback's state from the checkpoint it tests: the history
    saved at the best epoch must not replace the epochs recorded after it; a resumed run (an
    empty history) takes the checkpoint's."""
    history = MetricHistory(tmp_path / "history.json")
    history.epochs = {e: {"epoch": e, "val/loss": 1.0 + e} for e in range(3)}
    at_best = {"epochs": [{"epoch": 0, "val/loss": 1.0}]}  # best.ckpt, written at epoch 0
    history.load_state_dict(at_best)
    assert sorted(history.epochs) == [0, 1, 2] and history.epochs[2]["val/loss"] == 3.0
    resumed = MetricHistory(tmp_path / "history.json")
    resumed.load_state_dict(history.state_dict())
    assert resumed.epochs == history.epochs
