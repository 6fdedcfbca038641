import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from drawing import write_folders
from PIL import Image
from runs import sigid_cli

import sigid
from sigid.cli import build_parser, main


def test_scan_json_reports_real_cedar_counts(capsys, cedar_root):
    code, out, _ = sigid_cli(capsys, "scan", str(cedar_root), "--json")
    report = json.loads(out)
    assert code == 0
    assert (report["writers"], report["genuine"], report["forged"]) == (55, 1320, 1320)
    assert [s["path"].rsplit("/", 1)[-1] for s in report["skipped"]] == ["Readme.txt"]
    assert report["per_writer"]["55"] == {"genuine": 24, "forged": 24}


def test_scan_prints_a_readable_summary(capsys, tmp_path):
    write_folders(tmp_path, writers=2, per_writer=3, forged=1)
    (tmp_path / "w1" / "Thumbs.db").write_bytes(b"x")
    (tmp_path / "frank").mkdir()  # a writer with no images is listed, not silently dropped
    code, out, _ = sigid_cli(capsys, "scan", str(tmp_path))
    assert code == 0
    assert "layout: paired" in out and "writers: 2" in out and "genuine: 6" in out
    assert "forged: 2" in out and "skipped 1 x not an image" in out and "w2: 3/1" in out
    assert "skipped 1 x no images (e.g. frank)" in out


def test_scan_names_an_unreadable_file_and_can_skip_it(capsys, tmp_path):
    write_folders(tmp_path, writers=2, per_writer=2)
    (tmp_path / "w2" / "cut.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    code, _, err = sigid_cli(capsys, "scan", str(tmp_path))
    assert code == 1 and "cut.png" in err and "Traceback" not in err
    code, out, _ = sigid_cli(capsys, "scan", str(tmp_path), "--skip-bad-images", "--json")
    report = json.loads(out)
    assert code == 0 and report["genuine"] == 4 and len(report["skipped"]) == 1


def test_scan_names_a_blank_page_and_can_skip_it(capsys, tmp_path):
    """Training refuses a page without ink in any preprocessing: scan says so before."""
    write_folders(tmp_path, writers=2, per_writer=2)
    Image.new("L", (400, 150), 255).save(tmp_path / "w2" / "blank.png")
    code, _, err = sigid_cli(capsys, "scan", str(tmp_path))
    assert code == 1 and err == (
        f"sigid scan: error: {tmp_path / 'w2' / 'blank.png'}: no ink found (every pixel within 8 "
        "grey levels of the others: a blank image?)\n"
    )
    code, out, _ = sigid_cli(capsys, "scan", str(tmp_path), "--skip-bad-images")
    assert code == 0 and "genuine: 4" in out and "skipped 1 x no ink found" in out


def test_scan_of_a_paired_set_as_folders_suggests_the_scan_option(capsys, tmp_path):
    write_folders(tmp_path, writers=2, per_writer=2, forged=1)
    code, _, err = sigid_cli(capsys, "scan", str(tmp_path), "--layout", "folders")
    assert code == 1 and err.startswith(f"sigid scan: error: {tmp_path / 'w1_forg'}: ")
    assert err.endswith("use --layout paired (or auto)\n") and "data.layout" not in err
    # the other commands that read a dataset by --layout say it the same way
    for argv in (
        ["augment", str(tmp_path), str(tmp_path / "aug"), "--layout", "folders"],
        ["probe", str(tmp_path), "--layout", "folders"],
    ):
        code, _, err = sigid_cli(capsys, *argv)
        assert code == 1 and err.endswith("use --layout paired (or auto)\n"), err


def test_scan_of_a_missing_folder_fails_with_a_message(capsys, tmp_path):
    code, _, err = sigid_cli(capsys, "scan", str(tmp_path / "absent"))
    assert code == 1 and "absent: no such file or folder" in err


def test_scan_of_a_folder_without_signatures_reports_and_fails(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    code, out, err = sigid_cli(capsys, "scan", str(tmp_path / "empty"))
    assert code == 1 and "writers: 0" in out
    assert err == f"sigid scan: error: {tmp_path / 'empty'}: no signature images found\n"


def test_synth_writes_the_paired_set_and_a_preview(capsys, tmp_path):
    out_dir, png = tmp_path / "synth", tmp_path / "grid.png"
    code, out, _ = sigid_cli(
        capsys, "synth", "--out", str(out_dir), "--writers", "3", "--per-writer", "4",
        "--forgeries", "2", "--preview", str(png),
    )  # fmt: skip
    assert code == 0 and png.is_file() and "preview grid" in out
    code, out, _ = sigid_cli(capsys, "scan", str(out_dir), "--json")
    report = json.loads(out)
    assert (report["writers"], report["genuine"], report["forged"]) == (3, 12, 6)
    # --json: what was made, where
    again = tmp_path / "again"
    code, out, _ = sigid_cli(capsys, "synth", "--out", str(again), "--writers", "2",
                        "--per-writer", "3", "--forgeries", "1", "--json")  # fmt: skip
    made = json.loads(out)
    assert code == 0 and made["out"] == str(again) and made["writers"] == 2
    assert (made["per_writer"], made["forgeries"], made["seed"]) == (3, 1, 0)


def test_augment_writes_per_class_images_and_reuses_them(capsys, tmp_path):
    src = write_folders(tmp_path / "src", writers=2, per_writer=3)
    dst = tmp_path / "aug"
    code, _, _ = sigid_cli(
        capsys, "augment", str(src), "--out", str(dst), "--per-writer", "7", "--seed", "1"
    )
    assert code == 0
    assert sorted(len(list((dst / w).glob("*.png"))) for w in ("w1", "w2")) == [7, 7]
    before = {p: p.stat().st_mtime_ns for p in dst.rglob("*.png")}
    code, _, _ = sigid_cli(
        capsys, "augment", str(src), "--out", str(dst), "--per-writer", "7", "--seed", "1"
    )
    assert code == 0 and before == {p: p.stat().st_mtime_ns for p in dst.rglob("*.png")}
    code, _, err = sigid_cli(
        capsys, "augment", str(src), "--out", str(dst), "--per-writer", "8", "--seed", "1"
    )
    assert code == 1 and str(dst) in err
    code, out, _ = sigid_cli(capsys, "augment", str(src), "--out", str(tmp_path / "j"),
                        "--per-writer", "4", "--rotation", "5", "--json")  # fmt: skip
    made = json.loads(out)
    assert code == 0 and made["out"] == str(tmp_path / "j") and made["writers"] == 2
    assert made["per_class"] == 4 and made["sources"] == 6 and made["augment"]["rotation"] == 5


def test_augment_refuses_an_output_inside_its_source_folder(capsys, tmp_path):
    src = write_folders(tmp_path / "src", writers=2, per_writer=1)
    before = sorted(p.relative_to(src) for p in src.rglob("*"))
    code, _, err = sigid_cli(
        capsys, "augment", str(src), "--out", str(src / "aug"), "--per-writer", "2"
    )
    assert code == 1 and "is inside the source folder" in err and err.count("\n") == 1
    assert sorted(p.relative_to(src) for p in src.rglob("*")) == before  # untouched
    # nor inside an earlier augmented set, where it would read back as one of its writers
    made = tmp_path / "aug"
    assert sigid_cli(capsys, "augment", str(src), "--out", str(made), "--per-writer", "2")[0] == 0
    code, _, err = sigid_cli(
        capsys, "augment", str(src), "--out", str(made / "inner"), "--per-writer", "2"
    )
    assert code == 1 and f"it is inside the augmented set {made.resolve()}" in err
    assert not (made / "inner").exists()


def test_synth_checks_its_preview_path_before_drawing_the_set(capsys, tmp_path):
    folder = tmp_path / "a_folder.png"
    folder.mkdir()
    args = ["--writers", "2", "--per-writer", "2", "--forgeries", "0", "--preview", str(folder)]
    code, _, err = sigid_cli(capsys, "synth", "--out", str(tmp_path / "set"), *args)
    assert code == 1 and "a_folder.png: cannot write: it is a folder, not a file" in err
    assert not (tmp_path / "set").exists()
    args[-1] = str(tmp_path / "grid.txt")  # a PNG written under another name: refused
    code, _, err = sigid_cli(capsys, "synth", "--out", str(tmp_path / "set"), *args)
    assert code == 1 and "grid.txt: the preview is a PNG image" in err
    assert not (tmp_path / "set").exists() and not (tmp_path / "grid.txt").exists()


def test_augment_rejects_an_unknown_preset(capsys, tmp_path):
    src = write_folders(tmp_path / "src", writers=2, per_writer=1)
    code, _, err = sigid_cli(
        capsys, "augment", str(src), "--out", str(tmp_path / "d"), "--preset", "wild"
    )
    assert code == 1 and "unknown augmentation preset 'wild'" in err


def test_old_output_spellings_still_work_with_a_deprecation_note(capsys, tmp_path):
    """`synth OUT` and `augment SRC DST` (before --out), and augment's --per-class (now
    --per-writer, as in synth), still run; each says on stderr what to write instead."""
    synth = ["--writers", "2", "--per-writer", "2", "--forgeries", "0", "--json"]
    code, out, err = sigid_cli(capsys, "synth", str(tmp_path / "set"), *synth)
    assert code == 0 and json.loads(out)["out"] == str(tmp_path / "set")
    note = f"sigid synth: note: a positional output is deprecated; use --out {tmp_path / 'set'}\n"
    assert err == note
    code, out, err = sigid_cli(
        capsys, "augment", str(tmp_path / "set"), str(tmp_path / "aug"), "--per-class", "3",
        "--json",
    )  # fmt: skip
    made = json.loads(out)
    assert code == 0 and made["out"] == str(tmp_path / "aug") and made["per_class"] == 3
    assert err.splitlines() == [
        "sigid augment: note: --per-class is deprecated; use --per-writer",
        f"sigid augment: note: a positional output is deprecated; use --out {tmp_path / 'aug'}",
    ]
    counts = sorted(
        len(list((tmp_path / "aug" / w).glob("*.png"))) for w in ("writer01", "writer02")
    )
    assert counts == [3, 3]


def test_an_output_is_given_once(capsys, tmp_path):
    for argv in (["synth"], ["augment", str(tmp_path)]):
        code, out, err = sigid_cli(capsys, *argv)
        assert code == 1 and not out
        assert err == f"sigid {argv[0]}: error: give the output folder: --out DIR\n"
        code, _, err = sigid_cli(capsys, *argv, str(tmp_path / "a"), "--out", str(tmp_path / "b"))
        assert code == 1 and "two outputs given" in err and err.count("\n") == 1
    assert sorted(tmp_path.iterdir()) == []


def _arguments(parser: argparse.ArgumentParser):
    """(subcommand, its parser, one of its arguments) for every argument of every subcommand."""
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in commands.choices.items():
        for action in command._actions:
            yield name, command, action


def test_every_option_has_help_and_its_default_is_shown():
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert all(choice.help for choice in commands._choices_actions)
    shown = {}
    for name, command, action in _arguments(parser):
        where = f"sigid {name} {'/'.join(action.option_strings) or action.dest}"
        assert action.help and action.help != argparse.SUPPRESS, f"{where}: no help"
        formatter = command._get_formatter()
        formatter.add_argument(action)
        text = " ".join(formatter.format_help().split())
        shown[where] = text
        default = action.default
        if default is None or default is False or default == [] or default == argparse.SUPPRESS:
            continue
        assert "default" in text, f"{where}: its default {default!r} is not shown: {text}"
    assert "(default: 8)" in shown["sigid synth --writers"]
    assert "(default: 0)" in shown["sigid augment --seed"]  # 0, a default too
    assert "(default: 5)" in shown["sigid identify --top-k"]


def test_console_script_is_installed_next_to_the_interpreter():
    exe = shutil.which("sigid", path=str(Path(sys.executable).parent))
    assert exe, "the `sigid` console script is missing from the environment"
    done = subprocess.run([exe, "scan", "--help"], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "--layout" in done.stdout


def test_the_parser_loads_no_torch():
    """`sigid --help` stays fast: the parser's choices (protocols, gallery scores) come from
    their one source, modules that load neither torch nor Lightning nor Hydra."""
    heavy = ("torch", "torchvision", "lightning", "hydra")
    code = (
        "import sys; from sigid.cli import build_parser; build_parser(); "
        f"print(*sorted({{m for m in sys.modules if m.split('.')[0] in {heavy!r}}}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == []


def test_an_empty_path_argument_is_refused_by_name(capsys):
    # Path("") is the current folder: "--ckpt ''" would be read as a folder named "."
    with pytest.raises(SystemExit) as done:
        main(["verify", "a.png", "b.png", "--ckpt", ""])
    assert done.value.code == 2
    assert "sigid verify: error: argument --ckpt: an empty path" in capsys.readouterr().err


def test_version_prints_the_installed_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"sigid {sigid.__version__}"
