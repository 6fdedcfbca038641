"""A run folder is written once: training into a folder that already holds a run's results is
refused.

A rerun into the same ``hydra.run.dir`` (the README's ``outputs/synth_pretrain``, a repeated
command) would replace the run's ``.hydra/`` record first, so evaluation would rebuild the wrong
data for the checkpoint there; and Lightning would write its checkpoint as ``best-v1.ckpt``
beside the old ``best.ckpt``, the one ``init_from`` and the README use. A folder whose run
failed before writing a checkpoint may be reused; one with checkpoints of an unfinished run is
refused too (they would be mixed up with the new run's), with what to remove. A sweep folder
that holds job folders of an earlier sweep is refused, as their results would be summarised
with the new sweep's.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


def finished_run(folder: str | Path) -> str | None:
    """What in `folder` a new run would clash with (its metrics, or checkpoints of a run that
    did not finish), None if nothing."""
    folder = Path(folder)
    if (folder / "metrics.json").is_file():
        return "a finished run (its metrics.json)"
    if any((folder / "checkpoints").glob("*.ckpt")):
        return f"checkpoints of a run that did not finish{_status(folder)}"
    return None


def _status(folder: Path) -> str:
    try:
        status = json.loads((folder / "status.json").read_text())
    except (OSError, ValueError):
        return ""
    error = status.get("error") if isinstance(status, dict) else None
    return f" (status.json: failed: {str(error)[:120]})" if error else ""


def check_new_run_dir(folder: str | Path, option: str = "hydra.run.dir") -> None:
    """ValueError unless `folder` can take a new run: absent, or a folder without another
    run's results in it. `option` is the setting that chooses another folder."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder}: cannot write a run there: it is a file, not a folder")
    if (found := finished_run(folder)) is not None:
        raise ValueError(
            f"{folder}: holds {found}; train into another folder ({option}=...) or remove "
            "that one first"
        )


def check_new_sweep_dir(folder: str | Path) -> None:
    """ValueError unless `folder` can take a new sweep: no run of its own, no job folders."""
    folder = Path(folder)
    check_new_run_dir(folder, option="hydra.sweep.dir")
    if not folder.is_dir():
        return
    jobs = sorted(p.name for p in folder.iterdir() if p.is_dir() and (p / ".hydra").is_dir())
    if jobs:
        raise ValueError(
            f"{folder}: holds the jobs of an earlier sweep ({', '.join(jobs)}), which would be "
            "summarised with this one's; sweep into another folder (hydra.sweep.dir=...) or "
            "remove that one first"
        )


class KeepFinishedRuns(Callback):
    """Hydra callback: refuse a run or a sweep folder that holds earlier results, before Hydra
    writes anything into it (``on_job_start`` would be too late: ``.hydra/`` is written)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _refuse(lambda: check_new_run_dir(config.hydra.run.dir))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _refuse(lambda: check_new_sweep_dir(config.hydra.sweep.dir))


def _refuse(check: Callable[[], None]) -> None:
    """sigid-train's one-line error and exit status 1, as for any other bad setting."""
    try:
        check()
    except ValueError as err:
        print(f"sigid-train: error: {err}", file=sys.stderr)
        raise SystemExit(1) from err
