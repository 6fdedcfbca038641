"""`hydra/launcher=slurm|local`: a sweep's jobs sent to SLURM by hydra-submitit-launcher, or run
as submitit jobs on this machine, when the `slurm` extra is installed; the sweep's own records
(multirun.yaml, the summary) are written as with Hydra's basic launcher."""

from __future__ import annotations

import csv
import json

import pytest
from hydra import compose, initialize_config_module
from runs import SMALL_DATA, sigid_train

pytest.importorskip(
    "hydra_plugins.hydra_submitit_launcher", reason="the slurm extra: pip install 'sigid[slurm]'"
)


def test_the_slurm_launcher_composes_with_sigids_defaults_and_takes_the_clusters_own():
    overrides = ["hydra/launcher=slurm", "hydra.launcher.partition=gpu"]
    with initialize_config_module("sigid.conf", version_base="1.3"):
        cfg = compose("train", overrides, return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (launcher.gpus_per_node, launcher.tasks_per_node, launcher.nodes) == (1, 1, 1)
    assert launcher.cpus_per_task == 8 and launcher.mem_gb == 32 and launcher.timeout_min == 240
    assert launcher.partition == "gpu" and launcher.array_parallelism == 16
    assert cfg.hydra.callbacks.sweep_summary  # sigid's sweep callbacks stay on


@pytest.mark.slow
def test_a_two_job_sweep_runs_as_submitit_jobs_and_is_summarised(tmp_path):
    quick = [
        "trainer.max_epochs=1", "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1",
        "test=false", "logger=none", "model.channels=[8,16,16,16,16]", "model.hidden=32",
    ]  # fmt: skip
    done = sigid_train(
        tmp_path, "-m", "hydra/launcher=local", *SMALL_DATA, *quick, "hydra.sweep.dir=sweep",
        "model.depth=2,3",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Submitit 'local' sweep output dir" in done.stdout
    sweep = tmp_path / "sweep"
    for job in ("0", "1"):  # each job trained in a submitit process and recorded its results
        assert json.loads((sweep / job / "status.json").read_text())["status"] == "ok"
        assert json.loads((sweep / job / "metrics.json").read_text())["val_best"] is not None
    with (sweep / "summary.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["job"], r["overrides"], r["status"]) for r in rows] == [
        ("0", "model.depth=2", "ok"), ("1", "model.depth=3", "ok"),
    ]  # fmt: skip
    assert "model.depth=2,3" in (sweep / "multirun.yaml").read_text()
    # submitit's own logs, one folder per job, as on a cluster
    logs = sorted((sweep / ".submitit").glob("*/*_log.out"))
    assert len(logs) == 2
    assert all("Starting with JobEnvironment" in log.read_text() for log in logs)
