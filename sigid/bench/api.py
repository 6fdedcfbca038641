"""`run_bench`: the asked parts of a bench in order, their figures in one dict (the JSON).

train, then loader (its ratio divides by the step train measured), one epoch, inference,
gallery, then peak (which holds the steps' arithmetic rate against the matmul peak). The
training configs are composed from `conf/` for each part, with a temporary folder standing in
for the run folder.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from sigid.bench import epoch, flops, gallery, inference, loader, peak, train_step
from sigid.bench.config import compose_config
from sigid.bench.device import describe_device, resolve_device
from sigid.bench.options import BenchOptions, ordered
from sigid.bench.report import headline
from sigid.bench.workloads import WORKLOADS
from sigid.tasks.build import build_module
from sigid.training.allocator import keep_freed_memory

Progress = Callable[[str], None]


@dataclass
class _Session:
    """What every part reads: the device, the options, the folder standing in for the run
    folder, the figures of the parts run so far, and where progress lines go."""

    device: torch.device
    options: BenchOptions
    output_dir: Path
    result: dict[str, Any]
    progress: Progress

    def config(self, overrides: Sequence[str]) -> DictConfig:
        return compose_config(self.device.type, self.output_dir, overrides)


def run_bench(options: BenchOptions, progress: Progress = lambda line: None) -> dict[str, Any]:
    """Run `options.parts`; `progress` hears a line as each part prepares and each round starts."""
    device = resolve_device(options.device)
    result: dict[str, Any] = {
        "device": describe_device(device),
        "settings": {
            "parts": list(ordered(options.parts)),
            "rounds": options.rounds,
            "steps": options.steps,
            "warmup": options.warmup,
            "gallery_sizes": list(options.gallery_sizes),
            "data": list(options.data),
            "checkpoint": options.checkpoint,
        },
    }
    with tempfile.TemporaryDirectory(prefix="sigid-bench-") as folder:
        session = _Session(device, options, Path(folder), result, progress)
        # process-wide, as in a training run: every contender works with the memory kept
        kept = bool(session.config([]).get("keep_freed_memory")) and keep_freed_memory()
        result["settings"]["keep_freed_memory"] = kept
        for part in ordered(options.parts):
            result[part] = _PARTS[part](session)
    return {**headline(result), **result}


def _train(session: _Session) -> dict[str, Any]:
    options, device = session.options, session.device
    runs, images = {}, {}
    for workload in WORKLOADS:
        session.progress(f"train: building {workload.name}")
        cfg = session.config(workload.overrides)
        runs[workload.name] = train_step.contenders(
            workload, cfg, device, options.warmup, options.steps
        )
        images[workload.name] = workload.images(runs[workload.name]["sigid"].batches[0])
    rates = train_step.measure_train(runs, images, options.rounds, options.steps, session.progress)
    best = train_step.best_settings(device)[1]
    return {
        w.name: {
            "label": w.label,
            "images_per_step": images[w.name],
            "best_settings": best,
            **train_step.summarize(rates[w.name], images[w.name]),
        }
        for w in WORKLOADS
    }


def _loader(session: _Session) -> dict[str, Any]:
    options = session.options
    runs = {}
    for workload in WORKLOADS:
        session.progress(f"loader: preparing {workload.name}'s data (generated on first use)")
        cfg = session.config([*workload.overrides, *options.data])
        runs[workload.name] = loader.LoaderRun(workload, cfg, options.warmup, options.steps)
    rates = loader.measure_loaders(runs, options.rounds, session.progress)
    trained = session.result.get("train", {})
    return {
        w.name: {
            "label": w.label,
            **loader.summarize(
                runs[w.name],
                rates[w.name],
                trained[w.name]["img_s"]["sigid"] if w.name in trained else None,
            ),
        }
        for w in WORKLOADS
    }


def _epoch(session: _Session) -> dict[str, Any]:
    session.progress("epoch: one epoch of cedar_snn (its data generated on first use)")
    folder = session.output_dir / "epoch"
    cfg = epoch.epoch_config(session.device.type, folder, session.options.data)
    return epoch.measure_epoch(cfg, session.device)


def _inference(session: _Session) -> dict[str, Any]:
    options = session.options
    session.progress("inference: loading the checkpoint, generating signatures")
    run = inference.InferenceRun(
        options.checkpoint, session.device, session.output_dir, options.steps
    )
    return inference.measure_inference(run, options.rounds, options.warmup, session.progress)


def _gallery(session: _Session) -> list[dict[str, Any]]:
    shape = gallery.GalleryShape(repeats=session.options.rounds)
    return gallery.measure_galleries(session.options.gallery_sizes, shape, session.progress)


def _peak(session: _Session) -> dict[str, Any]:
    device = session.device
    peaks = peak.matmul_gflops(device, session.options.rounds, session.progress)
    best = "bf16" if "bf16" in peaks else "fp32"  # a CPU without native bf16: fp32 only
    against = {"sigid": "fp32", "plain_fp32": "fp32", "plain_best": best}
    steps: dict[str, Any] = {}
    for workload in WORKLOADS:
        cfg = session.config(workload.overrides)
        net = build_module(cfg, workload.data_shape(cfg)).net
        gflop = flops.step_flops(workload, net, workload.batch(cfg, 0)) / 1e9
        steps[workload.name] = {"gflop_per_step": gflop}
        step_s = session.result.get("train", {}).get(workload.name, {}).get("step_s")
        if step_s is not None:
            gflops = {name: gflop / seconds for name, seconds in step_s.items()}
            steps[workload.name].update(
                gflops=gflops,
                fraction_of_peak={
                    name: rate / peaks[against[name]] for name, rate in gflops.items()
                },
                peak_of=against,
            )
    return {"matmul_side": peak.SIDE[device.type], "matmul_gflops": peaks, "steps": steps}


_PARTS: dict[str, Callable[[_Session], Any]] = {
    "train": _train,
    "loader": _loader,
    "epoch": _epoch,
    "inference": _inference,
    "gallery": _gallery,
    "peak": _peak,
}
