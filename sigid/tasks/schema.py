"""The type and range of every config key sigid reads (`model`, `data`, `trainer` and the run's
own keys), as dataclasses that mirror ``conf/``. `check_config` holds a training run's config to
them right after compose, before any data is read; `build_datamodule` and `build_module` hold
what they build from (for evaluation and the bench too). A bad value is refused in one line that
names the key, the value and what is expected.

The schemas hold no values: the defaults live in ``conf/`` only. A key a schema does not name
passes unchecked (Lightning checks its own Trainer's and the callbacks' settings); a key it names
but the config lacks is left to the code that reads it. Checks are strict: ``'3'`` is not an
integer, ``true`` is not a number, as the code that reads them would not take them either.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

import lightning as L
from lightning.fabric.utilities.seed import max_seed_value, min_seed_value
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from sigid.data.acquisition import SettingError, acquisition_settings
from sigid.data.layouts import LAYOUTS
from sigid.data.preprocess import MODES
from sigid.data.synthetic import SCRIPTS
from sigid.data.transforms import augment_preset, augment_settings
from sigid.errors import one_line
from sigid.models.cnn import MAX_DEPTH, MIN_DEPTH
from sigid.models.siamese import EMBEDDINGS
from sigid.tasks.classifier import ClassifierModule
from sigid.tasks.common import OPTIMIZERS
from sigid.tasks.siamese import LOSSES, PAIR_WEIGHTINGS, WRITER_HEADS, SiameseModule


def rule(
    low: float | None = None,
    high: float | None = None,
    *,
    above: float | None = None,
    choices: Sequence[str] = (),
) -> dict[str, Any]:
    """A schema field's range, as its metadata: ``low <= value <= high``, ``value > above``, or
    one of `choices` (for a list: each of its items). A field without one: its type only."""
    return {"low": low, "high": high, "above": above, "choices": tuple(choices)}


# --- model: conf/model/*.yaml, one schema per LightningModule -----------------------------------
@dataclass
class Optimizer:
    name: str = field(metadata=rule(choices=tuple(OPTIMIZERS)))
    lr: float = field(metadata=rule(above=0))
    weight_decay: float = field(metadata=rule(low=0))


@dataclass
class Model:
    """What every model config holds: the run reads the monitored metric, the module builds the
    optimizer. The schema of a model class it names no other for (``model._target_=...``)."""

    optimizer: Optimizer
    monitor: str
    monitor_mode: str = field(metadata=rule(choices=("min", "max")))
    channels_last: bool
    compile: bool


@dataclass
class Classifier(Model):
    """conf/model/cnn.yaml: `sigid.tasks.ClassifierModule`."""

    depth: int = field(metadata=rule(MIN_DEPTH, MAX_DEPTH))
    channels: list[int] = field(metadata=rule(low=1))
    image_size: list[int] = field(metadata=rule(low=1))
    hidden: int = field(metadata=rule(low=1))
    dropout: float = field(metadata=rule(0, 1))
    batch_norm: bool
    label_smoothing: float = field(metadata=rule(0, 1))


@dataclass
class Head:
    scale: float = field(metadata=rule(above=0))
    offset: float


@dataclass
class Siamese(Model):
    """conf/model/siamese*.yaml: `sigid.tasks.SiameseModule` (the conv keys: siamese_conv)."""

    embedding: str = field(metadata=rule(choices=tuple(EMBEDDINGS)))
    image_size: list[int] = field(metadata=rule(low=1))
    dim: int = field(metadata=rule(low=1))
    normalize: bool
    head: Head
    loss: str = field(metadata=rule(choices=LOSSES))
    margin: float = field(metadata=rule(above=0))
    writer_loss: float = field(metadata=rule(low=0))
    members: int = field(metadata=rule(low=1))
    pair_weighting: str = field(metadata=rule(choices=PAIR_WEIGHTINGS))
    hardness: float = field(metadata=rule(low=0))
    writer_head: str = field(metadata=rule(choices=WRITER_HEADS))
    writer_scale: float = field(metadata=rule(above=0))
    writer_margin: float = field(metadata=rule(low=0))
    depth: int = field(metadata=rule(MIN_DEPTH, MAX_DEPTH))
    channels: list[int] = field(metadata=rule(low=1))
    batch_norm: bool
    dropout: float = field(metadata=rule(0, 1))


# The model schema of each LightningModule class (and its subclasses).
MODEL_SCHEMAS: dict[type[L.LightningModule], type[Model]] = {
    ClassifierModule: Classifier,
    SiameseModule: Siamese,
}


# --- data: conf/data/*.yaml ----------------------------------------------------------------------
@dataclass
class Synthetic:
    writers: int = field(metadata=rule(low=2))
    per_writer: int = field(metadata=rule(low=1))
    forgeries: int = field(metadata=rule(low=0))
    seed: int = field(metadata=rule(low=0))
    script: str = field(metadata=rule(choices=SCRIPTS))
    name_sharing: int = field(metadata=rule(low=1))


@dataclass
class Preprocess:
    mode: str = field(metadata=rule(choices=MODES))
    size: list[int] = field(metadata=rule(low=1))
    # robustness options of normalized (sigid.data.preprocess.OPTIONS); absent: off
    remove_lines: bool
    crop_main: bool
    ink_contrast: bool
    uniform_strokes: bool
    remove_stamps: bool
    match_width: bool
    deslant: bool


@dataclass
class Split:
    val: float = field(metadata=rule(low=0))  # a fraction (< 1) or a count (>= 1)
    test: float = field(metadata=rule(low=0))
    folds: int = field(metadata=rule(low=2))
    fold: int = field(metadata=rule(low=0))
    val_writers: float = field(metadata=rule(low=0))
    rotate_val: bool


@dataclass
class Pairs:
    train: int = field(metadata=rule(low=2))
    val: int = field(metadata=rule(low=2))
    test: int = field(metadata=rule(low=2))
    skilled_fraction: float = field(metadata=rule(0, 1))
    forgery_classes: bool


@dataclass
class ExtraCollection:
    """An entry of ``data.extra`` (`sigid.data.extra`, which also refuses keys not named here)."""

    root: str
    layout: str = field(metadata=rule(choices=LAYOUTS))
    name: str | None
    fold: bool
    split: Split | None  # any of its keys (those of a writer-disjoint split), with fold: true
    config: str | None
    preprocess: Preprocess | None  # where given, the run's


@dataclass
class Data:
    root: str | None
    layout: str = field(metadata=rule(choices=LAYOUTS))
    synthetic: Synthetic | None
    preprocess: Preprocess
    split: Split
    pairs: Pairs | None
    materialize: int | None = field(metadata=rule(low=1))
    cache_dir: str | None
    batch_size: int = field(metadata=rule(low=1))
    num_workers: int = field(metadata=rule(low=0))
    seed: int
    skip_bad_images: bool
    extra: list[ExtraCollection]


# --- trainer: conf/trainer/*.yaml (Lightning checks the keys not named here) ---------------------
@dataclass
class Trainer:
    # 0 would "test" an untrained model; -1 (Lightning's "no limit") would never end
    max_epochs: int = field(metadata=rule(low=1))
    min_epochs: int = field(metadata=rule(low=0))
    log_every_n_steps: int = field(metadata=rule(low=1))
    check_val_every_n_epoch: int | None = field(metadata=rule(low=1))
    num_sanity_val_steps: int = field(metadata=rule(low=-1))
    enable_progress_bar: bool | None  # null: a bar on a terminal only
    enable_model_summary: bool


# --- the run: conf/train.yaml ---------------------------------------------------------------------
@dataclass
class Run:
    """conf/train.yaml's own keys and the trainer; `data` and `model` have their own checks."""

    # seeds the weights and the split: null (a random seed) would change the writers
    seed: int = field(metadata=rule(min_seed_value, max_seed_value))
    init_from: str | None
    ckpt_path: str | None
    test: bool
    debug_run: str | None
    keep_freed_memory: bool
    trainer: Trainer


def check_config(cfg: DictConfig, task: type[L.LightningModule]) -> None:
    """Hold a training run's `cfg` to `Run`, and ``cfg.model`` to the schema of `task` (the
    class its ``_target_`` names); a ValueError of one line for the first value that does not
    fit."""
    _check_node(cfg, Run, "")
    check_data(cfg)
    check_model(cfg, task)


def check_data(cfg: DictConfig) -> None:
    """Hold ``cfg.data`` to `Data` (what `build_datamodule` builds from), and its augmentation
    ranges to those `sigid.data.transforms` takes (its own checks, made before any data)."""
    _check_node(cfg.data, Data, "data.")
    for key in ("augment", "test_distortion"):
        value = cfg.data.get(key)
        try:
            augment_settings(augment_preset(value) if isinstance(value, str) else value)
        except ValueError as err:
            raise ValueError(f"data.{key}: {err}") from err
    value = cfg.data.get("acquisition")
    try:
        acquisition_settings(
            OmegaConf.to_container(value) if isinstance(value, DictConfig) else value
        )
    except SettingError as err:
        raise ValueError(f"data.acquisition.{err.key}: {err}") from err
    except ValueError as err:
        raise ValueError(f"data.acquisition: {err}") from err


def check_model(cfg: DictConfig, task: type[L.LightningModule]) -> None:
    """Hold ``cfg.model`` to the schema of `task` (what `build_module` builds from)."""
    model = next((s for cls, s in MODEL_SCHEMAS.items() if issubclass(task, cls)), Model)
    _check_node(cfg.model, model, "model.")


def _check_node(node: Any, schema: type, prefix: str) -> None:
    hints = get_type_hints(schema)
    for spec in fields(schema):
        if spec.name not in node:  # a key the config lacks is the reading code's to miss
            continue
        name = f"{prefix}{spec.name}"
        try:
            value = node[spec.name]
        except OmegaConfBaseException as err:  # an interpolation that names no key, ???
            raise ValueError(f"{name}: {one_line(err)}") from err
        _check_value(name, value, hints[spec.name], spec.metadata or rule())


def _check_value(name: str, value: Any, hint: Any, rule: Mapping[str, Any]) -> None:
    optional = get_origin(hint) in (Union, UnionType) and type(None) in get_args(hint)
    if optional:
        if value is None:
            return
        hint = next(a for a in get_args(hint) if a is not type(None))
    if is_dataclass(hint):
        if not isinstance(value, (DictConfig, Mapping)):
            raise _refusal(name, value, hint, rule, optional)
        _check_node(value, hint, f"{name}.")
        return
    if get_origin(hint) is list and is_dataclass(get_args(hint)[0]):
        if not isinstance(value, (ListConfig, list)):
            raise _refusal(name, value, hint, rule, optional)
        for i, item in enumerate(value):
            _check_value(f"{name}[{i}]", item, get_args(hint)[0], rule)
        return
    if get_origin(hint) is list:
        kind = get_args(hint)[0]
        fits = isinstance(value, (ListConfig, list)) and all(_fits(v, kind, rule) for v in value)
    else:
        fits = _fits(value, hint, rule)
    if not fits:
        raise _refusal(name, value, hint, rule, optional)


def _fits(value: Any, kind: type, rule: Mapping[str, Any]) -> bool:
    if kind is bool or kind is str:
        return type(value) is kind and (not rule["choices"] or value in rule["choices"])
    if kind is int and type(value) is not int:
        return False
    if kind is float and (type(value) not in (int, float) or not math.isfinite(value)):
        return False
    low, high, above = rule["low"], rule["high"], rule["above"]
    return (
        (low is None or value >= low)
        and (high is None or value <= high)
        and (above is None or value > above)
    )


def _refusal(
    name: str, value: Any, hint: Any, rule: Mapping[str, Any], optional: bool
) -> ValueError:
    return ValueError(f"{name}={_shown(value)}: expected {_expected(hint, rule, optional)}")


def _expected(hint: Any, rule: Mapping[str, Any], optional: bool) -> str:
    """What a field takes, in words: "an integer from 2 to 5", "a number > 0 or null"."""
    if is_dataclass(hint):
        text = "a mapping of " + ", ".join(f.name for f in fields(hint))
    elif get_origin(hint) is list and is_dataclass(get_args(hint)[0]):
        entry = ", ".join(f.name for f in fields(get_args(hint)[0]))
        text = f"a list of mappings of {entry}"
    elif get_origin(hint) is list:
        text = "a list of integers" + _range(rule)
    elif rule["choices"]:
        text = "one of " + ", ".join(rule["choices"])
    elif hint is bool:
        text = "true or false"
    elif hint is str:
        text = "a string"
    else:
        text = ("an integer" if hint is int else "a number") + _range(rule)
    return f"{text} or null" if optional else text


def _range(rule: Mapping[str, Any]) -> str:
    low, high, above = rule["low"], rule["high"], rule["above"]
    if low is not None and high is not None:
        return f" from {low} to {high}"
    if low is not None:
        return f" >= {low}"
    if above is not None:
        return f" > {above}"
    return ""


def _shown(value: Any) -> str:
    """`value` as it would be written on the command line: 'abc', 3, null, true, [1, 2]."""
    if isinstance(value, (DictConfig, ListConfig)):
        return str(value)
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return repr(value)
