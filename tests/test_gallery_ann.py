"""Two-stage identification: `ranking.rescore` scores the candidates a first stage found exactly
as the gallery's rule does, and `ann.ApproximateIndex` (faiss HNSW) finds the writers the exact
ranking puts first on a gallery of well-separated writers.

Embeddings are generated; the verifier is a real untrained Siamese module whose "images" are
their own embeddings (as in tests/test_gallery_ranking.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from sigid.inference.gallery.ranking import References, rescore
from sigid.inference.gallery.scores import writer_score
from sigid.inference.verifier import Verifier
from sigid.tasks import SiameseModule

DIM = 16


@pytest.fixture(scope="module")
def verifier() -> Verifier:
    """similarity = sigmoid(2.5 - 1.3 distance)."""
    module = SiameseModule(
        preprocessing={"mode": "normalized", "size": [8, 8]},
        embedding="pixel", image_size=[8, 8], dim=DIM, head={"scale": 1.3, "offset": 2.5},
    )  # fmt: skip
    return Verifier(module)


def _table(writers: int = 300, seed: int = 3) -> tuple[References, np.ndarray]:
    """`writers` writers with 1 to 5 references each, 0.2 around centres ~3 apart; and the
    centres."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1.5, (writers, DIM)).astype(np.float32)
    counts = [1 + n % 5 for n in range(writers)]
    rows = [c + rng.normal(0, 0.2, (k, DIM)) for c, k in zip(centres, counts, strict=True)]
    names = [f"w{n:03d}" for n in range(writers)]
    return References(names, np.concatenate(rows).astype(np.float32), counts), centres


def _exact(verifier: Verifier, table: References, query: np.ndarray) -> list[tuple[str, float]]:
    """Every writer by the rule, best first, ties in enrolment order."""
    rows = table.rows()
    scored = [(w, writer_score(verifier, query, rows[w], "mean")) for w in table.writers]
    return sorted(scored, key=lambda pair: -pair[1])


def test_rescore_scores_the_candidates_by_the_rule(verifier: Verifier) -> None:
    table, centres = _table(40)
    rows = table.rows()
    query = centres[7] + 0.1
    exact = _exact(verifier, table, query)
    # all writers as candidates, in any order, repeated: the exact ranking
    shuffled = list(np.random.default_rng(0).permutation(table.writers)) * 2
    assert rescore(verifier, rows, table.writers, query) == exact
    assert [w for w, _ in rescore(verifier, rows, shuffled, query, 5)] == [w for w, _ in exact[:5]]
    # a few candidates: those, scored as the rule scores them, best first
    few = ["w030", "w007", "w012"]
    got = rescore(verifier, rows, few, query)
    assert got == sorted(
        [(w, writer_score(verifier, query, rows[w], "mean")) for w in few], key=lambda p: -p[1]
    )
    assert got[0][0] == "w007"
    assert rescore(verifier, rows, few, query, top_k=1) == got[:1]
    assert rescore(verifier, rows, [], query, top_k=3) == []


def test_rescore_keeps_the_given_order_for_ties(verifier: Verifier) -> None:
    same = np.ones((2, DIM), np.float32)
    rows = {"b": same, "a": same, "c": same + 5}
    query = np.zeros(DIM, np.float32)
    assert [w for w, _ in rescore(verifier, rows, ["b", "c", "a"], query)] == ["b", "a", "c"]
    assert [w for w, _ in rescore(verifier, rows, ["a", "b"], query)] == ["a", "b"]


def test_rescore_refuses_a_candidate_without_references(verifier: Verifier) -> None:
    with pytest.raises(ValueError, match=r"candidate writers \['gone'\] have no references"):
        rescore(verifier, {"a": np.ones((1, DIM), np.float32)}, ["a", "gone"], np.zeros(DIM))


def test_faiss_two_stage_finds_the_exact_top_1(verifier: Verifier) -> None:
    """Queries near each of 300 well-separated writers: the index's writers, re-scored, give
    the exact top-1 and the exact scores; its candidates are in enrolment order."""
    pytest.importorskip(
        "faiss", reason="the faiss extra is not installed (pip install 'sigid[faiss]')"
    )
    from sigid.inference.gallery.ann import ApproximateIndex

    table, centres = _table()
    index = ApproximateIndex(table)
    rng = np.random.default_rng(5)
    for number in range(0, 300, 7):
        query = (centres[number] + rng.normal(0, 0.2, DIM)).astype(np.float32)
        exact = _exact(verifier, table, query)
        ranked = index.ranked(verifier, query, top_k=3)
        assert ranked[0] == exact[0] and ranked[0][0] == table.writers[number]
        scores = dict(exact)
        assert all(scores[w] == s for w, s in ranked)
        found = index.candidates(query, 8)
        assert number in found and (np.diff(found) > 0).all()


def test_faiss_when_k_exceeds_the_writers(verifier: Verifier) -> None:
    """Asking for more writers (and references) than there are: every writer, ranked as the
    exact ranking does; an empty table has no candidates."""
    pytest.importorskip(
        "faiss", reason="the faiss extra is not installed (pip install 'sigid[faiss]')"
    )
    from sigid.inference.gallery.ann import ApproximateIndex, references_wanted

    table, centres = _table(6)
    index = ApproximateIndex(table)
    assert references_wanted(10, 6) >= len(table.matrix)
    assert index.candidates(centres[2], 10_000).tolist() == list(range(6))
    for top_k in (6, 10, None):
        assert index.ranked(verifier, centres[2], top_k) == _exact(verifier, table, centres[2])
    empty = ApproximateIndex(References([], np.zeros((0, DIM), np.float32), []))
    assert empty.candidates(centres[0], 5).tolist() == []
    assert empty.ranked(verifier, centres[0], 3) == []


def test_an_index_of_an_open_gallery(verifier: Verifier, tmp_path) -> None:
    """`ApproximateIndex.of` a Gallery (SQLite store) ranks its writers as the gallery does."""
    pytest.importorskip(
        "faiss", reason="the faiss extra is not installed (pip install 'sigid[faiss]')"
    )
    from sigid.bench.gallery import GivenEmbeddings
    from sigid.inference.gallery import Gallery
    from sigid.inference.gallery.ann import ApproximateIndex

    given = GivenEmbeddings(verifier.module)
    table, centres = _table(30)
    gallery = Gallery(given, score="mean")
    for writer, rows in table.rows().items():
        gallery.enroll(writer, list(rows))
    gallery.save(tmp_path / "g.sqlite")
    index = ApproximateIndex.of(gallery)
    for number in (0, 11, 29):
        expected = gallery.identify(centres[number], top_k=3)
        ranked = index.ranked(given, centres[number], top_k=3)
        assert [(c.writer, c.score) for c in expected.candidates] == ranked
    gallery.close()
