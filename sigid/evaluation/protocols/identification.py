"""Closed-set writer identification: which of the known writers signed each test signature?

The CNN's own test: the per-writer stratified split of genuine signatures the data config
describes (`sigid.data.splits.split_per_writer`), tested exactly as `sigid.evaluate` does, so
these numbers are the run's ``test/acc`` and ``test/acc_top5`` again, with the confusion matrix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sigid.errors import quiet_dependency_noise
from sigid.evaluation.protocols.output import Scalar, write_outputs
from sigid.evaluation.testing import run_test
from sigid.figures import confusion_figure
from sigid.runs.paths import checkpoint_path
from sigid.runs.records import split_record
from sigid.tasks import ClassifierModule, load_checkpoint

# Top-5 accuracy is only informative with more writers than that.
TOP_K = 5


@quiet_dependency_noise()
def identification(
    checkpoint: str | Path, overrides: list[str] | None = None, out: str | Path | None = None
) -> dict[str, Any]:
    """Top-1 (and top-5, with more than 5 writers) accuracy and the confusion matrix (rows: true
    writer, columns: predicted writer, in ``writers`` order) of a CNN checkpoint on its test
    split. With `out`, also ``confusion_matrix.png``, TensorBoard and ``evaluation.json``."""
    checkpoint = checkpoint_path(checkpoint)  # a run folder: its checkpoints/best.ckpt
    module = load_checkpoint(checkpoint)
    if not isinstance(module, ClassifierModule):
        raise ValueError(
            f"{checkpoint}: this is a Siamese checkpoint; the identification protocol needs a "
            "CNN writer-classifier checkpoint (the writer-dependent protocol takes Siamese ones)"
        )
    overrides = list(overrides or [])
    module, tested = run_test(checkpoint, overrides, module=module)
    confusion = module.test_confusion
    writers = list(module.class_names or range(module.hparams.num_classes))
    result: dict[str, Any] = {
        "protocol": "identification",
        "checkpoint": str(Path(checkpoint).resolve()),
        "data": overrides,
        "training_split": str(record) if (record := split_record(checkpoint)) else None,
        "writers": [str(w) for w in writers],
        "test_signatures": int(confusion.sum()),
        "top1": tested["test/acc"],
    }
    if len(writers) > TOP_K:
        result["top5"] = tested["test/acc_top5"]
    result["loss"] = tested["test/loss"]
    result["confusion_matrix"] = confusion.long().tolist()
    scalars = [Scalar(name, result[name]) for name in ("top1", "top5") if name in result]
    figures = [("confusion_matrix", confusion_figure(confusion, result["writers"]))] if out else []
    return write_outputs(result, out, figures=figures, scalars=scalars)
