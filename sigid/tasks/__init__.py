"""LightningModules: writer identification (CNN) and verification (Siamese)."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from lightning import LightningModule

from sigid.tasks.classifier import ClassifierModule
from sigid.tasks.siamese import SiameseModule

__all__ = ["ClassifierModule", "SiameseModule", "load_checkpoint"]


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> LightningModule:
    """Rebuild whichever module wrote the checkpoint, from the checkpoint alone (no configs)."""
    path = Path(path)
    try:
        hparams = torch.load(path, map_location="cpu", weights_only=True)["hyper_parameters"]
    except FileNotFoundError as err:
        raise ValueError(f"{path}: checkpoint not found") from err
    except pickle.UnpicklingError as err:  # any other file; its message runs over many lines
        raise ValueError(f"{path}: not a sigid checkpoint (not a PyTorch checkpoint file)") from err
    except (KeyError, RuntimeError, OSError, EOFError) as err:
        raise ValueError(f"{path}: not a sigid checkpoint ({err})") from err
    cls = ClassifierModule if "num_classes" in hparams else SiameseModule
    return cls.load_from_checkpoint(path, map_location=map_location).eval()
