"""The acquisition transforms (sigid.data.acquisition) on real CEDAR scans, grey and RGB."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sigid.data.acquisition import STRENGTHS, TRANSFORMS, apply, check_names
from sigid.data.images import load_image
from sigid.data.preprocess import ink_mask, no_ink_reason, preprocess

# transforms whose draw is more than a sign: another seed gives another image
SEEDED = ("ruling", "box", "stamp", "salt_pepper", "scanner_noise")


@pytest.fixture(scope="module")
def scans(cedar_root: Path) -> list[np.ndarray]:
    """Two real CEDAR scans, a genuine signature and a forgery, as `load_image` reads them."""
    folder = cedar_root / "signatures"
    return [
        load_image(folder / "full_org" / "original_20_3.png"),
        load_image(folder / "full_forg" / "forgeries_7_2.png"),
    ]


def _error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int64) - b.astype(np.int64)).mean())


def _ink(image: np.ndarray) -> float:
    """Total ink: darkness below white, summed."""
    return float((255 - image.astype(np.int64)).sum())


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_each_transform_changes_the_scan_keeps_its_form_and_is_seeded(scans, name):
    for scan in scans:
        rgb = np.repeat(scan[..., None], 3, axis=2)
        for strength in STRENGTHS:
            for image in (scan, rgb):
                out = apply(image, name, strength, seed=3)
                assert out.shape == image.shape and out.dtype == np.uint8
                assert _error(out, image) > 0.05, (name, strength)
                assert np.array_equal(out, apply(image.copy(), name, strength, seed=3))
            if name in SEEDED:
                assert not np.array_equal(
                    apply(scan, name, strength, 3), apply(scan, name, strength, 4)
                )


def test_the_normaliser_still_finds_the_signature_in_what_they_make(scans):
    """Every change but the faintest pen leaves ink that sigid's preprocessing finds, as it would
    in a user's scan (the faint pen at its highest strength is refused on CEDAR's light ink)."""
    for name in TRANSFORMS:
        for strength in STRENGTHS:
            if (name, strength) == ("faint", "high"):
                continue
            for scan in scans:
                out = apply(scan, name, strength, seed=0)
                prepared = preprocess(out, "normalized", (150, 220))
                assert no_ink_reason(out, "normalized", prepared) is None, (name, strength)


def test_strength_grows_where_it_has_a_measure(scans):
    scan = scans[0]

    def errors(name: str) -> list[float]:
        return [_error(apply(scan, name, s, 0), scan) for s in STRENGTHS]

    for name in ("jpeg", "resolution", "salt_pepper", "scanner_noise", "stamp", "ruling"):
        found = errors(name)
        assert found == sorted(found) and found[0] < found[-1], (name, found)
    thinner = [_ink(apply(scan, "thinner", s, 0)) for s in STRENGTHS]
    thicker = [_ink(apply(scan, "thicker", s, 0)) for s in STRENGTHS]
    assert _ink(scan) > thinner[0] > thinner[1] > thinner[2]
    assert _ink(scan) < thicker[0] < thicker[1] < thicker[2]
    faint = [_ink(apply(scan, "faint", s, 0)) for s in STRENGTHS]
    assert faint == sorted(faint, reverse=True) and faint[0] < _ink(scan)
    tablet = [int(ink_mask(apply(scan, "tablet", s, 0)).sum()) for s in STRENGTHS]
    assert tablet[0] > tablet[1] > tablet[2] > 0  # thinner lines


def test_colour_transforms_render_in_colour_and_grey_as_load_image_does(scans):
    rgb = np.repeat(scans[0][..., None], 3, axis=2)
    coloured = apply(rgb, "pen", "middle", 0)
    blue, red = coloured[..., 2].astype(int), coloured[..., 0].astype(int)
    ink = ink_mask(scans[0])
    assert (blue - red)[ink].mean() > (blue - red)[~ink].mean() + 30  # blue ink, yellow paper
    grey = apply(scans[0], "pen", "middle", 0)
    assert np.array_equal(grey, np.asarray(Image.fromarray(coloured).convert("L")))


def test_bad_names_are_one_line_naming_the_choices(scans):
    with pytest.raises(ValueError) as err:
        apply(scans[0], "blur", "middle")
    message = str(err.value)
    assert "\n" not in message and "'blur'" in message and "jpeg" in message
    with pytest.raises(ValueError, match=r"unknown acquisition strength.*'extreme'.*low, middle"):
        apply(scans[0], "jpeg", "extreme")
    with pytest.raises(ValueError, match="HxW grey or HxWx3 RGB uint8"):
        apply(scans[0].astype(np.float32), "jpeg", "low")
    assert check_names(["stamp", "jpeg"], None) == (["jpeg", "stamp"], list(STRENGTHS))
