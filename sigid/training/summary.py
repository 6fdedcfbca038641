"""What a finished run reports: ``metrics.json``'s summary, TensorBoard's HPARAMS, the
terminal table, and the data it trained on for ``train.log``."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import lightning as L
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData
from torch.utils.tensorboard.summary import hparams

from sigid.atomic import write_text
from sigid.data.datamodules import SignatureDataModule
from sigid.runs.axes import swept_settings

log = logging.getLogger(__name__)


def log_data(datamodule: SignatureDataModule) -> None:
    """What the run trains on, for train.log: the splits' sizes and every file left out."""
    for name, part in datamodule.split_manifest().items():
        if name == "extra":  # the extra collections' records: their writers are in "train"
            continue
        log.info("data: %s: %d writers, %d files", name, len(part["writers"]), len(part["files"]))
    table = getattr(datamodule, "table", None)
    for skipped in getattr(table, "skipped", []):
        log.info("data: skipped %s: %s", skipped.path, skipped.reason)


def best_checkpoint(trainer: L.Trainer) -> Path | None:
    """The best validation checkpoint (of the checkpoint callback that monitors a metric; the
    one that keeps the last epoch monitors none)."""
    for callback in trainer.callbacks:
        if (
            isinstance(callback, ModelCheckpoint)
            and callback.monitor is not None
            and callback.best_model_path
        ):
            return Path(callback.best_model_path)
    return None


def epoch_history(callbacks: list) -> list[dict[str, float]]:
    """Every epoch's metrics, in order, as the `MetricHistory` callback kept them."""
    history = next((c.epochs for c in callbacks if hasattr(c, "epochs")), {})
    return [history[epoch] for epoch in sorted(history)]


def summarize(
    cfg: DictConfig,
    metrics: dict[str, Any],
    history: list[dict[str, float]],
    start: float,
    checkpoint: Path | None = None,
    resume: str | None = None,
    started: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``metrics.json``: final test metrics, the best validation value of the monitored metric
    and its epoch, the best checkpoint, and how the run started (`started`: init_from, the
    writer branch's pretraining; `resume`: the checkpoint it resumed from), and the precision it
    trained in, as resolved."""
    monitor, mode = cfg.model.monitor, cfg.model.monitor_mode
    scored = [row for row in history if monitor in row]
    best = (max if mode == "max" else min)(scored, key=lambda r: r[monitor]) if scored else None
    out: dict[str, Any] = {k: v for k, v in sorted(metrics.items()) if k.startswith("test/")}
    out.update(
        {
            "monitor": monitor,
            "val_best": best[monitor] if best else None,
            "best_epoch": int(best["epoch"]) if best else None,
            "epochs": len(history),
            "wall_time_s": round(time.perf_counter() - start, 2),
        }
    )
    if best:
        out.update({f"best_{k}": v for k, v in best.items() if k.startswith("val/")})
    out["checkpoint"] = str(checkpoint) if checkpoint else None
    out["precision"] = str(cfg.trainer.precision)  # as resolved: cpu.yaml's follows the CPU
    if cfg.get("debug_run"):  # never to be taken for a result
        out["debug_run"] = cfg.debug_run
    started = started or {}
    if "init_from" in started:
        out["init_from"] = started["init_from"]
    if resume:
        out["resumed_from"] = str(Path(resume).resolve())
    if "writer_branch_pretraining" in started:
        out["writer_branch_pretraining"] = started["writer_branch_pretraining"]
    return out


def log_hparams(loggers: list, cfg: DictConfig, summary: dict[str, Any]) -> None:
    """Fill TensorBoard's HPARAMS tab: this run's hyperparameters next to its final metrics,
    the settings its sweep varies first (`write_hparams`)."""
    config = _flatten(OmegaConf.to_container(cfg.model, resolve=True), "model")
    config.update(_flatten(OmegaConf.to_container(cfg.data, resolve=True), "data"))
    config["trainer.max_epochs"] = cfg.trainer.max_epochs
    config["trainer.precision"] = str(cfg.trainer.precision)
    config["seed"] = cfg.seed
    config["init_from"] = str(cfg.get("init_from"))  # pretrained or not: one column
    config["experiment"] = str(_choice("experiment"))
    swept = swept_settings(cfg.paths.output_dir)  # a group's choice (model=cnn) by its name
    params = {key: config.get(key, value) for key, value in swept.items()} | config
    scores = {f"hp/{k.replace('/', '_')}": v for k, v in summary.items() if k.startswith("test/")}
    if summary.get("val_best") is not None:  # named after its metric: val/loss or val/eer
        scores[f"hp/best_{summary['monitor'].replace('/', '_')}"] = summary["val_best"]
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            write_hparams(logger, params, scores, differing=set(swept))
            # Lightning wrote hparams.yaml at the first save, before these existed
            write_text(Path(logger.log_dir) / "hparams.yaml", OmegaConf.to_yaml(params))
            logger.finalize("success")


@rank_zero_only
def write_hparams(
    logger: TensorBoardLogger,
    params: dict[str, Any],
    metrics: dict[str, float],
    differing: set[str],
) -> None:
    """What `TensorBoardLogger.log_hyperparams` writes, with the `differing` hyperparameters
    marked so: HPARAMS lists those first, then the rest by name (it would list all by name,
    the swept ones among dozens of settings every run shares)."""
    if not metrics:  # as Lightning: no HPARAMS entry without a metric
        return
    logger.log_metrics(metrics)
    experiment, start, end = hparams(params, metrics)
    plugin = experiment.value[0].metadata.plugin_data
    data = HParamsPluginData.FromString(plugin.content)
    for info in data.experiment.hparam_infos:
        info.differs = info.name in differing
    plugin.content = data.SerializeToString()
    for part in (experiment, start, end):
        logger.experiment.file_writer.add_summary(part)


def _choice(group: str) -> Any:
    """The option chosen for a config group (``experiment=cedar_snn``), None without Hydra."""
    try:
        return HydraConfig.get().runtime.choices.get(group)
    except ValueError:  # no Hydra config set: run(cfg) called directly
        return None


def _flatten(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}"))
        return out
    if isinstance(value, (list, tuple)):
        return {prefix: str(list(value))}
    return {prefix: value if isinstance(value, (int, float, str, bool)) else str(value)}


def format_metrics(summary: dict[str, Any]) -> str:
    """A short table of a run's metrics for the terminal."""
    rows = [(k, v) for k, v in summary.items() if k.startswith("test/")]
    rows += [
        (f"best {summary['monitor']}", summary["val_best"]),
        ("best epoch", summary["best_epoch"]),
    ]
    rows.append(("wall time (s)", summary["wall_time_s"]))
    width = max(len(k) for k, _ in rows)
    return "\n".join(
        f"  {k:<{width}}  {v:.4f}" if isinstance(v, float) else f"  {k:<{width}}  {v}"
        for k, v in rows
    )
