"""Hostile requests to the real web process (`aimodel serve`, gunicorn) get clean refusals:
413 for a body over the limit before it is parsed, 400 and one log line for a signed body
that is not what its event needs, never a 500 or a traceback; the process keeps serving."""

from __future__ import annotations

import contextlib
import copy
import http.client
import json
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
import requests

from handlers.limits import GITHUB_MAX_BODY, SLACK_MAX_BODY
from tests import slack_helpers as h
from tests.github_helpers import (
    HOOK_SECRET,
    load_fixture,
    make_world,
    post_delivery,
    signature,
    web_process,
)
from tests.standins.github_api import GitHubStandIn
from tests.standins.slack_api import SlackStandIn
from tests.standins.slack_signing import sign_request

pytestmark = pytest.mark.timeout(180)


def post_oversized(url: str, body: bytes | Iterator[bytes], headers: dict[str, str]) -> tuple[int, Any]:
    """POST a body the server refuses before reading it, on a connection closed here whatever
    happens (requests may drop such a connection unclosed when the answer comes early)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    try:
        # the answer may come before the whole body was sent: read it anyway
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.request("POST", parts.path, body=body, headers=headers, encode_chunked=not isinstance(body, bytes))
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def refusals(log: str, route: str, status: int) -> list[str]:
    """The refusal lines' messages: the server logs JSON lines (its stderr is not a terminal)."""
    found = []
    for line in log.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            line = record["message"]
        if f"{route} refused with {status}: " in line:
            found.append(line)
    return found


# --------------------------------------------------------------------------- Slack


@pytest.fixture(scope="module")
def slack_web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SlackStandIn, h.WebProcess]]:
    with h.slack_and_web(tmp_path_factory.mktemp("hostile-slack")) as (slack, web, _home):
        yield slack, web


def slack_post(web: h.WebProcess, body: bytes, content_type: str = "application/x-www-form-urlencoded", *, signed: bool = True) -> requests.Response:
    headers = {"Content-Type": content_type, **(sign_request(h.SECRET, body) if signed else {})}
    with requests.post(web.events_url, data=body, headers=headers, timeout=30) as r:
        return r


def interaction(payload: dict[str, Any]) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


def still_serving(slack: SlackStandIn, web: h.WebProcess) -> None:
    delivery = slack.slash_command("list")
    r = h.post(web, delivery)
    assert r.status_code == 200, r.text
    assert "No models yet" in slack.wait_for_response(delivery.response_url or "")[0]["text"]


def test_slack_body_over_the_limit_is_413_before_it_is_read(slack_web: tuple[SlackStandIn, h.WebProcess]) -> None:
    slack, web = slack_web
    before = len(refusals(web.log_text(), "/slack/events", 413))
    delivery = slack.slash_command("list " + "x" * (10 * 1024 * 1024))  # 10 MB, signed
    status, answer = post_oversized(web.events_url, delivery.body, delivery.headers(h.SECRET))
    assert status == 413
    assert answer == {"error": f"the body is larger than {SLACK_MAX_BODY:,} bytes"}
    assert slack.responses(delivery.response_url or "") == []
    assert len(refusals(web.log_text(), "/slack/events", 413)) == before + 1
    still_serving(slack, web)


def test_slack_chunked_body_over_the_limit_is_413(slack_web: tuple[SlackStandIn, h.WebProcess]) -> None:
    slack, web = slack_web
    chunk = b"x" * 65536

    def body() -> Iterator[bytes]:  # no Content-Length: the limit is enforced while reading
        for _ in range(SLACK_MAX_BODY // len(chunk) + 2):
            yield chunk

    status, _ = post_oversized(web.events_url, body(), {"Content-Type": "application/json"})
    assert status == 413
    still_serving(slack, web)


@pytest.mark.parametrize(
    ("body", "content_type", "why"),
    [
        (b'{"type": "event_callback", "event": ', "application/json", "the body is not JSON (JSONDecodeError)"),
        (b"[1, 2]", "application/json", "the body is JSON list, not an object"),
        (b"[" * 100_000, "application/json", "the body is not JSON (RecursionError)"),
        (b"payload=%7Bnot+json", "application/x-www-form-urlencoded", "the body is not JSON (JSONDecodeError)"),
        (b"payload=%22a+string%22", "application/x-www-form-urlencoded", "the body is JSON str, not an object"),
    ],
    ids=["truncated-json", "json-array", "deep-nesting", "payload-not-json", "payload-not-object"],
)
def test_signed_slack_body_that_is_not_json_is_400(
    slack_web: tuple[SlackStandIn, h.WebProcess], body: bytes, content_type: str, why: str
) -> None:
    _, web = slack_web
    r = slack_post(web, body, content_type)
    assert r.status_code == 400 and r.json() == {"error": "malformed request"}
    assert refusals(web.log_text(), "/slack/events", 400)[-1].endswith(why)
    assert "Traceback" not in web.log_text()


def test_unsigned_malformed_body_is_401_not_400(slack_web: tuple[SlackStandIn, h.WebProcess]) -> None:
    _, web = slack_web
    assert slack_post(web, b'{"type": ', "application/json", signed=False).status_code == 401


@pytest.mark.parametrize(
    "payload",
    [
        {"type": "view_submission", "user": {"id": "U0ALICE"}, "team": {"id": "T1"}, "view": {"callback_id": "aimodel-create", "id": "V1"}},
        {"type": "block_actions", "user": {"id": "U0ALICE"}, "team": {"id": "T1"}, "actions": "approve"},
        {"type": "view_submission", "user": {"id": "U0ALICE"}, "team": {"id": "T1"}, "view": "create"},
    ],
    ids=["view-without-type", "actions-not-a-list", "view-not-an-object"],
)
def test_signed_slack_payload_missing_what_bolt_reads_is_400(slack_web: tuple[SlackStandIn, h.WebProcess], payload: dict[str, Any]) -> None:
    _, web = slack_web
    before = len(refusals(web.log_text(), "/slack/events", 400))
    r = slack_post(web, interaction(payload))
    assert r.status_code == 400, r.text
    assert len(refusals(web.log_text(), "/slack/events", 400)) == before + 1
    assert "Traceback" not in web.log_text()


def test_signed_event_callback_with_event_not_an_object_is_400(slack_web: tuple[SlackStandIn, h.WebProcess]) -> None:
    _, web = slack_web
    body = json.dumps({"type": "event_callback", "team_id": "T1", "event": "app_home_opened"}).encode()
    assert slack_post(web, body, "application/json").status_code == 400
    assert "Traceback" not in web.log_text()


def test_slash_command_over_the_text_cap_is_answered_at_once(slack_web: tuple[SlackStandIn, h.WebProcess]) -> None:
    slack, web = slack_web
    delivery = slack.slash_command("create fraud --reason '" + "x" * 100_000)  # 100 KB: under the body limit
    r = h.post(web, delivery)
    assert r.status_code == 200
    assert r.elapsed.total_seconds() < 3
    assert "is 100,023 characters long; at most 4,000 are read" in r.json()["text"]
    still_serving(slack, web)


# --------------------------------------------------------------------------- GitHub


@pytest.fixture(scope="module")
def github_web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp = tmp_path_factory.mktemp("hostile-github")
    with GitHubStandIn() as standin:
        world = make_world(standin, tmp / "home", app=False)
        with web_process(world.env(), tmp / "web.log") as web:
            yield web


def opened() -> dict[str, Any]:
    return copy.deepcopy(load_fixture("pull_request/opened.json"))


def test_github_body_over_25_mb_is_413(github_web: Any) -> None:
    body = b'{"zen": "' + b"x" * GITHUB_MAX_BODY + b'"}'
    headers = {"Content-Type": "application/json", "X-GitHub-Event": "ping", "X-GitHub-Delivery": str(uuid.uuid4()),
               "X-Hub-Signature-256": signature(HOOK_SECRET, body)}
    status, answer = post_oversized(f"{github_web.url}/github/webhook", body, headers)
    assert status == 413
    assert answer == {"error": f"the body is larger than {GITHUB_MAX_BODY:,} bytes"}
    assert refusals(github_web.log(), "/github/webhook", 413)
    assert post_delivery(github_web.url, "ping", {"zen": "ok"}).status_code == 200


def _without(payload: dict[str, Any], *path: str) -> dict[str, Any]:
    node = payload
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return payload


def _with(payload: dict[str, Any], value: Any, *path: str) -> dict[str, Any]:
    node = payload
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return payload


@pytest.mark.parametrize(
    ("event", "payload", "why"),
    [
        ("pull_request", _without(opened(), "pull_request", "head", "sha"), "pull_request.head.sha is missing"),
        ("pull_request", _without(opened(), "pull_request", "head"), "pull_request.head.sha is missing"),
        ("pull_request", _with(opened(), "1; rm -rf", "pull_request", "head", "sha"), "pull_request.head.sha is not a commit sha"),
        ("pull_request", _with(opened(), "7", "pull_request", "number"), "pull_request.number is not a pull request number"),
        ("pull_request", _with(opened(), None, "pull_request"), "pull_request.number is missing"),
        ("pull_request", _without(load_fixture("pull_request/closed.json"), "pull_request", "head", "sha"), "pull_request.head.sha is missing"),
        ("pull_request", _without(load_fixture("pull_request/closed.json"), "pull_request", "base"), "pull_request cannot be read (KeyError: 'base')"),
        ("pull_request_review", _without(load_fixture("pull_request_review/submitted.json"), "pull_request"), "pull_request.number is missing"),
        ("push", _with(load_fixture("push/push.json"), "HEAD", "after"), "after is not a commit sha"),
        ("check_run", _without(load_fixture("check_run/rerequested.json"), "check_run", "head_sha"), "check_run.head_sha is missing"),
    ],
    ids=["no-head-sha", "no-head", "head-not-a-sha", "number-a-string", "pull-request-null", "closed-no-head-sha", "closed-no-base", "review-without-pr", "push-after-not-sha", "check-run-no-sha"],
)
def test_signed_github_event_missing_a_required_field_is_400(github_web: Any, event: str, payload: dict[str, Any], why: str) -> None:
    delivery = str(uuid.uuid4())
    r = post_delivery(github_web.url, event, payload, delivery=delivery)
    assert r.status_code == 400, r.text
    assert r.json() == {"error": f"delivery {delivery}: {why}"}
    lines = [line for line in refusals(github_web.log(), "/github/webhook", 400) if delivery in line]
    assert len(lines) == 1 and lines[0].endswith(why)
    assert "Traceback" not in github_web.log()
    # the same delivery again is refused the same way (not "processed already", not 500)
    assert post_delivery(github_web.url, event, payload, delivery=delivery).status_code == 400


def test_signed_github_body_that_is_not_json_is_400(github_web: Any) -> None:
    for body in (b"{not json", b"[" * 100_000, b"\xff\xfe{}", b'"a string"'):
        headers = {"X-GitHub-Event": "push", "X-GitHub-Delivery": str(uuid.uuid4()), "X-Hub-Signature-256": signature(HOOK_SECRET, body)}
        with requests.post(f"{github_web.url}/github/webhook", data=body, headers=headers, timeout=10) as r:
            assert r.status_code == 400, (body[:10], r.text)
    assert "Traceback" not in github_web.log()
    assert post_delivery(github_web.url, "pull_request", opened()).status_code == 202


def test_repository_that_is_not_an_object_is_ignored_not_500(github_web: Any) -> None:
    r = post_delivery(github_web.url, "pull_request", _with(opened(), "acme/models", "repository"))
    assert r.status_code == 202 and "not for this bot" in r.json()["ignored"]


def test_slash_command_whose_text_says_payload_is_read_as_a_command(slack_web: tuple[SlackStandIn, h.WebProcess]) -> None:
    # Bolt reads a form body containing "payload" as an interaction and found no command here.
    slack, web = slack_web
    delivery = slack.slash_command("status payload-scorer")
    r = h.post(web, delivery)
    assert r.status_code == 200 and "Working on `/aimodel status`" in r.json()["text"]
    answer = slack.wait_for_response(delivery.response_url or "")[0]
    assert "there is no model 'payload-scorer'" in h.texts([answer])


def test_a_damaged_lock_file_is_a_short_note_in_slack_and_one_line_in_the_log(slack_web: tuple[SlackStandIn, h.WebProcess]) -> None:
    slack, web = slack_web
    lock = web.home / "locks" / "model__fraud.json"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text("{damaged")
    try:
        delivery = slack.slash_command("status")
        assert h.post(web, delivery).status_code == 200
        answer = h.texts(slack.wait_for_response(delivery.response_url or ""))
        assert "I cannot read my own state right now" in answer
        assert str(web.home) not in answer  # the path is for the operator
        assert any(f"{lock} is damaged: not valid JSON" in line for line in web.log_text().splitlines())
        assert "Traceback" not in web.log_text()
    finally:
        lock.unlink()
    still_serving(slack, web)


def test_signed_slash_command_without_user_or_response_url_is_400(slack_web: tuple[SlackStandIn, h.WebProcess]) -> None:
    slack, web = slack_web
    for missing in ("user_id", "response_url"):
        fields = slack.slash_command("list").payload()
        del fields[missing]
        before = len(refusals(web.log_text(), "/slack/events", 400))
        r = slack_post(web, urlencode(fields).encode())
        assert r.status_code == 400, r.text
        lines = refusals(web.log_text(), "/slack/events", 400)
        assert len(lines) == before + 1 and f"{missing} is missing" in lines[-1]
    assert "Traceback" not in web.log_text()
    still_serving(slack, web)
