"""No request from a person's URI reaches an internal address.

Before any connection, the host is resolved and every address it resolves to must be
public (not loopback, private, link-local - the cloud metadata service lives there -,
shared, reserved or multicast), unless the repository config names that exact host under
`sources.private_hosts`. HTTP(S) is fetched here with `requests`, redirects off, and each
redirect's target is checked the same way before it is followed.

Left open: a host whose DNS answer changes between the check and the connection (DNS
rebinding) is not pinned to the checked address.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any
from urllib.parse import urljoin, urlsplit

from bot.messages import sources as msg
from bot.sources import SourceRefused

MAX_REDIRECTS = 5
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0

Resolve = Callable[[str, int], Sequence[str]]


def is_public(address: str) -> bool:
    """Pure: may a person's URI make the bot connect to this address?"""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            return is_public(str(mapped))
    return bool(ip.is_global) and not ip.is_multicast


def system_resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise SourceRefused(msg.host_unresolved(host)) from None
    return sorted({str(info[4][0]) for info in infos})


def check_host(host: str, port: int, private_hosts: Sequence[str], resolve: Resolve = system_resolve) -> None:
    """Raise SourceRefused unless every address of host is public or the host is allowed by name."""
    host = host.lower().rstrip(".")
    if not host:
        raise SourceRefused(msg.host_unresolved("(none)"))
    if host in private_hosts:
        return
    addresses = resolve(host, port)
    if not addresses or not all(is_public(a) for a in addresses):
        raise SourceRefused(msg.address_refused(host))


def check_url(url: str, private_hosts: Sequence[str], resolve: Resolve = system_resolve) -> None:
    parts = urlsplit(url)
    default = {"https": 443, "http": 80, "ftp": 21}.get(parts.scheme.lower(), 0)
    try:
        port = parts.port or default
    except ValueError:
        raise SourceRefused(msg.host_unresolved(parts.netloc)) from None
    check_host(parts.hostname or "", port, private_hosts, resolve)


class HttpBody:
    """The body of a checked HTTP response, read in blocks; closing it closes the connection."""

    def __init__(self, response: Any, session: Any) -> None:
        self._response = response
        self._session = session
        response.raw.decode_content = True

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._response.raw.read(None if size < 0 else size)
        return data

    def close(self) -> None:
        self._response.close()
        self._session.close()

    def __enter__(self) -> HttpBody:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def open_http(url: str, protocols: Sequence[str], private_hosts: Sequence[str]) -> HttpBody:
    """GET url, following at most MAX_REDIRECTS redirects, each one checked before it is asked."""
    import requests

    session = requests.Session()
    session.trust_env = False  # a proxy from the environment would hide the address we checked
    try:
        for _ in range(MAX_REDIRECTS + 1):
            scheme = urlsplit(url).scheme.lower()
            if scheme not in ("http", "https") or scheme not in protocols:
                raise SourceRefused(msg.source_protocol_refused(scheme, protocols))
            check_url(url, private_hosts)
            response = session.get(url, stream=True, allow_redirects=False, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT))
            if response.is_redirect:
                location = response.headers.get("location", "")
                response.close()
                url = urljoin(url, location)
                continue
            if response.status_code >= 400:
                response.close()
                raise OSError(msg.http_status(response.status_code))
            return HttpBody(response, session)
        raise OSError(msg.too_many_redirects(MAX_REDIRECTS))
    except requests.RequestException as exc:
        session.close()
        raise OSError(type(exc).__name__) from None  # the exception text may quote the server
    except BaseException:
        session.close()
        raise
