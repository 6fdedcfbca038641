"""EER / FAR / FRR / AUROC against cases worked by hand."""

from __future__ import annotations

import math

import pytest
import torch
from torchmetrics.functional.classification import binary_eer

from sigid.metrics import accuracy, auroc, eer, far_frr, roc

# Worked example, 4 genuine + 4 negative pairs:
#   positives 0.9 0.8 0.6 0.3 ; negatives 0.7 0.5 0.2 0.1
# threshold 0.6 accepts 0.9 0.8 0.6 (FRR 1/4) and the negative 0.7 (FAR 1/4): EER = 0.25,
# and 0.5 is the next lower score, so the returned threshold is the midpoint 0.55.
# AUROC: positive > negative in 4 + 4 + 3 + 2 = 13 of 16 pairs.
SCORES = [0.9, 0.8, 0.6, 0.3, 0.7, 0.5, 0.2, 0.1]
TARGETS = [1, 1, 1, 1, 0, 0, 0, 0]


def test_perfect_separation() -> None:
    value, threshold = eer([0.9, 0.8, 0.3, 0.2], [1, 1, 0, 0])
    assert value == 0.0
    assert threshold == pytest.approx(0.55)  # halfway between the classes
    assert far_frr([0.9, 0.8, 0.3, 0.2], [1, 1, 0, 0], threshold) == (0.0, 0.0)
    assert auroc([0.9, 0.8, 0.3, 0.2], [1, 1, 0, 0]) == pytest.approx(1.0)


def test_worked_example() -> None:
    value, threshold = eer(SCORES, TARGETS)
    assert value == pytest.approx(0.25)
    assert threshold == pytest.approx(0.55)
    assert far_frr(SCORES, TARGETS, threshold) == pytest.approx((0.25, 0.25))
    assert auroc(SCORES, TARGETS) == pytest.approx(13 / 16)
    assert accuracy(SCORES, TARGETS, threshold) == pytest.approx(6 / 8)


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [
        (0.75, (0.0, 0.5)),  # accepts 0.9 0.8 only
        (0.7, (0.25, 0.5)),  # >= : the negative 0.7 is accepted
        (0.25, (0.5, 0.0)),
        (0.0, (1.0, 0.0)),
        (1.0, (0.0, 1.0)),
    ],
)
def test_far_frr_at_threshold(threshold: float, expected: tuple[float, float]) -> None:
    assert far_frr(SCORES, TARGETS, threshold) == pytest.approx(expected)


def test_far_frr_missing_class_is_nan() -> None:
    far, frr = far_frr([0.9, 0.1], [1, 1], 0.5)
    assert math.isnan(far)
    assert frr == 0.5


def test_ties_and_inverted_scores() -> None:
    assert eer([0.5, 0.5, 0.5, 0.5], [1, 0, 1, 0])[0] == pytest.approx(0.5)
    assert auroc([0.5, 0.5], [1, 0]) == pytest.approx(0.5)
    # Every negative above every positive: FAR = FRR = 1 at the crossing.
    assert eer([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0])[0] == pytest.approx(1.0)
    # A tie across classes in the middle: at 0.5, FAR = 1/2 and FRR = 0 / at 0.9 FAR 0, FRR 1/2.
    value, _ = eer([0.9, 0.5, 0.5, 0.1], [1, 1, 0, 0])
    assert value == pytest.approx(0.25)


def test_equal_gaps_are_broken_by_the_lower_mean_exactly() -> None:
    """Two ROC points whose gaps are equal in exact fractions (5/21) but not in float32."""
    scores = [4.0, 1.0, 5.0, 4.0, 5.0, 1.0, 1.0, 5.0, 5.0, 0.0]
    targets = [0, 1, 0, 1, 0, 0, 0, 1, 0, 0]
    # Accept >= 5: FAR 3/7, FRR 2/3 (mean 23/42); accept >= 4: FAR 4/7, FRR 1/3 (mean 19/42).
    value, threshold = eer(scores, targets)
    assert value == pytest.approx(19 / 42, abs=1e-12)
    assert threshold == pytest.approx(2.5)
    assert far_frr(scores, targets, threshold) == pytest.approx((4 / 7, 1 / 3))
    # torchmetrics' float32 rates make the accept->=5 gap the smaller: why eer() counts exactly
    ranks = torch.tensor([4.0, 1.0, 5.0, 4.0, 5.0, 1.0, 1.0, 5.0, 5.0, 0.0]) / 5
    assert float(binary_eer(ranks, torch.tensor(targets))) == pytest.approx(23 / 42)


def test_scores_outside_unit_interval_keep_their_units() -> None:
    """torchmetrics would squash these with a sigmoid (which saturates); ranks do not."""
    value, threshold = eer([100.0, 200.0, 300.0, 400.0], [0, 0, 1, 1])
    assert value == 0.0
    assert threshold == pytest.approx(250.0)
    distances = torch.tensor([0.2, 0.4, 1.5, 3.0])  # lower = same: score with -distance
    value, threshold = eer(-distances, torch.tensor([1, 1, 0, 0]))
    assert value == 0.0
    assert -threshold == pytest.approx(0.95)
    assert auroc([100.0, 200.0, 300.0, 400.0], [0, 0, 1, 1]) == 1.0  # 0.5 if squashed
    assert auroc(-distances, torch.tensor([1, 1, 0, 0])) == 1.0
    assert auroc([1e3, 2e3, 3e3, 4e3], [1, 0, 1, 0]) == pytest.approx(0.25)  # 1 of 4 pairs


def test_roc_points() -> None:
    fpr, tpr, thresholds = roc(SCORES, TARGETS)
    assert math.isinf(thresholds[0])
    assert thresholds[1:].tolist() == pytest.approx(sorted(SCORES, reverse=True))
    assert fpr.tolist() == pytest.approx([0, 0, 0, 0.25, 0.25, 0.5, 0.5, 0.75, 1])
    assert tpr.tolist() == pytest.approx([0, 0.25, 0.5, 0.5, 0.75, 0.75, 1, 1, 1])


@pytest.mark.parametrize("seed", range(5))
def test_threshold_reproduces_eer_point(seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    targets = torch.randint(0, 2, (200,), generator=generator)
    targets[:2] = torch.tensor([0, 1])
    scores = torch.rand(200, generator=generator) * 0.6 + 0.3 * targets
    value, threshold = eer(scores, targets)
    far, frr = far_frr(scores, targets, threshold)
    assert (far + frr) / 2 == pytest.approx(value)
    # No other threshold has FAR and FRR closer together.
    gaps = [abs(a - b) for a, b in (far_frr(scores, targets, float(t)) for t in scores)]
    assert abs(far - frr) <= min(gaps) + 1e-9


def test_invalid_inputs_raise() -> None:
    with pytest.raises(ValueError, match="both"):
        eer([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="both"):
        auroc([0.1, 0.2], [0, 0])
    with pytest.raises(ValueError, match="0 or 1"):
        eer([0.1, 0.2], [0, 2])
    with pytest.raises(ValueError, match="differ"):
        eer([0.1, 0.2, 0.3], [0, 1])
    with pytest.raises(ValueError, match="NaN"):
        eer([float("nan"), 0.2], [0, 1])
