"""A gallery of enrolled writers for a Siamese model: enroll, identify, verify, no retraining.

A writer is enrolled from a few reference signatures: their embeddings (the Siamese embedding
branch) are stored, and the network's own similarity head compares a questioned signature to
them.

Verifying a claimed writer uses one of two scores, named in the file (`SCORES`):

- ``normalized`` (the default): the similarity head applied to the questioned signature's mean
  distance to the references, minus the references' own mean distance to each other, plus the
  model's typical genuine distance (`Verifier.genuine_distance`, stored in the
  checkpoint by training). A writer whose signatures vary a lot has large genuine distances, a
  consistent writer small ones, and one threshold serves both badly; measuring each writer's
  distances against their own spread is the classical user-dependent score normalisation, from
  the references alone. For a writer as consistent as the validation writers' average it is the
  similarity of the mean distance, so the checkpoint's threshold keeps its meaning. With one
  reference there is no spread, and the score is that reference's similarity. Chosen on the
  validation writers of 25 CEDAR fold runs (RESULTS.md).
- ``mean``: the mean similarity to the references; galleries of checkpoints that do not store the
  typical genuine distance (written before sigid did), and gallery files of format version 1,
  score so. Either score stays on the scale of one pair's similarity whatever the number of
  references; the max would rise with every reference added (more chances of one close match),
  letting more forgeries through in a larger gallery.

Identifying ranks the enrolled writers by mean similarity: normalising by each writer's spread
helps decide whether a claim holds, but ranks a varied writer too high against the others (the
validation writers identify better by the mean). The best-ranked writer is then the answer only
if that claim verifies.

One file holds a gallery: an ``.npz`` (readable with ``np.load(path, allow_pickle=False)``) with

- ``embeddings``: float32 (N, dim), one row per reference signature;
- ``writer_index``: int32 (N,), each row's writer as an index into the metadata's ``writers``;
- ``metadata``: uint8 bytes of a UTF-8 JSON object: ``format`` ("sigid-gallery"), ``version``,
  ``checkpoint`` (absolute path), ``fingerprint`` (`verifier.fingerprint` of the embedding
  branch and its preprocessing), ``preprocessing``, ``dim``, ``score`` (one of `SCORES`),
  ``writers`` and ``sources`` (each row's image file by absolute path, or "<array>").

It is written atomically (a temporary file in the same folder, then `os.replace`), and it can
only be used with the model that made it: another checkpoint is refused.
"""

from __future__ import annotations

import json
import os
import reprlib
import unicodedata
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sigid.atomic import atomic_path
from sigid.errors import os_reason
from sigid.inference.identifier import check_top_k
from sigid.inference.inputs import Signature, as_list, describe
from sigid.inference.verifier import Verdict, Verifier

FORMAT, VERSION = "sigid-gallery", 2
# Version 1 files held a description of the one score of that time, the mean similarity.
READABLE_VERSIONS = (1, 2)
SCORES = {
    "normalized": "similarity of the mean distance to the writer's references, less the "
    "references' own mean distance, plus the model's typical genuine distance",
    "mean": "mean similarity to the writer's references",
}
# Enrolled writers named in an error message before "...".
MAX_NAMES_SHOWN = 10
# Metadata fields of every readable version, with their JSON types; checked on load.
METADATA_FIELDS: dict[str, tuple[type, ...]] = {
    "checkpoint": (str, type(None)),
    "fingerprint": (str,),
    "preprocessing": (dict,),
    "dim": (int,),
    "writers": (list,),
    "sources": (list,),
}
JSON_TYPES: dict[type, str] = {
    str: "a string",
    type(None): "null",
    dict: "an object",
    int: "an integer",
    list: "a list",
}
# How an .npz file (a zip archive, possibly empty) starts; np.load checks the same.
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
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


def check_writer_name(writer: Any) -> str:
    """`writer`, refused where it would be another writer than it looks: "bob " and "bob" print
    the same, and a newline or other control character breaks the listings."""
    if not isinstance(writer, str):
        raise TypeError(f"a writer name is a str, not {type(writer).__name__} {writer!r}")
    if not writer.strip():
        raise ValueError("a writer name must not be empty")
    if writer != writer.strip():
        raise ValueError(
            f"writer name {writer!r} begins or ends with white space, so it would be another "
            f"writer than {writer.strip()!r}, printed the same; give the name without it"
        )
    # control characters break listings; format ones (a zero-width space) print as nothing
    control = next((c for c in writer if unicodedata.category(c) in ("Cc", "Cf")), None)
    if control is not None:
        raise ValueError(
            f"writer name {writer!r} holds an invisible or control character ({control!r})"
        )
    return writer


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
        stamp = _stamp(path)  # before reading: a save in between shows as a change
        meta, embeddings, index = _read(path)
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
        gallery = cls(verifier, path, _stored_score(path, meta))
        gallery._seen = stamp
        sources = meta["sources"]
        for number, writer in enumerate(meta["writers"]):
            rows = np.flatnonzero(index == number)
            gallery._embeddings[writer] = embeddings[rows]
            gallery._sources[writer] = [sources[i] for i in rows]
        return gallery

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
        if _stamp(target) != seen:
            raise ValueError(
                f"{target}: not saved: the file changed since this gallery read it (another "
                "enrollment saved there?), or holds another gallery; saving would drop the "
                "writers in it: load it again (Gallery.load) and enroll there"
            )
        writers = self.writers
        embeddings = [self._embeddings[w] for w in writers]
        for writer, rows in zip(writers, embeddings, strict=True):
            if not np.isfinite(rows).all():  # a file that `load` would refuse
                raise ValueError(
                    f"{target}: not saved: the embeddings of writer {writer!r} contain NaN or "
                    "infinite values"
                )
        meta = {
            "format": FORMAT,
            "version": VERSION,
            "checkpoint": str(self.verifier.checkpoint) if self.verifier.checkpoint else None,
            "fingerprint": self.verifier.fingerprint,
            "preprocessing": self.verifier.preprocessing,
            "dim": self.verifier.dim,
            "score": self.score,
            "writers": writers,
            "sources": [s for w in writers for s in self._sources[w]],
        }
        arrays = {
            "embeddings": (
                np.concatenate(embeddings).astype(np.float32)
                if embeddings
                else np.zeros((0, self.verifier.dim), dtype=np.float32)
            ),
            "writer_index": np.repeat(
                np.arange(len(writers), dtype=np.int32), [len(e) for e in embeddings]
            ).astype(np.int32),
            "metadata": np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8),
        }
        # modes as open(target, "w"): the umask is honoured, an existing file's mode kept
        with atomic_path(target) as temp, temp.open("wb") as stream:
            np.savez(stream, **arrays)
            stream.flush()
            os.fsync(stream.fileno())
        self.path, self._seen = target, _stamp(target)
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
        ranked = sorted(
            (Candidate(w, self._rank(query, w)) for w in self._embeddings),
            key=lambda c: -c.score,
        )
        best = ranked[0].writer
        score = self._score(query, best)
        shown = ranked[:top_k]
        found = best if score >= self.threshold else None
        return Identification(found, shown, self.threshold, score)

    def verify(self, writer: str, image: Signature) -> Verdict:
        """Is `image` by the enrolled `writer`? Scored against their references (`score`)."""
        self._require_writers()
        writer = self._known(writer)
        query = self.verifier.embed([image])[0]
        return self.verifier.decide(self._score(query, writer))

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


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """Which version of the file is at `path` (an atomic save makes a new inode), None if
    there is none."""
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return (info.st_ino, info.st_mtime_ns, info.st_size)


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


def writer_score(
    verifier: Verifier,
    query: np.ndarray,
    references: np.ndarray,
    score: str,
    genuine_distance: float | None = None,
) -> float:
    """A writer's score for a questioned embedding against their (K, dim) reference embeddings,
    by the rule `score` (module doc). `genuine_distance` overrides the verifier's. The
    evaluation protocols score with it too (`sigid.evaluation.protocols.writer_dependent`), so they
    measure what a gallery decides."""
    if score == "mean":
        return float(np.mean(verifier.scores(query, references)))
    typical = verifier.genuine_distance if genuine_distance is None else genuine_distance
    if typical is None:
        raise ValueError(f"the {score!r} score needs the model's typical genuine distance")
    return float(
        verifier.similarity_at(
            verifier.distances(query, references).mean()
            - reference_spread(references, typical)
            + typical
        )
    )


def reference_spread(references: np.ndarray, default: float) -> float:
    """The mean Euclidean distance between a writer's reference embeddings (each pair once);
    `default` with fewer than two references."""
    refs = np.asarray(references, dtype=np.float64)
    if len(refs) < 2:
        return float(default)
    distances = np.sqrt(((refs[:, None, :] - refs[None, :, :]) ** 2).sum(-1))
    upper = np.triu_indices(len(refs), k=1)
    return float(distances[upper].mean())


def check_score(verifier: Verifier, score: str | None) -> str:
    """`score`, checked; None: the default for this model."""
    if score is None:
        return "normalized" if verifier.genuine_distance is not None else "mean"
    if score not in SCORES:
        raise ValueError(f"unknown gallery score {score!r}; expected one of {', '.join(SCORES)}")
    if score == "normalized" and verifier.genuine_distance is None:
        model = verifier.checkpoint or "this model"
        raise ValueError(
            f"{model} does not store the typical genuine distance that the 'normalized' score "
            "needs (it was trained before sigid stored it); use score 'mean', or retrain"
        )
    return score


def _stored_score(path: Path, meta: dict[str, Any]) -> str:
    if meta["version"] == 1:
        return "mean"
    score = meta.get("score")
    if score not in SCORES:
        raise ValueError(f"{path}: damaged gallery file (unknown score {score!r})")
    return score


def _read(path: Path) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """(metadata, embeddings, writer_index) of a gallery file, checked for consistency."""
    if not path.exists():
        raise ValueError(f"{path}: no such gallery file")
    if not path.is_file():
        raise ValueError(f"{path}: not a gallery file (not a regular file)")
    try:
        with path.open("rb") as stream:
            magic = stream.read(len(ZIP_MAGIC[0]))
    except OSError as err:  # not a content problem: say what the system says
        raise ValueError(f"{path}: cannot read: {os_reason(err).lower()}") from err
    if not magic:
        raise ValueError(f"{path}: not a sigid gallery file (empty file, 0 bytes)")
    if not magic.startswith(ZIP_MAGIC):  # else np.load tries pickle, and talks about that
        raise ValueError(f"{path}: not a sigid gallery file (not an .npz (zip) archive)")
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(bytes(data["metadata"]).decode("utf-8"))
            embeddings, index = data["embeddings"], data["writer_index"]
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as err:  # JSON too
        raise ValueError(f"{path}: not a sigid gallery file ({err})") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not a sigid gallery file (no {FORMAT!r} metadata)")
    version = meta.get("version")
    if type(version) is not int or version not in READABLE_VERSIONS:
        raise ValueError(f"{path}: gallery format version {version} is not supported")
    _check_metadata(path, meta)
    if embeddings.ndim != 2 or not np.issubdtype(embeddings.dtype, np.floating):
        raise ValueError(f"{path}: damaged gallery file (embeddings are not a 2-D float array)")
    if not np.issubdtype(index.dtype, np.integer):  # a cast would round 0.5 to a writer
        raise ValueError(
            f"{path}: damaged gallery file (writer_index holds {index.dtype} values, not integers)"
        )
    embeddings, index = embeddings.astype(np.float32), index.astype(np.int64)
    writers, n = meta["writers"], len(embeddings)
    if (
        index.shape != (n,)
        or len(set(writers)) != len(writers)
        or len(meta["sources"]) != n
        or set(index.tolist()) != set(range(len(writers)))
    ):
        raise ValueError(f"{path}: damaged gallery file (inconsistent arrays and metadata)")
    if embeddings.shape[1] != meta["dim"]:
        raise ValueError(
            f"{path}: damaged gallery file ({embeddings.shape[1]}-dimensional embeddings, but "
            f"the metadata says {meta['dim']})"
        )
    if not np.isfinite(embeddings).all():  # they would score NaN, silently never matching
        raise ValueError(f"{path}: embeddings contain NaN or infinite values")
    return meta, embeddings, index


def _check_metadata(path: Path, meta: dict[str, Any]) -> None:
    """Every field of `METADATA_FIELDS` is there with its type: a hand-edited or foreign file
    fails here, naming the field, not later with a KeyError or TypeError from deep inside."""
    for name, types in METADATA_FIELDS.items():
        if name not in meta:
            raise ValueError(f"{path}: damaged gallery file (no {name!r} in the metadata)")
        value = meta[name]
        if not isinstance(value, types) or isinstance(value, bool):
            expected = " or ".join(JSON_TYPES[t] for t in types)
            raise ValueError(
                f"{path}: damaged gallery file (metadata {name!r} is not {expected}: "
                f"{reprlib.repr(value)})"
            )
    for name in ("writers", "sources"):
        if not all(isinstance(item, str) for item in meta[name]):
            raise ValueError(
                f"{path}: damaged gallery file (metadata {name!r} is not a list of strings)"
            )
