"""How far the stroke-changing acquisitions move the ``normalized`` output, with and without
the normaliser's options: no network, no training, a few minutes of one core.

    python tools/stroke_invariance.py CEDAR_ROOT [--writers 1 2 3 4 5] [--per-writer 12]
        [--strength middle] [--width 2.0] [--level 135] [--time 100] [--json]

For the first `--per-writer` genuine scans of each of `--writers` (fixed files, so the figures
do not depend on a fold), each of thinner, thicker, tablet, pen, faint and resolution
(`sigid.data.acquisition.apply` at `--strength`, seed 0) changes the scan, and the clean and the
changed scan are both preprocessed at 128x128 with each setting: no option, crop_main +
ink_contrast, and crop_main + ink_contrast with uniform_strokes or with match_width. Per
transform and setting:

- ``mad``: the mean absolute difference of the two outputs (grey levels, 0..255);
- ``moved``: that difference summed, over the clean output's sum (the share of its ink that
  moved; fair between settings that draw strokes brighter or darker);
- ``iou``: intersection over union of their ink (pixels > 0).

`--width` and `--level` set `sigid.data.preprocess.STROKE_WIDTH` and `STROKE_LEVEL` for the
run (to compare widths). `--time N` also preprocesses the first N clean scans of
``full_org`` (in name order) with each setting and prints the time per image (one process; set
OMP_NUM_THREADS=1 to measure one core).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from sigid.data.acquisition import apply
from sigid.data.images import load_image

# the module (sigid.data re-exports its preprocess function under the same name)
prep = importlib.import_module("sigid.data.preprocess")

TRANSFORMS = ("thinner", "thicker", "tablet", "pen", "faint", "resolution")
SETTINGS = {
    "off": {},
    "crop_main+ink_contrast": {"crop_main": True, "ink_contrast": True},
    "+uniform_strokes": {"crop_main": True, "ink_contrast": True, "uniform_strokes": True},
    "+match_width": {"crop_main": True, "ink_contrast": True, "match_width": True},
}
SIZE = (128, 128)


def scans(root: Path, writers: list[int], per_writer: int) -> list[Path]:
    """The first `per_writer` genuine scans of each writer, under ROOT or ROOT/signatures."""
    base = root / "signatures" if (root / "signatures").is_dir() else root
    paths = [
        base / "full_org" / f"original_{writer}_{number}.png"
        for writer in writers
        for number in range(1, per_writer + 1)
    ]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise SystemExit(f"stroke_invariance: no such scan {missing[0]} (is {root} CEDAR?)")
    return paths


def distances(clean: np.ndarray, changed: np.ndarray) -> tuple[float, float, float]:
    """(mad, moved, iou) of two preprocessed images."""
    a, b = clean.astype(np.int32), changed.astype(np.int32)
    diff = np.abs(a - b)
    union = ((a > 0) | (b > 0)).sum()
    iou = float(((a > 0) & (b > 0)).sum() / union) if union else 1.0
    return float(diff.mean()), float(diff.sum() / max(int(a.sum()), 1)), iou


def invariance(paths: list[Path], strength: str) -> dict[str, dict[str, dict[str, float]]]:
    """{transform: {setting: {mad, moved, iou}}}, means over `paths`."""
    sums = {t: {s: np.zeros(3) for s in SETTINGS} for t in TRANSFORMS}
    for path in paths:
        grey = load_image(path)
        clean = {s: prep.preprocess(grey, "normalized", SIZE, **o) for s, o in SETTINGS.items()}
        for transform in TRANSFORMS:
            changed = apply(grey, transform, strength, 0)
            for setting, options in SETTINGS.items():
                out = prep.preprocess(changed, "normalized", SIZE, **options)
                sums[transform][setting] += distances(clean[setting], out)
    return {
        t: {s: dict(zip(("mad", "moved", "iou"), (v / len(paths)).tolist(), strict=True))
            for s, v in row.items()}
        for t, row in sums.items()
    }  # fmt: skip


def timing(root: Path, count: int) -> dict[str, float]:
    """Seconds per image to preprocess the first `count` clean scans, per setting (decoding
    excluded)."""
    base = root / "signatures" if (root / "signatures").is_dir() else root
    greys = [load_image(p) for p in sorted((base / "full_org").glob("*.png"))[:count]]
    seconds = {}
    for setting, options in SETTINGS.items():
        start = time.perf_counter()
        for grey in greys:
            prep.preprocess(grey, "normalized", SIZE, **options)
        seconds[setting] = (time.perf_counter() - start) / max(len(greys), 1)
    return seconds


def main(argv: list[str] | None = None) -> int:
    """Print the invariance table (and the timing with --time)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--per-writer", type=int, default=12)
    parser.add_argument("--strength", default="middle")
    parser.add_argument("--width", type=float, default=prep.STROKE_WIDTH)
    parser.add_argument("--level", type=float, default=prep.STROKE_LEVEL)
    parser.add_argument("--time", type=int, default=0, metavar="N")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    prep.STROKE_WIDTH, prep.STROKE_LEVEL = args.width, args.level
    paths = scans(args.root, args.writers, args.per_writer)
    start = time.perf_counter()
    table = invariance(paths, args.strength)
    result = {
        "images": len(paths), "strength": args.strength, "width": args.width,
        "level": args.level, "table": table, "seconds": round(time.perf_counter() - start, 1),
    }  # fmt: skip
    if args.time:
        result["per_image_s"] = timing(args.root, args.time)
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
        return 0
    print(
        f"{len(paths)} CEDAR scans, strength {args.strength}, uniform_strokes width "
        f"{args.width} px at {args.level:g}; mad / moved / iou (clean vs changed)"
    )
    print(f"{'transform':<11}" + "".join(f"{s:>26}" for s in SETTINGS))
    for transform, row in table.items():
        cells = "".join(
            f"{v['mad']:>10.2f} /{v['moved']:>5.2f} /{v['iou']:>5.2f}" for v in row.values()
        )
        print(f"{transform:<11}{cells}")
    mean = {s: np.mean([[table[t][s][k] for k in ("mad", "moved", "iou")] for t in table], 0)
            for s in SETTINGS}  # fmt: skip
    print(
        f"{'mean':<11}"
        + "".join(f"{v[0]:>10.2f} /{v[1]:>5.2f} /{v[2]:>5.2f}" for v in mean.values())
    )
    print(f"({result['seconds']} s)")
    if args.time:
        per = ", ".join(f"{s} {1000 * v:.1f} ms" for s, v in result["per_image_s"].items())
        print(f"preprocessing per image ({args.time} clean scans): {per}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
