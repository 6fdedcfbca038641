"""Plain nn.Module networks and factories that rebuild them from plain (checkpointable) dicts."""

from sigid.models.cnn import ConvClassifier, build_classifier
from sigid.models.siamese import (
    ConvEmbedding,
    EnsembleEmbedding,
    FusedEmbedding,
    PixelEmbedding,
    SiameseNetwork,
    SimilarityHead,
    WriterFeatures,
    WriterProxies,
    build_embedding,
    build_siamese,
)

__all__ = [
    "ConvClassifier",
    "ConvEmbedding",
    "EnsembleEmbedding",
    "FusedEmbedding",
    "PixelEmbedding",
    "SiameseNetwork",
    "SimilarityHead",
    "WriterFeatures",
    "WriterProxies",
    "build_classifier",
    "build_embedding",
    "build_siamese",
]
