"""A run folder is written once: training into a folder that holds a finished run is refused.

A rerun into the same ``hydra.run.dir`` (the README's ``outputs/synth_pretrain``, a typo'd
command) would replace the run's ``.hydra/`` record before failing, or its checkpoint on
success, and evaluation would then rebuild the wrong data for the checkpoint left there. A
folder whose run failed (no checkpoint, no metrics) may be reused.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


def finished_run(folder: str | Path) -> str | None:
    """What makes `folder` a finished run (its metrics or a checkpoint), None if nothing does."""
    folder = Path(folder)
    if (folder / "metrics.json").is_file():
        return "its metrics.json"
    if any((folder / "checkpoints").glob("*.ckpt")):
        return "a checkpoint"
    return None


def check_new_run_dir(folder: str | Path) -> None:
    """ValueError unless `folder` can take a new run: absent, or a folder without a finished
    run in it."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder}: cannot write a run there: it is a file, not a folder")
    if (found := finished_run(folder)) is not None:
        raise ValueError(
            f"{folder}: holds a finished run ({found}); train into another folder "
            "(hydra.run.dir=...) or remove that one first"
        )


class KeepFinishedRuns(Callback):
    """Hydra callback: refuse a run or a sweep folder that holds finished runs, before Hydra
    writes anything into it (``on_job_start`` would be too late: ``.hydra/`` is written)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _refuse(lambda: check_new_run_dir(config.hydra.run.dir))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        def check() -> None:
            sweep = Path(config.hydra.sweep.dir)
            check_new_run_dir(sweep)
            jobs = sorted(p.name for p in sweep.glob("*") if p.is_dir() and finished_run(p))
            if jobs:
                raise ValueError(
                    f"{sweep}: holds finished runs (jobs {', '.join(jobs)}); sweep into "
                    "another folder (hydra.sweep.dir=...) or remove that one first"
                )

        _refuse(check)


def _refuse(check: Any) -> None:
    """sigid-train's one-line error and exit status 1, as for any other bad setting."""
    try:
        check()
    except ValueError as err:
        print(f"sigid-train: error: {err}", file=sys.stderr)
        raise SystemExit(1) from err
