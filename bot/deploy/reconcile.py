"""Make each environment hold what the default branch says: desired vs actual, then apply.

Before a model's bytes are placed, they are checked: the sha256 the manifest pins, the
signature bundle against the keys the repository trusts, and the signed attestation that
these exact bytes passed scan and validate. Any failure refuses that model, and the
applications that pin it keep their last good release.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from bot.catalog import Catalog
from bot.checks.fetch import ArtifactError, copy_verified
from bot.checks.pipeline import attestation_path, signature_path, trusted_keys
from bot.deploy.drift import differences
from bot.deploy.github_deployments import report_records
from bot.deploy.plan import ModelRelease, environments_of, plan_for
from bot.deploy.targets.base import ApplyResult, DeployRefused, Installer, Provenance, deployed_name

if TYPE_CHECKING:
    from bot.app import Context


def make_installer(ctx: Context, catalog: Catalog) -> Installer:
    from bot.checks.fetch import copy_folder_verified
    from bot.checks.sign_store import NotVerified, verify_kept

    keys = trusted_keys(ctx, catalog)
    access = ctx.guard.for_main(catalog.config.sources)

    def legacy(path: str) -> bytes | None:
        blob = catalog.files.get(path)  # a repository from before the store kept signatures
        return ctx.workspace.read_blob(blob) if blob is not None else None

    def install(release: ModelRelease, folder: Path) -> None:
        # From the store by digest (or an older manifest's URI), verified as it is copied; a
        # folder model file by file into model/.
        target = folder / deployed_name(release)
        try:
            if release.layout == "folder":
                copy_folder_verified(release.sha256, target, ctx.store)
            else:
                copy_verified(release.uri, release.sha256, target, access, store=ctx.store)
        except ArtifactError as exc:
            raise DeployRefused(str(exc)) from None
        try:  # the bundle and the attestation, fetched by digest, against the repository's keys
            _key, predicate = verify_kept(
                ctx.store, target, release.sha256, release.name, release.version, keys, bundle_at=folder / "model.sig",
                legacy=(legacy(signature_path(release.name)), legacy(attestation_path(release.name))),
            )
        except NotVerified as exc:
            raise DeployRefused(str(exc)) from None
        (folder / "checks.json").write_text(json.dumps(predicate, indent=2) + "\n")

    return install


def provenance(ctx: Context, pr_number: int | None) -> Provenance:
    """The merged pull request's number, author and approvers, for the release records."""
    if not pr_number:
        return Provenance()
    pr = ctx.forge.get_pr(pr_number)
    approvers = {r.person for r in pr.reviews if r.state == "approved"} | {r.person for r in pr.meta.reviews if r.state == "approved"}
    return Provenance(pr_number, pr.meta.author or pr.author, tuple(sorted(approvers - {""})))


def reconcile(ctx: Context, pr: int | None = None, *, envs: list[str] | None = None, who: Provenance | None = None,
              repair: bool = False) -> list[ApplyResult]:
    """Apply the default branch (its newest commit: what merged last is what should run) to
    `envs` (None: every environment). `pr`: the merge this deploy is for (its author and
    approvers go into the release records); `who`: a sync's person instead; `repair`: place
    again what was changed by hand."""
    catalog = ctx.gitops.catalog()
    known = sorted(set(environments_of(catalog)) | set(ctx.target.environments()))
    chosen = known if envs is None else [e for e in known if e in envs]
    if catalog.all_errors():
        # A broken default branch deploys nothing rather than something half-valid.
        return [ApplyResult(env, catalog.commit, failed={"*": f"manifests invalid at {catalog.commit[:10]}: {catalog.all_errors()[0]}"}) for env in chosen]
    install = make_installer(ctx, catalog)
    source = who or provenance(ctx, pr)
    results = [ctx.target.apply(plan_for(catalog, env), install, source, repair=repair) for env in chosen]
    report_records(ctx, [record for r in results for record in r.records])  # GitHub: the Environments page
    return results


def out_of_date(ctx: Context, *, measure: bool = False) -> dict[str, list[str]]:
    """env -> how it differs from the default branch (only the environments that differ)."""
    catalog = ctx.gitops.catalog()
    if catalog.all_errors():
        return {}
    out = {}
    for env in sorted(set(environments_of(catalog)) | set(ctx.target.environments())):
        found = differences(plan_for(catalog, env), ctx.target.actual(env, measure=measure))
        if found:
            out[env] = found
    return out
