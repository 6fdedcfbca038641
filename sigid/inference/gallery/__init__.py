"""A gallery of enrolled writers for a Siamese model: enroll, identify, verify, no retraining.

`names`: which writer names are refused; `scores`: how a writer is scored (shared with the
evaluation protocols); `store`: where the references live (`sqlite`, the default; `npz`, the
read-only file of sigid before the store, whose format is `storage`); `manage`: info, list,
remove, convert without the model; `api`: `Gallery`. The names below load on
first use, so that importing `names` or `scores` (as the `sigid` command does) loads no torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["SCORES", "Candidate", "Gallery", "Identification", "check_writer_name", "convert"]

# Where each name lives.
_MODULES = {
    "SCORES": "sigid.inference.gallery.scores",
    "Candidate": "sigid.inference.gallery.api",
    "Gallery": "sigid.inference.gallery.api",
    "Identification": "sigid.inference.gallery.api",
    "check_writer_name": "sigid.inference.gallery.names",
    "convert": "sigid.inference.gallery.manage",
}

if TYPE_CHECKING:
    from sigid.inference.gallery.api import Candidate, Gallery, Identification
    from sigid.inference.gallery.manage import convert
    from sigid.inference.gallery.names import check_writer_name
    from sigid.inference.gallery.scores import SCORES


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return getattr(importlib.import_module(_MODULES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
