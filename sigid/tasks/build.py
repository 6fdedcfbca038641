"""Build the DataModule and LightningModule that a config describes."""

from __future__ import annotations

import re

import lightning as L
from omegaconf import DictConfig, OmegaConf

from sigid.data.datamodules import ClassFolderDataModule, PairDataModule, SignatureDataModule
from sigid.tasks import ClassifierModule, SiameseModule

# Which data each LightningModule trains on.
DATAMODULES: dict[str, type[SignatureDataModule]] = {
    "sigid.tasks.classifier.ClassifierModule": ClassFolderDataModule,
    "sigid.tasks.siamese.SiameseModule": PairDataModule,
}

# Keys of conf/model/*.yaml read by the training run, not passed to the LightningModule.
RUN_KEYS = ("monitor", "monitor_mode")


def build_datamodule(cfg: DictConfig) -> SignatureDataModule:
    target = cfg.model._target_
    if target not in DATAMODULES:
        raise ValueError(f"no DataModule known for model {target!r}")
    data = OmegaConf.to_container(cfg.data, resolve=True)
    return DATAMODULES[target](**data)


def build_module(cfg: DictConfig, datamodule: SignatureDataModule) -> L.LightningModule:
    kwargs = OmegaConf.to_container(cfg.model, resolve=True)
    target = kwargs.pop("_target_")
    for key in RUN_KEYS:
        kwargs.pop(key, None)
    kwargs["preprocessing"] = datamodule.preprocess
    try:
        if target.endswith("ClassifierModule"):
            return ClassifierModule(
                num_classes=datamodule.num_classes, class_names=datamodule.class_names, **kwargs
            )
        if kwargs.get("writer_loss", 0) > 0:
            kwargs["num_writers"] = datamodule.writer_classes
        if kwargs.get("writer_branch"):
            kwargs["branch_writers"] = len(datamodule.train_writers)
        return SiameseModule(**kwargs)
    except TypeError as err:  # a key the network does not take: `+model.lr=...`
        unknown = re.search(r"unexpected keyword argument '(\w+)'", str(err))
        if unknown is None:
            raise
        raise ValueError(
            f"model.{unknown.group(1)}: not a setting of this model (see conf/model/; the "
            "learning rate is model.optimizer.lr)"
        ) from err
