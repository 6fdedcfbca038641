"""The multirun summary's axes and the accuracy-vs-epoch figure, on job folders written here;
`sigid summarize` on those and on real `sigid.train` runs."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib import colors
from omegaconf import OmegaConf
from PIL import Image

from sigid.cli import main
from sigid.runs import sweep


def _job(
    root: Path, job: int, *overrides: str, accuracy: tuple[float, ...] = (0.5, 0.7), test=0.6
) -> None:
    """A finished job folder as Hydra and sigid-train leave it, with its per-epoch history."""
    folder = root / str(job)
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    history = [{"epoch": e, "val/acc": a, "val/loss": 1 - a} for e, a in enumerate(accuracy)]
    (folder / "history.json").write_text(json.dumps(history))
    best = max(range(len(accuracy)), key=accuracy.__getitem__)
    metrics = {"monitor": "val/acc", "val_best": accuracy[best], "best_epoch": best}
    (folder / "metrics.json").write_text(json.dumps({**metrics, "test/acc": test}))
    (folder / "status.json").write_text(json.dumps({"status": "ok"}))


def _colours_drawn(png: Path) -> set[int]:
    """Which of the default colour cycle's first seven colours (C7, grey, is also the frame's
    anti-aliasing) appear in the image."""
    pixels = np.asarray(Image.open(png).convert("RGB")).reshape(-1, 3)
    present = {tuple(p) for p in np.unique(pixels, axis=0)}
    cycle = [tuple(round(255 * c) for c in colors.to_rgb(f"C{i}")) for i in range(7)]
    return {i for i, rgb in enumerate(cycle) if rgb in present}


def test_curves_of_one_depth_with_different_seeds_are_drawn_apart(tmp_path):
    root = tmp_path / "sweep"
    for job, (depth, seed) in enumerate((d, s) for d in (2, 3) for s in (0, 1)):
        acc = (0.3 + 0.1 * job, 0.5 + 0.1 * job)
        _job(root, job, "experiment=cnn", f"model.depth={depth}", f"seed={seed}", accuracy=acc)
    rows = sweep.collect(root)
    curves = sweep.accuracy_curves(rows)
    assert sorted(curves) == ["depth 2, seed=0", "depth 2, seed=1", "depth 3, seed=0",
                              "depth 3, seed=1"]  # fmt: skip
    assert [h["val/acc"] for h in curves["depth 3, seed=0"]] == pytest.approx([0.5, 0.7])
    sweep.write_summary(root, rows)
    assert _colours_drawn(root / "accuracy_vs_epoch.png") == {0, 1, 2, 3}  # four curves


def test_a_fold_sweep_is_labelled_by_its_fold_alone(tmp_path):
    root = tmp_path / "folds"
    for fold in range(3):
        _job(root, fold, "experiment=cedar_snn", "data.root=/data/cedar", f"data.split.fold={fold}")
    curves = sweep.accuracy_curves(sweep.collect(root))
    assert sorted(curves) == [f"data.split.fold={fold}" for fold in range(3)]


def test_jobs_that_differ_only_in_epochs_share_a_curve_and_twins_are_told_by_job(tmp_path):
    root = tmp_path / "epochs"
    _job(root, 0, "model.depth=2", "trainer.max_epochs=1", accuracy=(0.4,))
    _job(root, 1, "model.depth=2", "trainer.max_epochs=3", accuracy=(0.4, 0.5, 0.6))
    _job(root, 2, "model.depth=3", "trainer.max_epochs=1", accuracy=(0.3,))
    _job(root, 3, "model.depth=3", "trainer.max_epochs=1", accuracy=(0.35,))  # job 2's twin
    curves = sweep.accuracy_curves(sweep.collect(root))
    assert sorted(curves) == ["depth 2", "depth 3 (job 2)", "depth 3 (job 3)"]
    assert len(curves["depth 2"]) == 3  # the longest run of depth 2


def test_plus_key_and_key_are_one_axis_of_the_sweep(tmp_path):
    root = tmp_path / "plus"
    _job(root, 0, "experiment=cnn", "+trainer.limit_train_batches=2")
    _job(root, 1, "experiment=cnn", "trainer.limit_train_batches=3")
    _job(root, 2, "experiment=cnn", "trainer.limit_train_batches=3", "+data.extra=1")
    rows = sweep.collect(root)
    # the summary shows the axes: the batch limit, and the key only one job sets
    assert [r["overrides"] for r in rows] == [
        "+trainer.limit_train_batches=2",
        "trainer.limit_train_batches=3",
        "trainer.limit_train_batches=3 +data.extra=1",
    ]
    assert sorted(sweep.accuracy_curves(rows)) == [
        "data.extra=1, trainer.limit_train_batches=3",
        "data.extra=unset, trainer.limit_train_batches=2",
        "data.extra=unset, trainer.limit_train_batches=3",
    ]


def test_the_plot_counts_epochs_from_0_as_best_epoch_does(tmp_path):
    root = tmp_path / "sweep"
    _job(root, 0, "model.depth=2", accuracy=(0.5, 0.9, 0.7))
    _job(root, 1, "model.depth=3", accuracy=(0.8, 0.6, 0.7))
    rows = sweep.collect(root)
    ax = sweep.accuracy_figure(rows).axes[0]
    assert ax.get_xlabel() == "epoch (from 0)"
    lines = {line.get_label(): line for line in ax.get_lines()}
    for row in rows:
        x, y = lines[f"depth {row['params']['model.depth']}"].get_data()
        assert list(x) == [0, 1, 2]
        assert x[np.argmax(y)] == row["best_epoch"]  # the summary's best epoch is the peak's


def _summary_jobs(root: Path) -> list[str]:
    """The job column of the summary written for `root`: its jobs, then any summary rows."""
    sweep.write_summary(root)
    with (root / "summary.csv").open() as handle:
        jobs = [row["job"] for row in csv.DictReader(handle)]
    md = (root / "summary.md").read_text().splitlines()[2:]
    assert [line.split(" | ")[0].removeprefix("| ") for line in md] == jobs
    return jobs


def test_mean_and_std_rows_summarise_repetitions_of_one_setting(tmp_path):
    root = tmp_path / "seeds"
    for job, (seed, fold) in enumerate((s, f) for s in (0, 1) for f in (0, 1)):
        overrides = ("experiment=cnn", f"seed={seed}", f"+data.split.fold={fold}", "data.seed=0")
        _job(root, job, *overrides, test=0.5 + 0.1 * job)
    assert _summary_jobs(root) == ["0", "1", "2", "3", "mean", "std"]
    with (root / "summary.csv").open() as handle:
        mean = list(csv.DictReader(handle))[-2]
    assert (mean["overrides"], mean["test/acc"]) == ("over 4 ok job(s)", "0.6500")
    # one job resumed after Ctrl-C (ckpt_path among its overrides): the same setting still
    resumed = root / "3" / ".hydra" / "overrides.yaml"
    resumed.write_text(resumed.read_text() + "- ckpt_path=seeds/3/checkpoints/last.ckpt\n")
    (root / "summary.csv").unlink()
    assert _summary_jobs(root) == ["0", "1", "2", "3", "mean", "std"]


def test_no_mean_or_std_rows_across_different_settings(tmp_path):
    root = tmp_path / "depths"
    for job, (depth, epochs) in enumerate((d, e) for d in (2, 3) for e in (1, 2)):
        _job(root, job, f"model.depth={depth}", f"trainer.max_epochs={epochs}")
    assert _summary_jobs(root) == ["0", "1", "2", "3"]
    # seeds of two depths: still two settings
    root = tmp_path / "depth_and_seed"
    for job, (depth, seed) in enumerate((d, s) for d in (2, 3) for s in (0, 1)):
        _job(root, job, f"model.depth={depth}", f"+seed={seed}")
    assert _summary_jobs(root) == ["0", "1", "2", "3"]


@pytest.fixture
def svg_backend():
    """The caller's backend (a notebook's, say) set to another than Agg; restored after."""
    before = matplotlib.get_backend()
    matplotlib.use("svg")
    yield
    matplotlib.use(before)


def test_the_plot_leaves_the_callers_matplotlib_alone(tmp_path, svg_backend):
    root = tmp_path / "sweep"
    for job in range(2):
        _job(root, job, f"model.depth={job + 2}")
    rows = sweep.collect(root)
    open_figures = plt.get_fignums()
    assert sweep.plot_accuracy_vs_epoch(rows, tmp_path / "a.png") == tmp_path / "a.png"
    assert matplotlib.get_backend() == "svg"
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        sweep.plot_accuracy_vs_epoch(rows, tmp_path / "file" / "a.png")
    assert plt.get_fignums() == open_figures  # no figure left behind by the failed save


def _summarize(capsys, *argv) -> tuple[int, str, str]:
    code = main(["summarize", *(str(a) for a in argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_summarize_writes_the_summary_of_an_interrupted_sweep(tmp_path, capsys):
    root = tmp_path / "sweep"
    for job in range(3):
        _job(root, job, f"model.depth={job + 2}", "trainer.max_epochs=2")
    # Ctrl-C in job 1's second epoch: its history so far, status.json "interrupted" (as
    # sigid-train records it); job 2 killed outright (or still running): no status.json at all
    (root / "1" / "metrics.json").unlink()
    (root / "1" / "status.json").write_text(
        json.dumps({"status": "interrupted", "error": "interrupted before it finished"})
    )
    (root / "2" / "metrics.json").unlink()
    (root / "2" / "status.json").unlink()
    for job in (1, 2):
        (root / str(job) / "history.json").write_text(json.dumps([{"epoch": 0, "val/acc": 0.4}]))
    (root / "multirun.yaml").write_text("hydra: {}\n")  # Hydra's own record, not a job
    code, out, err = _summarize(capsys, root)
    files = [root / name for name in ("summary.csv", "summary.md", "accuracy_vs_epoch.png")]
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"summary of 3 job(s) in {root}: 1 ok, 1 interrupted, 1 failed",
        "  job 1 interrupted",
        "  job 2 failed: no result written",
        *(f"  {path}" for path in files),
    ]
    with (root / "summary.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    statuses = [(r["job"], r["status"]) for r in rows]
    assert statuses == [("0", "ok"), ("1", "interrupted"), ("2", "failed")]
    assert rows[2]["error"] == "no result written"
    code, out, _ = _summarize(capsys, root, "--json")
    assert code == 0 and json.loads(out) == {
        "sweep": str(root), "jobs": 3, "ok": 1,
        "failed": [
            {"job": "1", "status": "interrupted", "error": "interrupted before it finished"},
            {"job": "2", "status": "failed", "error": "no result written"},
        ],
        "files": [str(path) for path in files],
    }  # fmt: skip


def test_summarize_names_the_folder_it_cannot_summarise(tmp_path, capsys):
    _job(tmp_path / "sweep", 0, "seed=0")
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("")
    for path, why in [
        (tmp_path / "absent", "no such sweep folder"),
        (tmp_path / "notes.txt", "a file; give the sweep folder"),
        (tmp_path / "empty", "no job folders (with .hydra/) in it"),
        (tmp_path / "sweep" / "0", "a run folder; give the sweep folder that holds the runs"),
    ]:
        code, out, err = _summarize(capsys, path)
        assert (code, out, err) == (1, "", f"sigid summarize: error: {path}: {why}\n")
        assert not list(tmp_path.rglob("summary.*"))


def test_the_sweep_callback_reports_a_sweep_folder_without_jobs(tmp_path, capsys):
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})
    sweep.SweepSummary().on_multirun_end(config)  # returns: nothing to summarise, no error
    why = "no job folders (with .hydra/) in it"
    assert capsys.readouterr().err == f"sigid-train: no sweep summary: {tmp_path}: {why}\n"
    assert list(tmp_path.iterdir()) == []


def test_summarize_takes_a_folder_of_python_api_runs(tmp_path, capsys, cnn_ckpt, siamese_ckpt):
    runs = tmp_path / "runs"  # two real sigid.train runs (hydra.run.dir), side by side
    for name, ckpt in (("cnn", cnn_ckpt), ("snn", siamese_ckpt)):
        shutil.copytree(ckpt.parent.parent, runs / name)
    code, out, _ = _summarize(capsys, runs)
    assert code == 0 and out.startswith(f"summary of 2 job(s) in {runs}: 2 ok, 0 failed\n")
    with (runs / "summary.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    # one row per run, in name order; no mean or std rows across two models
    assert [(r["job"], r["status"], r["monitor"]) for r in rows] == [
        ("cnn", "ok", "val/loss"), ("snn", "ok", "val/eer"),
    ]  # fmt: skip
    assert "model=cnn" in rows[0]["overrides"] and "model=siamese_conv" in rows[1]["overrides"]
