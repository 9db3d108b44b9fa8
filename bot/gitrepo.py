"""The bot's working clone of the manifest repository, driven by plain `git` processes.

Changes are committed without an index and without checking files out: the new blobs and
the trees on the changed paths are written as loose objects, then `git commit-tree`. Many
changes can be built at once from the same clone, and each costs one git process whatever
the size of the repository (`read-tree` of a 10,000-file tree alone took 50-80 ms).
Objects are read through one long-lived `git cat-file --batch`. GitPython is not imported
on these paths (it costs about 45 ms of every CLI command's start-up); `Workspace.repo`
still gives a GitPython Repo to callers that want one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import subprocess
import tempfile
import threading
import weakref
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import git


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


def run_git(cwd: Path | str, *args: str, env: Mapping[str, str] | None = None) -> str:
    """`git ARGS` in `cwd`; its stdout, or GitError carrying its stderr."""
    full = {**os.environ, **(env or {}), "LC_ALL": "C", "LANGUAGE": "C"}  # messages we can match
    proc = subprocess.run(["git", *args], cwd=cwd, env=full, capture_output=True, check=False)
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip() or f"exit status {proc.returncode}"
        raise GitError(f"git {args[0]} failed: {err}")
    return proc.stdout.decode("utf-8", "surrogateescape")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(OSError):
            proc.stdin.close()  # type: ignore[union-attr]  # cat-file exits at end of input
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


class _ObjectReader:
    """One `git cat-file --batch` for the life of the clone: a read costs no process.
    One request at a time: the worker reads from two threads (checks and a deploy)."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def read(self, sha: str) -> tuple[str, bytes]:
        with self._lock:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                proc = self._proc = subprocess.Popen(
                    ["git", "cat-file", "--batch"], cwd=self.cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                )
                weakref.finalize(self, _stop, proc)
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(sha.encode() + b"\n")
                proc.stdin.flush()
                header = proc.stdout.readline().split()
                if len(header) != 3:
                    raise GitError(f"git cat-file: no object {sha}")
                size = int(header[2])
                data = proc.stdout.read(size)
                proc.stdout.read(1)  # the newline after each object
            except (OSError, ValueError) as exc:
                _stop(proc)
                self._proc = None
                raise GitError(f"git cat-file failed: {exc}") from None
            if len(data) != size:
                _stop(proc)
                self._proc = None
                raise GitError(f"git cat-file: {sha} was cut short")
        return header[1].decode(), data

    def close(self) -> None:
        with self._lock:
            if self._proc is not None:
                _stop(self._proc)
                self._proc = None


# --------------------------------------------------------------------------- objects


def _write_object(git_dir: Path, kind: str, body: bytes) -> str:
    """Store a loose object (as `git hash-object -w` does) and return its sha."""
    raw = f"{kind} {len(body)}".encode() + b"\0" + body
    sha = hashlib.sha1(raw).hexdigest()  # git's object names are sha1
    folder = git_dir / "objects" / sha[:2]
    target = folder / sha[2:]
    if target.exists():
        return sha
    folder.mkdir(exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="tmp_obj_")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(zlib.compress(raw, 1))
        os.chmod(tmp, 0o444)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return sha


TreeEntries = dict[bytes, tuple[bytes, bytes]]  # name -> (mode, binary sha), in git's order
_ENTRY = re.compile(rb"([0-7]+) ([^\0]+)\0(.{20})", re.S)
_TREE = b"40000"
_BLOB_LINE = re.compile(r"[0-7]+ blob ([0-9a-f]+)\t([^\0]*)\0")


def _parse_tree(body: bytes) -> TreeEntries:
    found = _ENTRY.findall(body)  # a 10,000-entry tree in 2 ms; a loop in Python takes 10
    if sum(len(mode) + len(name) + 22 for mode, name, _ in found) != len(body):
        raise GitError("git cat-file: a tree object that cannot be read")
    return {name: (mode, sha) for mode, name, sha in found}


def _tree_body(entries: TreeEntries, *, ordered: bool) -> bytes:
    items = entries.items()
    if not ordered:  # git's order: by name, a tree's name compared as if it ended in "/"
        items = sorted(items, key=lambda item: item[0] + b"/" if item[1][0] == _TREE else item[0])  # type: ignore[assignment]
    return b"".join(mode + b" " + name + b"\0" + sha for name, (mode, sha) in items)


class Workspace:
    """A clone whose remote `origin` is the forge's copy of the manifest repository."""

    def __init__(self, path: Path, default_branch: str = "main") -> None:
        self.path = path
        self.default_branch = default_branch
        if not path.is_dir():
            raise GitError(f"no git clone in {path}")
        self._fetch_lock = threading.Lock()
        self._objects = _ObjectReader(path)
        self._new_lock = threading.Lock()
        self._new_objects: dict[str, tuple[str, ...]] = {}  # commit -> the objects written for it

    @cached_property
    def git_dir(self) -> Path:
        dot = self.path / ".git"
        return dot if dot.is_dir() else Path(self._git("rev-parse", "--absolute-git-dir").strip())

    @cached_property
    def repo(self) -> git.Repo:
        """GitPython's view of the clone, for callers that want its richer API."""
        import git

        return git.Repo(self.path)

    def close(self) -> None:
        """Stop the git helper processes this clone started."""
        self._objects.close()
        if "repo" in self.__dict__:
            self.repo.close()

    @classmethod
    def clone(cls, url: str, path: Path, default_branch: str = "main", env: Mapping[str, str] | None = None) -> Workspace:
        run_git(path.parent, "clone", "--quiet", url, str(path), env=env)
        return cls(path, default_branch)

    def _git(self, *args: str, env: Mapping[str, str] | None = None) -> str:
        return run_git(self.path, *args, env=env)

    # ------------------------------------------------------------------ reading

    @contextmanager
    def _refs_lock(self) -> Iterator[None]:
        """The web process and the worker share this clone: a fetch or push in one while the
        other updates remote-tracking refs fails with 'cannot lock ref'. One at a time."""
        from bot.fsutil import file_lock

        with self._fetch_lock, file_lock(self.path / ".git" / "aimodel-refs.lock"):
            yield

    def fetch(self) -> None:
        # FETCH_HEAD is never read, and the automatic maintenance git starts after every fetch
        # (one more process, half a fetch's time) runs from tidy() when objects pile up.
        with self._refs_lock():
            self._git("fetch", "--quiet", "--prune", "--no-write-fetch-head", "--no-auto-maintenance", "origin")

    def tidy(self) -> None:
        """Pack loose objects when there are many, as git's own `gc --auto` would after a
        fetch: its estimate (objects under objects/17, 6,700 / 256 by default) costs a listdir."""
        try:
            loose = len(os.listdir(self.git_dir / "objects" / "17"))
        except FileNotFoundError:
            return
        if loose > -(-6700 // 256):  # as git rounds it
            with contextlib.suppress(GitError):  # a clone that cannot be packed still works
                self._git("maintenance", "run", "--auto", "--quiet")

    def head_of(self, branch: str | None = None) -> str:
        ref = f"refs/remotes/origin/{branch or self.default_branch}"
        return self._git("rev-parse", "--verify", ref).strip()

    def resolve(self, rev: str) -> str:
        return self._git("rev-parse", "--verify", f"{rev}^{{commit}}").strip()

    def tree(self, commit: str) -> dict[str, str]:
        """path -> blob sha of every file at a commit."""
        out = self._git("ls-tree", "-r", "-z", "--full-tree", commit)
        return {path: sha for sha, path in _BLOB_LINE.findall(out)}  # 10,000 lines: 4 ms, a loop 20

    def read_blob(self, sha: str) -> bytes:
        return self._objects.read(sha)[1]

    def commit_author(self, sha: str) -> str:
        kind, body = self._objects.read(sha)
        if kind != "commit":
            raise GitError(f"{sha} is a {kind}, not a commit")
        for line in body.split(b"\n"):
            if line.startswith(b"author "):
                return line[7:].rsplit(b" <", 1)[0].decode("utf-8", "replace")
            if not line:
                break
        return ""

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

    def _tree_of(self, sha: str) -> TreeEntries:
        kind, body = self._objects.read(sha)
        if kind == "commit":
            kind, body = self._objects.read(body[5:45].decode())  # "tree <sha>" opens every commit
        if kind != "tree":
            raise GitError(f"{sha} is a {kind}, not a tree")
        return _parse_tree(body)

    def _write_tree(self, tree: str | None, changes: Mapping[str, bytes | None], where: str, written: list[str]) -> str | None:
        """The tree `tree` with the changes (paths relative to it) applied; None when empty.
        Only the trees on the changed paths are read and written again."""
        entries = self._tree_of(tree) if tree else {}
        ordered = True  # replacing or removing entries keeps git's order; adding one does not
        below: dict[str, dict[str, bytes | None]] = {}
        for path, content in changes.items():
            name, slash, rest = path.partition("/")
            if not name or name in (".", "..", ".git") or (slash and not rest):
                raise GitError(f"git update-index failed: invalid path {where}{path!r}")
            key = name.encode()
            if slash:
                below.setdefault(name, {})[rest] = content
            elif content is None:
                entries.pop(key, None)
            elif key in entries and entries[key][0] == _TREE:
                raise GitError(f"git update-index failed: {where}{name} is a folder, not a file")
            else:
                ordered = ordered and key in entries
                blob = _write_object(self.git_dir, "blob", content)
                written.append(blob)
                entries[key] = (b"100644", bytes.fromhex(blob))
        for name, sub in below.items():
            key = name.encode()
            old = entries.get(key)
            if old is not None and old[0] != _TREE:
                if all(c is None for c in sub.values()):
                    continue  # removing files under a file: nothing is there
                raise GitError(f"git update-index failed: {where}{name} is a file, not a folder")
            subtree = self._write_tree(old[1].hex() if old else None, sub, f"{where}{name}/", written)
            if subtree is None:
                entries.pop(key, None)
            else:
                ordered = ordered and old is not None
                entries[key] = (_TREE, bytes.fromhex(subtree))
        if not entries and where:
            return None  # git keeps no empty folders
        sha = _write_object(self.git_dir, "tree", _tree_body(entries, ordered=ordered))
        written.append(sha)
        return sha

    def commit_change(
        self, base: str, changes: Mapping[str, bytes | None], message: str, author: Identity = BOT
    ) -> str:
        """A commit on top of `base` that writes (bytes) or deletes (None) the given paths."""
        written: list[str] = []
        tree = self._write_tree(base, changes, "", written)
        commit_env = {**os.environ, **author.env()}
        commit = self._git("commit-tree", str(tree), "-p", base, "-m", message, env=commit_env).strip()
        with self._new_lock:
            self._new_objects[commit] = (*written, commit)
            while len(self._new_objects) > 64:  # commits never pushed
                self._new_objects.pop(next(iter(self._new_objects)))
        self.tidy()
        return commit

    @cached_property
    def _bare_origin(self) -> Path | None:
        """The origin, when it is a bare repository on this machine (the embedded forge's)."""
        import configparser

        config = configparser.ConfigParser(strict=False, interpolation=None)
        try:
            config.read(self.git_dir / "config")
            url = config.get('remote "origin"', "url", fallback="")
        except (configparser.Error, OSError, UnicodeDecodeError):
            return None
        origin = Path(url)
        if not origin.is_absolute() or not (origin / "objects").is_dir() or not (origin / "HEAD").is_file() or (origin / ".git").exists():
            return None
        return origin

    def _publish(self, origin: Path, commit: str, objects: tuple[str, ...], branch: str) -> bool:
        """A new branch on a bare origin on this machine without `git push`: the objects this
        clone wrote for the commit are linked into the origin's store and the branch created
        there (only if it does not exist). git push does the same through receive-pack, whose
        connectivity check of the whole repository took 47 ms of its 75 on 10,000 models; the
        commit's other objects are its base's, which came from the origin. False: push instead."""
        for sha in objects:
            src = self.git_dir / "objects" / sha[:2] / sha[2:]
            dst = origin / "objects" / sha[:2] / sha[2:]
            if dst.exists():
                continue
            if not src.exists():
                return False  # packed since: git push sends it
            dst.parent.mkdir(exist_ok=True)
            try:
                os.link(src, dst)
            except FileExistsError:
                pass
            except OSError:
                return False
        try:
            run_git(origin, "update-ref", f"refs/heads/{branch}", commit, "0" * 40)  # create, never move
        except GitError:
            return False
        self._git("update-ref", f"refs/remotes/origin/{branch}", commit)
        return True

    def push(self, commit: str, branch: str, *, force: bool = False, expect: str | None = None) -> None:
        with self._new_lock:
            objects = self._new_objects.pop(commit, None)
        origin = self._bare_origin if objects and not force and expect is None else None
        if origin is not None and objects is not None:
            with self._refs_lock():
                if self._publish(origin, commit, objects, branch):
                    return
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
    import git

    path.mkdir(parents=True, exist_ok=True)
    return git.Repo.init(path, bare=True, initial_branch=default_branch)
