"""Training on two collections (`data.extra`): extra writers join the training split only,
under their collection's name, with their own forgeries; `fold: true` holds the collection's own
validation and test writers out; without extras, training is bit for bit as before."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from runs import QUIET, SMALL, SMALL_NET, sigid_train
from test_chinese_names import write_chinese_names

import sigid
from sigid.cli import main
from sigid.data.datamodules import PairDataModule
from sigid.data.pairs import SKILLED, WriterBatchSampler
from sigid.data.splits import split_writers
from sigid.data.synthetic import generate

SIZE = [32, 64]
SPLIT = {"folds": 3, "fold": 0, "val_writers": 1}
PAIRS = {"train": 48, "val": 24, "test": 24, "skilled_fraction": 0.5}
BATCH = {"writers": 4, "genuine": 2, "forgeries": 2}


@pytest.fixture(scope="module")
def primary(tmp_path_factory) -> Path:
    """A CEDAR-like primary collection: 6 procedural writers with skilled forgeries."""
    out = tmp_path_factory.mktemp("primary")
    return generate(out / "set", writers=6, per_writer=12, forgeries=4, seed=0)


@pytest.fixture(scope="module")
def names(tmp_path_factory) -> Path:
    """A chinese_names folder of 10 writers (100 units)."""
    return write_chinese_names(tmp_path_factory.mktemp("cn") / "chinese_names", writers=10)


def _datamodule(root: Path, cache: Path, **extra_kw) -> PairDataModule:
    dm = PairDataModule(
        root=str(root), layout="paired", preprocess={"mode": "normalized", "size": SIZE},
        split=SPLIT, pairs={**PAIRS, "batch": BATCH}, cache_dir=str(cache), seed=0, **extra_kw,
    )  # fmt: skip
    dm.setup("fit")
    return dm


def test_extra_writers_join_training_only_under_their_name_with_their_own_forgeries(
    primary, names, tmp_path
):
    alone = _datamodule(primary, tmp_path)
    both = _datamodule(primary, tmp_path, extra=[{"root": str(names), "layout": "chinese_names"}])
    # validation and test: the primary collection's, pairs and all
    for split in ("val", "test"):
        assert both.samples[split] == alone.samples[split]
        assert both.pairs[split] == alone.pairs[split]
        assert (both.images[split] == alone.images[split]).all()
    mine = [s for s in both.samples["train"] if s.writer.startswith("chinese_names:")]
    assert both.samples["train"][: len(alone.samples["train"])] == alone.samples["train"]
    assert len(mine) == 400 and len({s.writer for s in mine}) == 100  # fold: false: all of it
    assert {s.person for s in mine} == {f"chinese_names:{w}" for w in range(1, 11)}
    assert all(s.text.startswith("chinese_names:name") for s in mine)
    manifest = both.split_manifest()
    assert manifest["val"] == alone.split_manifest()["val"]
    assert manifest["test"] == alone.split_manifest()["test"]
    record = manifest["extra"]["chinese_names"]
    assert record["fold"] is False and record["layout"] == "chinese_names"
    assert len(record["writers"]) == 100 and record["files"] == 400
    assert str(names / "3" / "14.jpg") in manifest["train"]["files"]
    assert "chinese_names:3/name3" in manifest["train"]["writers"]

    # writer batches draw from the union; each collection's forgeries stay its own
    sampler = WriterBatchSampler(both.samples["train"], **BATCH, seed=0)
    samples = both.samples["train"]
    unit = "chinese_names:7/name2"
    assert {samples[i].text for i in sampler.forged_of[unit]} == {"chinese_names:name2"}
    assert {samples[i].person for i in sampler.forged_of[unit]} == {
        f"chinese_names:{w}" for w in range(1, 11) if w != 7
    }
    for writer in alone.train_writers:
        assert all(not samples[i].genuine for i in sampler.forged_of[writer])
        assert {samples[i].writer for i in sampler.forged_of[writer]} == {writer}
    drawn = {samples[i].writer.startswith("chinese_names:") for b in sampler.epoch_batches(0)
             for i in b}  # fmt: skip
    assert drawn == {True, False}
    # random training pairs too: a writer of each collection in the fixed training pairs
    paired = {samples[i].writer.startswith("chinese_names:") for p in both.pairs["train"]
              for i in (p.a, p.b)}  # fmt: skip
    assert paired == {True, False}
    skilled = [p for p in both.pairs["train"] if p.kind == SKILLED]
    assert all(samples[p.a].person != samples[p.b].person for p in skilled)
    assert both.writer_classes == len(alone.train_writers) + 100


def test_fold_true_trains_only_the_collections_own_training_writers(primary, names, tmp_path):
    extra = {"root": str(names), "layout": "chinese_names", "fold": True}
    both = _datamodule(primary, tmp_path, extra=[extra])
    # the collection's own split (conf/data/chinese_names.yaml: 5 folds, 0.2 validation), the
    # run's fold and seed: what `sigid evaluate ... data=chinese_names` tests on is held out
    own = split_writers([str(w) for w in range(1, 11)], folds=5, fold=0, val=0.2, seed=0)
    people = {s.person for s in both.samples["train"] if s.writer.startswith("chinese_names:")}
    assert people == {f"chinese_names:{w}" for w in own["train"]}
    record = both.split_manifest()["extra"]["chinese_names"]
    assert record["held_out"] == {
        k: [f"chinese_names:{w}" for w in own[k]] for k in ("val", "test")
    }
    assert record["split"] == {"folds": 5, "fold": 0, "val_writers": 0.2, "rotate_val": False,
                               "seed": 0}  # fmt: skip
    # against the collection's own split as evaluation builds it: no file in common
    cn = PairDataModule(
        root=str(names), layout="chinese_names", preprocess={"mode": "normalized", "size": SIZE},
        split={"folds": 5, "fold": 0, "val_writers": 0.2}, pairs={**PAIRS, "skilled_fraction": 1.0},
        cache_dir=str(tmp_path), seed=0,
    )  # fmt: skip
    cn.setup("fit")
    trained = set(both.split_manifest()["train"]["files"])
    for split in ("val", "test"):
        assert not trained & set(cn.split_manifest()[split]["files"])
    assert {s.path for s in cn.samples["train"]} == {
        s.path for s in both.samples["train"] if s.writer.startswith("chinese_names:")
    }
    # an inline split changes it; the fold follows the run's unless given
    inline = _datamodule(primary, tmp_path, extra=[{**extra, "split": {"folds": 2}}])
    record = inline.split_manifest()["extra"]["chinese_names"]
    assert record["split"]["folds"] == 2 and len(record["held_out"]["test"]) == 5


def _refusal(tmp_path: Path, *overrides: str, model: str = "siamese_conv") -> str:
    with pytest.raises(ValueError) as err:
        sigid.train([
            *SMALL, *SMALL_NET, *QUIET, f"model={model}", *overrides,
            f"hydra.run.dir={tmp_path}/r",
        ])  # fmt: skip
    assert "\n" not in str(err.value)
    return str(err.value)


def test_a_bad_extra_collection_is_refused_in_one_line_naming_its_setting(primary, names, tmp_path):
    cn = f"{{root:{names},layout:chinese_names}}"
    missing = _refusal(tmp_path, f"data.extra=[{cn},{{root:{tmp_path}/nowhere}}]")
    assert missing.startswith(f"data.extra[1].root={tmp_path}/nowhere: no such file or folder")
    layout = _refusal(tmp_path, f"data.extra=[{{root:{names},layout:chinese}}]")
    assert layout.startswith("data.extra[0].layout='chinese': expected one of auto, folders")
    size = _refusal(tmp_path, f"data.extra=[{{root:{names},preprocess:{{size:[64,64]}}}}]")
    assert size.startswith("data.extra[0].preprocess.size=[64, 64]: differs from the run's")
    assert "data.preprocess.size=[32, 64]" in size
    mode = _refusal(tmp_path, f"data.extra=[{{root:{names},preprocess:{{mode:paper}}}}]")
    assert mode.startswith("data.extra[0].preprocess.mode=paper: differs")
    twice = _refusal(tmp_path, f"data.extra=[{cn},{cn}]")
    assert twice.startswith("data.extra[1].name='chinese_names': another extra collection")
    unknown = _refusal(tmp_path, f"data.extra=[{{root:{names},folds:2}}]")
    assert unknown.startswith("data.extra[0].folds: not a setting of an extra collection")
    wrong = _refusal(tmp_path, f"data.extra=[{{root:{names},layout:cedar}}]")
    assert wrong.startswith("data.extra[0]: ") and "no full_org folder found" in wrong
    cnn = _refusal(tmp_path, f"data.extra=[{cn}]", model="cnn")
    assert cnn.startswith("data.extra[0]: extra collections train pair runs")


def _seen(run: Path) -> str:
    """What a run trained and validated on, hashed: its split.json (file names relative to the
    data set) and PairLog's batches of every epoch and validation pairs."""
    split = json.loads((run / "split.json").read_text())
    for part in split.values():
        part["files"] = ["/".join(Path(f).parts[-2:]) for f in part["files"]]
    logged = json.loads((run / "pairs-rank0.json").read_text())
    text = json.dumps({"split": split, "pairs": logged}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


# `_seen` of the run below on branch `alloc` (027d11a), before data.extra existed.
BEFORE = "ed0ad0fed75aa15fe2c218b16660b0529f74be11d6a509f9f2bbb1a84cdd3843"


def test_without_extras_training_is_bit_identical_to_before(tmp_path):
    run = tmp_path / "run"
    result = sigid_train(
        tmp_path, *SMALL, *SMALL_NET, *QUIET, "model=siamese_conv",
        "data.pairs.batch={writers:4,genuine:2,forgeries:2}", "data.extra=[]",
        f"paths.cache_dir={tmp_path}/cache",
        "+callbacks.pairs._target_=runs.PairLog", f"+callbacks.pairs.folder={run}",
        f"hydra.run.dir={run}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "extra" not in json.loads((run / "split.json").read_text())
    assert _seen(run) == BEFORE


def test_a_run_on_two_collections_is_evaluated_on_the_extras_unseen_writers(
    primary, names, tmp_path, capsys
):
    run = tmp_path / "run"
    trained = sigid.train([
        "experiment=cedar_snn", f"data.root={primary}", "data.layout=paired",
        "data.preprocess.size=[32,64]", "data.split.folds=3", "data.split.val_writers=1",
        "data.pairs.val=24", "data.pairs.test=24", "data.pairs.batch.writers=4",
        f"data.extra=[{{root:{names},layout:chinese_names,fold:true}}]",
        "trainer.max_epochs=1", "+trainer.limit_train_batches=2", "model.dim=16",
        *SMALL_NET, *QUIET, f"hydra.run.dir={run}",
    ])  # fmt: skip
    assert trained.checkpoint is not None
    split = json.loads((run / "split.json").read_text())
    assert split["extra"]["chinese_names"]["fold"] is True
    assert len(split["extra"]["chinese_names"]["writers"]) == 60  # 6 training writers x 10
    data = ["data=chinese_names", f"data.root={names}", "data.preprocess.size=[32,64]",
            "data.pairs.val=24", "data.pairs.test=24"]  # fmt: skip
    code = main(["evaluate", "--protocol", "same-name", "--ckpt", str(run), *data, "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["training_split"]  # checked against split.json: nothing seen
    held = split["extra"]["chinese_names"]["held_out"]["test"]
    assert [f"chinese_names:{w}" for w in result["writers"]["test"]] == held
    # fold 2's test writers were trained on (fold 1's validated fold 0): split.json lists
    # their files, so evaluating on them is refused
    assert main(["evaluate", "--protocol", "same-name", "--ckpt", str(run), *data,
                 "data.split.fold=2"]) != 0  # fmt: skip
    assert "were trained on" in capsys.readouterr().err


CEDAR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cedar"
REAL_NAMES = Path(__file__).resolve().parents[2] / "shared" / "data" / "chinese_names"


@pytest.mark.skipif(
    not (CEDAR.is_dir() and REAL_NAMES.is_dir()), reason="CEDAR or chinese_names not present"
)
def test_cedar_with_the_real_chinese_names_trains_its_38_training_writers_of_the_fold():
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    extra = f"data.extra=[{{root:{REAL_NAMES},layout:chinese_names,fold:true}}]"
    with initialize_config_module("sigid.conf", version_base="1.3"):
        cfg = compose("train", overrides=["experiment=cedar_snn", f"data.root={CEDAR}", extra])
        own = compose("train", overrides=["data=chinese_names", f"data.root={REAL_NAMES}"])
    both = PairDataModule(**OmegaConf.to_container(cfg.data, resolve=True))
    both.setup("fit")  # read from the preprocessing cache where a run made it
    alone = PairDataModule(**OmegaConf.to_container(own.data, resolve=True))
    alone.setup("fit")
    people = {s.person for s in both.samples["train"] if s.writer.startswith("chinese_names:")}
    assert len(people) == 38 and len(both.samples["train"]) - 1680 == 1520  # CEDAR: 35 x 48
    assert people == {f"chinese_names:{s.person}" for s in alone.samples["train"]}
    held = both.split_manifest()["extra"]["chinese_names"]["held_out"]
    assert len(held["test"]) == 12 and len(held["val"]) == 10
    assert {p.split(":")[1] for p in held["test"]} == {s.person for s in alone.samples["test"]}
    assert {s.person for s in both.samples["test"]} <= {str(w) for w in range(1, 56)}
