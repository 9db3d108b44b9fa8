"""POST /github/webhook over real HTTP: the bot's Flask app served on 127.0.0.1 with a real
Context (the GitHub forge on the stand-in, the SQLite queue in AIMODEL_HOME). What a delivery
"did" is read from the real queue: the tasks it enqueued."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.github_helpers import (
    HOOK_SECRET,
    NAME,
    OWNER,
    REPO,
    Bot,
    GitHubWorld,
    fixture_names,
    load_fixture,
    make_world,
    post_delivery,
    serve_bot,
    signature,
)
from tests.standins.github_api import GitHubStandIn

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def world(standin: GitHubStandIn, tmp_path: Path) -> GitHubWorld:
    return make_world(standin, tmp_path / "home", app=True)


@pytest.fixture
def bot(world: GitHubWorld) -> Iterator[Bot]:
    with serve_bot(world) as b:
        yield b


def join_reruns() -> None:
    from handlers.github import RERUNS

    for thread in list(RERUNS):
        thread.join(timeout=30)


def event_of(name: str) -> str:
    return name.split("/", 1)[0]


# --------------------------------------------------------------------------- fixtures, parsed and POSTed


@pytest.mark.parametrize("name", fixture_names())
def test_every_fixture_parses_and_is_accepted_signed(bot: Bot, name: str) -> None:
    payload = load_fixture(name)
    assert payload["repository"]["full_name"] == REPO
    assert isinstance(payload.get("sender", {}).get("login"), str)
    resp = post_delivery(bot.url, event_of(name), payload)
    assert resp.status_code in (200, 202), resp.text
    assert resp.elapsed.total_seconds() < 10
    answer = resp.json()
    assert answer.get("ok") or answer.get("ignored") or answer.get("zen") is not None


def test_fixtures_route_to_the_forge_events(bot: Bot) -> None:
    opened = load_fixture("pull_request/opened.json")
    post_delivery(bot.url, "pull_request", opened)
    assert bot.queued() == [("aimodel.checks", (1, opened["pull_request"]["head"]["sha"]))]
    bot.clear()

    post_delivery(bot.url, "pull_request_review", load_fixture("pull_request_review/submitted.json"))
    assert bot.queued() == [("aimodel.after_checks", (1,))]
    bot.clear()

    push = load_fixture("push/push.json")
    post_delivery(bot.url, "push", push)
    assert bot.queued() == [("aimodel.deploy", (push["after"], 1))]  # "Merge pull request #1 ..."
    bot.clear()

    other_branch = {**push, "ref": "refs/heads/feature"}
    assert "ignored" in post_delivery(bot.url, "push", other_branch).json()
    assert bot.queued() == []

    closed = load_fixture("pull_request/closed.json")
    bot.ctx.locks.acquire(["model:bert"], "ada")
    bot.ctx.locks.assign(["model:bert"], 1)
    body = closed["pull_request"]["body"] or ""
    from bot.messages.github import render_pr_body

    closed["pull_request"]["body"] = render_pr_body(body, {"locks": ["model:bert"], "model": "bert", "author": "ada"})
    resp = post_delivery(bot.url, "pull_request", closed)
    assert resp.json()["ok"], resp.text
    assert bot.ctx.locks.holder("model:bert") is None  # released from the payload, no API call
    assert not [p for m, p, _s in bot.world.standin.requests if "/pulls/1" in p]


def test_bad_or_missing_signature_is_401_and_does_nothing(bot: Bot) -> None:
    payload = load_fixture("pull_request/opened.json")
    body = json.dumps(payload).encode()
    assert post_delivery(bot.url, "pull_request", body, signature_header=None).status_code == 401
    assert post_delivery(bot.url, "pull_request", body, signature_header="sha256=" + "0" * 64).status_code == 401
    assert post_delivery(bot.url, "pull_request", body, secret="another secret").status_code == 401
    assert post_delivery(bot.url, "pull_request", body, signature_header=signature(HOOK_SECRET, body + b" ")).status_code == 401
    sha1_only = "sha1=" + "0" * 40
    assert post_delivery(bot.url, "pull_request", body, signature_header=sha1_only).status_code == 401
    assert bot.queued() == []
    # the same body, signed: accepted (the refusals above were about the signature only)
    assert post_delivery(bot.url, "pull_request", body).status_code == 202
    assert len(bot.queued()) == 1


def test_replayed_delivery_is_processed_once(bot: Bot) -> None:
    payload = load_fixture("pull_request/synchronize.json")
    delivery = str(uuid.uuid4())
    first = post_delivery(bot.url, "pull_request", payload, delivery=delivery)
    assert first.status_code == 202 and first.json()["ok"]
    with ThreadPoolExecutor(8) as pool:  # redeliveries, some at the same moment
        answers = list(pool.map(lambda _: post_delivery(bot.url, "pull_request", payload, delivery=delivery), range(16)))
    assert all(a.status_code == 202 and "processed already" in a.json()["ignored"] for a in answers)
    assert len(bot.queued()) == 1
    # a fresh delivery id for the same event is a new delivery
    post_delivery(bot.url, "pull_request", payload)
    assert len(bot.queued()) == 2


def test_concurrent_first_deliveries_each_processed_once(bot: Bot) -> None:
    payload = load_fixture("pull_request_review/submitted.json")
    ids = [str(uuid.uuid4()) for _ in range(20)]
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda d: post_delivery(bot.url, "pull_request_review", payload, delivery=d), ids * 3))
    assert sum(1 for a in answers if a.json().get("ok")) == 20
    assert len(bot.queued()) == 20


def test_delivery_ids_survive_a_restart(world: GitHubWorld) -> None:
    payload = load_fixture("pull_request/opened.json")
    delivery = str(uuid.uuid4())
    with serve_bot(world) as first:
        assert post_delivery(first.url, "pull_request", payload, delivery=delivery).json()["ok"]
        first.clear()
    with serve_bot(world) as second:
        again = post_delivery(second.url, "pull_request", payload, delivery=delivery)
        assert "processed already" in again.json()["ignored"]
        assert second.queued() == []


def test_events_for_other_repositories_are_ignored(bot: Bot) -> None:
    for name in ("pull_request/opened.json", "push/push.json", "pull_request_review/submitted.json"):
        payload = load_fixture(name)
        payload["repository"] = {**payload["repository"], "full_name": "someone/else", "name": "else"}
        resp = post_delivery(bot.url, event_of(name), payload)
        assert resp.status_code == 202 and "not for this bot" in resp.json()["ignored"]
    assert bot.queued() == []


def test_malformed_deliveries_are_refused(bot: Bot) -> None:
    body = b"{not json"
    headers = {"X-GitHub-Event": "push", "X-GitHub-Delivery": "x", "X-Hub-Signature-256": signature(HOOK_SECRET, body)}
    with requests.post(f"{bot.url}/github/webhook", data=body, headers=headers, timeout=10) as resp:
        assert resp.status_code == 400
    good = json.dumps(load_fixture("push/push.json")).encode()
    headers = {"X-Hub-Signature-256": signature(HOOK_SECRET, good)}
    with requests.post(f"{bot.url}/github/webhook", data=good, headers=headers, timeout=10) as resp:
        assert resp.status_code == 400  # no event name, no delivery id
    assert bot.queued() == []


def test_check_run_rerequested_reruns_the_checks_of_its_pull_request(bot: Bot, world: GitHubWorld) -> None:
    standin = world.standin
    sha = standin.commit_files(OWNER, NAME, "feature", {"README.md": "# changed\n"}, "change", pusher="ada-gh")
    with world.client("ada") as gh:
        number = gh.get_repo(REPO).create_pull(base="main", head="feature", title="by hand").number
    payload = load_fixture("check_run/rerequested.json")
    payload["check_run"] = {**payload["check_run"], "head_sha": sha, "pull_requests": []}
    resp = post_delivery(bot.url, "check_run", payload)
    assert resp.json()["ok"], resp.text
    assert resp.elapsed.total_seconds() < 1  # the API calls run after the answer
    join_reruns()
    assert bot.queued() == [("aimodel.checks", (number, sha, False, True))]  # forced: a person asked
    bot.clear()
    foreign = {**payload, "check_run": {**payload["check_run"], "name": "ci/build"}}
    assert "ignored" in post_delivery(bot.url, "check_run", foreign).json()
    assert bot.queued() == []


def test_a_failure_to_queue_lets_the_redelivery_through(world: GitHubWorld) -> None:
    with serve_bot(world) as bot:
        payload = load_fixture("pull_request/opened.json")
        delivery = str(uuid.uuid4())
        queue_db = Path(bot.ctx.settings.home) / "queue.db"
        original = bot.ctx.jobs.checks

        def broken(number: int, head: str) -> None:
            raise OSError(f"disk full while queueing ({queue_db.name})")

        bot.ctx.jobs.checks = broken
        try:
            assert post_delivery(bot.url, "pull_request", payload, delivery=delivery).status_code == 500
        finally:
            bot.ctx.jobs.checks = original
        assert post_delivery(bot.url, "pull_request", payload, delivery=delivery).json()["ok"]
        assert len(bot.queued()) == 1


def test_metrics_count_deliveries_by_outcome(bot: Bot) -> None:
    payload = load_fixture("pull_request/opened.json")
    delivery = str(uuid.uuid4())
    post_delivery(bot.url, "pull_request", payload, delivery=delivery)
    post_delivery(bot.url, "pull_request", payload, delivery=delivery)
    with requests.get(f"{bot.url}/metrics", timeout=10) as resp:
        text = resp.text
    assert 'aimodel_github_webhooks_total{event="pull_request",outcome="duplicate"}' in text
    assert 'aimodel_github_webhooks_total{event="pull_request",outcome="processed"}' in text


# --------------------------------------------------------------------------- Redis de-duplication


def test_redis_deliveries_are_shared_between_processes(redis_url: str) -> None:
    from handlers.github import RedisDeliveries

    one, two = RedisDeliveries(redis_url), RedisDeliveries(redis_url)
    try:
        assert one.first_time("d-1", "push")
        assert not two.first_time("d-1", "push")
        assert two.first_time("d-2", "push")
        two.forget("d-2")
        assert one.first_time("d-2", "push")
        assert one.count() == 2
        assert 0 < one.client.ttl(one.prefix + "d-1") <= 14 * 24 * 3600
    finally:
        one.close()
        two.close()


def test_sqlite_deliveries_across_connections(tmp_path: Path) -> None:
    from handlers.github import SqliteDeliveries

    one, two = SqliteDeliveries(tmp_path / "d.db"), SqliteDeliveries(tmp_path / "d.db")
    try:
        assert one.first_time("a", "push") and not two.first_time("a", "push")
        results: list[bool] = []
        lock = threading.Lock()

        def claim(store: SqliteDeliveries) -> None:
            ok = store.first_time("b", "push")
            with lock:
                results.append(ok)

        threads = [threading.Thread(target=claim, args=(s,)) for s in (one, two) * 8]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results.count(True) == 1
    finally:
        one.close()
        two.close()


def test_with_redis_the_web_process_shares_deliveries_and_queue(world: GitHubWorld, redis_url: str) -> None:
    payload = load_fixture("pull_request/opened.json")
    delivery = str(uuid.uuid4())
    with serve_bot(world, REDIS_URL=redis_url) as one, serve_bot(world, REDIS_URL=redis_url) as two:
        assert type(one.app.extensions["aimodel.github.deliveries"]).__name__ == "RedisDeliveries"
        one.clear()
        assert post_delivery(one.url, "pull_request", payload, delivery=delivery).json()["ok"]
        again = post_delivery(two.url, "pull_request", payload, delivery=delivery)  # another machine
        assert "processed already" in again.json()["ignored"]
        assert len(one.queued()) == 1 and one.queued() == two.queued()
        one.clear()
