"""The evaluation protocols by name, and the options that only one of them takes.

Imports nothing, so that the `sigid` command builds its parser from it without loading
Lightning (`sigid.evaluation.protocols` and `sigid.evaluation.api` do load it).
"""

from __future__ import annotations

PROTOCOLS = ("identification", "writer-dependent", "writer-independent", "same-name", "robustness")

# The protocols that enrol writers with K references and score them with a gallery's rule.
WITH_REFERENCES = ("writer-dependent", "robustness")


def check_applies(
    protocol: str, option: str, given: bool, protocols: tuple[str, ...] = WITH_REFERENCES
) -> None:
    """Refuse `option` (named as the caller spells it) when `given` for a protocol not among
    `protocols` (by default those that take references and a gallery score)."""
    if given and protocol not in protocols:
        raise ValueError(f"{option} applies to the {' and '.join(protocols)} protocol only")
