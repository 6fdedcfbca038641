"""The gallery store: many processes enrolling at once, a killed enrolment, readers during
writes, removal that leaves no bytes behind, and the `sigid gallery` commands.

Processes are real: `sigid enroll` with the tiny Siamese checkpoint on drawn signatures, and
small Python children that write or read the store directly (no torch to import: fast, so a
kill lands at many moments).
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from drawing import draw_signature

from sigid.cli import main
from sigid.inference.gallery import Gallery
from sigid.inference.gallery.sqlite import SqliteStore
from sigid.inference.gallery.store import ReferenceStore, open_store

DIM = 8
RECORD = {
    "checkpoint": None,
    "fingerprint": "f" * 64,
    "preprocessing": {"mode": "normalized", "size": [32, 64]},
    "dim": DIM,
    "score": "mean",
}
# A child that enrols writer after writer, each `1 + n % 4` references that its name determines
# (`expected`), into the store at argv[1]; some get more in a second call; some are removed.
WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from sigid.inference.gallery.sqlite import SqliteStore

    store = SqliteStore(sys.argv[1])
    print("ready", flush=True)
    for n in range(int(sys.argv[2]), 10**6):
        rows = np.random.default_rng(n).normal(size=(1 + n % 4, DIM)).astype(np.float32)
        store.add(f"w{n}", rows, [f"/images/w{n}/{k}.png" for k in range(len(rows))])
        if n % 5 == 0:
            store.add(f"w{n}", rows[:1] + 1, [f"/images/w{n}/more.png"])
        if n % 7 == 3:
            store.remove(f"w{n - 1}")
        print(n, flush=True)
    """
).replace("DIM", str(DIM))
# A child that reads the store at argv[1] over and over, and prints every writer it saw whose
# references are not whole (count, rows and sources disagree, or not what was enrolled).
READER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from sigid.inference.gallery.sqlite import SqliteStore

    store = SqliteStore(sys.argv[1], read_only=True)
    seen = 0
    while seen < int(sys.argv[2]):
        writers, matrix, counts = store.matrix()
        starts = np.cumsum(counts) - counts
        for writer, start, count in zip(writers, starts, counts):
            n = int(writer[1:])
            rows = np.random.default_rng(n).normal(size=(1 + n % 4, DIM)).astype(np.float32)
            if n % 5 == 0 and count != len(rows):  # its second call is another enrolment
                rows = np.concatenate([rows, rows[:1] + 1])
            if count != len(rows) or not (matrix[start:start + count] == rows).all():
                print("torn", writer, count, len(rows), flush=True)
        seen = len(writers)
    print("done", flush=True)
    """
).replace("DIM", str(DIM))


def _expected(n: int) -> np.ndarray:
    """The references the WRITER child enrols for writer `n`, as it enrols them."""
    rows = np.random.default_rng(n).normal(size=(1 + n % 4, DIM)).astype(np.float32)
    return np.concatenate([rows, rows[:1] + 1]) if n % 5 == 0 else rows


def _new_store(path: Path) -> SqliteStore:
    store = SqliteStore(path)
    store.create(RECORD)
    return store


def _child(code: str, *args: object) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _whole(store: ReferenceStore) -> dict[str, int]:
    """Each writer of a WRITER child's store holds exactly what its calls enrolled (the second
    call of a writer n % 5 == 0 whole or not at all); returns the counts."""
    counts = store.counts()
    for writer, count in counts.items():
        n = int(writer[1:])
        rows, sources = store.references(writer)
        expected = _expected(n)
        if n % 5 == 0 and count == len(expected) - 1:  # killed between its two calls
            expected = expected[:-1]
        assert count == len(rows) == len(sources) == len(expected), writer
        np.testing.assert_array_equal(rows, expected)
    return counts


def test_a_killed_enrolment_leaves_each_writer_whole(tmp_path):
    """SIGKILL at random moments of a process that enrols (and removes) in a loop: the store
    always opens, and holds each enrolment whole or not at all."""
    path = tmp_path / "g.sqlite"
    _new_store(path).close()
    rng = np.random.default_rng(2024)
    start, trials = 0, 24
    for _ in range(trials):
        child = _child(WRITER, path, start)
        assert child.stdout.readline() == "ready\n"  # type: ignore[union-attr]
        first = child.stdout.readline()  # type: ignore[union-attr]
        # into the loop, however loaded the machine: after its first writer, at a random
        # moment of the next few (about 20 writers a second on an idle machine)
        time.sleep(float(rng.uniform(0, 0.3)))
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate()
        assert child.returncode == -signal.SIGKILL
        done = [int(line) for line in (first + out).split()]
        store = SqliteStore(path)
        counts = _whole(store)
        # every writer the child said it finished is there, unless removed after (a writer
        # that it did not say it finished may have removed the one before)
        for n in done:
            if (n + 1) % 7 == 3 and n == done[-1]:
                continue
            assert (f"w{n}" in counts) != ((n + 1) % 7 == 3 and n + 1 in done)
        start = (done[-1] + 2) if done else start + 1000  # writers new to the next child
        store.close()


def test_readers_never_see_half_an_enrolment(tmp_path):
    path = tmp_path / "g.sqlite"
    _new_store(path).close()
    reader = _child(READER, path, 150)
    writer = _child(WRITER, path, 0)
    out, err = reader.communicate(timeout=120)
    writer.kill()
    writer.communicate()
    assert reader.returncode == 0, err
    assert out.splitlines()[-1] == "done" and "torn" not in out


def test_a_removed_writer_leaves_no_bytes_in_the_store_files(tmp_path):
    """`remove` deletes the rows, and SQLite's secure_delete overwrites them: neither the
    embeddings nor the sources nor the name are left in the database or its log."""
    path = tmp_path / "g.sqlite"
    store = _new_store(path)
    rng = np.random.default_rng(0)
    secret = rng.normal(size=(3, DIM)).astype(np.float32)
    for n in range(30):
        store.add(f"other{n:02d}", rng.normal(size=(2, DIM)), ["<array>", "<array>"])
        if n == 10:
            store.add("Zoë Secret", secret, [f"/scans/zoe-secret-{k}.png" for k in range(3)])
    traces = [row.tobytes() for row in secret] + ["Zoë Secret".encode(), b"zoe-secret-"]
    files = [path, Path(f"{path}-wal")]

    def found() -> list[bytes]:
        data = b"".join(f.read_bytes() for f in files if f.exists())
        return [trace for trace in traces if trace in data]

    assert found() == traces  # written where a test can see them
    assert store.remove("Zoë Secret") == 3
    assert found() == []
    assert "Zoë Secret" not in store.counts() and len(store.counts()) == 30
    store.close()
    assert found() == []


def test_sigid_gallery_remove_says_so_and_the_bytes_are_gone(tmp_path, capsys):
    path = tmp_path / "g.sqlite"
    store = _new_store(path)
    secret = np.arange(DIM * 2, dtype=np.float32).reshape(2, DIM) + 0.5
    store.add("ann", secret, ["/a/1.png", "/a/2.png"])
    store.add("bob", secret + 100, ["/b/1.png", "/b/2.png"])
    store.close()
    assert main(["gallery", "remove", str(path), "--writer", "ann"]) == 0
    out = capsys.readouterr().out
    assert out == (
        f"removed writer ann from {path}: 2 reference(s) deleted from the store itself (their "
        "bytes overwritten)\n"
    )
    assert secret[0].tobytes() not in path.read_bytes()
    assert main(["gallery", "list", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"gallery": str(path), "writers": {"bob": 2}}
    assert main(["gallery", "remove", str(path), "--writer", "ann", "--json"]) == 1
    err = capsys.readouterr().err
    assert err == f"sigid gallery: error: writer 'ann' is not enrolled in {path}; nothing removed\n"


def test_sigid_gallery_info_list_and_convert(tmp_path, capsys):
    path = tmp_path / "g.sqlite"
    store = _new_store(path)
    store.add("ann", np.ones((2, DIM)), ["/a/1.png", "/a/2.png"])
    store.add("bob", np.zeros((1, DIM)), ["<array>"])
    store.close()
    assert main(["gallery", "info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["writers"] == 2 and info["references"] == 3 and info["backend"] == "sqlite"
    assert info["dim"] == DIM and info["score"] == "mean" and info["read_only"] is False
    assert main(["gallery", "list", str(path)]) == 0
    assert capsys.readouterr().out == "ann\t2\nbob\t1\n"
    copy = tmp_path / "copy.sqlite"
    assert main(["gallery", "convert", str(path), str(copy), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["writers"] == 2
    again = open_store(copy)
    assert again.counts() == {"ann": 2, "bob": 1}
    assert again.references("ann")[1] == ["/a/1.png", "/a/2.png"]
    assert main(["gallery", "convert", str(path), str(copy)]) == 1
    err = capsys.readouterr().err
    assert err == f"sigid gallery: error: {copy}: exists already; convert into a new file\n"
    for bad, reason in (
        (tmp_path / "none.sqlite", "no such gallery file"),
        (tmp_path, "not a gallery store (it is a folder)"),
    ):
        assert main(["gallery", "info", str(bad)]) == 1
        assert capsys.readouterr().err == f"sigid gallery: error: {bad}: {reason}\n"
    text = tmp_path / "notes.sqlite"
    text.write_text("writer,file\n")
    assert main(["gallery", "list", str(text)]) == 1
    err = capsys.readouterr().err
    assert (
        err == f"sigid gallery: error: {text}: not a sigid gallery store (not an SQLite database)\n"
    )


@pytest.fixture
def images(tmp_path) -> Path:
    folder = tmp_path / "images"
    for writer in range(1, 11):
        (folder / f"w{writer}").mkdir(parents=True)
        for n in range(3):
            draw_signature(writer, n).save(folder / f"w{writer}" / f"s{n}.png")
    return folder


@pytest.mark.slow
def test_eight_sigid_enroll_processes_at_once_all_enrol(siamese_ckpt, images, tmp_path, capsys):
    """The acceptance test: 8 `sigid enroll` processes for 8 writers started at once on one
    gallery all succeed; two more at the same moment give one image to two writers: one of
    them is refused (a reference belongs to one writer, checked inside the transaction)."""
    gallery = tmp_path / "people.sqlite"
    first = ["enroll", "--gallery", gallery, "--ckpt", siamese_ckpt, "--writer", "w1"]
    assert main([str(a) for a in [*first, *sorted((images / "w1").iterdir())]]) == 0
    capsys.readouterr()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    commands = [
        ["--writer", f"w{n}", *sorted((images / f"w{n}").iterdir())] for n in range(2, 10)
    ] + [["--writer", name, images / "w10" / "s0.png"] for name in ("x1", "x2")]
    commands = [[str(arg) for arg in command] for command in commands]
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sigid.cli",
                "enroll",
                "--gallery",
                str(gallery),
                *map(str, command),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for command in commands
    ]
    done = [(child.wait(timeout=300), *child.communicate()) for child in children]
    assert [code for code, _, _ in done[:8]] == [0] * 8, [err for _, _, err in done]
    assert sorted(code for code, _, _ in done[8:]) == [0, 1]
    refused = next(err for code, _, err in done[8:] if code)
    assert "already a reference of writer 'x" in refused and "one writer's" in refused
    assert main(["gallery", "list", str(gallery), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["writers"]
    enrolled = {w: c for w, c in listed.items() if not w.startswith("x")}
    assert enrolled == {f"w{n}": 3 for n in range(1, 10)}
    assert len(listed) == 10  # one of x1, x2


def test_an_npz_gallery_is_read_only_and_converts_to_the_same_answers(
    siamese_ckpt, images, tmp_path, capsys
):
    """A gallery file as sigid wrote it before the store (`storage.write`) identifies as a
    store converted from it does; enrolling into it says how to convert."""
    gallery = tmp_path / "people.sqlite"
    for writer in (1, 2, 3):
        argv = ["enroll", "--gallery", gallery, "--ckpt", siamese_ckpt, "--writer", f"w{writer}"]
        assert main([str(a) for a in [*argv, *sorted((images / f"w{writer}").iterdir())]]) == 0
    old = Gallery.load(gallery).save(tmp_path / "old.npz")  # storage.write, the old format
    capsys.readouterr()
    new = images / "w4" / "s0.png"
    assert main(["enroll", "--gallery", str(old), "--writer", "w4", str(new)]) == 1
    assert capsys.readouterr().err == (
        f"sigid enroll: error: {old}: an .npz gallery (sigid before the gallery store) is "
        f"read-only; convert it to a store and enroll there: sigid gallery convert {old} "
        f"{tmp_path / 'old.sqlite'}\n"
    )
    with pytest.raises(ValueError, match="is read-only; convert it"):
        Gallery.load(old).enroll("w4", [new])
    assert main(["gallery", "convert", str(old), str(tmp_path / "old.sqlite")]) == 0
    capsys.readouterr()
    queries = [str(images / f"w{w}" / "s2.png") for w in (1, 2, 3, 5)]
    answers = []
    for path in (old, tmp_path / "old.sqlite", gallery):
        assert main(["identify", "--gallery", str(path), *queries, "--top-k", "3"]) == 0
        answers.append(capsys.readouterr().out.replace(str(path), "G"))
    assert answers[0] == answers[1] == answers[2]
    converted = Gallery.load(tmp_path / "old.sqlite")
    assert converted.sources("w1") == [str(p) for p in sorted((images / "w1").iterdir())]
    assert converted.enroll("w4", [new]) == 1


@pytest.mark.skipif(
    importlib.util.find_spec("pymilvus") is not None, reason="pymilvus is installed here"
)
@pytest.mark.parametrize("location", ["milvus://localhost:19530/people", "people.milvus.db"])
def test_a_milvus_gallery_without_pymilvus_names_the_extra(location, tmp_path, capsys):
    with pytest.raises(ValueError) as caught:
        open_store(location)
    assert str(caught.value) == (
        f"{location}: a Milvus gallery needs pymilvus: pip install 'sigid[milvus]'"
    )
    assert main(["gallery", "info", location]) == 1
    assert capsys.readouterr().err == f"sigid gallery: error: {caught.value}\n"
