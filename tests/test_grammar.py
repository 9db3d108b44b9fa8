"""The grammar at its edge: text (Slack) or argv (terminal) -> a Command value, or a Reply
with an exit code and words that name the problem. Never an exception at the user."""

from __future__ import annotations

import pytest

from bot.commands import (
    Create,
    Deploy,
    Destroy,
    ListModels,
    Parsed,
    PrCommand,
    Reply,
    Scan,
    Status,
    Update,
    Validate,
    parse,
    parse_text,
)
from bot.sla import parse_sla

CREATE = "create fraud --app payments --dataset tx --artifact s3://m/fraud.onnx"


@pytest.mark.parametrize(
    ("text", "command"),
    [
        (CREATE, Create("fraud", "payments", "tx", "s3://m/fraud.onnx")),
        (CREATE + " --version 2.0.0 --SLA accuracy>=0.9", Create("fraud", "payments", "tx", "s3://m/fraud.onnx", version="2.0.0", sla=parse_sla("accuracy>=0.9"))),
        (CREATE + " --sla 'accuracy>=0.9, latency_p95_ms<=50'", Create("fraud", "payments", "tx", "s3://m/fraud.onnx", sla=parse_sla("accuracy>=0.9,latency_p95_ms<=50"))),
        (CREATE + " --dataset-uri s3://d/tx.csv --label-column y", Create("fraud", "payments", "tx", "s3://m/fraud.onnx", dataset_uri="s3://d/tx.csv", label_column="y")),
        ("update fraud --artifact s3://m/v2.onnx -m 'better recall'", Update("fraud", artifact="s3://m/v2.onnx", reason="better recall")),
        ("update fraud --version 1.2.0", Update("fraud", version="1.2.0")),
        ("update fraud --SLA accuracy>=0.95", Update("fraud", sla=parse_sla("accuracy>=0.95"))),
        ("deploy fraud --env prod", Deploy("fraud", "prod")),
        ("deploy fraud --environment prod --reason “go live”", Deploy("fraud", "prod", "go live")),  # Slack's curly quotes
        ("destroy fraud", Destroy("fraud")),
        ("destroy fraud --with-apps", Destroy("fraud", with_apps=True)),
        ("list", ListModels()),
        ("list --app payments --env prod", ListModels("payments", "prod")),
        ("status", Status()),
        ("status fraud", Status("fraud")),
        ("scan fraud churn", Scan(("fraud", "churn"))),
        ("scan --appName payments", Scan((), "payments")),
        ("validate --appName fraud --SLA accuracy>=0.9", Validate("fraud", parse_sla("accuracy>=0.9"))),  # the seed's spelling
        ("validate fraud", Validate("fraud")),
    ],
)
def test_slack_text_parses_to_its_command(text: str, command: object) -> None:
    result = parse_text(text)
    assert isinstance(result, Parsed), result
    assert result.command == command


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["pr", "list"], PrCommand("list")),
        (["pr", "list", "--state", "all"], PrCommand("list", state="all")),
        (["pr", "show", "3"], PrCommand("show", 3)),
        (["pr", "approve", "12"], PrCommand("approve", 12)),
        (["pr", "open", "my-change", "--title", "What it does"], PrCommand("open", branch="my-change", title="What it does")),
    ],
)
def test_cli_only_verbs(argv: list[str], command: object) -> None:
    result = parse(argv)
    assert isinstance(result, Parsed), result
    assert result.command == command


def test_common_options_on_the_cli() -> None:
    result = parse(["list", "--json", "--as", "ada"])
    assert isinstance(result, Parsed)
    assert (result.common.json, result.common.as_user) == (True, "ada")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("create fraud --app payments", ["--dataset", "--artifact"]),  # what is missing, by name
        ("create Fraud --app p --dataset d --artifact a", ["Fraud"]),
        ("create fraud --app Pay_ments --dataset d --artifact a", ["--app"]),
        ("create fraud --app p --dataset d --artifact a --version '1 0'", ["--version"]),
        ("create fraud --app p --dataset d --artifact a --SLA accuracy>>0.9", ["accuracy>>0.9", "accuracy>=0.9"]),  # with an example
        ("create fraud --app p --dataset d --artifact a --dataset-uri s3://d", ["--label-column"]),
        ("update fraud", ["--artifact", "--version", "--SLA"]),  # nothing to update
        ("deploy fraud", ["--env"]),
        ("deploy fraud --env Prod!", ["--env"]),
        ("scan", ["--appName"]),
        ("validate", ["validate"]),
        ("list --colour red", ["--colour"]),
        ("update 'fraud", ["quotation"]),  # an unclosed quote is a usage error, not a crash
    ],
)
def test_usage_errors_name_the_problem_and_exit_2(text: str, words: list[str]) -> None:
    result = parse_text(text)
    assert isinstance(result, Reply), result
    assert result.exit_code == 2 and not result.ok
    for word in words:
        assert word in result.text, (word, result.text)
    assert "Traceback" not in result.text


@pytest.mark.parametrize(
    ("text", "suggestion"),
    [("creat fraud", "create"), ("delpoy fraud --env prod", "deploy"), ("lsit", "list")],
)
def test_an_unknown_verb_suggests_the_close_one(text: str, suggestion: str) -> None:
    result = parse_text(text)
    assert isinstance(result, Reply) and result.exit_code == 2
    assert f"/aimodel {suggestion}" in result.text


@pytest.mark.parametrize("verb", ["pr", "init", "serve", "worker"])
def test_cli_only_verbs_are_not_verbs_in_slack(verb: str) -> None:
    result = parse_text(f"{verb} list")
    assert isinstance(result, Reply) and result.exit_code == 2
    assert f"`{verb}`" in result.text


def test_help_answers_with_usage_and_success() -> None:
    for result in (parse_text("help"), parse_text("help deploy"), parse_text("deploy --help"), parse(["--help"])):
        assert isinstance(result, Reply) and result.ok and result.exit_code == 0, result
    deploy = parse_text("help deploy")
    assert "--env" in deploy.text
    assert "create" in parse_text("help").text and "pr" not in parse_text("help").text.split()


def test_nothing_at_all_is_the_verb_list_and_a_usage_exit() -> None:
    for result in (parse_text(""), parse([])):
        assert isinstance(result, Reply) and result.exit_code == 2
        assert "create" in result.text and "destroy" in result.text
