"""CPU speed by default: the CPU trainer's precision follows the CPU (bf16-mixed with native
bfloat16, 32-true without, either way on request), conv networks train in channels_last, and a
checkpoint trained so serves the Verifier, the Identifier and export as any other."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import ClassVar

import lightning as L
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module
from lightning.pytorch.plugins.precision import MixedPrecision
from runs import QUIET, SMALL, SMALL_NET

import sigid
from sigid.inference.export import export
from sigid.inference.identifier import Identifier
from sigid.inference.verifier import Verifier
from sigid.tasks.build import build_datamodule, build_module
from sigid.training import precision
from sigid.training.precision import BF16_MIXED, FP32, default_precision, native_bf16
from sigid.training.run import build_trainer

CPUINFO = Path("/proc/cpuinfo")
# The Features line of an AWS Graviton3 (Neoverse V1), which has bfloat16.
GRAVITON3 = (
    "processor\t: 0\nBogoMIPS\t: 2100.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 "
    "atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc dcpop sha3 sm3 sm4 asimddp sha512 sve "
    "asimdfhm dit uscat ilrcpc flagm ssbs paca pacg dcpodp svei8mm svebf16 i8mm bf16 dgh rng\n"
    "CPU implementer\t: 0x41\n"
)


def _this_cpu() -> str:
    if not CPUINFO.is_file():
        pytest.skip("no /proc/cpuinfo on this system")
    return CPUINFO.read_text()


def _without_bf16(cpuinfo: str) -> str:
    """`cpuinfo` as a CPU of the same kind without native bfloat16 would list it."""
    return re.sub(r"[ \t](avx512_bf16|amx_bf16|bf16)(?=\s)", "", cpuinfo)


def _with_bf16(cpuinfo: str) -> str:
    """`cpuinfo` as a CPU of the same kind with avx512_bf16 would list it."""
    return re.sub(r"^(flags\s*:.*)$", r"\1 avx512_bf16", _without_bf16(cpuinfo), flags=re.M)


def test_a_cpu_with_native_bf16_trains_in_bf16_mixed_and_one_without_in_fp32():
    here = _this_cpu()
    assert default_precision(_with_bf16(here)) == BF16_MIXED
    assert default_precision(_without_bf16(here)) == FP32
    assert default_precision(GRAVITON3) == BF16_MIXED  # ARM lists it as "bf16" in Features
    assert default_precision(_without_bf16(GRAVITON3)) == FP32
    flags = set(re.search(r"^flags\s*:(.*)$", here, re.M).group(1).split())
    expected = BF16_MIXED if flags & {"avx512_bf16", "amx_bf16"} else FP32
    assert default_precision() == expected  # this machine's own /proc/cpuinfo


def test_without_cpuinfo_the_cpu_trains_in_fp32(tmp_path, monkeypatch):
    monkeypatch.setattr(precision, "CPUINFO", tmp_path / "no-cpuinfo")
    assert not native_bf16()
    assert default_precision() == FP32


def _trainer_config(tmp_path: Path, *overrides: str):
    with initialize_config_module("sigid.conf", version_base="1.3"):
        return compose("train", overrides=[f"paths.output_dir={tmp_path}", *overrides])


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ([], None),
        (["trainer.precision=32-true"], FP32),
        (["trainer.precision=bf16-mixed"], BF16_MIXED),
    ],
)
def test_the_cpu_trainer_takes_the_cpus_precision_unless_told(tmp_path, overrides, expected):
    cfg = _trainer_config(tmp_path, "logger=none", *overrides)
    trainer, _, _ = build_trainer(cfg)
    expected = expected or default_precision()
    assert cfg.trainer.precision == expected
    assert isinstance(trainer.precision_plugin, MixedPrecision) == (expected == BF16_MIXED)


class Probe(L.Callback):
    """What the first training batch meets: its images' memory format, the format of a conv
    layer's output and weights, and the dtype the layer computes in."""

    seen: ClassVar[dict] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx or Probe.seen:
            return
        images = batch[0] if isinstance(batch, list) else batch["images"]
        conv = [m for m in pl_module.net.modules() if isinstance(m, torch.nn.Conv2d)][1]
        Probe.seen.update(images=images.is_contiguous(memory_format=torch.channels_last))
        Probe.seen.update(weight=conv.weight.stride(1) == 1)  # its 16 inputs vary fastest

        def record(module, inputs, output) -> None:
            Probe.seen.update(output=output.stride(1) == 1, dtype=str(output.dtype))
            handle.remove()

        handle = conv.register_forward_hook(record)


@pytest.mark.parametrize(
    ("overrides", "fast", "dtype"),
    [
        (["trainer.precision=bf16-mixed"], True, "torch.bfloat16"),
        (["trainer.precision=32-true", "model.channels_last=false"], False, "torch.float32"),
    ],
)
def test_channels_last_and_the_precision_reach_the_network_in_a_run(
    tmp_path, overrides, fast, dtype
):
    Probe.seen = {}
    result = sigid.train(
        [
            *SMALL, *SMALL_NET, *QUIET, "model=cnn", *overrides,
            f"+callbacks.probe={{_target_:{__name__}.Probe}}", f"hydra.run.dir={tmp_path}",
        ]
    )  # fmt: skip
    assert Probe.seen == {"images": True, "weight": fast, "output": fast, "dtype": dtype}
    expected = overrides[0].partition("=")[2]
    assert json.loads((result.output_dir / "metrics.json").read_text())["precision"] == expected


def test_image_batches_meet_the_network_in_channels_last_unless_turned_off(tmp_path):
    with initialize_config_module("sigid.conf", version_base="1.3"):
        cfg = compose("train", overrides=[*SMALL, *SMALL_NET, f"data.cache_dir={tmp_path}"])
    datamodule = build_datamodule(cfg)
    datamodule.prepare_data()
    datamodule.setup("fit")
    module = build_module(cfg, datamodule)
    assert module.channels_last and not module.compile_net  # conf/model/cnn.yaml's defaults
    rgb = torch.rand(4, 3, 8, 8)  # 3 channels: a layout change shows in the strides
    images = module.laid_out(rgb)
    assert images.stride(1) == 1 and torch.equal(images, rgb)
    module.channels_last = False
    assert module.laid_out(rgb) is rgb


def test_a_checkpoint_trained_in_bf16_and_channels_last_serves_inference_and_export(tmp_path):
    fast = ["trainer.precision=bf16-mixed", "model.channels_last=true"]
    snn = sigid.train(
        [*SMALL, *QUIET, "model=siamese_conv", "model.dim=16", *fast,
         f"hydra.run.dir={tmp_path / 'snn'}"]
    ).checkpoint  # fmt: skip
    cnn = sigid.train(
        [*SMALL, *SMALL_NET, *QUIET, "model=cnn", "model.hidden=32", *fast,
         f"hydra.run.dir={tmp_path / 'cnn'}"]
    ).checkpoint  # fmt: skip
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 64), dtype=np.uint8)
    verifier = Verifier.from_checkpoint(snn)
    embedded = verifier.embed_prepared(images)
    assert embedded.dtype == np.float32 and np.isfinite(embedded).all()
    assert 0.0 < verifier.threshold < 1.0  # the validation EER threshold, from float32 scores
    identifier = Identifier.from_checkpoint(cnn)
    assert len(identifier.writers) == 6
    for kind, ckpt in (("snn", snn), ("cnn", cnn)):
        written = export(ckpt, tmp_path / "export" / kind)
        assert written["metadata"].is_file() and written["torchscript"].is_file()


class Compiled(L.Callback):
    """Whether the network that trains is compiled."""

    seen: ClassVar[list[bool]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        Compiled.seen.append(pl_module.net._compiled_call_impl is not None)


@pytest.mark.slow
def test_a_compiled_network_trains_and_its_checkpoint_loads_as_any_other(tmp_path):
    try:
        torch.compile(lambda x: x * 2)(torch.ones(2))
    except Exception as err:  # no C compiler, an unsupported platform: inductor's to say
        pytest.skip(f"torch.compile cannot compile here: {err}")
    Compiled.seen = []
    result = sigid.train(
        [
            *SMALL, *SMALL_NET, *QUIET, "model=cnn", "model.hidden=32", "model.compile=true",
            "trainer.max_epochs=1", "trainer.limit_train_batches=1",
            "+trainer.limit_val_batches=1", f"hydra.run.dir={tmp_path}",
            f"+callbacks.compiled={{_target_:{__name__}.Compiled}}",
        ]
    )  # fmt: skip
    assert Compiled.seen == [True]
    weights = torch.load(result.checkpoint, weights_only=True)["state_dict"]
    assert not [name for name in weights if "_orig_mod" in name]  # compiled in place
    assert len(Identifier.from_checkpoint(result.checkpoint).writers) == 6
