"""The gallery file: one ``.npz`` (``np.load(path, allow_pickle=False)`` reads it), written
atomically and checked field by field when read.

- ``embeddings``: float32 (N, dim), one row per reference signature;
- ``writer_index``: int32 (N,), each row's writer as an index into the metadata's ``writers``;
- ``metadata``: uint8 bytes of a UTF-8 JSON object: ``format`` ("sigid-gallery"), ``version``,
  ``checkpoint`` (absolute path), ``fingerprint`` (`verifier.fingerprint` of the embedding
  branch and its preprocessing), ``preprocessing``, ``dim``, ``score`` (one of `SCORES`),
  ``writers`` and ``sources`` (each row's image file by absolute path, or "<array>"); and
  ``tta`` (the test-time augmentation of the embeddings) only where it is not 1.
"""

from __future__ import annotations

import json
import os
import reprlib
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sigid.atomic import atomic_path
from sigid.errors import os_reason
from sigid.inference.gallery.scores import SCORES
from sigid.inference.gallery.store import model_record

if TYPE_CHECKING:
    from sigid.inference.verifier import Verifier

FORMAT, VERSION = "sigid-gallery", 2
# Version 1 files held a description of the one score of that time, the mean similarity.
READABLE_VERSIONS = (1, 2)
# Metadata fields of every readable version, with their JSON types; checked on load.
METADATA_FIELDS: dict[str, tuple[type, ...]] = {
    "checkpoint": (str, type(None)),
    "fingerprint": (str,),
    "preprocessing": (dict,),
    "dim": (int,),
    "writers": (list,),
    "sources": (list,),
}
JSON_TYPES: dict[type, str] = {
    str: "a string",
    type(None): "null",
    dict: "an object",
    int: "an integer",
    list: "a list",
}
# How an .npz file (a zip archive, possibly empty) starts; np.load checks the same.
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


def stamp(path: Path) -> tuple[int, int, int] | None:
    """Which version of the file is at `path` (an atomic save makes a new inode), None if
    there is none."""
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return (info.st_ino, info.st_mtime_ns, info.st_size)


def write(
    target: Path,
    verifier: Verifier,
    score: str,
    references: dict[str, np.ndarray],
    sources: dict[str, list[str]],
) -> None:
    """Write a gallery file atomically (a temporary file in the same folder, then os.replace):
    each writer's (n, dim) reference embeddings and their sources, in the order given. A gallery
    that `read` would refuse is not written."""
    writers = list(references)
    embeddings = [references[w] for w in writers]
    for writer, rows in zip(writers, embeddings, strict=True):
        if not np.isfinite(rows).all():  # a file that `read` would refuse
            raise ValueError(
                f"{target}: not saved: the embeddings of writer {writer!r} contain NaN or "
                "infinite values"
            )
    meta = {
        "format": FORMAT,
        "version": VERSION,
        **model_record(verifier, score),
        "writers": writers,
        "sources": [s for w in writers for s in sources[w]],
    }
    arrays = {
        "embeddings": (
            np.concatenate(embeddings).astype(np.float32)
            if embeddings
            else np.zeros((0, verifier.dim), dtype=np.float32)
        ),
        "writer_index": np.repeat(
            np.arange(len(writers), dtype=np.int32), [len(e) for e in embeddings]
        ).astype(np.int32),
        "metadata": np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8),
    }
    # modes as open(target, "w"): the umask is honoured, an existing file's mode kept
    with atomic_path(target) as temp, temp.open("wb") as stream:
        np.savez(stream, **arrays)
        stream.flush()
        os.fsync(stream.fileno())


def stored_score(path: Path, meta: dict[str, Any]) -> str:
    """The score a gallery file's metadata names (version 1: the mean, the only one then)."""
    if meta["version"] == 1:
        return "mean"
    score = meta.get("score")
    if score not in SCORES:
        raise ValueError(f"{path}: damaged gallery file (unknown score {score!r})")
    return score


def read(path: Path) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """(metadata, embeddings, writer_index) of a gallery file, checked for consistency."""
    if not path.exists():
        raise ValueError(f"{path}: no such gallery file")
    if not path.is_file():
        raise ValueError(f"{path}: not a gallery file (not a regular file)")
    try:
        with path.open("rb") as stream:
            magic = stream.read(len(ZIP_MAGIC[0]))
    except OSError as err:  # not a content problem: say what the system says
        raise ValueError(f"{path}: cannot read: {os_reason(err).lower()}") from err
    if not magic:
        raise ValueError(f"{path}: not a sigid gallery file (empty file, 0 bytes)")
    if not magic.startswith(ZIP_MAGIC):  # else np.load tries pickle, and talks about that
        raise ValueError(f"{path}: not a sigid gallery file (not an .npz (zip) archive)")
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(bytes(data["metadata"]).decode("utf-8"))
            embeddings, index = data["embeddings"], data["writer_index"]
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as err:  # JSON too
        raise ValueError(f"{path}: not a sigid gallery file ({err})") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not a sigid gallery file (no {FORMAT!r} metadata)")
    version = meta.get("version")
    if type(version) is not int or version not in READABLE_VERSIONS:
        raise ValueError(f"{path}: gallery format version {version} is not supported")
    check_metadata(path, meta)
    if embeddings.ndim != 2 or not np.issubdtype(embeddings.dtype, np.floating):
        raise ValueError(f"{path}: damaged gallery file (embeddings are not a 2-D float array)")
    if not np.issubdtype(index.dtype, np.integer):  # a cast would round 0.5 to a writer
        raise ValueError(
            f"{path}: damaged gallery file (writer_index holds {index.dtype} values, not integers)"
        )
    # no copy where they are so already: a large gallery's embeddings would be held twice
    embeddings = embeddings.astype(np.float32, copy=False)
    index = index.astype(np.int64, copy=False)
    writers, n = meta["writers"], len(embeddings)
    if (
        index.shape != (n,)
        or len(set(writers)) != len(writers)
        or len(meta["sources"]) != n
        or set(index.tolist()) != set(range(len(writers)))
    ):
        raise ValueError(f"{path}: damaged gallery file (inconsistent arrays and metadata)")
    if embeddings.shape[1] != meta["dim"]:
        raise ValueError(
            f"{path}: damaged gallery file ({embeddings.shape[1]}-dimensional embeddings, but "
            f"the metadata says {meta['dim']})"
        )
    if not np.isfinite(embeddings).all():  # they would score NaN, silently never matching
        raise ValueError(f"{path}: embeddings contain NaN or infinite values")
    return meta, embeddings, index


def check_metadata(path: Path, meta: dict[str, Any]) -> None:
    """Every field of `METADATA_FIELDS` is there with its type: a hand-edited or foreign file
    fails here, naming the field, not later with a KeyError or TypeError from deep inside."""
    for name, types in METADATA_FIELDS.items():
        if name not in meta:
            raise ValueError(f"{path}: damaged gallery file (no {name!r} in the metadata)")
        value = meta[name]
        if not isinstance(value, types) or isinstance(value, bool):
            expected = " or ".join(JSON_TYPES[t] for t in types)
            raise ValueError(
                f"{path}: damaged gallery file (metadata {name!r} is not {expected}: "
                f"{reprlib.repr(value)})"
            )
    for name in ("writers", "sources"):
        if not all(isinstance(item, str) for item in meta[name]):
            raise ValueError(
                f"{path}: damaged gallery file (metadata {name!r} is not a list of strings)"
            )
