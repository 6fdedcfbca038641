"""The one input step of every trained-model tool: a signature (file, grey or RGB array) -> a
tensor, prepared exactly as in training; and the checks on what a checkpoint stores and its
network gives.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sigid.data import load_image
from sigid.data.inks import as_grey
from sigid.data.preprocess import blank_reason, check_preprocessing, no_ink_reason
from sigid.data.preprocess import prepare as prepare_grey
from sigid.data.transforms import to_tensor

# A signature as the tools accept it: a path to an image file, an HxW uint8 grey or HxWx3 RGB scan.
Signature = str | os.PathLike | np.ndarray

# What the tools say when a network's output is NaN or infinite.
NOT_FINITE = "the network gives NaN or infinite values (damaged or diverged weights?)"


def read_preprocessing(module: Any, checkpoint: str | Path | None = None) -> dict[str, Any]:
    """The checkpoint's preprocessing, checked: images must be prepared as in training."""
    stored = getattr(module, "preprocessing", None)
    where = f"{checkpoint}: " if checkpoint is not None else ""
    if not stored or "mode" not in stored or "size" not in stored:
        raise ValueError(
            f"{where}the model stores no preprocessing settings, so its input images cannot be "
            "prepared as in training"
        )
    try:  # stored values, not the user's: a bad one means the file was damaged or edited
        return check_preprocessing(stored)
    except ValueError as err:
        raise ValueError(f"{where}damaged checkpoint (stored preprocessing {err})") from err


def finite_output(values: np.ndarray, model: object) -> np.ndarray:
    """`values`, a network's output, if all finite: NaN would score as a silent mismatch."""
    if not np.isfinite(values).all():
        raise ValueError(f"{model}: {NOT_FINITE}")
    return values


def describe(image: Signature) -> str:
    """How a signature is named in messages and gallery records."""
    return "<array>" if isinstance(image, np.ndarray) else str(image)


def prepare(image: Signature, preprocessing: Mapping[str, Any]) -> np.ndarray:
    """A path, an HxW uint8 grey or an HxWx3 uint8 RGB array -> the preprocessed uint8 array
    the network was fed. A file is read in colour where the preprocessing uses colour
    (``remove_stamps``)."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or not (
            image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)
        ):
            raise ValueError(
                f"a signature array must be HxW uint8 grey or HxWx3 uint8 RGB (ink dark on "
                f"white), got {image.dtype} {image.shape}"
            )
        scan = image
    elif isinstance(image, (str, os.PathLike)):
        scan = load_image(image, colour=bool(preprocessing.get("remove_stamps")))
    else:
        raise ValueError(
            f"a signature is a file path or an HxW uint8 array, not {type(image).__name__}"
        )
    # preprocessing would make an image of a blank page all the same, and the network would
    # score it: refused by the rule training's data use (`no_ink_reason`)
    grey = as_grey(scan)
    if reason := blank_reason(grey):
        raise ValueError(f"{describe(image)}: {reason}")
    prepared = prepare_grey(scan, preprocessing)
    if reason := no_ink_reason(grey, preprocessing["mode"], prepared):
        raise ValueError(f"{describe(image)}: {reason}")
    return prepared


def as_list(images: Sequence[Signature] | np.ndarray) -> list[Signature]:
    """A non-empty list of signatures from a sequence (or an (N, H, W) uint8 stack)."""
    if isinstance(images, np.ndarray) and images.ndim == 3:
        images = list(images)
    elif isinstance(images, (str, os.PathLike, np.ndarray)):
        raise ValueError("expected a sequence of signatures; wrap a single one in a list")
    else:
        images = list(images)
    if not images:
        raise ValueError("no signature images given")
    return images


def to_batch(
    images: Sequence[Signature] | np.ndarray, preprocessing: Mapping[str, Any], device: Any = "cpu"
) -> torch.Tensor:
    """Signatures -> the (N, 1, H, W) float batch in [0, 1] the network takes."""
    batch = [to_tensor(prepare(image, preprocessing)) for image in as_list(images)]
    return torch.stack(batch).to(device)
