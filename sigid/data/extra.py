"""Extra collections: other datasets whose writers join the training split of a pair run.

``data.extra`` lists them (``[{root: PATH, layout: chinese_names, fold: true}, ...]``). Each is
scanned with its own layout and preprocessed with the run's preprocessing; its claimed writers,
real writers (`Sample.group`), forgers and texts are prefixed by the collection's name
(``"chinese_names:12/name3"``), so that none meets a writer of the primary collection or of
another extra one, and its forgeries stay its own (skilled for CEDAR, the same name by its other
writers for chinese_names). Validation and test come from the primary collection alone.

With ``fold: true`` only the collection's own training writers join: its writer-disjoint split
(the settings of its data config ``conf/data/<config>.yaml``, by default the layout's, updated by
an inline ``split``; fold and seed the run's unless given there) holds its validation and test
writers out, so a later evaluation on them (``sigid evaluate ... data=chinese_names``) is of
writers the run never saw. Without it, all of its writers train.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from sigid.data.layouts import LAYOUTS, DatasetError, Sample, SampleTable, natural_key, scan
from sigid.data.splits import SPLITS, claimed_by, samples_of, split_writers

# The keys an entry of data.extra takes.
EXTRA_KEYS = ("root", "layout", "name", "fold", "split", "config", "preprocess")
# The split settings a `fold: true` entry reads (conf/data/*.yaml's `split`, writer-disjoint part).
FOLD_KEYS = ("folds", "fold", "val_writers", "rotate_val")


@dataclass(frozen=True)
class Extra:
    """One entry of ``data.extra``, checked; `where` is how errors name it (``data.extra[0]``)."""

    root: Path
    layout: str
    name: str
    fold: bool
    split: dict[str, Any] | None
    config: str | None
    where: str


def parse_extra(
    entries: Sequence[Mapping[str, Any]] | None, preprocess: Mapping[str, Any]
) -> list[Extra]:
    """The entries of ``data.extra``, checked against the run's `preprocess`: a one-line
    `DatasetError` naming ``data.extra[i].<key>`` for the first that cannot be used."""
    out: list[Extra] = []
    for i, entry in enumerate(entries or []):
        where = f"data.extra[{i}]"
        if not isinstance(entry, Mapping):
            raise DatasetError(f"{where}={entry!r}: expected a mapping such as {{root: PATH}}")
        unknown = sorted(set(entry) - set(EXTRA_KEYS))
        if unknown:
            raise DatasetError(
                f"{where}.{unknown[0]}: not a setting of an extra collection (takes "
                f"{', '.join(EXTRA_KEYS)})"
            )
        if not entry.get("root"):
            raise DatasetError(f"{where}.root: not set (the extra collection's folder)")
        root = Path(str(entry["root"])).expanduser()
        if not root.exists():
            raise DatasetError(f"{where}.root={root}: no such file or folder")
        layout = str(entry.get("layout") or "auto")
        if layout not in LAYOUTS:
            raise DatasetError(
                f"{where}.layout={layout!r}: not a layout (one of {', '.join(LAYOUTS)})"
            )
        wanted = entry.get("preprocess")
        if wanted is not None:
            _check_preprocess(wanted, preprocess, where)
        fold = entry.get("fold", False)
        if not isinstance(fold, bool):
            raise DatasetError(f"{where}.fold={fold!r}: expected true or false")
        split = entry.get("split")
        if split is not None and not isinstance(split, Mapping):
            raise DatasetError(f"{where}.split={split!r}: expected a mapping such as {{fold: 0}}")
        if split is not None and not fold:
            raise DatasetError(f"{where}.split: only read with fold: true (set {where}.fold=true)")
        name = str(entry.get("name") or root.name)
        if ":" in name or not name:
            raise DatasetError(f"{where}.name={name!r}: a collection's name cannot hold ':'")
        if any(e.name == name for e in out):
            raise DatasetError(
                f"{where}.name={name!r}: another extra collection has this name; give each "
                "its own (data.extra[i].name)"
            )
        config = entry.get("config")
        out.append(Extra(root, layout, name, fold, dict(split or {}), config, where))
    return out


def _check_preprocess(wanted: Any, run: Mapping[str, Any], where: str) -> None:
    """An entry's own `preprocess` must be the run's: one network sees both collections."""
    if not isinstance(wanted, Mapping):
        raise DatasetError(f"{where}.preprocess={wanted!r}: expected a mapping of mode, size")
    for key in ("mode", "size"):
        if key not in wanted:
            continue
        mine = [int(v) for v in wanted[key]] if key == "size" else str(wanted[key])
        if mine != run[key]:
            raise DatasetError(
                f"{where}.preprocess.{key}={mine}: differs from the run's data.preprocess."
                f"{key}={run[key]}; every collection is preprocessed as the run is (drop it, or "
                "set both alike)"
            )


def own_split(extra: Extra, fold: int, seed: int) -> dict[str, Any]:
    """The writer-disjoint split settings of `extra`: its data config's (``config``, else the
    layout's config where there is one, else the defaults of ``conf/data/synthetic.yaml``),
    updated by its inline `split`; `fold` (the run's) unless it names one."""
    conf = files("sigid.conf") / "data"
    settings = dict(OmegaConf.to_container(OmegaConf.load(str(conf / "synthetic.yaml")))["split"])
    name = extra.config or extra.layout
    path = conf / f"{name}.yaml"
    if path.is_file():
        own = OmegaConf.to_container(OmegaConf.load(str(path)))
        settings.update(own.get("split") or {})
    elif extra.config is not None:
        raise DatasetError(f"{extra.where}.config={name!r}: no conf/data/{name}.yaml")
    unknown = sorted(set(extra.split or {}) - set(FOLD_KEYS))
    if unknown:
        raise DatasetError(
            f"{extra.where}.split.{unknown[0]}: not a setting of a writer-disjoint split (takes "
            f"{', '.join(FOLD_KEYS)})"
        )
    settings["fold"] = fold
    settings.update(extra.split or {})
    settings["seed"] = seed
    return settings


def scan_extra(extra: Extra, skip_bad_images: bool = False) -> SampleTable:
    """`extra`'s sample table, every name in it prefixed by ``<name>:``."""
    try:
        table = scan(extra.root, extra.layout, layout_option=f"{extra.where}.layout=")
        table.require_writers(2)
    except DatasetError as err:
        raise DatasetError(f"{extra.where}: {err}") from err
    table.samples = [tagged(s, extra.name) for s in table.samples]
    return table


def tagged(sample: Sample, name: str) -> Sample:
    """`sample` with its writer, real writer, forger and text prefixed by ``<name>:``."""

    def tag(value: str | None) -> str | None:
        return None if value is None else f"{name}:{value}"

    return dataclasses.replace(
        sample,
        writer=tag(sample.writer),
        group=tag(sample.group),
        forger=tag(sample.forger),
        text=tag(sample.text),
    )


def training_samples(
    extra: Extra, samples: Sequence[Sample], fold: int, seed: int
) -> tuple[list[Sample], dict[str, Any]]:
    """The samples of `extra` that join the training split, and its record for ``split.json``:
    all of them, or with ``fold`` those of its own split's training writers (less forgeries
    made by its validation and test writers)."""
    record: dict[str, Any] = {"root": str(extra.root), "layout": extra.layout, "fold": extra.fold}
    if not extra.fold:
        chosen = list(samples)
    else:
        settings = own_split(extra, fold, seed)
        people = sorted({s.person for s in samples if s.genuine})
        try:
            parts = split_writers(
                people,
                folds=int(settings["folds"]),
                fold=int(settings["fold"]),
                val=settings["val_writers"],
                seed=int(settings["seed"]),
                rotate_val=bool(settings.get("rotate_val", False)),
            )
        except DatasetError as err:
            shown = ", ".join(f"{k}={settings.get(k)}" for k in FOLD_KEYS)
            raise DatasetError(f"{extra.where}.split ({shown}): {err}") from err
        writers = claimed_by(samples, parts)
        later = [w for split in SPLITS[1:] for w in parts[split]]
        chosen = samples_of(samples, writers["train"], held_out=later)
        record["split"] = {k: settings[k] for k in (*FOLD_KEYS, "seed") if k in settings}
        record["held_out"] = {name: parts[name] for name in SPLITS[1:]}
    record["writers"] = sorted({s.writer for s in chosen}, key=natural_key)
    return chosen, record
