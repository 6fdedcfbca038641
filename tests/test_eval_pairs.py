"""Validation and test pairs in image order (`sigid.data.pairs.by_image`): the same pairs as
`make_pairs` draws, batches that embed fewer images, and the same validation figures."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_module
from runs import SMALL_DATA

from sigid.data.datamodules import PairCollate, PairDataModule
from sigid.data.pairs import make_pairs
from sigid.data.splits import SPLITS
from sigid.tasks import load_checkpoint
from sigid.tasks.build import build_datamodule

# 8 writers, 3 of them validation writers: pairs across writers, as in CEDAR's folds.
DATA = [
    *SMALL_DATA,
    "data.synthetic.writers=8",
    "data.split.folds=4",
    "data.split.val_writers=3",
    "data.pairs.val=120",
    "data.pairs.test=120",
]


@pytest.fixture(scope="module")
def datamodule(tmp_path_factory) -> PairDataModule:
    with initialize_config_module("sigid.conf", version_base="1.3"):
        folder = tmp_path_factory.mktemp("run")
        cfg = compose("train", [*DATA, "model=siamese_conv", f"paths.output_dir={folder}"])
    dm = build_datamodule(cfg)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def _drawn(dm: PairDataModule, split: str) -> list:
    """The split's pairs in the order `make_pairs` draws them (as `setup` asks for them)."""
    count, skilled = int(dm.pairs_cfg[split]), float(dm.pairs_cfg["skilled_fraction"])
    return make_pairs(dm.samples[split], count, skilled, dm.seed + SPLITS.index(split))


def test_scored_pairs_are_the_drawn_pairs_in_image_order(datamodule):
    for split in ("val", "test"):
        drawn, held = _drawn(datamodule, split), datamodule.pairs[split]
        assert drawn != held and sorted(drawn, key=repr) == sorted(held, key=repr)
        assert held == sorted(held, key=lambda p: (p.a, p.b))
    assert datamodule.pairs["train"] == _drawn(datamodule, "train")  # shuffled by its loader


def _embedded(loader) -> int:
    return sum(len(batch["images"]) for batch in loader)


def test_scored_batches_embed_fewer_images(datamodule):
    size = datamodule.batch_size
    for split, loader in (
        ("val", datamodule.val_dataloader()),
        ("test", datamodule.test_dataloader()),
    ):
        drawn = _drawn(datamodule, split)
        collate = PairCollate(datamodule.images[split])
        before = sum(
            len(collate(drawn[i : i + size])["images"]) for i in range(0, len(drawn), size)
        )
        assert _embedded(loader) < 0.8 * before, (split, _embedded(loader), before)


def test_validation_figures_do_not_depend_on_the_order(datamodule, siamese_ckpt):
    """The validation EER, AUC and threshold of one checkpoint: the same in image order as in
    the drawn order (what the checkpoint keeps and the tests report)."""
    figures = []
    held = datamodule.pairs["val"]
    try:
        for pairs in (held, _drawn(datamodule, "val")):
            datamodule.pairs["val"] = pairs
            module = load_checkpoint(siamese_ckpt)
            trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
            trainer.validate(module, datamodule=datamodule, verbose=False)
            figures.append(
                {k: float(trainer.callback_metrics[k]) for k in ("val/eer", "val/auroc")}
                | {"threshold": float(module.threshold)}
            )
    finally:
        datamodule.pairs["val"] = held
    assert figures[0] == pytest.approx(figures[1], abs=1e-6), figures
    assert torch.isfinite(torch.tensor(list(figures[0].values()))).all()
