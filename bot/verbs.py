"""Each verb once: its summary, arguments with their help and allowed values, who may run it,
an example, the faces that offer it, and how its parsed arguments become a Command value.

The CLI parser and the Slack grammar (bot/commands.py), the usage lines, `VERB --help`,
`help VERB` and "did you mean" (bot/messages/help.py) are all derived from VERBS. Each face
runs a parsed command through its own map from verb name to runner; a test holds those maps
to this table.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

from bot import command_values as v
from bot import messages
from bot.manifests import FORMATS, ROLES, dns1123_problem, version_problem
from bot.sla import Sla, SlaSyntaxError, parse_sla

CLI = "cli"
SLACK = "slack"
BOTH = frozenset({CLI, SLACK})
CLI_ONLY = frozenset({CLI})


class UsageProblem(Exception):
    """What is wrong with the arguments, in words for the person who typed them."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Arg:
    """One argument. `names[0]` is how usage lines show it; a name without a dash is positional."""

    names: tuple[str, ...]
    help: str
    dest: str
    metavar: str = ""
    default: object = ""
    required: bool = False
    choices: tuple[str, ...] = ()
    kind: str = "value"  # value | flag (takes no value) | repeat (may be given again) | int
    nargs: str = ""  # positional: "" one, "?" optional, "*" any number
    faces: frozenset[str] = BOTH
    # Shown in help after the allowed values, e.g. the SLA grammar or where environments come from.
    values_note: str = ""
    # The faces whose help shows it; empty: all of `faces`. Slack reads `--json` (scripts that
    # paste a CLI line) but answers in Block Kit, so its help does not offer it.
    shown: frozenset[str] = frozenset()

    def shown_on(self, face: str) -> bool:
        return face in (self.shown or self.faces)

    @property
    def positional(self) -> bool:
        return not self.names[0].startswith("-")


@dataclass(frozen=True)
class Verb:
    name: str
    summary: str
    args: tuple[Arg, ...]
    example: str  # the words after the program name
    build: Callable[[argparse.Namespace], v.Command]
    permission: str = ""  # permissions.<this> in .aimodel/config.yaml; "" when the verb needs none
    faces: frozenset[str] = BOTH

    def args_for(self, face: str) -> tuple[Arg, ...]:
        return tuple(a for a in self.args if face in a.faces)


# --------------------------------------------------------------------------- shared arguments

SLA_NOTE = "sla"  # help renders the SLA grammar with bot.sla's metrics
ENV_NOTE = "environments"  # help says where the environments come from

_NAME = Arg(("NAME",), "the model's name: lowercase letters, digits and '-', at most 63 characters", "name")
_REASON = Arg(("-m", "--reason"), "why, in a sentence; it goes into the pull request's description", "reason", "WHY")
_APP_NAME = Arg(("--appName", "--app-name"), "the application whose models to act on (the seed's spelling)", "app_name", "APP")


def _sla_arg(default: object, help_text: str) -> Arg:
    return Arg(("--SLA", "--sla"), help_text, "sla", "EXPR", default=default, values_note=SLA_NOTE)


def _name(value: str, what: str) -> str:
    problem = dns1123_problem(value)
    if problem:
        raise UsageProblem(messages.bad_value(what, problem))
    return value


def _version(value: str) -> str:
    problem = version_problem(value)
    if problem:
        raise UsageProblem(messages.bad_value("--version", problem))
    return value


def _sla(text: str | None) -> Sla | None:
    if text is None:
        return None
    try:
        return parse_sla(text)
    except SlaSyntaxError as exc:
        raise UsageProblem(str(exc)) from None


# --------------------------------------------------------------------------- builders


def _create(ns: argparse.Namespace) -> v.Command:
    _version(ns.version)
    if ns.dataset_uri and not ns.label_column:
        raise UsageProblem(messages.dataset_uri_needs_label())
    return v.Create(
        name=_name(ns.name, "model name"), app=_name(ns.app, "--app"), dataset=_name(ns.dataset, "--dataset"),
        artifact=ns.artifact, version=ns.version, format=ns.format, sla=_sla(ns.sla) or Sla(),
        dataset_uri=ns.dataset_uri, label_column=ns.label_column, reason=ns.reason,
    )


def _update(ns: argparse.Namespace) -> v.Command:
    if ns.version:
        _version(ns.version)
    if not (ns.artifact or ns.version or ns.sla is not None):
        raise UsageProblem(messages.nothing_to_update())
    return v.Update(_name(ns.name, "model name"), ns.artifact, ns.version, _sla(ns.sla), ns.reason)


def _deploy(ns: argparse.Namespace) -> v.Command:
    if ns.version:
        _version(ns.version)
    if ns.canary is not None and not 1 <= ns.canary <= 99:
        raise UsageProblem(messages.out_of_range("--canary", ns.canary, 1, 99))
    return v.Deploy(_name(ns.name, "model name"), _name(ns.env, "--env"), ns.reason, version=ns.version, canary=ns.canary or 0)


def _promote(ns: argparse.Namespace) -> v.Command:
    return v.Promote(_name(ns.name, "model name"), _name(ns.env, "--env"), ns.reason)


def _rollback(ns: argparse.Namespace) -> v.Command:
    return v.Rollback(_name(ns.name, "application name"), _name(ns.env, "--env"), ns.to, ns.reason)


def _migrate(ns: argparse.Namespace) -> v.Command:
    return v.Migrate(ns.reason)


def _destroy(ns: argparse.Namespace) -> v.Command:
    return v.Destroy(_name(ns.name, "model name"), ns.with_apps, ns.reason)


def _sync(ns: argparse.Namespace) -> v.Command:
    return v.Sync(_name(ns.env, "--env") if ns.env else "")


def _list(ns: argparse.Namespace) -> v.Command:
    return v.ListModels(ns.app, ns.env)


def _status(ns: argparse.Namespace) -> v.Command:
    return v.Status(ns.name)


def _history(ns: argparse.Namespace) -> v.Command:
    import time

    from bot.deploy.history import BadTime, parse_time
    from bot.messages import history as history_text

    at = None
    if ns.at:
        try:
            at = parse_time(ns.at, time.time())
        except BadTime:
            raise UsageProblem(history_text.bad_time(ns.at)) from None
    return v.History(ns.name, _name(ns.env, "--env") if ns.env else "", at)


def _scan(ns: argparse.Namespace) -> v.Command:
    if not ns.targets and not ns.app_name:
        raise UsageProblem(messages.scan_needs_target())
    return v.Scan(tuple(ns.targets), ns.app_name, ns.sarif)


def _validate(ns: argparse.Namespace) -> v.Command:
    target = ns.name or ns.app_name
    if not target:
        raise UsageProblem(messages.needs_target("validate"))
    return v.Validate(target, _sla(ns.sla))


def _sign(ns: argparse.Namespace) -> v.Command:
    target = ns.target or ns.app_name
    if not target:
        raise UsageProblem(messages.needs_target("sign"))
    return v.Sign(target, ns.key, ns.bundle)


def _verify(ns: argparse.Namespace) -> v.Command:
    target = ns.target or ns.app_name
    if not target:
        raise UsageProblem(messages.needs_target("verify"))
    return v.Verify(target, ns.bundle, ns.public_key)


def _pr(ns: argparse.Namespace) -> v.Command:
    if ns.action == "open":
        if not ns.number:
            raise UsageProblem(messages.pr_open_needs_branch())
        return v.PrCommand("open", branch=ns.number, title=ns.title)
    number = int(ns.number) if ns.number.isdigit() and len(ns.number) < 10 else 0
    if ns.action != "list" and number <= 0:
        raise UsageProblem(messages.pr_needs_number(ns.action))
    return v.PrCommand(ns.action, number, ns.state)


def _init(ns: argparse.Namespace) -> v.Command:
    people = []
    for item in ns.person:
        name, sep, role = item.partition("=")
        if not sep or role not in ROLES:
            raise UsageProblem(messages.person_expected(item, ROLES))
        people.append((name, role))
    return v.Init(tuple(people))


def _serve(ns: argparse.Namespace) -> v.Command:
    if ns.port is not None and not 0 <= ns.port <= 65535:
        raise UsageProblem(messages.out_of_range("--port", ns.port, 0, 65535))
    return v.Serve(ns.port, not ns.no_worker)


def _worker(ns: argparse.Namespace) -> v.Command:
    if not 1 <= ns.workers <= 64:
        raise UsageProblem(messages.out_of_range("--workers", ns.workers, 1, 64))
    return v.Worker(ns.workers)


def _help(ns: argparse.Namespace) -> v.Command:
    return v.Help(ns.topic)


# --------------------------------------------------------------------------- the table

VERBS: tuple[Verb, ...] = (
    Verb(
        "create", "register a model (a pull request adding it, its application and data set)",
        (
            _NAME,
            Arg(("--app", "--application"), "the application that uses the model (created when new)", "app", "APP", required=True),
            Arg(("--dataset",), "the data set the model is measured on (a name; new ones need --dataset-uri)", "dataset", "DS", required=True),
            Arg(("--artifact",), "where the model file is: a path, file://, https://, s3://, gs:// ... (as the sources policy allows)", "artifact", "URI", required=True),
            Arg(("--version",), "the model's version (semantic, e.g. 1.0.0)", "version", "V", default="1.0.0"),
            Arg(("--format",), "the artifact's format; without it, guessed from the file", "format", "F", choices=FORMATS),
            _sla_arg("", "what the model must reach on its data set, e.g. \"accuracy>=0.9,latency_p95_ms<=50\""),
            Arg(("--dataset-uri",), "where a new data set's file is (CSV or Parquet)", "dataset_uri", "URI"),
            Arg(("--label-column",), "the column of the new data set that holds the right answer", "label_column", "COL"),
            _REASON,
        ),
        'create fraud --app payments --dataset tx-2024 --artifact s3://models/fraud.onnx --SLA "accuracy>=0.9"',
        _create, permission="create",
    ),
    Verb(
        "update", "register a new version of a model (checks run on it; no environment changes)",
        (
            _NAME,
            Arg(("--artifact",), "the new model file (a new artifact needs a new version)", "artifact", "URI"),
            Arg(("--version",), "the new version; without it, the patch number is bumped", "version", "V"),
            _sla_arg(None, "the new SLA, replacing the manifest's"),
            _REASON,
        ),
        'update fraud --artifact s3://models/fraud-v2.onnx -m "better recall"',
        _update, permission="update",
    ),
    Verb(
        "deploy", "run a model version, with the applications that use it, in one environment",
        (
            _NAME,
            Arg(("--env", "--environment"), "the environment to deploy to", "env", "ENV", required=True, values_note=ENV_NOTE),
            Arg(("--version",), "the version; without it, the newest for the first environment, "
                "else the one running in the environment before (dev -> test -> prod)", "version", "V"),
            Arg(("--canary",), "KServe environments: the percent of traffic (1-99) the new version takes while the "
                "previous one serves the rest; `promote` gives it all", "canary", "PERCENT", kind="int", default=None),
            _REASON,
        ),
        "deploy fraud --env prod",
        _deploy, permission="deploy",
    ),
    Verb(
        "promote", "give a canary all the traffic: the model's version in ENV serves alone (a pull request)",
        (
            _NAME,
            Arg(("--env", "--environment"), "the environment of the canary", "env", "ENV", required=True, values_note=ENV_NOTE),
            _REASON,
        ),
        "promote fraud --env prod",
        _promote, permission="deploy",
    ),
    Verb(
        "rollback", "put an application's earlier release back in an environment (a pull request)",
        (
            Arg(("APP",), "the application", "name"),
            Arg(("--env", "--environment"), "the environment", "env", "ENV", required=True, values_note=ENV_NOTE),
            Arg(("--to",), "the release to restore (an id from `history`); without it, the one before the live release", "to", "RELEASE"),
            _REASON,
        ),
        "rollback payments --env prod",
        _rollback, permission="deploy",
    ),
    Verb(
        "migrate", "upgrade the repository's manifests to the current schema (a pull request)",
        (_REASON,),
        "migrate",
        _migrate, permission="update", faces=CLI_ONLY,
    ),
    Verb(
        "destroy", "remove a model",
        (
            _NAME,
            Arg(("--with-apps",), "also remove the pins of the applications that use it, in the same pull request", "with_apps", kind="flag", default=False),
            _REASON,
        ),
        "destroy fraud --with-apps",
        _destroy, permission="destroy",
    ),
    Verb(
        "sync", "apply the default branch to the environments now: retry a failed apply, repair files changed by hand",
        (Arg(("--env", "--environment"), "only this environment; without it, every one", "env", "ENV", values_note=ENV_NOTE),),
        "sync --env prod",
        _sync, permission="deploy", faces=CLI_ONLY,
    ),
    Verb(
        "list", "models, their application and data set, and what runs in each environment",
        (
            Arg(("--app",), "only the models of this application", "app", "APP"),
            Arg(("--env",), "only this environment's column", "env", "ENV", values_note=ENV_NOTE),
        ),
        "list --app payments --env prod",
        _list, permission="list",
    ),
    Verb(
        "status", "open pull requests and locks, or one model in detail",
        (Arg(("NAME",), "a model to show in detail", "name", nargs="?"),),
        "status fraud",
        _status,
    ),
    Verb(
        "history", "what ran where and when: each release's versions, digests, pull request, commit, author and approvers",
        (
            Arg(("APP|MODEL",), "an application or a model", "name"),
            Arg(("--env",), "only this environment", "env", "ENV", values_note=ENV_NOTE),
            Arg(("--at",), 'only what was live at this time: ISO 8601 (2026-11-30T12:00Z, "2026-11-30 12:00" is UTC) or "2h ago"', "at", "TIME"),
        ),
        'history payments --env prod --at "2026-11-30 12:00"',
        _history, permission="list",
    ),
    Verb(
        "scan", "look for malware in model files (never loads them)",
        (
            Arg(("TARGET",), "model names, or paths and URLs of model files", "targets", nargs="*"),
            _APP_NAME,
            Arg(("--sarif",), "write SARIF 2.1.0 (for code scanning) instead of text", "sarif", kind="flag", default=False, faces=CLI_ONLY),
        ),
        "scan --appName payments",
        _scan, permission="scan",
    ),
    Verb(
        "validate", "check the manifest and measure the model against its SLA",
        (
            Arg(("NAME",), "the model to measure", "name", nargs="?"),
            _APP_NAME,
            _sla_arg(None, "measure against this SLA instead of the manifest's"),
        ),
        'validate --appName fraud --SLA "accuracy>=0.9,latency_p95_ms<=50"',
        _validate, permission="validate",
    ),
    Verb(
        "sign", "sign a model (OpenSSF model_signing bundle)",
        (
            Arg(("TARGET",), "a model name, or a path to sign with --key", "target", nargs="?"),
            _APP_NAME,
            Arg(("--key",), "sign a path with this private key (PEM) instead of the bot's", "key", "KEY.pem", faces=CLI_ONLY),
            Arg(("--bundle",), "where to write the signature bundle", "bundle", "OUT", faces=CLI_ONLY),
        ),
        "sign fraud",
        _sign, permission="sign",
    ),
    Verb(
        "verify", "verify a model's signature",
        (
            Arg(("TARGET",), "a model name, or a path to verify with --bundle and --public-key", "target", nargs="?"),
            _APP_NAME,
            Arg(("--bundle",), "the signature bundle of the path", "bundle", "B", faces=CLI_ONLY),
            Arg(("--public-key",), "the public key (PEM) that must have signed it", "public_key", "KEY.pub", faces=CLI_ONLY),
        ),
        "verify fraud",
        _verify, permission="verify",
    ),
    Verb(
        "help", "this help, or the arguments of one verb",
        (Arg(("VERB",), "the verb to explain", "topic", nargs="?"),),
        "help create",
        _help,
    ),
    Verb(
        "pr", "pull requests on the local forge",
        (
            Arg(("ACTION",), "what to do; `recheck` runs the checks of the head again (the author may, and anyone whose role may start that kind of change)",
                "action", choices=("list", "show", "approve", "merge", "close", "open", "recheck")),
            Arg(("N",), "the pull request's number; for `open`, the branch you pushed", "number", nargs="?"),
            Arg(("--state",), "list: which pull requests", "state", "S", default="open", choices=("open", "merged", "closed", "all")),
            Arg(("--title",), "open: the pull request's title", "title", "T"),
        ),
        "pr approve 3",
        _pr, faces=CLI_ONLY,
    ),
    Verb(
        "init", "create the manifest repository under AIMODEL_HOME",
        (Arg(("--person",), f"a person and their role; ROLE is one of {', '.join(ROLES)}", "person", "NAME=ROLE", kind="repeat", default=None),),
        "init --person ada=data-scientist --person bob=devops-engineer",
        _init, faces=CLI_ONLY,
    ),
    Verb(
        "serve", "run the web process (Slack, GitHub webhooks, REST)",
        (
            Arg(("--port",), "the port to listen on (default: PORT, else 3000)", "port", "N", kind="int", default=None),
            Arg(("--no-worker",), "do not start a queue worker beside it", "no_worker", kind="flag", default=False),
        ),
        "serve --port 3000",
        _serve, faces=CLI_ONLY,
    ),
    Verb(
        "worker", "run the queue worker",
        (Arg(("--workers",), "how many tasks run at once", "workers", "N", kind="int", default=2),),
        "worker --workers 4",
        _worker, faces=CLI_ONLY,
    ),
)

BY_NAME: dict[str, Verb] = {verb.name: verb for verb in VERBS}

# Options every verb takes. `--json` is read by the read verbs and ignored by the others.
COMMON: tuple[Arg, ...] = (
    Arg(("--as",), "who is asking (a person of .aimodel/config.yaml); default AIMODEL_USER", "as_user", "USER", faces=CLI_ONLY),
    Arg(("--home",), "where the embedded repository and state live; default AIMODEL_HOME, else ./.aimodel", "home", "DIR", faces=CLI_ONLY),
    Arg(("--json",), "print JSON instead of text", "json", kind="flag", default=False, shown=CLI_ONLY),
)


def verbs_for(face: str) -> tuple[str, ...]:
    return tuple(verb.name for verb in VERBS if face in verb.faces)
