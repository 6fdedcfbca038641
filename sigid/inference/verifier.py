"""Verification with a trained Siamese checkpoint: did the same person sign these two?

The score is the network's similarity in (0, 1) (higher = same writer), and the decision is
``score >= threshold`` at the threshold stored in the checkpoint: the validation set's EER
threshold (`sigid.tasks.SiameseModule`), never tuned on the images being verified.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sigid.data.preprocess import background_value, check_options, with_options
from sigid.data.transforms import to_tensor
from sigid.inference.inputs import Signature, as_list, finite_output, read_preprocessing, to_batch
from sigid.inference.shipped import shipped_checkpoint
from sigid.inference.tta import check_tta, embed_tta
from sigid.models.siamese import pair_distance
from sigid.runs.paths import checkpoint_path
from sigid.tasks import SiameseModule, load_checkpoint

# Images embedded per forward pass.
BATCH_SIZE = 64


@dataclass(frozen=True)
class Verdict:
    """A verification decision: ``same`` is ``score >= threshold``."""

    same: bool
    score: float
    threshold: float

    @property
    def decision(self) -> str:
        return "same" if self.same else "different"

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "same": self.same,
            "score": self.score,
            "threshold": self.threshold,
        }


def fingerprint(network: nn.Module, preprocessing: dict[str, Any], tta: int = 1) -> str:
    """sha256 of what decides an embedding: the network's weights, the preprocessing and, when
    on, the test-time augmentation (`sigid.inference.tta`; off, it leaves the digest as before).

    Every state_dict entry (parameters and buffers such as BatchNorm statistics) contributes its
    name, dtype, shape and bytes, in sorted name order, so the same weights always give the
    same hex digest whatever device or file they were loaded from.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(network.state_dict().items()):
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{flat.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    digest.update(json.dumps(preprocessing, sort_keys=True).encode())
    if tta != 1:
        digest.update(f"tta={tta}".encode())
    return digest.hexdigest()


def stored_threshold(module: SiameseModule, checkpoint: str | Path | None = None) -> float:
    """The decision threshold stored in `module`, checked: a similarity lies in [0, 1]."""
    value = float(module.threshold)
    if not 0.0 <= value <= 1.0:  # NaN too
        where = f"{checkpoint}: damaged checkpoint" if checkpoint is not None else "damaged model"
        raise ValueError(f"{where} (stored threshold {value} is not in [0, 1])")
    return value


def stored_genuine_distance(
    module: SiameseModule, checkpoint: str | Path | None = None
) -> float | None:
    """The typical genuine distance stored in `module` (None where none was stored: NaN),
    checked: a distance is never negative."""
    value = float(module.genuine_distance)
    if not math.isfinite(value):
        return None
    if value < 0:
        where = f"{checkpoint}: damaged checkpoint" if checkpoint is not None else "damaged model"
        raise ValueError(f"{where} (stored genuine distance {value} is negative)")
    return value


def given_threshold(threshold: Any) -> float:
    """A threshold given by the caller, as a float in [0, 1]."""
    try:
        value = None if isinstance(threshold, bool) else float(threshold)
    except (TypeError, ValueError):
        value = None
    if value is None:
        raise ValueError(f"threshold must be a number in [0, 1], got {threshold!r}")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"a similarity threshold lies in [0, 1], got {value}")
    return value


def load_siamese(path: str | Path, map_location: str = "cpu") -> SiameseModule:
    """A Siamese checkpoint, or a clear error for a missing file or a CNN checkpoint."""
    module = load_checkpoint(path, map_location)
    if not isinstance(module, SiameseModule):
        raise ValueError(
            f"{path}: this is a CNN writer-classifier checkpoint; verification and galleries need "
            "a Siamese checkpoint (trained with model=siamese or model=siamese_conv)"
        )
    return module


class Verifier:
    """Embeds signatures with a Siamese checkpoint and compares them.

    `a`, `b` and `images` are file paths or HxW uint8 grey arrays (ink dark on white), prepared
    exactly as in training with the checkpoint's stored preprocessing. `tta` > 1 embeds each
    image as the mean embedding of itself and tta - 1 fixed variants (`sigid.inference.tta`);
    1 (the default) is the plain embedding. `options` adds robustness options of the normaliser
    (`sigid.data.preprocess.OPTIONS`, e.g. ``("crop_main", "ink_contrast")``) to the stored
    preprocessing, for scans of documents (RESULTS.md: they cost a little on clean scans).
    """

    def __init__(
        self,
        module: SiameseModule,
        checkpoint: str | Path | None = None,
        threshold: float | None = None,
        tta: int = 1,
        options: Sequence[str] = (),
    ) -> None:
        if not isinstance(module, SiameseModule):
            raise ValueError(f"a Verifier needs a SiameseModule, got {type(module).__name__}")
        self.module = module.eval()
        self.checkpoint = Path(checkpoint).resolve() if checkpoint is not None else None
        stored = read_preprocessing(module, checkpoint)
        try:
            self.preprocessing = with_options(stored, options)
        except ValueError as err:
            where = f"{checkpoint}: " if checkpoint is not None else ""
            raise ValueError(f"{where}{err}") from err
        self.threshold = (
            stored_threshold(module, checkpoint)
            if threshold is None
            else given_threshold(threshold)
        )
        self._genuine_distance = stored_genuine_distance(module, checkpoint)
        self.device = next(module.parameters()).device
        self.tta = check_tta(tta)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        threshold: float | None = None,
        map_location: str = "cpu",
        tta: int = 1,
        options: Sequence[str] = (),
    ) -> Verifier:
        """Load a Siamese checkpoint; `threshold` overrides the stored decision threshold;
        `tta`: the test-time augmentation (1: off); `options`: normaliser options added."""
        tta = check_tta(tta)  # before the load, which takes a while
        check_options(options)  # before the load, too
        path = checkpoint_path(path)
        return cls(load_siamese(path, map_location), path, threshold, tta, options)

    @classmethod
    def shipped(cls, threshold: float | None = None, map_location: str = "cpu") -> Verifier:
        """The verifier shipped with sigid, trained on its procedural writers only
        (docs/shipped-model.md): a start before training on signatures of your own."""
        return cls.from_checkpoint(shipped_checkpoint(), threshold, map_location)

    @property
    def dim(self) -> int:
        return int(self.module.net.embedding.dim)

    @cached_property
    def fingerprint(self) -> str:
        """`fingerprint` of the embedding branch: ties stored embeddings to this model."""
        return fingerprint(self.module.net.embedding, self.preprocessing, self.tta)

    @torch.inference_mode()
    def embed(self, images: Sequence[Signature] | np.ndarray) -> np.ndarray:
        """(N, dim) float32 embeddings of the embedding branch, one row per image."""
        images = as_list(images)
        rows = []
        for start in range(0, len(images), BATCH_SIZE):
            batch = to_batch(images[start : start + BATCH_SIZE], self.preprocessing, self.device)
            rows.append(self._embed(batch).float().cpu())
        return self._finite(torch.cat(rows).numpy())

    @torch.inference_mode()
    def embed_prepared(self, images: np.ndarray) -> np.ndarray:
        """(N, dim) embeddings of images ALREADY preprocessed with this checkpoint's settings
        (a DataModule's (N, H, W) uint8 arrays, ink bright on 0). `embed` would preprocess them
        a second time: it takes raw scans."""
        images = np.asarray(images)
        size = tuple(self.preprocessing["size"])
        if images.ndim != 3 or images.dtype != np.uint8 or images.shape[1:] != size:
            raise ValueError(
                f"expected preprocessed (N, {size[0]}, {size[1]}) uint8 images, got "
                f"{images.dtype} {images.shape}"
            )
        rows = [torch.zeros(0, self.dim)]
        for start in range(0, len(images), BATCH_SIZE):
            chunk = images[start : start + BATCH_SIZE]
            batch = torch.stack([to_tensor(image) for image in chunk]).to(self.device)
            rows.append(self._embed(batch).float().cpu())
        return self._finite(torch.cat(rows).numpy())

    def _embed(self, batch: torch.Tensor) -> torch.Tensor:
        """The embedding branch on a prepared batch, under this verifier's TTA."""
        fill = background_value(self.preprocessing["mode"]) / 255.0
        normalize = bool(getattr(self.module.net.embedding, "normalize", False))
        return embed_tta(self.module.net.embed, batch, self.tta, fill, normalize)

    def _finite(self, values: np.ndarray) -> np.ndarray:
        return finite_output(values, self.checkpoint or "the model")

    def scores(self, query: np.ndarray, references: np.ndarray) -> np.ndarray:
        """Similarity in (0, 1) of one embedding (dim,) to each row of `references` (N, dim)."""
        return self.similarity_at(self.distances(query, references))

    @property
    def genuine_distance(self) -> float | None:
        """The mean distance of the validation genuine pairs at the checkpoint's epoch (None for
        checkpoints written before sigid stored it): the typical distance between two
        signatures of one writer, which a gallery's normalised score is measured against."""
        return self._genuine_distance

    @torch.inference_mode()
    def distances(self, query: np.ndarray, references: np.ndarray) -> np.ndarray:
        """Euclidean distance of one embedding (dim,) to each row of `references` (N, dim)."""
        refs = torch.as_tensor(np.asarray(references, dtype=np.float32), device=self.device)
        one = torch.as_tensor(np.asarray(query, dtype=np.float32), device=self.device)
        if refs.ndim != 2 or one.shape != refs.shape[1:] or refs.shape[1] != self.dim:
            raise ValueError(
                f"expected a ({self.dim},) query and (N, {self.dim}) references, got "
                f"{tuple(one.shape)} and {tuple(refs.shape)}"
            )
        return pair_distance(one.expand_as(refs), refs).float().cpu().numpy()

    @torch.inference_mode()
    def pair_scores(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """Similarity in (0, 1) of each row pair (left[i], right[i]) of two (N, dim)
        embedding arrays: what the network's test step scores for a batch of pairs."""
        a = torch.as_tensor(np.asarray(left, dtype=np.float32), device=self.device)
        b = torch.as_tensor(np.asarray(right, dtype=np.float32), device=self.device)
        if a.ndim != 2 or a.shape != b.shape or a.shape[1] != self.dim:
            raise ValueError(
                f"expected two (N, {self.dim}) embedding arrays, got {tuple(a.shape)} and "
                f"{tuple(b.shape)}"
            )
        return self.similarity_at(pair_distance(a, b).float().cpu().numpy())

    @torch.inference_mode()
    def similarity_at(self, distances: np.ndarray | float) -> np.ndarray:
        """The network's similarity head applied to distances."""
        values = torch.as_tensor(np.asarray(distances, dtype=np.float32), device=self.device)
        return self._finite(self.module.net.head(values).float().cpu().numpy())

    def similarity(self, a: Signature, b: Signature) -> float:
        """The network's similarity of two signatures, in (0, 1); higher = same writer."""
        first, second = self.embed([a, b])
        return float(self.scores(first, second[None])[0])

    def decide(self, score: float) -> Verdict:
        """The decision ``score >= threshold`` for a similarity score."""
        score = float(score)
        return Verdict(same=score >= self.threshold, score=score, threshold=self.threshold)

    def verify(self, a: Signature, b: Signature) -> Verdict:
        """Same writer or not, at the checkpoint's threshold (chosen on validation data)."""
        return self.decide(self.similarity(a, b))
