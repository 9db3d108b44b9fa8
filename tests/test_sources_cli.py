"""Sources are policy, from the terminal: the real `aimodel` CLI on the embedded default.

Each attack from the security review, as a model file URI and as a data set URI: refused
before a byte is read, nothing written, no internal address contacted, and the process's
secrets never in what the person sees. A person's own files (working folder, home) stay
usable from the CLI; everything else must be in the repository's `sources`.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bot.app import Context
from bot.config import load_settings
from tests.conftest import ModelFiles, Run, git_branches, tree_snapshot
from tests.listener import Listener

SECRETS = {
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI-K7MDENG-bPxRfiCYSECRETKEY",
    "GITHUB_WEBHOOK_SECRET": "whsec-cli-0123456789abcdef",
}
UNAVAILABLE = "does not exist or is not in an allowed source"
CREATE = ["create", "fraud", "--app", "payments", "--dataset", "transactions"]


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def listener() -> Iterator[Listener]:
    with Listener() as it:
        yield it


def _attacks(home: Path, files: ModelFiles, port: int) -> dict[str, tuple[str, str]]:
    """name -> (URI, what the refusal says)."""
    key = home / "keys" / "signing.pem"
    link = files.onnx.parent / "innocent.onnx"
    if not link.is_symlink():
        link.symlink_to(key)
    model = files.onnx
    return {
        "proc-environ": ("/proc/self/environ", UNAVAILABLE),
        "signing-key": (str(key), UNAVAILABLE),
        "symlink-to-key": (str(link), UNAVAILABLE),
        "dot-dot": ("files/../home/keys/signing.pem", "`..` is not allowed"),
        "etc-passwd": ("file:///etc/passwd", UNAVAILABLE),
        "localhost-passwd": ("file://localhost/etc/passwd", UNAVAILABLE),
        "other-host": ("file://db.internal/etc/passwd", "file:// URIs name this machine only"),
        "chained": (f"simplecache::file://{model}", "chained protocols"),
        "local-alias": (f"local://{model}", "protocol local:// is not allowed"),
        "webhdfs": (f"webhdfs://127.0.0.1:{port}/x", "protocol webhdfs:// is not allowed"),
        "http-metadata": (f"http://127.0.0.1:{port}/latest/meta-data/", "protocol http:// is not allowed"),
        "ftp-redis": (f"ftp://127.0.0.1:{port}/x", "protocol ftp:// is not allowed"),
        "https-loopback": (f"https://127.0.0.1:{port}/m.onnx", UNAVAILABLE),  # not in sources
    }


ATTACK_NAMES = ["proc-environ", "signing-key", "symlink-to-key", "dot-dot", "etc-passwd", "localhost-passwd", "other-host",
                "chained", "local-alias", "webhdfs", "http-metadata", "ftp-redis", "https-loopback"]


def _assert_refused(aimodel: Run, home: Path, argv: list[str], message: str, listener: Listener) -> str:
    before = tree_snapshot(home)
    result = aimodel(*argv, "--as", "ada", expect=1)
    assert message in result.err, result.err
    assert tree_snapshot(home) == before
    assert git_branches(home) == ["main"]
    assert not listener.connected()  # the refusal came back; nothing reached the listener
    for value in SECRETS.values():
        assert value not in result.text
    return result.err


@pytest.mark.parametrize("attack", ATTACK_NAMES)
def test_an_artifact_uri_from_the_attack_list_is_refused(
    aimodel: Run, home: Path, model_files: ModelFiles, listener: Listener, attack: str
) -> None:
    uri, message = _attacks(home, model_files, listener.port)[attack]
    argv = [*CREATE, "--artifact", uri, "--dataset-uri", str(model_files.data), "--label-column", "label"]
    _assert_refused(aimodel, home, argv, message, listener)


@pytest.mark.parametrize("attack", ATTACK_NAMES)
def test_a_dataset_uri_from_the_attack_list_is_refused(
    aimodel: Run, home: Path, model_files: ModelFiles, listener: Listener, attack: str
) -> None:
    uri, message = _attacks(home, model_files, listener.port)[attack]
    argv = [*CREATE, "--artifact", str(model_files.onnx), "--dataset-uri", uri, "--label-column", "nope"]
    _assert_refused(aimodel, home, argv, message.replace("artifact", "data set"), listener)


def test_outside_the_sources_existing_and_missing_read_the_same(aimodel: Run, home: Path, model_files: ModelFiles, listener: Listener) -> None:
    texts = []
    for path in ("/etc/hostname", "/etc/no-such-file-here", "/var", str(home / "repo.git" / "HEAD")):
        argv = [*CREATE, "--artifact", path, "--dataset-uri", str(model_files.data), "--label-column", "label"]
        err = _assert_refused(aimodel, home, argv, UNAVAILABLE, listener)
        texts.append(err.replace(path, "URI"))
    assert len(set(texts)) == 1, texts


def test_a_missing_file_of_ones_own_reads_like_a_refusal(aimodel: Run, home: Path, model_files: ModelFiles, listener: Listener) -> None:
    argv = [*CREATE, "--artifact", str(model_files.onnx.parent / "typo.onnx"), "--dataset-uri", str(model_files.data), "--label-column", "label"]
    _assert_refused(aimodel, home, argv, UNAVAILABLE, listener)


def test_ones_own_files_are_usable_and_pinned_canonically(aimodel: Run, home: Path, model_files: ModelFiles, tmp_path: Path) -> None:
    link = tmp_path / "latest.onnx"
    link.symlink_to(model_files.onnx)
    aimodel(*CREATE, "--artifact", "latest.onnx", "--dataset-uri", "files/transactions.csv", "--label-column", "label",
            "--SLA", "accuracy>=0.9", "--as", "ada")
    shown = aimodel("pr", "show", "1", "--json").json
    assert {c["state"] for c in shown["checks"].values()} == {"success"}, shown["checks"]
    with Context(load_settings({"AIMODEL_HOME": str(home)})) as ctx:
        pr = ctx.forge.get_pr(1)
        model = yaml.safe_load(ctx.workspace.read_file(pr.head, "models/fraud/model.yaml") or b"")
        dataset = yaml.safe_load(ctx.workspace.read_file(pr.head, "datasets/transactions.yaml") or b"")
    assert model["spec"]["versions"][0]["artifact"]["source"] == model_files.onnx.resolve().as_uri()  # the link resolved
    assert model["spec"]["versions"][0]["artifact"]["uri"].startswith("store:sha256/")  # the bytes are kept
    assert dataset["spec"]["source"] == model_files.data.resolve().as_uri()
    assert dataset["spec"]["uri"] == f"store:sha256/{dataset['spec']['sha256']}"


def _edit_pr(home: Path, number: int, path: str, change: dict[str, str]) -> None:
    """A person pushes a hand-edited manifest to the pull request's branch."""
    with Context(load_settings({"AIMODEL_HOME": str(home)})) as ctx:
        pr = ctx.forge.get_pr(number)
        doc = yaml.safe_load(ctx.workspace.read_file(pr.head, path) or b"")
        if "artifact" in change:
            doc["spec"]["versions"][-1]["artifact"]["uri"] = change["artifact"]
        else:
            doc["spec"]["uri"] = change["uri"]
        edited = ctx.workspace.commit_change(pr.head, {path: yaml.safe_dump(doc, sort_keys=False).encode()}, "point elsewhere")
        ctx.workspace.push(edited, pr.branch)
        ctx.forge.update_head(number, edited)
        ctx.jobs.drain()


@pytest.mark.parametrize(
    ("path", "change", "field"),
    [
        ("datasets/transactions.yaml", {"uri": "file:///proc/self/environ"}, "spec.uri"),
        ("datasets/transactions.yaml", {"uri": "simplecache::file:///etc/passwd"}, "spec.uri"),
        ("models/fraud/model.yaml", {"artifact": "SIGNING_KEY"}, "spec.versions[0].artifact.uri"),
    ],
)
def test_a_hand_edited_manifest_on_the_pr_branch_is_checked_by_the_worker(
    aimodel: Run, home: Path, model_files: ModelFiles, path: str, change: dict[str, str], field: str
) -> None:
    aimodel(*CREATE, "--artifact", str(model_files.onnx), "--dataset-uri", str(model_files.data), "--label-column", "nope",
            "--SLA", "accuracy>=0.9", "--as", "ada")
    change = {k: (home / "keys" / "signing.pem").as_uri() if v == "SIGNING_KEY" else v for k, v in change.items()}
    _edit_pr(home, 1, path, change)
    checks = aimodel("pr", "show", "1", "--json").json["checks"]
    assert checks["manifest"]["state"] == "failure"
    assert f"{field}:" in checks["manifest"]["summary"]
    assert {checks[n]["state"] for n in ("scan", "validate", "sign")} == {"skipped"}
    shown = aimodel("pr", "show", "1").out
    for value in SECRETS.values():
        assert value not in shown and value not in str(checks)
    refused = aimodel("pr", "merge", "1", "--as", "dev", expect=1)
    assert "check manifest failed" in refused.err


def test_a_secret_that_reaches_a_check_summary_is_redacted(
    aimodel: Run, home: Path, model_files: ModelFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A data set of the person's own whose header carries the value of a secret of the process:
    # whatever the validate check says about the header, the value never leaves the bot.
    data = tmp_path / "files" / "leaky.csv"
    secret = SECRETS["GITHUB_WEBHOOK_SECRET"].replace("-", "_")
    data.write_text(f"{secret},label\n0.1,1\n")
    monkeypatch.setenv("HF_TOKEN", secret)  # a secret of the process, spelled like a column name
    aimodel(*CREATE, "--artifact", str(model_files.onnx), "--dataset-uri", str(data), "--label-column", "nope",
            "--SLA", "accuracy>=0.9", "--as", "ada")
    checks = aimodel("pr", "show", "1", "--json").json["checks"]
    shown = aimodel("pr", "show", "1").out
    assert checks["validate"]["state"] == "failure"
    assert secret not in str(checks) and secret not in shown


# --------------------------------------------------------------------------- network sources


class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # quiet
        return


@pytest.fixture
def http_server(model_files: ModelFiles) -> Iterator[tuple[str, int]]:
    import functools

    handler = functools.partial(_Files, directory=str(model_files.onnx.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "127.0.0.1", server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _set_sources(home: Path, sources: dict[str, list[str]]) -> None:
    with Context(load_settings({"AIMODEL_HOME": str(home)})) as ctx:
        ctx.workspace.fetch()
        head = ctx.workspace.head_of()
        config = yaml.safe_load(ctx.workspace.read_file(head, ".aimodel/config.yaml") or b"")
        config["sources"] = sources
        commit = ctx.workspace.commit_change(head, {".aimodel/config.yaml": yaml.safe_dump(config).encode()}, "sources")
        ctx.workspace.push(commit, "main", expect=head)


def test_a_source_on_a_private_address_needs_the_host_named(aimodel: Run, home: Path, model_files: ModelFiles, listener: Listener) -> None:
    # In sources, but 127.0.0.1 is loopback: refused before connecting, for http and https alike.
    prefix = f"http://127.0.0.1:{listener.port}/"
    _set_sources(home, {"artifacts": [prefix, f"https://127.0.0.1:{listener.port}/"], "protocols": ["file", "http", "https"]})
    for scheme in ("http", "https"):
        argv = [*CREATE, "--artifact", f"{scheme}://127.0.0.1:{listener.port}/m.onnx", "--dataset-uri", str(model_files.data), "--label-column", "label"]
        _assert_refused(aimodel, home, argv, "resolves to a loopback, private, link-local or metadata address", listener)


def test_a_named_private_host_is_fetched(aimodel: Run, home: Path, model_files: ModelFiles, http_server: tuple[str, int]) -> None:
    # The positive control of the tests above: named under private_hosts, the same kind of
    # address is reached, the bytes are read and pinned, and the checks read them again.
    host, port = http_server
    _set_sources(home, {"artifacts": [f"http://{host}:{port}/"], "protocols": ["file", "http"], "private_hosts": [host]})
    aimodel(*CREATE, "--artifact", f"http://{host}:{port}/fraud-v1.onnx", "--dataset-uri", str(model_files.data),
            "--label-column", "label", "--SLA", "accuracy>=0.9", "--as", "ada")
    shown = aimodel("pr", "show", "1", "--json").json
    assert {c["state"] for c in shown["checks"].values()} == {"success"}, shown["checks"]


def test_redirects_to_an_internal_address_are_not_followed(model_files: ModelFiles, listener: Listener) -> None:
    """Through bot.fetch with a real server that answers 302 to the listener."""
    from bot.checks.fetch import ArtifactError, describe_artifact
    from bot.manifests import Sources
    from bot.sources import Access

    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", f"http://localhost:{listener.port}/latest/meta-data/")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        origin = f"http://127.0.0.1:{server.server_address[1]}/"
        access = Access(Sources(artifacts=(origin,), protocols=("http",), private_hosts=("127.0.0.1",)))
        with pytest.raises(ArtifactError, match="host localhost resolves to a loopback"):
            describe_artifact(origin + "m.onnx", "", access)
        assert not listener.connected()
    finally:
        server.shutdown()
        server.server_close()


def test_a_fifo_or_device_in_ones_own_folder_is_refused_without_hanging(
    aimodel: Run, home: Path, model_files: ModelFiles, listener: Listener, tmp_path: Path
) -> None:
    import os

    fifo = tmp_path / "files" / "pipe.onnx"
    os.mkfifo(fifo)  # opening it for reading would wait for a writer forever
    argv = [*CREATE, "--artifact", str(fifo), "--dataset-uri", str(model_files.data), "--label-column", "label"]
    _assert_refused(aimodel, home, argv, UNAVAILABLE, listener)
    argv = [*CREATE, "--artifact", str(model_files.onnx), "--dataset-uri", str(fifo), "--label-column", "label", "--SLA", "accuracy>=0.9"]
    refused = aimodel(*argv, "--as", "ada", expect=1)  # the data set is kept at propose: the pipe is refused then
    assert UNAVAILABLE in refused.err and git_branches(home) == ["main"]
