"""The training config a bench measures: `conf/train.yaml` composed with Hydra's `compose`, as
`sigid.train` composes it, on the device's trainer group, with what would write files or log
turned off (logger, callbacks, checkpoints, the model summary) and no validation, except for
the epoch part, which runs them as a training run does."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_module
from hydra.errors import HydraException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from sigid.errors import one_line

# The trainer group of each device (conf/trainer/): the project's settings for it.
TRAINERS = {"cpu": "trainer=cpu", "cuda": "trainer=gpu"}
QUIET = (
    "logger=none",
    "trainer.enable_progress_bar=false",
    "~callbacks",
    "+trainer.enable_checkpointing=false",
    "trainer.enable_model_summary=false",
    "+trainer.limit_val_batches=0",
)


def compose_config(
    device: str, output_dir: Path, overrides: Sequence[str] = (), quiet: bool = True
) -> DictConfig:
    """The `train` config for `device` with `overrides` (a model's, then the user's data
    overrides) after the bench's own; `output_dir` stands in for the run folder, which nothing
    writes to unless `quiet` is false (then logger, callbacks, checkpoints and validation stay
    as configured). A bad override is a one-line ValueError."""
    own = QUIET if quiet else ()
    asked = [TRAINERS[device], *own, f"paths.output_dir={output_dir}", *overrides]
    try:
        with initialize_config_module("sigid.conf", version_base="1.3"):
            return compose("train", overrides=asked)
    except (HydraException, OmegaConfBaseException) as err:
        raise ValueError(f"config overrides: {one_line(err, limit=None)}") from err
