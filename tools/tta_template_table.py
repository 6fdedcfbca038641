"""Markdown tables (per fold, and mean ± sample std over folds) from the JSON files that
tools/tta_template_eval.py wrote, one per fold.

    .venv/bin/python tools/tta_template_table.py lever_f0.json lever_f1.json ...
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

# (heading, path into one TTA entry)
TTA_COLUMNS = (
    ("val pairs EER", ("val_pairs", "eer")),
    ("val pairs skilled", ("val_pairs", "eer_skilled")),
    ("val pairs random", ("val_pairs", "eer_random")),
    ("val pairs AUC", ("val_pairs", "auc")),
    ("test skilled", ("test_pairs", "eer_skilled")),
    ("test random", ("test_pairs", "eer_random")),
    ("test AUC", ("test_pairs", "auc")),
    ("val WD K=12", ("normalized", "k12", "val_eer")),
    ("test WD K=12 skilled", ("normalized", "k12", "test_skilled")),
    ("test WD K=12 random", ("normalized", "k12", "test_random")),
    ("val WD K=5", ("normalized", "k5", "val_eer")),
    ("test WD K=5 skilled", ("normalized", "k5", "test_skilled")),
    ("val top-1 K=5", ("gallery", "mean_val")),
    ("test top-1 K=5", ("gallery", "mean_test")),
)
RULE_COLUMNS = (
    ("val K=12", ("k12", "val_eer")),
    ("val K=12 skilled", ("k12", "val_skilled")),
    ("val K=12 random", ("k12", "val_random")),
    ("test K=12 skilled", ("k12", "test_skilled")),
    ("test K=12 random", ("k12", "test_random")),
    ("val K=5", ("k5", "val_eer")),
    ("test K=5 skilled", ("k5", "test_skilled")),
    ("test K=5 random", ("k5", "test_random")),
)


def get(entry: dict[str, Any], path: tuple[str, ...]) -> float:
    for key in path:
        entry = entry[key]
    return float(entry)  # type: ignore[arg-type]


def rows(label: str, folds: list[dict[str, Any]], columns: tuple) -> list[str]:
    """One row per fold and a mean ± std row of `columns` for entries `folds`."""
    out = []
    values = [[get(fold, path) for _, path in columns] for fold in folds]
    for index, row in enumerate(values):
        out.append(f"| {label} | {index} | " + " | ".join(f"{v:.3f}" for v in row) + " |")
    cells = []
    for column in zip(*values, strict=True):
        std = statistics.stdev(column) if len(column) > 1 else 0.0
        cells.append(f"**{statistics.mean(column):.3f}** ± {std:.3f}")
    out.append(f"| {label} | mean | " + " | ".join(cells) + " |")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", type=Path, nargs="+")
    args = parser.parse_args(argv)
    results = [json.loads(path.read_text()) for path in args.files]
    ttas = [key for key in results[0] if key.startswith("tta")]
    print("## TTA (writer-dependent: the normalized score; gallery ranked by the mean)\n")
    print("| TTA | fold | " + " | ".join(h for h, _ in TTA_COLUMNS) + " |")
    print("|---|---|" + "---|" * len(TTA_COLUMNS))
    for tta in ttas:
        print("\n".join(rows(tta, [r[tta] for r in results], TTA_COLUMNS)))
    for tta in ttas[:1] + ttas[-1:]:
        print(f"\n## Writer-dependent rules, {tta}\n")
        print("| rule | fold | " + " | ".join(h for h, _ in RULE_COLUMNS) + " |")
        print("|---|---|" + "---|" * len(RULE_COLUMNS))
        for rule in ("mean", "normalized", "centroid"):
            print("\n".join(rows(rule, [r[tta][rule] for r in results], RULE_COLUMNS)))
        print(f"\n## Gallery top-1, K=5, {tta}: ranked by the mean similarity / the centroid\n")
        gallery = (
            ("val mean", ("mean_val",)), ("val centroid", ("centroid_val",)),
            ("test mean", ("mean_test",)), ("test centroid", ("centroid_test",)),
        )  # fmt: skip
        print("| | fold | " + " | ".join(h for h, _ in gallery) + " |")
        print("|---|---|" + "---|" * len(gallery))
        print("\n".join(rows("top-1", [r[tta]["gallery"] for r in results], gallery)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
