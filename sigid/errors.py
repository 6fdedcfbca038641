"""Messages for people: an exception restated on one line, to follow a file's name; and no
warnings between our dependencies that no user can act on."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

# Longest reason quoted from a library error (state_dict errors list every tensor).
MAX_REASON = 200
# Lightning 2.6 on torch 2.14, at every fit/validate/test: Lightning's to mend, not the user's.
DEPENDENCY_NOISE = (r"`isinstance\(treespec, LeafSpec\)` is deprecated",)
# Lightning 2.6's advertisement for its cloud logger, printed by every Trainer; and its
# accelerator banner ("GPU available: False, used: False", ...), which the commands hide too:
# it would stand before every error they print.
ADVERT_LOGGER = "lightning.pytorch.utilities.rank_zero"
ADVERT_PREFIX = ("\N{ELECTRIC LIGHT BULB} Tip:",)
BANNER_PREFIX = ("GPU available:", "TPU available:", "HPU available:", "IPU available:")


class _Hide(logging.Filter):
    """Drops Lightning's messages that start with one of `prefixes`; its others pass."""

    def __init__(self, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefixes)


_HIDE_ADVERT = _Hide(ADVERT_PREFIX)
_HIDE_ADVERT_AND_BANNER = _Hide(ADVERT_PREFIX + BANNER_PREFIX)


def one_line(err: BaseException, limit: int | None = MAX_REASON) -> str:
    """`err`'s message with its whitespace collapsed (YAML and Hydra errors span lines), cut to
    `limit` characters; the exception's type where it has no message."""
    text = " ".join(str(err).split()) or type(err).__name__
    if limit is None or len(text) <= limit:
        return text
    return text[: limit - 3] + "..."


def os_reason(err: OSError) -> str:
    """What the system says went wrong ("No such file or directory"), without the errno and
    path that ``str(err)`` adds; the whole message where there is no such text."""
    return err.strerror or one_line(err)


def hide_dependency_noise() -> None:
    """Ignore the `DEPENDENCY_NOISE` warnings, Lightning's advertisement and its accelerator
    banner from here on (the commands call this)."""
    _ignore_noise_warnings()
    logging.getLogger(ADVERT_LOGGER).addFilter(_HIDE_ADVERT_AND_BANNER)  # twice keeps one


def _ignore_noise_warnings() -> None:
    for message in DEPENDENCY_NOISE:
        warnings.filterwarnings("ignore", message=message, category=FutureWarning)


@contextmanager
def quiet_dependency_noise() -> Iterator[None]:
    """Ignore the `DEPENDENCY_NOISE` warnings and the advertisement inside the block only: the
    Python API's entry points use it, and the caller's own warning and logging filters are as
    they were afterwards."""
    advert = logging.getLogger(ADVERT_LOGGER)
    had_filter = _HIDE_ADVERT in advert.filters
    with warnings.catch_warnings():
        _ignore_noise_warnings()
        advert.addFilter(_HIDE_ADVERT)
        try:
            yield
        finally:
            if not had_filter:
                advert.removeFilter(_HIDE_ADVERT)
