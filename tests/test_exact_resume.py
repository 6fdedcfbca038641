"""Exact resume: a run interrupted at an epoch boundary (SIGTERM, or SIGKILL without a word) and
resumed with the documented command gives the history, best epoch and final metrics of the run
that was not interrupted, for the CNN and the Siamese network."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
from runs import SMALL, SMALL_NET

TESTS = Path(__file__).resolve().parent
EPOCHS = 4


class KillAt(L.Callback):
    """SIGKILL at the end of `epoch`, after the history of that epoch is written and before its
    checkpoint is (Lightning runs checkpoint callbacks last): a power cut at the worst time."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            os.kill(os.getpid(), signal.SIGKILL)


def _sigid_train(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "sigid-train"
    path = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        [str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=900, check=False,
        env={**os.environ, "PYTHONPATH": path},
    )  # fmt: skip


def _outcome(run: Path) -> tuple[list[dict], dict]:
    history = json.loads((run / "history.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    kept = {k: v for k, v in metrics.items() if k.startswith(("test/", "best_", "val_best"))}
    return history, kept


MODELS = {
    "cnn": ["model=cnn", *SMALL_NET],
    "siamese": ["model=siamese"],
    "siamese_writer_batches": [
        "model=siamese", "data.pairs.batch={writers:3,genuine:2,forgeries:1}", "data.batch_size=8"
    ],
}  # fmt: skip
STOPS = {
    "sigterm_at_epoch_2": "+callbacks.stop={_target_:runs.InterruptAt,epoch:2,sigterm:true}",
    "sigkill_after_epoch_1_history": "+callbacks.stop={_target_:test_exact_resume.KillAt,epoch:1}",
}


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("stop", STOPS)
def test_a_resumed_run_is_the_run_that_was_not_interrupted(tmp_path, model, stop):
    args = [*SMALL, *MODELS[model], f"trainer.max_epochs={EPOCHS}", "logger=none"]
    whole = _sigid_train(tmp_path, *args, "hydra.run.dir=whole")
    assert whole.returncode == 0, whole.stderr[-2000:]

    cut = _sigid_train(tmp_path, *args, "hydra.run.dir=cut", STOPS[stop])
    run = tmp_path / "cut"
    assert cut.returncode != 0 and not (run / "metrics.json").exists()
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == ("interrupted" if stop.startswith("sigterm") else "running")
    again = _sigid_train(tmp_path, *args, "hydra.run.dir=cut")  # the folder says what to do
    assert again.returncode == 1 and "Traceback" not in again.stderr
    assert f"resume it (ckpt_path=cut{os.sep}checkpoints{os.sep}last.ckpt)" in again.stderr

    resumed = _sigid_train(
        tmp_path, *args, "hydra.run.dir=cut", "ckpt_path=cut/checkpoints/last.ckpt"
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert _outcome(run) == _outcome(tmp_path / "whole")
    assert json.loads((run / "status.json").read_text())["status"] == "ok"
