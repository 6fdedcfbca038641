"""Evaluation refuses data that the checkpoint's run trained on (its ``split.json``), and only
that: another data set with writers of the same names is fine, and a checkpoint outside its
run folder is evaluated without the check (and says so) on the data it is given, never on
defaults it was not trained on."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from runs import SMALL_DATA

import sigid
from sigid.cli import main
from sigid.evaluation.protocols import identification, writer_dependent
from sigid.evaluation.protocols.report import format_result
from sigid.runs.paths import run_folder
from sigid.runs.records import check_unseen, read_manifest, run_overrides, run_record


def _fails_naming_the_split(call, checkpoint: Path, split: str) -> None:
    with pytest.raises(ValueError) as refused:
        call()
    message = str(refused.value)
    assert f"of the {split} signatures of this data were trained on" in message
    assert str(run_folder(checkpoint) / "split.json") in message


def test_another_fold_of_the_writers_a_siamese_run_trained_on_is_refused(siamese_ckpt):
    """The tiny run trained on fold 0 of 3; fold 1 tests on writers of its training split (and
    validates on the same writers as fold 0)."""
    other_fold = [*SMALL_DATA, "data.split.fold=1"]
    trained = set(read_manifest(run_folder(siamese_ckpt) / "split.json")["train"]["writers"])
    result = writer_dependent(siamese_ckpt, SMALL_DATA, references=2)  # its own fold: fine
    assert result["training_split"] == str(run_folder(siamese_ckpt) / "split.json")
    assert not trained & {w for ws in result["writers"].values() for w in ws}
    _fails_naming_the_split(
        lambda: writer_dependent(siamese_ckpt, other_fold, references=2), siamese_ckpt, "test"
    )
    _fails_naming_the_split(lambda: sigid.evaluate(siamese_ckpt, other_fold), siamese_ckpt, "test")


def test_another_per_writer_split_of_the_classifier_is_refused(cnn_ckpt):
    """Same writers, another draw of files (`data.seed`): test files the run trained on."""
    assert identification(cnn_ckpt, SMALL_DATA)["training_split"] is not None
    _fails_naming_the_split(
        lambda: identification(cnn_ckpt, [*SMALL_DATA, "data.seed=5"]), cnn_ckpt, "test"
    )


def test_writers_of_the_same_names_in_other_data_are_not_refused(siamese_ckpt):
    """Another synthetic set has writers named as the run's, but they are other files."""
    other_data = [*SMALL_DATA, "data.synthetic.seed=7", "data.split.fold=1"]
    result = writer_dependent(siamese_ckpt, other_data, references=2)
    assert result["training_split"] is not None


def test_a_checkpoint_outside_its_run_folder_is_evaluated_unchecked(siamese_ckpt, tmp_path):
    copy = tmp_path / "moved.ckpt"
    shutil.copy(siamese_ckpt, copy)
    result = writer_dependent(
        copy, ["data=synthetic", *SMALL_DATA, "data.split.fold=1"], references=2
    )
    assert result["training_split"] is None
    assert "unseen data NOT checked: no split.json" in format_result(result)
    checked = writer_dependent(siamese_ckpt, SMALL_DATA, references=2)
    assert f"unseen data checked against {checked['training_split']}" in format_result(checked)
    assert check_unseen(copy, {"test": {"files": []}}, ["test"]) is None


def test_a_checkpoint_outside_its_run_folder_needs_its_data_given(
    siamese_ckpt, cnn_ckpt, tmp_path, capsys
):
    """Without its run's record, the defaults (the built-in synthetic set) would be scored and
    look plausible: refused, naming the checkpoint, until a data override says what to use."""
    snn, cnn = tmp_path / "snn.ckpt", tmp_path / "cnn.ckpt"
    shutil.copy(siamese_ckpt, snn)
    shutil.copy(cnn_ckpt, cnn)
    calls = {
        snn: [
            lambda: writer_dependent(snn, references=2),
            lambda: writer_dependent(snn, ["seed=1"], references=2),  # not a data override
            # data keys that name no data: the defaults would still be scored
            lambda: writer_dependent(snn, [*SMALL_DATA, "data.split.fold=1"], references=2),
            lambda: sigid.evaluate(snn, protocol="writer-dependent", references=2),
            lambda: sigid.evaluate(snn),
        ],
        cnn: [
            lambda: identification(cnn),
            lambda: sigid.evaluate(cnn, protocol="identification"),
            lambda: sigid.evaluate(cnn),
        ],
    }
    for checkpoint, refused in calls.items():
        message = f"{checkpoint}: no run record beside it"
        for call in refused:
            with pytest.raises(ValueError, match=re.escape(message)):
                call()
    for protocol, checkpoint in (("writer-dependent", snn), ("identification", cnn)):
        assert main(["evaluate", "--protocol", protocol, "--ckpt", str(checkpoint)]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"sigid evaluate: error: {checkpoint}: no run record beside it")
        assert "data=folders data.root=PATH" in err and "data=synthetic" in err
        assert err.count("\n") == 1
    given = ["data=synthetic", *SMALL_DATA]  # its data named by their config: scored
    assert identification(cnn, given)["training_split"] is None


def test_a_malformed_split_record_is_an_error_naming_it(siamese_ckpt, tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(siamese_ckpt, run / "checkpoints" / "best.ckpt")
    (run / "split.json").write_text("{not json")
    with pytest.raises(ValueError, match=re.escape(f"{run / 'split.json'}: not valid JSON")):
        check_unseen(run / "checkpoints" / "best.ckpt", {}, ["test"])


def test_the_cli_refusal_is_one_line(siamese_ckpt, capsys):
    argv = ["evaluate", "--protocol", "writer-dependent", "--ckpt", str(siamese_ckpt),
            "--references", "2", *SMALL_DATA, "data.split.fold=1"]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("sigid evaluate: error: ") and "were trained on" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert json.loads((run_folder(siamese_ckpt) / "split.json").read_text())["train"]


def test_run_overrides_keep_the_chosen_keys_and_name_a_damaged_file(tmp_path):
    ckpt = tmp_path / "run" / "checkpoints" / "best.ckpt"
    hydra = tmp_path / "run" / ".hydra"
    hydra.mkdir(parents=True)
    assert run_overrides(ckpt, ("data",)) == []  # no overrides.yaml: nothing to start from
    assert run_record(tmp_path / "run") is None
    (hydra / "overrides.yaml").write_text("[]\n")  # a run of the defaults is recorded too
    assert run_record(tmp_path / "run") == hydra / "overrides.yaml"
    (hydra / "overrides.yaml").write_text(
        "- experiment=cedar_snn\n- data.root=/scans\n- +data.x=1\n- model.depth=9\n- seed=3\n"
        "- data/augment=none\n- model/optimizer=sgd\n"
    )
    assert run_overrides(ckpt, ("experiment", "data", "seed")) == [
        "experiment=cedar_snn", "data.root=/scans", "+data.x=1", "seed=3", "data/augment=none",
    ]  # fmt: skip
    (hydra / "overrides.yaml").write_text("- data.root=/scans\n  nested: [")
    with pytest.raises(ValueError, match=r"\.hydra/overrides\.yaml: not readable as YAML"):
        run_overrides(ckpt, ("data",))
    (hydra / "overrides.yaml").write_text("data.root: /scans\n")
    with pytest.raises(ValueError, match=r"overrides\.yaml: not a list of overrides"):
        run_overrides(ckpt, ("data",))
    ensemble = tmp_path / "ens"
    ensemble.mkdir()
    (ensemble / "ensemble.json").write_text(json.dumps({"overrides": ["data=cedar", "x.y=1"]}))
    assert run_overrides(ensemble / "best.ckpt", ("data",)) == ["data=cedar"]
    (ensemble / "ensemble.json").write_text('{"overrides": ["data=cedar"')
    with pytest.raises(ValueError, match=r"ensemble\.json: not readable as JSON"):
        run_overrides(ensemble / "best.ckpt", ("data",))
