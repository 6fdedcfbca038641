"""Which device a bench runs on, and what it is, in words, for the report."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import lightning as L
import torch


def resolve_device(name: str | None) -> torch.device:
    """`name` ('cpu' | 'cuda') as a device; None: cuda where there is one, else cpu. Asking
    for cuda without one is a ValueError."""
    if name is None:
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: torch sees no CUDA device here")
    return torch.device(name)


def _cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def describe_device(device: torch.device) -> dict[str, Any]:
    """The device's name, torch's threads and the versions that decide the figures."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()
    return {
        "type": device.type,
        "name": name,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "lightning": L.__version__,
    }
