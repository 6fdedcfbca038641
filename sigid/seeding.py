"""Side draws that leave a run's random sequence alone.

A seeded run draws its initialisation, batch order and augmentation from the global random
streams. Anything drawn on the side (a sample grid for TensorBoard, a pretraining) must not
shift that sequence, or the same seed would train differently with and without it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch


@contextmanager
def own_random_streams() -> Iterator[None]:
    """Run the body on copies of Python's, NumPy's and torch's global random states (every
    CUDA device's too, where CUDA is available), restored afterwards: whatever the body draws,
    the caller's sequence continues as if it had not run."""
    py_state, np_state = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
