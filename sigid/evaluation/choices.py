"""The evaluation protocols by name, and the options that only one of them takes.

Imports nothing, so that the `sigid` command builds its parser from it without loading
Lightning (`sigid.evaluation.protocols` and `sigid.evaluation.api` do load it).
"""

from __future__ import annotations

PROTOCOLS = ("identification", "writer-dependent", "writer-independent", "same-name")


def check_applies(protocol: str, option: str, given: bool) -> None:
    """Refuse `option` (named as the caller spells it) when `given` for a protocol other than
    writer-dependent, the only one that takes references and a gallery score."""
    if given and protocol != "writer-dependent":
        raise ValueError(f"{option} applies to the writer-dependent protocol only")
