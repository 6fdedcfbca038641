"""How a gallery scores a questioned signature against a writer's references (`SCORES`).

The evaluation protocols score with the same functions, so they measure what a gallery decides.
Why ``normalized`` is the default and not the max: docs/gallery.md. Light on purpose (numpy
only): the `sigid` command reads `SCORES` without loading torch; the verifier is duck-typed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sigid.inference.verifier import Verifier

SCORES = {
    "normalized": "similarity of the mean distance to the writer's references, less the "
    "references' own mean distance, plus the model's typical genuine distance",
    "mean": "mean similarity to the writer's references",
}


def writer_score(
    verifier: Verifier,
    query: np.ndarray,
    references: np.ndarray,
    score: str,
    genuine_distance: float | None = None,
) -> float:
    """A writer's score for a questioned embedding against their (K, dim) reference embeddings,
    by the rule `score` (`SCORES`). `genuine_distance` overrides the verifier's."""
    if score == "mean":
        return float(np.mean(verifier.scores(query, references)))
    typical = verifier.genuine_distance if genuine_distance is None else genuine_distance
    if typical is None:
        raise ValueError(f"the {score!r} score needs the model's typical genuine distance")
    return float(
        verifier.similarity_at(
            verifier.distances(query, references).mean()
            - reference_spread(references, typical)
            + typical
        )
    )


def reference_spread(references: np.ndarray, default: float) -> float:
    """The mean Euclidean distance between a writer's reference embeddings (each pair once);
    `default` with fewer than two references."""
    refs = np.asarray(references, dtype=np.float64)
    if len(refs) < 2:
        return float(default)
    distances = np.sqrt(((refs[:, None, :] - refs[None, :, :]) ** 2).sum(-1))
    upper = np.triu_indices(len(refs), k=1)
    return float(distances[upper].mean())


def check_score(verifier: Verifier, score: str | None) -> str:
    """`score`, checked; None: the default for this model."""
    if score is None:
        return "normalized" if verifier.genuine_distance is not None else "mean"
    if score not in SCORES:
        raise ValueError(f"unknown gallery score {score!r}; expected one of {', '.join(SCORES)}")
    if score == "normalized" and verifier.genuine_distance is None:
        model = verifier.checkpoint or "this model"
        raise ValueError(
            f"{model} does not store the typical genuine distance that the 'normalized' score "
            "needs (it was trained before sigid stored it); use score 'mean', or retrain"
        )
    return score
