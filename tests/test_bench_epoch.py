"""`sigid bench`'s epoch and inference parts: one real epoch of cedar_snn split into phases that
add up to its fit, and a checkpoint's embedding rate and verify latency. Tiny settings (a small
synthetic set, few pairs, one round of one step): these tests check what is reported, never how
fast."""

from __future__ import annotations

import json
import math

import pytest
from runs import BENCH_DATA, bench_cli, positive

from sigid.bench.epoch import PHASES
from sigid.bench.report import format_table

TINY = ["--rounds", "1", "--steps", "1", "--warmup", "0"]
# 7 writers x (12 genuine + 4 forgeries): fold 0 leaves 3 training writers, so one epoch is
# 3 writer batches of 3 x (4 + 4) images (round(36 genuine / (3 writers x 4)))
SMALL_DATA = [*BENCH_DATA, "data.batch_size=16"]
TRAIN_BATCHES = 3


@pytest.fixture(scope="module")
def both(siamese_ckpt) -> dict:
    """One tiny run of the epoch and inference parts, inference on a tiny trained checkpoint."""
    argv = ["--json", "--only", "epoch", "inference", *TINY, "--ckpt", str(siamese_ckpt)]
    code, out, err = bench_cli(*argv, *SMALL_DATA)
    assert code == 0, err
    return json.loads(out)


def test_the_epoch_phases_add_up_to_its_fit(both):
    epoch = both["epoch"]
    seconds, counts = epoch["seconds"], epoch["counts"]
    assert tuple(seconds) == PHASES
    assert all(value >= 0 for value in seconds.values()), seconds
    for phase in ("data", "step", "validation", "checkpoint"):
        assert positive(seconds[phase]), (phase, seconds)
    # the phases are disjoint: together they are the fit, "other" its remainder
    assert math.isclose(sum(seconds.values()), epoch["fit_s"], rel_tol=1e-6)
    assert math.isclose(sum(epoch["share"].values()), 1.0, rel_tol=1e-6)
    # one fetch and one step per training batch, one validation per epoch
    assert counts["data"] == counts["step"] == epoch["batches"]["train"] == TRAIN_BATCHES
    assert counts["validation"] == 1
    data = epoch["data"]
    assert (data["val_pairs"], data["test_pairs"], data["layout"]) == (40, 40, "paired")
    assert epoch["batches"]["val"] == 3  # 40 pairs in batches of 16
    assert positive(epoch["setup_s"]) and positive(epoch["test_s"])
    assert both["epoch_s"] == epoch["fit_s"]
    assert both["epoch_step_share"] == epoch["share"]["step"]


def test_inference_uses_the_checkpoint_asked(both, siamese_ckpt):
    found = both["inference"]
    assert found["checkpoint"] == str(siamese_ckpt) and not found["shipped"]
    assert found["dim"] == 16 and found["preprocessing"]["size"] == [32, 64]
    assert found["images_per_round"] == 64  # --steps 1: one batch
    assert all(positive(v) for v in found["embed_img_s"].values())
    assert positive(found["verify_ms"]) and positive(found["load_s"])
    assert both["embeddings_per_s"] == found["embed_img_s"]["prepared"]
    assert both["verify_ms"] == found["verify_ms"]


def test_the_table_has_the_epoch_and_inference_blocks(both):
    table = format_table(both)
    assert "one epoch of experiment=cedar_snn on the default synthetic set" in table
    assert all(f"  {phase} " in table for phase in PHASES)
    assert "verify one pair of files" in table
    assert "epoch_s" in table.split("headline:")[1]


def test_inference_defaults_to_the_shipped_verifier():
    code, out, err = bench_cli("--json", "--only", "inference", *TINY)
    assert code == 0, err
    found = json.loads(out)["inference"]
    assert found["shipped"] and found["checkpoint"].endswith("verifier.ckpt")
    assert found["dim"] == 128


def test_a_missing_checkpoint_is_a_one_line_error(tmp_path):
    missing = tmp_path / "none.ckpt"
    code, out, err = bench_cli("--only", "inference", *TINY, "--ckpt", str(missing))
    assert code == 1 and out == ""
    last = err.splitlines()[-1]
    assert last.startswith("sigid bench: error: ") and str(missing) in last, err
