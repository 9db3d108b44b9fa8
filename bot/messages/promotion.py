"""What the deploy, rollback and migrate verbs say: versions, promotion order, releases."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bot.messages import command


def no_such_version(model: str, version: str, known: Sequence[str]) -> str:
    return f"{model} has no version {version}; its versions: {', '.join(known)}"


def version_exists(model: str, version: str) -> str:
    return f"{model} {version} is already registered, and a registered version never changes; give a new --version"


def not_in_previous(model: str, before: str, env: str, face: str) -> str:
    return (
        f"{model} runs in no release of {before} yet, and a version enters {env} only after it ran in {before}: "
        f"deploy it to {before} first ({command(face, f'deploy {model} --env {before}')})"
    )


def promotion_refused(model: str, version: str, before: str, env: str, face: str) -> str:
    return (
        f"{model} {version} has not run successfully in {before}, and a version enters {env} only after it did: "
        f"deploy it to {before} first ({command(face, f'deploy {model} --env {before} --version {version}')})"
    )


def desired_not_running(model: str, version: str, env: str, running: str, state: str, reason: str, face: str) -> str:
    now = f"{env} runs {model} {running} ({state}{': ' + reason if reason else ''})" if running else f"{env} does not run {model} yet"
    return (
        f"{model} {version} is already what {env} should run, but {now}. "
        f"{command(face, f'sync --env {env}')} applies it again; {command(face, 'status')} shows why it failed"
    )


def used_by_no_app(model: str) -> str:
    return f"no application uses {model}: an application's release is what runs in an environment"


def no_release_for(app: str, env: str, face: str) -> str:
    return f"application {app!r} has no release in {env}; {command(face, f'history {app} --env {env}')} lists what ran there"


def no_such_release(release: str, app: str, env: str, face: str) -> str:
    return f"there is no release {release!r} of {app} in {env}; {command(face, f'history {app} --env {env}')} lists them"


def nothing_before(app: str, env: str, face: str) -> str:
    return f"{app} has had one release in {env}: there is nothing earlier to restore ({command(face, f'history {app} --env {env}')})"


def release_pins_gone(release: str, model: str, version: str) -> str:
    return f"release {release} ran {model} {version}, which is no longer registered; it cannot be restored"


def already_live(app: str, env: str, release: str) -> str:
    return f"Nothing to do: {app} in {env} already pins what release {release} ran"


def rollback_summary(app: str, env: str, release: str, pins: Mapping[str, str]) -> str:
    listed = ", ".join(f"`{m}` {v}" for m, v in sorted(pins.items()))
    return f"restores release `{release}` of `{app}` in **{env}**: {listed}"


def nothing_to_migrate(api: str) -> str:
    return f"Nothing to do: every manifest is already {api}"


def migrate_summary(count: int, api: str) -> str:
    return f"upgrades {count} manifest(s) and the schemas to {api}; what runs in each environment stays the same"


def migrate_unreadable(path: str, problem: str) -> str:
    return f"{path} cannot be upgraded: {problem}; fix it by hand first"


def not_promoted(model: str, version: str, before: str, env: str) -> str:
    return f"{model} {version} has not run successfully in {before}; {env} takes only versions that did"


def canary_needs_kserve(env: str, target: str) -> str:
    return f"a canary splits traffic on KServe; {env} runs on the {target} target (`environments.{env}.target` in the config)"


def no_canary(model: str, env: str) -> str:
    return f"Nothing to do: {model} has no canary in {env}"


def promote_summary(model: str, version: str, env: str, percent: int) -> str:
    return f"`{model}` {version} in **{env}** takes all the traffic (it took {percent}% as a canary)"
