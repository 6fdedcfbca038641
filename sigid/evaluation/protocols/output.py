"""Where a protocol's result goes when an output folder is given: ``evaluation.json`` (written
atomically, last, so that its presence means the evaluation is complete), the PNG figures, and
the same figures and metrics in a TensorBoard event file under ``tensorboard/``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from sigid.atomic import cannot_write, check_folder, write_json
from sigid.evaluation.protocols.curves import det_figure, save_png
from sigid.figures import roc_figure

RESULT_FILE = "evaluation.json"


@dataclass(frozen=True)
class Curve:
    """Verification scores to draw as ROC and DET at the threshold chosen on validation data.

    Files: ``roc_<stem>.png`` and ``det_<stem>.png``; TensorBoard: ``<protocol>/roc_<label>``
    and ``<protocol>/det_<label>`` at global step `step` (e.g. the number of references).
    """

    stem: str
    label: str
    scores: np.ndarray
    targets: np.ndarray
    threshold: float
    step: int = 0


@dataclass(frozen=True)
class Scalar:
    tag: str
    value: float
    step: int = 0


def write_outputs(
    result: dict[str, Any],
    out: str | Path | None,
    curves: Sequence[Curve] = (),
    figures: Sequence[tuple[str, Figure]] = (),
    scalars: Sequence[Scalar] = (),
) -> dict[str, Any]:
    """Write everything under `out` (nothing when None) and list the files in
    ``result["files"]``; returns `result`."""
    if out is None:
        return result
    from torch.utils.tensorboard import SummaryWriter

    folder = check_folder(out)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise cannot_write(folder, err) from err
    protocol = result["protocol"]
    files: list[Path] = []
    board = SummaryWriter(log_dir=str(folder / "tensorboard"))
    try:
        drawn = [(f"{name}.png", name, fig, 0) for name, fig in figures]
        for curve in curves:
            for kind, draw in (("roc", roc_figure), ("det", det_figure)):
                fig = draw(curve.scores, curve.targets, curve.threshold)
                drawn.append((f"{kind}_{curve.stem}.png", f"{kind}_{curve.label}", fig, curve.step))
        for filename, tag, fig, step in drawn:
            files.append(save_png(fig, folder / filename))
            board.add_figure(f"{protocol}/{tag}", fig, step, close=False)
        for scalar in scalars:
            board.add_scalar(f"{protocol}/{scalar.tag}", scalar.value, scalar.step)
    finally:
        board.close()
    files.append(folder / "tensorboard")
    result["files"] = [str(f) for f in [*files, folder / RESULT_FILE]]
    write_json(folder / RESULT_FILE, result)
    return result
