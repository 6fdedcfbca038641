"""Siamese network: a shared embedding, the Euclidean distance, and a sigmoid similarity.

The paper's SNN omits the convolutions ("pixel by pixel comparison"): flatten -> Dense 128 ReLU,
Euclidean distance between the two embeddings, squashed to (0, 1) by a sigmoid. `ConvEmbedding`
is the general framework of its Fig. 5 with the convolutional front end kept.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sigid.models.cnn import DEFAULT_CHANNELS, conv_blocks, feature_layers, flat_size

# Inside the square root so that the gradient of the distance stays finite at 0.
DISTANCE_EPS = 1e-8
# A writer branch's features enter the embedding at this length (chosen on CEDAR fold 0's
# validation writers: pair and writer distances then weigh about the same).
DEFAULT_WRITER_WEIGHT = 12.0


class PixelEmbedding(nn.Module):
    """The paper's no-conv embedding: flatten -> Linear -> ReLU [-> L2 normalisation]."""

    def __init__(
        self,
        image_size: Sequence[int] = (128, 128),
        dim: int = 128,
        in_channels: int = 1,
        normalize: bool = False,
    ) -> None:
        super().__init__()
        self.dim, self.normalize = dim, normalize
        height, width = (int(s) for s in image_size)
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(in_channels * height * width, dim), nn.ReLU(inplace=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _unit(self.net(x)) if self.normalize else self.net(x)


class ConvEmbedding(nn.Module):
    """Conv blocks as in the CNN, then a linear projection to `dim` (no final non-linearity).

    With `normalize`, embeddings lie on the unit sphere (distances in [0, 2]): the distance
    then measures the angle only, which an auxiliary writer-classification loss cannot inflate.
    """

    def __init__(
        self,
        depth: int = 4,
        channels: Sequence[int] = DEFAULT_CHANNELS,
        image_size: Sequence[int] = (128, 128),
        dim: int = 128,
        batch_norm: bool = True,
        dropout: float = 0.0,
        in_channels: int = 1,
        normalize: bool = False,
    ) -> None:
        super().__init__()
        self.dim, self.normalize = dim, normalize
        self.body = conv_blocks(depth, channels, in_channels, batch_norm)
        self.project = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(flat_size(depth, channels, image_size), dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.body(x))
        return _unit(out) if self.normalize else out


class WriterFeatures(nn.Module):
    """Conv blocks -> Dense `hidden` + ReLU: the penultimate layer of a writer classifier.

    Trained only by classifying the training writers (Hafemann et al.'s writer features), they
    tell writers apart well (random forgeries) but not a writer from an imitation of them.
    """

    def __init__(
        self,
        depth: int = 4,
        channels: Sequence[int] = (16, 32, 64, 128, 256),
        image_size: Sequence[int] = (128, 128),
        hidden: int = 256,
        batch_norm: bool = True,
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        self.dim = hidden
        self.body, self.neck = feature_layers(
            depth, channels, image_size, hidden, in_channels, batch_norm
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.neck(self.body(x))


class FusedEmbedding(nn.Module):
    """[pair embedding, weight * unit(writer features)]: one vector, so that its Euclidean
    distance adds the squared distances of the two (d^2 = d_pair^2 + weight^2 d_writer^2).

    The pair embedding is trained on pairs (it learns what tells a forgery from the genuine
    article); the writer features only by writer classification: they enter the distance
    detached, so the pair loss cannot bend them (measured: docs/design.md, "The writer branch").
    """

    def __init__(
        self, pair: nn.Module, writer: WriterFeatures, weight: float = DEFAULT_WRITER_WEIGHT
    ) -> None:
        super().__init__()
        if weight <= 0:
            raise ValueError(f"writer_branch weight must be positive, got {weight}")
        self.pair, self.writer, self.weight = pair, writer, float(weight)
        self.dim = int(pair.dim) + int(writer.dim)
        self.writer_frozen = False

    def freeze_writer(self) -> None:
        """Fix the writer branch as it is (a pretrained branch): no gradients, and its
        BatchNorm statistics stay those it was trained with, in training mode too."""
        self.writer.requires_grad_(False)
        self.writer_frozen = True
        self.writer.eval()

    def train(self, mode: bool = True) -> FusedEmbedding:
        super().train(mode)
        if self.writer_frozen:
            self.writer.eval()
        return self

    def parts(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(pair embedding, writer features), each with its gradient."""
        return self.pair(x), self.writer(x)

    def combine(self, pair: torch.Tensor, writer: torch.Tensor) -> torch.Tensor:
        return torch.cat([pair, self.weight * _unit(writer.detach())], dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.combine(*self.parts(x))


class EnsembleEmbedding(nn.Module):
    """M embeddings of one kind, each from its own initialisation, as one vector
    [e_1, ..., e_M] / sqrt(M): its squared distance is the members' mean squared distance, so the
    ensemble's scores keep the members' scale and everything downstream (Verifier, Gallery,
    export) sees one embedding. Averaging independently trained members removes part of the
    run-to-run spread that a single network's EER carries on a few dozen writers.
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least 2 members, got {len(members)}")
        self.members = nn.ModuleList(members)
        self.dim = sum(int(m.dim) for m in members)
        self.scale = 1.0 / math.sqrt(len(members))

    def parts(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each member's embedding, with its gradient."""
        return [member(x) for member in self.members]

    def combine(self, parts: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(parts, dim=-1) * self.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.combine(self.parts(x))


def _unit(x: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit length (an all-zero row stays zero)."""
    return F.normalize(x, dim=-1, eps=1e-6)


class SimilarityHead(nn.Module):
    """similarity = sigmoid(offset - scale * distance): distance 0 -> near 1, far apart -> 0.

    `scale` is kept positive through a softplus so that similarity always falls with distance.
    """

    def __init__(self, scale: float = 1.0, offset: float = 4.0) -> None:
        super().__init__()
        self.raw_scale = nn.Parameter(torch.zeros(()))
        self.offset = nn.Parameter(torch.zeros(()))
        self.set_parameters(scale, offset)

    @torch.no_grad()
    def set_parameters(self, scale: float, offset: float) -> None:
        """Set the current scale and offset (e.g. to fix the head for a contrastive loss)."""
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        # Inverse softplus, so that `self.scale` is exactly `scale`.
        self.raw_scale.fill_(scale + math.log(-math.expm1(-scale)))
        self.offset.fill_(float(offset))

    @property
    def scale(self) -> torch.Tensor:
        return F.softplus(self.raw_scale)

    def logits(self, distance: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid similarity, for a numerically stable BCE-with-logits."""
        return self.offset - self.scale * distance

    def forward(self, distance: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(distance))


class WriterProxies(nn.Module):
    """A cosine classifier of writers, one learned proxy each (CosFace, Wang et al. 2018):
    logits ``scale * (cos(e, p_c) - margin [c = label])``. Unlike a linear softmax head, it
    cannot lower the loss by growing the embedding's length, only by turning each embedding
    towards its writer's proxy and away from the others'; `margin` (given labels) asks for a
    gap between them."""

    def __init__(self, dim: int, classes: int, scale: float = 16.0, margin: float = 0.1) -> None:
        super().__init__()
        if scale <= 0 or margin < 0:
            raise ValueError(f"proxies need scale > 0 and margin >= 0, got {scale}, {margin}")
        self.scale, self.margin = float(scale), float(margin)
        self.proxies = nn.Parameter(torch.randn(classes, dim) / math.sqrt(dim))

    @property
    def out_features(self) -> int:
        return self.proxies.shape[0]

    def forward(self, features: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        cosine = F.normalize(features, dim=1) @ F.normalize(self.proxies, dim=1).T
        if labels is not None and self.margin > 0:
            cosine = cosine - self.margin * F.one_hot(labels, cosine.shape[1]).to(cosine.dtype)
        return self.scale * cosine


class SiameseNetwork(nn.Module):
    """One embedding shared by both branches; pairs index into a batch of distinct images."""

    def __init__(self, embedding: nn.Module, head: SimilarityHead | None = None) -> None:
        super().__init__()
        self.embedding = embedding
        self.head = head if head is not None else SimilarityHead()

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, dim)."""
        return self.embedding(images)

    def distance(
        self, images: torch.Tensor, left: torch.Tensor, right: torch.Tensor
    ) -> torch.Tensor:
        """Euclidean distance per pair; each (already deduplicated) image is embedded once."""
        emb = self.embed(images)
        return distances_of(emb, left, right)

    def forward(
        self, images: torch.Tensor, left: torch.Tensor, right: torch.Tensor
    ) -> torch.Tensor:
        """Similarity in (0, 1) for each pair (left[i], right[i])."""
        return self.head(self.distance(images, left, right))

    def compare(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Similarity of a[i] and b[i] for two image batches of equal size."""
        if a.shape != b.shape:
            raise ValueError(f"compare needs batches of equal shape, got {a.shape} and {b.shape}")
        n = a.shape[0]
        idx = torch.arange(n, device=a.device)
        return self(torch.cat([a, b]), idx, idx + n)


def pair_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise Euclidean distance, with an epsilon that keeps its gradient finite at 0."""
    return torch.sqrt((a - b).pow(2).sum(dim=-1) + DISTANCE_EPS)


def distances_of(embeddings: torch.Tensor, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """`pair_distance` of each pair (embeddings[left[i]], embeddings[right[i]]).

    Picked by ``index_select``, whose backward (``index_add``) sums an image's gradients in one
    order: the backward of ``embeddings[left]`` (``index_put`` with accumulation) let CPU threads
    race, and the same seed trained different weights unless torch's deterministic algorithms
    were on (tests/test_reproducible.py)."""
    return pair_distance(embeddings.index_select(0, left), embeddings.index_select(0, right))


EMBEDDINGS: dict[str, type[nn.Module]] = {"pixel": PixelEmbedding, "conv": ConvEmbedding}


def build_embedding(kind: str, **kwargs: Any) -> nn.Module:
    """'pixel' (the paper's) or 'conv' embedding from plain keyword arguments."""
    if kind not in EMBEDDINGS:
        raise ValueError(f"unknown embedding kind {kind!r}; expected one of {sorted(EMBEDDINGS)}")
    return EMBEDDINGS[kind](**kwargs)


def build_siamese(
    embedding: str = "pixel",
    head: Mapping[str, float] | None = None,
    writer_branch: Mapping[str, Any] | None = None,
    members: int = 1,
    **kwargs: Any,
) -> SiameseNetwork:
    """A SiameseNetwork from plain config: `embedding` kind + its kwargs, `head` {scale, offset},
    and either `members` > 1 (an `EnsembleEmbedding` of that many; the first starts as the
    single embedding would with the same seed) or an optional `writer_branch` ({weight, depth,
    channels, hidden, batch_norm, pretrain_epochs}) fused in. The branch is built without drawing
    from the global random stream, so that with a given seed the pair embedding starts (and
    trains) as without it."""
    members = int(members)
    if members < 1:
        raise ValueError(f"members must be >= 1, got {members}")
    if members > 1 and writer_branch:
        raise ValueError("members > 1 and writer_branch cannot be combined; choose one")
    if members > 1:
        ensemble = EnsembleEmbedding([build_embedding(embedding, **kwargs) for _ in range(members)])
        return SiameseNetwork(ensemble, SimilarityHead(**(head or {})))
    net: nn.Module = build_embedding(embedding, **kwargs)
    if writer_branch:
        branch = dict(writer_branch)
        weight = float(branch.pop("weight", DEFAULT_WRITER_WEIGHT))
        branch.pop("pretrain_epochs", None)  # read by the training (sigid.training.writer_branch)
        shape = {k: kwargs[k] for k in ("image_size", "in_channels") if k in kwargs}
        with torch.random.fork_rng(devices=[]):  # the pair embedding's draws stay as without it
            writer = WriterFeatures(**shape, **branch)
        net = FusedEmbedding(net, writer, weight)
    return SiameseNetwork(net, SimilarityHead(**(head or {})))
