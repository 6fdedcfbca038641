"""Lightning callbacks of a sigid run: per-epoch metric history and progress line, a grid of
augmented samples."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities.seed import isolate_rng
from torchvision.utils import make_grid

from sigid.atomic import write_json


class MetricHistory(L.Callback):
    """Per-epoch train/val metrics in ``history.json``: what the sweep's accuracy plot reads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.epochs: dict[int, dict[str, float]] = {}

    def _record(self, trainer: L.Trainer, prefix: str) -> None:
        row = self.epochs.setdefault(trainer.current_epoch, {"epoch": trainer.current_epoch})
        for name, value in trainer.callback_metrics.items():
            if name.startswith(prefix) and not name.endswith("_step"):
                row[name.removesuffix("_epoch")] = float(value)
        if trainer.is_global_zero:  # under DDP every rank holds the same synced metrics
            write_json(self.path, [self.epochs[e] for e in sorted(self.epochs)])

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._record(trainer, "val/")

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._record(trainer, "train/")

    def state_dict(self) -> dict[str, Any]:
        """The epochs so far travel in the checkpoint, so a resumed run's history is whole."""
        return {"epochs": [self.epochs[e] for e in sorted(self.epochs)]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """The checkpoint's epochs, under those recorded since: resuming starts from the
        former, while testing the best checkpoint after fitting must not cut the history
        back to the best epoch."""
        loaded = {int(row["epoch"]): dict(row) for row in state_dict.get("epochs", [])}
        self.epochs = {**loaded, **self.epochs}


log = logging.getLogger(__name__)


class EpochLine(L.Callback):
    """One line per epoch: the epoch, the training loss, the monitored validation metric, the
    time so far and an estimate of the time left (to ``max_epochs``; early stopping may end
    sooner). Always in ``train.log``; on the console too when no progress bar shows (not a
    terminal: a multirun job, CI, a log file)."""

    def __init__(self, monitor: str) -> None:
        self.monitor = monitor
        self.start, self.first = 0.0, 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start, self.first = time.perf_counter(), trainer.current_epoch

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        done, total = trainer.current_epoch + 1, trainer.max_epochs
        elapsed = time.perf_counter() - self.start
        left = elapsed / max(done - self.first, 1) * max(total - done, 0)
        parts = [f"epoch {done}/{total}"]
        metrics = trainer.callback_metrics
        for name in ("train/loss", self.monitor):
            value = metrics.get(name, metrics.get(f"{name}_epoch"))
            if value is not None:
                parts.append(f"{name} {float(value):.4f}")
        parts += [f"elapsed {_clock(elapsed)}", f"left ~{_clock(left)}"]
        line = "  ".join(parts)
        log.info("%s", line)
        if trainer.progress_bar_callback is None:
            print(line, file=sys.stderr, flush=True)


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class SampleGrid(L.Callback):
    """Log a grid of augmented training images to TensorBoard once, at the start of training.

    The batch is drawn on the side (Lightning's `isolate_rng`): with or without TensorBoard, a
    seed trains the same."""

    def __init__(self, count: int = 32) -> None:
        self.count = count

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loggers = [lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
        if not loggers or trainer.datamodule is None:
            return
        # CUDA's generators only on CUDA: reading them would start CUDA in a CPU run
        with isolate_rng(include_cuda=pl_module.device.type == "cuda"):
            batch = next(iter(trainer.datamodule.train_dataloader()))
        images = batch["images"] if isinstance(batch, dict) else batch[0]
        grid = make_grid(images[: self.count].float(), nrow=8, padding=2, pad_value=0.5)
        for logger in loggers:
            logger.experiment.add_image("train/augmented_samples", grid, global_step=0)

    def state_dict(self) -> dict[str, Any]:
        return {"count": self.count}


def tensor_to_float(value: Any) -> float:
    return float(value.item() if isinstance(value, torch.Tensor) else value)
