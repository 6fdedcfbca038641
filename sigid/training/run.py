"""`run(cfg)`: train and test one configuration, the body of every `sigid-train` job."""

from __future__ import annotations

import logging
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.errors import InstantiationException
from lightning.pytorch.callbacks import LearningRateMonitor
from omegaconf import DictConfig

from sigid.atomic import write_json
from sigid.data.datamodules import SignatureDataModule
from sigid.errors import one_line
from sigid.runs.axes import register_label_resolver
from sigid.runs.folder import check_new_run_dir
from sigid.runs.status import write_running
from sigid.tasks import SiameseModule
from sigid.tasks.build import build_datamodule, build_module
from sigid.training.allocator import keep_freed_memory
from sigid.training.callbacks import tensor_to_float
from sigid.training.precision import register_precision_resolver
from sigid.training.seeding import RandomStreams
from sigid.training.settings import check_monitored, check_resumable, check_run, config_entries
from sigid.training.summary import best_checkpoint, epoch_history, log_data, log_hparams, summarize
from sigid.training.transfer import init_from
from sigid.training.writer_branch import pretrain_writer_branch

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a run leaves behind: final metrics (as ``metrics.json``), the best checkpoint, the
    run folder, and the metrics of every epoch (as ``history.json``)."""

    metrics: dict[str, Any]
    checkpoint: Path | None
    output_dir: Path
    history: list[dict[str, float]] = field(default_factory=list)


def run(cfg: DictConfig) -> TrainResult:
    """Train and test one configuration; the body of every `sigid-train` job."""
    start = time.perf_counter()
    output_dir, resume = Path(cfg.paths.output_dir), cfg.get("ckpt_path")
    # paths.output_dir may name another folder than the one Hydra checked (hydra.run.dir)
    check_new_run_dir(output_dir, option="paths.output_dir", resume=resume)
    output_dir.mkdir(parents=True, exist_ok=True)
    check_run(cfg)  # before any data is read
    L.seed_everything(cfg.seed, workers=True, verbose=False)  # the seed is in .hydra/config.yaml
    trainer, loggers, callbacks = build_trainer(cfg)  # a bad trainer setting fails before data
    kept = bool(cfg.get("keep_freed_memory", False)) and keep_freed_memory()
    log.info(
        "precision %s, channels_last %s, compile %s, freed memory kept %s",
        cfg.trainer.precision,
        cfg.model.get("channels_last", False),
        cfg.model.get("compile", False),
        kept,
    )
    datamodule = build_datamodule(cfg)
    datamodule.prepare_data()
    datamodule.setup("fit")
    module = build_module(cfg, datamodule)
    if resume:  # weights, optimizer, epoch and callbacks all come from the checkpoint
        check_resumable(module, resume)  # before split.json: a refusal changes nothing
    write_running(output_dir, cfg.get("debug_run"))  # if this process dies without a word
    write_json(output_dir / "split.json", datamodule.split_manifest())
    log_data(datamodule)
    started = {} if resume else _starting_weights(cfg, module, datamodule)
    _fit(trainer, module, datamodule, resume)

    checkpoint = best_checkpoint(trainer)
    metrics: dict[str, Any] = {k: tensor_to_float(v) for k, v in trainer.callback_metrics.items()}
    if cfg.get("test", True):
        tested = trainer.test(module, datamodule=datamodule, ckpt_path=checkpoint, verbose=False)
        metrics.update({k: float(v) for k, v in tested[0].items()})
    history = epoch_history(callbacks)
    summary = summarize(cfg, metrics, history, start, checkpoint, resume, started)
    if trainer.is_global_zero:  # DDP: every rank has the same synced metrics; one writes them
        write_json(output_dir / "metrics.json", summary)
        log_hparams(loggers, cfg, summary)
    return TrainResult(summary, checkpoint, output_dir, history)


def _starting_weights(
    cfg: DictConfig, module: L.LightningModule, datamodule: SignatureDataModule
) -> dict[str, Any]:
    """A new run's weights before the fit: copied from ``init_from``, and a writer branch
    pretrained; what was done, for ``metrics.json`` (a resumed run has both in its checkpoint)."""
    started: dict[str, Any] = {}
    if cfg.get("init_from"):
        started["init_from"] = init_from(module, cfg.init_from)
        copied = started["init_from"]
        log.info("weights from %s: %d tensors", copied["checkpoint"], copied["copied"])
    if _frozen_branch(module):
        started["writer_branch_pretraining"] = pretrain_writer_branch(
            module, datamodule, cfg.trainer
        )
        log.info("writer branch pretrained: %s", started["writer_branch_pretraining"])
    return started


def _frozen_branch(module: L.LightningModule) -> bool:
    return isinstance(module, SiameseModule) and module.branch_pretrain_epochs > 0


def _fit(
    trainer: L.Trainer,
    module: L.LightningModule,
    datamodule: SignatureDataModule,
    resume: str | None,
) -> None:
    """`trainer.fit`, from the checkpoint `resume` names if any, without the warnings that
    this run expects."""
    with warnings.catch_warnings():
        if resume:  # the run's own checkpoints, which it goes on writing
            warnings.filterwarnings("ignore", message=r"Checkpoint directory .* not empty")
        # bf16-mixed: the summary counts the parameters' float32 bytes, which is what they hold
        warnings.filterwarnings("ignore", message=r"Precision .* not supported by the model summ")
        if _frozen_branch(module):  # the frozen branch stays in eval mode on purpose
            warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume or None)


def build_trainer(cfg: DictConfig) -> tuple[L.Trainer, list, list]:
    """The run's Trainer, loggers and callbacks; a setting Lightning refuses (a precision, a
    device count) is a one-line ValueError naming the config group."""
    group = "logger"
    register_label_resolver()  # conf/logger/tensorboard.yaml names a sweep's job by it
    register_precision_resolver()  # conf/trainer/cpu.yaml's precision
    try:
        loggers = [hydra.utils.instantiate(c) for c in config_entries(cfg, "logger").values()]
        group = "callbacks"
        named = {k: hydra.utils.instantiate(c) for k, c in config_entries(cfg, "callbacks").items()}
        check_monitored(cfg, named)
        callbacks = list(named.values())
        if not loggers:  # the learning rate goes to a logger; without one Lightning refuses it
            callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
        callbacks.append(RandomStreams())  # every run resumes exactly: not a setting
        group = "trainer"
        bar = cfg.trainer.get("enable_progress_bar")
        trainer = hydra.utils.instantiate(
            cfg.trainer,
            callbacks=callbacks,
            logger=loggers or False,
            enable_progress_bar=sys.stderr.isatty() if bar is None else bar,  # null: a terminal
        )
    except InstantiationException as err:
        cause = err.__cause__ or err
        raise ValueError(f"{group}: {one_line(cause, limit=None)}") from err
    return trainer, loggers, callbacks
