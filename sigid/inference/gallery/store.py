"""Where a gallery's references live: the `ReferenceStore` protocol every backend implements,
and `open_store`, which picks the backend from the gallery's location.

A location is a path or a URI: ``name.sqlite`` or a path without a known scheme -> the embedded
SQLite store (the default); ``name.npz`` -> a gallery file of sigid before the store, read-only
(`sigid gallery convert` turns it into a store); ``milvus://...`` or ``*.milvus.db`` -> a Milvus
collection (install extra ``milvus``; milvus-lite runs it in-process).

A store keeps, per writer, reference embeddings (float32, ``dim`` wide) with their sources (the
image file by absolute path, or "<array>"), and one metadata record of the model they were
embedded with. `Gallery` owns the rules (names, repeats, scores); a store owns only durability:
`add` and `remove` are one transaction each, visible whole or not at all to every reader, in
this or another process.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from sigid.inference.verifier import Verifier

# The metadata every store keeps (the fields of the .npz gallery's metadata, less writers and
# sources, which the store holds as rows): checkpoint (str | None), fingerprint (str),
# preprocessing (dict), dim (int), score (one of SCORES).
METADATA_KEYS = ("checkpoint", "fingerprint", "preprocessing", "dim", "score")
# Recorded only where not the default (a store written before them has none): ``tta``, the
# test-time augmentation the references were embedded with (1 when absent).
OPTIONAL_KEYS = ("tta",)


def model_record(verifier: Verifier, score: str) -> dict[str, Any]:
    """The record of the model a gallery's references were embedded with: `METADATA_KEYS`, and
    `OPTIONAL_KEYS` where not the default (a plain gallery's record is as before them)."""
    return {
        "checkpoint": str(verifier.checkpoint) if verifier.checkpoint else None,
        "fingerprint": verifier.fingerprint,
        "preprocessing": verifier.preprocessing,
        "dim": verifier.dim,
        "score": score,
        **({"tta": verifier.tta} if verifier.tta != 1 else {}),
    }


@runtime_checkable
class ReferenceStore(Protocol):
    """One gallery's references, shared with other processes."""

    location: str
    read_only: bool

    def metadata(self) -> dict[str, Any] | None:
        """The model record (`METADATA_KEYS`), or None for a store nothing was enrolled in."""

    def create(self, metadata: dict[str, Any]) -> None:
        """Record the model of a new store (once; refused when one is recorded)."""

    def counts(self) -> dict[str, int]:
        """Writer -> number of references, in enrolment order (of each writer's first)."""

    def add(
        self,
        writer: str,
        embeddings: np.ndarray,
        sources: list[str],
        *,
        check: Callable[[int], None] | None = None,
    ) -> int:
        """Append `writer`'s (n, dim) references in one transaction (a new writer or more for
        an enrolled one); returns the `generation` this commit made.

        `check`, if given, is called inside the transaction, once no other process can write
        until it ends, with the `generation` before this write: the caller brings its view of
        the store up to date (`matrix`) and raises to refuse the write (nothing is added), so a
        rule such as "a reference belongs to one writer" holds across processes. A store that
        cannot lock out other writers calls it just before writing."""

    def remove(self, writer: str) -> int:
        """Delete every reference of `writer` from the store itself, in one transaction;
        returns how many were deleted (0: not enrolled)."""

    def references(self, writer: str) -> tuple[np.ndarray, list[str]]:
        """(n, dim) float32 embeddings of `writer`'s references and their sources."""

    def matrix(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """(writers, (N, dim) float32 matrix writer after writer, per-writer counts): all the
        references, for exact scoring (`ranking.References`)."""

    def generation(self) -> int:
        """A number that changes whenever `add` or `remove` commits in any process (cheap):
        a `matrix` held in memory is stale when it changed."""

    def nearest(self, query: np.ndarray, k: int) -> list[str] | None:
        """The writers of the `k` references nearest to `query` (approximate), for a first
        stage that the gallery's own rule re-scores; None: the store has no index, the gallery
        scores every writer exactly."""

    def close(self) -> None:
        """Release files and connections."""


def is_milvus(location: str) -> bool:
    """A Milvus location: a ``milvus://`` URI or a milvus-lite file (``*.milvus.db``)."""
    return location.startswith("milvus://") or location.endswith(".milvus.db")


def open_store(location: str | Path, *, read_only: bool = False) -> ReferenceStore:
    """The store at `location` (see the module docstring); an SQLite store is created if the
    file is absent (unless `read_only`). The backends are imported by name when used (they
    import this module: `METADATA_KEYS`), Milvus's only with its extra installed."""
    location = str(location)
    if is_milvus(location):
        if importlib.util.find_spec("pymilvus") is None:
            raise ValueError(
                f"{location}: a Milvus gallery needs pymilvus: pip install 'sigid[milvus]'"
            )
        backend = importlib.import_module("sigid.inference.gallery.milvus")
        return backend.MilvusStore(location, read_only=read_only)
    if location.endswith(".npz"):
        return importlib.import_module("sigid.inference.gallery.npz").NpzStore(location)
    backend = importlib.import_module("sigid.inference.gallery.sqlite")
    return backend.SqliteStore(location, read_only=read_only)
