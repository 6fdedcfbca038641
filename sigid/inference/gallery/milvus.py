"""`MilvusStore`: a gallery's references in a Milvus collection, for galleries past one machine's
memory (install extra ``milvus``: pymilvus and milvus-lite).

Two locations reach the same engine through pymilvus's `MilvusClient`:

- ``PATH.milvus.db``: milvus-lite, the engine in this process on a local file (tests, a laptop);
- ``milvus://HOST:PORT/COLLECTION``: a Milvus server or cluster (``http://HOST:PORT``).

Three collections per gallery (``COLLECTION`` is ``sigid`` in a ``.milvus.db`` file):
``COLLECTION`` holds one row per reference (auto id, writer, source, the enrolment's time stamp
``added``, ``position`` within the writer's references, and the ``vector``, searched by L2);
``COLLECTION_meta`` the model record (JSON, one row); ``COLLECTION_log`` one row per committed
`add` or `remove`, whose count is the `generation`. Milvus asks every collection for a vector
field: the two small ones carry a 2-d zero vector.

What Milvus does not give: transactions. One `add` is one insert request (Milvus writes it as one
message, so readers see it whole); `remove` is one delete by filter, which deletes the rows in the
engine itself (compaction then drops them from its files). A milvus-lite file is opened by one
process at a time (its engine runs in that process); a server takes many clients.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

COLLECTION = "sigid"
# A milvus-lite location: a file whose name ends so.
LITE_SUFFIX = ".milvus.db"
# How one installs what this module needs.
INSTALL = "pip install 'sigid[milvus]'"
# Rows per request when reading many (Milvus caps a query's limit + offset at 16384).
BATCH = 16_384
# The most references one search returns (Milvus's topk cap).
MAX_NEAREST = 16_384
# HNSW's search breadth, as for the faiss index (`ann.SEARCH_DEPTH`).
SEARCH_DEPTH = 1024
# VARCHAR widths: a writer name, a source path.
NAME_LENGTH = 1024
SOURCE_LENGTH = 4096
# How long to wait for a milvus-lite file that another process has open.
LITE_WAIT_S = 30.0
# This process's open stores per milvus-lite file: its engine stops when the last one closes.
_OPEN: dict[str, int] = {}
# The small collections' placeholder vector.
NO_VECTOR = [0.0, 0.0]


def _client_class() -> Any:
    """pymilvus's MilvusClient, or a one-line error saying how to install it."""
    try:
        from pymilvus import MilvusClient
    except ImportError as error:  # pragma: no cover - the dev extra installs it
        raise ImportError(
            f"a Milvus gallery needs pymilvus (and milvus-lite for a {LITE_SUFFIX} file): "
            f"{INSTALL} ({error})"
        ) from None
    # pymilvus logs every failed request with its traceback at ERROR, and a query iterator's
    # fallback at WARNING; the store raises its own one-line errors instead
    # (milvus-lite: a held file, at ERROR; its in-process gRPC server: the iterator's timestamp
    # request, which it does not implement, with a traceback)
    for name in ("pymilvus", "milvus_lite", "grpc._server"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    return MilvusClient


def _connect(client_class: Any, uri: str, location: str) -> Any:
    """A MilvusClient on `uri`. A milvus-lite file held by another process (its engine runs in
    one process at a time) is waited for up to `LITE_WAIT_S`, then refused."""
    deadline = time.monotonic() + LITE_WAIT_S
    while True:
        try:
            client = client_class(uri=uri)
        except Exception as error:  # pymilvus raises its own MilvusException, and others
            held = not uri.startswith("http") and _held_elsewhere(uri)
            if held and time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            reason = (
                f"another process has it open (a milvus-lite file is opened by one process at "
                f"a time; waited {LITE_WAIT_S:g} s): use a Milvus server (milvus://) for "
                "several processes"
                if held
                else str(error)
            )
            raise ValueError(f"{location}: cannot open the Milvus gallery: {reason}") from None
        if not uri.startswith("http"):
            _OPEN[uri] = _OPEN.get(uri, 0) + 1
        return client


def _held_elsewhere(path: str) -> bool:
    """Whether another process holds the lock of the milvus-lite file at `path`."""
    lock = Path(path) / "LOCK"
    if not lock.is_file():
        return False
    with open(lock, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def parse_location(location: str) -> tuple[str, str]:
    """(uri for MilvusClient, collection name) of a ``.milvus.db`` path or a ``milvus://`` URI."""
    if location.startswith("milvus://"):
        parts = urlsplit(location)
        collection = parts.path.strip("/") or COLLECTION
        if not parts.hostname or "/" in collection or not collection.replace("_", "a").isalnum():
            raise ValueError(
                f"{location}: expected milvus://HOST:PORT/COLLECTION (a collection name of "
                "letters, digits and _)"
            )
        return f"http://{parts.hostname}:{parts.port or 19530}", collection
    if not location.endswith(LITE_SUFFIX):
        raise ValueError(f"{location}: a Milvus gallery is a *{LITE_SUFFIX} file or milvus://...")
    return os.path.abspath(location), COLLECTION


def _quoted(text: str) -> str:
    """`text` as a string literal of Milvus's filter expressions."""
    return json.dumps(text)


class MilvusStore:
    """A gallery's references in Milvus (`ReferenceStore`); see the module docstring."""

    def __init__(self, location: str | Path, *, read_only: bool = False) -> None:
        self.location = str(location)
        self.read_only = read_only
        uri, self.collection = parse_location(self.location)
        if read_only and not uri.startswith("http") and not Path(uri).exists():
            raise ValueError(f"{self.location}: no such Milvus gallery file")
        client_class = _client_class()
        self._lite = None if uri.startswith("http") else uri
        self._client = _connect(client_class, uri, self.location)
        self._meta = f"{self.collection}_meta"
        self._log = f"{self.collection}_log"
        self._dim: int | None = None
        if self._exists():  # a collection reopened is "released" until loaded
            for name in (self.collection, self._meta, self._log):
                self._client.load_collection(name)

    # -- schema --------------------------------------------------------------------------------

    def _exists(self) -> bool:
        return bool(self._client.has_collection(self._meta))

    def _create_collections(self, dim: int) -> None:
        from pymilvus import DataType

        client = self._client
        refs = client.create_schema(auto_id=True, enable_dynamic_field=False)
        refs.add_field("id", DataType.INT64, is_primary=True)
        refs.add_field("writer", DataType.VARCHAR, max_length=NAME_LENGTH)
        refs.add_field("source", DataType.VARCHAR, max_length=SOURCE_LENGTH)
        refs.add_field("added", DataType.INT64)
        refs.add_field("position", DataType.INT64)
        refs.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        index = client.prepare_index_params()
        index.add_index(field_name="vector", index_type="AUTOINDEX", metric_type="L2")
        index.add_index(field_name="writer", index_type="INVERTED")
        client.create_collection(self.collection, schema=refs, index_params=index)
        for name, primary in ((self._meta, ("key", DataType.VARCHAR)), (self._log, None)):
            schema = client.create_schema(auto_id=primary is None, enable_dynamic_field=False)
            if primary is None:
                schema.add_field("id", DataType.INT64, is_primary=True)
                schema.add_field("what", DataType.VARCHAR, max_length=NAME_LENGTH + 16)
            else:
                schema.add_field("key", DataType.VARCHAR, max_length=64, is_primary=True)
                schema.add_field("value", DataType.VARCHAR, max_length=65_535)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=len(NO_VECTOR))
            small = client.prepare_index_params()
            small.add_index(field_name="vector", index_type="AUTOINDEX", metric_type="L2")
            client.create_collection(name, schema=schema, index_params=small)

    # -- the protocol --------------------------------------------------------------------------

    def metadata(self) -> dict[str, Any] | None:
        if not self._exists():
            return None
        rows = self._client.query(self._meta, filter='key == "model"', output_fields=["value"])
        return json.loads(rows[0]["value"]) if rows else None

    def create(self, metadata: dict[str, Any]) -> None:
        self._writable()
        if self.metadata() is not None:
            raise ValueError(f"{self.location}: a gallery is recorded here already")
        if not self._exists():
            self._create_collections(int(metadata["dim"]))
        row = {"key": "model", "value": json.dumps(metadata), "vector": NO_VECTOR}
        self._client.insert(self._meta, [row])
        self._dim = int(metadata["dim"])

    def counts(self) -> dict[str, int]:
        first: dict[str, int] = {}
        counts: dict[str, int] = {}
        for row in self._rows(["writer", "added"]):
            writer = row["writer"]
            counts[writer] = counts.get(writer, 0) + 1
            first[writer] = min(first.get(writer, row["added"]), row["added"])
        return {w: counts[w] for w in sorted(counts, key=lambda w: (first[w], w))}

    def add(
        self,
        writer: str,
        embeddings: np.ndarray,
        sources: list[str],
        *,
        check: Callable[[int], None] | None = None,
    ) -> int:
        """One insert request and its flush; returns the `generation` after it. Milvus has no
        write transactions: `check` is called just before writing (on a milvus-lite file no
        other process writes meanwhile: it holds the file; on a server, two clients may)."""
        if check is not None:
            check(self.generation())
        return self.add_many([(writer, embeddings, sources)])

    def add_many(self, enrolments: Iterable[tuple[str, np.ndarray, list[str]]]) -> int:
        """`add` for many (writer, embeddings, sources) at once, `BATCH` rows per insert and one
        flush: a bulk load (a conversion, a benchmark); returns the `generation` after it. Each
        insert is visible whole; the enrolments of different inserts may be seen apart while
        it runs."""
        self._writable()
        dim = self._model_dim()
        rows: list[dict[str, Any]] = []
        for writer, embeddings, sources in enrolments:
            embeddings = np.asarray(embeddings, dtype=np.float32)
            if (
                embeddings.ndim != 2
                or embeddings.shape[1] != dim
                or len(sources) != len(embeddings)
            ):
                raise ValueError(
                    f"{self.location}: expected (n, {dim}) embeddings with n sources for writer "
                    f"{writer!r}, got {embeddings.shape} and {len(sources)}"
                )
            added = time.time_ns()
            rows.extend(
                {"writer": writer, "source": source, "added": added, "position": n, "vector": v}
                for n, (v, source) in enumerate(zip(embeddings.tolist(), sources, strict=True))
            )
            if len(rows) >= BATCH:
                self._client.insert(self.collection, rows)
                rows = []
        if rows:
            self._client.insert(self.collection, rows)
        self._logged("add")
        return self.generation()

    def remove(self, writer: str) -> int:
        self._writable()
        if not self._exists():
            return 0
        found = self._client.query(self.collection, filter=self._is(writer), output_fields=["id"])
        if not found:
            return 0
        self._client.delete(self.collection, filter=self._is(writer))
        self._logged(f"remove {writer}")
        return len(found)

    def references(self, writer: str) -> tuple[np.ndarray, list[str]]:
        fields = ["source", "added", "position", "vector"]
        rows = self._client.query(self.collection, filter=self._is(writer), output_fields=fields)
        rows.sort(key=lambda row: (row["added"], row["position"]))
        matrix = np.array([row["vector"] for row in rows], dtype=np.float32)
        return matrix.reshape(len(rows), self._model_dim()), [row["source"] for row in rows]

    def matrix(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        dim = self._model_dim() if self._exists() else 0
        rows = self._rows(["writer", "added", "position", "vector"])
        first: dict[str, int] = {}
        for row in rows:
            first[row["writer"]] = min(first.get(row["writer"], row["added"]), row["added"])
        rows.sort(key=lambda r: (first[r["writer"]], r["writer"], r["added"], r["position"]))
        writers = list(dict.fromkeys(row["writer"] for row in rows))
        counts = np.array([0] * len(writers), dtype=np.int64)
        index = {w: n for n, w in enumerate(writers)}
        for row in rows:
            counts[index[row["writer"]]] += 1
        matrix = np.array([row["vector"] for row in rows], dtype=np.float32).reshape(-1, dim)
        return writers, matrix, counts

    def generation(self) -> int:
        if not self._exists():
            return 0
        rows = self._client.query(self._log, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def nearest(self, query: np.ndarray, k: int) -> list[str] | None:
        if not self._exists():
            return []
        limit = max(1, min(int(k), MAX_NEAREST))
        hits = self._client.search(
            self.collection,
            data=[np.asarray(query, dtype=np.float32).tolist()],
            limit=limit,
            output_fields=["writer"],
            # HNSW's search breadth (milvus-lite's default, 64, found the true writer for 66% of
            # queries on a generated 100,000-writer gallery); other indexes ignore it
            search_params={"metric_type": "L2", "params": {"ef": max(SEARCH_DEPTH, limit)}},
        )
        return list(dict.fromkeys(hit["entity"]["writer"] for hit in hits[0]))

    def close(self) -> None:
        """Close the client; a milvus-lite file's engine stops (writing what it holds, and
        letting another process open the file) when this process's last store on it closes."""
        if self._client is None:
            return
        self._client.close()
        self._client = None
        if self._lite is not None:
            _OPEN[self._lite] -= 1
            if not _OPEN[self._lite]:
                del _OPEN[self._lite]
                from milvus_lite.server_manager import server_manager_instance

                server_manager_instance.release_server(self._lite)

    # -- helpers -------------------------------------------------------------------------------

    def _writable(self) -> None:
        if self.read_only:
            raise ValueError(f"{self.location}: opened read-only")

    def _model_dim(self) -> int:
        if self._dim is None:
            meta = self.metadata()
            if meta is None:
                raise ValueError(f"{self.location}: no gallery recorded here yet (create it first)")
            self._dim = int(meta["dim"])
        return self._dim

    @staticmethod
    def _is(writer: str) -> str:
        return f"writer == {_quoted(writer)}"

    def _logged(self, what: str) -> None:
        """Count a committed change (`generation`), and flush: the change is written to the
        engine's segments (milvus-lite searches unflushed rows 10-50x slower)."""
        self._client.insert(self._log, [{"what": what[: NAME_LENGTH + 16], "vector": NO_VECTOR}])
        self._client.flush(self.collection)
        self._client.flush(self._log)

    def _rows(self, fields: list[str]) -> list[dict[str, Any]]:
        """`fields` of every row of the references collection, read `BATCH` at a time."""
        if not self._exists():
            return []
        iterator = self._client.query_iterator(
            self.collection, batch_size=BATCH, filter="", output_fields=fields
        )
        rows: list[dict[str, Any]] = []
        try:
            while batch := iterator.next():
                rows.extend(batch)
        finally:
            iterator.close()
        return rows
