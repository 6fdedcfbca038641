from sigid.errors import one_line


def test_one_line_collapses_whitespace_cuts_long_messages_and_names_a_bare_exception():
    assert one_line(ValueError("while parsing\n  a block\tmapping")) == (
        "while parsing a block mapping"
    )
    long = one_line(RuntimeError("x" * 500), limit=20)
    assert long == "x" * 17 + "..." and len(long) == 20
    assert one_line(RuntimeError("x" * 500), limit=None) == "x" * 500
    assert one_line(KeyError()) == "KeyError"
