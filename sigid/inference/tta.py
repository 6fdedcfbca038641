"""Test-time augmentation: a signature embedded as itself and a few fixed variants, averaged.

`VARIANTS` are small, deterministic changes of the preprocessed image, inside the ranges the
training augmentation draws from (`conf/data/augment/paper.yaml`: rotation 10 degrees, shifts
0.1, zoom 0.1): a 5 % zoom out and in, a 3 degree turn either way, a 3 % shift left, right, up
and down. TTA-N embeds the first N of them (the first is the image itself) and takes the mean of
the N embeddings, renormalised to unit length when the model's embeddings are unit vectors.
N = 1 is the plain embedding. What was measured with it: docs/evaluation.md, "Test-time
augmentation".
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as nnf
from torchvision.transforms.v2 import functional as F


class Variant(NamedTuple):
    """One fixed change of a preprocessed image: a rotation (degrees, counter-clockwise), a
    shift (fractions of the width and height) and a zoom (scale), about the image's centre."""

    name: str
    angle: float = 0.0
    shift: tuple[float, float] = (0.0, 0.0)
    scale: float = 1.0


VARIANTS = (
    Variant("identity"),
    Variant("zoom_out", scale=0.95),
    Variant("zoom_in", scale=1.05),
    Variant("rotate_left", angle=3.0),
    Variant("rotate_right", angle=-3.0),
    Variant("shift_left", shift=(-0.03, 0.0)),
    Variant("shift_right", shift=(0.03, 0.0)),
    Variant("shift_up", shift=(0.0, -0.03)),
    Variant("shift_down", shift=(0.0, 0.03)),
)


def check_tta(tta: Any, name: str = "tta") -> int:
    """`tta`, the number of variants embedded per image, checked: a whole number from 1 (off)
    to len(VARIANTS). `name`: the option as the caller spells it, for the message."""
    if isinstance(tta, bool) or not isinstance(tta, int) or not 1 <= tta <= len(VARIANTS):
        raise ValueError(
            f"{name} must be a whole number from 1 (off) to {len(VARIANTS)} (the variants "
            f"embedded per image), got {tta!r}"
        )
    return tta


def variant(batch: torch.Tensor, index: int, fill: float) -> torch.Tensor:
    """`VARIANTS[index]` of a (B, C, H, W) float batch; uncovered pixels are `fill` (the
    preprocessed background). Bilinear. The identity returns `batch` itself."""
    change = VARIANTS[index]
    if change == Variant("identity"):
        return batch
    height, width = batch.shape[-2:]
    dx, dy = change.shift
    return F.affine(
        batch,
        angle=change.angle,
        translate=[round(dx * width), round(dy * height)],
        scale=change.scale,
        shear=[0.0, 0.0],
        interpolation=F.InterpolationMode.BILINEAR,
        fill=[fill] * batch.shape[-3],
    )


def variants(batch: torch.Tensor, tta: int, fill: float) -> torch.Tensor:
    """The first `tta` variants of a (B, C, H, W) batch as one (tta * B, C, H, W) batch,
    variant by variant (rows [v * B, (v + 1) * B) are variant v)."""
    return torch.cat([variant(batch, index, fill) for index in range(check_tta(tta))])


def averaged(embeddings: torch.Tensor, tta: int, normalize: bool) -> torch.Tensor:
    """(B, dim): the mean over variants of the (tta * B, dim) embeddings of `variants`;
    renormalised to unit length when `normalize` (the model's embeddings are unit vectors)."""
    mean = embeddings.reshape(tta, -1, embeddings.shape[-1]).mean(dim=0)
    return nnf.normalize(mean, dim=-1, eps=1e-6) if normalize else mean


def embed_tta(embed: Any, batch: torch.Tensor, tta: int, fill: float, normalize: bool) -> Any:
    """`embed` (a network's embedding function) of a batch under TTA-`tta`: the plain
    ``embed(batch)`` when `tta` is 1."""
    if check_tta(tta) == 1:
        return embed(batch)
    return averaged(embed(variants(batch, tta, fill)), tta, normalize)
