"""Side draws that leave a run's random sequence alone.

A seeded run draws its initialisation, batch order and augmentation from the global random
streams. Anything drawn on the side (a sample grid for TensorBoard, a pretraining) must not
shift that sequence, or the same seed would train differently with and without it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch


@contextmanager
def own_random_streams(devices: Sequence[int] | None = None) -> Iterator[None]:
    """Run the body on copies of Python's, NumPy's and torch's global random states, restored
    afterwards: whatever the body draws, the caller's sequence continues as if it had not run.

    `devices`: the CUDA devices whose generators the body may draw from, forked too (the
    caller names the one it trains on); by default those of an already initialised CUDA.
    Forking a device's generator starts CUDA on it, so a CPU run names none.
    """
    if devices is None:
        devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=list(devices)):
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


def cuda_devices(device: torch.device) -> list[int]:
    """The CUDA device index of `device` as `own_random_streams` takes it ([] off CUDA)."""
    return [device.index if device.index is not None else 0] if device.type == "cuda" else []
