"""The chinese_names layout on real files: (writer, name) units, misfiled inputs, writer-disjoint
splits, same-name forgeries in pairs and writer batches, and the real collection's counts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from drawing import draw_signature
from runs import QUIET, SMALL_NET, given_embeddings_verifier

import sigid
from sigid.cli import main
from sigid.data.datamodules import PairDataModule
from sigid.data.layouts import DatasetError, Sample, detect_layout, scan
from sigid.data.pairs import GENUINE, RANDOM, SKILLED, WriterBatchSampler, pairs_within
from sigid.evaluation.api import run_protocol
from sigid.evaluation.protocols.same_name import evaluate_split_pair
from sigid.evaluation.protocols.writer_dependent import EmbeddedSplit

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "chinese_names"
# Each writer's files in one of the collection's three encodings.
FORMATS = (("png", "RGBA"), ("png", "RGB"), ("jpg", "RGB"))


def write_chinese_names(root: Path, writers: int, size=(40, 80)) -> Path:
    """ROOT/<w>/<k>.<suffix>, k = 1..40, as the collection names them: a writer's hand per
    name, one jittered rendering per medium (PNG RGBA, PNG RGB or JPEG by writer)."""
    for w in range(1, writers + 1):
        folder = root / str(w)
        folder.mkdir(parents=True)
        suffix, mode = FORMATS[(w - 1) % len(FORMATS)]
        for k in range(1, 41):
            name, medium = (k - 1) % 10, (k - 1) // 10
            image = draw_signature(w * 10 + name, medium, size=size).convert(mode)
            image.save(folder / f"{k}.{suffix}", **({"quality": 90} if suffix == "jpg" else {}))
    (root / "LICENSE").write_text("MIT")
    return root


def test_files_are_units_of_writer_and_name_with_their_medium(tmp_path):
    write_chinese_names(tmp_path, writers=3)
    table = scan(tmp_path, verify=True)  # every PNG RGBA / RGB and JPEG decodes
    assert table.layout == "chinese_names"
    assert len(table.samples) == 120 and len(table.writers) == 30
    assert all(s.genuine for s in table.samples)
    unit = [s for s in table.samples if s.writer == "3/name4"]
    assert sorted(s.path.name for s in unit) == ["15.jpg", "25.jpg", "35.jpg", "5.jpg"]
    assert {(s.path.name, s.medium) for s in unit} == {
        ("5.jpg", 0), ("15.jpg", 1), ("25.jpg", 2), ("35.jpg", 3)
    }  # fmt: skip
    assert {(s.group, s.text, s.person) for s in unit} == {("3", "name4", "3")}
    assert [(s.path.name, s.reason) for s in table.skipped] == [
        ("LICENSE", "not inside a writer folder")
    ]


def test_scan_counts_people_apart_from_their_units(tmp_path, capsys):
    """`sigid scan` says how many people wrote a chinese_names set, not only how many (writer,
    name) units they make; a set of plain writers reads as before."""
    write_chinese_names(tmp_path / "names", writers=3)
    assert main(["scan", str(tmp_path / "names"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["people"], report["writers"], len(report["per_writer"])) == (3, 30, 30)
    assert main(["scan", str(tmp_path / "names")]) == 0
    text = capsys.readouterr().out
    assert "writers: 3 in 30 units (writer, name)" in text and "per unit" in text
    plain = tmp_path / "plain"
    for writer in ("ann", "bob"):
        (plain / writer).mkdir(parents=True)
        draw_signature(len(writer), 0).save(plain / writer / "1.png")
    assert main(["scan", str(plain), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["people"] == report["writers"] == 2
    assert main(["scan", str(plain)]) == 0
    text = capsys.readouterr().out
    assert "writers: 2   genuine: 2" in text and "per writer" in text


def test_misfiled_names_are_listed_and_the_layout_is_then_asked_for(tmp_path):
    write_chinese_names(tmp_path, writers=2)
    for name in ("41.png", "0.png", "abc.png", "07.png"):
        draw_signature(1, 1).save(tmp_path / "1" / name)
    (tmp_path / "2" / "notes.txt").write_text("scanned 2023")  # not an image: no matter
    assert detect_layout(tmp_path) == "folders"  # not the unmistakable shape any more
    (tmp_path / "extra").mkdir()
    table = scan(tmp_path, "chinese_names")
    assert len(table.samples) == 80
    reasons = {str(s.path.relative_to(tmp_path)): s.reason for s in table.skipped}
    for name in ("41.png", "0.png", "abc.png", "07.png"):
        assert reasons[f"1/{name}"] == "name is not <k>.<image> with k = 1..40"
    assert "not an image" in reasons["2/notes.txt"]
    assert reasons["extra"] == "not a numbered writer folder (chinese_names)"


def test_a_writer_missing_files_keeps_the_rest_and_lists_each_missing_one(tmp_path):
    write_chinese_names(tmp_path, writers=2)
    (tmp_path / "2" / "13.png").unlink()
    (tmp_path / "2" / "40.png").unlink()
    (tmp_path / "1" / "Thumbs.db").write_bytes(b"\0")  # not an image: listed, no matter
    assert detect_layout(tmp_path) == "chinese_names"  # writer 1 is complete
    table = scan(tmp_path)
    assert len(table.samples) == 78
    missing = {
        str(s.path.relative_to(tmp_path)): s.reason for s in table.skipped if "*" in s.path.name
    }
    assert missing == {"2/13.*": "missing: name 2, medium 1", "2/40.*": "missing: name 9, medium 3"}
    (tmp_path / "1" / "1.png").unlink()
    assert detect_layout(tmp_path) == "folders"  # no writer complete: nothing unmistakable


def test_two_images_of_one_k_are_refused_naming_the_file(tmp_path):
    write_chinese_names(tmp_path, writers=2)
    draw_signature(1, 1).save(tmp_path / "1" / "7.jpg")
    with pytest.raises(DatasetError) as err:
        scan(tmp_path, "chinese_names")
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(tmp_path / "1"))
    assert "k=7" in message


def _datamodule(root: Path, fold: int, cache: Path) -> PairDataModule:
    return PairDataModule(
        str(root), "chinese_names",
        preprocess={"mode": "normalized", "size": [32, 64]},
        split={"folds": 5, "fold": fold, "val_writers": 2},
        pairs={"train": 60, "val": 40, "test": 40, "skilled_fraction": 1.0,
               "batch": {"writers": 4, "genuine": 4, "forgeries": 4}},
        cache_dir=str(cache), batch_size=16,
    )  # fmt: skip


@pytest.fixture(scope="module")
def ten_writers(tmp_path_factory) -> Path:
    return write_chinese_names(tmp_path_factory.mktemp("chinese_names"), writers=10)


@pytest.mark.parametrize("fold", range(5))
def test_splits_are_disjoint_by_real_writer_with_all_ten_names_together(
    ten_writers, tmp_path, fold
):
    dm = _datamodule(ten_writers, fold, tmp_path)
    dm.setup("fit")
    people = {name: {s.person for s in dm.samples[name]} for name in ("train", "val", "test")}
    assert people["train"] and people["val"] and people["test"]
    assert not people["train"] & people["val"] and not people["train"] & people["test"]
    assert not people["val"] & people["test"]
    for name, samples in dm.samples.items():
        for person in people[name]:  # all 40 files of each of its writers, none elsewhere
            assert sum(s.person == person for s in samples) == 40
    for p in dm.pairs["test"]:  # genuine: two media of one unit; negatives: same name
        a, b = dm.samples["test"][p.a], dm.samples["test"][p.b]
        assert a.text == b.text
        if p.kind == GENUINE:
            assert p.target == 1 and a.writer == b.writer and a.medium != b.medium
        else:
            assert p.kind == SKILLED and p.target == 0 and a.person != b.person


def test_writer_batches_draw_each_units_forgeries_from_other_writers_same_name(
    ten_writers, tmp_path
):
    dm = _datamodule(ten_writers, 0, tmp_path)
    dm.setup("fit")
    samples = dm.samples["train"]
    batch = next(iter(dm.train_dataloader().sampler))  # the WriterBatchSampler's first
    assert len(batch) == len(set(batch))  # one image drawn twice would pair with itself
    kinds = [p.kind for p in pairs_within(samples, batch)]
    assert kinds.count(GENUINE) and kinds.count(SKILLED) and kinds.count(RANDOM)
    for p in pairs_within(samples, batch):
        a, b = samples[p.a], samples[p.b]
        if p.kind == SKILLED:
            assert a.text == b.text and a.person != b.person and p.target == 0
    loaded = next(iter(dm.train_dataloader()))
    assert int((loaded["kind"] == SKILLED).sum()) == kinds.count(SKILLED)
    assert np.isin(loaded["target"].numpy(), [0.0, 1.0]).all()


def test_a_writer_batch_holds_each_image_once_though_units_share_their_forgeries():
    # three writers of one name: each unit's forgeries are the other two units' genuine samples,
    # all of them in the batch already
    split = _units(3, 1, lambda w, n, m: np.zeros(3))
    sampler = WriterBatchSampler(split.samples, writers=3, genuine=4, forgeries=8)
    batch = next(iter(sampler))
    assert sorted(batch) == list(range(12))
    kinds = [p.kind for p in pairs_within(split.samples, batch)]
    assert (kinds.count(GENUINE), kinds.count(SKILLED), kinds.count(RANDOM)) == (18, 48, 0)


@pytest.mark.skipif(not REAL.is_dir(), reason=f"{REAL} not present")
def test_the_real_collection_has_60_writers_of_40_files_in_600_units():
    table = scan(REAL)
    assert table.layout == "chinese_names"
    people = {s.person for s in table.samples}
    assert len(people) == 60 and len(table.samples) == 2400 and len(table.writers) == 600
    for person in people:
        assert sum(s.person == person for s in table.samples) == 40
    assert {s.path.suffix for s in table.samples if int(s.person) > 50} == {".jpg"}
    assert [s.path.name for s in table.skipped] == ["LICENSE"]


def _units(writers: int, names: int, embed) -> EmbeddedSplit:
    """A split of `writers` x `names` units x 4 media whose embeddings `embed(w, n, m)` gives."""
    samples, rows = [], []
    for w in range(1, writers + 1):
        for n in range(names):
            for m in range(4):
                path = Path(f"{w}/{m * 10 + n + 1}.png")
                samples.append(Sample(path, f"{w}/name{n}", True, None, str(w), f"name{n}", m))
                rows.append(embed(w, n, m))
    return EmbeddedSplit(samples, np.array(rows, dtype=np.float32))


def test_same_name_pairs_are_counted_per_medium_pair_and_writers_ranked_per_name():
    verifier = given_embeddings_verifier(3)
    rng = np.random.default_rng(0)

    # each unit's electronic samples close together; its paper sample 6 away from them, another
    # writer's same name 3 away: every medium pair separates its own genuine pairs from its
    # negatives, but not all pairs at one threshold
    def embed(w, n, m):
        centre = np.array([3.0 * w, 30.0 * n, 0.0])
        return centre + (np.array([0.0, 0.0, 6.0]) if m == 0 else rng.normal(0, 0.05, 3))

    val, test = _units(3, 2, embed), _units(4, 2, embed)
    result, curves = evaluate_split_pair(verifier, val, test)
    found = result["test"]
    # 8 units x 6 genuine pairs; per name C(16, 2) - 4 x 6 = 96 negatives
    assert (found["overall"]["genuine"], found["overall"]["negatives"]) == (48, 192)
    electronic, mixed = found["electronic-electronic"], found["paper-electronic"]
    assert electronic["genuine"] == mixed["genuine"] == 24
    # negatives: per name 4 x 3 x (3 writers x 1 paper) paper-electronic, 3 x 3 x C(4, 2) e-e
    assert (mixed["negatives"], electronic["negatives"]) == (2 * 36, 2 * 54)
    assert electronic["eer"] == mixed["eer"] == 0.0
    assert found["overall"]["eer"] > 0.2
    assert "paper-paper" not in found  # no genuine pair has two paper samples
    ident = found["identification"]
    assert (ident["writers"], ident["queries"], ident["chance"]) == (4, 96, 0.25)
    assert ident["top1"] == 1.0
    assert ident["by_gallery_medium"]["tablet"]["queries"] == 24
    assert [c.label for c in curves] == ["overall", "paper-electronic", "electronic-electronic"]
    assert result["validation"]["genuine"] == 6 * 6


def test_same_name_protocol_runs_on_a_checkpoint_trained_on_the_layout(
    ten_writers, tmp_path, capsys
):
    run = tmp_path / "run"
    trained = sigid.train([
        "experiment=cedar_snn", "data=chinese_names", f"data.root={ten_writers}",
        "data.preprocess.size=[32,64]", "data.split.val_writers=2", "data.pairs.val=24",
        "data.pairs.test=24", "data.pairs.batch.writers=4", "trainer.max_epochs=1",
        "+trainer.limit_train_batches=2", "model.dim=16", *SMALL_NET, *QUIET,
        f"hydra.run.dir={run}",
    ])  # fmt: skip
    assert trained.checkpoint is not None
    split = json.loads((run / "split.json").read_text())
    people = {n: {w.split("/")[0] for w in split[n]["writers"]} for n in ("train", "test")}
    assert len(people["test"]) == 2 and not people["train"] & people["test"]
    code = main(["evaluate", "--protocol", "same-name", "--ckpt", str(run), "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["protocol"] == "same-name" and result["training_split"]
    assert result["writers"]["test"] == sorted(people["test"], key=int)
    # 2 test writers x 10 names: 20 units x 6 genuine pairs; per name C(8, 2) - 2 x 6 negatives
    assert result["test"]["overall"]["genuine"] == 120
    assert result["test"]["overall"]["negatives"] == 160
    assert result["test"]["identification"]["queries"] == 2 * 3 * 4 * 10
    main(["evaluate", "--protocol", "same-name", "--ckpt", str(run)])
    assert "paper-electronic" in capsys.readouterr().out


def test_same_name_protocol_refuses_data_without_names(siamese_ckpt):
    with pytest.raises(ValueError) as err:
        run_protocol("same-name", siamese_ckpt)
    assert "\n" not in str(err.value)
    assert "needs the name and medium of every file (data=chinese_names" in str(err.value)


@pytest.mark.skipif(not REAL.is_dir(), reason=f"{REAL} not present")
def test_the_config_splits_the_real_collection_by_writer_in_every_fold():
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    with initialize_config_module("sigid.conf", version_base="1.3"):
        cfg = compose("train", overrides=["data=chinese_names", f"data.root={REAL}"])
    data = OmegaConf.to_container(cfg.data, resolve=True)
    tested: set[str] = set()
    for fold in range(5):
        dm = PairDataModule(**{**data, "split": {**data["split"], "fold": fold}})
        dm.setup("fit")  # decoded once: the later folds read the cache
        people = {n: {s.person for s in dm.samples[n]} for n in ("train", "val", "test")}
        assert [len(people[n]) for n in ("train", "val", "test")] == [38, 10, 12]
        assert len(set.union(*people.values())) == 60
        assert [len(dm.samples[n]) for n in ("train", "val", "test")] == [1520, 400, 480]
        assert not tested & people["test"]
        tested |= people["test"]
    assert len(tested) == 60
