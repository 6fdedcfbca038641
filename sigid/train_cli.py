"""`sigid-train` (Hydra) and `sigid.train()` (Python): compose the config, run it, report.

Named ``train_cli`` rather than ``train``: a submodule ``sigid.train`` would replace the public
function `sigid.train` as an attribute of the package once imported.
"""

from __future__ import annotations

import logging
import sys
import time
from datetime import datetime
from pathlib import Path

import hydra
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig, open_dict
from omegaconf.errors import OmegaConfBaseException

from sigid.errors import hide_dependency_noise, one_line, quiet_dependency_noise
from sigid.runs.axes import register_label_resolver
from sigid.runs.folder import FolderTaken, check_new_run_dir
from sigid.runs.records import override_list, write_run_record
from sigid.runs.status import write_status
from sigid.tasks.build import task_class
from sigid.tasks.schema import check_config
from sigid.training.precision import register_precision_resolver
from sigid.training.run import TrainResult, run
from sigid.training.summary import format_metrics

log = logging.getLogger(__name__)
# The config's resolvers (a job's label, the CPU's precision), so that it resolves wherever it
# is read: `sigid-train --cfg job --resolve` too
register_label_resolver()
register_precision_resolver()


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
    check_config(cfg, task_class(cfg))  # as a bad override: refused before any folder is made
    run_dir = Path(cfg.hydra.run.dir)
    if not any(o.startswith("hydra.run.dir=") for o in overrides or []):
        stamp = datetime.now().strftime("%Y-%m-%d/%H-%M-%S-%f")
        run_dir = Path("outputs") / "api" / stamp
    run_dir = run_dir.resolve()
    task = [o for o in overrides or [] if not o.startswith("hydra.")]
    check_new_run_dir(run_dir, resume=cfg.get("ckpt_path"), overrides=task)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(run_dir)
        cfg.hydra.job.name = "train"
    write_run_record(run_dir, cfg, task)
    HydraConfig.instance().set_config(cfg)
    start = time.perf_counter()
    output_dir = Path(cfg.paths.output_dir)
    try:
        result = run(cfg)
    except BaseException as err:  # recorded as sigid-train records it, and raised to the caller
        if not isinstance(err, FolderTaken):
            write_status(output_dir, start, err, debug=cfg.get("debug_run"))
        raise
    finally:
        HydraConfig.instance().cfg = None
    write_status(output_dir, start, debug=cfg.get("debug_run"))
    return result


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
        write_status(output_dir, start, err, debug=cfg.get("debug_run"))
        if isinstance(err, SystemExit) and not err.code:  # Lightning's SIGTERM exit: code None
            raise SystemExit(1) from err
        raise
    except Exception as err:
        # The traceback for train.log only (INFO: the console shows WARNING and up); the
        # console gets one line below, or the traceback itself for an unexpected error.
        log.info("run failed", exc_info=err)
        if not isinstance(err, FolderTaken):  # nothing is written into another run's folder
            write_status(output_dir, start, err, debug=cfg.get("debug_run"))
        clean = isinstance(err, (ValueError, OSError))  # bad input or config: one line
        if multirun:  # recorded, and the sweep goes on (it exits 1 at the end)
            message = f"{err}" if clean else f"{type(err).__name__}: {err}"
            print(f"sigid-train: job {output_dir.name} failed: {message}", file=sys.stderr)
            return None
        if clean:
            print(f"sigid-train: error: {err}", file=sys.stderr)
            raise SystemExit(1) from err
        raise
    write_status(output_dir, start, debug=cfg.get("debug_run"))
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
