"""Loading a sigid checkpoint: the module that wrote it, rebuilt from the file alone."""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning import LightningModule

from sigid.errors import one_line, os_reason
from sigid.tasks.classifier import ClassifierModule
from sigid.tasks.siamese import SiameseModule

# Entries of every Lightning checkpoint that rebuilding a module reads.
CHECKPOINT_ENTRIES = ("pytorch-lightning_version", "hyper_parameters", "state_dict")


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> LightningModule:
    """Rebuild whichever module wrote the checkpoint, from the checkpoint alone (no configs).

    Any file that is not a sigid checkpoint, including a torch file of other contents or one
    whose hyper-parameters or weights do not fit the module, is a one-line ValueError naming
    the file: the modules' constructors and Lightning fail with many kinds of exceptions.
    """
    from sigid.runs.paths import checkpoint_path  # a run folder: its checkpoints/best.ckpt

    path = checkpoint_path(path)
    content = _read_bytes(path)
    hparams = _hyper_parameters(path, content)
    cls = ClassifierModule if "num_classes" in hparams else SiameseModule
    try:  # from the bytes already read: the file is read once, and checked is what is loaded
        module = cls.load_from_checkpoint(io.BytesIO(content), map_location=map_location)
    except (TypeError, KeyError, ValueError, RuntimeError, IndexError, AttributeError) as err:
        reason = f"does not fit a {cls.__name__}: {one_line(err)}"
        raise ValueError(f"{path}: not a sigid checkpoint ({reason})") from err
    return module.eval()


def _read_bytes(path: Path) -> bytes:
    """The checkpoint file's content; a missing or unreadable file is named with the reason."""
    try:
        return path.read_bytes()
    except FileNotFoundError as err:
        raise ValueError(f"{path}: checkpoint not found") from err
    except OSError as err:  # not a content problem: say what the system says
        reason = os_reason(err).lower()
        raise ValueError(f"{path}: cannot read: {reason}") from err


def _hyper_parameters(path: Path, content: bytes) -> dict[str, Any]:
    """The checkpoint's hyper-parameters, after checking that `content` (the file at `path`) is
    a PyTorch file holding the entries of a Lightning checkpoint: a clear reason for each."""
    if not content:
        raise ValueError(f"{path}: not a sigid checkpoint (empty file, 0 bytes)")
    if damaged := _damaged_member(content):  # torch.load does not check the zip's CRCs
        reason = f"damaged file: {damaged}"
        raise ValueError(f"{path}: not a sigid checkpoint ({reason})")
    try:
        checkpoint = torch.load(io.BytesIO(content), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, KeyError, EOFError, ValueError) as err:  # long messages
        raise ValueError(f"{path}: not a sigid checkpoint (not a PyTorch checkpoint file)") from err
    except (RuntimeError, OSError) as err:
        reason = f"damaged PyTorch file: {one_line(err)}"
        raise ValueError(f"{path}: not a sigid checkpoint ({reason})") from err
    if not isinstance(checkpoint, dict):
        reason = f"holds a {type(checkpoint).__name__}, not a checkpoint dictionary"
        raise ValueError(f"{path}: not a sigid checkpoint ({reason})")
    missing = [key for key in CHECKPOINT_ENTRIES if key not in checkpoint]
    if missing:
        reason = f"no {', '.join(map(repr, missing))} entry"
        raise ValueError(f"{path}: not a sigid checkpoint ({reason})")
    for key in ("hyper_parameters", "state_dict"):
        if not isinstance(checkpoint[key], dict):
            reason = f"{key!r} is not a dictionary but {type(checkpoint[key]).__name__}"
            raise ValueError(f"{path}: not a sigid checkpoint ({reason})")
    return checkpoint["hyper_parameters"]


def _damaged_member(content: bytes) -> str | None:
    """The first member of a zip-format torch file whose data fails its CRC-32 (or why the
    archive cannot be read), else None; None too for content that is not a zip archive at all:
    torch.load then says what is wrong with it."""
    stream = io.BytesIO(content)
    if not zipfile.is_zipfile(stream):
        return None
    try:
        with zipfile.ZipFile(stream) as archive:
            member = archive.testzip()
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError) as err:
        return one_line(err)
    return f"{member} fails its CRC check" if member else None
