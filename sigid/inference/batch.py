"""Many questioned signatures in one call (`sigid identify`, `sigid verify --gallery`): folders
expanded to their images, each image answered on its own, one row per image.

An image that fails (missing, unreadable, no ink) gets a row with its reason in ``error``; the
others are still answered, so one bad scan in a folder of thousands loses nothing else.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from sigid.data.images import is_image_file
from sigid.errors import os_reason

# What `answer_each` calls for one image: the row's fields, and the lines a person reads.
Answer = Callable[[Path], tuple[dict[str, Any], list[str]]]


@dataclass(frozen=True)
class Questioned:
    """One questioned image; or a folder argument that gave none, and why (`error`)."""

    path: Path
    error: str | None = None


@dataclass(frozen=True)
class Row:
    """The answer for one image: `fields` and `lines` where it worked, else `error`."""

    image: Path
    fields: dict[str, Any] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """``{"image": ..., **fields, "error": None or why}``: every row ends with ``error``."""
        return {"image": str(self.image), **self.fields, "error": self.error}


def questioned(paths: Sequence[Path]) -> list[Questioned]:
    """The images that `paths` name, in order: a file as given (a missing or unreadable one fails
    when it is read, in its own row); a folder as its image files (by suffix; hidden files,
    other files and subfolders are skipped), sorted by name. An image given twice (the same
    resolved path, e.g. a file and its folder) is answered once, where it first came."""
    items: list[Questioned] = []
    seen: set[Path] = set()

    def add(path: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            items.append(Questioned(path))

    for path in paths:
        if not path.is_dir():
            add(path)
            continue
        try:
            images = sorted(p for p in path.iterdir() if is_image_file(p) and p.is_file())
        except OSError as err:
            items.append(Questioned(path, f"{path}: cannot list the folder ({os_reason(err)})"))
            continue
        if not images:
            items.append(Questioned(path, f"{path}: no signature images in this folder"))
        for image in images:
            add(image)
    return items


def answer_each(items: Iterable[Questioned], answer: Answer) -> Iterator[Row]:
    """A row per item, as it is answered; a ValueError or OSError (the image's: its message
    names the file) becomes the row's error."""
    for item in items:
        if item.error is not None:
            yield Row(item.path, error=item.error)
            continue
        try:
            fields, lines = answer(item.path)
        except (ValueError, OSError) as err:
            yield Row(item.path, error=str(err))
        else:
            yield Row(item.path, fields, lines)


def write_jsonl(rows: Iterable[Row], out: TextIO) -> int:
    """One JSON object per line, each written as its image is answered; returns the failures."""
    failed = 0
    for row in rows:
        failed += row.error is not None
        out.write(json.dumps(row.to_dict(), allow_nan=False) + "\n")
        out.flush()
    return failed


def write_csv(rows: Iterable[Row], out: TextIO) -> int:
    """A CSV table, a row per image, once all are answered (the columns are every row's fields;
    a list of candidates becomes writer_1, score_1, writer_2, ...; an empty cell is None);
    returns the failures."""
    table = [_flat(row.to_dict()) for row in rows]
    columns = [key for key in dict.fromkeys(k for line in table for k in line) if key != "error"]
    writer = csv.DictWriter(out, [*columns, "error"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    return sum(line["error"] is not None for line in table)


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    """The row's single fields, then its ranked candidates' (best first), then ``error``."""
    single = {k: v for k, v in row.items() if not isinstance(v, list) and k != "error"}
    ranked = {
        f"{name}_{rank}": value
        for candidates in row.values()
        if isinstance(candidates, list)
        for rank, candidate in enumerate(candidates, start=1)
        for name, value in candidate.items()
    }
    return {**single, **ranked, "error": row["error"]}
