"""Export a trained checkpoint for deployment without sigid: TorchScript, ONNX and a JSON sidecar.

A Siamese checkpoint exports its embedding branch (images -> embeddings; pairs are compared
outside the network), a CNN checkpoint its classifier with the softmax, both with a dynamic batch
dimension; the sidecar holds everything else a deployment needs (docs/export.md). Every file is
written under a temporary name and checked against PyTorch before any is renamed, the JSON last,
so a failed export changes nothing.
"""

from __future__ import annotations

import importlib
import json
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch
from lightning import LightningModule
from torch import nn

from sigid.atomic import atomic_path, make_parent
from sigid.inference.inputs import NOT_FINITE, read_preprocessing
from sigid.inference.verifier import stored_genuine_distance, stored_threshold
from sigid.models.siamese import DISTANCE_EPS
from sigid.runs.paths import checkpoint_path
from sigid.tasks import ClassifierModule, SiameseModule, load_checkpoint

FORMATS: tuple[str, ...] = ("torchscript", "onnx")
SUFFIXES = {"torchscript": ".pt", "onnx": ".onnx"}
# Python modules the ONNX export needs, with the pip package that provides each.
ONNX_MODULES = {"onnx": "onnx", "onnxscript": "onnxscript"}
INPUT_NAME = "images"
# Largest max |exported - PyTorch| accepted by the check that follows every export.
TOLERANCE = 1e-4
# Batch sizes of the trace and of the check: different, so that a batch size baked into the
# exported graph shows up as an error. Not 1: torch.export specialises a dimension of size 1.
EXAMPLE_BATCH, CHECK_BATCH = 2, 3
METADATA_VERSION = 1


class MissingExportDependency(ImportError, ValueError):
    """An optional package of the ``export`` extra is not installed.

    Also a ValueError, so that the ``sigid`` command reports it as a one-line error.
    """


class _Embedder(nn.Module):
    """The Siamese embedding branch alone, with the input named as in the exported graphs."""

    def __init__(self, embedding: nn.Module) -> None:
        super().__init__()
        self.embedding = embedding

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.embedding(images)


class _Probabilities(nn.Module):
    """The classifier with its softmax: deployments want probabilities, not logits."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(images), dim=-1)


def check_formats(formats: Sequence[str]) -> tuple[str, ...]:
    """The requested formats, deduplicated in order; ValueError on an unknown or empty request."""
    if isinstance(formats, str):
        formats = [formats]
    chosen = tuple(dict.fromkeys(str(f).lower() for f in formats))
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown or not chosen:
        raise ValueError(f"unknown export format {unknown or list(formats)}; expected {FORMATS}")
    return chosen


def require_onnx() -> None:
    """Fail early, before any file is written, when the ONNX exporter's packages are missing."""
    for module, package in ONNX_MODULES.items():
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise MissingExportDependency(
                f"ONNX export needs the '{package}' package: pip install 'sigid[export]'",
                name=module,
            ) from err


def export(
    checkpoint: str | Path,
    out_dir: str | Path,
    formats: Sequence[str] = FORMATS,
    name: str | None = None,
) -> dict[str, Path]:
    """Export `checkpoint` to `out_dir` (created if missing) as ``<name>.pt`` / ``<name>.onnx``.

    `name` defaults to ``embedding`` (Siamese) or ``classifier`` (CNN). Returns the written paths
    by format, plus ``"metadata"``: the ``<name>.json`` sidecar. Raises ValueError for a missing
    or foreign checkpoint, one without preprocessing settings or whose network gives NaN, an
    unknown format, missing ONNX packages (`MissingExportDependency`), an earlier export's
    ``<name>.*`` file of a format not chosen (it would outlive the new sidecar), or an exported
    model that does not compute what PyTorch does; then nothing is written.
    """
    chosen = check_formats(formats)
    if name is not None and (not name.strip() or Path(name).name != name or name in (".", "..")):
        raise ValueError(f"export name {name!r} must be a plain file name stem")
    if "onnx" in chosen:
        require_onnx()
    checkpoint = checkpoint_path(checkpoint)
    module = load_checkpoint(checkpoint)
    # the check sigid's own tools make: a sidecar without preprocessing is of no use
    preprocessing = read_preprocessing(module, checkpoint)
    net, default_name, metadata = _deployable(module, preprocessing, checkpoint)
    name = name or default_name
    out_dir = Path(out_dir)
    _refuse_stale(out_dir, name, chosen)

    generator = torch.Generator().manual_seed(0)
    height, width = metadata["input"]["shape"][2:]
    channels = metadata["input"]["shape"][1]
    example = torch.rand(EXAMPLE_BATCH, channels, height, width, generator=generator)
    check = torch.rand(CHECK_BATCH, channels, height, width, generator=generator)
    with torch.no_grad():
        expected = net(check)
    if not torch.isfinite(expected).all():  # no export could be checked against it
        raise ValueError(f"{checkpoint}: {NOT_FINITE}")

    created = [folder for folder in (out_dir, *out_dir.parents) if not folder.exists()]
    with _removed_on_error(created):
        make_parent(out_dir / f"{name}.json")  # errors name the folder and why (a file there)
        try:
            return _write(net, (example, check, expected), chosen, out_dir, name, metadata)
        except ValueError as err:  # an exported model that does not compute what PyTorch does
            raise ValueError(f"{checkpoint}: {err}; nothing was written") from err


def _refuse_stale(out_dir: Path, name: str, formats: Sequence[str]) -> None:
    """Refuse an export that would leave an earlier one's file of another format beside the
    new sidecar: a deployment loading ``<name>.onnx`` by name would run the old network."""
    for fmt in FORMATS:
        path = out_dir / f"{name}{SUFFIXES[fmt]}"
        if fmt not in formats and (path.exists() or path.is_symlink()):
            raise ValueError(
                f"{path}: an earlier export's {fmt} file, which this export would leave beside "
                f"the new {name}.json; export {fmt} too, remove the file, or choose another "
                "--out or --name; nothing was written"
            )


@contextmanager
def _removed_on_error(folders: Sequence[Path]) -> Iterator[None]:
    """On an error in the block, remove those of `folders` (deepest first) that are empty: an
    export that fails leaves no folder it made behind."""
    try:
        yield
    except BaseException:
        for folder in folders:
            with suppress(OSError):
                folder.rmdir()
        raise


def _write(
    net: nn.Module,
    images: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    formats: Sequence[str],
    out_dir: Path,
    name: str,
    metadata: dict[str, Any],
) -> dict[str, Path]:
    """Write and check every format, then the sidecar; all of it or, on an error, none of it.

    `images` are the trace's example batch, the check batch and PyTorch's output on the check
    batch. Each file goes to a temporary name; only when all of them are written and checked
    are they renamed, the JSON last (the exit stack renames in reverse order of entry).
    """
    example, check, expected = images
    paths = {fmt: out_dir / f"{name}{SUFFIXES[fmt]}" for fmt in formats}
    json_path = out_dir / f"{name}.json"
    checked: dict[str, float | None] = {}
    with ExitStack() as stack:
        json_tmp = stack.enter_context(atomic_path(json_path))
        temps = {fmt: stack.enter_context(atomic_path(path)) for fmt, path in paths.items()}
        for fmt, tmp in temps.items():
            WRITERS[fmt](net, example, tmp)
            actual = RUNNERS[fmt](tmp, check)
            checked[fmt] = None if actual is None else _max_difference(actual, expected, fmt)
        metadata["files"] = {fmt: path.name for fmt, path in paths.items()}
        metadata["checked_max_abs_difference"] = checked
        if "onnx" in temps:
            metadata["onnx_opset"] = _onnx_opset(temps["onnx"])
        json_tmp.write_text(json.dumps(metadata, indent=2) + "\n")
    return {**paths, "metadata": json_path}


def _deployable(
    module: LightningModule, preprocessing: dict[str, Any], checkpoint: str | Path
) -> tuple[nn.Module, str, dict[str, Any]]:
    """The network to export (eval mode), its default file name and `module`'s metadata, with
    `preprocessing` as `sigid.inference.inputs.read_preprocessing` checked it. `checkpoint` is
    `module`'s file, named in errors."""
    hparams = module.hparams
    size = [int(s) for s in hparams.get("image_size", (128, 128))]
    image = {
        "name": INPUT_NAME,
        "shape": ["batch", int(hparams.get("in_channels", 1)), *size],
        "dtype": "float32",
        "layout": "NCHW",
        "range": [0.0, 1.0],
        "meaning": (
            "grey signature images after sigid.data.preprocess(grey, mode, size) with the "
            "settings of 'preprocessing', as float32 = uint8 / 255"
        ),
    }
    if isinstance(module, SiameseModule):
        head = module.net.head
        if not (torch.isfinite(head.scale).all() and torch.isfinite(head.offset).all()):
            raise ValueError(f"{checkpoint}: {NOT_FINITE}")  # the similarity head's
        net: nn.Module = _Embedder(module.net.embedding)
        default_name, kind = "embedding", "siamese"
        specific: dict[str, Any] = {
            "output": {
                "name": "embeddings",
                "shape": ["batch", int(module.net.embedding.dim)],  # members, branch
                "meaning": "one embedding per image; compare two with 'similarity'",
            },
            "similarity": {
                "formula": "sigmoid(offset - scale * sqrt(sum((e_a - e_b) ** 2) + eps))",
                "scale": float(head.scale.detach()),
                "offset": float(head.offset.detach()),
                "eps": DISTANCE_EPS,
                "threshold": stored_threshold(module, checkpoint),
                "decision": "same writer (genuine) when similarity >= threshold",
                "threshold_source": "equal error rate on the validation writers",
                "genuine_distance": stored_genuine_distance(module, checkpoint),
                "gallery_score": "similarity at (mean distance to a writer's references - "
                "their mean distance to each other + genuine_distance); with one reference, or "
                "genuine_distance null: the mean similarity to the references",
            },
        }
    elif isinstance(module, ClassifierModule):
        num_classes = int(hparams.num_classes)
        net = _Probabilities(module.net)
        default_name, kind = "classifier", "classifier"
        specific = {
            "output": {
                "name": "probabilities",
                "shape": ["batch", num_classes],
                "meaning": "softmax probability of each writer, in the order of 'class_names'",
            },
            "class_names": module.class_names or [str(i) for i in range(num_classes)],
        }
    else:  # pragma: no cover - load_checkpoint builds nothing else
        raise ValueError(f"cannot export a {type(module).__name__}")
    metadata = {
        "format_version": METADATA_VERSION,
        "sigid_version": version("sigid"),
        "kind": kind,
        "input": image,
        "preprocessing": preprocessing,
        **specific,
    }
    return net.eval(), default_name, metadata


@contextmanager
def _quiet_torchscript() -> Iterator[None]:
    """TorchScript still works on torch 2.14 but warns on every call that it is deprecated."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"`torch\.jit\.\w+` is deprecated", FutureWarning)
        yield


def _write_torchscript(net: nn.Module, example: torch.Tensor, path: Path) -> None:
    # trace, not script: it records what the network computes whatever Python it is written in;
    # the check on another batch size catches a shape frozen into the trace.
    with _quiet_torchscript(), torch.no_grad():
        traced = torch.jit.trace(net, example)
        torch.jit.save(traced, str(path))


def _run_torchscript(path: Path, images: torch.Tensor) -> torch.Tensor:
    with _quiet_torchscript(), torch.no_grad():
        return torch.jit.load(str(path), map_location="cpu")(images)


def _write_onnx(net: nn.Module, example: torch.Tensor, path: Path) -> None:
    output = "embeddings" if isinstance(net, _Embedder) else "probabilities"
    batch = torch.export.Dim("batch")
    with torch.no_grad():
        program = torch.onnx.export(
            net,
            (example,),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=[output],
            dynamic_shapes={INPUT_NAME: {0: batch}},
            verbose=False,
        )
    program.save(str(path), external_data=False)


def _run_onnx(path: Path, images: torch.Tensor) -> torch.Tensor | None:
    """The ONNX model's output through onnxruntime, or None where onnxruntime is not installed."""
    try:
        import onnxruntime
    except ImportError:
        return None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (output,) = session.run(None, {INPUT_NAME: images.numpy()})
    return torch.from_numpy(output)


def _max_difference(actual: torch.Tensor, expected: torch.Tensor, fmt: str) -> float:
    """Max |actual - expected|; ValueError where the export does not compute what PyTorch does."""
    if actual.shape != expected.shape:
        raise ValueError(
            f"the {fmt} export gives shape {tuple(actual.shape)}, not {tuple(expected.shape)}"
        )
    difference = float((actual - expected).abs().max())
    if not difference <= TOLERANCE:
        raise ValueError(f"the {fmt} export differs from PyTorch by {difference:.3g} > {TOLERANCE}")
    return difference


WRITERS: dict[str, Callable[[nn.Module, torch.Tensor, Path], None]] = {
    "torchscript": _write_torchscript,
    "onnx": _write_onnx,
}
RUNNERS: dict[str, Callable[[Path, torch.Tensor], torch.Tensor | None]] = {
    "torchscript": _run_torchscript,
    "onnx": _run_onnx,
}


def _onnx_opset(path: Path) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next(int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx"))
