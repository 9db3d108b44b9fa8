"""Every `/aimodel` verb through the real web process at /slack/events: its happy path and an
error path, who may do what, unknown users and verbs, and the create modal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import slack_helpers as h
from tests.standins.slack_api import SlackStandIn


@dataclass
class Served:
    slack: SlackStandIn
    web: h.WebProcess
    files: Path

    def command(self, text: str, user: str = "U0ALICE", channel: str = "C0MODELS") -> tuple[dict[str, Any], str]:
        delivery = self.slack.slash_command(text, user_id=user, channel_id=channel)
        r = h.post(self.web, delivery)
        assert r.status_code == 200, r.text
        assert r.elapsed.total_seconds() < 3
        return (r.json() if r.text else {}), delivery.response_url or ""

    def answer(self, text: str, user: str = "U0ALICE", channel: str = "C0MODELS") -> dict[str, Any]:
        """The lazy listener's reply on response_url."""
        _, url = self.command(text, user, channel)
        got: dict[str, Any] = self.slack.wait_for_response(url, timeout=60)[0]
        return got


def _cli(home: Path, *argv: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "AIMODEL_", "REDIS_"))}
    env["AIMODEL_HOME"] = str(home)
    subprocess.run([sys.executable, "-m", "bot.cli", *argv], env=env, cwd=h.ROOT, check=True, capture_output=True)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from tests.model_samples import linear_classifier, write_csv

    tmp = tmp_path_factory.mktemp("slack-verbs")
    home, files = tmp / "home", tmp / "files"
    h.init_home(home, sources=[files])
    onnx = linear_classifier(files / "model.onnx")
    write_csv(files / "tx.csv", rows=100, right=95)
    for name, app in (("fraud", "payments"), ("spam", "mail"), ("old", "legacy")):
        _cli(home, "create", name, "--app", app, "--dataset", "tx", "--artifact", str(onnx), "--SLA", "accuracy>=0.9",
             *(("--dataset-uri", str(files / "tx.csv"), "--label-column", "label") if name == "fraud" else ()), "--as", "alice")
        number = {"fraud": "1", "spam": "2", "old": "3"}[name]
        _cli(home, "pr", "merge", number, "--as", "alice")
    with SlackStandIn() as slack:
        slack.add_bot_token(h.TOKEN)
        slack.add_user("U0ZED", "zed", "zed@example.com", "Zed Stranger")
        web = h.WebProcess(home, h.server_env(home, slack), tmp / "web.log").start()
        try:
            yield Served(slack, web, files)
        finally:
            web.stop()


def _text(payload: dict[str, Any]) -> str:
    return h.texts([payload])


# ---------------------------------------------------------------------- answered in the ack


@pytest.mark.parametrize(
    "text,expect",
    [
        ("help", "usage: /aimodel VERB"),
        ("help deploy", "usage: /aimodel deploy NAME --env ENV"),
        ("lst", "Did you mean `/aimodel list`?"),
        ("", "usage: /aimodel VERB"),
        ("create fraud --app payments", "usage: /aimodel create NAME --app APP"),
        ("deploy fraud", "missing: --env"),
        ("update fraud", "nothing to update"),
        ("create Bad_Name --app a --dataset d --artifact x", "model name"),
        ("validate fraud --SLA accuracy>>0.9", "/aimodel validate"),
        ('list --app "unterminated', "cannot read the command"),
        ("help create", "--label-column COL"),  # every option, its help, the SLA metrics, an example
        ("help create", "latency_p95_ms"),
        ("create --help", "Example:"),
        ("deploy fraud --envv prod", "did you mean --env?"),
    ],
)
def test_usage_errors_are_ephemeral_in_the_ack(served: Served, text: str, expect: str) -> None:
    ack, url = served.command(text)
    assert ack["response_type"] == "ephemeral"
    assert expect in _text(ack)
    assert served.slack.responses(url) == []


# ---------------------------------------------------------------------- happy and error paths


CASES: list[tuple[str, str, str, str]] = [
    # id, user, text, expected in the reply
    ("create", "U0ALICE", "create churn --app crm --dataset tx --artifact {files}/model.onnx", "Opened pull request"),
    ("create-refused-role", "U0BOB", "create churn2 --app crm2 --dataset tx --artifact {files}/model.onnx", "Refused: create is for Data Scientist, Application Developer; bob is DevOps Engineer"),
    ("create-missing-artifact", "U0ALICE", "create nofile --app crm3 --dataset tx --artifact {files}/missing.onnx", "does not exist"),
    ("update-by-email", "U0CAROL", "update fraud --SLA accuracy>=0.8", "Opened pull request"),
    ("update-no-model", "U0CAROL", "update nope --version 2.0.0", "there is no model 'nope'; `/aimodel list` shows the models"),
    ("deploy", "U0BOB", "deploy spam --env dev", "Opened pull request"),
    ("deploy-no-env", "U0BOB", "deploy spam --env mars", "there is no environment named 'mars'"),
    ("destroy", "U0CAROL", "destroy old --with-apps", "Opened pull request"),
    ("destroy-refused-role", "U0ALICE", "destroy old", "Refused: destroy is for"),
    ("list", "U0DAVE", "list", "*fraud* 1.0.0"),
    ("list-app", "U0DAVE", "list --app mail", "*spam*"),
    ("status", "U0DAVE", "status", "open pull request"),
    ("status-model", "U0DAVE", "status fraud", "application: payments"),
    ("status-no-model", "U0DAVE", "status nope", "there is no model 'nope'; `/aimodel list` shows the models"),
    ("scan", "U0DAVE", "scan fraud", "clean"),
    ("scan-no-model", "U0DAVE", "scan nope", "no model or application named 'nope'; `/aimodel list` shows them"),
    ("scan-appname", "U0DAVE", "scan --appName payments", "fraud 1.0.0"),
    ("validate", "U0DAVE", "validate fraud", "SLA met"),
    ("validate-stricter", "U0DAVE", "validate fraud --SLA accuracy>=0.99", "SLA failed: accuracy 0.95 &lt; 0.99"),
    ("validate-no-model", "U0DAVE", "validate nope", "no model or application named 'nope'"),
    ("sign", "U0DAVE", "sign fraud", "Signed fraud 1.0.0"),
    ("sign-no-model", "U0DAVE", "sign nope", "no model or application named 'nope'"),
    ("verify", "U0DAVE", "verify fraud", "fraud: verified"),
    ("verify-no-model", "U0DAVE", "verify nope", "no model or application named 'nope'"),
    ("unknown-user", "U0ZED", "list", "I don't know you yet (Slack id `U0ZED`)"),
]


@pytest.mark.parametrize("user,text,expect", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_verb(served: Served, user: str, text: str, expect: str) -> None:
    reply = served.answer(text.format(files=served.files), user=user)
    assert reply.get("response_type") == "ephemeral"
    assert expect in _text(reply), f"{_text(reply)}\n--- web process log ---\n{served.web.log_text()[-3000:]}"
    error = expect.startswith(("Refused", "there is", "environment", "no model", "does not exist", "I don't know", "SLA failed"))
    if error and "SLA failed" not in expect:
        assert ":warning:" in _text(reply) or ":lock:" in _text(reply)


def test_refusals_show_the_usage_line(served: Served) -> None:
    reply = served.answer("deploy spam --env mars", user="U0BOB")
    assert "usage: /aimodel deploy NAME --env ENV" in _text(reply)


def test_unknown_user_changes_nothing(served: Served) -> None:
    before = sorted(p.name for p in (served.web.home / "forge" / "prs").iterdir())
    reply = served.answer(f"create zmodel --app zapp --dataset tx --artifact {served.files}/model.onnx", user="U0ZED")
    assert "Ask a DevOps Engineer to add you" in _text(reply)
    assert sorted(p.name for p in (served.web.home / "forge" / "prs").iterdir()) == before
    assert "zmodel" not in h.texts(served.slack.messages("C0MODELS"))


def test_create_posts_the_pr_with_buttons_and_records_the_thread(served: Served) -> None:
    reply = served.answer(f"create pricing --app shop --dataset tx --artifact {served.files}/model.onnx", user="U0DAVE")
    number = int(_text(reply).split("#", 1)[1].split(":", 1)[0])
    parent = next(m for m in served.slack.messages("C0MODELS") if f"Pull request #{number}" in m.get("text", ""))
    assert h.buttons(parent) == {"open_pr": f"pr:{number}", "approve_pr": f"pr:{number}", "close_pr": f"pr:{number}"}
    assert parent["metadata"]["event_payload"] == {"pr": number}
    meta = json.loads((served.web.home / "forge" / "prs" / f"{number}.json").read_text())["meta"]
    assert meta["slack"] == {"channel": "C0MODELS", "ts": parent["ts"], "user": "U0DAVE"}


def test_a_dm_between_people_falls_back_to_the_dm_with_the_bot(served: Served) -> None:
    served.slack.strict_channels = True
    try:
        reply = served.answer(f"create recs --app store --dataset tx --artifact {served.files}/model.onnx", user="U0DAVE", channel="D0NOTBOT")
    finally:
        served.slack.strict_channels = False
    assert "the pull request thread is in" in _text(reply)
    dm = served.slack.dm_channel("U0DAVE")
    assert dm and "create recs" in h.texts(served.slack.messages(dm))


def test_rate_limited_post_is_retried(served: Served) -> None:
    served.slack.fail_next("chat.postMessage", retry_after=1)
    reply = served.answer(f"create ads --app adsapp --dataset tx --artifact {served.files}/model.onnx", user="U0DAVE")
    assert "Opened pull request" in _text(reply)
    statuses = [c.status for c in served.slack.calls("chat.postMessage") if "create ads" in str(c.params.get("text", "")) or c.status == 429]
    assert 429 in statuses and 200 in statuses


# ---------------------------------------------------------------------- the create modal


def _values(**fields: str) -> dict[str, dict[str, dict[str, Any]]]:
    return {k: {"value": {"type": "plain_text_input", "value": v}} for k, v in fields.items()}


def test_create_without_arguments_opens_the_modal(served: Served) -> None:
    ack, _ = served.command("create")
    assert ack == {}
    call = served.slack.wait_for_call("views.open", timeout=15)
    view = call.params["view"]
    assert view["callback_id"] == "create_model"
    assert json.loads(view["private_metadata"]) == {"channel": "C0MODELS", "user": "U0ALICE"}
    assert [b["block_id"] for b in view["blocks"] if b["type"] == "input"][:4] == ["name", "app", "dataset", "artifact"]


def test_modal_validates_inline(served: Served) -> None:
    submit = served.slack.view_submission(
        "create_model",
        _values(name="Bad_Name", app="ok-app", dataset="newds", artifact=f"{served.files}/missing.onnx", version="1.0 beta!", sla="accuracy>>1"),
        json.dumps({"channel": "C0MODELS", "user": "U0ALICE"}),
        user_id="U0ALICE",
    )
    r = h.post(served.web, submit)
    assert r.status_code == 200
    answer = r.json()
    assert answer["response_action"] == "errors"
    errors = answer["errors"]
    assert set(errors) == {"name", "version", "sla", "artifact", "dataset_uri"}
    assert "does not exist" in errors["artifact"] and "model name" in errors["name"]


def test_modal_refuses_a_role_that_may_not_create(served: Served) -> None:
    submit = served.slack.view_submission(
        "create_model", _values(name="bobs", app="bapp", dataset="tx", artifact=f"{served.files}/model.onnx"),
        json.dumps({"channel": "C0MODELS"}), user_id="U0BOB",
    )
    answer = h.post(served.web, submit).json()
    assert answer["response_action"] == "errors" and "create is for" in answer["errors"]["name"]


def test_modal_submission_opens_the_pr(served: Served) -> None:
    submit = served.slack.view_submission(
        "create_model", _values(name="modal-made", app="formapp", dataset="tx", artifact=f"{served.files}/model.onnx", sla="accuracy>=0.9"),
        json.dumps({"channel": "C0MODELS", "user": "U0ALICE"}), user_id="U0ALICE",
    )
    r = h.post(served.web, submit)
    assert r.status_code == 200 and r.text in ("", "{}")
    h.wait_until(lambda: "create modal-made" in h.texts(served.slack.messages("C0MODELS")), timeout=30, what="the PR message")
    note = h.wait_until(lambda: served.slack.ephemerals("C0MODELS", "U0ALICE"), what="the ephemeral note")
    assert any("Opened pull request" in m["text"] for m in note)
