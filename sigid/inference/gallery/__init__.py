"""A gallery of enrolled writers for a Siamese model: enroll, identify, verify, no retraining.

`names`: which writer names are refused; `scores`: how a writer is scored (shared with the
evaluation protocols); `storage`: the ``.npz`` file; `api`: `Gallery`. The names below load on
first use, so that importing `names` or `scores` (as the `sigid` command does) loads no torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["SCORES", "Candidate", "Gallery", "Identification", "check_writer_name"]

# Where each name lives.
_MODULES = {
    "SCORES": "sigid.inference.gallery.scores",
    "Candidate": "sigid.inference.gallery.api",
    "Gallery": "sigid.inference.gallery.api",
    "Identification": "sigid.inference.gallery.api",
    "check_writer_name": "sigid.inference.gallery.names",
}

if TYPE_CHECKING:
    from sigid.inference.gallery.api import Candidate, Gallery, Identification
    from sigid.inference.gallery.names import check_writer_name
    from sigid.inference.gallery.scores import SCORES


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return getattr(importlib.import_module(_MODULES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
