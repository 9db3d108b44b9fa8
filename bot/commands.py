"""The grammar: text (Slack) or argv (terminal) -> a Command value, or a Reply to show.

`parse` never raises at the user: a usage error comes back as a Reply with the usage
line and, for an unknown verb, a "did you mean".
"""

from __future__ import annotations

import argparse
import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NoReturn

from bot import messages
from bot.command_values import (
    PROPOSALS,
    Command,
    Create,
    Deploy,
    Destroy,
    Help,
    History,
    Init,
    ListModels,
    Migrate,
    PrCommand,
    Promote,
    Rollback,
    Scan,
    Serve,
    Sign,
    Status,
    Update,
    Validate,
    Verify,
    Worker,
)
from bot.messages import help as help_text
from bot.verbs import BY_NAME, COMMON, Arg, UsageProblem, Verb, verbs_for

__all__ = [
    "PROPOSALS", "Command", "Common", "Create", "Deploy", "Destroy", "Help", "History", "Init", "ListModels", "Migrate", "Parsed",
    "PrCommand", "Promote", "Reply", "Rollback", "Scan", "Serve", "Sign", "Status", "Update", "Validate", "Verify", "Worker",
    "parse", "parse_text", "split_words",
]


@dataclass(frozen=True)
class Common:
    as_user: str = ""
    json: bool = False
    home: str = ""


@dataclass(frozen=True)
class Parsed:
    command: Command
    common: Common = field(default_factory=Common)


@dataclass(frozen=True)
class Reply:
    """Something to show instead of running a command (usage, help, an error)."""

    text: str
    exit_code: int = 2
    usage: str = ""
    ok: bool = False


# --------------------------------------------------------------------------- grammar

# Slack lets people type a few thousand characters after `/aimodel`; the longest real command
# is a few hundred. Longer text is refused before it is read, so its cost never grows with it.
MAX_TEXT = 4000
# argparse re-scans the remaining arguments after each option: with a bounded number of
# options its work is linear in the input. A verb needs about twenty at most; `init` takes one
# `--person` per person, hence the room.
MAX_OPTIONS = 256
# "did you mean" compares the typed verb with each verb; a word longer than any verb gets none.
MAX_SUGGEST = 32

SLACK_VERBS = verbs_for("slack")
CLI_VERBS = verbs_for("cli")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageProblem(message)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise UsageProblem(message or "")


def _add(p: argparse.ArgumentParser, arg: Arg) -> None:
    """One argument of the table, as argparse reads it."""
    if arg.positional:
        default = [] if arg.nargs == "*" else arg.default
        p.add_argument(arg.dest, nargs=arg.nargs or None, default=default, choices=arg.choices or None)
        return
    if arg.kind == "flag":
        p.add_argument(*arg.names, dest=arg.dest, action="store_true")
    elif arg.kind == "repeat":
        p.add_argument(*arg.names, dest=arg.dest, action="append", default=[])
    elif arg.kind == "int":
        p.add_argument(*arg.names, dest=arg.dest, type=int, default=arg.default)
    else:
        p.add_argument(*arg.names, dest=arg.dest, default=arg.default, required=arg.required, choices=arg.choices or None)


def _parser(verb: Verb, face: str) -> _Parser:
    p = _Parser(prog=f"{help_text.prog(face)} {verb.name}", add_help=False, allow_abbrev=False)
    for arg in COMMON:
        if face in arg.faces:
            _add(p, arg)
    for arg in verb.args:
        if face in arg.faces:
            _add(p, arg)
        elif not arg.positional:  # an option of another face: its builder still reads the default
            p.set_defaults(**{arg.dest: [] if arg.kind == "repeat" else arg.default})
    return p


def _option_hint(verb: Verb, face: str, rest: Sequence[str], problem: str) -> str:
    """For an option the verb does not take: the closest one it does, from the table (argparse may
    have complained first that a required one is missing: `deploy fraud --envv prod`)."""
    if not problem.startswith(("unrecognized arguments", "the following arguments are required")):
        return ""
    known = [n for arg in (*COMMON, *verb.args) if face in arg.faces and not arg.positional for n in arg.names]
    for word in rest:
        typed = word.split("=", 1)[0]
        if typed.startswith("-") and typed not in known and len(typed) <= MAX_SUGGEST:
            close = difflib.get_close_matches(typed, known, n=1, cutoff=0.6)
            return messages.did_you_mean_option(close[0]) if close else ""
    return ""


def parse(argv: Sequence[str], *, surface: str = "cli") -> Parsed | Reply:
    face = "cli" if surface == "cli" else "slack"
    verbs = verbs_for(face)
    prog = help_text.prog(face)
    args = list(argv)
    if not args or args[0] in ("-h", "--help"):
        return Reply(help_text.overview(face), exit_code=0 if args else 2, ok=bool(args))
    if args[0] in ("-V", "--version"):
        return Reply(help_text.version(), exit_code=0, ok=True)
    name, rest = args[0], args[1:]
    if name not in verbs:
        # an option where the verb goes (`--verbose`) is not a misspelt verb
        close = difflib.get_close_matches(name, verbs, n=1, cutoff=0.5) if len(name) <= MAX_SUGGEST and not name.startswith("-") else []
        return Reply(messages.unknown_verb(prog, messages.clip(name), close[0] if close else "", verbs))
    verb = BY_NAME[name]
    options = sum(1 for a in rest if a.startswith("-"))
    if options > MAX_OPTIONS:
        return Reply(messages.usage_error(prog, name, messages.too_many_options(options, MAX_OPTIONS)), usage=help_text.usage_line(verb, face))
    if any(a in ("-h", "--help") for a in rest):
        return Reply(help_text.verb_help(verb, face), exit_code=0, ok=True)
    if name == "help" and not rest:
        return Reply(help_text.overview(face), exit_code=0, ok=True)
    if name == "help":
        topic = rest[0]
        if topic not in verbs:
            close = difflib.get_close_matches(topic, verbs, n=1, cutoff=0.5) if len(topic) <= MAX_SUGGEST else []
            return Reply(messages.unknown_verb(prog, messages.clip(topic), close[0] if close else "", verbs))
        return Reply(help_text.verb_help(BY_NAME[topic], face), exit_code=0, ok=True)
    try:
        ns = _parser(verb, face).parse_args(rest)
        command = verb.build(ns)
    except UsageProblem as exc:
        problem = exc.message + _option_hint(verb, face, rest, exc.message)
        return Reply(messages.usage_error(prog, name, problem, help_text.usage_line(verb, face)), usage=help_text.usage_line(verb, face))
    common = Common(getattr(ns, "as_user", ""), ns.json, getattr(ns, "home", ""))
    return Parsed(command, common)


# One lexical piece of a shell-quoted line, as shlex.split (POSIX) reads it: plain characters,
# a backslash escape, a single- or double-quoted string, blanks, or a quote/backslash that
# starts nothing complete (an error). Each alternative is decided by its first character and
# none can match a stretch in two ways (the double-quoted one is the "unrolled loop"), so a
# failed match backtracks linearly and one left-to-right pass reads the line. shlex's += on an
# attribute copies the token at every character: quadratic in the token's length.
_BLANK = " \t\r\n"
_PIECE = re.compile(
    rf"""(?P<plain>[^{_BLANK}'"\\]+)|(?P<blank>[{_BLANK}]+)|'(?P<single>[^']*)'|"(?P<double>[^"\\]*(?:\\[\s\S][^"\\]*)*)"|\\(?P<escaped>[\s\S])|(?P<bad>['"\\])"""
)
_DOUBLE_ESCAPE = re.compile(r'\\([\\"])')


def split_words(text: str) -> list[str]:
    """shlex.split(text) in linear time; ValueError with shlex's words when a quote is not closed."""
    words: list[str] = []
    word: list[str] | None = None
    for piece in _PIECE.finditer(text):
        kind = piece.lastgroup
        if kind == "blank":
            if word is not None:
                words.append("".join(word))
            word = None
            continue
        if kind == "bad":
            raise ValueError("No escaped character" if piece.group() == "\\" else "No closing quotation")
        value = piece.group(kind or "plain")
        if kind == "double":
            value = _DOUBLE_ESCAPE.sub(r"\1", value)  # inside "...", a backslash escapes only \ and "
        if word is None:
            word = [value]
        else:
            word.append(value)  # 'a'"b"c is one word
    if word is not None:
        words.append("".join(word))
    return words


def parse_text(text: str) -> Parsed | Reply:
    """Slack's slash-command text, quoted like a shell line."""
    if len(text) > MAX_TEXT:
        return Reply(messages.usage_error("/aimodel", "", messages.text_too_long(len(text), MAX_TEXT)))
    try:
        argv = split_words(text.replace("“", '"').replace("”", '"'))
    except ValueError as exc:
        return Reply(messages.usage_error("/aimodel", "", messages.unreadable_command(str(exc))))
    return parse(argv, surface="slack")
