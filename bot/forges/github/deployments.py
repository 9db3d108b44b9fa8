"""GitHub Deployments: each release shown on the repository's Environments page.

A Deployment of the applied commit to the environment (task `deploy:<app>`, the release id
in its payload), then its statuses: in_progress, and success or failure with the reason.
A second report of the same release finds its Deployment by the id in the payload and only
adds the final status if it is missing, so a retried task never shows a release twice.
"""

from __future__ import annotations

from typing import Any

import requests
from github.GithubException import GithubException

from bot.forges.base import DeploymentReport, ForgeError
from bot.forges.github.api import GitHubApi, error_text

FINAL = ("success", "failure", "error")


def _existing(api: GitHubApi, report: DeploymentReport) -> Any:
    """The Deployment already made for this release, if any (newest first, on the first page)."""
    found = api.call(
        lambda: api.repo.get_deployments(sha=report.ref, task=report.task, environment=report.environment).get_page(0),
        what=f"list deployments of {report.ref[:10]} to {report.environment}",
    )
    return next((d for d in found if (d.payload or {}).get("release") == report.release), None)


def record_deployment(api: GitHubApi, web_url: str, report: DeploymentReport) -> None:
    try:
        deployment = _existing(api, report)
        if deployment is None:
            deployment = api.call(
                lambda: api.repo.create_deployment(
                    ref=report.ref, task=report.task, auto_merge=False,
                    required_contexts=[],  # the bot's own gate decided: GitHub must not re-judge the commit's statuses
                    payload=dict(report.payload), environment=report.environment, description=report.description,
                    transient_environment=False,
                ),
                write=True, what=f"create the deployment of {report.release}",
            )
            api.call(lambda: deployment.create_status("in_progress", description=report.description[:140], auto_inactive=False),
                     write=True, what=f"deployment status of {report.release}")
        else:
            latest = api.call(lambda: deployment.get_statuses().get_page(0), what=f"deployment statuses of {report.release}")
            if latest and latest[0].state in FINAL:
                return
        # auto_inactive off: one environment holds several applications' releases, and another
        # application's success does not end this one's
        link: dict[str, str] = {"target_url": f"{web_url}/pull/{report.pr}"} if report.pr else {}
        api.call(
            lambda: deployment.create_status(report.state, description=report.status_description, auto_inactive=False, **link),
            write=True, what=f"deployment status of {report.release}",
        )
    except GithubException as exc:
        raise ForgeError(f"GitHub refused the deployment of {report.release}: {error_text(exc)}") from None
    except requests.RequestException as exc:
        raise ForgeError(f"GitHub could not be reached for the deployment of {report.release}: {exc}") from None
