"""The mutation check (tools/mutation.py) stays runnable: every mutant's snippet is in its file
exactly once, and every test it names exists, so a refactor cannot leave a mutant behind."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import mutation
from mutation import MUTANTS, Mutant


def test_every_mutant_finds_its_line_and_its_tests():
    assert mutation._check(list(MUTANTS)) == []


def test_a_moved_snippet_or_a_renamed_test_is_named():
    first = MUTANTS[0]
    stale = Mutant(
        "stale", first.file, first.original + "# gone", first.replacement,
        (f"{first.tests[0]}", "tests/test_pairs.py::test_no_such_test[a-1]", "tests/nothing.py"),
        first.breaks,
    )  # fmt: skip
    assert mutation._check([stale]) == [
        f"stale: its snippet occurs 0 times in {first.file}, not once",
        "stale: its test test_no_such_test is not in tests/test_pairs.py",
        "stale: its test file tests/nothing.py does not exist",
    ]
