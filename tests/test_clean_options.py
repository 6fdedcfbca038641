"""Normaliser options added at inference (`Verifier(options=...)`, `sigid verify --clean`,
`sigid enroll --clean`): the checkpoint's network fed a sturdier preprocessing of document scans,
without retraining; a gallery keeps the options it was created with."""

from __future__ import annotations

import json

import numpy as np
import pytest
from runs import sigid_cli, tiny_checkpoint

from sigid.data.acquisition import apply
from sigid.data.images import load_image
from sigid.data.preprocess import prepare
from sigid.inference.gallery import Gallery
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
         "--clean: for a pair; a gallery prepares scans as it was created (its options are set "
         "at its first enrolment: sigid enroll --clean"),
    ],
)  # fmt: skip
def test_sigid_verify_clean_refuses_bad_use_in_one_line(capsys, speckled, argv, message):
    code, _, err = sigid_cli(capsys, "verify", *speckled, *argv)
    assert code != 0
    assert message in err and "Traceback" not in err


def _scans(cedar_root, writer: int, numbers: range) -> list:
    return [cedar_root / "signatures" / "full_org" / f"original_{writer}_{n}.png" for n in numbers]


def test_a_gallery_enrolled_with_options_is_read_back_with_them(tmp_path, cedar_root):
    """The references were embedded with the options, so every later scan must be: loading the
    gallery from its checkpoint adds them again (its record says which), and its answers are
    those of a verifier with the options."""
    clean = Verifier.from_checkpoint(SHIPPED_CHECKPOINT, options=list(CLEAN))
    gallery = Gallery(clean, tmp_path / "people.sqlite")
    gallery.enroll("w1", _scans(cedar_root, 1, range(1, 5)))
    gallery.enroll("w2", _scans(cedar_root, 2, range(1, 5)))
    questioned = _scans(cedar_root, 2, range(9, 10))[0]
    expected = gallery.verify("w2", questioned).score
    gallery.close()
    for loaded in (
        Gallery.load(tmp_path / "people.sqlite"),  # the stored checkpoint path
        Gallery.load(tmp_path / "people.sqlite", SHIPPED_CHECKPOINT),
        Gallery.open(tmp_path / "people.sqlite"),
    ):
        assert loaded.options == list(CLEAN)
        assert loaded.verifier.preprocessing == clean.preprocessing
        assert loaded.verify("w2", questioned).score == pytest.approx(expected, abs=1e-6)
        loaded.close()


def test_sigid_enroll_clean_makes_a_gallery_that_keeps_its_options(capsys, tmp_path, cedar_root):
    """`--clean` at the first enrolment; later enrolments, identify, verify and `gallery info`
    without it use and show the gallery's options."""
    store = tmp_path / "people.sqlite"
    code, out, err = sigid_cli(capsys, "enroll", "--gallery", store, "--writer", "w1",
                               "--clean", ",".join(CLEAN), *_scans(cedar_root, 1, range(1, 5)),
                               "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["options"] == list(CLEAN)
    code, out, err = sigid_cli(capsys, "enroll", "--gallery", store, "--writer", "w2",
                               *_scans(cedar_root, 2, range(1, 5)), "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["options"] == list(CLEAN)
    code, out, err = sigid_cli(capsys, "gallery", "info", store, "--json")
    assert code == 0 and json.loads(out)["options"] == list(CLEAN), err
    code, out, err = sigid_cli(capsys, "gallery", "info", store)
    assert "normaliser options: crop_main, ink_contrast" in out
    questioned = _scans(cedar_root, 2, range(9, 10))[0]
    code, out, err = sigid_cli(capsys, "verify", "--gallery", store, "--writer", "w2",
                               questioned, "--json")  # fmt: skip
    assert code == 0, err
    api = Gallery(Verifier.from_checkpoint(SHIPPED_CHECKPOINT, options=list(CLEAN)))
    api.enroll("w2", _scans(cedar_root, 2, range(1, 5)))
    assert json.loads(out)["score"] == pytest.approx(api.verify("w2", questioned).score, abs=1e-6)
    code, out, err = sigid_cli(capsys, "identify", "--gallery", store, questioned, "--json")
    assert code == 0, err
    assert json.loads(out)["candidates"][0]["writer"] == "w2"


def test_a_gallery_refuses_other_options_in_one_line(capsys, tmp_path, cedar_root):
    store = tmp_path / "people.sqlite"

    def enroll(writer: int, clean: str) -> tuple[int, str]:
        scans = _scans(cedar_root, writer, range(1, 3))
        code, _, err = sigid_cli(capsys, "enroll", "--gallery", store, "--writer", f"w{writer}",
                                 "--clean", clean, *scans)  # fmt: skip
        return code, err

    assert enroll(1, "crop_main")[0] == 0
    for other in ("remove_lines", "crop_main,ink_contrast"):
        code, err = enroll(2, other)
        assert code != 0 and "Traceback" not in err
        assert (f"{store}: this gallery prepares scans with normaliser options crop_main, not "
                f"normaliser options {other.replace(',', ', ')}") in err  # fmt: skip
    assert enroll(2, "crop_main")[0] == 0  # the same options again: accepted
    plain = Verifier.from_checkpoint(SHIPPED_CHECKPOINT)
    with pytest.raises(
        ValueError,
        match=r"prepares scans with normaliser options crop_main, but "
        r"the given model with no normaliser options; give .*options=\['crop_main'\]",
    ):
        Gallery.load(store, verifier=plain)
    assert Gallery.load(store).counts() == {"w1": 2, "w2": 2}  # nothing was enrolled by refusals


def test_options_the_checkpoint_was_trained_with_count_as_the_gallery_s(capsys, tmp_path,
                                                                       cedar_root):  # fmt: skip
    """A checkpoint trained with crop_main, a gallery of it with --clean ink_contrast: giving
    --clean ink_contrast again is the same preprocessing, not another."""
    ckpt = tiny_checkpoint(tmp_path / "run", "model=siamese_conv", "data.preprocess.crop_main=true")
    store = tmp_path / "people.sqlite"
    for writer in (1, 2):
        code, out, err = sigid_cli(capsys, "enroll", "--gallery", store, "--ckpt", ckpt,
                                   "--writer", f"w{writer}", "--clean", "ink_contrast",
                                   *_scans(cedar_root, writer, range(1, 3)), "--json")  # fmt: skip
        assert code == 0, err
        assert json.loads(out)["options"] == ["crop_main", "ink_contrast"]
    code, _, err = sigid_cli(capsys, "enroll", "--gallery", store, "--writer", "w3",
                             *_scans(cedar_root, 3, range(1, 3)))  # fmt: skip
    assert code == 0, err
    assert Gallery.load(store).options == ["crop_main", "ink_contrast"]
