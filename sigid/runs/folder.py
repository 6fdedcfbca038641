"""A run folder is written once: training into a folder that already holds a run's results is
refused.

So is a folder with checkpoints of an unfinished run, unless the new run resumes from one of them
(``ckpt_path``) with the run's own data and model overrides; a folder whose run failed before
writing a checkpoint may be reused. A sweep folder that holds job folders of an earlier sweep is
refused too. Why: docs/design.md, "Run folders are written once".
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from sigid.runs.records import override_group, recorded_overrides, run_record


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
    if not isinstance(status, dict) or not status.get("error"):
        return ""
    return f" (status.json: {status.get('status', 'failed')}: {str(status['error'])[:120]})"


def _training_now(folder: Path) -> int | None:
    """The process training in `folder` now, by its status.json (another live process of this
    machine), else None: a ``running`` status whose process is gone was killed without a word."""
    try:
        status = json.loads((folder / "status.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(status, dict) or status.get("status") != "running":
        return None
    pid = status.get("pid")
    if type(pid) is not int or pid == os.getpid() or status.get("host") != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except OSError:  # alive, another user's
        return pid
    return pid


# Config groups whose overrides a resumed run must repeat: the data (its split), the network.
RUN_IDENTITY = frozenset({"data", "model", "experiment", "seed", "init_from"})


class FolderTaken(ValueError):
    """A run or sweep folder that holds earlier results: nothing may be written into it, not
    even the refused run's status.json."""


def check_new_run_dir(
    folder: str | Path,
    option: str = "hydra.run.dir",
    resume: str | Path | None = None,
    overrides: Sequence[str] | None = None,
) -> None:
    """FolderTaken unless `folder` can take a new run: absent, a folder without another run's
    results in it, or an unfinished run that this one resumes from one of its checkpoints
    (`resume`, the ``ckpt_path`` setting) with the run's own `overrides`, where given. `option`
    is the setting that chooses another folder."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise FolderTaken(f"{folder}: cannot write a run there: it is a file, not a folder")
    found = finished_run(folder)
    if found is None:
        return
    if (training := _training_now(folder)) is not None:
        raise FolderTaken(f"{folder}: a run is training there now (process {training})")
    if found.startswith("checkpoints") and _resumes(folder, resume):
        if overrides is not None:
            _check_same_run(folder, overrides)
        return
    resume_it = ""
    if found.startswith("checkpoints") and (folder / "checkpoints" / "last.ckpt").is_file():
        resume_it = f"resume it (ckpt_path={folder / 'checkpoints' / 'last.ckpt'}), "
    raise FolderTaken(
        f"{folder}: holds {found}; {resume_it}train into another folder ({option}=...) or "
        "remove that one first"
    )


def _check_same_run(folder: Path, overrides: Sequence[str]) -> None:
    """A resumed run goes on with the interrupted run's settings: other data overrides would
    train on another split (test files among those trained on), and Hydra would replace the
    run's record with the new ones."""
    if run_record(folder) is None:
        raise FolderTaken(
            f"{folder}: no record of the interrupted run's overrides (.hydra/overrides.yaml), "
            "so it cannot be resumed safely; train into another folder"
        )
    try:
        recorded = recorded_overrides(folder)
    except ValueError as err:  # a damaged record, named
        raise FolderTaken(f"{err}; the run cannot be resumed safely") from err
    ours, theirs = _run_settings(overrides), _run_settings(recorded)
    if ours != theirs:
        missing = [o for o in theirs if o not in ours]
        extra = [o for o in ours if o not in theirs]
        raise FolderTaken(
            f"{folder}: resuming takes the run's own data, model, experiment, seed and init_from "
            f"overrides; this command lacks {' '.join(missing) or 'none'} and adds "
            f"{' '.join(extra) or 'none'}"
        )


def _run_settings(overrides: Sequence[str]) -> list[str]:
    """The overrides that make a run what it is (its data, network, seed, starting weights);
    the trainer, callbacks and loggers may change on resuming (more epochs, another device)."""
    return sorted(o for o in overrides if override_group(o) in RUN_IDENTITY)


def _resumes(folder: Path, resume: str | Path | None) -> bool:
    """Whether `resume` is a checkpoint of `folder`'s own run."""
    if not resume:
        return False
    return Path(resume).resolve().parent == (folder / "checkpoints").resolve()


def check_new_sweep_dir(folder: str | Path) -> None:
    """FolderTaken unless `folder` can take a new sweep: no run of its own, no job folders."""
    folder = Path(folder)
    check_new_run_dir(folder, option="hydra.sweep.dir")
    if not folder.is_dir():
        return
    jobs = sorted(p.name for p in folder.iterdir() if p.is_dir() and (p / ".hydra").is_dir())
    if jobs:
        raise FolderTaken(
            f"{folder}: holds the jobs of an earlier sweep ({', '.join(jobs)}), which would be "
            "summarised with this one's; sweep into another folder (hydra.sweep.dir=...) or "
            "remove that one first"
        )


class KeepFinishedRuns(Callback):
    """Hydra callback: refuse a run or a sweep folder that holds earlier results, before Hydra
    writes anything into it (``on_job_start`` would be too late: ``.hydra/`` is written)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _refuse(
            lambda: check_new_run_dir(
                config.hydra.run.dir,
                resume=config.get("ckpt_path"),
                overrides=list(config.hydra.overrides.task),
            )
        )

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _refuse(lambda: check_new_sweep_dir(config.hydra.sweep.dir))


def _refuse(check: Callable[[], None]) -> None:
    """sigid-train's one-line error and exit status 1, as for any other bad setting."""
    try:
        check()
    except ValueError as err:
        print(f"sigid-train: error: {err}", file=sys.stderr)
        raise SystemExit(1) from err
