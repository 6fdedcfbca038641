"""Training entry point: `sigid-train` (Hydra) and `sigid.train()` (Python) share `run(cfg)`.

Composes the config, builds the DataModule, LightningModule, callbacks, loggers and trainer,
fits, tests the best checkpoint, and writes ``metrics.json`` and ``split.json`` in the run folder.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException, InstantiationException
from hydra.types import RunMode
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from sigid.atomic import write_json, write_text
from sigid.callbacks import tensor_to_float
from sigid.data.datamodules import ClassFolderDataModule, PairDataModule, SignatureDataModule
from sigid.errors import hide_dependency_noise, one_line, quiet_dependency_noise
from sigid.run_settings import check_monitor, check_monitored, check_resumable, config_entries
from sigid.rundir import FolderTaken, check_new_run_dir
from sigid.tasks import ClassifierModule, SiameseModule
from sigid.tasks.transfer import init_from
from sigid.tasks.writer_branch import pretrain_writer_branch

log = logging.getLogger(__name__)

# Which data each LightningModule trains on.
DATAMODULES: dict[str, type[SignatureDataModule]] = {
    "sigid.tasks.classifier.ClassifierModule": ClassFolderDataModule,
    "sigid.tasks.siamese.SiameseModule": PairDataModule,
}
# Keys of conf/model/*.yaml read by train.py, not passed to the LightningModule.
RUN_KEYS = ("monitor", "monitor_mode")


@dataclass
class TrainResult:
    """What a run leaves behind: final metrics (as ``metrics.json``), the best checkpoint, the
    run folder, and the metrics of every epoch (as ``history.json``)."""

    metrics: dict[str, Any]
    checkpoint: Path | None
    output_dir: Path
    history: list[dict[str, float]] = field(default_factory=list)


def build_datamodule(cfg: DictConfig) -> SignatureDataModule:
    target = cfg.model._target_
    if target not in DATAMODULES:
        raise ValueError(f"no DataModule known for model {target!r}")
    data = OmegaConf.to_container(cfg.data, resolve=True)
    return DATAMODULES[target](**data)


def build_module(cfg: DictConfig, datamodule: SignatureDataModule) -> L.LightningModule:
    kwargs = OmegaConf.to_container(cfg.model, resolve=True)
    target = kwargs.pop("_target_")
    for key in RUN_KEYS:
        kwargs.pop(key, None)
    kwargs["preprocessing"] = datamodule.preprocess
    try:
        if target.endswith("ClassifierModule"):
            return ClassifierModule(
                num_classes=datamodule.num_classes, class_names=datamodule.class_names, **kwargs
            )
        if kwargs.get("writer_loss", 0) > 0:
            kwargs["num_writers"] = datamodule.writer_classes
        if kwargs.get("writer_branch"):
            kwargs["branch_writers"] = len(datamodule.train_writers)
        return SiameseModule(**kwargs)
    except TypeError as err:  # a key the network does not take: `+model.lr=...`
        unknown = re.search(r"unexpected keyword argument '(\w+)'", str(err))
        if unknown is None:
            raise
        raise ValueError(
            f"model.{unknown.group(1)}: not a setting of this model (see conf/model/; the "
            "learning rate is model.optimizer.lr)"
        ) from err


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
    _log_data(datamodule)
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

    checkpoint = _best_checkpoint(trainer)
    metrics: dict[str, Any] = {k: tensor_to_float(v) for k, v in trainer.callback_metrics.items()}
    if cfg.get("test", True):
        tested = trainer.test(module, datamodule=datamodule, ckpt_path=checkpoint, verbose=False)
        metrics.update({k: float(v) for k, v in tested[0].items()})
    history = next((c.epochs for c in callbacks if hasattr(c, "epochs")), {})
    summary = _summary(cfg, metrics, [history[e] for e in sorted(history)], start)
    summary["checkpoint"] = str(checkpoint) if checkpoint else None
    if initialised is not None:
        summary["init_from"] = initialised
    if resume:
        summary["resumed_from"] = str(Path(resume).resolve())
    if pretraining is not None:
        summary["writer_branch_pretraining"] = pretraining
    write_json(output_dir / "metrics.json", summary)
    _log_hparams(loggers, cfg, summary)
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


def _log_data(datamodule: SignatureDataModule) -> None:
    """What the run trains on, for train.log: the splits' sizes and every file left out."""
    for name, part in datamodule.split_manifest().items():
        log.info("data: %s: %d writers, %d files", name, len(part["writers"]), len(part["files"]))
    table = getattr(datamodule, "table", None)
    for skipped in getattr(table, "skipped", []):
        log.info("data: skipped %s: %s", skipped.path, skipped.reason)


def _best_checkpoint(trainer: L.Trainer) -> Path | None:
    for callback in trainer.callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.best_model_path:
            return Path(callback.best_model_path)
    return None


def _summary(
    cfg: DictConfig, metrics: dict[str, Any], history: list[dict[str, float]], start: float
) -> dict[str, Any]:
    """Final test metrics, the best validation value of the monitored metric and its epoch."""
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
    return out


def _log_hparams(loggers: list, cfg: DictConfig, summary: dict[str, Any]) -> None:
    """Fill TensorBoard's HPARAMS tab: this run's hyperparameters next to its final metrics."""
    params = _flatten(OmegaConf.to_container(cfg.model, resolve=True), "model")
    params.update(_flatten(OmegaConf.to_container(cfg.data, resolve=True), "data"))
    params["trainer.max_epochs"] = cfg.trainer.max_epochs
    params["seed"] = cfg.seed
    params["init_from"] = str(cfg.get("init_from"))  # pretrained or not: one column
    params["experiment"] = str(_choice("experiment"))
    scores = {f"hp/{k.replace('/', '_')}": v for k, v in summary.items() if k.startswith("test/")}
    if summary.get("val_best") is not None:  # named after its metric: val/loss or val/eer
        scores[f"hp/best_{summary['monitor'].replace('/', '_')}"] = summary["val_best"]
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(params, metrics=scores)
            # Lightning wrote hparams.yaml at the first save, before these existed
            write_text(Path(logger.log_dir) / "hparams.yaml", OmegaConf.to_yaml(params))
            logger.finalize("success")


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


@quiet_dependency_noise()
def train(overrides: list[str] | None = None) -> TrainResult:
    """Compose the same config as `sigid-train` from Python (a notebook, a loop) and run it.

    Each call gets a fresh run folder under ``outputs/`` unless ``hydra.run.dir`` is overridden.
    Errors are raised (ValueError for bad settings or data, one line); Ctrl-C during training
    ends as Lightning ends it, with ``SystemExit(1)`` (not KeyboardInterrupt), and the run is
    recorded as interrupted, to resume with ``ckpt_path``.
    """
    overrides = override_list(overrides)
    try:
        with initialize_config_module("sigid.conf", version_base="1.3"):
            cfg = compose("train", overrides=list(overrides or []), return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as err:
        raise ValueError(f"config overrides: {one_line(err, limit=None)}") from err
    run_dir = Path(cfg.hydra.run.dir)
    if not any(o.startswith("hydra.run.dir=") for o in overrides or []):
        stamp = datetime.now().strftime("%Y-%m-%d/%H-%M-%S-%f")
        run_dir = Path("outputs") / "api" / stamp
    run_dir = run_dir.resolve()
    # as sigid-train's runs: the overrides (which evaluation starts from) and the config
    task = [o for o in overrides or [] if not o.startswith("hydra.")]
    check_new_run_dir(run_dir, resume=cfg.get("ckpt_path"), overrides=task)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(run_dir)
        cfg.hydra.job.name = "train"
    write_text(run_dir / ".hydra" / "overrides.yaml", OmegaConf.to_yaml(OmegaConf.create(task)))
    config = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    write_text(run_dir / ".hydra" / "config.yaml", OmegaConf.to_yaml(config))
    HydraConfig.instance().set_config(cfg)
    start = time.perf_counter()
    output_dir = Path(cfg.paths.output_dir)
    try:
        result = run(cfg)
    except BaseException as err:  # recorded as sigid-train records it, and raised to the caller
        if not isinstance(err, FolderTaken):
            write_status(output_dir, start, err)
        raise
    finally:
        HydraConfig.instance().cfg = None
    write_status(output_dir, start)
    return result


def write_status(output_dir: Path, start: float, error: BaseException | None = None) -> None:
    """The run's ``status.json``: ok, failed with the error, or interrupted (Ctrl-C), which the
    fold and sweep summaries report instead of averaging the run."""
    status: dict[str, Any] = {"status": "ok"}
    if isinstance(error, (KeyboardInterrupt, SystemExit)):  # Lightning ends Ctrl-C with exit 1
        status = {"status": "interrupted", "error": "interrupted before it finished"}
    elif error is not None:
        status = {"status": "failed", "error": f"{type(error).__name__}: {error}"}
    status["wall_time_s"] = round(time.perf_counter() - start, 2)
    write_json(output_dir / "status.json", status)


def override_list(overrides: Any) -> list[str]:
    """`overrides` as a list of strings; one string is refused (a list of its characters would
    be read as overrides), and so is anything else that is not a list of strings."""
    if overrides is None:
        return []
    if isinstance(overrides, str) or not all(isinstance(o, str) for o in overrides):
        raise TypeError(
            f"overrides must be a list of strings such as ['data.split.fold=1'], got {overrides!r}"
        )
    return list(overrides)


@hydra.main(config_path="pkg://sigid.conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    """`sigid-train [overrides]`; in a multirun a failing job is recorded, not fatal."""
    hide_dependency_noise()
    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    output_dir = Path(cfg.paths.output_dir)
    start = time.perf_counter()
    try:
        result = run(cfg)
    except (KeyboardInterrupt, SystemExit) as err:
        log.info("run interrupted (%s)", type(err).__name__)
        write_status(output_dir, start, err)
        if isinstance(err, SystemExit) and not err.code:  # Lightning's SIGTERM exit: code None
            raise SystemExit(1) from err
        raise
    except Exception as err:
        # The traceback for train.log only (INFO: the console shows WARNING and up); the
        # console gets one line below, or the traceback itself for an unexpected error.
        log.info("run failed", exc_info=err)
        if not isinstance(err, FolderTaken):  # nothing is written into another run's folder
            write_status(output_dir, start, err)
        clean = isinstance(err, (ValueError, OSError))  # bad input or config: one line
        if multirun:  # recorded, and the sweep goes on (it exits 1 at the end)
            message = f"{err}" if clean else f"{type(err).__name__}: {err}"
            print(f"sigid-train: job {output_dir.name} failed: {message}", file=sys.stderr)
            return None
        if clean:
            print(f"sigid-train: error: {err}", file=sys.stderr)
            raise SystemExit(1) from err
        raise
    write_status(output_dir, start)
    report = "\n".join(
        [
            f"sigid-train: {cfg.model._target_.rsplit('.', 1)[-1]} finished",
            format_metrics(result.metrics),
            f"  run folder: {result.output_dir}",
        ]
    )
    log.info("%s", report)
    print(f"\n{report}")
    return result.metrics.get("val_best")


if __name__ == "__main__":
    main()
