"""The docs check (tools/docs_check.py): every command in README.md and docs/ is run or tested."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import docs_check
from docs_check import Command

FOUND = docs_check.all_commands()


def test_every_doc_command_is_run_or_exercised_by_a_named_test():
    assert docs_check.coverage_problems(FOUND) == []


def test_a_new_command_that_nothing_exercises_fails_the_check():
    new = Command("README.md", 999, "sigid-train experiment=paper_cnn model.depth=7")
    problems = docs_check.coverage_problems([*FOUND, new])
    assert problems == [
        "README.md:999: neither run nor exercised by a test (add it to RUN or EXERCISED_BY in "
        "tools/docs_check.py): sigid-train experiment=paper_cnn model.depth=7"
    ]


def test_a_mapping_to_a_test_that_does_not_exist_fails_the_check():
    mapping = dict(docs_check.EXERCISED_BY)
    text = next(iter(mapping))
    mapping[text] = ["tests/test_cli.py::test_that_was_renamed"]
    problems = docs_check.coverage_problems(FOUND, exercised_by=mapping)
    assert problems == [
        f"tools/docs_check.py: no such test tests/test_cli.py::test_that_was_renamed (for: {text})"
    ]


def test_an_entry_no_doc_holds_any_more_fails_the_check():
    run = {**docs_check.RUN, "sigid --version": None}
    problems = docs_check.coverage_problems(FOUND, run=run)
    assert problems == ["tools/docs_check.py: no doc holds this command any more: sigid --version"]


def test_a_command_waiting_for_a_merge_fails_the_check():
    text = "sigid identify new.png --not-yet-merged"  # in no doc
    waiting = Command("docs/cli.md", 3, text)
    problems = docs_check.coverage_problems(
        [*FOUND, waiting], pending={text: ["TODO-MERGE: its test"]}
    )
    assert len(problems) == 1 and problems[0].startswith("docs/cli.md:3: TODO-MERGE")


def test_commands_are_read_from_shell_blocks_only(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text(
        "Text `sigid-train not_a_command=1`.\n\n"
        "```python\nsigid.train([])\n```\n\n"
        "```bash\n# a comment\n"
        "sigid-train -m model.depth=2,3 \\\n    trainer.max_epochs=5   # why\n"
        "for F in 0 1; do\n  sigid summarize out/$F\ndone\n#   printed output\n```\n\n"
        "  ```console\n  $ sigid --version\n  sigid 0.1.0\n  ```\n",
        encoding="utf-8",
    )
    found = docs_check.all_commands(tmp_path)
    assert [(c.line, c.text) for c in found] == [
        (9, "sigid-train -m model.depth=2,3 trainer.max_epochs=5"),
        (11, "for F in 0 1; do sigid summarize out/$F; done"),
        (18, "sigid --version"),
    ]


def test_every_sigid_command_in_the_docs_parses():
    assert docs_check.parse_problems(FOUND) == []


def test_a_misspelt_option_fails_the_parse_check():
    wrong = Command("README.md", 1, "sigid verify a.png b.png --ckpt snn.ckpt --treshold 0.5")
    assert len(docs_check.parse_problems([wrong])) == 1


def test_an_output_redirection_is_the_shells_not_an_argument_of_sigid():
    to_file = Command("docs/cli.md", 1, "sigid identify --ckpt c.ckpt a.png --format csv > a.csv")
    assert docs_check.parse_problems([to_file]) == []


def test_every_sigid_train_command_in_the_docs_composes():
    assert docs_check.compose_problems(FOUND) == []


def test_a_misspelt_key_fails_the_compose_check():
    wrong = Command("README.md", 1, "sigid-train -m model.dpeth=2,3 trainer.max_epochs=5")
    assert len(docs_check.compose_problems([wrong])) == 1


SHORT = list(dict.fromkeys(c.text for c in FOUND if c.text in docs_check.RUN))


@pytest.mark.slow
@pytest.mark.parametrize("text", SHORT)
def test_the_short_commands_run(text, tmp_path):
    ok, report = docs_check.run_one(text, tmp_path)
    assert ok, report


def test_a_command_past_its_limit_is_stopped_and_reported_as_failed(tmp_path, monkeypatch):
    monkeypatch.setitem(docs_check.RUN, "sleep 30", None)
    ok, report = docs_check.run_one("sleep 30", tmp_path, timeout_s=1)
    assert not ok
    assert report == "timed out after 1 s: sleep 30"


def _running(pid: int) -> bool:
    """Whether pid is a live process (not gone, not a zombie waiting to be reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_a_command_past_its_limit_leaves_none_of_its_processes_running(tmp_path, monkeypatch):
    # the child lets go of the output pipe, so nothing waits for it to end by itself
    command = "sleep 300 > /dev/null 2>&1 & echo $! > child.pid; wait"
    monkeypatch.setitem(docs_check.RUN, command, None)
    ok, _ = docs_check.run_one(command, tmp_path, timeout_s=1)
    child = int((tmp_path / "child.pid").read_text())
    running = _running(child)
    if running:
        os.kill(child, signal.SIGKILL)
    assert not ok
    assert not running
