"""Seconds-long training settings, shared by every test that needs a real trained checkpoint."""

from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path

import lightning as L

import sigid


def _reads_anything() -> bool:
    """Whether this process reads a file whose modes forbid it (root with its capabilities;
    Windows, which has no such modes): the permission tests then skip."""
    with tempfile.TemporaryDirectory() as folder:
        locked = Path(folder) / "locked"
        locked.write_text("x")
        locked.chmod(0)
        try:
            locked.read_text()
        except PermissionError:
            return False
        finally:
            locked.chmod(0o600)
    return True


READS_ANYTHING = _reads_anything()


# A small synthetic set (6 writers), 32x64 images, small batches.
SMALL_DATA = [
    "data.synthetic.writers=6",
    "data.synthetic.per_writer=12",
    "data.synthetic.forgeries=4",
    "data.preprocess.size=[32,64]",
    "data.split.val=2",
    "data.split.test=2",
    "data.split.folds=3",
    "data.split.val_writers=1",
    "data.pairs.train=48",
    "data.pairs.val=24",
    "data.pairs.test=24",
    "data.batch_size=16",
]
SMALL = [*SMALL_DATA, "trainer.max_epochs=2", "+trainer.limit_train_batches=3"]
# Small networks; a test picks the model group (model=cnn, model=siamese_conv, ...).
SMALL_NET = ["model.depth=2", "model.channels=[8,16,16,16,16]"]
# No logger, no test pass, no summary: for fixtures that only need the checkpoint.
QUIET = ["trainer.enable_model_summary=false", "logger=none", "test=false"]


def tiny_checkpoint(folder: Path, *overrides: str) -> Path:
    """Train a tiny model into `folder` and return its best checkpoint."""
    result = sigid.train([*SMALL, *SMALL_NET, *QUIET, *overrides, f"hydra.run.dir={folder}"])
    assert result.checkpoint is not None and result.checkpoint.is_file()
    return result.checkpoint


class InterruptAt(L.Callback):
    """Ctrl-C as the terminal delivers it (or `SIGTERM`, as a scheduler stops a job), at the
    start of `epoch`: a run cut short after its earlier epochs were checkpointed (a callback, so
    `sigid-train` takes it as an override)."""

    def __init__(self, epoch: int, sigterm: bool = False) -> None:
        self.epoch = epoch
        self.sigterm = sigterm

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch != self.epoch:
            return
        if self.sigterm:  # Lightning's handler takes it from here
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise KeyboardInterrupt
