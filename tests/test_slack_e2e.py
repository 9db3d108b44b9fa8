"""End to end through Slack only, on the local forge and the local target, with the real web
process and its worker: create -> checks in the thread -> Approve by DevOps -> Merge ->
deployment in the thread; a deploy to prod also lands in the prod channel. Plus the App Home
tab, Socket Mode wiring, and the notifier finding a thread it raced."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import slack_helpers as h
from tests.standins.slack_api import SlackStandIn

CHANNEL = "C0MODELS"


@dataclass
class Loop:
    slack: SlackStandIn
    web: h.WebProcess
    files: Path

    def command(self, text: str, user: str) -> dict[str, Any]:
        delivery = self.slack.slash_command(text, user_id=user, channel_id=CHANNEL)
        r = h.post(self.web, delivery)
        assert r.status_code == 200 and r.elapsed.total_seconds() < 3
        assert r.json()["response_type"] == "ephemeral" and "Working on" in r.json()["text"]
        reply: dict[str, Any] = self.slack.wait_for_response(delivery.response_url or "", timeout=60)[0]
        return reply

    def parent(self, number: int) -> dict[str, Any]:
        return next(m for m in self.slack.messages(CHANNEL) if m.get("text", "").startswith(f"Pull request #{number}:"))

    def parent_with_button(self, number: int, action_id: str, timeout: float = 60) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            parent = self.parent(number)
            return parent if action_id in h.buttons(parent) else None

        result: dict[str, Any] = h.wait_until(found, timeout=timeout, what=f"{action_id} on #{number}")
        return result

    def thread_text(self, number: int) -> str:
        parent = self.parent(number)
        return h.texts([m for m in self.slack.thread(CHANNEL, parent["ts"]) if m["ts"] != parent["ts"]])

    def wait_thread(self, number: int, needle: str, timeout: float = 90) -> str:
        h.wait_until(lambda: needle in self.thread_text(number), timeout=timeout, what=f"{needle!r} in the thread of #{number}")
        return self.thread_text(number)

    def click(self, action_id: str, number: int, user: str, message: dict[str, Any]) -> dict[str, Any] | None:
        delivery = self.slack.block_action(action_id, f"pr:{number}", user_id=user, channel_id=CHANNEL, message_ts=message["ts"])
        r = h.post(self.web, delivery)
        assert r.status_code == 200 and r.elapsed.total_seconds() < 3
        return None if delivery.response_url is None else {"url": delivery.response_url}

    def pr(self, number: int) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.web.home / "forge" / "prs" / f"{number}.json").read_text())
        return data


@pytest.fixture
def loop(tmp_path: Path) -> Iterator[Loop]:
    from tests.model_samples import linear_classifier, write_csv

    home, files = tmp_path / "home", tmp_path / "files"
    h.init_home(home, sources=[files])
    linear_classifier(files / "fraud.onnx")
    write_csv(files / "tx.csv", rows=100, right=95)
    with SlackStandIn() as slack:
        slack.add_bot_token(h.TOKEN)
        slack.add_channel(h.PROD_CHANNEL, "prod-deploys")
        web = h.WebProcess(home, h.server_env(home, slack), tmp_path / "web.log").start()
        try:
            yield Loop(slack, web, files)
        finally:
            web.stop()


def _number(reply: dict[str, Any]) -> int:
    text = h.texts([reply])
    assert "Opened pull request #" in text, text
    return int(text.split("Opened pull request #", 1)[1].split(":", 1)[0])


def test_create_approve_merge_deploy_through_slack_only(loop: Loop) -> None:
    slack = loop.slack
    # a Data Scientist registers a model
    reply = loop.command(
        f"create fraud --app payments --dataset tx --artifact {loop.files}/fraud.onnx "
        f"--dataset-uri {loop.files}/tx.csv --label-column label --SLA accuracy>=0.9", user="U0ALICE",
    )
    number = _number(reply)
    parent = loop.parent(number)
    assert "requested by <@U0ALICE>" in h.texts([parent])
    assert "approve_pr" in h.buttons(parent) and "merge_pr" not in h.buttons(parent)
    assert loop.pr(number)["meta"]["slack"] == {"channel": CHANNEL, "ts": parent["ts"], "user": "U0ALICE"}

    # the worker runs the checks and reports them in the thread
    thread = loop.wait_thread(number, "SLA met")
    for check in ("manifest", "scan", "validate", "sign"):
        assert f"*{check}*" in thread
    assert "has green checks" in loop.wait_thread(number, "has green checks")

    # the author cannot approve her own pull request
    loop.click("approve_pr", number, "U0ALICE", parent)
    h.wait_until(lambda: any("the author's own approval never counts" in m["text"] for m in slack.ephemerals(CHANNEL, "U0ALICE")),
                 what="the refusal")

    # a DevOps Engineer approves from Slack: it counts as the review
    loop.click("approve_pr", number, "U0BOB", parent)
    loop.wait_thread(number, "bob approved #")
    assert [r["person"] for r in loop.pr(number)["reviews"]] == ["bob"]
    parent = loop.parent_with_button(number, "merge_pr")

    # Merge from the button: deployed, reported in the thread
    loop.click("merge_pr", number, "U0BOB", parent)
    loop.wait_thread(number, "bob merged #")
    thread = loop.wait_thread(number, "Deployed")
    assert loop.pr(number)["state"] == "merged"
    assert "merged" in h.texts([loop.parent(number)])
    assert "merge_pr" not in h.buttons(loop.parent(number))

    # prod takes only what ran in test: the refusal says what to type
    refused = h.texts([loop.command("deploy fraud --env prod", user="U0DAVE")])
    assert "fraud runs in no release of test yet" in refused and "`/aimodel deploy fraud --env test`" in refused
    # an Application Developer deploys it to dev (no approvals), then test (one approval)
    for env in ("dev", "test"):
        step = _number(loop.command(f"deploy fraud --env {env}", user="U0DAVE"))
        loop.wait_thread(step, "has green checks" if env == "dev" else "Checks on")
        if env == "test":
            loop.click("approve_pr", step, "U0BOB", loop.parent(step))
            loop.wait_thread(step, f"bob approved #{step}")  # counted before the merge click, not raced by it
        loop.click("merge_pr", step, "U0DAVE", loop.parent(step))  # the thread's "green checks" note carries the button
        assert f"{env}: deployed fraud" in loop.wait_thread(step, "Deployed")

    # then to prod; prod needs a DevOps approval
    deploy = _number(loop.command("deploy fraud --env prod", user="U0DAVE"))
    loop.wait_thread(deploy, "Checks on")
    parent = loop.parent(deploy)
    loop.click("merge_pr", deploy, "U0DAVE", parent)  # a stale or forged click obeys the policy too
    h.wait_until(lambda: any("prod needs 1 approval(s) from DevOps Engineer" in m["text"] for m in slack.ephemerals(CHANNEL, "U0DAVE")),
                 what="the merge refusal")
    assert loop.pr(deploy)["state"] == "open"
    loop.click("approve_pr", deploy, "U0BOB", parent)
    parent = loop.parent_with_button(deploy, "merge_pr")
    assert "Approved by bob" in h.texts([parent])  # the approval counted for prod
    loop.click("merge_pr", deploy, "U0DAVE", parent)  # approved, but prod is merged by a DevOps Engineer
    h.wait_until(lambda: any("is for DevOps Engineer: bob; dave is Application Developer" in m["text"]
                             for m in slack.ephemerals(CHANNEL, "U0DAVE")), what="the merger refusal")
    assert loop.pr(deploy)["state"] == "open"
    loop.click("merge_pr", deploy, "U0BOB", parent)
    thread = loop.wait_thread(deploy, "Deployed")
    assert "prod: deployed fraud" in thread
    assert (loop.web.home / "deploy" / "prod" / "_releases" / "payments.json").exists()

    # and the prod channel hears about it
    prod = h.wait_until(lambda: slack.messages(h.PROD_CHANNEL), what="the prod channel message")
    assert len(prod) == 1
    assert f"Deploy to prod* from #{deploy}" in h.texts(prod) and "prod: deployed fraud" in h.texts(prod)
    # the first merge deployed nowhere: the prod channel heard nothing of it
    assert f"#{number}" not in h.texts(prod)


def test_close_button_releases_the_lock(loop: Loop) -> None:
    number = _number(loop.command(f"create temp --app tapp --dataset tx --artifact {loop.files}/fraud.onnx "
                                  f"--dataset-uri {loop.files}/tx.csv --label-column label", user="U0DAVE"))
    assert any(p.name.startswith("model") for p in (loop.web.home / "locks").iterdir())
    loop.click("close_pr", number, "U0DAVE", loop.parent(number))
    loop.wait_thread(number, "dave closed #")
    assert loop.pr(number)["state"] == "closed"
    h.wait_until(lambda: not any(p.name.startswith("model") for p in (loop.web.home / "locks").iterdir()), what="the lock released")
    # a second click on the stale button is refused, ephemeral
    loop.click("close_pr", number, "U0DAVE", loop.parent(number))
    h.wait_until(lambda: any("already closed" in m["text"] for m in loop.slack.ephemerals(CHANNEL, "U0DAVE")), what="the refusal")


def test_view_button_and_unknown_clicker(loop: Loop) -> None:
    loop.slack.add_user("U0ZED", "zed", "zed@example.com")
    number = _number(loop.command(f"create viewme --app vapp --dataset tx --artifact {loop.files}/fraud.onnx "
                                  f"--dataset-uri {loop.files}/tx.csv --label-column label", user="U0ALICE"))
    loop.click("open_pr", number, "U0BOB", loop.parent(number))
    h.wait_until(lambda: any(f"#{number} create viewme" in m["text"] for m in loop.slack.ephemerals(CHANNEL, "U0BOB")), what="the PR detail")
    loop.click("approve_pr", number, "U0ZED", loop.parent(number))
    h.wait_until(lambda: any("I don't know you yet" in m["text"] for m in loop.slack.ephemerals(CHANNEL, "U0ZED")), what="the refusal")
    assert loop.pr(number)["reviews"] == []


def test_app_home(loop: Loop) -> None:
    slack = loop.slack
    loop.slack.add_user("U0ZED", "zed", "zed@example.com")
    number = _number(loop.command(f"create homey --app happ --dataset tx --artifact {loop.files}/fraud.onnx "
                                  f"--dataset-uri {loop.files}/tx.csv --label-column label", user="U0ALICE"))
    loop.wait_thread(number, "has green checks")
    parent = loop.parent(number)
    loop.click("merge_pr", number, "U0ALICE", parent)
    loop.wait_thread(number, "Deployed")
    to_dev = _number(loop.command("deploy homey --env dev", user="U0DAVE"))
    loop.wait_thread(to_dev, "has green checks")
    loop.click("merge_pr", to_dev, "U0DAVE", loop.parent(to_dev))
    loop.wait_thread(to_dev, "Deployed")
    deploy = _number(loop.command("deploy homey --env test", user="U0DAVE"))  # test needs an approval

    assert h.post(loop.web, slack.app_home_opened("U0BOB")).status_code == 200
    home = h.wait_until(lambda: slack.home_view("U0BOB"), what="bob's home")
    text = h.texts([home])
    assert "You are *bob* (devops-engineer)" in text
    assert "Waiting for your approval* (1)" in text and f"#{deploy}" in text
    assert "*homey* 1.0.0" in text
    assert h.buttons(home)["approve_pr"] == f"pr:{deploy}"

    assert h.post(loop.web, slack.app_home_opened("U0DAVE")).status_code == 200
    home = h.wait_until(lambda: slack.home_view("U0DAVE"), what="dave's home")
    text = h.texts([home])
    assert "Your open pull requests* (1)" in text and f"#{deploy}" in text
    assert "`model:homey`" in text and "Waiting for your approval* (0)" in text

    # approving from the Home tab counts, and the tab is refreshed
    click = slack.block_action("approve_pr", f"pr:{deploy}", user_id="U0BOB", channel_id=CHANNEL)
    payload = click.payload()
    payload["container"] = {"type": "view", "view_id": home["id"]}
    payload["view"] = {"id": home["id"], "type": "home", "callback_id": "aimodel_home"}
    payload.pop("message", None)
    from tests.standins.slack_signing import Delivery, interactive_body

    r = h.post(loop.web, Delivery(interactive_body(payload), click.content_type, click.response_url, click.trigger_id))
    assert r.status_code == 200
    h.wait_until(lambda: "Waiting for your approval* (0)" in h.texts([slack.home_view("U0BOB") or {}]), what="bob's refreshed home")
    assert [r["person"] for r in loop.pr(deploy)["reviews"]] == ["bob"]

    # the New model button opens the modal; a stranger is told how to get access
    assert h.post(loop.web, slack.block_action("open_create_modal", "create", user_id="U0ALICE")).status_code == 200
    assert slack.wait_for_call("views.open", timeout=15).params["view"]["callback_id"] == "create_model"
    assert h.post(loop.web, slack.app_home_opened("U0ZED")).status_code == 200
    stranger = h.wait_until(lambda: slack.home_view("U0ZED"), what="zed's home")
    assert "I don't know you yet" in h.texts([stranger])


def test_an_update_through_slack_posts_its_checks_once(loop: Loop) -> None:
    """One "Checks on" reply per head a person pushed, with the final results (never `sign
    waiting`); signing commits nothing, so nothing starts a second run."""
    create = _number(loop.command(f"create once --app oapp --dataset tx --artifact {loop.files}/fraud.onnx "
                                  f"--dataset-uri {loop.files}/tx.csv --label-column label", user="U0ALICE"))
    loop.wait_thread(create, "has green checks")
    loop.click("merge_pr", create, "U0ALICE", loop.parent(create))
    loop.wait_thread(create, "Deployed")
    from tests.model_samples import linear_classifier

    linear_classifier(loop.files / "fraud-v2.onnx", output="probabilities")
    update = _number(loop.command(f"update once --artifact {loop.files}/fraud-v2.onnx", user="U0DAVE"))
    loop.wait_thread(update, "has green checks")
    # merging and deploying comes after every task the update queued: by then a second run
    # would have posted
    loop.click("merge_pr", update, "U0DAVE", loop.parent(update))
    loop.wait_thread(update, "Deployed")
    for number in (create, update):
        parent = loop.parent(number)
        replies = [m for m in loop.slack.thread(CHANNEL, parent["ts"]) if m["ts"] != parent["ts"]]
        checks = [m for m in replies if m.get("text", "").startswith(f"Checks on #{number}")]
        assert len(checks) == 1, h.texts(checks)
        assert "waiting" not in h.texts(checks) and "bundle and attestation in the artifact store" in h.texts(checks)
    posts = [c for c in loop.slack.calls("chat.postMessage") if str(c.params.get("text", "")).startswith(f"Checks on #{update}")]
    assert len(posts) == 1


# ---------------------------------------------------------------------- in-process pieces


@pytest.fixture
def context(tmp_path: Path) -> Iterator[Any]:
    from bot.app import Context
    from bot.config import load_settings

    home = tmp_path / "home"
    h.init_home(home)
    with Context(load_settings({"AIMODEL_HOME": str(home)})) as ctx:
        yield ctx


def test_socket_mode_is_wired(context: Any) -> None:
    from slack_sdk.errors import SlackApiError

    from bot.config import SlackSettings
    from handlers.slack import build_app, socket_mode_handler

    with SlackStandIn() as slack:
        slack.add_bot_token(h.TOKEN)
        settings = SlackSettings(h.SECRET, h.TOKEN, slack.api_url, "xapp-1-socket")
        app = build_app(context, settings)
        handler = socket_mode_handler(app, settings)
        try:
            assert handler.app is app and handler.app_token == "xapp-1-socket"
            assert handler.client.web_client.base_url == slack.api_url
            with pytest.raises(SlackApiError):  # the stand-in does not open WebSockets
                handler.client.issue_new_wss_url()
            call = slack.wait_for_call("apps.connections.open")
            assert call.token == "xapp-1-socket"
        finally:
            handler.client.close()
            app.listener_runner.listener_executor.shutdown(wait=True)


def test_notifier_finds_a_thread_it_raced_and_posts_once(context: Any) -> None:
    from slack_sdk import WebClient

    from bot.config import SlackSettings
    from handlers.slack_notify import SlackNotifier, ThreadNotReady

    with SlackStandIn() as slack:
        slack.add_bot_token(h.TOKEN)
        notifier = SlackNotifier(SlackSettings(h.SECRET, h.TOKEN, slack.api_url), context)
        data = {"pr": 7, "title": "create x", "url": "aimodel://local/pr/7", "text": "Checks on #7:\n  scan ok",
                "meta": {"slack": {"channel": CHANNEL, "user": "U0ALICE"}}, "checks": {"scan": {"state": "success", "summary": "clean"}}}
        with pytest.raises(ThreadNotReady):
            notifier.deliver("checks", data)  # the parent is not posted yet: the task is retried
        client = WebClient(token=h.TOKEN, base_url=slack.api_url)
        parent = client.chat_postMessage(channel=CHANNEL, text="Pull request #7: create x",
                                         metadata={"event_type": "aimodel_pr", "event_payload": {"pr": 7}})
        notifier.deliver("checks", data)
        notifier.deliver("checks", data)  # a retried task does not post twice
        replies = [m for m in slack.thread(CHANNEL, parent["ts"]) if m["ts"] != parent["ts"]]
        assert len(replies) == 1 and "*scan* clean" in h.texts(replies)
        # a notification for a PR from another face (no thread) posts nothing
        notifier.deliver("ready", {**data, "meta": {}})
        assert len(slack.messages(CHANNEL)) == 2


def test_drift_goes_to_the_deploy_channel_once_per_finding(context: Any) -> None:
    from bot.config import SlackSettings
    from bot.messages.releases import drift_notice
    from handlers.slack_notify import SlackNotifier

    with SlackStandIn() as slack:
        slack.add_bot_token(h.TOKEN)
        slack.add_channel(h.PROD_CHANNEL, "prod-deploys")
        notifier = SlackNotifier(SlackSettings(h.SECRET, h.TOKEN, slack.api_url), context)
        found = ["dev: fraud 1.0.0: model.onnx changed (sha256 differs from what was placed)"]
        data = {"pr": None, "env": "dev", "found": found, "text": drift_notice("dev", found)}
        notifier.deliver("drift", data)
        notifier.deliver("drift", data)  # a retried task does not post twice
        posted = slack.messages(h.PROD_CHANNEL)
        assert len(posted) == 1
        assert "Drift in dev" in h.texts(posted) and "model.onnx changed" in h.texts(posted)
        assert "aimodel sync --env dev" in h.texts(posted)
        notifier.deliver("drift", {**data, "found": ["dev: fraud 1.0.0: model.onnx was removed"]})  # another finding: told
        assert len(slack.messages(h.PROD_CHANNEL)) == 2


def _merge_from_slack(loop: Loop, number: int, user: str, *, approver: str = "") -> str:
    """Wait for the checks, approve when the environment asks for it, merge; the thread's "Deployed" note."""
    loop.wait_thread(number, "has green checks" if not approver else "Checks on")
    if approver:
        loop.click("approve_pr", number, approver, loop.parent(number))
        loop.wait_thread(number, f"approved #{number}")
    loop.click("merge_pr", number, user, loop.parent(number))  # the thread's "green checks" note carries the button
    return loop.wait_thread(number, "Deployed")


def test_rollback_history_and_promotion_order_through_slack(loop: Loop) -> None:
    """v1 runs in dev and test; v2 is registered and deployed to dev; `/aimodel rollback` puts
    v1 back in dev through a pull request merged from Slack; `/aimodel history` lists the three
    dev releases; prod refuses v2, which never ran in test, with the command to type in Slack."""
    from tests.model_samples import linear_classifier

    releases = loop.web.home / "deploy" / "dev" / "_releases" / "payments.json"

    def pinned() -> str:
        return str(json.loads(releases.read_text())["models"]["fraud"])

    create = _number(loop.command(f"create fraud --app payments --dataset tx --artifact {loop.files}/fraud.onnx "
                                  f"--dataset-uri {loop.files}/tx.csv --label-column label --version 1.0.0", user="U0ALICE"))
    _merge_from_slack(loop, create, "U0ALICE")
    to_dev = _number(loop.command("deploy fraud --env dev", user="U0DAVE"))
    _merge_from_slack(loop, to_dev, "U0DAVE")
    to_test = _number(loop.command("deploy fraud --env test", user="U0DAVE"))
    _merge_from_slack(loop, to_test, "U0DAVE", approver="U0BOB")

    linear_classifier(loop.files / "fraud-v2.onnx", output="probabilities")
    update = _number(loop.command(f"update fraud --artifact {loop.files}/fraud-v2.onnx --version 1.1.0", user="U0DAVE"))
    _merge_from_slack(loop, update, "U0DAVE")
    assert pinned() == "1.0.0"  # a registered version runs nowhere yet
    v2_dev = _number(loop.command("deploy fraud --env dev", user="U0DAVE"))  # the newest: 1.1.0
    assert "dev: deployed fraud" in _merge_from_slack(loop, v2_dev, "U0DAVE")
    assert pinned() == "1.1.0"

    # prod takes only what ran in test: test runs 1.0.0, so 1.1.0 is refused, with the Slack spelling
    refused = h.texts([loop.command("deploy fraud --env prod --version 1.1.0", user="U0BOB")])
    assert "fraud 1.1.0 has not run successfully in test" in refused, refused
    assert "`/aimodel deploy fraud --env test --version 1.1.0`" in refused, refused
    assert "usage:" not in refused  # the command to type is given; the grammar beside it would read as a typo
    assert not (loop.web.home / "deploy" / "prod" / "_releases" / "payments.json").exists()

    # rollback opens the pull request restoring the release before the live one; merged from Slack
    rollback = _number(loop.command("rollback payments --env dev", user="U0DAVE"))
    assert loop.pr(rollback)["meta"]["verb"] == "rollback"
    thread = _merge_from_slack(loop, rollback, "U0DAVE")
    assert "dev: released payments; records dev-payments-3" in thread  # 1.0.0's files were kept: nothing to copy
    assert pinned() == "1.0.0"
    assert loop.pr(rollback)["state"] == "merged"

    # history lists the three dev releases, newest first, with the pull requests that asked for them
    answer = loop.command("history payments --env dev", user="U0DAVE")
    text = h.texts([answer])
    assert "Releases of application payments" in text, text
    rows = [line for line in str(answer["text"]).splitlines() if line.startswith("dev-payments-")]
    assert [r.split()[0] for r in rows] == ["dev-payments-3", "dev-payments-2", "dev-payments-1"], text
    for row, (number, version) in zip(rows, [(rollback, "1.0.0"), (v2_dev, "1.1.0"), (to_dev, "1.0.0")], strict=True):
        assert f"#{number}" in row and f"fraud {version}" in row, row
    assert "test-payments-" not in text  # --env dev: only dev
