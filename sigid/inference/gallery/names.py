"""Writer names in a gallery: which are refused, and why."""

from __future__ import annotations

import unicodedata
from typing import Any


def check_writer_name(writer: Any) -> str:
    """`writer`, refused where it would be another writer than it looks: "bob " and "bob" print
    the same, and a newline or other control character breaks the listings."""
    if not isinstance(writer, str):
        raise TypeError(f"a writer name is a str, not {type(writer).__name__} {writer!r}")
    if not writer.strip():
        raise ValueError("a writer name must not be empty")
    if writer != writer.strip():
        raise ValueError(
            f"writer name {writer!r} begins or ends with white space, so it would be another "
            f"writer than {writer.strip()!r}, printed the same; give the name without it"
        )
    # control characters break listings; format ones (a zero-width space) print as nothing
    control = next((c for c in writer if unicodedata.category(c) in ("Cc", "Cf")), None)
    if control is not None:
        raise ValueError(
            f"writer name {writer!r} holds an invisible or control character ({control!r})"
        )
    return writer
