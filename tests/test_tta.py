"""Test-time augmentation (`sigid.inference.tta`, `Verifier(tta=N)`): off is the plain
embedding, the variants are fixed, a TTA embedding is the mean of its variants' embeddings, and
a bad N is refused in one line. On real CEDAR scans with the session's tiny Siamese checkpoint."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch
from runs import SMALL_DATA, sigid_cli

from sigid.data import load_image
from sigid.data.preprocess import background_value, prepare
from sigid.evaluation.protocols.writer_dependent import (
    EmbeddedSplit,
    evaluate_splits,
    load_splits,
    protocol_rule,
    writer_dependent,
)
from sigid.inference.gallery import Gallery
from sigid.inference.inputs import to_batch
from sigid.inference.tta import VARIANTS, averaged, check_tta, variant, variants
from sigid.inference.verifier import Verifier


@pytest.fixture(scope="module")
def scans(cedar_root) -> list[Path]:
    full = cedar_root / "signatures"
    return [
        full / "full_org" / "original_1_1.png",
        full / "full_org" / "original_2_3.png",
        full / "full_forg" / "forgeries_3_2.png",
    ]


@pytest.fixture(scope="module")
def plain(siamese_ckpt) -> Verifier:
    return Verifier.from_checkpoint(siamese_ckpt)


def test_tta_1_is_exactly_the_plain_embedding(siamese_ckpt, plain, scans):
    batch = to_batch(scans, plain.preprocessing)
    with torch.inference_mode():
        network = plain.module.net.embed(batch).float().numpy()
    off = Verifier.from_checkpoint(siamese_ckpt, tta=1)
    assert plain.tta == 1
    np.testing.assert_array_equal(plain.embed(scans), network)
    np.testing.assert_array_equal(off.embed(scans), network)
    prepared = np.stack([prepare(load_image(p), plain.preprocessing)
                         for p in scans])  # fmt: skip
    np.testing.assert_array_equal(off.embed_prepared(prepared), network)
    assert off.fingerprint == plain.fingerprint  # galleries of the plain embedding still open
    assert Verifier.from_checkpoint(siamese_ckpt, tta=3).fingerprint != plain.fingerprint


def test_variants_are_fixed_small_changes_filled_with_the_background(plain, scans):
    batch = to_batch(scans, plain.preprocessing)
    fill = background_value(plain.preprocessing["mode"]) / 255.0
    first, second = variants(batch, len(VARIANTS), fill), variants(batch, len(VARIANTS), fill)
    torch.testing.assert_close(first, second, rtol=0, atol=0)  # the same every time
    assert first.shape == (len(VARIANTS) * len(scans), *batch.shape[1:])
    torch.testing.assert_close(first[: len(scans)], batch, rtol=0, atol=0)  # the image itself
    changed = first.reshape(len(VARIANTS), *batch.shape)
    for index in range(1, len(VARIANTS)):
        difference = (changed[index] - batch).abs().mean().item()
        assert 0 < difference < 0.1, VARIANTS[index].name  # changed, and only a little
    # what a shift uncovers is paper: the background value, not the paper's grey of old
    ink = torch.ones(1, 1, 32, 64)
    left = variant(ink, [v.name for v in VARIANTS].index("shift_left"), 0.0)
    assert left[..., -1].abs().max().item() == 0.0 and left[..., 0].min().item() == 1.0
    # two verifiers with the same N embed alike
    a = Verifier(plain.module, tta=5).embed(scans)
    np.testing.assert_array_equal(a, Verifier(plain.module, tta=5).embed(scans))


def test_a_tta_embedding_is_the_mean_of_its_variants_embeddings(plain, scans):
    batch = to_batch(scans, plain.preprocessing)
    fill = background_value(plain.preprocessing["mode"]) / 255.0
    with torch.inference_mode():
        each = np.stack([plain.module.net.embed(variant(batch, v, fill)).float().numpy()
                         for v in range(len(VARIANTS))])  # fmt: skip
    for n in (2, 5, len(VARIANTS)):
        expected = each[:n].mean(axis=0)
        np.testing.assert_allclose(
            Verifier(plain.module, tta=n).embed(scans), expected, rtol=1e-5, atol=1e-6
        )
        assert not np.allclose(expected, each[0], atol=1e-4)  # not the plain embedding
    # a model with unit embeddings gets the mean back on the unit sphere
    rows = torch.tensor([[3.0, 0.0], [1.0, 1.0], [0.0, 4.0], [1.0, 1.0]])  # 2 variants x 2
    unit = averaged(rows, 2, normalize=True)
    torch.testing.assert_close(unit, torch.tensor([[0.6, 0.8], [0.7071068, 0.7071068]]))
    plain_mean = torch.tensor([[1.5, 2.0], [1.0, 1.0]])
    torch.testing.assert_close(averaged(rows, 2, normalize=False), plain_mean)


@pytest.mark.parametrize("bad", [0, -1, len(VARIANTS) + 1, 2.5, "3", True, None])
def test_a_bad_tta_is_refused_in_one_line(siamese_ckpt, bad):
    with pytest.raises(ValueError, match=r"^tta must be a whole number from 1") as err:
        Verifier.from_checkpoint(siamese_ckpt, tta=bad)
    assert "\n" not in str(err.value) and repr(bad) in str(err.value)
    assert check_tta(len(VARIANTS)) == len(VARIANTS)


def test_the_command_refuses_a_bad_tta_naming_the_option(siamese_ckpt, cedar_root, capsys):
    code, _, err = sigid_cli(
        capsys, "evaluate", "--protocol", "writer-dependent", "--ckpt", str(siamese_ckpt),
        "--tta", "0", "data=cedar", f"data.root={cedar_root}",
    )  # fmt: skip
    assert code != 0 and "--tta" in err and len(err.strip().splitlines()) == 1


def test_the_writer_dependent_protocol_and_command_embed_with_tta(capsys, siamese_ckpt):
    """`tta` reaches the protocol's embeddings: its figures are those of the splits embedded by
    a TTA verifier, the JSON says so, and the command gives the same result."""
    result = writer_dependent(siamese_ckpt, SMALL_DATA, tta=3)
    assert result["tta"] == 3 and writer_dependent(siamese_ckpt, SMALL_DATA)["tta"] == 1
    loaded = load_splits(siamese_ckpt, SMALL_DATA)
    tta = Verifier(loaded.verifier.module, loaded.checkpoint, tta=3)
    split = {
        name: EmbeddedSplit(loaded.datamodule.samples[name],
                            tta.embed_prepared(loaded.datamodule.images[name]))
        for name in ("val", "test")
    }  # fmt: skip
    rule = protocol_rule(tta, split["val"], None)
    expected = evaluate_splits(tta, split["val"], split["test"], rule=rule)
    assert result["results"] == expected.results
    assert result["results"] != writer_dependent(siamese_ckpt, SMALL_DATA)["results"]
    code, out, err = sigid_cli(
        capsys, "evaluate", "--protocol", "writer-dependent", "--ckpt", siamese_ckpt,
        "--tta", "3", "--json", *SMALL_DATA,
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["results"] == json.loads(json.dumps(result["results"]))
    code, _, err = sigid_cli(
        capsys, "evaluate", "--protocol", "identification", "--ckpt", siamese_ckpt, "--tta", "3"
    )
    assert code == 1 and "--tta applies to the writer-dependent and robustness" in err


def test_a_gallery_of_plain_embeddings_refuses_a_tta_verifier(plain, scans, tmp_path):
    """TTA embeddings are another model's: a gallery enrolled without it is not queried with
    it (the fingerprint covers `tta`), and one enrolled with it scores its own embeddings."""
    gallery = Gallery(plain)
    gallery.enroll("ann", scans[:2])
    path = gallery.save(tmp_path / "plain.sqlite")
    gallery.close()
    tta = Verifier(plain.module, plain.checkpoint, tta=3)
    with pytest.raises(ValueError, match=r"embedded with test-time augmentation 1, but the given "
                       r"model embeds with 3; give a Verifier with tta=1"):  # fmt: skip
        Gallery.load(path, verifier=tta)
    Gallery.load(path, verifier=Verifier(plain.module, plain.checkpoint, tta=1)).close()
    augmented = Gallery(tta)
    augmented.enroll("ann", scans[:2])
    np.testing.assert_array_equal(augmented.references("ann"), tta.embed(scans[:2]))


def _model_record(path: Path) -> dict:
    """The model record a SQLite gallery keeps, read from the file itself."""
    with sqlite3.connect(path) as db:
        return json.loads(db.execute("SELECT value FROM meta WHERE key = 'model'").fetchone()[0])


def test_a_gallery_enrolled_with_tta_is_read_back_with_it(plain, scans, tmp_path):
    """The store records the TTA its references were embedded with (only where it is not 1, so
    a plain gallery's record is as before), and loading it from its checkpoint embeds with it
    again: the same scores, not a refusal of its own model."""
    tta = Verifier(plain.module, plain.checkpoint, tta=3)
    gallery = Gallery(tta, tmp_path / "tta.sqlite")
    gallery.enroll("ann", scans[:2])
    expected = gallery.verify("ann", scans[2]).score
    gallery.close()
    assert _model_record(tmp_path / "tta.sqlite")["tta"] == 3
    for loaded in (Gallery.load(tmp_path / "tta.sqlite"), Gallery.open(tmp_path / "tta.sqlite")):
        assert loaded.verifier.tta == 3
        assert loaded.verify("ann", scans[2]).score == pytest.approx(expected, abs=1e-6)
        loaded.close()
    plain_gallery = Gallery(plain, tmp_path / "plain.sqlite")
    plain_gallery.enroll("ann", scans[:2])
    plain_gallery.close()
    assert "tta" not in _model_record(tmp_path / "plain.sqlite")


def test_an_npz_export_of_a_tta_gallery_keeps_its_tta(plain, scans, tmp_path, capsys):
    """An ``.npz`` export records the TTA as the store does (only where it is not 1): the file
    opens with its own checkpoint and scores as the store did, and `sigid gallery convert`
    carries it into a new store."""
    tta = Verifier(plain.module, plain.checkpoint, tta=3)
    gallery = Gallery(tta, tmp_path / "tta.sqlite")
    gallery.enroll("ann", scans[:2])
    expected = gallery.verify("ann", scans[2]).score
    exported = gallery.save(tmp_path / "tta.npz")
    gallery.close()
    loaded = Gallery.load(exported)
    assert loaded.verifier.tta == 3
    assert loaded.verify("ann", scans[2]).score == pytest.approx(expected, abs=1e-6)
    loaded.close()
    code, _, err = sigid_cli(
        capsys, "gallery", "convert", str(exported), str(tmp_path / "back.sqlite")
    )
    assert code == 0, err
    assert _model_record(tmp_path / "back.sqlite")["tta"] == 3
    plain_gallery = Gallery(plain, tmp_path / "plain.sqlite")
    plain_gallery.enroll("ann", scans[:2])
    plain_export = plain_gallery.save(tmp_path / "plain.npz")
    plain_gallery.close()
    with np.load(plain_export) as data:
        assert "tta" not in json.loads(bytes(data["metadata"]).decode("utf-8"))
