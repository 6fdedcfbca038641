"""Shared fixtures: the real CEDAR copy, a cache folder per session, tiny trained checkpoints."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings
from runs import tiny_checkpoint

# Property tests (test_properties.py): "ci", the default, draws the same examples on every run
# (derandomized, no example database), so a failure in CI fails again on any machine.
# HYPOTHESIS_PROFILE=explore draws fresh random examples, many more, to look for new failures;
# a failing example it finds belongs in the test as an @example.
settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    max_examples=60,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
# tools/mutation.py: "ci" without shrinking a failure (only whether a test fails counts there).
settings.register_profile(
    "mutation", settings.get_profile("ci"), phases=[Phase.explicit, Phase.reuse, Phase.generate]
)
settings.register_profile("explore", max_examples=2000, deadline=None, database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

CEDAR_CANDIDATES = [
    os.environ.get("SIGID_CEDAR"),
    Path(__file__).resolve().parents[2] / "shared" / "data" / "cedar",
]


def _cedar() -> Path | None:
    for candidate in CEDAR_CANDIDATES:
        if candidate and (Path(candidate) / "signatures" / "full_org").is_dir():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def cedar_root() -> Path:
    """The real CEDAR set ($SIGID_CEDAR if set, else ../shared/data/cedar)."""
    root = _cedar()
    if root is None:
        pytest.skip("CEDAR not found at ../shared/data/cedar (set SIGID_CEDAR to its folder)")
    return root


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory) -> None:
    """Keep tests out of the user's ~/.cache/sigid."""
    os.environ["SIGID_CACHE"] = str(tmp_path_factory.mktemp("sigid-cache"))


@pytest.fixture(scope="session")
def siamese_ckpt(tmp_path_factory, _isolated_cache) -> Path:
    """A tiny conv Siamese checkpoint (32x64 images, 16-d embeddings), trained once."""
    return tiny_checkpoint(tmp_path_factory.mktemp("snn"), "model=siamese_conv", "model.dim=16")


@pytest.fixture(scope="session")
def cnn_ckpt(tmp_path_factory, _isolated_cache) -> Path:
    """A tiny CNN writer classifier checkpoint (6 synthetic writers), trained once."""
    return tiny_checkpoint(tmp_path_factory.mktemp("cnn"), "model=cnn", "model.hidden=32")


@pytest.fixture(scope="session")
def cedar_subset(cedar_root, tmp_path_factory) -> Path:
    """CEDAR writers 1-6, 8 genuine + 4 forgeries each (links to the real files): the writer-
    disjoint split of 3 folds puts 2 writers in validation and 2 in test."""
    root = tmp_path_factory.mktemp("cedar-subset")
    for sub, stem, count in (("full_org", "original", 8), ("full_forg", "forgeries", 4)):
        (root / sub).mkdir()
        for writer in range(1, 7):
            for number in range(1, count + 1):
                name = f"{stem}_{writer}_{number}.png"
                (root / sub / name).symlink_to(cedar_root / "signatures" / sub / name)
    return root
