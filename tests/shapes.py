"""Shape distances between generated signatures, shared by the procedural-writer tests."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from sigid.data.images import load_image
from sigid.data.preprocess import preprocess


def shape_vectors(folder: Path) -> list[np.ndarray]:
    """Ink-cropped, size-normalised 64x128 images, so distances compare shapes, not paper."""
    return [
        preprocess(load_image(p), "normalized", (64, 128)).astype(np.float32).ravel() / 255
        for p in sorted(folder.glob("*.png"))
    ]


def shape_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


def within_and_between(groups: Mapping[str, Sequence[np.ndarray]]) -> tuple[float, float]:
    """Mean distance between two samples of one group, and between samples of two groups."""
    within = np.mean(
        [shape_distance(a, b) for v in groups.values() for a, b in itertools.combinations(v, 2)]
    )
    between = np.mean(
        [
            shape_distance(a, b)
            for n, m in itertools.combinations(groups, 2)
            for a in groups[n]
            for b in groups[m]
        ]
    )
    return float(within), float(between)
