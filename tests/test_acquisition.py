"""The acquisition transforms (sigid.data.acquisition) on real CEDAR scans, grey and RGB, and
the training augmentation drawn from them (data.acquisition)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from runs import pair_datamodule, tiny_checkpoint

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


# -- training augmentation from the same registry ------------------------------------------------

STAMPED = "data.acquisition={p: 1.0, transforms: [stamp], strengths: [high]}"


def test_training_batches_are_changed_on_the_raw_scans_when_asked():
    """Without the geometric augmentation a training batch holds the cached images; with the
    acquisition changes at p=1 every one of them is read again and changed."""
    plain = pair_datamodule("data/augment=none")
    stamped = pair_datamodule("data/augment=none", STAMPED)
    assert plain.acquisition is None  # off by default
    assert pair_datamodule("data.acquisition={p: 0}").acquisition is None
    assert stamped.acquisition == {"p": 1.0, "transforms": ["stamp"], "strengths": ["high"]}
    batch = next(iter(plain.train_dataloader()))
    cached = torch.from_numpy(plain.images["train"][batch["sample"].numpy()]).float() / 255
    assert torch.equal(batch["images"][:, 0], cached)
    loader = stamped.train_dataloader()
    batch = next(iter(loader))
    cached = torch.from_numpy(stamped.images["train"][batch["sample"].numpy()]).float() / 255
    assert loader.collate_fn.acquire.applied == len(cached)  # every image, read again
    assert all(not torch.equal(a, b) for a, b in zip(batch["images"][:, 0], cached, strict=True))
    for split in ("val", "test"):  # never the images a run is measured on
        assert stamped.collate(split).acquire is None


def test_a_run_with_acquisition_augmentation_trains_other_weights(tmp_path):
    """The same seeded run trains the same weights (tests/test_reproducible.py); with the
    augmentation on, its batches and so its weights differ."""

    def weights(folder: str, *overrides: str) -> dict:
        ckpt = tiny_checkpoint(tmp_path / folder, "model=siamese_conv", "model.dim=16", *overrides)
        return torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]

    plain, again = weights("a"), weights("b")
    stamped = weights("c", STAMPED)
    assert all(torch.equal(plain[k], again[k]) for k in plain)
    assert any(not torch.equal(plain[k], stamped[k]) for k in plain)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.acquisition={p: 2}", "data.acquisition: p must be a probability in [0, 1], got 2"),
        ("data.acquisition={q: 1}", "data.acquisition: unknown key(s) ['q']"),
        ("data.acquisition={transforms: [blur]}", "unknown acquisition transform(s) 'blur'"),
    ],
)
def test_bad_acquisition_settings_are_one_line_naming_the_key(override, message):
    with pytest.raises(ValueError) as err:
        pair_datamodule(override)
    assert message in str(err.value) and "\n" not in str(err.value)
