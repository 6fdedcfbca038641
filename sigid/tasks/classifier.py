"""LightningModule for closed-set writer identification with the CNN (cross-entropy)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torchmetrics import MaxMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from sigid.data.datamodules import ClassFolderDataModule
from sigid.figures import confusion_figure
from sigid.models import build_classifier
from sigid.tasks.common import (
    BEST_SO_FAR,
    DEFAULT_OPTIMIZER,
    FastPath,
    best_so_far,
    check_optimizer,
    check_preprocessing,
    check_scheduler,
    configure,
    restart_best,
    tensorboards,
    to_plain,
)


class ClassifierModule(FastPath):
    """Writer classifier. Every constructor argument is a plain builtin and is saved in the
    checkpoint, so ``ClassifierModule.load_from_checkpoint(path)`` rebuilds the network, the
    writer names and the preprocessing without any config file.

    ``**net`` are the network's keyword arguments (`sigid.models.ConvClassifier`: depth,
    channels, image_size, hidden, dropout, batch_norm), flat so that a sweep says
    ``model.depth=2,3,4,5``.
    """

    # What `sigid.tasks.build` reads to build a run: the data it trains on, and whether
    # Lightning's DDP may split it over processes.
    datamodule_class = ClassFolderDataModule
    distributed = True

    @staticmethod
    def data_settings(datamodule: ClassFolderDataModule, settings: Mapping[str, Any]) -> dict:
        """Constructor arguments that come from the data: the writers it classifies."""
        return {"num_classes": datamodule.num_classes, "class_names": datamodule.class_names}

    def __init__(
        self,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        preprocessing: Mapping[str, Any] | None = None,
        optimizer: Mapping[str, Any] | None = None,
        scheduler: Mapping[str, Any] | None = None,
        label_smoothing: float = 0.0,
        **net: Any,
    ) -> None:
        super().__init__()
        net_config = to_plain(net)
        num_classes = int(num_classes)
        if int(net_config.pop("num_classes", num_classes)) != num_classes:
            raise ValueError("the network's num_classes disagrees with num_classes")
        if class_names is not None:
            class_names = [str(name) for name in class_names]
            if len(class_names) != num_classes:
                raise ValueError(f"{len(class_names)} class_names for {num_classes} classes")
        preprocessing = to_plain(preprocessing) if preprocessing is not None else None
        optimizer = to_plain(optimizer) if optimizer is not None else dict(DEFAULT_OPTIMIZER)
        scheduler = to_plain(scheduler) if scheduler is not None else None
        check_optimizer(optimizer)
        check_scheduler(scheduler)
        check_preprocessing(preprocessing, net_config.get("image_size", (128, 128)))
        self.save_hyperparameters(
            {
                **net_config,
                "num_classes": num_classes,
                "class_names": class_names,
                "preprocessing": preprocessing,
                "optimizer": optimizer,
                "scheduler": scheduler,
                "label_smoothing": float(label_smoothing),
            },
            logger=False,
        )
        self.net = build_classifier(**net_config, num_classes=num_classes)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=float(label_smoothing))

        def accuracy(top_k: int) -> MulticlassAccuracy:
            return MulticlassAccuracy(num_classes, top_k=top_k, average="micro")

        self.train_acc, self.val_acc, self.test_acc = accuracy(1), accuracy(1), accuracy(1)
        self.has_top5 = num_classes > 5
        if self.has_top5:
            self.val_acc_top5, self.test_acc_top5 = accuracy(5), accuracy(5)
        self.val_acc_best = MaxMetric()
        self.resumed_best: float | None = None  # from a checkpoint, for a resumed run
        self.test_confmat = MulticlassConfusionMatrix(num_classes)
        # Rows: true writer, columns: predicted writer; set at the end of each test epoch.
        self.test_confusion: torch.Tensor | None = None

    @property
    def class_names(self) -> list[str] | None:
        return self.hparams.class_names

    @property
    def preprocessing(self) -> dict[str, Any] | None:
        return self.hparams.preprocessing

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes)."""
        return self.net(images)

    def on_train_start(self) -> None:
        restart_best(self.val_acc_best, self.resumed_best)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[BEST_SO_FAR] = best_so_far(self.val_acc_best)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.resumed_best = checkpoint.get(BEST_SO_FAR)

    def _step(self, batch: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        images, labels = batch[0], batch[1]
        # under bf16 autocast: the loss and metrics in float32
        logits = self(self.laid_out(images)).float()
        return self.criterion(logits, labels), logits, labels

    def training_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, logits, labels = self._step(batch)
        self.train_acc.update(logits, labels)  # epoch-level: no per-step compute
        size = labels.numel()
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=size)
        self.log("train/acc", self.train_acc, on_epoch=True, on_step=False, batch_size=size)
        return loss

    def validation_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> None:
        _, logits, labels = self._eval_step(batch, "test")
        self.test_confmat.update(logits.argmax(dim=-1), labels)

    def _eval_step(self, batch: Sequence[torch.Tensor], stage: str) -> tuple[torch.Tensor, ...]:
        loss, logits, labels = self._step(batch)
        size = labels.numel()
        self.log(
            f"{stage}/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=size
        )
        acc = getattr(self, f"{stage}_acc")
        acc.update(logits, labels)
        self.log(f"{stage}/acc", acc, on_step=False, on_epoch=True, prog_bar=True, batch_size=size)
        if self.has_top5:
            top5 = getattr(self, f"{stage}_acc_top5")
            top5.update(logits, labels)
            self.log(f"{stage}/acc_top5", top5, on_step=False, on_epoch=True, batch_size=size)
        return loss, logits, labels

    def on_validation_epoch_end(self) -> None:
        self.val_acc_best(self.val_acc.compute())
        self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True)

    def on_test_epoch_end(self) -> None:
        self.test_confusion = self.test_confmat.compute().cpu()
        self.test_confmat.reset()
        writers = tensorboards(self)
        if writers:
            fig = confusion_figure(self.test_confusion, self.class_names)
            for writer in writers:
                writer.add_figure("test/confusion_matrix", fig, self.global_step, close=False)

    def predict_step(self, batch: Any, batch_idx: int = 0) -> torch.Tensor:
        """Class probabilities for a batch of images (or an (images, labels) batch)."""
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        return torch.softmax(self(images), dim=-1)

    def configure_optimizers(self) -> dict[str, Any]:
        return configure(self, self.hparams.optimizer, self.hparams.scheduler)
