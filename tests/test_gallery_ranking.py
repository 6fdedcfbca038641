"""Identification ranks all writers at once (`sigid.inference.gallery.ranking`), and exactly as
scoring each writer with `writer_score` did: the same candidates in the same order (ties in
enrolment order), the same scores, the same answer.

The galleries hold generated embeddings, written as a gallery file (`storage.write`, as another
program could) for a real Verifier of an untrained model; questioned signatures are given as
embeddings (`GivenEmbeddings`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from runs import given_embeddings_verifier

from sigid.inference.gallery import Candidate, Gallery, Identification, storage
from sigid.inference.gallery.manage import convert
from sigid.inference.gallery.ranking import References
from sigid.inference.gallery.scores import writer_score
from sigid.inference.verifier import Verifier

DIM = 8
# Gallery sizes shown: the ones at the tied writers' places among them.
TOP_K = [1, 2, 3, 4, 5, 8, 13, 34, 35, 36, 37, 50, None]


@pytest.fixture(scope="module")
def verifier() -> Verifier:
    return given_embeddings_verifier(DIM)


def _writers(shift: float = 0.0) -> dict[str, np.ndarray]:
    """36 writers with 1 to 6 references, in enrolment order; "twin-a" and "twin-b" have the
    same references (tied scores), "turned" has "w03"'s in another order (scores that may
    differ in the last place), "far-*" lie so far that their similarity is 0 (tied)."""
    rng = np.random.default_rng(7)
    writers = {}
    for n in range(30):
        centre = rng.normal(0, 1.0, DIM)
        writers[f"w{n:02d}"] = centre + rng.normal(0, 0.4, (1 + n % 6, DIM))
        if n == 10:
            writers["twin-a"] = rng.normal(0, 1.0, DIM) + rng.normal(0, 0.4, (4, DIM))
        if n == 20:
            writers["twin-b"] = writers["twin-a"]
            writers["turned"] = writers["w03"][::-1]
    for n in range(3):
        writers[f"far-{n}"] = rng.normal(1000, 1.0, (n + 1, DIM))
    return {w: (rows + shift).astype(np.float32) for w, rows in writers.items()}


def _queries(writers: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Near a few writers, near the twins, exactly a reference (distance ~0), and far off."""
    rng = np.random.default_rng(8)
    near = [writers[w].mean(0) + rng.normal(0, 0.4, DIM) for w in ("w00", "w07", "w29")]
    twins = writers["twin-a"].mean(0) + rng.normal(0, 0.2, DIM)
    on_a_reference = writers["w05"][2]
    between = (writers["w01"][0] + writers["w02"][0]) / 2
    far_off = writers["w00"][0] + 50
    return [q.astype(np.float32) for q in (*near, twins, on_a_reference, between, far_off)]


def _gallery(verifier: Verifier, writers: dict[str, np.ndarray], score: str, path: Path):
    sources = {w: ["<array>"] * len(rows) for w, rows in writers.items()}
    old = path.with_suffix(".npz")
    storage.write(old, verifier, score, writers, sources)
    if path != old:  # a store, which takes enrolments
        convert(old, path)
    return Gallery.load(path, verifier=verifier)


def _by_each_writer(gallery: Gallery, query: np.ndarray, top_k: int | None) -> Identification:
    """What `identify` answered when it scored every writer with `writer_score`."""
    verifier = gallery.verifier
    ranked = sorted(
        (
            Candidate(w, writer_score(verifier, query, gallery.references(w), "mean"))
            for w in gallery.writers
        ),
        key=lambda c: -c.score,
    )
    best = ranked[0].writer
    score = writer_score(verifier, query, gallery.references(best), gallery.score)
    found = best if score >= gallery.threshold else None
    return Identification(found, ranked[:top_k], gallery.threshold, score)


@pytest.mark.parametrize("shift", [0.0, 300.0], ids=["centred", "far-from-0"])
@pytest.mark.parametrize("score", ["mean", "normalized"])
def test_identify_answers_as_scoring_each_writer_did(verifier, score, shift, tmp_path):
    """Far from 0 (every embedding shifted by 300), the product form cancels badly: the bounds
    grow wide, more writers are scored, and the answer stays the same."""
    writers = _writers(shift)
    gallery = _gallery(verifier, writers, score, tmp_path / "g.npz")
    for query in _queries(writers):
        for top_k in TOP_K:
            expected = _by_each_writer(gallery, query, top_k)
            assert gallery.identify(query, top_k=top_k) == expected, (query, top_k)
    twins = gallery.identify(_queries(writers)[3], top_k=2).candidates
    assert [c.writer for c in twins] == ["twin-a", "twin-b"]
    assert twins[0].score == twins[1].score
    assert len(gallery.identify(_queries(writers)[-1]).candidates) == len(writers)


@pytest.mark.parametrize("shift", [0.0, 300.0], ids=["centred", "far-from-0"])
def test_mean_bounds_hold_each_writers_score(verifier, shift):
    writers = _writers(shift)
    table = References.gather(writers, DIM)
    for query in _queries(writers):
        low, high = table.mean_bounds(verifier, query)
        for n, rows in enumerate(writers.values()):
            assert low[n] <= writer_score(verifier, query, rows, "mean") <= high[n]


def test_bounds_are_tight_enough_to_score_few_writers(verifier):
    """Near 0 the bounds are a few parts in 10^4 wide, and identify scores a handful of the 36
    writers, not all of them."""
    writers = _writers()
    table = References.gather(writers, DIM)
    for query in _queries(writers)[:4]:
        low, high = table.mean_bounds(verifier, query)
        assert (high - low <= 1e-3 * np.maximum(high, 1e-6) + 1e-12).all()
        assert len(table.contenders(verifier, query, 3)) <= 5


def test_the_ranking_does_not_depend_on_the_enrolment_order(verifier):
    """Whatever order the writers were enrolled in, identify ranks them the same, ties apart
    (in enrolment order). Drawn by hypothesis (derandomised): repeated values make ties."""
    hypothesis = pytest.importorskip("hypothesis")  # not one of sigid's dependencies
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays

    values = st.floats(-3, 3, width=32)

    @hypothesis.settings(derandomize=True, max_examples=40, deadline=None, database=None)
    @hypothesis.given(counts=st.lists(st.integers(1, 4), min_size=2, max_size=7), data=st.data())
    def check(counts: list[int], data: st.DataObject) -> None:
        rows = data.draw(arrays(np.float32, (sum(counts), DIM), elements=values))
        query = data.draw(arrays(np.float32, (DIM,), elements=values))
        order = data.draw(st.permutations(range(len(counts))))
        ends = np.cumsum(counts)
        writers = {
            f"w{n}": rows[end - count : end]
            for n, (count, end) in enumerate(zip(counts, ends, strict=True))
        }
        names = list(writers)
        with tempfile.TemporaryDirectory() as folder:
            first = _gallery(verifier, writers, "mean", Path(folder) / "first.npz")
            again = {names[n]: writers[names[n]] for n in order}
            again = _gallery(verifier, again, "mean", Path(folder) / "again.npz")
        scores = {c.writer: c.score for c in first.identify(query, top_k=None).candidates}
        expected = sorted(again.writers, key=lambda w: -scores[w])  # ties in `again`'s order
        for k in range(1, len(counts) + 1):
            assert [c.writer for c in again.identify(query, top_k=k).candidates] == expected[:k]
            assert first.identify(query, top_k=k) == _by_each_writer(first, query, k)

    check()


def test_enrolling_keeps_the_matrix_in_step(verifier, tmp_path):
    """A writer enrolled after a ranking is ranked; references added to a writer count; the
    matrix is the one copy of the embeddings."""
    writers = _writers()
    gallery = _gallery(verifier, writers, "normalized", tmp_path / "g.sqlite")
    query = _queries(writers)[0]
    assert gallery.identify(query, top_k=1).candidates[0].writer == "w00"
    gallery.enroll("new", [query + 0.01])
    assert gallery.identify(query, top_k=1) == _by_each_writer(gallery, query, 1)
    assert gallery.identify(query, top_k=1).candidates[0].writer == "new"
    gallery.enroll("w07", [query - 0.01, query + 0.02])
    for top_k in (1, 3, None):
        assert gallery.identify(query, top_k=top_k) == _by_each_writer(gallery, query, top_k)
    matrix = gallery._references().matrix
    assert all(np.shares_memory(gallery._rows(w), matrix) for w in gallery.writers)
    assert len(matrix) == sum(len(rows) for rows in writers.values()) + 3
    for n in range(4):  # new writers go into the matrix's spare rows, identify after each
        gallery.enroll(f"more{n}", [query + 0.02 * (n + 2), query - 0.03 * (n + 1)])
        assert gallery.identify(query, top_k=3) == _by_each_writer(gallery, query, 3)
    again = Gallery.load(tmp_path / "g.sqlite", verifier=verifier)  # what the store holds
    assert again.writers == gallery.writers
    assert again.identify(query, top_k=None) == gallery.identify(query, top_k=None)


def test_a_file_with_writers_rows_interleaved_loads_each_writers_in_order(verifier, tmp_path):
    """`storage.write` groups each writer's rows; a file that interleaves them reads the same."""
    writers = _writers()
    path = tmp_path / "g.npz"
    gallery = _gallery(verifier, writers, "mean", path)
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    order = np.random.default_rng(0).permutation(len(arrays["embeddings"]))
    arrays["embeddings"] = arrays["embeddings"][order]
    arrays["writer_index"] = arrays["writer_index"][order]
    np.savez(tmp_path / "mixed.npz", **arrays)  # sources stay: all "<array>"
    mixed = Gallery.load(tmp_path / "mixed.npz", verifier=verifier)
    assert mixed.writers == gallery.writers
    for writer in writers:
        rows = arrays["embeddings"][arrays["writer_index"] == gallery.writers.index(writer)]
        np.testing.assert_array_equal(mixed.references(writer), rows)
    query = _queries(writers)[1]
    assert mixed.identify(query, top_k=None) == _by_each_writer(mixed, query, None)
