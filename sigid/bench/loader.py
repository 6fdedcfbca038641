"""The training DataLoader alone, as sigid's training builds it from the config: images per
second out of it (augmentation, pair building, collate), with nothing consuming them.

Preparing the data (generating the synthetic set on first use) and setting it up (reading the
preprocessed images from the cache) happen once, and are timed apart from the batches.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from omegaconf import DictConfig
from torch.utils.data import DataLoader

from sigid.bench.timing import median, rotated
from sigid.bench.workloads import Workload
from sigid.tasks.build import build_datamodule


class LoaderRun:
    """The training DataLoader of `workload`'s config, ready to iterate."""

    def __init__(self, workload: Workload, cfg: DictConfig, warmup: int, steps: int) -> None:
        start = time.perf_counter()
        datamodule = build_datamodule(cfg)
        datamodule.prepare_data()
        self.prepare_s = time.perf_counter() - start
        start = time.perf_counter()
        datamodule.setup("fit")
        self.setup_s = time.perf_counter() - start
        self.loader: DataLoader = datamodule.train_dataloader()
        self.workload, self.warmup, self.steps = workload, warmup, steps
        self.batches_per_epoch = len(self.loader)

    def _endless(self) -> Iterator[Any]:
        """The loader's batches, epoch after epoch (a new epoch costs what it costs in training)."""
        while True:
            yield from self.loader

    def run(self) -> float:
        """Images per second over `steps` batches, after `warmup` untimed ones."""
        batches = self._endless()
        for _ in range(self.warmup):
            next(batches)
        images = 0
        start = time.perf_counter()
        for _ in range(self.steps):
            images += self.workload.images(next(batches))
        return images / (time.perf_counter() - start)


def measure_loaders(
    runs: dict[str, LoaderRun], rounds: int, progress: Callable[[str], None]
) -> dict[str, list[float]]:
    """Images per second of each loader per round, the loaders taking turns."""
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for turn in range(rounds):
        progress(f"loader: round {turn + 1}/{rounds}")
        for name in rotated(list(runs), turn):
            rates[name].append(runs[name].run())
    return rates


def summarize(run: LoaderRun, rates: list[float], step_img_s: float | None) -> dict[str, Any]:
    """A loader's median images per second, and against the sigid step's (when measured)."""
    img_s = median(rates)
    found: dict[str, Any] = {
        "img_s": img_s,
        "prepare_s": run.prepare_s,
        "setup_s": run.setup_s,
        "batches_per_epoch": run.batches_per_epoch,
        "num_workers": run.loader.num_workers,
        "rounds_img_s": rates,
    }
    if step_img_s is not None:
        found["step_img_s"] = step_img_s
        found["loader_to_step_ratio"] = img_s / step_img_s
    return found
