"""A run's random streams: side draws that leave them alone, and their state carried in the
checkpoint so that a resumed run draws what the uninterrupted run would have drawn.

A seeded run draws its initialisation, batch order and augmentation from the global random
streams. Anything drawn on the side (a sample grid for TensorBoard, a pretraining) must not
shift that sequence, or the same seed would train differently with and without it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import lightning as L
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


class RandomStreams(L.Callback):
    """Python's, NumPy's and torch's global random states travel in every checkpoint, and a
    resumed fit takes them up as it restores the checkpoint, before its first batches are
    drawn: its batch order, augmentation, pairs and dropout then go on as if the run had not
    stopped. Stored as plain lists and tensors, which ``torch.load(weights_only=True)`` reads.
    Testing a checkpoint leaves the streams alone.

    DataLoader workers draw their own streams, seeded each epoch from torch's: with
    ``persistent_workers`` they keep them across epochs, which a resume does not restore.
    """

    def __init__(self) -> None:
        self.stage: str | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.stage = stage  # Lightning calls this before it restores a checkpoint

    def state_dict(self) -> dict[str, Any]:
        version, internal, gauss = random.getstate()
        kind, keys, position, has_gauss, cached = np.random.get_state()
        return {
            "python": [version, list(internal), gauss],
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached],
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if self.stage != "fit":
            return
        version, internal, gauss = state_dict["python"]
        random.setstate((version, tuple(internal), gauss))
        kind, keys, position, has_gauss, cached = state_dict["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
        torch.set_rng_state(state_dict["torch"])
        if state_dict["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])
