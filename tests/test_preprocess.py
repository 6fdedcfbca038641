"""sigid.data.preprocess: the ``paper`` and ``normalized`` modes, and their building blocks."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from sigid.data.images import load_image
from sigid.data.preprocess import (
    MODES,
    background_level,
    background_value,
    check_preprocessing,
    ink_mask,
    no_ink_reason,
    normalize,
    otsu_threshold,
    preprocess,
)

SIZE = (128, 128)


def _page(
    paper: int = 245,
    ink: int = 30,
    shape: tuple[int, int] = (300, 500),
    offset: tuple[int, int] = (0, 0),
) -> np.ndarray:
    """A signature-like scribble (loops, strokes and a dot) on a `shape` page of grey `paper`.

    `offset` (dy, dx) moves the whole signature; it stays inside the page for |offset| <= 60.
    """
    height, width = shape
    img = Image.new("L", (width, height), paper)
    draw = ImageDraw.Draw(img)
    dy, dx = offset
    top, left = height // 2 - 50 + dy, width // 2 - 140 + dx

    def pt(y: float, x: float) -> tuple[float, float]:
        return (left + x, top + y)

    draw.line([pt(60, 0), pt(10, 40), pt(90, 70), pt(20, 120), pt(70, 170)], fill=ink, width=4)
    draw.ellipse([pt(25, 170), pt(85, 230)], outline=ink, width=4)
    draw.line([pt(95, 10), pt(80, 280)], fill=ink, width=3)
    draw.ellipse([pt(0, 250), pt(8, 258)], fill=ink)
    return np.asarray(img).copy()


def _rectangle(
    box_hw: tuple[int, int],
    shape: tuple[int, int] = (300, 400),
    at: tuple[int, int] | None = None,
    paper: int = 245,
    ink: int = 20,
) -> np.ndarray:
    """A filled `box_hw` ink rectangle with its top-left corner at `at` (default: centred)."""
    grey = np.full(shape, paper, dtype=np.uint8)
    h, w = box_hw
    y, x = at if at is not None else ((shape[0] - h) // 2, (shape[1] - w) // 2)
    grey[y : y + h, x : x + w] = ink
    return grey


def _bbox(mask: np.ndarray) -> tuple[int, int]:
    """(height, width) of the bounding box of a boolean mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


def _centroid(image: np.ndarray) -> tuple[float, float]:
    """Intensity-weighted centre (y, x) of a bright-on-dark image."""
    weights = image.astype(np.float64)
    ys, xs = np.indices(image.shape)
    return float((ys * weights).sum() / weights.sum()), float((xs * weights).sum() / weights.sum())


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


# ---------------------------------------------------------------------------------------------
# Input checking


def test_modes_are_paper_and_normalized():
    assert set(MODES) == {"paper", "normalized"}


@pytest.mark.parametrize("mode", ["Paper", "normalised", "", "raw"])
def test_unknown_mode_raises_value_error(mode):
    with pytest.raises(ValueError, match="mode"):
        preprocess(_page(), mode)
    with pytest.raises(ValueError, match="mode"):
        background_value(mode)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((20, 30), dtype=np.float32),
        np.zeros((20, 30), dtype=np.float64),
        np.zeros((20, 30), dtype=np.uint16),
        np.zeros((20, 30), dtype=bool),
        np.zeros((20, 30, 4), dtype=np.uint8),
        np.zeros((20, 30, 3), dtype=np.float32),
        np.zeros((20, 30, 1), dtype=np.uint8),
        np.zeros(30, dtype=np.uint8),
    ],
    ids=["float32", "float64", "uint16", "bool", "rgba", "rgb-float", "hw1", "1d"],
)
@pytest.mark.parametrize("mode", MODES)
def test_input_other_than_uint8_grey_or_rgb_raises_value_error(bad, mode):
    with pytest.raises(ValueError, match="uint8"):
        preprocess(bad, mode)


@pytest.mark.parametrize("mode", MODES)
def test_preprocess_does_not_modify_its_input(mode):
    grey = _page()
    before = grey.copy()
    out = preprocess(grey, mode, size=grey.shape)
    np.testing.assert_array_equal(grey, before)
    out[...] = 7  # the output is its own array, even when no resize was needed
    np.testing.assert_array_equal(grey, before)


# ---------------------------------------------------------------------------------------------
# paper mode


@pytest.mark.parametrize("size", [(128, 128), (64, 160), (200, 90)])
def test_paper_mode_is_a_grey_resize_with_ink_kept_dark(size):
    grey = _rectangle((100, 200), shape=(300, 400), paper=240, ink=20)  # centred ink block
    out = preprocess(grey, "paper", size=size)
    assert out.shape == size
    assert out.dtype == np.uint8
    h, w = size
    assert out[h // 2 - 3 : h // 2 + 3, w // 2 - 3 : w // 2 + 3].max() <= 25  # ink stays dark
    assert out[:3, :3].min() >= 235 and out[-3:, -3:].min() >= 235  # paper stays light
    expected = np.asarray(Image.fromarray(grey).resize((w, h), Image.Resampling.BILINEAR))
    assert _mad(out, expected) < 1


def test_paper_mode_keeps_the_paper_grey_and_position():
    """No cropping or centring in paper mode: an off-centre block stays off-centre."""
    grey = _rectangle((50, 50), shape=(256, 256), at=(0, 0), paper=230, ink=10)
    out = preprocess(grey, "paper", size=SIZE)
    assert out[:20, :20].mean() < 20
    assert abs(int(np.median(out)) - 230) <= 1


# ---------------------------------------------------------------------------------------------
# normalized mode


@pytest.mark.parametrize("size", [(128, 128), (96, 160), (150, 100)])
def test_normalized_has_zero_background_and_bright_ink(size):
    out = preprocess(_page(paper=245, ink=30), "normalized", size=size)
    assert out.shape == size
    assert out.dtype == np.uint8
    border = np.concatenate([out[0], out[-1], out[:, 0], out[:, -1]])
    assert (border == 0).all()
    assert np.median(out) == 0  # most of the canvas is empty paper
    assert out.max() >= 200  # black-ish ink on light paper comes out bright
    assert (out > 100).mean() > 0.01  # and there is a fair amount of it


@pytest.mark.parametrize(("paper", "ink"), [(245, 20), (200, 20), (180, 90), (250, 125)])
def test_normalized_ink_brightness_is_relative_to_the_paper(paper, ink):
    """Ink strength is (paper - ink) / paper: ink at 90 on paper 180 is half-strength, 127."""
    out = preprocess(_rectangle((60, 120), paper=paper, ink=ink), "normalized", size=SIZE)
    expected = (paper - ink) / paper * 255
    centre = out[SIZE[0] // 2 - 5 : SIZE[0] // 2 + 5, SIZE[1] // 2 - 5 : SIZE[1] // 2 + 5]
    assert np.abs(centre.astype(float) - expected).max() <= 2


@pytest.mark.parametrize("at", [(5, 5), (220, 10), (10, 300), (150, 200)])
def test_normalized_centres_the_ink(at):
    """A ring drawn near a corner of the page ends up with its centroid at the canvas centre."""
    img = Image.new("L", (400, 300), 245)
    y, x = at
    ImageDraw.Draw(img).ellipse([x, y, x + 70, y + 70], outline=25, width=6)
    out = preprocess(np.asarray(img), "normalized", size=SIZE)
    cy, cx = _centroid(out)
    assert abs(cy - (SIZE[0] - 1) / 2) < 2.0
    assert abs(cx - (SIZE[1] - 1) / 2) < 2.0


@pytest.mark.parametrize("box_hw", [(24, 240), (160, 20), (60, 90), (100, 100)])
@pytest.mark.parametrize("size", [(128, 128), (96, 192)])
def test_normalized_keeps_the_aspect_ratio_of_the_ink(box_hw, size):
    grey = _rectangle(box_hw, shape=(300, 400), at=(30, 40))
    in_h, in_w = _bbox(ink_mask(grey))
    out = preprocess(grey, "normalized", size=size)
    out_h, out_w = _bbox(out >= 128)
    assert out_w / out_h == pytest.approx(in_w / in_h, rel=0.15)
    # The ink is cropped: its longer side (relative to the canvas) nearly fills the canvas.
    fill = max(out_h / size[0], out_w / size[1])
    assert fill > 0.85


def test_normalized_crops_away_the_empty_page():
    """A small signature on a large page fills the canvas just like a tightly cropped one."""
    small_page = _page(shape=(300, 500))
    big_page = np.full((1200, 1600), 245, dtype=np.uint8)
    big_page[450:750, 550:1050] = small_page
    a = preprocess(small_page, "normalized", size=SIZE)
    b = preprocess(big_page, "normalized", size=SIZE)
    assert _mad(a, b) < 1.0


@pytest.mark.parametrize("offset", [(-60, -60), (40, -25), (0, 55), (60, 60)])
def test_normalized_ignores_where_the_signature_sits_on_the_page(offset):
    reference = preprocess(_page(offset=(0, 0)), "normalized", size=SIZE)
    shifted = preprocess(_page(offset=offset), "normalized", size=SIZE)
    assert _mad(reference, shifted) < 1.0


@pytest.mark.parametrize(("paper_a", "paper_b"), [(230, 250), (215, 255), (240, 200)])
def test_normalized_ignores_the_paper_grey_level(paper_a, paper_b):
    """Same ink (grey 30) on papers of different grey: nearly identical outputs.

    Without paper removal the difference would be ~|paper_a - paper_b| inside the ink box.
    """
    a = preprocess(_page(paper=paper_a, ink=30), "normalized", size=SIZE)
    b = preprocess(_page(paper=paper_b, ink=30), "normalized", size=SIZE)
    assert _mad(a, b) < 2.0
    # The comparison has teeth: the inputs themselves differ by the paper difference.
    assert _mad(_page(paper=paper_a), _page(paper=paper_b)) > 0.8 * abs(paper_a - paper_b)


@pytest.mark.parametrize("gain", [0.7, 0.85])
def test_normalized_ignores_scanner_gain(gain):
    """A darker scan of the same page (every pixel x gain) normalizes to nearly the same image.

    Compared on the ink pixels, where subtracting a fixed white level instead of the page's
    own paper level would leave the darker scan's ink ~(1 - gain) x 255 x ink/paper brighter.
    """
    page = _page(paper=250, ink=40)
    darker = np.rint(page * gain).astype(np.uint8)
    a = preprocess(page, "normalized", size=SIZE).astype(float)
    b = preprocess(darker, "normalized", size=SIZE).astype(float)
    ink = (a > 0) | (b > 0)
    assert np.abs(a - b)[ink].mean() < 3.0
    assert np.abs(a - b).mean() < 1.0


def test_normalize_is_what_normalized_mode_runs():
    grey = _page()
    np.testing.assert_array_equal(
        normalize(grey, (100, 150)), preprocess(grey, "normalized", size=(100, 150))
    )


# ---------------------------------------------------------------------------------------------
# Degenerate pages


def _blank_pages() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "white": np.full((300, 400), 255, dtype=np.uint8),
        "grey": np.full((300, 400), 200, dtype=np.uint8),
        "black": np.zeros((300, 400), dtype=np.uint8),
        "noisy": np.clip(rng.normal(240, 4, (300, 400)), 0, 255).astype(np.uint8),
        "uniform_noise": rng.integers(232, 249, (300, 400), dtype=np.uint8),
        "tiny": np.full((3, 2), 250, dtype=np.uint8),
    }


@pytest.mark.parametrize("name", list(_blank_pages()))
@pytest.mark.parametrize("size", [(128, 128), (64, 200)])
def test_blank_page_normalizes_to_all_zero(name, size):
    out = preprocess(_blank_pages()[name], "normalized", size=size)
    assert out.shape == size
    assert out.dtype == np.uint8
    assert not out.any()


@pytest.mark.parametrize("name", ["white", "noisy"])
def test_blank_page_paper_mode_keeps_the_paper(name):
    page = _blank_pages()[name]
    out = preprocess(page, "paper", size=SIZE)
    assert out.shape == SIZE
    assert abs(float(out.mean()) - float(page.mean())) < 1


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("value", [0, 128, 255])
@pytest.mark.parametrize("size", [(128, 128), (32, 48), (1, 1)])
def test_one_pixel_image_gives_the_requested_size(mode, value, size):
    out = preprocess(np.full((1, 1), value, dtype=np.uint8), mode, size=size)
    assert out.shape == size
    assert out.dtype == np.uint8
    if mode == "paper":
        assert (out == value).all()
    else:
        assert not out.any()


def test_no_ink_reason_names_blank_pages_in_both_modes_and_faint_ones_in_normalized():
    """What training refuses, as inference does: a page the network would learn as a signature."""
    signature, white = _page(), np.full((300, 400), 255, dtype=np.uint8)
    faint = _page(paper=15, ink=2)  # a 12-bit scan read from a 16-bit file: grey 0..15
    for mode in MODES:
        assert no_ink_reason(signature, mode, preprocess(signature, mode, SIZE)) is None
        reason = no_ink_reason(white, mode, preprocess(white, mode, SIZE))
        assert reason == (
            "no ink found (every pixel within 8 grey levels of the others: a blank image?)"
        )
    assert no_ink_reason(faint, "paper", preprocess(faint, "paper", SIZE)) is None
    assert no_ink_reason(faint, "normalized", preprocess(faint, "normalized", SIZE)) == (
        "no ink found (blurred by one pixel, its grey levels span only 2..15, fewer than 40 "
        "apart: blank, or a very faint or low-contrast scan?)"
    )


def test_blank_files_load_and_preprocess(tmp_path):
    """End to end: a 1x1 file and a blank scan from disk go through both modes."""
    Image.new("L", (1, 1), 255).save(tmp_path / "dot.png")
    Image.new("RGB", (600, 400), (247, 247, 247)).save(tmp_path / "blank.jpg")
    for name in ["dot.png", "blank.jpg"]:
        grey = load_image(tmp_path / name)
        for mode in MODES:
            assert preprocess(grey, mode, size=SIZE).shape == SIZE
        assert not preprocess(grey, "normalized", size=SIZE).any()


# ---------------------------------------------------------------------------------------------
# Building blocks


@pytest.mark.parametrize("mode", MODES)
def test_background_value_is_what_empty_paper_becomes(mode):
    assert background_value(mode) == {"paper": 255, "normalized": 0}[mode]
    white = np.full((50, 60), 255, dtype=np.uint8)
    assert (preprocess(white, mode, size=SIZE) == background_value(mode)).all()
    out = preprocess(_page(paper=255), mode, size=SIZE)
    assert out[0, 0] == background_value(mode)


def _otsu_by_brute_force(values: np.ndarray) -> tuple[np.ndarray, float]:
    """Between-class variance for every split `values <= t`, straight from the definition."""
    values = values.ravel().astype(np.float64)
    scores = np.zeros(256)
    for t in range(256):
        low, high = values[values <= t], values[values > t]
        if low.size and high.size:
            scores[t] = low.size * high.size * (low.mean() - high.mean()) ** 2
    return scores, float(scores.max())


@pytest.mark.parametrize("seed", range(4))
def test_otsu_threshold_maximises_between_class_variance(seed):
    """Overlapping ink and paper populations: Otsu's split is the best one, checked exhaustively."""
    rng = np.random.default_rng(seed)
    ink_level, paper_level = rng.integers(30, 120), rng.integers(150, 240)
    values = np.concatenate(
        [
            rng.normal(ink_level, 25, rng.integers(300, 3000)),
            rng.normal(paper_level, 20, 20_000),
        ]
    )
    grey = np.clip(np.rint(values), 0, 255).astype(np.uint8).reshape(1, -1)
    scores, best = _otsu_by_brute_force(grey)
    t = otsu_threshold(grey)
    assert scores[t] == pytest.approx(best, rel=1e-9)
    assert ink_level < t < paper_level


@pytest.mark.parametrize(("ink", "paper"), [(40, 210), (0, 255), (120, 180), (200, 250)])
def test_otsu_threshold_puts_ink_at_or_below_and_paper_above(ink, paper):
    rng = np.random.default_rng(ink)
    grey = np.full((100, 100), paper, dtype=np.uint8)
    grey[:, :20] = ink
    noisy = np.clip(grey + rng.normal(0, 3, grey.shape), 0, 255).astype(np.uint8)
    for image in (grey, noisy):
        t = otsu_threshold(image)
        assert ink <= t < paper
        assert ((image <= t) == (grey == ink)).all()


def test_ink_mask_marks_ink_and_not_paper():
    grey = _rectangle((40, 100), shape=(200, 300), at=(80, 100), paper=240, ink=30)
    mask = ink_mask(grey)
    assert mask.dtype == bool
    assert mask.shape == grey.shape
    assert mask[85:115, 105:195].all()  # inside the block (away from the blurred edge)
    assert not mask[:70].any() and not mask[130:].any()
    assert not mask[:, :90].any() and not mask[:, 210:].any()


@pytest.mark.parametrize("name", list(_blank_pages()))
def test_ink_mask_of_a_blank_page_is_empty(name):
    assert not ink_mask(_blank_pages()[name]).any()


@pytest.mark.parametrize("paper", [200, 230, 250])
def test_background_level_is_the_paper_grey(paper):
    assert background_level(_page(paper=paper, ink=30)) == paper
    assert background_level(np.full((10, 10), paper, dtype=np.uint8)) == paper


# ---------------------------------------------------------------------------------------------
# Acceptance on the real CEDAR set


def _raw_and_normalized_background(path: Path) -> tuple[float, float]:
    """Mean paper-side grey of a scan as loaded, and of its ``normalized`` output."""
    grey = load_image(path)
    raw = grey[grey > otsu_threshold(grey)]
    out = preprocess(grey, "normalized", size=SIZE)
    return float(raw.mean()), float(out[out <= otsu_threshold(out)].mean())


@pytest.mark.slow
def test_cedar_genuine_and_forged_backgrounds_match_after_normalization(cedar_root):
    """Over all 2640 CEDAR images, the normalized background of genuine and forged scans agrees.

    CEDAR's genuine scans (grey PNGs) sit on paper of grey ~240 while its forgeries (palette
    PNGs) sit on paper of ~253: a classifier could tell them apart by the paper alone. After
    ``normalized`` the two classes' mean background must differ by < 1 grey level.

    Background ("non-ink") in an output image is defined as the pixels at or below that
    output's own Otsu threshold, i.e. everything Otsu does not call bright ink. This is stricter
    than "pixels below a fixed small level like 8": if paper were left in (say inverted to 15
    for genuine and 2 for forged), Otsu would count it as background and the test would fail,
    whereas a fixed cut at 8 would just drop those pixels and pass.

    To show the test can fail, the same statistic on the raw loaded scans (paper = pixels above
    the scan's own Otsu threshold, ink being dark there) must differ by > 8 grey levels.
    """
    signatures = cedar_root / "signatures"
    raw: dict[str, list[float]] = {}
    normalized: dict[str, list[float]] = {}
    for kind, pattern in [
        ("genuine", "full_org/original_*.png"),
        ("forged", "full_forg/forgeries_*.png"),
    ]:
        paths = sorted(signatures.glob(pattern))
        assert len(paths) == 1320, f"expected 1320 {kind} CEDAR images, found {len(paths)}"
        # Pillow's decoding and resizing release the GIL: two threads nearly halve the ~25 s.
        with ThreadPoolExecutor(max_workers=2) as pool:
            pairs = list(pool.map(_raw_and_normalized_background, paths))
        raw[kind] = [pair[0] for pair in pairs]
        normalized[kind] = [pair[1] for pair in pairs]
    raw_gap = abs(np.mean(raw["genuine"]) - np.mean(raw["forged"]))
    normalized_gap = abs(np.mean(normalized["genuine"]) - np.mean(normalized["forged"]))
    assert raw_gap > 8, f"raw background gap {raw_gap:.2f}: the acceptance test has no teeth"
    assert normalized_gap < 1, f"normalized background gap {normalized_gap:.3f} grey levels"


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        ({"mode": "bogus", "size": [8, 8]}, "mode 'bogus' is not one of paper, normalized"),
        ({"mode": "paper", "size": [8]}, "size [8] is not two positive whole numbers"),
        ({"mode": "paper", "size": [8, 0]}, "size [8, 0] is not two positive whole numbers"),
        ({"mode": "paper", "size": [8, True]}, "is not two positive whole numbers"),
        ({"mode": "paper", "size": "88"}, "size '88' is not two positive whole numbers"),
        ({"mode": "paper"}, "is not a mapping of mode and size"),
    ],
)
def test_preprocessing_settings_are_checked_in_one_place(settings, reason):
    with pytest.raises(ValueError, match=re.escape(reason)):
        check_preprocessing(settings)
    assert check_preprocessing({"mode": "normalized", "size": (np.int64(4), 6)}) == {
        "mode": "normalized", "size": [4, 6],
    }  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Paper removal: nothing but the ink mask reaches a normalized image

DIRTY_SHAPE = (300, 500)
# (kind of dirt, seed): the lighting gradient alone draws nothing at random
DIRT = [("texture", 0), ("texture", 1), ("blots", 0), ("blots", 1), ("gradient", 0), ("all", 0)]


def _strokes() -> np.ndarray:
    """Where `_page`'s scribble is drawn (PIL draws "L" images without antialiasing)."""
    return _page(paper=255, ink=0, shape=DIRTY_SHAPE) == 0


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    img = Image.fromarray(mask.astype(np.uint8) * 255)
    return np.asarray(img.filter(ImageFilter.MaxFilter(2 * radius + 1))) > 0


def _dirty_page(dirt: str, seed: int) -> np.ndarray:
    """`_page`'s strokes (grey 30) on paper of grey ~240 that is not flat: fibre `texture`
    (grain and mottling, +-20 grey levels), light-grey `blots` (35..50 levels darker than the
    paper, far lighter than ink) between the strokes, an uneven lighting `gradient` (15% darker
    towards the bottom right), or `all` of them. None of it is dark enough to be ink."""
    rng = np.random.default_rng(seed)
    strokes = _strokes()
    height, width = DIRTY_SHAPE
    paper = np.full(DIRTY_SHAPE, 240.0)
    if dirt in ("texture", "all"):
        mottle = rng.normal(0, 40, (height // 10, width // 10)).astype(np.float32)
        smooth = Image.fromarray(mottle, mode="F").resize((width, height), Image.Resampling.BICUBIC)
        paper += rng.normal(0, 6, DIRTY_SHAPE) + 0.2 * np.asarray(smooth)
    if dirt in ("blots", "all"):  # inside the signature's box, where paper shows between strokes
        rows, cols = np.flatnonzero(strokes.any(axis=1)), np.flatnonzero(strokes.any(axis=0))
        clear = ~_dilate(strokes, 8)
        blots = Image.new("L", (width, height), 0)
        draw = ImageDraw.Draw(blots)
        placed = 0
        while placed < 25:
            y, x = rng.integers(rows[0], rows[-1]), rng.integers(cols[0], cols[-1])
            r = int(rng.integers(2, 6))
            if clear[max(y - r, 0) : y + r + 1, max(x - r, 0) : x + r + 1].all():
                draw.ellipse([x - r, y - r, x + r, y + r], fill=int(rng.integers(35, 51)))
                placed += 1
        paper -= np.asarray(blots, dtype=np.float64)
    page = np.where(strokes, 30.0, paper)
    if dirt in ("gradient", "all"):
        ys, xs = np.indices(DIRTY_SHAPE)
        page *= 1.0 - 0.10 * xs / width - 0.05 * ys / height
    return np.clip(np.rint(page), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("size", [(128, 128), (96, 192), (256, 400)])
@pytest.mark.parametrize(("dirt", "seed"), DIRT)
def test_normalized_leaves_exactly_zero_outside_the_strokes_on_uneven_paper(dirt, seed, size):
    """Paper removal is exact: after ``normalized``, every pixel away from the ink is 0, however
    grainy, blotted or unevenly lit the paper around the strokes was.

    What the code guarantees: pixels outside the ink mask are set to 0 before the canvas is
    resized, so an output pixel can only be non-zero if the resize reads ink-mask pixels. The
    mask of these pages is the drawn strokes grown by the blur (checked first), so every
    non-zero output pixel lies within 2 output pixels of the same strokes normalized from flat
    paper (the margin covers the mask's edge and the crop box moving by a pixel or two).
    Without the masking, the paper darker than its median inside the ink's box comes through:
    texture at a few grey levels, blots at ~40, the darker side of the gradient at up to ~25.
    """
    page, strokes = _dirty_page(dirt, seed), _strokes()
    mask = ink_mask(page)
    assert mask[strokes].mean() > 0.99, "the test's strokes are not found as ink"
    stray = mask & ~_dilate(strokes, 2)
    assert not stray.any(), f"the test's {dirt} is ink to Otsu ({stray.sum()} px): no test"
    flat = normalize(np.where(strokes, 30, 240).astype(np.uint8), size)
    out = normalize(page, size)
    assert out.max() >= 200  # the ink itself comes through bright
    outside = out[~_dilate(flat > 0, 2)]
    assert not outside.any(), (
        f"{np.count_nonzero(outside)} pixels away from the strokes are non-zero "
        f"(up to {outside.max()}): the paper ({dirt}) came through"
    )


def _cedar_sample(signatures: Path, per_kind: int = 40) -> list[Path]:
    """A fixed spread of `per_kind` genuine and `per_kind` forged CEDAR scans (every 33rd name)."""
    sample: list[Path] = []
    for pattern in ("full_org/original_*.png", "full_forg/forgeries_*.png"):
        paths = sorted(signatures.glob(pattern))
        assert len(paths) >= per_kind, f"expected CEDAR's 1320 {pattern}, found {len(paths)}"
        sample += paths[:: len(paths) // per_kind][:per_kind]
    return sample


def test_cedar_normalized_images_are_mostly_empty_paper(cedar_root):
    """On 80 real CEDAR scans, a normalized image is ink on exactly-zero paper: ~7.4% of its
    pixels non-zero on average (2.4% to 15% per image). Paper texture let through the ink's box
    (the non-ink pixels not zeroed) makes that ~30% (7% to 67%); the bound sits between."""
    shares = [
        float(np.count_nonzero(preprocess(load_image(path), "normalized", SIZE)) / np.prod(SIZE))
        for path in _cedar_sample(cedar_root / "signatures")
    ]
    assert len(shares) == 80
    assert np.mean(shares) < 0.12, f"mean non-zero share {np.mean(shares):.3f} (paper kept?)"
    assert np.median(shares) < 0.10, f"median non-zero share {np.median(shares):.3f}"
