"""Many questioned images in one call: `sigid identify` and `sigid verify --gallery` take images
and folders, and write one row per image; a bad image costs its own row only."""

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image
from runs import sigid_cli

from sigid.inference.batch import Questioned, questioned
from sigid.inference.gallery import Gallery
from sigid.inference.verifier import Verifier


def genuine(root: Path, writer: int, number: int) -> Path:
    return root / "signatures" / "full_org" / f"original_{writer}_{number}.png"


@pytest.fixture(scope="module")
def gallery(siamese_ckpt, cedar_root, tmp_path_factory) -> Path:
    made = Gallery(Verifier.from_checkpoint(siamese_ckpt))
    for name, writer in (("ann", 1), ("bob", 2)):
        made.enroll(name, [genuine(cedar_root, writer, n) for n in range(1, 6)])
    return made.save(tmp_path_factory.mktemp("gallery") / "people.npz")


@pytest.fixture
def questions(cedar_root, tmp_path) -> Path:
    """A folder of 4 CEDAR scans, with a note, an empty .png, a blank page and a subfolder."""
    folder = tmp_path / "questions"
    folder.mkdir()
    for writer, number in ((1, 10), (1, 11), (2, 10), (3, 10)):
        shutil.copy(genuine(cedar_root, writer, number), folder / f"q{writer}_{number}.png")
    (folder / "notes.txt").write_text("not an image, skipped")
    (folder / "broken.png").write_bytes(b"")
    Image.new("L", (300, 120), 255).save(folder / "white.png")
    (folder / "older").mkdir()  # not searched
    shutil.copy(genuine(cedar_root, 4, 1), folder / "older" / "q4_1.png")
    return folder


GOOD = ["q1_10.png", "q1_11.png", "q2_10.png", "q3_10.png"]
BAD = {"broken.png": "empty file (0 bytes)", "white.png": "no ink found"}


def test_folders_expand_to_their_images_sorted_each_image_once(tmp_path):
    folder, empty = tmp_path / "scans", tmp_path / "empty"
    folder.mkdir()
    empty.mkdir()
    for name in ("b.png", "a.PNG", "c.txt", ".hidden.png"):
        (folder / name).write_bytes(b"x")
    (folder / "sub.png").mkdir()  # a folder named like an image is no image
    missing = tmp_path / "missing.png"
    found = questioned([folder / "b.png", folder, empty, missing, folder / ".." / "scans"])
    assert found == [
        Questioned(folder / "b.png"),  # given first, so not again in its folder
        Questioned(folder / "a.PNG"),
        Questioned(empty, f"{empty}: no signature images in this folder"),
        Questioned(missing),  # fails when read, in its own row
    ]


def test_identify_answers_a_folder_and_files_one_json_line_each(capsys, gallery, questions):
    code, out, err = sigid_cli(
        capsys, "identify", "--gallery", gallery, questions, questions / "q1_10.png",
        questions / "absent.png", "--top-k", "2",
    )  # fmt: skip
    rows = [json.loads(line) for line in out.splitlines()]
    names = sorted([*GOOD, *BAD])  # the folder's images by name; q1_10.png once
    assert [Path(r["image"]).name for r in rows] == [*names, "absent.png"]
    assert code == 1
    assert err == "sigid identify: error: 3 of 7 images failed (the error field of their rows)\n"
    for row in rows:
        name = Path(row["image"]).name
        if name in GOOD:  # each row is what identifying that image alone says
            code, alone, _ = sigid_cli(capsys, "identify", "--gallery", gallery, row["image"],
                                  "--top-k", "2", "--json")  # fmt: skip
            assert code == 0 and row == {**json.loads(alone), "image": row["image"], "error": None}
            assert list(row) == ["image", "writer", "candidates", "threshold", "score", "error"]
        else:
            reason = BAD.get(name, "cannot open file")
            assert row == {"image": row["image"], "error": row["error"]}
            assert row["error"].startswith(f"{row['image']}: {reason}")


def test_identify_writes_a_csv_table(capsys, gallery, questions):
    code, out, err = sigid_cli(
        capsys, "identify", "--gallery", gallery, questions, "--format", "csv"
    )
    table = list(csv.DictReader(io.StringIO(out)))
    assert code == 1 and "2 of 6 images failed" in err
    assert list(table[0]) == [
        "image", "writer", "threshold", "score",
        "writer_1", "score_1", "writer_2", "score_2", "error",
    ]  # fmt: skip
    assert [Path(r["image"]).name for r in table] == sorted([*GOOD, *BAD])
    for row in table:
        bad = Path(row["image"]).name in BAD
        assert bool(row["error"]) == bad and bool(row["writer_1"]) == (not bad)
        assert row["writer"] in ("", row["writer_1"])  # unknown writer: empty


def test_identify_with_a_cnn_and_text_blocks(capsys, cnn_ckpt, questions):
    images = [questions / "q1_10.png", questions / "white.png", questions / "q2_10.png"]
    code, out, err = sigid_cli(capsys, "identify", "--ckpt", cnn_ckpt, *images, "--format", "text")
    blocks = out.strip().split("\n\n")
    assert [b.splitlines()[0] for b in blocks] == [f"{images[0]}:", f"{images[2]}:"]
    assert all(b.splitlines()[1].startswith("most likely: writer") for b in blocks)
    failure, summary = err.splitlines()
    assert code == 1 and failure.startswith(f"sigid identify: error: {images[1]}: no ink found")
    assert summary == "sigid identify: error: 1 of 3 images failed (above)"
    code, out, err = sigid_cli(capsys, "identify", "--ckpt", cnn_ckpt, *images[::2], "--json")
    assert code == 0 and not err  # --json with several images: JSON lines
    assert [json.loads(line)["image"] for line in out.splitlines()] == list(map(str, images[::2]))


def test_verify_many_images_against_an_enrolled_writer(capsys, gallery, questions):
    code, out, err = sigid_cli(
        capsys, "verify", "--gallery", gallery, "--writer", "ann", questions, "--threshold", "0"
    )
    rows = {Path(r["image"]).name: r for r in map(json.loads, out.splitlines())}
    assert code == 1 and "2 of 6 images failed" in err and set(rows) == {*GOOD, *BAD}
    for name in GOOD:  # threshold 0: every readable one is accepted
        assert rows[name]["decision"] == "same" and rows[name]["references"] == 5
        assert rows[name]["writer"] == "ann" and rows[name]["error"] is None
    code, out, _ = sigid_cli(capsys, "verify", "--gallery", gallery, "--writer", "ann",
                        *(questions / name for name in GOOD), "--format", "csv")  # fmt: skip
    table = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [Path(r["image"]).name for r in table] == GOOD
    assert all(r["error"] == "" and r["decision"] in ("same", "different") for r in table)


def test_what_fails_for_every_image_fails_once_before_any_row(
    capsys, gallery, siamese_ckpt, questions, tmp_path
):
    empty = Gallery(Verifier.from_checkpoint(siamese_ckpt)).save(tmp_path / "empty.npz")
    cases = [
        (["identify", "--gallery", empty, questions], "no writers enrolled"),
        (["verify", "--gallery", empty, "--writer", "ann", questions], "no writers enrolled"),
        (["verify", "--gallery", gallery, "--writer", "dan", questions], "'dan' is not enrolled"),
        (["identify", "--gallery", gallery, questions, "--top-k", "0"], "top_k must be at least"),
        (["identify", "--gallery", gallery, questions, "--json", "--format", "csv"],
         "give --json or --format, not both"),
        (["verify", questions / "q1_10.png", questions / "q1_11.png", "--ckpt", gallery,
          "--format", "jsonl"], "--format"),
    ]  # fmt: skip
    for argv, message in cases:
        code, out, err = sigid_cli(capsys, *argv)
        assert code == 1 and out == "", (argv, out)
        assert err.startswith(f"sigid {argv[0]}: error: ") and message in err, err
        assert err.count("\n") == 1


def test_one_image_file_is_answered_as_before_unless_a_format_is_asked(capsys, gallery, questions):
    image = questions / "q1_10.png"
    code, out, _ = sigid_cli(capsys, "identify", "--gallery", gallery, image)
    assert code == 0 and out.startswith(("best match: ", "unknown writer"))
    code, out, _ = sigid_cli(capsys, "identify", "--gallery", gallery, image, "--format", "jsonl")
    row = json.loads(out)
    assert code == 0 and row["image"] == str(image) and row["error"] is None
    # a folder of one image is a batch: its output does not change with how many it holds
    code, out, _ = sigid_cli(capsys, "identify", "--gallery", gallery, questions / "older")
    assert code == 0 and json.loads(out)["image"] == str(questions / "older" / "q4_1.png")
