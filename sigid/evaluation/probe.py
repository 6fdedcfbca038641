"""The "no shortcut" probe: can a linear model tell genuine from forged by the image alone?

A deliberately weak model, an L2-regularised logistic regression on 32x32 thumbnails, trained on
some writers and scored (AUC) on others (`sigid.data.splits.split_writers`), so that per-writer
traits are not taken for a shortcut. Near 0.5, no global image property gives forgeries away;
on raw CEDAR scans it finds the paper colour (docs/design.md, "The shortcut probe").
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

from sigid.data.cache import default_cache_dir, preprocess_samples
from sigid.data.layouts import DatasetError, scan
from sigid.data.splits import split_writers
from sigid.metrics import auroc

ProbeMode = Literal["normalized", "raw"]
# The probe's modes, and the `sigid.data.preprocess` mode each one reads.
PROBE_MODES: dict[str, str] = {"normalized": "normalized", "raw": "paper"}
THUMBNAIL = (32, 32)
DEFAULT_L2 = 1e-2


def thumbnails(images: np.ndarray, size: tuple[int, int] = THUMBNAIL) -> np.ndarray:
    """(N, H, W) uint8 -> (N, h*w) float64 in [0, 1], by area (BOX) averaging.

    Area averaging keeps the mean grey level of each block, so a paper-colour or ink-density
    difference survives the downsampling exactly as a shortcut would exploit it.
    """
    height, width = size
    out = np.empty((len(images), height * width), dtype=np.float64)
    for i, image in enumerate(images):
        small = Image.fromarray(image).resize((width, height), Image.Resampling.BOX)
        out[i] = np.asarray(small, dtype=np.float64).ravel() / 255.0
    return out


def fit_logistic(
    features: np.ndarray, targets: np.ndarray, l2: float = DEFAULT_L2, max_iter: int = 500
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights and bias of ``mean BCE + l2/2 * ||w||^2`` (bias not penalised), by LBFGS.

    Full-batch LBFGS from zero weights in float64 has no randomness at all, so the probe is
    reproducible without seeding torch; the problem is convex, so it is also the optimum.
    """
    x = torch.as_tensor(features, dtype=torch.float64)
    y = torch.as_tensor(targets, dtype=torch.float64)
    weight = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=1e-9,
        tolerance_change=1e-12,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logits = x @ weight + bias
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
        loss = loss + 0.5 * l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return weight.detach(), bias.detach()


def shortcut_probe(
    root: str | Path,
    layout: str = "auto",
    mode: ProbeMode = "normalized",
    size: tuple[int, int] = (128, 128),
    folds: int = 5,
    fold: int = 0,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    l2: float = DEFAULT_L2,
    layout_option: str = "layout=",
) -> dict[str, Any]:
    """AUC of a genuine-vs-forged logistic regression on held-out writers' thumbnails.

    `mode` ``normalized`` reads ``preprocess(grey, "normalized", size)``, ``raw`` a plain grey
    resize of the scan (the ``paper`` mode); both go through the preprocessing cache
    (`cache_dir`, default `default_cache_dir()`), are area-downsampled to 32x32 and
    standardised with the training writers' statistics. Writers are split with
    `split_writers(writers, folds, fold, val=0, seed)`: fold `fold` (the same test writers as
    the verification split's) is scored, all other writers train. `l2` is the weight penalty
    (see `fit_logistic`). The score is the logit of "forged"; AUC 0.5 is chance, and an AUC far
    below 0.5 would be a shortcut too (one that flips between writers). `layout_option` is how
    the caller's user picks the layout, for the hint on a mismatched one (``--layout `` for
    `sigid probe`).
    """
    if mode not in PROBE_MODES:
        raise ValueError(f"unknown probe mode {mode!r}; expected one of {tuple(PROBE_MODES)}")
    start = time.perf_counter()
    table = scan(root, layout, layout_option=layout_option)
    table.require_writers(folds)
    if not table.forged or not table.genuine:
        raise DatasetError(f"{table.root}: the probe needs both genuine and forged signatures")
    # the writers the verification split divides: those with genuine signatures (a writer
    # known only by forgeries of them would shift the folds)
    writers = sorted({s.writer for s in table.samples if s.genuine})
    split = split_writers(writers, folds=folds, fold=fold, val=0, seed=seed)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    # All samples in one call: one cache entry serves every fold.
    images, samples, _ = preprocess_samples(table.samples, PROBE_MODES[mode], size, cache)
    features = thumbnails(images)
    forged = np.array([not s.genuine for s in samples], dtype=np.float64)
    writer = np.array([s.writer for s in samples])
    train = np.isin(writer, split["train"])
    test = np.isin(writer, split["test"])
    for name, part in (("training", train), ("test", test)):
        if len(set(forged[part])) < 2:
            raise DatasetError(f"fold {fold}: the {name} writers lack genuine or forged images")
    mean = features[train].mean(axis=0)
    std = features[train].std(axis=0)
    std[std < 1e-8] = 1.0  # a constant pixel (e.g. always background) carries no information
    standard = (features - mean) / std
    weight, bias = fit_logistic(standard[train], forged[train], l2=l2)
    with torch.no_grad():
        scores = (torch.as_tensor(standard, dtype=torch.float64) @ weight + bias).numpy()
    return {
        "auc": auroc(torch.from_numpy(scores[test]), torch.from_numpy(forged[test])),
        "train_auc": auroc(torch.from_numpy(scores[train]), torch.from_numpy(forged[train])),
        "mode": mode,
        "preprocess": {"mode": PROBE_MODES[mode], "size": [int(size[0]), int(size[1])]},
        "thumbnail": list(THUMBNAIL),
        "l2": l2,
        "folds": folds,
        "fold": fold,
        "seed": seed,
        "train_writers": split["train"],
        "test_writers": split["test"],
        "train_images": {
            "genuine": int((train & (forged == 0)).sum()),
            "forged": int((train & (forged == 1)).sum()),
        },
        "test_images": {
            "genuine": int((test & (forged == 0)).sum()),
            "forged": int((test & (forged == 1)).sum()),
        },
        "seconds": round(time.perf_counter() - start, 2),
    }
