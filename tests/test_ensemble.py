"""`sigid ensemble` / `sigid.training.ensemble.combine`: separately trained runs of one split as one
checkpoint. Real tiny runs (seconds each, on the small synthetic set), real CEDAR scans to embed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from runs import QUIET, SMALL, SMALL_DATA, SMALL_NET

import sigid
from sigid import metrics
from sigid.cli import main
from sigid.evaluation.protocols.writer_independent import writer_independent_summary
from sigid.inference.verifier import Verifier
from sigid.tasks import load_checkpoint
from sigid.training.ensemble import combine, load_member


def _train(folder: Path, *overrides: str) -> Path:
    """A tiny conv Siamese run folder (16-d embeddings); `data.seed` fixed, so runs of one fold
    share their writers whatever their `seed`."""
    result = sigid.train(
        [*SMALL, *SMALL_NET, *QUIET, "model=siamese_conv", "model.dim=16", "data.seed=0",
         *overrides, f"hydra.run.dir={folder}"]
    )  # fmt: skip
    return result.output_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("members")
    return {
        "a": _train(root / "a", "seed=1"),
        "b": _train(root / "b", "seed=2"),
        "fold1": _train(root / "fold1", "seed=3", "data.split.fold=1"),
        "dim8": _train(root / "dim8", "seed=4", "model.dim=8"),
    }


@pytest.fixture(scope="module")
def ensemble(runs, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("ensemble") / "run"
    return out, combine([runs["a"], runs["b"]], out, SMALL_DATA)


def _scans(cedar_root: Path, count: int = 6) -> list[Path]:
    folder = cedar_root / "signatures" / "full_org"
    return [folder / f"original_{w}_{i}.png" for w in (1, 2) for i in range(1, count // 2 + 1)]


def test_the_ensemble_distance_is_the_members_root_mean_square(runs, ensemble, cedar_root):
    out, _ = ensemble
    scans = _scans(cedar_root)
    combined = Verifier.from_checkpoint(out / "checkpoints" / "best.ckpt")
    members = [Verifier.from_checkpoint(runs[k] / "checkpoints" / "best.ckpt") for k in "ab"]
    got = combined.distances(combined.embed(scans[:1])[0], combined.embed(scans[1:]))
    squares = [m.distances(m.embed(scans[:1])[0], m.embed(scans[1:])) ** 2 for m in members]
    assert combined.dim == 32
    np.testing.assert_allclose(got, np.sqrt(np.mean(squares, axis=0)), rtol=1e-4)


def test_the_head_is_the_logistic_fit_of_the_validation_pairs(ensemble):
    out, result = ensemble
    from sigid.evaluation.testing import evaluation_datamodule
    from sigid.training.ensemble import build_ensemble, load_member, validation_distances

    module = build_ensemble([load_member(m) for m in result["members"]])
    datamodule = evaluation_datamodule(module, SMALL_DATA)
    datamodule.setup("validate")
    distances, targets = validation_distances(module, datamodule.val_dataloader())

    def loss(scale: float, offset: float) -> float:
        logits = torch.tensor(offset, dtype=torch.float64) - scale * distances.double()
        return float(torch.nn.functional.binary_cross_entropy_with_logits(logits, targets.double()))

    scale, offset = result["head"]["scale"], result["head"]["offset"]
    best = loss(scale, offset)
    for ds, do in ((0.05, 0), (-0.05, 0), (0, 0.2), (0, -0.2)):
        assert loss(scale * (1 + ds), offset + do) > best
    # ... and the threshold and genuine distance are chosen on those pairs, as training does
    scores = torch.sigmoid(torch.tensor(offset) - scale * distances)
    eer, threshold = metrics.eer(scores, targets.long())
    assert result["val/eer"] == pytest.approx(eer, abs=1e-6)
    assert result["threshold"] == pytest.approx(threshold, abs=1e-5)
    assert result["genuine_distance"] == pytest.approx(float(distances[targets == 1].mean()), 1e-4)
    verifier = Verifier.from_checkpoint(out / "checkpoints" / "best.ckpt")
    assert verifier.threshold == pytest.approx(threshold, abs=1e-5)
    assert verifier.genuine_distance == pytest.approx(result["genuine_distance"])


def test_members_trained_with_the_contrastive_loss_get_a_fitted_head(tmp_path):
    """Contrastive training freezes its head at a fixed formula; the ensemble still refits it."""
    members = [_train(tmp_path / f"c{s}", f"seed={s}", "model.loss=contrastive") for s in (5, 6)]
    result = combine(members, tmp_path / "ensemble", SMALL_DATA)
    frozen = load_member(members[0]).module.net.head
    fitted = load_checkpoint(tmp_path / "ensemble" / "checkpoints" / "best.ckpt").net.head
    assert (float(fitted.scale), float(fitted.offset)) == pytest.approx(
        (result["head"]["scale"], result["head"]["offset"])
    )
    assert float(fitted.scale) != pytest.approx(float(frozen.scale), rel=1e-3)
    assert 0.0 <= result["test/eer"] <= 1.0


def test_the_run_folder_holds_what_a_training_run_leaves(runs, ensemble):
    out, result = ensemble
    written = json.loads((out / "metrics.json").read_text())
    assert written == json.loads(json.dumps(result))
    for key in ("test/eer_skilled", "test/eer_random", "test/auroc", "test/far", "test/frr"):
        assert 0.0 <= written[key] <= 1.0
    split, member = (json.loads((f / "split.json").read_text()) for f in (out, runs["a"]))
    assert {k: v["writers"] for k, v in split.items()} == {
        k: v["writers"] for k, v in member.items()
    }
    assert json.loads((out / "ensemble.json").read_text()) == {
        "members": [str(runs[k] / "checkpoints" / "best.ckpt") for k in "ab"],
        "overrides": SMALL_DATA,
    }
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["best.ckpt"]


def test_ensemble_folds_summarise_like_training_runs(runs, ensemble, tmp_path):
    # two "folds": the ensemble of fold 0, and a copy presented as fold 1's with its overrides
    out, _ = ensemble
    second = tmp_path / "1"
    shutil.copytree(out, second)
    data = json.loads((second / "ensemble.json").read_text())
    data["overrides"] = [*data["overrides"], "data.split.fold=1"]
    (second / "ensemble.json").write_text(json.dumps(data))
    split = json.loads((second / "split.json").read_text())
    split["test"]["writers"] = ["another"]
    (second / "split.json").write_text(json.dumps(split))
    summary = writer_independent_summary([out, second])
    assert [f["fold"] for f in summary["runs"]] == [None, 1]  # fold 1 read from ensemble.json
    assert summary["folds"] == 2 and summary["test_writers_disjoint"] is True


def test_a_gallery_enrolls_with_an_ensemble(ensemble, cedar_root, tmp_path):
    out, _ = ensemble
    scans = _scans(cedar_root)
    gallery = sigid.Gallery.open(tmp_path / "g.sqlite", out / "checkpoints" / "best.ckpt")
    gallery.enroll("w1", scans[:2])
    assert gallery.score == "normalized"
    verdict = gallery.verify("w1", scans[2])
    # the normalised score by hand, from the ensemble's own embedding and genuine distance
    combined = Verifier.from_checkpoint(out / "checkpoints" / "best.ckpt")
    refs, query = combined.embed(scans[:2]), combined.embed([scans[2]])[0]
    mean = np.linalg.norm(refs - query, axis=1).mean()
    spread = np.linalg.norm(refs[0] - refs[1])
    expected = combined.similarity_at(mean - spread + combined.genuine_distance)
    assert verdict.score == pytest.approx(expected, abs=1e-5)
    assert verdict.same == bool(expected >= combined.threshold)


@pytest.mark.parametrize(
    ("which", "data", "message"),
    [
        ("fold1", SMALL_DATA, r"trained on different splits \(their train writers differ\)"),
        ("dim8", SMALL_DATA, r"have different networks \(dim\)"),
        ("b", [*SMALL_DATA, "data.seed=1"], "give other train writers than the members"),
    ],
)
def test_members_of_other_splits_or_networks_are_refused(runs, tmp_path, which, data, message):
    with pytest.raises(ValueError, match=message):
        combine([runs["a"], runs[which]], tmp_path / "out", data)
    assert not (tmp_path / "out").exists()


def test_a_run_without_its_split_is_refused_naming_the_file(runs, tmp_path):
    bare = tmp_path / "bare"
    (bare / "checkpoints").mkdir(parents=True)
    shutil.copy(runs["b"] / "checkpoints" / "best.ckpt", bare / "checkpoints" / "best.ckpt")
    with pytest.raises(ValueError) as err:
        combine([runs["a"], bare], tmp_path / "out", SMALL_DATA)
    assert str(err.value) == (
        f"{bare / 'split.json'}: no such file or directory; an ensemble needs each run's "
        "split.json, to check that the members were trained on the same writers"
    )
    (bare / "split.json").write_text('{"train": {"writers": ["w1"]')  # cut short
    with pytest.raises(ValueError, match=r"bare/split.json: not valid JSON .*same writers"):
        combine([runs["a"], bare], tmp_path / "out", SMALL_DATA)
    (bare / "split.json").write_text('{"train": {"writers": ["w1"]}, "val": {}}')
    with pytest.raises(ValueError, match=r"split.json: no writers recorded for the 'val' split"):
        combine([runs["a"], bare], tmp_path / "out", SMALL_DATA)
    loose = tmp_path / "loose.ckpt"  # a checkpoint outside any run folder
    shutil.copy(runs["b"] / "checkpoints" / "best.ckpt", loose)
    with pytest.raises(ValueError, match=f"{tmp_path}/split.json: "):
        combine([runs["a"], loose], tmp_path / "out", SMALL_DATA)
    with pytest.raises(ValueError, match="at least 2 runs"):
        combine([runs["a"]], tmp_path / "out", SMALL_DATA)
    with pytest.raises(ValueError, match="given twice; an ensemble needs distinct runs"):
        combine([runs["a"], runs["a"] / "checkpoints" / "best.ckpt"], tmp_path / "out", SMALL_DATA)
    with pytest.raises(ValueError, match="checkpoint not found"):
        combine([runs["a"], tmp_path / "nothing"], tmp_path / "out", SMALL_DATA)


def test_a_training_run_is_never_overwritten(runs):
    before = (runs["a"] / "checkpoints" / "best.ckpt").read_bytes()
    with pytest.raises(ValueError, match="holds a training run; write the ensemble to another"):
        combine([runs["a"], runs["b"]], runs["a"], SMALL_DATA)
    assert (runs["a"] / "checkpoints" / "best.ckpt").read_bytes() == before
    assert not (runs["a"] / "ensemble.json").exists()


def test_a_classifier_is_refused(runs, cnn_ckpt, tmp_path):
    with pytest.raises(ValueError, match="a CNN classifier; an ensemble combines Siamese runs"):
        combine([runs["a"], cnn_ckpt], tmp_path / "out", SMALL_DATA)


def test_the_command_prints_the_ensemble_and_fails_cleanly(runs, tmp_path, capsys):
    out = tmp_path / "cli"
    second = runs["b"] / "checkpoints" / "best.ckpt"  # a run folder or its checkpoint
    assert main(["ensemble", "--out", str(out), str(runs["a"]), str(second), *SMALL_DATA]) == 0
    text = capsys.readouterr().out
    assert f"ensemble of 2 runs (2 embeddings) in {out}" in text
    assert "test/eer_skilled" in text and (out / "checkpoints" / "best.ckpt").is_file()
    code = main(["ensemble", "--out", str(tmp_path / "x"), "--json", str(runs["a"]),
                 str(runs["fold1"]), *SMALL_DATA])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 1 and captured.out == ""
    assert captured.err.startswith("sigid ensemble: error: ") and "different splits" in captured.err


def test_an_output_that_is_a_file_is_refused_before_any_work(runs, tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(NotADirectoryError, match="file: cannot write: it is a file, not a folder"):
        combine([runs["a"], runs["b"]], tmp_path / "file", ["data.nope=1"])  # bad data: not reached
