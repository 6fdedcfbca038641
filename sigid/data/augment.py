"""Augmented copies of signatures: class folders written to disk (`materialize`) and
distorted test sets, each image seeded from (seed, writer, index) alone, so files are
byte-identical across runs and processes (same torch build and CPU type).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import numbers
import os
import shutil
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2

from sigid.atomic import cannot_write, errors_about, make_parent
from sigid.data.images import ImageLoadError, load_image
from sigid.data.preprocess import (
    OPTIONS,
    background_level,
    background_value,
    check_preprocessing,
)
from sigid.data.preprocess import prepare as prepare_image
from sigid.data.transforms import augment_settings, build_transform
from sigid.errors import os_reason

MANIFEST = "augment.json"

FORMAT_VERSION = 1  # bump when the bytes written for a given fingerprint change

WORKERS = 2

PARALLEL_MIN = 1000  # fewer augmented images are rendered in-process (spawning costs ~3 s)

CHUNK = 128  # augmented images per pool task

COMPRESS_LEVEL = 1  # PNG zlib level: 5x faster than 6 for ~15% larger files on noisy scans


def derive_seed(*parts: object) -> int:
    """A 63-bit seed that depends only on `parts` (stable across processes, unlike hash())."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


def _apply_seeded(transform: v2.Transform, grey: np.ndarray, seed: int) -> np.ndarray:
    """`transform` of an HxW uint8 array under `seed`, leaving the caller's RNG state alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        out = transform(torch.tensor(grey).unsqueeze(0))
    out = out.squeeze(0).numpy()
    if out.shape != grey.shape or out.dtype != np.uint8:
        raise ValueError(f"transform made {out.dtype} {out.shape} of uint8 {grey.shape}")
    return out


def distort_deterministic(images: np.ndarray, transform: v2.Transform, seed: int) -> np.ndarray:
    """A fixed distorted copy of an (N, H, W) uint8 stack: image i is seeded by (seed, i)."""
    if not isinstance(images, np.ndarray) or images.ndim != 3 or images.dtype != np.uint8:
        shape = getattr(images, "shape", None)
        raise ValueError(f"expected an (N, H, W) uint8 array, got {type(images).__name__} {shape}")
    out = np.empty_like(images)
    for index in range(len(images)):
        out[index] = _apply_seeded(transform, images[index], derive_seed("distort", seed, index))
    return out


def request(
    samples: Sequence[tuple[str | Path, str]], per_class: int, seed: int,
    augment: Mapping[str, Any], preprocess: Mapping[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """What `materialize` makes a folder from, checked: the sources (with size and mtime),
    per_class, seed, ranges and preprocessing. dst/augment.json records it."""
    if not _is_int(per_class) or per_class < 1 or not _is_int(seed):
        raise ValueError(f"need an integer per_class >= 1 and seed, got {per_class!r}, {seed!r}")
    per_class, seed = int(per_class), int(seed)
    settings = augment_settings(augment)
    writers: dict[str, list[str]] = {}
    for path, writer in samples:
        writers.setdefault(_check_writer(writer), []).append(str(Path(path).resolve()))
    if not writers:
        raise ValueError("no source images given to materialize")
    for writer, sources in writers.items():
        if len(sources) > per_class:
            n = len(sources)
            raise ValueError(f"writer {writer!r} has {n} source images, more than {per_class=}")
    made = {"version": FORMAT_VERSION, "per_class": per_class, "seed": seed, "augment": settings}
    if preprocess is not None:  # absent, not null: folders made before it stay reusable
        made["preprocess"] = _check_preprocess(preprocess)
    made["sources"] = [_source_entry(p, w) for w, paths in writers.items() for p in paths]
    return made


def materialize(
    samples: Sequence[tuple[str | Path, str]], dst: str | Path, per_class: int, seed: int,
    augment: Mapping[str, Any], source_root: str | Path | None = None,
    preprocess: Mapping[str, Any] | None = None,
) -> Path:  # fmt: skip
    """Write `per_class` images per writer to dst/<writer>/: the sources, then augmented variants.

    Without `preprocess` the scans themselves are augmented (uncovered areas take each scan's
    paper grey). With it ({"mode", "size"}), each source is preprocessed first and then augmented,
    as training does on the fly, so the files hold preprocessed images: preprocessing a shifted
    scan again would crop and centre its ink, undoing the shift and zoom.
    Reused when dst/augment.json matches the `request`; built in a hidden sibling folder and
    renamed onto dst, so dst is complete or absent.
    dst may not lie inside a folder that holds a source image or inside `source_root` (the
    dataset folder the samples come from), nor hold a source: the source is never touched.
    """
    dst = Path(dst)
    fingerprint = request(samples, per_class, seed, augment, preprocess)
    per_class, seed, settings = (
        fingerprint["per_class"],
        fingerprint["seed"],
        fingerprint["augment"],
    )
    writers: dict[str, list[str]] = {}
    for entry in fingerprint["sources"]:
        writers.setdefault(entry["writer"], []).append(entry["path"])
    _check_apart(dst, [p for paths in writers.values() for p in paths], source_root)
    if _reusable(dst, fingerprint):
        return dst
    make_parent(dst)
    tmp = dst.parent / f".{dst.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)  # a stale leftover of a crashed run of this pid
    total = sum(per_class - len(sources) for sources in writers.values())
    parallel = WORKERS > 1 and (os.cpu_count() or 1) > 1 and total >= PARALLEL_MIN
    threads = torch.get_num_threads()
    try:
        # Per image, intra-op threads cost more than they give (10x slower on a busy 2-core box).
        torch.set_num_threads(1)
        with errors_about(dst, tmp):  # errors name dst, not the temporary folder
            _build(writers, per_class, seed, settings, fingerprint.get("preprocess"), tmp, parallel)
            (tmp / MANIFEST).write_text(json.dumps(fingerprint, indent=1, sort_keys=True) + "\n")
        try:
            os.replace(tmp, dst)  # atomic; also replaces an empty dst folder
        except OSError as err:
            if not _reusable(dst, fingerprint):  # did a concurrent run finish it first?
                raise cannot_write(dst, err) from err
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        torch.set_num_threads(threads)
    return dst


def _build(
    writers: dict[str, list[str]], per_class: int, seed: int, settings: dict[str, float],
    prepare: dict[str, Any] | None, tmp: Path, parallel: bool,
) -> None:  # fmt: skip
    """Fill the new folder `tmp` with every writer's sources and augmented images."""
    tmp.mkdir()
    jobs = []
    for writer, sources in writers.items():
        (tmp / writer).mkdir()
        cache = {i: _source_image(path, prepare) for i, path in enumerate(sources)}
        # the fill training's on-the-fly augmentation uses, or each raw scan's own paper grey
        fills = [background_value(prepare["mode"]) if prepare else background_level(grey)
                 for grey in cache.values()]  # fmt: skip
        for i, grey in cache.items():
            _save(grey, tmp / writer / f"{writer}_{i + 1:05d}.png")
        stops = range(len(sources), per_class, CHUNK)
        new = [_Job(writer, sources, prepare, fills, i, min(i + CHUNK, per_class)) for i in stops]
        if parallel:
            jobs += new
        else:
            for job in new:
                _render(job, seed, settings, tmp, cache)  # sources already decoded
    if jobs:
        _run_pool(jobs, seed, settings, tmp)


class _Job(NamedTuple):
    """Augmented images start..stop-1 (0-based) of one writer, cycling over its sources."""

    writer: str
    sources: list[str]
    prepare: dict[str, Any] | None  # the preprocessing before augmenting, if any
    fills: list[int]  # the grey painted where a source's image no longer covers
    start: int
    stop: int


def _render(job: _Job, seed: int, settings: dict[str, float], out: Path, cache: dict) -> None:
    writer, sources, prepare, fills, start, stop = job
    transforms: dict[int, v2.Transform] = {}
    for index in range(start, stop):
        src = index % len(sources)
        if src not in cache:
            cache[src] = _source_image(sources[src], prepare)
        if src not in transforms:
            transforms[src] = build_transform(**settings, fill=fills[src])
        grey = _apply_seeded(transforms[src], cache[src], derive_seed(seed, writer, index + 1))
        _save(grey, out / writer / f"{writer}_{index + 1:05d}.png")


def _render_job(job: _Job, seed: int, settings: dict[str, float], out: Path) -> tuple | None:
    """Pool entry point; load errors come back as (path, reason): ImageLoadError won't unpickle."""
    try:
        _render(job, seed, settings, out, {})
    except ImageLoadError as err:
        return str(err.path), err.reason
    return None


def _run_pool(jobs: list[_Job], seed: int, settings: dict[str, float], out: Path) -> None:
    # spawn, not fork: the caller may hold threads (loggers, torch pools) that fork would break.
    context = multiprocessing.get_context("spawn")
    workers = min(WORKERS, len(jobs))
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init) as pool:
        futures = [pool.submit(_render_job, job, seed, settings, out) for job in jobs]
        for future in futures:
            failure = future.result()
            if failure is not None:
                for other in futures:
                    other.cancel()
                raise ImageLoadError(*failure)


def _worker_init() -> None:
    torch.set_num_threads(1)  # one process per core already


def _source_image(path: str, prepare: dict[str, Any] | None) -> np.ndarray:
    """A source as it is augmented: the scan, or preprocessed as training's data are."""
    grey = load_image(path)
    return prepare_image(grey, prepare) if prepare else grey


def _check_preprocess(prepare: Mapping[str, Any]) -> dict[str, Any]:
    """{"mode", "size"} and the options set true as plain values (`check_preprocessing`),
    nothing else in it."""
    if isinstance(prepare, Mapping) and set(prepare) - {"mode", "size", *OPTIONS}:
        raise ValueError(
            f"preprocess holds only mode, size and {', '.join(OPTIONS)}, got {prepare!r}"
        )
    try:
        return check_preprocessing(prepare)
    except ValueError as err:
        raise ValueError(f"preprocess: {err}") from err


def _save(grey: np.ndarray, path: Path) -> None:
    Image.fromarray(grey, mode="L").save(path, format="PNG", compress_level=COMPRESS_LEVEL)


def _check_apart(dst: Path, sources: list[str], source_root: str | Path | None) -> None:
    """Refuse a dst inside the source tree, or one that holds a source: writing there would
    change the dataset (new files among its images), or replace the sources themselves."""
    out = dst.resolve()
    folders = {Path(path).parent for path in sources}  # already resolved
    if source_root is not None and Path(source_root).is_dir():  # not a manifest CSV
        folders.add(Path(source_root).resolve())
    around = sorted((f for f in folders if out.is_relative_to(f)), reverse=True)  # nearest first
    if around:
        where = "is" if around[0] == out else "is inside"
        why = f"it {where} the source folder {around[0]}"
    elif inside := sorted(f for f in folders if f.is_relative_to(out)):
        why = f"it holds the source folder {inside[0]}"
    elif made := next((p for p in out.parents if (p / MANIFEST).is_file()), None):
        # a new set nested in an augmented one would read back as a writer of that set
        why = f"it is inside the augmented set {made} (its {MANIFEST})"
    else:
        return
    raise ValueError(
        f"{dst}: cannot write augmented images there: {why}; choose an output folder outside "
        "the sources (they are never modified)"
    )


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_writer(writer: str) -> str:
    """Writer names become folder and file names: no separators, no dot-names, not empty."""
    if not isinstance(writer, str) or writer in ("", ".", "..") or writer.startswith("."):
        raise ValueError(f"writer name {writer!r} cannot be a folder name")
    if "/" in writer or "\\" in writer or "\0" in writer:
        raise ValueError(f"writer name {writer!r} cannot contain a path separator")
    return writer


def _source_entry(path: str, writer: str) -> dict[str, Any]:
    try:
        stat = os.stat(path)
    except OSError as err:
        raise ImageLoadError(path, f"cannot open file ({os_reason(err)})") from err
    return {"path": path, "writer": writer, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _reusable(dst: Path, fingerprint: dict[str, Any]) -> bool:
    """True if dst holds exactly this request; False if free to build; ValueError otherwise."""
    if not dst.exists():
        return False
    if not dst.is_dir():
        raise ValueError(f"cannot materialize into {dst}: it exists and is not a folder")
    manifest = dst / MANIFEST
    if not manifest.is_file():
        if any(dst.iterdir()):
            raise ValueError(
                f"cannot materialize into {dst}: it is a non-empty folder without {MANIFEST}, "
                "so it was not made by materialize; refusing to touch it"
            )
        return False
    try:
        recorded = json.loads(manifest.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot materialize into {dst}: unreadable {MANIFEST} ({err})") from err
    if recorded == fingerprint:
        return True
    keys = sorted(k for k in {*fingerprint, *recorded} if recorded.get(k) != fingerprint.get(k))
    raise ValueError(
        f"cannot materialize into {dst}: it was made from a different request (differs in "
        f"{', '.join(keys)}); remove it or choose another folder"
    )
