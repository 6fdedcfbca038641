"""Damaged and foreign gallery files: one clear line naming the file and what is wrong.

A real gallery is enrolled once with the tiny Siamese checkpoint (drawn signatures), then
rewritten into tmp_path with one thing changed, as a hand edit or another program would.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from drawing import draw_signature
from runs import READS_ANYTHING

from sigid.cli import main
from sigid.inference.gallery import Gallery
from sigid.inference.gallery.manage import convert
from sigid.inference.verifier import Verifier


@pytest.fixture(scope="session")
def gallery_file(siamese_ckpt, tmp_path_factory) -> Path:
    """Two writers with three drawn references each."""
    gallery = Gallery(Verifier.from_checkpoint(siamese_ckpt))
    for writer in (1, 2):
        gallery.enroll(f"w{writer}", [np.asarray(draw_signature(writer, n)) for n in range(3)])
    return gallery.save(tmp_path_factory.mktemp("gallery") / "people.npz")


@pytest.fixture
def people(gallery_file, tmp_path) -> Path:
    """The session's gallery converted to a store of this test's own (enrolments write through)."""
    convert(gallery_file, tmp_path / "people.sqlite")
    return tmp_path / "people.sqlite"


@pytest.fixture
def query(tmp_path) -> Path:
    path = tmp_path / "questioned.png"
    draw_signature(1, 7).save(path)
    return path


def _rewrite(
    source: Path,
    target: Path,
    meta: Callable[[dict[str, Any]], object] = lambda meta: None,
    embeddings: Callable[[np.ndarray], np.ndarray] = lambda rows: rows,
    index: Callable[[np.ndarray], np.ndarray] = lambda index: index,
) -> Path:
    """`source` written again at `target` with its metadata, embeddings and writer_index
    changed."""
    with np.load(source, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    stored = json.loads(bytes(arrays["metadata"]).decode("utf-8"))
    meta(stored)
    arrays["metadata"] = np.frombuffer(json.dumps(stored).encode("utf-8"), dtype=np.uint8)
    arrays["embeddings"] = embeddings(arrays["embeddings"])
    arrays["writer_index"] = index(arrays["writer_index"])
    np.savez(target, **arrays)
    return target


def _refused(capsys, path: Path, query: Path, reason: str) -> None:
    """Gallery.load and `sigid identify` both refuse `path` with one line naming it."""
    with pytest.raises(ValueError) as caught:
        Gallery.load(path)
    assert str(caught.value).startswith(f"{path}: ") and reason in str(caught.value)
    assert "\n" not in str(caught.value)
    assert main(["identify", str(query), "--gallery", str(path)]) == 1
    out, err = capsys.readouterr()
    assert err == f"sigid identify: error: {caught.value}\n" and not out


def test_the_unchanged_rewrite_loads(gallery_file, tmp_path):
    """The rewriting below changes only what each test changes."""
    gallery = Gallery.load(_rewrite(gallery_file, tmp_path / "same.npz"))
    assert gallery.writers == ["w1", "w2"] and gallery.references("w1").shape == (3, 16)


@pytest.mark.parametrize(
    ("contents", "reason"),
    [
        (b"", "not a sigid gallery file (empty file, 0 bytes)"),
        (b"writer,file\nann,a.png\n", "not a sigid gallery file (not an .npz (zip) archive)"),
        (b"\x93NUMPY\x01\x00", "not a sigid gallery file (not an .npz (zip) archive)"),
    ],
    ids=["empty", "text", "npy"],
)
def test_files_that_are_not_npz_archives(contents, reason, tmp_path, query, capsys):
    path = tmp_path / "people.npz"
    path.write_bytes(contents)
    _refused(capsys, path, query, reason)


def _set(field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """An edit of the metadata that sets `field` to `value`."""
    return lambda meta: meta.update({field: value})


# id -> (how the metadata is edited, the reason given)
DAMAGED: dict[str, tuple[Callable[[dict[str, Any]], object], str]] = {
    "no-checkpoint": (lambda meta: meta.pop("checkpoint"), "no 'checkpoint' in the metadata"),
    "no-fingerprint": (lambda meta: meta.pop("fingerprint"), "no 'fingerprint' in the metadata"),
    "checkpoint-5": (_set("checkpoint", 5), "metadata 'checkpoint' is not a string or null: 5"),
    "fingerprint-5": (_set("fingerprint", 5), "metadata 'fingerprint' is not a string: 5"),
    "writers-ints": (_set("writers", [1, 2]), "metadata 'writers' is not a list of strings"),
    "writers-str": (_set("writers", "w1"), "metadata 'writers' is not a list: 'w1'"),
    "sources-ints": (_set("sources", [0] * 6), "metadata 'sources' is not a list of strings"),
    "dim-str": (_set("dim", "16"), "metadata 'dim' is not an integer: '16'"),
    "preprocessing-null": (
        _set("preprocessing", None),
        "metadata 'preprocessing' is not an object: None",
    ),
}


@pytest.mark.parametrize("case", list(DAMAGED))
def test_metadata_fields_are_checked_on_load(case, gallery_file, tmp_path, query, capsys):
    change, reason = DAMAGED[case]
    path = _rewrite(gallery_file, tmp_path / "edited.npz", meta=change)
    _refused(capsys, path, query, f"damaged gallery file ({reason})")


def test_a_version_that_is_not_an_integer_is_refused(gallery_file, tmp_path, query, capsys):
    path = _rewrite(gallery_file, tmp_path / "edited.npz", meta=_set("version", True))
    _refused(capsys, path, query, "gallery format version True is not supported")


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_embeddings_are_refused(value, gallery_file, tmp_path, query, capsys):
    """They would score NaN: every claim silently rejected, with exit status 0."""

    def spoil(rows: np.ndarray) -> np.ndarray:
        rows = rows.copy()
        rows[1, 3] = value
        return rows

    path = _rewrite(gallery_file, tmp_path / "spoilt.npz", embeddings=spoil)
    _refused(capsys, path, query, "embeddings contain NaN or infinite values")


def test_embedding_width_is_checked_against_the_metadata(gallery_file, tmp_path, query, capsys):
    path = _rewrite(gallery_file, tmp_path / "narrow.npz", embeddings=lambda rows: rows[:, :5])
    reason = "damaged gallery file (5-dimensional embeddings, but the metadata says 16)"
    _refused(capsys, path, query, reason)


def test_embedding_width_is_checked_against_the_model(gallery_file, tmp_path, query, capsys):
    path = _rewrite(gallery_file, tmp_path / "narrow.npz", _set("dim", 5), lambda rows: rows[:, :5])
    reason = "the gallery holds 5-dimensional embeddings, but the model's are 16-dimensional"
    _refused(capsys, path, query, reason)


@pytest.mark.skipif(READS_ANYTHING, reason="file modes do not stop reads here (root, or Windows)")
def test_a_gallery_without_read_permission(gallery_file, tmp_path, query, capsys):
    path = tmp_path / "locked.npz"
    path.write_bytes(gallery_file.read_bytes())
    path.chmod(0)
    _refused(capsys, path, query, "cannot read: permission denied")


def test_a_saved_gallery_file_honours_the_umask_and_keeps_an_existing_mode(gallery_file, tmp_path):
    # signature embeddings of people: a private umask keeps a new gallery private
    gallery = Gallery.load(gallery_file)
    old = os.umask(0o077)
    try:
        new = gallery.save(tmp_path / "private.npz")
    finally:
        os.umask(old)
    assert new.stat().st_mode & 0o777 == 0o600
    new.chmod(0o640)  # an owner's choice survives a rewrite
    gallery.save(new)
    assert new.stat().st_mode & 0o777 == 0o640


def test_embeddings_that_are_not_a_table_are_refused(gallery_file, tmp_path, query, capsys):
    """A 0-d array used to fail with a TypeError traceback (len() of an unsized object)."""
    path = _rewrite(gallery_file, tmp_path / "scalar.npz", embeddings=lambda rows: np.float32(1))
    _refused(capsys, path, query, "damaged gallery file (embeddings are not a 2-D float array)")


def test_a_writer_index_of_floats_is_refused(gallery_file, tmp_path, query, capsys):
    """0.5 was cast to writer 0 without a word."""
    path = _rewrite(
        gallery_file, tmp_path / "floats.npz", index=lambda index: np.where(index == 0, 0.5, 1.0)
    )
    reason = "damaged gallery file (writer_index holds float64 values, not integers)"
    _refused(capsys, path, query, reason)


def test_preprocessing_edited_in_the_metadata_is_refused(gallery_file, tmp_path, query, capsys):
    """The fingerprint covers the preprocessing: metadata that disagrees was edited."""
    path = _rewrite(
        gallery_file,
        tmp_path / "edited.npz",
        meta=_set("preprocessing", {"mode": "paper", "size": [32, 64]}),
    )
    reason = (
        "damaged gallery file (its metadata says preprocessing {'mode': 'paper', 'size': [32, 64]}"
        ", but its fingerprint is of the model's {'mode': 'normalized', 'size': [32, 64]}: the "
        "file was edited)"
    )
    _refused(capsys, path, query, reason)


def test_non_finite_embeddings_are_not_enrolled(people, monkeypatch):
    """What load refuses, enroll must refuse: the gallery would be lost at the next use."""
    gallery = Gallery.load(people)
    verifier = gallery.verifier
    monkeypatch.setattr(
        verifier, "embed", lambda images: np.full((len(images), verifier.dim), np.nan, np.float32)
    )
    message = (
        f"{people}: not enrolled: the embeddings of writer 'w3' contain NaN or infinite values"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        gallery.enroll("w3", [np.asarray(draw_signature(3, 1))])
    assert Gallery.load(people).writers == ["w1", "w2"]


@pytest.fixture
def drawn(tmp_path) -> list[Path]:
    """Three drawn signatures of one writer, as files."""
    folder = tmp_path / "drawn"
    folder.mkdir()
    paths = [folder / f"s{n}.png" for n in range(3)]
    for n, path in enumerate(paths):
        draw_signature(3, n).save(path)
    return paths


def test_a_file_is_a_reference_of_a_writer_once(people, drawn, monkeypatch):
    """The same reference twice has spread 0: the writer would look perfectly consistent and
    the 'normalized' score reject their own signatures."""
    gallery = Gallery.load(people)
    before = gallery.references("w2")
    a, b, c = drawn
    monkeypatch.chdir(a.parent)
    with pytest.raises(ValueError) as caught:
        gallery.enroll("w3", [a, b, a])
    assert str(caught.value).startswith(f"{a}: given twice for writer 'w3': a reference counts")
    assert str(caught.value).endswith("; nothing was enrolled") and "w3" not in gallery
    assert gallery.enroll("w3", [a, b]) == 2
    assert gallery.sources("w3") == [str(a), str(b)]
    for again in (a, Path("s0.png"), f"../{a.parent.name}/s1.png"):  # spelt another way
        with pytest.raises(ValueError, match=r"already a reference of writer 'w3'"):
            gallery.enroll("w3", [c, again])
    copy = a.with_name("copy.png")
    copy.write_bytes(a.read_bytes())
    with pytest.raises(ValueError, match=rf"copy\.png: the same image as {re.escape(str(a))}, "):
        gallery.enroll("w3", [copy])
    assert gallery.sources("w3") == [str(a), str(b)]  # nothing added by the refused calls
    assert gallery.enroll("w3", [c]) == 3
    assert len(gallery.references("w2")) == len(before)


def test_an_array_is_a_reference_of_a_writer_once(people, drawn):
    gallery = Gallery.load(people)
    first, second = (np.asarray(draw_signature(3, n)) for n in (0, 1))
    with pytest.raises(ValueError, match=r"^<array>: the same image as <array>, given twice"):
        gallery.enroll("w3", [first, second, first.copy()])
    assert gallery.enroll("w3", [first, second]) == 2
    with pytest.raises(ValueError, match=r"^<array>: the same image as <array>, already a "):
        gallery.enroll("w3", [second.copy()])
    with pytest.raises(ValueError, match=r"s0\.png: the same image as <array>, already a "):
        gallery.enroll("w3", [drawn[0]])  # the file of that image
    assert len(gallery.references("w3")) == 2


def test_cli_enroll_refuses_a_repeated_reference(siamese_ckpt, drawn, tmp_path, capsys):
    target = tmp_path / "people.sqlite"
    argv = ["enroll", "--gallery", target, "--ckpt", siamese_ckpt, "--writer", "same"]
    assert main([str(a) for a in [*argv, drawn[0], drawn[0], drawn[0]]]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"sigid enroll: error: {drawn[0]}: given twice for writer 'same'")
    assert err.count("\n") == 1 and not target.exists()
    assert main([str(a) for a in [*argv, drawn[0]]]) == 0
    capsys.readouterr()
    assert main([str(a) for a in [*argv, drawn[1], drawn[0]]]) == 1
    assert "already a reference of writer 'same'" in capsys.readouterr().err
    assert Gallery.load(target).sources("same") == [str(drawn[0])]  # nothing added


def test_a_reference_belongs_to_one_writer(people, drawn, tmp_path, capsys):
    """One file (or image) enrolled for two writers would make a questioned signature like it
    match both: refused, naming the writer it belongs to; nothing is enrolled."""
    gallery = Gallery.load(people)
    a, b, c = drawn
    gallery.enroll("w3", [a, b])
    copy = a.with_name("copy.png")
    copy.write_bytes(a.read_bytes())
    for image, same in ((a, ""), (copy, f"the same image as {a}, ")):
        with pytest.raises(ValueError) as caught:
            gallery.enroll("w4", [c, image])
        assert str(caught.value) == (
            f"{image}: {same}already a reference of writer 'w3': a signature is one writer's "
            "reference (enrolled for two, a questioned signature like it would match both); "
            "nothing was enrolled"
        )
    with pytest.raises(ValueError, match=r"^<array>: the same image as <array>, already a "
                       r"reference of writer 'w1': a signature is one writer's"):  # fmt: skip
        gallery.enroll("w4", [np.asarray(draw_signature(1, 0))])  # as the fixture enrolled it
    assert "w4" not in gallery and gallery.enroll("w4", [c]) == 1
    target = gallery.save()  # the store: every enrolment is in it already
    saved = Gallery.load(target).counts()
    argv = ["enroll", "--gallery", target, "--writer", "w5", b]
    assert main([str(arg) for arg in argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"sigid enroll: error: {b}: already a reference of writer 'w3'")
    assert err.count("\n") == 1 and Gallery.load(target).counts() == saved


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("bob ", "begins or ends with white space, so it would be another writer than 'bob'"),
        (" bob", "begins or ends with white space"),
        ("bob\t", "begins or ends with white space"),
        ("bob\u00a0", "begins or ends with white space"),
        ("bo\nb", "holds an invisible or control character ('\\n')"),
        ("bo\x00b", "holds an invisible or control character ('\\x00')"),
        ("bob\u200b", "holds an invisible or control character ('\\u200b')"),
    ],
)
def test_writer_names_that_print_alike_are_refused(name, reason, people, drawn, capsys):
    """ "bob " and "bob" would be two writers whose listings look the same."""
    gallery = Gallery.load(people)
    with pytest.raises(ValueError, match=re.escape(reason)):
        gallery.enroll(name, drawn[:1])
    assert gallery.writers == ["w1", "w2"]
    assert main(["enroll", "--gallery", str(people), "--writer", name, str(drawn[0])]) == 1
    err = capsys.readouterr().err
    assert err.startswith("sigid enroll: error: ") and reason in err and err.count("\n") == 1
    assert Gallery.load(people).writers == ["w1", "w2"]
    assert gallery.enroll("Ana María 李雷", drawn[:1]) == 1  # inner spaces, any script: fine


def test_two_galleries_open_on_one_store_see_each_others_writers(people, siamese_ckpt):
    """Two galleries opened on one store (two notebooks, two `sigid enroll` at once): each
    enrolment is written at once, and the other sees it at its next use; a new gallery is not
    saved over an existing one."""
    first, second = Gallery.load(people), Gallery.load(people)
    first.enroll("carol", [np.asarray(draw_signature(5, n)) for n in range(2)])
    second.enroll("dave", [np.asarray(draw_signature(6, n)) for n in range(2)])
    assert first.writers == second.writers == ["w1", "w2", "carol", "dave"]
    assert first.save() == people  # nothing to write: the store has it all
    query = np.asarray(draw_signature(6, 5))
    assert first.identify(query).to_dict() == second.identify(query).to_dict()
    with pytest.raises(ValueError, match="already a reference of writer 'carol'"):
        second.enroll("erin", [np.asarray(draw_signature(5, 1))])  # carol's, enrolled by first
    assert Gallery.load(people).writers == ["w1", "w2", "carol", "dave"]
    fresh = Gallery(Verifier.from_checkpoint(siamese_ckpt))
    fresh.enroll("zed", [np.asarray(draw_signature(8, 0))])
    with pytest.raises(ValueError, match="holds a gallery already"):
        fresh.save(people)
    assert "zed" not in Gallery.load(people).writers


def test_a_verifier_given_as_the_checkpoint_says_where_it_goes(gallery_file, siamese_ckpt):
    verifier = Verifier.from_checkpoint(siamese_ckpt)
    with pytest.raises(TypeError, match=re.escape("give a Verifier as verifier=...")):
        Gallery.load(gallery_file, verifier)
    assert Gallery.load(gallery_file, verifier=verifier).writers == ["w1", "w2"]
