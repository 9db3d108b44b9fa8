"""Each release, also on the forge's deployments page (GitHub: Deployments and their statuses,
which the repository's Environments page shows), for forges that have that ability.

`deployment_of` decides from the record alone; `report_release` hands it to the forge. The
release record is the truth: a forge that cannot be told is logged, and the release stands.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from bot.deploy.records import ReleaseRecord
from bot.forges.base import DeploymentReport, ForgeError, RecordsDeployments
from bot.messages import deployments as words

if TYPE_CHECKING:
    from bot.app import Context

log = logging.getLogger("aimodel.deploy")


def deployment_of(record: ReleaseRecord) -> DeploymentReport:
    versions = {name: pin.version for name, pin in record.models.items()}
    return DeploymentReport(
        release=record.id,
        ref=record.commit,
        environment=record.env,
        task=f"deploy:{record.app}",
        description=words.release_line(record.app, record.app_version, versions),
        payload={
            "release": record.id, "app": record.app, "app_version": record.app_version,
            "models": {name: {"version": pin.version, "sha256": pin.sha256} for name, pin in sorted(record.models.items())},
            "pr": record.pr, "author": record.author, "approvers": list(record.approvers),
        },
        state="success" if record.ok else "failure",
        status_description=words.live(record.id, record.env) if record.ok else words.refused(record.id, record.reason),
        pr=record.pr,
    )


def report_release(ctx: Context, record: ReleaseRecord) -> None:
    """Call after the record is written. Nothing to do on a forge without deployments (local)."""
    if not isinstance(ctx.forge, RecordsDeployments) or not record.commit:
        return
    try:
        ctx.forge.record_deployment(deployment_of(record))
    except ForgeError as exc:
        log.warning("release %s: %s", record.id, exc)


def report_records(ctx: Context, record_ids: Iterable[str]) -> None:
    """report_release for each record an apply wrote (ApplyResult.records), read back by id."""
    if not isinstance(ctx.forge, RecordsDeployments):
        return
    for record_id in record_ids:
        record = ctx.releases.get(record_id)
        if record is not None:
            report_release(ctx, record)
