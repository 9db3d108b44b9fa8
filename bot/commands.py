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
from bot.manifests import ROLES, dns1123_problem, version_problem
from bot.sla import Sla, SlaSyntaxError, parse_sla

# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class Common:
    as_user: str = ""
    json: bool = False
    home: str = ""


@dataclass(frozen=True)
class Create:
    name: str
    app: str
    dataset: str
    artifact: str
    version: str = "1.0.0"
    format: str = ""
    sla: Sla = field(default_factory=Sla)
    dataset_uri: str = ""
    label_column: str = ""
    reason: str = ""
    verb: str = "create"


@dataclass(frozen=True)
class Update:
    name: str
    artifact: str = ""
    version: str = ""
    sla: Sla | None = None
    reason: str = ""
    verb: str = "update"


@dataclass(frozen=True)
class Deploy:
    name: str
    env: str
    reason: str = ""
    verb: str = "deploy"


@dataclass(frozen=True)
class Destroy:
    name: str
    with_apps: bool = False
    reason: str = ""
    verb: str = "destroy"


@dataclass(frozen=True)
class ListModels:
    app: str = ""
    env: str = ""
    verb: str = "list"


@dataclass(frozen=True)
class Status:
    name: str = ""
    verb: str = "status"


@dataclass(frozen=True)
class Scan:
    targets: tuple[str, ...]  # model names or paths
    app_name: str = ""  # the seed's --appName
    sarif: bool = False
    verb: str = "scan"


@dataclass(frozen=True)
class Validate:
    name: str
    sla: Sla | None = None
    verb: str = "validate"


@dataclass(frozen=True)
class Sign:
    target: str
    key: str = ""
    bundle: str = ""
    verb: str = "sign"


@dataclass(frozen=True)
class Verify:
    target: str
    bundle: str = ""
    public_key: str = ""
    verb: str = "verify"


@dataclass(frozen=True)
class PrCommand:
    action: str  # list | show | approve | merge | close | open
    number: int = 0
    state: str = "open"
    verb: str = "pr"
    branch: str = ""  # open: the branch a person pushed to the origin
    title: str = ""


@dataclass(frozen=True)
class Init:
    people: tuple[tuple[str, str], ...] = ()
    verb: str = "init"


@dataclass(frozen=True)
class Serve:
    port: int | None = None
    with_worker: bool = True
    verb: str = "serve"


@dataclass(frozen=True)
class Worker:
    workers: int = 2
    verb: str = "worker"


@dataclass(frozen=True)
class Help:
    topic: str = ""
    verb: str = "help"


Command = (
    Create | Update | Deploy | Destroy | ListModels | Status | Scan | Validate | Sign | Verify
    | PrCommand | Init | Serve | Worker | Help
)
PROPOSALS = (Create, Update, Deploy, Destroy)


@dataclass(frozen=True)
class Parsed:
    command: Command
    common: Common = field(default_factory=Common)


@dataclass(frozen=True)
class Reply:
    """Something to show instead of running a command (usage, an error)."""

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

SLACK_VERBS = ("create", "update", "deploy", "destroy", "list", "status", "scan", "validate", "sign", "verify", "help")
CLI_VERBS = (*SLACK_VERBS, "pr", "init", "serve", "worker")


class _Usage(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _Usage(message)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise _Usage(message or "")


def _add_common(p: argparse.ArgumentParser, *, cli: bool) -> None:
    if cli:
        p.add_argument("--as", dest="as_user", default="")
        p.add_argument("--home", default="")
    p.add_argument("--json", action="store_true")


def _parser(verb: str, cli: bool) -> _Parser:
    p = _Parser(prog=f"{'aimodel' if cli else '/aimodel'} {verb}", add_help=False, allow_abbrev=False)
    _add_common(p, cli=cli)
    if verb == "create":
        p.add_argument("name")
        p.add_argument("--app", "--application", dest="app", required=True)
        p.add_argument("--dataset", required=True)
        p.add_argument("--artifact", required=True)
        p.add_argument("--version", default="1.0.0")
        p.add_argument("--format", default="")
        p.add_argument("--SLA", "--sla", dest="sla", default="")
        p.add_argument("--dataset-uri", default="")
        p.add_argument("--label-column", default="")
        p.add_argument("--reason", "-m", default="")
    elif verb == "update":
        p.add_argument("name")
        p.add_argument("--artifact", default="")
        p.add_argument("--version", default="")
        p.add_argument("--SLA", "--sla", dest="sla", default=None)
        p.add_argument("--reason", "-m", default="")
    elif verb == "deploy":
        p.add_argument("name")
        p.add_argument("--env", "--environment", dest="env", required=True)
        p.add_argument("--reason", "-m", default="")
    elif verb == "destroy":
        p.add_argument("name")
        p.add_argument("--with-apps", action="store_true")
        p.add_argument("--reason", "-m", default="")
    elif verb == "list":
        p.add_argument("--app", default="")
        p.add_argument("--env", default="")
    elif verb == "status":
        p.add_argument("name", nargs="?", default="")
    elif verb == "scan":
        p.add_argument("targets", nargs="*")
        p.add_argument("--appName", "--app-name", dest="app_name", default="")
        p.add_argument("--sarif", action="store_true")
    elif verb == "validate":
        p.add_argument("name", nargs="?", default="")
        p.add_argument("--appName", "--app-name", dest="app_name", default="")
        p.add_argument("--SLA", "--sla", dest="sla", default=None)
    elif verb == "sign":
        p.add_argument("target", nargs="?", default="")
        p.add_argument("--appName", "--app-name", dest="app_name", default="")
        if cli:
            p.add_argument("--key", default="")
            p.add_argument("--bundle", default="")
    elif verb == "verify":
        p.add_argument("target", nargs="?", default="")
        p.add_argument("--appName", "--app-name", dest="app_name", default="")
        if cli:
            p.add_argument("--bundle", default="")
            p.add_argument("--public-key", default="")
    elif verb == "pr":
        p.add_argument("action", choices=("list", "show", "approve", "merge", "close", "open"))
        p.add_argument("number", nargs="?", default="")  # a number; for `open`, the branch
        p.add_argument("--state", choices=("open", "merged", "closed", "all"), default="open")
        p.add_argument("--title", default="")
    elif verb == "init":
        p.add_argument("--person", action="append", default=[])
    elif verb == "serve":
        p.add_argument("--port", type=int, default=None)
        p.add_argument("--no-worker", action="store_true")
    elif verb == "worker":
        p.add_argument("--workers", type=int, default=2)
    elif verb == "help":
        p.add_argument("topic", nargs="?", default="")
    return p


def _name(value: str, what: str) -> str:
    problem = dns1123_problem(value)
    if problem:
        raise _Usage(f"{what} {problem}")
    return value


def _sla(text: str | None) -> Sla | None:
    if text is None:
        return None
    try:
        return parse_sla(text)
    except SlaSyntaxError as exc:
        raise _Usage(str(exc)) from None


def _build(verb: str, ns: argparse.Namespace) -> Command:
    if verb == "create":
        problem = version_problem(ns.version)
        if problem:
            raise _Usage(f"--version {problem}")
        if ns.dataset_uri and not ns.label_column:
            raise _Usage("--dataset-uri needs --label-column (the column that holds the right answer)")
        return Create(
            name=_name(ns.name, "model name"), app=_name(ns.app, "--app"), dataset=_name(ns.dataset, "--dataset"),
            artifact=ns.artifact, version=ns.version, format=ns.format, sla=_sla(ns.sla) or Sla(),
            dataset_uri=ns.dataset_uri, label_column=ns.label_column, reason=ns.reason,
        )
    if verb == "update":
        if ns.version:
            problem = version_problem(ns.version)
            if problem:
                raise _Usage(f"--version {problem}")
        if not (ns.artifact or ns.version or ns.sla is not None):
            raise _Usage("nothing to update: give --artifact, --version or --SLA")
        return Update(_name(ns.name, "model name"), ns.artifact, ns.version, _sla(ns.sla), ns.reason)
    if verb == "deploy":
        return Deploy(_name(ns.name, "model name"), _name(ns.env, "--env"), ns.reason)
    if verb == "destroy":
        return Destroy(_name(ns.name, "model name"), ns.with_apps, ns.reason)
    if verb == "list":
        return ListModels(ns.app, ns.env)
    if verb == "status":
        return Status(ns.name)
    if verb == "scan":
        if not ns.targets and not ns.app_name:
            raise _Usage("name a model, an application (--appName) or a path to scan")
        return Scan(tuple(ns.targets), ns.app_name, ns.sarif)
    if verb == "validate":
        target = ns.name or ns.app_name
        if not target:
            raise _Usage("name the model to validate (or --appName)")
        return Validate(target, _sla(ns.sla))
    if verb == "sign":
        target = ns.target or ns.app_name
        if not target:
            raise _Usage("name the model (or a path) to sign")
        return Sign(target, getattr(ns, "key", ""), getattr(ns, "bundle", ""))
    if verb == "verify":
        target = ns.target or ns.app_name
        if not target:
            raise _Usage("name the model (or a path) to verify")
        return Verify(target, getattr(ns, "bundle", ""), getattr(ns, "public_key", ""))
    if verb == "pr":
        if ns.action == "open":
            if not ns.number:
                raise _Usage("pr open needs the branch you pushed, e.g. `pr open my-change --title 'What it does'`")
            return PrCommand("open", branch=ns.number, title=ns.title)
        number = int(ns.number) if ns.number.isdigit() and len(ns.number) < 10 else 0
        if ns.action != "list" and number <= 0:
            raise _Usage(f"pr {ns.action} needs the pull request number, e.g. `pr {ns.action} 3`")
        return PrCommand(ns.action, number, ns.state)
    if verb == "init":
        people = []
        for item in ns.person:
            name, sep, role = item.partition("=")
            if not sep or role not in ROLES:
                raise _Usage(f"--person {item!r}: expected NAME=ROLE with ROLE one of {', '.join(ROLES)}")
            people.append((name, role))
        return Init(tuple(people))
    if verb == "serve":
        return Serve(ns.port, not ns.no_worker)
    if verb == "worker":
        return Worker(ns.workers)
    return Help(ns.topic)


def parse(argv: Sequence[str], *, surface: str = "cli") -> Parsed | Reply:
    cli = surface == "cli"
    verbs = CLI_VERBS if cli else SLACK_VERBS
    prog = "aimodel" if cli else "/aimodel"
    args = list(argv)
    if not args or args[0] in ("-h", "--help"):
        return Reply(messages.usage(prog, verbs), exit_code=0 if args else 2, ok=bool(args))
    verb, rest = args[0], args[1:]
    if verb not in verbs:
        close = difflib.get_close_matches(verb, verbs, n=1, cutoff=0.5) if len(verb) <= MAX_SUGGEST else []
        return Reply(messages.unknown_verb(prog, messages.clip(verb), close[0] if close else "", verbs))
    options = sum(1 for a in rest if a.startswith("-"))
    if options > MAX_OPTIONS:
        return Reply(messages.usage_error(prog, verb, messages.too_many_options(options, MAX_OPTIONS)), usage=messages.usage_line(prog, verb))
    if any(a in ("-h", "--help") for a in rest) or (verb == "help" and not rest):
        topic = verb if verb != "help" else ""
        return Reply(messages.usage(prog, verbs, topic), exit_code=0, ok=True)
    if verb == "help":
        topic = rest[0]
        if topic not in verbs:
            return Reply(messages.unknown_verb(prog, messages.clip(topic), "", verbs))
        return Reply(messages.usage(prog, verbs, topic), exit_code=0, ok=True)
    try:
        ns = _parser(verb, cli).parse_args(rest)
        command = _build(verb, ns)
    except _Usage as exc:
        return Reply(messages.usage_error(prog, verb, exc.message), usage=messages.usage_line(prog, verb))
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
        return Reply(messages.usage_error("/aimodel", "", f"cannot read the command: {exc}"))
    return parse(argv, surface="slack")
