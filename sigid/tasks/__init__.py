"""LightningModules: writer identification (CNN) and verification (Siamese), and loading them."""

from sigid.tasks.checkpoint import load_checkpoint
from sigid.tasks.classifier import ClassifierModule
from sigid.tasks.siamese import SiameseModule

__all__ = ["ClassifierModule", "SiameseModule", "load_checkpoint"]
