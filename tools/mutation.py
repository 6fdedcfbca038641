"""Mutation check: break sigid's core behaviour one line at a time and see whether the tests notice.

Each mutant below names a file, an exact snippet of it (found exactly once), its replacement,
and the few tests that should fail because of it. The script applies one mutant at a time to
the working tree, runs only that mutant's tests (``python -m pytest -x -q -p no:cacheprovider``),
restores the file (always: ``try/finally``, Ctrl-C and SIGTERM included), and reports each
mutant as caught or survived, with a score. A mutant that survives is a behaviour the tests
would let break silently. docs/testing.md says how to read the result.

Usage (from the repository root, with the project's virtual environment):

    .venv/bin/python tools/mutation.py               # every mutant (a few minutes)
    .venv/bin/python tools/mutation.py --list        # the mutants and their tests
    .venv/bin/python tools/mutation.py --only NAME [--only NAME ...]
    .venv/bin/python tools/mutation.py --only NAME --tests tests/test_properties.py

Before the mutants, the selected tests run once on the unchanged tree and must pass
(``--no-baseline`` skips that). A file with uncommitted changes is refused: restoring it must
give back exactly what git holds. Exit status: 0 every mutant caught, 1 some survived, 2 the
check could not run (a dirty file, a snippet not found once, a failing baseline).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTEST = ["-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"]
TIMEOUT_S = 600  # per mutant: a mutant that hangs the tests counts as caught (timeout)


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str
    original: str
    replacement: str
    tests: tuple[str, ...]  # pytest arguments: files or node ids, relative to the root
    breaks: str  # the behaviour the mutant breaks, in words


PROPS = "tests/test_properties.py"
# Each area's tests: its own test file and its properties.
PREPROCESS = (
    "tests/test_preprocess.py",
    f"{PROPS}::test_preprocess_makes_the_asked_size_from_any_image",
    f"{PROPS}::test_normalized_paper_is_exactly_zero",
    f"{PROPS}::test_paper_noise_is_not_taken_for_ink",
)
PAIRS = (
    "tests/test_pairs.py",
    f"{PROPS}::test_make_pairs_labels_match_writers_and_kinds",
    f"{PROPS}::test_pairs_never_cross_a_split",
    f"{PROPS}::test_pairs_within_is_every_labelled_pair_of_the_batch",
)
SPLITS = (
    "tests/test_splits.py",
    f"{PROPS}::test_split_per_writer_is_a_seeded_per_writer_partition",
    f"{PROPS}::test_split_writers_folds_partition_the_writers",
    f"{PROPS}::test_pairs_never_cross_a_split",
)
METRICS = (
    "tests/test_metrics.py",
    f"{PROPS}::test_eer_is_the_documented_point_of_the_brute_force_roc",
    f"{PROPS}::test_eer_threshold_is_the_midpoint_below_its_point",
    f"{PROPS}::test_eer_threshold_reproduces_the_eer_on_float32_scores",
    f"{PROPS}::test_roc_is_the_brute_force_roc",
    f"{PROPS}::test_auroc_counts_ties_half",
)
GALLERY = (
    "tests/test_inference.py::test_gallery_identifies_among_enrolled_writers",
    "tests/test_inference.py::test_nobody_close_enough_is_an_unknown_writer",
    "tests/test_inference.py::test_gallery_verifies_a_claim_against_the_writers_own_spread",
    "tests/test_inference.py::test_one_reference_scores_as_the_pair_similarity",
    f"{PROPS}::test_writer_score_ignores_the_order_of_references",
    f"{PROPS}::test_identify_does_not_depend_on_enrolment_order",
)
VERIFIER = (
    "tests/test_inference.py::test_verify_decides_at_the_threshold_stored_in_the_checkpoint",
    f"{PROPS}::test_verifier_decides_score_at_least_threshold",
)
CACHE = ("tests/test_datamodules.py", f"{PROPS}::test_the_preprocessing_cache_is_invisible")

MUTANTS: tuple[Mutant, ...] = (
    # -- preprocessing -----------------------------------------------------------------------
    Mutant(
        "preprocess-paper-kept",
        "sigid/data/preprocess.py",
        "    ink[~crop_mask] = 0\n",
        "",
        PREPROCESS,
        "normalized mode keeps paper noise inside the ink's box (background not exactly 0)",
    ),
    Mutant(
        "preprocess-not-centred",
        "sigid/data/preprocess.py",
        "y, x = (canvas_h - h) // 2, (canvas_w - w) // 2",
        "y, x = 0, 0",
        PREPROCESS,
        "the cropped ink sits in the canvas's corner, not its centre",
    ),
    Mutant(
        "preprocess-resize-checks-height-only",
        "sigid/data/preprocess.py",
        "if grey.shape == (height, width):",
        "if grey.shape[0] == height:",
        PREPROCESS,
        "an image of the asked height is returned at its own width",
    ),
    Mutant(
        "preprocess-mean-threshold",
        "sigid/data/preprocess.py",
        "return smooth <= otsu_threshold(smooth)",
        "return smooth <= smooth.mean()",
        PREPROCESS,
        "ink is what is darker than the page's mean grey: the darker half of the paper noise",
    ),
    # -- pairs --------------------------------------------------------------------------------
    Mutant(
        "pairs-within-label-flipped",
        "sigid/data/pairs.py",
        "Pair(int(a), int(b), int(same), GENUINE if same else kind)",
        "Pair(int(a), int(b), int(not same), GENUINE if same else kind)",
        PAIRS,
        "in-batch pairs of one writer are labelled different, and of two writers same",
    ),
    Mutant(
        "pairs-random-may-be-same-writer",
        "sigid/data/pairs.py",
        "writers[(position + 1 + int(rng.integers(len(writers) - 1))) % len(writers)]",
        "writers[(position + int(rng.integers(len(writers)))) % len(writers)]",
        PAIRS,
        "a random-forgery negative may pair a writer's genuine with their own genuine",
    ),
    Mutant(
        "pairs-skilled-of-another-writer",
        "sigid/data/pairs.py",
        "skilled = {w: list(itertools.product(genuine[w], forged[w])) for w in forged_writers}",
        "skilled = {w: list(itertools.product(genuine[w], forged[forged_writers[0]])) "
        "for w in forged_writers}",
        PAIRS,
        "skilled negatives pair a writer with forgeries of another writer",
    ),
    Mutant(
        "pairs-one-writer-takes-every-turn",
        "sigid/data/pairs.py",
        "writer = writers[(start + k) % len(writers)]",
        "writer = writers[start % len(writers)]",
        PAIRS,
        "positive pairs come from one writer instead of writers taking turns",
    ),
    # -- splits -------------------------------------------------------------------------------
    Mutant(
        "splits-unseeded",
        "sigid/data/splits.py",
        "return np.random.default_rng([seed, zlib.crc32(name.encode())])",
        "return np.random.default_rng()",
        SPLITS,
        "splits are shuffled without the seed (a new split every run)",
    ),
    Mutant(
        "splits-writer-depends-on-others",
        "sigid/data/splits.py",
        "order = _rng(seed, writer).permutation(len(items))",
        "order = _rng(seed + len(by_writer), writer).permutation(len(items))",
        SPLITS,
        "a writer's split changes when other writers are added or removed",
    ),
    Mutant(
        "splits-val-overlaps-test",
        "sigid/data/splits.py",
        'out["val"] += shuffled[n_test : n_test + n_val]',
        'out["val"] += shuffled[:n_val]',
        SPLITS,
        "per-writer validation images are also test images",
    ),
    Mutant(
        "splits-test-writers-also-train",
        "sigid/data/splits.py",
        "for chunk in following if chunk != fold for i in chunks[chunk]",
        "for chunk in following for i in chunks[chunk]",
        SPLITS,
        "verification test writers are also training or validation writers",
    ),
    Mutant(
        "splits-held-out-forger-leaks",
        "sigid/data/splits.py",
        "if s.writer in wanted and s.forger not in hidden]",
        "if s.writer in wanted]",
        SPLITS,
        "a split sees forgeries written by a writer of a later (test) split",
    ),
    # -- metrics ------------------------------------------------------------------------------
    Mutant(
        "metrics-far-strict",
        "sigid/metrics.py",
        "    accepted = scores >= torch.as_tensor(threshold, dtype=scores.dtype)\n"
        "    negatives, positives",
        "    accepted = scores > torch.as_tensor(threshold, dtype=scores.dtype)\n"
        "    negatives, positives",
        METRICS,
        "far_frr decides score > threshold instead of the documented score >= threshold",
    ),
    Mutant(
        "metrics-eer-ignores-gap",
        "sigid/metrics.py",
        "closest = gap == gap.min()",
        "closest = gap >= gap.min()",
        METRICS,
        "the EER point is the lowest mean error, not where FAR and FRR meet",
    ),
    Mutant(
        "metrics-eer-sum-not-mean",
        "sigid/metrics.py",
        "eer_value = float(total[best]) / (2.0 * positives * negatives)",
        "eer_value = float(total[best]) / (positives * negatives)",
        METRICS,
        "the EER is FAR + FRR instead of their mean",
    ),
    Mutant(
        "metrics-eer-threshold-no-margin",
        "sigid/metrics.py",
        "return float(mid) if lower < mid <= upper else float(upper)",
        "return float(upper)",
        METRICS,
        "the EER threshold sits on a score instead of midway to the next (no margin)",
    ),
    Mutant(
        "metrics-eer-midpoint-unchecked",
        "sigid/metrics.py",
        "return float(mid) if lower < mid <= upper else float(upper)",
        "return float(mid)",
        METRICS,
        "a midpoint that rounds onto the lower score (float32 neighbours) moves the EER point",
    ),
    Mutant(
        "metrics-rank-scale",
        "sigid/metrics.py",
        "return distinct, inverse.double() / max(distinct.numel() - 1, 1)",
        "return distinct, inverse.double() / max(distinct.numel(), 1)",
        METRICS,
        "ROC thresholds map back to the wrong scores",
    ),
    Mutant(
        "metrics-auroc-raw-scores",
        "sigid/metrics.py",
        "return float(binary_auroc(_ranks(scores)[1], targets, thresholds=None))",
        "return float(binary_auroc(scores, targets, thresholds=None))",
        METRICS,
        "AUROC of scores outside [0, 1] goes through torchmetrics' sigmoid, which merges them",
    ),
    # -- cache and atomic writes --------------------------------------------------------------
    Mutant(
        "cache-key-ignores-settings",
        "sigid/data/cache.py",
        '"size": list(size),',
        '"size": None,',
        CACHE,
        "a cache entry made at one image size is read back for another",
    ),
    Mutant(
        "cache-key-ignores-edits",
        "sigid/data/cache.py",
        "out.append([str(path.resolve()), stat.st_size, stat.st_mtime_ns])",
        "out.append([str(path.resolve()), stat.st_size])",
        CACHE,
        "an image edited in place (same size) is still read from the stale cache",
    ),
    Mutant(
        "atomic-temp-left-behind",
        "sigid/atomic.py",
        "    finally:\n        temp.unlink(missing_ok=True)\n",
        "    finally:\n        pass\n",
        ("tests/test_atomic.py", "tests/test_inference.py::test_save_is_atomic"),
        "a failed atomic write leaves its hidden temporary file beside the target",
    ),
    # -- checkpoints and training -------------------------------------------------------------
    Mutant(
        "checkpoint-unpickles-anything",
        "sigid/tasks/checkpoint.py",
        "weights_only=True",
        "weights_only=False",
        ("tests/test_checkpoint_errors.py",),
        "loading a checkpoint runs arbitrary pickled code (torch.load weights_only=False)",
    ),
    Mutant(
        "training-resume-starts-over",
        "sigid/training/run.py",
        "ckpt_path=resume or None",
        "ckpt_path=None",
        ("tests/test_resume.py",),
        "resuming a run (ckpt_path=...) silently trains from scratch",
    ),
    # -- inference ----------------------------------------------------------------------------
    Mutant(
        "gallery-spread-added",
        "sigid/inference/gallery/scores.py",
        "- reference_spread(references, typical)",
        "+ reference_spread(references, typical)",
        GALLERY,
        "the normalised score rewards a writer's spread instead of discounting it",
    ),
    Mutant(
        "gallery-spread-counts-self-pairs",
        "sigid/inference/gallery/scores.py",
        "upper = np.triu_indices(len(refs), k=1)",
        "upper = np.triu_indices(len(refs), k=0)",
        GALLERY,
        "a writer's spread counts each reference's zero distance to itself",
    ),
    Mutant(
        "gallery-score-first-reference-only",
        "sigid/inference/gallery/scores.py",
        "verifier.distances(query, references).mean()",
        "verifier.distances(query, references)[0]",
        GALLERY,
        "the normalised score measures the first reference only (enrolment order matters)",
    ),
    Mutant(
        "gallery-rank-by-enrolment",
        "sigid/inference/gallery/api.py",
        "key=lambda c: -c.score\n",
        "key=lambda c: 0\n",
        GALLERY,
        "identify lists writers in enrolment order instead of ranking them",
    ),
    Mutant(
        "gallery-answer-unverified",
        "sigid/inference/gallery/api.py",
        "found = best if score >= self.threshold else None",
        "found = best",
        GALLERY,
        "identify names the best writer even when their claim does not verify",
    ),
    Mutant(
        "verifier-threshold-override-ignored",
        "sigid/inference/verifier.py",
        "if threshold is None\n            else given_threshold(threshold)",
        "if True\n            else given_threshold(threshold)",
        VERIFIER,
        "a threshold given to the Verifier is ignored for the checkpoint's",
    ),
    Mutant(
        "verifier-decides-strictly",
        "sigid/inference/verifier.py",
        "Verdict(same=score >= self.threshold,",
        "Verdict(same=score > self.threshold,",
        VERIFIER,
        "a score exactly at the threshold is rejected (documented: score >= threshold)",
    ),
)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _dirty(files: list[str]) -> list[str]:
    """The files git reports as changed, untracked or unknown (status --porcelain)."""
    out = subprocess.run(
        ["git", "status", "--porcelain", "--", *files],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line[3:] for line in out.splitlines()]


def _check(mutants: list[Mutant]) -> list[str]:
    """Why the mutants cannot run as they stand: each snippet must be in its file exactly once."""
    problems = []
    for m in mutants:
        path = ROOT / m.file
        if not path.is_file():
            problems.append(f"{m.name}: {m.file} does not exist")
            continue
        count = path.read_text(encoding="utf-8").count(m.original)
        if count != 1:
            problems.append(f"{m.name}: its snippet occurs {count} times in {m.file}, not once")
        problems += [f"{m.name}: {why}" for test in m.tests if (why := _missing(test))]
    return problems


def _missing(test: str) -> str | None:
    """Why pytest would select nothing for `test` (a file, or file::function[params]), if so."""
    file, _, function = test.partition("::")
    path = ROOT / file
    if not path.is_file():
        return f"its test file {file} does not exist"
    name = function.split("[")[0]
    if name and not re.search(rf"^def {re.escape(name)}\(", path.read_text("utf-8"), re.M):
        return f"its test {name} is not in {file}"
    return None


def _pytest(tests: list[str], timeout: float) -> tuple[int | None, str, float]:
    """(exit code or None on timeout, output, seconds) of pytest on `tests`. No bytecode is
    written: a mutant's .pyc must never outlive the mutant."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.setdefault("HYPOTHESIS_PROFILE", "mutation")  # conftest.py: "ci" without shrinking
    start = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, *PYTEST, *tests],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as err:
        out = err.stdout.decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
        return None, out, time.monotonic() - start
    return done.returncode, done.stdout + done.stderr, time.monotonic() - start


def _first_failure(output: str) -> str:
    match = re.search(r"^(?:FAILED|ERROR) (\S+)", output, re.MULTILINE)
    return match.group(1) if match else ""


def run_mutant(m: Mutant, tests: list[str], timeout: float) -> tuple[str, str, float]:
    """Apply `m`, run `tests`, restore the file exactly (content and modification time).
    Returns (result, detail, seconds)."""
    path = ROOT / m.file
    original = path.read_bytes()
    stat = path.stat()
    text = original.decode("utf-8")
    try:
        path.write_text(text.replace(m.original, m.replacement, 1), encoding="utf-8")
        code, output, seconds = _pytest(tests, timeout)
    finally:
        path.write_bytes(original)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        if _sha(path.read_bytes()) != _sha(original):  # never leave a mutant behind silently
            raise SystemExit(f"could not restore {m.file}: check it with git diff")
    if code is None:
        return "caught", f"timeout after {timeout:.0f} s", seconds
    if code == 0:
        return "survived", "", seconds
    if code in (1, 2):  # tests failed, or collection failed (the mutant broke an import)
        return "caught", _first_failure(output) or f"pytest exit {code}", seconds
    tail = " | ".join(output.strip().splitlines()[-3:])
    return "error", f"pytest exit {code}: {tail}", seconds


def _terminate(signum, frame):  # SIGTERM as Ctrl-C: the finally blocks restore the file
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--only", action="append", metavar="NAME", help="run this mutant only")
    parser.add_argument(
        "--tests", nargs="+", metavar="TEST", help="run these tests instead of each mutant's own"
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the unchanged-tree run")
    parser.add_argument("--timeout", type=float, default=TIMEOUT_S, help="seconds per mutant")
    args = parser.parse_args(argv)

    names = [m.name for m in MUTANTS]
    if len(set(names)) != len(names):
        print("duplicate mutant names", file=sys.stderr)
        return 2
    chosen = list(MUTANTS)
    if args.only:
        unknown = sorted(set(args.only) - set(names))
        if unknown:
            print(f"unknown mutant(s): {', '.join(unknown)}; see --list", file=sys.stderr)
            return 2
        chosen = [m for m in MUTANTS if m.name in args.only]

    if args.list:
        for m in chosen:
            print(f"{m.name}\n    {m.file}: {m.breaks}\n    tests: {' '.join(m.tests)}")
        return 0

    if problems := _check(chosen):
        print("mutants out of date with the code:", *problems, sep="\n  ", file=sys.stderr)
        return 2
    files = sorted({m.file for m in chosen})
    if dirty := _dirty(files):
        print(
            f"refusing to mutate files with uncommitted changes: {', '.join(dirty)} (commit "
            "them, or restore a mutant left by a killed run with git checkout -- FILE)",
            file=sys.stderr,
        )
        return 2

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even where started with it ignored
    selections = {m.name: list(args.tests or m.tests) for m in chosen}
    try:
        if not args.no_baseline:
            union = list(dict.fromkeys(t for tests in selections.values() for t in tests))
            print(f"baseline: {len(union)} test selection(s) on the unchanged tree ...", flush=True)
            code, output, seconds = _pytest(union, args.timeout * 2)
            if code != 0:
                print(output[-3000:], file=sys.stderr)
                print(f"baseline failed (exit {code}): fix the tests first", file=sys.stderr)
                return 2
            print(f"baseline passed in {seconds:.0f} s", flush=True)
        results = []
        for m in chosen:
            print(f"{m.name} ...", end=" ", flush=True)
            result, detail, seconds = run_mutant(m, selections[m.name], args.timeout)
            print(f"{result} ({seconds:.0f} s) {detail}", flush=True)
            results.append((m, result, detail, seconds))
    except KeyboardInterrupt:
        print("\ninterrupted: the mutated file was restored", file=sys.stderr)
        return 130

    width = max(len(m.name) for m, *_ in results)
    print(f"\n{'mutant':<{width}}  result    seconds  caught by / breaks")
    for m, result, detail, seconds in results:
        why = detail if result != "survived" else m.breaks
        print(f"{m.name:<{width}}  {result:<8}  {seconds:7.0f}  {why}")
    caught = sum(r == "caught" for _, r, _, _ in results)
    errors = sum(r == "error" for _, r, _, _ in results)
    print(f"\nscore: {caught}/{len(results)} mutants caught ({100 * caught / len(results):.0f}%)")
    survived = [m.name for m, r, _, _ in results if r == "survived"]
    if survived:
        print(f"survived: {', '.join(survived)}")
    if errors:
        return 2
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
