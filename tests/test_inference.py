"""Using a trained model on real CEDAR scans: Verifier, Identifier, Gallery and their commands.

Two tiny checkpoints are trained once per session on the small synthetic set (a Siamese network
with a 2-block conv embedding, and a 2-block CNN); the signatures they are used on are real
CEDAR files. The models are far too small to be accurate, so the tests check the contracts
(ranges, ranking, thresholds, file format, errors), not the identification accuracy.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from runs import sigid_cli

from sigid.data import ImageLoadError, load_image, preprocess
from sigid.data.transforms import to_tensor
from sigid.inference.gallery import Gallery
from sigid.inference.identifier import Identifier
from sigid.inference.inputs import to_batch
from sigid.inference.verifier import Verdict, Verifier
from sigid.runs.paths import run_folder
from sigid.tasks import load_checkpoint

# Enrolled in the gallery: name -> (CEDAR writer, reference numbers).
ENROLLED = {"ann": (1, range(1, 6)), "bob": (2, range(1, 6)), "cyd": (3, range(1, 6))}


def genuine(root: Path, writer: int, number: int) -> Path:
    return root / "signatures" / "full_org" / f"original_{writer}_{number}.png"


def forged(root: Path, writer: int, number: int) -> Path:
    return root / "signatures" / "full_forg" / f"forgeries_{writer}_{number}.png"


@pytest.fixture(scope="session")
def other_ckpt(siamese_ckpt, tmp_path_factory) -> Path:
    """The Siamese checkpoint re-saved with one embedding weight changed."""
    checkpoint = torch.load(siamese_ckpt, map_location="cpu", weights_only=True)
    checkpoint["state_dict"]["net.embedding.project.2.bias"][0] += 0.5
    path = tmp_path_factory.mktemp("other") / "other.ckpt"
    torch.save(checkpoint, path)
    return path


@pytest.fixture(scope="session")
def older_ckpt(siamese_ckpt, tmp_path_factory) -> Path:
    """The Siamese checkpoint as sigid wrote it before it stored the typical genuine distance."""
    checkpoint = torch.load(siamese_ckpt, map_location="cpu", weights_only=True)
    del checkpoint["state_dict"]["genuine_distance"]
    path = tmp_path_factory.mktemp("older") / "older.ckpt"
    torch.save(checkpoint, path)
    return path


@pytest.fixture(scope="session")
def verifier(siamese_ckpt) -> Verifier:
    return Verifier.from_checkpoint(siamese_ckpt)


@pytest.fixture(scope="session")
def gallery_file(verifier, cedar_root, tmp_path_factory) -> Path:
    gallery = Gallery(verifier)
    for name, (writer, numbers) in ENROLLED.items():
        assert gallery.enroll(name, [genuine(cedar_root, writer, n) for n in numbers]) == 5
    return gallery.save(tmp_path_factory.mktemp("gallery") / "people.npz")


# -- Verifier ------------------------------------------------------------------------------------


def test_similarity_is_symmetric_in_0_1_and_highest_for_the_same_image(verifier, cedar_root):
    a, b = genuine(cedar_root, 1, 1), genuine(cedar_root, 1, 2)
    others = [b, forged(cedar_root, 1, 1), genuine(cedar_root, 7, 3)]
    scores = [verifier.similarity(a, other) for other in others]
    assert all(0.0 < s < 1.0 for s in scores)
    assert verifier.similarity(b, a) == pytest.approx(scores[0], abs=1e-6)
    assert verifier.similarity(a, a) >= max(scores) - 1e-6
    # A grey array is the same signature as its file.
    assert verifier.similarity(load_image(a), b) == pytest.approx(scores[0], abs=1e-6)


def test_verify_decides_at_the_threshold_stored_in_the_checkpoint(
    verifier, siamese_ckpt, cedar_root
):
    stored = float(load_checkpoint(siamese_ckpt).threshold)
    assert verifier.threshold == stored
    a, b = genuine(cedar_root, 4, 1), forged(cedar_root, 4, 2)
    verdict = verifier.verify(a, b)
    assert isinstance(verdict, Verdict) and verdict.threshold == stored
    assert verdict.score == pytest.approx(verifier.similarity(a, b), abs=1e-6)
    assert verdict.same == (verdict.score >= stored)
    assert verdict.decision == ("same" if verdict.same else "different")
    assert set(verdict.to_dict()) == {"decision", "same", "score", "threshold"}
    assert Verifier.from_checkpoint(siamese_ckpt, threshold=0.0).verify(a, b).same
    assert not Verifier.from_checkpoint(siamese_ckpt, threshold=1.0).verify(a, b).same
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Verifier.from_checkpoint(siamese_ckpt, threshold=1.5)


def test_embed_runs_the_checkpoints_own_preprocessing(verifier, siamese_ckpt, cedar_root):
    paths = [genuine(cedar_root, 5, n) for n in (1, 2, 3)]
    embeddings = verifier.embed([*paths, load_image(paths[0])])
    assert embeddings.shape == (4, 16) and embeddings.dtype == np.float32
    np.testing.assert_allclose(embeddings[3], embeddings[0], atol=1e-6)
    # Exactly the training pipeline: load_image -> preprocess -> the DataModules' to_tensor.
    module = load_checkpoint(siamese_ckpt)
    stored = {"mode": "normalized", "size": [32, 64]}
    assert verifier.preprocessing == module.preprocessing == stored
    by_hand = torch.stack(
        [to_tensor(preprocess(load_image(p), "normalized", (32, 64))) for p in paths]
    )
    assert torch.equal(to_batch(paths, verifier.preprocessing), by_hand)
    with torch.no_grad():
        expected = module.net.embed(by_hand).numpy()
    np.testing.assert_allclose(embeddings[:3], expected, atol=1e-5)


def test_bad_signature_inputs_are_clear_errors(verifier, cedar_root, tmp_path):
    missing = tmp_path / "absent.png"
    with pytest.raises(ImageLoadError, match=r"absent\.png"):
        verifier.similarity(missing, genuine(cedar_root, 1, 1))
    with pytest.raises(ValueError, match="uint8"):
        verifier.embed([np.zeros((20, 30), dtype=np.float32)])
    with pytest.raises(ValueError, match="wrap a single one"):
        verifier.embed(genuine(cedar_root, 1, 1))
    with pytest.raises(ValueError, match="no signature"):
        verifier.embed([])
    # a blank page (white, black, or almost uniform) has no signature to compare
    for level, noise in ((255, 0), (0, 0), (240, 7)):
        blank = np.full((40, 80), level, dtype=np.uint8)
        blank[::5, ::5] -= np.uint8(noise)
        with pytest.raises(ValueError, match=r"<array>: no ink found \(every pixel within 8"):
            verifier.embed([blank])
    # `normalized` (this model's) finds no stroke 12 levels darker than the paper: an empty
    # canvas is not scored; 60 levels darker is a stroke
    assert verifier.preprocessing["mode"] == "normalized"
    faint = np.full((40, 80), 240, dtype=np.uint8)
    faint[10:30, 10:70] = 228
    faint_message = r"<array>: no ink found \(blurred by one pixel, .* fewer than 40 apart"
    with pytest.raises(ValueError, match=faint_message):
        verifier.embed([faint])
    faint[10:30, 10:70] = 180
    assert verifier.embed([faint]).shape == (1, verifier.dim)


def test_each_tool_refuses_the_other_kind_of_checkpoint(siamese_ckpt, cnn_ckpt):
    with pytest.raises(ValueError, match="CNN writer-classifier checkpoint"):
        Verifier.from_checkpoint(cnn_ckpt)
    with pytest.raises(ValueError, match="Siamese checkpoint"):
        Identifier.from_checkpoint(siamese_ckpt)


# -- Identifier ----------------------------------------------------------------------------------


def test_identifier_ranks_the_checkpoints_writers_by_probability(cnn_ckpt, cedar_root):
    identifier = Identifier.from_checkpoint(cnn_ckpt)
    names = load_checkpoint(cnn_ckpt).class_names
    assert identifier.writers == names == [f"writer0{i}" for i in range(1, 7)]
    image = genuine(cedar_root, 9, 4)
    top = identifier.identify(image, top_k=3)
    assert len(top) == 3 and {w for w, _ in top} <= set(names)
    probs = [p for _, p in top]
    assert probs == sorted(probs, reverse=True) and all(0 < p < 1 for p in probs)
    assert sum(probs) <= 1.0
    everyone = identifier.identify(load_image(image), top_k=50)
    assert sorted(w for w, _ in everyone) == names
    assert sum(p for _, p in everyone) == pytest.approx(1.0, abs=1e-5)
    assert [w for w, _ in everyone[:3]] == [w for w, _ in top]  # the array is the same image
    with pytest.raises(ValueError, match="top_k"):
        identifier.identify(image, top_k=0)


# -- Gallery -------------------------------------------------------------------------------------


def test_gallery_identifies_among_enrolled_writers(gallery_file, cedar_root):
    gallery = Gallery.load(gallery_file)
    assert gallery.writers == list(ENROLLED) and len(gallery) == 3
    found = gallery.identify(genuine(cedar_root, 2, 10))
    scores = [c.score for c in found.candidates]
    assert sorted(c.writer for c in found.candidates) == sorted(ENROLLED)
    assert scores == sorted(scores, reverse=True) and all(0 < s < 1 for s in scores)
    # ranked by mean similarity; the best is the answer if its claim verifies
    bob = next(c for c in found.candidates if c.writer == "bob")
    refs = [genuine(cedar_root, 2, n) for n in range(1, 6)]
    assert bob.score == pytest.approx(
        np.mean([gallery.verifier.similarity(genuine(cedar_root, 2, 10), r) for r in refs]),
        abs=1e-5,
    )
    best = found.candidates[0]
    claim = gallery.verify(best.writer, genuine(cedar_root, 2, 10))
    assert found.score == pytest.approx(claim.score) and gallery.score == "normalized"
    assert found.writer == (best.writer if claim.same else None)
    data = json.loads(json.dumps(found.to_dict()))
    assert set(data) == {"writer", "candidates", "threshold", "score"}
    assert all(set(c) == {"writer", "score"} for c in data["candidates"])
    assert len(gallery.identify(genuine(cedar_root, 2, 10), top_k=2).candidates) == 2


def test_nobody_close_enough_is_an_unknown_writer(gallery_file, cedar_root):
    image = genuine(cedar_root, 2, 11)
    strict = Gallery.load(gallery_file, threshold=1.0).identify(image)
    assert strict.writer is None and len(strict.candidates) == 3
    lenient = Gallery.load(gallery_file, threshold=0.0).identify(image)
    assert lenient.writer == lenient.candidates[0].writer
    assert [c.writer for c in lenient.candidates] == [c.writer for c in strict.candidates]
    # The decision is the verify score of the best-ranked writer against the threshold, which
    # it reaches when equal; the ranking score (the mean similarity) plays no part in it.
    best, score = lenient.candidates[0], lenient.score
    assert score != pytest.approx(best.score, abs=1e-3)  # the two scores differ for this image
    at = Gallery.load(gallery_file, threshold=score).identify(image)
    assert at.writer == best.writer
    above = Gallery.load(gallery_file, threshold=math.nextafter(score, 2.0)).identify(image)
    assert above.writer is None
    between = Gallery.load(gallery_file, threshold=(best.score + score) / 2).identify(image)
    assert between.writer == (best.writer if score > best.score else None)


def _distance(verifier: Verifier, a: Path, b: Path) -> float:
    """Euclidean distance of two signatures' embeddings, computed here with numpy."""
    first, second = verifier.embed([a, b]).astype(np.float64)
    return float(np.sqrt(((first - second) ** 2).sum()))


def _similarity_at(verifier: Verifier, distance: float) -> float:
    """The checkpoint's head, sigmoid(offset - scale * d), from its stored parameters."""
    head = verifier.module.net.head
    offset, scale = float(head.offset.detach()), float(head.scale.detach())
    return float(1.0 / (1.0 + np.exp(-(offset - scale * distance))))


def test_gallery_verifies_a_claim_against_the_writers_own_spread(
    gallery_file, verifier, cedar_root
):
    """The normalised score, by hand: the similarity of (mean distance to the references - the
    references' mean distance to each other + the checkpoint's typical genuine distance)."""
    gallery = Gallery.load(gallery_file)
    assert gallery.score == "normalized"
    typical = verifier.genuine_distance
    assert typical is not None and typical > 0
    query = forged(cedar_root, 2, 3)
    verdict = gallery.verify("bob", query)
    refs = [genuine(cedar_root, 2, n) for n in range(1, 6)]
    to_query = np.mean([_distance(verifier, query, ref) for ref in refs])
    spread = np.mean([_distance(verifier, a, b) for i, a in enumerate(refs) for b in refs[i + 1 :]])
    expected = _similarity_at(verifier, to_query - spread + typical)
    assert verdict.score == pytest.approx(expected, abs=1e-5)
    assert verdict.same == (verdict.score >= gallery.threshold == verifier.threshold)
    assert gallery.sources("bob") == [str(r) for r in refs]
    with pytest.raises(ValueError, match=r"'dan' is not enrolled .*ann, bob, cyd"):
        gallery.verify("dan", query)


def test_one_reference_scores_as_the_pair_similarity(verifier, cedar_root):
    gallery = Gallery(verifier)
    gallery.enroll("ann", [genuine(cedar_root, 1, 1)])
    query = genuine(cedar_root, 1, 2)
    assert gallery.score == "normalized"
    assert gallery.verify("ann", query).score == pytest.approx(
        verifier.similarity(query, genuine(cedar_root, 1, 1)), abs=1e-5
    )


def test_a_mean_score_gallery_verifies_by_mean_similarity(verifier, cedar_root, tmp_path):
    gallery = Gallery(verifier, score="mean")
    refs = [genuine(cedar_root, 2, n) for n in range(1, 6)]
    gallery.enroll("bob", refs)
    query = forged(cedar_root, 2, 3)
    mean = np.mean([verifier.similarity(query, ref) for ref in refs])
    assert gallery.verify("bob", query).score == pytest.approx(mean, abs=1e-5)
    found = gallery.identify(query)  # one writer: ranked and verified by the same score
    assert found.score == found.candidates[0].score == pytest.approx(mean, abs=1e-5)
    again = Gallery.load(gallery.save(tmp_path / "mean.npz"))
    assert again.score == "mean"
    assert again.verify("bob", query).score == pytest.approx(mean, abs=1e-5)
    with pytest.raises(ValueError, match="unknown gallery score 'max'"):
        Gallery(verifier, score="max")


def test_a_version_1_gallery_file_still_scores_by_the_mean(gallery_file, verifier, cedar_root):
    """Files written before the normalised score keep deciding as they did."""
    with np.load(gallery_file, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    meta = json.loads(bytes(arrays["metadata"]).decode("utf-8"))
    meta.update(version=1, score="mean similarity to the writer's references")
    arrays["metadata"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    old = gallery_file.parent / "version1.npz"
    np.savez(old, **arrays)
    gallery = Gallery.load(old)
    assert gallery.score == "mean"
    query = forged(cedar_root, 2, 3)
    refs = [genuine(cedar_root, 2, n) for n in range(1, 6)]
    mean = np.mean([verifier.similarity(query, ref) for ref in refs])
    assert gallery.verify("bob", query).score == pytest.approx(mean, abs=1e-5)


def test_an_older_checkpoint_galleries_score_by_the_mean(older_ckpt, cedar_root):
    verifier = Verifier.from_checkpoint(older_ckpt)
    assert verifier.genuine_distance is None
    assert Gallery(verifier).score == "mean"
    with pytest.raises(ValueError, match="does not store the typical genuine distance"):
        Gallery(verifier, score="normalized")


def test_enrolling_an_enrolled_writer_adds_references(gallery_file, cedar_root, tmp_path):
    gallery = Gallery.load(gallery_file)
    assert gallery.save(tmp_path / "people.sqlite") == tmp_path / "people.sqlite"  # a store now
    more = [genuine(cedar_root, 1, 20), load_image(genuine(cedar_root, 1, 21))]
    assert gallery.enroll("ann", more) == 7
    with pytest.raises(ImageLoadError):  # nothing enrolled when one image fails
        gallery.enroll("ann", [genuine(cedar_root, 1, 22), tmp_path / "absent.png"])
    assert len(gallery.references("ann")) == 7 and gallery.sources("ann")[-1] == "<array>"
    again = Gallery.load(gallery.save(tmp_path / "more.npz"))
    assert len(again.references("ann")) == 7 and again.writers == list(ENROLLED)


def test_gallery_file_round_trips_without_pickle(gallery_file, siamese_ckpt, verifier, cedar_root):
    with np.load(gallery_file, allow_pickle=False) as data:
        assert set(data.files) == {"embeddings", "writer_index", "metadata"}
        meta = json.loads(bytes(data["metadata"]).decode("utf-8"))
        assert data["embeddings"].shape == (15, 16) and data["embeddings"].dtype == np.float32
        assert data["writer_index"].tolist() == [0] * 5 + [1] * 5 + [2] * 5
    assert meta["format"] == "sigid-gallery" and meta["version"] == 2
    assert meta["score"] == "normalized"
    assert meta["writers"] == list(ENROLLED) and len(meta["sources"]) == 15
    assert meta["checkpoint"] == str(siamese_ckpt.resolve())
    assert meta["fingerprint"] == verifier.fingerprint and len(meta["fingerprint"]) == 64
    assert meta["preprocessing"] == {"mode": "normalized", "size": [32, 64]}
    loaded = Gallery.load(gallery_file, siamese_ckpt)
    fresh = Gallery(verifier)
    fresh.enroll("bob", [genuine(cedar_root, 2, n) for n in range(1, 6)])
    np.testing.assert_allclose(loaded.references("bob"), fresh.references("bob"), atol=1e-6)
    query = genuine(cedar_root, 3, 12)
    assert loaded.verify("bob", query).score == pytest.approx(fresh.verify("bob", query).score)


def test_save_is_atomic(gallery_file, tmp_path, monkeypatch):
    """An .npz export (for older sigid) is written whole or not at all."""
    out = tmp_path / "out"
    target = out / "g.npz"
    gallery = Gallery.load(gallery_file)
    gallery.save(tmp_path / "g.sqlite")  # a store, which takes enrolments
    gallery.save(target)
    assert [p.name for p in out.iterdir()] == ["g.npz"]  # no temporary file left
    before = target.read_bytes()

    def broken_savez(stream, **arrays):
        stream.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    stroke = np.full((40, 80), 255, dtype=np.uint8)
    stroke[15:25, 10:70] = 0  # some ink: a blank page is refused
    gallery.enroll("dan", [stroke])
    with pytest.raises(OSError, match="disk full"):
        gallery.save(target)  # the .npz export, written again
    assert target.read_bytes() == before  # the old gallery, intact
    assert [p.name for p in out.iterdir()] == ["g.npz"]
    monkeypatch.undo()
    gallery.save(target)
    assert "dan" in Gallery.load(target).writers


def test_a_gallery_refuses_another_checkpoint(gallery_file, siamese_ckpt, other_ckpt, verifier):
    assert Verifier.from_checkpoint(siamese_ckpt).fingerprint == verifier.fingerprint
    assert Verifier.from_checkpoint(other_ckpt).fingerprint != verifier.fingerprint
    with pytest.raises(ValueError, match="different weights") as caught:
        Gallery.load(gallery_file, other_ckpt)
    assert str(siamese_ckpt.resolve()) in str(caught.value)
    assert str(other_ckpt.resolve()) in str(caught.value)


def test_a_gallery_refuses_the_same_weights_with_other_preprocessing(
    gallery_file, siamese_ckpt, tmp_path
):
    checkpoint = torch.load(siamese_ckpt, map_location="cpu", weights_only=True)
    preprocessing = checkpoint["hyper_parameters"]["preprocessing"]
    assert preprocessing["mode"] == "normalized"
    preprocessing["mode"] = "paper"  # the same weights, fed plain grey resizes
    paper = tmp_path / "paper.ckpt"
    torch.save(checkpoint, paper)
    with pytest.raises(ValueError, match="different weights or preprocessing"):
        Gallery.load(gallery_file, paper)


def test_a_moved_checkpoint_is_given_again(siamese_ckpt, cedar_root, tmp_path):
    moved = tmp_path / "moved.ckpt"
    shutil.copy(siamese_ckpt, moved)
    gallery = Gallery(Verifier.from_checkpoint(moved))
    gallery.enroll("ann", [genuine(cedar_root, 1, 1)])
    path = gallery.save(tmp_path / "g.npz")
    moved.unlink()
    with pytest.raises(ValueError, match=r"moved\.ckpt is not found; give the checkpoint"):
        Gallery.load(path)
    assert Gallery.load(path, siamese_ckpt).writers == ["ann"]  # the same weights


def test_empty_missing_and_foreign_gallery_files(verifier, cedar_root, tmp_path):
    empty = Gallery(verifier).save(tmp_path / "empty.npz")
    with pytest.raises(ValueError, match="no writers enrolled"):
        Gallery.load(empty).identify(genuine(cedar_root, 1, 1))
    with pytest.raises(ValueError, match="no such gallery file"):
        Gallery.load(tmp_path / "absent.npz")
    with pytest.raises(ValueError, match="not a sigid gallery"):
        Gallery.load(genuine(cedar_root, 1, 1))
    np.savez(tmp_path / "arrays.npz", embeddings=np.zeros((1, 16)))
    with pytest.raises(ValueError, match="not a sigid gallery"):
        Gallery.load(tmp_path / "arrays.npz")


# -- the sigid command ---------------------------------------------------------------------------


def test_cli_verify_a_pair(capsys, siamese_ckpt, cedar_root):
    a, b = genuine(cedar_root, 6, 1), genuine(cedar_root, 6, 2)
    code, out, _ = sigid_cli(capsys, "verify", a, b, "--ckpt", siamese_ckpt)
    assert code == 0 and ("same writer" in out or "different writers" in out)
    assert "threshold" in out
    code, out, _ = sigid_cli(capsys, "verify", a, b, "--ckpt", siamese_ckpt, "--json")
    data = json.loads(out)
    assert code == 0 and data["decision"] in ("same", "different")
    assert data["same"] == (data["score"] >= data["threshold"]) and 0 < data["score"] < 1
    code, out, _ = sigid_cli(capsys, "verify", a, b, "--ckpt", siamese_ckpt, "--threshold", "0")
    assert code == 0 and out.startswith("same writer  (similarity ") and ">= threshold 0" in out
    code, out, _ = sigid_cli(capsys, "verify", a, b, "--ckpt", siamese_ckpt, "--threshold", "1")
    assert code == 0 and out.startswith("different writers  (similarity ")
    assert "< threshold 1" in out


def test_cli_identify_with_a_cnn(capsys, cnn_ckpt, cedar_root):
    image = genuine(cedar_root, 8, 1)
    code, out, _ = sigid_cli(capsys, "identify", "--ckpt", cnn_ckpt, image, "--top-k", "3")
    assert code == 0 and "most likely: writer0" in out and out.count("writer0") == 4
    code, out, _ = sigid_cli(capsys, "identify", "--ckpt", cnn_ckpt, image, "--json")
    data = json.loads(out)
    assert code == 0 and len(data["candidates"]) == 5
    assert data["writer"] == data["candidates"][0]["writer"]
    assert set(data["candidates"][0]) == {"writer", "probability"}


def test_a_run_folder_is_taken_for_its_best_checkpoint(
    capsys, siamese_ckpt, cnn_ckpt, cedar_root, tmp_path
):
    snn_run, cnn_run = run_folder(siamese_ckpt), run_folder(cnn_ckpt)
    assert Verifier.from_checkpoint(snn_run).checkpoint == siamese_ckpt.resolve()
    assert Identifier.from_checkpoint(cnn_run).checkpoint == cnn_ckpt.resolve()
    a, b = genuine(cedar_root, 6, 1), genuine(cedar_root, 6, 2)
    for argv in (["verify", a, b], ["identify", a]):
        ckpt = siamese_ckpt if argv[0] == "verify" else cnn_ckpt
        code, by_file, err = sigid_cli(capsys, *argv, "--ckpt", ckpt, "--json")
        assert code == 0, err
        code, by_folder, err = sigid_cli(capsys, *argv, "--ckpt", run_folder(ckpt), "--json")
        assert code == 0, err
        assert json.loads(by_folder) == json.loads(by_file)
    gallery = tmp_path / "g.sqlite"
    code, out, err = sigid_cli(
        capsys, "enroll", "--ckpt", snn_run, "--gallery", gallery, "--writer", "ann", a, b, "--json"
    )
    assert code == 0, err
    assert json.loads(out)["checkpoint"] == str(siamese_ckpt.resolve())
    assert Gallery.load(gallery).verifier.checkpoint == siamese_ckpt.resolve()
    export_dir = tmp_path / "deploy"
    argv = ["export", "--ckpt", cnn_run, "--out", export_dir, "--format", "torchscript"]
    code, _, err = sigid_cli(capsys, *argv)
    assert code == 0, err
    assert sorted(p.name for p in export_dir.iterdir()) == ["classifier.json", "classifier.pt"]


def test_cli_enroll_then_identify_and_verify_with_the_gallery(
    capsys, siamese_ckpt, cedar_root, tmp_path
):
    gallery = tmp_path / "g.sqlite"
    refs = {name: [genuine(cedar_root, w, n) for n in ns] for name, (w, ns) in ENROLLED.items()}
    code, out, _ = sigid_cli(
        capsys, "enroll", "--ckpt", siamese_ckpt, "--gallery", gallery, "--writer", "ann",
        *refs["ann"],
    )  # fmt: skip
    assert code == 0 and "enrolled 5 signature(s) of ann" in out and gallery.is_file()
    for name in ("bob", "cyd"):  # later enrolls use the checkpoint stored in the gallery
        code, out, _ = sigid_cli(capsys, "enroll", "--gallery", gallery, "--writer", name,
                            *refs[name], "--json")  # fmt: skip
        assert code == 0
    assert json.loads(out) == {
        "gallery": str(gallery), "writer": "cyd", "added": 5, "references": 5, "writers": 3,
        "checkpoint": str(siamese_ckpt.resolve()), "score": "normalized", "options": [],
    }  # fmt: skip
    code, out, _ = sigid_cli(capsys, "enroll", "--gallery", gallery, "--writer", "ann",
                        genuine(cedar_root, 1, 6), "--json")  # fmt: skip
    assert code == 0 and json.loads(out)["references"] == 6

    query = genuine(cedar_root, 3, 14)
    code, out, _ = sigid_cli(capsys, "identify", "--gallery", gallery, query)
    assert code == 0 and out.startswith(("best match: ", "unknown writer"))
    assert all(name in out for name in ENROLLED)
    code, out, _ = sigid_cli(capsys, "identify", "--gallery", gallery, query, "--json")
    data = json.loads(out)
    assert code == 0 and {c["writer"] for c in data["candidates"]} == set(ENROLLED)
    assert all(set(c) == {"writer", "score"} for c in data["candidates"])
    assert data["writer"] in (None, data["candidates"][0]["writer"])
    code, out, _ = sigid_cli(
        capsys, "identify", "--gallery", gallery, query, "--json", "--threshold", "1"
    )
    assert code == 0 and json.loads(out)["writer"] is None
    code, out, _ = sigid_cli(capsys, "identify", "--gallery", gallery, query, "--threshold", "1")
    assert out.startswith("unknown writer")

    code, out, _ = sigid_cli(capsys, "verify", "--gallery", gallery, "--writer", "cyd", query)
    assert code == 0 and out.startswith(("accepted: matches cyd", "rejected: does not match cyd"))
    assert "normalized score against 5 references" in out
    code, out, _ = sigid_cli(
        capsys, "verify", "--gallery", gallery, "--writer", "cyd", query, "--json"
    )
    data = json.loads(out)
    assert code == 0 and data["writer"] == "cyd" and data["references"] == 5
    assert data["same"] == (data["score"] >= data["threshold"])
    assert data["gallery_score"] == "normalized"
    verdicts = {"0": "accepted: matches cyd", "1": "rejected: does not match cyd"}
    for threshold, verdict in verdicts.items():
        code, out, _ = sigid_cli(capsys, "verify", "--gallery", gallery, "--writer", "cyd", query,
                            "--threshold", threshold)  # fmt: skip
        assert code == 0 and out.startswith(verdict), out


def test_cli_enroll_can_create_a_mean_score_gallery(capsys, siamese_ckpt, cedar_root, tmp_path):
    gallery = tmp_path / "mean.sqlite"
    refs = [genuine(cedar_root, 1, n) for n in range(1, 4)]
    code, out, _ = sigid_cli(capsys, "enroll", "--ckpt", siamese_ckpt, "--gallery", gallery,
                        "--writer", "ann", *refs, "--score", "mean", "--json")  # fmt: skip
    assert code == 0 and json.loads(out)["score"] == "mean"
    assert Gallery.load(gallery).score == "mean"
    code, out, err = sigid_cli(capsys, "enroll", "--gallery", gallery, "--writer", "bob",
                          genuine(cedar_root, 2, 1), "--score", "normalized")  # fmt: skip
    assert code == 1 and "scores by 'mean', not 'normalized'" in err
    assert Gallery.load(gallery).writers == ["ann"]


def test_cli_enroll_keeps_a_read_only_gallery(capsys, gallery_file, cedar_root, tmp_path):
    gallery = tmp_path / "kept.npz"
    gallery.write_bytes(gallery_file.read_bytes())
    gallery.chmod(0o444)
    try:
        code, out, err = sigid_cli(capsys, "enroll", "--gallery", gallery, "--writer", "dan",
                              genuine(cedar_root, 4, 1))  # fmt: skip
        assert code == 1 and out == ""
        assert err == f"sigid enroll: error: {gallery}: cannot write: the file is read-only\n"
        assert gallery.read_bytes() == gallery_file.read_bytes()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.npz"]
        code, out, _ = sigid_cli(
            capsys, "identify", "--gallery", gallery, genuine(cedar_root, 1, 9)
        )
        assert code == 0 and out.startswith(("best match: ", "unknown writer"))  # still readable
    finally:
        gallery.chmod(0o644)


def test_cli_errors_are_one_clear_line(
    capsys, siamese_ckpt, cnn_ckpt, other_ckpt, gallery_file, cedar_root, tmp_path
):
    img = genuine(cedar_root, 1, 1)
    absent = tmp_path / "absent.png"
    empty = Gallery(Verifier.from_checkpoint(siamese_ckpt)).save(tmp_path / "empty.npz")
    white = tmp_path / "white.png"
    Image.new("L", (300, 120), 255).save(white)
    cases = [
        (["verify", absent, img, "--ckpt", siamese_ckpt], "absent.png: cannot open file"),
        (["verify", img, img, "--ckpt", tmp_path / "no.ckpt"], "checkpoint not found"),
        (["verify", img, img, "--ckpt", img], "not a sigid checkpoint"),
        (["verify", img, img, "--ckpt", cnn_ckpt], "CNN writer-classifier checkpoint"),
        (["verify", img, "--ckpt", siamese_ckpt], "give two signatures"),
        (["verify", "--gallery", gallery_file, "--writer", "dan", img], "'dan' is not enrolled"),
        (["verify", "--gallery", gallery_file, img, img], "--writer NAME"),
        (["identify", "--ckpt", siamese_ckpt, img], "Siamese checkpoint"),
        (["identify", "--gallery", tmp_path / "none.npz", img], "no such gallery file"),
        (["identify", "--gallery", gallery_file, "--ckpt", other_ckpt, img], "different weights"),
        (["identify", "--gallery", gallery_file, "--ckpt", cnn_ckpt, img], "CNN"),
        (["identify", img], "give --ckpt"),
        (["identify", "--gallery", empty, img], "no writers enrolled"),
        (["verify", "--gallery", empty, "--writer", "ann", img], "no writers enrolled"),
        (["identify", "--gallery", tmp_path, img], "not a gallery store (it is a folder)"),
        (["enroll", "--gallery", tmp_path / "new.npz", "--writer", "x", img],
         "new galleries are stores, not .npz files: name it"),
        (["verify", img, white, "--ckpt", siamese_ckpt], "white.png: no ink found"),
        (["identify", "--ckpt", cnn_ckpt, white], "white.png: no ink found"),
        (["enroll", "--gallery", tmp_path / "new.sqlite", "--ckpt", cnn_ckpt, "--writer", "x", img],
         "CNN writer-classifier checkpoint"),
    ]  # fmt: skip
    for argv, message in cases:
        code, out, err = sigid_cli(capsys, *argv)
        assert code == 1, (argv, out, err)
        assert err.startswith(f"sigid {argv[0]}: error: ") and message in err, err
        assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "new.npz").exists() and not (tmp_path / "new.sqlite").exists()


# -- Python API arguments ------------------------------------------------------------------------


def test_an_empty_stack_of_images_is_no_signatures(verifier):
    with pytest.raises(ValueError, match=r"^no signature images given$"):
        verifier.embed(np.zeros((0, 10, 10), dtype=np.uint8))


def test_identifier_top_k_is_a_whole_number_or_none_for_all(cnn_ckpt, cedar_root):
    """2.9 used to be cut to 2, and None (all writers, as for a gallery) to raise TypeError."""
    identifier = Identifier.from_checkpoint(cnn_ckpt)
    image = genuine(cedar_root, 2, 10)
    for wrong in (2.9, True, "3", 0, -1):
        with pytest.raises(ValueError, match="top_k"):
            identifier.identify(image, top_k=wrong)
    assert len(identifier.identify(image, top_k=None)) == len(identifier.writers)
    assert len(identifier.identify(image, top_k=np.int64(2))) == 2


def test_a_threshold_that_is_not_a_number_is_named(siamese_ckpt):
    for wrong in ("abc", True, [0.5]):
        with pytest.raises(ValueError, match=r"^threshold must be a number in \[0, 1\], got "):
            Verifier.from_checkpoint(siamese_ckpt, threshold=wrong)
    assert Verifier.from_checkpoint(siamese_ckpt, threshold=np.float32(0.25)).threshold == 0.25


def test_gallery_top_k_is_a_whole_number_or_none_for_all(gallery_file, cedar_root):
    gallery = Gallery.load(gallery_file)
    image = genuine(cedar_root, 2, 10)
    for wrong in (1.7, True, "3", 0):
        with pytest.raises(ValueError, match="top_k"):
            gallery.identify(image, top_k=wrong)
    assert len(gallery.identify(image, top_k=None).candidates) == len(ENROLLED)
    assert len(gallery.identify(image, top_k=2.0).candidates) == 2


def test_a_gallery_is_made_from_a_verifier_not_a_path(gallery_file):
    for wrong in (str(gallery_file), gallery_file, None):
        with pytest.raises(TypeError, match=r"a Gallery needs a Verifier .*Gallery\.load\(path\)"):
            Gallery(wrong)


def test_a_writer_name_is_a_string(gallery_file, cedar_root):
    gallery = Gallery.load(gallery_file)
    for wrong in (None, 7):
        with pytest.raises(TypeError, match="a writer name is a str"):
            gallery.enroll(wrong, [genuine(cedar_root, 4, 1)])
    assert gallery.writers == list(ENROLLED)
