"""LightningModule for writer-independent verification with the Siamese network.

Scores are the network's similarity in (0, 1) (higher = same writer); with ``loss="contrastive"``
the head is frozen at 0.5 for d = margin / 2, so both losses give comparable scores. The decision
threshold is the validation EER threshold, recomputed every validation epoch into the
``threshold`` buffer (so every checkpoint holds it) and never tuned on test data; the
``genuine_distance`` buffer keeps that epoch's mean validation genuine distance, for a gallery's
normalised score. ``train/acc`` is at the fixed 0.5: training-mode scores (dropout, batch
statistics) are not on the scale of the eval-mode scores the threshold comes from.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn
from torchmetrics import MeanMetric, MinMetric
from torchmetrics.aggregation import CatMetric
from torchmetrics.classification import BinaryAccuracy

from sigid import metrics
from sigid.data.datamodules import PairDataModule
from sigid.data.pairs import KINDS
from sigid.figures import roc_figure
from sigid.models import build_siamese
from sigid.models.siamese import (
    EnsembleEmbedding,
    FusedEmbedding,
    SimilarityHead,
    WriterProxies,
    distances_of,
)
from sigid.tasks.common import (
    BEST_SO_FAR,
    DEFAULT_OPTIMIZER,
    FastPath,
    best_so_far,
    check_optimizer,
    check_preprocessing,
    check_scheduler,
    configure,
    restart_best,
    tensorboards,
    to_plain,
)

# Pair kind codes of the batches (sigid.data.pairs.KINDS).
LOSSES = ("bce", "contrastive")
PAIR_WEIGHTINGS = ("none", "kind")
WRITER_HEADS = ("linear", "cosine")
# Images sent to the TensorBoard projector at test time, and their thumbnail height.
MAX_PROJECTOR_IMAGES, THUMBNAIL_HEIGHT = 1000, 32


def contrastive_loss(
    distance: torch.Tensor, target: torch.Tensor, margin: float, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Hadsell et al. (2006): y d^2 + (1 - y) max(0, margin - d)^2, averaged over pairs."""
    negative = torch.clamp(margin - distance, min=0.0).pow(2)
    per_pair = target * distance.pow(2) + (1.0 - target) * negative
    return per_pair.mean() if weight is None else (weight * per_pair).sum()


def kind_weights(
    kind: torch.Tensor, logits: torch.Tensor | None = None, hardness: float = 0.0
) -> torch.Tensor:
    """Pair weights summing to 1: half on the positives, half shared equally by the negative
    kinds present, so that the ~10x more random than skilled negatives inside a writer batch
    do not drown the skilled ones.

    With `hardness` > 0 (and the pairs' `logits`), a kind's share goes to its pairs in
    proportion to ``exp(hardness * logit)`` for negatives and ``exp(-hardness * logit)`` for
    positives: soft hard-example mining, the look-alike writers and the best forgeries of a
    batch weighing most; no gradient flows through the weights. 0: equal shares."""
    weight = torch.zeros(kind.shape, dtype=torch.float32, device=kind.device)
    negatives = [k for k in range(1, len(KINDS)) if bool((kind == k).any())]
    hard = hardness > 0 and logits is not None
    for code in range(len(KINDS)):
        mask = kind == code
        if bool(mask.any()):
            share = 0.5 if code == 0 else 0.5 / len(negatives)
            if hard:
                sign = -hardness if code == 0 else hardness
                weight[mask] = share * torch.softmax(sign * logits[mask].detach().float(), 0)
            else:
                weight[mask] = share / int(mask.sum())
    return weight / weight.sum()  # one kind alone (all positives, say) gets all the weight


def _newer_settings(
    hardness: float, writer_head: str, writer_scale: float, writer_margin: float
) -> dict[str, Any]:
    """The training settings added after checkpoints were first written, only where they are
    not at their defaults: a checkpoint trained without them keeps the hyperparameters it had,
    and an old one loads to equal ones."""
    found: dict[str, Any] = {}
    if hardness:
        found["hardness"] = float(hardness)
    if writer_head != "linear":
        found.update(
            writer_head=writer_head,
            writer_scale=float(writer_scale),
            writer_margin=float(writer_margin),
        )
    return found


class SiameseModule(FastPath):
    """Siamese verifier; every constructor argument is a plain builtin saved in the checkpoint,
    so ``SiameseModule.load_from_checkpoint(path)`` works without config files.

    ``**net`` are `sigid.models.build_siamese`'s keyword arguments, flat so that a sweep says
    ``model.embedding=pixel,conv``: ``embedding`` ('pixel' | 'conv'), ``image_size``, ``dim``,
    ``head`` ({scale, offset}), ``members`` (an ensemble) and, for conv, ``depth``, ``channels``,
    ``batch_norm``, ...
    """

    threshold: torch.Tensor
    # What `sigid.tasks.build` reads to build a run: the data it trains on, and whether DDP may
    # split it. Under DDP each rank trains on its share of the epoch's batches and scores its
    # share of the validation and test pairs (`sigid.data.sharding`); the scores are gathered
    # (the CatMetrics below sync on compute), so EER, AUC and the threshold are the full set's.
    datamodule_class = PairDataModule
    distributed = True

    @staticmethod
    def data_settings(datamodule: PairDataModule, settings: Mapping[str, Any]) -> dict:
        """Constructor arguments that come from the data: the training writers that the writer
        loss and the writer branch classify, when they are on."""
        found: dict[str, Any] = {}
        if settings.get("writer_loss", 0) > 0:
            found["num_writers"] = datamodule.writer_classes
        if settings.get("writer_branch"):
            found["branch_writers"] = len(datamodule.train_writers)
        return found

    def __init__(
        self,
        preprocessing: Mapping[str, Any] | None = None,
        optimizer: Mapping[str, Any] | None = None,
        scheduler: Mapping[str, Any] | None = None,
        loss: str = "bce",
        margin: float = 1.0,
        pair_weighting: str = "none",
        writer_loss: float = 0.0,
        num_writers: int = 0,
        branch_writers: int = 0,
        hardness: float = 0.0,
        writer_head: str = "linear",
        writer_scale: float = 16.0,
        writer_margin: float = 0.1,
        **net: Any,
    ) -> None:
        super().__init__()
        net_config = to_plain(net)
        preprocessing = to_plain(preprocessing) if preprocessing is not None else None
        optimizer = to_plain(optimizer) if optimizer is not None else dict(DEFAULT_OPTIMIZER)
        scheduler = to_plain(scheduler) if scheduler is not None else None
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; expected one of {LOSSES}")
        if pair_weighting not in PAIR_WEIGHTINGS:
            raise ValueError(
                f"unknown pair_weighting {pair_weighting!r}; expected one of {PAIR_WEIGHTINGS}"
            )
        if writer_loss < 0 or (writer_loss > 0 and num_writers < 2):
            raise ValueError(
                "writer_loss must be >= 0 and, when > 0, needs num_writers >= 2 (the training "
                f"writers); got writer_loss={writer_loss}, num_writers={num_writers}"
            )
        if margin <= 0:
            raise ValueError(f"margin must be positive, got {margin}")
        if hardness < 0 or (hardness > 0 and pair_weighting != "kind"):
            raise ValueError(
                f"hardness must be >= 0 and, when > 0, needs pair_weighting='kind'; got "
                f"hardness={hardness}, pair_weighting={pair_weighting!r}"
            )
        if hardness > 0 and (int(net.get("members", 1) or 1) > 1 or net.get("writer_branch")):
            raise ValueError("hardness > 0 is for a single embedding (members=1, no writer_branch)")
        if writer_head not in WRITER_HEADS:
            raise ValueError(f"unknown writer_head {writer_head!r}; expected one of {WRITER_HEADS}")
        check_optimizer(optimizer)
        check_scheduler(scheduler)
        check_preprocessing(preprocessing, net_config.get("image_size", (128, 128)))
        self.save_hyperparameters(
            {
                **net_config,
                "preprocessing": preprocessing,
                "optimizer": optimizer,
                "scheduler": scheduler,
                "loss": loss,
                "margin": float(margin),
                "pair_weighting": pair_weighting,
                "writer_loss": float(writer_loss),
                "num_writers": int(num_writers),
                "branch_writers": int(branch_writers),
                **_newer_settings(hardness, writer_head, writer_scale, writer_margin),
            },
            logger=False,
        )
        self.net = build_siamese(**net_config)
        if loss == "contrastive":
            offset = float(self.net.head.offset.detach())
            self.net.head.set_parameters(scale=2.0 * offset / margin, offset=offset)
            self.net.head.requires_grad_(False)
        fused = isinstance(self.net.embedding, FusedEmbedding)
        pair_embedding = self.net.embedding.pair if fused else self.net.embedding

        # Training only: classify the training writers (Hafemann et al.'s writer features) from
        # the pair embedding, so that it separates writers, not only the batch's pairs; an
        # ensemble's members each from their own embedding.
        def classifier(dim: int) -> nn.Module:
            if writer_head == "cosine":
                return WriterProxies(dim, num_writers, writer_scale, writer_margin)
            return nn.Linear(dim, num_writers)

        self.writer_head: nn.Module | None = None
        if writer_loss > 0 and isinstance(pair_embedding, EnsembleEmbedding):
            self.writer_head = nn.ModuleList(classifier(m.dim) for m in pair_embedding.members)
        elif writer_loss > 0:
            self.writer_head = classifier(pair_embedding.dim)
        # Training only, with a writer branch: the pair embedding's own similarity head, and,
        # unless the branch is pretrained (then frozen), the branch's classifier of the training
        # writers' genuine signatures (all that trains it).
        self.pair_head = self.branch_head = None
        if fused:
            if loss != "bce" or branch_writers < 2:
                raise ValueError(
                    "writer_branch needs loss='bce' and branch_writers >= 2 (the training "
                    f"writers); got loss={loss!r}, branch_writers={branch_writers}"
                )
            self.pair_head = SimilarityHead(**(net_config.get("head") or {}))
            if self.branch_pretrain_epochs > 0:
                self.net.embedding.freeze_writer()
            else:
                with torch.random.fork_rng(devices=[]):  # see sigid.models.build_siamese
                    self.branch_head = nn.Linear(self.net.embedding.writer.dim, branch_writers)
        self.register_buffer("threshold", torch.tensor(0.5))
        self.register_buffer("genuine_distance", torch.tensor(float("nan")))
        self.train_acc = BinaryAccuracy()
        # Each stage's loss as the mean over its pairs: under DDP Lightning's own epoch mean
        # (sync_dist) divides the ranks' summed losses by rank 0's pair count, wrong for the
        # uneven shares of the validation pairs; a MeanMetric syncs both sums.
        for stage in ("train", "val", "test"):
            setattr(self, f"{stage}_loss", MeanMetric())
        self.val_eer_best = MinMetric()
        self.resumed_best: float | None = None  # from a checkpoint, for a resumed run
        for stage in ("val", "test"):
            for name in ("scores", "targets", "kinds", "distances"):
                setattr(self, f"{stage}_{name}_cat", CatMetric(nan_strategy="disable"))
        # With a branch: the pair embedding's own validation scores, for val/eer_pair.
        self.val_pair_scores_cat = CatMetric(nan_strategy="disable")
        self._projector: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.test_scores: torch.Tensor | None = None
        self.test_targets: torch.Tensor | None = None
        self.test_kinds: torch.Tensor | None = None
        self.test_distances: torch.Tensor | None = None

    @property
    def preprocessing(self) -> dict[str, Any] | None:
        return self.hparams.preprocessing

    @property
    def branch_pretrain_epochs(self) -> int:
        """Epochs of writer classification that train the writer branch before the pair
        training, which then leaves it fixed (`sigid.training.writer_branch`); 0: none, or no
        branch."""
        branch = self.hparams.get("writer_branch") or {}
        return int(branch.get("pretrain_epochs", 0) or 0)

    def forward(
        self, images: torch.Tensor, left: torch.Tensor, right: torch.Tensor
    ) -> torch.Tensor:
        """Similarity in (0, 1) of each pair (left[i], right[i]) of `images`."""
        return self.net(images, left, right)

    def _step(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        target = batch["target"].float()
        weight = None
        if self.hparams.get("pair_weighting", "none") == "kind":
            weight = kind_weights(batch["kind"])
        left, right, writers = batch["left"], batch["right"], batch.get("writer")
        images = self.laid_out(batch["images"])
        embedding = self.net.embedding
        pair_logits = None
        if isinstance(embedding, FusedEmbedding):
            # each distinct image once; distances, scores and losses in float32 under autocast
            pair_part, features = (part.float() for part in embedding.parts(images))
            # The pair embedding learns from a head of its own, exactly as without the branch;
            # the network's head only calibrates the fused distance (nothing flows back).
            pair_logits = self.pair_head.logits(distances_of(pair_part, left, right))
            loss = self._pair_loss(pair_logits, target, weight)
            embeddings = embedding.combine(pair_part.detach(), features)
            distance = distances_of(embeddings, left, right)
            logits = self.net.head.logits(distance)
            loss = loss + self._pair_loss(logits, target, weight)
            if self.branch_head is not None and self.training and writers is not None:
                # the branch, trained here: genuine writers only
                genuine = (writers >= 0) & (writers < self.branch_head.out_features)
                loss = loss + self._classify(self.branch_head, features, writers, genuine, 1.0)
        elif isinstance(embedding, EnsembleEmbedding):
            parts = [part.float() for part in embedding.parts(images)]
            # each member learns from its own distance, as it would alone; the mean keeps the
            # loss on a single network's scale
            loss = sum(
                self._loss(distances_of(p, left, right), target, weight) for p in parts
            ) / len(parts)
            embeddings = embedding.combine(parts)
            distance = distances_of(embeddings, left, right)
            logits = self.net.head.logits(distance)
            if self.writer_head is not None and self.training and writers is not None:
                known, scale = writers >= 0, self.hparams.writer_loss / len(parts)
                for head, part in zip(self.writer_head, parts, strict=True):
                    loss = loss + self._classify(head, part, writers, known, scale)
        else:
            embeddings = pair_part = self.net.embed(images).float()
            distance = distances_of(embeddings, left, right)
            logits = self.net.head.logits(distance)
            hardness = self.hparams.get("hardness", 0.0)  # > 0 only with pair_weighting 'kind'
            if hardness > 0 and self.training:
                weight = kind_weights(batch["kind"], logits, hardness)
            loss = self._loss(distance, target, weight, logits)
        single_head = isinstance(self.writer_head, nn.Linear | WriterProxies)
        if single_head and self.training and writers is not None:
            loss = loss + self._classify(
                self.writer_head, pair_part, writers, writers >= 0, self.hparams.writer_loss
            )
        return {
            "loss": loss,
            "scores": torch.sigmoid(logits),
            "pair_scores": None if pair_logits is None else torch.sigmoid(pair_logits),
            "distances": distance,
            "targets": target,
            "embeddings": embeddings,
        }

    def _loss(
        self,
        distance: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor | None,
        logits: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The pair loss on one embedding's distances: BCE through the head (`logits`, when
        already computed), or contrastive on the distance."""
        if self.hparams.loss != "bce":
            return contrastive_loss(distance, target, self.hparams.margin, weight)
        if logits is None:
            logits = self.net.head.logits(distance)
        return self._pair_loss(logits, target, weight)

    @staticmethod
    def _pair_loss(
        logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None
    ) -> torch.Tensor:
        if weight is None:
            return F.binary_cross_entropy_with_logits(logits, target)
        # the weights sum to 1
        return F.binary_cross_entropy_with_logits(logits, target, weight, reduction="sum")

    @staticmethod
    def _classify(
        head: nn.Module,
        features: torch.Tensor,
        labels: torch.Tensor,
        known: torch.Tensor,
        scale: float,
    ) -> torch.Tensor:
        """`scale` x the cross-entropy of the labelled rows (0 when there are none)."""
        if not bool(known.any()):
            return features.new_zeros(())
        if isinstance(head, WriterProxies):  # the margin needs the labels
            logits = head(features[known].float(), labels[known])
        else:
            logits = head(features[known]).float()
        return scale * F.cross_entropy(logits, labels[known])

    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        out = self._step(batch)
        size = out["targets"].numel()
        self.train_acc.update(out["scores"], out["targets"].long())  # at 0.5, see the module doc
        self.train_loss.update(out["loss"].detach(), weight=size)
        self.log(
            "train/loss",
            self.train_loss,
            on_step=False,
            on_epoch=True,
            prog_bar=True,
            batch_size=size,
        )
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, batch_size=size)
        return out["loss"]

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        with self.float32():
            out = self._eval_step(batch, "test")
        room = MAX_PROJECTOR_IMAGES - sum(len(e) for e, _ in self._projector)
        if room > 0 and tensorboards(self):
            images = batch["images"][:room]
            width = max(1, round(images.shape[-1] * THUMBNAIL_HEIGHT / images.shape[-2]))
            thumbs = F.interpolate(images, size=(THUMBNAIL_HEIGHT, width), mode="area")
            self._projector.append((out["embeddings"][:room].detach().cpu(), thumbs.cpu()))

    def _eval_step(self, batch: Mapping[str, torch.Tensor], stage: str) -> dict[str, torch.Tensor]:
        out = self._step(batch)
        size = out["targets"].numel()
        loss = getattr(self, f"{stage}_loss")
        loss.update(out["loss"].detach(), weight=size)  # the mean over all ranks' pairs
        self.log(
            f"{stage}/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=size
        )
        for name, value in (
            ("scores", out["scores"]),
            ("targets", out["targets"]),
            ("kinds", batch["kind"]),
            ("distances", out["distances"]),
        ):
            getattr(self, f"{stage}_{name}_cat").update(value.detach().float())
        if stage == "val" and out["pair_scores"] is not None:
            self.val_pair_scores_cat.update(out["pair_scores"].detach().float())
        return out

    def _collect(self, stage: str) -> dict[str, torch.Tensor]:
        """The epoch's pairs, then reset for the next epoch. Under DDP `compute` gathers every
        rank's (uneven) share in rank order: each rank scored a contiguous share of the pairs
        (`sigid.data.sharding.ShardSampler`), so this is every pair once, in the one-process
        order, on every rank."""
        result = {}
        for name in ("scores", "targets", "kinds", "distances"):
            cat = getattr(self, f"{stage}_{name}_cat")
            result[name] = cat.compute().flatten().cpu() if cat.update_called else torch.empty(0)
            cat.reset()
        result["targets"], result["kinds"] = result["targets"].long(), result["kinds"].long()
        return result

    def on_validation_epoch_end(self) -> None:
        pairs = self._collect("val")
        scores, targets = pairs["scores"], pairs["targets"]
        if self.val_pair_scores_cat.update_called:
            # The pair embedding alone: with a frozen branch it is all that changes between
            # epochs, while the fused EER flattens early (set model.monitor=val/eer_pair).
            pair_scores = self.val_pair_scores_cat.compute().flatten().cpu()
            self.val_pair_scores_cat.reset()
            with contextlib.suppress(ValueError):  # undefined: reported below for val/eer
                self.log("val/eer_pair", metrics.eer(pair_scores, targets)[0], sync_dist=True)
        if scores.numel() == 0:
            return
        try:
            eer, threshold = metrics.eer(scores, targets)
            auroc = metrics.auroc(scores, targets)
        except ValueError as error:  # one class only, or NaN scores
            rank_zero_warn(f"validation EER undefined, threshold kept: {error}")
            eer = auroc = float("nan")
        else:
            self.threshold.fill_(threshold)
            self.genuine_distance.fill_(pairs["distances"][targets == 1].mean())
            self.val_eer_best(eer)
        self.log_dict(
            {
                "val/eer": eer,
                "val/auroc": auroc,
                "val/acc": metrics.accuracy(scores, targets, float(self.threshold)),
                "val/threshold": float(self.threshold),
                "val/genuine_distance": float(self.genuine_distance),
            },
            prog_bar=True,
            sync_dist=True,  # the same on every rank: computed on the gathered pairs
        )
        if self.val_eer_best.update_called:
            self.log("val/eer_best", self.val_eer_best.compute(), sync_dist=True)

    def on_train_start(self) -> None:
        restart_best(self.val_eer_best, self.resumed_best)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[BEST_SO_FAR] = best_so_far(self.val_eer_best)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.resumed_best = checkpoint.get(BEST_SO_FAR)
        # checkpoints written before the buffer existed: unknown (galleries then score by the
        # mean similarity, `sigid.inference.gallery`)
        checkpoint["state_dict"].setdefault("genuine_distance", torch.tensor(float("nan")))

    def on_test_epoch_end(self) -> None:
        pairs = self._collect("test")
        scores, targets, kinds = pairs["scores"], pairs["targets"], pairs["kinds"]
        self.test_scores, self.test_targets, self.test_kinds = scores, targets, kinds
        self.test_distances = pairs["distances"]
        projector, self._projector = self._projector, []
        if scores.numel() == 0:
            return
        threshold = float(self.threshold)
        far, frr = metrics.far_frr(scores, targets, threshold)
        logs = {
            "test/acc": metrics.accuracy(scores, targets, threshold),
            "test/far": far,
            "test/frr": frr,
            "test/threshold": threshold,
        }
        both = 0 < int(targets.sum()) < targets.numel()
        if both:
            logs["test/eer"] = metrics.eer(scores, targets)[0]
            logs["test/auroc"] = metrics.auroc(scores, targets)
        for code, kind in enumerate(KINDS[1:], start=1):
            keep = (targets == 1) | ((targets == 0) & (kinds == code))
            if bool((targets[keep] == 1).any()) and bool((targets[keep] == 0).any()):
                logs[f"test/eer_{kind}"] = metrics.eer(scores[keep], targets[keep])[0]
        self.log_dict(logs, sync_dist=True)  # the gathered pairs': the same on every rank
        self._log_test_figures(pairs, threshold, projector, both)

    def _log_test_figures(
        self,
        pairs: dict[str, torch.Tensor],
        threshold: float,
        projector: list[tuple[torch.Tensor, torch.Tensor]],
        both: bool,
    ) -> None:
        writers = tensorboards(self)
        if not writers:
            return
        targets, distances = pairs["targets"], pairs["distances"]
        fig = roc_figure(pairs["scores"], targets, threshold) if both else None
        step = self.global_step
        for writer in writers:
            if fig is not None:
                writer.add_figure("test/roc", fig, step, close=False)
            for tag, mask in (("same", targets == 1), ("different", targets == 0)):
                if bool(mask.any()):
                    writer.add_histogram(f"test/distance_{tag}", distances[mask], step)
            if projector:
                embeddings = torch.cat([e for e, _ in projector])
                thumbs = torch.cat([t for _, t in projector])
                writer.add_embedding(embeddings, label_img=thumbs, global_step=step, tag="test")

    def predict_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int = 0) -> torch.Tensor:
        """Similarity of each pair of a pair batch."""
        return self(batch["images"], batch["left"], batch["right"])

    def configure_optimizers(self) -> dict[str, Any]:
        return configure(self, self.hparams.optimizer, self.hparams.scheduler)
