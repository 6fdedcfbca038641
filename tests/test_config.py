import sys

import pytest
import torch
from drawing import write_folders
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from sigid.data.cache import default_cache_dir
from sigid.data.datamodules import ClassFolderDataModule, PairDataModule
from sigid.data.layouts import DatasetError

DATA_CONFIGS = ["synthetic", "cedar", "folders", "manifest", "chinese_names"]


def _data(*overrides):
    with initialize_config_module("sigid.conf", version_base="1.3"):
        cfg = compose("train", overrides=list(overrides))
    return OmegaConf.to_container(cfg.data, resolve=True)


@pytest.mark.parametrize("name", DATA_CONFIGS)
def test_every_data_config_composes_into_datamodule_arguments(name, tmp_path):
    data = _data(f"data={name}", f"data.root={tmp_path}")
    for cls in (ClassFolderDataModule, PairDataModule):
        dm = cls(**data)
        assert dm.preprocess == {"mode": "normalized", "size": [128, 128]}
    assert data["augment"]["rotation"] == 10


def test_cedar_config_reads_the_real_set_with_a_16_4_4_split(cedar_root):
    dm = ClassFolderDataModule(**_data("data=cedar", f"data.root={cedar_root}"))
    dm.setup("fit")
    assert dm.num_classes == 55
    assert [len(dm.samples[s]) for s in ("train", "val", "test")] == [880, 220, 220]


def test_default_data_generates_the_synthetic_set_once_into_the_cache(tmp_path):
    data = _data(
        "data.synthetic.writers=3",
        "data.synthetic.per_writer=10",
        "data.synthetic.forgeries=2",
        f"data.cache_dir={tmp_path}",
    )
    assert data["root"] is None
    dm = ClassFolderDataModule(**data)
    dm.prepare_data()
    dm.setup("fit")
    assert dm.class_names == ["writer01", "writer02", "writer03"]
    assert len(list((tmp_path / "synthetic").iterdir())) == 1


def test_preprocessing_split_and_augmentation_are_config(tmp_path):
    root = write_folders(tmp_path / "d", writers=3, per_writer=6)
    data = _data(
        "data=folders",
        f"data.root={root}",
        "data.preprocess.mode=paper",
        "data.preprocess.size=[48,96]",
        "data.split.val=1",
        "data.split.test=2",
        "data/augment=none",
        "data.test_distortion=heavy",
        f"data.cache_dir={tmp_path / 'c'}",
    )
    dm = ClassFolderDataModule(**data)
    dm.setup("fit")
    assert dm.images["train"].shape == (9, 48, 96)
    assert dm.images["val"].mean() > 128  # paper mode keeps dark ink on white
    image, _ = dm.dataset("train")[0]  # no augmentation: the cached image, as is
    assert torch.equal(image[0], torch.from_numpy(dm.images["train"][0]).float() / 255)
    assert dm.test_distortion["rotation"] == 15


@pytest.mark.parametrize("name", ["folders", "manifest"])
def test_own_data_without_a_root_is_refused_not_replaced_by_synthetic(name):
    dm = ClassFolderDataModule(**_data(f"data={name}"))
    with pytest.raises(DatasetError, match=r"data\.root is not set"):
        dm.prepare_data()


def test_the_cache_folder_follows_the_environment_without_needing_home(tmp_path, monkeypatch):
    # Windows has no $HOME: the config must not need it when $SIGID_CACHE says where
    monkeypatch.delenv("HOME", raising=False)
    monkeypatch.setenv("SIGID_CACHE", str(tmp_path / "sigid"))
    assert ClassFolderDataModule(**_data()).cache_dir == tmp_path / "sigid"
    # without $SIGID_CACHE, the same folder as `sigid probe`: $XDG_CACHE_HOME/sigid
    monkeypatch.delenv("SIGID_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert ClassFolderDataModule(**_data()).cache_dir == tmp_path / "xdg" / "sigid"
    assert ClassFolderDataModule(**_data()).cache_dir == default_cache_dir()


@pytest.mark.parametrize(
    ("sigid_cache", "xdg", "expected"),
    [
        ("own", "xdg", "own"),  # $SIGID_CACHE wins
        ("", "xdg", "xdg/sigid"),  # an empty $SIGID_CACHE is unset
        (None, "xdg", "xdg/sigid"),
        (None, None, "home/.cache/sigid"),
        (None, "", "home/.cache/sigid"),  # an empty $XDG_CACHE_HOME is unset (XDG spec)
    ],
)
@pytest.mark.skipif(sys.platform != "linux", reason="platformdirs' Linux (XDG) folders")
def test_the_default_cache_folder_on_linux(tmp_path, monkeypatch, sigid_cache, xdg, expected):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name, value in (("SIGID_CACHE", sigid_cache), ("XDG_CACHE_HOME", xdg)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, str(tmp_path / value) if value else "")
    assert default_cache_dir() == tmp_path / expected


def test_a_missing_data_root_names_sigid_data_and_data_root(tmp_path):
    dm = ClassFolderDataModule(**_data("data=cedar", f"data.root={tmp_path / 'cedar'}"))
    with pytest.raises(DatasetError, match="SIGID_DATA") as missing:
        dm.prepare_data()
    assert str(missing.value).startswith(f"{tmp_path / 'cedar'}: no such file or folder")
    assert "data.root=" in str(missing.value)
