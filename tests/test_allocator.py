"""Freed memory kept for reuse (sigid.training.allocator): a training process stops faulting
in fresh pages for the buffers each step frees and allocates again."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from runs import QUIET, SMALL, SMALL_NET, sigid_train

from sigid.training.allocator import glibc

pytestmark = pytest.mark.skipif(glibc() is None, reason="glibc's malloc settings only")

# 10 times 64 MiB in 4 KiB pages: what a process faults in when freed memory goes back; kept,
# at most the first time or two fault (the heap grows once)
PAGES = 10 * (64 << 20) // 4096


def _faults(keep: bool) -> int:
    """`page_faults_of_reuse` in a fresh interpreter (the setting is for the whole process)."""
    code = textwrap.dedent(f"""
        from runs import page_faults_of_reuse
        from sigid.training.allocator import keep_freed_memory
        if {keep}:
            assert keep_freed_memory()
        print(page_faults_of_reuse())
    """)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120,
        cwd=Path(__file__).parent,
    )  # fmt: skip
    return int(done.stdout.split()[-1])


def test_kept_memory_is_reused_without_page_faults():
    assert _faults(keep=False) > PAGES // 2  # glibc's default: every buffer mapped afresh
    assert _faults(keep=True) < PAGES // 5


@pytest.mark.slow
@pytest.mark.parametrize("keep", [True, False])
def test_a_training_run_keeps_freed_memory_as_its_config_says(tmp_path, keep):
    done = sigid_train(
        tmp_path, *SMALL, *SMALL_NET, *QUIET, "hydra.run.dir=run", f"keep_freed_memory={keep}",
        "+callbacks.faults._target_=runs.PageFaultLog", f"+callbacks.faults.folder={tmp_path}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    faults = int((tmp_path / "page-faults.txt").read_text())
    assert (faults < PAGES // 5) if keep else (faults > PAGES // 2), faults
    assert f"freed memory kept {keep}" in (tmp_path / "run" / "train.log").read_text()
