"""The multirun summary's axes and its accuracy-vs-epoch figure, on job folders written here."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import pytest

from sigid import sweep


def _job(root: Path, job: int, *overrides: str, accuracy: tuple[float, ...] = (0.5, 0.7)) -> None:
    """A finished job folder as Hydra and sigid-train leave it, with its per-epoch history."""
    folder = root / str(job)
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    history = [{"epoch": e, "val/acc": a, "val/loss": 1 - a} for e, a in enumerate(accuracy)]
    (folder / "history.json").write_text(json.dumps(history))
    (folder / "metrics.json").write_text(json.dumps({"monitor": "val/acc", "test/acc": 0.6}))
    (folder / "status.json").write_text(json.dumps({"status": "ok"}))


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
