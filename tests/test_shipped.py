"""The verifier shipped with sigid: the commands use it without --ckpt, and `sigid ship` makes it
from a finished run of procedural writers alone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import tomllib
import torch
from omegaconf import OmegaConf
from runs import QUIET, SMALL_NET, sigid_cli

import sigid
from sigid.data.synthetic import generate
from sigid.inference.gallery import Gallery
from sigid.inference.packaging import ship
from sigid.inference.shipped import NOTE, RECORD_KEY, SHIPPED_CHECKPOINT, shipped_record
from sigid.inference.verifier import Verifier
from sigid.tasks import SiameseModule, load_checkpoint

# "A few MB": the package carries it to every install.
MAX_BYTES = 6_000_000
# A seconds-long run of the shipped_verifier recipe: 12 procedural writers, small images.
TINY_RUN = [
    "experiment=shipped_verifier",
    "data.synthetic.writers=12",
    "data.synthetic.per_writer=12",
    "data.synthetic.forgeries=4",
    "data.preprocess.size=[32,64]",
    "data.split.folds=4",
    "data.split.val_writers=2",
    "data.batch_size=16",
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=3",
    "model.dim=16",
    *SMALL_NET,
    *QUIET,
]


@pytest.fixture(scope="module")
def signatures(tmp_path_factory) -> Path:
    """Procedural writers the shipped verifier never saw (another seed than its training's)."""
    return generate(tmp_path_factory.mktemp("unseen"), writers=3, per_writer=3, forgeries=0, seed=5)


def _image(root: Path, writer: int, number: int) -> Path:
    return root / f"writer{writer:02d}" / f"writer{writer:02d}_g{number:03d}.png"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A finished run of the shipped_verifier recipe, its writer loss on, in seconds."""
    folder = tmp_path_factory.mktemp("shipped-run")
    result = sigid.train([*TINY_RUN, f"hydra.run.dir={folder}"])
    assert result.checkpoint is not None
    return folder


def test_the_shipped_verifier_is_a_few_mb_and_loads_weights_only():
    assert SHIPPED_CHECKPOINT.stat().st_size < MAX_BYTES
    stored = torch.load(SHIPPED_CHECKPOINT, map_location="cpu", weights_only=True)
    assert not any(key.startswith("writer_head.") for key in stored["state_dict"])
    assert {"optimizer_states", "loops", "callbacks"}.isdisjoint(stored)
    record = shipped_record()
    assert record["command"].startswith("sigid-train experiment=shipped_verifier")
    assert "procedural" in record["data"]
    assert isinstance(load_checkpoint(SHIPPED_CHECKPOINT), SiameseModule)


def test_the_wheel_ships_the_verifier():
    """pyproject.toml's package-data names the file, or `pip install .` would leave it out."""
    root = Path(__file__).resolve().parents[1]
    setup = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    inside = SHIPPED_CHECKPOINT.relative_to(root / "sigid" / "inference")
    assert any(inside.match(pattern) for pattern in setup["package-data"]["sigid.inference"])


def test_verify_without_ckpt_uses_the_shipped_verifier(capsys, signatures):
    same = _image(signatures, 1, 1), _image(signatures, 1, 2)
    other = _image(signatures, 1, 1), _image(signatures, 2, 1)
    code, out, err = sigid_cli(capsys, "verify", *same)
    assert code == 0 and out.startswith(("same writer  (", "different writers  ("))
    assert err == f"sigid verify: {NOTE}\n"
    scores = []
    for pair in (same, other):
        code, out, _ = sigid_cli(capsys, "verify", *pair, "--json")
        data = json.loads(out)
        assert code == 0 and data["same"] == (data["score"] >= data["threshold"])
        scores.append(data["score"])
    assert scores[0] > scores[1]  # a trained model: the same writer is the closer pair
    assert Verifier.shipped().similarity(*same) == pytest.approx(scores[0])


def test_enroll_and_identify_without_ckpt_use_the_shipped_verifier(capsys, signatures, tmp_path):
    gallery = tmp_path / "gallery.sqlite"
    for writer in (1, 2, 3):
        refs = [_image(signatures, writer, 1), _image(signatures, writer, 2)]
        code, _, err = sigid_cli(
            capsys, "enroll", "--gallery", gallery, "--writer", f"w{writer}", *refs
        )
        assert code == 0
        assert err == (f"sigid enroll: {NOTE}\n" if writer == 1 else "")  # then the gallery's
    assert Gallery.load(gallery).verifier.checkpoint == SHIPPED_CHECKPOINT.resolve()
    code, out, err = sigid_cli(capsys, "identify", "--gallery", gallery, _image(signatures, 3, 3))
    assert code == 0 and "w3" in out and err == ""


def test_ship_keeps_what_verifies_and_records_how_it_was_made(capsys, tiny_run, tmp_path):
    out = tmp_path / "verifier.ckpt"
    code, printed, _ = sigid_cli(capsys, "ship", tiny_run, "--out", out, "--json")
    assert code == 0
    result = json.loads(printed)
    source = tiny_run / "checkpoints" / "best.ckpt"
    stored = torch.load(out, map_location="cpu", weights_only=True)
    assert stored[RECORD_KEY] == shipped_record(out)
    assert result["command"] == "sigid-train " + " ".join(TINY_RUN)
    assert result["seed"] == 0 and result["synthetic"]["writers"] == 12
    assert result["bytes"] == out.stat().st_size < source.stat().st_size
    trained = torch.load(source, map_location="cpu", weights_only=True)["state_dict"]
    assert any(key.startswith("writer_head.") for key in trained)  # stripped: training only
    assert set(stored["state_dict"]) == {k for k in trained if not k.startswith("writer_head.")}
    packaged, original = Verifier.from_checkpoint(out), Verifier.from_checkpoint(source)
    assert packaged.fingerprint == original.fingerprint == result["fingerprint"]
    assert packaged.threshold == original.threshold


def test_ship_refuses_a_run_not_on_procedural_writers_alone(tiny_run, tmp_path):
    out = tmp_path / "verifier.ckpt"
    out.write_bytes(b"the earlier one")
    for key, value, reason in (
        ("data.root", "/data/cedar", "not on sigid's procedural writers alone"),
        ("init_from", "/runs/pretrained/checkpoints/best.ckpt", "trained from scratch"),
    ):
        run = tmp_path / key
        shutil.copytree(tiny_run, run)
        config = OmegaConf.load(run / ".hydra" / "config.yaml")
        OmegaConf.update(config, key, value)
        OmegaConf.save(config, run / ".hydra" / "config.yaml")
        with pytest.raises(ValueError, match=reason):
            ship(run, out)
        assert out.read_bytes() == b"the earlier one"
    alone = tmp_path / "alone.ckpt"  # a checkpoint copied out of its run: nothing to check
    shutil.copy(tiny_run / "checkpoints" / "best.ckpt", alone)
    with pytest.raises(ValueError, match=r"^\S+: no \.hydra/config\.yaml, so not a sigid-train"):
        ship(alone, out)
