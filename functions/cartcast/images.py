"""Product images for image posts, read from the catalog's URL when a post is sent.

The URL comes from a brand's catalog feed, so it is fetched with the care owed to
any address a customer typed:

- only http(s), and only to a public unicast address (addresses.py: never the
  metadata server, a private, shared, loopback or reserved range, nor an IPv6
  form wrapping one). A local run (`loopback_only`) is the opposite: it reads
  from `localhost` or a loopback address only, where the tests serve the image,
  and looks no other name up, so the demo catalog's images on DummyJSON's CDN
  never draw a local run onto the internet.
- the name is looked up once, and the connection goes to the address checked
  (`_pinned_get`): a DNS answer that changes between check and connection
  (rebinding) cannot move it. The Host header, TLS server name and certificate
  check keep the URL's host; no proxy from the environment is used. Each of at
  most REDIRECTS_MAX redirects is checked and pinned the same way, each URL as
  requests would send it (`_as_sent`), since urlsplit and urllib3 can read two
  hosts from one string.
- one timeout for connecting and for each read, and a deadline of three such
  timeouts for the whole body, so a server that drips bytes cannot hold the run;
- at most IMAGE_BYTES_MAX bytes of a JPEG, PNG, GIF or WEBP (what X takes as
  `tweet_image`), judged by the Content-Type the server sends.

    ImageUnavailable (PermanentError)   the image cannot be used as it is: a 4xx,
                                        a wrong type, too large, a refused address;
                                        a person must fix the catalog
    TransientError                      timeout, refused connection, 5xx, 429:
                                        the next publish run tries again
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, unquote, urljoin, urlsplit

from cartcast import addresses
from cartcast.errors import PermanentError, TransientError

# X's limit for images posted as tweet_image (docs.x.com, media best practices).
IMAGE_BYTES_MAX = 5 * 1024 * 1024
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
REDIRECTS_MAX = 3
DEFAULT_PORTS = {"http": 80, "https": 443}
CHUNK_BYTES = 64 * 1024


class ImageUnavailable(PermanentError):
    """The catalog's image cannot be posted; the message says why."""


@dataclass(frozen=True)
class ProductImage:
    data: bytes
    media_type: str


# Takes a host name and a port, returns the host's addresses as text.
Resolver = Callable[[str, int], Sequence[str]]


def resolve_host(host: str, port: int) -> list[str]:
    """Return the addresses `host` resolves to, by getaddrinfo."""
    found = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    return [str(sockaddr[0]) for *_, sockaddr in found]


def fetch_image(
    url: str,
    *,
    timeout_s: float,
    loopback_only: bool,
    resolve: Resolver = resolve_host,
    ca_file: str | None = None,
) -> ProductImage:
    """Read the image at `url` within the limits of the module docstring.

    `resolve` looks host names up and `ca_file` names the certificate authorities
    trusted (certifi's by default, as requests'); tests pass their own.
    """
    deadline = time.monotonic() + timeout_s * 3
    for _ in range(REDIRECTS_MAX + 1):
        url = _as_sent(url)
        checked = _checked_addresses(url, loopback_only=loopback_only, resolve=resolve)
        with _pinned_get(
            url, checked, timeout_s=timeout_s, ca_file=ca_file
        ) as response:
            location = response.get_redirect_location()
            if location:
                url = urljoin(url, location)
                continue
            return _read_image(response, deadline)
    raise ImageUnavailable(
        f"the product image redirects more than {REDIRECTS_MAX} times"
    )


@contextlib.contextmanager
def _pinned_get(
    url: str, checked: Sequence[str], *, timeout_s: float, ca_file: str | None
) -> Iterator[Any]:
    """Open a GET of `url` on one of the `checked` addresses, tried in turn.

    A pool made for the address itself never looks the name up again, and no
    proxy from the environment (HTTP_PROXY and its kin) is consulted. The Host
    header, the TLS server name and the certificate check all keep the URL's
    host (urllib3 checks the certificate against `server_hostname`).
    """
    import urllib3

    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = {
        "Host": parts.netloc.rpartition("@")[2],
        "Accept": ", ".join(sorted(IMAGE_TYPES)),
    }
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        headers.update(urllib3.make_headers(basic_auth=credentials))

    last_error: Exception | None = None
    for address in checked:
        with contextlib.closing(
            _pool_for(parts, address, timeout_s=timeout_s, ca_file=ca_file)
        ) as pool:
            try:
                response = pool.urlopen(
                    "GET",
                    path,
                    headers=headers,
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
                raise TransientError(
                    f"the product image could not be read: {error}"
                ) from error
            try:
                yield response
            finally:
                response.release_conn()
            return
    raise TransientError(
        f"the product image could not be read: {last_error}"
    ) from last_error


def _pool_for(
    parts: SplitResult, address: str, *, timeout_s: float, ca_file: str | None
) -> Any:
    import urllib3

    port = parts.port or DEFAULT_PORTS[parts.scheme]
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


def _read_image(response: Any, deadline: float) -> ProductImage:
    import urllib3

    status = response.status
    if status >= 500 or status == 429:
        raise TransientError(f"the product image's server answered {status}")
    if status != 200:
        raise ImageUnavailable(f"the product image's URL answered {status}")

    media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in IMAGE_TYPES:
        raise ImageUnavailable(
            f"the product image is {media_type or 'of no stated type'}; X takes "
            f"{', '.join(sorted(IMAGE_TYPES))}"
        )
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > IMAGE_BYTES_MAX:
        raise ImageUnavailable(_too_large(int(declared)))

    data = bytearray()
    try:
        for chunk in response.stream(CHUNK_BYTES):
            data += chunk
            if len(data) > IMAGE_BYTES_MAX:
                raise ImageUnavailable(_too_large(len(data)))
            if time.monotonic() > deadline:
                raise TransientError("the product image arrived too slowly")
    except urllib3.exceptions.HTTPError as error:
        raise TransientError(f"the product image broke off: {error}") from error
    if not data:
        raise ImageUnavailable("the product image is empty")
    return ProductImage(bytes(data), media_type)


def _too_large(size: int) -> str:
    return f"the product image has {size} bytes or more; X takes {IMAGE_BYTES_MAX}"


def _as_sent(url: str) -> str:
    """Return `url` as requests would send it, so the host checked is the one
    any client reads from the catalog's string.

    The two parsers part ways on a backslash: "http://169.254.169.254\\@shop.example/"
    is shop.example to urlsplit (the host follows the last "@") and the metadata
    server to urllib3 (the authority ends at the backslash). Prepared, the
    backslash is escaped into the path and both read the metadata server.
    """
    import requests

    try:
        return requests.Request("GET", url).prepare().url or ""
    except (requests.RequestException, ValueError) as error:
        raise ImageUnavailable(
            f"the product image URL is malformed: {url[:100]!r}"
        ) from error


def _checked_addresses(
    url: str, *, loopback_only: bool, resolve: Resolver
) -> list[str]:
    """Return the addresses of `url`'s host, or raise ImageUnavailable when it is
    not http(s) or any address is one cartcast may not reach (addresses.py)."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ImageUnavailable(f"the product image URL is not http(s): {url[:100]!r}")
    if loopback_only and not _names_loopback(parts.hostname):
        raise ImageUnavailable(
            f"the product image's host {parts.hostname} is not on loopback, and a "
            "local run (CARTCAST_ENV=local) reads images from loopback only"
        )
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
        found = list(resolve(parts.hostname, port))
    except ValueError as error:
        raise ImageUnavailable(
            f"the product image URL is malformed: {error}"
        ) from error
    except OSError as error:
        raise TransientError(
            f"the product image's host did not resolve: {error}"
        ) from error
    if not found:
        raise TransientError("the product image's host did not resolve")

    for text in found:
        address = ipaddress.ip_address(text)
        if address.version == 6 and address.ipv4_mapped:
            address = address.ipv4_mapped
        if addresses.is_refused(address, allow_loopback=loopback_only) or (
            loopback_only and not address.is_loopback
        ):
            raise ImageUnavailable(
                f"the product image's host {parts.hostname} is at {address}, an "
                "address cartcast does not fetch from"
            )
    return found


def _names_loopback(hostname: str) -> bool:
    """Say whether `hostname` is `localhost` or a loopback address as written."""
    if hostname.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False
