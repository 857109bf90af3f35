"""HTTP to a host a brand named, sent to the address that was checked.

Product images (images.py) and webhook deliveries (alerts.py, escalations.py) go
to hosts a brand controls, DNS included. Each request looks the host up once
(`checked_addresses`), refuses it when any address found is one cartcast does not
reach (addresses.py; loopback only in a local run), and connects to a checked
address itself (`pinned_request`): a DNS answer that changes between check and
connection (rebinding) cannot move it. The Host header, TLS server name and
certificate check keep the URL's host; no proxy from the environment is used (a
caller may pass one, tunnelled to the checked address), nothing is retried and no
redirect is followed here. One deadline bounds the whole request, every address
tried and every byte of the answer read: a server that drips its answer a byte at
a time, each read short, cannot hold a run past it.

    AddressRefused (PermanentError)   the host is at an address cartcast does not
                                      reach; the brand must change it
    HostMalformed (PermanentError)    the host cannot be looked up as written
    TransientError                    no answer to the lookup, no address took the
                                      connection, or it broke or timed out
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import io
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

from cartcast import addresses
from cartcast.errors import ConfigurationError, PermanentError, TransientError
from cartcast.logs import get_logger

log = get_logger(__name__)

DEFAULT_PORTS = {"http": 80, "https": 443}
# The least time an operation is given once its deadline is all but spent: a socket
# timeout of 0 would make it non-blocking instead of failing it.
LEAST_TIMEOUT_S = 0.001

# Takes a host name and a port, returns the host's addresses as text.
Resolver = Callable[[str, int], Sequence[str]]


class AddressRefused(PermanentError):
    """The host resolved to `address`, which cartcast does not connect to.

    The message names the host and not the address: it reaches the brand (a
    400, an outbox row's last_error, a held post's reason), and what the
    deployment's own DNS answers for a name a brand chose is the operator's to
    know, not a way for a brand to map the network. `address` stays on the
    exception for code and logs that are the operator's.
    """

    def __init__(self, host: str, address: addresses.Address) -> None:
        super().__init__(
            f"{host} resolves to an internal address (private, loopback, "
            "link-local or reserved), which cartcast does not reach"
        )
        self.host = host
        self.address = address


class HostMalformed(PermanentError):
    """The host cannot be looked up as written (a NUL, an over-long label)."""


def resolve_host(host: str, port: int) -> list[str]:
    """Return the addresses `host` resolves to, by getaddrinfo."""
    found = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    return [str(sockaddr[0]) for *_, sockaddr in found]


def resolver_within(resolve: Resolver, timeout_s: float) -> Resolver:
    """Return `resolve` bounded to `timeout_s` a lookup: past it, socket.gaierror
    EAI_AGAIN, what getaddrinfo raises once every attempt of the system resolver
    timed out (decision 0106).

    getaddrinfo cannot be interrupted, so each lookup runs on a daemon thread of
    its own, left to end when the system resolver gives up (resolv.conf's
    timeout and attempts); only its caller stops waiting.
    """

    def bounded(host: str, port: int) -> Sequence[str]:
        outcome: list[Any] = []
        done = threading.Event()

        def look_up() -> None:
            try:
                outcome.append(list(resolve(host, port)))
            except (OSError, ValueError) as error:
                outcome.append(error)
            except BaseException as error:
                # A resolver's own failure: its caller raises it at once, as an
                # unbounded lookup would have, not past the bound as a timeout.
                log.exception("the host lookup failed")
                outcome.append(error)
            finally:
                done.set()

        threading.Thread(target=look_up, daemon=True, name="host-lookup").start()
        if not done.wait(timeout_s):
            raise socket.gaierror(
                socket.EAI_AGAIN, f"no answer from the resolver in {timeout_s:g} s"
            )
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        return outcome[0]

    return bounded


def port_of(parts: SplitResult) -> int:
    """Return the URL's port, or its scheme's default (as_sent refused port 0)."""
    return parts.port or DEFAULT_PORTS[parts.scheme]


def as_sent(url: str) -> str:
    """Return `url` as requests would send it, so the host checked is the one
    any client reads from the brand's string; HostMalformed when it cannot be.

    The two parsers part ways on a backslash: "http://169.254.169.254\\@shop.example/"
    is shop.example to urlsplit (the host follows the last "@") and the metadata
    server to urllib3 (the authority ends at the backslash). Prepared, the
    backslash is escaped into the path and both read the metadata server.

    Port 0 is refused: nothing listens there (PATCH /v1/brand refuses it in a
    webhook URL), and urllib3 drops it as if no port were named, so the request
    would go to the scheme's port, 80 or 443, which the URL never named.
    """
    import requests

    try:
        named_port = urlsplit(url).port
    except ValueError:
        named_port = None  # Out of range or not a number: requests says which.
    if named_port == 0:
        raise HostMalformed(f"port 0 is no port anything listens on: {url[:100]!r}")
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
    deadline: float | None = None,
    tls: ssl.SSLContext | None = None,
    proxy_url: str | None = None,
    what: str,
) -> Iterator[Any]:
    """Open `method url` on one of the `checked` addresses, tried in turn, and
    yield urllib3's response, its body unread.

    A pool made for the address itself never looks the name up again, and no
    proxy from the environment (HTTP_PROXY and its kin) is consulted. The Host
    header, the TLS server name and the certificate check all keep the URL's
    host (urllib3 checks the certificate against `server_hostname`). `tls` is
    the context an https request is checked with (`tls_context`), the one of
    certifi's authorities (as requests') when None. `what` names the thing
    requested in the TransientError raised when no answer comes.

    `proxy_url` (http://[user:password@]host:port) tunnels an https request
    through that proxy: a CONNECT to the checked address, never the name, so the
    proxy resolves nothing and the pin holds; the TLS inside keeps the URL's
    host. An http request never goes through it (decision 0099).

    Args:
        timeout_s: bounds each connection and each read.
        deadline: the time.monotonic() instant by which the whole request, the
            body read from the response included, has ended; `timeout_s` from
            now when None. Each connection, send and read gets the time left at
            most; once it has passed, the request fails as a read timeout does,
            a TransientError caused by urllib3's ReadTimeoutError, which its
            callers count as temporary and retry after their back-off.
    """
    import urllib3

    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    sent_headers = {"Host": parts.netloc.rpartition("@")[2], **headers}
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        sent_headers.update(urllib3.make_headers(basic_auth=credentials))

    if deadline is None:
        deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    for address in checked:
        if last_error is not None and time.monotonic() >= deadline:
            # The next address would start past the deadline: fail as the last did.
            break
        pool = _pool_for(
            parts,
            address,
            timeout_s=timeout_s,
            deadline=deadline,
            tls=tls,
            proxy_url=proxy_url,
        )
        with contextlib.closing(pool):
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
                if time.monotonic() >= deadline:
                    raise TransientError(
                        f"{what} was not read by its deadline: {error}"
                    ) from error
                raise TransientError(f"{what} could not be read: {error}") from error
            try:
                yield response
            finally:
                response.release_conn()
            return
    raise TransientError(f"{what} could not be read: {last_error}") from last_error


def _pool_for(
    parts: SplitResult,
    address: str,
    *,
    timeout_s: float,
    deadline: float,
    tls: ssl.SSLContext | None,
    proxy_url: str | None = None,
) -> Any:
    import urllib3

    port = port_of(parts)
    timeout = urllib3.Timeout(connect=timeout_s, read=timeout_s)
    http_pool, https_pool = _deadline_pools()
    if parts.scheme == "http":
        return http_pool(address, port, timeout=timeout, maxsize=1, deadline=deadline)

    return https_pool(
        address,
        port,
        timeout=timeout,
        maxsize=1,
        cert_reqs="CERT_REQUIRED",
        # Given no ca_certs, urllib3 loads nothing into the context it is passed.
        ssl_context=tls or tls_context(None),
        server_hostname=parts.hostname,
        deadline=deadline,
        **_tunnel_through(proxy_url),
    )


def _tunnel_through(proxy_url: str | None) -> dict[str, Any]:
    """Return the pool's arguments that tunnel it through `proxy_url`, if any.

    The pool's host is the checked address, so urllib3's CONNECT names it.
    """
    if not proxy_url:
        return {}
    import urllib3

    proxy = urllib3.util.parse_url(proxy_url)
    headers = {}
    if proxy.auth:
        headers = urllib3.make_headers(proxy_basic_auth=unquote(proxy.auth))
    return {"_proxy": proxy, "_proxy_headers": headers}


@functools.lru_cache(maxsize=8)
def tls_context(
    ca_file: str | None, extra_ca_file: str | None = None
) -> ssl.SSLContext:
    """Return the TLS context that checks a host's certificate, built once a
    process for each pair of files and reused by every request after.

    `ca_file` names the certificate authorities trusted, certifi's (as
    requests') when None; `extra_ca_file` names more to trust besides those (a
    deployment's private CA, CARTCAST_WEBHOOK_CA_FILE). OpenSSL loads each file
    as the cold start's check did (settings.py), skipping the text around the
    PEM blocks. The context is urllib3's own, as it would make for each
    connection; urllib3 sets the same verify mode on it at each connection.

    Raises:
        ConfigurationError: `extra_ca_file` is gone, unreadable or holds no
            certificate since the cold start checked it: the deployment's to
            fix, and no delivery can be checked without it. Nothing is cached,
            so the next request reads the file again.
    """
    import certifi
    from urllib3.util.ssl_ import create_urllib3_context

    context = create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
    context.load_verify_locations(cafile=ca_file or certifi.where())
    if extra_ca_file:
        try:
            context.load_verify_locations(cafile=extra_ca_file)
        except ssl.SSLError as error:
            raise ConfigurationError(
                f"the certificate authorities file {extra_ca_file} holds no PEM "
                f"certificate TLS can load: {error}"
            ) from error
        except OSError as error:
            raise ConfigurationError(
                f"the certificate authorities file {extra_ca_file} cannot be "
                f"read: {error}"
            ) from error
    return context


def _time_left_s(timeout_s: Any, deadline: float) -> float:
    """Return `timeout_s` or the time left before `deadline`, whichever is less."""
    left_s = max(deadline - time.monotonic(), LEAST_TIMEOUT_S)
    if isinstance(timeout_s, int | float):
        return min(timeout_s, left_s)
    return left_s


class _DeadlineReader(io.RawIOBase):
    """The socket's reader for an answer, each read given the time left at most.

    http.client reads the status line, the headers and the body through it, so a
    server that keeps every read short still cannot keep the answer coming.
    """

    def __init__(self, raw: Any, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._raw = raw
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        if time.monotonic() >= self._deadline:
            raise TimeoutError("the request's deadline passed")
        self._sock.settimeout(_time_left_s(self._sock.gettimeout(), self._deadline))
        return self._raw.readinto(buffer)

    def fileno(self) -> int:
        return self._raw.fileno()

    def close(self) -> None:
        # The raw reader holds the socket open (socket.makefile's count); let go.
        self._raw.close()
        super().close()


class _DeadlineResponse(http.client.HTTPResponse):
    """http.client's response, read through a _DeadlineReader."""

    def __init__(self, sock: socket.socket, *args: Any, deadline: float, **kw: Any):
        super().__init__(sock, *args, **kw)
        raw = self.fp.detach()
        self.fp = io.BufferedReader(_DeadlineReader(raw, sock, deadline))


class _DeadlineBound:
    """A urllib3 connection whose connect, sends and reads all end by `deadline`.

    urllib3 sets `timeout` before connecting, sending and reading the head, and
    puts it on the socket; read here, it is never more than the time left. That
    is urllib3 2.8.0's behaviour, not its promise: it is pinned directly in
    requirements.txt, and tests/test_webhook_deadlines.py fails, phase by phase,
    when an upgrade stops reading it.
    """

    def __init__(self, *args: Any, deadline: float, **kwargs: Any) -> None:
        self.deadline = deadline
        super().__init__(*args, **kwargs)
        self.response_class = functools.partial(_DeadlineResponse, deadline=deadline)

    @property
    def timeout(self) -> float:
        return _time_left_s(self._timeout_s, self.deadline)

    @timeout.setter
    def timeout(self, value: Any) -> None:
        self._timeout_s = value


@functools.cache
def _deadline_pools() -> tuple[type, type]:
    """Return urllib3's http and https pools, their connections _DeadlineBound;
    made on first use, as urllib3 is imported then (a cold start skips it)."""
    import urllib3
    from urllib3.connection import HTTPConnection, HTTPSConnection

    class DeadlineHTTPConnection(_DeadlineBound, HTTPConnection):
        pass

    class DeadlineHTTPSConnection(_DeadlineBound, HTTPSConnection):
        pass

    class DeadlineHTTPPool(urllib3.HTTPConnectionPool):
        ConnectionCls = DeadlineHTTPConnection

    class DeadlineHTTPSPool(urllib3.HTTPSConnectionPool):
        ConnectionCls = DeadlineHTTPSConnection

    return DeadlineHTTPPool, DeadlineHTTPSPool
