"""HTTP to a host a brand named, sent to the address that was checked.

Product images (images.py) and webhook deliveries (alerts.py, escalations.py) go
to hosts a brand controls, DNS included. Each request looks the host up once
(`checked_addresses`), refuses it when any address found is one cartcast does not
reach (addresses.py; loopback only in a local run), and connects to a checked
address itself (`pinned_request`): a DNS answer that changes between check and
connection (rebinding) cannot move it. The Host header, TLS server name and
certificate check keep the URL's host; no proxy from the environment is used,
nothing is retried and no redirect is followed here.

    AddressRefused (PermanentError)   the host is at an address cartcast does not
                                      reach; the brand must change it
    HostMalformed (PermanentError)    the host cannot be looked up as written
    TransientError                    no answer to the lookup, no address took the
                                      connection, or it broke or timed out
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

from cartcast import addresses
from cartcast.errors import PermanentError, TransientError

DEFAULT_PORTS = {"http": 80, "https": 443}

# Takes a host name and a port, returns the host's addresses as text.
Resolver = Callable[[str, int], Sequence[str]]


class AddressRefused(PermanentError):
    """The host resolved to `address`, which cartcast does not connect to."""

    def __init__(self, host: str, address: addresses.Address) -> None:
        super().__init__(f"{host} is at {address}, an address cartcast does not reach")
        self.host = host
        self.address = address


class HostMalformed(PermanentError):
    """The host cannot be looked up as written (a NUL, an over-long label)."""


def resolve_host(host: str, port: int) -> list[str]:
    """Return the addresses `host` resolves to, by getaddrinfo."""
    found = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    return [str(sockaddr[0]) for *_, sockaddr in found]


def port_of(parts: SplitResult) -> int:
    """Return the URL's port, or its scheme's default."""
    return parts.port or DEFAULT_PORTS[parts.scheme]


def as_sent(url: str) -> str:
    """Return `url` as requests would send it, so the host checked is the one
    any client reads from the brand's string; HostMalformed when it cannot be.

    The two parsers part ways on a backslash: "http://169.254.169.254\\@shop.example/"
    is shop.example to urlsplit (the host follows the last "@") and the metadata
    server to urllib3 (the authority ends at the backslash). Prepared, the
    backslash is escaped into the path and both read the metadata server.
    """
    import requests

    try:
        return requests.Request("GET", url).prepare().url or ""
    except (requests.RequestException, ValueError) as error:
        raise HostMalformed(f"the URL is malformed: {url[:100]!r}") from error


def checked_addresses(
    host: str,
    port: int,
    *,
    allow_loopback: bool,
    resolve: Resolver | None = None,
) -> list[str]:
    """Look `host` up once and return its addresses, every one of them allowed.

    `resolve` is getaddrinfo (`resolve_host`) unless a test passes its own.
    Raises AddressRefused when any address is refused: a name with one internal
    address among public ones may be answered with that one alone next time.
    """
    try:
        found = list((resolve or resolve_host)(host, port))
    except ValueError as error:
        raise HostMalformed(f"{host[:100]!r} cannot be looked up: {error}") from error
    except OSError as error:
        raise TransientError(f"{host} did not resolve: {error}") from error
    if not found:
        raise TransientError(f"{host} did not resolve")

    for text in found:
        address = ipaddress.ip_address(text)
        if address.version == 6 and address.ipv4_mapped:
            address = address.ipv4_mapped
        if addresses.is_refused(address, allow_loopback=allow_loopback):
            raise AddressRefused(host, address)
    return found


@contextlib.contextmanager
def pinned_request(
    method: str,
    url: str,
    checked: Sequence[str],
    *,
    headers: Mapping[str, str],
    body: bytes | None = None,
    timeout_s: float,
    ca_file: str | None = None,
    what: str,
) -> Iterator[Any]:
    """Open `method url` on one of the `checked` addresses, tried in turn, and
    yield urllib3's response, its body unread.

    A pool made for the address itself never looks the name up again, and no
    proxy from the environment (HTTP_PROXY and its kin) is consulted. The Host
    header, the TLS server name and the certificate check all keep the URL's
    host (urllib3 checks the certificate against `server_hostname`). `timeout_s`
    bounds the connection and each read; `ca_file` names the certificate
    authorities trusted, certifi's (as requests') when None. `what` names the
    thing requested in the TransientError raised when no answer comes.
    """
    import urllib3

    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    sent_headers = {"Host": parts.netloc.rpartition("@")[2], **headers}
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        sent_headers.update(urllib3.make_headers(basic_auth=credentials))

    last_error: Exception | None = None
    for address in checked:
        with contextlib.closing(
            _pool_for(parts, address, timeout_s=timeout_s, ca_file=ca_file)
        ) as pool:
            try:
                response = pool.urlopen(
                    method,
                    path,
                    body=body,
                    headers=sent_headers,
                    retries=False,
                    redirect=False,
                    assert_same_host=False,
                    preload_content=False,
                )
            except urllib3.exceptions.ConnectTimeoutError as error:
                # Covers a refused connection too; the next address may answer.
                last_error = error
                continue
            except urllib3.exceptions.HTTPError as error:
                raise TransientError(f"{what} could not be read: {error}") from error
            try:
                yield response
            finally:
                response.release_conn()
            return
    raise TransientError(f"{what} could not be read: {last_error}") from last_error


def _pool_for(
    parts: SplitResult, address: str, *, timeout_s: float, ca_file: str | None
) -> Any:
    import urllib3

    port = port_of(parts)
    timeout = urllib3.Timeout(connect=timeout_s, read=timeout_s)
    if parts.scheme == "http":
        return urllib3.HTTPConnectionPool(address, port, timeout=timeout, maxsize=1)

    import certifi

    return urllib3.HTTPSConnectionPool(
        address,
        port,
        timeout=timeout,
        maxsize=1,
        cert_reqs="CERT_REQUIRED",
        ca_certs=ca_file or certifi.where(),
        server_hostname=parts.hostname,
    )
