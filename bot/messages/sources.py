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


def source_problem(field: str, reason: str) -> str:
    return f"{field}: {reason}"
