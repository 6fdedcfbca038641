"""Decode and preprocess each source image once, and keep the result as uint8 on disk.

A sweep runs many jobs over the same files; the cache key covers every file's path, size and
modification time, the preprocessing settings and the preprocessing code itself
(`code_digest`), so a changed file, setting or constant is a new entry.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import platformdirs

from sigid.atomic import atomic_path
from sigid.data.images import ImageLoadError, load_image
from sigid.data.inks import as_grey
from sigid.data.layouts import Sample, Skipped
from sigid.data.preprocess import no_ink_reason, preprocess

log = logging.getLogger(__name__)

# Bump when preprocessing changes its output or what it refuses, so stale entries are never read
# (2: images without ink are refused). The keys also hold `code_digest`, so an edit that forgets
# the bump (an option's constant) still starts new entries.
PREPROCESS_VERSION = 3
# The modules whose code makes a cached image: decoding, the ink colours, the normaliser.
PREPROCESS_MODULES = ("sigid.data.images", "sigid.data.inks", "sigid.data.preprocess")


@functools.cache
def code_digest(modules: tuple[str, ...] = PREPROCESS_MODULES) -> str:
    """A digest of the source of `modules`: what a cache key holds so that entries made by
    other code (an older sigid, an edited constant) are not read."""
    digest = hashlib.sha256()
    for name in modules:
        source = importlib.import_module(name).__file__
        digest.update(name.encode() + b"\0" + Path(str(source)).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def default_cache_dir() -> Path:
    """``$SIGID_CACHE``, else the platform's user cache folder for sigid (platformdirs; on
    Linux ``$XDG_CACHE_HOME/sigid``, else ``~/.cache/sigid``)."""
    if env := os.environ.get("SIGID_CACHE"):
        return Path(env)
    return Path(platformdirs.user_cache_dir("sigid", appauthor=False))


def file_fingerprint(paths: Sequence[Path]) -> list[list]:
    """Path, size and mtime of each file: enough to notice a replaced or edited file."""
    out = []
    for path in paths:
        try:
            stat = path.stat()
            out.append([str(path.resolve()), stat.st_size, stat.st_mtime_ns])
        except OSError:
            out.append([str(path), -1, -1])
    return out


def preprocess_samples(
    samples: Sequence[Sample],
    mode: str | None,
    size: tuple[int, int],
    cache_dir: str | Path | None = None,
    skip_bad_images: bool = False,
    options: Mapping[str, bool] | None = None,
) -> tuple[np.ndarray, list[Sample], list[Skipped]]:
    """Preprocessed (N, H, W) uint8 images of the readable `samples`, those samples, and the rest.

    An unreadable image, or one without ink (`no_ink_reason`), raises `ImageLoadError` naming it,
    unless `skip_bad_images`: then it is skipped, logged and returned with the rest. Mode None:
    the files hold preprocessed images already (`data.materialize` folders): decoded, not changed.
    `options`: the robustness options of ``normalized`` set true (`sigid.data.preprocess.OPTIONS`).
    """
    options = {k: True for k, v in (options or {}).items() if v}
    size = (int(size[0]), int(size[1]))
    key = _key(samples, mode, size, options)
    entry = Path(cache_dir) / "preprocessed" / f"{key}.npz" if cache_dir else None
    if entry is not None and entry.is_file():
        try:
            return _read(entry, samples)
        except (OSError, ValueError, KeyError) as err:
            log.warning("ignoring unreadable cache entry %s: %s", entry, err)
    images, kept, skipped = [], [], []
    for sample in samples:
        try:
            image = _prepared(sample.path, mode, size, options)
        except ImageLoadError as err:
            if not skip_bad_images:
                raise
            log.warning("skipping %s", err)
            skipped.append(Skipped(sample.path, err.reason))
            continue
        images.append(image)
        kept.append(sample)
    array = np.stack(images) if images else np.zeros((0, *size), dtype=np.uint8)
    if entry is not None and not skipped:
        _write(entry, array)
    return array, kept, skipped


def _prepared(
    path: Path, mode: str | None, size: tuple[int, int], options: Mapping[str, bool]
) -> np.ndarray:
    """One file as training sees it; `ImageLoadError` if it cannot be read or holds no ink."""
    if mode is None:
        grey = load_image(path)
        if grey.shape != size:
            raise ValueError(f"{path}: {grey.shape} image among preprocessed {size} images")
        return grey
    scan = load_image(path, colour=bool(options.get("remove_stamps")))
    grey = as_grey(scan)
    prepared = preprocess(scan, mode, size, **options)
    if (reason := no_ink_reason(grey, mode, prepared)) is not None:
        raise ImageLoadError(path, reason)
    return prepared


def _key(
    samples: Sequence[Sample], mode: str | None, size: tuple[int, int], options: Mapping[str, bool]
) -> str:
    """The cache entry's name."""
    payload = {
        "version": PREPROCESS_VERSION,
        "code": code_digest(),
        "mode": mode,
        "size": list(size),
        "files": file_fingerprint([s.path for s in samples]),
        "options": sorted(options),
    }
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:32]


def _read(entry: Path, samples: Sequence[Sample]) -> tuple[np.ndarray, list[Sample], list[Skipped]]:
    with np.load(entry) as data:
        images = data["images"]
    if len(images) != len(samples):
        raise ValueError(f"holds {len(images)} images for {len(samples)} samples")
    return images, list(samples), []


def _write(entry: Path, images: np.ndarray) -> None:
    """Write atomically: a crash or a parallel job never leaves a half-written entry."""
    with atomic_path(entry) as temp, temp.open("wb") as handle:
        np.savez(handle, images=images)
