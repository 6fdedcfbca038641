"""A run's records: the overrides it was made with (``.hydra/overrides.yaml``, or ``ensemble.json``
for `sigid ensemble`) and what it trained on (``split.json``), with the check that evaluation
data is not among the latter.

Evaluation rebuilds its split from data overrides and seeds, so a wrong ``data.split.fold`` or
``seed`` would silently test a model on writers (or, for the classifier, files) it trained on;
the evaluation commands compare against the run's ``split.json`` and refuse an overlap.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from yaml import YAMLError

from sigid.atomic import write_text
from sigid.errors import one_line
from sigid.runs.paths import run_folder


def override_list(overrides: Any) -> list[str]:
    """`overrides` as a list of strings; one string is refused (a list of its characters would
    be read as overrides), and so is anything else that is not a list of strings."""
    if overrides is None:
        return []
    if isinstance(overrides, str) or not all(isinstance(o, str) for o in overrides):
        raise TypeError(
            f"overrides must be a list of strings such as ['data.split.fold=1'], got {overrides!r}"
        )
    return list(overrides)


SPLIT_FILE = "split.json"

# What records a run's overrides: Hydra's (training), or `sigid ensemble`'s.
RUN_RECORDS = (Path(".hydra") / "overrides.yaml", Path("ensemble.json"))

# The override that resumes a run: not a setting of the run (summaries ignore it).
RESUME_KEY = "ckpt_path"


def override_key(override: str) -> str:
    """The config key an override sets: ``data.root`` for ``+data.root=x``, ``data`` for
    ``data=cedar``."""
    return override.lstrip("+~").split("=")[0]


def override_group(override: str) -> str:
    """The top-level config key an override belongs to: ``data`` for ``data.root=x``,
    ``data=cedar`` and ``data/augment=none`` alike."""
    return re.split(r"[./]", override_key(override))[0]


def write_run_record(folder: str | Path, cfg: DictConfig, overrides: Sequence[str]) -> None:
    """The record Hydra writes for a `sigid-train` run, for a run started from Python:
    ``.hydra/overrides.yaml`` (what evaluation and resuming start from) and ``config.yaml``."""
    record = Path(folder) / ".hydra"
    write_text(record / "overrides.yaml", OmegaConf.to_yaml(OmegaConf.create(list(overrides))))
    config = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])
    write_text(record / "config.yaml", OmegaConf.to_yaml(config))


def run_record(folder: str | Path) -> Path | None:
    """The file that records how a run folder was made (`RUN_RECORDS`), None where there is
    none: a checkpoint copied out of its run folder has lost what it was trained on."""
    folder = Path(folder)
    return next((folder / f for f in RUN_RECORDS if (folder / f).is_file()), None)


def recorded_overrides(folder: str | Path) -> list[str]:
    """The command-line overrides a run folder was made with (`run_record`); [] where there is
    no record. A damaged record is an error that names it, in one line."""
    where = run_record(folder)
    if where is None:
        return []
    try:
        if where.suffix == ".yaml":
            found = OmegaConf.to_container(OmegaConf.load(where))
        else:
            found = json.loads(where.read_text()).get("overrides", [])
    except (OSError, ValueError, OmegaConfBaseException, YAMLError, AttributeError) as err:
        what = "YAML" if where.suffix == ".yaml" else "JSON"
        raise ValueError(f"{where}: not readable as {what} ({one_line(err)})") from err
    if not isinstance(found, list) or not all(isinstance(o, str) for o in found):
        raise ValueError(f"{where}: not a list of overrides")
    return found


def run_overrides(checkpoint: str | Path, keys: Sequence[str]) -> list[str]:
    """The overrides the checkpoint's run was trained with (`recorded_overrides`), those whose
    top-level key is one of `keys`. Evaluation starts from them, so a run is tested on its own
    data settings."""
    found = recorded_overrides(run_folder(checkpoint))
    return [o for o in found if override_group(o) in keys]


def split_record(checkpoint: str | Path) -> Path | None:
    """The ``split.json`` of the checkpoint's run, None where there is none."""
    record = run_folder(checkpoint) / SPLIT_FILE
    return record if record.is_file() else None


def read_manifest(path: Path) -> dict[str, Any]:
    """A ``split.json``: {split: {"writers": [...], "files": [...]}}; ValueError when malformed."""
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err.msg}, line {err.lineno})") from err
    if not isinstance(data, dict) or not isinstance(data.get("train"), dict):
        raise ValueError(f"{path}: no 'train' split recorded")
    return data


def _real(paths: Iterable[str | Path]) -> set[str]:
    return {os.path.realpath(p) for p in paths}


def check_unseen(
    checkpoint: str | Path, manifest: dict[str, Any], splits: Sequence[str]
) -> Path | None:
    """Refuse evaluation data whose `splits` hold files the checkpoint's run trained on.

    `manifest` is the evaluation data's own split manifest
    (`SignatureDataModule.split_manifest`). Files are compared by their real paths, so another
    data set with writers of the same names is not refused. Returns the ``split.json`` checked,
    or None where the checkpoint is not in a run folder that has one (nothing to check against).
    """
    record = split_record(checkpoint)
    if record is None:
        return None
    trained = _real(read_manifest(record)["train"].get("files", []))
    for name in splits:
        entry = manifest.get(name, {})
        seen = sorted(_real(entry.get("files", [])) & trained)
        if seen:
            raise ValueError(
                f"{checkpoint}: {len(seen)} of the {name} signatures of this data were trained on, "
                f"e.g. {seen[0]} (see {record}); give the data settings the run was trained "
                "with (data.split.fold, data.seed)"
            )
    return record
