"""No request from a person's URI reaches an internal address.

Before any connection, the host is resolved and every address it resolves to must be
public (not loopback, private, link-local - the cloud metadata service lives there -,
shared, reserved or multicast), unless the repository config names that exact host under
`sources.private_hosts`. HTTP(S) is fetched here with `requests`, redirects off, and each
redirect's target is checked the same way before it is followed. The connection goes to the
address that was checked (a DNS answer that changes in between - rebinding - is not asked
again); the Host header and TLS still use the name.

Other network protocols a config may list (ftp, webhdfs, ...) are checked by host before
fsspec opens them, without that pinning.
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


def check_host(host: str, port: int, private_hosts: Sequence[str], resolve: Resolve = system_resolve) -> list[str]:
    """The host's addresses; SourceRefused unless every one is public or the host is allowed by name."""
    host = host.lower().rstrip(".")
    if not host:
        raise SourceRefused(msg.host_unresolved("(none)"))
    addresses = list(resolve(host, port))
    if not addresses:
        raise SourceRefused(msg.host_unresolved(host))
    if host not in private_hosts and not all(is_public(a) for a in addresses):
        raise SourceRefused(msg.address_refused(host))
    return addresses


def check_url(url: str, private_hosts: Sequence[str], resolve: Resolve = system_resolve) -> list[str]:
    parts = urlsplit(url)
    default = {"https": 443, "http": 80, "ftp": 21}.get(parts.scheme.lower(), 0)
    try:
        port = parts.port or default
    except ValueError:
        raise SourceRefused(msg.host_unresolved(parts.netloc)) from None
    return check_host(parts.hostname or "", port, private_hosts, resolve)


def _pinned_session(address: str) -> Any:
    """A requests Session whose connections all go to `address` (the one that was checked)."""
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class Http(HTTPConnection):
        def _new_conn(self) -> socket.socket:
            # urllib3 resolves _dns_host when it connects; the name stays for Host and TLS.
            name, self._dns_host = self._dns_host, address
            try:
                return super()._new_conn()
            finally:
                self._dns_host = name

    class Https(HTTPSConnection):
        def _new_conn(self) -> socket.socket:
            name, self._dns_host = self._dns_host, address
            try:
                return super()._new_conn()
            finally:
                self._dns_host = name

    class HttpPool(HTTPConnectionPool):
        ConnectionCls = Http

    class HttpsPool(HTTPSConnectionPool):
        ConnectionCls = Https

    class Adapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": HttpPool, "https": HttpsPool}

    session = requests.Session()
    session.trust_env = False  # a proxy from the environment would hide the address we checked
    session.mount("http://", Adapter())
    session.mount("https://", Adapter())
    return session


class HttpBody:
    """The body of a checked HTTP response, read in blocks; closing it closes the connection."""

    def __init__(self, response: Any, session: Any) -> None:
        self._response = response
        self._session = session
        response.raw.decode_content = True

    def read(self, size: int = -1) -> bytes:
        try:
            data: bytes = self._response.raw.read(None if size < 0 else size)
        except Exception as exc:  # urllib3's errors are not OSErrors; their text may quote the server
            raise OSError(type(exc).__name__) from None
        return data

    def close(self) -> None:
        self._response.close()
        self._session.close()

    def __enter__(self) -> HttpBody:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def open_http(url: str, protocols: Sequence[str], private_hosts: Sequence[str], resolve: Resolve = system_resolve) -> HttpBody:
    """GET url, following at most MAX_REDIRECTS redirects, each one checked before it is asked."""
    import requests

    for _ in range(MAX_REDIRECTS + 1):
        scheme = urlsplit(url).scheme.lower()
        if scheme not in ("http", "https") or scheme not in protocols:
            raise SourceRefused(msg.source_protocol_refused(scheme, protocols))
        address = check_url(url, private_hosts, resolve)[0]
        session = _pinned_session(address)
        try:
            response = session.get(url, stream=True, allow_redirects=False, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT))
        except requests.RequestException as exc:
            session.close()
            raise OSError(type(exc).__name__) from None  # the exception text may quote the server
        if response.is_redirect:
            url = urljoin(url, response.headers.get("location", ""))
            response.close()
            session.close()
            continue
        if response.status_code >= 400:
            response.close()
            session.close()
            raise OSError(msg.http_status(response.status_code))
        return HttpBody(response, session)
    raise OSError(msg.too_many_redirects(MAX_REDIRECTS))
