import json
from pathlib import Path

import pytest
from drawing import draw_signature, write_folders

from sigid.data.images import ImageLoadError
from sigid.data.layouts import DatasetError, detect_layout, natural_key, scan


def _junk(folder: Path) -> None:
    (folder / "Readme.txt").write_text("not a signature")
    (folder / "Thumbs.db").write_bytes(b"\x00\x01")
    (folder / ".DS_Store").write_bytes(b"\x00")


def test_class_folders_are_writers_and_junk_is_skipped_and_counted(tmp_path):
    write_folders(tmp_path, writers=3, per_writer=4)
    _junk(tmp_path)
    _junk(tmp_path / "w2")
    table = scan(tmp_path)
    assert table.layout == "folders"
    assert table.writers == ["w1", "w2", "w3"]
    assert len(table.genuine) == 12 and not table.forged
    assert len(table.skipped) == 6
    reasons = {s.path.name: s.reason for s in table.skipped}
    assert "suffix '.txt'" in reasons["Readme.txt"]
    assert reasons[".DS_Store"] == "hidden file"


def test_writer_folder_without_images_is_listed_as_skipped(tmp_path):
    write_folders(tmp_path, writers=2, per_writer=2, forged=1)
    (tmp_path / "frank").mkdir()
    (tmp_path / "gina").mkdir()
    (tmp_path / "gina" / "Thumbs.db").write_bytes(b"\x00")
    for f in (tmp_path / "w2_forg").iterdir():
        f.unlink()
    table = scan(tmp_path)
    assert table.writers == ["w1", "w2"]
    reasons = {s.path: s.reason for s in table.skipped}
    for folder in ("frank", "gina", "w2_forg"):
        assert reasons[tmp_path / folder] == "no images"
    assert len(reasons) == 4  # and gina/Thumbs.db


def test_paired_layout_reads_forg_folders_as_forgeries_of_that_writer(tmp_path):
    write_folders(tmp_path, writers=2, per_writer=3, forged=2)
    table = scan(tmp_path)
    assert table.layout == "paired"
    assert table.writers == ["w1", "w2"]
    assert len(table.genuine) == 6 and len(table.forged) == 4
    assert {s.writer for s in table.forged} == {"w1", "w2"}
    assert all(s.path.parent.name.endswith("_forg") for s in table.forged)
    # the folders layout would make "w1_forg" a writer: refused, naming the folder and the fix
    with pytest.raises(DatasetError) as err:
        scan(tmp_path, "folders")
    assert str(err.value).startswith(f"{tmp_path / 'w1_forg'}: skilled forgeries of writer 'w1'")
    assert "data.layout=paired" in str(err.value)
    (tmp_path / "w2").rename(tmp_path / "ann")  # a lone "<name>_forg" folder stays a writer
    (tmp_path / "w1").rename(tmp_path / "bob")
    assert scan(tmp_path, "folders").writers == ["ann", "bob", "w1_forg", "w2_forg"]


def test_cedar_layout_parses_writer_numbers_and_skips_misnamed_files(tmp_path):
    base = tmp_path / "signatures"
    (base / "full_org").mkdir(parents=True)
    (base / "full_forg").mkdir()
    for w in (2, 10):
        for n in (1, 2):
            draw_signature(w, n).save(base / "full_org" / f"original_{w}_{n}.png")
            draw_signature(w, n + 5).save(base / "full_forg" / f"forgeries_{w}_{n}.png")
    draw_signature(1, 1).save(base / "full_org" / "scan_001.png")
    (base / "Readme.txt").write_text("CEDAR")
    table = scan(tmp_path)
    assert table.layout == "cedar"
    assert table.writers == ["2", "10"]  # natural order, not "10" < "2"
    assert len(table.genuine) == 4 and len(table.forged) == 4
    assert sorted(s.path.name for s in table.skipped) == ["Readme.txt", "scan_001.png"]


def test_real_cedar_has_55_writers_1320_genuine_1320_forged_and_skips_readme(cedar_root):
    summary = scan(cedar_root).summary()
    assert summary["layout"] == "cedar"
    assert (summary["writers"], summary["genuine"], summary["forged"]) == (55, 1320, 1320)
    assert [Path(s["path"]).name for s in summary["skipped"]] == ["Readme.txt"]
    assert all(c == {"genuine": 24, "forged": 24} for c in summary["per_writer"].values())
    json.dumps(summary)  # what `sigid scan --json` prints must serialise


def test_manifest_resolves_relative_paths_against_the_csv_folder(tmp_path):
    write_folders(tmp_path / "imgs", writers=2, per_writer=2)
    csv = tmp_path / "list.csv"
    csv.write_text(
        "path,writer,label,forger\n"
        "imgs/w1/s1.png,alice,genuine,\n"
        "imgs/w1/s2.png,alice,forged,bob\n"
        "imgs/w2/s1.png,bob,genuine,\n"
        "notes.txt,bob,genuine,\n"
    )
    table = scan(csv)
    assert table.layout == "manifest"
    assert table.writers == ["alice", "bob"]
    forged = table.forged
    assert len(forged) == 1 and forged[0].forger == "bob" and forged[0].writer == "alice"
    assert forged[0].path == (tmp_path / "imgs/w1/s2.png").resolve()
    assert [s.path.name for s in table.skipped] == ["notes.txt"]


def test_manifest_refuses_a_path_that_leaves_its_folder(tmp_path):
    (tmp_path / "data").mkdir()
    csv = tmp_path / "data" / "manifest.csv"
    csv.write_text("path,writer,label\n../secret.png,a,genuine\n")
    with pytest.raises(DatasetError, match=r"line 2.*leaves the manifest's folder"):
        scan(tmp_path / "data", layout="manifest")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("file,writer,label\nx.png,a,genuine\n", "missing column.*path"),
        ("path,writer,label\nx.png,a,maybe\n", "line 2.*'maybe'"),
        ("path,writer,label\n,a,genuine\n", "line 2.*empty path"),
        # one image twice (here as genuine and as a forgery): it could land in train and test
        (
            "path,writer,label\nx.png,a,genuine\ny.png,a,genuine\n./x.png,b,forged\n",
            r"line 4: '\./x\.png' is already listed on line 2",
        ),
    ],
)
def test_manifest_errors_name_the_csv_and_the_problem(tmp_path, content, message):
    csv = tmp_path / "m.csv"
    csv.write_text(content)
    for name in ("x.png", "y.png"):
        draw_signature(1, 0).save(tmp_path / name)
    with pytest.raises(DatasetError, match=message) as err:
        scan(csv)
    assert str(csv) in str(err.value)


def test_manifest_reads_the_documented_labels_and_refuses_ambiguous_ones(tmp_path):
    """1 = genuine here, 1 = forged (the positive class) in fraud data: a guess inverts a set."""
    labels = {
        "genuine": True,
        "G": True,
        "Forged": False,
        "forgery": False,
        "FORG": False,
        "f": False,
    }
    for n in range(len(labels)):
        draw_signature(1, n).save(tmp_path / f"{n}.png")
    csv = tmp_path / "m.csv"
    csv.write_text(
        "path,writer,label\n" + "".join(f"{n}.png,a,{x}\n" for n, x in enumerate(labels))
    )
    assert {s.path.name: s.genuine for s in scan(csv).samples} == {
        f"{n}.png": genuine for n, genuine in enumerate(labels.values())
    }
    for label in ("0", "1", "True", "false", "1.0", "yes", "N"):
        csv.write_text(f"path,writer,label\n0.png,a,genuine\n1.png,a, {label}\n")
        with pytest.raises(DatasetError) as err:
            scan(csv)
        assert str(err.value) == (
            f"{csv}, line 3: label {label.lower()!r} is ambiguous (1 means genuine in some "
            "datasets and forged in others); write genuine or forged"
        )


def test_unreadable_image_is_an_error_naming_the_file_or_skipped_on_request(tmp_path):
    write_folders(tmp_path, writers=2, per_writer=2)
    bad = tmp_path / "w1" / "broken.png"
    bad.write_text("this is not a PNG")
    assert len(scan(tmp_path).samples) == 5  # without verify, decoding is left for later
    with pytest.raises(ImageLoadError, match=r"broken\.png"):
        scan(tmp_path, verify=True)
    table = scan(tmp_path, verify=True, skip_bad_images=True)
    assert len(table.samples) == 4
    assert [s.path for s in table.skipped] == [bad]


def test_empty_dataset_and_single_writer_are_refused_with_what_is_missing(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no signature images found"):
        scan(tmp_path / "empty").require_writers(2)
    write_folders(tmp_path / "one", writers=1, per_writer=3)
    with pytest.raises(DatasetError, match=r"1 writer\(s\) \(w1\); at least 2"):
        scan(tmp_path / "one").require_writers(2)


def test_missing_root_and_unknown_layout_are_refused(tmp_path):
    with pytest.raises(DatasetError, match="no such file"):
        scan(tmp_path / "nope")
    with pytest.raises(DatasetError, match="unknown layout"):
        scan(tmp_path, layout="zip")


def test_auto_detects_each_layout(tmp_path):
    write_folders(tmp_path / "f", 2, 1)
    write_folders(tmp_path / "p", 2, 1, forged=1)
    (tmp_path / "c" / "x" / "full_org").mkdir(parents=True)
    (tmp_path / "m.csv").write_text("path,writer,label\n")
    assert detect_layout(tmp_path / "f") == "folders"
    assert detect_layout(tmp_path / "p") == "paired"
    assert detect_layout(tmp_path / "c") == "cedar"
    assert detect_layout(tmp_path / "m.csv") == "manifest"


def test_natural_key_orders_numbers_numerically():
    assert sorted(["w10", "w2", "w1"], key=natural_key) == ["w1", "w2", "w10"]
    # names that differ only in case or leading zeros: one order, whatever order they came in
    names = ["anna", "w1", "Anna", "w01", "bob"]
    expected = ["Anna", "anna", "bob", "w01", "w1"]
    assert sorted(names, key=natural_key) == sorted(names[::-1], key=natural_key) == expected


def test_manifest_that_is_not_utf8_is_named(tmp_path):
    csv = tmp_path / "bin.csv"
    csv.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(DatasetError) as err:
        scan(csv)
    assert str(err.value) == f"{csv}: not UTF-8 text (cannot decode byte 0xff); " + (
        "a manifest must be a UTF-8 CSV"
    )
    late = tmp_path / "late.csv"  # a bad byte after the first rows (past the first read chunk)
    late.write_bytes(b"path,writer,label\n" + b"a.png,w,genuine\n" * 2000 + b"\xe9.png,w,g\n")
    with pytest.raises(DatasetError, match=r"late\.csv: not UTF-8 text"):
        scan(late)


def test_manifest_path_with_a_nul_byte_is_named(tmp_path):
    csv = tmp_path / "m.csv"
    csv.write_bytes(b"path,writer,label\n\x00a.png,w,genuine\n")
    with pytest.raises(DatasetError, match=r"m\.csv, line 2: path .* contains a NUL byte"):
        scan(csv)
