"""Every user-facing string, and its rendering as terminal text, Slack Block Kit or GitHub Markdown."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def unknown_verb(prog: str, verb: str, suggestion: str, verbs: Sequence[str]) -> str:
    hint = f" Did you mean `{prog} {suggestion}`?" if suggestion else ""
    return f"`{verb}` is not a verb of {prog}.{hint}\nVerbs: {', '.join(verbs)}. `{prog} help` explains each."


# --------------------------------------------------------------------------- usage problems (the verb builders)

def bad_value(what: str, problem: str) -> str:
    return f"{what} {problem}"


def dataset_uri_needs_label() -> str:
    return "--dataset-uri needs --label-column (the column that holds the right answer)"


def nothing_to_update() -> str:
    return "nothing to update: give --artifact, --version or --SLA"


def scan_needs_target() -> str:
    return "name a model, an application (--appName) or a path to scan"


def needs_target(verb: str) -> str:
    if verb == "validate":
        return "name the model to validate (or --appName)"
    return f"name the model (or a path) to {verb}"


def pr_open_needs_branch() -> str:
    return "pr open needs the branch you pushed, e.g. `pr open my-change --title 'What it does'`"


def pr_needs_number(action: str) -> str:
    return f"pr {action} needs the pull request number, e.g. `pr {action} 3`"


def person_expected(item: str, roles: Sequence[str]) -> str:
    return f"--person {item!r}: expected NAME=ROLE with ROLE one of {', '.join(roles)}"


def out_of_range(option: str, value: int, low: int, high: int) -> str:
    return f"{option} {value} is out of range {low}..{high}"


def unreadable_command(problem: str) -> str:
    return f"cannot read the command: {problem}"


def did_you_mean_option(option: str) -> str:
    return f" (did you mean {option}?)"


def clip(word: str, limit: int = 40) -> str:
    """A word a person typed, shortened for echoing it back."""
    return word if len(word) <= limit else f"{word[:limit]}... ({len(word):,} characters)"


def text_too_long(length: int, limit: int) -> str:
    return f"the command is {length:,} characters long; at most {limit:,} are read. Give long values (an SLA, a reason) shorter."


def too_many_options(count: int, limit: int) -> str:
    return f"{count} options given; a command takes at most {limit}"


def usage_error(prog: str, verb: str, message: str, usage_line: str = "") -> str:
    message = message.replace("the following arguments are required", "missing")
    if not verb:
        return message
    return f"{prog} {verb}: {message}\n{usage_line}".rstrip()


# --------------------------------------------------------------------------- outcomes

def pr_opened(number: int, url: str, title: str) -> str:
    return f"Opened pull request #{number}: {title}\n{url}"


def locked(kind: str, name: str, pr: int | None, person: str) -> str:
    if pr is None:
        by = f"a change {person} is proposing right now" if person else "a change being proposed right now"
        return f"{kind} {name} is locked by {by}; try again in a moment"
    return f"{kind} {name} is locked by PR #{pr}; merge or close it first"


# --------------------------------------------------------------------------- refused requests (HTTP)
# What the web process answers a sender it will not serve (GitHub shows it in the delivery log).

def body_too_large(limit: int) -> str:
    return f"the body is larger than {limit:,} bytes"


def invalid_request() -> str:
    """A request whose signature is missing, wrong or replayed: nothing more is said to its sender."""
    return "invalid request"


def try_again() -> str:
    return "try again"


def log_file_unwritable(path: str, why: str) -> str:
    return f"could not write the command's log line to {path} (AIMODEL_LOG_FILE): {why}"


def store_unreachable() -> str:
    """A Slack command while the shared store (Redis) is down: nothing ran."""
    return "I cannot reach my queue right now, so I did nothing. Try again in a minute; the operator sees why in the log."


def signature_wrong() -> str:
    return "signature missing or wrong"


def delivery_headers_missing() -> str:
    return "X-GitHub-Event and X-GitHub-Delivery are required"


def events_not_ours(repository: str) -> str:
    return f"events of {repository or 'no repository'} are not for this bot"


def delivery_seen(delivery: str) -> str:
    return f"delivery {delivery} was processed already"


def malformed_request() -> str:
    return "malformed request"


def body_not_json(why: str = "") -> str:
    return f"the body is not JSON ({why})" if why else "the body is not JSON"


def not_an_object(what: str, kind: str) -> str:
    return f"{what} is JSON {kind}, not an object" if kind else f"{what} is not an object"


def field_missing(path: str) -> str:
    return f"{path} is missing"


def field_not(path: str, what: str) -> str:
    return f"{path} is not {what}"


def payload_unreadable(what: str, error: str) -> str:
    return f"{what} cannot be read ({error})"


def queue_unavailable() -> str:
    return "could not queue the work; redeliver"


# --------------------------------------------------------------------------- damaged state files

def not_json_at(line: int, column: int) -> str:
    return f"not valid JSON at line {line} column {column}"


def not_utf8(byte: int) -> str:
    return f"not UTF-8 text (byte {byte})"


def record_field_missing(name: object) -> str:
    return f"the field {name!r} is missing"


def unexpected_content(kind: str) -> str:
    return f"unexpected content ({kind})"


def state_damaged(where: str, problem: str, advice: str) -> str:
    return f"{where} is damaged: {problem}. {advice}"


def record_advice(folder: str, number: int) -> str:
    return (
        f"Restore it from a backup, or move it out of {folder} to drop pull request #{number} "
        "from the lists (its branch stays in the repository)."
    )


def lock_advice(key: str) -> str:
    return f"Delete it to free the lock on {key} (`aimodel pr list` shows whether an open pull request still needs it)."


def locks_unreachable(error: str) -> str:
    return f"the locks in Redis (REDIS_URL) cannot be reached: {error.rstrip('.')}. Check that Redis runs and REDIS_URL points at it."


def queue_advice() -> str:
    return "Move it aside (keep it for inspection): the next command makes a new, empty queue."


def deliveries_advice() -> str:
    return (
        "Move it aside (keep it for inspection): the web process makes a new one; deliveries it "
        "remembered are forgotten, so a redelivery of one of them would be processed again."
    )


def checks_not_queued(number: int, reason: str) -> str:
    return f"PR #{number} opened; its checks could not be queued: {reason}"


def deploy_not_queued(number: int, reason: str) -> str:
    return f"PR #{number} merged; its deploy could not be queued: {reason}"


def command(face: str, words: str) -> str:
    """How a person types `words` on a face, as code: `aimodel list` in a terminal, `/aimodel list` in Slack."""
    return f"`{'/aimodel' if face == 'slack' else 'aimodel'} {words}`"


# --------------------------------------------------------------------------- refusals (one wording per fact)

def no_such_model(name: str, face: str) -> str:
    return f"there is no model {name!r}; {command(face, 'list')} shows the models"


def no_such_model_or_app(name: str, face: str) -> str:
    return f"there is no model or application named {name!r}; {command(face, 'list')} shows them"


def no_such_app(name: str, apps: Sequence[str]) -> str:
    return f"there is no application named {name!r}; applications: {', '.join(apps) or 'none yet'}"


def no_such_environment(name: str, environments: Sequence[str]) -> str:
    return f"there is no environment named {name!r}; environments: {', '.join(environments)}"


def app_uses_no_model(name: str) -> str:
    return f"application {name!r} uses no model yet"


def model_exists(name: str, version: str, face: str) -> str:
    return f"model {name!r} already exists (version {version}); use {command(face, 'update')} to change it"


def dataset_missing(name: str) -> str:
    return f"data set {name!r} does not exist; add it in the same pull request with --dataset-uri URI --label-column COLUMN"


def version_not_bumpable(name: str, version: str) -> str:
    return f"{name} is at version {version!r}, which cannot be bumped automatically; give --version"


def version_unchanged(version: str) -> str:
    return f"the artifact changed but the version is still {version}; give a new --version"


def pinned_by(name: str, apps: Sequence[str]) -> str:
    return f"{name} is pinned by {', '.join(apps)}; remove the pin first, or add --with-apps to remove it in the same pull request"


def no_signature(path: str) -> str:
    return f"no signature bundle ({path}); the sign check has not passed"


def no_attestation(path: str) -> str:
    return f"no attestation of check results ({path})"


def no_trusted_key() -> str:
    return "the repository trusts no signing key (signing.trusted_keys in .aimodel/config.yaml)"


def signature_refused(problem: str) -> str:
    return f"signature refused: {problem}"


def checks_for_other_version(signed: object, version: str) -> str:
    return f"the signed check results are for version {signed}, not {version}"


def verified(name: str, key: str) -> str:
    return f"{name}: verified (key {key[:16]})"


def not_verified(name: str, reason: str) -> str:
    return f"{name}: NOT verified: {reason}"


def signed_locally(name: str, path: str) -> str:
    return f"Signed {name}: {path} (the sign check on a pull request keeps its bundles in the artifact store)"


def dataset_not_there(name: str) -> str:
    return f"data set {name!r} does not exist"


def cannot_measure(problem: str) -> str:
    return f"cannot measure: {problem}"


def no_such_pr(number: int) -> str:
    return f"there is no pull request #{number}"


def worker_already_serves(home: str) -> str:
    return f"another worker already serves {home}; stop it first, or point this one at another AIMODEL_HOME"


def not_initialized(home: str) -> str:
    return f"no manifest repository in {home}; run `aimodel init` first"


def rechecked(number: int, head: str) -> str:
    return f"Checks of #{number} at {head[:10]} run again."


def signing_key_missing(path: str) -> str:
    return f"AIMODEL_SIGNING_KEY={path} does not exist"


def model_problem(name: str, problem: str) -> str:
    return f"{name}: {problem}"


def pr_not_open(number: int, state: str) -> str:
    return f"pull request #{number} is already {state}"


def own_approval(number: int) -> str:
    return f"you opened #{number}; the author's own approval never counts. Ask a reviewer."


def cannot_merge_yet(number: int, blockers: Sequence[str], refusal: str = "") -> str:
    also = f"; and {refusal}" if refusal else ""
    return f"cannot merge #{number} yet: " + "; ".join(blockers) + also


def branch_not_default(default: str) -> str:
    return f"name a branch other than {default}, pushed to the origin"


def branch_missing() -> str:
    return "there is no such branch on the origin; push it first"


def branch_already_open(number: int) -> str:
    return f"it is already open as #{number}"


def branch_unrelated(default: str) -> str:
    return f"it shares no history with {default}"


def branch_no_change(default: str) -> str:
    return f"it changes nothing against {default}"


def pr_open_local_only() -> str:
    return "pr open is for the embedded repository; on GitHub, open the pull request there"


def verify_needs_both() -> str:
    return "verify PATH needs both --bundle and --public-key"


def who_is_asking() -> str:
    return "who is asking? give --as NAME or set AIMODEL_USER (a person in .aimodel/config.yaml)"


def configuration(problem: str) -> str:
    return f"configuration: {problem}"


def not_a_reader(who: str, verb: str) -> str:
    return f"{verb} is not for {who}'s roles (permissions.{verb} in .aimodel/config.yaml)"


def not_available(verb: str, face: str) -> str:
    return f"{command(face, verb)} is not available here"


def interrupted() -> str:
    return "interrupted"


def queue_status(worker_age: float | None, depth: int | None, oldest_age: float | None) -> str:
    """`aimodel status`: the worker and the queue, ages in whole seconds; depth None: unreachable."""
    if depth is None:
        return "queue: unreachable (see `aimodel worker` and REDIS_URL)"
    worker = "never seen" if worker_age is None else f"last seen {int(worker_age)} s ago"
    oldest = f", oldest queued {int(oldest_age)} s ago" if oldest_age is not None else ""
    return f"worker: {worker}\nqueue: {depth} waiting{oldest}"


def worker_ready(home: str) -> str:
    return f"aimodel worker: serving the queue of {home}"


def unexpected(reference: str) -> str:
    """What a person sees when something broke on our side: a reference the operator finds in the log."""
    return (
        f"Something went wrong on my side (reference `{reference}`; the operator finds it in the log). "
        "Nothing was changed if no pull request was announced."
    )


# --------------------------------------------------------------------------- the Slack create modal

def modal_catalog_unreadable(reference: str) -> str:
    return f"cannot read the manifest repository right now (reference {reference})"


def modal_name_problem(what: str, problem: str) -> str:
    return f"{what} {problem}"


def modal_new_dataset_needs_uri(name: str) -> str:
    return f"data set {name!r} does not exist yet: give its URI (and label column) to add it"


def modal_needs_label_column() -> str:
    return "a new data set needs the column that holds the right answer"


def modal_needs_artifact() -> str:
    return "give the model file's URI"


def modal_artifact_unreadable(reference: str) -> str:
    return f"cannot read the artifact right now (reference {reference})"


def refused(reason: str) -> str:
    return f"Refused: {reason}"


def not_known(who: str) -> str:
    return (
        f"{who} is not listed under people in the manifest repository's .aimodel/config.yaml. "
        "Ask a DevOps Engineer to add you under `people` with your role (a pull request)."
    )


def nothing_changes(name: str, what: str) -> str:
    return f"Nothing to do: {name} {what}"


def repo_created(home: str, origin: str, clone: str) -> str:
    return f"Created the manifest repository in {home} (origin {origin}, clone {clone})."


def repo_exists(home: str) -> str:
    return f"The manifest repository in {home} is already there."


def key_generated(path: str) -> str:
    return f"Generated the bot's signing key {path} (its public key is trusted in the repository)."


def person_added(person: str) -> str:
    return f"Added {person}."


def checks_queued(number: int) -> str:
    return f"Checks are queued; `aimodel worker` runs them (`aimodel pr show {number}`)."


def checks_heading(any_checks: bool) -> str:
    return "Checks:" if any_checks else "No checks have run yet."


def waiting(line: str, still: bool = False) -> str:
    return f"{'Still waiting' if still else 'Waiting'}: {line}"


def locks_list(locks: Sequence[tuple[str, int | None]]) -> str:
    return "\nLocks:\n" + "\n".join(f"  {key} by #{pr}" for key, pr in locks)


def approved(number: int, who: str) -> str:
    return f"Approved #{number} as {who}."


def closed(number: int) -> str:
    return f"Closed #{number}; its locks are released."


def deploy_queued() -> str:
    return "  the deploy is queued; `aimodel worker` runs it"


def merged(number: int, commit: str) -> str:
    return f"Merged pull request #{number} as {commit[:10]}; deploying."


def check_line(name: str, state: str, summary: str) -> str:
    mark = {"success": "ok", "failure": "FAILED", "error": "ERROR", "pending": "...", "skipped": "skipped"}.get(state, state)
    return f"  {name:<9} {mark:<8} {summary}"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    rows = [list(r) for r in rows]
    widths = [len(h) for h in headers]
    for r in rows:
        for i, cell in enumerate(r):
            widths[i] = max(widths[i], len(cell))
    out = ["  ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip()]
    out += ["  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in rows]
    return "\n".join(out)


def env_cell(state: Mapping[str, Any] | None) -> str:
    if not state:
        return "-"
    version, st = state.get("version", ""), state.get("state", "")
    return f"{version} ({st})" if st and st != "running" else str(version)


def model_list(rows: Sequence[Mapping[str, Any]], envs: Sequence[str]) -> str:
    if not rows:
        return "No models yet. Create one with `aimodel create NAME --app APP --dataset DS --artifact URI`."
    headers = ["MODEL", "VERSION", "APPLICATION", "DATASET", *[e.upper() for e in envs]]
    body = [
        [r["name"], r["version"], r["application"], r["dataset"], *[env_cell(r["environments"].get(e)) for e in envs]]
        for r in rows
    ]
    return table(headers, body)


def pr_list(prs: Sequence[Mapping[str, Any]]) -> str:
    if not prs:
        return "No pull requests."
    return table(
        ["PR", "STATE", "AUTHOR", "CHECKS", "TITLE"],
        [[f"#{p['number']}", p["state"], p["author"], p["checks_summary"], p["title"]] for p in prs],
    )


def pr_detail(pr: Mapping[str, Any]) -> str:
    lines = [
        f"#{pr['number']} {pr['title']}",
        f"  state     {pr['state']}",
        f"  author    {pr['author']}",
        f"  branch    {pr['branch']} @ {pr['head'][:10]}",
    ]
    if pr.get("environments"):
        lines.append(f"  changes   {', '.join(pr['environments'])}")
    if pr.get("policy"):
        from bot.messages.policy import policy_pr_note

        lines.append(f"  policy    {policy_pr_note(pr['policy'])}")
    lines.append("  checks")
    if not pr["checks"]:
        lines.append("    (none yet)")
    for name, check in pr["checks"].items():
        lines.append("  " + check_line(name, check["state"], check["summary"]))
    approvals = pr.get("approvals", {})
    lines.append(f"  approvals {', '.join(approvals.get('by', [])) or 'none'}")
    for missing in approvals.get("missing", []):
        lines.append(f"    waiting: {missing}")
    if pr.get("body"):
        lines += ["", *("  " + line for line in pr["body"].splitlines())]
    return "\n".join(lines)


def pr_body(*, verb: str, who: str, via: str, reason: str, summary: Sequence[str]) -> str:
    lines = [f"Requested by **{who}** via {via}: `{verb}`."]
    if reason:
        lines += ["", f"> {reason}"]
    lines += ["", *[f"- {s}" for s in summary]]
    lines += ["", "Checks (manifest, scan, validate, sign) run on this pull request; a reviewed, green merge deploys."]
    return "\n".join(lines)


# --------------------------------------------------------------------------- Slack (plain strings)

def slack_working(verb: str) -> str:
    return f"Working on `/aimodel {verb}`…"


def slack_unknown_user(user_id: str) -> str:
    return (
        f"I don't know you yet (Slack id `{user_id}`), so I did nothing. Ask a DevOps Engineer to add you "
        "under `people` in the manifest repository's `.aimodel/config.yaml` with your role and "
        f"`slack: [{user_id}]` (a pull request)."
    )


def slack_posted_elsewhere(channel: str) -> str:
    return f"I can't post in this conversation, so the pull request thread is in <#{channel}>."


def server_state_damaged() -> str:
    """What a person in Slack sees when a state file of the server is damaged (the path and
    the details go to the log, for the operator)."""
    return "I cannot read my own state right now (a damaged file on the server); the operator sees which one in the log."


def slack_unqueued(number: int) -> str:
    return checks_not_queued(number, "the queue on the server is not available (the operator sees why in the log)")


def slack_opened(number: int, title: str) -> str:
    return f"Opened pull request #{number}: {title}. The checks report in its thread."


def slack_approved(number: int, who: str, missing: Sequence[str]) -> str:
    waiting = f" Still waiting: {'; '.join(missing)}." if missing else ""
    return f"{who} approved #{number}.{waiting}"


def slack_closed(number: int, who: str) -> str:
    return f"{who} closed #{number} without merging; its locks are released."


def slack_merged(number: int, who: str, commit: str) -> str:
    return f"{who} merged #{number} as `{commit[:10]}`; deploying."


def slack_signed(name: str, version: str) -> str:
    return (
        f"Signed {name} {version} with the bot's key; the bundle is not kept here. The sign check on a "
        "pull request keeps the bundle in the artifact store, where the deploy reads it."
    )


def slack_stale_button() -> str:
    return "That button does not name a pull request any more; run `/aimodel status` to see what is open."


def slack_prod_deploy(number: int | None, title: str, summary: Sequence[str]) -> str:
    head = f"Deploy to prod from #{number} ({title})" if number else "Deploy to prod"
    return head + ":\n" + "\n".join(summary)


def model_detail(d: Mapping[str, Any]) -> str:
    art = d["artifact"]
    lines = [
        f"{d['name']} {d['version']}  (owner {d['owner'] or '-'})",
        f"  application  {d['application']}   data set {d['dataset']}",
        f"  artifact     {art['uri']} ({art['format']}, {art['size']} bytes)",
        f"  sha256       {art['sha256']}",
        f"  SLA          {d['sla'] or 'none'}",
        f"  signed       {'yes' if d['signed'] else 'no'}",
        f"  pinned by    {', '.join(d['pinned_by']) or 'no application'}",
    ]
    if d.get("locked_by"):
        lines.append(f"  locked by    PR #{d['locked_by']}")
    lines.append("  environments")
    if not d["environments"]:
        lines.append("    (not deployed)")
    for env, state in sorted(d["environments"].items()):
        reason = f": {state['reason']}" if state.get("reason") else ""
        lines.append(f"    {env:<8} {state['version']} {state['state']}{reason}")
    return "\n".join(lines)



# --------------------------------------------------------------------------- the pull request's lifecycle


def checks_notice(number: int, lines: Sequence[str]) -> str:
    return f"Checks on #{number}:\n" + "\n".join(lines)


def waiting_notice(number: int, blockers: Sequence[str]) -> str:
    return f"#{number} is green and waits for: " + "; ".join(blockers)


def ready_notice(number: int) -> str:
    return f"#{number} has green checks and its approvals; it can be merged."


def closed_notice(number: int, model: str) -> str:
    return f"Pull request #{number} was closed without merging; the lock on {model or 'its model'} is released."
