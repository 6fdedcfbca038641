"""A sweep's axes: each job's label from the records Hydra writes, and what TensorBoard shows of
a real multirun: runs named by their settings, HPARAMS opening on the swept ones."""

from __future__ import annotations

from pathlib import Path

from runs import SMALL_DATA, sigid_train
from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer
from tensorboard.plugins.hparams import backend_context, metadata

from sigid.runs.axes import run_label, swept_settings


def _job(sweep: Path, job: int, *overrides: str, given: tuple[str, ...] = ()) -> Path:
    """A job folder as Hydra leaves it: its overrides, and the sweep's multirun.yaml with the
    command line's overrides `given`."""
    folder = sweep / str(job)
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    task = "".join(f"    - {o}\n" for o in given)
    (sweep / "multirun.yaml").write_text(f"hydra:\n  overrides:\n    task:\n{task}")
    return folder


def test_a_job_is_labelled_by_the_settings_its_sweep_varies(tmp_path):
    given = ("data.batch_size=16", "model.depth=2,3", "trainer.max_epochs=range(1,3)")
    job = _job(tmp_path, 3, "data.batch_size=16", "model.depth=3", "trainer.max_epochs=2",
               given=given)  # fmt: skip
    assert run_label(job) == "depth=3,max_epochs=2"
    # resumed into its folder: the same label, the resume left out
    records = job / ".hydra" / "overrides.yaml"
    records.write_text(records.read_text() + "- ckpt_path=x/checkpoints/last.ckpt\n")
    assert run_label(job) == "depth=3,max_epochs=2"


def test_axes_sharing_a_last_name_keep_their_whole_keys_and_paths_stay_one_folder(tmp_path):
    given = ("model.lr=0.1,0.01", "+data.lr=1,2", "data.root=/a/b,/c/d", "model=cnn,siamese",
             "model.dropout=interval(0.2,0.6)")  # fmt: skip
    job = _job(tmp_path, 0, "model.lr=0.1", "+data.lr=2", "data.root=/a/b", "model=cnn",
               "model.dropout=0.36946191973556186", given=given)  # fmt: skip
    assert run_label(job) == "model.lr=0.1,data.lr=2,root=_a_b,model=cnn,dropout=0.3695"


def test_a_sweep_set_in_the_config_is_an_axis_and_a_run_outside_a_sweep_has_no_label(tmp_path):
    job = _job(tmp_path / "sweep", 0, "model.depth=2", "seed=1")
    (job / ".hydra" / "hydra.yaml").write_text("hydra:\n  sweeper:\n    params:\n      seed: 0,1\n")
    assert swept_settings(job) == {"seed": "1"}
    single = tmp_path / "run"
    (single / ".hydra").mkdir(parents=True)
    (single / ".hydra" / "overrides.yaml").write_text("- model.depth=2\n")
    assert run_label(single) == "" and run_label(tmp_path / "nowhere") == ""
    (tmp_path / "sweep" / "multirun.yaml").write_text("not: [yaml")  # damaged: no label
    (job / ".hydra" / "hydra.yaml").unlink()
    assert run_label(job) == ""


def test_tensorboard_names_each_sweep_job_by_its_settings_and_shows_them_first(tmp_path):
    quick = ["+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1", "test=false"]
    small_cnn = ["model.channels=[8,16,16,16,16]", "model.hidden=32"]
    done = sigid_train(
        tmp_path, "-m", *SMALL_DATA, *small_cnn, *quick, "hydra.sweep.dir=sweep",
        "model.depth=2,3", "trainer.max_epochs=1,2",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    # the runs as `tensorboard --logdir sweep` lists them
    board = EventMultiplexer().AddRunsFromDirectory(str(tmp_path / "sweep"))
    board.Reload()
    assert sorted(board.Runs()) == [
        f"{job}/tensorboard/depth={depth},max_epochs={epochs}"
        for job, (depth, epochs) in enumerate((d, e) for d in (2, 3) for e in (1, 2))
    ]
    # HPARAMS as TensorBoard's backend orders it: the swept settings first, then the others
    content = board.PluginRunToTagToContent(metadata.PLUGIN_NAME)
    assert len(content) == 4
    for tags in content.values():
        experiment = metadata.parse_experiment_plugin_data(tags[metadata.EXPERIMENT_TAG])
        backend_context._sort_and_reduce_to_hparams_limit(experiment)
        names = [info.name for info in experiment.hparam_infos]
        assert names[:2] == ["model.depth", "trainer.max_epochs"]
        assert "data.augment.rotation" in names[2:]
        assert [m.name.tag for m in experiment.metric_infos] == ["hp/best_val_loss"]


def test_a_sweep_job_resumed_into_its_folder_goes_on_under_its_label(tmp_path):
    args = [*SMALL_DATA, "model.channels=[8,16,16,16,16]", "model.hidden=32", "test=false",
            "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1",
            "trainer.max_epochs=2"]  # fmt: skip
    stop = "+callbacks.stop={_target_:runs.InterruptAt,epoch:1}"  # Ctrl-C in the first job
    done = sigid_train(tmp_path, "-m", *args, stop, "hydra.sweep.dir=sweep", "model.depth=2,3")
    assert done.returncode != 0 and (tmp_path / "sweep/0/checkpoints/last.ckpt").is_file()
    resumed = sigid_train(
        tmp_path, *args, "model.depth=2", "hydra.run.dir=sweep/0",
        "ckpt_path=sweep/0/checkpoints/last.ckpt",
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    board = EventMultiplexer().AddRunsFromDirectory(str(tmp_path / "sweep"))
    board.Reload()
    assert board.Runs().keys() == {"0/tensorboard/depth=2"}
    epochs = board.Tensors("0/tensorboard/depth=2", "val/loss")
    assert len(epochs) == 2  # the first process's epoch and the resumed one's, in one run
