"""Find the signatures in a dataset folder: one sample table, whatever the layout on disk.

Layouts:
- ``folders``: ``ROOT/<writer>/<image>``, one folder per person, genuine only (the paper's);
- ``cedar``: ``full_org/original_<w>_<n>.png`` + ``full_forg/forgeries_<w>_<n>.png``;
- ``paired``: ``ROOT/<writer>/`` genuine + ``ROOT/<writer>_forg/`` forgeries; in a generated set
  whose writers share names (``writer_texts`` of its synthetic.json), each sample's ``text`` is
  its writer's name, as in chinese_names;
- ``manifest``: a CSV ``path,writer,label[,forger]``, paths relative to the CSV's folder;
- ``chinese_names``: ``ROOT/<writer>/<k>.png|jpg``, k = 1..40, every writer writing the same ten
  names on four media (name = (k-1) mod 10, medium = (k-1) div 10, 0 paper, 1..3 electronic).
  Its claimed identity is the unit (writer, name), ``"<writer>/name<n>"``; the sample's
  ``group`` is the real writer (splits keep a writer's ten units together) and its ``text`` the
  name, whose renderings by other writers are that unit's forgeries (`sigid.data.pairs`).
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sigid.data.images import ImageLoadError, is_image_file, load_image
from sigid.data.preprocess import blank_reason

LAYOUTS: tuple[str, ...] = ("auto", "folders", "cedar", "paired", "manifest", "chinese_names")
FORGERY_SUFFIX = "_forg"
_CEDAR_NAME = re.compile(r"^(original|forgeries)_(\d+)_(\d+)\.png$", re.IGNORECASE)
# chinese_names: ten names on each of four media per writer, files <k>.<suffix>, k = 1..40
CHINESE_NAMES, CHINESE_MEDIA = 10, 4
CHINESE_MEDIUM_NAMES = ("paper", "tablet", "phone in hand", "phone on table")
_GENUINE_LABELS = {"genuine", "g"}
_FORGED_LABELS = {"forged", "forgery", "forg", "f"}
# 0/1 and true/false mean "genuine" in some datasets and "forged" (the positive class) in others.
_AMBIGUOUS_LABEL = re.compile(r"[+-]?\d+(\.\d*)?|true|false|t|yes|no|y|n")


class DatasetError(ValueError):
    """A dataset that cannot be used as asked: says what is missing and where."""


@dataclass(frozen=True)
class Sample:
    """One signature image: who it claims to be, and whether that person wrote it."""

    path: Path
    writer: str
    genuine: bool
    forger: str | None = None
    # Where the claimed identity is finer than a person (chinese_names' (writer, name) units):
    # the real writer, the text written and the capture medium (0 paper, 1.. electronic).
    group: str | None = None
    text: str | None = None
    medium: int | None = None

    @property
    def person(self) -> str:
        """The real writer: what a writer-disjoint split keeps on one side."""
        return self.group if self.group is not None else self.writer


@dataclass(frozen=True)
class Skipped:
    path: Path
    reason: str


@dataclass
class SampleTable:
    """All usable samples of a dataset, plus the files that were skipped and why."""

    root: Path
    layout: str
    samples: list[Sample]
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def writers(self) -> list[str]:
        return sorted({s.writer for s in self.samples}, key=natural_key)

    @property
    def people(self) -> list[str]:
        """The real writers: the writers themselves, except where each claims several
        identities (chinese_names' (writer, name) units)."""
        return sorted({s.person for s in self.samples}, key=natural_key)

    @property
    def genuine(self) -> list[Sample]:
        return [s for s in self.samples if s.genuine]

    @property
    def forged(self) -> list[Sample]:
        return [s for s in self.samples if not s.genuine]

    def summary(self) -> dict[str, Any]:
        """What `sigid scan --json` prints."""
        genuine = Counter(s.writer for s in self.samples if s.genuine)
        forged = Counter(s.writer for s in self.samples if not s.genuine)
        return {
            "root": str(self.root),
            "layout": self.layout,
            "writers": len(self.writers),  # the claimed identities, as `per_writer` keys them
            "people": len(self.people),
            "genuine": sum(genuine.values()),
            "forged": sum(forged.values()),
            "skipped": [{"path": str(s.path), "reason": s.reason} for s in self.skipped],
            "per_writer": {
                w: {"genuine": genuine.get(w, 0), "forged": forged.get(w, 0)} for w in self.writers
            },
        }

    def require_writers(self, minimum: int = 2) -> None:
        """Refuse a dataset that cannot train anything: no images, or too few writers."""
        if not self.samples:
            raise DatasetError(
                f"{self.root}: no signature images found (layout {self.layout!r}; "
                f"{len(self.skipped)} files skipped)"
            )
        if len(self.writers) < minimum:
            raise DatasetError(
                f"{self.root}: found {len(self.writers)} writer(s) ({', '.join(self.writers)}); "
                f"at least {minimum} are needed"
            )


def natural_key(name: str) -> tuple:
    """Sort key under which writer '2' comes before writer '10'. Names equal but for case or
    leading zeros ('Anna', 'anna'; 'w01', 'w1') are ordered by the name itself, so no order
    (and no split drawn from it) depends on the order they were found in."""
    tokens = tuple(int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name))
    return (tokens, name)


def scan(
    root: str | Path,
    layout: str = "auto",
    verify: bool = False,
    skip_bad_images: bool = False,
    layout_option: str = "data.layout=",
) -> SampleTable:
    """Build the sample table of the dataset at `root`.

    With `verify`, every image is decoded once: an unreadable or blank one raises
    `ImageLoadError` (naming the file), or with `skip_bad_images` is skipped and counted.
    `layout_option` is the setting that picks the layout as its user types it (``--layout ``
    on the command line), for errors that suggest another layout.
    """
    root = Path(root)
    if layout not in LAYOUTS:
        raise DatasetError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    if not root.exists():
        raise DatasetError(f"{root}: no such file or folder")
    if layout == "auto":
        layout = detect_layout(root)
    if layout != "manifest" and not root.is_dir():
        raise DatasetError(f"{root}: not a folder (layout {layout!r} expects one)")
    if layout == "folders":
        table = _scan_folders(root, layout_option)
    else:
        reader = {
            "cedar": _scan_cedar,
            "paired": _scan_paired,
            "manifest": _scan_manifest,
            "chinese_names": _scan_chinese_names,
        }
        table = reader[layout](root)
    if verify:
        _verify(table, skip_bad_images)
    table.samples.sort(
        key=lambda s: (natural_key(s.writer), not s.genuine, natural_key(s.path.name))
    )
    return table


def detect_layout(root: Path) -> str:
    """cedar if a full_org folder is there, paired if any <writer>_forg folder, chinese_names if
    every folder is a numbered writer of images <k>.<suffix>, k = 1..40 (`_is_chinese_names`),
    else folders."""
    if root.is_file():
        if root.suffix.lower() == ".csv":
            return "manifest"
        raise DatasetError(f"{root}: a file, but not a CSV manifest")
    if _cedar_base(root) is not None:
        return "cedar"
    if _is_chinese_names(root):
        return "chinese_names"
    if any(d.is_dir() and d.name.endswith(FORGERY_SUFFIX) for d in root.iterdir()):
        return "paired"
    return "folders"


def _cedar_base(root: Path) -> Path | None:
    for base in (root, *sorted(d for d in root.iterdir() if d.is_dir())):
        if (base / "full_org").is_dir():
            return base
    return None


def _skip_reason(path: Path) -> str | None:
    if path.name.startswith("."):
        return "hidden file"
    if not is_image_file(path):
        return f"not an image (suffix {path.suffix or 'none'!r})"
    return None


def _files(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir()), key=lambda p: natural_key(p.name))


def _scan_writer_folder(folder: Path, writer: str, genuine: bool, table: SampleTable) -> None:
    found = len(table.samples)
    for path in _files(folder):
        if path.is_dir():
            table.skipped.append(Skipped(path, "nested folder (not read)"))
        elif reason := _skip_reason(path):
            table.skipped.append(Skipped(path, reason))
        else:
            table.samples.append(Sample(path, writer, genuine))
    if len(table.samples) == found:  # listed, or a writer would vanish without a word
        table.skipped.append(Skipped(folder, "no images"))


def _scan_folders(root: Path, layout_option: str) -> SampleTable:
    table = SampleTable(root, "folders", [])
    entries = _files(root)
    names = {p.name for p in entries if p.is_dir()}
    paired = sorted(
        n for n in names if n.endswith(FORGERY_SUFFIX) and n[: -len(FORGERY_SUFFIX)] in names
    )
    if paired:  # each writer's forgeries would become a writer of their own, in any split
        raise DatasetError(
            f"{root / paired[0]}: skilled forgeries of writer {paired[0][: -len(FORGERY_SUFFIX)]!r}"
            " (the paired layout), which the folders layout would take as a writer of its own; "
            f"use {layout_option}paired (or auto)"
        )
    for path in entries:
        if path.is_dir() and not path.name.startswith("."):
            _scan_writer_folder(path, path.name, True, table)
        else:
            table.skipped.append(Skipped(path, "not inside a writer folder"))
    return table


def _scan_paired(root: Path) -> SampleTable:
    table = SampleTable(root, "paired", [])
    for path in _files(root):
        if path.is_dir() and not path.name.startswith("."):
            forged = path.name.endswith(FORGERY_SUFFIX)
            writer = path.name[: -len(FORGERY_SUFFIX)] if forged else path.name
            _scan_writer_folder(path, writer, not forged, table)
        else:
            table.skipped.append(Skipped(path, "not inside a writer folder"))
    texts = _synthetic_texts(root)
    if texts:
        table.samples = [
            replace(s, text=texts[s.writer]) if s.writer in texts else s for s in table.samples
        ]
    return table


def _synthetic_texts(root: Path) -> dict[str, str]:
    """Writer -> the text it writes, where `root` is a generated set whose writers share names
    (``writer_texts`` of its synthetic.json, `sigid.data.synthetic`); else empty. Those samples
    then carry a ``text``, and other writers' renderings of it are a writer's skilled negatives
    (`sigid.data.pairs.same_text_forgeries`), as chinese_names' are."""
    path = root / "synthetic.json"
    if not path.is_file():
        return {}
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DatasetError(f"{path}: not readable JSON ({err})") from err
    if not isinstance(found, dict) or found.get("generator") != "sigid.data.synthetic":
        return {}
    texts = found.get("writer_texts", {})
    if not isinstance(texts, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in texts.items()
    ):
        raise DatasetError(f"{path}: writer_texts must map writer names to texts")
    return texts


def _scan_cedar(root: Path) -> SampleTable:
    base = _cedar_base(root)
    if base is None:
        raise DatasetError(f"{root}: no full_org folder found (CEDAR layout)")
    table = SampleTable(root, "cedar", [])
    for path in _files(base):
        if path.name not in ("full_org", "full_forg"):
            reason = _skip_reason(path) or "not part of the CEDAR layout"
            table.skipped.append(Skipped(path, reason))
    for sub, genuine in (("full_org", True), ("full_forg", False)):
        folder = base / sub
        if not folder.is_dir():
            continue
        for path in _files(folder):
            match = _CEDAR_NAME.match(path.name)
            if (reason := _skip_reason(path)) is not None:
                table.skipped.append(Skipped(path, reason))
            elif match is None or (match.group(1).lower() == "original") != genuine:
                prefix = "original" if genuine else "forgeries"
                table.skipped.append(Skipped(path, f"name is not {prefix}_<writer>_<n>.png"))
            else:
                table.samples.append(Sample(path, str(int(match.group(2))), genuine))
    return table


def _chinese_k(path: Path) -> int | None:
    """k of a chinese_names file ``<k>.<image suffix>``, k = 1..40; None for any other name."""
    if not is_image_file(path) or not path.stem.isdigit():
        return None
    k = int(path.stem)
    return k if 1 <= k <= CHINESE_NAMES * CHINESE_MEDIA and path.stem == str(k) else None


def _is_chinese_names(root: Path) -> bool:
    """The unmistakable shape: 2+ folders, all named by a number, whose images are all named
    <k> with k = 1..40, and one writer at least with all 40. A writer lacking files is then
    listed by the scan; an image named otherwise (41.png, a.png) needs data.layout=chinese_names,
    which lists it."""
    folders = [d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")]
    if len(folders) < 2 or not all(d.name.isdigit() for d in folders):
        return False
    complete = False
    for folder in folders:
        images = [p for p in folder.iterdir() if is_image_file(p)]
        ks = [_chinese_k(p) for p in images]
        if None in ks:
            return False
        complete = complete or len(set(ks)) == CHINESE_NAMES * CHINESE_MEDIA
    return complete


def _scan_chinese_names(root: Path) -> SampleTable:
    """Every <writer>/<k>.<image> as unit "<writer>/name<n>"; other files, folders and the
    files a writer lacks are listed under skipped. Two images of one k is an error: which is
    the signature cannot be told."""
    table = SampleTable(root, "chinese_names", [])
    for folder in _files(root):
        if not folder.is_dir():
            table.skipped.append(Skipped(folder, "not inside a writer folder"))
            continue
        if folder.name.startswith(".") or not folder.name.isdigit():
            table.skipped.append(Skipped(folder, "not a numbered writer folder (chinese_names)"))
            continue
        writer, found = folder.name, {}
        for path in _files(folder):
            k = _chinese_k(path)
            if k is None:
                reason = "nested folder (not read)" if path.is_dir() else _skip_reason(path)
                table.skipped.append(
                    Skipped(path, reason or "name is not <k>.<image> with k = 1..40")
                )
            elif k in found:
                raise DatasetError(
                    f"{path}: a second image for k={k} beside {found[k].name} "
                    "(chinese_names has one file per name and medium)"
                )
            else:
                found[k] = path
        for k in range(1, CHINESE_NAMES * CHINESE_MEDIA + 1):
            name, medium = (k - 1) % CHINESE_NAMES, (k - 1) // CHINESE_NAMES
            if k not in found:
                table.skipped.append(
                    Skipped(folder / f"{k}.*", f"missing: name {name}, medium {medium}")
                )
                continue
            unit = f"{writer}/name{name}"
            sample = Sample(found[k], unit, True, group=writer, text=f"name{name}", medium=medium)
            table.samples.append(sample)
    return table


def _scan_manifest(root: Path) -> SampleTable:
    csv_path = root / "manifest.csv" if root.is_dir() else root
    if not csv_path.is_file():
        raise DatasetError(f"{csv_path}: manifest CSV not found")
    base = csv_path.parent.resolve()
    table = SampleTable(csv_path, "manifest", [])
    listed: dict[Path, int] = {}  # resolved path -> the line that listed it
    with csv_path.open(newline="", encoding="utf-8-sig") as handle:
        try:
            reader = csv.DictReader(handle)
            missing = {"path", "writer", "label"} - set(reader.fieldnames or [])
            if missing:
                raise DatasetError(f"{csv_path}: missing column(s) {', '.join(sorted(missing))}")
            rows = list(enumerate(reader, start=2))  # all decoded before any row is judged
        except UnicodeDecodeError as err:  # the codec's message names no file
            raise DatasetError(
                f"{csv_path}: not UTF-8 text (cannot decode byte {err.object[err.start]:#04x}); "
                "a manifest must be a UTF-8 CSV"
            ) from err
    for line, row in rows:
        table.samples.extend(_manifest_row(csv_path, base, line, row, table, listed))
    return table


def _manifest_row(
    csv_path: Path,
    base: Path,
    line: int,
    row: dict[str, str],
    table: SampleTable,
    listed: dict[Path, int],
) -> list[Sample]:
    where = f"{csv_path}, line {line}"
    rel, writer = (row["path"] or "").strip(), (row["writer"] or "").strip()
    label = (row["label"] or "").strip().lower()
    if not rel or not writer:
        raise DatasetError(f"{where}: empty path or writer")
    if "\0" in rel:  # the OS would refuse it with a message that names no file
        raise DatasetError(f"{where}: path {rel!r} contains a NUL byte")
    path = (base / rel).resolve()
    if not path.is_relative_to(base):
        raise DatasetError(f"{where}: path {rel!r} leaves the manifest's folder {base}")
    if _AMBIGUOUS_LABEL.fullmatch(label):
        raise DatasetError(
            f"{where}: label {label!r} is ambiguous (1 means genuine in some datasets and forged "
            "in others); write genuine or forged"
        )
    if label not in _GENUINE_LABELS | _FORGED_LABELS:
        raise DatasetError(f"{where}: label {label!r} is neither 'genuine' nor 'forged'")
    if path in listed:  # twice in one table, it could be split into train and test at once
        raise DatasetError(f"{where}: {rel!r} is already listed on line {listed[path]}")
    listed[path] = line
    if (reason := _skip_reason(path)) is not None:
        table.skipped.append(Skipped(path, reason))
        return []
    forger = (row.get("forger") or "").strip() or None
    return [Sample(path, writer, label in _GENUINE_LABELS, forger)]


def _verify(table: SampleTable, skip_bad_images: bool) -> None:
    kept = []
    for sample in table.samples:
        try:
            # a blank page, refused by training in any mode; a faint one depends on the mode
            if (reason := blank_reason(load_image(sample.path))) is not None:
                raise ImageLoadError(sample.path, reason)
        except ImageLoadError as err:
            if not skip_bad_images:
                raise
            table.skipped.append(Skipped(sample.path, err.reason))
        else:
            kept.append(sample)
    table.samples = kept
