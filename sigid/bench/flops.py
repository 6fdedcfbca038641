"""The floating-point operations of one training step (forward and backward, not the optimizer),
counted by torch's FlopCounterMode on a copy of the network on the meta device: shapes only,
no arithmetic, so counting costs nothing. Convolutions and matrix products are counted; the
elementwise work (ReLU, pooling, the loss) is not, as in any FLOP count of a network."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from sigid.bench.train_step import to_device
from sigid.bench.workloads import Workload


def step_flops(workload: Workload, net: nn.Module, batch: Any) -> int:
    """FLOPs of `workload`'s training step of `net` on `batch`."""
    meta = torch.device("meta")
    shadow = copy.deepcopy(net).to(meta).train()
    with FlopCounterMode(display=False) as counter:
        workload.loss(shadow, to_device(batch, meta)).backward()
    return int(counter.get_total_flops())
