"""The verb table is the one source: the CLI parser, the Slack grammar, usage lines, help and
"did you mean" all come from bot/verbs.py, and `aimodel --version` / `VERB --help` answer
from it as a person would see them in a terminal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot import __version__
from bot import commands as c
from bot.messages import help as help_text
from bot.sla import METRICS, PER_CLASS_METRICS
from bot.verbs import BY_NAME, VERBS, verbs_for

ROOT = Path(__file__).resolve().parents[1]


def aimodel(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_version_prints_the_version_and_exits_0() -> None:
    result = aimodel("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"aimodel {__version__}"
    assert "did you mean" not in (result.stdout + result.stderr).lower()


def test_create_help_names_every_option_with_its_help() -> None:
    result = aimodel("create", "--help")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for arg in BY_NAME["create"].args:
        for name in arg.names:
            assert name in out, name
        assert arg.help in out, arg.help
    for fmt in ("onnx", "safetensors", "gguf"):  # the allowed --format values
        assert fmt in out
    for metric in [*METRICS, *(f"{m}[CLASS]" for m in PER_CLASS_METRICS)]:  # the SLA grammar
        assert metric in out, metric
    assert "Example:\n  aimodel create fraud --app payments" in out
    assert "permissions.create" in out


def test_deploy_help_says_where_environments_come_from_and_slack_help_matches() -> None:
    cli = aimodel("deploy", "--help")
    assert cli.returncode == 0
    assert "environments:" in cli.stdout and "dev, test and prod" in cli.stdout
    slack = c.parse_text("help deploy")
    assert isinstance(slack, c.Reply) and slack.ok
    # The same description, with Slack's spelling of the command and without terminal-only options.
    assert slack.text == help_text.verb_help(BY_NAME["deploy"], "slack")
    assert slack.text.replace("/aimodel", "aimodel") in cli.stdout.replace("Options on every verb:\n  --as USER\n", "") or (
        "/aimodel deploy fraud --env prod" in slack.text and "--as" not in slack.text
    )


@pytest.mark.parametrize("face", ["cli", "slack"])
def test_every_verb_of_the_table_is_in_the_usage_and_its_help(face: str) -> None:
    overview = help_text.overview(face)
    prog = help_text.prog(face)
    for verb in VERBS:
        listed = f"\n  {verb.name} " in overview
        assert listed == (face in verb.faces), (face, verb.name)
        if face not in verb.faces:
            continue
        result = c.parse([verb.name, "--help"], surface=face)
        assert isinstance(result, c.Reply) and result.ok and result.exit_code == 0
        assert result.text.startswith(f"usage: {prog} {verb.name}")
        assert f"Example:\n  {prog} {verb.example}" in result.text


@pytest.mark.parametrize("verb", VERBS, ids=lambda v: v.name)
def test_each_verbs_example_parses(verb: object) -> None:
    from bot.verbs import Verb

    assert isinstance(verb, Verb)
    for face in sorted(verb.faces):
        words = c.split_words(verb.example)
        result = c.parse(words, surface=face)
        if verb.name == "help":
            assert isinstance(result, c.Reply) and result.ok
            continue
        assert isinstance(result, c.Parsed), result
        assert result.command.verb == verb.name


@pytest.mark.parametrize(
    "text",
    [
        'create fraud --app payments --dataset tx --artifact s3://m/f.onnx --version 2.0.0 --format onnx --SLA "accuracy>=0.9" -m why',
        "update fraud --artifact s3://m/v2.onnx",
        "deploy fraud --env prod",
        "destroy fraud --with-apps",
        "list --app payments",
        "status fraud",
        "scan --appName payments",
        'validate --appName name1 --SLA "accuracy>=0.9,latency_p95_ms<=50"',
        "sign fraud",
        "verify fraud",
    ],
)
def test_slack_and_the_cli_parse_a_command_to_the_same_value(text: str) -> None:
    slack = c.parse_text(text)
    cli = c.parse(c.split_words(text), surface="cli")
    assert isinstance(slack, c.Parsed) and isinstance(cli, c.Parsed)
    assert slack.command == cli.command


def test_did_you_mean_comes_from_the_faces_verbs() -> None:
    assert "Did you mean `aimodel worker`?" in c.parse(["wroker"]).text  # type: ignore[union-attr]
    slack = c.parse_text("wroker")
    assert isinstance(slack, c.Reply) and "Did you mean" not in slack.text  # no worker in Slack
    assert "Did you mean `/aimodel deploy`?" in c.parse_text("help deplyo").text  # type: ignore[union-attr]


def test_pr_usage_shows_state() -> None:
    assert "[--state S]" in help_text.usage_line(BY_NAME["pr"], "cli")
    result = c.parse(["pr", "list", "--state", "sideways"])
    assert isinstance(result, c.Reply) and result.exit_code == 2
    assert "'open', 'merged', 'closed', 'all'" in result.text


def test_a_bad_format_is_a_usage_error_naming_the_formats() -> None:
    result = c.parse(["create", "fraud", "--app", "a", "--dataset", "d", "--artifact", "x.onnx", "--format", "onyx"])
    assert isinstance(result, c.Reply) and result.exit_code == 2
    assert "onnx" in result.text and "usage: aimodel create" in result.text


def test_the_faces_verb_lists_are_the_tables() -> None:
    assert c.CLI_VERBS == verbs_for("cli") == tuple(v.name for v in VERBS)
    assert tuple(v.name for v in VERBS if "slack" in v.faces) == c.SLACK_VERBS


def test_each_face_runs_exactly_the_verbs_the_table_gives_it() -> None:
    from bot import cli
    from handlers.slack import listeners

    assert set(cli.RUNNERS) == set(verbs_for("cli"))
    assert set(listeners.RUNNERS) == set(verbs_for("slack"))


def test_the_policy_vocabulary_is_the_tables_permissions() -> None:
    from bot.manifests import VERBS as POLICY_VERBS

    assert set(POLICY_VERBS) == {v.permission for v in VERBS if v.permission}


def test_a_misspelt_option_gets_the_closest_one_of_the_verb() -> None:
    result = c.parse(["update", "fraud", "--sal", "accuracy>=0.9"])
    assert isinstance(result, c.Reply) and result.exit_code == 2
    assert "unrecognized arguments: --sal accuracy>=0.9 (did you mean --sla?)" in result.text
    slack = c.parse_text("list --ap payments")
    assert isinstance(slack, c.Reply) and "(did you mean --app?)" in slack.text
    nothing_close = c.parse(["list", "--zzzzzz"])
    assert isinstance(nothing_close, c.Reply) and "did you mean" not in nothing_close.text


@pytest.mark.parametrize(("argv", "words"), [
    (["serve", "--port", "70000"], "--port 70000 is out of range 0..65535"),
    (["worker", "--workers", "0"], "--workers 0 is out of range 1..64"),
    (["worker", "--workers", "many"], "invalid int value: 'many'"),
])
def test_numbers_out_of_range_are_usage_errors(argv: list[str], words: str) -> None:
    result = c.parse(argv)
    assert isinstance(result, c.Reply) and result.exit_code == 2
    assert words in result.text


def test_slack_answers_the_version_too_and_an_option_is_no_misspelt_verb() -> None:
    slack = c.parse_text("--version")
    assert isinstance(slack, c.Reply) and slack.ok and slack.text == f"aimodel {__version__}"
    other = c.parse(["--verbose"])
    assert isinstance(other, c.Reply) and other.exit_code == 2 and "Did you mean" not in other.text
