"""Atomic writes: the mode a plain open() gives, and errors that name the requested path."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from sigid import atomic
from sigid.atomic import atomic_path, write_json, write_text


def read_only_folder(path: Path) -> Path:
    """A folder of mode 0555; skips the test where it stays writable (root, CAP_DAC_OVERRIDE)."""
    path.mkdir()
    path.chmod(0o555)
    try:
        (path / "probe").touch()
    except PermissionError:
        return path
    (path / "probe").unlink()
    path.chmod(0o755)
    pytest.skip("this user may write into a read-only folder (root?)")


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_file_gets_the_mode_of_a_plain_open(tmp_path: Path, umask_022: None) -> None:
    written = write_json(tmp_path / "metrics.json", {"eer": 0.1})
    with open(tmp_path / "plain.json", "w") as handle:
        handle.write("{}")
    assert _mode(written) == _mode(tmp_path / "plain.json") == 0o644
    with atomic_path(tmp_path / "model.pt") as temp:
        temp.write_bytes(b"weights")
    assert _mode(tmp_path / "model.pt") == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "model.pt", "plain.json"]


def test_existing_file_keeps_its_mode(tmp_path: Path, umask_022: None) -> None:
    target = tmp_path / "gallery.npz"
    target.write_bytes(b"old")
    target.chmod(0o640)
    write_text(target, "new")
    assert target.read_text() == "new" and _mode(target) == 0o640


@pytest.mark.parametrize("mode", [0o444, 0o400])
def test_read_only_file_is_refused_and_kept(tmp_path: Path, mode: int) -> None:
    target = tmp_path / "gallery.npz"
    target.write_bytes(b"enrolled writers")
    target.chmod(mode)
    try:
        with pytest.raises(PermissionError) as err:
            write_text(target, "new")
        assert str(err.value) == f"{target}: cannot write: the file is read-only"
        with pytest.raises(PermissionError, match="read-only"):
            atomic.check_target(target)
        assert target.read_bytes() == b"enrolled writers"
        assert [p.name for p in tmp_path.iterdir()] == ["gallery.npz"]  # no temporary file left
    finally:
        target.chmod(0o644)


@pytest.mark.parametrize("out", ["afile/x.json", "afile/sub/x.json"])
def test_parent_that_is_a_file_is_named(tmp_path: Path, out: str) -> None:
    (tmp_path / "afile").write_text("keep me")
    with pytest.raises(NotADirectoryError) as err:
        write_text(tmp_path / out, "x")
    assert (
        str(err.value)
        == f"{tmp_path / out}: cannot write: {tmp_path / 'afile'} is a file, not a folder"
    )
    assert (tmp_path / "afile").read_text() == "keep me"


def test_folder_target_is_refused_up_front(tmp_path: Path) -> None:
    (tmp_path / "grid.png").mkdir()
    with pytest.raises(IsADirectoryError, match=r"grid\.png: cannot write: it is a folder"):
        atomic.check_target(tmp_path / "grid.png")
    with pytest.raises(IsADirectoryError, match=r"grid\.png: cannot write: it is a folder"):
        write_text(tmp_path / "grid.png", "x")
    assert [p.name for p in tmp_path.iterdir()] == ["grid.png"]  # no temporary file left


def test_errors_about_the_temporary_file_name_the_requested_path(tmp_path: Path) -> None:
    target = tmp_path / "g.npz"
    with pytest.raises(NotADirectoryError) as err, atomic_path(target) as temp:
        os.rmdir(temp)  # a real OSError whose filename is the hidden temporary file
    assert str(err.value) == f"{target}: cannot write (not a directory)"
    assert list(tmp_path.iterdir()) == []


def test_read_only_folder_names_the_requested_path(tmp_path: Path) -> None:
    folder = read_only_folder(tmp_path / "ro")
    try:
        with pytest.raises(PermissionError) as err:
            write_text(folder / "g.npz", "x")
        assert str(err.value) == f"{folder / 'g.npz'}: cannot write (permission denied)"
        with pytest.raises(PermissionError, match=r"sub/g\.npz: cannot write \(permission"):
            write_text(folder / "sub" / "g.npz", "x")
    finally:
        folder.chmod(0o755)
