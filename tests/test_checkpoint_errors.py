"""Files that are not sigid checkpoints, or damaged ones: one clear line naming the file.

Each file is written for real into tmp_path: torch files of other contents, and the tiny trained
checkpoints with their hyper-parameters or weights altered, as a hand edit or another program
would leave them.
"""

from __future__ import annotations

import re
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from drawing import draw_signature
from runs import READS_ANYTHING

from sigid.cli import main
from sigid.evaluation.protocols import identification
from sigid.inference.export import export
from sigid.inference.identifier import Identifier
from sigid.inference.verifier import Verifier
from sigid.tasks import load_checkpoint
from sigid.training.ensemble import combine


def _edited(source: Path, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """`source`'s contents after `change`."""
    checkpoint = torch.load(source, map_location="cpu", weights_only=True)
    change(checkpoint)
    return checkpoint


def _without_threshold(checkpoint: dict[str, Any]) -> None:
    del checkpoint["state_dict"]["threshold"]


def _with_extra_hparam(checkpoint: dict[str, Any]) -> None:
    checkpoint["hyper_parameters"]["lr"] = 0.1


# case -> (what the file holds, given the two tiny checkpoints; the reason in the message)
CASES: dict[str, tuple[Callable[[Path, Path], Any], str]] = {
    "tensor": (lambda snn, cnn: torch.zeros(3), "holds a Tensor, not a checkpoint dictionary"),
    "list": (lambda snn, cnn: [1, 2], "holds a list, not a checkpoint dictionary"),
    "foreign dict": (
        lambda snn, cnn: {"hyper_parameters": {"foo": 1}, "state_dict": {}},
        "no 'pytorch-lightning_version' entry",
    ),
    "hparams not a dict": (
        lambda snn, cnn: {
            "pytorch-lightning_version": "2.6",
            "hyper_parameters": 5,
            "state_dict": {},
        },
        "'hyper_parameters' is not a dictionary but int",
    ),
    "siamese extra hparam": (
        lambda snn, cnn: _edited(snn, _with_extra_hparam),
        "does not fit a SiameseModule: ",
    ),
    "classifier extra hparam": (
        lambda snn, cnn: _edited(cnn, _with_extra_hparam),
        "does not fit a ClassifierModule: ",
    ),
    "threshold removed": (
        lambda snn, cnn: _edited(snn, _without_threshold),
        'Missing key(s) in state_dict: "threshold"',
    ),
}


@pytest.fixture
def image(tmp_path) -> Path:
    path = tmp_path / "signature.png"
    draw_signature(1, 1).save(path)
    return path


def _cli_error(capsys, argv: list[Any]) -> str:
    """stderr of a `sigid` command that must fail with one clean line."""
    assert main([str(a) for a in argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"sigid {argv[0]}: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("case", list(CASES))
def test_torch_files_that_are_not_sigid_checkpoints(
    case, siamese_ckpt, cnn_ckpt, tmp_path, image, capsys
):
    contents, reason = CASES[case]
    path = tmp_path / "foreign.ckpt"
    torch.save(contents(siamese_ckpt, cnn_ckpt), path)
    with pytest.raises(ValueError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: not a sigid checkpoint (") and reason in message
    assert "\n" not in message and message.endswith(")")
    err = _cli_error(capsys, ["verify", image, image, "--ckpt", path])
    assert f"{path}: not a sigid checkpoint (" in err and reason in err


def test_an_empty_checkpoint_file_says_so(tmp_path, image, capsys):
    path = tmp_path / "empty.ckpt"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.ckpt: not a sigid checkpoint \(empty file"):
        load_checkpoint(path)
    err = _cli_error(capsys, ["verify", image, image, "--ckpt", path])
    assert f"{path}: not a sigid checkpoint (empty file, 0 bytes)" in err


def test_a_checkpoint_with_damaged_weights_is_refused_not_scored(
    siamese_ckpt, tmp_path, image, capsys
):
    # flipped bytes inside a weight tensor: torch.load would read them as other weights
    content = bytearray(siamese_ckpt.read_bytes())
    with zipfile.ZipFile(siamese_ckpt) as archive:
        info = max(archive.infolist(), key=lambda i: i.file_size)  # the largest tensor
    names, extra = struct.unpack_from("<HH", content, info.header_offset + 26)  # local header
    start = info.header_offset + 30 + names + extra
    content[start + 16 : start + 48] = bytes(b ^ 0x5A for b in content[start + 16 : start + 48])
    path = tmp_path / "flipped.ckpt"
    path.write_bytes(bytes(content))
    reason = f"damaged file: {info.filename} fails its CRC check"
    with pytest.raises(ValueError, match=re.escape(f"{path}: not a sigid checkpoint ({reason})")):
        load_checkpoint(path)
    assert reason in _cli_error(capsys, ["verify", image, image, "--ckpt", path])


def test_load_checkpoint_takes_a_run_folder_as_the_other_entry_points_do(siamese_ckpt, tmp_path):
    run = siamese_ckpt.parent.parent  # the fixture's run folder
    assert type(load_checkpoint(run)).__name__ == "SiameseModule"
    with pytest.raises(ValueError, match=re.escape("a folder that holds no checkpoints/best.ckpt")):
        load_checkpoint(tmp_path)


def test_a_folder_without_a_run_checkpoint_says_so(tmp_path, image, capsys):
    """A folder given as a checkpoint is taken as a run folder; without its best.ckpt, that is
    what the error says (not "is a directory")."""
    folder = tmp_path / "run"
    (folder / "checkpoints").mkdir(parents=True)
    message = f"{folder}: a folder that holds no checkpoints/best.ckpt"
    for load in (Verifier.from_checkpoint, Identifier.from_checkpoint):
        with pytest.raises(ValueError, match=re.escape(message)):
            load(folder)
    with pytest.raises(ValueError, match=re.escape(message)):
        export(folder, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match=re.escape(message)):  # the protocols' own entry points
        identification(folder, ["data=synthetic"])
    with pytest.raises(ValueError, match=re.escape(message)):
        combine([folder, tmp_path / "other"], tmp_path / "ens", ["data=synthetic"])
    for argv in (
        ["verify", image, image, "--ckpt", folder],
        ["identify", image, "--ckpt", folder],
        ["enroll", "--ckpt", folder, "--gallery", tmp_path / "g.sqlite", "--writer", "w", image],
        ["export", "--ckpt", folder, "--out", tmp_path / "out"],
        ["evaluate", "--protocol", "identification", "--ckpt", folder, "data=synthetic"],
        ["evaluate", "--protocol", "writer-dependent", "--ckpt", folder, "data=synthetic"],
    ):
        err = _cli_error(capsys, argv)
        assert message in err and "is a directory" not in err, err


@pytest.mark.skipif(READS_ANYTHING, reason="file modes do not stop reads here (root, or Windows)")
def test_a_checkpoint_without_read_permission(siamese_ckpt, tmp_path):
    path = tmp_path / "locked.ckpt"
    path.write_bytes(siamese_ckpt.read_bytes())
    path.chmod(0)
    with pytest.raises(ValueError, match=r"locked\.ckpt: cannot read: permission denied"):
        load_checkpoint(path)


def test_the_real_checkpoints_still_load(siamese_ckpt, cnn_ckpt):
    assert type(load_checkpoint(siamese_ckpt)).__name__ == "SiameseModule"
    assert type(load_checkpoint(cnn_ckpt)).__name__ == "ClassifierModule"


def _diverged(checkpoint: dict[str, Any]) -> None:
    """Every float weight of the network NaN, as a diverged run leaves them."""
    for key, tensor in checkpoint["state_dict"].items():
        if key.startswith("net.") and tensor.is_floating_point():
            checkpoint["state_dict"][key] = tensor * float("nan")


def _saved(checkpoint: dict[str, Any], path: Path) -> Path:
    torch.save(checkpoint, path)
    return path


def test_a_diverged_checkpoint_is_refused_not_scored(siamese_ckpt, cnn_ckpt, tmp_path, capsys):
    """NaN weights used to score NaN ("similarity nan < threshold", exit 0) and to enroll a
    gallery that could not be loaded again."""
    image = tmp_path / "signature.png"
    draw_signature(1, 1).save(image)
    snn = _saved(_edited(siamese_ckpt, _diverged), tmp_path / "snn-nan.ckpt")
    cnn = _saved(_edited(cnn_ckpt, _diverged), tmp_path / "cnn-nan.ckpt")
    reason = "the network gives NaN or infinite values (damaged or diverged weights?)"
    with pytest.raises(ValueError, match=re.escape(f"{snn.name}: {reason}")):
        Verifier.from_checkpoint(snn).verify(image, image)
    with pytest.raises(ValueError, match=re.escape(f"{cnn.name}: {reason}")):
        Identifier.from_checkpoint(cnn).identify(image)
    gallery = tmp_path / "people.sqlite"
    for argv, ckpt in (
        (["verify", image, image, "--ckpt", snn], snn),
        (["identify", image, "--ckpt", cnn], cnn),
        (["enroll", "--gallery", gallery, "--writer", "ann", image, "--ckpt", snn], snn),
    ):
        assert f"{ckpt.resolve()}: {reason}" in _cli_error(capsys, argv)
    assert not gallery.exists()


# stored value -> the reason given (the hyper-parameters or buffers as a damaged file holds them)
STORED: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "threshold 5": (
        lambda c: c["state_dict"]["threshold"].fill_(5.0),
        "stored threshold 5.0 is not in [0, 1]",
    ),
    "threshold nan": (
        lambda c: c["state_dict"]["threshold"].fill_(float("nan")),
        "stored threshold nan is not in [0, 1]",
    ),
    "genuine distance negative": (
        lambda c: c["state_dict"]["genuine_distance"].fill_(-0.5),
        "stored genuine distance -0.5 is negative",
    ),
    "mode bogus": (
        lambda c: c["hyper_parameters"]["preprocessing"].update(mode="bogus"),
        "stored preprocessing mode 'bogus' is not one of paper, normalized",
    ),
}


@pytest.mark.parametrize("case", list(STORED))
def test_bad_values_stored_in_a_checkpoint_name_the_checkpoint(
    case, siamese_ckpt, tmp_path, image, capsys
):
    """Not "a similarity threshold lies in [0, 1]", which reads as if the user had typed it."""
    change, reason = STORED[case]
    path = _saved(_edited(siamese_ckpt, change), tmp_path / "damaged.ckpt")
    message = f"{path}: damaged checkpoint ({reason})"
    with pytest.raises(ValueError, match=re.escape(message)):
        Verifier.from_checkpoint(path)
    with pytest.raises(ValueError, match=re.escape(message)):
        export(path, tmp_path / "out", formats=["torchscript"])
    assert message in _cli_error(capsys, ["verify", image, image, "--ckpt", path])
    assert not (tmp_path / "out").exists()


def test_a_bad_preprocessing_mode_in_a_classifier_checkpoint(cnn_ckpt, tmp_path, image, capsys):
    change, reason = STORED["mode bogus"]
    path = _saved(_edited(cnn_ckpt, change), tmp_path / "damaged.ckpt")
    message = f"{path}: damaged checkpoint ({reason})"
    with pytest.raises(ValueError, match=re.escape(message)):
        Identifier.from_checkpoint(path)
    assert message in _cli_error(capsys, ["identify", image, "--ckpt", path])


def test_an_empty_checkpoint_path_says_none_was_given(tmp_path):
    """Path("") is the current folder: "`.`: cannot read: is a directory" misleads."""
    for load in (Verifier.from_checkpoint, Identifier.from_checkpoint):
        for path in ("", None):
            with pytest.raises(ValueError, match=r"^no checkpoint path given$"):
                load(path)
    with pytest.raises(ValueError, match=r"^no checkpoint path given$"):
        export("", tmp_path / "out")


class _TouchOnLoad:
    """Unpickles as `Path.touch(marker)`: code that runs while a checkpoint is read, as a
    checkpoint from an untrusted source can hold (pure Python, no shell)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("kind", ["siamese", "classifier"])
def test_a_checkpoint_that_runs_code_when_unpickled_is_refused_and_the_code_never_runs(
    kind, siamese_ckpt, cnn_ckpt, tmp_path, image, capsys
):
    """A real sigid checkpoint with one more entry whose pickle calls a function: reading it
    with ``weights_only=False`` would run that function (here: create a marker file). Every way
    in must refuse it as not a sigid checkpoint, without running it."""
    source = siamese_ckpt if kind == "siamese" else cnn_ckpt
    marker = tmp_path / "code-ran"
    checkpoint = torch.load(source, map_location="cpu", weights_only=True)
    checkpoint["callbacks"] = {"payload": _TouchOnLoad(marker)}
    path = _saved(checkpoint, tmp_path / "trojan.ckpt")
    assert not marker.exists()
    message = f"{path}: not a sigid checkpoint (not a PyTorch checkpoint file)"
    try:
        load_checkpoint(path)
    except Exception as err:  # whatever it is, the marker is checked first
        refusal: Exception | None = err
    else:
        refusal = None
    assert not marker.exists(), f"loading the checkpoint ran the code pickled in it ({refusal!r})"
    assert isinstance(refusal, ValueError) and str(refusal) == message, repr(refusal)
    load = Verifier.from_checkpoint if kind == "siamese" else Identifier.from_checkpoint
    with pytest.raises(ValueError, match=re.escape(message)):
        load(path)
    command = ["verify", image, image] if kind == "siamese" else ["identify", image]
    assert message in _cli_error(capsys, [*command, "--ckpt", path])
    assert not marker.exists(), "an entry point ran the code pickled in the checkpoint"
    # the payload does run when the file is unpickled without weights_only: the test has teeth
    torch.load(path, map_location="cpu", weights_only=False)
    assert marker.exists()
