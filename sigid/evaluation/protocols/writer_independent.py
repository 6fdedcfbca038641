"""Writer-independent verification: k-fold over writers, summarised as mean and spread.

Each fold is one training run (``sigid-train -m experiment=cedar_snn data.split.fold=0,1,2,3,4``)
that tested itself at its validation threshold and left ``metrics.json``. This only reads them,
checks that they are the folds of one configuration with writer-disjoint splits, and gives the
mean and sample standard deviation of every test metric over the folds (per seed, then across
seeds, when the runs differ in seed). Why: docs/design.md, "Folds and seeds, not one split".
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from sigid.errors import one_line
from sigid.evaluation.protocols.output import Scalar, write_outputs
from sigid.runs.records import RESUME_KEY, override_key, recorded_overrides
from sigid.runs.sweep import FOLD_KEY, SEED_KEYS, is_number, job_number, mean_std, read_json

FOLDS_KEY = "data.split.folds"
# Reported first, in this order; any other test/* metric follows alphabetically.
LEADING = (
    "test/eer_skilled", "test/eer_random", "test/eer", "test/auroc", "test/far", "test/frr",
    "test/acc", "test/threshold",
)  # fmt: skip


def writer_independent_summary(
    runs: str | Path | Sequence[str | Path], out: str | Path | None = None
) -> dict[str, Any]:
    """Mean and std over folds of the test metrics of each fold's ``metrics.json``.

    `runs`: a multirun (sweep) folder holding one job folder per fold, or the run folders
    themselves. A failed or unfinished job is listed under ``failed``, not averaged. Runs that
    differ in ``seed`` (or ``data.seed``) besides the fold are several draws of one recipe
    (``sigid-train -m ... seed=0,1,2 data.split.fold=0,1,2,3,4``): each seed is summarised over
    its folds (``per_seed``), and ``metrics`` holds the mean of the seeds' fold means and their
    spread. With `out`, also ``evaluation.json`` and the per-fold metrics in TensorBoard (step:
    the fold).
    """
    folders = _run_folders(runs)
    folds, failed = [], []
    for folder in folders:
        status = read_json(folder / "status.json") or {}
        metrics = read_json(folder / "metrics.json")
        test = (
            {k: v for k, v in metrics.items() if k.startswith("test/") and is_number(v)}
            if isinstance(metrics, dict)
            else {}
        )
        if status.get("status", "ok") != "ok" or not test:
            failed.append({"run": str(folder), "error": _why_unusable(folder, status, metrics)})
            continue
        folds.append({"run": str(folder), "fold": _fold(folder), "metrics": test})
    if not folds:
        listed = "; ".join(f"{f['run']}: {f['error']}" for f in failed)
        raise ValueError(f"no finished fold among {len(folders)} run folder(s) ({listed})")
    groups = _by_seed(folds)
    per_seed = [{"seed": seed, **_over_folds(group)} for seed, group in groups.items()]
    if len(per_seed) == 1:
        result = {"protocol": "writer-independent", **per_seed[0], "failed": failed}
        del result["seed"]
    else:
        _check_same_folds(groups)
        means = [{k: v["mean"] for k, v in s["metrics"].items()} for s in per_seed]
        disjoint = [s["test_writers_disjoint"] for s in per_seed]
        result = {
            "protocol": "writer-independent",
            "seeds": len(per_seed),
            "folds": sum(s["folds"] for s in per_seed),
            "missing_folds": per_seed[0]["missing_folds"],  # the seeds share their folds
            "std": "sample standard deviation of the seeds' means over their folds (n - 1)",
            "test_writers_disjoint": None if None in disjoint else all(disjoint),
            "metrics": _summarise(means, "seeds"),
            "per_seed": per_seed,
            "failed": failed,
        }
    scalars = [
        Scalar(
            f"{s['seed']}/{key}" if len(per_seed) > 1 else key,
            value,
            fold["fold"] if fold["fold"] is not None else index,
        )
        for s in per_seed
        for index, fold in enumerate(s["runs"])
        for key, value in fold["metrics"].items()
    ]
    return write_outputs(result, out, scalars=scalars)


def _over_folds(folds: list[dict[str, Any]]) -> dict[str, Any]:
    """One configuration's folds: mean and sample std of each test metric."""
    disjoint = _test_writers_disjoint([Path(f["run"]) for f in folds])
    _check_distinct_folds(folds, disjoint)
    return {
        "folds": len(folds),
        # a mean over 2 of 5 folds is no 5-fold figure: say which are absent
        "missing_folds": _missing_folds(folds),
        "std": "sample standard deviation over folds (n - 1); null with one fold",
        "test_writers_disjoint": disjoint,
        "metrics": _summarise([f["metrics"] for f in folds], "folds"),
        "runs": folds,
    }


def _summarise(items: list[dict[str, float]], count: str) -> dict[str, dict[str, Any]]:
    """Per metric, in report order: mean and sample std over the items that have it, and
    how many (under `count`: folds, or seeds)."""
    keys = sorted({k for item in items for k in item}, key=_metric_order)
    summary = {}
    for key in keys:
        values = [item[key] for item in items if key in item]
        mean, std = mean_std(values)
        summary[key] = {"mean": mean, "std": std, count: len(values)}
    return summary


def _run_folders(runs: str | Path | Sequence[str | Path]) -> list[Path]:
    """The run folders: given ones, or the job folders of a sweep folder, in job order."""
    if isinstance(runs, (str, Path)):
        root = Path(runs)
        if root.is_file():
            raise ValueError(f"{root}: a file; give the sweep folder or the run folders")
        if not root.is_dir():
            raise ValueError(f"{root}: no such sweep or run folder")
        if _is_run(root):
            return [root]
        found = sorted((p for p in root.iterdir() if p.is_dir() and _is_run(p)), key=job_number)
        if not found:
            raise ValueError(f"{root}: no run folders (with metrics.json or .hydra/) in it")
        return found
    folders = [Path(r) for r in runs]
    missing = [str(f) for f in folders if not f.is_dir()]
    if missing or not folders:
        raise ValueError(f"no such run folder(s): {', '.join(missing) or 'none given'}")
    return folders


def _is_run(folder: Path) -> bool:
    return any((folder / name).exists() for name in ("metrics.json", "status.json", ".hydra"))


def _yaml(path: Path) -> Any:
    """A run's Hydra record; a damaged one is an error that names it, in one line."""
    try:
        return OmegaConf.load(path)
    except Exception as err:  # yaml's and OmegaConf's own error types
        raise ValueError(f"{path}: not readable as YAML ({one_line(err)})") from err


def _why_unusable(folder: Path, status: dict[str, Any], metrics: Any) -> str:
    """Why a run folder gives no fold: failed, unfinished, or its metrics.json unreadable."""
    if status.get("status", "ok") != "ok":
        return str(status.get("error") or "failed")
    path = folder / "metrics.json"
    if not path.is_file():
        return "no metrics.json (unfinished?)"
    if not isinstance(metrics, dict):
        return "metrics.json is not a JSON object (damaged?)"
    return "metrics.json holds no numeric test/ metrics"


def _settings(folder: Path) -> dict[str, str]:
    """The run's overrides other than the fold (and Hydra's own, and ckpt_path: a resumed
    fold is the same recipe)."""
    out = {}
    for item in recorded_overrides(folder):
        key = override_key(item)
        if key not in (FOLD_KEY, RESUME_KEY) and not key.startswith("hydra."):
            out[key] = item.partition("=")[2]
    return out


def _fold(folder: Path) -> int | None:
    """The run's test fold: its ``data.split.fold`` override, else its resolved config's."""
    for item in recorded_overrides(folder):
        value = item.partition("=")[2]
        if override_key(item) == FOLD_KEY and value.strip().isdigit():
            return int(value)
    config = folder / ".hydra" / "config.yaml"
    if config.is_file():
        value = OmegaConf.select(_yaml(config), FOLD_KEY, default=None)
        return int(value) if isinstance(value, int) else None
    return None


def _missing_folds(folds: list[dict[str, Any]]) -> list[int]:
    """The folds of the runs' ``data.split.folds`` that no run tested; [] when unknown."""
    counts = set()
    for fold in folds:
        config = Path(fold["run"]) / ".hydra" / "config.yaml"
        value = (
            OmegaConf.select(_yaml(config), FOLDS_KEY, default=None) if config.is_file() else None
        )
        counts.add(value if isinstance(value, int) else None)
    if len(counts) != 1 or None in counts:
        return []
    tested = {f["fold"] for f in folds}
    return [k for k in range(counts.pop()) if k not in tested]


def _by_seed(folds: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The folds grouped by their seed overrides ("seed=1"; "" when no seed varies). Folds of
    different settings (a depth, a learning rate) must not be averaged together: refused."""
    settings = [_settings(Path(f["run"])) for f in folds]
    keys = set().union(*settings)
    varying = sorted(k for k in keys if len({s.get(k) for s in settings}) > 1)
    other = [k for k in varying if k not in SEED_KEYS]
    if other:
        raise ValueError(
            f"the runs differ in more than the fold and the seed ({', '.join(other)}); "
            "summarise the folds of one configuration at a time (give its run folders)"
        )
    groups: dict[str, list[dict[str, Any]]] = {}
    for fold, setting in zip(folds, settings, strict=True):
        label = ",".join(f"{k}={setting.get(k)}" for k in varying)
        groups.setdefault(label, []).append(fold)
    return groups


def _check_distinct_folds(folds: list[dict[str, Any]], disjoint: bool | None) -> None:
    """Each fold once: told by its number, or, for runs whose number is unknown, by the runs'
    test writers (`disjoint`, from their split.json) being different."""
    numbers = [f["fold"] for f in folds if f["fold"] is not None]
    repeated = sorted({n for n in numbers if numbers.count(n) > 1})
    if repeated:
        raise ValueError(f"fold(s) {repeated} appear more than once; give each fold's run once")
    if len(folds) > 1 and disjoint is not True:
        _check_folds_known(folds, "nor tell from split.json that their test writers differ")


def _check_folds_known(folds: list[dict[str, Any]], why: str) -> None:
    unknown = [f["run"] for f in folds if f["fold"] is None]
    if unknown:
        raise ValueError(
            f"cannot tell the fold of {', '.join(unknown)} (no {FOLD_KEY} override, no "
            f".hydra/config.yaml) {why}; a run made with {FOLD_KEY}=F records its fold"
        )


def _check_same_folds(groups: dict[str, list[dict[str, Any]]]) -> None:
    """Seeds' means are comparable only over the same folds (a failed fold would bias one)."""
    _check_folds_known([f for folds in groups.values() for f in folds], "to match the seeds' folds")
    covered = {seed: sorted(f["fold"] for f in folds) for seed, folds in groups.items()}
    if len({tuple(c) for c in covered.values()}) > 1:
        listed = "; ".join(f"{seed or 'seed'}: folds {c}" for seed, c in covered.items())
        raise ValueError(
            f"the seeds cover different folds ({listed}); the mean over seeds needs every "
            "seed's same folds: rerun the missing folds or give the folds all seeds share"
        )


def _test_writers_disjoint(folders: list[Path]) -> bool | None:
    """Whether no fold's test writer was trained or validated on in its run, and no writer is
    tested in two folds (from each run's ``split.json``); None without split files. A run
    whose test writers were seen in training is an error: it is not writer-independent."""
    tested: list[set[str]] = []
    for folder in folders:
        split = read_json(folder / "split.json")
        if not isinstance(split, dict) or "test" not in split:
            return None
        test = set(split["test"]["writers"])
        seen = {w for name in ("train", "val") for w in split.get(name, {}).get("writers", [])}
        if test & seen:
            raise ValueError(
                f"{folder}: test writers {sorted(test & seen)} were also used in training or "
                "validation; this run is not a writer-independent fold"
            )
        tested.append(test)
    return sum(len(t) for t in tested) == len(set().union(*tested))


def _metric_order(key: str) -> tuple[int, str]:
    return (LEADING.index(key), "") if key in LEADING else (len(LEADING), key)
