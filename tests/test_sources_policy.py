"""The pure parts of the sources policy, from plain data: the decision, the canonical form,
which addresses count as internal, the config block, and the redactor on real log records."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from bot.config import load_settings
from bot.manifests import ManifestError, Sources, parse_config
from bot.netguard import check_host, is_public
from bot.redact import MASK, install, redact, secrets_of
from bot.sources import (
    Canonical,
    Reader,
    SourceRefused,
    canonical,
    decide,
    resolved_sources,
    vetted_key,
)

TEAM = Sources(artifacts=("s3://team-models/", "HTTPS://Models.Example.com/releases", "file:///srv/models/"),
               datasets=("s3://team-data/",))


def _c(uri: str) -> Canonical:
    return canonical(uri, Path("/work"))


@pytest.mark.parametrize(
    ("uri", "kind", "allowed"),
    [
        ("s3://team-models/fraud/1.onnx", "artifact", True),
        ("s3://team-models-evil/fraud.onnx", "artifact", False),  # a prefix names a folder
        ("s3://team-models/fraud.onnx", "dataset", False),  # artifact sources are not data set sources
        ("s3://team-data/tx.csv", "dataset", True),
        ("https://models.example.com/releases/m.onnx", "artifact", True),
        ("https://models.example.com/releases-old/m.onnx", "artifact", False),
        ("https://MODELS.example.com/releases/m.onnx", "artifact", True),  # host case folded
        ("https://models.example.com.evil.io/releases/m.onnx", "artifact", False),
        ("/srv/models/m.onnx", "artifact", True),
        ("file://localhost/srv/models/m.onnx", "artifact", True),
        ("/srv/models-x/m.onnx", "artifact", False),
        ("gs://team-models/m.onnx", "artifact", False),
        ("http://models.example.com/releases/m.onnx", "artifact", False),  # http is not a default protocol
    ],
)
def test_decide_matches_prefixes_as_folders(uri: str, kind: str, allowed: bool) -> None:
    assert decide(_c(uri), kind, resolved_sources(TEAM), Reader()).allowed is allowed


def test_forbidden_paths_win_over_any_source_and_any_own_folder() -> None:
    everything = Sources(artifacts=("file:///",), datasets=("file:///",))
    reader = Reader(forbidden=("/home/bot/.aimodel", "/etc/aimodel/signing.pem"), own_folders=("/",))
    for path in ("/proc/self/environ", "/sys/kernel/x", "/dev/zero", "/home/bot/.aimodel/keys/signing.pem",
                 "/home/bot/.aimodel/queue.db", "/etc/aimodel/signing.pem"):
        assert not decide(_c(path), "artifact", everything, reader).allowed, path
    assert decide(_c("/home/bot/.aimodel-other/m.onnx"), "artifact", everything, reader).allowed


def test_own_folders_and_vetted_uris() -> None:
    reader = Reader(own_folders=("/home/ada",), vetted=frozenset({vetted_key("artifact", "file:///tmp/x/m.onnx")}))
    assert decide(_c("/home/ada/m.onnx"), "artifact", Sources(), reader).allowed
    assert not decide(_c("/home/adam/m.onnx"), "artifact", Sources(), reader).allowed
    assert decide(_c("/tmp/x/m.onnx"), "artifact", Sources(), reader).allowed
    assert not decide(_c("/tmp/x/other.onnx"), "artifact", Sources(), reader).allowed
    assert not decide(_c("/tmp/x/m.onnx"), "dataset", Sources(), reader).allowed  # vetted as an artifact only
    no_file = Sources(protocols=("s3",))
    assert not decide(_c("/home/ada/m.onnx"), "artifact", no_file, reader).allowed  # file not allowed at all


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("a/../b", "`..`"),
        ("file:///srv/models/../../etc/passwd", "`..`"),
        ("file:///srv/models/%2e%2e/etc/passwd", "`..`"),
        ("https://h.example.com/a/%2E%2E/b", "`..`"),
        ("simplecache::file:///etc/passwd", "chained"),
        ("filecache::s3://team-models/x", "chained"),
        ("file://otherhost/etc/passwd", "this machine only"),
        ("https://user:pw@models.example.com/releases/m.onnx", "user@"),
        ("c:\\models\\m.onnx", "not a path"),
        ("/tmp/x\n/etc/passwd", "control characters"),
    ],
)
def test_canonical_refuses(uri: str, reason: str) -> None:
    with pytest.raises(SourceRefused) as caught:
        canonical(uri)
    assert reason in str(caught.value)


def test_canonical_resolves_links_and_relative_paths(tmp_path: Path) -> None:
    real = tmp_path / "real.onnx"
    real.write_bytes(b"x")
    (tmp_path / "link.onnx").symlink_to(real)
    assert canonical("link.onnx", tmp_path).uri == real.resolve().as_uri()
    assert canonical(f"file://localhost{tmp_path}/link.onnx").uri == real.resolve().as_uri()


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True), ("2606:4700:4700::1111", True),
        ("127.0.0.1", False), ("10.1.2.3", False), ("172.16.0.1", False), ("192.168.1.1", False),
        ("169.254.169.254", False), ("100.64.0.1", False), ("0.0.0.0", False), ("224.0.0.1", False),
        ("::1", False), ("fd00:ec2::254", False), ("fe80::1", False), ("::ffff:127.0.0.1", False),
        ("::ffff:169.254.169.254", False), ("2002:7f00:1::", False),
    ],
)
def test_internal_addresses(address: str, public: bool) -> None:
    assert is_public(address) is public


def test_a_host_is_judged_by_every_address_it_resolves_to() -> None:
    def resolve(host: str, port: int) -> list[str]:
        return {"mixed.example.com": ["93.184.216.34", "10.0.0.5"], "public.example.com": ["93.184.216.34"]}[host]

    check_host("public.example.com", 443, (), resolve)
    with pytest.raises(SourceRefused, match=r"mixed\.example\.com resolves to a loopback, private"):
        check_host("mixed.example.com", 443, (), resolve)
    check_host("mixed.example.com", 443, ("mixed.example.com",), resolve)  # named: allowed


def test_the_sources_block_of_the_config() -> None:
    config = parse_config(b"sources:\n  artifacts: [s3://team-models/, /srv/models]\n  protocols: [file, s3]\n  private_hosts: [Minio.Internal]\n")
    assert config.sources == Sources(("s3://team-models/", "/srv/models"), (), ("file", "s3"), ("minio.internal",))
    assert parse_config(b"people: {}\n").sources.protocols == ("file", "s3", "gs", "https")
    for bad, field in ((b"sources:\n  protocols: [file, simplecache]\n", "sources.protocols[1]"),
                       (b"sources:\n  protocols: [local]\n", "sources.protocols[0]"),
                       (b"sources:\n  artifacts: [models/]\n", "sources.artifacts[0]"),
                       (b"sources:\n  datasets: ['simplecache::s3://x/']\n", "sources.datasets[0]"),
                       (b"sources:\n  buckets: []\n", "sources.buckets")):
        with pytest.raises(ManifestError) as caught:
            parse_config(bad)
        assert caught.value.field == field


def test_the_template_config_parses_with_its_sources() -> None:
    template = Path(__file__).resolve().parent.parent / "repo_templates" / "manifest-repo" / ".aimodel" / "config.yaml"
    assert parse_config(template.read_bytes()).sources == Sources()


def test_secrets_of_settings_and_environment(tmp_path: Path) -> None:
    pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n"
    env = {"AIMODEL_HOME": str(tmp_path), "SLACK_SIGNING_SECRET": "slack-signing-0001", "SLACK_BOT_TOKEN": "xoxb-1234-abcd",
           "AIMODEL_REPO": "acme/models", "GITHUB_APP_ID": "1", "GITHUB_APP_PRIVATE_KEY": pem,
           "GITHUB_WEBHOOK_SECRET": "hook-secret-0002", "REDIS_URL": "redis://:redis-pass-0003@cache:6379/0",
           "AWS_SECRET_ACCESS_KEY": "aws-secret-0004"}
    found = secrets_of(load_settings(env))
    for value in ("slack-signing-0001", "xoxb-1234-abcd", "hook-secret-0002", "redis-pass-0003", "aws-secret-0004",
                  "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7"):
        assert value in found
    assert "1" not in found  # too short to be a secret: masking it would garble every message
    text = 'token=xoxb-1234-abcd key="-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\\n"'
    cleaned = redact(text, found)
    assert "xoxb-1234-abcd" not in cleaned and "MIIEvQ" not in cleaned and MASK in cleaned


def test_installed_redactor_masks_log_records_and_tracebacks(tmp_path: Path) -> None:
    env = {"AIMODEL_HOME": str(tmp_path), "GITHUB_TOKEN": "ghp_redactme0123456789", "AIMODEL_REPO": "acme/models"}
    install(load_settings(env))
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("aimodel.test-redact")
    logger.addHandler(handler)
    try:
        logger.warning("calling with %s", "ghp_redactme0123456789")
        try:
            raise RuntimeError("bad credentials ghp_redactme0123456789")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert "ghp_redactme0123456789" not in out
    assert "calling with [redacted]" in out and "RuntimeError: bad credentials [redacted]" in out


def test_the_connection_goes_to_the_checked_address_not_a_second_lookup() -> None:
    """`rebind.invalid` never resolves through the system; the checked answer (a real local
    server, allowed by name) is where the request goes, so a DNS answer that changes after the
    check (rebinding) cannot redirect the connection."""
    import http.server
    import threading

    from bot.netguard import open_http

    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f"host={self.headers.get('Host')}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        with open_http(f"http://rebind.invalid:{port}/m", ("http",), ("rebind.invalid",), lambda h, p: ["127.0.0.1"]) as body:
            assert body.read() == f"host=rebind.invalid:{port}".encode()  # the name kept for Host
        with pytest.raises(SourceRefused, match="loopback"):
            open_http(f"http://rebind.invalid:{port}/m", ("http",), (), lambda h, p: ["127.0.0.1"])
    finally:
        server.shutdown()
        server.server_close()


def test_credential_files_of_the_process_are_forbidden(tmp_path: Path) -> None:
    from bot.sources import Guard

    creds, app_key = tmp_path / "gcp.json", tmp_path / "app.pem"
    env = {"AIMODEL_HOME": str(tmp_path / "home"), "AIMODEL_REPO": "acme/models", "GITHUB_APP_ID": "1",
           "GITHUB_APP_PRIVATE_KEY": str(app_key), "GOOGLE_APPLICATION_CREDENTIALS": str(creds)}
    guard = Guard.from_settings(load_settings(env))
    everything = Sources(artifacts=("file:///",), datasets=("file:///",))
    access = guard.for_person(everything, "slack")
    for path in (creds, app_key, tmp_path / "home" / "keys" / "signing.pem", Path("/run/secrets/db")):
        with pytest.raises(SourceRefused, match="does not exist or is not in an allowed source"):
            access.admit(str(path), "artifact")
    assert access.admit(str(tmp_path / "model.onnx"), "artifact").path == str((tmp_path / "model.onnx").resolve())
