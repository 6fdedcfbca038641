"""Evaluation protocols of the signature literature, on trained checkpoints and runs.

- `identification`: closed-set writer identification with a CNN (top-1, top-5, confusion
  matrix) on the per-writer split of genuine signatures;
- `writer_dependent`: a Siamese model used as a deployment uses it, each writer enrolled with K
  reference signatures; EER, AUC, and FAR/FRR at a threshold chosen on validation writers, for
  skilled and random forgeries;
- `writer_independent_summary`: k-fold over writers (one training run per fold), mean and
  spread of the folds' test metrics.

Each returns a JSON-ready dict; given an output folder, it also writes ``evaluation.json``, the
ROC/DET (or confusion matrix) PNGs and a TensorBoard event file there. `format_result` renders
any result as a table. Metrics come from `sigid.metrics`, scores from `sigid.verifier` and the
gallery's rule, data splits from the DataModules: the protocols compute nothing of their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sigid.atomic import check_folder
from sigid.protocols.identification import identification
from sigid.protocols.report import format_result
from sigid.protocols.writer_dependent import DEFAULT_REFERENCES, writer_dependent
from sigid.protocols.writer_independent import writer_independent_summary

__all__ = [
    "PROTOCOLS",
    "format_result",
    "identification",
    "run_protocol",
    "writer_dependent",
    "writer_independent_summary",
]

PROTOCOLS = ("identification", "writer-dependent", "writer-independent")


def run_protocol(
    protocol: str,
    target: str | Path | Sequence[str | Path],
    overrides: list[str] | None = None,
    references: Sequence[int] = DEFAULT_REFERENCES,
    seed: int = 0,
    out: str | Path | None = None,
    score: str | None = None,
) -> dict[str, Any]:
    """Run `protocol` by name. `target`: a checkpoint, or for "writer-independent" the sweep
    folder of the folds (or their run folders); `overrides`: Hydra data overrides."""
    if score is not None and protocol != "writer-dependent":
        raise ValueError("a gallery score applies to the writer-dependent protocol only")
    if out is not None:
        check_folder(out)  # before the evaluation, which can take minutes
    if protocol == "identification":
        return identification(_one(target), overrides, out=out)
    if protocol == "writer-dependent":
        return writer_dependent(_one(target), overrides, references, seed, out=out, score=score)
    if protocol == "writer-independent":
        if overrides:
            raise ValueError(
                "the writer-independent protocol reads the folds' finished runs; data overrides "
                f"{list(overrides)} do not apply (they were the runs' own)"
            )
        return writer_independent_summary(target, out=out)
    raise ValueError(f"unknown protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")


def _one(target: str | Path | Sequence[str | Path]) -> str | Path:
    if isinstance(target, (str, Path)):
        return target
    raise ValueError("this protocol takes one checkpoint")
