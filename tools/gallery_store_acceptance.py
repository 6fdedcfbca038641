"""The gallery store's command-line acceptance: `sigid enroll` of one writer and `sigid identify`
of one image on a large generated gallery against a gallery of one writer (wall time of the
whole command, and its peak resident memory).

    .venv/bin/python tools/gallery_store_acceptance.py [--writers 100000] [--references 5]
        [--repeats 3] [--folder DIR]

Both galleries are recorded with the shipped verifier (so `sigid enroll` and `sigid identify`
load it as a user's would); their embeddings are generated around the mean and spread of the
verifier's embeddings of generated signatures, so that ranking prunes as on real galleries.
The questioned and enrolled images are generated signatures (`sigid.data.synthetic`). Each
command runs `--repeats` times (a new writer each enrolment); the medians and the largest peak
memory (the child's ru_maxrss) are printed as JSON. The generated galleries stay in `--folder`
for a second run. The CPU may be shared: run it a few times and compare.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from sigid.data.synthetic import generate
from sigid.inference.gallery.sqlite import SqliteStore
from sigid.inference.verifier import Verifier


def _record(verifier: Verifier) -> dict:
    return {
        "checkpoint": str(verifier.checkpoint),
        "fingerprint": verifier.fingerprint,
        "preprocessing": verifier.preprocessing,
        "dim": verifier.dim,
        "score": "normalized",
    }


def _gallery(path: Path, writers: int, references: int, verifier: Verifier, real: np.ndarray):
    """A store of `writers` generated writers near the spread of the `real` embeddings."""
    if path.exists():
        return
    rng = np.random.default_rng(writers)
    mean, spread = real.mean(0), real.std(0)
    centres = mean + spread * rng.normal(size=(writers, verifier.dim))
    rows = np.repeat(centres, references, axis=0)
    rows += 0.5 * spread * rng.normal(size=rows.shape)
    rows = rows.astype(np.float32).reshape(writers, references, -1)
    temporary = path.with_name(path.name + ".part")
    temporary.unlink(missing_ok=True)
    store = SqliteStore(temporary)
    store.create(_record(verifier))
    store.add_many((f"writer{n:06d}", rows[n], ["<array>"] * references) for n in range(writers))
    store.close()
    os.replace(temporary, path)


def _run(argv: list[str]) -> tuple[float, float]:
    """Wall seconds and peak resident MB of one command (it must succeed)."""
    start = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    err = child.stderr.read().decode() if child.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {err.strip()}")
    return wall, usage.ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writers", type=int, default=100_000)
    parser.add_argument("--references", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--folder", type=Path, default=Path(tempfile.gettempdir()) / "gallery-store-acceptance"
    )
    args = parser.parse_args(argv)
    folder = args.folder
    folder.mkdir(parents=True, exist_ok=True)
    images = folder / "images"
    if not images.exists():
        generate(images, 4, 8, 0, 0)
    files = sorted(images.rglob("*.png"))
    verifier = Verifier.shipped()
    real = verifier.embed(files)
    sigid = [sys.executable, "-m", "sigid.cli"]
    found: dict[str, dict] = {}
    start = time.perf_counter()
    for name, writers in (("one", 1), ("large", args.writers)):
        path = folder / f"{writers}x{args.references}.sqlite"
        _gallery(path, writers, args.references, verifier, real)
        enroll, identify = [], []
        for n in range(args.repeats):
            new = files[n * 3 : n * 3 + 3]
            writer = f"new-{time.time_ns()}"
            enroll.append(_run([*sigid, "enroll", "--gallery", str(path), "--writer", writer,
                                *map(str, new)]))  # fmt: skip
            identify.append(_run([*sigid, "identify", "--gallery", str(path), str(files[-1])]))
            subprocess.run([*sigid, "gallery", "remove", str(path), "--writer", writer], check=True,
                           stdout=subprocess.DEVNULL)  # fmt: skip
        found[name] = {
            "writers": writers,
            "enroll_s": statistics.median(w for w, _ in enroll),
            "identify_s": statistics.median(w for w, _ in identify),
            "enroll_peak_mb": max(m for _, m in enroll),
            "identify_peak_mb": max(m for _, m in identify),
        }
    large, one = found["large"], found["one"]
    result = {
        **found,
        "enroll_s_more": large["enroll_s"] - one["enroll_s"],
        "identify_s_more": large["identify_s"] - one["identify_s"],
        "seconds": time.perf_counter() - start,
        "load_average": os.getloadavg(),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
