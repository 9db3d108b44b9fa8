"""The bot's working clone of the manifest repository, driven through GitPython.

Changes are committed with plumbing on a private index (read-tree, update-index,
write-tree, commit-tree), never by checking files out: many changes can be built at once
from the same clone without touching a work tree, and each costs a handful of git calls
whatever the size of the repository.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import git
from gitdb.base import IStream


class GitError(RuntimeError):
    pass


@dataclass(frozen=True)
class Identity:
    name: str
    email: str

    def env(self) -> dict[str, str]:
        return {
            "GIT_AUTHOR_NAME": self.name,
            "GIT_AUTHOR_EMAIL": self.email,
            "GIT_COMMITTER_NAME": "aimodel-bot",
            "GIT_COMMITTER_EMAIL": "aimodel-bot@localhost",
        }


BOT = Identity("aimodel-bot", "aimodel-bot@localhost")


class Workspace:
    """A clone whose remote `origin` is the forge's copy of the manifest repository."""

    def __init__(self, path: Path, default_branch: str = "main") -> None:
        self.path = path
        self.default_branch = default_branch
        self.repo = git.Repo(path)
        self._fetch_lock = threading.Lock()
        # GitPython reads objects through one long-lived `git cat-file --batch` process per
        # repository; two threads talking to it at once (the worker runs checks and a deploy
        # side by side) interleave their requests and can wait forever.
        self._odb_lock = threading.Lock()

    @classmethod
    def clone(cls, url: str, path: Path, default_branch: str = "main", env: Mapping[str, str] | None = None) -> Workspace:
        git.Repo.clone_from(url, path, env=dict(env) if env else None)
        return cls(path, default_branch)

    def _git(self, *args: str, env: Mapping[str, str] | None = None) -> str:
        try:
            out: str = self.repo.git.execute(
                ["git", *args], env=dict(env) if env else None, strip_newline_in_stdout=False
            )
        except git.GitCommandError as exc:
            raise GitError(f"git {args[0]} failed: {exc.stderr.strip() or exc}") from None
        return out

    # ------------------------------------------------------------------ reading

    @contextmanager
    def _refs_lock(self) -> Iterator[None]:
        """The web process and the worker share this clone: a fetch or push in one while the
        other updates remote-tracking refs fails with 'cannot lock ref'. One at a time."""
        from bot.fsutil import file_lock

        with self._fetch_lock, file_lock(self.path / ".git" / "aimodel-refs.lock"):
            yield

    def fetch(self) -> None:
        with self._refs_lock():
            self._git("fetch", "--quiet", "--prune", "origin")

    def head_of(self, branch: str | None = None) -> str:
        ref = f"refs/remotes/origin/{branch or self.default_branch}"
        return self._git("rev-parse", "--verify", ref).strip()

    def resolve(self, rev: str) -> str:
        return self._git("rev-parse", "--verify", f"{rev}^{{commit}}").strip()

    def tree(self, commit: str) -> dict[str, str]:
        """path -> blob sha of every file at a commit."""
        out = self._git("ls-tree", "-r", "-z", "--full-tree", commit)
        files: dict[str, str] = {}
        for entry in out.split("\0"):
            if not entry:
                continue
            meta, path = entry.split("\t", 1)
            _mode, kind, sha = meta.split(" ")
            if kind == "blob":
                files[path] = sha
        return files

    def read_blob(self, sha: str) -> bytes:
        with self._odb_lock:
            stream = self.repo.odb.stream(bytes.fromhex(sha))
            data: bytes = stream.read()
        return data

    def commit_author(self, sha: str) -> str:
        with self._odb_lock:
            return str(self.repo.commit(sha).author.name)

    def has_commit(self, sha: str) -> bool:
        try:
            self.resolve(sha)
            return True
        except GitError:
            return False

    def parents(self, sha: str) -> list[str]:
        return self._git("rev-list", "--parents", "-n", "1", sha).split()[1:]

    def read_file(self, commit: str, path: str) -> bytes | None:
        sha = self.tree_entry(commit, path)
        return None if sha is None else self.read_blob(sha)

    def tree_entry(self, commit: str, path: str) -> str | None:
        out = self._git("ls-tree", "-z", "--full-tree", commit, "--", path)
        for entry in out.split("\0"):
            if entry and entry.split("\t", 1)[1] == path:
                return entry.split("\t", 1)[0].split(" ")[2]
        return None

    def changed_files(self, base: str, head: str) -> list[str]:
        out = self._git("diff", "--name-only", "-z", "--no-renames", f"{base}...{head}")
        return [p for p in out.split("\0") if p]

    # ------------------------------------------------------------------ writing

    @contextmanager
    def _private_index(self) -> Iterator[dict[str, str]]:
        fd, name = tempfile.mkstemp(prefix="aimodel-index-", dir=self.repo.git_dir)
        os.close(fd)
        os.unlink(name)  # git wants to create the index itself
        try:
            yield {**os.environ, "GIT_INDEX_FILE": name}
        finally:
            for leftover in (name, name + ".lock"):
                if os.path.exists(leftover):
                    os.unlink(leftover)

    def commit_change(
        self, base: str, changes: Mapping[str, bytes | None], message: str, author: Identity = BOT
    ) -> str:
        """A commit on top of `base` that writes (bytes) or deletes (None) the given paths."""
        with self._private_index() as env:
            self._git("read-tree", base, env=env)
            args: list[str] = []
            removed: list[str] = []
            for path, content in changes.items():
                if content is None:
                    removed.append(path)
                else:
                    stored = self.repo.odb.store(IStream(b"blob", len(content), io.BytesIO(content)))
                    args += ["--cacheinfo", f"100644,{stored.hexsha.decode()},{path}"]
            if args:
                self._git("update-index", "--add", *args, env=env)
            if removed:
                self._git("update-index", "--force-remove", "--", *removed, env=env)
            tree = self._git("write-tree", env=env).strip()
        commit_env = {**os.environ, **author.env()}
        return self._git("commit-tree", tree, "-p", base, "-m", message, env=commit_env).strip()

    def push(self, commit: str, branch: str, *, force: bool = False, expect: str | None = None) -> None:
        args = ["push", "--quiet", "--porcelain", "origin"]
        if expect is not None:
            args.append(f"--force-with-lease=refs/heads/{branch}:{expect}")
        refspec = f"{'+' if force else ''}{commit}:refs/heads/{branch}"
        with self._refs_lock():
            self._git(*args, refspec)

    def delete_branch(self, branch: str) -> None:
        with contextlib.suppress(GitError), self._refs_lock():  # already gone: deleting is idempotent
            self._git("push", "--quiet", "origin", f":refs/heads/{branch}")


def init_bare(path: Path, default_branch: str = "main") -> git.Repo:
    path.mkdir(parents=True, exist_ok=True)
    return git.Repo.init(path, bare=True, initial_branch=default_branch)
