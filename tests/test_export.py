"""Deployment export: TorchScript and ONNX equal PyTorch, the JSON sidecar, `sigid export`."""

from __future__ import annotations

import json
import os
import re
import sys
import warnings
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from runs import tiny_checkpoint

import sigid.inference.export
from sigid.cli import build_parser, main
from sigid.inference.export import MissingExportDependency, export
from sigid.inference.identifier import Identifier
from sigid.inference.verifier import Verifier
from sigid.tasks import load_checkpoint

TOLERANCE = 1e-4
NAMES = {"siamese": "embedding", "cnn": "classifier"}


@pytest.fixture(scope="session")
def checkpoints(siamese_ckpt, cnn_ckpt) -> dict[str, Path]:
    return {"siamese": siamese_ckpt, "cnn": cnn_ckpt}


@pytest.fixture(scope="session")
def exported(checkpoints, tmp_path_factory) -> dict[str, dict[str, Path]]:
    """Both formats of both models, each into a folder that does not exist yet."""
    root = tmp_path_factory.mktemp("exported")
    return {kind: export(ckpt, root / kind / "deploy") for kind, ckpt in checkpoints.items()}


def _images(batch: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 1, 32, 64, generator=torch.Generator().manual_seed(seed))


def _pytorch(kind: str, checkpoint: Path, images: torch.Tensor) -> torch.Tensor:
    """What the exported model must reproduce, through the modules' own inference paths."""
    module = load_checkpoint(checkpoint)
    with torch.no_grad():
        return module.net.embed(images) if kind == "siamese" else module.predict_step(images)


def _torchscript(path: Path, images: torch.Tensor) -> torch.Tensor:
    with warnings.catch_warnings():  # torch 2.14 deprecates TorchScript but still loads it
        warnings.filterwarnings("ignore", "`torch.jit.load` is deprecated", FutureWarning)
        model = torch.jit.load(str(path))
    with torch.no_grad():
        return model(images)


def _onnx(path: Path, images: torch.Tensor) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"images": images.numpy()})[0]


@pytest.mark.parametrize("batch", [1, 5])  # neither is the export's own example batch size
@pytest.mark.parametrize("kind", list(NAMES))
def test_exported_models_match_pytorch_for_any_batch_size(kind, batch, checkpoints, exported):
    images = _images(batch, seed=batch)
    expected = _pytorch(kind, checkpoints[kind], images)
    files = exported[kind]
    scripted = _torchscript(files["torchscript"], images)
    onnx = torch.from_numpy(_onnx(files["onnx"], images))
    assert expected.shape == scripted.shape == onnx.shape
    assert expected.shape[0] == batch
    assert float((scripted - expected).abs().max()) <= TOLERANCE
    assert float((onnx - expected).abs().max()) <= TOLERANCE


def _exported_embeddings(tmp_path, *overrides: str) -> torch.Tensor:
    """Train a tiny conv Siamese network (dim 16) with `overrides`, export it, check both files
    and its sidecar against PyTorch on 3 images, and return PyTorch's embeddings of them."""
    checkpoint = tiny_checkpoint(tmp_path / "run", "model=siamese_conv", "model.dim=16", *overrides)
    files = export(checkpoint, tmp_path / "deploy")
    images = _images(3, seed=9)
    expected = _pytorch("siamese", checkpoint, images)
    assert float((_torchscript(files["torchscript"], images) - expected).abs().max()) <= TOLERANCE
    onnx = torch.from_numpy(_onnx(files["onnx"], images))
    assert float((onnx - expected).abs().max()) <= TOLERANCE
    # the sidecar tells a deployer the embedding's real size
    metadata = json.loads(files["metadata"].read_text())
    assert metadata["output"]["shape"] == ["batch", expected.shape[1]]
    return expected


def test_unit_length_embeddings_export_with_their_normalisation(tmp_path):
    expected = _exported_embeddings(tmp_path, "model.normalize=true")
    assert torch.allclose(expected.norm(dim=1), torch.ones(3), atol=1e-5)


def test_embeddings_with_a_writer_branch_export_whole(tmp_path):
    expected = _exported_embeddings(
        tmp_path,
        "model.writer_loss=1.0",
        "model.writer_branch={weight:4.0,depth:2,channels:[4,8],hidden:8}",
    )
    assert expected.shape == (3, 16 + 8)
    assert torch.allclose(expected[:, 16:].norm(dim=1), torch.full((3,), 4.0), atol=1e-4)


def test_an_ensemble_exports_as_one_embedding(tmp_path):
    assert _exported_embeddings(tmp_path, "model.members=3").shape == (3, 3 * 16)


def test_export_writes_exactly_its_files(exported):
    for kind, files in exported.items():
        folder = files["metadata"].parent
        name = NAMES[kind]
        assert set(files) == {"torchscript", "onnx", "metadata"}
        assert sorted(os.listdir(folder)) == [f"{name}.json", f"{name}.onnx", f"{name}.pt"]


def test_siamese_metadata_lets_a_deployer_compute_the_similarity(checkpoints, exported):
    module = load_checkpoint(checkpoints["siamese"])
    meta = json.loads(exported["siamese"]["metadata"].read_text())
    assert meta["kind"] == "siamese"
    assert meta["input"]["shape"] == ["batch", 1, 32, 64]
    assert meta["input"]["range"] == [0.0, 1.0]
    assert meta["preprocessing"] == module.preprocessing == {"mode": "normalized", "size": [32, 64]}
    assert meta["output"]["shape"] == ["batch", 16]
    assert meta["files"] == {"torchscript": "embedding.pt", "onnx": "embedding.onnx"}
    assert all(0 <= d <= TOLERANCE for d in meta["checked_max_abs_difference"].values())
    head = meta["similarity"]
    assert head["threshold"] == pytest.approx(float(module.threshold))
    assert head["genuine_distance"] == pytest.approx(float(module.genuine_distance))
    # Outside torch: ONNX embeddings and the JSON's head give the network's own similarity.
    a, b = _images(4, seed=1), _images(4, seed=2)
    ea, eb = _onnx(exported["siamese"]["onnx"], a), _onnx(exported["siamese"]["onnx"], b)
    distance = np.sqrt(((ea - eb) ** 2).sum(axis=1) + head["eps"])
    similarity = 1.0 / (1.0 + np.exp(-(head["offset"] - head["scale"] * distance)))
    with torch.no_grad():
        expected = module.net.compare(a, b).numpy()
    assert np.abs(similarity - expected).max() <= TOLERANCE


def test_classifier_metadata_names_the_writers(checkpoints, exported):
    module = load_checkpoint(checkpoints["cnn"])
    meta = json.loads(exported["cnn"]["metadata"].read_text())
    assert meta["kind"] == "classifier"
    assert meta["class_names"] == module.class_names == [f"writer0{i}" for i in range(1, 7)]
    assert meta["output"]["shape"] == ["batch", 6]
    assert meta["preprocessing"] == module.preprocessing
    assert "similarity" not in meta
    probabilities = _onnx(exported["cnn"]["onnx"], _images(3))
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_cli_default_is_both_formats():
    args = build_parser().parse_args(["export", "--ckpt", "c.ckpt", "--out", "d"])
    assert args.formats == ["torchscript", "onnx"]


def test_cli_exports_torchscript_without_the_onnx_packages(
    checkpoints, tmp_path, capsys, monkeypatch
):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if not installed
    out = tmp_path / "cli"
    ckpt = str(checkpoints["cnn"])
    argv = ["export", "--ckpt", ckpt, "--out", str(out), "--format", "torchscript"]
    assert main([*argv, "--name", "writers"]) == 0
    assert sorted(os.listdir(out)) == ["writers.json", "writers.pt"]
    assert str(out / "writers.pt") in capsys.readouterr().out
    assert main([*argv, "--name", "again", "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    files = {"torchscript": str(out / "again.pt"), "metadata": str(out / "again.json")}
    assert made["files"] == files
    assert made["checkpoint"] == ckpt
    meta = json.loads((out / "writers.json").read_text())
    assert meta["files"] == {"torchscript": "writers.pt"}
    images = _images(2)
    expected = _pytorch("cnn", checkpoints["cnn"], images)
    assert float((_torchscript(out / "writers.pt", images) - expected).abs().max()) <= TOLERANCE

    assert main(["export", "--ckpt", ckpt, "--out", str(tmp_path / "onnx")]) == 1
    err = capsys.readouterr().err
    assert "onnxscript" in err and "pip install 'sigid[export]'" in err
    assert "Traceback" not in err and err.count("\n") == 1
    assert not (tmp_path / "onnx").exists()
    with pytest.raises(MissingExportDependency, match=r"sigid\[export\]"):
        export(ckpt, tmp_path / "onnx", formats=["onnx"])


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "checkpoint not found"),
        ("not_a_checkpoint", "not a sigid checkpoint"),
        ("unknown_format", "unknown export format"),
        ("bad_name", "plain file name"),
        ("empty_name", "export name '' must be a plain file name stem"),
        ("out_is_a_file", "cannot write: "),
    ],
)
def test_cli_errors_are_one_line_and_exit_1(case, message, checkpoints, tmp_path, capsys):
    ckpt, extra = checkpoints["cnn"], []
    if case == "missing":
        ckpt = tmp_path / "missing.ckpt"
    elif case == "not_a_checkpoint":
        ckpt = tmp_path / "notes.txt"
        ckpt.write_text("not a checkpoint\n")
    elif case == "unknown_format":
        extra = ["--format", "torchscript", "tflite"]
    elif case == "bad_name":
        extra = ["--name", "../escape"]
    elif case == "empty_name":  # not quietly the default name
        extra = ["--name", ""]
    out = tmp_path / "out"
    if case == "out_is_a_file":  # --out under an existing file: named, nothing written
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "out"
        message += f"{tmp_path / 'file'} is a file, not a folder"
    assert main(["export", "--ckpt", str(ckpt), "--out", str(out), *extra]) == 1
    err = capsys.readouterr().err
    assert err.startswith("sigid export: error:") and message in err
    assert err.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize("kind", list(NAMES))
def test_a_checkpoint_without_preprocessing_is_refused(kind, checkpoints, tmp_path, capsys):
    """The sidecar must say how to prepare images; the Verifier and Identifier refuse such a
    checkpoint with the same message (`sigid.inference.inputs.read_preprocessing`)."""
    checkpoint = torch.load(checkpoints[kind], map_location="cpu", weights_only=True)
    del checkpoint["hyper_parameters"]["preprocessing"]
    ckpt = tmp_path / "unprepared.ckpt"
    torch.save(checkpoint, ckpt)
    out = tmp_path / "out"
    message = f"{ckpt}: the model stores no preprocessing settings"
    with pytest.raises(ValueError, match=re.escape(message)):
        export(ckpt, out, formats=["torchscript"])
    tool = Verifier if kind == "siamese" else Identifier
    with pytest.raises(ValueError, match=re.escape(message)):
        tool.from_checkpoint(ckpt)
    assert main(["export", "--ckpt", str(ckpt), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"sigid export: error: {message}") and err.count("\n") == 1
    assert not out.exists()


def test_a_diverged_checkpoint_is_not_exported(checkpoints, tmp_path, capsys):
    """NaN weights used to fail the parity check with a RuntimeError traceback ("differs from
    PyTorch by nan"), leaving an empty output folder."""
    checkpoint = torch.load(checkpoints["siamese"], map_location="cpu", weights_only=True)
    for key, tensor in checkpoint["state_dict"].items():
        if key.startswith("net.") and tensor.is_floating_point():
            checkpoint["state_dict"][key] = tensor * float("nan")
    ckpt = tmp_path / "diverged.ckpt"
    torch.save(checkpoint, ckpt)
    out = tmp_path / "new" / "deploy"
    message = f"{ckpt}: the network gives NaN or infinite values (damaged or diverged weights?)"
    with pytest.raises(ValueError, match=re.escape(message)):
        export(ckpt, out, formats=["torchscript"])
    assert main(["export", "--ckpt", str(ckpt), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err == f"sigid export: error: {message}\n"
    assert not (tmp_path / "new").exists()


def test_a_failed_check_writes_nothing_and_keeps_the_previous_export(
    checkpoints, tmp_path, monkeypatch, capsys
):
    """All files or none: a format that fails its check after another passed leaves the
    previous export whole (the one that passed used to replace its earlier file)."""
    out = tmp_path / "deploy"
    before = export(checkpoints["siamese"], out, formats=["torchscript"], name="model")
    kept = {path.name: path.read_bytes() for path in out.iterdir()}

    def write(net: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
        path.write_bytes(b"onnx")

    def run(path: Path, images: torch.Tensor) -> torch.Tensor:
        return torch.full((len(images), 6), 0.5)  # not the probabilities PyTorch gives

    monkeypatch.setitem(sigid.inference.export.WRITERS, "onnx", write)
    monkeypatch.setitem(sigid.inference.export.RUNNERS, "onnx", run)
    ckpt = checkpoints["cnn"]
    message = f"{ckpt}: the onnx export differs from PyTorch by "
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        export(ckpt, out, name="model")
    assert str(caught.value).endswith("; nothing was written")
    assert {path.name: path.read_bytes() for path in out.iterdir()} == kept
    assert sorted(kept) == sorted(path.name for path in before.values())

    fresh = tmp_path / "fresh" / "deploy"
    argv = ["export", "--ckpt", str(ckpt), "--out", str(fresh)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"sigid export: error: {message}") and err.count("\n") == 1
    assert not (tmp_path / "fresh").exists()


def test_an_earlier_export_of_another_format_is_not_left_behind(
    checkpoints, exported, tmp_path, capsys
):
    """Re-exporting one format into a folder that holds an earlier export's other format would
    leave that file beside the new sidecar: a deployment loading it by name would run the old
    network. Refused before anything is written, naming the file."""
    out = tmp_path / "deploy"
    out.mkdir()
    for path in exported["cnn"].values():
        (out / path.name).write_bytes(path.read_bytes())
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    for formats, stale in ((["torchscript"], "onnx"), (["onnx"], "torchscript")):
        path = out / f"classifier{'.onnx' if stale == 'onnx' else '.pt'}"
        message = f"{path}: an earlier export's {stale} file, which this export would leave"
        with pytest.raises(ValueError, match=re.escape(message)) as caught:
            export(checkpoints["cnn"], out, formats=formats)
        assert f"export {stale} too, remove the file, or choose another --out" in str(caught.value)
        argv = ["export", "--ckpt", str(checkpoints["cnn"]), "--out", str(out), "--format"]
        assert main([*argv, *formats]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"sigid export: error: {message}") and err.count("\n") == 1
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before
    # another name beside it is another export: nothing of its own is left behind
    written = export(checkpoints["cnn"], out, formats=["torchscript"], name="writers")
    assert sorted(p.name for p in written.values()) == ["writers.json", "writers.pt"]
