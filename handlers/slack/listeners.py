"""The listeners of the Slack face: `/aimodel`, the pull request buttons, the create modal
and the App Home tab. Each acknowledges at once; the work runs in a lazy listener.

A Slack user is a person of the manifest repository's config (`people.<name>.slack`, or
their email as Slack knows it); anyone else is told how to get access and nothing happens.
The same policy as the CLI applies: gitops.propose / approve / merge / close with
Actor(person, "slack").
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slack_bolt import App, BoltContext
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import commands as c
from bot import messages, metrics
from bot.catalog import Catalog
from bot.checks.fetch import ArtifactError, describe_artifact
from bot.forges.meta import PrMeta, SlackThread
from bot.gitops import Actor, Refusal
from bot.manifests import Person, dns1123_problem, version_problem
from bot.messages import help as help_text
from bot.messages import slack as render
from bot.policy import authorize
from bot.sla import SlaSyntaxError, parse_sla
from bot.state import StateUnavailable
from bot.verbs import BY_NAME
from bot.views import pr_row, rows_of
from handlers.slack.errors import answer_failure, log_unexpected

if TYPE_CHECKING:
    from bot.app import Context

log = logging.getLogger("aimodel.slack")

Respond = Callable[..., Any]
UNREACHABLE = ("channel_not_found", "not_in_channel", "is_archived", "restricted_action", "cannot_dm_bot")
ARTIFACT_CHECK_SECONDS = 2.0  # the modal must be answered within 3 s
EMAIL_TTL = 600.0
LIST_MAX_AGE = 0.5  # `list` and `status` may show what was true half a second ago


# --------------------------------------------------------------------------- helpers


def _is_bare_create(text: str) -> bool:
    return text.strip().lower() == "create"


def _verb_of(text: str) -> str:
    parts = text.split()
    return parts[0] if parts else "help"


def _usage(verb: str) -> str:
    return help_text.usage_line(BY_NAME[verb], "slack") if verb in c.SLACK_VERBS else ""


PARSED = "aimodel_parsed"  # the ack's parse of the command, handed to the lazy listener in Bolt's context


@dataclass(frozen=True)
class _Asked:
    """Where a slash command came from and how to answer it."""

    client: WebClient
    channel_id: str
    user_id: str
    respond: Respond


class UnreadableRequest(ValueError):
    """A signed request without what its kind always carries; Bolt's error handler answers 400."""


class SlackFace:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._emails: dict[str, tuple[float, str]] = {}
        self._catalog_lock = threading.Lock()
        self._catalog_cache: tuple[float, Catalog] | None = None
        self._rows_cache: dict[tuple[str, str, str], tuple[float, list[dict[str, Any]], list[str]]] = {}
        self._checker = ThreadPoolExecutor(max_workers=2, thread_name_prefix="slack-artifact")

    def attach(self, app: App) -> None:
        from handlers.slack.redaction import redacting_respond

        app.use(redacting_respond)
        app.command("/aimodel")(ack=self.ack_command, lazy=[self.run_command])
        for action_id in (render.APPROVE, render.MERGE, render.CLOSE, render.VIEW):
            app.action(action_id)(ack=self.ack_action, lazy=[self.run_action])
        app.action(render.OPEN_CREATE)(ack=self.ack_action, lazy=[self.open_create_from_button])
        app.view(render.CREATE_CALLBACK)(ack=self.ack_create_modal, lazy=[self.run_create_modal])
        app.event("app_home_opened")(ack=self.ack_event, lazy=[self.publish_home])

    # ------------------------------------------------------------------ who is asking

    def catalog(self, max_age: float = 0.0) -> Catalog:
        """The default branch's catalog; a read that tolerates `max_age` seconds reuses the last one."""
        now = time.monotonic()
        cached = self._catalog_cache
        if max_age and cached and now - cached[0] <= max_age:
            return cached[1]
        with self._catalog_lock:
            cached = self._catalog_cache
            if max_age and cached and time.monotonic() - cached[0] <= max_age:
                return cached[1]  # another thread fetched while we waited
            started = time.monotonic()
            catalog = self.ctx.gitops.catalog()
            self._catalog_cache = (started, catalog)
            return catalog

    def rows(self, catalog: Catalog, app: str = "", env: str = "", *, max_age: float = 0.0) -> tuple[list[dict[str, Any]], list[str]]:
        """bot.views.rows_of on this catalog; a burst of `list` within `max_age` shares one answer."""
        key = (catalog.commit, app, env)
        hit = self._rows_cache.get(key)
        if max_age and hit and time.monotonic() - hit[0] <= max_age:
            return hit[1], hit[2]
        started = time.monotonic()
        rows, envs = rows_of(catalog, self.ctx.target, self.ctx.settings.home, app, env)
        if len(self._rows_cache) > 64:
            self._rows_cache.clear()
        self._rows_cache[key] = (started, rows, envs)
        return rows, envs

    def person(self, client: WebClient, user_id: str, catalog: Catalog) -> Person | None:
        person = catalog.config.person_for_slack(user_id)
        if person is not None:
            return person
        email = self._email(client, user_id)
        return catalog.config.person_for_slack(user_id, email) if email else None

    def _email(self, client: WebClient, user_id: str) -> str:
        hit = self._emails.get(user_id)
        if hit and time.monotonic() - hit[0] < EMAIL_TTL:
            return hit[1]
        try:
            info = client.users_info(user=user_id)
            email = str(((info.get("user") or {}).get("profile") or {}).get("email") or "")
        except SlackApiError as exc:
            log.info("users.info %s: %s", user_id, exc.response.get("error"))
            email = ""
        self._emails[user_id] = (time.monotonic(), email)
        return email

    # ------------------------------------------------------------------ /aimodel

    def ack_command(self, ack: Callable[..., Any], command: Mapping[str, Any], context: BoltContext) -> None:
        missing = [f for f in ("user_id", "response_url") if not command.get(f)]
        if missing:  # Slack always sends them: this is not a command to run (400, one log line)
            raise UnreadableRequest(messages.field_missing(", ".join(missing)))
        text = str(command.get("text") or "")
        if _is_bare_create(text):
            ack()  # the modal opens in the lazy listener
            return
        parsed = c.parse_text(text)
        if isinstance(parsed, c.Reply):
            verb = _verb_of(text)
            metrics.command(verb if verb in c.SLACK_VERBS else "unknown", "slack", "ok" if parsed.ok else "usage")
            ack(**render.usage_reply(parsed.text, parsed.ok))
            return
        context[PARSED] = parsed  # the lazy listener gets a copy of the context: parsed once per request
        ack(**render.working(parsed.command.verb))

    def run_command(self, command: Mapping[str, Any], respond: Respond, client: WebClient, context: BoltContext) -> None:
        text = str(command.get("text") or "")
        asked = _Asked(client, str(command.get("channel_id", "")), str(command.get("user_id", "")), respond)
        if _is_bare_create(text):
            self.open_create_modal(client, str(command.get("trigger_id", "")), asked.channel_id, asked.user_id)
            return
        parsed = context.get(PARSED)
        if not isinstance(parsed, c.Parsed):
            return  # answered in the ack
        cmd = parsed.command
        try:
            catalog = self.catalog(max_age=LIST_MAX_AGE if isinstance(cmd, c.ListModels | c.Status) else 0.0)
            person = self.person(client, asked.user_id, catalog)
            if person is None:
                metrics.command(cmd.verb, "slack", "refused")
                respond(**render.unknown_user(asked.user_id))
                return
            RUNNERS[cmd.verb](self, cmd, person, catalog, asked)
            metrics.command(cmd.verb, "slack", "ok")
        except Exception as exc:
            metrics.command(cmd.verb, "slack", "refused" if isinstance(exc, Refusal | ArtifactError) else "error")
            answer_failure(exc, respond, f"/aimodel {cmd.verb}", _usage(cmd.verb))

    def _run_proposal(self, cmd: c.Command, person: Person, catalog: Catalog, asked: _Asked) -> None:
        assert isinstance(cmd, c.PROPOSALS)
        self.propose(cmd, person, catalog, asked.client, asked.channel_id, asked.user_id, asked.respond)

    def _run_list(self, cmd: c.Command, person: Person, catalog: Catalog, asked: _Asked) -> None:
        assert isinstance(cmd, c.ListModels)
        self._authorize(catalog, person, "list")
        rows, envs = self.rows(catalog, cmd.app, cmd.env, max_age=LIST_MAX_AGE)
        asked.respond(**render.model_list(rows, [cmd.env] if cmd.env else envs))

    def _run_status(self, cmd: c.Command, person: Person, catalog: Catalog, asked: _Asked) -> None:
        assert isinstance(cmd, c.Status)
        asked.respond(**self.status(cmd.name, catalog))

    def _run_history(self, cmd: c.Command, person: Person, catalog: Catalog, asked: _Asked) -> None:
        assert isinstance(cmd, c.History)
        from bot.deploy import history
        from bot.messages import history as history_text

        self._authorize(catalog, person, "list")
        try:
            found = history.gather(self.ctx, cmd.name, cmd.env, cmd.at, catalog)
        except history.UnknownName as exc:
            raise Refusal(history_text.unknown_name(exc.name, exc.suggestions, "slack")) from None
        except history.UnknownEnvironment as exc:
            raise Refusal(messages.no_such_environment(exc.env, exc.environments)) from None
        asked.respond(**history_text.slack(found))

    def _run_check(self, cmd: c.Command, person: Person, catalog: Catalog, asked: _Asked) -> None:
        assert isinstance(cmd, c.Scan | c.Validate | c.Verify)
        asked.respond(**self.model_check(cmd, person))

    def _run_sign(self, cmd: c.Command, person: Person, catalog: Catalog, asked: _Asked) -> None:
        assert isinstance(cmd, c.Sign)
        asked.respond(**self.sign(cmd, person, catalog))

    def _run_help(self, cmd: c.Command, person: Person, catalog: Catalog, asked: _Asked) -> None:
        asked.respond(**render.usage_reply(help_text.overview("slack"), True))

    @staticmethod
    def _authorize(catalog: Catalog, person: Person, verb: str) -> None:
        decision = authorize(catalog.config, person, verb, person.name)
        if not decision.allowed:
            raise Refusal(messages.refused(decision.reason))

    def propose(
        self, cmd: c.Create | c.Update | c.Deploy | c.Promote | c.Rollback | c.Migrate | c.Destroy, person: Person, catalog: Catalog,
        client: WebClient, channel_id: str, user_id: str, reply: Respond,
    ) -> int:
        opened = self.ctx.gitops.propose(  # authorizes the person for the verb
            cmd, Actor(person.name, "slack", person), meta=PrMeta(slack=SlackThread(channel_id, user=user_id))
        )
        pr = opened.pr
        view = {"number": pr.number, "title": pr.title, "state": pr.state, "author": pr.author, "url": pr.url, "checks": {}}
        payload = render.pr_message(view, merge_allowed=False, requester=user_id, summary=opened.change.summary)
        channel, ts = self.post_parent(client, channel_id, user_id, pr.number, payload)
        thread = SlackThread(channel, ts, user_id)
        self.ctx.forge.update_meta(pr.number, lambda m: dataclasses.replace(m, slack=thread))
        note = messages.slack_opened(pr.number, pr.title)
        if opened.unqueued:
            log.error("#%s opened; its checks could not be queued: %s", pr.number, opened.unqueued)
            note = messages.slack_unqueued(pr.number)
        if channel != channel_id:
            note += " " + messages.slack_posted_elsewhere(channel)
        reply(**render.note(note, icon=":white_check_mark:"), replace_original=True)
        return pr.number

    def post_parent(self, client: WebClient, channel_id: str, user_id: str, number: int, payload: Mapping[str, Any]) -> tuple[str, str]:
        """Post the pull request's parent message; its thread gets the notifications.
        Where the bot cannot post (a DM between people, a channel it is not in), the DM with the user."""
        metadata = {"event_type": render.PR_EVENT, "event_payload": {"pr": number}}
        for target in (channel_id, user_id):
            if not target:
                continue
            try:
                posted = client.chat_postMessage(channel=target, text=payload["text"], blocks=payload["blocks"], metadata=metadata, unfurl_links=False)
                return str(posted["channel"]), str(posted["ts"])
            except SlackApiError as exc:
                if exc.response.get("error") not in UNREACHABLE or target == user_id:
                    raise
                log.info("cannot post in %s (%s); using the DM", target, exc.response.get("error"))
        raise RuntimeError("no conversation to post the pull request in")

    # ------------------------------------------------------------------ reads

    def status(self, name: str, catalog: Catalog) -> dict[str, Any]:
        prs = self.ctx.forge.list_prs("open")
        if not name:
            locks = [{"key": h.key, "pr": h.pr, "person": h.person} for h in self.ctx.locks.all()]
            return render.status([pr_row(p) for p in prs], locks)
        model = catalog.models.get(name)
        if model is None:
            raise Refusal(messages.no_such_model(name, "slack"))
        rows, envs = self.rows(catalog)
        running: dict[str, Any] = next((r["environments"] for r in rows if r["name"] == name), {})
        detail = {
            "version": model.version, "application": model.application, "dataset": model.dataset,
            "artifact": model.artifact.uri, "format": model.artifact.format, "sha256": model.artifact.sha256[:16],
            "sla": str(model.sla) or "-", "owner": model.owner,
            **{f"in {e}": messages.env_cell(running.get(e)) for e in envs},
        }
        touching = [pr_row(p) for p in prs if name in (p.meta.models or (p.meta.model,))]
        return render.model_status(name, detail, touching)

    def model_check(self, cmd: c.Scan | c.Validate | c.Verify, person: Person) -> dict[str, Any]:
        from bot import model_checks

        if isinstance(cmd, c.Scan):
            cmd = c.Scan(cmd.targets, cmd.app_name, sarif=False)
            title = "scan " + " ".join([*cmd.targets, cmd.app_name]).strip()
        else:
            title = f"{cmd.verb} {cmd.name if isinstance(cmd, c.Validate) else cmd.target}"
        lines: list[str] = []
        code = model_checks.run(self.ctx, cmd, c.Common(), person.name, out=lines.append, face="slack")
        return render.output(title, "\n".join(lines), code == 0)

    def sign(self, cmd: c.Sign, person: Person, catalog: Catalog) -> dict[str, Any]:
        from bot import model_checks

        models = model_checks.resolve_models(catalog, cmd.target, "slack")
        lines = []
        with tempfile.TemporaryDirectory(prefix="aimodel-slack-sign-") as tmp:
            for m in models:
                model_checks.run(self.ctx, c.Sign(m.name, bundle=str(Path(tmp) / f"{m.name}.sig")), c.Common(), person.name, out=lambda _text: None)
                lines.append(messages.slack_signed(m.name, m.version))
        return render.note("\n".join(lines), icon=":lock:")

    # ------------------------------------------------------------------ buttons

    def ack_action(self, ack: Callable[..., Any]) -> None:
        ack()

    def run_action(self, body: Mapping[str, Any], action: Mapping[str, Any], respond: Respond, client: WebClient) -> None:
        action_id = str(action.get("action_id", ""))
        user_id = str((body.get("user") or {}).get("id", ""))
        number = render.pr_number(str(action.get("value") or ""))
        if action_id == render.VIEW and action.get("url"):
            return  # Slack opened the link; nothing to do
        if number is None:
            respond(**render.error(messages.slack_stale_button()), replace_original=False)
            return
        try:
            catalog = self.catalog()
            person = self.person(client, user_id, catalog)
            if person is None:
                respond(**render.unknown_user(user_id), replace_original=False)
                return
            actor = Actor(person.name, "slack", person)
            gitops = self.ctx.gitops
            if action_id == render.VIEW:
                view = gitops.pr_view(number)
                respond(**render.pr_detail(view, merge_allowed=self._merge_allowed(number)), replace_original=False)
                return
            if action_id == render.APPROVE:
                gitops.approve(number, actor)
                missing = gitops.pr_view(number).get("approvals", {}).get("missing", [])
                note = messages.slack_approved(number, person.name, missing)
            elif action_id == render.MERGE:
                commit = gitops.merge(number, actor)
                note = messages.slack_merged(number, person.name, commit)
            else:
                gitops.close(number, actor)
                note = messages.slack_closed(number, person.name)
        except Exception as exc:
            answer_failure(exc, respond, f"{action_id} on #{number}", replace_original=False)
            return
        self.after_action(client, body, number, note, respond)

    def _merge_allowed(self, number: int) -> bool:
        pr = self.ctx.forge.get_pr(number)
        return self.ctx.gitops.status(pr).mergeable

    def after_action(self, client: WebClient, body: Mapping[str, Any], number: int, note: str, respond: Respond) -> None:
        """Say what happened in the pull request's thread and refresh its parent message."""
        pr = self.ctx.forge.get_pr(number)
        thread = pr.meta.slack
        try:
            if thread is not None and thread.ts:
                client.chat_postMessage(channel=thread.channel, thread_ts=thread.ts, **render.thread_note(note))
                view = self.ctx.gitops.pr_view(number)
                payload = render.pr_message(view, merge_allowed=self.ctx.gitops.status(pr).mergeable, requester=thread.user)
                client.chat_update(channel=thread.channel, ts=thread.ts, text=payload["text"], blocks=payload["blocks"])
            else:
                respond(**render.note(note, icon=":white_check_mark:"), replace_original=False)
        except SlackApiError as exc:
            log.warning("could not update the thread of #%s: %s", number, exc.response.get("error"))
            respond(**render.note(note), replace_original=False)
        container = body.get("container") or {}
        if container.get("type") == "view" and (body.get("view") or {}).get("type") == "home":
            self.publish_home({"user": (body.get("user") or {}).get("id", ""), "tab": "home"}, client)

    # ------------------------------------------------------------------ the create modal

    def open_create_modal(self, client: WebClient, trigger_id: str, channel_id: str, user_id: str) -> None:
        client.views_open(trigger_id=trigger_id, view=render.create_modal({"channel": channel_id, "user": user_id}))

    def open_create_from_button(self, body: Mapping[str, Any], client: WebClient) -> None:
        user_id = str((body.get("user") or {}).get("id", ""))
        client.views_open(trigger_id=str(body.get("trigger_id", "")), view=render.create_modal({"channel": "", "user": user_id}))

    def ack_create_modal(self, ack: Callable[..., Any], body: Mapping[str, Any], view: Mapping[str, Any], client: WebClient) -> None:
        user_id = str((body.get("user") or {}).get("id", ""))
        values = render.modal_values(view)
        try:
            catalog = self.catalog(max_age=1.0)
            person = self.person(client, user_id, catalog)
        except Exception as exc:
            ack(response_action="errors", errors={"name": messages.modal_catalog_unreadable(log_unexpected("create modal: the catalog", exc))})
            return
        if person is None:
            ack(response_action="update", view=render.create_modal_unknown_user(user_id))
            return
        errors = self.modal_errors(values, catalog, person)
        if errors:
            ack(response_action="errors", errors=errors)
            return
        ack()

    def modal_errors(self, v: Mapping[str, str], catalog: Catalog, person: Person) -> dict[str, str]:
        """Field -> problem, with the CLI's validators; empty when the form is good."""
        errors: dict[str, str] = {}
        decision = authorize(catalog.config, person, "create", person.name)
        if not decision.allowed:
            errors["name"] = messages.refused(decision.reason)
        for field, what in (("name", "model name"), ("app", "application"), ("dataset", "data set")):
            problem = dns1123_problem(v.get(field, ""))
            if problem and field not in errors:
                errors[field] = messages.modal_name_problem(what, problem)
        if "name" not in errors and v.get("name") in catalog.models:
            errors["name"] = messages.model_exists(v["name"], catalog.models[v["name"]].version, "slack")
        if v.get("version"):
            problem = version_problem(v["version"])
            if problem:
                errors["version"] = problem
        if v.get("sla"):
            try:
                parse_sla(v["sla"])
            except SlaSyntaxError as exc:
                errors["sla"] = str(exc)
        if "dataset" not in errors and v.get("dataset") not in catalog.datasets:
            if not v.get("dataset_uri"):
                errors["dataset_uri"] = messages.modal_new_dataset_needs_uri(v.get("dataset", ""))
            elif not v.get("label_column"):
                errors["label_column"] = messages.modal_needs_label_column()
        if v.get("artifact"):
            problem = self._artifact_problem(v["artifact"], catalog)
            if problem:
                errors["artifact"] = problem
        else:
            errors["artifact"] = messages.modal_needs_artifact()
        return {k: e[:300] for k, e in errors.items()}

    def _artifact_problem(self, uri: str, catalog: Catalog) -> str:
        access = self.ctx.guard.for_person(catalog.config.sources, "slack")
        future = self._checker.submit(describe_artifact, uri, "", access)
        try:
            future.result(timeout=ARTIFACT_CHECK_SECONDS)
        except ArtifactError as exc:
            return str(exc)
        except FutureTimeout:
            return ""  # large or slow: the pull request's checks read it fully
        except Exception as exc:
            return messages.modal_artifact_unreadable(log_unexpected("create modal: the artifact", exc))
        return ""

    @staticmethod
    def modal_command(v: Mapping[str, str]) -> c.Parsed | c.Reply:
        argv = ["create", v.get("name", ""), "--app", v.get("app", ""), "--dataset", v.get("dataset", ""), "--artifact", v.get("artifact", "")]
        for flag, key in (("--version", "version"), ("--SLA", "sla"), ("--dataset-uri", "dataset_uri"), ("--label-column", "label_column")):
            if v.get(key):
                argv += [flag, v[key]]
        return c.parse(argv, surface="slack")

    def run_create_modal(self, body: Mapping[str, Any], view: Mapping[str, Any], client: WebClient) -> None:
        import json

        user_id = str((body.get("user") or {}).get("id", ""))
        try:
            where = json.loads(str(view.get("private_metadata") or "{}"))
        except ValueError:
            where = {}
        channel_id = str(where.get("channel") or "")
        values = render.modal_values(view)

        def reply(**payload: Any) -> None:
            payload.pop("replace_original", None)
            payload.pop("response_type", None)
            try:
                if channel_id:
                    client.chat_postEphemeral(channel=channel_id, user=user_id, **payload)
                    return
            except SlackApiError as exc:
                log.info("ephemeral in %s failed: %s", channel_id, exc.response.get("error"))
            client.chat_postMessage(channel=user_id, **payload)

        try:
            catalog = self.catalog()
            person = self.person(client, user_id, catalog)
            if person is None:
                reply(**render.unknown_user(user_id))
                return
            parsed = self.modal_command(values)
            if isinstance(parsed, c.Reply):
                reply(**render.error(parsed.text))
                return
            assert isinstance(parsed.command, c.Create)
            self.propose(parsed.command, person, catalog, client, channel_id or user_id, user_id, reply)
        except Exception as exc:
            answer_failure(exc, reply, "create from the modal")

    # ------------------------------------------------------------------ App Home

    def ack_event(self, ack: Callable[..., Any]) -> None:
        ack()

    def publish_home(self, event: Mapping[str, Any], client: WebClient) -> None:
        if event.get("tab", "home") != "home":
            return
        user_id = str(event.get("user", ""))
        try:
            client.views_publish(user_id=user_id, view=self.home_view(user_id, client))
        except StateUnavailable as exc:
            log.error("App Home for %s: %s", user_id, exc)
        except Exception:
            log.exception("App Home for %s failed", user_id)

    def home_view(self, user_id: str, client: WebClient) -> dict[str, Any]:
        catalog = self.catalog()
        person = self.person(client, user_id, catalog)
        if person is None:
            return render.home_unknown(user_id)
        open_prs = self.ctx.forge.list_prs("open")
        mine = [pr_row(p) for p in open_prs if p.author == person.name]
        locks = [{"key": h.key, "pr": h.pr, "person": h.person} for h in self.ctx.locks.all() if h.person == person.name]
        pending = []
        for pr in open_prs:
            if pr.author == person.name:
                continue
            status = self.ctx.gitops.status(pr)
            if status.may_approve(person):
                pending.append({"number": pr.number, "title": pr.title, "author": pr.author, "url": pr.url, "missing": list(status.missing)})
        rows, envs = self.rows(catalog)
        return render.home(person=person.name, roles=person.roles, my_prs=mine, my_locks=locks, rows=rows, envs=envs, pending=pending)


# Slack's runner of each verb of the table it offers (bot/verbs.py); tests/test_verbs.py holds the two equal.
RUNNERS: dict[str, Callable[[SlackFace, c.Command, Person, Catalog, _Asked], None]] = {
    "create": SlackFace._run_proposal, "update": SlackFace._run_proposal, "deploy": SlackFace._run_proposal,
    "destroy": SlackFace._run_proposal, "rollback": SlackFace._run_proposal, "promote": SlackFace._run_proposal, "list": SlackFace._run_list, "status": SlackFace._run_status,
    "history": SlackFace._run_history,
    "scan": SlackFace._run_check, "validate": SlackFace._run_check, "verify": SlackFace._run_check,
    "sign": SlackFace._run_sign, "help": SlackFace._run_help,
}
