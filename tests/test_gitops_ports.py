"""GitOps through its ports with in-process fakes (tests/fakes.py): a real manifest repository
and working clone (git), an in-memory forge and locks. What a proposal leaves behind, what a
refusal leaves behind, and when a pull request may merge."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.checks.fetch import describe_artifact
from bot.commands import Create, Deploy, Update
from bot.forges.base import CheckResult, Forge, ForgeError
from bot.gitops import Actor, GitOps, Refusal
from bot.gitrepo import Workspace
from bot.locks import Locks
from bot.notify import Notifier
from bot.review import REQUIRED_CHECKS
from tests.conftest import ModelFiles
from tests.fakes import FakeForge, MemoryLocks, RecordingNotifier


@pytest.mark.parametrize(
    ("port", "fake"),
    [(Forge, FakeForge), (Locks, MemoryLocks), (Notifier, RecordingNotifier)],
)
def test_each_fake_has_every_operation_of_its_port(port: type, fake: type) -> None:
    """A port that grows an operation must grow its fake too, with the same parameters."""
    for name, member in vars(port).items():
        if name.startswith("_") or not callable(member):
            continue
        assert callable(getattr(fake, name, None)), f"{fake.__name__} lacks {name}"
        want = [p.name for p in inspect.signature(member).parameters.values()]
        got = [p.name for p in inspect.signature(getattr(fake, name)).parameters.values()]
        assert got == want, (name, got, want)
    for name in getattr(port, "__annotations__", {}):
        assert hasattr(fake(), name), f"{fake.__name__} lacks the attribute {name}"


@pytest.fixture
def ports(home: Path) -> Iterator[tuple[GitOps, FakeForge, MemoryLocks]]:
    forge, locks = FakeForge(clone_url=str(home / "repo.git")), MemoryLocks()
    workspace = Workspace(home / "work", "main")
    try:
        yield GitOps(forge, workspace, locks, describe_artifact=describe_artifact), forge, locks
    finally:
        workspace.close()


def _create(model_files: ModelFiles) -> Create:
    return Create("fraud", "payments", "transactions", str(model_files.onnx), dataset_uri=str(model_files.data), label_column="label")


def test_a_proposal_opens_one_pull_request_and_holds_its_locks(ports: tuple[GitOps, FakeForge, MemoryLocks], model_files: ModelFiles) -> None:
    gitops, forge, locks = ports
    opened = gitops.propose(_create(model_files), Actor("ada", "cli"))
    pr = forge.get_pr(opened.pr.number)
    assert (pr.author, pr.base, pr.meta.verb, pr.meta.model) == ("ada", "main", "create", "fraud")
    assert gitops.workspace.head_of(pr.branch) == pr.head  # the branch is pushed to the origin
    assert "models/fraud/model.yaml" in gitops.workspace.changed_files(gitops.workspace.head_of(), pr.head)
    assert {h.key: (h.pr, h.person) for h in locks.all()}["model:fraud"] == (pr.number, "ada")
    assert forge.events == [("pull_request.opened", {"number": pr.number, "head": pr.head})]


def test_a_second_proposal_for_a_locked_model_is_refused_and_opens_nothing(
    ports: tuple[GitOps, FakeForge, MemoryLocks], model_files: ModelFiles
) -> None:
    gitops, forge, locks = ports
    first = gitops.propose(_create(model_files), Actor("ada", "cli")).pr
    with pytest.raises(Refusal) as refused:
        gitops.propose(_create(model_files), Actor("alan", "cli"))
    assert f"#{first.number}" in refused.value.message
    assert [p.number for p in forge.list_prs()] == [first.number]
    assert locks.holder("model:fraud") is not None and locks.holder("model:fraud").pr == first.number  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("who", "command", "words"),
    [
        ("nobody", Update("fraud", version="2.0.0"), "not listed"),
        ("ada", Deploy("fraud", "prod"), "deploy is for"),  # a Data Scientist may not deploy
        ("eve", Update("ghost", version="2.0.0"), "no model 'ghost'"),
    ],
)
def test_refusals_leave_no_lock_and_no_pull_request(ports: tuple[GitOps, FakeForge, MemoryLocks], who: str,
                                                     command: Update | Deploy, words: str) -> None:
    gitops, forge, locks = ports
    with pytest.raises(Refusal) as refused:
        gitops.propose(command, Actor(who, "cli"))
    assert words in refused.value.message
    assert forge.prs == {} and locks.all() == []


def test_a_forge_that_fails_to_open_leaves_no_lock_and_no_branch(ports: tuple[GitOps, FakeForge, MemoryLocks],
                                                                 model_files: ModelFiles) -> None:
    gitops, forge, locks = ports

    def refuse(**_: object) -> None:
        raise ForgeError("the forge is down")

    forge.open_pr = refuse  # type: ignore[method-assign,assignment]
    branches_before = gitops.workspace.repo.git.ls_remote("--heads", "origin")
    with pytest.raises(ForgeError):
        gitops.propose(_create(model_files), Actor("ada", "cli"))
    assert locks.all() == []
    assert gitops.workspace.repo.git.ls_remote("--heads", "origin") == branches_before


def _green(forge: FakeForge, number: int, *, skip: str = "") -> None:
    head = forge.get_pr(number).head
    for name in REQUIRED_CHECKS:
        forge.set_check(number, CheckResult(name, "pending" if name == skip else "success", "ok", commit=head))


def test_merge_waits_for_every_check_on_the_current_head(ports: tuple[GitOps, FakeForge, MemoryLocks],
                                                          model_files: ModelFiles) -> None:
    gitops, forge, _ = ports
    number = gitops.propose(_create(model_files), Actor("ada", "cli")).pr.number
    assert gitops.merge_blockers(forge.get_pr(number)) == [f"check {n} has not finished" for n in REQUIRED_CHECKS]
    _green(forge, number, skip="sign")
    assert gitops.merge_blockers(forge.get_pr(number)) == ["check sign has not finished"]
    _green(forge, number)
    forge.update_head(number, gitops.workspace.head_of())  # another head: the results were for the old one
    assert len(gitops.merge_blockers(forge.get_pr(number))) == len(REQUIRED_CHECKS)


def test_a_green_change_to_dev_merges_through_the_forge(ports: tuple[GitOps, FakeForge, MemoryLocks],
                                                         model_files: ModelFiles) -> None:
    gitops, forge, _ = ports
    pr = gitops.propose(_create(model_files), Actor("ada", "cli")).pr
    _green(forge, pr.number)
    assert gitops.merge_blockers(forge.get_pr(pr.number)) == []  # dev asks for no approval
    with pytest.raises(Refusal):
        gitops.approve(pr.number, Actor("ada", "cli"))  # the author's own approval never counts
    assert gitops.merge(pr.number, Actor("dev", "cli")) == pr.head
    assert forge.get_pr(pr.number).state == "merged"
    assert forge.events[-1] == ("pull_request.closed", {"number": pr.number, "merged": True})
    with pytest.raises(Refusal, match="merged"):
        gitops.merge(pr.number, Actor("dev", "cli"))


def test_a_change_to_the_rules_waits_for_a_policy_owner(ports: tuple[GitOps, FakeForge, MemoryLocks]) -> None:
    gitops, forge, locks = ports
    ws = gitops.workspace
    base = ws.head_of()
    config = (ws.read_file(base, ".aimodel/config.yaml") or b"").replace(b"auto_merge: false", b"auto_merge: true")
    head = ws.commit_change(base, {".aimodel/config.yaml": config}, "Merge by itself", Actor("alan", "cli").identity())
    ws.push(head, "auto-merge")
    pr = gitops.open_branch("auto-merge", Actor("alan", "cli"))
    assert (pr.head, pr.author, pr.meta.verb) == (head, "alan", "open")
    assert any(h.key.startswith("branch:") and h.pr == pr.number for h in locks.all())
    _green(forge, pr.number)
    waiting = gitops.merge_blockers(forge.get_pr(pr.number))
    assert len(waiting) == 1 and "policy change" in waiting[0] and "dev" in waiting[0]
    gitops.approve(pr.number, Actor("dev", "cli"))  # the DevOps Engineer owns the rules
    assert gitops.merge_blockers(forge.get_pr(pr.number)) == []
    with pytest.raises(Refusal):
        gitops.merge(pr.number, Actor("alan", "cli"))  # approved, but only policy mergers merge it
    assert gitops.merge(pr.number, Actor("dev", "cli")) == head


def test_the_recording_notifier_keeps_deliveries_in_order() -> None:
    notifier = RecordingNotifier()
    data = {"pr": 1}
    notifier.deliver("checks", data)
    data["pr"] = 2  # a copy was kept: later changes by the sender do not rewrite history
    notifier.deliver("merged", data)
    assert notifier.delivered == [("checks", {"pr": 1}), ("merged", {"pr": 2})]
    assert notifier.kinds() == ["checks", "merged"]
