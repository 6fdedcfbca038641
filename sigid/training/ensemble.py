"""Separately trained Siamese runs of one split, combined into one checkpoint (`sigid ensemble`).

The members' embeddings become one `EnsembleEmbedding`, so the Verifier, galleries and export
use the result like any checkpoint (why: docs/design.md, "Ensembles"). Nothing is retrained: the
similarity head is refit on the validation pairs (a two-parameter logistic fit of the ensemble's
distance), and the threshold and typical genuine distance are chosen on them as training does.
Every member must have been trained on the same writers (each run's ``split.json``), and the
data the ensemble is validated and tested on must be that split.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from sigid.atomic import atomic_path, check_folder, write_json
from sigid.errors import os_reason, quiet_dependency_noise
from sigid.evaluation.testing import evaluation_datamodule, evaluation_trainer
from sigid.models.siamese import EnsembleEmbedding, FusedEmbedding, SimilarityHead
from sigid.runs.paths import checkpoint_path, run_folder
from sigid.runs.records import SPLIT_FILE, read_manifest
from sigid.tasks import SiameseModule, load_checkpoint
from sigid.training.callbacks import tensor_to_float

# SiameseModule arguments that shape the training, not the network (everything else must agree).
TRAINING_KEYS = (
    "preprocessing", "optimizer", "scheduler", "loss", "margin", "pair_weighting", "writer_loss",
    "num_writers", "branch_writers", "members", "hardness", "writer_head", "writer_scale",
    "writer_margin",
)  # fmt: skip
SPLITS = ("train", "val", "test")


@dataclass
class Member:
    """One run to combine: its checkpoint, the trained module, and the writers of its split."""

    checkpoint: Path
    module: SiameseModule
    writers: dict[str, list[str]]

    @property
    def network(self) -> dict[str, Any]:
        return {k: v for k, v in self.module.hparams.items() if k not in TRAINING_KEYS}

    @property
    def embeddings(self) -> list[nn.Module]:
        embedding = self.module.net.embedding
        return list(embedding.members) if isinstance(embedding, EnsembleEmbedding) else [embedding]


def load_member(run: str | Path) -> Member:
    """A training run folder (its ``checkpoints/best.ckpt``), or a checkpoint inside one."""
    checkpoint = checkpoint_path(run)  # a run folder: its checkpoints/best.ckpt
    if not checkpoint.is_file():
        raise ValueError(f"{checkpoint}: checkpoint not found (give a training run folder)")
    folder = run_folder(checkpoint)
    module = load_checkpoint(checkpoint)
    if not isinstance(module, SiameseModule):
        raise ValueError(f"{checkpoint}: a CNN classifier; an ensemble combines Siamese runs")
    if isinstance(module.net.embedding, FusedEmbedding):
        raise ValueError(f"{checkpoint}: has a writer branch; combining those is not supported")
    split_file = folder / SPLIT_FILE
    try:
        split = read_split(split_file)
    except (OSError, ValueError) as err:
        why = f"{split_file}: {os_reason(err).lower()}" if isinstance(err, OSError) else str(err)
        raise ValueError(
            f"{why}; an ensemble needs each run's split.json, to check that the members were "
            "trained on the same writers"
        ) from err
    return Member(checkpoint, module, split)


def read_split(path: Path) -> dict[str, list[str]]:
    """The writers of each split in a run's ``split.json`` (parsed as evaluation parses it)."""
    data = read_manifest(path)
    writers = {}
    for name in SPLITS:
        entry = data.get(name)
        found = entry.get("writers") if isinstance(entry, dict) else None
        if not isinstance(found, list):
            raise ValueError(f"{path}: no writers recorded for the {name!r} split")
        writers[name] = sorted(map(str, found))
    return writers


def check_members(members: Sequence[Member]) -> None:
    """Refuse members that could not be one network or were trained on different writers."""
    if len(members) < 2:
        raise ValueError(f"an ensemble needs at least 2 runs, got {len(members)}")
    seen: set[Path] = set()
    for member in members:
        if member.checkpoint.resolve() in seen:
            raise ValueError(f"{member.checkpoint}: given twice; an ensemble needs distinct runs")
        seen.add(member.checkpoint.resolve())
    first = members[0]
    for other in members[1:]:
        where = f"{other.checkpoint} and {first.checkpoint}"
        if other.module.preprocessing != first.module.preprocessing:
            raise ValueError(f"{where} prepare their images differently (preprocessing)")
        keys = sorted(set(other.network) | set(first.network))
        differ = [k for k in keys if other.network.get(k) != first.network.get(k)]
        if differ:
            raise ValueError(f"{where} have different networks ({', '.join(differ)})")
        name = differing_split(other.writers, first.writers)
        if name is not None:
            raise ValueError(
                f"{where} were trained on different splits (their {name} writers differ); "
                "combine the runs of one fold"
            )


def differing_split(a: dict[str, list[str]], b: dict[str, list[str]]) -> str | None:
    """The first split whose writers differ between two splits' writer lists, else None."""
    return next((name for name in SPLITS if sorted(a[name]) != sorted(b[name])), None)


def build_ensemble(members: Sequence[Member]) -> SiameseModule:
    """One SiameseModule holding every member's embedding (members' own ensembles flattened)."""
    hparams = members[0].module.hparams
    embeddings = [e for m in members for e in m.embeddings]
    module = SiameseModule(
        preprocessing=hparams.preprocessing,
        optimizer=hparams.optimizer,
        scheduler=hparams.scheduler,
        loss=hparams.loss,
        margin=hparams.margin,
        pair_weighting=hparams.pair_weighting,
        members=len(embeddings),
        **members[0].network,
    )
    for target, source in zip(module.net.embedding.members, embeddings, strict=True):
        target.load_state_dict(source.state_dict())
    return module.eval()


def fit_head(head: SimilarityHead, distances: torch.Tensor, targets: torch.Tensor) -> None:
    """Logistic fit of the head, sigmoid(offset - scale * distance), to the pairs' targets."""
    distances, targets = distances.detach().float(), targets.detach().float()
    mid = 0.5 * (distances[targets == 1].mean() + distances[targets == 0].mean())
    with torch.no_grad():  # start with the decision at the midpoint of the two kinds' means
        head.set_parameters(scale=1.0, offset=float(mid))
    parameters = list(head.parameters())
    trainable = [p.requires_grad for p in parameters]  # contrastive runs freeze their head
    optimizer = torch.optim.LBFGS(parameters, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.binary_cross_entropy_with_logits(head.logits(distances), targets)
        loss.backward()
        return loss

    try:
        with torch.enable_grad():
            for parameter in parameters:
                parameter.requires_grad_(True)
            optimizer.step(closure)
    finally:
        for parameter, flag in zip(parameters, trainable, strict=True):
            parameter.requires_grad_(flag)
    if not all(bool(torch.isfinite(p).all()) for p in head.parameters()):
        raise ValueError("the similarity head could not be fit to the validation pairs' distances")


@torch.no_grad()  # not inference_mode: the head is fit to these distances with autograd
def validation_distances(
    module: SiameseModule, dataloader: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    distances, targets = [], []
    for batch in dataloader:
        distances.append(module.net.distance(batch["images"], batch["left"], batch["right"]))
        targets.append(batch["target"])
    return torch.cat(distances).float(), torch.cat(targets).float()


@quiet_dependency_noise()
def combine(
    runs: Sequence[str | Path], out: str | Path, overrides: Sequence[str] | None = None
) -> dict[str, Any]:
    """Combine the runs into ``out`` (a run folder: ``checkpoints/best.ckpt``, ``split.json``,
    ``metrics.json`` with its test metrics, ``ensemble.json``) and return its metrics.

    `overrides` describe the fold's data from the defaults, with its data config (``data=cedar
    data.root=... data.split.fold=F``; unlike `sigid evaluate`, not from the runs' own
    records); the writers they give must be the members' split.
    """
    start = time.perf_counter()
    out = check_folder(out)  # before embedding every validation image
    if (out / "metrics.json").exists() and not (out / "ensemble.json").exists():
        raise ValueError(f"{out}: holds a training run; write the ensemble to another folder")
    members = [load_member(run) for run in runs]
    check_members(members)
    module = build_ensemble(members)
    overrides = list(overrides or [])
    datamodule = evaluation_datamodule(module, overrides)
    datamodule.prepare_data()
    datamodule.setup("fit")
    manifest = datamodule.split_manifest()
    name = differing_split({k: v["writers"] for k, v in manifest.items()}, members[0].writers)
    if name is not None:
        raise ValueError(
            f"the data {overrides} give other {name} writers than the members were trained "
            f"on ({members[0].checkpoint}); pass the overrides of their fold"
        )
    distances, targets = validation_distances(module, datamodule.val_dataloader())
    fit_head(module.net.head, distances, targets)

    trainer = evaluation_trainer()
    validated = trainer.validate(module, datamodule=datamodule, verbose=False)[0]
    tested = trainer.test(module, datamodule=datamodule, verbose=False)[0]
    checkpoint = out / "checkpoints" / "best.ckpt"
    with atomic_path(checkpoint) as temp:
        trainer.save_checkpoint(temp, weights_only=False)  # as training saves; no log line
    head = module.net.head
    summary: dict[str, Any] = {k: float(v) for k, v in sorted(tested.items())}
    summary.update({k: tensor_to_float(v) for k, v in sorted(validated.items())})
    summary.update(
        {
            "members": [str(m.checkpoint) for m in members],
            "embeddings": len(module.net.embedding.members),
            "head": {"scale": float(head.scale.detach()), "offset": float(head.offset.detach())},
            "threshold": float(module.threshold),
            "genuine_distance": float(module.genuine_distance),
            "wall_time_s": round(time.perf_counter() - start, 2),
            "checkpoint": str(checkpoint),
        }
    )
    write_json(out / "split.json", manifest)
    write_json(out / "ensemble.json", {"members": summary["members"], "overrides": overrides})
    write_json(out / "metrics.json", summary)
    write_json(out / "status.json", {"status": "ok"})
    return summary
