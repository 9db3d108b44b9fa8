"""The GitHub clone: `<home>/github/<owner>/<name>`, made once and fetched, never cloned again
per command. git authenticates with an `http.extraheader` computed per command from the
current token, so no token is ever written into `.git/config` and an App's installation token
can be refreshed under a running process. Changes are built with the private-index commits of
`Workspace.commit_change`, so concurrent changes never share a work tree.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path

from bot.forges.github_auth import TokenSource
from bot.fsutil import file_lock
from bot.gitrepo import GitError, Workspace

NETWORK_COMMANDS = frozenset({"fetch", "push", "clone", "ls-remote", "pull"})


class GitHubWorkspace(Workspace):
    """A Workspace whose network commands carry the current token and whose fetches are
    serialized across processes sharing the clone (CLI, web, worker)."""

    def __init__(self, path: Path, default_branch: str, source: TokenSource) -> None:
        super().__init__(path, default_branch)
        self.source = source

    def _git(self, *args: str, env: Mapping[str, str] | None = None) -> str:
        if args and args[0] in NETWORK_COMMANDS:
            env = {**(env or {}), **self.source.git_env()}
            for attempt in range(4):
                try:
                    return super()._git(*args, env=env)
                except GitError as exc:
                    text = str(exc)
                    transient = any(s in text for s in ("HTTP 5", "HTTP 429", "Could not resolve", "Connection", "timed out", "early EOF", "RPC failed"))
                    auth = "401" in text or "Authentication failed" in text or "Invalid username" in text
                    if auth and attempt == 0:
                        self.source.invalidate()
                        env = {**env, **self.source.git_env()}
                        continue
                    if not transient or attempt == 3:
                        raise
                    time.sleep(0.5 * 2**attempt)
        return super()._git(*args, env=env)

    def fetch(self) -> None:
        with self._fetch_lock, file_lock(self.path / ".git" / "aimodel-fetch.lock"):
            self._git("fetch", "--quiet", "--prune", "origin")

    @classmethod
    def open_or_clone(cls, path: Path, url: Callable[[], str], default_branch: str, source: TokenSource) -> GitHubWorkspace:
        """The clone at `path`, made on first use (under a lock, into a temporary folder
        renamed into place, so a crash never leaves half a clone behind)."""
        if (path / ".git").exists():
            return cls(path, default_branch, source)
        path.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(path.parent / f".{path.name}.clone.lock"):
            if not (path / ".git").exists():
                partial = path.parent / f".{path.name}.partial"
                if partial.exists():
                    import shutil

                    shutil.rmtree(partial)
                import git

                git.Repo.clone_from(url(), partial, env=source.git_env(), no_checkout=True).close()
                partial.rename(path)
        return cls(path, default_branch, source)
