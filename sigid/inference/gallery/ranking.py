"""All enrolled writers scored at once, for `Gallery.identify` and its ranking rule: the mean
similarity to a writer's references, as ``writer_score(..., "mean")`` computes it.

`References` keeps every reference embedding in one contiguous (N, dim) float32 matrix, writer
after writer, with their squared norms. A questioned embedding's squared distances to all of them
are then one matrix-vector product, ``|r|^2 + |q|^2 - 2 r.q``. The model's own distance
(`pair_distance`, which `Verifier.distances` uses) sums the squared differences instead, and the
two round differently: near 0 by much, where the product form cancels. So the product form does
not give the rule's scores; it gives each writer an interval certain to hold the score the rule
computes (`References.mean_bounds`), from bounds on float32 rounding and a similarity head that
falls as the distance grows. A writer whose interval ends below the k-th highest lower end
cannot be among the k best (`References.contenders`); the few that remain are scored by the rule
itself, so a gallery ranks and scores exactly as one `writer_score` per writer did.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from sigid.inference.gallery.scores import writer_score
from sigid.models.siamese import DISTANCE_EPS

if TYPE_CHECKING:
    from sigid.inference.verifier import Verifier

# float32's unit roundoff, 2^-24.
UNIT = float(np.finfo(np.float32).eps) / 2
# `distance_bounds`: how far, relative to |r|^2 + |q|^2, the product form's squared distance may
# be from the rule's (each a dim-term float32 sum: at most about (4 dim + 11) units), twice over.
SQUARED_SLACK = (8, 32)  # (per dimension, constant), in units
# ... and the bounds widened by 16 units, for the rounding of `+ eps` and the square roots.
ROOT_SLACK = 2.0**-20
# How far a computed similarity may be from the head's exact value at its distance: relative
# (float32 rounding of offset - scale * distance and of the sigmoid, a few units, more where a
# large logit rounds: 2^-12 is 4096 units) and absolute (where the head underflows to 0).
SIMILARITY_SLACK = (2.0**-12, 2.0**-60)
# Distances per call of the head: under torch's grain size (32768), so that each call runs on
# one thread. On 2 cores shared with other work, one call on 500,000 distances took 0.2 to 36
# ms (median 24 ms over 40), 16 calls of 32,000 took 0.5 ms.
HEAD_CHUNK = 32_000


class References:
    """Every writer's reference embeddings in one (N, dim) float32 matrix, writer after writer
    in `writers` order (`rows` gives each writer's as a view), for ranking them all
    against one questioned embedding."""

    def __init__(self, writers: Sequence[str], matrix: np.ndarray, counts: Sequence[int]) -> None:
        self.writers = list(writers)
        self.matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        self.counts = np.asarray(counts, dtype=np.int64)
        if (
            self.matrix.ndim != 2
            or self.counts.shape != (len(self.writers),)
            or (self.counts < 1).any()
            or self.counts.sum() != len(self.matrix)
        ):
            raise ValueError(
                f"{len(self.writers)} writers with {self.counts.sum()} references in all, "
                f"each at least one, do not fit a {self.matrix.shape} matrix"
            )
        self.starts = np.cumsum(self.counts) - self.counts
        self.norms = np.einsum("ij,ij->i", self.matrix, self.matrix)  # float32, like the matrix

    @classmethod
    def gather(cls, references: Mapping[str, np.ndarray], dim: int) -> References:
        """The table of each writer's (n, dim) references, in the mapping's order."""
        rows = [np.asarray(r, dtype=np.float32).reshape(-1, dim) for r in references.values()]
        matrix = np.concatenate(rows) if rows else np.zeros((0, dim), np.float32)
        return cls(list(references), matrix, [len(r) for r in rows])

    def rows(self) -> dict[str, np.ndarray]:
        """Each writer's references: views into the one matrix."""
        ends = self.starts + self.counts
        return {
            w: self.matrix[start:end]
            for w, start, end in zip(self.writers, self.starts.tolist(), ends.tolist(), strict=True)
        }

    def distance_bounds(self, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) per reference, float32: the distance `Verifier.distances` computes for
        `query` lies between them (wherever the product form overflows: 0 and infinity)."""
        query = np.asarray(query, dtype=np.float32)
        norms = self.norms + np.float32(query @ query)  # |r|^2 + |q|^2
        # numpy's own loop, not BLAS: as fast on one core, and OpenBLAS's second thread waited
        # up to 10 ms for a busy core
        squared = np.einsum("ij,j->i", self.matrix, query)
        squared *= -2
        squared += norms
        per_dim, constant = SQUARED_SLACK
        slack = np.multiply(norms, (per_dim * self.matrix.shape[1] + constant) * UNIT, out=norms)
        low = np.subtract(squared, slack, out=np.empty_like(squared))
        np.maximum(low, 0, out=low)
        high = np.add(squared, slack, out=squared)
        for bound, widen in ((low, 1 - ROOT_SLACK), (high, 1 + ROOT_SLACK)):
            bound += np.float32(DISTANCE_EPS)
            np.sqrt(bound, out=bound)
            bound *= np.float32(widen)
        if not np.isfinite(high).all():  # high is NaN or infinite wherever low is
            unknown = ~np.isfinite(high)
            low[unknown], high[unknown] = 0, np.inf
        return low, high

    def mean_bounds(self, verifier: Verifier, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) per writer, float64: ``writer_score(verifier, query, references, "mean")``
        lies between them. The head must fall (not strictly) as the distance grows."""
        near, far = self.distance_bounds(query)
        relative, absolute = SIMILARITY_SLACK
        highest = _head(verifier, near)  # nearest: most similar
        highest *= np.float32(1 + relative)
        highest += np.float32(absolute)
        lowest = _head(verifier, far)
        lowest *= np.float32(1 - relative)
        lowest -= np.float32(absolute)
        # float32 sums of at most `most` terms, here and in np.mean, and its division
        most = int(self.counts.max()) if len(self.counts) else 1
        widen = (2 * most + 8) * UNIT
        low = np.add.reduceat(lowest, self.starts).astype(np.float64) / self.counts
        high = np.add.reduceat(highest, self.starts).astype(np.float64) / self.counts
        low -= np.abs(low) * widen + 2 * absolute
        high += np.abs(high) * widen + 2 * absolute
        return low, high

    def contenders(self, verifier: Verifier, query: np.ndarray, k: int) -> np.ndarray:
        """Indices (into `writers`, ascending) of the writers that may be among the `k` best by
        mean similarity: every writer whose upper bound reaches the k-th highest lower bound.
        The others score below k writers for certain."""
        if k >= len(self.writers):
            return np.arange(len(self.writers))
        low, high = self.mean_bounds(verifier, query)
        kth = np.partition(low, len(low) - k)[len(low) - k]
        return np.flatnonzero(high >= kth)


def _head(verifier: Verifier, distances: np.ndarray) -> np.ndarray:
    """`verifier.similarity_at` of each distance, float32, `HEAD_CHUNK` at a time."""
    parts = [
        verifier.similarity_at(distances[start : start + HEAD_CHUNK])
        for start in range(0, len(distances), HEAD_CHUNK)
    ]
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def rescore(
    verifier: Verifier,
    references: Mapping[str, np.ndarray],
    candidate_writers: Sequence[str],
    query: np.ndarray,
    top_k: int | None = None,
) -> list[tuple[str, float]]:
    """The second stage of a two-stage identification: the `candidate_writers` that an index
    returned (nearest references first, writers repeated or not), each scored once by the
    gallery's ranking rule (``writer_score(..., "mean")`` over all their `references`), best
    first, ties in the order the index gave; the `top_k` best (None: all).

    Exact for the writers it is given: only which writers are candidates is approximate. Those
    that cannot reach the `top_k` are pruned first (`References.contenders` on the candidates'
    own table), so the rule scores a few. `references` maps each candidate (at least) to its
    (n, dim) reference embeddings."""
    writers = list(dict.fromkeys(candidate_writers))
    missing = [w for w in writers if w not in references]
    if missing:
        raise ValueError(
            f"candidate writers {missing[:10]} have no references to re-score them with (removed "
            "since the index found them?)"
        )
    # the candidates' own table prunes those that cannot reach the top_k (`contenders`)
    dim = len(np.asarray(query).reshape(-1))
    table = References.gather({w: references[w] for w in writers}, dim)
    kept = [writers[i] for i in table.contenders(verifier, query, top_k or len(writers))]
    rows = table.rows()
    scored = [(w, writer_score(verifier, query, rows[w], "mean")) for w in kept]
    scored.sort(key=lambda pair: -pair[1])  # stable: ties keep the order given
    return scored[:top_k]
