"""`Gallery`: enrolled writers' reference embeddings, tied to one Siamese checkpoint; enroll,
identify and verify with no retraining (the rules: `scores`, the file: `storage`).

Identifying ranks by the mean similarity, verifying scores by the gallery's score; the best-ranked
writer is the answer only if that claim verifies (docs/gallery.md says why).
"""

from __future__ import annotations

import os
import reprlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sigid.data.preprocess import check_options, options_of
from sigid.inference.gallery import storage
from sigid.inference.gallery.ann import references_wanted
from sigid.inference.gallery.manage import copy_store, describe_store, recorded_options
from sigid.inference.gallery.names import check_writer_name
from sigid.inference.gallery.npz import read_only_reason
from sigid.inference.gallery.ranking import References, rescore
from sigid.inference.gallery.scores import SCORES, check_score, writer_score
from sigid.inference.gallery.store import ReferenceStore, model_record, open_store
from sigid.inference.identifier import check_top_k
from sigid.inference.inputs import Signature, as_list, describe, read_preprocessing
from sigid.inference.tta import check_tta
from sigid.inference.verifier import Verdict, Verifier

# Enrolled writers named in an error message before "...".
MAX_NAMES_SHOWN = 10
# Two embeddings this close (np.allclose) are of one image: batches round differently.
SAME_EMBEDDING = {"rtol": 1e-4, "atol": 1e-5}
# Why a reference is refused the second time.
COUNTS_ONCE = (
    "a reference counts once (identical references would make the writer look perfectly "
    "consistent, and their own signatures fail to verify); nothing was enrolled"
)
# Why a reference of one writer is refused for another.
ONE_WRITER = (
    "a signature is one writer's reference (enrolled for two, a questioned signature like it "
    "would match both); nothing was enrolled"
)


@dataclass(frozen=True)
class Candidate:
    writer: str
    score: float


@dataclass(frozen=True)
class Identification:
    """Enrolled writers ranked by mean similarity (`candidates`); `writer` is the best one if
    their claim verifies (`score`, the gallery's score of the best against the threshold), else
    None (an unknown writer)."""

    writer: str | None
    candidates: list[Candidate]
    threshold: float
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "writer": self.writer,
            "candidates": [{"writer": c.writer, "score": c.score} for c in self.candidates],
            "threshold": self.threshold,
            "score": self.score,
        }


class Gallery:
    """Enrolled writers' reference embeddings, tied to one Siamese checkpoint, in a store
    (`store.open_store`: an SQLite file by default) that several processes may use at once.

    ``Gallery(Verifier.from_checkpoint(ckpt))`` starts an empty one in memory (`save` writes it
    to a file); `Gallery.load` opens a stored one (with its own checkpoint unless another is
    given, which must have the same weights); `Gallery.open` does either, for "enroll into this
    gallery". Each `enroll` and `remove` is written to the store at once, in one transaction.
    `score` is one of `SCORES`; by default ``normalized``, or ``mean`` for a checkpoint that
    does not store its typical genuine distance.

    The scoring matrix (`References`) is read from the store once per open and kept in step:
    this gallery's own enrolments are appended; when the store's `generation` shows that
    another process wrote, it is read again (checked before each use).
    """

    def __init__(
        self, verifier: Verifier, path: str | Path | None = None, score: str | None = None
    ) -> None:
        if not isinstance(verifier, Verifier):
            raise TypeError(
                f"a Gallery needs a Verifier (Gallery(Verifier.from_checkpoint(ckpt))), not "
                f"{type(verifier).__name__} {reprlib.repr(verifier)}; to read a gallery file, "
                "use Gallery.load(path) or Gallery.open(path, ckpt)"
            )
        self.verifier = verifier
        self.path = _location(path) if path is not None else None
        self.score = check_score(verifier, score)
        # opened at the first enrolment for a new location (a refused one leaves no file)
        self._store: ReferenceStore | None = None
        if self.path is None:
            self._store = open_store(":memory:")
            self._store.create(model_record(self.verifier, self.score))
        empty = np.zeros((0, verifier.dim), np.float32)
        # every writer's references in one matrix, as of store generation `_generation`
        self._table = References([], empty, [])
        self._index: dict[str, int] = {}  # writer -> number in `_table`
        self._buffer: np.ndarray | None = None  # `_table`'s matrix is its first rows
        self._column: np.ndarray | None = None  # `_table`'s first column (`_first_same`)
        self._generation: int | None = None if self.path is not None else 0
        # this gallery's own enrolments since `_table` was built: writer -> rows
        self._pending: dict[str, np.ndarray] = {}
        self._exports: set[Path] = set()  # the .npz files `save` wrote (it may write them again)

    # -- reading and writing -------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        path: str | Path,
        checkpoint: str | Path | None = None,
        *,
        verifier: Verifier | None = None,
        threshold: float | None = None,
    ) -> Gallery:
        """Open a stored gallery (a store, or a read-only .npz of sigid before the store). The
        model is `verifier`, else `checkpoint`, else the checkpoint path stored in the gallery;
        it must have the weights the gallery was enrolled with. `threshold` overrides the
        checkpoint's decision threshold."""
        if isinstance(checkpoint, Verifier):  # positional: Gallery.load(path, verifier)
            raise TypeError("Gallery.load(path, checkpoint): give a Verifier as verifier=...")
        if verifier is not None and (checkpoint is not None or threshold is not None):
            raise ValueError("give either a verifier, or a checkpoint and a threshold; not both")
        location = _location(path)
        if isinstance(location, Path) and not location.exists():
            raise ValueError(f"{location}: no such gallery file")
        store = _open(location)
        try:
            meta = store.metadata()
            if meta is None:
                raise ValueError(
                    f"{location}: no writers enrolled yet; enroll some first (sigid enroll)"
                )
            verifier = _verifier_for(location, meta, checkpoint, verifier, threshold)
        except BaseException:
            store.close()
            raise
        gallery = cls(verifier, location, meta["score"])
        gallery._store = store
        gallery._reload()
        return gallery

    @classmethod
    def open(
        cls,
        path: str | Path,
        checkpoint: str | Path | None = None,
        threshold: float | None = None,
        score: str | None = None,
        options: Sequence[str] | None = None,
    ) -> Gallery:
        """The gallery stored at `path`, or a new empty one for `checkpoint` if there is none
        (`score` and `options`, the normaliser options added to the checkpoint's preprocessing
        as `Verifier` adds them, only apply to a new one: a stored gallery keeps its own and
        prepares every later scan as it prepared its first). A new gallery's file is made at
        its first enrolment."""
        location = _location(path)
        if options is not None:
            options = check_options(options)
        if not isinstance(location, Path) or location.exists():
            store = _open(location)
            recorded = store.metadata() is not None
            store.close()
            if recorded:
                gallery = cls.load(location, checkpoint, threshold=threshold)
                if score is not None and score != gallery.score:
                    raise ValueError(
                        f"{location}: this gallery scores by {gallery.score!r}, not {score!r}; "
                        "a gallery keeps the score it was created with"
                    )
                if options is not None:  # the checkpoint's own options count as given
                    own = options_of(read_preprocessing(gallery.verifier.module))
                    if set(options) | set(own) != set(gallery.options):
                        gallery.close()
                        raise ValueError(
                            f"{location}: this gallery prepares scans with "
                            f"{_named(gallery.options)}, not {_named(options)}; a gallery keeps "
                            "the preprocessing it was created with (its references were "
                            "embedded so)"
                        )
                return gallery
        if checkpoint is None:
            raise ValueError(
                f"{location}: no such gallery file; give a Siamese checkpoint (--ckpt) to create it"
            )
        verifier = Verifier.from_checkpoint(checkpoint, threshold=threshold, options=options or ())
        return cls(verifier, location, score)

    @property
    def options(self) -> list[str]:
        """The normaliser options in the preprocessing this gallery embeds with (the
        checkpoint's own and any added), in `OPTIONS` order."""
        return list(options_of(self.verifier.preprocessing))

    def save(self, path: str | Path | None = None) -> Path | str:
        """Kept for code written before the store: every `enroll` is in the store when it
        returns, so ``save()`` (or `path` this gallery's own) writes nothing and returns where it
        lives. Another `path`: an ``.npz`` is an export for older sigid (written atomically;
        read-only here), any other a new store holding this gallery's writers (refused where a
        gallery is), which this gallery then uses (an in-memory gallery's way to a file)."""
        if path is None or (self.path is not None and _same(_location(path), self.path)):
            if self.path is None:
                raise ValueError("no path to save the gallery to")
            return self.path
        target = _location(path)
        if str(target).endswith(".npz"):
            embeddings, sources = self._everything()
            if (
                isinstance(target, Path)
                and target.exists()
                and target.resolve() not in self._exports
            ):
                raise ValueError(
                    f"{target}: not saved: a file is there (holds another gallery?); "
                    "saving would replace it"
                )
            storage.write(Path(target), self.verifier, self.score, embeddings, sources)
            self._exports.add(Path(target).resolve())
            return target
        copy_store(self._current_store(), target)
        self._store.close()  # type: ignore[union-attr]
        self.path, self._store, self._generation = target, _open(target), None
        return target

    def _everything(self) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
        """Every writer's references and sources (for an export)."""
        store = self._current_store()
        embeddings, sources = {}, {}
        for writer in self.writers:
            sources[writer] = store.references(writer)[1]
            embeddings[writer] = self._rows(writer)
            if not np.isfinite(embeddings[writer]).all():
                raise ValueError(
                    f"{self.path}: not saved: the embeddings of writer {writer!r} contain NaN "
                    "or infinite values"
                )
        return embeddings, sources

    def info(self) -> dict[str, Any]:
        """What `sigid gallery info` prints: location, backend, model, score, counts."""
        counts = self.counts()
        found = describe_store(self._current_store())
        return {
            **found,
            "writers": len(counts),
            "references": sum(counts.values()),
            "threshold": self.threshold,
        }

    def counts(self) -> dict[str, int]:
        """Writer -> number of references, in enrolment order."""
        self._current()
        return dict(zip(self.writers, (len(self._rows(w)) for w in self.writers), strict=True))

    def remove(self, writer: str) -> int:
        """Delete every reference of `writer` from the store itself (their bytes overwritten,
        see `sqlite`); returns how many. Refused (ValueError) for a writer not enrolled."""
        self._known(writer)
        removed = self._writable().remove(writer)
        self._generation = None  # read again at the next use
        self._pending = {}
        if not removed:  # removed by another process since
            raise ValueError(f"writer {writer!r} is not enrolled in {self._where()}")
        return removed

    def close(self) -> None:
        """Release the store (its file and connection)."""
        if self._store is not None:
            self._store.close()

    def _writable(self) -> ReferenceStore:
        """The store, opened (a new gallery's created) for writing; one line if it cannot be:
        an .npz gallery, or a new one named .npz."""
        if self._store is None:
            assert self.path is not None
            if str(self.path).endswith(".npz"):
                raise ValueError(
                    f"{self.path}: new galleries are stores, not .npz files: name it "
                    f"{Path(self.path).with_suffix('.sqlite')} (or another name without .npz)"
                )
            store = _open(self.path)
            try:
                meta = store.metadata()
                if meta is None:
                    store.create(model_record(self.verifier, self.score))
                else:
                    _verifier_for(self.path, meta, None, self.verifier, None)
                    if meta["score"] != self.score:
                        raise ValueError(
                            f"{self.path}: this gallery scores by {meta['score']!r}, not "
                            f"{self.score!r}; a gallery keeps the score it was created with"
                        )
            except BaseException:
                store.close()
                raise
            self._store = store
        if self._store.read_only:
            raise ValueError(_read_only(self.path))
        return self._store

    def _current_store(self) -> ReferenceStore:
        self._current()
        if self._store is None:
            return open_store(":memory:")  # a new gallery: nothing stored yet
        return self._store

    def _current(self) -> None:
        """Bring `_table` up to date with the store: read it again if another process (or a
        `remove`) wrote since (a cheap check: `generation`)."""
        if self._store is not None and self._store.generation() != self._generation:
            self._reload()

    def _reload(self) -> None:
        """Read every reference from the store into `_table`."""
        assert self._store is not None
        generation = self._store.generation()  # before: a write in between reads again later
        writers, matrix, counts = self._store.matrix()
        if len(matrix) and not np.isfinite(matrix).all():
            raise ValueError(f"{self.path}: embeddings contain NaN or infinite values")
        self._table = References(writers, matrix.reshape(-1, self.verifier.dim), counts)
        self._buffer = self._table.matrix  # `_flush` appends here
        self._column = None
        self._index = {writer: n for n, writer in enumerate(writers)}
        self._generation, self._pending = generation, {}

    def _flush(self) -> None:
        """Put this gallery's own enrolments (`_pending`) into `_table`, at the first use after
        them, not at each enrolment. New writers go after the others in `_buffer`, which grows
        by a quarter when full (so a service that enrols and identifies does not copy the whole
        matrix each time); more references for an enrolled writer make a new matrix."""
        if not self._pending:
            return
        table = self._table
        counts = table.counts.copy()
        new = [w for w in self._pending if w not in self._index]
        rows = [self._pending[w] for w in new]
        more = sorted(self._index[w] for w in self._pending if w in self._index)
        if more:
            parts, last = [], 0
            for number in more:
                end = int(table.starts[number] + table.counts[number])
                extra = self._pending[table.writers[number]]
                parts += [table.matrix[last:end], extra]
                counts[number] += len(extra)
                last = end
            matrix = np.concatenate([*parts, table.matrix[last:], *rows])
            self._buffer = matrix
        else:
            have, need = len(table.matrix), len(table.matrix) + sum(len(r) for r in rows)
            if self._buffer is None or len(self._buffer) < need:
                grown = np.empty(
                    (max(need, have + have // 4 + 1024), self.verifier.dim), np.float32
                )
                grown[:have] = table.matrix
                self._buffer = grown
            if rows:
                self._buffer[have:need] = np.concatenate(rows)
            matrix = self._buffer[:need]
        self._table = References(
            [*table.writers, *new], matrix, [*counts.tolist(), *(len(r) for r in rows)]
        )
        self._index.update({w: len(table.writers) + n for n, w in enumerate(new)})
        self._pending, self._column = {}, None

    def _rows(self, writer: str) -> np.ndarray:
        """A writer's references: a view into `_table`'s matrix."""
        if writer in self._pending:
            self._flush()
        number = self._index[writer]
        start = int(self._table.starts[number])
        return self._table.matrix[start : start + int(self._table.counts[number])]

    # -- contents ------------------------------------------------------------------------------

    @property
    def writers(self) -> list[str]:
        """Enrolled writers, in enrolment order."""
        self._current()
        return [*self._table.writers, *(w for w in self._pending if w not in self._index)]

    @property
    def threshold(self) -> float:
        return self.verifier.threshold

    def __len__(self) -> int:
        return len(self.writers)

    def __contains__(self, writer: object) -> bool:
        self._current()
        return writer in self._index or writer in self._pending

    def references(self, writer: str) -> np.ndarray:
        """(n, dim) embeddings of a writer's reference signatures."""
        return self._rows(self._known(writer)).copy()

    def sources(self, writer: str) -> list[str]:
        """The files (or "<array>") a writer's references came from."""
        return self._current_store().references(self._known(writer))[1]

    # -- use -----------------------------------------------------------------------------------

    def enroll(self, writer: str, images: Sequence[Signature] | np.ndarray) -> int:
        """Add reference signatures for `writer` (new, or more for an enrolled one), in one
        transaction of the store; returns the writer's number of references. Nothing is added
        if the name is refused (`check_writer_name`), if any image fails, or is a reference
        already, the writer's (`COUNTS_ONCE`) or another's (`ONE_WRITER`): checked inside the
        transaction, against what every process enrolled. Files are recorded by absolute
        path."""
        writer = check_writer_name(writer)
        images = as_list(images)
        if self._store is None or self._store.read_only:
            self._writable_name()
        embeddings = self.verifier.embed(images)
        if not np.isfinite(embeddings).all():  # they would score NaN, silently never matching
            raise ValueError(
                f"{self._where()}: not enrolled: the embeddings of writer {writer!r} contain "
                "NaN or infinite values"
            )
        embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        self._refuse_given_twice(writer, images, embeddings)
        store = self._writable()

        def check(generation: int) -> None:  # inside the store's write transaction
            if generation != self._generation:
                self._reload()
            self._refuse_enrolled(writer, images, embeddings)

        self._generation = store.add(writer, embeddings, [_source(i) for i in images], check=check)
        old = self._pending.get(writer, np.zeros((0, self.verifier.dim), np.float32))
        self._pending[writer] = np.concatenate([old, embeddings])
        before = int(self._table.counts[self._index[writer]]) if writer in self._index else 0
        return before + len(self._pending[writer])

    def _writable_name(self) -> None:
        """Refuse, before any embedding, an enrolment that cannot be stored."""
        if self._store is not None and self._store.read_only:
            raise ValueError(_read_only(self.path))
        if self._store is None and str(self.path).endswith(".npz"):
            self._writable()  # raises

    def _refuse_given_twice(
        self, writer: str, images: list[Signature], embeddings: np.ndarray
    ) -> None:
        """Refuse an image given twice in one enrolment: the same file (resolved path), or the
        same image (embedding; arrays, copies of a file)."""
        paths = [_resolved(_source(image)) for image in images]
        for n, (image, row) in enumerate(zip(images, embeddings, strict=True)):
            same_file = [paths[n] is not None and paths[n] == other for other in paths[:n]]
            same = np.array(same_file, bool) | np.isclose(
                row, embeddings[:n], **SAME_EMBEDDING
            ).all(axis=1)
            if same.any():
                first = int(np.argmax(same))
                what = "" if same_file[first] else f"the same image as {describe(images[first])}, "
                raise ValueError(
                    f"{describe(image)}: {what}given twice for writer {writer!r}: {COUNTS_ONCE}"
                )

    def _refuse_enrolled(
        self, writer: str, images: list[Signature], embeddings: np.ndarray
    ) -> None:
        """Refuse a new reference that is an enrolled one (for `writer` or another writer): the
        same image by its embedding (a file enrolled before, a copy of it, an array), compared
        with every reference in the store (`_first_same`)."""
        for image, found in zip(images, self._first_same(embeddings), strict=True):
            if found is None:
                continue
            owner, position = found
            source = self._store.references(owner)[1][position]  # type: ignore[union-attr]
            path = _resolved(_source(image))
            same_file = path is not None and _resolved(source) == path
            what = "" if same_file else f"the same image as {source}, "
            if owner == writer:
                where = f"already a reference of writer {writer!r}: {COUNTS_ONCE}"
            else:
                where = f"already a reference of writer {owner!r}: {ONE_WRITER}"
            raise ValueError(f"{describe(image)}: {what}{where}")

    def _first_same(self, embeddings: np.ndarray) -> list[tuple[str, int] | None]:
        """For each embedding, (writer, position) of the first enrolled reference np.isclose to
        it in every value (`SAME_EMBEDDING`), or None. `_table` first: the rows whose first
        value could be close (|a - b| <= (atol + rtol |a|) / (1 - rtol) follows from
        |a - b| <= atol + rtol |b|), all the embeddings in one pass over that column (kept in
        `_column` until the table changes), then those rows whole; then this gallery's own
        recent enrolments."""
        table, atol, rtol = self._table, SAME_EMBEDDING["atol"], SAME_EMBEDDING["rtol"]
        if self._column is None:
            self._column = np.ascontiguousarray(table.matrix[:, 0])
        firsts = embeddings[:, 0]
        reach = (atol + rtol * np.abs(firsts)) / (1 - rtol)
        rows, which = np.nonzero(np.abs(self._column[:, None] - firsts[None, :]) <= reach)
        found: list[tuple[str, int] | None] = []
        for n, row in enumerate(embeddings):
            near = rows[which == n]
            same = np.isclose(row, table.matrix[near], **SAME_EMBEDDING).all(axis=1)
            if same.any():
                first = int(near[np.argmax(same)])
                number = int(np.searchsorted(table.starts, first, side="right") - 1)
                found.append((table.writers[number], first - int(table.starts[number])))
                continue
            found.append(None)
            for owner, pending in self._pending.items():
                same = np.isclose(row, pending, **SAME_EMBEDDING).all(axis=1)
                if same.any():
                    before = int(table.counts[self._index[owner]]) if owner in self._index else 0
                    found[-1] = (owner, before + int(np.argmax(same)))
                    break
        return found

    def identify(self, image: Signature, top_k: int | None = None) -> Identification:
        """Rank the enrolled writers by mean similarity to a questioned signature; the best is
        the answer if that claim verifies (`verify`'s score reaches the threshold), else the
        writer is unknown (None). So identify never names a writer that verify would reject."""
        self._require_writers()
        top_k = check_top_k(top_k)
        query = self.verifier.embed([image])[0]
        ranked = self._ranked(query, top_k)
        best = ranked[0].writer
        score = self._score(query, best)
        found = best if score >= self.threshold else None
        return Identification(found, ranked, self.threshold, score)

    def verify(self, writer: str, image: Signature) -> Verdict:
        """Is `image` by the enrolled `writer`? Scored against their references (`score`)."""
        self._require_writers()
        writer = self._known(writer)
        query = self.verifier.embed([image])[0]
        return self.verifier.decide(self._score(query, writer))

    def require(self, writer: str | None = None) -> None:
        """Raise what `identify` (or `verify` of `writer`) would raise whatever the image: no
        writers enrolled, or `writer` is not; for callers that answer many images."""
        self._require_writers()
        if writer is not None:
            self._known(writer)

    def _ranked(self, query: np.ndarray, top_k: int | None) -> list[Candidate]:
        """The `top_k` best writers by mean similarity (None: all), best first, ties in
        enrolment order. Only the writers that `References.contenders` leaves are scored, by the
        rule itself (`_rank`): the others rank below `top_k` writers for certain."""
        table = self._references()
        writers = table.writers
        if top_k is not None and self._store is not None:
            # two-stage where the store has an index (Milvus) and asking it for fewer than all
            # references: the writers of the nearest, scored by the rule (`ranking.rescore`),
            # in enrolment order for ties
            wanted = references_wanted(top_k, len(writers))
            found = self._store.nearest(query, wanted) if wanted < len(table.matrix) else None
            if found is not None:
                numbers = sorted(self._index[w] for w in found if w in self._index)
                chosen = [writers[n] for n in numbers]
                rows = {w: self._rows(w) for w in chosen}
                ranked = rescore(self.verifier, rows, chosen, query, top_k)
                return [Candidate(w, score) for w, score in ranked]
        if top_k is not None:
            writers = [writers[i] for i in table.contenders(self.verifier, query, top_k)]
        ranked = sorted(
            (Candidate(w, self._rank(query, w)) for w in writers), key=lambda c: -c.score
        )
        return ranked[:top_k]

    def _references(self) -> References:
        """All references in one matrix, up to date with the store; each writer's rows view
        it, so that the gallery holds the embeddings once."""
        self._current()
        self._flush()
        return self._table

    def _score(self, query: np.ndarray, writer: str) -> float:
        return writer_score(self.verifier, query, self._rows(writer), self.score)

    def _rank(self, query: np.ndarray, writer: str) -> float:
        return writer_score(self.verifier, query, self._rows(writer), "mean")

    def _where(self) -> str:
        return str(self.path) if self.path is not None else "the gallery"

    def _require_writers(self) -> None:
        if not len(self):
            raise ValueError(
                f"{self._where()}: no writers enrolled yet; enroll some first (sigid enroll)"
            )

    def _known(self, writer: str) -> str:
        if writer not in self:
            names = self.writers
            shown = ", ".join(names[:MAX_NAMES_SHOWN]) + (
                ", ..." if len(names) > MAX_NAMES_SHOWN else ""
            )
            raise ValueError(
                f"writer {writer!r} is not enrolled in {self._where()} "
                f"(enrolled: {shown or 'nobody'})"
            )
        return writer


def _read_only(location: Path | str | None) -> str:
    """Why nothing can be enrolled in (or removed from) a read-only gallery, in one line."""
    if str(location).endswith(".npz"):
        return read_only_reason(str(location))
    return f"{location}: the gallery is read-only (the file cannot be written); nothing was changed"


def _location(path: str | Path) -> Path | str:
    """A gallery's location: a Path, or a URI kept as text (``milvus://...``)."""
    text = str(path)
    return text if "://" in text else Path(path)


def _same(a: Path | str, b: Path | str) -> bool:
    if isinstance(a, Path) and isinstance(b, Path):
        return a.resolve() == b.resolve()
    return str(a) == str(b)


def _open(location: Path | str) -> ReferenceStore:
    """The store at `location`: read-write where it may be written, else read-only."""
    if isinstance(location, Path) and location.is_file() and not os.access(location, os.W_OK):
        return open_store(location, read_only=True)
    return open_store(location)


def _verifier_for(
    location: Path | str,
    meta: dict[str, Any],
    checkpoint: str | Path | None,
    verifier: Verifier | None,
    threshold: float | None,
) -> Verifier:
    """The model of a stored gallery (see `Gallery.load`), checked against its record."""
    tta, recorded = _recorded_tta(location, meta), recorded_options(location, meta)
    if verifier is None:
        if checkpoint is None:
            checkpoint = meta["checkpoint"]
            if not checkpoint or not Path(checkpoint).is_file():
                where = (
                    f"checkpoint {checkpoint} is not found"
                    if checkpoint
                    else "no checkpoint path is stored"
                )
                raise ValueError(
                    f"{location}: {where}; give the checkpoint the gallery was enrolled with "
                    "(--ckpt)"
                )
        verifier = Verifier.from_checkpoint(
            checkpoint, threshold=threshold, tta=tta, options=recorded
        )
    if verifier.fingerprint != meta["fingerprint"]:
        model = verifier.checkpoint or "the given model"
        if verifier.tta != tta:
            raise ValueError(
                f"{location}: this gallery's references were embedded with test-time "
                f"augmentation {tta}, but the given model embeds with {verifier.tta}; give a "
                f"Verifier with tta={tta}, or load the gallery with its checkpoint "
                "(Gallery.load(path, ckpt)), which sets it"
            )
        given = list(options_of(verifier.preprocessing))
        if set(recorded) != set(given):
            raise ValueError(
                f"{location}: this gallery prepares scans with {_named(recorded)}, but the "
                f"given model with {_named(given)}; give "
                f"Verifier.from_checkpoint(..., options={recorded!r}), or load the gallery with "
                "its checkpoint (Gallery.load(path, ckpt)), which adds them"
            )
        raise ValueError(
            f"{location}: this gallery was enrolled with checkpoint {meta['checkpoint']} "
            f"(fingerprint {meta['fingerprint'][:12]}), but {model} has different weights "
            f"or preprocessing ({verifier.fingerprint[:12]}{_tta_note(verifier)}); embeddings of "
            "different models cannot be compared: use the gallery's own checkpoint, or enroll "
            "the writers again in a new gallery"
        )
    if meta["preprocessing"] != verifier.preprocessing:  # the fingerprint covers it
        raise ValueError(
            f"{location}: damaged gallery file (its metadata says preprocessing "
            f"{meta['preprocessing']}, but its fingerprint is of the model's "
            f"{verifier.preprocessing}: the file was edited)"
        )
    if meta["dim"] != verifier.dim:
        raise ValueError(
            f"{location}: the gallery holds {meta['dim']}-dimensional embeddings, but the "
            f"model's are {verifier.dim}-dimensional"
        )
    if meta.get("score") not in SCORES:
        raise ValueError(f"{location}: damaged gallery file (unknown score {meta.get('score')!r})")
    return verifier


def _recorded_tta(location: Path | str, meta: dict[str, Any]) -> int:
    """The test-time augmentation a gallery's references were embedded with (1: none)."""
    try:
        return check_tta(meta.get("tta", 1))
    except ValueError as err:
        raise ValueError(f"{location}: damaged gallery file ({err})") from err


def _named(options: Sequence[str]) -> str:
    """Options as a message names them."""
    return f"normaliser options {', '.join(options)}" if options else "no normaliser options"


def _tta_note(verifier: Verifier) -> str:
    """Where a verifier embeds with test-time augmentation, the message says so."""
    return f", test-time augmentation {verifier.tta}" if verifier.tta != 1 else ""


def _source(image: Signature) -> str:
    """How a reference is recorded: its file's absolute path, or "<array>"."""
    return describe(image) if isinstance(image, np.ndarray) else os.path.abspath(image)


def _resolved(source: str) -> Path | None:
    """The file a recorded reference came from, symbolic links resolved; None for "<array>",
    and for a relative path recorded by an older sigid (relative to a folder no longer known)."""
    path = Path(source)
    return path.resolve() if path.is_absolute() else None
