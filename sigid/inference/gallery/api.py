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

from sigid.inference.gallery import storage
from sigid.inference.gallery.names import check_writer_name
from sigid.inference.gallery.ranking import References
from sigid.inference.gallery.scores import check_score, writer_score
from sigid.inference.identifier import check_top_k
from sigid.inference.inputs import Signature, as_list, describe
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
    """Enrolled writers' reference embeddings, tied to one Siamese checkpoint.

    ``Gallery(Verifier.from_checkpoint(ckpt))`` starts an empty one; `Gallery.load` reads a
    saved one (with its own checkpoint unless another is given, which must have the same
    weights); `Gallery.open` does either, for "enroll into this file". `score` is one of
    `SCORES`; by default ``normalized``, or ``mean`` for a checkpoint that does not store its
    typical genuine distance.
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
        self.path = Path(path) if path is not None else None
        self.score = check_score(verifier, score)
        self._embeddings: dict[str, np.ndarray] = {}
        self._sources: dict[str, list[str]] = {}
        # all of `_embeddings` in one matrix, for identify (None: to build again; `_references`)
        self._table: References | None = None
        # the file at `path` as this gallery last read or wrote it (None: not read); see `save`
        self._seen: tuple[int, int, int] | None = None

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
        """Read a gallery file. The model is `verifier`, else `checkpoint`, else the checkpoint
        path stored in the file; it must have the weights the gallery was enrolled with.
        `threshold` overrides the checkpoint's decision threshold."""
        if isinstance(checkpoint, Verifier):  # positional: Gallery.load(path, verifier)
            raise TypeError("Gallery.load(path, checkpoint): give a Verifier as verifier=...")
        path = Path(path)
        if verifier is not None and (checkpoint is not None or threshold is not None):
            raise ValueError("give either a verifier, or a checkpoint and a threshold; not both")
        stamp = storage.stamp(path)  # before reading: a save in between shows as a change
        meta, embeddings, index = storage.read(path)
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
                        f"{path}: {where}; give the checkpoint the gallery was enrolled with "
                        "(--ckpt)"
                    )
            verifier = Verifier.from_checkpoint(checkpoint, threshold=threshold)
        if verifier.fingerprint != meta["fingerprint"]:
            model = verifier.checkpoint or "the given model"
            raise ValueError(
                f"{path}: this gallery was enrolled with checkpoint {meta['checkpoint']} "
                f"(fingerprint {meta['fingerprint'][:12]}), but {model} has different weights "
                f"or preprocessing ({verifier.fingerprint[:12]}); embeddings of different models "
                "cannot be compared: use the gallery's own checkpoint, or enroll the writers "
                "again in a new gallery"
            )
        if meta["preprocessing"] != verifier.preprocessing:  # the fingerprint covers it
            raise ValueError(
                f"{path}: damaged gallery file (its metadata says preprocessing "
                f"{meta['preprocessing']}, but its fingerprint is of the model's "
                f"{verifier.preprocessing}: the file was edited)"
            )
        if meta["dim"] != verifier.dim:
            raise ValueError(
                f"{path}: the gallery holds {meta['dim']}-dimensional embeddings, but the model's "
                f"are {verifier.dim}-dimensional"
            )
        gallery = cls(verifier, path, storage.stored_score(path, meta))
        gallery._seen = stamp
        gallery._hold(meta["writers"], embeddings, index, meta["sources"])
        return gallery

    def _hold(
        self, writers: list[str], embeddings: np.ndarray, index: np.ndarray, sources: list[str]
    ) -> None:
        """Take a file's references: each writer's rows in file order, all in one matrix
        (`References`), which `_embeddings` views."""
        if (np.diff(index) < 0).any():  # `storage.write` groups them; another program may not
            order = np.argsort(index, kind="stable")
            embeddings, index, sources = (
                embeddings[order],
                index[order],
                [sources[i] for i in order],
            )
        counts = np.bincount(index, minlength=len(writers))
        self._table = References(writers, embeddings, counts)
        self._embeddings = self._table.rows()
        ends = np.cumsum(counts).tolist()
        self._sources = {
            w: sources[end - count : end]
            for w, count, end in zip(writers, counts.tolist(), ends, strict=True)
        }

    @classmethod
    def open(
        cls,
        path: str | Path,
        checkpoint: str | Path | None = None,
        threshold: float | None = None,
        score: str | None = None,
    ) -> Gallery:
        """The gallery saved at `path`, or a new empty one for `checkpoint` if there is none
        (`score` only applies to a new one: a saved gallery keeps its own)."""
        path = Path(path)
        if path.exists():
            gallery = cls.load(path, checkpoint, threshold=threshold)
            if score is not None and score != gallery.score:
                raise ValueError(
                    f"{path}: this gallery scores by {gallery.score!r}, not {score!r}; a "
                    "gallery keeps the score it was created with"
                )
            return gallery
        if checkpoint is None:
            raise ValueError(
                f"{path}: no such gallery file; give a Siamese checkpoint (--ckpt) to create it"
            )
        return cls(Verifier.from_checkpoint(checkpoint, threshold=threshold), path, score)

    def save(self, path: str | Path | None = None) -> Path:
        """Write the gallery atomically: a temporary file in the same folder, then os.replace,
        so the file at `path` is always either the previous gallery or the complete new one.

        Refused when the file is not as this gallery last read or wrote it (another `Gallery`
        or `sigid enroll` saved there since, or a gallery file is in the way): replacing it
        would drop the writers enrolled there."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("no path to save the gallery to")
        seen = self._seen if self.path is not None and _same_file(target, self.path) else None
        if storage.stamp(target) != seen:
            raise ValueError(
                f"{target}: not saved: the file changed since this gallery read it (another "
                "enrollment saved there?), or holds another gallery; saving would drop the "
                "writers in it: load it again (Gallery.load) and enroll there"
            )
        storage.write(target, self.verifier, self.score, self._embeddings, self._sources)
        self.path, self._seen = target, storage.stamp(target)
        return target

    # -- contents ------------------------------------------------------------------------------

    @property
    def writers(self) -> list[str]:
        """Enrolled writers, in enrolment order."""
        return list(self._embeddings)

    @property
    def threshold(self) -> float:
        return self.verifier.threshold

    def __len__(self) -> int:
        return len(self._embeddings)

    def __contains__(self, writer: object) -> bool:
        return writer in self._embeddings

    def references(self, writer: str) -> np.ndarray:
        """(n, dim) embeddings of a writer's reference signatures."""
        return self._embeddings[self._known(writer)].copy()

    def sources(self, writer: str) -> list[str]:
        """The files (or "<array>") a writer's references came from."""
        return list(self._sources[self._known(writer)])

    # -- use -----------------------------------------------------------------------------------

    def enroll(self, writer: str, images: Sequence[Signature] | np.ndarray) -> int:
        """Add reference signatures for `writer` (new, or more for an enrolled one); returns
        the writer's number of references. Nothing is added if the name is refused
        (`check_writer_name`), if any image fails, or is a reference already, the writer's
        (`COUNTS_ONCE`) or another's (`ONE_WRITER`). Files are recorded by absolute path."""
        writer = check_writer_name(writer)
        images = as_list(images)
        embeddings = self.verifier.embed(images)
        self._refuse_repeats(writer, images, embeddings)
        old = self._embeddings.get(writer, np.zeros((0, self.verifier.dim), dtype=np.float32))
        self._embeddings[writer] = np.concatenate([old, embeddings])
        self._sources[writer] = [*self._sources.get(writer, []), *map(_source, images)]
        self._table = None
        return len(self._embeddings[writer])

    def _refuse_repeats(self, writer: str, images: list[Signature], embeddings: np.ndarray) -> None:
        """Refuse a new reference that is enrolled already (for `writer` or another writer), or
        given twice: the same file (resolved path), or the same image (embedding; arrays,
        copies of a file)."""
        owners = [w for w in self._embeddings for _ in self._sources[w]]
        sources = [source for w in self._embeddings for source in self._sources[w]]
        paths = [_resolved(source) for source in sources]
        rows = [self._embeddings[w] for w in self._embeddings]
        known = np.concatenate(rows) if rows else np.zeros((0, self.verifier.dim), np.float32)
        enrolled = len(sources)
        for image, row in zip(images, embeddings, strict=True):
            name, path = describe(image), _resolved(_source(image))
            same_file = np.array([path is not None and path == other for other in paths], bool)
            same = same_file | np.isclose(row, known, **SAME_EMBEDDING).all(axis=1)
            if same.any():
                first = int(np.argmax(same))
                what = "" if same_file[first] else f"the same image as {sources[first]}, "
                if first >= enrolled:
                    where = f"given twice for writer {writer!r}: {COUNTS_ONCE}"
                elif owners[first] == writer:
                    where = f"already a reference of writer {writer!r}: {COUNTS_ONCE}"
                else:
                    where = f"already a reference of writer {owners[first]!r}: {ONE_WRITER}"
                raise ValueError(f"{name}: {what}{where}")
            owners.append(writer)
            sources.append(name)
            paths.append(path)
            known = np.concatenate([known, row[None]])

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
        if top_k is not None:
            writers = [writers[i] for i in table.contenders(self.verifier, query, top_k)]
        ranked = sorted(
            (Candidate(w, self._rank(query, w)) for w in writers), key=lambda c: -c.score
        )
        return ranked[:top_k]

    def _references(self) -> References:
        """All references in one matrix, built again after an enrollment; each writer's rows
        then view it, so that the gallery holds the embeddings once."""
        if self._table is None:
            self._table = References.gather(self._embeddings, self.verifier.dim)
            self._embeddings = self._table.rows()
        return self._table

    def _score(self, query: np.ndarray, writer: str) -> float:
        return writer_score(self.verifier, query, self._embeddings[writer], self.score)

    def _rank(self, query: np.ndarray, writer: str) -> float:
        return writer_score(self.verifier, query, self._embeddings[writer], "mean")

    def _where(self) -> str:
        return str(self.path) if self.path is not None else "the gallery"

    def _require_writers(self) -> None:
        if not self._embeddings:
            raise ValueError(
                f"{self._where()}: no writers enrolled yet; enroll some first (sigid enroll)"
            )

    def _known(self, writer: str) -> str:
        if writer not in self._embeddings:
            names = self.writers
            shown = ", ".join(names[:MAX_NAMES_SHOWN]) + (
                ", ..." if len(names) > MAX_NAMES_SHOWN else ""
            )
            raise ValueError(
                f"writer {writer!r} is not enrolled in {self._where()} "
                f"(enrolled: {shown or 'nobody'})"
            )
        return writer


def _same_file(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


def _source(image: Signature) -> str:
    """How a reference is recorded: its file's absolute path, or "<array>"."""
    return describe(image) if isinstance(image, np.ndarray) else os.path.abspath(image)


def _resolved(source: str) -> Path | None:
    """The file a recorded reference came from, symbolic links resolved; None for "<array>",
    and for a relative path recorded by an older sigid (relative to a folder no longer known)."""
    path = Path(source)
    return path.resolve() if path.is_absolute() else None
