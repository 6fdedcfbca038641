"""Preprocessing of grey signature arrays: pure functions shared by training and inference.

Two modes:
- ``paper``: a plain grey resize, as the paper's Keras pipeline did (dark ink on white);
- ``normalized``: the paper is removed with an Otsu threshold, the ink is cropped, centred on a
  canvas of the target aspect ratio, inverted (ink bright on a 0 background) and resized; ink
  darkness is measured against the page's own paper level (docs/design.md, "Preprocessing").

Seven options of ``normalized`` make it robust to what a real document adds (docs/data.md,
"Robust normalisation"); each is off unless its key is true, and a settings mapping without the
keys (every checkpoint made before them) preprocesses exactly as before:
- ``remove_lines``: long straight ink runs (ruling lines, a box's sides) leave the ink mask;
- ``crop_main``: specks are dropped and the crop is the main ink mass, not the farthest mark;
- ``ink_contrast``: the ink's darkness is stretched so its dark end is full ink (faint pens);
- ``uniform_strokes``: the ink is redrawn from its skeleton at one width (in output pixels) and
  one darkness, so pen width, pressure, ink darkness and scan resolution no longer reach the
  network;
- ``remove_stamps``: on a colour scan, ink of a second colour (a stamp, a coloured form's print)
  becomes paper (`sigid.data.inks`); a grey scan is left as it is;
- ``match_width``: the strokes are thinned or thickened (grey erosion or dilation of the ink)
  to CEDAR's mean stroke width in scan pixels, so a fine pen, a tablet or a felt-tip reaches the
  network near CEDAR's width while the strokes keep their shape and darkness;
- ``deslant``: the writing's slant (`slant`: the mean lean of its near-upright strokes) is
  sheared back, so a slanted hand or a skewed scan reaches the network upright.

`preprocess` takes a grey (HxW) or colour (HxWx3 RGB) scan; a colour one is read as its grey
(`sigid.data.inks.luminance`, as `load_image` reads a colour file) unless ``remove_stamps``.
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageFilter

from sigid.data.inks import luminance, pen_grey

Mode = Literal["paper", "normalized"]
MODES: tuple[str, ...] = ("paper", "normalized")

# Grey levels between the darkest and lightest pixel below which an image holds no ink.
MIN_CONTRAST = 8
# A page whose blurred grey levels span less than this holds no ink worth the name.
MIN_INK_CONTRAST = 40
# Fraction of the cropped ink box left as empty border on the canvas.
CANVAS_MARGIN = 0.04

# The robustness options of ``normalized`` (all off by default) and their settings' keys.
OPTIONS: tuple[str, ...] = (
    "remove_lines", "crop_main", "ink_contrast", "uniform_strokes", "remove_stamps",
    "match_width", "deslant",
)  # fmt: skip
# remove_lines: a horizontal (vertical) ink run at least this fraction of the ink's width
# (height), straight at one of the slants (degrees), is a printed line; runs are measured on the
# mask widened by LINE_WIDEN pixels across the line (a line between two slants still runs on)
# with gaps of up to 2 LINE_GAP pixels along it closed (a thin line breaks up under Otsu).
LINE_FRACTION = (0.6, 0.75)  # (horizontal, vertical)
LINE_MIN_PIXELS = 25
LINE_GAP = 2  # on the halved mask (line_mask): 4 pixels of the scan
LINE_WIDEN = 1  # on the halved mask: 2 pixels of the scan
LINE_SLANTS_DEG = (-3.0, -2.25, -1.5, -0.75, 0.0, 0.75, 1.5, 2.25, 3.0)
# remove_lines: of the band `line_mask` finds, only the line itself leaves the ink (`line_core`):
# the band's pixels on a run along the line of at least CORE_RUN pixels, measured with the band
# widened by one pixel across it (a line slanted by 3 degrees still runs on); a stroke crossing
# the band keeps its ink beside the line. Where it crosses the line itself it keeps its ink
# there too (`crossings`): a run of line pixels across the line at most CROSSING_RUN pixels long,
# with the stroke's ink touching both of its ends within CROSSING_REACH pixels along the line
# (strokes at 45 degrees or steeper).
CORE_RUN = 24
CROSSING_RUN = 8
CROSSING_REACH = 6
# crop_main: a speck is an ink pixel with fewer ink pixels than this in its 5x5 neighbourhood.
SPECK_NEIGHBOURS = 6
# crop_main: the mask is labelled on a grid of cells of about this fraction of its longer side;
# parts holding at least MAJOR_MASS of the ink are the signature, the others stay only within
# NEAR_CELLS cells of the signature's box.
CELL_FRACTION = 1 / 48
MAJOR_MASS = 0.15
NEAR_CELLS = 2
# ink_contrast: this percentile of the ink's darkness is brought to INK_LEVEL, the median of
# that percentile over CEDAR's clean scans (115 of them: 5-95 % range 112..166), so a network
# trained on CEDAR sees clean scans much as before and a faint pen or a tablet's black strokes
# at CEDAR's darkness.
INK_PERCENTILE = 90.0
INK_LEVEL = 135.0
# uniform_strokes: the skeleton of the final ink mask is drawn STROKE_WIDTH pixels of the output
# wide, at STROKE_LEVEL (INK_LEVEL: CEDAR's own darkness, so the option changes a CEDAR scan's
# grey levels little), anti-aliased by drawing on a grid STROKE_SUPERSAMPLE times finer than the
# output and averaging its blocks.
STROKE_WIDTH = 2.0
STROKE_LEVEL = INK_LEVEL
STROKE_SUPERSAMPLE = 4
# match_width: the ink's stroke width (`stroke_width`, in scan pixels) is brought to WIDTH_TARGET,
# the median over CEDAR's clean scans (110 of them: 5-95 % range 3.9..5.7), by
# grey dilation or erosion of the ink's darkness, a fractional step blending two whole ones; a
# change below WIDTH_TOLERANCE per side is not made, and at most WIDTH_MAX_STEP pixels per side.
WIDTH_TARGET = 4.7
WIDTH_TOLERANCE = 0.1
WIDTH_MAX_STEP = 2.0
# deslant: the slant (horizontal shift per row up, the tangent of the strokes' angle from
# upright) is the strength-weighted mean lean of the edges of the ink mask blurred by SLANT_BLUR
# pixels whose gradient is at least SLANT_EDGE of the largest, among leans up to SLANT_MAX (two
# pixels across per pixel up: 63 degrees).
SLANT_BLUR = 1.5
SLANT_EDGE = 0.2
SLANT_MAX = 2.0


def check_preprocessing(settings: Any) -> dict[str, Any]:
    """Preprocessing settings ``{"mode", "size"}`` as plain values: a known mode and a (height,
    width) of positive whole numbers, plus any of `OPTIONS` that is true (booleans; a false
    one is left out, so settings with the same effect compare equal to those of a checkpoint
    made before the options). The ValueError says which part is wrong; callers say where the
    settings came from (a checkpoint, a request)."""
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
    checked: dict[str, Any] = {"mode": str(mode), "size": [int(v) for v in size]}
    return {**checked, **options_of(settings)}


def options_of(settings: Mapping[str, Any]) -> dict[str, bool]:
    """The robustness options set true in `settings` (``{}`` for settings without them); a
    ValueError for one that is not a boolean or that a ``paper`` mode cannot apply."""
    chosen = {}
    for key in OPTIONS:
        value = settings.get(key, False)
        if not isinstance(value, bool):
            raise ValueError(f"{key}={value!r} is not true or false")
        if value:
            chosen[key] = True
    if chosen and settings.get("mode") != "normalized":
        raise ValueError(
            f"{', '.join(chosen)} need(s) mode normalized, not {settings.get('mode')!r}"
        )
    return chosen


def check_options(names: Sequence[str], label: str = "preprocessing option") -> list[str]:
    """`names`, each one of `OPTIONS`; a ValueError names the unknown ones (`label`: what the
    caller calls them) and the choices."""
    unknown = [str(name) for name in names if name not in OPTIONS]
    if unknown:
        raise ValueError(
            f"unknown {label}(s) {', '.join(unknown)}; choose from {', '.join(OPTIONS)}"
        )
    return list(names)


def with_options(settings: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """`settings` (checked) with the robustness options `names` turned on: a checkpoint's
    preprocessing made sturdier for documents at inference, the network unchanged. A ValueError
    names an unknown option, or a ``paper`` mode that cannot apply them."""
    return check_preprocessing({**settings, **{name: True for name in check_options(names)}})


def prepare(grey: np.ndarray, settings: Mapping[str, Any]) -> np.ndarray:
    """`preprocess` as a settings mapping (a checkpoint's ``preprocessing``) says: its mode, its
    size and the options it sets."""
    size = settings["size"]
    return preprocess(grey, settings["mode"], (int(size[0]), int(size[1])), **options_of(settings))


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


def preprocess(
    grey: np.ndarray,
    mode: str,
    size: tuple[int, int] = (128, 128),
    *,
    remove_lines: bool = False,
    crop_main: bool = False,
    ink_contrast: bool = False,
    uniform_strokes: bool = False,
    remove_stamps: bool = False,
    match_width: bool = False,
    deslant: bool = False,
) -> np.ndarray:
    """Turn a scan (HxW uint8 grey or HxWx3 RGB, dark ink on light paper) into a `size`
    (height, width) array, with the robustness options of ``normalized`` (module docstring) as
    asked."""
    _check_mode(mode)
    if grey.dtype != np.uint8 or not (grey.ndim == 2 or (grey.ndim == 3 and grey.shape[2] == 3)):
        raise ValueError(
            f"expected an HxW uint8 grey or HxWx3 RGB array, got {grey.dtype} {grey.shape}"
        )
    if grey.ndim == 3:
        rgb, grey = grey, luminance(grey)
        if remove_stamps and mode == "normalized":
            grey = pen_grey(rgb, grey, ink_mask(grey))
    height, width = int(size[0]), int(size[1])
    if mode == "paper":
        return _resize(grey, height, width)
    return normalize(
        grey,
        (height, width),
        remove_lines=remove_lines,
        crop_main=crop_main,
        ink_contrast=ink_contrast,
        uniform_strokes=uniform_strokes,
        match_width=match_width,
        deslant=deslant,
    )


def normalize(
    grey: np.ndarray,
    size: tuple[int, int],
    *,
    remove_lines: bool = False,
    crop_main: bool = False,
    ink_contrast: bool = False,
    uniform_strokes: bool = False,
    match_width: bool = False,
    deslant: bool = False,
) -> np.ndarray:
    """The ``normalized`` mode: paper removed, ink cropped, centred, inverted, resized."""
    height, width = size
    mask = ink_mask(grey)
    if not mask.any():
        return np.zeros((height, width), dtype=np.uint8)
    paper = float(np.median(grey[~mask])) if (~mask).any() else 255.0
    if remove_lines:
        mask = without_lines(mask)
    if crop_main:
        mask = main_mass(mask)
    if not mask.any():
        return np.zeros((height, width), dtype=np.uint8)
    box = _box(mask)
    crop_mask = mask[box]
    shear = slant(crop_mask) if deslant else 0.0
    if uniform_strokes:
        if shear:
            upright = sheared(crop_mask.astype(np.float32), -shear) >= 0.5
            crop_mask = upright[_box(upright)]
        return uniform_ink(crop_mask, (height, width))
    crop = grey[box].astype(np.float32)
    # Ink strength relative to this page's paper: 0 for paper, 255 for black ink.
    ink = np.clip((paper - crop) / max(paper, 1.0) * 255.0, 0, 255)
    ink[~crop_mask] = 0
    if shear:
        ink = sheared(ink, -shear)
        ink = ink[_box(ink)]
        crop_mask = ink > 0
    if match_width:
        ink = width_matched(ink, crop_mask)
        crop_mask = ink > 0
    if ink_contrast:
        ink = stretch_ink(ink, crop_mask)
    canvas = _centre_on_canvas(ink.astype(np.uint8), height / width)
    return _resize(canvas, height, width)


def line_mask(mask: np.ndarray) -> np.ndarray:
    """The pixels of `mask` on long straight lines, horizontal or vertical within
    `LINE_SLANTS_DEG` (`LINE_FRACTION` of the ink's extent, at least `LINE_MIN_PIXELS`): a
    morphological opening with a line, as runs of the mask sheared by each slant and widened
    across the line (so a line between two slants still runs on). The search runs on the mask
    halved (2x2 blocks: any ink), four times cheaper; its bands are mapped back."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return np.zeros_like(mask)
    extent = (cols[-1] + 1 - cols[0], rows[-1] + 1 - rows[0])
    h, w = mask.shape
    half = np.zeros((-(-h // 2) * 2, -(-w // 2) * 2), dtype=bool)
    half[:h, :w] = mask
    half = half.reshape(half.shape[0] // 2, 2, half.shape[1] // 2, 2).any(axis=(1, 3))
    bands = np.zeros_like(half)
    for axis, (fraction, span) in enumerate(zip(LINE_FRACTION, extent, strict=True)):
        along = half if axis == 0 else half.T
        length = max(LINE_MIN_PIXELS, round(fraction * span)) // 2
        found = np.zeros_like(along)
        for slant in LINE_SLANTS_DEG:
            found |= _slanted_band(along, length, math.tan(math.radians(slant)))
        bands |= found if axis == 0 else found.T
    full = np.repeat(np.repeat(bands, 2, axis=0), 2, axis=1)[:h, :w]
    return mask & full


def without_lines(mask: np.ndarray) -> np.ndarray:
    """`mask` with its printed lines taken out (``remove_lines``): the lines themselves
    (`line_core` of `line_mask`), but where a stroke crosses them (`crossings`)."""
    lines = line_core(line_mask(mask))
    kept = mask & ~lines
    return kept | crossings(kept, lines)


def line_core(band: np.ndarray) -> np.ndarray:
    """The pixels of `band` (`line_mask`'s) on the lines themselves, not on strokes crossing
    them: on a horizontal (vertical) run of at least `CORE_RUN` pixels of the band widened by
    one pixel across the run's direction."""
    core = np.zeros_like(band)
    for axis in (0, 1):
        along = band if axis == 0 else band.T
        widened = along.copy()
        widened[1:] |= along[:-1]
        widened[:-1] |= along[1:]
        runs = _long_runs(widened, CORE_RUN) & along
        core |= runs if axis == 0 else runs.T
    return core


def crossings(kept: np.ndarray, lines: np.ndarray) -> np.ndarray:
    """The pixels of `lines` where a stroke of `kept` crosses a line: runs of line pixels
    across the line (down a column for a horizontal line, along a row for a vertical one) no
    longer than `CROSSING_RUN`, with ink of `kept` just past both ends (within
    `CROSSING_REACH` pixels along the line), so a removed line leaves no gap in the strokes."""
    found = np.zeros_like(lines)
    for axis in (0, 1):
        across, ink = (lines.T, kept.T) if axis == 0 else (lines, kept)
        # `across`'s rows run across the line: for axis 0 they are the columns of the page
        h, w = across.shape
        row, first, past = _runs(across)
        short = (past - first) <= CROSSING_RUN
        row, first, past = row[short], first[short], past[short]
        inside = (first > 0) & (past < w)
        row, first, past = row[inside], first[inside], past[inside]
        near = np.zeros_like(ink)
        for step in range(-CROSSING_REACH, CROSSING_REACH + 1):
            lo, hi = max(step, 0), h + min(step, 0)
            near[lo:hi] |= ink[lo - step : hi - step]
        bridged = near[row, first - 1] & near[row, past]
        marks = np.zeros((h, w + 1), dtype=np.int32)
        np.add.at(marks, (row[bridged], first[bridged]), 1)
        np.add.at(marks, (row[bridged], past[bridged]), -1)
        runs = (np.cumsum(marks, axis=1)[:, :w] > 0) & across
        found |= runs.T if axis == 0 else runs
    return found


def _slanted_band(mask: np.ndarray, length: int, slope: float) -> np.ndarray:
    """Where `mask`'s rows hold runs of at least `length` once each column is shifted by
    `slope` times its index (a line of that slope becomes a row): the band they cover,
    `LINE_WIDEN` pixels either side included (strokes crossing a line go with it)."""
    ys, xs = np.nonzero(mask)
    shift = np.rint(slope * np.arange(mask.shape[1])).astype(np.int64)
    shift -= shift.min()
    sheared = np.zeros((mask.shape[0] + int(shift.max()), mask.shape[1]), dtype=bool)
    sheared[ys + shift[xs], xs] = True
    widened = sheared.copy()
    for step in range(1, LINE_WIDEN + 1):
        widened[step:] |= sheared[:-step]
        widened[:-step] |= sheared[step:]
    # gaps of up to 2 LINE_GAP pixels closed (a thin printed line breaks up under Otsu)
    closed = widened.copy()
    for step in range(1, LINE_GAP + 1):
        closed[:, step:] |= widened[:, :-step]
        closed[:, :-step] |= widened[:, step:]
    runs = _long_runs(closed, length + 2 * LINE_GAP) & widened
    if not runs.any():
        return np.zeros_like(mask)
    band = runs.copy()
    for step in range(1, LINE_WIDEN + 1):
        band[step:] |= runs[:-step]
        band[:-step] |= runs[step:]
    grid_y, grid_x = np.indices(mask.shape)
    return band[grid_y + shift[grid_x], grid_x]


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The runs of True pixels along `mask`'s rows: (row, first pixel, one past the last)."""
    h, w = mask.shape
    padded = np.zeros((h, w + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    steps = np.diff(padded, axis=1)  # +1 at a run's first pixel, -1 just past its last
    starts, ends = np.argwhere(steps == 1), np.argwhere(steps == -1)
    return starts[:, 0], starts[:, 1], ends[:, 1]  # argwhere is row-major: the pairs line up


def _long_runs(mask: np.ndarray, length: int) -> np.ndarray:
    """The pixels of `mask` in a run of at least `length` True pixels along a row."""
    h, w = mask.shape
    row, first, past = _runs(mask)
    long = (past - first) >= length
    marks = np.zeros((h, w + 1), dtype=np.int32)
    np.add.at(marks, (row[long], first[long]), 1)
    np.add.at(marks, (row[long], past[long]), -1)
    return np.cumsum(marks, axis=1)[:, :w] > 0


def main_mass(mask: np.ndarray) -> np.ndarray:
    """`mask` without specks (`SPECK_NEIGHBOURS`) and without the minor parts far from the
    signature: parts are labelled on a coarse grid (`CELL_FRACTION`); those holding at least
    `MAJOR_MASS` of the ink are the signature, and a smaller one stays only where it touches
    their box grown by `NEAR_CELLS` cells (an i-dot, a short word), so what sets the crop is
    the signature, not dust, salt-and-pepper noise or a blot beside it."""
    counts = _window_sum(mask, 2)
    kept = mask & (counts >= SPECK_NEIGHBOURS)
    if not kept.any():
        return kept
    cell = max(2, round(CELL_FRACTION * max(mask.shape)))
    gh, gw = -(-mask.shape[0] // cell), -(-mask.shape[1] // cell)
    padded = np.zeros((gh * cell, gw * cell), dtype=np.int64)
    padded[: mask.shape[0], : mask.shape[1]] = kept
    mass = padded.reshape(gh, cell, gw, cell).sum(axis=(1, 3))
    labels, count = _label(mass > 0)
    if count <= 1:
        return kept
    weight = np.bincount(labels.ravel(), weights=mass.ravel(), minlength=count + 1)
    major = weight >= MAJOR_MASS * weight[1:].sum()
    major[0] = False
    if not major.any():  # many small parts, none the signature's: all of them are
        return kept
    rows, cols = np.nonzero(major[labels])
    near = np.zeros((gh, gw), dtype=bool)
    near[
        max(rows.min() - NEAR_CELLS, 0) : rows.max() + NEAR_CELLS + 1,
        max(cols.min() - NEAR_CELLS, 0) : cols.max() + NEAR_CELLS + 1,
    ] = True
    keep = major.copy()
    keep[np.unique(labels[near & (labels > 0)])] = True
    cells = keep[labels]
    full = np.repeat(np.repeat(cells, cell, axis=0), cell, axis=1)
    return kept & full[: mask.shape[0], : mask.shape[1]]


def _window_sum(mask: np.ndarray, radius: int) -> np.ndarray:
    """How many True pixels of `mask` lie in each pixel's (2 radius + 1)-square window."""
    total = np.pad(mask.astype(np.int32), radius).cumsum(axis=0).cumsum(axis=1)
    total = np.pad(total, ((1, 0), (1, 0)))
    k = 2 * radius + 1
    h, w = mask.shape
    return total[k : k + h, k : k + w] - total[:h, k : k + w] - total[k : k + h, :w] + total[:h, :w]


def _label(grid: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected components of a small boolean grid: (labels, 0 for background, and count)."""
    labels = np.zeros(grid.shape, dtype=np.int64)
    count = 0
    h, w = grid.shape
    for start in zip(*np.nonzero(grid), strict=True):
        if labels[start]:
            continue
        count += 1
        labels[start] = count
        stack = [start]
        while stack:
            y, x = stack.pop()
            for ny in range(max(y - 1, 0), min(y + 2, h)):
                for nx in range(max(x - 1, 0), min(x + 2, w)):
                    if grid[ny, nx] and not labels[ny, nx]:
                        labels[ny, nx] = count
                        stack.append((ny, nx))
    return labels, count


def skeleton(mask: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning of a boolean mask to lines one pixel wide (vectorised: each pass
    strips one layer from every side). Only the mask's bounding box is thinned, so a signature
    on a large page costs what its ink's box costs."""
    mask = np.asarray(mask, dtype=bool)
    out = np.zeros(mask.shape, dtype=bool)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return out
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    skel = np.pad(mask[top:bottom, left:right], 1)
    h, w = bottom - top, right - left
    # P2..P9 clockwise from the pixel above, as (row, column) offsets into the padded mask
    offsets = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))
    while True:
        changed = False
        for step in (0, 1):
            p = skel[1:-1, 1:-1]
            n = [skel[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy, dx in offsets]
            count = sum(v.astype(np.uint8) for v in n)
            ring = [*n, n[0]]
            crossings = sum((~a & b).astype(np.uint8) for a, b in itertools.pairwise(ring))
            p2, p4, p6, p8 = n[0], n[2], n[4], n[6]
            if step == 0:
                keep = ~(p2 & p4 & p6) & ~(p4 & p6 & p8)
            else:
                keep = ~(p2 & p4 & p8) & ~(p2 & p6 & p8)
            remove = p & (count >= 2) & (count <= 6) & (crossings == 1) & keep
            if remove.any():
                skel[1:-1, 1:-1] = p & ~remove
                changed = True
        if not changed:
            out[top:bottom, left:right] = skel[1:-1, 1:-1]
            return out


def stretch_ink(ink: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`ink` (darkness 0..255) scaled so the `INK_PERCENTILE` of its `mask` pixels is
    `INK_LEVEL`: a faint pen, thin strokes or a tablet's black lines reach the network as dark
    as CEDAR's pens."""
    if not mask.any():
        return ink
    top = float(np.percentile(ink[mask], INK_PERCENTILE))
    if top <= 0:
        return ink
    return np.clip(ink * (INK_LEVEL / top), 0, 255)


def stroke_width(mask: np.ndarray) -> float:
    """The mean stroke width of `mask` in its pixels (0 for no ink): twice its area over its
    perimeter (a long stroke's two sides), the perimeter by the Cauchy-Crofton formula over the
    edges crossed along rows, columns and both diagonals, so a slanted stroke measures as a
    level one. Pinholes (a paper pixel with at least 6 ink neighbours) are filled first."""
    mask = np.asarray(mask, dtype=bool)
    # a paper pixel's 3x3 window sum is its count of ink neighbours
    filled = np.pad(mask | (_window_sum(mask, 1) >= 6), 1)
    level = (filled[:, 1:] != filled[:, :-1]).sum() + (filled[1:] != filled[:-1]).sum()
    down, up = filled[1:, 1:] != filled[:-1, :-1], filled[1:, :-1] != filled[:-1, 1:]
    slanted = down.sum() + up.sum()
    perimeter = math.pi / 8 * (float(level) + float(slanted) / math.sqrt(2))
    return 2 * float(filled.sum()) / perimeter if perimeter else 0.0


def width_matched(ink: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`ink` (darkness 0..255 on 0 paper) with its strokes made `WIDTH_TARGET` wide: grey
    dilation for thin strokes, erosion for broad ones, by half the width's shortfall per side,
    one pixel per step with a cross and a 3x3 square in turn (an octagon: a slanted stroke
    grows about as a level one does); the fraction of a pixel is the blend of the two whole
    steps around it. Dilated ink is padded first, so strokes at the crop's edge grow outward."""
    width = stroke_width(mask)
    change = (WIDTH_TARGET - width) / 2 if width else 0.0
    if abs(change) < WIDTH_TOLERANCE:
        return ink
    step = min(abs(change), WIDTH_MAX_STEP)
    whole, part = int(step), step - int(step)
    grow = change > 0
    image = np.clip(np.rint(ink), 0, 255).astype(np.float32)
    if grow:
        image = np.pad(image, whole + 1)
    for i in range(whole):
        image = _rank_step(image, grow, square=i % 2 == 1)
    if not part:
        return image
    return (1 - part) * image + part * _rank_step(image, grow, square=whole % 2 == 1)


def _rank_step(image: np.ndarray, grow: bool, square: bool) -> np.ndarray:
    """One step of grey dilation (`grow`: the maximum) or erosion (the minimum) over a pixel's
    cross (itself and its 4 neighbours) or its 3x3 `square`; the border counts as paper."""
    h, w = image.shape
    padded = np.pad(image, 1)
    pick = np.maximum if grow else np.minimum
    out = image.copy()
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if (dy or dx) and (square or not (dy and dx)):
                out = pick(out, padded[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w])
    return out


def uniform_ink(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The ink `mask` redrawn from its `skeleton` on a `size` output, `STROKE_WIDTH` output
    pixels wide at `STROKE_LEVEL`: the skeleton is cropped and centred as ``normalized`` crops
    and centres the ink (its box, not the mask's, so a broad pen does not shrink the
    signature); each skeleton pixel and each segment to an 8-neighbour is marked on a grid
    `STROKE_SUPERSAMPLE` times finer than the output (where `_resize` would put it), grown by
    a disc and averaged back to the output, so the width is the same whatever the scan's
    resolution or pen. A scan much finer than that grid is thinned at the grid's resolution
    (blocks of the mask holding any ink are one pixel), so a 600 dpi page costs what a small
    scan costs.
    STROKE_LEVEL is INK_LEVEL, not 255: a CEDAR scan's strokes already reach the network at about
    that darkness, and no darkness is known once the pen's is dropped."""
    height, width = size
    out = np.zeros((height, width), dtype=np.uint8)
    fine = STROKE_SUPERSAMPLE
    canvas_h, canvas_w, _, _ = _canvas_box(*mask.shape, height / width)
    pool = max(1, int(min(canvas_h / height, canvas_w / width) / fine))
    if pool > 1:
        h, w = mask.shape
        blocks = np.zeros((-(-h // pool) * pool, -(-w // pool) * pool), dtype=bool)
        blocks[:h, :w] = mask
        mask = blocks.reshape(len(blocks) // pool, pool, -1, pool).any(axis=(1, 3))
    lines = skeleton(mask)
    if not lines.any():
        return out
    lines = lines[_box(lines)]
    # the skeleton's box in the scan's pixels, from its first pixel's centre to its last's
    box = [(n - 1) * pool + 1 for n in lines.shape]
    canvas_h, canvas_w, y0, x0 = _canvas_box(*box, height / width)
    scale = np.array([fine * height / canvas_h, fine * width / canvas_w])
    ys, xs = np.nonzero(lines)
    points = [np.stack([ys, xs], axis=1).astype(np.float64)]
    # a segment to each 8-neighbour (right, down-left, down, down-right), dense on the fine grid
    samples = max(2, math.ceil(float(scale.max()) * pool * math.sqrt(2)) + 1)
    steps = np.linspace(0.0, 1.0, samples)[:, None, None]
    for dy, dx in ((0, 1), (1, -1), (1, 0), (1, 1)):
        h, w = lines.shape
        here = lines[: h - dy, max(-dx, 0) : w - max(dx, 0)]
        there = lines[dy:, max(dx, 0) : w - max(-dx, 0)]
        py, px = np.nonzero(here & there)
        start = np.stack([py, px + max(-dx, 0)], axis=1).astype(np.float64)
        points.append((start[None] + steps * np.array([dy, dx], dtype=np.float64)).reshape(-1, 2))
    raw = np.concatenate(points) * pool
    # pixel centres map as `_resize` (Pillow) maps them: u = (c + 0.5) * scale - 0.5; a disc
    # an even number of fine pixels across is centred half a pixel before its mark
    span = max(1, round(STROKE_WIDTH * fine))
    lead = span // 2 - (span - 1) / 2
    grid = np.rint((raw + np.array([y0 + 0.5, x0 + 0.5])) * scale - 0.5 + lead).astype(np.int64)
    marks = np.zeros((height * fine, width * fine), dtype=bool)
    inside = (grid >= 0).all(axis=1) & (grid < marks.shape).all(axis=1)
    marks[grid[inside, 0], grid[inside, 1]] = True
    drawn = _grow(marks, span)
    cover = drawn.reshape(height, fine, width, fine).mean(axis=(1, 3))
    return np.rint(cover * STROKE_LEVEL).astype(np.uint8)


def _grow(marks: np.ndarray, span: int) -> np.ndarray:
    """`marks` dilated by a disc `span` pixels across: offsets from -(span // 2) to
    (span - 1) // 2, so an even disc's centre lies half a pixel before the mark."""
    grown = marks.copy()
    centre, shift = (span - 1) / 2, span // 2
    h, w = marks.shape
    for i in range(span):
        for j in range(span):
            dy, dx = i - shift, j - shift
            if (dy or dx) and (i - centre) ** 2 + (j - centre) ** 2 <= (span / 2) ** 2:
                src = marks[max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)]
                grown[max(dy, 0) : h - max(-dy, 0), max(dx, 0) : w - max(-dx, 0)] |= src
    return grown


def _canvas_box(h: int, w: int, aspect: float) -> tuple[int, int, int, int]:
    """(height, width, top, left) of the canvas `_centre_on_canvas` makes for an `h` x `w` crop,
    and where the crop lies on it."""
    canvas_w = max(w, round(h / aspect))
    canvas_h = max(h, round(canvas_w * aspect))
    canvas_w = max(canvas_w, round(canvas_h / aspect))
    pad = round(CANVAS_MARGIN * max(canvas_h, canvas_w))
    canvas_h, canvas_w = canvas_h + 2 * pad, canvas_w + 2 * round(pad / aspect)
    y, x = (canvas_h - h) // 2, (canvas_w - w) // 2
    return canvas_h, canvas_w, y, x


def slant(mask: np.ndarray) -> float:
    """The writing's slant in `mask`: its strokes' mean lean, as the shift per row upwards
    (positive: leaning right). Each edge pixel of the mask blurred by `SLANT_BLUR` (its gradient
    at least `SLANT_EDGE` of the largest) gives its stroke's direction, perpendicular to the
    gradient; the leans within `SLANT_MAX` (strokes nearer upright than level: a level stroke
    says nothing of slant) are averaged, weighted by the gradient's strength. 0.0 for a mask
    without such edges."""
    if not mask.any():
        return 0.0
    blurred = Image.fromarray(mask.astype(np.uint8) * 255).filter(
        ImageFilter.GaussianBlur(SLANT_BLUR)
    )
    gy, gx = np.gradient(np.asarray(blurred, dtype=np.float32))
    strength = np.hypot(gx, gy)
    edges = (strength >= SLANT_EDGE * float(strength.max())) & (np.abs(gx) > 1e-6)
    # a stroke leaning right by t (x grows by t per row up) has its gradient along (1, t)
    lean = gy[edges] / gx[edges]
    near_upright = np.abs(lean) <= SLANT_MAX
    if not near_upright.any():
        return 0.0
    return float(np.average(lean[near_upright], weights=strength[edges][near_upright]))


def sheared(image: np.ndarray, shift: float) -> np.ndarray:
    """`image` (float) sheared horizontally: each row moved by `shift` times its height above
    the bottom row (bilinear), on a canvas widened to hold it all."""
    h, w = image.shape
    extra = abs(shift) * (h - 1)
    out_w = w + math.ceil(extra)
    # out(x, y) = in(x - shift * (h - 1 - y) - offset, y), offset keeping every row on the canvas
    offset = extra if shift < 0 else 0.0
    coefficients = (1.0, shift, -shift * (h - 1) - offset, 0.0, 1.0, 0.0)
    out = Image.fromarray(image.astype(np.float32)).transform(  # a float32 array: mode F
        (out_w, h), Image.Transform.AFFINE, coefficients, resample=Image.Resampling.BILINEAR
    )
    return np.asarray(out, dtype=np.float32)


def _box(image: np.ndarray) -> tuple[slice, slice]:
    """The (rows, columns) slices of the box of `image`'s nonzero pixels (all of it if none)."""
    rows, cols = np.flatnonzero(image.any(axis=1)), np.flatnonzero(image.any(axis=0))
    if rows.size == 0:
        return slice(None), slice(None)
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def _centre_on_canvas(ink: np.ndarray, aspect: float) -> np.ndarray:
    """Pad `ink` with zeros, centred, to the height/width ratio `aspect`, plus a small margin."""
    h, w = ink.shape
    canvas_h, canvas_w, y, x = _canvas_box(h, w, aspect)
    canvas = np.zeros((canvas_h, canvas_w), dtype=np.uint8)
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
