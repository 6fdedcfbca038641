"""Two evaluation-time levers measured on a Siamese checkpoint's validation AND test writers:
test-time augmentation (TTA) and one fused template per writer (issue 23, part 4).

    .venv/bin/python tools/tta_template_eval.py CKPT [--tta 1 3 5 7 9] [--json OUT] [overrides]
    e.g. tools/tta_template_eval.py /work/runs/pre_f0 \\
        data=cedar data.root=../shared/data/cedar data.split.fold=0

- TTA-N: every preprocessed image is embedded as itself and N - 1 fixed variants
  (`sigid.inference.tta.VARIANTS`: small zooms, rotations, shifts, filled with the background
  value) and the N embeddings are averaged, as `Verifier(tta=N)` embeds. Each variant is
  embedded once here; TTA-N uses the first N.
- Writer-independent: EER (all, skilled, random) and AUC of the fold's fixed validation pairs
  (what chooses the checkpoint and its threshold) and fixed test pairs (``test/eer_*``).
- Writer-dependent, K = 5 and 12, with the scores ``mean`` and ``normalized``
  (`sigid.inference.gallery.SCORES`) and ``centroid``: the similarity of the distance to the
  mean of the K reference embeddings (one template per writer). Validation writers: the EER
  the protocol's threshold comes from, and skilled / random EER; test writers: skilled /
  random EER; gallery top-1 with K=5 ranked by the mean similarity (the gallery's ranking) and
  by the centroid, on validation and test writers.

Prints one JSON object (and writes it to --json). Everything else is the writer-dependent
protocol's code (`sigid.evaluation.protocols.writer_dependent`).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sigid.data.preprocess import background_value
from sigid.data.transforms import to_tensor
from sigid.evaluation.protocols.robustness import pair_figures
from sigid.evaluation.protocols.writer_dependent import (
    MEAN,
    EmbeddedSplit,
    Rule,
    evaluate_splits,
    forgery_metrics,
    gallery_identification,
    load_splits,
    score_trials,
)
from sigid.inference.tta import variant
from sigid.inference.verifier import BATCH_SIZE, Verifier


@torch.inference_mode()
def variant_embeddings(verifier: Verifier, images: np.ndarray, count: int) -> np.ndarray:
    """(count, N, dim) embeddings of the first `count` variants of preprocessed images."""
    fill = background_value(verifier.preprocessing["mode"]) / 255.0
    out = np.zeros((count, len(images), verifier.dim), dtype=np.float32)
    for start in range(0, len(images), BATCH_SIZE):
        chunk = images[start : start + BATCH_SIZE]
        batch = torch.stack([to_tensor(image) for image in chunk]).to(verifier.device)
        for v in range(count):
            rows = verifier.module.net.embed(variant(batch, v, fill)).float().cpu().numpy()
            out[v, start : start + len(chunk)] = rows
    return out


def tta_mean(embedded: np.ndarray, n: int, normalize: bool) -> np.ndarray:
    """The mean of the first n variants' embeddings (renormalised if the model's are unit)."""
    mean = embedded[:n].mean(axis=0)
    if normalize:
        mean = mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-6)
    return mean.astype(np.float32)


class Centroid:
    """Score against one template per writer: the similarity of the distance to the mean of
    the writer's K reference embeddings."""

    score = "centroid"

    def __call__(self, verifier: Verifier, query: np.ndarray, references: np.ndarray) -> float:
        template = np.asarray(references, dtype=np.float32).mean(axis=0, keepdims=True)
        return float(verifier.scores(query, template)[0])


def wd_figures(verifier: Verifier, val: EmbeddedSplit, test: EmbeddedSplit, rule: Any) -> dict:
    """The writer-dependent figures of one rule on validation and test writers."""
    found = evaluate_splits(verifier, val, test, (5, 12), 0, rule)
    out: dict[str, Any] = {}
    for entry in found.results:
        k = entry["references"]
        val_trials = score_trials(verifier, val, k, 0, rule)
        val_kinds = forgery_metrics(val_trials, entry["threshold"])
        out[f"k{k}"] = {
            "val_eer": entry["validation"]["eer"],
            "val_skilled": val_kinds["skilled"]["eer"],
            "val_random": val_kinds["random"]["eer"],
            "test_skilled": entry["test"]["skilled"]["eer"],
            "test_random": entry["test"]["random"]["eer"],
        }
    return out


def gallery_figures(verifier: Verifier, val: EmbeddedSplit, test: EmbeddedSplit) -> dict:
    """Gallery top-1 with K=5, ranked by the mean similarity and by the centroid."""
    return {
        f"{name}_{split_name}": gallery_identification(verifier, split, 5, 0, rule)["top1"]
        for name, rule in (("mean", MEAN), ("centroid", Centroid()))
        for split_name, split in (("val", val), ("test", test))
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ckpt")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--tta", type=int, nargs="+", default=[1, 3, 5, 7, 9])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_intermixed_args(argv)
    started = time.perf_counter()
    loaded = load_splits(args.ckpt, list(args.overrides))
    verifier, dm = loaded.verifier, loaded.datamodule
    normalize = bool(getattr(verifier.module.net.embedding, "normalize", False))
    count = max(args.tta)
    embedded = {
        name: variant_embeddings(verifier, dm.images[name], count) for name in ("val", "test")
    }
    # TTA-1 must be the protocol's own embedding
    for name in ("val", "test"):
        np.testing.assert_allclose(
            embedded[name][0], loaded.splits[name].embeddings, rtol=1e-5, atol=1e-5
        )
    typical = verifier.genuine_distance
    rules = {"mean": MEAN, "normalized": Rule("normalized", typical), "centroid": Centroid()}
    result: dict[str, Any] = {"checkpoint": str(loaded.checkpoint), "data": args.overrides}
    for n in args.tta:
        val = EmbeddedSplit(dm.samples["val"], tta_mean(embedded["val"], n, normalize))
        test = EmbeddedSplit(dm.samples["test"], tta_mean(embedded["test"], n, normalize))
        entry: dict[str, Any] = {
            "val_pairs": pair_figures(verifier, dm.pairs["val"], val.embeddings, val.embeddings),
            "test_pairs": pair_figures(
                verifier, dm.pairs["test"], test.embeddings, test.embeddings
            ),
            "gallery": gallery_figures(verifier, val, test),
        }
        for name, rule in rules.items():
            entry[name] = wd_figures(verifier, val, test, rule)
        result[f"tta{n}"] = entry
        print(f"tta{n} done at {time.perf_counter() - started:.0f} s", flush=True)
    result["wall_s"] = round(time.perf_counter() - started, 1)
    text = json.dumps(result, indent=1)
    if args.json is not None:
        args.json.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
