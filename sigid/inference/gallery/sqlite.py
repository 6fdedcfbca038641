"""The embedded gallery store: one SQLite file (the standard library's `sqlite3`), shared by
every process that enrols, removes or identifies.

Tables: ``meta`` (key -> JSON: the format, the model record, the write ``generation``),
``writers`` (id in enrolment order, name, number of references, and their embeddings as one
float32 BLOB, row after row), ``sources`` (writer id, position, the reference's source), with
an index on (writer, position). The journal is WAL
(readers never wait for a writer, and see each transaction whole or not at all); writers are
serialised by ``BEGIN IMMEDIATE`` with a `BUSY_TIMEOUT_S` wait; ``synchronous=FULL`` makes a
commit survive a power cut, and a killed process leaves the file as of its last commit.
``secure_delete=ON`` overwrites a removed reference's bytes with zeros in the file itself.

`matrix` reads every writer's BLOB in one query and joins them into one numpy array: a
100,000-writer gallery (500,000 references) opens in about 0.2 s (one row per reference took
0.5 s, most of it Python objects per row); sources are read
only per writer (`references`), never all into Python objects.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from sigid.inference.gallery.store import METADATA_KEYS, OPTIONAL_KEYS

FORMAT, VERSION = "sigid-gallery-store", 1
# How long a write waits for another process's write transaction before it gives up.
BUSY_TIMEOUT_S = 30.0
# The default file name ending of a new gallery.
SUFFIX = ".sqlite"
# Writers read at a time by `matrix`.
CHUNK = 4096
# Bytes per database page of a new store (SQLite's largest).
PAGE_SIZE = 65536
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS writers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    count INTEGER NOT NULL,
    embeddings BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS sources (
    writer INTEGER NOT NULL REFERENCES writers(id),
    position INTEGER NOT NULL,
    source TEXT NOT NULL,
    PRIMARY KEY (writer, position)
);
"""
SQLITE_MAGIC = b"SQLite format 3\x00"


class SqliteStore:
    """A gallery's references in one SQLite file (see the module docstring); `location` is its
    path, or ``:memory:`` for a gallery that lives in this process only."""

    def __init__(self, location: str | Path, *, read_only: bool = False) -> None:
        self.location = str(location)
        self.read_only = read_only
        memory = self.location == ":memory:"
        path = Path(self.location)
        if not memory:
            _check_file(path, read_only)
        try:
            if read_only:
                uri = f"{path.resolve().as_uri()}?mode=ro"
                self._db = sqlite3.connect(
                    uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None
                )
            else:
                self._db = sqlite3.connect(
                    self.location, timeout=BUSY_TIMEOUT_S, isolation_level=None
                )
            self._db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            if not read_only:
                # a new file's pages: large, for rows of 2.5 kB (a page of 4 kB holds one)
                self._db.execute(f"PRAGMA page_size = {PAGE_SIZE}")
                if not memory:
                    self._db.execute("PRAGMA journal_mode = WAL")
                self._db.execute("PRAGMA synchronous = FULL")
                self._db.execute("PRAGMA secure_delete = ON")
                made = self._db.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
                ).fetchone()
                with nullcontext() if made else self._write():
                    for statement in filter(str.strip, SCHEMA.split(";") if not made else []):
                        self._db.execute(statement)
                    if not made:
                        self._db.execute(
                            "INSERT OR IGNORE INTO meta VALUES ('format', ?), ('version', ?), "
                            "('generation', '0')",
                            (json.dumps(FORMAT), json.dumps(VERSION)),
                        )
            self._check_format()
        except sqlite3.DatabaseError as err:
            raise ValueError(f"{self.location}: not a sigid gallery store ({err})") from err
        self._version: int | None = None  # PRAGMA data_version when `_generation` was read
        self._generation = 0

    def _check_format(self) -> None:
        found = dict(
            self._db.execute("SELECT key, value FROM meta WHERE key IN ('format', 'version')")
        )
        if json.loads(found.get("format", "null")) != FORMAT:
            raise ValueError(f"{self.location}: not a sigid gallery store (no {FORMAT!r} record)")
        version = json.loads(found["version"])
        if version != VERSION:
            raise ValueError(f"{self.location}: gallery store version {version} is not supported")

    # -- transactions --------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[None]:
        """One write transaction, taken at once (``BEGIN IMMEDIATE``: other writers wait, up to
        `BUSY_TIMEOUT_S`); rolled back if the body raises."""
        if self.read_only:
            raise ValueError(f"{self.location}: opened read-only")
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[None]:
        """One consistent snapshot for several queries (inside a write: that transaction's)."""
        if self._db.in_transaction:
            yield
            return
        self._db.execute("BEGIN")
        try:
            yield
        finally:
            self._db.execute("COMMIT")

    def _bump(self) -> int:
        """Count one more write (inside the write transaction); returns the new generation."""
        (value,) = self._db.execute(
            "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation' "
            "RETURNING value"
        ).fetchone()
        self._generation, self._version = int(value), None
        return int(value)

    # -- the protocol --------------------------------------------------------------------------

    def metadata(self) -> dict[str, Any] | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'model'").fetchone()
        return None if row is None else json.loads(row[0])

    def create(self, metadata: dict[str, Any]) -> None:
        """Record the model; refused if another is recorded (the same again is no change: two
        processes may create one gallery at once)."""
        record = {key: metadata[key] for key in METADATA_KEYS}
        record.update({key: metadata[key] for key in OPTIONAL_KEYS if key in metadata})
        with self._write():
            found = self.metadata()
            if found is not None:
                if found != json.loads(json.dumps(record)):
                    raise ValueError(f"{self.location}: holds a gallery of another model already")
                return
            self._db.execute("INSERT INTO meta VALUES ('model', ?)", (json.dumps(record),))

    def counts(self) -> dict[str, int]:
        return dict(self._db.execute("SELECT name, count FROM writers ORDER BY id"))

    def add(
        self,
        writer: str,
        embeddings: np.ndarray,
        sources: list[str],
        *,
        check: Callable[[int], None] | None = None,
    ) -> int:
        rows = np.ascontiguousarray(embeddings, dtype="<f4")
        if rows.ndim != 2 or len(rows) != len(sources) or not len(rows):
            raise ValueError(f"{self.location}: {len(sources)} sources for {rows.shape} embeddings")
        with self._write():
            if check is not None:
                check(self.generation())
            found = self._db.execute(
                "SELECT id, count FROM writers WHERE name = ?", (writer,)
            ).fetchone()
            if found is None:
                number = self._db.execute(
                    "INSERT INTO writers (name, count, embeddings) VALUES (?, ?, ?)",
                    (writer, len(rows), rows.tobytes()),
                ).lastrowid
                start = 0
            else:
                number, start = found
                (old,) = self._db.execute(
                    "SELECT embeddings FROM writers WHERE id = ?", (number,)
                ).fetchone()
                self._db.execute(
                    "UPDATE writers SET count = count + ?, embeddings = ? WHERE id = ?",
                    (len(rows), old + rows.tobytes(), number),
                )
            self._db.executemany(
                "INSERT INTO sources VALUES (?, ?, ?)",
                ((number, start + n, source) for n, source in enumerate(sources)),
            )
            return self._bump()

    def add_many(self, items: Iterable[tuple[str, np.ndarray, list[str]]]) -> int:
        """`add` each (writer, embeddings, sources) of new writers, all in one transaction (a
        conversion, a generated gallery: one commit, not one per writer); how many."""
        added = 0
        with self._write():
            for writer, embeddings, sources in items:
                rows = np.ascontiguousarray(embeddings, dtype="<f4")
                number = self._db.execute(
                    "INSERT INTO writers (name, count, embeddings) VALUES (?, ?, ?)",
                    (writer, len(rows), rows.tobytes()),
                ).lastrowid
                self._db.executemany(
                    "INSERT INTO sources VALUES (?, ?, ?)",
                    ((number, n, source) for n, source in enumerate(sources)),
                )
                added += 1
            self._bump()
        return added

    def remove(self, writer: str) -> int:
        """Delete the writer's row and sources; with ``secure_delete`` SQLite overwrites the
        freed bytes with zeros, and the write-ahead log, which holds copies of recent pages, is
        checkpointed and truncated (when no reader holds it; the next write does it otherwise)."""
        with self._write():
            row = self._db.execute(
                "SELECT id, count FROM writers WHERE name = ?", (writer,)
            ).fetchone()
            if row is None:
                return 0
            self._db.execute("DELETE FROM sources WHERE writer = ?", row[:1])
            self._db.execute("DELETE FROM writers WHERE id = ?", row[:1])
            self._bump()
        if self.location != ":memory:":
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return int(row[1])

    def references(self, writer: str) -> tuple[np.ndarray, list[str]]:
        with self._read():
            found = self._db.execute(
                "SELECT id, embeddings FROM writers WHERE name = ?", (writer,)
            ).fetchone()
            if found is None:
                return np.zeros((0, self._dim()), np.float32), []
            sources = self._db.execute(
                "SELECT source FROM sources WHERE writer = ? ORDER BY position", found[:1]
            ).fetchall()
        rows = np.frombuffer(found[1], "<f4").astype(np.float32).reshape(-1, self._dim())
        return rows, [source for (source,) in sources]

    def matrix(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Every writer's BLOB copied into one preallocated array, `CHUNK` rows at a time (the
        BLOBs of all the writers at once would hold the gallery twice)."""
        dim = self._dim()
        names: list[str] = []
        counts: list[int] = []
        with self._read():
            (total,) = self._db.execute("SELECT COALESCE(SUM(count), 0) FROM writers").fetchone()
            matrix = np.empty((total, dim), np.float32)
            flat = memoryview(matrix.reshape(-1).view(np.uint8))
            done = 0
            rows = self._db.execute("SELECT name, count, embeddings FROM writers ORDER BY id")
            while chunk := rows.fetchmany(CHUNK):
                joined = b"".join([blob for _, _, blob in chunk])
                flat[done : done + len(joined)] = joined
                done += len(joined)
                names += [name for name, _, _ in chunk]
                counts += [count for _, count, _ in chunk]
        if done != matrix.nbytes:
            raise ValueError(
                f"{self.location}: damaged gallery store (counts and embeddings differ)"
            )
        return names, matrix, np.array(counts, dtype=np.int64)

    def generation(self) -> int:
        """The write counter; read again only when ``PRAGMA data_version`` says another
        connection committed since (or this one wrote)."""
        (version,) = self._db.execute("PRAGMA data_version").fetchone()
        if version != self._version or self._db.in_transaction:
            (value,) = self._db.execute(
                "SELECT value FROM meta WHERE key = 'generation'"
            ).fetchone()
            self._generation, self._version = int(value), version
        return self._generation

    def nearest(self, query: np.ndarray, k: int) -> list[str] | None:
        return None  # no index: the gallery scores every writer exactly

    def close(self) -> None:
        self._db.close()

    def _dim(self) -> int:
        meta = self.metadata()
        return int(meta["dim"]) if meta is not None else 0


def _check_file(path: Path, read_only: bool) -> None:
    """Refuse, naming `path`, what SQLite would not open as a store or would silently make one
    of: a folder, a file of something else (an empty file is a new store)."""
    if path.is_dir():
        raise ValueError(f"{path}: not a gallery store (it is a folder)")
    if not path.exists():
        if read_only:
            raise ValueError(f"{path}: no such gallery")
        return
    try:
        with path.open("rb") as stream:
            magic = stream.read(len(SQLITE_MAGIC))
    except OSError as err:
        raise ValueError(f"{path}: cannot read: {err.strerror or err}".lower()) from err
    if magic and magic != SQLITE_MAGIC:
        raise ValueError(f"{path}: not a sigid gallery store (not an SQLite database)")
