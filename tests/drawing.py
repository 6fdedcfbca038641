"""Test data: small real signature-like PNG files (one style per writer), and sample records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from sigid.data.layouts import Sample


def draw_signature(writer: int, sample: int, paper: int = 240, size=(80, 160)) -> Image.Image:
    """A grey image with a writer-specific polyline, jittered per sample."""
    rng = np.random.default_rng([writer, sample])
    style = np.random.default_rng(writer)
    height, width = size
    img = Image.new("L", (width, height), paper)
    draw = ImageDraw.Draw(img)
    xs = np.linspace(15, width - 15, 6 + writer % 4)
    ys = style.uniform(20, height - 20, len(xs))
    points = [(float(x), float(y + rng.normal(0, 2))) for x, y in zip(xs, ys, strict=True)]
    draw.line(points, fill=30, width=3 + writer % 3)
    return img


def write_folders(root: Path, writers: int, per_writer: int, forged: int = 0) -> Path:
    """ROOT/<writer>/ genuine (+ ROOT/<writer>_forg/ when `forged`), named w1, w2, ..."""
    for w in range(1, writers + 1):
        folder = root / f"w{w}"
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(1, per_writer + 1):
            draw_signature(w, n).save(folder / f"s{n}.png")
        if forged:
            forg = root / f"w{w}_forg"
            forg.mkdir(exist_ok=True)
            for n in range(1, forged + 1):
                draw_signature(w, 100 + n, paper=250).save(forg / f"f{n}.png")
    return root


def sample_records(writers: int, per_writer: int, forged: int = 0) -> list[Sample]:
    """Sample table rows (no files) for writers w0.. with genuine and forged signatures."""
    out = []
    for w in range(writers):
        out += [Sample(Path(f"w{w}/g{n}.png"), f"w{w}", True) for n in range(per_writer)]
        out += [Sample(Path(f"w{w}_forg/f{n}.png"), f"w{w}", False) for n in range(forged)]
    return out
