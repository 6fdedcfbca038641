"""Normaliser options added at inference (`Verifier(options=...)`, `sigid verify --clean`): the
checkpoint's network fed a sturdier preprocessing of document scans, without retraining."""

from __future__ import annotations

import json

import numpy as np
import pytest
from runs import sigid_cli, tiny_checkpoint

from sigid.data.acquisition import apply
from sigid.data.images import load_image
from sigid.data.preprocess import prepare
from sigid.inference.shipped import SHIPPED_CHECKPOINT
from sigid.inference.verifier import Verifier

CLEAN = ("crop_main", "ink_contrast")


@pytest.fixture(scope="module")
def speckled(cedar_root, tmp_path_factory):
    """A real CEDAR scan, clean and with 1 % salt-and-pepper (the robustness protocol's middle
    strength), as PNG files."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("speckled")
    grey = load_image(cedar_root / "signatures" / "full_org" / "original_3_1.png")
    paths = []
    for name, image in (("clean", grey), ("speckled", apply(grey, "salt_pepper", "middle", 0))):
        path = folder / f"{name}.png"
        Image.fromarray(image).save(path)
        paths.append(path)
    return paths


def test_a_verifier_with_options_prepares_and_embeds_with_them(speckled):
    plain = Verifier.from_checkpoint(SHIPPED_CHECKPOINT)
    clean = Verifier.from_checkpoint(SHIPPED_CHECKPOINT, options=list(CLEAN))
    assert clean.preprocessing == {**plain.preprocessing, "crop_main": True, "ink_contrast": True}
    # stored embeddings are tied to the preprocessing: a gallery of plain ones refuses these
    assert clean.fingerprint != plain.fingerprint
    noisy = load_image(speckled[1])
    expected = clean.embed_prepared(prepare(noisy, clean.preprocessing)[None])
    assert np.allclose(clean.embed([speckled[1]]), expected, atol=1e-6)
    assert not np.allclose(plain.embed([speckled[1]]), expected, atol=1e-3)
    # speckle moves the plain embedding far more than the cleaned one
    moved = [
        float(np.linalg.norm(v.embed([speckled[0]]) - v.embed([speckled[1]])))
        for v in (plain, clean)
    ]
    assert moved[1] < 0.7 * moved[0], moved  # measured: 2.76 against 5.19


def test_unknown_options_and_a_paper_mode_checkpoint_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"unknown preprocessing option\(s\) crop; choose from"):
        Verifier.from_checkpoint(SHIPPED_CHECKPOINT, options=["crop"])
    paper = tiny_checkpoint(tmp_path / "paper", "model=siamese_conv", "data.preprocess.mode=paper")
    with pytest.raises(ValueError, match=rf"{paper.name}: .*need\(s\) mode normalized"):
        Verifier.from_checkpoint(paper, options=["crop_main"])


def test_sigid_verify_clean_scores_the_pair_as_the_api_does(capsys, speckled):
    code, out, err = sigid_cli(capsys, "verify", *speckled, "--clean", "crop_main,ink_contrast",
                               "--json")  # fmt: skip
    assert code == 0, err
    answer = json.loads(out)
    assert answer["preprocessing"]["crop_main"] is True
    assert answer["preprocessing"]["ink_contrast"] is True
    api = Verifier.from_checkpoint(SHIPPED_CHECKPOINT, options=list(CLEAN))
    assert answer["score"] == pytest.approx(api.similarity(*speckled), abs=1e-6)
    code, out, _ = sigid_cli(capsys, "verify", *speckled, "--json")
    assert code == 0 and "preprocessing" not in json.loads(out)
    assert json.loads(out)["score"] != pytest.approx(answer["score"], abs=1e-4)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--clean", "sharpen"], "--clean: unknown option(s) sharpen; choose from remove_lines"),
        (["--clean", ","], "--clean: name at least one of remove_lines"),
        (["--clean", "crop_main", "--gallery", "g.sqlite", "--writer", "w"],
         "--clean: for a pair; a gallery prepares as its checkpoint says"),
    ],
)  # fmt: skip
def test_sigid_verify_clean_refuses_bad_use_in_one_line(capsys, speckled, argv, message):
    code, _, err = sigid_cli(capsys, "verify", *speckled, *argv)
    assert code != 0
    assert message in err and "Traceback" not in err
