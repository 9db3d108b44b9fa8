"""bot.catalog from plain data: a tree (path -> blob id) and its blobs, as git would give them.
Which paths are manifests, what loads, what is refused and why, the cross-file rules, and
the parse cache keyed by blob id."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.catalog import EMPTY_CONFIG, Catalog, ManifestCache, catalog_at, classify, load_catalog
from bot.manifests import CONFIG_PATH, Dataset, dump_manifest
from tests.test_deploy_plan import app, model

CONFIG = """\
apiVersion: aimodel.dev/v2
kind: RepositoryConfig
people:
  ada: {roles: [data-scientist]}
environments:
  dev: {approvals: 0}
  prod: {approvals: 1, approvers: [devops-engineer]}
"""
TX = dump_manifest(Dataset("tx", "s3://data/tx.csv", "label"))


class Tree:
    """Blobs by content hash, as git stores them; counts the reads the catalog makes."""

    def __init__(self, files: dict[str, str]) -> None:
        self.blobs = {hashlib.sha1(text.encode()).hexdigest(): text.encode() for text in files.values()}
        self.files = {path: hashlib.sha1(text.encode()).hexdigest() for path, text in files.items()}
        self.reads = 0

    def read(self, blob: str) -> bytes:
        self.reads += 1
        return self.blobs[blob]

    def load(self, cache: ManifestCache | None = None) -> Catalog:
        return load_catalog("c0ffee", self.files, self.read, cache)


def good_repo() -> dict[str, str]:
    return {
        CONFIG_PATH: CONFIG,
        "models/fraud.yaml": dump_manifest(model("fraud", "0.9.0", "1.0.0")),
        "models/churn/model.yaml": dump_manifest(model("churn")),
        "apps/payments.yaml": dump_manifest(app("payments", "1.0", {"dev": {"fraud": "1.0.0", "churn": "1.0.0"}, "prod": {"fraud": "0.9.0"}})),
        "datasets/tx.yaml": TX,
        "README.md": "# models\n",
        "models/fraud.sig": "not a manifest",
    }


@pytest.mark.parametrize(
    ("path", "where"),
    [
        ("models/fraud.yaml", ("AIModel", "fraud")),
        ("models/fraud.yml", ("AIModel", "fraud")),
        ("models/fraud/model.yaml", ("AIModel", "fraud")),
        ("apps/payments.yaml", ("Application", "payments")),
        ("datasets/tx.yaml", ("Dataset", "tx")),
        ("models/fraud.sig", None),
        ("models/fraud/README.md", None),
        ("apps/payments/model.yaml", None),  # the folder form is for models only
        ("models/a/b/model.yaml", None),
        ("models/noext", None),
        ("README.md", None),
        (CONFIG_PATH, None),
        ("other/fraud.yaml", None),
    ],
)
def test_classify(path: str, where: tuple[str, str] | None) -> None:
    assert classify(path) == where


def test_a_good_repository_loads_whole() -> None:
    cat = Tree(good_repo()).load()
    assert cat.commit == "c0ffee"
    assert sorted(cat.models) == ["churn", "fraud"] and list(cat.apps) == ["payments"] and list(cat.datasets) == ["tx"]
    assert cat.models["churn"].path == "models/churn/model.yaml"
    assert [v.version for v in cat.models["fraud"].versions] == ["0.9.0", "1.0.0"] and cat.models["fraud"].version == "1.0.0"
    assert cat.running_in("prod") == {"fraud": "0.9.0"} and cat.running_in("dev") == {"fraud": "1.0.0", "churn": "1.0.0"}
    assert sorted(cat.config.environments) == ["dev", "prod"] and list(cat.config.people) == ["ada"]
    assert cat.all_errors() == []
    assert [a.name for a in cat.apps_using("fraud")] == ["payments"] and cat.apps_using("nobody") == []


def _errors(cat: Catalog) -> list[tuple[str, str]]:
    return [(e.file, e.message) for e in cat.all_errors()]


def _bad(change: Callable[[dict[str, str]], None]) -> dict[str, str]:
    files = good_repo()
    change(files)
    return files


@pytest.mark.parametrize(
    ("files", "file", "words"),
    [
        (_bad(lambda f: f.update({"models/fraud/model.yaml": f["models/fraud.yaml"]})), "models/fraud/model.yaml", "defined twice"),
        (_bad(lambda f: f.update({"models/fraud.yaml": "kind: AIModel\nmetadata: [\n"})), "models/fraud.yaml", ""),
        (_bad(lambda f: f.update({"apps/fraud.yaml": f["models/fraud.yaml"]})), "apps/fraud.yaml", "does not belong in apps/"),
        (_bad(lambda f: f.pop("datasets/tx.yaml")), "models/", "data set 'tx' does not exist"),
        (_bad(lambda f: f.update({"apps/payments.yaml": dump_manifest(app("payments", "1.0", {"dev": {"fraud": "9.9.9", "churn": "1.0.0"}}))})),
         "apps/payments.yaml", "pins fraud 9.9.9, which is not a version of it (0.9.0, 1.0.0)"),
        (_bad(lambda f: f.update({"apps/payments.yaml": dump_manifest(app("payments", "1.0", {"dev": {"ghost": "1.0.0"}}))})),
         "apps/payments.yaml", "uses model 'ghost', which does not exist"),
        (_bad(lambda f: f.update({"apps/edge.yaml": dump_manifest(app("edge", "1.0", {"edge": {"churn": "1.0.0"}}))})),
         "apps/edge.yaml", "environment 'edge' is not defined"),
        (_bad(lambda f: f.update({"apps/other.yaml": dump_manifest(app("other", "1.0", {"prod": {"fraud": "1.0.0"}}))})),
         "apps/", "pins fraud 1.0.0 in prod, but application"),
        (_bad(lambda f: f.update({"models/lost.yaml": dump_manifest(model("lost", app="nowhere"))})),
         "models/lost.yaml", "application 'nowhere' does not exist"),
    ],
    ids=["twice", "broken-yaml", "wrong-folder", "no-dataset", "pin-version", "pin-missing", "unknown-env", "two-versions-one-env", "no-app"],
)
def test_what_is_wrong_is_named_and_the_rest_still_loads(files: dict[str, str], file: str, words: str) -> None:
    cat = Tree(files).load()
    errors = _errors(cat)
    assert any(f.startswith(file) and words in message for f, message in errors), errors
    assert "churn" in cat.models  # one bad file never hides the others


def test_a_broken_config_is_an_error_and_the_rules_stay_empty() -> None:
    cat = Tree(_bad(lambda f: f.update({CONFIG_PATH: "people: [\n"}))).load()
    assert cat.config == EMPTY_CONFIG
    assert [e.file for e in cat.errors] == [CONFIG_PATH]


def test_the_cache_spares_parsing_and_survives_a_restart(tmp_path: Path) -> None:
    tree = Tree(good_repo())
    first = tree.load(ManifestCache(tmp_path / "manifests.sqlite"))
    assert tree.reads == 5  # the config and four manifests; the README and the signature are never read
    tree.reads = 0
    again = tree.load(ManifestCache(tmp_path / "manifests.sqlite"))  # a new process: read from the file
    assert tree.reads == 1  # only the config, which is not cached
    assert again.models["fraud"] == first.models["fraud"] and again.apps["payments"] == first.apps["payments"]
    assert again.datasets["tx"] == first.datasets["tx"] and again.all_errors() == []


def test_a_damaged_cache_is_rebuilt_not_trusted(tmp_path: Path) -> None:
    (tmp_path / "manifests.sqlite").write_bytes(b"{not a database" * 100)
    tree = Tree(good_repo())
    assert sorted(tree.load(ManifestCache(tmp_path / "manifests.sqlite")).models) == ["churn", "fraud"]
    assert tree.reads == 5


def test_a_cached_document_under_another_name_is_not_used(tmp_path: Path) -> None:
    """The same bytes under another path (copied file): the cache keys by blob, the name by path."""
    files = good_repo()
    files["models/copy.yaml"] = files["models/fraud.yaml"]
    cache = ManifestCache(tmp_path / "manifests.sqlite")
    Tree(good_repo()).load(cache)
    cat = Tree(files).load(cache)
    assert "copy" not in cat.models
    assert any(e.file == "models/copy.yaml" for e in cat.errors), _errors(cat)


def test_a_cached_manifest_is_read_only_when_used(tmp_path: Path) -> None:
    """A proposal touches a few of 10,000 models: the catalog knows them all, reads a few.
    A row that went away meanwhile (another process pruned it) is parsed from its blob again."""
    import sqlite3

    tree = Tree(good_repo())
    first = tree.load(ManifestCache(tmp_path / "manifests.sqlite"))
    tree.reads = 0
    again = tree.load(ManifestCache(tmp_path / "manifests.sqlite"))
    assert sorted(again.models) == ["churn", "fraud"] and tree.reads == 1  # the config only
    with sqlite3.connect(tmp_path / "manifests.sqlite") as db:
        db.execute("DELETE FROM docs_v2 WHERE name = 'churn'")
    db.close()
    assert again.models["fraud"] == first.models["fraud"] and tree.reads == 1  # from the cache
    assert again.models["churn"] == first.models["churn"] and tree.reads == 2  # parsed again
    assert [a.name for a in again.apps_using("fraud")] == ["payments"]


def test_a_clean_commit_seen_before_lists_no_tree(tmp_path: Path) -> None:
    """A commit never changes: its catalog's index is kept, and the next process on the same
    commit neither lists the tree nor reads a manifest it does not use."""
    tree = Tree(good_repo())
    listed: list[str] = []

    def listing(commit: str) -> dict[str, str]:
        listed.append(commit)
        return tree.files

    first = catalog_at("c0ffee", listing, tree.read, ManifestCache(tmp_path / "manifests.sqlite"))
    tree.reads = 0
    again = catalog_at("c0ffee", listing, tree.read, ManifestCache(tmp_path / "manifests.sqlite"))
    assert listed == ["c0ffee"] and tree.reads == 1  # the config, parsed each time
    assert dict(again.files) == tree.files and again.config == first.config
    assert (list(again.models), list(again.apps), list(again.datasets)) == (list(first.models), list(first.apps), list(first.datasets))
    assert dict(again.models.items()) == dict(first.models.items()) and again.all_errors() == []
    assert [a.name for a in again.apps_using("fraud")] == ["payments"] and again.apps_using("nothing") == []
    catalog_at("0ther", listing, tree.read, ManifestCache(tmp_path / "manifests.sqlite"))
    assert listed == ["c0ffee", "0ther"]  # another commit is listed

    import sqlite3

    with sqlite3.connect(tmp_path / "manifests.sqlite") as db:
        db.execute("UPDATE catalog_index SET files = '{not json'")
    db.close()
    damaged = catalog_at("c0ffee", listing, tree.read, ManifestCache(tmp_path / "manifests.sqlite"))
    assert listed == ["c0ffee", "0ther"] and dict(damaged.files) == tree.files  # listed again, only when read
    assert listed == ["c0ffee", "0ther", "c0ffee"]


def test_a_commit_with_errors_is_built_anew_each_time(tmp_path: Path) -> None:
    tree = Tree(_bad(lambda f: f.update({"models/broken.yaml": "kind: AIModel\n"})))
    listed: list[str] = []

    def listing(commit: str) -> dict[str, str]:
        listed.append(commit)
        return tree.files

    for _ in range(2):
        cat = catalog_at("c0ffee", listing, tree.read, ManifestCache(tmp_path / "manifests.sqlite"))
        assert any(e.file == "models/broken.yaml" for e in cat.errors), _errors(cat)
    assert listed == ["c0ffee", "c0ffee"]
