"""Inference with a Siamese checkpoint: embeddings per second, and `verify`'s latency for one pair.

The checkpoint is the one asked (``--ckpt``) or the verifier shipped inside sigid. Its images are
a few procedural signatures generated into the bench's folder (`sigid.data.synthetic`), as
PNG files like a user's scans:

- embeddings per second, of images already preprocessed (`Verifier.embed_prepared`: the network
  alone, in batches of `sigid.inference.verifier.BATCH_SIZE`) and of the files
  (`Verifier.embed`: reading, preprocessing and the network);
- `Verifier.verify` of two files, the call `sigid verify A B` makes once the model is loaded:
  the median milliseconds per call; the checkpoint's load time is reported beside it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sigid.bench.timing import median, now
from sigid.data.synthetic import generate
from sigid.inference.inputs import prepare
from sigid.inference.shipped import shipped_checkpoint
from sigid.inference.verifier import BATCH_SIZE, Verifier

# The procedural signatures the bench embeds: writers x genuine each, cycled to the batch size.
WRITERS, PER_WRITER = 2, 8


class InferenceRun:
    """A checkpoint loaded on `device`, and the signature files it embeds and verifies."""

    def __init__(
        self, checkpoint: str | None, device: torch.device, folder: Path, steps: int
    ) -> None:
        self.checkpoint = Path(checkpoint) if checkpoint else shipped_checkpoint()
        self.shipped = checkpoint is None
        self.device = device
        start = now(device)
        self.verifier = Verifier.from_checkpoint(self.checkpoint, map_location=device.type)
        self.load_s = now(device) - start
        root = generate(folder / "signatures", WRITERS, PER_WRITER, forgeries=0, seed=0)
        files = sorted(root.glob("*/*.png"))
        count = steps * BATCH_SIZE
        self.files = [files[i % len(files)] for i in range(count)]
        prepared = [prepare(f, self.verifier.preprocessing) for f in files]
        self.prepared = np.stack([prepared[i % len(prepared)] for i in range(count)])
        self.pair = (files[0], files[1])
        self.steps = steps

    def embed_prepared(self) -> float:
        """Images per second of the network alone."""
        return self._rate(lambda: self.verifier.embed_prepared(self.prepared))

    def embed_files(self) -> float:
        """Images per second from the files: reading, preprocessing and the network."""
        return self._rate(lambda: self.verifier.embed(self.files))

    def _rate(self, work: Callable[[], np.ndarray]) -> float:
        start = now(self.device)
        rows = work()
        return len(rows) / (now(self.device) - start)

    def verify(self) -> list[float]:
        """Milliseconds of each of `steps` `verify` calls on the pair of files."""
        times = []
        for _ in range(self.steps):
            start = time.perf_counter()
            self.verifier.verify(*self.pair)
            times.append((time.perf_counter() - start) * 1000)
        return times


def measure_inference(
    run: InferenceRun, rounds: int, warmup: int, progress: Callable[[str], None]
) -> dict[str, Any]:
    """`rounds` rounds of the three measurements after `warmup` untimed calls of each; medians."""
    for _ in range(warmup):
        run.embed_prepared(), run.embed_files(), run.verify()
    prepared, files, verify_ms = [], [], []
    for turn in range(rounds):
        progress(f"inference: round {turn + 1}/{rounds}")
        prepared.append(run.embed_prepared())
        files.append(run.embed_files())
        verify_ms += run.verify()
    return {
        "checkpoint": str(run.checkpoint),
        "shipped": run.shipped,
        "dim": run.verifier.dim,
        "preprocessing": dict(run.verifier.preprocessing),
        "images_per_round": len(run.files),
        "batch_size": BATCH_SIZE,
        "load_s": run.load_s,
        "embed_img_s": {"prepared": median(prepared), "files": median(files)},
        "verify_ms": median(verify_ms),
        "rounds_embed_img_s": {"prepared": prepared, "files": files},
        "calls_verify_ms": verify_ms,
    }
