"""One real training epoch of the `cedar_snn` recipe, its wall time split into phases.

The run is `sigid.training.run.run`'s own sequence (the config's Trainer, callbacks, logger and
checkpoints; the datamodule prepared and set up; fit; test of the best checkpoint) with
``trainer.max_epochs=1``, on the default synthetic data or what ``--data`` overrides say
(``data=cedar data.root=PATH``). `PhaseProfiler`, a Lightning profiler, sums the actions
Lightning already brackets:

- data: ``[_TrainingEpochLoop].train_dataloader_next``, waiting for the next training batch
  (augmentation, pair building and collate when ``num_workers: 0``);
- step: ``run_training_batch``, forward, loss, backward and optimizer step;
- validation: from the first ``on_validation_start`` hook to the module's
  ``on_validation_end``: the validation batches, their forward passes and the epoch's EER, less
  the checkpoint writes that happen inside it;
- checkpoint: ``ModelCheckpoint``'s hooks (writing best.ckpt and last.ckpt);
- callbacks: every other callback hook outside validation (the epoch line, the metric history,
  the sample grid, the learning-rate monitor);
- other: the rest of ``trainer.fit``: Lightning's loop, logging, the fit's start and end.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.profilers import Profiler
from omegaconf import DictConfig, open_dict

from sigid.bench.config import compose_config
from sigid.bench.timing import global_torch_settings, quiet_fit, synchronize
from sigid.tasks.build import build_datamodule, build_module
from sigid.training.run import build_trainer
from sigid.training.summary import best_checkpoint

# The recipe an epoch trains, and its data unless `--data` names other data.
RECIPE: tuple[str, ...] = ("experiment=cedar_snn", "data=synthetic")
PHASES: tuple[str, ...] = ("data", "step", "validation", "checkpoint", "callbacks", "other")
# The actions of `PhaseProfiler` (Lightning's names).
DATA_ACTION = "[_TrainingEpochLoop].train_dataloader_next"
STEP_ACTION = "run_training_batch"
CHECKPOINT_PREFIX = "[Callback]ModelCheckpoint"


class PhaseProfiler(Profiler):
    """Seconds of a fit per phase (module doc), from the actions Lightning profiles. Prints
    nothing: `seconds` holds the sums. On cuda the clock waits for the device at each reading."""

    def __init__(self, device: str = "cpu") -> None:
        super().__init__()
        self.device = torch.device(device)
        self.seconds: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)
        self._open: dict[str, float] = {}
        self._validation_start: float | None = None
        self._checkpoint_in_validation = 0.0

    def _now(self) -> float:
        synchronize(self.device)
        return time.perf_counter()

    def start(self, action_name: str) -> None:
        now = self._now()
        if self._validation_start is None and action_name.endswith(".on_validation_start"):
            self._validation_start, self._checkpoint_in_validation = now, 0.0
        self._open[action_name] = now

    def stop(self, action_name: str) -> None:
        now = self._now()
        started = self._open.pop(action_name, None)
        if started is None:
            return
        elapsed = now - started
        validating = self._validation_start is not None
        if action_name == DATA_ACTION:
            self._add("data", elapsed)
        elif action_name == STEP_ACTION:
            self._add("step", elapsed)
        elif action_name.startswith(CHECKPOINT_PREFIX):
            self._add("checkpoint", elapsed)
            if validating:
                self._checkpoint_in_validation += elapsed
        elif action_name.startswith("[Callback]") and not validating:
            self._add("callbacks", elapsed)
        if (
            validating
            and action_name.startswith("[LightningModule]")
            and action_name.endswith(".on_validation_end")
        ):
            spent = now - self._validation_start - self._checkpoint_in_validation
            self._add("validation", spent)
            self._validation_start = None

    def _add(self, phase: str, seconds: float) -> None:
        self.seconds[phase] += seconds
        self.counts[phase] += 1

    def summary(self) -> str:
        return ""

    def teardown(self, stage: str | None) -> None:  # nothing written, nothing to close
        pass


def epoch_config(device: str, output_dir: Path, data: Sequence[str]) -> DictConfig:
    """The recipe's `train` config for one epoch on `device`, writing into `output_dir`, with
    `data` (Hydra overrides) after the recipe's; callbacks, logger and checkpoints as configured,
    no progress bar."""
    overrides = [
        *RECIPE,
        *data,
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
    ]
    return compose_config(device, output_dir, overrides, quiet=False)


def measure_epoch(cfg: DictConfig, device: torch.device) -> dict[str, Any]:
    """Train one epoch of `cfg` (then test its best checkpoint when ``cfg.test``), as
    `sigid.training.run.run` does; seconds per phase and what the epoch held."""
    with open_dict(cfg):
        cfg.trainer.profiler = {"_target_": f"{__name__}.PhaseProfiler", "device": device.type}
    Path(cfg.paths.output_dir).mkdir(parents=True, exist_ok=True)
    with global_torch_settings(), quiet_fit(*QUIET):
        L.seed_everything(cfg.seed, workers=True, verbose=False)  # as a run seeds
        trainer, _, _ = build_trainer(cfg)
        start = time.perf_counter()
        datamodule = build_datamodule(cfg)
        datamodule.prepare_data()
        datamodule.setup("fit")
        setup_s = time.perf_counter() - start
        module = build_module(cfg, datamodule)
        start = time.perf_counter()
        trainer.fit(module, datamodule=datamodule)
        fit_s = time.perf_counter() - start
        test_s = None
        if cfg.get("test", True):
            best = best_checkpoint(trainer)
            start = time.perf_counter()
            trainer.test(module, datamodule=datamodule, ckpt_path=best, verbose=False)
            test_s = time.perf_counter() - start
    profiler: PhaseProfiler = trainer.profiler
    phases = {name: profiler.seconds.get(name, 0.0) for name in PHASES[:-1]}
    phases["other"] = max(fit_s - sum(phases.values()), 0.0)
    return {
        "recipe": list(RECIPE[:1]),
        "data": {
            "layout": str(cfg.data.layout),
            "root": None if cfg.data.root is None else str(cfg.data.root),
            "num_workers": int(cfg.data.num_workers),
            "train_samples": len(datamodule.samples["train"]),
            "val_pairs": len(datamodule.pairs["val"]),
            "test_pairs": len(datamodule.pairs["test"]),
        },
        "batches": {
            "train": profiler.counts.get("step", 0),
            "val": len(datamodule.val_dataloader()),
        },
        "counts": {name: profiler.counts.get(name, 0) for name in PHASES[:-1]},
        "setup_s": setup_s,
        "fit_s": fit_s,
        "test_s": test_s,
        "seconds": phases,
        "share": {name: value / fit_s for name, value in phases.items()},
    }


# A one-epoch fit's expected warnings: no loader workers, fewer batches than the log interval.
QUIET = (r".*does not have many workers", r".*smaller than the logging interval")
