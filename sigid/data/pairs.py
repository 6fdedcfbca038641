"""Labelled same/different pairs for the Siamese network, each keeping its kind.

Target 1: two genuine signatures of one writer (kind ``genuine``). Target 0: a writer's genuine
signature against a skilled forgery of that writer (``skilled``) or against another writer's
genuine signature (``random``). Keeping the kind lets every metric be split by it.

Where samples carry the ``text`` they write (chinese_names' (writer, name) units), a unit's
forgeries are the other writers' renderings of the same text: those pairs are of kind
``skilled`` (simple forgeries: the forger knew the name, not the signature), and every other pair
of two units is ``random``.
"""

from __future__ import annotations

import itertools
import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from sigid.data.layouts import DatasetError, Sample, natural_key
from sigid.data.sharding import EpochBatches

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
    for writer, indices in same_text_forgeries(samples).items():
        forged[writer] += indices
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


def same_text_forgeries(samples: Sequence[Sample]) -> dict[str, list[int]]:
    """Per claimed writer whose samples carry a ``text``: the genuine samples of the same text
    by other people (`Sample.person`), its forgeries. Empty where no sample has a text."""
    by_text: dict[str, list[int]] = defaultdict(list)
    units: dict[str, Sample] = {}
    for i, s in enumerate(samples):
        if s.genuine and s.text is not None:
            by_text[s.text].append(i)
            units.setdefault(s.writer, s)
    return {
        writer: [i for i in by_text[unit.text] if samples[i].person != unit.person]
        for writer, unit in units.items()
        if unit.text is not None
    }


def _same_text_other_person(a: Sample, b: Sample) -> bool:
    return a.text is not None and a.text == b.text and a.person != b.person


def by_image(pairs: Sequence[Pair]) -> list[Pair]:
    """`pairs` ordered by their first image, then their second: for scoring fixed pairs, whose
    order no metric reads. Consecutive pairs then share images (a writer's genuine signatures
    against each other, its forgeries, a few other writers'), and a batch of them, which embeds
    each distinct image once (`sigid.data.datamodules.PairCollate`), embeds about half as many
    images as a batch in `make_pairs`' interleaved order (CEDAR fold 0's 1000 validation pairs
    in batches of 32: 953 images instead of 1795)."""
    return sorted(pairs, key=lambda p: (p.a, p.b))


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


def pairs_within(samples: Sequence[Sample], indices: Sequence[int]) -> list[Pair]:
    """Every labelled pair among `indices` (into `samples`): all of a batch's pairs at once.

    Two genuine of one writer: ``genuine``; a writer's genuine and a forgery of that writer, or
    two people's renderings of one text: ``skilled``; genuine of two writers: ``random``.
    Forgery-forgery and forgery against
    another writer's genuine say nothing a verifier is asked, and are left out.
    """
    out = []
    for i, a in enumerate(indices):
        for b in indices[i + 1 :]:
            sa, sb = samples[a], samples[b]
            if sa.genuine and sb.genuine:
                same = sa.writer == sb.writer
                kind = SKILLED if _same_text_other_person(sa, sb) else RANDOM
                out.append(Pair(int(a), int(b), int(same), GENUINE if same else kind))
            elif sa.writer == sb.writer and sa.genuine != sb.genuine:
                g, f = (a, b) if sa.genuine else (b, a)
                out.append(Pair(int(g), int(f), 0, SKILLED))
    return out


class WriterBatchSampler(EpochBatches):
    """Batches of `writers` writers x (`genuine` genuine + `forgeries` forged) sample indices.

    Every pair inside such a batch is a training pair (`pairs_within`): a batch of 64 images
    gives ~600 pairs, the hard skilled and random negatives among them, for the cost of
    embedding 64 images. Writers take turns in a fresh random order each epoch; one epoch has
    `batches` batches (default: enough to show each genuine signature about once). Epoch `e`'s
    batches depend on (`seed`, `e`) alone; `epoch` is the first one drawn (a resumed run's).

    With `num_replicas` DDP processes, rank `rank` takes batches ``rank, rank + n, ...`` of the
    one-process epoch (`sigid.data.sharding`); when `batches` is not a multiple of the ranks, the
    epoch is padded by drawing on from the same stream, so nothing repeats and the first
    `batches` are the one-process epoch's.

    A unit of chinese_names draws its forgeries from the other writers' renderings of its name
    (`same_text_forgeries`).
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        writers: int = 8,
        genuine: int = 4,
        forgeries: int = 4,
        batches: int | None = None,
        seed: int = 0,
        epoch: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        super().__init__(len(samples), num_replicas=num_replicas, rank=rank, seed=seed, epoch=epoch)
        self.genuine_of: dict[str, list[int]] = defaultdict(list)
        self.forged_of: dict[str, list[int]] = defaultdict(list)
        for i, s in enumerate(samples):
            (self.genuine_of if s.genuine else self.forged_of)[s.writer].append(i)
        for writer, indices in same_text_forgeries(samples).items():
            self.forged_of[writer] += indices
        self.writers = sorted(
            (w for w, g in self.genuine_of.items() if len(g) >= 2), key=natural_key
        )
        if len(self.writers) < 2:
            raise DatasetError(
                f"batches of writers need at least 2 writers with 2 genuine signatures, got "
                f"{len(self.writers)}"
            )
        if writers < 2 or genuine < 2 or forgeries < 0:
            raise DatasetError(
                f"a writer batch needs writers >= 2, genuine >= 2, forgeries >= 0; got "
                f"writers={writers}, genuine={genuine}, forgeries={forgeries}"
            )
        self.per_batch = min(writers, len(self.writers))
        self.n_genuine, self.n_forged = genuine, forgeries
        n_genuine = sum(len(self.genuine_of[w]) for w in self.writers)
        self.batches = batches or max(1, round(n_genuine / (self.per_batch * genuine)))

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        return list(self._draw_batches(epoch, self.steps * self.num_replicas))

    def _draw_batches(self, epoch: int, count: int) -> Iterator[list[int]]:
        rng = np.random.default_rng((self.seed, epoch))
        order: list[str] = []
        for _ in range(count):
            if len(order) < 2 * self.per_batch:
                order += [self.writers[i] for i in rng.permutation(len(self.writers))]
            chosen: list[str] = []
            for writer in order:  # the next distinct writers in turn
                if writer not in chosen:
                    chosen.append(writer)
                if len(chosen) == self.per_batch:
                    break
            for writer in chosen:
                order.remove(writer)
            batch: list[int] = []
            for writer in chosen:
                batch += _draw(rng, self.genuine_of[writer], self.n_genuine)
                batch += _draw(rng, self.forged_of.get(writer, []), self.n_forged)
            # a text's forgeries are other units' genuine: one image drawn twice is no pair
            yield list(dict.fromkeys(batch))


def _draw(rng: np.random.Generator, pool: list[int], count: int) -> list[int]:
    """`count` distinct items of `pool` (all of it when it is smaller)."""
    if count >= len(pool):
        return list(pool)
    return [pool[i] for i in rng.choice(len(pool), size=count, replace=False)]
