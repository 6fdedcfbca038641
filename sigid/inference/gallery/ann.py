"""An approximate first stage for a large in-memory gallery: a faiss HNSW index over the
`References` matrix finds the references nearest a questioned embedding, and only the writers
they belong to are scored by the gallery's own rule (`ranking.rescore`), exactly.

Install extra ``faiss`` (faiss-cpu). Which writers are candidates is approximate: the index may
miss a reference (HNSW), and the rule ranks by the mean similarity to all of a writer's
references, which the nearest single references only point to. docs/gallery.md gives the
recall and speed measured on generated galleries: up to 100,000 writers the exact ranking
(`References.contenders`) is as fast at the same recall, so `Gallery` does not build an index
itself; a long-running service with a larger gallery may (`ApproximateIndex.of`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from sigid.inference.gallery.ranking import References, rescore

if TYPE_CHECKING:
    from sigid.inference.gallery.api import Gallery
    from sigid.inference.verifier import Verifier

INSTALL = "pip install 'sigid[faiss]'"
# HNSW: neighbours per node (memory: 2 x 4 bytes each per reference) and the search breadth
# (faiss's efSearch; more: slower, fewer misses). Measured on generated 100,000-writer
# galleries (docs/gallery.md): the true writer among the candidates for 80% of queries at 256,
# 98% at 1024, 100% at 4096.
NEIGHBOURS = 32
SEARCH_DEPTH = 1024
# How many nearest references the first stage asks for: this many per writer wanted, at least
# `LEAST_REFERENCES`.
REFERENCES_PER_WANTED = 16
LEAST_REFERENCES = 128


def _faiss() -> Any:
    """The faiss module, or a one-line error saying how to install it."""
    try:
        import faiss
    except ImportError as error:  # pragma: no cover - the dev extra installs it
        raise ImportError(
            f"an approximate gallery index needs faiss: {INSTALL} ({error})"
        ) from None
    return faiss


def references_wanted(top_k: int | None, writers: int) -> int:
    """How many nearest references to ask an index for, to rank the `top_k` best writers."""
    wanted = writers if top_k is None else min(top_k, writers)
    return max(LEAST_REFERENCES, REFERENCES_PER_WANTED * wanted)


class ApproximateIndex:
    """A faiss HNSW index over a `References` table's rows (L2), answering which writers own the
    references nearest a query; built once, in the table's order (rebuild after a change)."""

    def __init__(
        self, table: References, neighbours: int = NEIGHBOURS, search_depth: int = SEARCH_DEPTH
    ) -> None:
        faiss = _faiss()
        self.table = table
        self.owner = np.repeat(np.arange(len(table.writers)), table.counts)
        self.index = faiss.IndexHNSWFlat(table.matrix.shape[1], neighbours, faiss.METRIC_L2)
        self.index.hnsw.efSearch = search_depth
        if len(table.matrix):
            self.index.add(table.matrix)

    @classmethod
    def of(cls, gallery: Gallery, **options: int) -> ApproximateIndex:
        """An index over an open gallery's references as they are now (a copy)."""
        rows = {writer: gallery.references(writer) for writer in gallery.writers}
        return cls(References.gather(rows, gallery.verifier.dim), **options)

    def candidates(self, query: np.ndarray, references: int) -> np.ndarray:
        """Indices into the table's writers (ascending: enrolment order) of the writers that own
        the `references` references nearest `query`, as far as the index finds them."""
        if not len(self.owner):
            return np.zeros(0, np.int64)
        wanted = min(int(references), len(self.owner))
        # a search deeper than efSearch returns no more than efSearch hits
        depth = max(self.index.hnsw.efSearch, wanted)
        params = _faiss().SearchParametersHNSW(efSearch=depth)
        query = np.asarray(query, dtype=np.float32).reshape(1, -1)
        _, rows = self.index.search(query, wanted, params=params)
        rows = rows[0][rows[0] >= 0]
        return np.unique(self.owner[rows])

    def ranked(
        self, verifier: Verifier, query: np.ndarray, top_k: int | None
    ) -> list[tuple[str, float]]:
        """The two-stage ranking: the writers of the nearest references, scored by the
        gallery's ranking rule, best first (ties in enrolment order); the `top_k` best."""
        table = self.table
        found = self.candidates(query, references_wanted(top_k, len(table.writers)))
        writers = [table.writers[i] for i in found.tolist()]
        rows = {
            w: table.matrix[start : start + count]
            for w, start, count in zip(
                writers, table.starts[found].tolist(), table.counts[found].tolist(), strict=True
            )
        }
        return rescore(verifier, rows, writers, query, top_k)
