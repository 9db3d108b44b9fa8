"""Sources are policy: may this reader take bytes from this URI?

A URI a person gives (a model file, a data set) is first made canonical (`canonical`:
plain paths become absolute, symlinks are resolved, `..` and chained protocols are refused,
`file://localhost` is normalised), then judged by `decide`, a pure function of the
canonical URI, the repository's `sources` block and who reads. The bot's own home, its
signing key, /proc, /sys and /dev are never readable through a person's URI, whatever the
config says.

Refusals of local paths read exactly like "does not exist" (`unavailable`), so a refusal
reveals nothing about which paths exist on the server.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from bot.config import Settings
from bot.manifests import NEVER_PROTOCOLS, Sources
from bot.messages import sources as messages

ALWAYS_FORBIDDEN = ("/proc", "/sys", "/dev", "/run/secrets", "/var/run/secrets")  # + container secret mounts
# Environment variables that name credential files the process may hold.
# Protocols whose URI names a bucket, not a network host: their endpoint is the operator's choice.
BUCKET_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl"})
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


class SourceRefused(ValueError):
    """The URI may not be read by this reader; the message is safe to show the person."""


@dataclass(frozen=True)
class Canonical:
    uri: str  # file:///abs/path for local files; scheme://host/path otherwise
    scheme: str
    host: str = ""  # lower-case; "" for local files
    path: str = ""  # the absolute local path, or the URI's path

    @property
    def local(self) -> bool:
        return self.scheme == "file"


@dataclass(frozen=True)
class Reader:
    """Who reads, and what they may read beside the configured sources.

    own_folders: canonical local folders the reader may also use (the CLI on the embedded
    default: the person's working folder and home). vetted: `vetted_key(kind, uri)` of canonical
    URIs already admitted for that kind (an artifact's URI does not vouch for a data set).
    forbidden: canonical paths never readable.
    """

    forbidden: tuple[str, ...] = ()
    own_folders: tuple[str, ...] = ()
    vetted: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""


def vetted_key(kind: str, uri: str) -> str:
    return f"{kind} {uri}"


def _under(path: str, folder: str) -> bool:
    folder = folder.rstrip("/") or "/"
    return path == folder or path.startswith(folder if folder == "/" else folder + "/")


def _prefix_matches(uri: str, prefix: str) -> bool:
    """A prefix names a folder: s3://team-models/ matches s3://team-models/x, never s3://team-models-2/x."""
    return uri == prefix.rstrip("/") or uri.startswith(prefix.rstrip("/") + "/")


def decide(c: Canonical, kind: str, sources: Sources, reader: Reader) -> Decision:
    """kind: "artifact" or "dataset". Pure: no file system, no network."""
    if c.scheme in NEVER_PROTOCOLS or c.scheme not in sources.protocols:
        return Decision(False, messages.source_protocol_refused(c.scheme, sources.protocols))
    if c.local:
        if any(_under(c.path, f) for f in (*ALWAYS_FORBIDDEN, *reader.forbidden)):
            return Decision(False, "forbidden")
        if any(_under(c.path, f) for f in reader.own_folders):
            return Decision(True)
    if vetted_key(kind, c.uri) in reader.vetted:
        return Decision(True)
    prefixes = sources.artifacts if kind == "artifact" else sources.datasets
    if any(_prefix_matches(c.uri, p) for p in prefixes):
        return Decision(True)
    return Decision(False, "outside the sources")


# --------------------------------------------------------------------------- canonical form (reads the file system)


def _no_dotdot(path: str) -> None:
    if ".." in path.split("/"):
        raise SourceRefused(messages.uri_dotdot())


def canonical(uri: str, cwd: Path | None = None) -> Canonical:
    """The one spelling of a URI that the checks compare. Raises SourceRefused."""
    text = uri.strip()
    if not text or any(ord(ch) < 32 for ch in text):
        raise SourceRefused(messages.uri_empty())
    if "::" in text:
        raise SourceRefused(messages.uri_chained())
    match = _SCHEME.match(text)
    if match is None:
        if ":" in text.split("/", 1)[0]:
            raise SourceRefused(messages.uri_malformed(text))
        _no_dotdot(text)
        path = Path(os.path.expanduser(text))
        return _local(str((cwd or Path.cwd()) / path))
    scheme = match.group(1).lower()
    parts = urlsplit(text)
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise SourceRefused(messages.uri_file_host())
        path_text = unquote(parts.path)
        _no_dotdot(path_text)
        if parts.query or parts.fragment:
            raise SourceRefused(messages.uri_file_query())
        return _local(path_text)
    if "@" in parts.netloc:
        raise SourceRefused(messages.uri_userinfo())
    _no_dotdot(unquote(parts.path))
    try:
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        raise SourceRefused(messages.uri_bad_port(text)) from None
    netloc = host + (f":{port}" if port is not None else "")
    rebuilt = f"{scheme}://{netloc}{parts.path}" + (f"?{parts.query}" if parts.query else "")
    return Canonical(rebuilt, scheme, host, parts.path)


def _local(path: str) -> Canonical:
    if not os.path.isabs(path):
        raise SourceRefused(messages.uri_relative_file())
    real = os.path.realpath(path)  # symlinks resolved: a link cannot lead out of a source
    return Canonical(Path(real).as_uri(), "file", "", real)


def canonical_folder(prefix: str) -> str:
    """A configured local folder, in the form canonical() gives (symlinks resolved)."""
    if prefix.startswith("/"):
        return Path(os.path.realpath(prefix)).as_uri()
    if prefix.startswith(("file://", "FILE://")):
        return Path(os.path.realpath(unquote(urlsplit(prefix).path) or "/")).as_uri()
    scheme, sep, rest = prefix.partition("://")
    host, slash, path = rest.partition("/")
    return f"{scheme.lower()}{sep}{host.lower()}{slash}{path}"  # as canonical() spells a URI


def resolved_sources(sources: Sources) -> Sources:
    def fix(prefixes: Iterable[str]) -> tuple[str, ...]:
        return tuple(canonical_folder(p) for p in prefixes)

    return Sources(fix(sources.artifacts), fix(sources.datasets), sources.protocols, sources.private_hosts)


# --------------------------------------------------------------------------- who reads


@dataclass(frozen=True)
class Access:
    """The sources config and the reader, together: what `fetch` asks before any byte moves."""

    sources: Sources
    reader: Reader = field(default_factory=Reader)
    cwd: Path | None = None

    def admit(self, uri: str, kind: str) -> Canonical:
        """The canonical URI, or SourceRefused with a message that is safe to show."""
        c = canonical(uri, self.cwd)
        decision = decide(c, kind, resolved_sources(self.sources), self.reader)
        if decision.allowed:
            return c
        if decision.reason in ("forbidden", "outside the sources"):
            raise SourceRefused(messages.source_unavailable(kind, uri))
        raise SourceRefused(decision.reason)


@dataclass(frozen=True)
class Guard:
    """The bot's own facts, from Settings: what no person's URI may reach, and which forge runs."""

    forbidden: tuple[str, ...] = ()
    local_forge: bool = True

    @classmethod
    def of(cls, home: Path, signing_key: Path, *, local_forge: bool, secret_files: Iterable[str] = ()) -> Guard:
        paths = {os.path.realpath(home), os.path.realpath(signing_key), *(os.path.realpath(f) for f in secret_files if f)}
        return cls(tuple(sorted(paths)), local_forge)

    @classmethod
    def from_settings(cls, settings: Settings) -> Guard:
        """The bot's home, its signing key, the GitHub App key file and credential files named
        in the environment: none of them readable through a person's URI."""
        files = list(settings.credential_files)
        if settings.github and settings.github.app_private_key and "-----BEGIN" not in settings.github.app_private_key:
            files.append(settings.github.app_private_key)
        return cls.of(settings.home, settings.signing_key_path, local_forge=settings.forge_kind == "local", secret_files=files)

    def for_person(self, sources: Sources, via: str, cwd: Path | None = None) -> Access:
        """A person proposing: from the CLI on the embedded default their own working folder
        and home are theirs to use; from Slack, GitHub or the API only the configured sources."""
        own: tuple[str, ...] = ()
        if via == "cli" and self.local_forge:
            # "/" as a working folder or home would make every file "own": it grants nothing.
            own = tuple(r for r in (os.path.realpath(p) for p in (cwd or Path.cwd(), Path.home())) if r != "/")
        return Access(sources, Reader(self.forbidden, own), cwd)

    def for_pr(self, sources: Sources, listed: Iterable[str] = (), on_base: Iterable[str] = ()) -> Access:
        """The worker reading a pull request's manifests: the configured sources; on the embedded
        default also the URIs the bot itself admitted for a CLI person when it opened the pull
        request, and those already on the base branch (they passed their own pull request).
        on_base and `listed` (the pull request's vetted_sources) hold `vetted_key(kind, uri)` strings."""
        vetted: frozenset[str] = frozenset()
        if self.local_forge:
            vetted = frozenset(on_base) | frozenset(listed)
        return Access(sources, Reader(self.forbidden, (), vetted))

    def for_main(self, sources: Sources) -> Access:
        """Reading the default branch: every URI there passed the pull request's checks; on the
        embedded default those include a CLI person's own files, so local paths stay readable
        (never the forbidden ones)."""
        own = ("/",) if self.local_forge else ()
        return Access(sources, Reader(self.forbidden, own))
