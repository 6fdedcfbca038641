"""Seconds-long training settings, shared by every test that needs a real trained checkpoint."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch

import sigid


def _reads_anything() -> bool:
    """Whether this process reads a file whose modes forbid it (root with its capabilities;
    Windows, which has no such modes): the permission tests then skip."""
    with tempfile.TemporaryDirectory() as folder:
        locked = Path(folder) / "locked"
        locked.write_text("x")
        locked.chmod(0)
        try:
            locked.read_text()
        except PermissionError:
            return False
        finally:
            locked.chmod(0o600)
    return True


READS_ANYTHING = _reads_anything()


# A small synthetic set (6 writers), 32x64 images, small batches.
SMALL_DATA = [
    "data.synthetic.writers=6",
    "data.synthetic.per_writer=12",
    "data.synthetic.forgeries=4",
    "data.preprocess.size=[32,64]",
    "data.split.val=2",
    "data.split.test=2",
    "data.split.folds=3",
    "data.split.val_writers=1",
    "data.pairs.train=48",
    "data.pairs.val=24",
    "data.pairs.test=24",
    "data.batch_size=16",
]


def cedar_subset_data(root: Any, *overrides: str) -> list[str]:
    """Data overrides for the `cedar_subset` fixture's folder: 3 folds, 2 validation writers,
    24 pairs per split, plus `overrides`."""
    return [
        "data=cedar", f"data.root={root}", "data.split.folds=3", "data.split.val_writers=2",
        "data.pairs.train=24", "data.pairs.val=24", "data.pairs.test=24", *overrides,
    ]  # fmt: skip


SMALL = [*SMALL_DATA, "trainer.max_epochs=2", "+trainer.limit_train_batches=3"]
# Small networks; a test picks the model group (model=cnn, model=siamese_conv, ...).
SMALL_NET = ["model.depth=2", "model.channels=[8,16,16,16,16]"]
# No logger, no test pass, no summary: for fixtures that only need the checkpoint.
QUIET = ["trainer.enable_model_summary=false", "logger=none", "test=false"]


def pair_datamodule(*overrides: str) -> Any:
    """The conv Siamese run's PairDataModule on SMALL_DATA plus `overrides`, set up for fit."""
    from hydra import compose, initialize_config_module

    from sigid.tasks.build import build_datamodule

    with initialize_config_module("sigid.conf", version_base="1.3"):
        cfg = compose("train", overrides=["model=siamese_conv", *SMALL_DATA, *overrides])
    dm = build_datamodule(cfg)
    dm.setup("fit")
    return dm


def sigid_train(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """`sigid-train args` run in `cwd` as a user runs it, with this folder on PYTHONPATH (the
    tests' own callbacks importable as overrides)."""
    exe = Path(sys.executable).parent / "sigid-train"
    path = os.pathsep.join(filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        [str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=900, check=False,
        env={**os.environ, "PYTHONPATH": path},
    )  # fmt: skip


def tiny_checkpoint(folder: Path, *overrides: str) -> Path:
    """Train a tiny model into `folder` and return its best checkpoint."""
    result = sigid.train([*SMALL, *SMALL_NET, *QUIET, *overrides, f"hydra.run.dir={folder}"])
    assert result.checkpoint is not None and result.checkpoint.is_file()
    return result.checkpoint


class InterruptAt(L.Callback):
    """Ctrl-C as the terminal delivers it (or `SIGTERM`, as a scheduler stops a job), at the
    start of `epoch`: a run cut short after its earlier epochs were checkpointed (a callback, so
    `sigid-train` takes it as an override)."""

    def __init__(self, epoch: int, sigterm: bool = False) -> None:
        self.epoch = epoch
        self.sigterm = sigterm

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch != self.epoch:
            return
        if self.sigterm:  # Lightning's handler takes it from here
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise KeyboardInterrupt


def digest(tensor: torch.Tensor) -> str:
    """A tensor's dtype, shape and exact bytes, hashed: equal only for bit-identical values."""
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    data = flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""
    return hashlib.sha256(f"{flat.dtype}{tuple(tensor.shape)}".encode() + data).hexdigest()


def training_state(
    weights: Mapping[str, torch.Tensor], optimizers: list[Mapping[str, Any]]
) -> dict[str, Any]:
    """Weights and optimizer states (``state_dict()``s) as digests: the per-parameter Adam
    moments (``exp_avg``, ``exp_avg_sq``) and step counts, for comparing a live trainer with a
    checkpoint file."""
    states = []
    for optimizer in optimizers:
        states.append(
            {
                str(index): {
                    key: float(value) if key == "step" else digest(value)
                    for key, value in state.items()
                    if isinstance(value, torch.Tensor)
                }
                for index, state in optimizer["state"].items()
            }
        )
    return {"weights": {k: digest(v) for k, v in weights.items()}, "optimizers": states}


class Observe(L.Callback):
    """Writes to `path` (JSON), at the start of training, what the trainer starts from as this
    process sees it: ``global_step``, ``current_epoch`` and the `training_state` of the module
    and its optimizers (a callback, so `sigid-train` takes it as an override)."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        seen = training_state(pl_module.state_dict(), [o.state_dict() for o in trainer.optimizers])
        seen |= {"global_step": trainer.global_step, "current_epoch": trainer.current_epoch}
        self.path.write_text(json.dumps(seen, indent=1))


class PairLog(L.Callback):
    """Writes ``<folder>/pairs-rank<R>.json`` when fitting ends: what this process trained and
    validated on, by its images' indices among the split's (a pair batch's ``sample``): each
    training batch's sorted indices, epoch by epoch, and the first validation epoch's pairs as
    [a, b] (a callback, so `sigid-train` takes it as an override; each DDP rank writes its own)."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)
        self.train: dict[int, list[list[int]]] = {}
        self.val: dict[int, list[list[int]]] = {}

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self.train.setdefault(trainer.current_epoch, []).append(sorted(batch["sample"].tolist()))

    def on_validation_batch_start(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        sample = batch["sample"]
        pairs = torch.stack([sample[batch["left"]], sample[batch["right"]]], dim=1)
        self.val.setdefault(trainer.current_epoch, []).extend(pairs.tolist())

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        seen = {"rank": trainer.global_rank, "world_size": trainer.world_size}
        seen |= {"train": self.train, "val": self.val[min(self.val)]}
        (self.folder / f"pairs-rank{trainer.global_rank}.json").write_text(json.dumps(seen))


# `sigid bench --data` for its loader and epoch parts: a small synthetic set (7 writers x
# (12 genuine + 4 forgeries)), generated into the session's cache, and few validation and test
# pairs.
BENCH_DATA = [
    "--data",
    "data.synthetic.writers=7",
    "data.synthetic.per_writer=12",
    "data.synthetic.forgeries=4",
    "data.pairs.val=40",
    "data.pairs.test=40",
]


def sigid_cli(capsys: Any, *argv: object) -> tuple[int, str, str]:
    """`sigid ARGV` (each taken as a string) in this process: exit code, and what it printed to
    stdout and stderr (through pytest's `capsys`)."""
    from sigid.cli import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def bench_cli(*argv: str) -> tuple[int, str, str]:
    """`sigid bench ARGV` in this process: exit code, stdout, stderr."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from sigid.cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["bench", *argv])
    return code, out.getvalue(), err.getvalue()


def positive(value: object) -> bool:
    """A finite float above 0 (a measured figure)."""
    import math

    return isinstance(value, float) and math.isfinite(value) and value > 0


def given_embeddings_verifier(dim: int):
    """An untrained pixel model whose "images" are their own `dim`-d embeddings (the bench's
    `GivenEmbeddings`): similarity = sigmoid(2.5 - 1.3 distance), typical genuine distance 1."""
    from sigid.bench.gallery import GivenEmbeddings
    from sigid.tasks import SiameseModule

    module = SiameseModule(
        preprocessing={"mode": "normalized", "size": [8, 8]},
        embedding="pixel", image_size=[8, 8], dim=dim, head={"scale": 1.3, "offset": 2.5},
    )  # fmt: skip
    module.genuine_distance.fill_(1.0)
    return GivenEmbeddings(module)


def page_faults_of_reuse(megabytes: int = 64, times: int = 10) -> int:
    """Minor page faults of allocating, touching and freeing a `megabytes` buffer `times` times
    in this process: about one per 4 KiB page each time where freed memory goes back to the
    system, about none after the first time where malloc keeps it."""
    import resource

    # torch's buffers, as a training step's (numpy asks for huge pages, which fault less)
    torch.ones(megabytes << 20, dtype=torch.uint8)  # the first allocation faults in any case
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(times):
        torch.ones(megabytes << 20, dtype=torch.uint8)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


class PageFaultLog(L.Callback):
    """Writes `page_faults_of_reuse()` to ``<folder>/page-faults.txt`` when fitting ends, in the
    training process (a callback, so `sigid-train` takes it as an override)."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        (self.folder / "page-faults.txt").write_text(str(page_faults_of_reuse()))
