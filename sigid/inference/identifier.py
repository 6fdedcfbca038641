"""Closed-set identification with a trained CNN checkpoint: which known writer signed this?

The writers are those the classifier was trained on, by the names stored in its checkpoint; a
signature by anyone else still gets the closest of them (use a `sigid.Gallery` for open sets).
"""

from __future__ import annotations

import numbers
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sigid.inference.inputs import Signature, finite_output, read_preprocessing, to_batch
from sigid.runs.paths import checkpoint_path
from sigid.tasks import ClassifierModule, load_checkpoint


def check_top_k(top_k: Any) -> int | None:
    """How many ranked writers to show: a whole number >= 1, or None for all of them."""
    if top_k is None:
        return None
    whole = isinstance(top_k, numbers.Integral) or (isinstance(top_k, float) and top_k.is_integer())
    if isinstance(top_k, bool) or not whole:
        raise ValueError(f"top_k must be a whole number of writers (or None: all), got {top_k!r}")
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    return int(top_k)


class Identifier:
    """Ranks a CNN checkpoint's writers by their softmax probability for a signature."""

    def __init__(self, module: ClassifierModule, checkpoint: str | Path | None = None) -> None:
        if not isinstance(module, ClassifierModule):
            raise ValueError(f"an Identifier needs a ClassifierModule, got {type(module).__name__}")
        self.module = module.eval()
        self.checkpoint = Path(checkpoint).resolve() if checkpoint is not None else None
        self.preprocessing = read_preprocessing(module, checkpoint)
        count = int(module.hparams.num_classes)
        self.writers: list[str] = list(module.class_names or [str(i) for i in range(count)])
        self.device = next(module.parameters()).device

    @classmethod
    def from_checkpoint(cls, path: str | Path, map_location: str = "cpu") -> Identifier:
        path = checkpoint_path(path)
        module = load_checkpoint(path, map_location)
        if not isinstance(module, ClassifierModule):
            raise ValueError(
                f"{path}: this is a Siamese checkpoint; identification with --ckpt needs a CNN "
                "writer-classifier checkpoint (model=cnn). To identify among enrolled writers "
                "with a Siamese model, use a gallery (sigid enroll, sigid identify --gallery)"
            )
        return cls(module, path)

    @torch.inference_mode()
    def probabilities(self, image: Signature) -> np.ndarray:
        """Softmax probability of every writer (in `writers` order) for one signature."""
        logits = self.module(to_batch([image], self.preprocessing, self.device))
        probs = torch.softmax(logits.float(), dim=-1)[0].cpu().numpy()
        return finite_output(probs, self.checkpoint or "the model")

    def identify(self, image: Signature, top_k: int | None = 5) -> list[tuple[str, float]]:
        """The `top_k` most probable writers (None: all), most probable first, as (writer,
        probability)."""
        top_k = check_top_k(top_k)
        probs = self.probabilities(image)
        order = np.argsort(-probs, kind="stable")[:top_k]
        return [(self.writers[i], float(probs[i])) for i in order]
