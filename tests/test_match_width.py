"""The ``match_width`` option of the ``normalized`` preprocessing: the strokes' mean width
measured in scan pixels and brought to CEDAR's (`WIDTH_TARGET`) by grey dilation or erosion of
the ink, so a fine or a broad pen reaches the network near CEDAR's width; within a tolerance
nothing changes, and the change per side is capped."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image, ImageDraw

from sigid.data.acquisition import apply
from sigid.data.images import load_image
from sigid.data.preprocess import (
    WIDTH_MAX_STEP,
    WIDTH_TARGET,
    WIDTH_TOLERANCE,
    check_preprocessing,
    prepare,
    preprocess,
    stroke_width,
    width_matched,
)

SIZE = (128, 128)
SCANS = (
    "full_org/original_17_5.png",
    "full_forg/forgeries_33_2.png",
    "full_org/original_55_24.png",
)


def _curve(page: tuple[int, int]) -> np.ndarray:
    """Points of a signature-like wave across a `page` (height, width), as (x, y)."""
    xs = np.linspace(20, page[1] - 20, 400)
    return np.stack([xs, page[0] / 2 + page[0] / 4 * np.sin(xs / 25)], axis=1)


def _stroke(width: int, page: tuple[int, int] = (120, 300)) -> np.ndarray:
    """A boolean mask holding the wave drawn `width` pixels wide (drawn 4x finer and reduced,
    so its edges are as smooth as a scan's)."""
    image = Image.new("L", (4 * page[1], 4 * page[0]), 0)
    points = [tuple(p) for p in 4 * _curve(page)]
    ImageDraw.Draw(image).line(points, fill=255, width=4 * width, joint="curve")
    small = image.resize((page[1], page[0]), Image.Resampling.BOX)
    return np.asarray(small) >= 128


def _effective_width(ink: np.ndarray, page: tuple[int, int] = (120, 300)) -> float:
    """Ink mass (in full-ink pixels) per pixel of the wave's true length."""
    length = float(np.hypot(*np.diff(_curve(page), axis=0).T).sum())
    return float(ink.sum() / 255.0 / length)


def _line(width: int, degrees: float) -> np.ndarray:
    """A straight stroke `width` pixels wide and 300 long at `degrees`, drawn 4x finer and
    reduced (as `_stroke`)."""
    image = Image.new("L", (1600, 1600), 0)
    dx, dy = 600 * math.cos(math.radians(degrees)), 600 * math.sin(math.radians(degrees))
    ImageDraw.Draw(image).line([(800 - dx, 800 - dy), (800 + dx, 800 + dy)], 255, 4 * width)
    return np.asarray(image.resize((400, 400), Image.Resampling.BOX)) >= 128


@pytest.mark.parametrize("width", [2, 5, 9])
def test_stroke_width_measures_a_drawn_stroke_at_any_slant(width):
    """Within a tenth of the width (and a tenth of a pixel), level, slanted or curved."""
    assert abs(stroke_width(_stroke(width)) - width) < 0.1 * width + 0.1
    for degrees in (0, 15, 30, 45, 60, 90):
        assert abs(stroke_width(_line(width, degrees)) - width) < 0.1 * width + 0.1, degrees


def test_pinholes_do_not_make_a_stroke_look_thinner():
    """Specks of paper inside a stroke (a dry pen, a threshold's noise) add edges that are not
    the stroke's sides; filled, the stroke measures as a solid one."""
    solid = _line(6, 20)
    holed = solid.copy()
    ys, xs = np.nonzero(solid)
    inner = [
        (y, x) for y, x in zip(ys, xs, strict=True) if solid[y - 1 : y + 2, x - 1 : x + 2].all()
    ]
    for y, x in inner[::15]:
        holed[y, x] = False
    assert holed.sum() < solid.sum() - 50
    assert abs(stroke_width(holed) - stroke_width(solid)) < 0.1


def test_no_ink_has_no_width():
    assert stroke_width(np.zeros((20, 30), dtype=bool)) == 0.0
    ink = np.zeros((20, 30), dtype=np.float32)
    assert (width_matched(ink, ink > 0) == ink).all()


@pytest.mark.parametrize("width", [2, 3, 6, 7])
def test_a_thin_or_broad_stroke_is_brought_to_the_target_width(width):
    mask = _stroke(width)
    ink = np.where(mask, 255.0, 0.0).astype(np.float32)
    matched = width_matched(ink, mask)
    assert abs(_effective_width(ink) - WIDTH_TARGET) > 1.0
    assert abs(_effective_width(matched) - WIDTH_TARGET) < 0.6


def test_a_stroke_near_the_target_is_left_as_it_is():
    mask = _stroke(round(WIDTH_TARGET))
    assert abs(stroke_width(mask) - WIDTH_TARGET) / 2 < WIDTH_TOLERANCE
    ink = np.where(mask, 200.0, 0.0).astype(np.float32)
    assert width_matched(ink, mask) is ink


def test_the_change_is_capped_per_side():
    """A bar 20 pixels wide (a felt-tip) loses WIDTH_MAX_STEP pixels on each side, no more; a
    hairline grows by at most that much on each side."""
    page = np.zeros((100, 300), dtype=bool)
    broad = page.copy()
    broad[40:60, 20:280] = True
    matched = width_matched(np.where(broad, 255.0, 0.0).astype(np.float32), broad)
    full_rows = np.flatnonzero(np.isclose(matched[:, 150], 255))
    assert (full_rows[0], full_rows[-1] + 1) == (40 + WIDTH_MAX_STEP, 60 - WIDTH_MAX_STEP)
    hair = page.copy()
    hair[50, 20:280] = True
    grown = width_matched(np.where(hair, 255.0, 0.0).astype(np.float32), hair)
    assert (grown[:, 150] > 0).sum() <= 1 + 2 * (WIDTH_MAX_STEP + 1)
    assert (grown[:, 150] > 0).sum() >= 3


def test_dilated_ink_grows_past_the_crop_instead_of_being_cut():
    """Ink touching the crop's edge (as every crop's does) keeps its grown side: the dilated
    array is padded, and no ink of the input is lost at its border."""
    mask = np.zeros((40, 60), dtype=bool)
    mask[:, 0:2] = True  # a 2-pixel stroke along the left edge
    ink = np.where(mask, 255.0, 0.0).astype(np.float32)
    matched = width_matched(ink, mask)
    assert matched.shape[1] > ink.shape[1] and matched.shape[0] > ink.shape[0]
    pad = (matched.shape[1] - ink.shape[1]) // 2
    assert np.isclose(matched[pad : pad + 40, pad : pad + 2], 255).all()
    assert matched[:, :pad].max() > 0  # grown outward, beyond the old edge


def _moved(clean: np.ndarray, changed: np.ndarray) -> float:
    a, b = clean.astype(np.int64), changed.astype(np.int64)
    return float(np.abs(a - b).sum() / a.sum())


@pytest.mark.parametrize("transform", ["thinner", "thicker"])
def test_thinner_or_thicker_cedar_scans_come_out_nearer_the_clean_ones(cedar_root, transform):
    """Real CEDAR scans eroded or dilated by a pixel (middle strength): with the option the
    output moves less from the clean scan's output than without it (a tablet's black lines are
    not asked: without `ink_contrast` the grown lines are darker than CEDAR's)."""
    for name in SCANS:
        grey = load_image(cedar_root / "signatures" / name)
        changed = apply(grey, transform, "middle", 0)
        on = [preprocess(g, "normalized", SIZE, match_width=True) for g in (grey, changed)]
        off = [preprocess(g, "normalized", SIZE) for g in (grey, changed)]
        assert _moved(*on) < 0.85 * _moved(*off), name


def test_settings_keep_the_option_only_when_true_and_prepare_with_it(cedar_root):
    plain = {"mode": "normalized", "size": [128, 128]}
    assert check_preprocessing({**plain, "match_width": False}) == plain
    assert check_preprocessing({**plain, "match_width": True}) == {**plain, "match_width": True}
    with pytest.raises(ValueError, match=r"match_width need\(s\) mode normalized"):
        check_preprocessing({"mode": "paper", "size": [8, 8], "match_width": True})
    grey = apply(load_image(cedar_root / "signatures" / SCANS[0]), "thinner", "middle", 0)
    on = prepare(grey, {**plain, "match_width": True})
    assert (on == preprocess(grey, "normalized", SIZE, match_width=True)).all()
    assert not (on == prepare(grey, plain)).all()


def test_ink_contrast_stretches_the_width_matched_ink(cedar_root):
    """With `ink_contrast` too (as every document measurement used them), the stretch reads the
    grown or eroded ink, not the mask from before: a thinner scan (grown, so its ink array is
    larger than the mask) and a thicker one (eroded) both prepare, each unlike the option alone."""
    for transform in ("thinner", "thicker"):
        grey = apply(load_image(cedar_root / "signatures" / SCANS[0]), transform, "middle", 0)
        both = preprocess(grey, "normalized", SIZE, match_width=True, ink_contrast=True)
        alone = preprocess(grey, "normalized", SIZE, match_width=True)
        assert both.shape == SIZE and both.any(), transform
        assert not (both == alone).all(), transform
