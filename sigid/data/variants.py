"""Acquisition changes made once: N changed and preprocessed versions of each image, cached.

``data.acquisition.variants: N`` trains with the acquisition changes of `sigid.data.acquisition`
without re-reading and preprocessing a raw scan inside the training loop (`RawAcquisition`):
`variant_pool` makes N versions of every image of a collection once, with the cores there are,
and keeps them in sigid's preprocessing cache (``<cache_dir>/variants/``); `VariantAcquisition`
then replaces a training image by one of them with probability `p`.

Variant v of an image depends only on the image's file (its resolved path) and v, never on the
split it lands in: the pool of a collection is made for all its images once and every fold, run
and seed of the same files and settings reads it. Its (transform, strength) pairs are the
chosen transforms x strengths in an order shuffled per image, so N versions of one image are N
different changes (while N is at most their number; beyond it they repeat with other seeds).
The trade against live changes: N fixed versions per image instead of a fresh draw each time.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import itertools
import json
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sigid.atomic import atomic_path
from sigid.data.acquisition import prepared_change
from sigid.data.cache import PREPROCESS_MODULES, PREPROCESS_VERSION, code_digest, file_fingerprint
from sigid.data.preprocess import options_of

log = logging.getLogger(__name__)

# Bump when a variant's draw or making changes, so stale pools are never read.
VARIANTS_VERSION = 1

# Progress is logged every this many seconds (and at the end).
PROGRESS_EVERY_S = 30.0


def variant_draws(
    identity: str, count: int, transforms: Sequence[str], strengths: Sequence[str]
) -> list[tuple[str, str, int]]:
    """(transform, strength, seed) of variants 0..count-1 of the image named `identity`: the
    transforms x strengths in an order drawn from `identity`, cycled, and a seed per variant
    drawn from (`identity`, v)."""
    combos = list(itertools.product(transforms, strengths))
    order = np.random.default_rng(_digest(identity, "order")).permutation(len(combos))
    return [
        (*combos[int(order[v % len(combos)])], _digest(identity, str(v)) % (2**31 - 1))
        for v in range(count)
    ]


def _digest(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("\n".join(parts).encode()).digest()[:8], "big")


def make_variants(
    path: str,
    preprocess: Mapping[str, Any],
    transforms: Sequence[str],
    strengths: Sequence[str],
    count: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The `count` variants of one file, preprocessed: (count, H, W) uint8, and (count,) bool
    "has ink" (False: the normaliser found none after the change; training uses the clean
    image instead). Runs in the pool's worker processes."""
    from sigid.data.images import load_image

    grey = load_image(Path(path))
    size = (int(preprocess["size"][0]), int(preprocess["size"][1]))
    images = np.zeros((count, *size), np.uint8)
    inked = np.zeros(count, bool)
    for v, (transform, strength, seed) in enumerate(
        variant_draws(path, count, transforms, strengths)
    ):
        prepared, inked[v] = prepared_change(grey, transform, strength, seed, preprocess)
        if inked[v]:
            images[v] = prepared
    return images, inked


class VariantPool:
    """The variants of a collection's images, as `variant_pool` keeps them: ``images``
    (n, N, H, W) uint8, read from its file on demand (memory-mapped, so DataLoader workers share
    the pages and a pickled pool carries only its paths), and ``inked`` (n, N) bool."""

    def __init__(self, entry: Path) -> None:
        self.entry = Path(entry)
        self.inked = np.load(_inked_path(self.entry))
        self._images: np.ndarray | None = None

    @property
    def images(self) -> np.ndarray:
        if self._images is None:
            self._images = np.load(self.entry, mmap_mode="r")
        return self._images

    @property
    def count(self) -> int:
        """Variants per image (N)."""
        return int(self.inked.shape[1])

    def __len__(self) -> int:
        return int(self.inked.shape[0])

    def __getstate__(self) -> dict[str, Any]:
        return {"entry": self.entry, "inked": self.inked, "_images": None}


def _inked_path(entry: Path) -> Path:
    return entry.with_name(entry.stem + ".inked.npy")


def pool_key(
    paths: Sequence[Path],
    preprocess: Mapping[str, Any],
    transforms: Sequence[str],
    strengths: Sequence[str],
    count: int,
) -> str:
    """The pool's cache name: the files (path, size, mtime), the preprocessing (mode, size,
    robustness options), the transforms and strengths, N, the versions and a digest of the code
    that makes a variant (`code_digest`); never a split."""
    payload = {
        "version": VARIANTS_VERSION,
        "preprocess_version": PREPROCESS_VERSION,
        "code": code_digest((*PREPROCESS_MODULES, "sigid.data.acquisition", __name__)),
        "mode": str(preprocess["mode"]),
        "size": [int(v) for v in preprocess["size"]],
        "options": sorted(options_of(preprocess)),
        "transforms": list(transforms),
        "strengths": list(strengths),
        "variants": int(count),
        "files": file_fingerprint(list(paths)),
    }
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:32]


def available_cores() -> int:
    """The cores this process may run on (its affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def variant_pool(
    paths: Sequence[Path],
    preprocess: Mapping[str, Any],
    transforms: Sequence[str],
    strengths: Sequence[str],
    count: int,
    cache_dir: str | Path,
    workers: int | None = None,
) -> VariantPool:
    """The `count` variants of each of `paths`, from ``<cache_dir>/variants/`` or made now.

    Making them runs `make_variants` over `workers` processes (default: the cores available;
    1: in this process), logs its progress, and writes the two files atomically, the images
    last: a pool is read only when both are there.
    """
    paths = [Path(p) for p in paths]
    key = pool_key(paths, preprocess, transforms, strengths, count)
    entry = Path(cache_dir) / "variants" / f"{key}.npy"
    size = (int(preprocess["size"][0]), int(preprocess["size"][1]))
    if entry.is_file() and _inked_path(entry).is_file():
        try:
            pool = VariantPool(entry)
            if pool.images.shape == (len(paths), count, *size) and pool.inked.shape == (
                len(paths),
                count,
            ):
                log.info("data: acquisition variants read from %s", entry)
                return pool
            log.warning("ignoring cache entry %s: its shape is not this pool's", entry)
        except (OSError, ValueError) as err:
            log.warning("ignoring unreadable cache entry %s: %s", entry, err)
    workers = min(workers or available_cores(), max(1, len(paths)))
    images = np.zeros((len(paths), count, *size), np.uint8)
    inked = np.zeros((len(paths), count), bool)
    tasks = [
        (str(p.resolve()), dict(preprocess), list(transforms), list(strengths), count)
        for p in paths
    ]
    log.info(
        "data: making %d acquisition variants of each of %d images (%s x %s) with %d "
        "process(es) into %s",
        count, len(paths), ",".join(transforms), ",".join(strengths), workers, entry,
    )  # fmt: skip
    start = last = time.monotonic()
    for i, (made, has_ink) in enumerate(_run(tasks, workers)):
        images[i], inked[i] = made, has_ink
        if time.monotonic() - last >= PROGRESS_EVERY_S:
            last = time.monotonic()
            log.info("data: acquisition variants: %d/%d images, %.0f s", i + 1, len(paths),
                     last - start)  # fmt: skip
    log.info(
        "data: acquisition variants of %d images made in %.0f s; %d of %d without ink fall back "
        "to the clean image",
        len(paths), time.monotonic() - start, int((~inked).sum()), inked.size,
    )  # fmt: skip
    with atomic_path(_inked_path(entry)) as temp, temp.open("wb") as handle:
        np.save(handle, inked)
    with atomic_path(entry) as temp, temp.open("wb") as handle:
        np.save(handle, images)
    return VariantPool(entry)


def _run(tasks: list[tuple], workers: int):
    """`make_variants` of each task, in order: here (one worker) or in a process pool of
    multiprocessing's default start method (as the DataLoader's workers: ``fork`` on Linux,
    so a script need not guard its main module)."""
    if workers <= 1:
        with _one_thread():
            for task in tasks:
                yield make_variants(*task)
        return
    with (
        _stopped_by_sigterm(),
        concurrent.futures.ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context(), initializer=_worker_init
        ) as executor,
    ):
        try:
            yield from executor.map(_make_task, tasks, chunksize=4)
        except BaseException:
            # leaving the block would otherwise wait for every queued image to be made
            executor.shutdown(wait=True, cancel_futures=True)
            raise


@contextlib.contextmanager
def _stopped_by_sigterm():
    """SIGTERM stops the pool's build (SystemExit 143), whatever handler was there.

    Lightning's trainer handles SIGTERM by setting a flag that its loop reads between steps; a
    pool built inside the trainer's setup blocks that loop for minutes, so a plain ``kill``
    would wait for the whole build. Nothing is written: the pool's files come after the build.
    Outside the main thread (where signals cannot be handled) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _make_task(task: tuple) -> tuple[np.ndarray, np.ndarray]:
    return make_variants(*task)


def _worker_init() -> None:
    """One torch thread per worker process: the processes already fill the cores. SIGTERM back
    to its default (end the process): a forked worker inherits its parent's handlers."""
    import torch

    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    torch.set_num_threads(1)


def _one_thread():
    from sigid.data.transforms import one_thread

    return one_thread()


class VariantAcquisition:
    """Training augmentation from a variant pool: with probability `p` an image is replaced by
    one of its N variants (drawn uniformly), unless that variant has no ink the normaliser finds;
    otherwise the cached image is used. Draws come from torch's global RNG, as `RawAcquisition`'s,
    so a seeded run draws the same variants. `rows` gives, per image index, its pool and its row
    there."""

    def __init__(self, rows: Sequence[tuple[VariantPool, int]], p: float) -> None:
        self.rows, self.p = list(rows), float(p)
        self.applied = 0  # images replaced in this process (a test reads it)

    def __call__(self, index: int) -> np.ndarray | None:
        """A variant of image `index`, or None: use the cached one."""
        import torch

        if float(torch.rand(())) >= self.p:
            return None
        pool, row = self.rows[index]
        variant = int(torch.randint(pool.count, ()))
        if not pool.inked[row, variant]:
            return None
        self.applied += 1
        return np.array(pool.images[row, variant])
