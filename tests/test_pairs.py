from collections import Counter

import pytest
from drawing import sample_records

from sigid.data.layouts import DatasetError
from sigid.data.pairs import (
    GENUINE,
    KINDS,
    RANDOM,
    SKILLED,
    WriterBatchSampler,
    make_pairs,
    pairs_within,
)


def test_pairs_are_balanced_and_labelled_by_kind():
    samples = sample_records(4, 10, forged=5)
    pairs = make_pairs(samples, 1000, skilled_fraction=0.4, seed=0)
    kinds = Counter(KINDS[p.kind] for p in pairs)
    assert kinds == {"genuine": 500, "skilled": 200, "random": 300}
    for p in pairs:
        a, b = samples[p.a], samples[p.b]
        assert a.genuine
        if p.kind == GENUINE:
            assert p.target == 1 and b.genuine and a.writer == b.writer and p.a != p.b
        elif p.kind == SKILLED:
            assert p.target == 0 and not b.genuine and a.writer == b.writer
        else:
            assert p.kind == RANDOM
            assert p.target == 0 and b.genuine and a.writer != b.writer


def test_positive_pairs_are_unique_while_enough_exist_and_writers_take_turns():
    samples = sample_records(3, 10)  # 45 distinct positive pairs per writer
    positives = [p for p in make_pairs(samples, 200, seed=1) if p.target == 1]
    assert len({frozenset((p.a, p.b)) for p in positives}) == len(positives) == 100
    per_writer = Counter(samples[p.a].writer for p in positives)
    assert max(per_writer.values()) - min(per_writer.values()) <= 1


def test_without_forgeries_every_negative_is_random():
    pairs = make_pairs(sample_records(3, 5), 100, skilled_fraction=0.5)
    assert Counter(p.kind for p in pairs) == {GENUINE: 50, RANDOM: 50}


def test_pairs_are_seeded():
    samples = sample_records(3, 6, forged=2)
    assert make_pairs(samples, 60, seed=4) == make_pairs(samples, 60, seed=4)
    assert make_pairs(samples, 60, seed=4) != make_pairs(samples, 60, seed=5)


def test_random_negatives_need_two_writers_else_skilled_forgeries_stand_in():
    with pytest.raises(DatasetError, match="at least 2 writers"):
        make_pairs(sample_records(1, 5), 10, skilled_fraction=0.5)
    one_writer = make_pairs(sample_records(1, 5, forged=2), 10, skilled_fraction=0.5)
    assert Counter(p.kind for p in one_writer) == {GENUINE: 5, SKILLED: 5}


def test_pair_arguments_are_validated():
    with pytest.raises(DatasetError, match="skilled_fraction"):
        make_pairs(sample_records(2, 3), 10, skilled_fraction=1.5)
    with pytest.raises(DatasetError, match="positive"):
        make_pairs(sample_records(2, 1), 10)


def test_pairs_within_a_batch_are_every_labelled_pair_and_nothing_else():
    # w0: genuine 0, 1, forged 2; w1: genuine 3, 4, forged 5 (sample_records order)
    samples = sample_records(2, 2, forged=1)
    pairs = pairs_within(samples, range(6))
    by_kind = {k: {(p.a, p.b) for p in pairs if p.kind == k} for k in (GENUINE, SKILLED, RANDOM)}
    assert by_kind[GENUINE] == {(0, 1), (3, 4)}
    assert by_kind[SKILLED] == {(0, 2), (1, 2), (3, 5), (4, 5)}
    assert by_kind[RANDOM] == {(0, 3), (0, 4), (1, 3), (1, 4)}
    assert len(pairs) == 10  # no forgery-forgery, no forgery against another writer
    assert all(p.target == int(p.kind == GENUINE) for p in pairs)
    # the genuine signature always comes first in a skilled pair, whatever the batch order
    assert {(p.a, p.b) for p in pairs_within(samples, [2, 0])} == {(0, 2)}


def test_writer_batches_hold_distinct_writers_with_their_genuine_and_forged_signatures():
    samples = sample_records(10, 6, forged=5)
    sampler = WriterBatchSampler(samples, writers=4, genuine=3, forgeries=2, seed=0)
    assert len(sampler) == 5  # 60 genuine / (4 writers x 3)
    batches = list(sampler)
    assert len(batches) == 5
    seen = Counter()
    for batch in batches:
        writers = Counter(samples[i].writer for i in batch)
        assert len(writers) == 4 and set(writers.values()) == {5}
        for writer in writers:
            mine = [samples[i] for i in batch if samples[i].writer == writer]
            assert sum(s.genuine for s in mine) == 3 and len(set(batch)) == len(batch)
        seen.update(writers)
    assert max(seen.values()) - min(seen.values()) <= 1  # writers take turns
    assert list(sampler) != batches  # a new draw every epoch
    again = WriterBatchSampler(samples, writers=4, genuine=3, forgeries=2, seed=0)
    assert list(again) == batches  # but seeded


def test_writer_batches_are_validated():
    with pytest.raises(DatasetError, match="at least 2 writers"):
        WriterBatchSampler(sample_records(1, 5))
    with pytest.raises(DatasetError, match="genuine >= 2"):
        WriterBatchSampler(sample_records(3, 5), genuine=1)
