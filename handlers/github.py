"""POST /github/webhook: GitHub's deliveries -> bot.lifecycle.on_event -> the queue.

The request does only what is cheap and must be done before answering: verify the HMAC
(`X-Hub-Signature-256`, constant-time compare), record the delivery id once (SQLite in
AIMODEL_HOME, or Redis SET NX when REDIS_URL is set: a redelivery is acknowledged and not
processed again), ignore other repositories, and enqueue. Checks, merges and deploys run in
the worker, so GitHub gets its answer in milliseconds, far inside its 10 s limit.

Routing (GitHub event -> the forge event the local forge would emit):
  pull_request opened/synchronize/reopened -> pull_request.<action> {number, head}: checks
  pull_request closed                      -> pull_request.closed {number, merged}: locks
  pull_request_review submitted/dismissed  -> pull_request_review.submitted {number}: approvals
  push to the default branch               -> push {ref, before, after, pr}: deploy
  check_run rerequested (ours)             -> bot.lifecycle.recheck (as `aimodel pr recheck`): re-run
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from flask import Flask, Response, jsonify, request

from bot import messages, metrics
from bot.forges.base import FindsPrByCommit, PrimesFromPayload
from bot.lifecycle import recheck
from bot.state import CorruptState, StateUnavailable
from handlers.limits import GITHUB_MAX_BODY, TooLarge, read_body, refused_line

if TYPE_CHECKING:
    from bot.app import Context
    from bot.config import GitHubSettings

log = logging.getLogger("aimodel.github.webhook")

DEDUP_TTL_SECONDS = 14 * 24 * 3600  # GitHub lets people redeliver for a few days
PR_ACTIONS = ("opened", "synchronize", "reopened")


# --------------------------------------------------------------------------- signatures


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    if not header or not header.startswith("sha256=") or not secret:
        return False
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.strip().encode())


def sign(secret: str, body: bytes) -> str:
    """The X-Hub-Signature-256 value GitHub sends for `body` (for tests and benchmarks)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# --------------------------------------------------------------------------- delivery de-duplication


class Deliveries(Protocol):
    def first_time(self, delivery_id: str, event: str) -> bool: ...

    def forget(self, delivery_id: str) -> None: ...

    def count(self) -> int: ...


class SqliteDeliveries:
    """One row per delivery id; INSERT OR IGNORE decides who processes it, across threads and
    processes sharing AIMODEL_HOME."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []  # one per thread, all closed by close()
        self._all_lock = threading.Lock()
        self._inserts = 0
        try:
            with self._connect() as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute(
                    "CREATE TABLE IF NOT EXISTS github_deliveries (id TEXT PRIMARY KEY, event TEXT NOT NULL, received_at REAL NOT NULL)"
                )
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError):
                raise
            raise CorruptState(str(path), f"not a readable database ({exc})", messages.deliveries_advice()) from None

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=30000")
        return db

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self._connect()
            with self._all_lock:
                self._all.append(db)
        return db

    def first_time(self, delivery_id: str, event: str) -> bool:
        db = self._db()
        now = time.time()
        cur = db.execute("INSERT OR IGNORE INTO github_deliveries (id, event, received_at) VALUES (?, ?, ?)", (delivery_id, event, now))
        self._inserts += 1
        if self._inserts % 1000 == 0:
            db.execute("DELETE FROM github_deliveries WHERE received_at < ?", (now - DEDUP_TTL_SECONDS,))
        return cur.rowcount == 1

    def forget(self, delivery_id: str) -> None:
        self._db().execute("DELETE FROM github_deliveries WHERE id = ?", (delivery_id,))

    def count(self) -> int:
        row = self._db().execute("SELECT COUNT(*) FROM github_deliveries").fetchone()
        return int(row[0])

    def close(self) -> None:
        with self._all_lock:
            for db in self._all:
                db.close()
            self._all.clear()
        self._local = threading.local()


class RedisDeliveries:
    """SET NX with a TTL: several web processes on several machines share one memory."""

    prefix = "aimodel:github:delivery:"

    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url)

    def first_time(self, delivery_id: str, event: str) -> bool:
        return bool(self.client.set(self.prefix + delivery_id, event, nx=True, ex=DEDUP_TTL_SECONDS))

    def forget(self, delivery_id: str) -> None:
        self.client.delete(self.prefix + delivery_id)

    def count(self) -> int:
        return sum(1 for _ in self.client.scan_iter(self.prefix + "*", count=1000))

    def close(self) -> None:
        self.client.close()


def deliveries_for(ctx: Context) -> Deliveries:
    settings = ctx.settings
    if settings.redis_url:
        return RedisDeliveries(settings.redis_url)
    return SqliteDeliveries(settings.home / "github" / "deliveries.db")


# --------------------------------------------------------------------------- routing


class Ignored(Exception):
    """The delivery is valid but asks nothing of the bot; the reason is logged and answered."""


class Malformed(Exception):
    """A verified delivery lacks a field its event needs (or has the wrong kind): 400, not 500.
    GitHub would redeliver a 5xx; the same body is no better the second time."""


_SHA = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")


def _obj(value: Any) -> dict[str, Any]:
    """An optional object of the payload; anything else reads as empty."""
    return value if isinstance(value, dict) else {}


def _field(payload: dict[str, Any], *path: str) -> Any:
    value: Any = payload
    for key in path:
        if not isinstance(value, dict) or key not in value:
            raise Malformed(messages.field_missing(".".join(path)))
        value = value[key]
    return value


def _number(payload: dict[str, Any], *path: str) -> int:
    value = _field(payload, *path)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise Malformed(messages.field_not(".".join(path), "a pull request number"))
    return value


def _sha(payload: dict[str, Any], *path: str) -> str:
    value = _field(payload, *path)
    if not isinstance(value, str) or not _SHA.fullmatch(value):
        raise Malformed(messages.field_not(".".join(path), "a commit sha"))
    return value


def route(ctx: Context, event: str, payload: dict[str, Any], *, dispatch: Callable[..., None] | None = None) -> str:
    """Hand one verified, first-time delivery to the lifecycle (bot.lifecycle.on_event); returns
    what was done. Raises Ignored (nothing to do) or Malformed (a field the event needs is missing)."""
    if dispatch is None:
        from bot.lifecycle import on_event

        dispatch = on_event
    action = str(payload.get("action") or "")
    if event == "pull_request":
        if action in PR_ACTIONS:
            number = _number(payload, "pull_request", "number")
            head = _sha(payload, "pull_request", "head", "sha")
            dispatch(ctx, f"pull_request.{action}", {"number": number, "head": head})
            return f"checks queued for #{number} at {head[:10]}"
        if action == "closed":
            number = _number(payload, "pull_request", "number")
            pr_data = _field(payload, "pull_request")
            merged = bool(pr_data.get("merged"))
            forge = ctx.forge
            if isinstance(forge, PrimesFromPayload):
                _sha(payload, "pull_request", "head", "sha")
                try:
                    closed = forge.pr_from_payload(pr_data)
                except (KeyError, TypeError, ValueError, AttributeError) as exc:
                    raise Malformed(messages.payload_unreadable("pull_request", f"{type(exc).__name__}: {exc}")) from None
                with forge.primed(closed):  # the payload has what release needs: no API call
                    dispatch(ctx, "pull_request.closed", {"number": number, "merged": merged})
            else:
                dispatch(ctx, "pull_request.closed", {"number": number, "merged": merged})
            return f"locks of #{number} released"
        raise Ignored(f"pull_request {action}")
    if event == "pull_request_review":
        if action not in ("submitted", "dismissed"):
            raise Ignored(f"pull_request_review {action}")
        number = _number(payload, "pull_request", "number")
        review = _obj(payload.get("review"))
        user = _obj(review.get("user"))
        dispatch(ctx, "pull_request_review.submitted", {
            "number": number, "login": str(user.get("login", "")), "state": str(review.get("state", "")).lower(),
        })
        return f"approvals of #{number} re-evaluated"
    if event == "push":
        ref = str(payload.get("ref", ""))
        after = str(payload.get("after", ""))
        if ref != f"refs/heads/{ctx.settings.default_branch}" or payload.get("deleted") or set(after) == {"0"}:
            raise Ignored(f"push to {ref}")
        after = _sha(payload, "after")
        from bot.forges.github import merged_pr_number

        head_commit = _obj(payload.get("head_commit"))
        pr = merged_pr_number(str(head_commit.get("message", "")))
        dispatch(ctx, "push", {"ref": ref, "before": payload.get("before"), "after": after, "pr": pr})
        return f"deploy of {after[:10]} queued"
    if event == "check_run":
        run = _obj(payload.get("check_run"))
        if action != "rerequested" or not str(run.get("name", "")).startswith("aimodel/"):
            raise Ignored(f"check_run {action}")
        sha = _sha(payload, "check_run", "head_sha")
        pulls = run.get("pull_requests") or []
        if not isinstance(pulls, list):
            raise Malformed(messages.field_not("check_run.pull_requests", "a list"))
        numbers = []
        for index, pull in enumerate(pulls):
            if not isinstance(pull, dict):
                raise Malformed(messages.not_an_object(f"check_run.pull_requests[{index}]", ""))
            if _obj(pull.get("head")).get("sha", sha) == sha:
                numbers.append(_number(pull, "number"))
        # Finding the pull request and un-trusting its signature are API calls, which may wait
        # out a rate limit: they run after the answer, so GitHub never waits for them. A
        # re-run a person asked for is not worth a queue of its own; if it is lost, they ask again.
        worker = threading.Thread(target=_rerun, args=(ctx, sha, numbers), name=f"rerun-{sha[:8]}", daemon=True)
        worker.start()
        RERUNS[:] = [t for t in RERUNS if t.is_alive()] + [worker]
        return f"checks on {sha[:10]} will run again"
    raise Ignored(f"event {event}")


RERUNS: list[threading.Thread] = []  # started re-runs (tests wait for them)


def _rerun(ctx: Context, sha: str, numbers: list[int]) -> None:
    forge = ctx.forge
    try:
        if not numbers:
            found = forge.find_pr_for_commit(sha) if isinstance(forge, FindsPrByCommit) else None
            numbers = [found] if found else []
        if not numbers:
            log.info("check_run re-run on %s: no open pull request has that head", sha[:10])
        for number in numbers:
            recheck(ctx, number, sha)  # the path of `aimodel pr recheck`: pending first, then queued
    except Exception:
        log.exception("re-running the checks on %s failed", sha[:10])


# --------------------------------------------------------------------------- the endpoint


def register(app: Flask, ctx: Context, gh: GitHubSettings, *, deliveries: Deliveries | None = None) -> None:
    secret = gh.webhook_secret
    repo = gh.repo.lower()
    store = deliveries if deliveries is not None else deliveries_for(ctx)
    app.extensions["aimodel.github.deliveries"] = store

    def count(event: str, outcome: str) -> None:
        metrics.webhook(event, outcome)

    def refuse(event: str, outcome: str, status: int, reason: str) -> tuple[Response, int]:
        count(event or "unknown", outcome)
        refused_line("/github/webhook", status, f"{event or 'no event'}: {reason}")
        return jsonify({"error": reason}), status

    @app.post("/github/webhook")
    def github_webhook() -> tuple[Response, int]:
        event = request.headers.get("X-GitHub-Event", "")
        try:
            body = read_body(request, GITHUB_MAX_BODY, cache=False)
        except TooLarge as exc:
            return refuse(event, "too_large", 413, str(exc))
        if not signature_ok(secret, body, request.headers.get("X-Hub-Signature-256")):
            count(event or "unknown", "bad_signature")
            return jsonify({"error": messages.signature_wrong()}), 401
        delivery = request.headers.get("X-GitHub-Delivery", "")
        if not event or not delivery:
            count(event or "unknown", "malformed")
            return jsonify({"error": messages.delivery_headers_missing()}), 400
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):
            return refuse(event, "malformed", 400, messages.body_not_json())
        if not isinstance(payload, dict):
            return refuse(event, "malformed", 400, messages.not_an_object("the body", type(payload).__name__))
        if event == "ping":
            count(event, "pong")
            return jsonify({"ok": True, "zen": payload.get("zen", "")}), 200
        full_name = str(_obj(payload.get("repository")).get("full_name", "")).lower()
        if full_name != repo:
            count(event, "other_repository")
            return jsonify({"ignored": messages.events_not_ours(full_name)}), 202
        if not store.first_time(delivery, event):
            count(event, "duplicate")
            return jsonify({"ignored": messages.delivery_seen(delivery)}), 202
        try:
            done = route(ctx, event, payload)
        except Ignored as why:
            count(event, "ignored")
            return jsonify({"ignored": str(why)}), 202
        except Malformed as why:
            store.forget(delivery)  # not processed
            return refuse(event, "malformed", 400, f"delivery {delivery}: {why}")
        except StateUnavailable as exc:  # the queue or the locks are down or damaged: the log says which
            store.forget(delivery)  # not processed: a redelivery must be processed
            log.error("webhook %s %s: %s", event, delivery, exc)
            count(event, "error")
            return jsonify({"error": messages.queue_unavailable()}), 503
        except Exception:
            store.forget(delivery)  # not processed: a redelivery must be processed
            log.exception("webhook %s %s failed", event, delivery)
            count(event, "error")
            return jsonify({"error": messages.queue_unavailable()}), 500
        count(event, "processed")
        return jsonify({"ok": True, "done": done}), 202
