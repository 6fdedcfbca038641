"""The device's measured matmul peak: GFLOP/s of one large square matrix product, float32 and
bfloat16, the best the device's BLAS does; what a network's step is held against. A CPU without
native bfloat16 gets float32 only: emulated, one bfloat16 product of this size takes minutes."""

from __future__ import annotations

from collections.abc import Callable

import torch

from sigid.bench.timing import median, timed
from sigid.training.precision import BF16_MIXED, default_precision

# Matrix side: large enough for the BLAS to reach its peak, short enough to time in rounds.
SIDE = {"cpu": 4096, "cuda": 8192}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def matmul_gflops(
    device: torch.device,
    rounds: int,
    progress: Callable[[str], None],
    cpuinfo: str | None = None,
) -> dict[str, float]:
    """Median GFLOP/s over `rounds` of an n x n product per dtype (`DTYPES`; float32 only on a
    CPU that sigid's trainer keeps in float32, `default_precision` of `cpuinfo`), the dtypes
    alternating; one untimed product of each first."""
    n = SIDE[device.type]
    generator = torch.Generator().manual_seed(0)
    native = device.type != "cpu" or default_precision(cpuinfo) == BF16_MIXED
    dtypes = DTYPES if native else {"fp32": torch.float32}
    operands = {
        name: [torch.randn(n, n, generator=generator).to(device, dtype) for _ in range(2)]
        for name, dtype in dtypes.items()
    }
    for a, b in operands.values():
        torch.matmul(a, b)
    rates: dict[str, list[float]] = {name: [] for name in dtypes}
    for turn in range(rounds):
        progress(f"peak: round {turn + 1}/{rounds}")
        for name, (a, b) in operands.items():
            seconds = timed(device, lambda a=a, b=b: torch.matmul(a, b))
            rates[name].append(2 * n**3 / seconds / 1e9)
    return {name: median(values) for name, values in rates.items()}
