"""The figures a training run logs to TensorBoard and the evaluation protocols save as PNG:
the ROC curve of verification scores and the writer confusion matrix, drawn by torchmetrics'
plots on the axes of a plain `Figure` (no pyplot figure), so drawing never touches a notebook's
or a server's matplotlib backend.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from matplotlib.figure import Figure
from matplotlib.ticker import AutoLocator, ScalarFormatter
from torchmetrics.classification import BinaryROC, MulticlassConfusionMatrix

from sigid import metrics

# Writer names on the axes up to this many writers; counts in the cells up to this many.
MAX_TICK_LABELS, MAX_CELL_LABELS = 60, 20


def roc_figure(scores: torch.Tensor, targets: torch.Tensor, threshold: float) -> Figure:
    """ROC curve (torchmetrics' `BinaryROC.plot` of `metrics.roc`'s points) with its EER point
    and the operating point of the stored threshold."""
    eer, _ = metrics.eer(scores, targets)
    far, frr = metrics.far_frr(scores, targets, threshold)
    fig = Figure(figsize=(5, 5))
    ax = fig.add_subplot()
    BinaryROC().plot(curve=metrics.roc(scores, targets), ax=ax)
    ax.lines[0].set_label(f"AUROC {metrics.auroc(scores, targets):.3f}")
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    ax.plot([eer], [1 - eer], "o", label=f"EER {eer:.3f}")
    ax.plot([far], [1 - frr], "s", label=f"threshold {threshold:.3f} (from validation)")
    ax.set_title("")
    ax.set_xlabel("false acceptance rate")
    ax.set_ylabel("true acceptance rate (1 - FRR)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def confusion_figure(confusion: torch.Tensor, class_names: Sequence[str] | None = None) -> Figure:
    """A confusion matrix heat map (torchmetrics' `MulticlassConfusionMatrix.plot`; rows: true
    writer, columns: predicted writer), at least two writers."""
    n = confusion.shape[0]
    side = min(4.0 + 0.2 * n, 24.0)
    fig = Figure(figsize=(side, side))
    ax = fig.add_subplot()
    names = list(class_names) if class_names is not None else None
    MulticlassConfusionMatrix(num_classes=n).plot(
        confusion, ax=ax, add_text=n <= MAX_CELL_LABELS, labels=names, cmap="Blues"
    )
    fig.colorbar(ax.images[0], ax=ax, fraction=0.046, pad=0.04)
    ax.set_xlabel("predicted writer", fontsize=10)
    ax.set_ylabel("true writer", fontsize=10)
    if n > MAX_TICK_LABELS:  # too many names to read: matplotlib's few numbered ticks instead
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_locator(AutoLocator())
            axis.set_major_formatter(ScalarFormatter())
    ax.tick_params(labelsize=7)
    for count in ax.texts:
        count.set_fontsize(7)
    fig.tight_layout()
    return fig
