"""`hparams_search=cnn_optuna`: an Optuna search of the value sigid-train returns (the best
validation value of model.monitor), when the `optuna` extra is installed."""

from __future__ import annotations

import csv

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf
from runs import SMALL_DATA, sigid_train

pytest.importorskip(
    "hydra_plugins.hydra_optuna_sweeper", reason="the optuna extra: pip install 'sigid[optuna]'"
)


@pytest.mark.parametrize(("mode", "direction"), [("min", "minimize"), ("max", "maximize")])
def test_the_search_optimises_in_the_direction_of_the_monitored_metric(mode, direction):
    monitor = {"min": "val/loss", "max": "val/acc"}[mode]
    overrides = [f"model.monitor={monitor}", f"model.monitor_mode={mode}"]
    with initialize_config_module("sigid.conf", version_base="1.3"):
        cfg = compose("train", ["hparams_search=cnn_optuna", *overrides], return_hydra_config=True)
    assert cfg.hydra.sweeper.direction == direction
    assert "model.optimizer.lr" in cfg.hydra.sweeper.params


def test_two_trials_run_as_jobs_of_a_sweep_and_optuna_keeps_the_best(tmp_path):
    quick = [
        "trainer.max_epochs=1", "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1",
        "test=false", "model.channels=[8,16,16,16,16]",
    ]  # fmt: skip
    done = sigid_train(
        tmp_path, "hparams_search=cnn_optuna", "hydra.sweeper.n_trials=2", *SMALL_DATA, *quick,
        "hydra.sweep.dir=sweep", "model.hidden=choice(32,48)",  # searched too: given here
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    sweep = tmp_path / "sweep"
    with (sweep / "summary.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert all("model.optimizer.lr=" in r["overrides"] for r in rows)
    best = OmegaConf.load(sweep / "optimization_results.yaml")
    assert f"{best.best_value:.4f}" == min(r["val_best"] for r in rows)  # val/loss: the lowest
    # each trial's TensorBoard run is named by the settings Optuna drew, from either place
    for job in ("0", "1"):
        (label,) = (sweep / job / "tensorboard").iterdir()
        assert label.name.startswith("depth=") and ",lr=" in label.name and ",hidden=" in label.name
