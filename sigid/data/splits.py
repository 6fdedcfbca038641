"""Seeded train/val/test splits: per writer for identification, over writers for verification.

A writer-disjoint split is what makes a verification result honest: the Siamese network is
meant for people it has never seen, so test writers must never appear in training.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np

from sigid.data.layouts import DatasetError, Sample, natural_key

SPLITS: tuple[str, ...] = ("train", "val", "test")


def _count(amount: float, total: int) -> int:
    """`amount` below 1 is a fraction of `total`, at least 1 when non-zero; otherwise a count."""
    if amount < 0:
        raise DatasetError(f"split sizes must be >= 0, got {amount}")
    if amount == 0:
        return 0
    if amount < 1:
        return max(1, round(amount * total))
    return int(amount)


def _rng(seed: int, name: str) -> np.random.Generator:
    # Seeding per writer keeps one writer's split independent of which other writers exist.
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def split_per_writer(
    samples: Sequence[Sample], val: float = 0.15, test: float = 0.15, seed: int = 0
) -> dict[str, list[Sample]]:
    """Stratified split of each writer's genuine signatures (forgeries are not used).

    `val` and `test` are fractions (< 1) or counts per writer (>= 1); e.g. CEDAR's 16/4/4 is
    ``val=4, test=4``.
    """
    by_writer: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        if sample.genuine:
            by_writer[sample.writer].append(sample)
    if not by_writer:
        raise DatasetError("no genuine signatures to split")
    out: dict[str, list[Sample]] = {name: [] for name in SPLITS}
    for writer in sorted(by_writer, key=natural_key):
        items = sorted(by_writer[writer], key=lambda s: natural_key(str(s.path)))
        n_val, n_test = _count(val, len(items)), _count(test, len(items))
        if len(items) - n_val - n_test < 1:
            raise DatasetError(
                f"writer {writer!r} has {len(items)} genuine image(s); the split asks for "
                f"{n_val} validation + {n_test} test + at least 1 training image"
            )
        order = _rng(seed, writer).permutation(len(items))
        shuffled = [items[i] for i in order]
        out["test"] += shuffled[:n_test]
        out["val"] += shuffled[n_test : n_test + n_val]
        out["train"] += shuffled[n_test + n_val :]
    return out


def split_writers(
    writers: Sequence[str],
    folds: int = 5,
    fold: int = 0,
    val: float = 0.2,
    seed: int = 0,
    rotate_val: bool = False,
) -> dict[str, list[str]]:
    """Writer-disjoint split: fold `fold` of `folds` is the test set, `val` of the rest validates.

    `val` is a fraction (< 1) or a count of the non-test writers. They are the first of the
    non-test writers in the seeded order: for every fold but fold 0 that is fold 0's writers, so
    without `rotate_val` folds 1.. all validate on the same writers. With `rotate_val` the
    order starts at the fold after the test fold, so each fold validates on other writers (fold
    0's split is the same either way).
    """
    writers = sorted(set(writers), key=natural_key)
    if folds < 2:
        raise DatasetError(f"folds must be >= 2, got {folds}")
    if not 0 <= fold < folds:
        raise DatasetError(f"fold must be in 0..{folds - 1}, got {fold}")
    if len(writers) < folds:
        raise DatasetError(f"{len(writers)} writers cannot be split into {folds} folds")
    order = [writers[i] for i in _rng(seed, "writers").permutation(len(writers))]
    chunks = np.array_split(np.arange(len(order)), folds)
    test = [order[i] for i in chunks[fold]]
    start = (fold + 1) % folds if rotate_val else 0
    following = [(start + k) % folds for k in range(folds)]
    rest = [order[i] for chunk in following if chunk != fold for i in chunks[chunk]]
    n_val = _count(val, len(rest))
    if len(rest) - n_val < 1:
        raise DatasetError(
            f"{len(writers)} writers: after {len(test)} test writers, {len(rest)} remain for "
            f"{n_val} validation + at least 1 training writer"
        )
    return {
        "train": sorted(rest[n_val:], key=natural_key),
        "val": sorted(rest[:n_val], key=natural_key),
        "test": sorted(test, key=natural_key),
    }


def samples_of(
    samples: Sequence[Sample], writers: Sequence[str], held_out: Sequence[str] = ()
) -> list[Sample]:
    """The samples (genuine and forged) that claim to be one of `writers`, less the forgeries
    whose known forger (a manifest's ``forger`` column) is a `held_out` writer: those are in that
    writer's hand, which a split before theirs must not see."""
    wanted, hidden = set(writers), set(held_out)
    return [s for s in samples if s.writer in wanted and s.forger not in hidden]


def claimed_by(
    samples: Sequence[Sample], people: Mapping[str, Sequence[str]]
) -> dict[str, list[str]]:
    """Per split of `people` (`split_writers` over `Sample.person`), the claimed writers whose
    person is in it: the writers themselves, or for chinese_names each writer's ten units."""
    out = {}
    for name, members in people.items():
        wanted = set(members)
        claimed = {s.writer for s in samples if s.person in wanted}
        out[name] = sorted(claimed, key=natural_key)
    return out
