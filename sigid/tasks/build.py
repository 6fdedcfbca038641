"""Build the DataModule and LightningModule that a config describes.

``model._target_`` names the LightningModule class, instantiated with Hydra. The class says
what it needs from the data: ``datamodule_class`` (built from ``data``), ``data_settings``
(constructor arguments read off the prepared DataModule, e.g. the number of writers) and
``distributed`` (whether DDP may split it). ``data`` and ``model`` are held to their schemas
(`sigid.tasks.schema`) before they are built. Any LightningModule with these three and a
``preprocessing`` argument can be trained by `sigid-train model._target_=...`.
"""

from __future__ import annotations

import re
from typing import Any

import hydra
import lightning as L
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf

from sigid.data.datamodules import SignatureDataModule
from sigid.errors import one_line
from sigid.tasks.schema import check_data, check_model

# Keys of conf/model/*.yaml read by the training run, not passed to the LightningModule.
RUN_KEYS = ("monitor", "monitor_mode")
# Keys of conf/model/*.yaml that say how the module runs (`sigid.tasks.common.FastPath`): set on
# the built module, not hyperparameters (a checkpoint's weights are the same either way).
FAST_PATH = {"channels_last": "channels_last", "compile": "compile_net"}
# What a class named by model._target_ must provide to be trained by sigid.
TASK_HOOKS = ("datamodule_class", "data_settings", "distributed")


def task_class(cfg: DictConfig) -> type[L.LightningModule]:
    """The LightningModule class that ``model._target_`` names, checked to be one sigid trains."""
    target = cfg.model.get("_target_")
    try:
        cls = hydra.utils.get_class(str(target))
    except Exception as err:  # Hydra raises several kinds for a bad path
        raise ValueError(f"model._target_={target}: {one_line(err)}") from err
    missing = [hook for hook in TASK_HOOKS if not hasattr(cls, hook)]
    if not issubclass(cls, L.LightningModule) or missing:
        raise ValueError(
            f"model._target_={target}: not a LightningModule sigid can train (it needs "
            f"{', '.join(TASK_HOOKS)}; see sigid.tasks.build)"
        )
    return cls


def build_datamodule(
    cfg: DictConfig, task: type[L.LightningModule] | None = None
) -> SignatureDataModule:
    """The DataModule of ``data`` for `task` (default: the class of ``model._target_``)."""
    task = task or task_class(cfg)
    check_data(cfg)
    return task.datamodule_class(**OmegaConf.to_container(cfg.data, resolve=True))


def build_module(cfg: DictConfig, datamodule: SignatureDataModule) -> L.LightningModule:
    """``model`` instantiated, with the preprocessing and the settings it takes from the data."""
    task = task_class(cfg)
    check_model(cfg, task)
    settings: dict[str, Any] = OmegaConf.to_container(cfg.model, resolve=True)
    for key in RUN_KEYS:
        settings.pop(key, None)
    fast = {attr: bool(settings.pop(key, False)) for key, attr in FAST_PATH.items()}
    from_data = task.data_settings(datamodule, settings)
    try:
        module = hydra.utils.instantiate(
            settings, preprocessing=datamodule.preprocess, **from_data, _convert_="all"
        )
    except InstantiationException as err:
        cause = err.__cause__
        unknown = re.search(r"unexpected keyword argument '(\w+)'", str(cause))
        if isinstance(cause, TypeError) and unknown:  # a key the network does not take
            raise ValueError(
                f"model.{unknown.group(1)}: not a setting of this model (see conf/model/; the "
                "learning rate is model.optimizer.lr)"
            ) from err
        if isinstance(cause, Exception):  # the module's own refusal, as it worded it
            raise cause from None
        raise
    for attr, value in fast.items():
        setattr(module, attr, value)
    return module
