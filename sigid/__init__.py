"""sigid: offline handwritten signature identification and verification."""

__version__ = "0.1.0"

from sigid.train import TrainResult, train

__all__ = ["TrainResult", "train"]
