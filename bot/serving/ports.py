"""Which port each environment's model server listens on.

AIMODEL_SERVING_PORTS first (the operator of this machine has the last word), then
`environments.<env>.port` in the repository config on the default branch, else 0: a free
port chosen when the server starts. The supervisor reads the config from the clone the
worker fetches, so a merged port change reaches it without a restart of `aimodel serve`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from bot.gitrepo import GitError, run_git
from bot.manifests import CONFIG_PATH, ManifestError, RepoConfig, parse_config

if TYPE_CHECKING:
    from bot.config import ServingSettings, Settings

REREAD = 5.0  # seconds between looks at the default branch for a changed port


def configured(config: RepoConfig) -> dict[str, int]:
    """env -> port, for the local environments whose config names one."""
    return {name: env.port for name, env in config.environments.items() if env.port is not None and env.target == "local"}


def port_for(env: str, serving: ServingSettings, config_ports: Mapping[str, int]) -> int:
    """The port the environment's server must use; 0: any free one."""
    return serving.port_for(env) or config_ports.get(env, 0)


def clone_of(settings: Settings) -> Path:
    """The clone the web process and the worker fetch (bot.app.Context; for GitHub,
    bot.forges.github.build_github_forge): the config is read from there."""
    if settings.github is not None:
        owner, name = settings.github.repo.split("/", 1)
        return settings.home / "github" / owner / name
    return settings.home / "work"


class ConfigPorts:
    """The config's ports on the default branch as last fetched; the branch is looked at again
    at most every REREAD seconds and the config parsed only when the branch moved. A config
    that cannot be read or parsed keeps the ports last read (the bot refuses a broken branch)."""

    def __init__(self, clone: Path, branch: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.clone = clone
        self.branch = branch
        self.clock = clock
        self.head = ""
        self.ports: dict[str, int] = {}
        self.looked = float("-inf")

    def __call__(self, *, fresh: bool = False) -> dict[str, int]:
        """`fresh`: look at the branch now (a server about to start uses the port merged last)."""
        now = self.clock()
        if not fresh and now - self.looked < REREAD:
            return self.ports
        self.looked = now
        try:
            head = run_git(self.clone, "rev-parse", "--verify", "--quiet", f"refs/remotes/origin/{self.branch}^{{commit}}").strip()
            if head and head != self.head:
                self.ports = configured(parse_config(run_git(self.clone, "show", f"{head}:{CONFIG_PATH}"), CONFIG_PATH))
                self.head = head
        except (GitError, ManifestError, OSError):  # no clone yet, no config, a broken one
            pass
        return self.ports
