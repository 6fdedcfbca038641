"""Start a run from another run's weights (`init_from`): pretrain on many writers, fine-tune on few.

Only the weights move: every tensor whose name and shape match is copied, so the embedding and
conv blocks carry over while heads sized by the number of training writers (or classes) of the
other run keep their fresh initialisation. The optimiser, epoch count and threshold start anew.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning import LightningModule

from sigid.tasks import load_checkpoint

# What a run chooses on its own validation data, not weights: never carried over.
RUN_STATE = frozenset({"threshold", "genuine_distance"})


def same_kind(
    module: LightningModule, path: Path, verb: str, fix: str, options_may_differ: bool = False
) -> LightningModule:
    """The sigid checkpoint at `path`, refused unless it is `module`'s kind of model and its
    images were prepared as `module`'s are (its weights would see other inputs); `verb` and
    `fix` word the refusal for the caller (init_from, resuming). With `options_may_differ` only
    the mode and size must match: the normaliser's robustness options change what the strokes
    look like, not the input's geometry, so fine-tuning adapts to them (resuming never may)."""
    source = load_checkpoint(path)
    if type(source) is not type(module):
        raise ValueError(
            f"{path}: a {type(source).__name__} checkpoint cannot {verb} a "
            f"{type(module).__name__} run"
        )
    prepared, preparing = source.hparams.get("preprocessing"), module.hparams.get("preprocessing")
    if options_may_differ:
        prepared, preparing = _geometry(prepared), _geometry(preparing)
    if prepared != preparing:
        raise ValueError(
            f"{path}: its images were prepared as {prepared}, this run prepares them as "
            f"{preparing}; {fix}"
        )
    return source


def _geometry(settings: Any) -> Any:
    """The mode and size of preprocessing settings (anything else as it is)."""
    if not isinstance(settings, dict):
        return settings
    return {key: settings.get(key) for key in ("mode", "size")}


def init_from(module: LightningModule, path: str | Path) -> dict[str, Any]:
    """Copy the matching weights of the sigid checkpoint at `path` into `module`.

    Refused with a ValueError naming the file when it is another kind of model, when its images
    were prepared in another mode or size (the weights would see other inputs), or when most of
    its weights do not fit (another network). The normaliser's robustness options
    (`sigid.data.preprocess.OPTIONS`) may differ: a run can fine-tune a checkpoint to them.
    Returns what was copied and what was left as initialised, for the run's metrics.json, and
    both preprocessings where they differ.
    """
    path = Path(path)
    source = same_kind(
        module, path, "start", "set data.preprocess to match", options_may_differ=True
    )
    target = module.state_dict()
    theirs = {k: v for k, v in source.state_dict().items() if k not in RUN_STATE}
    fitting = {
        name: tensor
        for name, tensor in theirs.items()
        if name in target and target[name].shape == tensor.shape
    }
    moved, total = (sum(t.numel() for t in d.values()) for d in (fitting, theirs))
    if moved < total / 2:  # e.g. only the similarity head's scalars: another network
        differ = ", ".join(sorted(set(theirs) - set(fitting))[:4])
        raise ValueError(
            f"{path}: only {moved} of its {total} weights fit this model (names or shapes "
            f"differ: {differ}, ...); init_from needs the same network"
        )
    kept = module.load_state_dict(fitting, strict=False).missing_keys
    started = {"checkpoint": str(path.resolve()), "copied": len(fitting), "kept_initialised": kept}
    prepared, preparing = source.hparams.get("preprocessing"), module.hparams.get("preprocessing")
    if prepared != preparing:
        started["preprocessing"] = {"checkpoint": prepared, "run": preparing}
    return started
