import logging
import warnings

from lightning import Trainer
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities._pytree import _tree_flatten
from runs import SMALL_DATA

import sigid
from sigid.errors import (
    ADVERT_LOGGER,
    hide_dependency_noise,
    one_line,
    os_reason,
    quiet_dependency_noise,
)


def test_one_line_collapses_whitespace_cuts_long_messages_and_names_a_bare_exception():
    assert one_line(ValueError("while parsing\n  a block\tmapping")) == (
        "while parsing a block mapping"
    )
    long = one_line(RuntimeError("x" * 500), limit=20)
    assert long == "x" * 17 + "..." and len(long) == 20
    assert one_line(RuntimeError("x" * 500), limit=None) == "x" * 500
    assert one_line(KeyError()) == "KeyError"


def test_the_commands_hide_lightnings_leafspec_warning_and_nothing_else():
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        hide_dependency_noise()
        _tree_flatten({"batch": [1, 2]})  # what every Trainer.fit/test does on torch 2.14
        warnings.warn("another deprecation", FutureWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["another deprecation"]


def test_os_reason_is_the_systems_words_or_the_whole_message():
    assert os_reason(FileNotFoundError(2, "No such file or directory", "x.png")) == (
        "No such file or directory"
    )
    assert os_reason(OSError("cannot seek in a pipe")) == "cannot seek in a pipe"  # no strerror


def test_the_python_api_hides_the_leafspec_warning_inside_its_calls_only(cnn_ckpt):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with quiet_dependency_noise():
            _tree_flatten({"batch": [1, 2]})
        assert seen == []
        _tree_flatten({"batch": [1, 2]})  # the caller's filters again: shown
        assert len(seen) == 1 and "LeafSpec" in str(seen[0].message)
        seen.clear()
        sigid.evaluate(cnn_ckpt, SMALL_DATA)  # a real Trainer.test, from the Python API
    assert not [w for w in seen if "LeafSpec" in str(w.message)]


def _lightning_messages(caplog, folder) -> list[str]:
    caplog.clear()
    Trainer(logger=CSVLogger(folder), enable_progress_bar=False, enable_model_summary=False)
    return [r.getMessage() for r in caplog.records if r.name == ADVERT_LOGGER]


def test_lightnings_advert_is_hidden_by_api_and_commands_its_banner_by_commands(caplog, tmp_path):
    advert = logging.getLogger(ADVERT_LOGGER)
    before = list(advert.filters)
    advert.filters[:] = []  # as a fresh process has it (in-process command tests add the filter)
    caplog.set_level(logging.INFO, logger=ADVERT_LOGGER)
    shown = _lightning_messages(caplog, tmp_path)
    assert any("Tip:" in m for m in shown) and any("GPU available" in m for m in shown)
    with quiet_dependency_noise():
        inside = _lightning_messages(caplog, tmp_path)
    assert not any("Tip:" in m for m in inside) and any("GPU available" in m for m in inside)
    assert advert.filters == []  # the caller's logging as it was
    assert any("Tip:" in m for m in _lightning_messages(caplog, tmp_path))
    try:
        hide_dependency_noise()
        hide_dependency_noise()
        assert len(advert.filters) == 1
        shown = _lightning_messages(caplog, tmp_path)
        assert not any("Tip:" in m or "GPU available" in m for m in shown)
    finally:
        advert.filters[:] = before


def test_the_public_names_are_listed_though_loaded_on_first_use():
    public = [name for name in dir(sigid) if not name.startswith("_")]
    assert public == sorted(sigid.__all__)
    assert all(callable(getattr(sigid, name)) for name in public)
