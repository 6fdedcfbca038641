"""Typed configs: every key sigid reads is held to its type and range right after compose
(`sigid.tasks.schema`), in one line, before any data is read; and `sigid-train --help`."""

import os
import re
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import sigid.conf
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

import sigid
from sigid.tasks.build import build_datamodule, build_module, task_class
from sigid.tasks.schema import check_config

CONF = Path(sigid.conf.__file__).parent
GROUPS = ["data", "data/augment", "model", "trainer", "logger", "callbacks", "debug", "experiment"]
# every option of every group, as shipped: a new config file is checked without a new test
OPTIONS = [
    f"{group}={path.stem}" for group in GROUPS for path in sorted((CONF / group).glob("*.yaml"))
]
SIGID_TRAIN = Path(sys.executable).parent / "sigid-train"


def _cfg(*overrides: str):
    with initialize_config_module("sigid.conf", version_base="1.3"):
        return compose("train", overrides=list(overrides))


def _check(*overrides: str) -> None:
    cfg = _cfg(*overrides)
    check_config(cfg, task_class(cfg))


def _sigid_train(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(SIGID_TRAIN), *args], cwd=cwd, capture_output=True, text=True, timeout=600,
        check=False, env={**os.environ, "HYDRA_FULL_ERROR": ""},
    )  # fmt: skip


@pytest.mark.parametrize("option", OPTIONS)
def test_every_shipped_config_option_fits_the_schema_which_changes_nothing(option):
    cfg = _cfg(option)
    before = OmegaConf.to_yaml(cfg)
    check_config(cfg, task_class(cfg))
    assert OmegaConf.to_yaml(cfg) == before


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.depth=abc"], "model.depth='abc': expected an integer from 2 to 5"),
        (["model.depth=1"], "model.depth=1: expected an integer from 2 to 5"),
        (["model.depth=6"], "model.depth=6: expected an integer from 2 to 5"),
        (["model.depth=3.0"], "model.depth=3.0: expected an integer from 2 to 5"),
        (["model.depth='3'"], "model.depth='3': expected an integer from 2 to 5"),
        (["model=siamese_conv", "model.depth=9"], "model.depth=9: expected an integer from 2 to 5"),
        (["model.optimizer.lr=abc"], "model.optimizer.lr='abc': expected a number > 0"),
        (["model.optimizer.lr=0"], "model.optimizer.lr=0: expected a number > 0"),
        (["model.optimizer.lr=nan"], "model.optimizer.lr=nan: expected a number > 0"),
        (["model.optimizer.lr=true"], "model.optimizer.lr=true: expected a number > 0"),
        (["model.optimizer.name=lbfgs"],
         "model.optimizer.name='lbfgs': expected one of adam, adamw, sgd, rmsprop"),
        (["model.monitor_mode=maximum"], "model.monitor_mode='maximum': expected one of min, max"),
        (["model.channels=[8,x]"], "model.channels=[8, 'x']: expected a list of integers >= 1"),
        (["model.channels=8"], "model.channels=8: expected a list of integers >= 1"),
        (["model.dropout=1.5"], "model.dropout=1.5: expected a number from 0 to 1"),
        (["model=siamese", "model.loss=hinge"],
         "model.loss='hinge': expected one of bce, contrastive"),
        (["model=siamese", "model.head.scale=0"], "model.head.scale=0: expected a number > 0"),
        (["model=siamese", "model.head=1"], "model.head=1: expected a mapping of scale, offset"),
        (["trainer.max_epochs=-3"], "trainer.max_epochs=-3: expected an integer >= 1"),
        (["trainer.max_epochs=0"], "trainer.max_epochs=0: expected an integer >= 1"),
        (["trainer.max_epochs=-1"], "trainer.max_epochs=-1: expected an integer >= 1"),
        (["trainer.max_epochs=abc"], "trainer.max_epochs='abc': expected an integer >= 1"),
        (["trainer.enable_progress_bar=1"],
         "trainer.enable_progress_bar=1: expected true or false or null"),
        (["seed=null"], "seed=null: expected an integer from 0 to 4294967295"),
        (["seed=-1"], "seed=-1: expected an integer from 0 to 4294967295"),
        (["test=yes"], "test='yes': expected true or false"),
        (["init_from=3"], "init_from=3: expected a string or null"),
        (["data.batch_size=0"], "data.batch_size=0: expected an integer >= 1"),
        (["data.batch_size=abc"], "data.batch_size='abc': expected an integer >= 1"),
        (["data.num_workers=-1"], "data.num_workers=-1: expected an integer >= 0"),
        (["data.layout=scans"],
         "data.layout='scans': expected one of auto, folders, cedar, paired, manifest, "
         "chinese_names"),
        (["data.preprocess.size=[0,64]"],
         "data.preprocess.size=[0, 64]: expected a list of integers >= 1"),
        (["data.split.folds=1"], "data.split.folds=1: expected an integer >= 2"),
        (["data.pairs.skilled_fraction=1.5"],
         "data.pairs.skilled_fraction=1.5: expected a number from 0 to 1"),
        (["data.synthetic=5"],
         "data.synthetic=5: expected a mapping of writers, per_writer, forgeries, seed, script, "
         "name_sharing or null"),
        (["data.synthetic.writers=1"], "data.synthetic.writers=1: expected an integer >= 2"),
        (["data.synthetic.script=cyrillic"],
         "data.synthetic.script='cyrillic': expected one of latin, blocks, mixed"),
        (["data.synthetic.name_sharing=0"],
         "data.synthetic.name_sharing=0: expected an integer >= 1"),
        (["data.augment.rotation=abc"],
         "data.augment: augmentation rotation must be a number, got 'abc'"),
        (["data.augment.zoom=1.5"], "data.augment: augmentation zoom must be < 1, got 1.5"),
        (["data.test_distortion=heavyy"],
         "data.test_distortion: unknown augmentation preset 'heavyy'; choose from heavy, none, "
         "paper"),
    ],
)  # fmt: skip
def test_a_value_of_the_wrong_type_or_range_is_refused_naming_key_value_and_expectation(
    overrides, message
):
    with pytest.raises(ValueError) as refused:
        _check(*overrides)
    assert str(refused.value) == message


def test_an_interpolation_that_names_no_key_is_refused_by_its_key_in_one_line():
    with pytest.raises(ValueError) as refused:
        _check("model.image_size=${data.nope}")
    assert str(refused.value).startswith("model.image_size: Interpolation key 'data.nope' not")
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize(
    "overrides",
    [
        # the edges the replaced hand-written checks let through, still let through
        ["data.batch_size=1", "data.num_workers=0", "trainer.max_epochs=1", "seed=0"],
        ["seed=4294967295", "model.monitor_mode=max", "model.monitor=val/acc"],
        ["model.depth=2", "model.optimizer.lr=1", "model.dropout=0", "data.split.val=2"],
        ["model.depth=5", "trainer.enable_progress_bar=false", "data.synthetic=null"],
        ["model=siamese", "+model.extra_key_for_the_module=1", "+trainer.limit_train_batches=3"],
    ],
)
def test_values_inside_the_ranges_and_keys_the_schema_does_not_name_pass(overrides):
    _check(*overrides)


def test_a_model_class_without_a_schema_of_its_own_is_held_to_the_keys_every_model_has():
    other = type("Other", (L.LightningModule,), {})  # a model._target_ outside sigid
    check_config(_cfg("model.depth=abc"), other)  # its own keys are its own to check
    with pytest.raises(ValueError, match=r"^model\.optimizer\.lr='abc': expected a number > 0$"):
        check_config(_cfg("model.optimizer.lr=abc"), other)


def test_what_builds_from_the_config_holds_its_part_to_the_schema_before_building():
    # evaluation and the bench build the data and the network from a config without `run`
    with pytest.raises(ValueError, match=r"^data\.batch_size=0: expected an integer >= 1$"):
        build_datamodule(_cfg("data.batch_size=0"))
    with pytest.raises(ValueError, match=r"^model\.depth='abc': expected an integer from 2 to 5$"):
        build_module(_cfg("model.depth=abc"), datamodule=None)  # refused before it is read


def _shown(done: subprocess.CompletedProcess) -> str:
    return done.stdout + done.stderr


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.depth=abc", "model.depth='abc': expected an integer from 2 to 5"),
        ("model.optimizer.lr=abc", "model.optimizer.lr='abc': expected a number > 0"),
        ("trainer.max_epochs=-3", "trainer.max_epochs=-3: expected an integer >= 1"),
    ],
)
def test_sigid_train_refuses_a_bad_value_in_one_line_before_reading_any_data(
    tmp_path, override, message
):
    # data a run would fail to find if it looked (its own one-line error), and a cache it
    # would write into: the refusal is the schema's, and nothing was read or written
    data = ["data=folders", f"data.root={tmp_path / 'absent'}", f"data.cache_dir={tmp_path / 'c'}"]
    done = _sigid_train(tmp_path, override, *data, "hydra.run.dir=run")
    assert done.returncode == 1
    assert _shown(done).strip() == f"sigid-train: error: {message}"
    assert not (tmp_path / "c").exists() and not (tmp_path / "run" / "split.json").exists()


def test_the_python_api_refuses_a_bad_value_before_it_makes_a_run_folder(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(ValueError, match=r"^model\.depth='abc': expected an integer from 2 to 5$"):
        sigid.train(["model.depth=abc", f"hydra.run.dir={run}"])
    assert not run.exists()


def test_sigid_train_help_shows_sigids_header_examples_and_config_groups(tmp_path):
    done = _sigid_train(tmp_path, "--help")
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert text.startswith("sigid-train: train a signature identification")
    assert "powered by Hydra" not in text and not (tmp_path / "outputs").exists()
    for group in GROUPS:
        options = sorted(p.stem for p in (CONF / group).glob("*.yaml"))
        assert f"\n{group}: {', '.join(options)}\n" in text
    examples = re.findall(r"^\s+sigid-train (.+)$", text, flags=re.MULTILINE)
    assert len(examples) == 4
    assert any(e.startswith("-m ") for e in examples) and "debug=fdr" in examples
    assert any("ckpt_path=" in e and "hydra.run.dir=" in e for e in examples)
    for example in examples:  # each one composes, with the first value of a sweep
        overrides = [o.split(",")[0] for o in example.split() if o != "-m"]
        _check(*[o for o in overrides if not o.startswith("hydra.")])
