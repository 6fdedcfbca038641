"""A sweep's summary: one row per job of a multirun (or run of a folder of `sigid.train` runs),
mean and std rows over folds or seeds, and the paper's accuracy-vs-epoch figure; and the override
keys that mark another draw (seed) or fold of one recipe, which the fold summary reads too.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from omegaconf import DictConfig, OmegaConf

from sigid.atomic import atomic_path, write_text
from sigid.runs.axes import settings
from sigid.runs.records import override_key

# summary columns; each job's test/* metrics go between best_epoch and wall_time_s
COLUMNS = ("job", "overrides", "status", "monitor", "val_best", "best_epoch")
EPOCHS = "trainer.max_epochs"
FOLD_KEY = "data.split.fold"
# Overrides that draw another sample of the same recipe (initialisation, folds, pairs).
SEED_KEYS = ("seed", "data.seed")
# overrides whose values repeat one setting (another draw, another fold) rather than change it
REPETITIONS = frozenset({*SEED_KEYS, FOLD_KEY})


def job_folders(sweep_dir: str | Path) -> list[Path]:
    """The job folders of a sweep folder (those holding Hydra's ``.hydra``: a multirun's jobs,
    or runs of `sigid.train`), in job order; a ValueError naming the folder if it has none."""
    root = Path(sweep_dir)
    if root.is_file():
        raise ValueError(f"{root}: a file; give the sweep folder")
    if not root.is_dir():
        raise ValueError(f"{root}: no such sweep folder")
    if (root / ".hydra").is_dir():
        raise ValueError(f"{root}: a run folder; give the sweep folder that holds the runs")
    jobs = sorted((p for p in root.iterdir() if (p / ".hydra").is_dir()), key=job_number)
    if not jobs:
        raise ValueError(f"{root}: no job folders (with .hydra/) in it")
    return jobs


def collect(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """One row per job folder (see `job_folders`), in job order."""
    rows = []
    for job in job_folders(sweep_dir):
        overrides = [str(o) for o in OmegaConf.load(job / ".hydra" / "overrides.yaml")]
        metrics = read_json(job / "metrics.json") or {}
        unfinished = {"status": "failed", "error": "no result written"}
        status = read_json(job / "status.json") or unfinished
        # the test metrics, plus the validation accuracy of the best epoch
        test = {k: v for k, v in metrics.items() if k.startswith("test/") or k == "best_val/acc"}
        rows.append(
            {
                "job": job.name,
                "overrides": overrides,
                "status": status["status"],
                "monitor": metrics.get("monitor"),
                "val_best": metrics.get("val_best"),
                "best_epoch": metrics.get("best_epoch"),
                "test": test,
                "wall_time_s": metrics.get("wall_time_s", status.get("wall_time_s")),
                "error": status.get("error", ""),
                "history": read_json(job / "history.json") or [],
                "params": settings(overrides),
            }
        )
    _keep_varying_overrides(rows)
    return rows


def _varying_keys(rows: list[dict[str, Any]]) -> set[str]:
    """The config keys set differently between jobs (or set in some only): the sweep's axes."""
    keys = set().union(*(row["params"] for row in rows))
    return {k for k in keys if len({row["params"].get(k) for row in rows}) > 1}


def _keep_varying_overrides(rows: list[dict[str, Any]]) -> None:
    """Show in each row only the overrides that differ between jobs: the sweep's axes."""
    varying = _varying_keys(rows)
    for row in rows:
        items = row["overrides"]
        shown = [o for o in items if override_key(o) in varying] if varying else items
        row["overrides"] = " ".join(shown)


def write_summary(sweep_dir: str | Path, rows: list[dict[str, Any]] | None = None) -> list[Path]:
    """``summary.csv``, ``summary.md`` and ``accuracy_vs_epoch.png`` in the sweep folder, from
    `rows` (default: `collect` of it)."""
    sweep_dir = Path(sweep_dir)
    rows = collect(sweep_dir) if rows is None else rows
    test_keys = sorted(
        {k for r in rows for k in r["test"]}, key=lambda k: (k.startswith("test/"), k)
    )
    header = [*COLUMNS, *test_keys, "wall_time_s", "error"]
    numeric = ["val_best", "best_epoch", *test_keys, "wall_time_s"]
    table = [[_cell(r, h) for h in header] for r in [*rows, *spread_rows(rows, numeric)]]
    buffer = io.StringIO()
    csv.writer(buffer).writerows([header, *table])
    write_text(sweep_dir / "summary.csv", buffer.getvalue())
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in table]
    write_text(sweep_dir / "summary.md", "\n".join(lines) + "\n")
    written = [sweep_dir / "summary.csv", sweep_dir / "summary.md"]
    plot = plot_accuracy_vs_epoch(rows, sweep_dir / "accuracy_vs_epoch.png")
    return written + ([plot] if plot else [])


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """(mean, sample standard deviation) of numbers; the std needs two of them (None otherwise).

    The sample (n - 1) deviation: folds or seeds are a sample of the runs one could have made.
    """
    values = [float(v) for v in values]
    mean = statistics.fmean(values) if values else None
    return mean, statistics.stdev(values) if len(values) > 1 else None


def spread_rows(rows: list[dict[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    """A "mean" and a "std" summary row over the jobs that finished ("ok"), for the numeric
    columns `keys`: the spread over a sweep's folds or seeds, read next to the jobs.

    No rows where the jobs also differ in other overrides (depth, epochs, ...): a mean over
    different settings would read as one setting's result.
    """
    ok = [r for r in rows if r["status"] == "ok"]
    if not ok or not _varying_keys(rows) <= REPETITIONS:
        return []
    stats: dict[str, tuple[float | None, float | None]] = {}
    for key in keys:
        values = [r["test"].get(key, r.get(key)) for r in ok]
        stats[key] = mean_std([v for v in values if is_number(v)])
    return [
        {
            "job": name,
            "overrides": f"over {len(ok)} ok job(s)",
            "status": "",
            "test": {k: v[index] for k, v in stats.items()},
        }
        for index, name in enumerate(("mean", "std"))
    ]


def is_number(value: Any) -> bool:
    """Whether a JSON value is a number (an int or a float, not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def accuracy_curves(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, float]]]:
    """The validation-accuracy histories to draw, by legend label: the overrides that vary
    between the jobs (the depth first), as in the summary's rows.

    Jobs that differ only in epoch count are one curve, the longest run's; jobs whose overrides
    cannot tell them apart are labelled with their job as well.
    """
    varying = _varying_keys(rows) - {EPOCHS}
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if any("val/acc" in h for h in row["history"]):
            groups.setdefault(_curve_label(row["params"], varying), []).append(row)
    curves = {}
    for label, group in groups.items():
        histories = [[h for h in row["history"] if "val/acc" in h] for row in group]
        epochs = [row["params"].get(EPOCHS) for row in group]
        if len(set(epochs)) == len(epochs):
            curves[label] = max(histories, key=len)
        else:
            curves.update(
                (f"{label} (job {row['job']})", h) for row, h in zip(group, histories, strict=True)
            )
    return curves


def accuracy_figure(rows: list[dict[str, Any]]) -> Figure | None:
    """Validation accuracy per epoch, one curve per setting of the sweep's axes (the paper's
    Fig. 7: one per depth; see `accuracy_curves`); None if no job has one.

    Epochs from 0, as ``best_epoch`` and TensorBoard count them. A `Figure` of its own, not
    pyplot's: the caller's backend and open figures stay as they are.
    """
    curves = accuracy_curves(rows)
    if not curves:
        return None
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for label in sorted(curves):
        history = curves[label]
        ax.plot([h["epoch"] for h in history], [h["val/acc"] for h in history], "o-", label=label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch (from 0)")
    ax.set_ylabel("validation accuracy")
    ax.set_title("Validation accuracy vs epoch")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_accuracy_vs_epoch(rows: list[dict[str, Any]], png: Path) -> Path | None:
    """`accuracy_figure` of the jobs saved as `png`; None (nothing written) if it has no curve."""
    fig = accuracy_figure(rows)
    if fig is None:
        return None
    with atomic_path(png) as temp:
        fig.savefig(temp, dpi=120)
    return png


class SweepSummary(Callback):
    """Hydra callback: writes the sweep summary when a multirun ends."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        try:
            rows = collect(sweep_dir)
        except ValueError as err:  # no job recorded (hydra.output_subdir=null): nothing to sum up
            print(f"sigid-train: no sweep summary: {err}", file=sys.stderr)
            return
        for path in write_summary(sweep_dir, rows):
            print(f"sweep summary: {path}")
        failed = [row["job"] for row in rows if row["status"] != "ok"]
        if failed:  # the sweep ran every job; its exit status still says that some failed
            print(
                f"sigid-train: {len(failed)} job(s) failed: {', '.join(failed)} "
                f"(see {sweep_dir / 'summary.md'})",
                file=sys.stderr,
            )
            raise SystemExit(1)


def _curve_label(params: dict[str, str], varying: set[str]) -> str:
    """A job's legend label: its setting of each varying key, the depth first."""
    parts = [f"{k}={params.get(k, 'unset')}" for k in sorted(varying - {"model.depth"})]
    if "model.depth" in varying:
        parts.insert(0, f"depth {params.get('model.depth', 'unset')}")
    return ", ".join(parts) or "run"


def _cell(row: dict[str, Any], key: str) -> Any:
    value = row["test"].get(key) if key in row["test"] else row.get(key)
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value).replace("\n", " ").replace("|", "/")


def read_json(path: Path) -> Any:
    """The JSON in a run's file; None where it is missing or damaged (an unfinished job)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def job_number(path: Path) -> tuple[int, str]:
    """Sort key of a sweep's job folders: by Hydra's job number ("10" after "9"), then name."""
    head = path.name.split("_", 1)[0]
    return (int(head), path.name) if head.isdigit() else (1 << 30, path.name)
