"""The ``deslant`` option of the ``normalized`` preprocessing: the writing's slant (the mean lean
of its near-upright strokes) is measured and sheared back, so a slanted hand or a skewed scan
reaches the network as the upright writing would."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from sigid.data.acquisition import apply
from sigid.data.images import load_image
from sigid.data.preprocess import (
    SLANT_MAX,
    check_preprocessing,
    ink_mask,
    prepare,
    preprocess,
    sheared,
    slant,
)

SIZE = (128, 256)
# CEDAR scans of slant (shift per row up) 0.26, 0.07, 0.52, -0.02, 0.69 and 0.61: upright to
# strongly slanted, genuine and forged.
SCANS = (
    "full_org/original_30_20.png",
    "full_forg/forgeries_33_2.png",
    "full_org/original_1_1.png",
    "full_org/original_26_20.png",
    "full_org/original_17_5.png",
    "full_org/original_55_24.png",
)


def _bars(lean: float, page: tuple[int, int] = (160, 420)) -> np.ndarray:
    """A mask of eight strokes 100 pixels tall leaning by `lean` (shift per row upwards), with
    a short horizontal joining stroke at the foot of each, as a row of written letters."""
    image = Image.new("L", (4 * page[1], 4 * page[0]), 0)
    draw = ImageDraw.Draw(image)
    foot = page[0] - 30
    for i in range(8):
        x = 60 + 40 * i
        draw.line([(4 * x, 4 * foot), (4 * (x + lean * 100), 4 * (foot - 100))], fill=255, width=12)
        draw.line([(4 * x, 4 * foot), (4 * (x + 25), 4 * foot)], fill=255, width=12)
    small = image.resize((page[1], page[0]), Image.Resampling.BOX)
    return np.asarray(small) >= 128


@pytest.mark.parametrize("lean", [-0.5, 0.0, 0.27, 0.6, 0.8])
def test_the_slant_of_leaning_strokes_is_their_lean(lean):
    """Letters leaning by `lean` (their feet, level joins, pull the mean a little)."""
    assert slant(_bars(lean)) == pytest.approx(lean, abs=0.05)


def test_a_flourish_flatter_than_the_limit_does_not_pull_the_slant():
    """A long stroke rising at 17 degrees under upright letters (a signature's underline) leans
    past `SLANT_MAX`: the slant stays the letters'; measured with it, it would not."""
    mask = _bars(0.0)
    image = Image.fromarray(mask.astype(np.uint8) * 255)
    ImageDraw.Draw(image).line([(20, 150), (410, 30)], fill=255, width=3)
    with_flourish = np.asarray(image) > 0
    assert slant(with_flourish) == pytest.approx(slant(mask), abs=0.03)
    assert 1 / math.tan(math.radians(17)) > SLANT_MAX


def test_masks_without_upright_edges_have_no_slant():
    assert slant(np.zeros((40, 60), dtype=bool)) == 0.0
    level = np.zeros((40, 300), dtype=bool)
    level[18:22, :] = True  # a level line across the whole mask: no ends, no upright edge
    assert slant(level) == 0.0


def test_shearing_back_stands_the_strokes_upright_and_keeps_the_ink():
    """The mask sheared back by its slant measures upright; the canvas widens to hold every
    row's shift and the ink's mass stays (bilinear resampling moves it, it does not lose it)."""
    mask = _bars(0.6).astype(np.float32)
    back = sheared(mask, -0.6)
    assert back.shape == (mask.shape[0], mask.shape[1] + math.ceil(0.6 * (mask.shape[0] - 1)))
    assert back.sum() == pytest.approx(mask.sum(), rel=0.01)
    assert slant(back >= 0.5) == pytest.approx(0.0, abs=0.05)


@pytest.mark.parametrize("name", SCANS)
def test_a_sheared_scan_measures_its_slant_plus_the_shear(cedar_root, name):
    """A real CEDAR scan sheared by the robustness protocol's middle strength (15 degrees,
    either way as drawn) measures the scan's own slant plus most of the shear's tangent (0.27;
    the level strokes the shear stands up a little are not all counted)."""
    grey = load_image(cedar_root / "signatures" / name)
    own = slant(ink_mask(grey))
    for seed in (0, 1):
        changed = slant(ink_mask(apply(grey, "shear", "middle", seed)))
        assert 0.19 <= abs(changed - own) <= math.tan(math.radians(15)), (name, seed)


def _moved(clean: np.ndarray, changed: np.ndarray) -> float:
    """How far `changed` is from `clean`: the L1 distance of the two blurred by 3 pixels (a
    stroke a pixel off is near, not as far as a missing one), over the clean ink's mass."""
    a, b = (
        np.asarray(Image.fromarray(x).filter(ImageFilter.GaussianBlur(3)), dtype=np.float64)
        for x in (clean, changed)
    )
    return float(np.abs(a - b).sum() / a.sum())


@pytest.mark.parametrize("name", SCANS)
def test_sheared_scans_come_out_nearer_the_clean_ones(cedar_root, name):
    """A CEDAR scan on a page wide enough that the shear cuts no ink off (the protocol's shear
    keeps the page's size, so near an edge it does), sheared by 15 degrees either way: its
    output moves from the clean scan's output at most half as much with the option as without
    (both with ``crop_main``: the sheared page's edge leaves a faint line on the paper)."""
    scan = load_image(cedar_root / "signatures" / name)
    margin = scan.shape[0] // 2
    grey = np.pad(scan, margin, constant_values=int(np.median(scan)))
    for seed in (0, 1):
        changed = apply(grey, "shear", "middle", seed)
        on = [
            preprocess(g, "normalized", SIZE, crop_main=True, deslant=True) for g in (grey, changed)
        ]
        off = [preprocess(g, "normalized", SIZE, crop_main=True) for g in (grey, changed)]
        assert _moved(*on) < 0.5 * _moved(*off), (name, seed)


def test_settings_keep_the_option_only_when_true_and_prepare_with_it(cedar_root):
    plain = {"mode": "normalized", "size": list(SIZE)}
    assert check_preprocessing({**plain, "deslant": False}) == plain
    assert check_preprocessing({**plain, "deslant": True}) == {**plain, "deslant": True}
    with pytest.raises(ValueError, match=r"deslant need\(s\) mode normalized"):
        check_preprocessing({"mode": "paper", "size": [8, 8], "deslant": True})
    grey = load_image(cedar_root / "signatures" / SCANS[0])
    on = prepare(grey, {**plain, "deslant": True})
    assert (on == preprocess(grey, "normalized", SIZE, deslant=True)).all()
    assert not (on == prepare(grey, plain)).all()


def test_uniform_strokes_are_drawn_from_the_deslanted_mask():
    """With ``uniform_strokes`` the mask itself is sheared back: leaning bars come out as the
    upright bars do."""
    grey = np.where(_bars(0.5), 30, 240).astype(np.uint8)
    upright = np.where(_bars(0.0), 30, 240).astype(np.uint8)
    on = preprocess(grey, "normalized", SIZE, deslant=True, uniform_strokes=True)
    goal = preprocess(upright, "normalized", SIZE, uniform_strokes=True)
    off = preprocess(grey, "normalized", SIZE, uniform_strokes=True)
    assert _moved(goal, on) < 0.5 * _moved(goal, off)
