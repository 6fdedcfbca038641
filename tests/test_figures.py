"""The ROC and confusion figures: what they plot, and PNGs that open."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from PIL import Image

from sigid import metrics
from sigid.evaluation.protocols.curves import save_png
from sigid.figures import MAX_CELL_LABELS, MAX_TICK_LABELS, confusion_figure, roc_figure

# 4 genuine + 4 negative pairs (tests/test_metrics.py's worked example): EER 0.25 at 0.55.
SCORES = torch.tensor([0.9, 0.8, 0.6, 0.3, 0.7, 0.5, 0.2, 0.1])
TARGETS = torch.tensor([1, 1, 1, 1, 0, 0, 0, 0])


def _png(path) -> tuple[int, int]:
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.verify()
        return image.size


def test_roc_figure_plots_the_roc_points_the_eer_and_the_threshold(tmp_path):
    open_figures = plt.get_fignums()
    fig = roc_figure(SCORES, TARGETS, threshold=0.65)
    assert plt.get_fignums() == open_figures  # drawn without pyplot
    ax = fig.axes[0]
    fpr, tpr, _ = metrics.roc(SCORES, TARGETS)
    curve = ax.lines[0]
    assert np.asarray(curve.get_xdata()).tolist() == fpr.tolist()
    assert np.asarray(curve.get_ydata()).tolist() == tpr.tolist()
    points = {line.get_label(): (line.get_xdata()[0], line.get_ydata()[0]) for line in ax.lines}
    assert points["EER 0.250"] == (0.25, 0.75)
    # 0.65 accepts 0.9 0.8 (positives) and 0.7 (a negative): FAR 1/4, FRR 1/2
    assert points["threshold 0.650 (from validation)"] == (0.25, 0.5)
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend == ["AUROC 0.812", "EER 0.250", "threshold 0.650 (from validation)"]
    assert ax.get_xlabel() == "false acceptance rate"
    assert ax.get_ylabel() == "true acceptance rate (1 - FRR)"
    assert _png(save_png(fig, tmp_path / "roc.png")) == (550, 550)


def test_roc_figure_of_a_perfect_separation_and_of_tied_scores(tmp_path):
    fig = roc_figure(torch.tensor([0.9, 0.8, 0.3, 0.2]), torch.tensor([1, 1, 0, 0]), 0.55)
    assert np.asarray(fig.axes[0].lines[0].get_xdata()).tolist() == [0, 0, 0, 0.5, 1]
    assert np.asarray(fig.axes[0].lines[0].get_ydata()).tolist() == [0, 0.5, 1, 1, 1]
    fig = roc_figure(torch.full((4,), 0.5), torch.tensor([1, 0, 1, 0]), 0.5)
    assert np.asarray(fig.axes[0].lines[0].get_xdata()).tolist() == [0, 1]
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()][:2] == [
        "AUROC 0.500",
        "EER 0.500",
    ]
    _png(save_png(fig, tmp_path / "roc.png"))


@pytest.mark.parametrize(
    "n", [2, 3, MAX_CELL_LABELS, MAX_CELL_LABELS + 1, MAX_TICK_LABELS, MAX_TICK_LABELS + 1]
)
def test_confusion_figure_shows_the_counts_and_names_while_they_fit(tmp_path, n):
    confusion = torch.arange(n * n).reshape(n, n) % 7
    names = [f"writer{i}" for i in range(n)]
    open_figures = plt.get_fignums()
    fig = confusion_figure(confusion, names)
    assert plt.get_fignums() == open_figures
    ax = fig.axes[0]
    assert len(fig.axes) == 2  # the matrix and its colour bar
    assert ax.images[0].get_array().tolist() == confusion.tolist()
    assert ax.get_xlabel() == "predicted writer" and ax.get_ylabel() == "true writer"
    positions = [(round(t.get_position()[1]), round(t.get_position()[0])) for t in ax.texts]
    cells = dict(zip(positions, [t.get_text() for t in ax.texts], strict=True))
    if n <= MAX_CELL_LABELS:  # row, column: the count in that cell
        assert cells == {(r, c): str(int(confusion[r, c])) for r in range(n) for c in range(n)}
    else:
        assert cells == {}
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    if n <= MAX_TICK_LABELS:
        assert ticks == names
    else:  # too many names to read: matplotlib's few numbered ticks
        assert 0 < len(ticks) < 20 and all(t.lstrip("−").isdigit() for t in ticks)
    assert [t.get_text() for t in ax.get_yticklabels()] == ticks
    side = round(min(4.0 + 0.2 * n, 24.0) * 110)
    assert _png(save_png(fig, tmp_path / "confusion.png")) == (side, side)


def test_confusion_figure_without_names_numbers_the_writers():
    ax = confusion_figure(torch.eye(3, dtype=torch.long)).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2"]
