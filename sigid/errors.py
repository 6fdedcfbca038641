"""Error messages for people: an exception restated on one line, to follow a file's name."""

from __future__ import annotations

# Longest reason quoted from a library error (state_dict errors list every tensor).
MAX_REASON = 200


def one_line(err: BaseException, limit: int | None = MAX_REASON) -> str:
    """`err`'s message with its whitespace collapsed (YAML and Hydra errors span lines), cut to
    `limit` characters; the exception's type where it has no message."""
    text = " ".join(str(err).split()) or type(err).__name__
    if limit is None or len(text) <= limit:
        return text
    return text[: limit - 3] + "..."
