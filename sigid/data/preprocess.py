"""Preprocessing of grey signature arrays: pure functions shared by training and inference.

Two modes:
- ``paper``: a plain grey resize, as the paper's Keras pipeline did (dark ink on white);
- ``normalized``: the paper is removed with an Otsu threshold, the ink is cropped, centred on a
  canvas of the target aspect ratio, inverted (ink bright on a 0 background) and resized; ink
  darkness is measured against the page's own paper level (docs/design.md, "Preprocessing").
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageFilter

Mode = Literal["paper", "normalized"]
MODES: tuple[str, ...] = ("paper", "normalized")

# Grey levels between the darkest and lightest pixel below which an image holds no ink.
MIN_CONTRAST = 8
# A page whose blurred grey levels span less than this holds no ink worth the name.
MIN_INK_CONTRAST = 40
# Fraction of the cropped ink box left as empty border on the canvas.
CANVAS_MARGIN = 0.04


def check_preprocessing(settings: Any) -> dict[str, Any]:
    """Preprocessing settings ``{"mode", "size"}`` as plain values: a known mode and a (height,
    width) of positive whole numbers. The ValueError says which part is wrong; callers say
    where the settings came from (a checkpoint, a request)."""
    if not isinstance(settings, Mapping) or "mode" not in settings or "size" not in settings:
        raise ValueError(f"{settings!r} is not a mapping of mode and size")
    mode, size = settings["mode"], settings["size"]
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    if (
        isinstance(size, (str, bytes, Mapping))
        or not isinstance(size, Sequence)
        or len(size) != 2
        or not all(_whole(v) and v > 0 for v in size)
    ):
        raise ValueError(f"size {size!r} is not two positive whole numbers")
    return {"mode": str(mode), "size": [int(v) for v in size]}


def _whole(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def background_value(mode: str) -> int:
    """The pixel value of empty paper after `preprocess` in `mode` (the fill for augmentation)."""
    _check_mode(mode)
    return 255 if mode == "paper" else 0


def otsu_threshold(grey: np.ndarray) -> int:
    """Otsu's threshold: the grey level that best separates two classes (ink <= t < paper)."""
    hist = np.bincount(grey.ravel(), minlength=256).astype(np.float64)
    total = hist.sum()
    levels = np.arange(256, dtype=np.float64)
    weight_low = np.cumsum(hist)
    weight_high = total - weight_low
    mass_low = np.cumsum(hist * levels)
    mean_low = np.divide(mass_low, weight_low, out=np.zeros(256), where=weight_low > 0)
    mean_high = np.divide(
        mass_low[-1] - mass_low, weight_high, out=np.zeros(256), where=weight_high > 0
    )
    between = weight_low * weight_high * (mean_low - mean_high) ** 2
    return int(np.argmax(between))


def blank_reason(grey: np.ndarray) -> str | None:
    """Why `grey` is a blank page in any mode (no two pixels MIN_CONTRAST apart), or None."""
    if grey.size == 0 or int(grey.max()) - int(grey.min()) < MIN_CONTRAST:
        return (
            f"no ink found (every pixel within {MIN_CONTRAST} grey levels of the others: "
            "a blank image?)"
        )
    return None


def no_ink_reason(grey: np.ndarray, mode: str, prepared: np.ndarray) -> str | None:
    """Why `grey`, preprocessed in `mode` to `prepared`, holds no signature, or None.

    Preprocessing still makes an image of a blank page (`normalized`: all zero), which a
    network would learn or score as a signature; training refuses what inference refuses.
    """
    if reason := blank_reason(grey):
        return reason
    if mode != "normalized" or prepared.any():
        return None
    smooth = _blur(grey)
    low, high = int(smooth.min()), int(smooth.max())
    if high - low >= MIN_INK_CONTRAST:
        return "no ink found (normalized preprocessing left no stroke)"
    return (
        f"no ink found (blurred by one pixel, its grey levels span only {low}..{high}, fewer "
        f"than {MIN_INK_CONTRAST} apart: blank, or a very faint or low-contrast scan?)"
    )


def ink_mask(grey: np.ndarray) -> np.ndarray:
    """Boolean mask of ink pixels (all False on a blank page)."""
    smooth = _blur(grey)
    if int(smooth.max()) - int(smooth.min()) < MIN_INK_CONTRAST:
        return np.zeros(grey.shape, dtype=bool)
    return smooth <= otsu_threshold(smooth)


def background_level(grey: np.ndarray) -> int:
    """The paper's grey level: the median of the non-ink pixels (255 if there are none)."""
    paper = grey[~ink_mask(grey)]
    return int(np.median(paper)) if paper.size else 255


def preprocess(grey: np.ndarray, mode: str, size: tuple[int, int] = (128, 128)) -> np.ndarray:
    """Turn a grey scan (HxW uint8, dark ink on light paper) into a `size` (height, width) array."""
    _check_mode(mode)
    if grey.ndim != 2 or grey.dtype != np.uint8:
        raise ValueError(f"expected an HxW uint8 grey array, got {grey.dtype} {grey.shape}")
    height, width = int(size[0]), int(size[1])
    if mode == "paper":
        return _resize(grey, height, width)
    return normalize(grey, (height, width))


def normalize(grey: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The ``normalized`` mode: paper removed, ink cropped, centred, inverted, resized."""
    height, width = size
    mask = ink_mask(grey)
    if not mask.any():
        return np.zeros((height, width), dtype=np.uint8)
    paper = float(np.median(grey[~mask])) if (~mask).any() else 255.0
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    crop = grey[top:bottom, left:right].astype(np.float32)
    # Ink strength relative to this page's paper: 0 for paper, 255 for black ink.
    ink = np.clip((paper - crop) / max(paper, 1.0) * 255.0, 0, 255)
    ink[~mask[top:bottom, left:right]] = 0
    canvas = _centre_on_canvas(ink.astype(np.uint8), height / width)
    return _resize(canvas, height, width)


def _centre_on_canvas(ink: np.ndarray, aspect: float) -> np.ndarray:
    """Pad `ink` with zeros, centred, to the height/width ratio `aspect`, plus a small margin."""
    h, w = ink.shape
    canvas_w = max(w, round(h / aspect))
    canvas_h = max(h, round(canvas_w * aspect))
    canvas_w = max(canvas_w, round(canvas_h / aspect))
    pad = round(CANVAS_MARGIN * max(canvas_h, canvas_w))
    canvas_h, canvas_w = canvas_h + 2 * pad, canvas_w + 2 * round(pad / aspect)
    canvas = np.zeros((canvas_h, canvas_w), dtype=np.uint8)
    y, x = (canvas_h - h) // 2, (canvas_w - w) // 2
    canvas[y : y + h, x : x + w] = ink
    return canvas


def _blur(grey: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(grey).filter(ImageFilter.GaussianBlur(1)))


def _resize(grey: np.ndarray, height: int, width: int) -> np.ndarray:
    if grey.shape == (height, width):
        return grey.copy()
    img = Image.fromarray(grey).resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8).copy()


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown preprocessing mode {mode!r}; expected one of {MODES}")
