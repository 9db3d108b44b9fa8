"""The task queue: checks, deploys and notifications run here, not in the request.

Huey with SQLite in AIMODEL_HOME by default, Redis when REDIS_URL is set. With no worker
running, the CLI runs the queued work itself before it returns, so the embedded default
needs no second process; `aimodel worker` holds a lock that tells the CLI to leave it.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot import logs, messages
from bot.fsutil import file_lock
from bot.redact import redact
from bot.state import StateUnavailable

if TYPE_CHECKING:
    from bot.app import Context
    from bot.forges.base import PullRequest
    from bot.lifecycle import Mark

log = logging.getLogger("aimodel.jobs")


class QueueError(StateUnavailable):
    """The queue could not take or hand out work; the message is fit to show a person."""


class WorkerBusy(Exception):
    """Another worker holds the embedded home's queue; the message is one line for a person."""


class ChecksNotQueued(QueueError):
    """A pull request exists but its checks could not be queued: report it, never roll it back."""

    def __init__(self, number: int, reason: str) -> None:
        super().__init__(reason)
        self.number = number
        self.reason = reason


def _storage_errors(redis_url: str) -> tuple[type[BaseException], ...]:
    """What the queue's storage raises when it is unreadable, full or unreachable."""
    if redis_url:
        from redis.exceptions import RedisError

        return (sqlite3.Error, OSError, RedisError)
    return (sqlite3.Error, OSError)


def _huey(redis_url: str) -> Any:
    """The huey package. huey.storage imports the Redis client whenever it is installed:
    about 80 ms (asyncio included) of a CLI command's start-up, for nothing without
    REDIS_URL. Then it is imported with the client hidden, which huey allows for (its
    Redis names become None); a later Redis queue in the same process puts them back."""
    if "huey" not in sys.modules and not redis_url and "redis" not in sys.modules:
        sys.modules["redis"] = None  # type: ignore[assignment]  # `import redis` raises ImportError
        try:
            import huey
        finally:
            del sys.modules["redis"]
        return huey
    import huey
    import huey.storage

    if redis_url and huey.storage.Redis is None:
        import redis
        import redis.exceptions

        storage: Any = huey.storage
        storage.ConnectionPool, storage.Redis = redis.ConnectionPool, redis.Redis
        storage.ConnectionError, storage.TimeoutError = redis.exceptions.ConnectionError, redis.exceptions.TimeoutError
        storage.RedisStorage.redis_client = redis.Redis
    return huey


class Jobs:
    def __init__(self, ctx: Context) -> None:
        settings = ctx.settings
        huey = _huey(settings.redis_url)
        RedisHuey, SqliteHuey = huey.RedisHuey, huey.SqliteHuey
        self.ctx = ctx
        self.home = settings.home
        self._errors = _storage_errors(settings.redis_url)
        # Keys of the jobs this process runs: their marks are renewed while they run (a lease),
        # so the sweep takes a job for dead only once its process stopped renewing it.
        self._running: set[str] = set()
        self._running_lock = threading.Lock()
        self._unmarked_before: set[str] = set()  # what the last sweep found undone and unmarked
        queue_db = settings.home / "queue.db"
        self._where = "the Redis queue" if settings.redis_url else str(queue_db)
        try:
            if settings.redis_url:
                self.huey: Any = RedisHuey("aimodel", url=settings.redis_url, results=False)
            else:
                self.huey = SqliteHuey("aimodel", filename=str(queue_db), results=False)
        except self._errors as exc:
            raise self._error(exc) from None
        task = self.huey.task
        # retried: a forge that stays unreachable (GitHub 5xx, rate limits) must not lose the run
        self._checks = task(name="aimodel.checks", retries=2, retry_delay=30)(self._run_checks)
        self._deploy = task(name="aimodel.deploy", retries=2, retry_delay=5)(self._run_deploy)
        self._after = task(name="aimodel.after_checks", retries=3, retry_delay=10)(self._run_after)
        self._notify = task(name="aimodel.notify", retries=3, retry_delay=2)(self._run_notify)
        self._tell = task(name="aimodel.tell_checks", retries=3, retry_delay=10)(self._run_tell)
        # The sweep: the worker's scheduler enqueues it every Settings.sweep.interval seconds
        # (_SweepScheduler); the queue only speeds work up, state says what must happen.
        self._sweep = self.huey.periodic_task(_every(settings.sweep.interval), name="aimodel.sweep")(self._run_sweep)
        # Drift: every Settings.releases.drift_interval seconds, the deployed files against the releases.
        self._drift = self.huey.periodic_task(_every(settings.releases.drift_interval, first=False), name="aimodel.drift")(self._run_drift)

    # ------------------------------------------------------------------ enqueue

    def _error(self, exc: BaseException) -> QueueError:
        if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
            return QueueError(messages.state_damaged(self._where, f"not a readable queue ({exc})", messages.queue_advice()))
        return QueueError(f"{self._where}: {exc}")

    def _enqueue(self, task: Any, *args: Any) -> None:
        try:
            task(*args)
        except self._errors as exc:
            raise self._error(exc) from None

    def checks(self, number: int, head: str, swept: bool = False, force: bool = False) -> None:
        from bot.lifecycle import checks_key

        self._mark(checks_key(number, head), "queued")
        self._enqueue(self._checks, number, head, *((swept, force) if swept or force else ()))

    def deploy(self, commit: str, pr: int | None = None, retry: bool = False) -> None:
        from bot.lifecycle import deploy_key

        if pr:
            self._mark(deploy_key(pr), "queued")
        self._enqueue(self._deploy, commit, pr, *((retry,) if retry else ()))

    # ------------------------------------------------------------------ marks

    def _mark(self, key: str, state: str) -> None:
        """Remember that a job is queued or running (in the queue's own store, so every
        process sharing the queue sees it); the sweep leaves work that is on its way alone."""
        try:
            self.huey.put(_MARK + key, (state, time.time()))
        except self._errors as exc:
            raise self._error(exc) from None

    def _unmark(self, key: str) -> None:
        try:
            self.huey.delete(_MARK + key)
        except self._errors as exc:
            log.warning("could not clear the mark of %s: %s", key, exc)

    def _start(self, key: str) -> None:
        self._mark(key, "running")
        with self._running_lock:
            self._running.add(key)

    def _finish(self, key: str) -> None:
        with self._running_lock:  # no renewal after this: the mark goes for good
            self._running.discard(key)
        self._unmark(key)

    def _beat(self) -> None:
        self.heartbeat()
        self.renew()

    def renew(self) -> None:
        """Renew the marks of the jobs running here (the worker's heartbeat thread)."""
        with self._running_lock:
            for key in self._running:
                try:
                    self.huey.put(_MARK + key, ("running", time.time()))
                except self._errors as exc:
                    log.warning("could not renew the mark of %s: %s", key, exc)
                    return

    def marks(self, keys: list[str]) -> dict[str, Mark]:
        from bot.lifecycle import Mark

        out: dict[str, Mark] = {}
        for key in keys:
            try:
                value = self.huey.get(_MARK + key, peek=True)
            except self._errors as exc:
                raise self._error(exc) from None
            if isinstance(value, tuple) and len(value) == 2:
                out[key] = Mark(str(value[0]), float(value[1]))
        return out

    # ------------------------------------------------------------------ health

    def heartbeat(self) -> None:
        """A running worker says so in the queue's store: every web process sharing the
        queue reads it for /readyz and `aimodel status`."""
        try:
            self.huey.put(_HEARTBEAT, time.time())
        except self._errors as exc:
            log.warning("could not write the worker heartbeat: %s", exc)

    def queue_health(self) -> QueueHealth:
        """Read the queue's store: raises QueueError when it is unreachable or damaged."""
        from bot.lifecycle import checks_key, deploy_key

        try:
            seen = self.huey.get(_HEARTBEAT, peek=True)
            depth = int(self.huey.pending_count())
            pending = self.huey.pending(limit=_OLDEST_LOOKED_AT)
        except self._errors as exc:
            raise self._error(exc) from None
        keys: list[str] = []
        for task in pending:  # a task carries no time; its mark says when it was queued
            args = tuple(task.args or ())
            if task.name == "aimodel.checks" and len(args) >= 2:
                keys.append(checks_key(int(args[0]), str(args[1])))
            elif task.name == "aimodel.deploy" and len(args) >= 2 and args[1]:
                keys.append(deploy_key(int(args[1])))
        queued = [m.at for m in self.marks(keys).values() if m.state == "queued"]
        return QueueHealth(
            worker_seen=float(seen) if isinstance(seen, (int, float)) else None,
            depth=depth,
            oldest_queued=min(queued) if queued else None,
        )

    def after_checks(self, number: int) -> None:
        self._enqueue(self._after, number)

    def notify(self, kind: str, data: dict[str, Any]) -> None:
        self._enqueue(self._notify, kind, data)

    # ------------------------------------------------------------------ task bodies

    def _run_checks(self, number: int, head: str, swept: bool = False, force: bool = False) -> None:
        from bot import lifecycle
        from bot.checks.pipeline import Pipeline

        key = lifecycle.checks_key(number, head)
        self._start(key)
        with logs.bound(pr=number, commit=head[:12]):
            log.info("checks of #%s at %s started", number, head[:10])
            try:
                # One run of a pull request's checks at a time: a sweep at a worker's start (or a
                # draining CLI's) may queue a head whose pull request was written a moment before its
                # own event marked the job; the second run waits here, then finds the checks finished.
                with file_lock(self.home / "running" / f"checks-{number}.lock"):
                    _guard("checks", lambda: lifecycle.checks(self.ctx, number, head, Pipeline(self.ctx).run, swept=swept, force=force),
                           self.ctx, number)
            finally:
                self._finish(key)

    def _run_deploy(self, commit: str, pr: int | None, retry: bool = False) -> None:
        from bot import lifecycle
        from bot.deploy.reconcile import reconcile

        key = lifecycle.deploy_key(pr) if pr else ""
        if key:
            self._start(key)
        try:
            with logs.bound(pr=pr, commit=commit[:12]):
                lifecycle.deploy(self.ctx, commit, pr, lambda: reconcile(self.ctx, pr), retry=retry)
        finally:
            if key:
                self._finish(key)

    def _run_sweep(self) -> None:
        self.sweep(running_dead=False)

    def _run_drift(self) -> None:
        from bot.deploy.watch import check_drift

        try:
            check_drift(self.ctx)
        except Exception:  # the next interval looks again; say why this one could not
            log.exception("drift check failed")

    # ------------------------------------------------------------------ the sweep

    def sweep(self, *, running_dead: bool) -> int:
        """Queue again what state says must happen (bot.lifecycle.sweep_plan); returns how many
        jobs. `running_dead`: this process knows no other one runs jobs (the embedded worker
        at start, a CLI draining the queue), so a job marked as running died with its process."""
        from bot import lifecycle
        from bot.forges.base import ForgeError, ListsRecentMerges
        from bot.gitrepo import GitError

        ctx = self.ctx
        try:
            # Listing merged pull requests costs one page per hundred on GitHub: the deploy
            # sweep runs where the records are local (GitHub deploys come from its push events),
            # and there one listing reads them all.
            if ctx.forge.kind == "local":
                every = ctx.forge.list_prs("all")
                open_prs = [pr for pr in every if pr.is_open]
                merged = [pr for pr in every if pr.state == "merged"][-_MERGED_SWEPT:]
                applied = merged
            else:
                open_prs, merged = ctx.forge.list_prs("open"), []
                # A failed apply is tried again on every forge: one page of recent merges
                # holds the deploy records (a merge with none is its push event's to deploy).
                applied = ctx.forge.recent_merges(_MERGED_SWEPT) if isinstance(ctx.forge, ListsRecentMerges) else []
        except (ForgeError, GitError, OSError) as exc:  # a damaged record (StateUnavailable) is the caller's one line
            log.warning("sweep: cannot read the pull requests: %s", exc)
            return 0
        keys = [lifecycle.deploy_key(pr.number) for pr in merged]
        signed: dict[int, str] = {}
        for pr in open_prs:
            keys += [lifecycle.checks_key(pr.number, pr.head), lifecycle.notice_key(pr.number, pr.head)]
            if pr.meta.checked_head:
                keys.append(lifecycle.checks_key(pr.number, pr.meta.checked_head))
        plan = lifecycle.sweep_plan(
            open_prs, merged, self.marks(keys),
            now=time.time(), timeout=ctx.settings.sweep.check_timeout, running_dead=running_dead,
            signature_of=lambda pr: signed.setdefault(pr.number, lifecycle.own_signature(ctx.workspace, pr)),
        )
        checks, deploys, notices = plan.checks, plan.deploys, plan.notices
        if not running_dead:
            # Other processes are at work: a pull request is written before its event queues the
            # checks (a merge before its deploy), so a head found unmarked may be on its way right
            # now. It is queued only when this process's previous sweep found it unmarked too.
            found = {lifecycle.checks_key(n, h) for n, h, _ in checks} | {lifecycle.deploy_key(n) for _, n in deploys}
            found |= {lifecycle.notice_key(n, h) for n, h in notices}
            checks = tuple(c for c in checks if lifecycle.checks_key(c[0], c[1]) in self._unmarked_before)
            deploys = tuple(d for d in deploys if lifecycle.deploy_key(d[1]) in self._unmarked_before)
            notices = tuple(x for x in notices if lifecycle.notice_key(*x) in self._unmarked_before)
            self._unmarked_before = found
        for number, head, swept in checks:
            log.info("sweep: checks of #%s at %s queued again", number, head[:10])
            self.checks(number, head, swept)
        for commit, number in deploys:
            log.info("sweep: deploy of #%s (%s) queued again", number, commit[:10])
            self.deploy(commit, number)
        for number, head in notices:
            log.info("sweep: the checks of #%s at %s were never told; telling them", number, head[:10])
            self._mark(lifecycle.notice_key(number, head), "queued")
            self._enqueue(self._tell, number, head)
        retry = self._retry(applied, running_dead) if not plan.deploys else None
        if retry is not None:
            log.info("sweep: the failed deploy of #%s (%s) is tried again", retry[1], retry[0][:10])
            self.deploy(*retry, retry=True)
        return len(checks) + len(deploys) + len(notices) + (retry is not None)

    def _retry(self, merged: list[PullRequest], running_dead: bool) -> tuple[str, int] | None:
        """A failed deploy whose next attempt is due, while the target still differs from the
        default branch (a sync or a later merge may have applied it since)."""
        from bot import lifecycle

        releases = self.ctx.settings.releases
        due = lifecycle.retry_due(
            merged, self.marks([lifecycle.deploy_key(pr.number) for pr in merged]), now=time.time(),
            attempts=releases.attempts, delay=releases.retry_delay, timeout=self.ctx.settings.sweep.check_timeout,
            running_dead=running_dead,
        )
        if due is None:
            return None
        # Imported only now: the reconciler brings the checks' modules, slow to import beside a run.
        from bot.deploy.reconcile import out_of_date

        return due if out_of_date(self.ctx) else None

    def _run_tell(self, number: int, head: str) -> None:
        """Tell the finished checks of `head` that were never told (the sweep found them)."""
        from bot import lifecycle

        key = lifecycle.notice_key(number, head)
        self._start(key)
        try:
            with logs.bound(pr=number, commit=head[:12]):
                if self.ctx.forge.get_pr(number).meta.told_head != head:
                    lifecycle.checks_finished(self.ctx, number, head)
        finally:
            self._finish(key)

    def _run_after(self, number: int) -> None:
        from bot import lifecycle

        with logs.bound(pr=number):
            lifecycle.evaluate(self.ctx, number)

    def _run_notify(self, kind: str, data: dict[str, Any]) -> None:
        self.ctx.notifier.deliver(kind, data)

    # ------------------------------------------------------------------ running

    @property
    def worker_lock(self) -> Path:
        return self.home / "worker.lock"

    def worker_running(self) -> bool:
        if self.ctx.settings.redis_url:
            return True  # shared queue: workers elsewhere take the work
        with file_lock(self.worker_lock, blocking=False) as free:
            return not free

    def drain(self) -> int:
        """Run queued work in this process when no worker is running; returns tasks run."""
        if self.worker_running():
            return 0
        ran = 0
        with file_lock(self.home / "drain.lock"):
            # No worker, and this process holds the drain lock: a job marked as running died.
            self.sweep(running_dead=True)
            # Retries that have come due wait in the schedule; a worker's scheduler would move them.
            try:
                for task in self.huey.read_schedule():
                    self.huey.enqueue(task)
            except self._errors as exc:
                raise self._error(exc) from None
            while True:
                try:
                    task = self.huey.dequeue()
                except self._errors as exc:
                    raise self._error(exc) from None
                if task is None:
                    break
                self.huey.execute(task)
                ran += 1
        return ran

    def run_worker(self, workers: int = 2, on_ready: Callable[[], None] | None = None) -> None:
        embedded = not self.ctx.settings.redis_url
        with file_lock(self.worker_lock, blocking=False) as free:
            if not free and embedded:
                raise WorkerBusy(messages.worker_already_serves(str(self.home)))
            try:
                if embedded:
                    # One worker per embedded home (the lock): once a CLI that was draining
                    # the queue has finished, a job still marked running died with its process.
                    with file_lock(self.home / "drain.lock"):
                        self.sweep(running_dead=True)
                else:
                    self.sweep(running_dead=False)  # other workers may be running their jobs
            except StateUnavailable as exc:  # the queue's store, a damaged record: the periodic sweep tries again
                log.error("sweep at start: %s", exc)
            self.heartbeat()
            # A running job's mark is renewed well within the check timeout: only a dead worker's goes stale.
            every = min(float(self.ctx.settings.worker.heartbeat), self.ctx.settings.sweep.check_timeout / 3)
            beating = _Heartbeat(self._beat, every)
            beating.start()
            if on_ready:
                on_ready()  # only now: the lock tells CLIs to leave the queue to us
            tick = min(self.ctx.settings.sweep.interval, self.ctx.settings.releases.drift_interval)
            # SIGTERM (Kubernetes, gunicorn's arbiter, `docker stop`) stops taking work and lets
            # running jobs finish for stop_grace seconds; a job still running then is cut off
            # with the process and its mark cleared, so the next sweep of any worker runs it again.
            consumer = _consumer(self.huey, tick, workers=workers, worker_type="thread",
                                 graceful_signal="TERM", shutdown_timeout=float(self.ctx.settings.worker.stop_grace))
            cut: list[str] = []
            self.huey.signal(_INTERRUPTED)(lambda _s, task, *_: cut.append(self._cut_off(task)))
            try:
                consumer.run()
            finally:
                beating.stop.set()
            log.info("worker stopped")
            if cut:
                # A cut-off job's thread still runs (native code: onnxruntime, hashing); letting the
                # interpreter finalize under it aborts the process. Its work is the sweep's now.
                logging.shutdown()
                os._exit(0)

    def _cut_off(self, task: Any) -> str:
        """A job the grace period did not cover: a check or deploy is left to the sweep (no mark:
        not on its way), anything else is queued again."""
        from bot.lifecycle import checks_key, deploy_key

        args = tuple(task.args or ())
        if task.name == "aimodel.checks" and len(args) >= 2:
            key = checks_key(int(args[0]), str(args[1]))
        elif task.name == "aimodel.deploy" and len(args) >= 2 and args[1]:
            key = deploy_key(int(args[1]))
        else:  # a notification or an evaluation: no state tells the sweep about it; queue it again
            log.warning("%s cut off by the stop; queued again", task.name)
            try:
                if task.name != "aimodel.sweep":
                    self.huey.enqueue(task)
            except self._errors as exc:
                log.error("could not queue %s again: %s", task.name, exc)
            return str(task.name)
        log.warning("%s cut off by the stop; the sweep runs it again", key)
        self._unmark(key)
        return key


_MARK = "aimodel:mark:"
_HEARTBEAT = "aimodel:worker:heartbeat"
_INTERRUPTED = "interrupted"  # huey.signals.SIGNAL_INTERRUPTED: a running task the consumer's stop cut off
_OLDEST_LOOKED_AT = 200  # pending tasks read to find the oldest one


@dataclass(frozen=True)
class QueueHealth:
    worker_seen: float | None  # time.time() of the last heartbeat of any worker
    depth: int  # tasks waiting in the queue
    oldest_queued: float | None  # time.time() the oldest waiting check or deploy was queued


class _Heartbeat(threading.Thread):
    def __init__(self, beat: Callable[[], None], every: float) -> None:
        super().__init__(name="aimodel-heartbeat", daemon=True)
        self.beat = beat
        self.every = every
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.every):
            self.beat()
_MERGED_SWEPT = 20  # the most recent merges whose deploy record the sweep looks for


def _every(seconds: int, *, first: bool = True) -> Callable[[Any], bool]:
    """A periodic task's validator: due when `seconds` have passed since it was last due. The
    scheduler asks every tick (the shortest interval); each task keeps its own pace. `first`:
    due at the first tick; else only once `seconds` have passed (not competing with start-up work)."""
    last = [float("-inf") if first else time.monotonic()]

    def due(_when: Any) -> bool:
        now = time.monotonic()
        if now - last[0] < seconds - 0.5:  # half a second: the scheduler's ticks are not exact
            return False
        last[0] = now
        return True

    return due


def _consumer(huey: Any, interval: int, **options: Any) -> Any:
    """Huey's consumer with its periodic tasks asked every `interval` seconds instead of every
    minute: Scheduler.periodic_task_seconds is the one knob Huey reads for that."""
    from huey.consumer import Consumer, Scheduler

    class SweepScheduler(Scheduler):  # type: ignore[misc]
        periodic_task_seconds = interval

    class SweepConsumer(Consumer):  # type: ignore[misc]
        scheduler_class = SweepScheduler

    return SweepConsumer(huey, periodic=True, **options)


def _guard(what: str, fn: Callable[[], None], ctx: Context, number: int) -> None:
    """A check that crashes reports an error on the pull request instead of vanishing."""
    try:
        fn()
    except Exception as exc:
        log.error("%s for #%s failed: %s", what, number, exc)
        log.debug("traceback", exc_info=True)
        from bot.forges.base import CheckResult

        try:
            pr = ctx.forge.get_pr(number)
            for name, check in pr.checks.items():
                if check.state == "pending":
                    ctx.forge.set_check(number, CheckResult(name, "error", redact(f"internal error: {exc}"), "", pr.head))
        except Exception:
            log.exception("could not report the failure on #%s", number)
        raise
