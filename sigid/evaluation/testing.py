"""Testing a trained checkpoint on the data its run was trained with: the DataModule, the
quiet Trainer and the test pass that `sigid evaluate`, the protocols and `sigid ensemble` share.

Overrides may change the data, never the network; the preprocessing comes from the checkpoint,
except that a robustness option of ``normalized`` (``data.preprocess.remove_lines=true``,
`sigid.data.preprocess.OPTIONS`) may be added on top of it: the same network, its inputs
cleaned otherwise (docs/data.md, "Robust normalisation").
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
from hydra import compose, initialize_config_module
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from sigid.data.datamodules import SignatureDataModule
from sigid.data.preprocess import OPTIONS, check_preprocessing
from sigid.errors import one_line
from sigid.runs.paths import checkpoint_path, run_folder
from sigid.runs.records import (
    check_unseen,
    override_group,
    override_key,
    run_overrides,
    run_record,
)
from sigid.tasks import ClassifierModule, load_checkpoint
from sigid.tasks.build import build_datamodule

# Config keys that choose evaluation data (seed: data.seed follows it by default).
DATA_KEYS = ("data", "seed", "paths")

# What of a run's own overrides evaluation starts from: its experiment sets its data.
RUN_DATA_KEYS = ("experiment", *DATA_KEYS)


def evaluation_datamodule(
    module: L.LightningModule,
    overrides: list[str] | None = None,
    checkpoint: str | Path | None = None,
) -> SignatureDataModule:
    """The DataModule the config describes for a trained module, with its own preprocessing.

    The data settings start from those the `checkpoint`'s run was trained with (its experiment
    and data overrides, `run_overrides`), so a run is tested on its own data by default;
    `overrides` change them (``["data.split.fold=1"]``), or describe other data from the
    defaults when they choose a data config (``["data=cedar", "data.root=..."]``). A checkpoint
    with no run record beside it needs that choice (``data=...``): it is refused without one.
    The preprocessing always comes from the checkpoint, so images are prepared exactly as in
    training, but for the robustness options (`preprocess_options`) the overrides set.
    Config errors (an unknown group, a missing value) become ValueError, one line.
    """
    options, overrides = preprocess_options(list(overrides or []))
    other = [o for o in overrides if override_group(o) not in DATA_KEYS]
    if other:  # e.g. model.depth=9: the network is the checkpoint's, whatever the config says
        raise ValueError(
            f"{', '.join(other)}: evaluation takes data overrides only ({', '.join(DATA_KEYS)}); "
            "the network, its training and preprocessing come from the checkpoint"
        )
    # a data config chosen here (data=cedar) describes other data: start from the defaults
    fresh = any(override_key(o) == "data" for o in overrides)
    if checkpoint is not None and not fresh:  # data.split.fold=1 alone names no data
        _require_run_record(checkpoint)
    trained = run_overrides(checkpoint, RUN_DATA_KEYS) if checkpoint and not fresh else []
    try:
        with initialize_config_module("sigid.conf", version_base="1.3"):
            cfg = compose("train", overrides=[*trained, *overrides])
        if module.hparams.preprocessing:
            cfg.data.preprocess = module.hparams.preprocessing
        if options:
            cfg.data.preprocess = with_options(cfg.data.preprocess, options)
        return build_datamodule(cfg, type(module))  # the data the module trains on
    except (HydraException, OmegaConfBaseException) as err:
        message = one_line(err, limit=None)
        after = f" (after the run's own {trained})" if trained else ""
        raise ValueError(f"data overrides {overrides}{after}: {message}") from err


def preprocess_options(overrides: list[str]) -> tuple[dict[str, bool], list[str]]:
    """(the robustness options ``data.preprocess.OPTION=true|false`` among `overrides`, the
    other overrides). Another ``data.preprocess`` key (mode, size) stays among the others and,
    as before, gives way to the checkpoint's: the network was trained on those."""
    options, rest = {}, []
    for override in overrides:
        key = override_key(override)
        option = key.removeprefix("data.preprocess.")
        if option == key or option not in OPTIONS:
            rest.append(override)
            continue
        value = override.partition("=")[2]
        if value.lower() not in ("true", "false"):
            raise ValueError(f"{override}: {option} is true or false, not {value!r}")
        options[option] = value.lower() == "true"
    return options, rest


def with_options(preprocess: Mapping[str, Any], options: Mapping[str, bool]) -> dict[str, Any]:
    """`preprocess` (a checkpoint's settings) with the robustness `options` set on top."""
    merged = {**{k: v for k, v in preprocess.items()}, **options}
    try:
        return check_preprocessing(merged)
    except ValueError as err:
        raise ValueError(f"data.preprocess with {dict(options)}: {err}") from err


def _require_run_record(checkpoint: str | Path) -> None:
    """Refuse to guess a checkpoint's data: without its run's record the defaults (the built-in
    synthetic set) would be scored, and the result would look plausible."""
    if run_record(run_folder(checkpoint)) is None:
        raise ValueError(
            f"{checkpoint}: no run record beside it (.hydra/overrides.yaml: moved out of its "
            "run folder?), so the data it was trained on is unknown; give that data with its "
            "config, e.g. data=folders data.root=PATH (data=synthetic for the built-in set)"
        )


def run_test(
    checkpoint: str | Path,
    overrides: list[str] | None = None,
    module: L.LightningModule | None = None,
) -> tuple[L.LightningModule, dict[str, float]]:
    """(the module after testing, its test metrics); see `evaluate`. `module`: the checkpoint,
    already loaded.

    The module keeps what its test epoch computed (a CNN's ``test_confusion``, a Siamese
    network's ``test_scores``), for the evaluation protocols (`sigid.evaluation.protocols`).
    """
    checkpoint = checkpoint_path(checkpoint)
    module = module if module is not None else load_checkpoint(checkpoint)
    datamodule = evaluation_datamodule(module, overrides, checkpoint)
    datamodule.setup("test")
    check_unseen(checkpoint, datamodule.split_manifest(), ["test"])
    if isinstance(module, ClassifierModule) and datamodule.class_names != module.class_names:
        raise ValueError(
            f"{checkpoint}: trained on writers {module.class_names}, but the data has "
            f"{datamodule.class_names}; a classifier can only be tested on its own writers"
        )
    tested = evaluation_trainer().test(module, datamodule=datamodule, verbose=False)[0]
    return module, {name: float(value) for name, value in tested.items()}


def evaluation_trainer() -> L.Trainer:
    """A quiet one-device Trainer to validate or test a trained module (no logs, no checkpoints;
    the caller saves what it means to keep)."""
    return L.Trainer(
        accelerator="auto",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
