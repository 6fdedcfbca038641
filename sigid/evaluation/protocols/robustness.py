"""Robustness: the verification figures again with the questioned signatures scanned otherwise.

For one Siamese checkpoint and its data, every acquisition change of `sigid.data.acquisition`
(at each strength asked) is applied to the raw test scans, which are then preprocessed with the
checkpoint's settings and embedded once per change; the figures are recomputed with the same
code as clean:

- writer-independent: EER of the fold's fixed test pairs (`PairDataModule.pairs["test"]`, the
  pairs the run's test step scores), skilled and random; the second image of a pair is the
  questioned one (`sigid.data.pairs.make_pairs` puts the forgery, or the other writer's
  signature, there);
- writer-dependent (`writer_dependent.evaluate_splits`): EER with K references, skilled and
  random, at the clean validation writers' threshold, and the gallery's top-1 identification.

Only the questioned signatures change, unless ``references_too``: a writer enrolled from clean
scans, questioned with another scanner's. Validation writers stay clean (the threshold is
chosen once, as in deployment). A transformed scan that the normaliser finds no ink in would be
refused by `sigid verify`; here it is scored as the (empty) image preprocessing makes, and
counted under ``refused``.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sigid import metrics
from sigid.data.acquisition import TRANSFORMS, check_names, prepared_change
from sigid.data.images import load_image
from sigid.data.inks import as_rgb
from sigid.data.pairs import KINDS, Pair
from sigid.errors import quiet_dependency_noise
from sigid.evaluation.protocols.output import write_outputs
from sigid.evaluation.protocols.writer_dependent import (
    DEFAULT_REFERENCES,
    EmbeddedSplit,
    check_references,
    evaluate_splits,
    load_splits,
    protocol_rule,
)
from sigid.inference.gallery.scores import SCORES
from sigid.inference.verifier import Verifier

CLEAN = "clean"
# the gallery's identification is reported with this many references where they are evaluated
GALLERY_REFERENCES = 5
# the table's columns: (key, heading)
COLUMNS = (
    ("pairs_skilled", "pairs skilled"),
    ("pairs_random", "pairs random"),
    ("wd_skilled", "WD skilled"),
    ("wd_random", "WD random"),
    ("top1", "top-1"),
)


def pair_figures(
    verifier: Verifier, pairs: Sequence[Pair], references: np.ndarray, questioned: np.ndarray
) -> dict[str, float]:
    """EER (all negatives, and per kind) and AUC of the fixed pairs, the first image of each
    embedded as in `references`, the second as in `questioned`: what the run's test step
    reports as ``test/eer``, ``test/eer_skilled``, ``test/eer_random``, ``test/auroc``."""
    left = np.array([p.a for p in pairs], dtype=np.int64)
    right = np.array([p.b for p in pairs], dtype=np.int64)
    targets = np.array([p.target for p in pairs], dtype=np.int64)
    kinds = np.array([p.kind for p in pairs], dtype=np.int64)
    scores = verifier.pair_scores(references[left], questioned[right]).astype(np.float64)
    out = {"pairs": len(pairs)}
    if 0 < targets.sum() < len(targets):
        out["eer"] = metrics.eer(scores, targets)[0]
        out["auc"] = metrics.auroc(scores, targets)
    for code, kind in enumerate(KINDS[1:], start=1):
        keep = (targets == 1) | (kinds == code)
        if (targets[keep] == 1).any() and (targets[keep] == 0).any():
            out[f"eer_{kind}"] = metrics.eer(scores[keep], targets[keep])[0]
    return out


def transformed_images(
    split: EmbeddedSplit, transform: str, strength: str, preprocessing: dict[str, Any], seed: int
) -> tuple[np.ndarray, int]:
    """(the split's scans read from disk, changed by `transform` at `strength` and preprocessed
    as `preprocessing` says, how many of them the normaliser found no ink in). Each scan's draw
    is seeded by `seed` and its file name, so a scan changes alike in every run. With
    ``remove_stamps`` each scan is changed in colour (a grey one as RGB), so a stamp or a pen
    keeps its colour for the preprocessing to see; otherwise in grey, as it is read."""
    prepared, refused = [], 0
    colour = bool(preprocessing.get("remove_stamps"))
    for sample in split.samples:
        scan = load_image(sample.path, colour=colour)
        scan = as_rgb(scan) if colour else scan
        draw = [seed, zlib.crc32(sample.path.name.encode())]
        image, inked = prepared_change(scan, transform, strength, draw, preprocessing)
        refused += not inked
        prepared.append(image)
    return np.stack(prepared), refused


def _row(
    transform: str,
    strength: str | None,
    pairs: dict[str, float],
    dependent: list[dict[str, Any]],
    refused: int,
    eer_k: int,
    top1_k: int,
) -> dict[str, Any]:
    """One row of the table: its figures, and the writer-dependent results in full."""
    by_k = {entry["references"]: entry["test"] for entry in dependent}
    figures = {
        "pairs_skilled": pairs.get("eer_skilled"),
        "pairs_random": pairs.get("eer_random"),
        "wd_skilled": by_k.get(eer_k, {}).get("skilled", {}).get("eer"),
        "wd_random": by_k.get(eer_k, {}).get("random", {}).get("eer"),
        "top1": by_k.get(top1_k, {}).get("identification", {}).get("top1"),
    }
    return {
        "transform": transform,
        "strength": strength,
        "refused": refused,
        "figures": figures,
        "pairs": pairs,
        "writer_dependent": dependent,
    }


@quiet_dependency_noise()
def robustness(
    checkpoint: str | Path,
    overrides: list[str] | None = None,
    references: Sequence[int] = DEFAULT_REFERENCES,
    seed: int = 0,
    out: str | Path | None = None,
    score: str | None = None,
    transforms: Sequence[str] | None = None,
    strengths: Sequence[str] | None = None,
    references_too: bool = False,
    tta: int = 1,
) -> dict[str, Any]:
    """The robustness table of a Siamese checkpoint on the data `overrides` describe (as for
    `writer_dependent`): clean, then each of `transforms` (default: all of
    `sigid.data.acquisition.TRANSFORMS`) at each of `strengths` (default: low, middle, high).
    `tta` > 1: every scan, clean or changed, embedded with test-time augmentation
    (`sigid.inference.tta`). With `out`, also ``evaluation.json``."""
    started = time.perf_counter()
    names, levels = check_names(transforms, strengths)
    references = check_references(references)
    loaded = load_splits(checkpoint, list(overrides or []), tta)
    verifier, splits = loaded.verifier, loaded.splits
    val, test = splits["val"], splits["test"]
    rule = protocol_rule(verifier, val, score)
    pairs = loaded.datamodule.pairs["test"]
    # the checkpoint's, plus any robustness option the overrides add (`evaluation_datamodule`)
    preprocessing = loaded.datamodule.preprocess

    def evaluate(refs: np.ndarray, questioned: np.ndarray) -> tuple[dict, Any]:
        split = EmbeddedSplit(test.samples, refs, questioned)
        found = evaluate_splits(verifier, val, split, references, seed, rule)
        return pair_figures(verifier, pairs, refs, questioned), found

    clean_pairs, clean_found = evaluate(test.embeddings, test.embeddings)
    # the K these writers allow (`evaluate_splits` leaves out the others, with the reason)
    evaluated = [entry["references"] for entry in clean_found.results]
    eer_k = max(evaluated)
    top1_k = GALLERY_REFERENCES if GALLERY_REFERENCES in evaluated else min(evaluated)
    rows = [_row(CLEAN, None, clean_pairs, clean_found.results, 0, eer_k, top1_k)]
    for name in names:
        for level in levels:
            began = time.perf_counter()
            images, refused = transformed_images(test, name, level, preprocessing, seed)
            changed = verifier.embed_prepared(images)
            refs = changed if references_too else test.embeddings
            found_pairs, found = evaluate(refs, changed)
            rows.append(_row(name, level, found_pairs, found.results, refused, eer_k, top1_k))
            rows[-1]["wall_s"] = round(time.perf_counter() - began, 2)
    clean = rows[0]["figures"]
    for row in rows:
        row["delta"] = {
            key: None if value is None or clean[key] is None else value - clean[key]
            for key, value in row["figures"].items()
        }
    result = {
        "protocol": "robustness",
        "checkpoint": str(loaded.checkpoint.resolve()),
        "data": list(overrides or []),
        "preprocessing": preprocessing,
        "training_split": str(loaded.record) if loaded.record else None,
        "seed": seed,
        "tta": verifier.tta,
        "score": rule.score,
        "score_rule": f"{SCORES[rule.score]} (K references per writer)",
        "transformed": "questioned and references" if references_too else "questioned",
        "references": references,
        "eer_references": eer_k,
        "top1_references": top1_k,
        "transforms": {n: TRANSFORMS[n].summary for n in names},
        "strengths": levels,
        "writers": {
            name: sorted({s.writer for s in split.samples}) for name, split in splits.items()
        },
        "columns": {
            "pairs_skilled": "EER, skilled forgeries, the fold's fixed test pairs",
            "pairs_random": "EER, random forgeries, the fold's fixed test pairs",
            "wd_skilled": f"writer-dependent EER, skilled forgeries, K={eer_k}",
            "wd_random": f"writer-dependent EER, random forgeries, K={eer_k}",
            "top1": f"gallery identification top-1 of the test writers, K={top1_k}",
        },
        "rows": rows,
        "skipped_references": clean_found.skipped,
        # seconds: all, and per row (reading, changing, preprocessing, embedding, scoring)
        "wall_s": round(time.perf_counter() - started, 2),
    }
    return write_outputs(result, out)
