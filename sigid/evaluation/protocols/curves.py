"""ROC and DET figures of verification scores (higher = same writer), for PNG and TensorBoard.

The ROC figure is the one a training run logs (`sigid.figures.roc_figure`). The DET curve
(Martin et al., 1997) plots FRR against FAR on normal-deviate (probit) axes, where the low error
rates a deployment cares about get room. Both take every point from `sigid.metrics.roc`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from sigid import metrics
from sigid.atomic import atomic_path
from sigid.figures import roc_figure

__all__ = ["det_figure", "probit", "roc_figure", "save_png"]

# Error rates drawn on a DET plot: 0 and 1 are infinitely far on probit axes, so they are
# clipped to the edges of the plot.
DET_LIMITS = (0.001, 0.999)
DET_TICKS = (0.001, 0.01, 0.05, 0.2, 0.5, 0.8, 0.95, 0.99, 0.999)


def probit(rates: torch.Tensor | np.ndarray | list[float]) -> np.ndarray:
    """Normal deviates (the inverse of the standard normal CDF) of rates, clipped to
    `DET_LIMITS`."""
    clipped = torch.as_tensor(np.asarray(rates, dtype=np.float64)).clamp(*DET_LIMITS)
    return torch.special.ndtri(clipped).numpy()


def det_figure(
    scores: torch.Tensor | np.ndarray, targets: torch.Tensor | np.ndarray, threshold: float
) -> Figure:
    """DET curve with its EER point and the operating point of the decision threshold."""
    far, tar, _ = metrics.roc(scores, targets)
    eer, _ = metrics.eer(scores, targets)
    at_far, at_frr = metrics.far_frr(scores, targets, threshold)
    fig = Figure(figsize=(5, 5))
    ax = fig.add_subplot()
    ax.plot(probit(far), probit(1.0 - tar), label="DET")
    edges = probit(DET_LIMITS)
    ax.plot(edges, edges, linestyle=":", color="grey")
    ax.plot(probit([eer]), probit([eer]), "o", label=f"EER {eer:.3f}")
    ax.plot(
        probit([at_far]), probit([at_frr]), "s", label=f"threshold {threshold:.3f} (validation)"
    )
    ticks, labels = probit(DET_TICKS), [f"{100 * t:g}" for t in DET_TICKS]
    ax.set_xticks(ticks, labels=labels)
    ax.set_yticks(ticks, labels=labels)
    ax.set_xlim(*edges)
    ax.set_ylim(*edges)
    ax.set_xlabel("false acceptance rate (%)")
    ax.set_ylabel("false rejection rate (%)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


def save_png(fig: Figure, path: Path) -> Path:
    """Write a figure atomically (a temporary file in the same folder, then rename)."""
    with atomic_path(path) as temp:
        fig.savefig(temp, format="png", dpi=110)
    return path
