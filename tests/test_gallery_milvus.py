"""The Milvus store (`sigid.inference.gallery.milvus`) on a real milvus-lite engine, in this
process on a ``*.milvus.db`` file: what the `ReferenceStore` protocol promises, that a removed
writer is gone from the engine itself, and that a second process waits for the file (a
milvus-lite file opens in one process at a time) instead of failing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from runs import given_embeddings_verifier

pytest.importorskip(
    "pymilvus", reason="the milvus extra is not installed (pip install 'sigid[milvus]')"
)
pytest.importorskip(
    "milvus_lite", reason="milvus-lite is not installed (pip install 'sigid[milvus]')"
)

from drawing import draw_signature

from sigid.cli import main
from sigid.inference.gallery import Gallery
from sigid.inference.gallery.ann import references_wanted
from sigid.inference.gallery.milvus import MilvusStore, parse_location
from sigid.inference.gallery.store import ReferenceStore
from sigid.inference.verifier import Verifier

DIM = 8
META = {
    "checkpoint": "/models/siamese.ckpt",
    "fingerprint": "f" * 64,
    "preprocessing": {"mode": "normalized", "size": [8, 8]},
    "dim": DIM,
    "score": "mean",
}


def _refs(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1, (n, DIM)).astype(np.float32)


@pytest.fixture
def store(tmp_path: Path):
    store = MilvusStore(str(tmp_path / "g.milvus.db"))
    yield store
    store.close()


def test_round_trip(store: MilvusStore) -> None:
    assert isinstance(store, ReferenceStore)
    assert store.metadata() is None and store.counts() == {} and store.generation() == 0
    store.create(META)
    assert store.metadata() == META
    with pytest.raises(ValueError, match="recorded here already"):
        store.create(META)
    alice, bob, more = _refs(1, 3), _refs(2, 2) + 10, _refs(3, 2)
    store.add("alice", alice, ["/a/1.png", "/a/2.png", "/a/3.png"])
    store.add('bob "the" \\ builder', bob, ["<array>", "<array>"])
    store.add("alice", more, ["/a/4.png", "/a/5.png"])
    assert store.counts() == {"alice": 5, 'bob "the" \\ builder': 2}
    embeddings, sources = store.references("alice")
    np.testing.assert_array_equal(embeddings, np.concatenate([alice, more]))
    assert sources == ["/a/1.png", "/a/2.png", "/a/3.png", "/a/4.png", "/a/5.png"]
    writers, matrix, counts = store.matrix()
    assert writers == ["alice", 'bob "the" \\ builder'] and counts.tolist() == [5, 2]
    np.testing.assert_array_equal(matrix, np.concatenate([alice, more, bob]))
    assert store.nearest(bob[0] + 0.01, 1) == ['bob "the" \\ builder']
    assert store.nearest(alice[1], 3) == ["alice"]  # bob's lie 10 away in every dimension
    assert set(store.nearest(alice[1], 100)) == {"alice", 'bob "the" \\ builder'}


def test_remove_deletes_from_the_engine(store: MilvusStore, tmp_path: Path) -> None:
    store.create(META)
    store.add("alice", _refs(1, 3), ["<array>"] * 3)
    store.add("bob", _refs(2, 2), ["<array>"] * 2)
    before = store.generation()
    assert store.remove("alice") == 3
    assert store.generation() != before
    assert store.remove("alice") == 0 and store.remove("nobody") == 0
    # the engine itself answers nothing for the writer: a query, a search, the matrix
    assert store._client.query(store.collection, filter='writer == "alice"') == []
    assert store.nearest(_refs(1, 3)[0], 10) == ["bob"]
    assert store.counts() == {"bob": 2} and store.matrix()[0] == ["bob"]
    assert store.references("alice")[0].shape == (0, DIM)
    store.close()
    reopened = MilvusStore(str(tmp_path / "g.milvus.db"))  # and after the engine stopped
    try:
        assert reopened.counts() == {"bob": 2}
    finally:
        reopened.close()


def test_generation_changes_with_each_commit(store: MilvusStore) -> None:
    store.create(META)
    seen = [store.generation()]
    store.add("alice", _refs(1, 2), ["<array>"] * 2)
    seen.append(store.generation())
    store.add_many([("bob", _refs(2, 2), ["<array>"] * 2), ("carol", _refs(3, 1), ["<array>"])])
    seen.append(store.generation())
    store.remove("bob")
    seen.append(store.generation())
    assert len(set(seen)) == 4, seen
    assert store.counts() == {"alice": 2, "carol": 1}


def test_read_only_and_bad_input(store: MilvusStore, tmp_path: Path) -> None:
    store.create(META)
    with pytest.raises(ValueError, match=r"expected \(n, 8\) embeddings"):
        store.add("alice", np.zeros((2, 3), np.float32), ["<array>"] * 2)
    store.add("alice", _refs(1, 2), ["<array>"] * 2)
    store.close()
    reader = MilvusStore(str(tmp_path / "g.milvus.db"), read_only=True)
    try:
        assert reader.counts() == {"alice": 2}
        with pytest.raises(ValueError, match="opened read-only"):
            reader.add("bob", _refs(2, 1), ["<array>"])
        with pytest.raises(ValueError, match="opened read-only"):
            reader.remove("alice")
    finally:
        reader.close()
    with pytest.raises(ValueError, match="no such Milvus gallery file"):
        MilvusStore(str(tmp_path / "none.milvus.db"), read_only=True)


def test_locations() -> None:
    assert parse_location("milvus://db.example.org:19531/bank_a") == (
        "http://db.example.org:19531",
        "bank_a",
    )
    assert parse_location("milvus://localhost") == ("http://localhost:19530", "sigid")
    assert parse_location("g.milvus.db")[0].endswith("/g.milvus.db")
    with pytest.raises(ValueError, match="COLLECTION"):
        parse_location("milvus://host:1/a/b")
    with pytest.raises(ValueError, match=r"\*\.milvus\.db file or milvus://"):
        parse_location("gallery.sqlite")


ENROLL = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from sigid.inference.gallery.milvus import MilvusStore
    store = MilvusStore(sys.argv[1])
    store.add(sys.argv[2], np.full((2, 8), float(sys.argv[3]), np.float32), ["<array>"] * 2)
    time.sleep(float(sys.argv[4]))  # holding the file
    store.close()
    """
)


def test_processes_take_turns_on_a_lite_file(tmp_path: Path) -> None:
    """Three processes enrol at once: the file is opened by one at a time, the others wait for
    it (`LITE_WAIT_S`), and all three enrolments are there afterwards."""
    path = str(tmp_path / "g.milvus.db")
    first = MilvusStore(path)
    first.create(META)
    first.close()
    script = tmp_path / "enroll.py"
    script.write_text(ENROLL)
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), path, f"w{n}", str(n), "0.5"],
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(3)
    ]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    store = MilvusStore(path)
    try:
        assert sorted(store.counts()) == ["w0", "w1", "w2"]
    finally:
        store.close()


def test_a_held_file_is_refused_after_the_wait(tmp_path: Path, monkeypatch) -> None:
    """A process holding the file longer than the wait: the other is refused in one line that
    says why and what to use instead."""
    import sigid.inference.gallery.milvus as milvus

    path = str(tmp_path / "g.milvus.db")
    store = MilvusStore(path)
    store.create(META)
    store.close()
    script = tmp_path / "enroll.py"
    script.write_text(ENROLL)
    holder = subprocess.Popen([sys.executable, str(script), path, "w0", "0", "30"])
    try:
        deadline = time.monotonic() + 60
        while not milvus._held_elsewhere(path):  # the holder starts its engine
            assert holder.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        monkeypatch.setattr(milvus, "LITE_WAIT_S", 0.5)
        with pytest.raises(ValueError, match="another process has it open") as error:
            MilvusStore(path)
        assert "milvus://" in str(error.value) and "\n" not in str(error.value)
    finally:
        holder.kill()
        holder.wait()


# -- the Gallery API and the CLI on Milvus, against the SQLite store ---------------------------


@pytest.fixture(scope="module")
def verifier() -> Verifier:
    return given_embeddings_verifier(DIM)


def _writers() -> dict[str, np.ndarray]:
    """150 writers with 1 to 5 references around their own centres: 450 references, more than
    the first stage asks for (`ann.references_wanted`), so that the Milvus gallery ranks in two
    stages."""
    rng = np.random.default_rng(11)
    return {
        f"w{n:02d}": (rng.normal(0, 1, DIM) + rng.normal(0, 0.3, (1 + n % 5, DIM))).astype(
            np.float32
        )
        for n in range(150)
    }


def test_gallery_on_milvus_identifies_as_on_sqlite(verifier: Verifier, tmp_path: Path) -> None:
    """The same writers enrolled through `Gallery.enroll` in a milvus-lite file and in an SQLite
    store: the same writers, references, rankings, scores and answers (the Milvus one ranks in
    two stages: the engine's nearest references, then the rule); a removed writer is not
    found again."""
    writers = _writers()
    galleries = {}
    for name in ("g.sqlite", "g.milvus.db"):
        gallery = Gallery(verifier, score="normalized")
        for writer, rows in writers.items():
            gallery.enroll(writer, list(rows))
        gallery.save(tmp_path / name)
        gallery.close()
        galleries[name] = Gallery.load(tmp_path / name, verifier=verifier)
    sqlite, milvus = galleries["g.sqlite"], galleries["g.milvus.db"]
    assert isinstance(milvus._store, MilvusStore)
    assert references_wanted(3, 150) < 450
    assert milvus.writers == sqlite.writers == list(writers)
    np.testing.assert_array_equal(milvus.references("w07"), writers["w07"])
    rng = np.random.default_rng(12)
    queries = [rows.mean(0) + rng.normal(0, 0.3, DIM) for rows in writers.values()]
    for query in queries:
        for top_k in (1, 3, 50, None):
            assert milvus.identify(query, top_k=top_k) == sqlite.identify(query, top_k=top_k)
    # far from everyone: unknown to both; every writer scores 0, and the tie is broken among
    # the candidates the engine found, not among all writers (the one difference)
    far = np.full(DIM, 40.0)
    assert milvus.identify(far, top_k=3).writer is sqlite.identify(far, top_k=3).writer is None
    assert milvus.identify(queries[7], top_k=1).writer == "w07"
    for gallery in (milvus, sqlite):
        assert gallery.remove("w07") == 3
    assert milvus.identify(queries[7], top_k=3) == sqlite.identify(queries[7], top_k=3)
    assert "w07" not in milvus and milvus.identify(queries[7], top_k=1).writer != "w07"
    for gallery in (milvus, sqlite):
        gallery.close()


@pytest.fixture
def images(tmp_path) -> Path:
    folder = tmp_path / "images"
    for writer in range(1, 5):
        (folder / f"w{writer}").mkdir(parents=True)
        for n in range(3):
            draw_signature(writer, n).save(folder / f"w{writer}" / f"s{n}.png")
    return folder


def test_sigid_commands_on_a_milvus_lite_gallery(siamese_ckpt, images, tmp_path, capsys) -> None:
    """`sigid enroll` / `identify` / `gallery list|info|remove|convert` with a ``.milvus.db``
    gallery answer as with an SQLite one."""
    answers = []
    queries = [str(images / f"w{w}" / "s2.png") for w in (1, 2, 3, 4)]
    for name in ("people.sqlite", "people.milvus.db"):
        gallery = tmp_path / name
        for writer in (1, 2, 3):
            argv = [
                "enroll",
                "--gallery",
                gallery,
                "--ckpt",
                siamese_ckpt,
                "--writer",
                f"w{writer}",
            ]
            files = sorted((images / f"w{writer}").iterdir())[:2]
            assert main([str(a) for a in [*argv, *files]]) == 0
        capsys.readouterr()
        assert main(["identify", "--gallery", str(gallery), *queries, "--top-k", "3"]) == 0
        answers.append(capsys.readouterr().out.replace(str(gallery), "G"))
        assert main(["gallery", "list", str(gallery), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["writers"] == {"w1": 2, "w2": 2, "w3": 2}
    assert answers[0] == answers[1]
    milvus = str(tmp_path / "people.milvus.db")
    assert main(["gallery", "info", milvus, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["backend"] == "milvus"
    assert main(["gallery", "remove", milvus, "--writer", "w2"]) == 0
    capsys.readouterr()
    assert main(["gallery", "list", milvus, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["writers"] == {"w1": 2, "w3": 2}
    copy = str(tmp_path / "copy.milvus.db")
    assert main(["gallery", "convert", str(tmp_path / "people.sqlite"), copy]) == 0
    capsys.readouterr()
    assert main(["identify", "--gallery", copy, *queries, "--top-k", "3"]) == 0
    assert capsys.readouterr().out.replace(copy, "G") == answers[0]
