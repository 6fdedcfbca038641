"""A gallery file of sigid before the store (one ``.npz``, `storage`), as a read-only
`ReferenceStore`: it identifies and verifies as it did; `sigid gallery convert` makes a store of
it for enrolling and removing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sigid.inference.gallery import storage
from sigid.inference.gallery.store import METADATA_KEYS, OPTIONAL_KEYS


def read_only_reason(location: str) -> str:
    """The one line that says an .npz gallery takes no enrolment, and how to convert it."""
    new = str(Path(location).with_suffix(".sqlite"))
    return (
        f"{location}: an .npz gallery (sigid before the gallery store) is read-only; convert it "
        f"to a store and enroll there: sigid gallery convert {location} {new}"
    )


class NpzStore:
    """The references of one .npz gallery file, read whole when opened (`storage.read`)."""

    read_only = True

    def __init__(self, location: str | Path) -> None:
        self.location = str(location)
        path = Path(location)
        meta, embeddings, index = storage.read(path)
        if (np.diff(index) < 0).any():  # `storage.write` groups them; another program may not
            order = np.argsort(index, kind="stable")
            embeddings, index = embeddings[order], index[order]
            meta = {**meta, "sources": [meta["sources"][i] for i in order]}
        self._meta = {key: meta[key] for key in METADATA_KEYS if key != "score"}
        self._meta["score"] = storage.stored_score(path, meta)
        self._meta.update({key: meta[key] for key in OPTIONAL_KEYS if key in meta})
        self._writers: list[str] = list(meta["writers"])
        self._matrix = embeddings
        self._counts = np.bincount(index, minlength=len(self._writers)).astype(np.int64)
        starts = (np.cumsum(self._counts) - self._counts).tolist()
        self._starts = dict(zip(self._writers, starts, strict=True))
        self._sources: list[str] = meta["sources"]

    def metadata(self) -> dict[str, Any] | None:
        return dict(self._meta)

    def create(self, metadata: dict[str, Any]) -> None:
        raise ValueError(read_only_reason(self.location))

    def counts(self) -> dict[str, int]:
        return dict(zip(self._writers, self._counts.tolist(), strict=True))

    def add(
        self,
        writer: str,
        embeddings: np.ndarray,
        sources: list[str],
        *,
        check: Callable[[int], None] | None = None,
    ) -> int:
        raise ValueError(read_only_reason(self.location))

    def remove(self, writer: str) -> int:
        raise ValueError(read_only_reason(self.location))

    def references(self, writer: str) -> tuple[np.ndarray, list[str]]:
        if writer not in self._starts:
            return np.zeros((0, self._matrix.shape[1]), np.float32), []
        start = self._starts[writer]
        end = start + int(self._counts[self._writers.index(writer)])
        return self._matrix[start:end].copy(), self._sources[start:end]

    def matrix(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        return list(self._writers), self._matrix, self._counts.copy()

    def generation(self) -> int:
        return 0  # read once: no other process writes through this store

    def nearest(self, query: np.ndarray, k: int) -> list[str] | None:
        return None

    def close(self) -> None:
        pass
