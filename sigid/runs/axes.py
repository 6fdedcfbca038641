"""A sweep's axes: the settings its jobs vary, read from what Hydra records, and a job's label
made of them (``depth=2,max_epochs=1``), which names its TensorBoard run.

The axes are the sweep's sweep overrides (``model.depth=2,3`` in the sweep folder's
``multirun.yaml``) and the keys of ``hydra.sweeper.params`` (the job's ``.hydra/hydra.yaml``;
an Optuna search space). `RecordSweep` writes ``multirun.yaml`` before the first job, as
Hydra's basic sweeper does and the Optuna sweeper does not. Everything is read from the run
folder's files, so a job resumed with ``hydra.run.dir=<sweep>/<job>`` gets the same label.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from yaml import YAMLError

from sigid.atomic import write_text
from sigid.runs.records import RESUME_KEY, override_key, recorded_overrides

RESOLVER = "sigid.run_label"
SWEEP_RECORD = "multirun.yaml"
# a folder name stays well under the 255 bytes file systems allow
LABEL_LIMIT = 120


def settings(overrides: list[str]) -> dict[str, str]:
    """A job's overrides as {config key: value}: ``+key=1`` and ``key=1`` set the same key."""
    return {
        override_key(o): o.partition("=")[2]
        for o in overrides
        if "=" in o and not o.startswith("~") and override_key(o) != RESUME_KEY
    }


def swept_keys(run_dir: str | Path) -> list[str]:
    """The config keys the sweep holding `run_dir` varies, in the order they were given; []
    for a run outside a sweep folder."""
    run_dir = Path(run_dir)
    sweep = _load(run_dir.parent / SWEEP_RECORD)
    keys = _sweeper_params(_load(run_dir / ".hydra" / "hydra.yaml")) + _sweeper_params(sweep)
    if sweep is not None:
        given = OmegaConf.select(sweep, "hydra.overrides.task", default=None) or []
        try:
            parsed = OverridesParser.create().parse_overrides([str(o) for o in given])
        except HydraException:  # not Hydra's syntax: no axes to read
            parsed = []
        keys += [override_key(o.input_line or "") for o in parsed if o.is_sweep_override()]
    return list(dict.fromkeys(keys))


def swept_settings(run_dir: str | Path) -> dict[str, str]:
    """This run's value of each of its sweep's axes (`swept_keys`), as its overrides set it."""
    try:
        own = settings(recorded_overrides(run_dir))
    except ValueError:  # a damaged record: no label, the run goes on
        return {}
    return {key: own[key] for key in swept_keys(run_dir) if key in own}


def run_label(run_dir: str | Path) -> str:
    """A run's label, its swept settings by their last name (``depth=2,max_epochs=1``; the whole
    key where two axes share a last name; fractions to 4 significant digits, as Optuna draws
    them to 16); "" for a run outside a sweep."""
    swept = swept_settings(run_dir)
    names = [re.split(r"[./@]", key)[-1] for key in swept]
    parts = [
        f"{key if names.count(name) > 1 else name}={_short(value)}"
        for (key, value), name in zip(swept.items(), names, strict=True)
    ]
    label = re.sub(r"[/\\\s]+", "_", ",".join(parts))  # one folder name
    return label[:LABEL_LIMIT]


def register_label_resolver() -> None:
    """``${sigid.run_label:<run folder>}`` in a config: the run's `run_label` (the TensorBoard
    logger's version, so each job of a sweep shows as its settings)."""
    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, lambda run_dir: run_label(str(run_dir)))


class RecordSweep(Callback):
    """Hydra callback: the sweep's config, with its command line's sweep overrides, in the sweep
    folder's ``multirun.yaml`` before any job starts, whichever sweeper runs it."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        record = OmegaConf.to_yaml(config)  # unresolved, as the basic sweeper saves it
        write_text(Path(config.hydra.sweep.dir) / SWEEP_RECORD, record)


def _short(value: str) -> str:
    """A fraction (``0.001229607110732572``) to 4 significant digits; anything else as given."""
    if not re.fullmatch(r"[-+]?(\d+\.\d*|\.\d+|\d+(\.\d*)?[eE][-+]?\d+)", value):
        return value
    return f"{float(value):.4g}"


def _sweeper_params(record: Any) -> list[str]:
    """The keys of a Hydra record's ``hydra.sweeper.params``: a sweep set in a config."""
    params = OmegaConf.select(record, "hydra.sweeper.params", default=None) if record else None
    return [str(key) for key in params] if isinstance(params, DictConfig) else []


def _load(path: Path) -> Any:
    """A YAML record Hydra wrote, None where it is missing or unreadable."""
    if not path.is_file():
        return None
    try:
        return OmegaConf.load(path)
    except (OSError, OmegaConfBaseException, YAMLError):
        return None
