"""The verifier shipped inside the package: where it lives and what it says about itself.

A Siamese checkpoint trained by ``sigid-train experiment=shipped_verifier`` on sigid's own
procedural writers only (so sigid may redistribute it), packaged by `sigid ship`
(`sigid.inference.packaging`). It is an ordinary sigid checkpoint that `load_checkpoint` reads
weights-only; its `RECORD_KEY` entry says how it was made (docs/shipped-model.md).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

import torch

# The file inside the installed package (pyproject.toml's package-data ships it in the wheel).
SHIPPED_CHECKPOINT = Path(str(files("sigid.inference") / "weights" / "verifier.ckpt"))
# The checkpoint entry that records how the shipped verifier was made.
RECORD_KEY = "sigid_shipped"
# What the commands say on stderr when they use it for want of --ckpt.
NOTE = "using the shipped verifier (procedural writers; see docs/shipped-model.md)"


def shipped_checkpoint() -> Path:
    """The shipped verifier's file; a one-line error where this installation lacks it."""
    if not SHIPPED_CHECKPOINT.is_file():
        raise ValueError(
            f"{SHIPPED_CHECKPOINT}: the shipped verifier is missing from this installation; "
            "give a Siamese checkpoint (--ckpt), or reinstall sigid"
        )
    return SHIPPED_CHECKPOINT


def shipped_record(path: str | Path | None = None) -> dict[str, Any]:
    """How the shipped verifier (or the packaged checkpoint at `path`) was made: training
    command, data, seed, source checkpoint; {} for a checkpoint `sigid ship` did not write."""
    path = Path(path) if path is not None else shipped_checkpoint()
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    record = checkpoint.get(RECORD_KEY) if isinstance(checkpoint, dict) else None
    return dict(record) if isinstance(record, dict) else {}
