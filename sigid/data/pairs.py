"""Labelled same/different pairs for the Siamese network, each keeping its kind.

Target 1: two genuine signatures of one writer (kind ``genuine``). Target 0: a writer's genuine
signature against a skilled forgery of that writer (``skilled``) or against another writer's
genuine signature (``random``). Keeping the kind lets every metric be split by it.
"""

from __future__ import annotations

import itertools
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sigid.data.layouts import DatasetError, Sample, natural_key

log = logging.getLogger(__name__)

KINDS: tuple[str, ...] = ("genuine", "skilled", "random")
GENUINE, SKILLED, RANDOM = range(3)


@dataclass(frozen=True)
class Pair:
    """Indices `a`, `b` into the sample list the pairs were made from."""

    a: int
    b: int
    target: int
    kind: int


def make_pairs(
    samples: Sequence[Sample], n_pairs: int, skilled_fraction: float = 0.5, seed: int = 0
) -> list[Pair]:
    """About `n_pairs` balanced pairs: half positive, half negative split skilled/random.

    Writers take turns so each is equally represented; unique pairs are used before any repeats.
    Without forgeries in `samples`, all negatives are random.
    """
    if n_pairs < 2:
        raise DatasetError(f"need at least 2 pairs, got {n_pairs}")
    if not 0.0 <= skilled_fraction <= 1.0:
        raise DatasetError(f"skilled_fraction must be in [0, 1], got {skilled_fraction}")
    rng = np.random.default_rng(seed)
    genuine: dict[str, list[int]] = defaultdict(list)
    forged: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(samples):
        (genuine if s.genuine else forged)[s.writer].append(i)
    writers = sorted(genuine, key=natural_key)

    n_pos = n_pairs // 2
    n_neg = n_pairs - n_pos
    forged_writers = [w for w in writers if forged.get(w)]
    n_skilled = round(n_neg * skilled_fraction) if forged_writers else 0
    if len(writers) < 2 and forged_writers and n_skilled < n_neg:
        log.warning("one writer (%s): all negative pairs are skilled forgeries", writers[0])
        n_skilled = n_neg
    n_random = n_neg - n_skilled

    positives = {w: list(itertools.combinations(genuine[w], 2)) for w in writers}
    pairs = _round_robin(positives, n_pos, GENUINE, 1, rng, "positive (genuine-genuine)")
    skilled = {w: list(itertools.product(genuine[w], forged[w])) for w in forged_writers}
    pairs += _round_robin(skilled, n_skilled, SKILLED, 0, rng, "skilled-forgery")
    if n_random:
        pairs += _random_negatives(genuine, writers, n_random, rng)
    order = rng.permutation(len(pairs))
    return [pairs[i] for i in order]


def _round_robin(
    candidates: dict[str, list[tuple[int, int]]],
    count: int,
    kind: int,
    target: int,
    rng: np.random.Generator,
    what: str,
) -> list[Pair]:
    pools = {w: [c[i] for i in rng.permutation(len(c))] for w, c in candidates.items() if c}
    if count and not pools:
        raise DatasetError(f"no writer has enough images for a {what} pair")
    writers = list(pools)
    start = int(rng.integers(len(writers))) if writers else 0
    used: dict[str, int] = defaultdict(int)
    out = []
    for k in range(count):
        writer = writers[(start + k) % len(writers)]
        pool = pools[writer]
        a, b = pool[used[writer] % len(pool)]
        used[writer] += 1
        out.append(Pair(int(a), int(b), target, kind))
    return out


def _random_negatives(
    genuine: dict[str, list[int]], writers: list[str], count: int, rng: np.random.Generator
) -> list[Pair]:
    if len(writers) < 2:
        raise DatasetError(
            f"random-forgery pairs need genuine signatures of at least 2 writers, got "
            f"{len(writers)} ({', '.join(writers)}); use more writers or skilled_fraction: 1.0"
        )
    out = []
    for k in range(count):
        position = k % len(writers)
        writer = writers[position]
        other = writers[(position + 1 + int(rng.integers(len(writers) - 1))) % len(writers)]
        a = genuine[writer][int(rng.integers(len(genuine[writer])))]
        b = genuine[other][int(rng.integers(len(genuine[other])))]
        out.append(Pair(int(a), int(b), 0, RANDOM))
    return out
