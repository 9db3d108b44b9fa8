"""KServe through the GitOps engine a team already runs: the rendered release is committed to
a folder of the manifest repository (`deploy/<env>/` by default) that Argo CD or Flux syncs.

The folder holds exactly the rendered files: one YAML per object and a kustomization.yaml
listing them; a file no longer rendered is deleted in the same commit. A release that
changes nothing commits nothing, so the periodic reconcile is quiet. The push names the
commit it builds on (a lease): a concurrent writer makes it fetch and build again.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping
from typing import Any

import yaml

from bot.deploy.targets.kserve_render import KUSTOMIZATION, Key, Obj, files, key_of
from bot.gitrepo import GitError, Workspace
from bot.manifests import KServeSettings
from bot.messages import kserve as msg

PUSH_TRIES = 3
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def blob_sha(data: bytes) -> str:
    """The id git gives these bytes as a file: a file is unchanged when its id is."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


class PublishError(RuntimeError):
    """The release could not be committed; the message is safe to show."""


class GitOpsPublisher:
    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self._parsed: dict[str, Obj | None] = {}  # blob sha -> object: the folder is read every reconcile

    def _branch(self, s: KServeSettings) -> str:
        return s.branch or self.workspace.default_branch

    def _base(self, branch: str) -> tuple[str, bool]:
        """The commit to build on and whether the branch exists (a new deploy branch starts
        from the default branch)."""
        try:
            return self.workspace.head_of(branch), True
        except GitError:
            return self.workspace.head_of(), False

    def committed(self, s: KServeSettings, *, fetch: bool = True) -> tuple[str, dict[Key, Obj]]:
        """The branch head and the objects its deploy folder holds."""
        if fetch:
            self.workspace.fetch()
        base, _ = self._base(self._branch(s))
        objects: dict[Key, Obj] = {}
        for path, sha in self.workspace.tree(base).items():
            if not path.startswith(s.path) or "/" in path[len(s.path) :] or path.endswith("/" + KUSTOMIZATION):
                continue
            obj = self._parse(sha)
            if obj is not None:  # else a file someone put there by hand: the next commit replaces it
                objects[key_of(obj)] = obj
        return base, objects

    def _parse(self, sha: str) -> Obj | None:
        if sha not in self._parsed:
            if len(self._parsed) > 10_000:
                self._parsed.clear()
            try:
                obj = yaml.load(self.workspace.read_blob(sha), Loader=_Loader)
                key_of(obj)
                self._parsed[sha] = obj
            except (yaml.YAMLError, KeyError, TypeError):
                self._parsed[sha] = None
        found = self._parsed[sha]
        return copy.deepcopy(found) if found is not None else None

    def publish(self, s: KServeSettings, objects: Mapping[Key, Obj], message: str) -> str | None:
        """Commit the folder as exactly `objects`; the new commit, or None when it already is."""
        branch = self._branch(s)
        wanted = {s.path + name: data for name, data in files(objects).items()}
        for attempt in range(PUSH_TRIES):
            if attempt:
                self.workspace.fetch()
            base, exists = self._base(branch)
            tree = self.workspace.tree(base)
            if not objects and not any(path.startswith(s.path) for path in tree):
                return None  # nothing runs there, nor ever did: no folder of an empty kustomization
            changes: dict[str, bytes | None] = {p: None for p in tree if p.startswith(s.path) and p not in wanted}
            for path, data in wanted.items():
                if tree.get(path) != blob_sha(data):
                    changes[path] = data
            if not changes:
                return None
            commit = self.workspace.commit_change(base, changes, message)
            try:
                self.workspace.push(commit, branch, expect=base if exists else "")
                return commit
            except GitError as exc:
                last = str(exc).strip().splitlines()[-1:] or ["push failed"]
                if attempt == PUSH_TRIES - 1:
                    raise PublishError(msg.push_refused(branch, last[0][:200])) from None
        return None
