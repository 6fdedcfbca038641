"""A resumed run goes on from its checkpoint: the weights, the optimizer's state and the step
count that the resumed process starts training with are those in ``last.ckpt``, not fresh ones."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from runs import QUIET, SMALL, SMALL_NET, training_state

TESTS = Path(__file__).resolve().parent


def _sigid_train(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """`sigid-train` in `cwd`, with the tests' own callbacks (`runs.Observe`) importable."""
    exe = Path(sys.executable).parent / "sigid-train"
    path = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        [str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=900, check=False,
        env={**os.environ, "PYTHONPATH": path},
    )  # fmt: skip


def _observe(name: str) -> str:
    return f"+callbacks.observe={{_target_:runs.Observe,path:{name}}}"


def _start(seen: dict[str, Any], checkpoint: dict[str, Any]) -> dict[str, Any]:
    """What a trainer started from (`runs.Observe`'s record), against a checkpoint's
    `training_state`: one comparison that shows every difference at once."""
    return {
        "global_step": seen["global_step"],
        "current_epoch": seen["current_epoch"],
        "weights": "the checkpoint's" if seen["weights"] == checkpoint["weights"] else "others",
        "optimizers": "the checkpoint's" if seen["optimizers"] == checkpoint["optimizers"]
        else "others",
        "adam steps": sorted({p.get("step") for p in seen["optimizers"][0].values()}),
    }  # fmt: skip


@pytest.mark.slow
def test_a_resumed_run_starts_training_from_its_checkpoints_weights_optimizer_and_step(tmp_path):
    """Interrupted (Ctrl-C) at the start of its third epoch, the run's ``last.ckpt`` holds the
    end of the second: epoch 1, step 6, Adam moments 6 steps old. The resumed process must start
    training with exactly those (as `runs.Observe` sees them in that process at
    ``on_train_start``), where a run started afresh with the same seed would begin at step 0
    with its initial weights and no optimizer state; the history and epoch count it then writes
    would look the same."""
    args = [*SMALL, *SMALL_NET, *QUIET, "trainer.max_epochs=3", "hydra.run.dir=run"]
    stop = "+callbacks.stop={_target_:runs.InterruptAt,epoch:2}"
    first = _sigid_train(tmp_path, *args, stop, _observe("first.json"))
    assert first.returncode == 1, first.stderr[-2000:]
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    saved = torch.load(last, map_location="cpu", weights_only=True)
    assert (saved["epoch"], saved["global_step"]) == (1, 6)  # 2 epochs of 3 batches
    expected = training_state(saved["state_dict"], saved["optimizer_states"])
    fresh = json.loads((tmp_path / "first.json").read_text())  # what a fresh start looks like
    assert (fresh["global_step"], fresh["current_epoch"]) == (0, 0)
    assert fresh["optimizers"] == [{}]  # Adam has no moments before its first step
    assert {p["step"] for p in expected["optimizers"][0].values()} == {6.0}
    assert fresh["weights"].keys() == expected["weights"].keys()
    assert fresh["weights"] != expected["weights"]  # two epochs of training changed them

    resumed = _sigid_train(
        tmp_path, *args, "ckpt_path=run/checkpoints/last.ckpt", _observe("resumed.json")
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    seen = json.loads((tmp_path / "resumed.json").read_text())
    adam = seen["optimizers"][0]

    assert _start(seen, expected) == {
        "global_step": 6,
        "current_epoch": 2,  # the checkpoint's epoch 1 was completed
        "weights": "the checkpoint's",
        "optimizers": "the checkpoint's",
        "adam steps": [6.0],
    }
    assert adam and all({"exp_avg", "exp_avg_sq"} <= set(p) for p in adam.values()), adam
    # and it went on from there: 3 more batches on top of the checkpoint's 6
    final = torch.load(last, map_location="cpu", weights_only=True)
    assert (final["epoch"], final["global_step"]) == (2, 9)


@pytest.mark.slow
def test_last_ckpt_holds_the_last_epoch_when_the_best_was_earlier(tmp_path):
    """With a learning rate of 1e-30 the network never changes (each step rounds away), so its
    validation metric never improves after epoch 0 and ``best.ckpt`` stays there; ``last.ckpt``
    must still hold the last epoch, or a run resumed from it would silently go back (Lightning
    2.6's ``save_last`` writes it only when a best checkpoint is saved)."""
    import sigid

    run = tmp_path / "run"
    sigid.train(
        [*SMALL, *SMALL_NET, *QUIET, "model.optimizer.lr=1e-30", "trainer.max_epochs=3",
         f"hydra.run.dir={run}"]
    )  # fmt: skip
    held = {
        name: torch.load(run / "checkpoints" / f"{name}.ckpt", map_location="cpu",
                         weights_only=True)["epoch"]
        for name in ("best", "last")
    }  # fmt: skip
    assert held == {"best": 0, "last": 2}
