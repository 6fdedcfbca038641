"""sigid's training step against the same network in plain PyTorch loops, in alternating rounds.

Three contenders per workload, each fed the same few random batches already on the device, so
that only the step is timed (forward, loss, backward, optimizer step):

- sigid: the LightningModule that `sigid.tasks.build.build_module` makes from the config,
  fitted by the Trainer that `sigid.training.run.build_trainer` makes from it, with its
  precision, memory format and `deterministic` setting as they are;
- plain_fp32: a copy of the module's network and its optimizer in a bare loop, float32,
  contiguous tensors, torch's default switches;
- plain_best: the same loop with the fastest settings for the device (`BEST`): channels_last
  tensors, bf16 autocast, and on cuda cudnn.benchmark.

Each run of a contender times `steps` steps after `warmup` untimed ones: for sigid from the end
of the last warm-up batch to the end of the last timed one (Callback hooks), so Lightning's loop
between batches counts, as it does in training.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning_utilities.core.apply_func import apply_to_collection
from omegaconf import DictConfig, open_dict
from torch.utils.data import DataLoader, Dataset

from sigid.bench.timing import global_torch_settings, median, now, quiet_fit, rotated
from sigid.bench.workloads import Workload
from sigid.tasks.build import build_module
from sigid.tasks.common import build_optimizer
from sigid.training.precision import BF16_MIXED, default_precision
from sigid.training.run import build_trainer

CONTENDERS = ("sigid", "plain_fp32", "plain_best")
# Distinct random batches each contender cycles through.
BATCHES = 4


def best_settings(device: torch.device, cpuinfo: str | None = None) -> tuple[torch.dtype, str]:
    """The autocast dtype of `plain_best` on `device`, and the settings in words. A CPU that
    sigid's trainer keeps in float32 (`default_precision` of `cpuinfo`, read when None: no
    native bfloat16) would emulate bfloat16, far slower than float32: there the best is float32."""
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16, "channels_last + fp16 autocast + cudnn.benchmark"
    if device.type == "cpu" and default_precision(cpuinfo) != BF16_MIXED:
        return torch.float32, "channels_last, float32 (no native bf16 on this CPU)"
    extra = " + cudnn.benchmark" if device.type == "cuda" else ""
    return torch.bfloat16, f"channels_last + bf16 autocast{extra}"


def to_device(batch: Any, device: torch.device, channels_last: bool = False) -> Any:
    """`batch`'s tensors on `device`; with `channels_last`, its image tensors (4-D) in that
    memory format."""

    def move(tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.to(device)
        if channels_last and tensor.dim() == 4:
            return tensor.contiguous(memory_format=torch.channels_last)
        return tensor

    return apply_to_collection(batch, torch.Tensor, move)


class _Cycle(Dataset):
    """`length` items cycling through `batches` (a DataLoader with batch_size=None yields them
    as they are)."""

    def __init__(self, batches: Sequence[Any], length: int) -> None:
        self.batches, self.length = list(batches), length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Any:
        return self.batches[index % len(self.batches)]


class _StepClock(Callback):
    """Seconds of the training steps after the first `warmup`."""

    def __init__(self, device: torch.device, warmup: int, steps: int) -> None:
        self.device, self.warmup, self.last = device, warmup, warmup + steps - 1
        self.start = self.seconds = float("nan")

    def on_train_batch_start(self, trainer, module, batch, batch_idx: int) -> None:
        if batch_idx == 0 and self.warmup == 0:
            self.start = now(self.device)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx: int) -> None:
        if batch_idx == self.warmup - 1:
            self.start = now(self.device)
        elif batch_idx == self.last:
            self.seconds = now(self.device) - self.start


# A fit of the bench's steps: its loader has no workers and no validation.
QUIET = (r".*does not have many workers", r".*`validation_step` but")


class SigidStep:
    """sigid's step: the config's LightningModule, fitted by the config's Trainer."""

    def __init__(
        self,
        workload: Workload,
        cfg: DictConfig,
        batches: Sequence[Any],
        device: torch.device,
        warmup: int,
        steps: int,
    ) -> None:
        self.cfg = copy.deepcopy(cfg)
        with open_dict(self.cfg):
            self.cfg.trainer.max_steps = warmup + steps
            self.cfg.trainer.max_epochs = 1
        self.module: L.LightningModule = build_module(self.cfg, workload.data_shape(self.cfg))
        self.batches, self.device = batches, device
        self.warmup, self.steps = warmup, steps

    def run(self) -> float:
        """Seconds of `steps` steps, in a fresh Trainer's fit."""
        clock = _StepClock(self.device, self.warmup, self.steps)
        loader = DataLoader(_Cycle(self.batches, self.warmup + self.steps), batch_size=None)
        with global_torch_settings(), quiet_fit(*QUIET):
            trainer, _, _ = build_trainer(self.cfg)
            trainer.callbacks.append(clock)
            trainer.fit(self.module, train_dataloaders=loader)
        if not math.isfinite(clock.seconds):
            raise RuntimeError(f"the fit stopped before step {self.warmup + self.steps}")
        return clock.seconds


class PlainStep:
    """The module's network and optimizer, copied, in a bare loop; `fast`: `best_settings`."""

    def __init__(
        self,
        workload: Workload,
        module: L.LightningModule,
        batches: Sequence[Any],
        device: torch.device,
        warmup: int,
        steps: int,
        fast: bool,
    ) -> None:
        self.net = copy.deepcopy(module.net).to(device).train()
        if fast:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.optimizer = build_optimizer(self.net.parameters(), module.hparams.optimizer)
        self.batches = [to_device(b, device, channels_last=fast) for b in batches]
        self.loss: Callable[..., torch.Tensor] = workload.loss
        self.device, self.warmup, self.steps, self.fast = device, warmup, steps, fast
        self.dtype = best_settings(device)[0]

    def run(self) -> float:
        """Seconds of `steps` steps."""
        with global_torch_settings():
            torch.backends.cudnn.benchmark = self.fast
            start = float("nan")
            for index in range(self.warmup + self.steps):
                if index == self.warmup:
                    start = now(self.device)
                batch = self.batches[index % len(self.batches)]
                autocast = self.fast and self.dtype != torch.float32
                with torch.autocast(self.device.type, dtype=self.dtype, enabled=autocast):
                    loss = self.loss(self.net, batch)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
            return now(self.device) - start


def contenders(
    workload: Workload, cfg: DictConfig, device: torch.device, warmup: int, steps: int
) -> dict[str, SigidStep | PlainStep]:
    """The three contenders of `workload`, on the same random batches."""
    batches = [to_device(workload.batch(cfg, seed), device) for seed in range(BATCHES)]
    sigid = SigidStep(workload, cfg, batches, device, warmup, steps)
    plain = {
        name: PlainStep(workload, sigid.module, batches, device, warmup, steps, fast)
        for name, fast in (("plain_fp32", False), ("plain_best", True))
    }
    return {"sigid": sigid, **plain}


def measure_train(
    runs: dict[str, dict[str, SigidStep | PlainStep]],
    images: dict[str, int],
    rounds: int,
    steps: int,
    progress: Callable[[str], None],
) -> dict[str, dict[str, list[float]]]:
    """Images per second of every contender of every workload in `runs`, per round; within a
    round the workloads and their contenders take turns, in an order rotated each round."""
    rates = {name: {c: [] for c in CONTENDERS} for name in runs}
    for turn in range(rounds):
        progress(f"train: round {turn + 1}/{rounds}")
        for name in rotated(list(runs), turn):
            for contender in rotated(CONTENDERS, turn):
                seconds = runs[name][contender].run()
                rates[name][contender].append(images[name] * steps / seconds)
    return rates


def summarize(rates: dict[str, list[float]], images: int) -> dict[str, Any]:
    """A workload's medians: images per second, seconds per step, and sigid's ratios."""
    img_s = {name: median(values) for name, values in rates.items()}
    return {
        "img_s": img_s,
        "step_s": {name: images / value for name, value in img_s.items()},
        "sigid_over_best": img_s["sigid"] / img_s["plain_best"],
        "sigid_over_plain_fp32": img_s["sigid"] / img_s["plain_fp32"],
        "rounds_img_s": rates,
    }
