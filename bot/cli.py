"""`aimodel`: the same verbs as Slack, from a terminal.

Exit codes: 0 success, 1 a check failed or a request was refused (also: a state file is
damaged, or a pull request was opened but its checks could not be queued), 2 usage error.
A reader that closes the pipe early changes nothing: the work finishes and its code is returned.
Heavy modules are imported inside the verbs that need them: `aimodel scan PATH` must
start fast and never load Slack, GitHub or server code.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from bot import commands as c
from bot import messages
from bot.entry import closed_pipe
from bot.redact import redact
from bot.views import pr_row

if TYPE_CHECKING:
    from bot.app import Context
    from bot.config import Settings
    from bot.forges.base import PullRequest
    from bot.gitops import Actor


def _write(text: str) -> None:
    """A reader that went away (`aimodel pr merge 1 | head -1`) does not stop the work half
    way: the rest of the output goes nowhere and the exit code still says how the work went."""
    try:
        sys.stdout.write(text)
    except BrokenPipeError:
        closed_pipe()


def _out(text: str) -> None:
    _write(redact(text.rstrip("\n")) + "\n")


def _err(text: str) -> None:
    sys.stderr.write(redact(text.rstrip("\n")) + "\n")


def _json(value: Any) -> None:
    _write(redact(json.dumps(value, indent=2, sort_keys=True, default=str)) + "\n")


class _Fail(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def _quiet_logs() -> None:
    """Queue work runs inside CLI commands: say failures in one line, not the queue's chatter."""
    import logging

    if not logging.getLogger().handlers and not logging.getLogger("aimodel").handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("aimodel: %(message)s"))
        logging.getLogger("aimodel").addHandler(handler)
        logging.getLogger("aimodel").setLevel(logging.WARNING)
        logging.getLogger("aimodel").propagate = False
    logging.getLogger("huey").setLevel(logging.CRITICAL)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        code = _main(args)
    except BrokenPipeError:  # a write outside _out/_json, mid-run: the outcome is unknown here
        return closed_pipe()
    try:
        sys.stdout.flush()  # a reader that went away shows up here, not at interpreter exit
    except BrokenPipeError:
        closed_pipe()  # the work is done: its exit code still tells how it went (as scan's does)
    return code


def _main(args: list[str]) -> int:
    _quiet_logs()
    parsed = c.parse(args)
    if isinstance(parsed, c.Reply):
        (_out if parsed.ok else _err)(parsed.text)
        return parsed.exit_code
    if parsed.command.verb in ("serve", "worker", "help"):  # long-running, or no work: their own logs
        return _ran(parsed, _run)
    from bot import logs

    started = time.perf_counter()
    code = 1
    with logs.bound(request_id=uuid.uuid4().hex[:16]):  # the lines of queued work run inline carry it too
        try:
            code = _ran(parsed, _run)
            return code
        finally:
            _done(parsed, code, time.perf_counter() - started)


def _ran(parsed: c.Parsed, run: Callable[[c.Parsed], int]) -> int:
    """The exit code of a command; a refusal or an unreadable state is said in one line."""
    from bot.state import StateUnavailable

    try:
        return run(parsed)
    except _Fail as exc:
        _err(exc.message)
        return exc.code
    except StateUnavailable as exc:  # a damaged file, an unreachable queue or lock store
        _err(str(exc))
        return 1
    except KeyboardInterrupt:
        _err(messages.interrupted())
        return 130


# Settings of the command being run, read once per command (its runner and its metrics sample).
_SETTINGS: dict[str, Settings] = {}


def _settings(common: c.Common) -> Settings:
    from bot.config import ConfigError, load_settings

    if common.home not in _SETTINGS:
        try:
            _SETTINGS[common.home] = load_settings(home=common.home or None)
        except ConfigError as exc:
            raise _Fail(messages.configuration(str(exc)), 2) from None
    return _SETTINGS[common.home]


def _context(settings: Settings) -> Context:
    from bot.app import NotInitialized, build_context
    from bot.config import ConfigError

    try:
        return build_context(settings)
    except NotInitialized as exc:
        raise _Fail(str(exc), 2) from None
    except ConfigError as exc:  # a face named in AIMODEL_FACES cannot be loaded
        raise _Fail(f"configuration: {exc}", 2) from None


def _who(common: c.Common, settings: Settings, *, required: bool) -> str:
    who = common.as_user or settings.user
    if required and not who:
        raise _Fail(messages.who_is_asking(), 2)
    return who


def _run(p: c.Parsed) -> int:
    _SETTINGS.clear()  # an in-process caller may change the environment between commands
    return RUNNERS[p.command.verb](p.command, p.common)


def _done(p: c.Parsed, code: int, seconds: float) -> None:
    """One metrics sample per command, into the server's metrics when one serves this home
    (bot.metrics), and one INFO line where Settings.log_file says (bot.logs): verb, result,
    exit code, duration, who; never the arguments (they may hold a URL with a token)."""
    import logging

    from bot import logs, metrics

    try:
        settings = _settings(p.common)
    except _Fail:
        return  # the command said so already
    result = {0: "ok", 1: "refused", 2: "usage"}.get(code, "error")
    if metrics.join(settings):
        metrics.command(p.command.verb, "cli", result)
    if not settings.log_file:
        return
    cmd = p.command
    verb, pr = (f"pr {cmd.action}", cmd.number or None) if isinstance(cmd, c.PrCommand) else (cmd.verb, None)
    try:
        with logs.to_file(settings.log_file), logs.bound(verb=verb, result=result, exit_code=code, seconds=round(seconds, 3),
                                                         person=p.common.as_user or settings.user, pr=pr):
            logging.getLogger("aimodel.cli").info("command %s %s (exit %s) in %.2f s", verb, result, code, seconds)
    except OSError as exc:  # the work is done: its exit code stands
        _err(messages.log_file_unwritable(settings.log_file, exc.strerror or type(exc).__name__))


def _help(cmd: c.Command, common: c.Common) -> int:
    from bot.messages import help as help_text

    _out(help_text.overview("cli"))
    return 0


def _checks(cmd: c.Command, common: c.Common) -> int:
    """scan / sign / verify: a path goes straight to the checker, a model name through the repository."""
    if isinstance(cmd, c.Scan) and not cmd.app_name and all(os.path.exists(t) or "://" in t for t in cmd.targets):
        from bot.checks.scan import run_scan_command

        return run_scan_command(list(cmd.targets), as_json=common.json, sarif=cmd.sarif)
    if isinstance(cmd, c.Sign) and cmd.key:
        from bot.checks.sign import run_sign_command

        return run_sign_command(cmd.target, key=cmd.key, bundle=cmd.bundle or None)
    if isinstance(cmd, c.Verify) and (cmd.bundle or cmd.public_key):
        if not (cmd.bundle and cmd.public_key):
            raise _Fail(messages.verify_needs_both(), 2)
        from bot.checks.sign import run_verify_command

        return run_verify_command(cmd.target, bundle=cmd.bundle, public_key=cmd.public_key)
    assert isinstance(cmd, c.Scan | c.Validate | c.Sign | c.Verify)

    def run(ctx: Context, checked: c.Scan | c.Validate | c.Sign | c.Verify) -> int:
        from bot import model_checks

        return model_checks.run(ctx, checked, common, _who(common, ctx.settings, required=False))

    return _with_context(common, lambda ctx: run(ctx, cmd))


def _with_context(common: c.Common, work: Callable[[Context], int]) -> int:
    ctx = _context(_settings(common))
    from bot.gitops import Refusal

    try:
        return work(ctx)
    except Refusal as exc:
        raise _Fail(exc.message, exc.exit_code) from None
    finally:
        ctx.close()


def _serve(cmd: c.Command, common: c.Common) -> int:
    assert isinstance(cmd, c.Serve)
    from bot.server import serve

    settings = _settings(common)
    if not settings.github and not (settings.home / "repo.git").exists():
        raise _Fail(messages.not_initialized(str(settings.home)), 2)  # as every other verb says
    from bot.serving.control import supervised

    with supervised(settings):  # one MLServer per environment with models, stopped with the server
        return serve(settings, port=cmd.port, with_worker=cmd.with_worker)


def _worker(cmd: c.Command, common: c.Common) -> int:
    assert isinstance(cmd, c.Worker)
    from bot.jobs import WorkerBusy

    settings = _settings(common)
    from bot import logs, metrics

    logs.setup()  # one structured line per check, merge and deploy
    metrics.join(settings)  # checks and deploys count into the server's /metrics
    with _context(settings) as ctx:
        if settings.worker.metrics_port:
            metrics.serve_worker(settings.web.host, settings.worker.metrics_port, lambda: _queue_health(ctx), time.time)
        try:
            ctx.jobs.run_worker(cmd.workers, on_ready=lambda: _err(messages.worker_ready(str(settings.home))))
        except WorkerBusy as exc:
            raise _Fail(str(exc), 2) from None
    return 0


def _queue_health(ctx: Context) -> Any:
    from bot.state import StateUnavailable

    try:
        return ctx.jobs.queue_health()
    except StateUnavailable:
        return None


def _proposal(cmd: c.Command, common: c.Common) -> int:
    assert isinstance(cmd, c.PROPOSALS)
    return _with_context(common, lambda ctx: _propose(ctx, cmd, common))


def _status_verb(cmd: c.Command, common: c.Common) -> int:
    assert isinstance(cmd, c.Status)
    return _with_context(common, lambda ctx: _status(ctx, cmd, common))


def _pr_verb(cmd: c.Command, common: c.Common) -> int:
    assert isinstance(cmd, c.PrCommand)
    return _with_context(common, lambda ctx: _pr(ctx, cmd, common))


def _init_verb(cmd: c.Command, common: c.Common) -> int:
    assert isinstance(cmd, c.Init)
    return _init(_settings(common), cmd, common)


def _history_verb(cmd: c.Command, common: c.Common) -> int:
    assert isinstance(cmd, c.History)
    return _with_context(common, lambda ctx: _history(ctx, cmd, common))


def _sync_verb(cmd: c.Command, common: c.Common) -> int:
    from bot.command_values import Sync

    assert isinstance(cmd, Sync)
    return _with_context(common, lambda ctx: _sync(ctx, cmd.env, common))


def _list_verb(cmd: c.Command, common: c.Common) -> int:
    assert isinstance(cmd, c.ListModels)
    return _list(_settings(common), None, cmd, common)


# --------------------------------------------------------------------------- verbs


def _init(settings: Settings, cmd: c.Init, common: c.Common) -> int:
    from bot.init_repo import init_home

    result = init_home(settings, cmd.people)
    if common.json:
        _json({"home": str(result.home), "created": result.created, "added_people": result.added_people, "key_created": result.key_created})
        return 0
    if result.created:
        _out(messages.repo_created(str(result.home), str(result.home / "repo.git"), str(result.home / "work")))
    else:
        _out(messages.repo_exists(str(result.home)))
    if result.key_created:
        _out(messages.key_generated(str(settings.signing_key_path)))
    for person in result.added_people:
        _out(messages.person_added(person))
    return 0


def _propose(ctx: Context, cmd: c.Create | c.Update | c.Deploy | c.Promote | c.Rollback | c.Migrate | c.Destroy, common: c.Common) -> int:
    from bot.gitops import Actor

    who = _who(common, ctx.settings, required=True)
    try:
        opened = ctx.gitops.propose(cmd, Actor(who, "cli"))
    except Exception as exc:
        from bot.checks.fetch import ArtifactError  # imported on failure only: heavy for an update

        if isinstance(exc, ArtifactError):
            raise _Fail(messages.refused(str(exc)), 1) from None
        raise
    pr = opened.pr
    if opened.unqueued:
        return _opened_unqueued(pr, opened.unqueued, common)
    return _report_opened(ctx, pr, common)


def _report_opened(ctx: Context, pr: PullRequest, common: c.Common) -> int:
    """A pull request is open: without a worker run its checks here, then say what they found."""
    from bot.jobs import QueueError

    try:
        with_worker = ctx.jobs.worker_running()
        if not with_worker:
            ctx.jobs.drain()
    except QueueError as exc:
        return _opened_unqueued(pr, str(exc), common)
    if common.json:
        _json({"pr": pr.number, "url": pr.url, "branch": pr.branch})
        return 0
    _out(messages.pr_opened(pr.number, pr.url, pr.title))
    if with_worker:
        _out(messages.checks_queued(pr.number))
    else:
        _print_checks(ctx, pr.number)
    return 0


def _opened_unqueued(pr: PullRequest, reason: str, common: c.Common) -> int:
    """The pull request is open but its checks are not queued: say both, exit 1 so a script
    notices (the PR number is in the output; retrying would only find the model locked)."""
    if common.json:
        _json({"pr": pr.number, "url": pr.url, "branch": pr.branch, "checks_queued": False, "error": reason})
    else:
        _out(messages.pr_opened(pr.number, pr.url, pr.title))
        _err(messages.checks_not_queued(pr.number, reason))
    return 1


def _print_checks(ctx: Context, number: int) -> None:
    view = ctx.gitops.pr_view(number)
    if view["checks"]:
        _out(messages.checks_heading(True))
        for name, check in view["checks"].items():
            _out(messages.check_line(name, check["state"], check["summary"]))
    else:
        _out(messages.checks_heading(False))
    missing = view.get("approvals", {}).get("missing", [])
    for line in missing:
        _out(messages.waiting(line))


def _list(settings: Settings, ctx: Context | None, cmd: c.ListModels, common: c.Common) -> int:
    from bot.views import desired_listing, fast_listing, merge_listing

    desired = fast_listing(settings) if ctx is None else None
    if desired is None:
        if ctx is None:
            with _context(settings) as fresh:
                return _list(settings, fresh, cmd, common)
        desired = desired_listing(ctx)
    who = _who(common, settings, required=False)
    if who and who not in desired["people"]:
        raise _Fail(messages.not_known(who), 1)
    if who and who not in desired["readers"]:
        raise _Fail(messages.refused(messages.not_a_reader(who, "list")), 1)
    if cmd.app and cmd.app not in desired["apps"]:
        raise _Fail(messages.no_such_app(cmd.app, desired["apps"]), 1)
    if cmd.env and cmd.env not in desired["environments"]:
        raise _Fail(messages.no_such_environment(cmd.env, desired["environments"]), 1)
    rows, envs = merge_listing(desired, settings, cmd.app, cmd.env, ctx.target if ctx is not None else None)
    off, serving = _serving(settings, rows, [e for e in envs if e not in desired.get("kserve", ())])  # KServe answers in the cluster
    if common.json:
        _json(rows)
    else:
        from bot.messages.releases import list_failures

        _out(messages.model_list(rows, [cmd.env] if cmd.env else envs))
        if any(r["environments"] for r in rows):
            from bot.messages import serving as serving_msg

            _out(off or serving_msg.serving_table(serving))
        if failures := list_failures(rows):
            _out(failures)
    return 0


def _history(ctx: Context, cmd: c.History, common: c.Common) -> int:
    from bot.deploy import history
    from bot.messages import history as history_text
    from bot.policy import authorize

    who = _who(common, ctx.settings, required=False)
    catalog = ctx.gitops.catalog()
    if who:  # as `list`: a reader of the default branch's config
        decision = authorize(catalog.config, catalog.config.people.get(who), "list", who)
        if not decision.allowed:
            raise _Fail(messages.refused(decision.reason), 1)
    try:
        found = history.gather(ctx, cmd.name, cmd.env, cmd.at, catalog)
    except history.UnknownName as exc:
        raise _Fail(history_text.unknown_name(exc.name, exc.suggestions, "cli"), 1) from None
    except history.UnknownEnvironment as exc:
        raise _Fail(messages.no_such_environment(exc.env, exc.environments), 1) from None
    if common.json:
        _json(found.to_json())
    else:
        _out(history_text.text(found))
    return 0


def _sync(ctx: Context, env: str, common: c.Common) -> int:
    """Apply the default branch to ENV (or every environment) now, placing again what was
    changed by hand; say what was done and what still differs. Exit 1 when something failed."""
    import dataclasses

    from bot import metrics
    from bot.deploy.plan import environments_of
    from bot.deploy.reconcile import out_of_date, reconcile
    from bot.deploy.targets.base import Provenance
    from bot.deploy.watch import check_drift
    from bot.messages import releases as rmsg
    from bot.policy import authorize

    who = _who(common, ctx.settings, required=True)
    catalog = ctx.gitops.catalog()
    decision = authorize(catalog.config, catalog.config.people.get(who), "deploy", who)
    if not decision.allowed:
        raise _Fail(messages.refused(decision.reason), 1)
    known = sorted(set(environments_of(catalog)) | set(ctx.target.environments()))
    if env and env not in known:
        raise _Fail(rmsg.no_such_env(env, known), 1)
    envs = [env] if env else known
    results = reconcile(ctx, envs=envs, who=Provenance(None, who, ()), repair=True)
    for r in results:
        metrics.deploy(r.env, "ok" if r.ok else "failed")
    check_drift(ctx, envs)  # what was repaired is no longer drift; what is left is told
    remaining = {e: lines for e, lines in out_of_date(ctx).items() if e in envs}
    ok = all(r.ok for r in results) and not remaining
    if common.json:
        _json({"ok": ok, "results": [dataclasses.asdict(r) for r in results], "remaining": remaining})
        return 0 if ok else 1
    _out(rmsg.sync_heading(envs))
    for r in results:
        _out("  " + rmsg.apply_summary(r.env, r.applied, r.apps, r.removed, r.failed, r.kept, r.repaired, r.records))
    if remaining:
        _out(rmsg.sync_remaining([line for lines in remaining.values() for line in lines]))
    return 0 if ok else 1


def _deployments(ctx: Context) -> dict[str, dict[str, list[str]]]:
    """Per environment: the last apply's failures and the drift found (what `status` shows)."""
    from bot.deploy.targets.base import RemembersApplies
    from bot.deploy.watch import drift_log

    drift = drift_log(ctx).all()
    out = {}
    for env in sorted(set(ctx.target.environments()) | set(drift)):
        failed = ctx.target.last_apply(env)["failed"] if isinstance(ctx.target, RemembersApplies) else []
        found = list(drift.get(env, {}).get("found", []))
        out[env] = {"failed": failed, "drift": found}
    return out


def _serving(settings: Settings, rows: list[dict[str, Any]], envs: list[str]) -> tuple[str | None, list[dict[str, Any]]]:
    """Whether the deployed models answer, and where: added to the rows' environments when
    serving is on; otherwise why it is off."""
    from bot.serving.control import off_reason

    off = off_reason(settings)
    if off is not None:
        return off, []
    from bot.serving.view import annotate

    return None, annotate(rows, settings.home, envs)


def _model_status(ctx: Context, name: str, common: c.Common) -> int:
    from bot.views import model_detail

    detail = model_detail(ctx, name)
    if detail is None:
        raise _Fail(messages.no_such_model(name, "cli"), 1)
    kserve = {e for e, env in ctx.gitops.catalog().config.environments.items() if env.target == "kserve"}
    off, _ = _serving(ctx.settings, [detail], [e for e in detail["environments"] if e not in kserve])  # KServe answers in the cluster
    if common.json:
        _json(detail)
    else:
        _out(messages.model_detail(detail))
        if detail["environments"]:
            from bot.messages import serving as serving_msg

            _out(f"  {off}" if off else serving_msg.detail_lines(detail["environments"]))
    return 0


def _status(ctx: Context, cmd: c.Status, common: c.Common) -> int:
    if cmd.name:
        return _model_status(ctx, cmd.name, common)
    prs = ctx.forge.list_prs("open")
    locks = ctx.locks.all()
    queue = _queue_view(ctx)
    deployments = _deployments(ctx)
    serving = _servers(ctx)
    if common.json:
        _json({"open": [{"number": p.number, "title": p.title, "author": p.author} for p in prs],
               "locks": [{"key": h.key, "pr": h.pr, "person": h.person} for h in locks],
               "queue": queue, "deployments": deployments, "serving": serving})
        return 0
    from bot.messages import releases as rmsg

    _out(messages.pr_list([pr_row(p) for p in prs]))
    if locks:
        _out(messages.locks_list([(h.key, h.pr) for h in locks]))
    _out(messages.queue_status(queue["worker_seen_seconds_ago"], queue["depth"], queue["oldest_queued_seconds_ago"]))
    _out(rmsg.status_lines({e: {"failed": d["failed"]} for e, d in deployments.items()}, {e: {"found": d["drift"]} for e, d in deployments.items() if d["drift"]}))
    from bot.messages import serving as serving_msg

    _out(serving["off"] or serving_msg.servers_status(serving["environments"]))
    return 0


def _servers(ctx: Context) -> dict[str, Any]:
    """`status`: each environment's model server, or why serving is off."""
    from bot.serving.control import off_reason

    off = off_reason(ctx.settings)
    if off is not None:
        return {"off": off, "environments": []}
    from bot.serving.view import servers_summary

    return {"off": None, "environments": servers_summary(ctx.settings.home, ctx.target.environments())}


def _queue_view(ctx: Context) -> dict[str, Any]:
    """The worker's last heartbeat, the queue's depth and its oldest job, as ages in seconds."""
    import time

    from bot.state import StateUnavailable

    try:
        health = ctx.jobs.queue_health()
    except StateUnavailable:
        return {"reachable": False, "depth": None, "worker_seen_seconds_ago": None, "oldest_queued_seconds_ago": None}
    now = time.time()
    return {
        "reachable": True,
        "depth": health.depth,
        "worker_seen_seconds_ago": None if health.worker_seen is None else round(max(0.0, now - health.worker_seen), 1),
        "oldest_queued_seconds_ago": None if health.oldest_queued is None else round(max(0.0, now - health.oldest_queued), 1),
    }


def _pr(ctx: Context, cmd: c.PrCommand, common: c.Common) -> int:
    from bot.forges.base import ForgeError
    from bot.gitops import Actor
    from bot.jobs import QueueError

    try:
        if cmd.action == "list":
            prs = ctx.forge.list_prs(cmd.state)
            if common.json:
                _json([pr_row(p) | {"url": p.url, "branch": p.branch} for p in prs])
            else:
                _out(messages.pr_list([pr_row(p) for p in prs]))
            return 0
        if cmd.action == "show":
            code = 0
            try:
                ctx.jobs.drain()
            except QueueError as exc:  # the record is still worth showing, as it is
                _err(str(exc))
                code = 1
            view = ctx.gitops.pr_view(cmd.number)
            if common.json:
                _json(view)
            else:
                _out(messages.pr_detail(view))
            return code
        who = _who(common, ctx.settings, required=True)
        actor = Actor(who, "cli")
        if cmd.action == "open":
            return _pr_open(ctx, cmd, common, actor)
        if cmd.action == "recheck":
            return _recheck(ctx, cmd.number, actor, common)
        if cmd.action == "approve":
            ctx.gitops.approve(cmd.number, actor)
            ctx.jobs.drain()
            view = ctx.gitops.pr_view(cmd.number)
            if common.json:
                _json(view)
            else:
                _out(messages.approved(cmd.number, who))
                for line in view.get("approvals", {}).get("missing", []):
                    _out(messages.waiting(line, still=True))
            return 0
        if cmd.action == "merge":
            try:
                commit = ctx.gitops.merge(cmd.number, actor)
                ctx.jobs.drain()
            except QueueError as exc:
                merged = ctx.forge.get_pr(cmd.number)
                if merged.state != "merged":
                    raise
                if common.json:
                    _json({"pr": cmd.number, "merged": merged.merge_commit, "deploy": None, "error": str(exc)})
                else:
                    _err(messages.deploy_not_queued(cmd.number, str(exc)))
                return 1
            view = ctx.gitops.pr_view(cmd.number)
            deploy = view["meta"].get("deploy")
            if common.json:
                _json({"pr": cmd.number, "merged": commit, "deploy": deploy})
                return 0 if not deploy or deploy["ok"] else 1
            _out(messages.merged(cmd.number, commit))
            if deploy:
                for line in deploy["summary"]:
                    _out(f"  {line}")
                return 0 if deploy["ok"] else 1
            _out(messages.deploy_queued())
            return 0
        ctx.gitops.close(cmd.number, actor)
        ctx.jobs.drain()
        if common.json:
            _json({"pr": cmd.number, "state": "closed"})
        else:
            _out(messages.closed(cmd.number))
        return 0
    except ForgeError as exc:
        raise _Fail(str(exc), 1) from None


def _recheck(ctx: Context, number: int, actor: Actor, common: c.Common) -> int:
    """Run the checks of #N's head again, then report them as `pr show` would (or say they are
    queued when a worker runs them)."""
    from bot import lifecycle
    from bot.gitops import Refusal
    from bot.policy import authorize

    pr = ctx.forge.get_pr(number)
    if not pr.is_open:
        raise Refusal(messages.pr_not_open(number, pr.state))
    config = ctx.gitops.catalog().config  # the default branch's rules, as for every decision
    person = config.people.get(actor.name)
    if person is None:
        raise Refusal(messages.not_known(actor.name))
    if actor.name != pr.author:
        kind = pr.meta.verb if pr.meta.verb in ("create", "update", "deploy", "destroy") else "update"
        decision = authorize(config, person, kind, actor.name)
        if not decision.allowed:
            raise Refusal(messages.refused(decision.reason))
    rechecked = lifecycle.recheck(ctx, number)
    with_worker = ctx.jobs.worker_running()
    if not with_worker:
        ctx.jobs.drain()
    if common.json:
        _json(ctx.gitops.pr_view(number))
        return 0
    _out(messages.rechecked(number, rechecked.head))
    if with_worker:
        _out(messages.checks_queued(number))
    else:
        _print_checks(ctx, number)
    return 0


def _pr_open(ctx: Context, cmd: c.PrCommand, common: c.Common, actor: Actor) -> int:
    if ctx.forge.kind != "local":
        raise _Fail(messages.pr_open_local_only(), 2)
    from bot.jobs import ChecksNotQueued

    try:
        pr = ctx.gitops.open_branch(cmd.branch, actor, title=cmd.title)
    except ChecksNotQueued as exc:
        return _opened_unqueued(ctx.forge.get_pr(exc.number), exc.reason, common)
    return _report_opened(ctx, pr, common)


# The CLI's runner of each verb of the table (bot/verbs.py); tests/test_verbs.py holds the two equal.
RUNNERS: dict[str, Callable[[c.Command, c.Common], int]] = {
    "create": _proposal, "update": _proposal, "deploy": _proposal, "destroy": _proposal,
    "rollback": _proposal, "migrate": _proposal, "promote": _proposal,
    "list": _list_verb, "status": _status_verb, "history": _history_verb, "scan": _checks, "validate": _checks, "sign": _checks, "verify": _checks,
    "help": _help, "pr": _pr_verb, "init": _init_verb, "serve": _serve, "worker": _worker, "sync": _sync_verb,
}


if __name__ == "__main__":
    raise SystemExit(main())
