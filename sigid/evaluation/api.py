"""`sigid.evaluate()` and `run_protocol`: test a checkpoint, or run an evaluation protocol."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sigid.atomic import check_folder
from sigid.errors import quiet_dependency_noise
from sigid.evaluation.choices import PROTOCOLS, check_applies
from sigid.evaluation.protocols.identification import identification
from sigid.evaluation.protocols.robustness import robustness
from sigid.evaluation.protocols.same_name import same_name
from sigid.evaluation.protocols.writer_dependent import DEFAULT_REFERENCES, writer_dependent
from sigid.evaluation.protocols.writer_independent import writer_independent_summary
from sigid.evaluation.testing import run_test
from sigid.inference.tta import check_tta
from sigid.runs.records import (
    override_list,
)


@quiet_dependency_noise()
def evaluate(
    checkpoint: str | Path,
    overrides: list[str] | None = None,
    *,
    protocol: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Test a checkpoint on the data its run was trained with, or as `overrides` change it.

    The preprocessing always comes from the checkpoint, so images are prepared exactly as in
    training; `overrides` change the data (e.g. ``["data=cedar", "data.root=..."]``) from the
    run's own settings (its ``.hydra/overrides.yaml``). A checkpoint outside its run folder has
    no such record: its data must be given with their config (``data=...``), or it is refused.

    With `protocol` ("identification", "writer-dependent", "writer-independent", "same-name",
    "robustness"), run that evaluation protocol of `sigid.evaluation.protocols` instead and
    return its result; `options` are the protocol's (``references``, ``seed``, ``out``,
    ``score``, ``tta``; for "robustness" also ``transforms``, ``strengths``,
    ``references_too``). For
    "writer-independent", `checkpoint` is the sweep folder of the folds (or a list of run
    folders) and `overrides` are not used.
    """
    overrides = override_list(overrides)
    if protocol is None:
        return run_test(checkpoint, overrides)[1]

    return run_protocol(protocol, checkpoint, overrides, **options)


def run_protocol(
    protocol: str,
    target: str | Path | Sequence[str | Path],
    overrides: list[str] | None = None,
    references: Sequence[int] = DEFAULT_REFERENCES,
    seed: int = 0,
    out: str | Path | None = None,
    score: str | None = None,
    transforms: Sequence[str] | None = None,
    strengths: Sequence[str] | None = None,
    references_too: bool = False,
    tta: int | None = None,
) -> dict[str, Any]:
    """Run `protocol` by name. `target`: a checkpoint, or for "writer-independent" the sweep
    folder of the folds (or their run folders); `overrides`: Hydra data overrides;
    `transforms`, `strengths`, `references_too`: the robustness protocol's (`robustness`);
    `tta`: test-time augmentation for the protocols that take references (None: off)."""
    check_applies(protocol, "a gallery score", score is not None)
    check_applies(protocol, "tta", tta is not None)
    tta = check_tta(1 if tta is None else tta)
    for option, given in (
        ("transforms", transforms is not None),
        ("strengths", strengths is not None),
        ("references_too", references_too),
    ):
        check_applies(protocol, option, given, ("robustness",))
    if out is not None:
        check_folder(out)  # before the evaluation, which can take minutes
    if protocol == "identification":
        return identification(_one(target), overrides, out=out)
    if protocol == "writer-dependent":
        return writer_dependent(
            _one(target), overrides, references, seed, out=out, score=score, tta=tta
        )
    if protocol == "robustness":
        return robustness(
            _one(target), overrides, references, seed, out=out, score=score,
            transforms=transforms, strengths=strengths, references_too=references_too, tta=tta,
        )  # fmt: skip
    if protocol == "writer-independent":
        if overrides:
            raise ValueError(
                "the writer-independent protocol reads the folds' finished runs; data overrides "
                f"{list(overrides)} do not apply (they were the runs' own)"
            )
        return writer_independent_summary(target, out=out)
    if protocol == "same-name":
        return same_name(_one(target), overrides, out=out)
    raise ValueError(f"unknown protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")


def _one(target: str | Path | Sequence[str | Path]) -> str | Path:
    if isinstance(target, (str, Path)):
        return target
    raise ValueError("this protocol takes one checkpoint")
