"""A run's ``status.json``: ok, failed with its error, or interrupted."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sigid.atomic import write_json


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
