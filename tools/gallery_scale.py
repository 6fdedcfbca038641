"""How `Gallery.identify` scales with the number of enrolled writers: time per query and memory.

    .venv/bin/python tools/gallery_scale.py 1000 10000 100000 [--references 5] [--dim 128]
        [--queries 20] [--repeats 3] [--top-k 5] [--folder DIR]

For each N, a gallery of N writers x `--references` generated `--dim`-dimensional embeddings is
written once (`storage.write`, the file `sigid enroll` saves; kept in `--folder`, by default a
folder in the system's temporary folder) by a child process, for an untrained pixel Siamese model
that stands in for a checkpoint (seeded: every process builds the same weights). Each writer's
references are a centre drawn around 0 plus noise, scaled so that a writer's own signatures lie
about half as far apart as two writers' (distances about 4 and 9; the head is set to
sigmoid(6 - distance), the typical genuine distance to 4).

A second child process then loads the gallery (`Gallery.load`) and identifies `--queries`
questioned signatures `--repeats` times over, each a new sample near a random writer's
references, with ``top_k=--top-k``. Queries are given as embeddings (`GivenEmbeddings` below
embeds nothing): the network's forward pass does not grow with the gallery; the time it takes for
one image is printed once, for scale. Printed per N: the load time, the median milliseconds per
query, how many queries named their own writer, and the child's peak resident memory
(`resource.getrusage` ru_maxrss) with what importing torch and sigid alone took. The CPU may be
shared: run it a few times and compare medians.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# Spread of the writers' centres and of each writer's signatures about their centre.
CENTRE_SPREAD, SIGNATURE_SPREAD = 0.5, 0.25
# The head: similarity = sigmoid(OFFSET - SCALE * distance); GENUINE: the typical genuine distance.
SCALE, OFFSET, GENUINE = 1.0, 6.0, 4.0
IMAGE_SIZE = 32


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _verifier(dim: int, cls: type | None = None):
    import torch

    from sigid.inference.verifier import Verifier
    from sigid.tasks import SiameseModule

    torch.manual_seed(0)
    module = SiameseModule(
        preprocessing={"mode": "normalized", "size": [IMAGE_SIZE, IMAGE_SIZE]},
        embedding="pixel",
        image_size=[IMAGE_SIZE, IMAGE_SIZE],
        dim=dim,
        head={"scale": SCALE, "offset": OFFSET},
    )
    module.genuine_distance.fill_(GENUINE)
    return (cls or Verifier)(module)


def write(path: Path, writers: int, references: int, dim: int) -> None:
    """Generate the gallery of `writers` x `references` embeddings and save it at `path`."""
    from sigid.inference.gallery import storage

    rng = np.random.default_rng(writers)
    centres = rng.normal(0, CENTRE_SPREAD, (writers, dim)).astype(np.float32)
    rows = np.repeat(centres, references, axis=0)
    rows += rng.normal(0, SIGNATURE_SPREAD, rows.shape).astype(np.float32)
    names = [f"writer{n:06d}" for n in range(writers)]
    table = {name: rows[n * references : (n + 1) * references] for n, name in enumerate(names)}
    sources = {name: ["<array>"] * references for name in names}
    storage.write(path, _verifier(dim), "normalized", table, sources)


def measure(path: Path, dim: int, queries: int, repeats: int, top_k: int) -> dict:
    """Load the gallery at `path` and time `identify`; the numbers as a dict."""
    from sigid.inference.gallery import Gallery
    from sigid.inference.verifier import Verifier

    class GivenEmbeddings(Verifier):
        """Takes each "image" as its own embedding: the tool times the gallery, not the net."""

        def embed(self, images):
            return np.asarray(images, dtype=np.float32).reshape(len(images), -1)

    verifier = _verifier(dim, GivenEmbeddings)
    image = np.full((IMAGE_SIZE * 4, IMAGE_SIZE * 8), 255, np.uint8)
    image[IMAGE_SIZE:-IMAGE_SIZE, IMAGE_SIZE:-IMAGE_SIZE] = 0
    start = time.perf_counter()
    Verifier.embed(verifier, [image])
    network_ms = (time.perf_counter() - start) * 1e3
    baseline = _peak_mb()
    start = time.perf_counter()
    gallery = Gallery.load(path, verifier=verifier)
    load_s = time.perf_counter() - start
    rng = np.random.default_rng(12345)
    writers = gallery.writers
    asked = []
    for _ in range(queries):
        writer = writers[rng.integers(len(writers))]
        noise = rng.normal(0, SIGNATURE_SPREAD, dim)
        asked.append((writer, (gallery.references(writer).mean(0) + noise).astype(np.float32)))
    times, named = [], 0
    for repeat in range(repeats):
        for writer, query in asked:
            start = time.perf_counter()
            found = gallery.identify(query, top_k=top_k)
            times.append(time.perf_counter() - start)
            named += repeat == 0 and found.candidates[0].writer == writer
    return {
        "writers": len(gallery),
        "references": sum(len(gallery.references(w)) for w in writers[:1]),
        "load_s": load_s,
        "ms_per_query": float(np.median(times) * 1e3),
        "min_ms": float(np.min(times) * 1e3),
        "named_own_writer": f"{named}/{queries}",
        "peak_mb": _peak_mb(),
        "imports_mb": baseline,
        "network_ms_one_image": network_ms,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("writers", type=int, nargs="+")
    parser.add_argument("--references", type=int, default=5)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument(
        "--folder", type=Path, default=Path(tempfile.gettempdir()) / "gallery-scale"
    )
    parser.add_argument("--child", choices=["write", "measure"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        (writers,) = args.writers
        path = args.folder / f"{writers}x{args.references}x{args.dim}.npz"
        if args.child == "write":
            write(path, writers, args.references, args.dim)
        else:
            print(json.dumps(measure(path, args.dim, args.queries, args.repeats, args.top_k)))
        return 0
    args.folder.mkdir(parents=True, exist_ok=True)
    common = [f"--references={args.references}", f"--dim={args.dim}", f"--folder={args.folder}"]
    print("writers  refs  load_s  ms/query(median)  ms/query(min)  own  peak_MB  imports_MB")
    for writers in args.writers:
        if not (args.folder / f"{writers}x{args.references}x{args.dim}.npz").exists():
            command = [sys.executable, __file__, str(writers), "--child=write", *common]
            subprocess.run(command, check=True)
        timing = [f"--queries={args.queries}", f"--repeats={args.repeats}", f"--top-k={args.top_k}"]
        out = subprocess.run(
            [sys.executable, __file__, str(writers), "--child=measure", *common, *timing],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(
            f"{r['writers']:7d}  {r['references']:4d}  {r['load_s']:6.2f}"
            f"  {r['ms_per_query']:16.2f}"
            f"  {r['min_ms']:13.2f}  {r['named_own_writer']:>5}  {r['peak_mb']:7.0f}"
            f"  {r['imports_mb']:10.0f}   (network, one image: {r['network_ms_one_image']:.1f} ms)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
