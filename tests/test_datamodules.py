import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from drawing import draw_signature, write_folders
from PIL import Image

from sigid.data.augment import materialize
from sigid.data.datamodules import ClassFolderDataModule, PairDataModule
from sigid.data.images import ImageLoadError
from sigid.data.layouts import DatasetError
from sigid.data.pairs import KINDS
from sigid.runs.records import check_unseen

SPLIT = {"val": 2, "test": 2, "folds": 3, "fold": 0, "val_writers": 1}
PAIRS = {"train": 40, "val": 20, "test": 20, "skilled_fraction": 0.5}
AUGMENT = {"rotation": 10, "width_shift": 0.1, "height_shift": 0.1, "shear": 5, "zoom": 0.1}


def _module(cls, root, tmp_path, **kw):
    args = dict(
        root=str(root),
        layout="auto",
        preprocess={"mode": "normalized", "size": [32, 64]},
        split=SPLIT,
        augment=AUGMENT,
        pairs=PAIRS,
        cache_dir=str(tmp_path / "cache"),
        batch_size=8,
        seed=0,
    )
    args.update(kw)
    return cls(**args)


@pytest.fixture
def dataset(tmp_path):
    return write_folders(tmp_path / "data", writers=6, per_writer=8, forged=3)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_class_folder_batches_hold_images_and_writer_labels(dataset, tmp_path, num_workers):
    dm = _module(ClassFolderDataModule, dataset, tmp_path, num_workers=num_workers)
    dm.setup("fit")
    assert dm.class_names == [f"w{i}" for i in range(1, 7)] and dm.num_classes == 6
    assert [len(dm.samples[s]) for s in ("train", "val", "test")] == [24, 12, 12]
    assert all(s.genuine for part in dm.samples.values() for s in part)
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (8, 1, 32, 64) and images.dtype == torch.float32
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert labels.dtype == torch.int64 and labels.max() < 6
    val_labels = torch.cat([y for _, y in dm.val_dataloader()])
    assert sorted(val_labels.tolist()) == sorted([i for i in range(6) for _ in range(2)])


def test_images_are_decoded_once_and_not_reread_per_epoch(dataset, tmp_path):
    dm = _module(ClassFolderDataModule, dataset, tmp_path)
    dm.setup("fit")
    shutil.rmtree(dataset)  # any later file access would now fail
    for _ in range(2):
        assert sum(len(y) for _, y in dm.train_dataloader()) == 24
    assert len(list((tmp_path / "cache" / "preprocessed").glob("*.npz"))) == 1


def test_training_augmentation_differs_per_epoch_but_evaluation_does_not(dataset, tmp_path):
    dm = _module(ClassFolderDataModule, dataset, tmp_path)
    dm.setup("fit")
    train, val = dm.dataset("train"), dm.dataset("val")
    assert not torch.equal(train[0][0], train[0][0])
    assert torch.equal(val[0][0], val[0][0])
    raw = torch.from_numpy(dm.images["val"][0]).float() / 255
    assert torch.equal(val[0][0][0], raw)


def test_preprocessed_cache_is_reused_by_a_second_run(dataset, tmp_path):
    first = _module(ClassFolderDataModule, dataset, tmp_path)
    first.setup("fit")
    second = _module(ClassFolderDataModule, dataset, tmp_path)
    second.setup("fit")
    assert np.array_equal(first.images["train"], second.images["train"])
    assert [s.path for s in first.samples["test"]] == [s.path for s in second.samples["test"]]


def test_bad_image_is_an_error_naming_it_or_skipped_when_asked(dataset, tmp_path):
    (dataset / "w1" / "s9.png").write_bytes(b"")
    with pytest.raises(ImageLoadError, match=r"s9\.png: empty file"):
        _module(ClassFolderDataModule, dataset, tmp_path).setup("fit")
    dm = _module(ClassFolderDataModule, dataset, tmp_path, skip_bad_images=True)
    dm.setup("fit")
    assert sum(len(p) for p in dm.samples.values()) == 48
    assert [s.path.name for s in dm.table.skipped] == ["s9.png"]


@pytest.mark.parametrize("mode", ["normalized", "paper"])
def test_blank_image_is_an_error_naming_it_or_skipped_when_asked(dataset, tmp_path, mode):
    """A white page preprocesses to an image all the same: it must not train as a signature."""
    blank = dataset / "w1" / "s9.png"
    Image.new("L", (160, 80), 250).save(blank)
    preprocess = {"mode": mode, "size": [32, 64]}
    with pytest.raises(ImageLoadError) as err:
        _module(ClassFolderDataModule, dataset, tmp_path, preprocess=preprocess).setup("fit")
    assert str(err.value) == f"{blank}: " + (
        "no ink found (every pixel within 8 grey levels of the others: a blank image?)"
    )
    dm = _module(PairDataModule, dataset, tmp_path, preprocess=preprocess, skip_bad_images=True)
    dm.setup("fit")
    assert sum(len(p) for p in dm.samples.values()) == 48 + 18
    assert [(s.path, s.reason[:13]) for s in dm.table.skipped] == [(blank, "no ink found ")]


def test_twelve_bit_scan_in_a_16_bit_tiff_is_refused_as_faint_not_trained_on(dataset, tmp_path):
    """Values 0..4095 read as grey 0..15: `normalized` finds no ink, so the file is refused."""
    scan = (np.asarray(draw_signature(1, 9), dtype=np.int64) * 4095 // 255).astype(np.uint16)
    faint = dataset / "w1" / "s9.tif"
    Image.fromarray(scan).save(faint)
    with pytest.raises(ImageLoadError, match="very faint or low-contrast scan") as err:
        _module(ClassFolderDataModule, dataset, tmp_path).setup("fit")
    assert err.value.path == faint and "span only 2..15" in err.value.reason


@pytest.mark.parametrize("cls", [ClassFolderDataModule, PairDataModule])
def test_sigid_augment_output_is_refused_as_training_data(dataset, tmp_path, cls):
    """Augmented copies of one scan would be split into train, val and test: refuse, say why."""
    aug = tmp_path / "aug"
    sources = [(p, p.parent.name) for p in sorted(dataset.glob("w?/*.png"))]
    materialize(sources, aug, 10, 0, AUGMENT, source_root=dataset)  # what `sigid augment` runs
    (aug / "list.csv").write_text("path,writer,label\nw1/w1_00001.png,w1,genuine\n")
    for root in (aug, aug / "list.csv"):
        with pytest.raises(DatasetError) as err:
            _module(cls, root, tmp_path).setup("fit")
        assert str(err.value) == (
            f"{aug}: an augmented set (it holds augment.json, as `sigid augment` writes): copies "
            "of one scan would land in training, validation and test alike; train on the source "
            "scans with data.materialize=N, which augments the training split only"
        )


def test_too_few_images_per_writer_for_the_split_is_refused(tmp_path):
    root = write_folders(tmp_path / "small", writers=3, per_writer=4)
    dm = _module(ClassFolderDataModule, root, tmp_path, split={**SPLIT, "val": 2, "test": 2})
    with pytest.raises(DatasetError, match="has 4 genuine image"):
        dm.setup("fit")


def test_heavier_test_distortion_changes_test_images_reproducibly(dataset, tmp_path):
    heavy = {"rotation": 20, "shear": 20, "zoom": 0.2}
    plain = _module(ClassFolderDataModule, dataset, tmp_path)
    plain.setup("test")
    a = _module(ClassFolderDataModule, dataset, tmp_path, test_distortion=heavy)
    a.setup("test")
    b = _module(ClassFolderDataModule, dataset, tmp_path, test_distortion=heavy)
    b.setup("test")
    assert not np.array_equal(a.images["test"], plain.images["test"])
    assert np.array_equal(a.images["test"], b.images["test"])
    assert np.array_equal(a.images["val"], plain.images["val"])


def test_materialized_training_folders_replace_on_the_fly_augmentation(dataset, tmp_path):
    dm = _module(ClassFolderDataModule, dataset, tmp_path, materialize=10)
    dm.setup("fit")
    assert len(dm.samples["train"]) == 60  # 6 writers x 10
    assert dm.dataset("train").transform is None
    # only the training split is written out: validation/test images never leak into it
    held_out = {str(s.path.resolve()) for s in dm.samples["val"] + dm.samples["test"]}
    assert len(dm.images["train"]) == 60 and len(held_out) == 24  # 6 writers x (2 + 2)
    folders = list((tmp_path / "cache" / "augmented").iterdir())
    assert len(folders) == 1
    assert {p.name for p in folders[0].iterdir() if p.is_dir()} == set(dm.class_names)
    sources = json.loads((folders[0] / "augment.json").read_text())["sources"]
    used = {str(Path(e["path"]).resolve()) for e in sources}
    assert len(used) == 24 and not used & held_out  # 6 writers x 4 training signatures
    assert {e["writer"] for e in sources} == set(dm.class_names)


def test_materialized_runs_with_other_augmentation_get_their_own_folders(dataset, tmp_path):
    first = _module(ClassFolderDataModule, dataset, tmp_path, materialize=6)
    first.setup("fit")
    other = _module(
        ClassFolderDataModule, dataset, tmp_path, materialize=6, augment={**AUGMENT, "shear": 20}
    )
    other.setup("fit")  # not refused as "a different request" for the first run's folder
    again = _module(ClassFolderDataModule, dataset, tmp_path, materialize=6)
    again.setup("fit")
    assert len(list((tmp_path / "cache" / "augmented").iterdir())) == 2  # the same one reused
    assert np.array_equal(again.images["train"], first.images["train"])
    assert not np.array_equal(other.images["train"], first.images["train"])


def test_materialized_run_records_its_source_scans_so_evaluation_can_refuse_them(dataset, tmp_path):
    dm = _module(ClassFolderDataModule, dataset, tmp_path, materialize=10)
    dm.setup("fit")
    files = dm.split_manifest()["train"]["files"]
    assert len(files) == 24 and all(Path(f).is_relative_to(dataset.resolve()) for f in files)
    run = tmp_path / "run"
    run.mkdir()
    (run / "split.json").write_text(json.dumps(dm.split_manifest()))
    checkpoint = run / "checkpoints" / "last.ckpt"
    own = _module(ClassFolderDataModule, dataset, tmp_path, materialize=10)
    own.setup("test")
    assert check_unseen(checkpoint, own.split_manifest(), ["val", "test"]) == run / "split.json"
    other_seed = _module(ClassFolderDataModule, dataset, tmp_path, materialize=10, seed=1)
    other_seed.setup("test")
    with pytest.raises(ValueError, match="test signatures of this data were trained on"):
        check_unseen(checkpoint, other_seed.split_manifest(), ["test"])


def test_evaluation_stages_do_not_materialize(dataset, tmp_path):
    dm = _module(ClassFolderDataModule, dataset, tmp_path, materialize=10)
    dm.setup("test")
    dm.setup("validate")
    assert not (tmp_path / "cache" / "augmented").exists()
    assert len(dm.dataset("val")) == len(dm.dataset("test")) == 12
    dm.setup("fit")
    assert len(dm.dataset("train")) == 60 and len(dm.split_manifest()["train"]["files"]) == 24


def _ink_centroids(images: np.ndarray) -> np.ndarray:
    """(N, 2) centre of ink mass (row, column) of normalized images (bright ink on 0)."""
    weights = images.astype(np.float64)
    rows, cols = np.indices(images.shape[1:])
    total = weights.sum(axis=(1, 2))
    return (
        np.stack([(weights * rows).sum(axis=(1, 2)), (weights * cols).sum(axis=(1, 2))], 1)
        / (total[:, None])
    )


def test_materialized_copies_are_drawn_like_on_the_fly_augmentation(dataset, tmp_path):
    """Both augment the preprocessed image: augmenting the scan first, normalized preprocessing
    would crop and centre the ink again and undo the shift."""
    shift = {"width_shift": 0.2, "height_shift": 0.2}
    written = _module(ClassFolderDataModule, dataset, tmp_path, augment=shift, materialize=20)
    written.setup("fit")
    copy = [int(s.path.stem.rsplit("_", 1)[1]) > 4 for s in written.samples["train"]]
    copies = written.images["train"][np.array(copy)]  # not the 4 sources per writer
    on_the_fly = _module(ClassFolderDataModule, dataset, tmp_path, augment=shift)
    on_the_fly.setup("fit")
    train = on_the_fly.dataset("train")
    torch.manual_seed(0)
    draws = [(train[i % len(train)][0][0] * 255).round().byte().numpy() for i in range(len(copies))]
    spread, expected = _ink_centroids(copies).std(0), _ink_centroids(np.stack(draws)).std(0)
    assert expected.min() > 2  # pixels: the shift moves the ink
    assert np.all(spread > 0.6 * expected) and np.all(spread < 1.6 * expected)


def test_pair_data_refuses_materialize_naming_the_setting(dataset, tmp_path):
    with pytest.raises(ValueError, match=r"data\.materialize"):
        _module(PairDataModule, dataset, tmp_path, materialize=10).setup("fit")


@pytest.mark.parametrize("num_workers", [0, 2])
def test_pair_batches_embed_each_distinct_image_once(dataset, tmp_path, num_workers):
    dm = _module(PairDataModule, dataset, tmp_path, num_workers=num_workers)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["images"].shape[1:] == (1, 32, 64)
    assert batch["left"].shape == batch["right"].shape == batch["target"].shape == (8,)
    used = torch.cat([batch["left"], batch["right"]]).unique()
    assert len(used) == len(batch["images"])  # every image is used, none twice
    assert set(batch["kind"].tolist()) <= set(range(len(KINDS)))


def test_pair_splits_are_writer_disjoint_and_no_pair_crosses_them(dataset, tmp_path):
    dm = _module(PairDataModule, dataset, tmp_path)
    dm.setup("fit")
    writers = {name: {s.writer for s in dm.samples[name]} for name in ("train", "val", "test")}
    assert not (writers["train"] & writers["test"] or writers["train"] & writers["val"])
    assert not writers["val"] & writers["test"]
    for name in ("train", "val", "test"):
        samples = dm.samples[name]
        assert len(dm.pairs[name]) == PAIRS[name]
        for p in dm.pairs[name]:
            assert samples[p.a].writer in writers[name] and samples[p.b].writer in writers[name]
    test_kinds = {KINDS[p.kind] for p in dm.pairs["test"]}
    assert test_kinds == {"genuine", "skilled", "random"}
    manifest = dm.split_manifest()
    assert set(manifest["test"]["writers"]) == writers["test"]


def test_writer_batches_train_on_every_pair_inside_each_batch(dataset, tmp_path):
    batching = {"writers": 3, "genuine": 2, "forgeries": 2}
    dm = _module(PairDataModule, dataset, tmp_path, pairs={**PAIRS, "batch": batching})
    dm.setup("fit")
    assert len({s.writer for s in dm.samples["train"]}) == 3
    batches = list(dm.train_dataloader())
    assert len(batches) == 4  # 3 training writers x 8 genuine / (3 writers x 2 genuine)
    for batch in batches:
        assert batch["images"].shape == (12, 1, 32, 64)  # 3 writers x (2 genuine + 2 forged)
        # per writer 1 genuine + 4 skilled pairs; 2 x 2 random pairs per two writers
        counts = torch.bincount(batch["kind"], minlength=3).tolist()
        assert counts == [3, 12, 12]
        assert torch.equal(batch["target"], (batch["kind"] == 0).float())
        # writer labels for the auxiliary loss: genuine images only, indices of train_writers
        genuine = batch["writer"] >= 0
        assert int(genuine.sum()) == 6 and batch["writer"].max() < 3
    assert dm.train_writers == sorted({s.writer for s in dm.samples["train"]})
    assert set(next(iter(dm.val_dataloader()))["writer"].tolist()) == {-1}  # unseen writers
    assert dm.writer_classes == 3


def test_forgery_classes_label_each_writers_forgeries_as_a_class_of_their_own(dataset, tmp_path):
    pairs = {**PAIRS, "batch": {"writers": 3, "genuine": 2, "forgeries": 2}}
    dm = _module(PairDataModule, dataset, tmp_path, pairs={**pairs, "forgery_classes": True})
    dm.setup("fit")
    assert dm.writer_classes == 6  # 3 training writers, and a forgery of each
    batch = next(iter(dm.train_dataloader()))
    labels = dm.collate("train").writers
    samples = dm.samples["train"]
    for sample, label in zip(samples, labels, strict=True):
        writer = dm.train_writers.index(sample.writer)
        assert label == (writer if sample.genuine else 3 + writer)
    assert sorted(batch["writer"].tolist()).count(-1) == 0
    # validation and test keep their fixed pairs, so the threshold and figures are comparable
    assert sum(len(b["target"]) for b in dm.val_dataloader()) == PAIRS["val"]


def test_pair_folds_rotate_the_test_writers(dataset, tmp_path):
    tests = []
    for fold in range(3):
        dm = _module(PairDataModule, dataset, tmp_path, split={**SPLIT, "fold": fold})
        dm.setup("test")
        tests.append({s.writer for s in dm.samples["test"]})
    assert set().union(*tests) == {f"w{i}" for i in range(1, 7)}
    assert sum(len(t) for t in tests) == 6


def test_rotate_val_takes_each_folds_validation_writers_from_the_next_fold(dataset, tmp_path):
    def writers(fold, split, **extra):
        dm = _module(PairDataModule, dataset, tmp_path, split={**SPLIT, "fold": fold, **extra})
        dm.setup("test")
        return {s.writer for s in dm.samples[split]}

    assert writers(1, "val") == writers(2, "val")  # the default: both from fold 0
    rotated = [writers(fold, "val", rotate_val=True) for fold in range(3)]
    assert [len(v) for v in rotated] == [1, 1, 1] and len(set().union(*rotated)) == 3
    for fold in range(3):
        assert rotated[fold] <= writers((fold + 1) % 3, "test")


def test_forgeries_by_held_out_writers_stay_out_of_earlier_splits(dataset, tmp_path):
    """A manifest names each forgery's forger: a training (or validation) writer's forgery made
    by a test writer is in the test writer's hand, so it is left out of that split."""
    rows = ["path,writer,label,forger"]
    for w in range(1, 7):
        rows += [f"w{w}/s{n}.png,w{w},genuine," for n in range(1, 9)]
        forger = f"w{w % 6 + 1}"  # w1's forgeries by w2, ..., w6's by w1
        rows += [f"w{w}_forg/f{n}.png,w{w},forged,{forger}" for n in range(1, 4)]
    manifest = dataset / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n")
    dm = _module(PairDataModule, manifest, tmp_path, layout="manifest")
    dm.setup("fit")
    writers = {name: {s.writer for s in dm.samples[name] if s.genuine} for name in dm.samples}
    later = {"train": writers["val"] | writers["test"], "val": writers["test"], "test": set()}
    dropped = 0
    for name, samples in dm.samples.items():
        forged = [s for s in samples if not s.genuine]
        assert not {s.forger for s in forged} & later[name]
        claimed = 3 * len(writers[name])  # every forgery of the split's writers
        dropped += claimed - len(forged)
    assert len([s for s in dm.samples["test"] if not s.genuine]) == 3 * len(writers["test"])
    assert dropped > 0  # the cycle of forgers puts some forger in a later split


def test_a_split_with_fewer_than_three_training_writers_is_warned_about(tmp_path, caplog):
    """5 writers, 3 folds, 1 validation writer: 2 test, 1 val, 2 train."""
    small = write_folders(tmp_path / "small", writers=5, per_writer=4, forged=2)

    def warnings(**kw) -> list[str]:
        caplog.clear()
        dm = _module(PairDataModule, small, tmp_path, **kw)
        dm.setup("fit")
        return [r.getMessage() for r in caplog.records if r.name == "sigid.data.datamodules"]

    assert warnings() == [
        f"{small}: the writer-disjoint split leaves 2 training writer(s) (w1, w4), 1 validation "
        "and 2 test, of 5 writers (data.split.folds=3, data.split.fold=0, "
        "data.split.val_writers=1): too few to learn what tells writers apart; lower "
        "data.split.val_writers or raise data.split.folds"
    ]
    assert warnings(split={**SPLIT, "folds": 5}) == []  # 1 test, 1 val, 3 train


def test_a_writer_split_that_cannot_be_made_names_the_data_and_the_settings(dataset, tmp_path):
    dm = _module(PairDataModule, dataset, tmp_path, split={**SPLIT, "folds": 7})
    with pytest.raises(DatasetError, match=r"6 writers cannot be split into 7 folds") as err:
        dm.setup("fit")
    assert str(err.value).startswith(f"{dataset}: ")
    assert "(data.split.folds=7, data.split.fold=" in str(err.value)
