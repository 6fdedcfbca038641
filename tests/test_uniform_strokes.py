"""The ``uniform_strokes`` option of the ``normalized`` preprocessing: the final ink mask redrawn
from its skeleton at one width in output pixels and one darkness, so that stroke width, pen,
pressure and scan resolution no longer reach the network; and its defaults: off, stored only
when true, refused with mode paper, a blank page still all zeros."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import Image, ImageDraw
from runs import tiny_checkpoint

from sigid.data.acquisition import apply
from sigid.data.cache import preprocess_samples
from sigid.data.images import load_image
from sigid.data.layouts import Sample
from sigid.data.preprocess import (
    STROKE_LEVEL,
    STROKE_WIDTH,
    check_preprocessing,
    prepare,
    preprocess,
    uniform_ink,
)
from sigid.evaluation.testing import evaluation_datamodule
from sigid.inference.shipped import SHIPPED_CHECKPOINT
from sigid.inference.verifier import Verifier

SIZE = (128, 128)
SCANS = (
    "full_org/original_17_5.png",
    "full_forg/forgeries_33_2.png",
    "full_org/original_55_24.png",
)
# the bytes of preprocess(original_17_5, "normalized", 128x128) before any option existed
# (tests/test_preprocess_robust.py, BEFORE)
PLAIN_DIGEST = "36869530a4f7778d"


def _moved(clean: np.ndarray, changed: np.ndarray) -> float:
    """The share of `clean`'s ink that differs in `changed`: sum |clean - changed| / sum clean."""
    a, b = clean.astype(np.int64), changed.astype(np.int64)
    return float(np.abs(a - b).sum() / a.sum())


@pytest.mark.parametrize("transform", ["thinner", "thicker", "tablet"])
def test_a_width_change_leaves_the_uniform_output_close_to_the_clean_one(cedar_root, transform):
    """Thinner, thicker and tablet versions of real CEDAR scans: with the option, the output
    stays within 0.3 of the clean output's ink (moved share); without it, every scan moves more."""
    for name in SCANS:
        grey = load_image(cedar_root / "signatures" / name)
        changed = apply(grey, transform, "middle", 0)
        on = [preprocess(g, "normalized", SIZE, uniform_strokes=True) for g in (grey, changed)]
        off = [preprocess(g, "normalized", SIZE) for g in (grey, changed)]
        assert _moved(*on) < 0.3, name
        assert _moved(*off) > 0.3, name


def test_the_width_is_in_output_pixels_whatever_the_scan_resolution(cedar_root):
    """A scan and its copy enlarged 2x (a 600 dpi scan of the same signature): the strokes are
    STROKE_WIDTH pixels of the output wide in both, so the two outputs nearly agree."""
    for name in SCANS:
        grey = load_image(cedar_root / "signatures" / name)
        big = np.asarray(
            Image.fromarray(grey).resize((2 * grey.shape[1], 2 * grey.shape[0])), dtype=np.uint8
        )
        small, large = (
            preprocess(g, "normalized", SIZE, uniform_strokes=True) for g in (grey, big)
        )
        assert abs(large.astype(np.int64).sum() / small.sum() - 1) < 0.08, name
        assert _moved(small, large) < 0.25, name


def test_a_drawn_line_of_any_pen_is_drawn_at_the_same_width_and_darkness():
    """A straight stroke 2, 5 or 9 pixels wide, black or pale grey, on pages of two sizes: the
    output's column through it holds STROKE_WIDTH pixels of STROKE_LEVEL (anti-aliased)."""
    outputs = []
    for pen in (2, 5, 9):
        for ink in (0, 170):
            for scale in (1, 3):
                page = Image.new("L", (400 * scale, 120 * scale), 255)
                draw = ImageDraw.Draw(page)
                draw.line([(40 * scale, 60 * scale), (360 * scale, 60 * scale)], ink, pen * scale)
                draw.line([(40 * scale, 30 * scale), (40 * scale, 90 * scale)], ink, pen * scale)
                outputs.append(
                    preprocess(np.asarray(page), "normalized", SIZE, uniform_strokes=True)
                )
    for out in outputs:
        column = out[:, 80].astype(np.float64)
        assert abs(column.sum() / STROKE_LEVEL - STROKE_WIDTH) < 0.3
        assert abs(column.max() - STROKE_LEVEL) <= 1


def test_without_the_key_a_scan_is_prepared_as_before(cedar_root):
    """Settings without the key (every checkpoint made before it) or with it false: the bytes
    the preprocessing made before any option existed; with it true, other bytes."""
    grey = load_image(cedar_root / "signatures" / "full_org/original_17_5.png")
    settings = {"mode": "normalized", "size": [128, 128]}
    for image in (
        preprocess(grey, "normalized", SIZE),
        prepare(grey, settings),
        prepare(grey, {**settings, "uniform_strokes": False}),
    ):
        assert hashlib.sha256(image.tobytes()).hexdigest()[:16] == PLAIN_DIGEST
    on = prepare(grey, {**settings, "uniform_strokes": True})
    assert hashlib.sha256(on.tobytes()).hexdigest()[:16] != PLAIN_DIGEST


def test_settings_keep_the_option_only_when_true_and_refuse_it_with_paper():
    plain = {"mode": "normalized", "size": [8, 8]}
    assert check_preprocessing({**plain, "uniform_strokes": False}) == plain
    assert check_preprocessing({**plain, "uniform_strokes": True}) == {
        **plain,
        "uniform_strokes": True,
    }
    with pytest.raises(ValueError, match="uniform_strokes=1 is not true or false"):
        check_preprocessing({**plain, "uniform_strokes": 1})
    with pytest.raises(ValueError, match=r"uniform_strokes need\(s\) mode normalized"):
        check_preprocessing({"mode": "paper", "size": [8, 8], "uniform_strokes": True})


def test_a_blank_page_or_a_page_whose_ink_is_removed_stays_all_zero():
    """A blank page, a page holding only a ruling line (remove_lines takes all its ink) and an
    empty mask: all zeros, as without the option (no_ink_reason refuses them)."""
    blank = np.full((60, 200), 250, dtype=np.uint8)
    assert not preprocess(blank, "normalized", SIZE, uniform_strokes=True).any()
    ruled = blank.copy()
    ruled[30:32, 10:190] = 20
    out = preprocess(ruled, "normalized", SIZE, remove_lines=True, uniform_strokes=True)
    assert out.shape == SIZE and not out.any()
    assert preprocess(ruled, "normalized", SIZE, uniform_strokes=True).any()
    assert not uniform_ink(np.zeros((30, 50), dtype=bool), SIZE).any()


def test_a_checkpoint_stores_the_option_only_when_true(tmp_path):
    """Two tiny runs: trained with the option, the checkpoint's preprocessing says so and its
    verifier prepares with it; trained with it false, the checkpoint holds no key."""
    on = Verifier.from_checkpoint(
        tiny_checkpoint(
            tmp_path / "on", "model=siamese_conv", "data.preprocess.uniform_strokes=true"
        )
    )
    off = Verifier.from_checkpoint(
        tiny_checkpoint(
            tmp_path / "off", "model=siamese_conv", "data.preprocess.uniform_strokes=false"
        )
    )
    assert on.preprocessing == {"mode": "normalized", "size": [32, 64], "uniform_strokes": True}
    assert off.preprocessing == {"mode": "normalized", "size": [32, 64]}


def test_evaluation_and_the_cache_take_the_option(cedar_root, tmp_path):
    """`sigid evaluate ... data.preprocess.uniform_strokes=true` on a checkpoint without the key
    prepares with it on top; the cache keeps those images apart from the plain ones."""
    verifier = Verifier.from_checkpoint(SHIPPED_CHECKPOINT)
    data = ["data=cedar", f"data.root={cedar_root}", "data.split.fold=0"]
    added = evaluation_datamodule(verifier.module, [*data, "data.preprocess.uniform_strokes=true"])
    assert added.preprocess == {**verifier.preprocessing, "uniform_strokes": True}
    samples = [Sample(cedar_root / "signatures" / SCANS[0], "17", True)]
    plain, _, _ = preprocess_samples(samples, "normalized", SIZE, tmp_path)
    options = {"uniform_strokes": True}
    drawn, _, _ = preprocess_samples(samples, "normalized", SIZE, tmp_path, options=options)
    assert len(list((tmp_path / "preprocessed").iterdir())) == 2
    assert (
        drawn[0] == preprocess(load_image(samples[0].path), "normalized", SIZE, **options)
    ).all()
    assert not (drawn[0] == plain[0]).all()
