"""Atomic file writes: a reader sees the old file or the complete new one, never half of it.

Errors name the path that was asked for and why, never the hidden temporary name beside it.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from sigid.errors import os_reason


def cannot_write(path: str | Path, err: OSError) -> OSError:
    """`err` restated as "<path>: cannot write (<reason>)", of the same type and errno."""
    cls = type(err) if type(err).__module__ == "builtins" else OSError
    new = cls(f"{path}: cannot write ({os_reason(err).lower()})")
    new.errno = err.errno
    return new


@contextmanager
def errors_about(path: str | Path, temp: str | Path) -> Iterator[None]:
    """Restate OSErrors about `temp` (or a file inside it) as errors about `path`: the user asked
    for `path` and has never heard of the temporary name."""
    try:
        yield
    except OSError as err:
        name = err.filename
        if not isinstance(name, (str, os.PathLike)):
            raise
        if not Path(os.path.abspath(name)).is_relative_to(os.path.abspath(temp)):
            raise
        raise cannot_write(path, err) from err


def check_target(path: str | Path) -> Path:
    """Raise now, naming `path`, if it cannot become a file (it is a folder, a read-only file, or
    a parent is a file): a command can check an output before long work instead of failing after
    it."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path}: cannot write: it is a folder, not a file")
    if path.is_file() and not _writable(path):
        raise PermissionError(f"{path}: cannot write: the file is read-only")
    return check_parent(path)


def _writable(path: Path) -> bool:
    """False for a file that open(path, "w") would refuse, and for one marked read-only (no write
    bit at all): the rename that makes a write atomic would otherwise replace it silently, even
    where the user protected it (root may write anything, but a 0444 file was meant to stay)."""
    return os.access(path, os.W_OK) and bool(stat.S_IMODE(path.stat().st_mode) & 0o222)


def check_parent(path: str | Path) -> Path:
    """Raise, naming `path`, if one of its parents is an existing file (so no folder can be
    made there): the raw error would be a bare "File exists" or "Not a directory"."""
    path = Path(path)
    blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise NotADirectoryError(f"{path}: cannot write: {blocker} is a file, not a folder")
    return path


def check_folder(path: str | Path) -> Path:
    """Raise now, naming `path`, if it cannot become a folder of outputs (it, or one of its
    parents, is a file): checked before long work, not after it."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{path}: cannot write: it is a file, not a folder")
    return check_parent(path)


def make_parent(path: str | Path) -> Path:
    """Create the folder of `path` if needed; errors name `path` and the reason."""
    path = check_parent(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise cannot_write(path, err) from err
    return path


def _new_temp(path: Path) -> Path:
    """A new empty file beside `path` (same suffix). Created with mode 0o666 like open(path, "w"),
    so the kernel applies the umask (mkstemp would force 0600)."""
    for _ in range(100):
        temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{path.suffix}")
        try:
            os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return temp
        except FileExistsError:
            continue
        except OSError as err:
            raise cannot_write(path, err) from err
    raise FileExistsError(f"{path}: cannot write (no free temporary name beside it)")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path` (same suffix) to write to; renamed onto `path` on success,
    removed on failure. The folder is created if needed.

    Mode as with open(path, "w"): a new file gets 0o666 & ~umask, an existing one keeps its mode;
    an existing file that is read-only is refused, as open(path, "w") refuses it.
    """
    path = make_parent(check_target(path))
    temp = _new_temp(path)
    try:
        with errors_about(path, temp):
            yield temp
            with suppress(OSError):  # best effort: some file systems have no modes
                os.chmod(temp, stat.S_IMODE(os.stat(path).st_mode))
            os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as temp:
        temp.write_text(text, encoding="utf-8")  # as JSON and YAML readers expect
    return Path(path)


def write_json(path: str | Path, data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=2) + "\n")
