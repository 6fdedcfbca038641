"""The paper's writer classifier: stacked Conv 3x3 + MaxPool 2x2 blocks, Dense 256, softmax."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

DEFAULT_CHANNELS: tuple[int, ...] = (32, 64, 128, 128, 256)
# The writer classifier's own defaults, as conf/model/cnn.yaml (tests keep the two in step).
CLASSIFIER_CHANNELS: tuple[int, ...] = (16, 32, 64, 128, 256)
CLASSIFIER_DROPOUT = 0.5
# The paper compares 2, 3, 4 and 5 convolutional layers (3 was best).
MIN_DEPTH, MAX_DEPTH = 2, 5


def conv_blocks(
    depth: int,
    channels: Sequence[int] = DEFAULT_CHANNELS,
    in_channels: int = 1,
    batch_norm: bool = False,
) -> nn.Sequential:
    """`depth` blocks of Conv2d 3x3 (padding 1) [+ BatchNorm2d] + ReLU + MaxPool 2x2."""
    if not MIN_DEPTH <= depth <= MAX_DEPTH:
        raise ValueError(f"depth must be in [{MIN_DEPTH}, {MAX_DEPTH}], got {depth}")
    if len(channels) < depth:
        raise ValueError(f"depth {depth} needs {depth} channel counts, got {list(channels)}")
    layers: list[nn.Module] = []
    previous = in_channels
    for out in channels[:depth]:
        # The conv bias is redundant in front of a BatchNorm's own shift.
        layers.append(nn.Conv2d(previous, out, kernel_size=3, padding=1, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out))
        layers += [nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        previous = out
    return nn.Sequential(*layers)


def flat_size(depth: int, channels: Sequence[int], image_size: Sequence[int]) -> int:
    """Length of the flattened feature map after `depth` 2x2 poolings (floor, as MaxPool2d)."""
    height, width = (int(s) for s in image_size)
    height, width = height >> depth, width >> depth
    if height < 1 or width < 1:
        raise ValueError(f"image_size {tuple(image_size)} is too small for {depth} poolings")
    return int(channels[depth - 1]) * height * width


def feature_layers(
    depth: int,
    channels: Sequence[int],
    image_size: Sequence[int],
    hidden: int,
    in_channels: int = 1,
    batch_norm: bool = False,
) -> tuple[nn.Sequential, nn.Sequential]:
    """(body, neck): conv blocks, then Flatten -> Dense `hidden` + ReLU, a writer classifier's
    penultimate features."""
    body = conv_blocks(depth, channels, in_channels, batch_norm)
    neck = nn.Sequential(
        nn.Flatten(),
        nn.Linear(flat_size(depth, channels, image_size), hidden),
        nn.ReLU(inplace=True),
    )
    return body, neck


class ConvClassifier(nn.Module):
    """CNN writer classifier; `forward` gives logits (softmax lives in the loss / predict_proba)."""

    def __init__(
        self,
        num_classes: int,
        depth: int = 3,
        channels: Sequence[int] = CLASSIFIER_CHANNELS,
        image_size: Sequence[int] = (128, 128),
        in_channels: int = 1,
        hidden: int = 256,
        dropout: float = CLASSIFIER_DROPOUT,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        self.num_classes = num_classes
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.body, self.neck = feature_layers(
            depth, channels, self.image_size, hidden, in_channels, batch_norm
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The `hidden`-d penultimate activations: a writer embedding for later reuse."""
        return self.neck(self.body(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities (the paper's softmax output layer)."""
        return torch.softmax(self(x), dim=-1)


CLASSIFIERS: dict[str, type[ConvClassifier]] = {"cnn": ConvClassifier}


def build_classifier(kind: str = "cnn", **kwargs: Any) -> ConvClassifier:
    """A classifier from a plain config: `kind` ('cnn') + the constructor's keyword arguments."""
    if kind not in CLASSIFIERS:
        raise ValueError(f"unknown classifier kind {kind!r}; expected one of {sorted(CLASSIFIERS)}")
    return CLASSIFIERS[kind](**kwargs)
