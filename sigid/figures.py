"""The figures a training run logs to TensorBoard and the evaluation protocols save as PNG:
the ROC curve of verification scores and the writer confusion matrix. Plain `Figure`s (no
pyplot), so drawing never touches a notebook's or a server's matplotlib backend.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from matplotlib.figure import Figure

from sigid import metrics

# Writer names on the axes up to this many writers; counts in the cells up to this many.
MAX_TICK_LABELS, MAX_CELL_LABELS = 60, 20


def roc_figure(scores: torch.Tensor, targets: torch.Tensor, threshold: float) -> Figure:
    """ROC curve with its EER point and the operating point of the stored threshold."""
    fpr, tpr, _ = metrics.roc(scores, targets)
    eer, _ = metrics.eer(scores, targets)
    far, frr = metrics.far_frr(scores, targets, threshold)
    fig = Figure(figsize=(5, 5))
    ax = fig.add_subplot()
    ax.plot(fpr.numpy(), tpr.numpy(), label=f"AUROC {metrics.auroc(scores, targets):.3f}")
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    ax.plot([eer], [1 - eer], "o", label=f"EER {eer:.3f}")
    ax.plot([far], [1 - frr], "s", label=f"threshold {threshold:.3f} (from validation)")
    ax.set_xlabel("false acceptance rate")
    ax.set_ylabel("true acceptance rate (1 - FRR)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def confusion_figure(confusion: torch.Tensor, class_names: Sequence[str] | None = None) -> Figure:
    """A confusion matrix heat map (rows: true writer, columns: predicted writer)."""
    n = confusion.shape[0]
    side = min(4.0 + 0.2 * n, 24.0)
    fig = Figure(figsize=(side, side))
    ax = fig.add_subplot()
    image = ax.imshow(confusion.numpy(), cmap="Blues", interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xlabel("predicted writer")
    ax.set_ylabel("true writer")
    if n <= MAX_TICK_LABELS:
        names = list(class_names) if class_names is not None else [str(i) for i in range(n)]
        ax.set_xticks(range(n), labels=names, rotation=90, fontsize=7)
        ax.set_yticks(range(n), labels=names, fontsize=7)
    if n <= MAX_CELL_LABELS:
        top = float(confusion.max()) if confusion.numel() else 0.0
        for row in range(n):
            for col in range(n):
                count = int(confusion[row, col])
                colour = "white" if count > top / 2 else "black"
                ax.text(col, row, count, ha="center", va="center", color=colour, fontsize=7)
    fig.tight_layout()
    return fig
