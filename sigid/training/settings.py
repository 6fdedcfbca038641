"""Checks of a run's settings that Lightning and Hydra would let through or answer with a
traceback, made before any data is read: every key's type and range (`sigid.tasks.schema`),
the strategy, the checkpoints a run starts or resumes from, the monitored metric, the callbacks'
and loggers' entries. Each refusal is one line that names the setting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from omegaconf import DictConfig

from sigid.runs.folder import FolderTaken
from sigid.tasks.build import task_class
from sigid.tasks.schema import check_config
from sigid.training.transfer import same_kind


def check_run(cfg: DictConfig) -> None:
    """The settings `run` reads before it builds anything."""
    task = task_class(cfg)  # a _target_ that names no sigid task, before data are prepared
    check_config(cfg, task)  # every key's type and range
    for key in ("init_from", "ckpt_path"):
        if cfg.get(key) and not Path(cfg[key]).is_file():
            raise ValueError(f"{cfg[key]}: checkpoint not found ({key})")
    resume = cfg.get("ckpt_path")
    checkpoints = (Path(cfg.paths.output_dir) / "checkpoints").resolve()
    if resume and Path(resume).resolve().parent != checkpoints:
        # Lightning would carry the other folder's best checkpoint over without its score
        raise ValueError(
            f"{resume}: ckpt_path resumes a run in its own folder (hydra.run.dir=<that run>); "
            "to start a new run from its weights, use init_from"
        )
    check_monitor(cfg)
    strategy = str(cfg.trainer.get("strategy") or "")
    if strategy.startswith("ddp"):
        check_distributed(cfg, task, strategy)


def check_distributed(cfg: DictConfig, task: type[L.LightningModule], strategy: str) -> None:
    """DDP for a task that can be split over processes, without the settings that cannot."""
    if not task.distributed:
        raise ValueError(
            f"trainer.strategy={strategy}: {task.__name__} cannot be split over processes; "
            "train it on one device (trainer=gpu), several runs side by side in a multirun"
        )
    branch = cfg.model.get("writer_branch") or {}
    if branch.get("pretrain_epochs"):
        # the pretraining is a one-device Trainer of its own, which each rank would run again
        raise ValueError(
            f"model.writer_branch.pretrain_epochs={branch.pretrain_epochs}: the writer branch "
            f"is pretrained in one process, not under trainer.strategy={strategy}; pretrain "
            "it in a one-device run and start this one from it (init_from=<its checkpoint>)"
        )


def config_entries(cfg: DictConfig, group: str) -> dict[str, DictConfig]:
    """The group's entries to instantiate; one set to null is left out (the template's way to
    turn a default callback or logger off), one without ``_target_`` is refused by name."""
    entries = cfg.get(group) or {}
    buildable = [
        str(k) for k, v in entries.items() if isinstance(v, DictConfig) and "_target_" in v
    ]
    for name, entry in entries.items():
        if entry is not None and (not isinstance(entry, DictConfig) or "_target_" not in entry):
            raise ValueError(
                f"{group}.{name}: not one of this run's {group} ({', '.join(buildable)}), "
                f"so it has no _target_ to build; a default one is changed without '+' "
                f"({group}.<name>.<key>=...) and turned off with {group}.<name>=null"
            )
    return {str(name): entry for name, entry in entries.items() if entry is not None}


# The last part of a metric's name -> whether higher ("max") or lower ("min") is better.
METRIC_DIRECTION = {
    "acc": "max", "acc_top5": "max", "auroc": "max", "acc_best": "max",
    "loss": "min", "eer": "min", "far": "min", "frr": "min", "eer_best": "min",
}  # fmt: skip


def check_monitor(cfg: DictConfig) -> None:
    """model.monitor_mode must fit the metric: with ``min`` on an accuracy the checkpoint
    would keep the worst epoch, and nothing else would say so (min or max: `check_config`)."""
    monitor, mode = cfg.model.get("monitor"), cfg.model.get("monitor_mode")
    better = METRIC_DIRECTION.get(str(monitor).rsplit("/", 1)[-1])
    if better is not None and mode != better:
        raise ValueError(
            f"model.monitor={monitor} is better when {'higher' if better == 'max' else 'lower'}: "
            f"set model.monitor_mode={better}"
        )


def check_monitored(cfg: DictConfig, callbacks: dict[str, Any]) -> None:
    """The checkpoint and early stopping follow model.monitor, which metrics.json, the summary
    and HPARAMS report: a callback watching another metric would test another epoch than the
    one they name. A checkpoint that monitors nothing keeps the last epoch (`last_checkpoint`)."""
    monitor, mode = cfg.model.get("monitor"), cfg.model.get("monitor_mode")
    for name, callback in callbacks.items():
        latest = isinstance(callback, ModelCheckpoint) and callback.monitor is None
        if (
            isinstance(callback, (ModelCheckpoint, EarlyStopping))
            and not latest
            and (callback.monitor != monitor or callback.mode != mode)
        ):
            raise ValueError(
                f"callbacks.{name}: {type(callback).__name__} watches {callback.monitor} "
                f"({callback.mode}), but the run reports model.monitor={monitor} ({mode}); set "
                "model.monitor and model.monitor_mode, which the callbacks follow"
            )


def check_resumable(module: L.LightningModule, path: str | Path) -> None:
    """`ckpt_path` must be a checkpoint of this very network (same kind, same inputs, same
    weights' names and shapes); Lightning's own refusal would be a long traceback. Refused as
    `FolderTaken`: the interrupted run's status.json stays as it was."""
    path = Path(path)
    try:
        source = same_kind(module, path, "resume", "resume with the run's own settings")
    except ValueError as err:
        raise FolderTaken(str(err)) from err
    theirs = {k: tuple(v.shape) for k, v in source.state_dict().items()}
    ours = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    if theirs != ours:
        differ = sorted(set(theirs.items()) ^ set(ours.items()))[:3]
        raise FolderTaken(
            f"{path}: its network differs from this run's ({', '.join(k for k, _ in differ)}, "
            "...); resume with the run's own settings"
        )
