"""A run's ``status.json``: running, then ok, failed with its error, or interrupted."""

from __future__ import annotations

import os
import socket
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sigid.atomic import write_json

# What status.json says while a run trains, and after a process killed without a word.
UNFINISHED = "did not finish: still training, or stopped without a word (SIGKILL, power cut)"


def write_running(output_dir: Path, debug: str | None = None) -> None:
    """``status.json`` while the run trains: a folder whose process was killed without a word
    (SIGKILL, a power cut) keeps it, and so says that its run did not finish. `debug`: the
    debug mode of a debug run (``debug_run``), repeated in every status it writes."""
    status = {
        "status": "running",
        "error": UNFINISHED,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_json(output_dir / "status.json", _marked(status, debug))


def write_status(
    output_dir: Path, start: float, error: BaseException | None = None, debug: str | None = None
) -> None:
    """The run's ``status.json``: ok, failed with the error, or interrupted (Ctrl-C), which the
    fold and sweep summaries report instead of averaging the run."""
    status: dict[str, Any] = {"status": "ok"}
    if isinstance(error, (KeyboardInterrupt, SystemExit)):  # Lightning ends Ctrl-C with exit 1
        status = {"status": "interrupted", "error": "interrupted before it finished"}
    elif error is not None:
        status = {"status": "failed", "error": f"{type(error).__name__}: {error}"}
    status["wall_time_s"] = round(time.perf_counter() - start, 2)
    write_json(output_dir / "status.json", _marked(status, debug))


def _marked(status: dict[str, Any], debug: str | None) -> dict[str, Any]:
    return {**status, "debug_run": debug} if debug else status
