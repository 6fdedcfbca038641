"""LightningModules: writer identification (CNN) and verification (Siamese)."""

from sigid.tasks.classifier import ClassifierModule
from sigid.tasks.siamese import PAIR_KINDS, SiameseModule

__all__ = ["PAIR_KINDS", "ClassifierModule", "SiameseModule"]
