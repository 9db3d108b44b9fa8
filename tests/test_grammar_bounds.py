"""The grammar reads any text a person can send in time linear in its length, and answers
text it will not read (too long, too many options) with a usage reply, never an exception.

Speed itself is measured in benchmarks/bench_grammar.py; here hypothesis's deadline (generous,
for a shared machine) catches a pathological input, and the caps are checked structurally."""

from __future__ import annotations

import shlex
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot import commands as c

# Pieces that stress each part of the grammar: quoting, escapes, options, verbs, typos.
FRAGMENTS = [
    " ", "\t", "\n", "'", '"', "\\", "-", "--", "=", "a", "x9", "“", "”",
    "create ", "update ", "list ", "scan ", "pr ", "help ", "craete ", "--json ", "--app ", "--SLA ",
    "accuracy>=0.9,", "acurracy>=", "--dataset-uri ", "-m ", "fraud ", "'a b' ", '"c \\" d" ',
]


def texts(max_size: int) -> st.SearchStrategy[str]:
    pieces = st.lists(st.sampled_from(FRAGMENTS), max_size=max_size).map("".join)
    long_runs = st.tuples(st.sampled_from(FRAGMENTS), st.integers(0, max_size)).map(lambda t: t[0] * t[1])
    return st.one_of(pieces, long_runs, st.text(max_size=max_size)).map(lambda s: s[: c.MAX_TEXT])


@settings(max_examples=300, deadline=timedelta(seconds=2), suppress_health_check=[HealthCheck.too_slow])
@given(texts(c.MAX_TEXT))
def test_any_text_up_to_the_cap_parses_without_raising(text: str) -> None:
    result = c.parse_text(text)
    assert isinstance(result, c.Parsed | c.Reply)
    if isinstance(result, c.Reply):
        assert result.text  # something to show the person


@settings(max_examples=300, deadline=None)
@given(texts(400))
def test_words_are_split_as_shlex_splits_them(text: str) -> None:
    try:
        expected: list[str] | str = shlex.split(text)
    except ValueError:
        expected = "error"
    try:
        got: list[str] | str = c.split_words(text)
    except ValueError:
        got = "error"
    assert got == expected


def test_text_over_the_cap_is_refused_unread() -> None:
    # An unclosed quote would be "No closing quotation" if the text were read at all.
    result = c.parse_text("create fraud '" + "x" * c.MAX_TEXT)
    assert isinstance(result, c.Reply) and result.exit_code == 2
    assert f"at most {c.MAX_TEXT:,} are read" in result.text
    assert "closing quotation" not in result.text


def test_text_at_the_cap_is_read() -> None:
    text = "list --app " + "a" * (c.MAX_TEXT - len("list --app "))
    parsed = c.parse_text(text)
    assert isinstance(parsed, c.Parsed) and isinstance(parsed.command, c.ListModels)


def test_too_many_options_are_refused_before_argparse_reads_them() -> None:
    result = c.parse(["list", *["--json"] * (c.MAX_OPTIONS + 1)], surface="slack")
    assert isinstance(result, c.Reply) and result.exit_code == 2
    assert f"{c.MAX_OPTIONS + 1} options given; a command takes at most {c.MAX_OPTIONS}" in result.text
    ok = c.parse(["list", *["--json"] * c.MAX_OPTIONS], surface="slack")
    assert isinstance(ok, c.Parsed)


def test_a_long_unknown_verb_is_clipped_and_gets_no_suggestion() -> None:
    result = c.parse_text("creat" + "e" * 3000)
    assert isinstance(result, c.Reply)
    assert "(3,005 characters)" in result.text and "Did you mean" not in result.text
    assert len(result.text) < 400
    assert "Did you mean `/aimodel create`?" in c.parse_text("craete fraud").text  # type: ignore[union-attr]
