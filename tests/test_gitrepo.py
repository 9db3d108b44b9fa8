"""bot.gitrepo on real git: a commit built without an index (new blobs and the trees on the
changed paths written directly) is the very tree git's own index plumbing builds, and git
finds nothing wrong with it."""

from __future__ import annotations

import os
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.gitrepo import GitError, Identity, Workspace

FILES = (
    "a.txt", "b/c.yaml", "b/d/e.yaml", "b-x", "b.y", "models/m1/model.yaml", "models/m2/model.yaml",
    "models/m1.yaml", "z/z/z/z.txt",
)
# names that sort differently as files and folders ("b", "b-x", "b.y"), new folders, deep paths
CANDIDATES = (*FILES, "new.txt", "b/new/x.yaml", "models/m3/model.yaml", "b/d/f", "a b.txt", "b.z/q", "b/d/e.yaml")


def git(cwd: Path, *args: str, env: dict[str, str] | None = None, data: bytes | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=env, input=data, check=True, capture_output=True).stdout.decode()


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    seed, bare = tmp_path / "seed", tmp_path / "bare.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(tmp_path, "init", "-q", "-b", "main", str(seed))
    for name in FILES:
        (seed / name).parent.mkdir(parents=True, exist_ok=True)
        (seed / name).write_text(name)
    git(seed, "add", "-A")
    git(seed, "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qm", "seed")
    git(seed, "push", "-q", str(bare), "HEAD:main")
    git(tmp_path, "clone", "-q", str(bare), str(tmp_path / "work"))
    ws = Workspace(tmp_path / "work")
    yield ws
    ws.close()


def index_tree(ws: Workspace, base: str, changes: dict[str, bytes | None]) -> str:
    """The tree git's index plumbing makes of the same change (the way it used to be built)."""
    env = {**os.environ, "GIT_INDEX_FILE": str(ws.path.parent / "index")}
    git(ws.path, "read-tree", base, env=env)
    for path, content in changes.items():
        if content is None:
            git(ws.path, "update-index", "--force-remove", "--", path, env=env)
        else:
            sha = git(ws.path, "hash-object", "-w", "--stdin", data=content).strip()
            git(ws.path, "update-index", "--add", "--cacheinfo", f"100644,{sha},{path}", env=env)
    tree = git(ws.path, "write-tree", env=env).strip()
    os.unlink(env["GIT_INDEX_FILE"])
    return tree


def test_changes_make_the_tree_the_index_would(workspace: Workspace) -> None:
    base = workspace.head_of()
    rng = random.Random(7)
    for trial in range(60):
        changes = {rng.choice(CANDIDATES): None if rng.random() < 0.4 else f"{trial}".encode() for _ in range(rng.randint(1, 4))}
        commit = workspace.commit_change(base, changes, f"change {trial}")
        assert git(workspace.path, "rev-parse", f"{commit}^{{tree}}").strip() == index_tree(workspace, base, changes), changes
    assert "error" not in git(workspace.path, "fsck", "--strict", "--no-dangling")


def test_a_commit_has_its_author_message_and_parent_and_pushes(workspace: Workspace) -> None:
    base = workspace.head_of()
    commit = workspace.commit_change(base, {"b/d/e.yaml": b"new\n", "a.txt": None}, "the message", Identity("ada", "ada@x"))
    workspace.push(commit, "topic")
    workspace.fetch()
    assert workspace.head_of("topic") == commit
    assert workspace.commit_author(commit) == "ada"
    assert git(workspace.path, "log", "-1", "--format=%P %s", commit).strip() == f"{base} the message"
    assert workspace.changed_files(base, commit) == ["a.txt", "b/d/e.yaml"]
    assert workspace.read_file(commit, "b/d/e.yaml") == b"new\n" and workspace.read_file(commit, "a.txt") is None


def test_removing_the_last_file_of_a_folder_removes_the_folder(workspace: Workspace) -> None:
    base = workspace.head_of()
    commit = workspace.commit_change(base, {"z/z/z/z.txt": None}, "rm")
    assert "z" not in git(workspace.path, "ls-tree", "--name-only", commit).split()


@pytest.mark.parametrize("path", ["b", "a.txt/x", "../up", "a//b", ".git/config", "b/"])
def test_a_path_git_would_refuse_is_refused_and_nothing_is_pushed(workspace: Workspace, path: str) -> None:
    with pytest.raises(GitError):
        workspace.commit_change(workspace.head_of(), {path: b"x"}, "bad")


def test_a_missing_object_is_a_git_error_and_the_reader_recovers(workspace: Workspace) -> None:
    with pytest.raises(GitError):
        workspace.read_blob("0" * 40)
    assert workspace.read_file(workspace.head_of(), "a.txt") == b"a.txt"


def test_loose_objects_are_packed_when_they_pile_up(workspace: Workspace) -> None:
    """Fetches skip git's automatic maintenance; commits run it when git's own estimate says so."""
    import hashlib

    git(workspace.path, "config", "gc.autoDetach", "false")  # pack now, not in the background
    junk: dict[str, bytes | None] = {}
    n = 0
    while len(junk) <= -(-6700 // 256):  # blobs whose names start with 17, as git counts them
        body = f"junk {n}".encode()
        n += 1
        if hashlib.sha1(b"blob %d\0" % len(body) + body).hexdigest().startswith("17"):
            junk[f"junk/{n}"] = body
    workspace.push(workspace.commit_change(workspace.head_of(), junk, "junk"), "junk")  # reachable from now on
    loose = int(dict(line.split(": ") for line in git(workspace.path, "count-objects", "-v").splitlines())["count"])
    assert loose > len(junk)
    workspace.commit_change(workspace.head_of(), {"a.txt": b"tidy"}, "tidy")
    counts = dict(line.split(": ") for line in git(workspace.path, "count-objects", "-v").splitlines())
    assert int(counts["count"]) < len(junk) and int(counts["packs"]) >= 1


def test_a_new_branch_reaches_a_bare_origin_whole(workspace: Workspace) -> None:
    """On a bare origin on this machine a new branch is published without `git push`: the
    origin then has every object of it (fsck) and the clone tracks it, as after a push."""
    bare = workspace.path.parent / "bare.git"
    base = workspace.head_of()
    commit = workspace.commit_change(base, {"b/new/x.yaml": b"x", "models/m3/model.yaml": b"m"}, "new")
    workspace.push(commit, "fast")
    assert git(bare, "rev-parse", "refs/heads/fast").strip() == commit
    assert workspace.head_of("fast") == commit
    assert "error" not in git(bare, "fsck", "--strict", "--no-dangling")
    # the branch exists now: a second commit on it goes through git push (a fast-forward)
    after = workspace.commit_change(commit, {"a.txt": b"more"}, "more")
    workspace.push(after, "fast")
    assert git(bare, "rev-parse", "refs/heads/fast").strip() == after
    # and one that is not a fast-forward is refused by git, as before
    other = workspace.commit_change(base, {"a.txt": b"other"}, "other")
    with pytest.raises(GitError):
        workspace.push(other, "fast")
    assert git(bare, "rev-parse", "refs/heads/fast").strip() == after
