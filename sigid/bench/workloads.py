"""The two networks the bench trains, each with its config, a batch of random images in
sigid's own batch format, and the loss its plain loop computes (the module's, written out).

- cnn: the paper's CNN, 3 conv blocks of 32/64/128 channels, Dense 256, 55 writers (CEDAR's
  count), 128x128, batch 64.
- siamese: the conv Siamese embedding (conf/model/siamese_conv.yaml) on a writer batch of
  8 writers x (4 genuine + 4 forgeries), as cedar_snn trains it: 64 images, every labelled pair
  among them (624), binary cross-entropy. cedar_snn also weights the pairs by kind and adds a
  writer loss; both are left out here, so that the plain loop computes the same loss.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.utils.data import default_collate

from sigid.data.datamodules import ImageDataset, PairCollate
from sigid.data.layouts import Sample
from sigid.data.pairs import pairs_within
from sigid.models.siamese import distances_of

# CEDAR's writers: the classifier's output size.
WRITERS = 55


@dataclass(frozen=True)
class DataShape:
    """What `sigid.tasks.build.build_module` reads off a prepared DataModule, without data: the
    preprocessing and, for the classifier, its writers."""

    preprocess: dict[str, Any]
    num_classes: int = 0
    class_names: list[str] | None = None


class Workload(ABC):
    """One network to train: `overrides` select it in the `train` config."""

    name: str
    label: str
    overrides: tuple[str, ...]

    def data_shape(self, cfg: DictConfig) -> DataShape:
        return DataShape(OmegaConf.to_container(cfg.data.preprocess, resolve=True))

    @abstractmethod
    def batch(self, cfg: DictConfig, seed: int) -> Any:
        """A training batch of random images, as the training DataLoader gives one."""

    @abstractmethod
    def images(self, batch: Any) -> int:
        """The images the network embeds or classifies in `batch`."""

    @abstractmethod
    def loss(self, net: nn.Module, batch: Any) -> torch.Tensor:
        """The training loss of `net` (the module's network) on `batch`, as the module's
        training step computes it."""


def _random_images(cfg: DictConfig, count: int, seed: int) -> np.ndarray:
    height, width = (int(s) for s in cfg.data.preprocess.size)
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, height, width), dtype=np.uint8)


class Classifier(Workload):
    name = "cnn"
    label = f"paper CNN 32/64/128, {WRITERS} writers"
    overrides = (
        "model=cnn",
        "model.depth=3",
        "model.channels=[32,64,128,128,256]",
        "model.hidden=256",
        "data.batch_size=64",
    )

    def data_shape(self, cfg: DictConfig) -> DataShape:
        names = [f"writer{n:02d}" for n in range(WRITERS)]
        return DataShape(super().data_shape(cfg).preprocess, WRITERS, names)

    def batch(self, cfg: DictConfig, seed: int) -> list[torch.Tensor]:
        size = int(cfg.data.batch_size)
        labels = np.random.default_rng(seed).integers(0, WRITERS, size)
        dataset = ImageDataset(_random_images(cfg, size, seed), labels)
        return default_collate([dataset[i] for i in range(size)])

    def images(self, batch: Any) -> int:
        return len(batch[0])

    def loss(self, net: nn.Module, batch: Any) -> torch.Tensor:
        return F.cross_entropy(net(batch[0]), batch[1])


class Siamese(Workload):
    name = "siamese"
    label = "conv Siamese, 8 writers x (4+4)"
    overrides = ("model=siamese_conv", "data.pairs.batch={writers:8,genuine:4,forgeries:4}")

    def batch(self, cfg: DictConfig, seed: int) -> dict[str, torch.Tensor]:
        shape = cfg.data.pairs.batch
        samples = [
            Sample(Path(f"w{w}-{kind}{k}"), f"w{w}", genuine=kind == "g")
            for w in range(int(shape.writers))
            for kind, count in (("g", shape.genuine), ("f", shape.forgeries))
            for k in range(int(count))
        ]
        pairs = pairs_within(samples, list(range(len(samples))))
        return PairCollate(_random_images(cfg, len(samples), seed))(pairs)

    def images(self, batch: Any) -> int:
        return len(batch["images"])

    def loss(self, net: nn.Module, batch: Any) -> torch.Tensor:
        embeddings = net.embed(batch["images"])
        distance = distances_of(embeddings, batch["left"], batch["right"])
        return F.binary_cross_entropy_with_logits(net.head.logits(distance), batch["target"])


WORKLOADS: tuple[Workload, ...] = (Classifier(), Siamese())
