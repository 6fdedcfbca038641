"""Readable tables of the protocols' results, for the terminal (`sigid evaluate`)."""

from __future__ import annotations

from typing import Any

from sigid.evaluation.protocols.robustness import COLUMNS

# Confusion matrices with more writers than this are left to the JSON and the PNG.
MAX_PRINTED_WRITERS = 12


def format_result(result: dict[str, Any]) -> str:
    """The table of a result of `sigid.evaluation.protocols` (any protocol)."""
    lines = {
        "identification": _identification,
        "writer-dependent": _writer_dependent,
        "writer-independent": _writer_independent,
        "same-name": _same_name,
        "robustness": _robustness,
    }[result["protocol"]](result)
    if "training_split" in result:  # the JSON's null would pass unnoticed in a table
        checked = result["training_split"]
        lines.append(
            f"unseen data checked against {checked}"
            if checked
            else "unseen data NOT checked: no split.json beside the checkpoint (moved out of "
            "its run folder?)"
        )
    if result.get("files"):
        lines.append(f"written: {result['files'][-1]} (and {len(result['files']) - 1} more)")
    return "\n".join(lines)


def _number(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}"


def _identification(result: dict[str, Any]) -> list[str]:
    writers = result["writers"]
    lines = [
        f"identification (closed set): {len(writers)} writers, "
        f"{result['test_signatures']} test signatures",
        f"  top-1 accuracy  {result['top1']:.4f}",
    ]
    if "top5" in result:
        lines.append(f"  top-5 accuracy  {result['top5']:.4f}")
    if len(writers) <= MAX_PRINTED_WRITERS:
        width = max(len(w) for w in writers)
        cell = max(3, len(str(max(map(max, result["confusion_matrix"])))))
        lines.append("confusion matrix (rows: true writer, columns: predicted, in this order):")
        for writer, row in zip(writers, result["confusion_matrix"], strict=True):
            lines.append(f"  {writer:<{width}} " + "".join(f"{n:>{cell}}" for n in row))
    else:
        lines.append(f"confusion matrix: {len(writers)} x {len(writers)}, in --json and --out")
    return lines


def _writer_dependent(result: dict[str, Any]) -> list[str]:
    writers = result["writers"]
    lines = [
        f"writer-dependent verification, score {result['score']}: {result['score_rule']}",
        f"threshold per K: the EER threshold of the {len(writers['val'])} validation writer(s); "
        f"metrics on the {len(writers['test'])} test writer(s)",
        f"  {'K':>3}  {'threshold':>9}  {'forgeries':<9}  {'EER':>6}  {'AUC':>6}  {'FAR':>6}  "
        f"{'FRR':>6}  {'genuine':>7}  {'negatives':>9}  {'writers':>7}  {'skipped':>7}",
    ]
    for entry in result["results"]:
        test = entry["test"]
        for kind in ("skilled", "random"):
            if kind not in test:
                continue
            m = test[kind]
            lines.append(
                f"  {entry['references']:>3}  {entry['threshold']:>9.4f}  {kind:<9}  "
                f"{m['eer']:>6.4f}  {m['auc']:>6.4f}  {m['far']:>6.4f}  {m['frr']:>6.4f}  "
                f"{test['genuine']:>7}  {m['forgeries']:>9}  {test['writers']:>7}  "
                f"{test['skipped']:>7}"
            )
    for entry in result["results"]:
        found = entry["test"].get("identification")
        if found:
            lines.append(
                f"  gallery of the {found['writers']} test writers, K={entry['references']}, "
                f"ranked by mean similarity: identification top-1 {found['top1']:.4f}"
                + (f", top-5 {found['top5']:.4f}" if "top5" in found else "")
                + f" ({found['queries']} questioned genuine signatures)"
            )
    lines.extend(f"  {note}" for note in skipped_references(result))
    return lines


def skipped_references(result: dict[str, Any]) -> list[str]:
    """The K a writer-dependent evaluation left out, and why (too few genuine signatures)."""
    return [
        f"K={s['references']} not evaluated: {s['reason']}"
        for s in result.get("skipped_references", [])
    ]


def _writer_independent(result: dict[str, Any]) -> list[str]:
    """Mean and std per metric, then one column per fold, or with several seeds per seed (its
    mean over its folds)."""
    if "per_seed" in result:
        groups = result["per_seed"]
        names = [s["seed"] for s in groups]
        values = [{k: v["mean"] for k, v in s["metrics"].items()} for s in groups]
        title = (
            f"writer-independent verification: {len(groups)} seeds, {result['folds']} fold runs "
            f"(test writers disjoint within each seed: {result['test_writers_disjoint']})"
        )
        notes = ["  (each seed's column: its mean over its folds; std: between the seeds)"]
    else:
        runs = result["runs"]
        names = [f"fold {r['fold']}" if r["fold"] is not None else f"run {i}" for i, r in
                 enumerate(runs)]  # fmt: skip
        values = [r["metrics"] for r in runs]
        title = (
            f"writer-independent verification: {result['folds']} fold(s) over writers "
            f"(test writers disjoint: {result['test_writers_disjoint']})"
        )
        notes = []
    width = max([len("metric"), *(len(k) for k in result["metrics"])])
    columns = [max(7, len(n)) for n in names]
    lines = [
        title,
        f"  {'metric':<{width}}  {'mean':>7}  {'std':>7}  "
        + "  ".join(f"{n:>{c}}" for n, c in zip(names, columns, strict=True)),
    ]
    for key, stats in result["metrics"].items():
        cells = [_number(v.get(key)) for v in values]
        lines.append(
            f"  {key:<{width}}  {_number(stats['mean']):>7}  {_number(stats['std']):>7}  "
            + "  ".join(f"{v:>{c}}" for v, c in zip(cells, columns, strict=True))
        )
    lines.extend(notes)
    if missing := result.get("missing_folds"):
        lines.append(f"  not a full k-fold mean: no run of fold(s) {', '.join(map(str, missing))}")
    for failed in result["failed"]:
        lines.append(f"  failed: {failed['run']}: {failed['error']}")
    return lines


def _same_name(result: dict[str, Any]) -> list[str]:
    """Verification per medium pair, then identification per gallery medium."""
    writers, test = result["writers"], result["test"]
    lines = [
        f"same-name verification: (writer, name) units of {len(writers['test'])} test writers "
        f"against other writers' renderings of the name; threshold {result['threshold']:.4f} "
        f"(EER threshold of the {len(writers['val'])} validation writers)",
        f"  {'pairs':<21}  {'EER':>6}  {'AUC':>6}  {'FAR':>6}  {'FRR':>6}  {'genuine':>7}  "
        f"{'negatives':>9}",
    ]
    for label, m in test.items():
        if label == "identification":
            continue
        lines.append(
            f"  {label:<21}  {m['eer']:>6.4f}  {m['auc']:>6.4f}  {m['far']:>6.4f}  "
            f"{m['frr']:>6.4f}  {m['genuine']:>7}  {m['negatives']:>9}"
        )
    found = test["identification"]
    lines.append(
        f"identification per name among {found['writers']} test writers (one medium as the "
        f"gallery, the others as queries): top-1 {found['top1']:.4f} over {found['queries']} "
        f"queries (chance {found['chance']:.4f})"
    )
    for medium, entry in found["by_gallery_medium"].items():
        lines.append(f"  gallery {medium:<15}  top-1 {entry['top1']:.4f}  ({entry['queries']})")
    return lines


def _robustness(result: dict[str, Any]) -> list[str]:
    """One row per transform and strength: each figure and, beside it, its change from clean."""
    width = max(len("transform"), *(len(r["transform"]) for r in result["rows"]))
    lines = [
        f"robustness: {result['transformed']} signatures of the {len(result['writers']['test'])} "
        f"test writer(s) transformed; score {result['score']}, threshold from the clean "
        "validation writers",
        *(f"  {key}: {what}" for key, what in result["columns"].items()),
        f"  {'transform':<{width}}  {'strength':<8}  "
        + "  ".join(f"{heading:>16}" for _, heading in COLUMNS)
        + f"  {'refused':>7}",
    ]
    for row in result["rows"]:
        cells = []
        for key, _ in COLUMNS:
            value, delta = row["figures"][key], row["delta"][key]
            shown = (
                _number(value)
                if row["transform"] == "clean" or delta is None
                else (f"{value:.4f} ({delta:+.4f})")
            )
            cells.append(f"{shown:>16}")
        lines.append(
            f"  {row['transform']:<{width}}  {row['strength'] or '-':<8}  "
            + "  ".join(cells)
            + f"  {row['refused']:>7}"
        )
    lines.extend(f"  {note}" for note in skipped_references(result))
    return lines
