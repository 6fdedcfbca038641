from collections import Counter
from pathlib import Path

import pytest
from drawing import sample_records

from sigid.data.layouts import DatasetError, Sample
from sigid.data.splits import samples_of, split_per_writer, split_writers


def test_per_writer_split_is_stratified_and_disjoint():
    parts = split_per_writer(sample_records(5, 24, forged=3), val=4, test=4, seed=0)
    for name, expected in (("train", 16), ("val", 4), ("test", 4)):
        assert set(Counter(s.writer for s in parts[name]).values()) == {expected}
    paths = [s.path for part in parts.values() for s in part]
    assert len(paths) == len(set(paths)) == 5 * 24
    assert all(s.genuine for part in parts.values() for s in part)


def test_per_writer_split_fractions_round_per_writer():
    parts = split_per_writer(sample_records(2, 88), val=0.15, test=0.15, seed=0)
    assert Counter(s.writer for s in parts["test"]) == {"w0": 13, "w1": 13}
    assert len(parts["train"]) == 2 * (88 - 26)


def test_per_writer_split_is_seeded():
    a = split_per_writer(sample_records(3, 10), 0.2, 0.2, seed=1)
    b = split_per_writer(sample_records(3, 10), 0.2, 0.2, seed=1)
    c = split_per_writer(sample_records(3, 10), 0.2, 0.2, seed=2)
    assert a == b
    assert a["test"] != c["test"]


def test_writer_with_too_few_images_for_the_split_is_named():
    samples = sample_records(2, 10) + [Sample(Path("tiny/1.png"), "tiny", True)] * 2
    with pytest.raises(DatasetError, match=r"writer 'tiny' has 2 genuine.*1 validation \+ 1 test"):
        split_per_writer(samples, val=0.1, test=0.1)


def test_writer_split_folds_cover_every_writer_once_as_test():
    writers = [f"w{i}" for i in range(11)]
    seen = []
    for fold in range(5):
        parts = split_writers(writers, folds=5, fold=fold, val=0.25, seed=3)
        train, val, test = (set(parts[k]) for k in ("train", "val", "test"))
        assert not (train & val or train & test or val & test)
        assert train | val | test == set(writers)
        seen += parts["test"]
    assert sorted(seen) == sorted(writers)


def test_writer_split_keeps_the_published_cedar_folds():
    """RESULTS.md's CEDAR folds (seed 0): folds 1-4 validate on the same 9 writers."""
    writers = [str(i) for i in range(1, 56)]
    same = ["12", "17", "20", "23", "31", "35", "37", "48", "54"]
    fold0 = split_writers(writers, folds=5, fold=0, val=0.2, seed=0)
    assert fold0["val"] == ["1", "3", "7", "22", "34", "38", "40", "49", "51"]
    assert fold0["test"] == ["4", "12", "17", "19", "20", "23", "31", "35", "37", "48", "54"]
    for fold in range(1, 5):
        assert split_writers(writers, folds=5, fold=fold, val=0.2, seed=0)["val"] == same


def test_rotated_validation_writers_differ_per_fold_and_come_from_the_next_fold():
    writers = [str(i) for i in range(1, 56)]
    plain = [split_writers(writers, 5, fold, 0.2, seed=0) for fold in range(5)]
    rotated = [split_writers(writers, 5, fold, 0.2, seed=0, rotate_val=True) for fold in range(5)]
    assert rotated[0] == plain[0]
    validated = []
    for fold, parts in enumerate(rotated):
        assert parts["test"] == plain[fold]["test"]
        assert len(parts["val"]) == 9 and set(parts["val"]) < set(plain[(fold + 1) % 5]["test"])
        train, val, test = (set(parts[k]) for k in ("train", "val", "test"))
        assert not (train & val or train & test or val & test)
        assert train | val | test == set(writers)
        validated += parts["val"]
    assert len(set(validated)) == 45


def test_writer_split_is_seeded_and_validates_its_arguments():
    writers = [str(i) for i in range(8)]
    assert split_writers(writers, 4, 1, 1, seed=0) == split_writers(writers, 4, 1, 1, seed=0)
    assert split_writers(writers, 4, 1, 1, seed=0) != split_writers(writers, 4, 1, 1, seed=5)
    with pytest.raises(DatasetError, match=r"fold must be in 0\.\.3"):
        split_writers(writers, folds=4, fold=4)
    with pytest.raises(DatasetError, match="3 writers cannot be split into 5 folds"):
        split_writers(writers[:3], folds=5)
    with pytest.raises(DatasetError, match="at least 1 training writer"):
        split_writers(writers[:4], folds=2, val=2)


def test_samples_of_keeps_genuine_and_forged_of_the_chosen_writers():
    samples = sample_records(3, 2, forged=1)
    chosen = samples_of(samples, ["w1"])
    assert {s.writer for s in chosen} == {"w1"} and len(chosen) == 3
