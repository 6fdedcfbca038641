"""How `Gallery.identify` scales with the number of enrolled writers: time per query and memory.

For each size, a generated gallery store (`synthetic_gallery`) is written, then a child process
(``python -m sigid.bench.gallery``) opens it with `Gallery.load` (``open_s``), identifies
`queries` questioned signatures `repeats` times over, each a new sample near a random writer's
references, with `top_k` candidates (``query_ms``), and enrols `enrolls` new writers one at a
time through the API (``enroll_ms``: the store's transaction and the repeat checks; the
embedding is given), which it removes again (`GalleryShape`).

A child of its own per size, so that its resident memory is the gallery's: the gallery's memory
is the peak resident memory while it loads and answers, less the resident memory before it
loads (after importing torch and sigid and building the model). On Linux the peak (VmHWM) is
counted afresh from the load on (/proc/self/clear_refs): `getrusage`'s ru_maxrss would keep the
imports' higher peak, and the parent's peak, which the exec that starts the child carries into
it (1.4 GB for every size after the training part). Elsewhere ru_maxrss it is, and a small
gallery may show as 0. Queries are given as embeddings
(`GivenEmbeddings`): the network's forward pass does not grow with the gallery; the time it
takes for one image is reported once.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sigid.bench.synthetic_gallery import (
    IMAGE_SIZE,
    SIGNATURE_SPREAD,
    stand_in_verifier,
    write_gallery,
)
from sigid.bench.timing import median
from sigid.inference.gallery import Gallery
from sigid.inference.verifier import Verifier

STATUS = Path("/proc/self/status")


@dataclasses.dataclass(frozen=True)
class GalleryShape:
    """Every writer's `references` embeddings of `dim` values; `queries` questioned signatures
    asked `repeats` times over, each ranked for `top_k` candidates; `enrolls` new writers
    enrolled one by one (then removed: a kept gallery stays as generated)."""

    references: int = 5
    dim: int = 128
    queries: int = 20
    repeats: int = 3
    top_k: int = 5

    enrolls: int = 5

    def file_name(self, writers: int) -> str:
        return f"{writers}x{self.references}x{self.dim}.sqlite"


class GivenEmbeddings(Verifier):
    """Takes each "image" as its own embedding: the bench times the gallery, not the net."""

    def embed(self, images) -> np.ndarray:
        return np.asarray(images, dtype=np.float32).reshape(len(images), -1)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _status_mb(key: str) -> float:
    """A memory line of /proc/self/status (VmRSS, VmHWM), MB."""
    for line in STATUS.read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024  # kB
    raise ValueError(f"{STATUS}: no {key}")


def _restart_peak() -> bool:
    """Start the peak memory count (VmHWM) afresh; False where it cannot (not Linux)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        _status_mb("VmHWM")
    except (OSError, ValueError):
        return False
    return True


def measure(path: Path, shape: GalleryShape) -> dict[str, Any]:
    """Load the gallery at `path` and time `identify`; the numbers as a dict (in the child)."""
    verifier = stand_in_verifier(shape.dim, GivenEmbeddings)
    image = np.full((IMAGE_SIZE * 4, IMAGE_SIZE * 8), 255, np.uint8)
    image[IMAGE_SIZE:-IMAGE_SIZE, IMAGE_SIZE:-IMAGE_SIZE] = 0
    start = time.perf_counter()
    Verifier.embed(verifier, [image])
    network_ms = (time.perf_counter() - start) * 1e3
    restarted = _restart_peak()
    baseline = _status_mb("VmRSS") if restarted else _peak_mb()
    start = time.perf_counter()
    gallery = Gallery.load(path, verifier=verifier)
    load_s = time.perf_counter() - start
    gallery.identify(np.zeros(shape.dim, np.float32), top_k=shape.top_k)  # numpy's first call
    rng = np.random.default_rng(12345)
    writers = gallery.writers
    asked = []
    for _ in range(shape.queries):
        writer = writers[rng.integers(len(writers))]
        noise = rng.normal(0, SIGNATURE_SPREAD, shape.dim)
        asked.append((writer, (gallery.references(writer).mean(0) + noise).astype(np.float32)))
    times, named = [], 0
    for repeat in range(shape.repeats):
        for writer, query in asked:
            start = time.perf_counter()
            found = gallery.identify(query, top_k=shape.top_k)
            times.append(time.perf_counter() - start)
            named += repeat == 0 and found.candidates[0].writer == writer
    enroll_times = []
    for n in range(shape.enrolls):  # a new writer each, as `sigid enroll` adds one
        rows = rng.normal(0, SIGNATURE_SPREAD, (shape.references, shape.dim)) + 5 + n
        start = time.perf_counter()
        gallery.enroll(f"bench-new-{n}", list(rows.astype(np.float32)))
        enroll_times.append(time.perf_counter() - start)
    start = time.perf_counter()
    gallery.identify(asked[0][1], top_k=shape.top_k)  # the matrix takes in the new writers
    after_enroll = time.perf_counter() - start
    peak = _status_mb("VmHWM") if restarted else _peak_mb()
    for n in range(shape.enrolls):
        gallery.remove(f"bench-new-{n}")
    return {
        "writers": len(gallery),
        "references": len(gallery.references(writers[0])),
        "dim": shape.dim,
        "load_s": load_s,
        "open_s": load_s,
        "enroll_ms": median(enroll_times) * 1e3,
        "query_ms_after_enroll": after_enroll * 1e3,
        "query_ms": median(times) * 1e3,
        "query_ms_min": float(np.min(times) * 1e3),
        "named_own_writer": f"{named}/{shape.queries}",
        "memory_mb": peak - baseline,
        "peak_mb": peak,
        "before_load_mb": baseline,
        "network_ms_one_image": network_ms,
    }


def measure_in_child(path: Path, shape: GalleryShape) -> dict[str, Any]:
    """`measure` in a fresh Python process (its own peak memory)."""
    asked = [f"--{k.replace('_', '-')}={v}" for k, v in dataclasses.asdict(shape).items()]
    command = [sys.executable, "-m", __name__, str(path), *asked]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"gallery bench child failed on {path.name}:\n{tail}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_galleries(
    sizes: Sequence[int],
    shape: GalleryShape,
    progress: Callable[[str], None],
    folder: Path | None = None,
) -> list[dict[str, Any]]:
    """For each size: write its gallery, measure it in a child. In `folder` a gallery is kept,
    and one already there is measured again, not rewritten (``write_s`` None); without, each
    is written to a temporary folder and removed."""
    with tempfile.TemporaryDirectory(prefix="sigid-bench-") as temporary:
        where = folder or Path(temporary)
        found = []
        for writers in sizes:
            progress(f"gallery: {writers:,} writers x {shape.references} references")
            path = where / shape.file_name(writers)
            written = None
            if folder is None or not path.exists():
                start = time.perf_counter()
                write_gallery(path, writers, shape.references, shape.dim)
                written = time.perf_counter() - start
            found.append({**measure_in_child(path, shape), "write_s": written})
            if folder is None:
                path.unlink()
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """The child: ``python -m sigid.bench.gallery PATH [--references K ...]`` prints
    `measure`'s JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path)
    for field in dataclasses.fields(GalleryShape):
        parser.add_argument(f"--{field.name.replace('_', '-')}", type=int, default=field.default)
    args = vars(parser.parse_args(argv))
    path = args.pop("path")
    print(json.dumps(measure(path, GalleryShape(**args))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
