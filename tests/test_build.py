"""sigid.tasks.build: ``model._target_`` is the class that gets built, with what it takes from
the data; a target sigid cannot train, or a setting the class refuses, fails in one line."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_module
from runs import SMALL, SMALL_NET

import sigid
from sigid.tasks import ClassifierModule, SiameseModule
from sigid.tasks.build import build_datamodule, build_module


class WideClassifier(ClassifierModule):
    """A user's own LightningModule, plugged in by ``model._target_``."""


def _built(*overrides: str):
    with initialize_config_module("sigid.conf", version_base="1.3"):
        cfg = compose("train", overrides=[*SMALL, *overrides])
    datamodule = build_datamodule(cfg)
    datamodule.prepare_data()
    datamodule.setup("fit")
    return build_module(cfg, datamodule), datamodule


def test_the_target_class_is_instantiated_with_what_it_takes_from_the_data(tmp_path):
    module, datamodule = _built(
        f"model._target_={__name__}.WideClassifier", *SMALL_NET, f"data.cache_dir={tmp_path}"
    )
    assert type(module) is WideClassifier
    assert module.class_names == datamodule.class_names and len(module.class_names) == 6
    assert module.hparams.preprocessing == {"mode": "normalized", "size": [32, 64]}


def test_a_siamese_target_gets_pair_data_and_its_writer_count_when_its_loss_needs_it(tmp_path):
    module, datamodule = _built(
        "model=siamese", "model.writer_loss=0.5", f"data.cache_dir={tmp_path}"
    )
    assert type(module) is SiameseModule
    assert type(datamodule).__name__ == "PairDataModule"
    assert module.hparams.num_writers == datamodule.writer_classes > 0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model._target_=collections.OrderedDict"], "model._target_=collections.OrderedDict: "
         "not a LightningModule sigid can train"),
        (["model._target_=sigid.tasks.NoSuchModule"], "model._target_=sigid.tasks.NoSuchModule"),
        (["model=siamese", "model.writer_branch={weight:0}"], "weight must be positive, got 0"),
    ],
)  # fmt: skip
def test_a_target_or_setting_the_class_refuses_is_one_value_error(tmp_path, overrides, message):
    with pytest.raises(ValueError) as refused:
        sigid.train([*SMALL, *overrides, f"hydra.run.dir={tmp_path / 'run'}"])
    assert message in str(refused.value) and "\n" not in str(refused.value)
