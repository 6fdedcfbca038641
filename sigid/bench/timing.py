"""Clocks that wait for the device, rounds that alternate, and medians.

A CUDA kernel returns before it has run: every clock reading on cuda synchronizes first, so
that a reading covers the work launched before it. Contenders take turns within each round,
in an order that rotates from round to round, so that a slow spell of a shared machine falls
on each of them alike; the figure of each is its median over the rounds.
"""

from __future__ import annotations

import logging
import statistics
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on `device` (nothing to wait for on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def now(device: torch.device) -> float:
    """`time.perf_counter()` once `device` has finished what it was given."""
    synchronize(device)
    return time.perf_counter()


def timed(device: torch.device, work: Callable[[], object]) -> float:
    """Seconds that `work()` takes on `device`, from an idle device to an idle device."""
    start = now(device)
    work()
    return now(device) - start


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def rotated(names: Sequence[str], turn: int) -> list[str]:
    """`names` starting at position `turn` (modulo their count): round `turn`'s order."""
    shift = turn % len(names)
    return [*names[shift:], *names[:shift]]


@contextmanager
def global_torch_settings() -> Iterator[None]:
    """Restore torch's process-wide switches on leaving: a Trainer with
    ``deterministic: true`` turns deterministic algorithms on for the whole process, and a
    plain loop that sets cudnn.benchmark must not hand it on."""
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn = torch.backends.cudnn
    benchmark, cudnn_deterministic = cudnn.benchmark, cudnn.deterministic
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        cudnn.benchmark, cudnn.deterministic = benchmark, cudnn_deterministic


@contextmanager
def quiet_fit(*messages: str) -> Iterator[None]:
    """A bench's fit without Lightning's info lines, nor the warnings (regular expressions of
    their messages) that a bench's fit gets by design."""
    lightning = logging.getLogger("lightning.pytorch")
    level = lightning.level
    lightning.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            for message in messages:
                warnings.filterwarnings("ignore", message=message)
            yield
    finally:
        lightning.setLevel(level)
