"""The debug group (`debug=fdr|limit|overfit|profiler`): each runs, lands in outputs/debug/, and
says it is a debug run in status.json and metrics.json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from runs import SMALL_DATA, SMALL_NET

SIGID_TRAIN = Path(sys.executable).parent / "sigid-train"


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["fdr", "limit", "overfit", "profiler"])
def test_a_debug_run_runs_in_its_own_folder_and_is_marked(tmp_path, mode):
    done = subprocess.run(
        [str(SIGID_TRAIN), f"debug={mode}", *SMALL_DATA, *SMALL_NET, "logger=none"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    runs = [p.parent for p in (tmp_path / "outputs" / "debug").glob("*/*/status.json")]
    assert len(runs) == 1 and not list((tmp_path / "outputs").glob("20*"))  # not with results
    run = runs[0]
    assert json.loads((run / "status.json").read_text()) | {"wall_time_s": 0} == {
        "status": "ok",
        "debug_run": mode,
        "wall_time_s": 0,
    }
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["debug_run"] == mode and "test/acc" in metrics
    epochs = {"fdr": 1, "limit": 3, "overfit": 20, "profiler": 1}[mode]
    assert metrics["epochs"] == epochs
    if mode == "profiler":
        assert list(run.glob("*profiler*.txt"))
    if mode == "overfit":  # the same batches again and again: the loss falls
        history = json.loads((run / "history.json").read_text())
        assert history[-1]["train/loss"] < history[0]["train/loss"]
