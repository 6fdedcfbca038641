"""sigid: offline handwritten signature identification and verification.

Public API: `train` (and its `TrainResult`) and `evaluate`, loaded on first use so that
`import sigid.data` and the `sigid` command do not pay for importing Lightning and Hydra.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["TrainResult", "evaluate", "train"]

if TYPE_CHECKING:
    from sigid.training import TrainResult, evaluate, train


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("sigid.training"), name)
    raise AttributeError(f"module 'sigid' has no attribute {name!r}")
