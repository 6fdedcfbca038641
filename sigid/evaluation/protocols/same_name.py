"""Same-name verification and identification: the natural protocol of a collection whose writers
all wrote the same names (chinese_names: 60 writers x ten names x four media).

The unit is (writer, name). Verification: every pair of two samples of one name among the
split's writers; genuine when both are the unit's (two media of one writer writing that name),
a negative when the writers differ (another writer's rendering of the same name: a forger who
knew the name, not the signature). Pairs of different names are not asked. The threshold is the
EER threshold of the validation writers' pairs; the test writers report EER, AUC, FAR and FRR
overall and per medium pair (paper-electronic, electronic-electronic; paper-paper pairs are all
negatives, so they count in the overall figures only). Identification: for each name and each
medium as the gallery (one sample per test writer), every other-medium sample of those writers
is ranked against the gallery; top-1 over all (name, gallery medium) draws, and per gallery
medium.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from sigid import metrics
from sigid.data.datamodules import PairDataModule
from sigid.data.layouts import CHINESE_MEDIUM_NAMES, Sample, natural_key
from sigid.errors import quiet_dependency_noise
from sigid.evaluation.protocols.output import Curve, Scalar, write_outputs
from sigid.evaluation.protocols.writer_dependent import EmbeddedSplit
from sigid.evaluation.testing import evaluation_datamodule
from sigid.inference.verifier import Verifier
from sigid.runs.paths import checkpoint_path
from sigid.runs.records import check_unseen

PAPER = 0
MEDIUM_PAIRS = ("paper-electronic", "electronic-electronic", "paper-paper")
# Reported per medium pair: those with genuine pairs (a unit has one sample per medium).
REPORTED_PAIRS = MEDIUM_PAIRS[:2]


def medium_pair(a: int, b: int) -> int:
    """Index in `MEDIUM_PAIRS` of two media (0 paper, 1.. electronic)."""
    papers = (a == PAPER) + (b == PAPER)
    return {1: 0, 0: 1, 2: 2}[papers]


class NameTrials(NamedTuple):
    """Every same-name pair of a split, scored."""

    scores: np.ndarray  # float64, the network's similarity
    targets: np.ndarray  # 1: one unit (two media of one writer's name), 0: two writers
    media: np.ndarray  # index in MEDIUM_PAIRS


def check_same_name(samples: Sequence[Sample], where: str) -> None:
    """Refuse samples that do not say which name and medium they are (any layout but
    chinese_names), in one line."""
    if not samples:
        raise ValueError(f"{where}: no signatures")
    if any(s.text is None or s.medium is None for s in samples):
        raise ValueError(
            f"{where}: the same-name protocol needs the name and medium of every file "
            "(data=chinese_names, layout chinese_names); this data has none"
        )


def _by_name(samples: Sequence[Sample]) -> dict[str, list[int]]:
    """Indices of each name's samples, ordered by writer then medium."""
    groups: dict[str, list[int]] = defaultdict(list)
    order = sorted(
        range(len(samples)), key=lambda i: (natural_key(samples[i].person), samples[i].medium)
    )
    for i in order:
        groups[samples[i].text].append(i)  # type: ignore[index]
    return groups


def score_trials(verifier: Verifier, split: EmbeddedSplit) -> NameTrials:
    """Every pair of two samples of one name: the unit's own (genuine) and other writers'."""
    scores, targets, media = [], [], []
    samples = split.samples
    for indices in _by_name(samples).values():
        for n, i in enumerate(indices):
            rest = indices[n + 1 :]
            if not rest:
                continue
            scores.append(verifier.scores(split.embeddings[i], split.embeddings[rest]))
            for j in rest:
                targets.append(int(samples[i].writer == samples[j].writer))
                media.append(medium_pair(samples[i].medium, samples[j].medium))  # type: ignore[arg-type]
    return NameTrials(
        np.concatenate(scores).astype(np.float64) if scores else np.zeros(0),
        np.array(targets, dtype=np.int64),
        np.array(media, dtype=np.int64),
    )


def verification_metrics(
    scores: np.ndarray, targets: np.ndarray, threshold: float
) -> dict[str, float | int]:
    """EER, AUC, FAR and FRR at `threshold`, and the counts of genuine and negative pairs."""
    far, frr = metrics.far_frr(scores, targets, threshold)
    return {
        "eer": metrics.eer(scores, targets)[0],
        "auc": metrics.auroc(scores, targets),
        "far": far,
        "frr": frr,
        "genuine": int(targets.sum()),
        "negatives": int((targets == 0).sum()),
    }


def identification(verifier: Verifier, split: EmbeddedSplit) -> dict[str, Any]:
    """For each name and gallery medium: the writers' samples of that medium are the gallery,
    their other media's samples the queries; top-1 overall and per gallery medium."""
    samples = split.samples
    hits: dict[int, list[int]] = defaultdict(list)
    writers = sorted({s.person for s in samples}, key=natural_key)
    for indices in _by_name(samples).values():
        media = sorted({samples[i].medium for i in indices})  # type: ignore[type-var]
        for medium in media:
            gallery = [i for i in indices if samples[i].medium == medium]
            people = [samples[i].person for i in gallery]
            if len(set(people)) < 2:
                continue
            references = split.embeddings[gallery]
            for q in indices:
                if samples[q].medium == medium or samples[q].person not in people:
                    continue
                ranked = verifier.scores(split.embeddings[q], references)
                truth = people.index(samples[q].person)
                rank = int((ranked > ranked[truth]).sum())  # ties count for the truth
                hits[medium].append(int(rank == 0))  # type: ignore[index]
    every = [h for medium in hits for h in hits[medium]]
    if not every:
        raise ValueError("identification needs 2 test writers sharing a name and a medium")
    return {
        "writers": len(writers),
        "queries": len(every),
        "chance": 1 / len(writers),
        "top1": float(np.mean(every)),
        "by_gallery_medium": {
            CHINESE_MEDIUM_NAMES[m] if m < len(CHINESE_MEDIUM_NAMES) else str(m): {
                "queries": len(h),
                "top1": float(np.mean(h)),
            }
            for m, h in sorted(hits.items())
        },
    }


def evaluate_split_pair(
    verifier: Verifier, val: EmbeddedSplit, test: EmbeddedSplit
) -> tuple[dict[str, Any], list[Curve]]:
    """The protocol on embedded validation and test splits: the result's ``threshold``,
    ``validation`` and ``test`` entries, and the test curves (overall and per medium pair)."""
    val_trials, test_trials = score_trials(verifier, val), score_trials(verifier, test)
    try:  # the only place a threshold is chosen: validation writers' pairs
        val_eer, threshold = metrics.eer(val_trials.scores, val_trials.targets)
    except ValueError as err:
        raise ValueError(f"no threshold from the validation writers: {err}") from err
    test_result: dict[str, Any] = {
        "overall": verification_metrics(test_trials.scores, test_trials.targets, threshold)
    }
    curves = [Curve("same_name", "overall", test_trials.scores, test_trials.targets, threshold)]
    for code, label in enumerate(REPORTED_PAIRS):
        keep = test_trials.media == code
        if test_trials.targets[keep].any() and not test_trials.targets[keep].all():
            scores, targets = test_trials.scores[keep], test_trials.targets[keep]
            test_result[label] = verification_metrics(scores, targets, threshold)
            curves.append(Curve(f"same_name_{label}", label, scores, targets, threshold))
    test_result["identification"] = identification(verifier, test)
    result = {
        "threshold": threshold,
        "validation": {
            "eer": val_eer,
            "genuine": int(val_trials.targets.sum()),
            "negatives": int((val_trials.targets == 0).sum()),
        },
        "test": test_result,
    }
    return result, curves


@quiet_dependency_noise()
def same_name(
    checkpoint: str | Path, overrides: list[str] | None = None, out: str | Path | None = None
) -> dict[str, Any]:
    """The same-name protocol for a Siamese checkpoint on the validation and test writers of
    the data config (`overrides`, e.g. ``["data=chinese_names", "data.root=...",
    "data.split.fold=1"]``). With `out`, also ROC and DET PNGs, TensorBoard and
    ``evaluation.json``."""
    checkpoint = checkpoint_path(checkpoint)
    verifier = Verifier.from_checkpoint(checkpoint)
    overrides = list(overrides or [])
    datamodule = evaluation_datamodule(verifier.module, overrides, checkpoint)
    if not isinstance(datamodule, PairDataModule):  # pragma: no cover - Siamese -> pairs
        raise ValueError("the same-name protocol needs the writer-disjoint pair split")
    datamodule.setup("test")
    for name in ("val", "test"):
        check_same_name(datamodule.samples[name], f"{datamodule.table.root} ({name} split)")
    record = check_unseen(checkpoint, datamodule.split_manifest(), ["val", "test"])
    splits = {
        name: EmbeddedSplit(
            datamodule.samples[name], verifier.embed_prepared(datamodule.images[name])
        )
        for name in ("val", "test")
    }
    found, curves = evaluate_split_pair(verifier, splits["val"], splits["test"])
    result = {
        "protocol": "same-name",
        "checkpoint": str(Path(checkpoint).resolve()),
        "data": overrides,
        "training_split": str(record) if record else None,
        "threshold_rule": "EER threshold of the validation writers' same-name pairs",
        "writers": {
            name: sorted({s.person for s in split.samples}, key=natural_key)
            for name, split in splits.items()
        },
        **found,
    }
    scalars = [
        Scalar(f"{label}_{name}", result["test"][label][name])
        for label in ("overall", *REPORTED_PAIRS)
        if label in result["test"]
        for name in ("eer", "auc", "far", "frr")
    ]
    scalars.append(Scalar("identification_top1", result["test"]["identification"]["top1"]))
    return write_outputs(result, out, curves=curves, scalars=scalars)
