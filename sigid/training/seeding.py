"""A run's random streams carried in the checkpoint, so that a resumed run draws what the
uninterrupted run would have drawn.

A seeded run draws its initialisation, batch order and augmentation from the global random
streams; what is drawn on the side (a sample grid for TensorBoard, a pretraining) runs inside
Lightning's `isolate_rng`, so it does not shift them.
"""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch


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
