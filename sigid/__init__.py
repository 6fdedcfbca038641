"""sigid: offline handwritten signature identification and verification.

Public API, loaded on first use so that `import sigid.data` and the `sigid` command do not pay
for importing Lightning and Hydra: `train` (and its `TrainResult`) and `evaluate`; and, to use a
trained model, `Verifier` (Siamese: compare two signatures), `Identifier` (CNN: which known
writer) and `Gallery` (enroll new writers for a Siamese model, then identify or verify).
"""

from __future__ import annotations

import importlib
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

__version__ = version("sigid")  # one source: pyproject.toml
__all__ = ["Gallery", "Identifier", "TrainResult", "Verifier", "evaluate", "train"]

# Where each public name lives.
_MODULES = {
    "Gallery": "sigid.inference.gallery.api",
    "Identifier": "sigid.inference.identifier",
    "TrainResult": "sigid.training.run",
    "Verifier": "sigid.inference.verifier",
    "evaluate": "sigid.evaluation.api",
    "train": "sigid.train_cli",
}

if TYPE_CHECKING:
    from sigid.evaluation.api import evaluate
    from sigid.inference.gallery.api import Gallery
    from sigid.inference.identifier import Identifier
    from sigid.inference.verifier import Verifier
    from sigid.train_cli import train
    from sigid.training.run import TrainResult


def __dir__() -> list[str]:
    """The public names too, though loaded on first use: tab completion offers them."""
    return sorted({*__all__, *(name for name in globals() if name.startswith("__"))})


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return getattr(importlib.import_module(_MODULES[name]), name)
    raise AttributeError(f"module 'sigid' has no attribute {name!r}")
