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
from bot.checks.fetch import ArtifactError, copy_verified, stored_name
from bot.checks.pipeline import attestation_path, signature_path, trusted_keys
from bot.deploy.plan import ModelRelease, environments_of, plan_for
from bot.deploy.targets.base import ApplyResult, DeployRefused, Installer

if TYPE_CHECKING:
    from bot.app import Context


def make_installer(ctx: Context, catalog: Catalog) -> Installer:
    from bot.checks.fetch import copy_folder_verified
    from bot.checks.sign_store import NotVerified, verify_kept

    keys = trusted_keys(ctx, catalog)
    access = ctx.guard.for_main(catalog.config.sources)
    folders = {m.artifact.sha256 for m in catalog.models.values() if m.artifact.layout == "folder"}

    def legacy(path: str) -> bytes | None:
        blob = catalog.files.get(path)  # a repository from before the store kept signatures
        return ctx.workspace.read_blob(blob) if blob is not None else None

    def install(release: ModelRelease, folder: Path) -> None:
        # From the store by digest (or an older manifest's URI), verified as it is copied; a
        # folder model file by file into model/.
        try:
            if release.sha256 in folders:
                target = folder / "model"
                copy_folder_verified(release.sha256, target, ctx.store)
            else:
                target = folder / stored_name(release.uri, release.source)
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


def reconcile(ctx: Context) -> list[ApplyResult]:
    """Apply the default branch (its newest commit: what merged last is what should run)."""
    catalog = ctx.gitops.catalog()
    if catalog.all_errors():
        # A broken default branch deploys nothing rather than something half-valid.
        return [ApplyResult(env, catalog.commit, failed={"*": f"manifests invalid at {catalog.commit[:10]}: {catalog.all_errors()[0]}"}) for env in environments_of(catalog)]
    install = make_installer(ctx, catalog)
    envs = sorted(set(environments_of(catalog)) | set(ctx.target.environments()))
    results = []
    for env in envs:
        results.append(ctx.target.apply(plan_for(catalog, env), install))
    return results
