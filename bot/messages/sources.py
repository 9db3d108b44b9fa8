"""What a person reads when a URI is refused, missing or unreadable.

A local path outside the allowed sources and a path that does not exist read the same:
the reply must not tell a person which files exist on the server.
"""

from __future__ import annotations

from collections.abc import Sequence

WHAT = {"artifact": "artifact", "dataset": "data set"}


def source_unavailable(kind: str, uri: str) -> str:
    return (
        f"{WHAT.get(kind, kind)} {uri} does not exist or is not in an allowed source "
        "(`sources` in .aimodel/config.yaml lists them)"
    )


def source_protocol_refused(scheme: str, allowed: Sequence[str]) -> str:
    return f"protocol {scheme}:// is not allowed here; allowed: {', '.join(allowed) or 'none'} (`sources.protocols`)"


def address_refused(host: str) -> str:
    return (
        f"host {host} resolves to a loopback, private, link-local or metadata address; "
        "list it under `sources.private_hosts` if it is meant to be reached"
    )


def host_unresolved(host: str) -> str:
    return f"host {host} cannot be resolved"


def too_many_redirects(limit: int) -> str:
    return f"more than {limit} redirects"


def http_status(status: int) -> str:
    return f"the server answered HTTP {status}"


def unreadable(kind: str, uri: str, why: str) -> str:
    return f"cannot read {WHAT.get(kind, kind)} {uri}: {why}"


def is_folder(uri: str) -> str:
    return f"artifact {uri} is a folder; give the model file"


def changed(uri: str, pinned: str) -> str:
    # The actual digest is not quoted: it would describe whatever the path now holds.
    return f"artifact {uri} changed: its sha256 is no longer the {pinned[:12]}… the manifest pins"


def digest_mismatch(uri: str, pinned: str) -> str:
    return f"artifact {uri} does not have the sha256 {pinned[:12]}… the manifest pins"




def uri_dotdot() -> str:
    return "`..` is not allowed in a URI; give the path without it"


def uri_empty() -> str:
    return "the URI is empty or holds control characters"


def uri_chained() -> str:
    return "chained protocols (a::b) are not allowed; give one URI"


def uri_malformed(text: str) -> str:
    return f"{text!r} is not a path or a URI of the form protocol://..."


def uri_file_host() -> str:
    return "file:// URIs name this machine only (file:///path)"


def uri_file_query() -> str:
    return "a file:// URI has no ?query or #fragment"


def uri_userinfo() -> str:
    return "a URI with user@ in it is not allowed; configure credentials instead"


def uri_bad_port(text: str) -> str:
    return f"{text!r} has an invalid host or port"


def uri_relative_file() -> str:
    return "a file:// URI needs an absolute path"
