"""The CPU trainer's default precision: ``bf16-mixed`` where the CPU computes in bfloat16
natively, ``32-true`` elsewhere.

``conf/trainer/cpu.yaml`` says ``precision: ${sigid.precision:}``, which
`register_precision_resolver` resolves with `default_precision`. Native bfloat16 means the CPU's
own instructions, read from its flags: x86's ``avx512_bf16`` or ``amx_bf16`` (oneDNN runs bf16
convolutions and matrix products on them, about twice the float32 speed), ARM's ``bf16``. A CPU
without them would emulate bfloat16 (torch's ``_is_mkldnn_bf16_supported`` says yes for any
AVX-512 CPU), slower than float32 itself, so it trains in float32. ``trainer.precision=32-true``
or ``=bf16-mixed`` sets it either way; the precision a run used is in its ``metrics.json``,
HPARAMS and ``train.log``.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

RESOLVER = "sigid.precision"
BF16_MIXED, FP32 = "bf16-mixed", "32-true"
# CPU flags (x86 /proc/cpuinfo "flags", aarch64 "Features") of native bfloat16 arithmetic.
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})
CPUINFO = Path("/proc/cpuinfo")


def cpu_flags(cpuinfo: str) -> set[str]:
    """The feature flags of the first CPU listed in `cpuinfo` (the text of ``/proc/cpuinfo``):
    its ``flags`` line on x86, ``Features`` on ARM."""
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("flags", "features"):
            return set(value.split())
    return set()


def native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU computes in bfloat16 natively (`BF16_FLAGS` among its flags). `cpuinfo`:
    the text of ``/proc/cpuinfo``, read when None; False where there is none (not Linux)."""
    if cpuinfo is None:
        try:
            cpuinfo = CPUINFO.read_text(errors="replace")
        except OSError:
            return False
    return bool(cpu_flags(cpuinfo) & BF16_FLAGS)


def default_precision(cpuinfo: str | None = None) -> str:
    """The CPU trainer's precision: `BF16_MIXED` on a CPU with native bfloat16 (`native_bf16`,
    from `cpuinfo`, read when None) where torch's oneDNN can use it, else `FP32`."""
    if not native_bf16(cpuinfo):
        return FP32
    import torch  # here, not at import: the config resolver must not load torch for nothing

    return BF16_MIXED if torch.backends.mkldnn.is_available() else FP32


def register_precision_resolver() -> None:
    """Make ``${sigid.precision:}`` resolve to `default_precision` (once per process)."""
    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, default_precision, use_cache=True)
