"""Evaluation protocols (sigid.evaluation.protocols, `sigid evaluate`): hand-computed metrics,
thresholds from validation writers only, fold summaries, files, and the command on real CEDAR scans.

The writer-dependent metrics are checked on embeddings placed by hand, scored by a real
Verifier whose similarity head is set to sigmoid(-distance): the distances decide every score's
rank, so EER, AUC, FAR and FRR can be worked out on paper. Two tiny checkpoints (trained on the
small synthetic set in a few seconds) cover the rest end to end.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import shutil
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pytest
from runs import SMALL_DATA, sigid_cli
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import sigid
from sigid.data.layouts import Sample
from sigid.data.transforms import augment_preset
from sigid.evaluation.protocols import identification
from sigid.evaluation.protocols.curves import DET_LIMITS, probit
from sigid.evaluation.protocols.writer_dependent import (
    MEAN,
    EmbeddedSplit,
    Rule,
    evaluate_splits,
    gallery_identification,
    protocol_rule,
    score_trials,
)
from sigid.evaluation.protocols.writer_independent import writer_independent_summary
from sigid.evaluation.testing import evaluation_datamodule
from sigid.inference.verifier import Verifier
from sigid.runs.paths import run_folder
from sigid.runs.sweep import write_summary
from sigid.tasks import SiameseModule, load_checkpoint

DATA = SMALL_DATA


# -- writer-dependent, by hand -------------------------------------------------------------------


@pytest.fixture(scope="module")
def unit_verifier() -> Verifier:
    """A real Verifier whose similarity is sigmoid(-distance) of the embeddings it is given."""
    module = SiameseModule(
        preprocessing={"mode": "normalized", "size": [8, 8]},
        embedding="pixel", image_size=[8, 8], dim=3, head={"scale": 1.0, "offset": 0.0},
    )  # fmt: skip
    module.net.head.set_parameters(scale=1.0, offset=0.0)
    return Verifier(module)


def s(distance: float) -> float:
    """The unit verifier's similarity at a distance."""
    return 1.0 / (1.0 + math.exp(distance))


def _split(points: dict[tuple[str, bool], list[tuple[float, float, float]]]) -> EmbeddedSplit:
    samples, rows = [], []
    for (writer, genuine), where in points.items():
        for n, point in enumerate(where):
            samples.append(
                Sample(Path(f"{writer}/{'g' if genuine else 'f'}{n}.png"), writer, genuine)
            )
            rows.append(point)
    return EmbeddedSplit(samples, np.array(rows, dtype=np.float32))


# With K=1 and two genuine signatures per writer, every score is the same whichever one is drawn
# as the reference: each writer's forgeries (and the other writer's genuine signatures) lie on
# the plane of points equidistant from its two genuine ones. Distances to the reference:
#   validation  C: genuine 2, skilled 3        D: genuine 2, skilled 3.5   random sqrt(18) = 4.24
#   test        A: genuine 2, skilled 1, 2.24  B: genuine 4, skilled 2.6, 3.61  random >= 4.58
# E has one genuine signature: too few for K=1 (skipped), still a random negative for A and B.
VAL = {
    ("C", True): [(-1, 0, 0), (1, 0, 0)],
    ("C", False): [(0, math.sqrt(8), 0)],
    ("D", True): [(0, -1, 4), (0, 1, 4)],
    ("D", False): [(math.sqrt(11.25), 0, 4)],
}
TEST = {
    ("A", True): [(-1, 0, 0), (1, 0, 0)],
    ("A", False): [(0, 0, 0), (0, 2, 0)],
    ("B", True): [(0, -2, 4), (0, 2, 4)],
    ("B", False): [(math.sqrt(2.76), 0, 4), (3, 0, 4)],
    ("E", True): [(0, 0, 100)],
}


def test_writer_dependent_metrics_match_a_hand_computed_case(unit_verifier):
    (result,), curves, _ = evaluate_splits(unit_verifier, _split(VAL), _split(TEST), references=[1])
    # Validation: genuine at 2 outrank all forgeries (3, 3.5, 4.24): EER 0, and the threshold is
    # the midpoint between s(2) and the next lower score s(3) (sigmoid(-d) -> accepts d < 2.398).
    assert result["references"] == 1
    assert result["validation"]["eer"] == 0.0
    assert result["threshold"] == pytest.approx((s(2) + s(3)) / 2, abs=1e-6)
    assert result["validation"]["writers"] == 2 and result["validation"]["genuine"] == 2
    test = result["test"]
    assert (test["writers"], test["skipped"], test["skipped_writers"]) == (2, 1, ["E"])
    assert test["genuine"] == 2
    # Skilled, nearest first: 1 F, 2 G, 2.24 F, 2.6 F, 3.61 F, 4 G. At FAR 2/4 the FRR is 1/2:
    # EER 0.5; AUC: G(2) beats 3 forgeries, G(4) none: 3/8. Accepted at d < 2.398: G(2), F(1),
    # F(2.24): FAR 2/4, FRR 1/2.
    assert test["skilled"] == pytest.approx(
        {"eer": 0.5, "auc": 0.375, "far": 0.5, "frr": 0.5, "forgeries": 4}
    )
    # Random: 2 G, 4 G, then the negatives (>= 4.58): EER 0, AUC 1; none accepted, G(4) rejected.
    assert test["random"] == pytest.approx(
        {"eer": 0.0, "auc": 1.0, "far": 0.0, "frr": 0.5, "forgeries": 2}
    )
    assert [(c.stem, c.step, len(c.scores)) for c in curves] == [("k1_skilled", 1, 6),
                                                                  ("k1_random", 1, 4)]  # fmt: skip


def test_gallery_identification_of_the_test_writers_by_hand(unit_verifier):
    # K=1. A's questioned genuine is 2 from A's reference and sqrt(21) = 4.58 from B's: right.
    # B's is 4 from B's reference and 4.58 from A's: right. E (one genuine) cannot be enrolled.
    found = gallery_identification(unit_verifier, _split(TEST), 1)
    assert found == {"writers": 2, "queries": 2, "top1": 1.0}  # no top-5 among 2 writers
    # B's signatures 6 apart: B's questioned one is now closer to A's reference (sqrt(26) = 5.1)
    apart = {**TEST, ("B", True): [(0, -3, 4), (0, 3, 4)]}
    found = gallery_identification(unit_verifier, _split(apart), 1)
    assert found == {"writers": 2, "queries": 2, "top1": 0.5}
    # 7 writers on a line, 10 apart, each's two genuine signatures 1 apart: all ranked first,
    # and now a top-5 figure (among 5 writers or fewer every signature is in the top 5)
    seven = {(f"W{i}", True): [(10.0 * i, 0, 0), (10.0 * i + 1, 0, 0)] for i in range(7)}
    found = gallery_identification(unit_verifier, _split(seven), 1)
    assert found == {"writers": 7, "queries": 7, "top1": 1.0, "top5": 1.0}
    (result,), _, _ = evaluate_splits(unit_verifier, _split(VAL), _split(apart), references=[1])
    assert result["test"]["identification"]["top1"] == 0.5
    with pytest.raises(ValueError, match="2 writers with 3 genuine"):
        gallery_identification(unit_verifier, _split(TEST), 2)


def test_the_threshold_comes_from_validation_writers_only(unit_verifier):
    (before,), _, _ = evaluate_splits(unit_verifier, _split(VAL), _split(TEST), references=[1])
    moved = {**TEST, ("B", False): [(0, 0, 4), (0.1, 0, 4)]}  # B's forgeries now closer
    (after,), _, _ = evaluate_splits(unit_verifier, _split(VAL), _split(moved), references=[1])
    assert after["threshold"] == before["threshold"]
    assert after["test"]["skilled"] != before["test"]["skilled"]  # the test scores did change
    closer = {**VAL, ("C", False): [(0, math.sqrt(3), 0)]}  # a validation forgery at 2 (a tie)
    (moved_val,), _, _ = evaluate_splits(
        unit_verifier, _split(closer), _split(TEST), references=[1]
    )
    assert moved_val["threshold"] != before["threshold"]


def test_references_skips_and_seeds(unit_verifier):
    rng = np.random.default_rng(0)
    samples = [Sample(Path(f"w{w}/g{n}.png"), f"w{w}", True) for w in range(3) for n in range(4)]
    samples += [Sample(Path(f"w{w}/f{n}.png"), f"w{w}", False) for w in range(3) for n in range(2)]
    split = EmbeddedSplit(samples, rng.normal(size=(len(samples), 3)).astype(np.float32))
    first = score_trials(unit_verifier, split, 2, seed=0)
    assert np.array_equal(first.scores, score_trials(unit_verifier, split, 2, seed=0).scores)
    assert not np.array_equal(first.scores, score_trials(unit_verifier, split, 2, seed=1).scores)
    # 3 writers x (2 questioned genuine, 2 skilled, 2 random: as many as the genuine)
    assert first.count(0) == first.count(1) == first.count(2) == 6 and first.skipped == []
    four = score_trials(unit_verifier, split, 4)
    assert four.skipped == ["w0", "w1", "w2"] and four.scores.size == 0
    with pytest.raises(ValueError, match=r"^K=4: no validation writer has the 5 genuine"):
        evaluate_splits(unit_verifier, split, split, references=[4])
    # a K no writer can be scored with is left out, with its reason; the others are reported
    results, curves, skipped = evaluate_splits(unit_verifier, split, split, references=[2, 4])
    assert [r["references"] for r in results] == [2] and {c.step for c in curves} == {2}
    reason = "no validation writer has the 5 genuine signatures needed (K references + 1 "
    assert skipped == [{"references": 4, "reason": f"{reason}questioned); skipped: w0, w1, w2"}]
    with pytest.raises(ValueError, match=r"^K=4: no validation .*; K=5: no validation writer"):
        evaluate_splits(unit_verifier, split, split, references=[4, 5])
    with pytest.raises(ValueError, match="whole numbers >= 1"):
        evaluate_splits(unit_verifier, split, split, references=[0])


# Two writers whose 3 genuine signatures form equilateral triangles, sides 1 (A, consistent) and
# 3 (B, varied): with K=2, whichever two are drawn, the references are a side apart and the
# questioned genuine one is a side from each. Each writer's forgery lies above the triangle's
# centre, 0.2 farther from every vertex than a side. B lies far from A (random negatives).
H_A, H_B = math.sqrt(1.44 - 1 / 3), math.sqrt(3.2**2 - 3)
SPREAD = {
    ("A", True): [(0, 0, 0), (1, 0, 0), (0.5, math.sqrt(3) / 2, 0)],
    ("A", False): [(0.5, math.sqrt(3) / 6, H_A)],
    ("B", True): [(0, 0, 50), (3, 0, 50), (1.5, 3 * math.sqrt(3) / 2, 50)],
    ("B", False): [(1.5, math.sqrt(3) / 2, 50 + H_B)],
}


def test_the_normalized_score_by_hand(unit_verifier):
    refs = np.array([(0, 0, 0), (3, 0, 0), (0, 4, 0)], dtype=np.float32)  # spread (3 + 4 + 5) / 3
    query = np.array((0, 0, 1), dtype=np.float32)  # distances 1, sqrt(10), sqrt(17)
    to_query = (1 + math.sqrt(10) + math.sqrt(17)) / 3
    assert Rule("normalized", 2.5)(unit_verifier, query, refs) == pytest.approx(
        s(to_query - 4 + 2.5), abs=1e-6
    )
    assert MEAN(unit_verifier, query, refs) == pytest.approx(
        (s(1) + s(math.sqrt(10)) + s(math.sqrt(17))) / 3, abs=1e-6
    )
    # one reference: no spread, the pair's similarity whatever the typical distance
    assert Rule("normalized", 7.0)(unit_verifier, query, refs[:1]) == pytest.approx(s(1), abs=1e-6)


def test_the_normalized_score_serves_consistent_and_varied_writers_alike(unit_verifier):
    split = _split(SPREAD)
    # Mean similarity: genuine at 1 (A) and 3 (B), forgeries at 1.2 and 3.2: one threshold
    # cannot separate them. Normalised: every genuine at 0 past its writer's spread, every
    # forgery at 0.2.
    (mean,), _, _ = evaluate_splits(unit_verifier, split, split, references=[2], rule=MEAN)
    assert mean["test"]["skilled"]["eer"] == 0.5 and mean["test"]["skilled"]["auc"] == 0.75
    for typical in (0.5, 2.0):
        (normalized,), _, _ = evaluate_splits(
            unit_verifier, split, split, references=[2], rule=Rule("normalized", typical)
        )
        assert normalized["test"]["skilled"]["eer"] == 0.0
        assert normalized["test"]["skilled"]["auc"] == 1.0
        assert normalized["threshold"] > s(0.2 + typical)
    # This checkpoint stores no typical distance: the protocol takes the validation writers'
    # mean spread (1 and 3); by default it scores as such a checkpoint's galleries do.
    assert unit_verifier.genuine_distance is None
    rule = protocol_rule(unit_verifier, split, "normalized")
    assert rule.score == "normalized" and rule.typical == pytest.approx(2.0)
    assert protocol_rule(unit_verifier, split, None) == MEAN


# -- curves --------------------------------------------------------------------------------------


def test_det_axes_are_normal_deviates_clipped_at_the_plot_edges():
    rates = [0.5, 0.8, 0.01, 0.0, 1.0]
    expected = [NormalDist().inv_cdf(min(max(r, DET_LIMITS[0]), DET_LIMITS[1])) for r in rates]
    assert probit(rates) == pytest.approx(expected, abs=1e-9)


# -- identification ------------------------------------------------------------------------------


def test_identification_reports_top1_top5_and_the_confusion_matrix(cnn_ckpt, tmp_path):
    out = tmp_path / "out"
    result = sigid.evaluate(cnn_ckpt, DATA, protocol="identification", out=out)
    matrix = np.array(result["confusion_matrix"])
    assert result["writers"] == [f"writer0{i}" for i in range(1, 7)]
    assert matrix.shape == (6, 6) and matrix.sum(axis=1).tolist() == [2] * 6  # 2 test each
    assert result["test_signatures"] == 12
    assert result["top1"] == pytest.approx(np.trace(matrix) / 12)
    # top-5 by hand: the share of the test files whose writer the Identifier ranks in its top 5
    files = json.loads((run_folder(cnn_ckpt) / "split.json").read_text())["test"]["files"]
    identifier = sigid.Identifier.from_checkpoint(cnn_ckpt)
    ranked = [[w for w, _ in identifier.identify(f, top_k=5)] for f in files]
    pairs = list(zip([Path(f).parent.name for f in files], ranked, strict=True))
    assert result["top5"] == pytest.approx(np.mean([truth in top for truth, top in pairs]))
    assert result["top1"] == pytest.approx(np.mean([truth == top[0] for truth, top in pairs]))
    assert result["top1"] == pytest.approx(sigid.evaluate(cnn_ckpt, DATA)["test/acc"])
    assert json.loads((out / "evaluation.json").read_text()) == result
    assert (out / "confusion_matrix.png").stat().st_size > 5000
    assert any((out / "tensorboard").glob("events.out.tfevents.*"))
    assert "files" not in identification(cnn_ckpt, DATA)  # no folder, no files


def test_a_run_folder_is_evaluated_as_its_best_checkpoint(cnn_ckpt, siamese_ckpt, capsys):
    result = sigid.evaluate(run_folder(cnn_ckpt), DATA, protocol="identification")
    assert result["checkpoint"] == str(cnn_ckpt.resolve())
    assert result["training_split"] == str(run_folder(cnn_ckpt) / "split.json")
    assert result == identification(cnn_ckpt, DATA)
    argv = ["evaluate", "--protocol", "writer-dependent", "--references", "2", "--json"]
    code, out, err = sigid_cli(capsys, *argv, "--ckpt", run_folder(siamese_ckpt), *DATA)
    assert code == 0, err
    found = json.loads(out)
    assert found["checkpoint"] == str(siamese_ckpt.resolve())
    assert found["training_split"] == str(run_folder(siamese_ckpt) / "split.json")


def test_evaluation_takes_data_group_overrides_and_refuses_other_groups(cnn_ckpt):
    # data/augment=heavy chooses a data config group, and it is applied
    module = load_checkpoint(cnn_ckpt)
    heavy = evaluation_datamodule(module, [*DATA, "data/augment=heavy"], cnn_ckpt)
    assert heavy.augment == augment_preset("heavy") != evaluation_datamodule(module, DATA).augment
    # training augmentation never reaches a test: the same figures
    plain = sigid.evaluate(cnn_ckpt, DATA)
    assert sigid.evaluate(cnn_ckpt, [*DATA, "data/augment=none"]) == plain
    with pytest.raises(ValueError, match="model/optimizer=sgd: evaluation takes data overrides"):
        sigid.evaluate(cnn_ckpt, [*DATA, "model/optimizer=sgd"])
    with pytest.raises(TypeError, match="overrides must be a list of strings"):
        sigid.evaluate(cnn_ckpt, "data.split.fold=1")  # one string, not a list


# -- writer-independent --------------------------------------------------------------------------


def _fold(sweep: Path, job: int, metrics: dict | None, *overrides: str, writers=None) -> Path:
    folder = sweep / str(job)
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(
        "".join(f"- {o}\n" for o in ["experiment=cedar_snn", *overrides])
    )
    if metrics is None:
        (folder / "status.json").write_text(json.dumps({"status": "failed", "error": "OOM"}))
        return folder
    (folder / "metrics.json").write_text(json.dumps({"monitor": "val/eer", **metrics}))
    (folder / "status.json").write_text(json.dumps({"status": "ok"}))
    if writers is not None:
        split = {name: {"writers": w, "files": []} for name, w in writers.items()}
        (folder / "split.json").write_text(json.dumps(split))
    return folder


FOLDS = [  # test/eer_skilled, test/eer_random, test/far, test/frr per fold
    (0.10, 0.02, 0.05, 0.20),
    (0.20, 0.04, 0.10, 0.10),
    (0.30, 0.06, 0.15, 0.30),
]


def _sweep(tmp_path: Path) -> Path:
    sweep = tmp_path / "sweep"
    for fold, (skilled, rand, far, frr) in enumerate(FOLDS):
        metrics = {"test/eer_skilled": skilled, "test/eer_random": rand, "test/far": far,
                   "test/frr": frr, "val_best": 0.1}  # fmt: skip
        writers = {"train": ["t1", "t2"], "val": ["v"], "test": [f"x{fold}", f"y{fold}"]}
        _fold(sweep, fold, metrics, f"data.split.fold={fold}", writers=writers)
    _fold(sweep, 3, None, "data.split.fold=3")
    return sweep


def test_writer_independent_summary_is_mean_and_std_over_the_folds(tmp_path, capsys):
    sweep = _sweep(tmp_path)
    result = sigid.evaluate(sweep, protocol="writer-independent", out=tmp_path / "out")
    assert result["folds"] == 3 and result["test_writers_disjoint"] is True
    assert [r["fold"] for r in result["runs"]] == [0, 1, 2]
    assert result["failed"] == [{"run": str(sweep / "3"), "error": "OOM"}]
    metrics = result["metrics"]
    assert list(metrics) == ["test/eer_skilled", "test/eer_random", "test/far", "test/frr"]
    # mean of (0.1, 0.2, 0.3) = 0.2; sample std = sqrt((0.01 + 0 + 0.01) / 2) = 0.1
    assert metrics["test/eer_skilled"] == pytest.approx({"mean": 0.2, "std": 0.1, "folds": 3})
    assert metrics["test/eer_random"] == pytest.approx({"mean": 0.04, "std": 0.02, "folds": 3})
    assert metrics["test/far"] == pytest.approx({"mean": 0.1, "std": 0.05, "folds": 3})
    # frr (0.2, 0.1, 0.3): mean 0.2, std 0.1
    assert metrics["test/frr"] == pytest.approx({"mean": 0.2, "std": 0.1, "folds": 3})
    assert json.loads((tmp_path / "out" / "evaluation.json").read_text()) == result
    # the same from the run folders, and through the command
    assert writer_independent_summary([sweep / "2", sweep / "0"])["metrics"]["test/far"][
        "mean"
    ] == pytest.approx(0.1)
    code, out, _ = sigid_cli(
        capsys, "evaluate", "--protocol", "writer-independent", "--sweep", sweep
    )
    assert code == 0 and "fold 0" in out and "test/eer_skilled" in out and "0.2000" in out
    assert "failed:" in out
    code, out, _ = sigid_cli(
        capsys, "evaluate", "--protocol", "writer-independent", "--sweep", sweep, "--json"
    )
    assert code == 0 and json.loads(out)["metrics"] == metrics


def test_a_resumed_fold_is_the_same_recipe(tmp_path):
    sweep = _sweep(tmp_path)
    record = sweep / "1" / ".hydra" / "overrides.yaml"  # fold 1 resumed after Ctrl-C
    record.write_text(record.read_text() + "- ckpt_path=sweep/1/checkpoints/last.ckpt\n")
    result = sigid.evaluate(sweep, protocol="writer-independent")
    assert result["folds"] == 3 and "per_seed" not in result


def test_a_summary_of_some_of_the_folds_says_which_are_missing(tmp_path, capsys):
    sweep = _sweep(tmp_path)  # folds 0-2 finished (3 failed) of a 5-fold split
    for job in range(4):
        (sweep / str(job) / ".hydra" / "config.yaml").write_text(
            f"data:\n  split:\n    folds: 5\n    fold: {job}\n"
        )
    result = sigid.evaluate(sweep, protocol="writer-independent")
    assert result["folds"] == 3 and result["missing_folds"] == [3, 4]
    code, out, _ = sigid_cli(
        capsys, "evaluate", "--protocol", "writer-independent", "--sweep", sweep
    )
    assert code == 0 and "not a full k-fold mean: no run of fold(s) 3, 4" in out
    full = writer_independent_summary([sweep / "0", sweep / "1", sweep / "2"])
    assert full["missing_folds"] == [3, 4]  # whichever folders are given
    for job in range(3):  # a 3-fold split: nothing missing, no note
        config = sweep / str(job) / ".hydra" / "config.yaml"
        config.write_text(config.read_text().replace("folds: 5", "folds: 3"))
    assert writer_independent_summary([sweep / str(j) for j in range(3)])["missing_folds"] == []


def test_a_writer_tested_in_two_folds_is_reported(tmp_path):
    sweep = tmp_path / "overlap"
    for fold, test in enumerate((["x", "y"], ["y", "z"])):  # writer y tested twice
        writers = {"train": ["t"], "val": ["v"], "test": test}
        _fold(sweep, fold, {"test/eer": 0.1}, f"data.split.fold={fold}", writers=writers)
    assert writer_independent_summary(sweep)["test_writers_disjoint"] is False
    _fold(tmp_path / "bare", 0, {"test/eer": 0.1}, "data.split.fold=0")  # no split.json
    assert writer_independent_summary(tmp_path / "bare")["test_writers_disjoint"] is None
    leak = {"train": ["t", "x"], "val": ["v"], "test": ["x"]}  # a test writer trained on
    _fold(tmp_path / "leak", 0, {"test/eer": 0.1}, "data.split.fold=0", writers=leak)
    with pytest.raises(ValueError, match=r"test writers \['x'\] were also used in training"):
        writer_independent_summary(tmp_path / "leak")


def test_writer_independent_summarises_several_seeds_per_fold(tmp_path, capsys):
    """seed=0,1 x 3 folds: each seed over its folds, then the mean and spread of the seeds'
    means; the same folds in two seeds are draws, not repeated folds."""
    sweep = tmp_path / "seeds"
    for job, (seed, fold) in enumerate((s, f) for s in (0, 1) for f in range(3)):
        skilled = FOLDS[fold][0] + 0.1 * seed  # seed 1: every fold 0.1 worse
        writers = {"train": ["t1", "t2"], "val": ["v"], "test": [f"x{fold}"]}
        _fold(sweep, job, {"test/eer_skilled": skilled, "test/eer_random": 0.05}, f"seed={seed}",
              "data.seed=0", f"data.split.fold={fold}", writers=writers)  # fmt: skip
    result = writer_independent_summary(sweep, out=tmp_path / "out")
    assert result["seeds"] == 2 and result["folds"] == 6 and result["test_writers_disjoint"]
    assert [s["seed"] for s in result["per_seed"]] == ["seed=0", "seed=1"]
    assert [s["metrics"]["test/eer_skilled"]["mean"] for s in result["per_seed"]] == pytest.approx(
        [0.2, 0.3]
    )
    # the seeds' means 0.2 and 0.3: mean 0.25, sample std sqrt(2 * 0.05^2 / 1) = 0.0707
    assert result["metrics"]["test/eer_skilled"] == pytest.approx(
        {"mean": 0.25, "std": 0.05 * 2**0.5, "seeds": 2}
    )
    assert result["metrics"]["test/eer_random"] == pytest.approx(
        {"mean": 0.05, "std": 0.0, "seeds": 2}
    )
    code, out, _ = sigid_cli(
        capsys, "evaluate", "--protocol", "writer-independent", "--sweep", sweep
    )
    assert code == 0 and "2 seeds, 6 fold runs" in out and "seed=1" in out and "0.2500" in out
    # a seed missing a fold (failed, say) would bias its mean: refused, naming the folds
    finished = (sweep / "5" / "metrics.json").read_text()
    (sweep / "5" / "metrics.json").unlink()
    with pytest.raises(ValueError, match=r"seed=1: folds \[0, 1\]"):
        writer_independent_summary(sweep)
    (sweep / "5" / "metrics.json").write_text(finished)
    # a fold twice within one seed is still refused
    _fold(sweep, 6, {"test/eer_skilled": 0.1}, "seed=1", "data.seed=0", "data.split.fold=2")
    with pytest.raises(ValueError, match="more than once"):
        writer_independent_summary(sweep)


def test_writer_independent_refuses_mixed_configurations_and_leaky_folds(tmp_path):
    mixed = tmp_path / "mixed"
    _fold(mixed, 0, {"test/eer": 0.1}, "data.split.fold=0", "model.depth=2")
    _fold(mixed, 1, {"test/eer": 0.2}, "data.split.fold=1", "model.depth=3")
    with pytest.raises(ValueError, match=r"more than the fold and the seed \(model.depth\)"):
        writer_independent_summary(mixed)
    twice = tmp_path / "twice"
    _fold(twice, 0, {"test/eer": 0.1}, "data.split.fold=1")
    _fold(twice, 1, {"test/eer": 0.2}, "data.split.fold=1")
    with pytest.raises(ValueError, match="more than once"):
        writer_independent_summary(twice)
    leaky = tmp_path / "leaky"
    writers = {"train": ["a", "b"], "val": ["c"], "test": ["b", "d"]}
    _fold(leaky, 0, {"test/eer": 0.1}, "data.split.fold=0", writers=writers)
    with pytest.raises(ValueError, match=r"test writers \['b'\] were also used in training"):
        writer_independent_summary(leaky)
    with pytest.raises(ValueError, match="no run folders"):
        writer_independent_summary(tmp_path / "leaky" / "0" / ".hydra")


def test_runs_whose_fold_cannot_be_told_are_named(tmp_path):
    """No data.split.fold override and no resolved config: the fold is unknown. Seeds are matched
    by fold number, so there it is refused; within one seed the runs' split.json must show that
    their test writers differ (two unknown folds could be one fold twice)."""
    seeds = tmp_path / "seeds"
    for job, seed in enumerate((0, 0, 1, 1)):
        fold = ["data.split.fold=0"] if job % 2 == 0 else []  # jobs 1 and 3: fold unknown
        writers = {"train": ["t"], "val": ["v"], "test": [f"x{job % 2}"]}
        _fold(seeds, job, {"test/eer": 0.1}, f"seed={seed}", *fold, writers=writers)
    with pytest.raises(ValueError, match=r"cannot tell the fold of .*seeds/1, .*seeds/3 \("):
        writer_independent_summary(seeds)
    twice = tmp_path / "twice"
    for job in range(2):  # the same test writers: perhaps one fold twice
        _fold(twice, job, {"test/eer": 0.1}, writers={"train": ["t"], "val": ["v"], "test": ["x"]})
    with pytest.raises(ValueError, match=r"cannot tell the fold of .*twice/0, .*twice/1 \("):
        writer_independent_summary(twice)
    shutil.rmtree(twice / "1")  # a lone run: its mean is itself, whatever its fold
    assert writer_independent_summary(twice)["runs"][0]["fold"] is None
    apart = tmp_path / "apart"  # test writers disjoint: different folds, even unnumbered
    for job in range(2):
        writers = {"train": ["t"], "val": ["v"], "test": [f"x{job}"]}
        _fold(apart, job, {"test/eer": 0.1 * (job + 1)}, writers=writers)
    result = writer_independent_summary(apart)
    assert result["folds"] == 2 and result["metrics"]["test/eer"]["mean"] == pytest.approx(0.15)


def test_writer_independent_names_damaged_and_empty_run_records(tmp_path):
    sweep = tmp_path / "damaged"
    _fold(sweep, 0, {"test/eer": 0.1}, "data.split.fold=0")
    _fold(sweep, 1, {"test/eer": 0.2}, "data.split.fold=1")
    (sweep / "1" / "metrics.json").write_text("{bad")  # damaged: the fold is listed, and why
    result = writer_independent_summary(sweep)
    assert result["folds"] == 1
    assert result["failed"] == [{"run": str(sweep / "1"), "error": "metrics.json is not a JSON "
                                 "object (damaged?)"}]  # fmt: skip
    (sweep / "0" / "metrics.json").write_text(json.dumps({"test/eer": "x", "monitor": "val/eer"}))
    with pytest.raises(ValueError, match=r"0: metrics.json holds no numeric test/ metrics"):
        writer_independent_summary(sweep)
    (sweep / "0" / "metrics.json").write_text(json.dumps({"test/eer": 0.1}))
    (sweep / "0" / ".hydra" / "overrides.yaml").write_text("- a: [\n")
    with pytest.raises(ValueError, match=r"0/.hydra/overrides.yaml: not readable as YAML"):
        writer_independent_summary(sweep)
    with pytest.raises(ValueError, match=r"metrics\.json: a file; give the sweep folder"):
        writer_independent_summary(sweep / "0" / "metrics.json")


def test_sweep_summary_ends_with_mean_and_std_rows_over_the_ok_jobs(tmp_path):
    sweep = _sweep(tmp_path)
    write_summary(sweep)
    with (sweep / "summary.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["job"] for r in rows] == ["0", "1", "2", "3", "mean", "std"]
    assert [r["status"] for r in rows[:4]] == ["ok", "ok", "ok", "failed"]
    mean, std = rows[-2:]
    assert mean["overrides"] == "over 3 ok job(s)"
    assert (mean["test/eer_skilled"], std["test/eer_skilled"]) == ("0.2000", "0.1000")
    assert (mean["test/far"], std["test/far"]) == ("0.1000", "0.0500")
    assert (mean["val_best"], std["val_best"]) == ("0.1000", "0.0000")
    assert mean["error"] == "" and mean["status"] == ""
    md = (sweep / "summary.md").read_text().splitlines()
    assert md[-2].startswith("| mean | over 3 ok job(s) |") and md[-1].startswith("| std |")


# -- the command, on real CEDAR scans -------------------------------------------------------------


def _image_tags(folder: Path) -> set[str]:
    tags = set()
    for events in folder.glob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events))
        acc.Reload()
        with contextlib.suppress(KeyError):
            tags |= set(acc.Tags()["images"])
    return tags


def test_cli_writer_dependent_on_cedar(capsys, siamese_ckpt, cedar_subset, tmp_path):
    out = tmp_path / "eval"
    data = [
        "data=cedar", f"data.root={cedar_subset}", "data.split.folds=3",
        "data.split.val_writers=2", "data.pairs.train=24", "data.pairs.val=24",
        "data.pairs.test=24",
    ]  # fmt: skip
    base = ["evaluate", "--protocol", "writer-dependent", "--ckpt", siamese_ckpt,
            "--references", "2", "5"]  # fmt: skip
    code, stdout, err = sigid_cli(capsys, *base, "--out", out, "--json", *data)
    assert code == 0, err
    result = json.loads(stdout)
    assert json.loads((out / "evaluation.json").read_text()) == result
    assert len(result["writers"]["val"]) == len(result["writers"]["test"]) == 2
    assert not set(result["writers"]["val"]) & set(result["writers"]["test"])
    for entry, k in zip(result["results"], (2, 5), strict=True):
        test = entry["test"]
        assert entry["references"] == k and 0.0 < entry["threshold"] < 1.0
        assert test["writers"] == 2 and test["genuine"] == 2 * (8 - k)
        assert test["skilled"]["forgeries"] == 8 and test["random"]["forgeries"] == 2 * (8 - k)
        for kind in ("skilled", "random"):
            assert all(0.0 <= test[kind][m] <= 1.0 for m in ("eer", "auc", "far", "frr"))
    for name in ("roc", "det"):
        for stem in ("k2_skilled", "k2_random", "k5_skilled", "k5_random"):
            assert (out / f"{name}_{stem}.png").stat().st_size > 5000
    assert {"writer-dependent/roc_skilled", "writer-dependent/det_random"} <= _image_tags(
        out / "tensorboard"
    )
    assert result["score"] == "normalized"  # the checkpoint's galleries' default
    assert result["typical_genuine_distance"] == pytest.approx(
        Verifier.from_checkpoint(siamese_ckpt).genuine_distance
    )
    code, table, _ = sigid_cli(capsys, *base, *data)  # no --out, no --json: the table
    assert code == 0 and "threshold per K" in table and table.count("skilled") == 2
    assert f"{result['results'][0]['test']['skilled']['eer']:.4f}" in table
    assert "score normalized" in table
    code, stdout, err = sigid_cli(capsys, *base, "--score", "mean", "--json", *data)
    mean = json.loads(stdout)
    assert code == 0, err
    assert mean["score"] == "mean" and mean["typical_genuine_distance"] is None
    assert mean["results"][0]["threshold"] != result["results"][0]["threshold"]  # other scores


def test_the_default_references_report_the_k_the_data_allows(capsys, siamese_ckpt, tmp_path):
    """The small set has 12 genuine signatures per writer: K=12 needs 13, K=5 is reported."""
    argv = ["evaluate", "--protocol", "writer-dependent", "--ckpt", siamese_ckpt, *DATA]
    code, table, err = sigid_cli(capsys, *argv)
    assert code == 0, err
    rows = [line.split() for line in table.splitlines() if line.split()[:1] in (["5"], ["12"])]
    assert [(row[0], row[2]) for row in rows] == [("5", "skilled"), ("5", "random")]
    reason = "no validation writer has the 13 genuine signatures needed"
    assert f"  K=12 not evaluated: {reason}" in table
    code, out, err = sigid_cli(capsys, *argv, "--json", "--out", tmp_path / "eval")
    result = json.loads(out)
    assert code == 0 and [r["references"] for r in result["results"]] == [5]
    (skipped,) = result["skipped_references"]
    assert skipped["references"] == 12 and skipped["reason"].startswith(reason)
    assert err == f"sigid evaluate: note: K=12 not evaluated: {skipped['reason']}\n"
    assert json.loads((tmp_path / "eval" / "evaluation.json").read_text()) == result
    assert not list((tmp_path / "eval").glob("*k12*"))
    api = sigid.evaluate(siamese_ckpt, DATA, protocol="writer-dependent")
    assert api["skipped_references"] == result["skipped_references"]
    code, _, err = sigid_cli(capsys, *argv, "--references", "12", "13")
    assert code == 1 and err.count("\n") == 1
    assert "K=12: no validation writer" in err and "; K=13: no validation writer" in err


def test_cli_errors_are_one_clear_line(capsys, siamese_ckpt, cnn_ckpt, tmp_path):
    wd = ["evaluate", "--protocol", "writer-dependent"]
    cases = [
        (["evaluate", "--protocol", "identification", "--ckpt", siamese_ckpt, *DATA], "CNN"),
        ([*wd, "--ckpt", cnn_ckpt, *DATA], "CNN writer-classifier checkpoint"),
        ([*wd, "--sweep", tmp_path], "give --ckpt"),
        ([*wd, "--ckpt", siamese_ckpt, "data.nope=1"], "data overrides ['data.nope=1']"),
        ([*wd, "--ckpt", siamese_ckpt, "model.depth=9", *DATA],
         "model.depth=9: evaluation takes data overrides only"),
        ([*wd, "--ckpt", siamese_ckpt, "--references", "0", *DATA], "whole numbers >= 1"),
        (["evaluate", "--protocol", "writer-independent", "--ckpt", cnn_ckpt], "give --sweep"),
        (["evaluate", "--protocol", "writer-independent", "--sweep", tmp_path], "no run folders"),
        (["evaluate", "--protocol", "identification", "--ckpt", cnn_ckpt, "--references", "5"],
         "--references applies"),
        (["evaluate", "--protocol", "identification", "--ckpt", cnn_ckpt, "--score", "mean"],
         "--score applies"),
        # an output folder that cannot be made: said first, before any evaluation work
        ([*wd, "--ckpt", siamese_ckpt, "--out", tmp_path / "file", "data.nope=1"],
         f"{tmp_path / 'file'}: cannot write: it is a file, not a folder"),
        ([*wd, "--ckpt", siamese_ckpt, "--out", tmp_path / "file" / "sub", *DATA],
         f"{tmp_path / 'file' / 'sub'}: cannot write: {tmp_path / 'file'} is a file"),
    ]  # fmt: skip
    (tmp_path / "file").write_text("not a folder")
    for argv, message in cases:
        code, out, err = sigid_cli(capsys, *argv)
        assert code == 1, (argv, out, err)
        assert err.startswith("sigid evaluate: error: ") and message in err, err
        assert err.count("\n") == 1 and "Traceback" not in err
