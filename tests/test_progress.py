"""Visible training: a progress bar on a terminal, one line per epoch otherwise (a multirun job,
CI, a log file), and the same lines in train.log either way."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path

import pytest
from runs import SMALL, SMALL_NET

SIGID_TRAIN = Path(sys.executable).parent / "sigid-train"
ARGS = [*SMALL, *SMALL_NET, "logger=none", "trainer.enable_model_summary=false"]
EPOCH_LINE = re.compile(
    r"epoch (\d)/2  train/loss \d\.\d{4}  val/loss \d\.\d{4}  elapsed \S+  left ~"
)


def _on_a_terminal(cwd: Path, *args: str) -> tuple[int, str]:
    """Run sigid-train with its stdout and stderr on a pseudo-terminal; what it printed."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [str(SIGID_TRAIN), *args], cwd=cwd, stdin=subprocess.DEVNULL, stdout=follower,
        stderr=follower, close_fds=True,
    )  # fmt: skip
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([leader], [], [], 300)
        if not ready:
            process.kill()
            break
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the process ended
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return process.wait(timeout=60), b"".join(chunks).decode(errors="replace")


@pytest.mark.slow
def test_without_a_terminal_each_epoch_prints_one_line_and_logs_it(tmp_path):
    done = subprocess.run(
        [str(SIGID_TRAIN), *ARGS, "hydra.run.dir=run"], cwd=tmp_path, capture_output=True,
        text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert [m.group(1) for m in EPOCH_LINE.finditer(done.stderr)] == ["1", "2"]
    assert "it/s]" not in done.stderr and "s/it]" not in done.stderr  # no bar in a log
    log = (tmp_path / "run" / "train.log").read_text()
    assert [m.group(1) for m in EPOCH_LINE.finditer(log)] == ["1", "2"]


@pytest.mark.slow
def test_on_a_terminal_training_shows_a_progress_bar(tmp_path):
    code, shown = _on_a_terminal(tmp_path, *ARGS, "hydra.run.dir=run")
    assert code == 0, shown[-2000:]
    # Lightning's bar: Rich's ("Epoch 1/1 ━━━ 3/3") where rich is installed, else TQDM's
    assert re.search(r"Epoch 1(/1 .*━|: 100%\|)", shown), shown[-2000:]
    assert not EPOCH_LINE.search(shown)  # the bar says it; the lines go to train.log
    log = (tmp_path / "run" / "train.log").read_text()
    assert [m.group(1) for m in EPOCH_LINE.finditer(log)] == ["1", "2"]
