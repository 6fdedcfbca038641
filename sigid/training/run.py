"""`run(cfg)`: train and test one configuration, the body of every `sigid-train` job."""

from __future__ import annotations

import logging
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
from sigid.errors import one_line
from sigid.runs.folder import check_new_run_dir
from sigid.tasks import SiameseModule
from sigid.tasks.build import build_datamodule, build_module
from sigid.training.callbacks import tensor_to_float
from sigid.training.settings import check_monitor, check_monitored, check_resumable, config_entries
from sigid.training.summary import best_checkpoint, log_data, log_hparams, summarize
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
    output_dir = Path(cfg.paths.output_dir)
    resume = cfg.get("ckpt_path")
    # paths.output_dir may name another folder than the one Hydra checked (hydra.run.dir)
    check_new_run_dir(output_dir, option="paths.output_dir", resume=resume)
    output_dir.mkdir(parents=True, exist_ok=True)
    seed = cfg.get("seed")
    if type(seed) is not int:  # the split needs it too: a random seed would change the writers
        raise ValueError(
            f"seed must be a whole number (it seeds the weights and the split), got {seed!r}"
        )
    L.seed_everything(seed, workers=True, verbose=False)  # the seed is in .hydra/config.yaml
    for key in ("init_from", "ckpt_path"):  # before preparing any data
        if cfg.get(key) and not Path(cfg[key]).is_file():
            raise ValueError(f"{cfg[key]}: checkpoint not found ({key})")
    if resume and Path(resume).resolve().parent != (output_dir / "checkpoints").resolve():
        # Lightning would carry the other folder's best checkpoint over without its score
        raise ValueError(
            f"{resume}: ckpt_path resumes a run in its own folder (hydra.run.dir=<that run>); "
            "to start a new run from its weights, use init_from"
        )
    check_monitor(cfg)
    epochs = cfg.trainer.get("max_epochs")
    if type(epochs) is not int or epochs < 1:  # 0 would "test" an untrained model
        raise ValueError(f"trainer.max_epochs must be a whole number >= 1, got {epochs!r}")
    if str(cfg.trainer.get("strategy") or "").startswith("ddp") and "Siamese" in cfg.model._target_:
        raise ValueError(
            f"trainer.strategy={cfg.trainer.strategy} trains the CNN classifier only: the Siamese "
            "network's writer batches and validation EER are computed in one process; train it "
            "on one device (trainer=gpu), several runs side by side in a multirun"
        )
    trainer, loggers, callbacks = build_trainer(cfg)  # a bad trainer setting fails before data

    datamodule = build_datamodule(cfg)
    datamodule.prepare_data()
    datamodule.setup("fit")
    module = build_module(cfg, datamodule)
    if resume:  # weights, optimizer, epoch and callbacks all come from the checkpoint
        check_resumable(module, resume)  # before split.json: a refusal changes nothing
    write_json(output_dir / "split.json", datamodule.split_manifest())
    log_data(datamodule)
    initialised = None
    if cfg.get("init_from") and not resume:
        initialised = init_from(module, cfg.init_from)
        log.info("weights from %s: %d tensors", initialised["checkpoint"], initialised["copied"])
    pretraining = None
    frozen = isinstance(module, SiameseModule) and module.branch_pretrain_epochs > 0
    if frozen and not resume:  # a resumed run's branch comes trained, in its checkpoint
        pretraining = pretrain_writer_branch(module, datamodule, cfg.trainer)
        log.info("writer branch pretrained: %s", pretraining)

    with warnings.catch_warnings():
        if resume:  # the run's own checkpoints, which it goes on writing
            warnings.filterwarnings("ignore", message=r"Checkpoint directory .* not empty")
        if frozen:  # the frozen branch stays in eval mode on purpose
            warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume or None)

    checkpoint = best_checkpoint(trainer)
    metrics: dict[str, Any] = {k: tensor_to_float(v) for k, v in trainer.callback_metrics.items()}
    if cfg.get("test", True):
        tested = trainer.test(module, datamodule=datamodule, ckpt_path=checkpoint, verbose=False)
        metrics.update({k: float(v) for k, v in tested[0].items()})
    history = next((c.epochs for c in callbacks if hasattr(c, "epochs")), {})
    summary = summarize(cfg, metrics, [history[e] for e in sorted(history)], start)
    summary["checkpoint"] = str(checkpoint) if checkpoint else None
    if initialised is not None:
        summary["init_from"] = initialised
    if resume:
        summary["resumed_from"] = str(Path(resume).resolve())
    if pretraining is not None:
        summary["writer_branch_pretraining"] = pretraining
    write_json(output_dir / "metrics.json", summary)
    log_hparams(loggers, cfg, summary)
    return TrainResult(summary, checkpoint, output_dir, [history[e] for e in sorted(history)])


def build_trainer(cfg: DictConfig) -> tuple[L.Trainer, list, list]:
    """The run's Trainer, loggers and callbacks; a setting Lightning refuses (a precision, a
    device count) is a one-line ValueError naming the config group."""
    group = "logger"
    try:
        loggers = [hydra.utils.instantiate(c) for c in config_entries(cfg, "logger").values()]
        group = "callbacks"
        named = {k: hydra.utils.instantiate(c) for k, c in config_entries(cfg, "callbacks").items()}
        check_monitored(cfg, named)
        callbacks = list(named.values())
        if not loggers:  # the learning rate goes to a logger; without one Lightning refuses it
            callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
        group = "trainer"
        trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    except InstantiationException as err:
        cause = err.__cause__ or err
        raise ValueError(f"{group}: {one_line(cause, limit=None)}") from err
    return trainer, loggers, callbacks
