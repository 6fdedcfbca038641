"""LightningModules: real few-batch fits, TensorBoard tags, standalone checkpoint reloads."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from lightning import Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.data import DataLoader, TensorDataset

from sigid import metrics
from sigid.models.siamese import pair_distance
from sigid.tasks import ClassifierModule, SiameseModule
from sigid.tasks.common import build_optimizer, build_scheduler
from sigid.tasks.siamese import contrastive_loss, kind_weights

SIZE = 32
PREPROCESSING = {"mode": "normalized", "size": [SIZE, SIZE]}
CNN = {"kind": "cnn", "depth": 2, "channels": [8, 16], "image_size": [SIZE, SIZE], "hidden": 32}
CONV_SNN = {
    "embedding": "conv",
    "depth": 2,
    "channels": [8, 16],
    "image_size": [SIZE, SIZE],
    "dim": 16,
    "head": {"scale": 1.0, "offset": 4.0},
}


def crosses(labels: torch.Tensor, seed: int) -> torch.Tensor:
    """One jittered cross per image whose bar positions encode the class: easy to tell apart."""
    generator = torch.Generator().manual_seed(seed)
    images = 0.05 * torch.rand(len(labels), 1, SIZE, SIZE, generator=generator)
    for i, k in enumerate(labels.tolist()):
        dy, dx = torch.randint(-1, 2, (2,), generator=generator).tolist()
        row, col = 4 + 4 * k + dy, 26 - 4 * k + dx
        images[i, 0, row : row + 2, 4 + dx : 28 + dx] = 1.0
        images[i, 0, 4 + dy : 28 + dy, col : col + 2] = 1.0
    return images.clamp(0, 1)


def trainer(tmp_path: Path, monitor: str, mode: str) -> tuple[Trainer, ModelCheckpoint]:
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor=monitor, mode=mode)
    return Trainer(
        max_epochs=2,
        limit_train_batches=3,
        limit_val_batches=2,
        accelerator="cpu",
        logger=TensorBoardLogger(tmp_path),
        callbacks=[checkpoint],
        enable_checkpointing=True,
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
    ), checkpoint


def event_tags(log_dir: str) -> dict[str, list[str]]:
    accumulator = EventAccumulator(log_dir)
    accumulator.Reload()
    return accumulator.Tags()


# --- classifier --------------------------------------------------------------------------


def test_classifier_fit_test_and_standalone_reload(tmp_path: Path) -> None:
    seed_everything(0)
    num_classes = 6
    train_y = torch.arange(num_classes).repeat(6)
    val_y = torch.arange(num_classes).repeat(2)
    train = DataLoader(TensorDataset(crosses(train_y, 1), train_y), batch_size=8, shuffle=True)
    val_x = crosses(val_y, 2)
    val = DataLoader(TensorDataset(val_x, val_y), batch_size=6)
    names = [f"writer{k:03d}" for k in range(num_classes)]
    module = ClassifierModule(
        **{**CNN, "batch_norm": True, "dropout": 0.1},
        num_classes=num_classes,
        class_names=names,
        preprocessing=PREPROCESSING,
        optimizer={"name": "adam", "lr": 3e-3, "weight_decay": 0.0},
        scheduler={"name": "cosine"},
    )
    fit, checkpoint = trainer(tmp_path, "val/acc", "max")
    fit.fit(module, train, val)
    (results,) = fit.test(module, val, ckpt_path="best")

    assert module.test_confusion is not None
    assert module.test_confusion.shape == (num_classes, num_classes)
    assert int(module.test_confusion.sum()) == len(val_y)
    assert results["test/acc"] == pytest.approx(
        float(module.test_confusion.diag().sum()) / len(val_y)
    )

    # No config, no extra argument: the checkpoint alone rebuilds net, names and preprocessing.
    loaded = ClassifierModule.load_from_checkpoint(checkpoint.best_model_path)
    assert loaded.class_names == names
    assert loaded.preprocessing == PREPROCESSING
    module.eval()
    loaded.eval()
    with torch.no_grad():
        assert torch.allclose(loaded(val_x), module(val_x), atol=1e-6)
        probabilities = loaded.predict_step(val_x)
    assert torch.allclose(probabilities.sum(dim=1), torch.ones(len(val_y)))
    accuracy = float((probabilities.argmax(dim=1) == val_y).float().mean())
    assert accuracy == pytest.approx(results["test/acc"])

    hparams = torch.load(checkpoint.best_model_path, weights_only=True)["hyper_parameters"]
    assert hparams["depth"] == 2
    assert hparams["num_classes"] == num_classes

    tags = event_tags(fit.logger.log_dir)
    expected = {"train/loss", "train/acc", "val/loss", "val/acc", "val/acc_top5", "val/acc_best"}
    expected |= {"test/loss", "test/acc", "test/acc_top5"}
    assert expected <= set(tags["scalars"])
    assert "test/confusion_matrix" in tags["images"]


def test_classifier_accepts_hydra_containers_and_checks_arguments() -> None:
    module = ClassifierModule(
        **OmegaConf.create(CNN),
        num_classes=3,
        preprocessing=OmegaConf.create(PREPROCESSING),
        optimizer=OmegaConf.create({"name": "sgd", "lr": 0.1, "momentum": 0.9}),
    )
    assert type(module.hparams["channels"]) is list
    assert not hasattr(module, "val_acc_top5")  # only with more than 5 classes
    with pytest.raises(ValueError, match="class_names"):
        ClassifierModule(**CNN, num_classes=3, class_names=["a", "b"])
    with pytest.raises(ValueError, match="preprocessing size"):
        ClassifierModule(**CNN, num_classes=3, preprocessing={"mode": "paper", "size": [64, 64]})
    with pytest.raises(ValueError, match="optimizer"):
        ClassifierModule(**CNN, num_classes=3, optimizer={"name": "lbfgs"})
    with pytest.raises(ValueError, match="scheduler"):
        ClassifierModule(**CNN, num_classes=3, scheduler={"name": "onecycle"})


# --- optimizers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "kind"),
    [
        ({"name": "adam", "lr": 1e-3}, torch.optim.Adam),
        ({"name": "adamw", "lr": 1e-3, "weight_decay": 0.01}, torch.optim.AdamW),
        ({"name": "sgd", "lr": 0.1, "momentum": 0.9}, torch.optim.SGD),
        ({"name": "rmsprop", "lr": 1e-3}, torch.optim.RMSprop),
    ],
)
def test_build_optimizer(config: dict, kind: type) -> None:
    optimizer = build_optimizer(torch.nn.Linear(2, 2).parameters(), config)
    assert isinstance(optimizer, kind)
    assert optimizer.param_groups[0]["lr"] == config["lr"]


def test_build_scheduler() -> None:
    optimizer = build_optimizer(torch.nn.Linear(2, 2).parameters(), {"name": "adam"})
    fake_trainer = SimpleNamespace(max_epochs=7, estimated_stepping_batches=70)
    assert build_scheduler(optimizer, None, fake_trainer) is None
    assert build_scheduler(optimizer, {"name": "none"}, fake_trainer) is None
    cosine = build_scheduler(optimizer, {"name": "cosine"}, fake_trainer)
    assert cosine["scheduler"].T_max == 7
    assert cosine["interval"] == "epoch"
    per_step = build_scheduler(optimizer, {"name": "cosine", "interval": "step"}, fake_trainer)
    assert per_step["scheduler"].T_max == 70
    step = build_scheduler(optimizer, {"name": "step", "step_size": 3, "gamma": 0.5}, None)
    assert step["scheduler"].step_size == 3
    plateau = build_scheduler(optimizer, {"name": "plateau", "patience": 2}, None)
    assert plateau["monitor"] == "val/loss"
    assert isinstance(plateau["scheduler"], torch.optim.lr_scheduler.ReduceLROnPlateau)


# --- siamese -------------------------------------------------------------------------------


def pair_batches(count: int, seed: int, writers: int = 4, per_writer: int = 2) -> list[dict]:
    """Pair batches as the data pipeline makes them: distinct images + index pairs.

    Negatives alternate between the 'skilled' and 'random' kind codes.
    """
    batches = []
    for b in range(count):
        labels = torch.arange(writers).repeat_interleave(per_writer)
        left, right = zip(*itertools.combinations(range(len(labels)), 2), strict=True)
        left, right = torch.tensor(left), torch.tensor(right)
        target = (labels[left] == labels[right]).float()
        kind = torch.where(target == 1, 0, 1 + torch.arange(len(target)) % 2)
        batches.append(
            {
                "images": crosses(labels, seed * 100 + b),
                "left": left,
                "right": right,
                "target": target,
                "kind": kind.long(),
            }
        )
    return batches


def loader(batches: list[dict]) -> DataLoader:
    return DataLoader(batches, batch_size=None)


def test_siamese_fit_test_and_standalone_reload(tmp_path: Path) -> None:
    seed_everything(0)
    module = SiameseModule(
        **CONV_SNN,
        preprocessing=PREPROCESSING,
        optimizer={"name": "adamw", "lr": 3e-3, "weight_decay": 1e-4},
        scheduler={"name": "step", "step_size": 1, "gamma": 0.5},
    )
    val_batches, test_batches = pair_batches(2, seed=2), pair_batches(2, seed=3)
    fit, checkpoint = trainer(tmp_path, "val/eer", "min")
    fit.fit(module, loader(pair_batches(3, seed=1)), loader(val_batches))
    (results,) = fit.test(module, loader(test_batches), ckpt_path="best")

    loaded = SiameseModule.load_from_checkpoint(checkpoint.best_model_path)
    loaded.eval()
    module.eval()
    # The stored threshold is the validation EER threshold of the checkpointed weights.
    with torch.no_grad():
        val_scores = torch.cat([loaded.predict_step(b) for b in val_batches])
        test_scores = torch.cat([loaded.predict_step(b) for b in test_batches])
        assert torch.allclose(
            test_scores, torch.cat([module.predict_step(b) for b in test_batches])
        )
    val_targets = torch.cat([b["target"] for b in val_batches])
    threshold = float(loaded.threshold)
    assert threshold == float(module.threshold)
    assert threshold == pytest.approx(metrics.eer(val_scores, val_targets)[1], abs=1e-6)
    assert loaded.preprocessing == PREPROCESSING
    # ... and the typical genuine distance, the mean distance of those weights' genuine pairs.
    with torch.no_grad():
        distances = []
        for batch in val_batches:
            embedded = loaded.net.embed(batch["images"])
            distances.append(pair_distance(embedded[batch["left"]], embedded[batch["right"]]))
    genuine = torch.cat(distances)[val_targets == 1]
    assert float(loaded.genuine_distance) == pytest.approx(float(genuine.mean()), rel=1e-5)
    assert float(loaded.genuine_distance) == float(module.genuine_distance)

    # Test never tunes the threshold: FAR / FRR are read at the validation threshold.
    targets = torch.cat([b["target"] for b in test_batches])
    assert torch.allclose(module.test_scores, test_scores, atol=1e-6)
    assert torch.equal(module.test_targets, targets.long())
    assert torch.equal(module.test_kinds, torch.cat([b["kind"] for b in test_batches]))
    far, frr = metrics.far_frr(test_scores, targets, threshold)
    assert results["test/far"] == pytest.approx(far, abs=1e-6)
    assert results["test/frr"] == pytest.approx(frr, abs=1e-6)
    assert results["test/threshold"] == pytest.approx(threshold)

    tags = event_tags(fit.logger.log_dir)
    expected = {"train/loss", "train/acc", "val/loss", "val/acc", "val/eer", "val/auroc"}
    expected |= {"val/threshold", "val/genuine_distance", "val/eer_best", "test/loss", "test/acc"}
    expected |= {"test/eer"}
    expected |= {"test/auroc", "test/far", "test/frr", "test/eer_skilled", "test/eer_random"}
    assert expected <= set(tags["scalars"])
    assert "test/roc" in tags["images"]
    assert {"test/distance_same", "test/distance_different"} <= set(tags["histograms"])
    assert (Path(fit.logger.log_dir) / "projector_config.pbtxt").exists()


def test_per_kind_test_eer_uses_only_that_kinds_negatives(tmp_path: Path) -> None:
    seed_everything(0)
    module = SiameseModule(**CONV_SNN, preprocessing=PREPROCESSING)
    fit, _ = trainer(tmp_path, "val/eer", "min")
    fit.fit(module, loader(pair_batches(3, seed=1)), loader(pair_batches(2, seed=2)))
    batches = pair_batches(2, seed=3)
    for batch in batches:  # "skilled" negatives: half the same-writer pairs, hard on purpose
        batch["kind"][batch["target"] == 0] = 2
        relabel = (batch["target"] == 1).nonzero().flatten()[::2]
        batch["target"][relabel], batch["kind"][relabel] = 0.0, 1
    (results,) = fit.test(module, loader(batches), verbose=False)
    scores, targets, kinds = module.test_scores, module.test_targets, module.test_kinds
    for code, kind in ((1, "skilled"), (2, "random")):
        keep = (targets == 1) | (kinds == code)
        expected = metrics.eer(scores[keep], targets[keep])[0]
        assert results[f"test/eer_{kind}"] == pytest.approx(expected, abs=1e-6)
    assert results["test/eer_skilled"] > results["test/eer_random"]


def test_siamese_step_embeds_once_and_uses_bce() -> None:
    module = SiameseModule(**CONV_SNN)
    (batch,) = pair_batches(1, seed=4)
    calls: list[int] = []
    module.net.embedding.register_forward_hook(lambda _m, x, _o: calls.append(x[0].shape[0]))
    loss = module._step(batch)["loss"]
    assert calls == [len(batch["images"])]
    similarity = module(batch["images"], batch["left"], batch["right"])
    assert loss.item() == pytest.approx(F.binary_cross_entropy(similarity, batch["target"]).item())


def test_contrastive_loss_by_hand() -> None:
    distance = torch.tensor([0.0, 2.0, 0.5, 1.5])
    target = torch.tensor([1.0, 1.0, 0.0, 0.0])
    # 0^2, 2^2, (1 - 0.5)^2, max(0, 1 - 1.5)^2
    assert contrastive_loss(distance, target, margin=1.0).item() == pytest.approx(4.25 / 4)


def test_kind_weights_give_positives_half_and_share_the_rest_among_negative_kinds() -> None:
    # 2 genuine, 1 skilled, 5 random (a writer batch has many more random than skilled pairs)
    kind = torch.tensor([0, 0, 1, 2, 2, 2, 2, 2])
    weight = kind_weights(kind)
    assert weight.tolist() == pytest.approx([0.25, 0.25, 0.25] + [0.05] * 5)
    assert kind_weights(torch.tensor([0, 2, 2])).tolist() == pytest.approx([0.5, 0.25, 0.25])
    assert kind_weights(torch.tensor([1, 2])).tolist() == pytest.approx([0.5, 0.5])
    distance, target = torch.tensor([0.0, 2.0, 0.5]), torch.tensor([1.0, 0.0, 0.0])
    weighted = contrastive_loss(distance, target, 1.0, kind_weights(torch.tensor([0, 1, 2])))
    assert weighted.item() == pytest.approx(0.25 * 0.25)  # only the close skilled pair costs


def test_siamese_pair_weighting_by_kind_changes_the_loss() -> None:
    (batch,) = pair_batches(1, seed=5)
    plain = SiameseModule(**CONV_SNN, preprocessing=PREPROCESSING)
    weighted = SiameseModule(**CONV_SNN, preprocessing=PREPROCESSING, pair_weighting="kind")
    weighted.load_state_dict(plain.state_dict())
    plain.eval(), weighted.eval()
    out = plain._step(batch)
    logits = plain.net.head.logits(out["distances"])
    expected = F.binary_cross_entropy_with_logits(
        logits, batch["target"], kind_weights(batch["kind"]), reduction="sum"
    )
    got = weighted._step(batch)["loss"].item()
    assert got == pytest.approx(expected.item(), rel=1e-5)
    assert got != pytest.approx(out["loss"].item(), rel=1e-3)
    with pytest.raises(ValueError, match="pair_weighting"):
        SiameseModule(**CONV_SNN, pair_weighting="hard")


def test_siamese_writer_loss_adds_writer_classification_in_training_only() -> None:
    (batch,) = pair_batches(1, seed=5)
    writers = torch.arange(4).repeat_interleave(2)  # pair_batches: 4 writers x 2 images
    writers[0] = -1  # e.g. a forgery: no writer label
    batch = {**batch, "writer": writers}
    plain = SiameseModule(**CONV_SNN, preprocessing=PREPROCESSING)
    aux = SiameseModule(**CONV_SNN, preprocessing=PREPROCESSING, writer_loss=0.5, num_writers=4)
    aux.load_state_dict(plain.state_dict(), strict=False)
    plain.eval(), aux.eval()
    pair_loss = plain._step(batch)["loss"]
    assert aux._step(batch)["loss"].item() == pytest.approx(pair_loss.item())  # eval: pairs only
    aux.train(), plain.train()
    torch.manual_seed(0)
    out = aux._step(batch)
    logits = aux.writer_head(out["embeddings"][1:])
    expected = plain._step(batch)["loss"] + 0.5 * F.cross_entropy(logits, writers[1:])
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    with pytest.raises(ValueError, match="num_writers"):
        SiameseModule(**CONV_SNN, writer_loss=1.0)


def test_siamese_writer_branch_trains_beside_the_pair_embedding_not_through_it() -> None:
    """Pair embedding: its own head's BCE (+ writer loss); branch: classifying the genuine
    writers; the network's head: BCE on the fused distance, which trains nothing else."""
    (batch,) = pair_batches(1, seed=5)
    writers = torch.tensor([0, 1, 2, 3, 5, -1, 1, 4])  # 4 training writers; 4..7: forgeries
    batch = {**batch, "writer": writers}
    branch = {"weight": 2.0, "depth": 2, "channels": [4, 8], "hidden": 6}
    module = SiameseModule(
        **CONV_SNN, preprocessing=PREPROCESSING, writer_loss=0.5, num_writers=8,
        branch_writers=4, writer_branch=branch,
    )  # fmt: skip
    assert module.writer_head.in_features == CONV_SNN["dim"]  # the pair embedding
    assert module.branch_head.in_features == 6 and module.branch_head.out_features == 4
    module.train()
    out = module._step(batch)
    fused, target = module.net.embedding, batch["target"].float()
    pair, features = fused.parts(batch["images"])  # no dropout: the same values again
    left, right = batch["left"], batch["right"]
    d_pair = (pair[left] - pair[right]).pow(2).sum(-1).add(1e-8).sqrt()
    bce = F.binary_cross_entropy_with_logits
    expected = (
        bce(module.pair_head.logits(d_pair), target)
        + bce(module.net.head.logits(out["distances"]), target)
        + F.cross_entropy(module.branch_head(features[[0, 1, 2, 3, 6]]), writers[[0, 1, 2, 3, 6]])
        + 0.5 * F.cross_entropy(module.writer_head(pair[writers >= 0]), writers[writers >= 0])
    )
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    # The fused distance's loss reaches only the network's head.
    module.zero_grad()
    bce(module.net.head.logits(out["distances"]), target).backward()
    assert all(p.grad is None for p in fused.parameters())
    assert module.net.head.raw_scale.grad is not None
    with pytest.raises(ValueError, match="branch_writers"):
        SiameseModule(**CONV_SNN, writer_branch=branch)


def test_siamese_ensemble_members_learn_from_their_own_distances() -> None:
    """Each member: the pair BCE on its own distance and its own writer head, the mean over
    members; the network's score is the ensemble distance through the shared head."""
    (batch,) = pair_batches(1, seed=5)
    writers = torch.tensor([0, 1, 2, 3, 5, -1, 1, 4])
    batch = {**batch, "writer": writers}
    module = SiameseModule(
        **CONV_SNN, preprocessing=PREPROCESSING, writer_loss=0.5, num_writers=8, members=2
    )
    ensemble = module.net.embedding
    assert len(module.writer_head) == 2 and module.writer_head[1].in_features == CONV_SNN["dim"]
    module.train()
    out = module._step(batch)
    target, left, right = batch["target"].float(), batch["left"], batch["right"]
    known = writers >= 0
    bce = F.binary_cross_entropy_with_logits
    expected = 0.0
    for member, head in zip(ensemble.members, module.writer_head, strict=True):
        emb = member(batch["images"])  # no dropout: the same values again
        d = (emb[left] - emb[right]).pow(2).sum(-1).add(1e-8).sqrt()
        expected = expected + bce(module.net.head.logits(d), target) / 2
        expected = expected + 0.25 * F.cross_entropy(head(emb[known]), writers[known])
    assert out["loss"].detach().item() == pytest.approx(expected.detach().item(), rel=1e-5)
    assert out["embeddings"].shape == (8, 2 * CONV_SNN["dim"])
    # a member's gradients come from its own loss only: the other's do not move it
    module.zero_grad()
    emb = ensemble.members[0](batch["images"])
    d = (emb[left] - emb[right]).pow(2).sum(-1).add(1e-8).sqrt()
    bce(module.net.head.logits(d), target).backward()
    assert all(p.grad is None for p in ensemble.members[1].parameters())
    assert all(p.grad is not None for p in ensemble.members[0].parameters())


def test_siamese_contrastive_fits_with_plateau(tmp_path: Path) -> None:
    module = SiameseModule(
        embedding="pixel",
        image_size=[SIZE, SIZE],
        dim=16,
        optimizer={"name": "rmsprop", "lr": 1e-3},
        scheduler={"name": "plateau", "patience": 1},
        loss="contrastive",
        margin=2.0,
    )
    head = module.net.head
    assert not any(p.requires_grad for p in head.parameters())
    assert head(torch.tensor(1.0)).item() == pytest.approx(0.5)  # 0.5 at margin / 2
    (batch,) = pair_batches(1, seed=5)
    out = module._step(batch)
    expected = contrastive_loss(out["distances"], batch["target"], 2.0)
    assert out["loss"].item() == pytest.approx(expected.item())
    fit = Trainer(fast_dev_run=True, accelerator="cpu", default_root_dir=tmp_path, logger=False)
    fit.fit(module, loader(pair_batches(1, seed=6)), loader(pair_batches(1, seed=7)))
    assert 0.0 < float(module.threshold) < 1.0


def test_siamese_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="loss"):
        SiameseModule(**CONV_SNN, loss="triplet")
    with pytest.raises(ValueError, match="margin"):
        SiameseModule(**CONV_SNN, loss="contrastive", margin=0.0)


def test_kind_weights_with_hardness_favour_the_hard_pairs_of_each_kind() -> None:
    kind = torch.tensor([0, 0, 1, 2, 2, 2])
    logits = torch.tensor([3.0, -1.0, 0.0, -4.0, 2.0, -4.0])
    weight = kind_weights(kind, logits, hardness=1.0)
    # each kind keeps its share: positives 1/2, skilled and random 1/4 each
    assert weight.sum().item() == pytest.approx(1.0)
    assert weight[:2].sum().item() == pytest.approx(0.5)
    assert weight[2].item() == pytest.approx(0.25)
    assert weight[3:].sum().item() == pytest.approx(0.25)
    # inside a kind: the positive the network doubts, the negative it takes for genuine
    assert weight[1] / weight[0] == pytest.approx(math.exp(4.0))
    assert weight[4] / weight[3] == pytest.approx(math.exp(6.0))
    assert weight[3] == weight[5]
    assert kind_weights(kind, logits, hardness=0.0).tolist() == pytest.approx(
        kind_weights(kind).tolist()
    )
    with pytest.raises(ValueError, match="pair_weighting"):
        SiameseModule(**CONV_SNN, hardness=1.0)  # pair_weighting 'none'
    with pytest.raises(ValueError, match="hardness"):
        SiameseModule(**CONV_SNN, pair_weighting="kind", hardness=-1.0)


def test_siamese_hardness_weights_the_training_loss_only() -> None:
    (batch,) = pair_batches(1, seed=5)
    kind = SiameseModule(**CONV_SNN, preprocessing=PREPROCESSING, pair_weighting="kind")
    hard = SiameseModule(
        **CONV_SNN, preprocessing=PREPROCESSING, pair_weighting="kind", hardness=2.0
    )
    hard.load_state_dict(kind.state_dict())
    kind.eval(), hard.eval()
    assert hard._step(batch)["loss"].item() == pytest.approx(kind._step(batch)["loss"].item())
    hard.train()
    torch.manual_seed(0)
    out = hard._step(batch)
    logits = hard.net.head.logits(out["distances"])
    expected = F.binary_cross_entropy_with_logits(
        logits, batch["target"], kind_weights(batch["kind"], logits, 2.0), reduction="sum"
    )
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_siamese_cosine_writer_head_is_a_margin_softmax_over_proxies() -> None:
    (batch,) = pair_batches(1, seed=5)
    writers = torch.arange(4).repeat_interleave(2)
    batch = {**batch, "writer": writers}
    aux = SiameseModule(
        **CONV_SNN, preprocessing=PREPROCESSING, writer_loss=0.5, num_writers=4,
        writer_head="cosine", writer_scale=10.0, writer_margin=0.2,
    )  # fmt: skip
    plain = SiameseModule(**CONV_SNN, preprocessing=PREPROCESSING)
    plain.load_state_dict(aux.state_dict(), strict=False)
    aux.train(), plain.train()
    out = aux._step(batch)
    embeddings = F.normalize(out["embeddings"], dim=1)
    proxies = F.normalize(aux.writer_head.proxies, dim=1)
    cosine = embeddings @ proxies.T - 0.2 * F.one_hot(writers, 4)
    expected = plain._step(batch)["loss"] + 0.5 * F.cross_entropy(10.0 * cosine, writers)
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    # the length of an embedding does not change its writer logits
    head = aux.writer_head
    assert torch.allclose(head(3.0 * out["embeddings"]), head(out["embeddings"]), atol=1e-5)
    # checkpointed only when used, so that default checkpoints keep the settings they had
    assert "writer_head" not in SiameseModule(**CONV_SNN, preprocessing=PREPROCESSING).hparams
    again = SiameseModule(**aux.hparams)
    assert isinstance(again.writer_head, type(aux.writer_head)) and again.writer_head.margin == 0.2
    with pytest.raises(ValueError, match="writer_head"):
        SiameseModule(**CONV_SNN, writer_head="arcface")
