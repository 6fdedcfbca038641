"""Files written before the code moved into layers (issue 20) still load and work.

The old code itself writes them: commit `BEFORE_THE_MOVE` is taken from the repository's history
(`git archive`) and run in a process of its own (tests/write_old_files.py), with that commit's
``sigid/`` and ``conf/`` first on its path. It trains tiny Siamese runs (one finished, one
interrupted after its first epoch, an ensemble of two), enrolls a gallery, and records what it
read back from them; the current code must load the same checkpoints, reproduce those numbers,
identify with the gallery, evaluate the run folders, and keep or resume them as it keeps and
resumes its own. Only public names are used here, so that the tests survive moves within the
package.

The history must be there: a shallow clone lacks the commit, and these tests are then skipped.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
import torch
from drawing import draw_signature
from omegaconf import OmegaConf

import sigid
from sigid.inference.gallery.manage import convert
from sigid.tasks import SiameseModule, load_checkpoint

pytestmark = pytest.mark.slow  # the old code trains three runs in processes of its own: ~15 s

# The last commit before the move: `sigid.callbacks`, `sigid.rundir`, `sigid.gallery`...
BEFORE_THE_MOVE = "0ffe9cf6a46b5b76bff2efe584fc14f120c578b0"
TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def _git(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, check=False)


@pytest.fixture(scope="session")
def old_code(tmp_path_factory) -> Path:
    """A folder holding the package as it was before the move, its configs inside it as
    ``sigid/conf`` (as installed), to put first on a process's PYTHONPATH."""
    if shutil.which("git") is None:
        pytest.skip("git not found: the code before the move is read from the repository")
    if _git("cat-file", "-e", f"{BEFORE_THE_MOVE}^{{commit}}").returncode != 0:
        pytest.skip(
            f"commit {BEFORE_THE_MOVE[:7]} (the code before the move) is not in this clone "
            "(a shallow one?): fetch the history to run these tests"
        )
    archive = _git("archive", "--format=tar", BEFORE_THE_MOVE, "sigid", "conf")
    assert archive.returncode == 0, archive.stderr.decode(errors="replace")
    folder = tmp_path_factory.mktemp("before-the-move")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(folder, **safe)
    (folder / "conf").rename(folder / "sigid" / "conf")
    return folder


@pytest.fixture(scope="session")
def old_files(old_code, tmp_path_factory, _isolated_cache) -> Path:
    """What the old code wrote (tests/write_old_files.py lists it), in one folder. The old code
    shares the session's cache folder with the current one, as one user's versions would."""
    root = tmp_path_factory.mktemp("old-files")
    images = root / "images"
    for writer in (1, 2, 3):
        (images / f"w{writer}").mkdir(parents=True)
        for n in range(8):
            draw_signature(writer, n).save(images / f"w{writer}" / f"s{n}.png")
    out = root / "out"
    out.mkdir()
    done = subprocess.run(
        [sys.executable, str(TESTS / "write_old_files.py"), str(out), str(images)],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(old_code)},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    # the old code wrote them, not the installed one
    for module in _expected(out)["code"]:
        assert Path(module).is_relative_to(old_code), module
    return out


def _expected(out: Path) -> dict[str, Any]:
    return json.loads((out / "expected.json").read_text())


def _close(new: Any, old: Any, where: str = "") -> None:
    """`new` equals `old`, floats within float32 rounding, at any depth of dicts and lists."""
    if isinstance(old, float) or isinstance(new, float):
        assert math.isclose(new, old, rel_tol=1e-5, abs_tol=1e-6), f"{where}: {new} != {old}"
    elif isinstance(old, dict):
        assert isinstance(new, dict) and new.keys() == old.keys(), f"{where}: {new} != {old}"
        for key in old:
            _close(new[key], old[key], f"{where}.{key}")
    elif isinstance(old, list):
        assert isinstance(new, list) and len(new) == len(old), f"{where}: {new} != {old}"
        for n, (a, b) in enumerate(zip(new, old, strict=True)):
            _close(a, b, f"{where}[{n}]")
    else:
        assert new == old, f"{where}: {new!r} != {old!r}"


def _run_overrides(folder: Path) -> list[str]:
    """The run's own command-line overrides, as recorded, less the tests' interrupting one."""
    recorded = OmegaConf.load(folder / ".hydra" / "overrides.yaml")
    return [str(o) for o in recorded if not str(o).startswith("+callbacks.stop=")]


def _contents(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_an_old_checkpoint_loads_with_its_weights_and_settings(old_files):
    for run in ("finished", "ensemble"):
        checkpoint = old_files / run / "checkpoints" / "best.ckpt"
        stored = torch.load(checkpoint, map_location="cpu", weights_only=False)
        for given in (checkpoint, old_files / run):  # the file, or its run folder
            module = load_checkpoint(given)
            assert isinstance(module, SiameseModule)
            weights = module.state_dict()
            assert weights.keys() == stored["state_dict"].keys()
            for name, value in stored["state_dict"].items():
                assert torch.equal(weights[name], value), (run, name)
            assert dict(module.hparams) == stored["hyper_parameters"]


def test_an_old_checkpoint_verifies_as_it_did(old_files):
    expected = _expected(old_files)
    queries = expected["queries"]
    verifier = sigid.Verifier.from_checkpoint(old_files / "finished" / "checkpoints" / "best.ckpt")
    # the fingerprint names the weights in gallery files: unchanged, or old galleries are refused
    assert verifier.fingerprint == expected["fingerprint"]
    _close(verifier.threshold, expected["threshold"], "threshold")
    _close(verifier.genuine_distance, expected["genuine_distance"], "genuine_distance")
    _close(verifier.embed(queries).tolist(), expected["embeddings"], "embeddings")
    _close([verifier.similarity(queries[0], q) for q in queries], expected["similarities"])
    ensemble = sigid.Verifier.from_checkpoint(old_files / "ensemble" / "checkpoints" / "best.ckpt")
    _close([ensemble.similarity(queries[0], q) for q in queries], expected["ensemble_similarities"])


def test_an_old_gallery_identifies_and_verifies_as_it_did_and_takes_new_writers(
    old_files, tmp_path
):
    expected = _expected(old_files)
    queries = expected["queries"]
    checkpoint = old_files / "finished" / "checkpoints" / "best.ckpt"
    # with the checkpoint stored in the file, or given
    for gallery in (
        sigid.Gallery.load(old_files / "gallery.npz"),
        sigid.Gallery.open(old_files / "gallery.npz", checkpoint),
    ):
        assert gallery.writers == ["w1", "w2"] and gallery.score == "normalized"
        _close([gallery.identify(q).to_dict() for q in queries], expected["identify"], "identify")
        _close([gallery.verify("w1", q).to_dict() for q in queries], expected["verify"], "verify")
    # an old file is read-only; converted to a store, it answers as it did and takes new writers
    new = [str(Path(queries[2]).with_name(f"s{n}.png")) for n in range(3)]
    with pytest.raises(ValueError, match="is read-only; convert it to a store"):
        sigid.Gallery.open(old_files / "gallery.npz", checkpoint).enroll("w3", new)
    path = tmp_path / "gallery.sqlite"
    assert convert(old_files / "gallery.npz", path)["writers"] == 2
    gallery = sigid.Gallery.open(path, checkpoint)
    _close([gallery.identify(q).to_dict() for q in queries], expected["identify"], "identify")
    _close([gallery.verify("w1", q).to_dict() for q in queries], expected["verify"], "verify")
    gallery.enroll("w3", new)
    again = sigid.Gallery.load(path, checkpoint)
    assert again.writers == ["w1", "w2", "w3"]
    assert again.identify(queries[0]).to_dict()["candidates"][0]["writer"] == "w1"


def test_an_old_run_folder_is_evaluated_on_the_data_it_was_tested_on(old_files):
    for run in ("finished", "ensemble"):
        recorded = json.loads((old_files / run / "metrics.json").read_text())
        metrics = sigid.evaluate(old_files / run)  # its own record gives the data
        for key in ("test/acc", "test/eer", "test/loss", "test/auroc"):
            _close(metrics[key], recorded[key], f"{run}: {key}")


def test_a_finished_old_run_folder_is_not_trained_into(old_files, tmp_path):
    folder = shutil.copytree(old_files / "finished", tmp_path / "finished")
    before = _contents(folder)
    with pytest.raises(ValueError, match="holds a finished run"):
        sigid.train([*_run_overrides(folder), f"hydra.run.dir={folder}"])
    assert _contents(folder) == before


def test_an_interrupted_old_run_is_kept_until_resumed_from_its_checkpoint(old_files):
    folder = old_files / "interrupted"  # this test's own; resumed where the old code left it
    assert json.loads((folder / "status.json").read_text())["status"] == "interrupted"
    overrides = [*_run_overrides(folder), f"hydra.run.dir={folder}"]
    before = _contents(folder)
    with pytest.raises(ValueError, match=r"holds checkpoints of a run that did not finish"):
        sigid.train(overrides)
    assert _contents(folder) == before
    last = folder / "checkpoints" / "last.ckpt"
    result = sigid.train([*overrides, f"ckpt_path={last}"])
    assert result.metrics["epochs"] == 2 and "test/eer" in result.metrics
    assert result.metrics["resumed_from"] == str(last.resolve())
    history = json.loads((folder / "history.json").read_text())
    assert [h["epoch"] for h in history] == [0, 1]  # the first epoch came with the checkpoint
    assert json.loads((folder / "status.json").read_text())["status"] == "ok"
