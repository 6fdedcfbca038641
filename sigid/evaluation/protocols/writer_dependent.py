"""Writer-dependent use of a Siamese model: each writer enrolled with K reference signatures.

As a deployment uses the model (`sigid.inference.gallery.Gallery`): a questioned signature is
scored against the claimed writer's K references with a gallery's rule and accepted at one global
threshold, the EER threshold of the validation writers; the test writers report EER, AUC, FAR and
FRR per forgery kind (docs/evaluation.md). References are seeded per writer, so a
writer's draw does not depend on which other writers exist and K=12's extend K=5's; the random
negatives are other writers' genuine signatures of the same split, as many as the positives.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from sigid import metrics
from sigid.data.datamodules import PairDataModule
from sigid.data.layouts import Sample, natural_key
from sigid.data.pairs import GENUINE, KINDS, RANDOM, SKILLED
from sigid.errors import quiet_dependency_noise
from sigid.evaluation.protocols.identification import TOP_K
from sigid.evaluation.protocols.output import Curve, Scalar, write_outputs
from sigid.evaluation.testing import evaluation_datamodule
from sigid.inference.gallery.scores import SCORES, check_score, reference_spread, writer_score
from sigid.inference.verifier import Verifier
from sigid.runs.paths import checkpoint_path
from sigid.runs.records import check_unseen

DEFAULT_REFERENCES = (5, 12)
# Negative kinds reported separately.
FORGERIES = (SKILLED, RANDOM)


class Unscorable(ValueError):
    """One K cannot be evaluated on these writers (too few genuine signatures, no threshold);
    the other K still can."""


class EmbeddedSplit(NamedTuple):
    """A split's signatures (genuine and forged, who they claim to be) and their embeddings:
    `embeddings` enrol a writer as references; `questioned`, when given (the same signatures
    embedded otherwise: scanned differently, say), are scored against them."""

    samples: Sequence[Sample]
    embeddings: np.ndarray
    questioned: np.ndarray | None = None

    @property
    def queries(self) -> np.ndarray:
        """The embeddings of the signatures as questioned."""
        return self.embeddings if self.questioned is None else self.questioned


@dataclass(frozen=True)
class Rule:
    """How a writer is scored: a `sigid.inference.gallery.SCORES` name and, for ``normalized``, the
    typical genuine distance it measures against."""

    score: str
    typical: float | None = None

    def __call__(self, verifier: Verifier, query: np.ndarray, references: np.ndarray) -> float:
        return writer_score(verifier, query, references, self.score, self.typical)


MEAN = Rule("mean")


@dataclass(frozen=True)
class Trials:
    """Questioned signatures scored against their claimed writer's K references."""

    scores: np.ndarray  # float64, the rule's score against the references
    targets: np.ndarray  # 1: genuine, 0: forgery
    kinds: np.ndarray  # sigid.data.pairs codes: GENUINE, SKILLED, RANDOM
    writers: list[str]  # scored
    skipped: list[str]  # fewer than K + 1 genuine signatures

    def count(self, kind: int) -> int:
        return int((self.kinds == kind).sum())


def _by_writer(split: EmbeddedSplit) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """Indices of each writer's genuine signatures and forgeries, in file-name order."""
    genuine: dict[str, list[int]] = defaultdict(list)
    forged: dict[str, list[int]] = defaultdict(list)
    order = sorted(range(len(split.samples)), key=lambda i: natural_key(str(split.samples[i].path)))
    for i in order:
        sample = split.samples[i]
        (genuine if sample.genuine else forged)[sample.writer].append(i)
    return genuine, forged


def _draw(writer: str, own: list[int], k: int, seed: int) -> tuple[list[int], list[int]]:
    """(references, the rest): K of a writer's genuine signatures, seeded per writer."""
    rng = np.random.default_rng([seed, zlib.crc32(writer.encode())])
    drawn = [own[i] for i in rng.permutation(len(own))]
    return drawn[:k], drawn[k:]


def score_trials(
    verifier: Verifier, split: EmbeddedSplit, k: int, seed: int = 0, rule: Rule = MEAN
) -> Trials:
    """Score every questioned signature of a split with K references per writer."""
    genuine, forged = _by_writer(split)
    writers = sorted(genuine, key=natural_key)
    rows: list[tuple[float, int]] = []
    scored, skipped = [], []
    for writer in writers:
        own = genuine[writer]
        if len(own) < k + 1:
            skipped.append(writer)
            continue
        chosen, positives = _draw(writer, own, k, seed)
        references = split.embeddings[chosen]
        rng = np.random.default_rng([seed, zlib.crc32(writer.encode()), 1])
        others = [i for other in writers if other != writer for i in genuine[other]]
        randoms = [others[i] for i in rng.permutation(len(others))[: len(positives)]]
        questioned = [(GENUINE, positives), (SKILLED, forged[writer]), (RANDOM, randoms)]
        for kind, indices in questioned:
            for i in indices:
                rows.append((rule(verifier, split.queries[i], references), kind))
        scored.append(writer)
    scores = np.array([score for score, _ in rows], dtype=np.float64)
    kinds = np.array([kind for _, kind in rows], dtype=np.int64)
    return Trials(scores, (kinds == GENUINE).astype(np.int64), kinds, scored, skipped)


def gallery_identification(
    verifier: Verifier, split: EmbeddedSplit, k: int, seed: int = 0, rule: Rule = MEAN
) -> dict[str, Any]:
    """Enroll every writer of the split with the same K references as `score_trials` and
    identify each of their other genuine signatures among all of them (closed set): top-1 and,
    with more than 5 writers, top-5 accuracy. No retraining: the writers are unseen. A gallery
    ranks by the mean similarity (`MEAN`, `sigid.inference.gallery.Gallery.identify`); `rule` ranks
    otherwise."""
    genuine, _ = _by_writer(split)
    writers = [w for w in sorted(genuine, key=natural_key) if len(genuine[w]) >= k + 1]
    if len(writers) < 2:
        raise Unscorable(
            f"gallery identification needs 2 writers with {k + 1} genuine signatures (K "
            "references + 1 questioned)"
        )
    drawn = {w: _draw(w, genuine[w], k, seed) for w in writers}
    hits = {1: 0, 5: 0}
    queries = 0
    for truth, writer in enumerate(writers):
        for i in drawn[writer][1]:
            query = split.queries[i]
            scores = [rule(verifier, query, split.embeddings[drawn[w][0]]) for w in writers]
            rank = int((np.asarray(scores) > scores[truth]).sum())  # ties count for the truth
            for top in hits:
                hits[top] += rank < top
            queries += 1
    found = {"writers": len(writers), "queries": queries, "top1": hits[1] / queries}
    if len(writers) > TOP_K:  # among 5 writers or fewer every signature is in the top 5
        found["top5"] = hits[5] / queries
    return found


def forgery_metrics(trials: Trials, threshold: float) -> dict[str, dict[str, float]]:
    """EER, AUC, and FAR and FRR at `threshold`, per forgery kind present ("skilled",
    "random"): the writers' genuine trials against that kind's."""
    out = {}
    for code in FORGERIES:
        if (pair := _against(trials, code)) is None:
            continue
        far, frr = metrics.far_frr(*pair, threshold)
        out[KINDS[code]] = {
            "eer": metrics.eer(*pair)[0],
            "auc": metrics.auroc(*pair),
            "far": far,
            "frr": frr,
            "forgeries": trials.count(code),
        }
    return out


def _against(trials: Trials, code: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(scores, targets) of the genuine trials and one forgery kind's; None if one is missing."""
    if not trials.count(code) or not trials.count(GENUINE):
        return None
    keep = (trials.kinds == GENUINE) | (trials.kinds == code)
    return trials.scores[keep], trials.targets[keep]


class Evaluated(NamedTuple):
    """The protocol's results per K, the test curves, and the K left out with the reason."""

    results: list[dict[str, Any]]
    curves: list[Curve]
    skipped: list[dict[str, Any]]  # {"references": K, "reason": ...}


def evaluate_splits(
    verifier: Verifier,
    val: EmbeddedSplit,
    test: EmbeddedSplit,
    references: Sequence[int] = DEFAULT_REFERENCES,
    seed: int = 0,
    rule: Rule = MEAN,
) -> Evaluated:
    """The protocol on embedded validation and test splits: one result per K, and the test
    curves (per K and forgery kind). A K these writers cannot be scored with (`Unscorable`) is
    left out with its reason, so that the others are still reported; ValueError when none can
    be."""
    results, curves, skipped = [], [], []
    for k in check_references(references):
        try:
            result, k_curves = _evaluate_k(verifier, val, test, k, seed, rule)
        except Unscorable as err:
            skipped.append({"references": k, "reason": str(err)})
            continue
        results.append(result)
        curves.extend(k_curves)
    if not results:
        raise ValueError("; ".join(f"K={s['references']}: {s['reason']}" for s in skipped))
    return Evaluated(results, curves, skipped)


def _evaluate_k(
    verifier: Verifier, val: EmbeddedSplit, test: EmbeddedSplit, k: int, seed: int, rule: Rule
) -> tuple[dict[str, Any], list[Curve]]:
    """One K's result and test curves; `Unscorable` where these writers cannot give them."""
    val_trials = _scorable(score_trials(verifier, val, k, seed, rule), k, "validation")
    test_trials = _scorable(score_trials(verifier, test, k, seed, rule), k, "test")
    try:  # the only place a threshold is chosen: validation writers' trials
        val_eer, threshold = metrics.eer(val_trials.scores, val_trials.targets)
    except ValueError as err:
        raise Unscorable(f"no threshold from the validation writers: {err}") from err
    result = {
        "references": k,
        "threshold": threshold,
        "validation": {"eer": val_eer, **_counts(val_trials)},
        "test": {
            **_counts(test_trials),
            **forgery_metrics(test_trials, threshold),
            "identification": gallery_identification(verifier, test, k, seed),
        },
    }
    curves = [
        Curve(f"k{k}_{KINDS[code]}", KINDS[code], *pair, threshold, k)
        for code in FORGERIES
        if (pair := _against(test_trials, code)) is not None
    ]
    return result, curves


@quiet_dependency_noise()
def writer_dependent(
    checkpoint: str | Path,
    overrides: list[str] | None = None,
    references: Sequence[int] = DEFAULT_REFERENCES,
    seed: int = 0,
    out: str | Path | None = None,
    score: str | None = None,
    tta: int = 1,
) -> dict[str, Any]:
    """The writer-dependent protocol for a Siamese checkpoint on the validation and test writers
    of the data config (`overrides`, e.g. ``["data=cedar", "data.root=...",
    "data.split.fold=1"]``), scored by `score` (a gallery's `SCORES`; default: what a new
    gallery of this checkpoint would use). A K these writers cannot be scored with is listed
    under ``skipped_references`` with the reason (`evaluate_splits`). `tta` > 1 embeds every
    signature with test-time augmentation (`sigid.inference.tta`; JSON ``tta``). With `out`,
    also ROC and DET PNGs, TensorBoard and ``evaluation.json``."""
    references = check_references(references)
    overrides = list(overrides or [])
    loaded = load_splits(checkpoint, overrides, tta)
    verifier, splits, record = loaded.verifier, loaded.splits, loaded.record
    checkpoint = loaded.checkpoint
    rule = protocol_rule(verifier, splits["val"], score)
    results, curves, skipped = evaluate_splits(
        verifier, splits["val"], splits["test"], references, seed, rule
    )
    result = {
        "protocol": "writer-dependent",
        "checkpoint": str(Path(checkpoint).resolve()),
        "data": overrides,
        "training_split": str(record) if record else None,
        "seed": seed,
        "tta": verifier.tta,
        "score": rule.score,
        "score_rule": f"{SCORES[rule.score]} (K references per writer)",
        "typical_genuine_distance": rule.typical,
        "threshold_rule": "EER threshold of the validation writers, per K",
        "writers": {
            name: sorted({s.writer for s in split.samples}, key=natural_key)
            for name, split in splits.items()
        },
        "results": results,
        "skipped_references": skipped,
    }
    scalars = [
        Scalar(f"{name}_{kind}", entry["test"][kind][name], entry["references"])
        for entry in results
        for kind in ("skilled", "random")
        if kind in entry["test"]
        for name in ("eer", "auc", "far", "frr")
    ]
    return write_outputs(result, out, curves=curves, scalars=scalars)


class Loaded(NamedTuple):
    """A Siamese checkpoint, its data and the embedded validation and test splits."""

    checkpoint: Path
    verifier: Verifier
    datamodule: PairDataModule
    record: Path | None  # the run's split.json the splits were checked against
    splits: dict[str, EmbeddedSplit]  # "val", "test"


def load_splits(checkpoint: str | Path, overrides: list[str], tta: int = 1) -> Loaded:
    """Load a Siamese checkpoint and the data `overrides` describe (`evaluation_datamodule`),
    check that its validation and test writers are unseen, and embed both splits (with
    test-time augmentation `tta`: `Verifier`)."""
    checkpoint = checkpoint_path(checkpoint)
    verifier = Verifier.from_checkpoint(checkpoint, tta=tta)
    datamodule = evaluation_datamodule(verifier.module, overrides, checkpoint)
    if not isinstance(datamodule, PairDataModule):  # pragma: no cover - Siamese -> pairs
        raise ValueError("the writer-dependent protocol needs the writer-disjoint pair split")
    datamodule.setup("test")
    record = check_unseen(checkpoint, datamodule.split_manifest(), ["val", "test"])
    splits = {
        name: EmbeddedSplit(
            datamodule.samples[name], verifier.embed_prepared(datamodule.images[name])
        )
        for name in ("val", "test")
    }
    return Loaded(Path(checkpoint), verifier, datamodule, record, splits)


def protocol_rule(verifier: Verifier, val: EmbeddedSplit, score: str | None) -> Rule:
    """The rule `score` for this verifier. A checkpoint written before sigid stored its typical
    genuine distance can still be evaluated with ``normalized``: the distance then comes from the
    validation writers (the mean spread of their genuine signatures), which moves the threshold
    found on them but not the EERs, AUCs or rankings (the score is monotone in it)."""
    if score == "normalized" and verifier.genuine_distance is None:
        genuine, _ = _by_writer(val)
        spreads = [reference_spread(val.embeddings[rows], np.nan) for rows in genuine.values()]
        return Rule("normalized", float(np.nanmean(spreads)))
    score = check_score(verifier, score)
    return Rule(score, verifier.genuine_distance if score == "normalized" else None)


def check_references(references: Sequence[int]) -> list[int]:
    values = [references] if isinstance(references, int) else list(references)
    if not values or any(int(k) != k or k < 1 for k in values):
        raise ValueError(f"references per writer must be whole numbers >= 1, got {references}")
    return sorted({int(k) for k in values})


def _scorable(trials: Trials, k: int, split: str) -> Trials:
    if not trials.writers:
        raise Unscorable(
            f"no {split} writer has the {k + 1} genuine signatures needed (K references + "
            f"1 questioned); skipped: {', '.join(trials.skipped) or 'none'}"
        )
    return trials


def _counts(trials: Trials) -> dict[str, Any]:
    return {
        "writers": len(trials.writers),
        "skipped": len(trials.skipped),
        "skipped_writers": trials.skipped,
        "genuine": trials.count(GENUINE),
    }
