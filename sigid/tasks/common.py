"""Plain-dict hyperparameters shared by both LightningModules: optimizers, schedulers, checks.

Plain dicts (not Hydra partials) keep a checkpoint's hyperparameters loadable with
``torch.load(weights_only=True)``, the default since torch 2.6, and without any config files.

- optimizer: ``{"name": "adam" | "adamw" | "sgd" | "rmsprop", "lr": 1e-3, ...}``; every other key
  goes to the torch optimizer (weight_decay, momentum, betas, nesterov, ...).
- scheduler: ``None`` or ``{"name": "none" | "cosine" | "step" | "plateau", ...}`` plus the
  Lightning keys ``interval`` ("epoch" | "step"), ``frequency`` and, for plateau, ``monitor``
  (default "val/loss"); every other key goes to the torch scheduler. cosine's ``T_max`` defaults to
  ``trainer.max_epochs`` (``trainer.estimated_stepping_batches`` with ``interval: step``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from lightning import LightningModule
from torch.optim import lr_scheduler
from torchmetrics import Metric

DEFAULT_OPTIMIZER: dict[str, Any] = {"name": "adam", "lr": 1e-3, "weight_decay": 0.0}

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
}
SCHEDULERS = ("none", "cosine", "step", "plateau")
# The checkpoint entry of the best validation value so far (val/acc_best, val/eer_best).
BEST_SO_FAR = "best_so_far"


def to_plain(value: Any) -> Any:
    """Mappings -> dict, lists/tuples (and OmegaConf containers) -> list, recursively.

    Hydra hands over DictConfig/ListConfig; a checkpoint must hold builtins only.
    """
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [to_plain(v) for v in value]
    return value


def check_preprocessing(preprocessing: Mapping[str, Any] | None, image_size: Sequence[int]) -> None:
    """A model trained on one input size must not be fed another at inference."""
    size = (preprocessing or {}).get("size")
    if size is not None and [int(s) for s in size] != [int(s) for s in image_size]:
        raise ValueError(
            f"preprocessing size {list(size)} differs from the network's image_size "
            f"{list(image_size)}"
        )


def check_optimizer(config: Mapping[str, Any]) -> None:
    """Fail at construction, not at the start of fit, on an unknown optimizer name."""
    name = str(config.get("name", "adam")).lower()
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {sorted(OPTIMIZERS)}")


def check_scheduler(config: Mapping[str, Any] | None) -> None:
    name = str((config or {}).get("name") or "none").lower()
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; expected one of {list(SCHEDULERS)}")


def build_optimizer(
    params: Iterable[torch.nn.Parameter], config: Mapping[str, Any]
) -> torch.optim.Optimizer:
    check_optimizer(config)
    kwargs = dict(config)
    name = str(kwargs.pop("name", "adam")).lower()
    return OPTIMIZERS[name](params, **kwargs)


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: Mapping[str, Any] | None, trainer: Any = None
) -> dict[str, Any] | None:
    """A Lightning ``lr_scheduler`` config dict, or None for no scheduler."""
    check_scheduler(config)
    kwargs = dict(config or {})
    name = str(kwargs.pop("name", None) or "none").lower()
    if name == "none":
        return None
    entry: dict[str, Any] = {
        "interval": kwargs.pop("interval", "epoch"),
        "frequency": kwargs.pop("frequency", 1),
    }
    monitor = kwargs.pop("monitor", "val/loss")
    if name == "cosine":
        kwargs.setdefault("T_max", _cosine_length(trainer, entry["interval"]))
        entry["scheduler"] = lr_scheduler.CosineAnnealingLR(optimizer, **kwargs)
    elif name == "step":
        kwargs.setdefault("step_size", 10)
        entry["scheduler"] = lr_scheduler.StepLR(optimizer, **kwargs)
    else:
        entry["scheduler"] = lr_scheduler.ReduceLROnPlateau(optimizer, **kwargs)
        entry["monitor"] = monitor
    return entry


def _cosine_length(trainer: Any, interval: str) -> int:
    """The whole run, in the scheduler's own units."""
    if trainer is not None and interval == "step":
        return int(trainer.estimated_stepping_batches)
    max_epochs = getattr(trainer, "max_epochs", None)
    if not max_epochs or max_epochs < 1:
        raise ValueError("cosine scheduler needs T_max when trainer.max_epochs is unset")
    return int(max_epochs)


def configure(
    module: Any, optimizer: Mapping[str, Any], scheduler: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The body of ``LightningModule.configure_optimizers`` for both tasks."""
    opt = build_optimizer(module.parameters(), optimizer)
    entry = build_scheduler(opt, scheduler, getattr(module, "_trainer", None))
    return {"optimizer": opt} if entry is None else {"optimizer": opt, "lr_scheduler": entry}


def tensorboards(module: Any) -> list[Any]:
    """The SummaryWriters of the module's TensorBoard loggers (none without a trainer)."""
    from lightning.pytorch.loggers import TensorBoardLogger

    if getattr(module, "_trainer", None) is None:
        return []
    return [lg.experiment for lg in module.loggers if isinstance(lg, TensorBoardLogger)]


def best_so_far(best: Metric) -> float | None:
    """A Min/MaxMetric's value for the checkpoint (`BEST_SO_FAR`); None before any epoch."""
    return float(best.compute()) if best.update_called else None


def restart_best(best: Metric, resumed: float | None) -> None:
    """At the start of training: forget the sanity check's validation, and take up a resumed
    run's best value so far (torchmetrics states are not in the checkpoint's state_dict)."""
    best.reset()
    if resumed is not None:
        best.update(torch.tensor(resumed))


class FastPath(LightningModule):
    """How a LightningModule runs under a Trainer, not what it is: `channels_last` puts the
    network and every 4-D image batch in channels_last memory format (oneDNN's and cuDNN's fast
    layout for convolutions), `compile` compiles the network with ``torch.compile``. Both are
    the run's settings (``model.channels_last``, ``model.compile``, set by
    `sigid.tasks.build.build_module`), not hyperparameters: a checkpoint holds the same weights
    either way, and a module loaded from one runs contiguous and eager (Verifier, export).
    """

    channels_last: bool = False
    compile_net: bool = False

    def setup(self, stage: str) -> None:
        """Before the optimizer is built and a checkpoint restored: the network's layout (the
        parameters change in place, so optimizer and checkpoint see the same tensors)."""
        if self.channels_last:
            self.to(memory_format=torch.channels_last)
        if self.compile_net and not getattr(self, "_net_compiled", False):
            self.net.compile()  # in place: the state_dict keeps its names
            self._net_compiled = True

    def laid_out(self, images: torch.Tensor) -> torch.Tensor:
        """An image batch (N, C, H, W) in the network's memory format: channels_last when
        `channels_last` (for grey images, C = 1, the same memory either way), else as it is.
        Called in the steps, not in ``on_after_batch_transfer``, which Lightning warns about
        beside a DataModule."""
        if self.channels_last and images.dim() == 4:
            return images.contiguous(memory_format=torch.channels_last)
        return images
