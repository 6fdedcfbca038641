"""Where things are in a run folder: its checkpoint, and the folder of a checkpoint."""

from __future__ import annotations

import os
from pathlib import Path

# The checkpoint of a training run folder that the tools take when given the folder.
RUN_CHECKPOINT = Path("checkpoints") / "best.ckpt"


def checkpoint_path(path: str | os.PathLike | None) -> Path:
    """The checkpoint file `path` names: a training run folder (or an ensemble's) stands for its
    ``checkpoints/best.ckpt``, as the tools write and the README shows. An empty path is refused:
    Path("") is the current folder, reported as "`.`: cannot read"."""
    if path is None or not str(path).strip():
        raise ValueError("no checkpoint path given")
    path = Path(path)
    if not path.is_dir():
        return path
    best = path / RUN_CHECKPOINT
    if not best.is_file():
        raise ValueError(
            f"{path}: a folder that holds no {RUN_CHECKPOINT.as_posix()}; give a checkpoint "
            "file, or a training run folder"
        )
    return best


def run_folder(checkpoint: str | Path) -> Path:
    """The run folder of a checkpoint: above ``checkpoints/``, where training writes."""
    folder = Path(checkpoint).parent
    return folder.parent if folder.name == "checkpoints" else folder
