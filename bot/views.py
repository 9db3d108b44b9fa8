"""Read models shared by every face (CLI, Slack, REST): what `list` and `pr list` show.

`aimodel list` on 10,000 models must answer in the time Python takes to start, so the
catalog-derived part of the listing is kept per commit in `cache/listing.json`; only the
target's state (small files per environment) is read fresh each time. An environment the
config sends to KServe is read through its own target (what is committed, or what the
cluster holds), as `status` reads it; without one, no git and no cluster is touched.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.forges.base import PullRequest
from bot.fsutil import write_atomic

if TYPE_CHECKING:
    from bot.app import Context
    from bot.catalog import Catalog
    from bot.config import Settings
    from bot.deploy.targets.base import Target
    from bot.manifests import AIModel


def _desired(catalog: Catalog) -> dict[str, Any]:
    from bot.policy import roles_for

    list_roles = roles_for(catalog.config, "list")
    readers = sorted(
        name for name, p in catalog.config.people.items() if "*" in list_roles or any(r in list_roles for r in p.roles)
    )
    wanted: dict[str, dict[str, str]] = {}  # model -> env -> the version its releases pin there
    for app in catalog.apps.values():
        for env, pins in app.environments.items():
            for model, version in pins.items():
                wanted.setdefault(model, {})[env] = version
    models = []
    for name, m in sorted(catalog.models.items()):  # built together: one cache query, not 10,000
        models.append([name, m.version, m.application, m.dataset, wanted.get(name, {})])
    return {
        "shape": LISTING_SHAPE,
        "commit": catalog.commit,
        "environments": list(catalog.config.environments),
        "kserve": sorted(name for name, e in catalog.config.environments.items() if e.target == "kserve"),
        "apps": sorted(catalog.apps),
        "readers": readers,
        "people": sorted(catalog.config.people),
        "models": models,
    }


def _merge(desired: dict[str, Any], ctx_target: Any, app: str, env: str) -> tuple[list[dict[str, Any]], list[str]]:
    envs = sorted(set(desired["environments"]) | set(ctx_target.environments()))
    status = {e: ctx_target.status(e) for e in envs}
    apps = {app} if app else None
    rows = []
    for name, version, application, dataset, wanted in desired["models"]:
        if apps is not None and application not in apps:
            continue
        per_env: dict[str, Any] = {}
        for e in envs:
            held = status[e].models.get(name)
            if held is not None:
                per_env[e] = {"version": held.version, "state": held.state, **({"reason": held.reason} if held.reason else {})}
            elif e in wanted:
                per_env[e] = {"version": wanted[e], "state": "pending"}
            if e in per_env and e in wanted and per_env[e]["version"] != wanted[e]:
                per_env[e]["desired"] = wanted[e]  # the release pins another version: not applied yet
        if env and env not in per_env:
            continue
        rows.append({"name": name, "version": version, "application": application, "dataset": dataset, "environments": per_env})
    return rows, envs


LISTING_SHAPE = 3  # of the cached listing: bump when its fields change


def listing_cache(home: Path) -> Path:
    return home / "cache" / "listing.json"


def desired_listing(ctx: Context) -> dict[str, Any]:
    return _desired_of(ctx.gitops.catalog(), ctx.settings.home)


def _desired_of(catalog: Catalog, home: Path) -> dict[str, Any]:
    desired = _desired(catalog)
    with contextlib.suppress(OSError):  # a cache that cannot be written only costs speed
        write_atomic(listing_cache(home), json.dumps(desired, separators=(",", ":")).encode())
    return desired


def list_rows(ctx: Context, app: str = "", env: str = "") -> tuple[list[dict[str, Any]], list[str]]:
    return _merge(desired_listing(ctx), ctx.target, app, env)


def rows_of(catalog: Catalog, target: Any, home: Path, app: str = "", env: str = "") -> tuple[list[dict[str, Any]], list[str]]:
    """list_rows for a catalog the caller already read (a face that caches it)."""
    return _merge(_desired_of(catalog, home), target, app, env)


def fast_listing(settings: Settings) -> dict[str, Any] | None:
    """The cached listing if it is for the local forge's current default-branch commit."""
    if settings.forge_kind != "local":
        return None
    try:
        cached = json.loads(listing_cache(settings.home).read_bytes())
        head = subprocess.run(
            ["git", "-C", str(settings.home / "repo.git"), "rev-parse", "--verify", f"refs/heads/{settings.default_branch}"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, ValueError, subprocess.CalledProcessError):
        return None
    fits = isinstance(cached, dict) and cached.get("commit") == head and cached.get("shape") == LISTING_SHAPE
    return cached if fits else None


def merge_listing(
    desired: dict[str, Any], settings: Settings, app: str = "", env: str = "", target: Target | None = None
) -> tuple[list[dict[str, Any]], list[str]]:
    """`target`: the Context's, when the caller has one. Without it (the cached listing of the
    local forge), the deploy folders are read directly, and the clone only when an
    environment goes to KServe."""
    from bot.deploy.targets.local import LocalTarget

    if target is not None:
        return _merge(desired, target, app, env)
    local = LocalTarget(settings.home / "deploy")
    if not desired.get("kserve"):
        return _merge(desired, local, app, env)
    from bot.deploy.targets.kserve import pick_target
    from bot.gitrepo import Workspace

    workspace = Workspace(settings.home / "work", settings.default_branch)  # the local forge's clone (fast_listing)
    try:
        return _merge(desired, pick_target(local, workspace, settings.artifact_store_url), app, env)
    finally:
        workspace.close()


def model_detail(ctx: Context, name: str) -> dict[str, Any] | None:
    """One model: its manifest, what runs where, and the pull request holding its lock."""
    catalog = ctx.gitops.catalog()
    m = catalog.models.get(name)
    if m is None:
        return None
    rows, _envs = list_rows(ctx)
    row = next(r for r in rows if r["name"] == name)
    holder = ctx.locks.holder(f"model:{name}")
    return {
        **row,
        "owner": m.owner,
        "artifact": {"uri": m.artifact.uri, "sha256": m.artifact.sha256, "format": m.artifact.format, "size": m.artifact.size},
        "sla": str(m.sla),
        "versions": [{"version": v.version, "sha256": v.artifact.sha256, "format": v.artifact.format} for v in m.versions],
        "declared_environments": sorted({e for a in catalog.apps.values() for e, pins in a.environments.items() if name in pins}),
        "pinned_by": sorted(a.name for a in catalog.apps_using(name)),
        "locked_by": holder.pr if holder else None,
        "signed": _signed(ctx, m, catalog),
    }


def _signed(ctx: Context, m: AIModel, catalog: Catalog) -> bool:
    """A signature bundle is kept for its bytes (in the store; a file in an older repository).
    Whether it verifies is `aimodel verify`'s question."""
    try:
        kept = ctx.store.signature(m.artifact.sha256) is not None
    except OSError:
        kept = False
    return kept or f"models/{m.name}/model.sig" in catalog.files


def pr_row(pr: PullRequest) -> dict[str, Any]:
    from bot.review import checks_summary, current_checks

    summary = checks_summary(current_checks(pr))
    return {"number": pr.number, "state": pr.state, "author": pr.author, "title": pr.title, "checks_summary": summary}
