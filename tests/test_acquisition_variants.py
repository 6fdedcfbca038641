"""Training with acquisition changes made once (data.acquisition.variants, sigid.data.variants):
N changed and preprocessed versions per image, cached and shared by every fold of a collection."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from runs import pair_datamodule, tiny_checkpoint

from sigid.data.acquisition import TRANSFORMS
from sigid.data.datamodules import PairDataModule, _image
from sigid.data.images import load_image
from sigid.data.preprocess import prepare
from sigid.data.variants import (
    VariantAcquisition,
    make_variants,
    variant_draws,
    variant_pool,
)

PREPROCESS = {"mode": "normalized", "size": [64, 96]}
LOW_MIDDLE = ["low", "middle"]


def _first_batch(dm: PairDataModule) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return next(iter(dm.train_dataloader()))


@pytest.mark.parametrize("value", ["0", "-2", "1.5", "four", "true"])
def test_bad_variants_are_one_line_naming_the_key(value):
    with pytest.raises(ValueError) as err:
        pair_datamodule(f"data.acquisition={{p: 0.5, variants: {value}}}")
    message = str(err.value)
    assert message.startswith("data.acquisition.variants: must be a whole number >= 1"), message
    assert "\n" not in message


def test_variants_differ_from_the_clean_image_and_from_each_other(cedar_root: Path):
    """Four variants of a real CEDAR scan: four different changes, none the clean image, the
    same again when made again, and drawn from the file alone (no split, no run)."""
    path = str((cedar_root / "signatures" / "full_org" / "original_20_3.png").resolve())
    transforms = list(TRANSFORMS)
    draws = variant_draws(path, 4, transforms, LOW_MIDDLE)
    assert len({(t, s) for t, s, _ in draws}) == 4
    assert draws == variant_draws(path, 4, transforms, LOW_MIDDLE)
    assert draws != variant_draws(path.replace("_3.png", "_4.png"), 4, transforms, LOW_MIDDLE)
    images, inked = make_variants(path, PREPROCESS, transforms, LOW_MIDDLE, 4)
    assert images.shape == (4, 64, 96) and images.dtype == np.uint8 and inked.all()
    clean = prepare(load_image(Path(path)), PREPROCESS)
    assert all(not np.array_equal(image, clean) for image in images)
    assert all(not np.array_equal(images[a], images[b]) for a in range(4) for b in range(a))
    again, _ = make_variants(path, PREPROCESS, transforms, LOW_MIDDLE, 4)
    assert np.array_equal(images, again)


def test_a_pool_is_made_once_for_the_collection_and_read_by_another_fold(tmp_path, caplog):
    """Fold 0's training loader makes the pool of every image of the collection (all its
    splits) in the cache; fold 1's reads the same files, making nothing."""
    cache = tmp_path / "cache"
    variants = [
        "data.acquisition={p: 0.5, strengths: [low], variants: 2}",
        f"data.cache_dir={cache}",
    ]
    with caplog.at_level(logging.INFO, logger="sigid.data.variants"):
        fold0 = pair_datamodule(*variants, "data.split.fold=0")
        fold0.train_dataloader()
    assert sum("data: making 2 acquisition variants" in r.message for r in caplog.records) == 1
    files = sorted((cache / "variants").iterdir())
    assert len(files) == 2  # the images and their ink flags
    stamps = [f.stat().st_mtime_ns for f in files]
    pool = fold0.variant_pools[0]
    assert len(pool) == len(fold0.collections[0]) > len(fold0.samples["train"])
    assert pool.images.shape[1] == 2
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="sigid.data.variants"):
        fold1 = pair_datamodule(*variants, "data.split.fold=1")
        fold1.train_dataloader()
    assert not any("making" in r.message for r in caplog.records)
    assert any("read from" in r.message for r in caplog.records)
    assert sorted((cache / "variants").iterdir()) == files
    assert [f.stat().st_mtime_ns for f in files] == stamps
    assert set(fold0.samples["train"]) != set(fold1.samples["train"])


def test_a_pool_made_in_worker_processes_is_the_one_made_here(tmp_path):
    """The process pool gives the images one process does: variants depend on the file alone."""
    from sigid.data.synthetic import generate

    root = generate(tmp_path / "synthetic", writers=2, per_writer=3, forgeries=0)
    paths = sorted(root.rglob("*.png"))[:4]
    settings = (PREPROCESS, ["stamp", "jpeg", "ruling"], LOW_MIDDLE, 3)
    here = variant_pool(paths, *settings, tmp_path / "one", workers=1)
    spawned = variant_pool(paths, *settings, tmp_path / "two", workers=2)
    assert np.array_equal(here.images, spawned.images)
    assert np.array_equal(here.inked, spawned.inked)


def test_training_batches_use_the_variants(tmp_path):
    """At p=1 every training image of a batch is one of its cached variants."""
    dm = pair_datamodule(
        "data/augment=none", f"data.cache_dir={tmp_path}",
        "data.acquisition={p: 1.0, transforms: [stamp, ruling], strengths: [high], variants: 2}",
    )  # fmt: skip
    loader = dm.train_dataloader()
    torch.manual_seed(0)
    batch = next(iter(loader))
    acquire = loader.collate_fn.acquire
    assert isinstance(acquire, VariantAcquisition)
    index = {s.path: i for i, s in enumerate(dm.collections[0])}
    pool = dm.variant_pools[0]
    for image, sample in zip(batch["images"][:, 0], batch["sample"].tolist(), strict=True):
        row = index[dm.samples["train"][sample].path]
        shown = (image * 255).round().to(torch.uint8).numpy()
        assert any(np.array_equal(shown, pool.images[row, v]) for v in range(2))
        assert not np.array_equal(shown, dm.images["train"][sample])


def test_p0_or_no_variants_leave_training_as_it_was(tmp_path):
    """p=0 with variants is no acquisition at all (no pool made); variants null (or absent) is
    the live augmentation, batch for batch."""
    plain = pair_datamodule("data/augment=none")
    off = pair_datamodule("data/augment=none", "data.acquisition={p: 0, variants: 4}",
                       f"data.cache_dir={tmp_path}")  # fmt: skip
    assert off.acquisition is None
    assert torch.equal(_first_batch(plain)["images"], _first_batch(off)["images"])
    assert not (tmp_path / "variants").exists()
    stamped = "data.acquisition={p: 1.0, transforms: [stamp], strengths: [high]"
    live = pair_datamodule("data/augment=none", stamped + "}")
    null = pair_datamodule("data/augment=none", stamped + ", variants: null}")
    assert null.acquisition == live.acquisition == {
        "p": 1.0, "transforms": ["stamp"], "strengths": ["high"],
    }  # fmt: skip
    assert torch.equal(_first_batch(live)["images"], _first_batch(null)["images"])


def test_a_variant_without_ink_falls_back_to_the_clean_image(tmp_path):
    """A pale scan made fainter still (``faint`` at high: a quarter of its darkness) leaves no ink
    the normaliser finds: the pool marks it, and training uses the clean image."""
    grey = np.full((60, 120), 255, np.uint8)
    grey[25:35, 10:110] = 200  # a pale stroke: ink to the normaliser, until made fainter
    path = tmp_path / "pale.png"
    Image.fromarray(grey, "L").save(path)
    pool = variant_pool([path], PREPROCESS, ["faint"], ["high"], 1, tmp_path / "cache", workers=1)
    assert not pool.inked[0, 0]
    acquire = VariantAcquisition([(pool, 0)], p=1.0)
    clean = prepare(grey, PREPROCESS)[None]
    assert np.array_equal(_image(clean, 0, acquire), clean[0]) and acquire.applied == 0


def test_a_seeded_run_with_variants_trains_the_same_twice(tmp_path):
    """Two seeded runs with variants (the second reading the first's pool from the cache) train
    bit-identical weights, and other weights than a run without them."""

    def weights(folder: str, *overrides: str) -> dict:
        ckpt = tiny_checkpoint(tmp_path / folder, "model=siamese_conv", "model.dim=16", *overrides)
        return torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]

    variants = "data.acquisition={p: 0.5, strengths: [low, middle], variants: 2}"
    first, second = weights("a", variants), weights("b", variants)
    assert all(torch.equal(first[k], second[k]) for k in first)
    plain = weights("c")
    assert any(not torch.equal(first[k], plain[k]) for k in first)


def test_variants_cover_extra_collections_and_identification_runs(tmp_path):
    """A pair run with an extra collection gets a pool per collection, every training image
    (both collections', and the writer loader's genuine subset) mapped to its own variants; an
    identification run (the CNN) gets one for its genuine images, the materialised copies none."""
    from test_chinese_names import write_chinese_names

    from sigid.data.datamodules import ClassFolderDataModule
    from sigid.data.synthetic import generate

    primary = generate(tmp_path / "set", writers=6, per_writer=12, forgeries=4, seed=0)
    names = write_chinese_names(tmp_path / "cn" / "chinese_names", writers=3)
    common = {
        "root": str(primary), "layout": "paired", "cache_dir": str(tmp_path / "cache"),
        "preprocess": {"mode": "normalized", "size": [32, 64]}, "seed": 0,
        "split": {"folds": 3, "fold": 0, "val_writers": 1, "val": 2, "test": 2},
        "acquisition": {"p": 1.0, "transforms": ["jpeg"], "strengths": ["high"], "variants": 1},
    }  # fmt: skip
    pairs = {"train": 48, "val": 24, "test": 24, "skilled_fraction": 0.5}
    extra = [{"root": str(names), "layout": "chinese_names"}]
    dm = PairDataModule(pairs=pairs, extra=extra, **common)
    dm.setup("fit")
    acquire = dm.collate("train").acquire
    assert [len(pool) for pool in dm.variant_pools] == [len(c) for c in dm.collections]
    assert len(dm.variant_pools) == 2 and len(dm.collections[1]) == 120
    rows = {s.path: (pool, row) for pool, c in zip(dm.variant_pools, dm.collections, strict=True)
            for row, s in enumerate(c)}  # fmt: skip
    for index, sample in enumerate(dm.samples["train"]):
        pool, row = rows[sample.path]
        assert np.array_equal(acquire(index), pool.images[row, 0])
    genuine = [s for s in dm.samples["train"] if s.genuine]
    assert [r[1] for r in dm.writer_dataloader().dataset.acquire.rows] == [
        rows[s.path][1] for s in genuine
    ]

    cnn = ClassFolderDataModule(**common)
    cnn.setup("fit")
    acquire = cnn.dataset("train").acquire
    (pool,) = cnn.variant_pools
    assert len(pool) == len(cnn.collections[0]) == 72  # the genuine images of every split
    rows = {s.path: row for row, s in enumerate(cnn.collections[0])}
    for index, sample in enumerate(cnn.samples["train"]):
        assert np.array_equal(acquire(index), pool.images[rows[sample.path], 0])
    assert cnn.dataset("val").acquire is None
    copies = ClassFolderDataModule(**common, materialize=10)
    copies.setup("fit")
    assert copies.dataset("train").acquire is None and copies.variant_pools is None


_BUILD_UNDER_A_FLAG_HANDLER = """
import signal, sys
from pathlib import Path
from sigid.data.variants import variant_pool
# as Lightning's trainer does: SIGTERM only sets a flag that its loop reads between steps
signal.signal(signal.SIGTERM, lambda *_: None)
paths = sorted(Path(sys.argv[1]).rglob("*.png"))
print("building", flush=True)
variant_pool(paths, {"mode": "normalized", "size": [64, 96]}, ["stamp", "jpeg", "ruling"],
             ["low", "middle"], 3, sys.argv[2], workers=2)
print("built", flush=True)
"""


def test_sigterm_stops_a_pool_build_under_a_flag_handler_and_writes_nothing(tmp_path):
    import subprocess
    import sys
    import time

    from sigid.data.synthetic import generate

    root = generate(tmp_path / "synthetic", writers=8, per_writer=40, forgeries=0)
    script = tmp_path / "build.py"
    script.write_text(_BUILD_UNDER_A_FLAG_HANDLER)
    cache = tmp_path / "cache"
    child = subprocess.Popen(
        [sys.executable, str(script), str(root), str(cache)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert child.stdout.readline().strip() == "building"
    time.sleep(2.0)  # the workers are making variants (320 images: far longer than this)
    child.terminate()
    try:
        code = child.wait(timeout=30)
    finally:
        child.kill()
    assert code == 128 + 15
    assert "built" not in child.stdout.read()
    assert not list(cache.rglob("*.npy"))  # no pool, not even a partial one
