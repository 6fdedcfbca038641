"""The robustness protocol (sigid evaluate --protocol robustness) on a tiny trained checkpoint:
its clean row is the writer-dependent protocol's and the test step's, a destructive change
worsens it, and the command's options and errors."""

from __future__ import annotations

import json

import pytest
from runs import SMALL_DATA, cedar_subset_data, sigid_cli

import sigid
from sigid.data.acquisition import STRENGTHS, TRANSFORMS
from sigid.evaluation.protocols.robustness import robustness
from sigid.evaluation.protocols.writer_dependent import writer_dependent
from sigid.evaluation.testing import run_test

DATA = SMALL_DATA


@pytest.fixture(scope="module")
def stamped(siamese_ckpt) -> dict:
    """The protocol with a stamp centred on every questioned signature (high strength)."""
    return robustness(siamese_ckpt, DATA, transforms=["stamp"], strengths=["high"])


def test_clean_is_the_writer_dependent_protocol_and_the_test_step(siamese_ckpt, stamped):
    clean, row = stamped["rows"]
    assert (clean["transform"], clean["strength"]) == ("clean", None)
    assert (row["transform"], row["strength"]) == ("stamp", "high")
    dependent = writer_dependent(siamese_ckpt, DATA)
    assert clean["writer_dependent"] == dependent["results"]
    assert stamped["skipped_references"] == dependent["skipped_references"]  # K=12: too few
    _, tested = run_test(siamese_ckpt, DATA)
    for key in ("eer", "eer_skilled", "eer_random", "auc"):
        metric = "test/auroc" if key == "auc" else f"test/{key}"
        assert clean["pairs"][key] == pytest.approx(tested[metric], abs=1e-6), key
    assert clean["figures"] == {
        "pairs_skilled": clean["pairs"]["eer_skilled"],
        "pairs_random": clean["pairs"]["eer_random"],
        "wd_skilled": dependent["results"][0]["test"]["skilled"]["eer"],
        "wd_random": dependent["results"][0]["test"]["random"]["eer"],
        "top1": dependent["results"][0]["test"]["identification"]["top1"],
    }
    assert (stamped["eer_references"], stamped["top1_references"]) == (5, 5)
    assert all(value == 0 for value in clean["delta"].values())


def test_a_destructive_change_worsens_the_figures(stamped):
    clean, row = (r["figures"] for r in stamped["rows"])
    delta = stamped["rows"][1]["delta"]
    assert row["top1"] < clean["top1"] and delta["top1"] == row["top1"] - clean["top1"]
    assert row["pairs_random"] > clean["pairs_random"]
    assert row["wd_random"] > clean["wd_random"]


def test_references_too_transforms_the_enrolled_signatures(siamese_ckpt, stamped):
    both = sigid.evaluate(
        siamese_ckpt, DATA, protocol="robustness", transforms=["stamp"], strengths=["high"],
        references_too=True,
    )  # fmt: skip
    assert both["transformed"] == "questioned and references"
    assert stamped["transformed"] == "questioned"
    assert both["rows"][0] == stamped["rows"][0]  # clean is clean
    assert both["rows"][1]["figures"] != stamped["rows"][1]["figures"]


def test_the_command_on_real_cedar_scans(capsys, siamese_ckpt, cedar_subset, tmp_path):
    """Scans read from disk, changed, preprocessed as the checkpoint says: one row per transform
    and strength asked, in the table and in the JSON, and evaluation.json with --out."""
    data = cedar_subset_data(cedar_subset)
    base = ["evaluate", "--protocol", "robustness", "--ckpt", siamese_ckpt,
            "--transforms", "jpeg,resolution", "--strengths", "middle,high",
            "--references", "2", "5"]  # fmt: skip
    code, stdout, err = sigid_cli(capsys, *base, "--json", "--out", tmp_path / "eval", *data)
    assert code == 0, err
    result = json.loads(stdout)
    assert json.loads((tmp_path / "eval" / "evaluation.json").read_text()) == result
    rows = [(r["transform"], r["strength"]) for r in result["rows"]]
    assert rows == [  # in the registry's order, whatever the order asked
        ("clean", None), ("resolution", "middle"), ("resolution", "high"), ("jpeg", "middle"),
        ("jpeg", "high"),
    ]  # fmt: skip
    assert (result["eer_references"], result["top1_references"]) == (5, 5)
    assert set(result["transforms"]) == {"jpeg", "resolution"}
    assert all(r["refused"] == 0 for r in result["rows"])
    assert 0 < sum(r["wall_s"] for r in result["rows"][1:]) <= result["wall_s"]
    assert len({json.dumps(r["figures"]) for r in result["rows"]}) > 1  # the scans changed
    code, table, err = sigid_cli(capsys, *base, *data)
    assert code == 0, err
    lines = [line.split() for line in table.splitlines()]
    assert [line[:2] for line in lines if line[:1] in (["jpeg"], ["resolution"])] == [
        ["resolution", "middle"], ["resolution", "high"], ["jpeg", "middle"], ["jpeg", "high"],
    ]  # fmt: skip
    jpeg_high = result["rows"][4]
    value, delta = jpeg_high["figures"]["top1"], jpeg_high["delta"]["top1"]
    assert f"{value:.4f} ({delta:+.4f})" in table


def test_bad_names_and_misplaced_options_are_one_line(capsys, siamese_ckpt):
    argv = ["evaluate", "--protocol", "robustness", "--ckpt", siamese_ckpt]
    code, _, err = sigid_cli(capsys, *argv, "--transforms", "jpeg,blur", *DATA)
    assert code == 1 and err.count("\n") == 1
    assert "unknown acquisition transform(s) 'blur'; choose from " + ", ".join(TRANSFORMS) in err
    code, _, err = sigid_cli(capsys, *argv, "--transforms", "", *DATA)  # none is not all
    assert code == 1 and "unknown acquisition transform(s) (none given); choose from" in err
    code, _, err = sigid_cli(capsys, *argv, "--strengths", "extreme", *DATA)
    assert code == 1 and err.count("\n") == 1
    assert f"'extreme'; choose from {', '.join(STRENGTHS)}" in err
    wd = ["evaluate", "--protocol", "writer-dependent", "--ckpt", siamese_ckpt]
    code, _, err = sigid_cli(capsys, *wd, "--transforms", "jpeg", *DATA)
    assert code == 1 and "--transforms applies to the robustness protocol only" in err
    code, _, err = sigid_cli(capsys, *wd, "--transform-references", *DATA)
    assert code == 1 and "--transform-references applies to the robustness" in err
    with pytest.raises(ValueError, match="strengths applies to the robustness protocol only"):
        sigid.evaluate(siamese_ckpt, DATA, protocol="writer-dependent", strengths=["low"])
