"""One's own configs beside sigid's: an experiment and a logger (any Lightning logger, given by
its ``_target_``) in a folder of one's own, found with ``--config-dir`` or ``hydra.searchpath``."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from runs import SMALL_DATA, sigid_train

import sigid

QUICK = ["+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1", "test=false"]


def _own_configs(root: Path) -> Path:
    """A config folder as a user writes one: an experiment that overrides sigid's groups, and a
    logger group option naming Lightning's CSVLogger by its _target_ alone."""
    (root / "experiment").mkdir(parents=True)
    (root / "experiment" / "mine.yaml").write_text(
        "# @package _global_\n"
        "defaults:\n  - override /model: cnn\n  - override /logger: mine\n"
        "model:\n  depth: 2\n  channels: [8, 16, 16, 16, 16]\n  hidden: 32\n"
        "trainer:\n  max_epochs: 1\n"
    )
    (root / "logger").mkdir()
    (root / "logger" / "mine.yaml").write_text(
        "mine:\n  _target_: lightning.pytorch.loggers.CSVLogger\n"
        "  save_dir: ${paths.output_dir}\n  name: my_csv\n"
    )
    return root


def _epochs_logged(run: Path, name: str) -> list[str]:
    with (run / name / "version_0" / "metrics.csv").open() as handle:
        return sorted({row["epoch"] for row in csv.DictReader(handle) if row.get("val/loss")})


def test_an_own_experiment_and_logger_in_a_config_dir_compose_and_run(tmp_path):
    conf = _own_configs(tmp_path / "myconf")
    done = sigid_train(
        tmp_path, "--config-dir", str(conf), "experiment=mine", *SMALL_DATA, *QUICK,
        "hydra.run.dir=run",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "run"
    assert OmegaConf.load(run / ".hydra" / "config.yaml").model.depth == 2
    assert _epochs_logged(run, "my_csv") == ["0"]  # the experiment's one epoch, by its logger
    assert not (run / "tensorboard").exists()  # sigid's default logger replaced


def test_the_python_api_finds_own_configs_on_the_searchpath_and_takes_a_logger_by_target(
    tmp_path,
):
    conf = _own_configs(tmp_path / "myconf")
    extra = [
        "+logger.extra._target_=lightning.pytorch.loggers.CSVLogger",
        "+logger.extra.save_dir=${paths.output_dir}", "+logger.extra.name=extra_csv",
    ]  # fmt: skip
    result = sigid.train(
        [f"hydra.searchpath=[file://{conf}]", "experiment=mine", *SMALL_DATA, *QUICK, *extra,
         f"hydra.run.dir={tmp_path / 'run'}"]
    )  # fmt: skip
    assert result.metrics["epochs"] == 1
    assert _epochs_logged(result.output_dir, "my_csv") == ["0"]
    assert _epochs_logged(result.output_dir, "extra_csv") == ["0"]


def test_a_logger_entry_without_a_target_is_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match=r"^logger\.extra: not one of this run's logger"):
        sigid.train([*SMALL_DATA, "+logger.extra.name=x", f"hydra.run.dir={tmp_path / 'run'}"])
