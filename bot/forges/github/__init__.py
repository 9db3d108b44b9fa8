"""The GitHub forge, by job: api.py (REST with pacing and retries), workspace.py (the clone,
token per command), forge.py (pull requests, checks, reviews; metadata through
bot/forges/meta.py), summary.py (the summary comment and the policy check)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.forges.github.api import GitHubApi, TokenBucket
from bot.forges.github.forge import GitHubForge, merged_pr_number
from bot.forges.github.summary import GitHubNotifier
from bot.forges.github.workspace import GitHubWorkspace
from bot.forges.github_auth import TokenSource

if TYPE_CHECKING:
    from bot.config import Settings

__all__ = ["GitHubApi", "GitHubForge", "GitHubNotifier", "GitHubWorkspace", "TokenBucket", "build_github_forge", "merged_pr_number"]


def build_github_forge(settings: Settings) -> dict[str, Any]:
    """The forge, the working clone and the summary-comment notifier (made once the Context
    exists) for `AIMODEL_REPO=owner/name`."""
    gh = settings.github
    assert gh is not None
    source = TokenSource(api_url=gh.api_url, repo=gh.repo, token=gh.token, app_id=gh.app_id, app_private_key=gh.app_private_key)
    forge = GitHubForge(repo=gh.repo, api_url=gh.api_url, source=source, home=settings.home, default_branch=settings.default_branch)
    owner, name = gh.repo.split("/", 1)

    def clone_url() -> str:
        data = forge.api.request("GET", forge.api.path())
        return str(data.get("clone_url") or forge.clone_url)

    workspace = GitHubWorkspace.open_or_clone(settings.home / "github" / owner / name, clone_url, settings.default_branch, source)
    forge.workspace = workspace

    def summary(ctx: Any) -> GitHubNotifier:
        return GitHubNotifier(forge, ctx.gitops.status)

    return {"forge": forge, "workspace": workspace, "notifiers": [summary]}
