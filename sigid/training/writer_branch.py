"""Pretraining a Siamese model's writer branch: classify the training writers, then freeze.

A `ConvClassifier` of the branch's shape (`sigid.models.siamese.WriterFeatures`) trains on the
training writers' genuine signatures, with the run's augmentation and a cosine learning rate over
``pretrain_epochs``; its conv body and Dense neck are copied into the branch, which is then
frozen. It draws from its own copy of the random streams, so with a given seed the pair embedding
trains exactly as without the branch (why: docs/design.md, "The writer branch").
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from typing import Any

import lightning as L
from lightning.pytorch.utilities.seed import isolate_rng
from torch import nn

from sigid.data.datamodules import PairDataModule
from sigid.models.siamese import FusedEmbedding, WriterFeatures
from sigid.tasks.classifier import ClassifierModule
from sigid.tasks.siamese import SiameseModule

# The classifier's recipe (measured on CEDAR fold 0: 30 epochs reach validation-writer random
# EER 0.019 with the branch's features alone).
PRETRAIN_OPTIMIZER = {"name": "adam", "lr": 1e-3}
PRETRAIN_SCHEDULER = {"name": "cosine", "interval": "step"}
PRETRAIN_DROPOUT = 0.2
PRETRAIN_BATCH_SIZE = 32


def pretrain_writer_branch(
    module: SiameseModule,
    datamodule: PairDataModule,
    trainer: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Train `module`'s writer branch as a classifier of `datamodule`'s training writers for the
    module's ``pretrain_epochs``, copy it in and freeze it. `trainer`: the run's Lightning
    Trainer settings that also apply here (``accelerator``, ``precision``, ``deterministic``).
    Returns what the pretraining measured, for the run's metrics."""
    fused = module.net.embedding
    epochs = module.branch_pretrain_epochs
    if not isinstance(fused, FusedEmbedding) or epochs < 1:
        raise ValueError("pretraining needs a writer branch with pretrain_epochs >= 1")
    writers = datamodule.train_writers
    settings = {
        k: v
        for k, v in dict(trainer or {}).items()
        if k in ("accelerator", "precision", "deterministic")
    }
    start = time.perf_counter()
    fit = L.Trainer(  # building it draws nothing; it says which device the body will use
        **settings,
        devices=1,
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    with isolate_rng(include_cuda=fit.strategy.root_device.type == "cuda"):
        classifier = ClassifierModule(
            num_classes=len(writers),
            class_names=writers,
            preprocessing=module.preprocessing,
            optimizer=PRETRAIN_OPTIMIZER,
            scheduler=PRETRAIN_SCHEDULER,
            **_shape(fused.writer),
            image_size=list(module.hparams.get("image_size", (128, 128))),
            dropout=PRETRAIN_DROPOUT,
        )
        classifier.channels_last = module.channels_last  # as the run's own network trains
        with warnings.catch_warnings():  # no validation here: the pair training validates
            warnings.filterwarnings("ignore", message=".*no `val_dataloader`")
            fit.fit(classifier, train_dataloaders=datamodule.writer_dataloader(PRETRAIN_BATCH_SIZE))
    fused.writer.body.load_state_dict(classifier.net.body.state_dict())
    fused.writer.neck.load_state_dict(classifier.net.neck.state_dict())
    fused.freeze_writer()
    measured = fit.callback_metrics
    return {
        "epochs": epochs,
        "writers": len(writers),
        "train_loss": float(measured["train/loss"]) if "train/loss" in measured else None,
        "train_acc": float(measured["train/acc"]) if "train/acc" in measured else None,
        "wall_time_s": round(time.perf_counter() - start, 2),
    }


def _shape(branch: WriterFeatures) -> dict[str, Any]:
    """The `ConvClassifier` arguments that give `branch`'s conv body and Dense neck, read from
    the branch itself (so its defaults live in one place, `WriterFeatures`)."""
    convs = [layer for layer in branch.body if isinstance(layer, nn.Conv2d)]
    return {
        "depth": len(convs),
        "channels": [conv.out_channels for conv in convs],
        "in_channels": convs[0].in_channels,
        "hidden": branch.dim,
        "batch_norm": any(isinstance(layer, nn.BatchNorm2d) for layer in branch.body),
    }
