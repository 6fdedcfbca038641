"""Plain nn.Module networks and factories that rebuild them from plain (checkpointable) dicts."""

from __future__ import annotations

from typing import Any

from sigid.models.cnn import ConvClassifier
from sigid.models.siamese import (
    ConvEmbedding,
    EnsembleEmbedding,
    FusedEmbedding,
    PixelEmbedding,
    SiameseNetwork,
    SimilarityHead,
    WriterFeatures,
    build_embedding,
    build_siamese,
)

CLASSIFIERS: dict[str, type[ConvClassifier]] = {"cnn": ConvClassifier}


def build_classifier(kind: str = "cnn", **kwargs: Any) -> ConvClassifier:
    """A classifier from a plain config: `kind` ('cnn') + the constructor's keyword arguments."""
    if kind not in CLASSIFIERS:
        raise ValueError(f"unknown classifier kind {kind!r}; expected one of {sorted(CLASSIFIERS)}")
    return CLASSIFIERS[kind](**kwargs)


__all__ = [
    "ConvClassifier",
    "ConvEmbedding",
    "EnsembleEmbedding",
    "FusedEmbedding",
    "PixelEmbedding",
    "SiameseNetwork",
    "SimilarityHead",
    "WriterFeatures",
    "build_classifier",
    "build_embedding",
    "build_siamese",
]
