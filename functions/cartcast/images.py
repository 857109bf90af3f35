"""Product images for image posts, read from the catalog's URL when a post is sent.

The URL comes from a brand's catalog feed, so it is fetched with the care owed to
any address a customer typed:

- only http(s), and never to a link-local, multicast, reserved or unspecified
  address (the cloud metadata server is link-local), nor a private or loopback one.
  A local run (`loopback_only`) is the opposite: it reads from `localhost` or a
  loopback address only, where the tests serve the image, and looks no other name
  up, so the demo catalog's images on DummyJSON's CDN never draw a local run onto
  the internet. Each of at most REDIRECTS_MAX redirects is checked the same way,
  each URL as requests will send it (`_as_sent`), since urlsplit and urllib3 can
  read two hosts from one string.
- one timeout for connecting and for each read, and a deadline of three such
  timeouts for the whole body, so a server that drips bytes cannot hold the run;
- at most IMAGE_BYTES_MAX bytes of a JPEG, PNG, GIF or WEBP (what X takes as
  `tweet_image`), judged by the Content-Type the server sends.

    ImageUnavailable (PermanentError)   the image cannot be used as it is: a 4xx,
                                        a wrong type, too large, a refused address;
                                        a person must fix the catalog
    TransientError                      timeout, refused connection, 5xx, 429:
                                        the next publish run tries again

Known gap: the address is checked before the request, and requests resolves the
name again when it connects; a name whose DNS answer changes in between could still
reach a refused address. Connecting to the checked address itself would remove it.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from cartcast.errors import PermanentError, TransientError

# X's limit for images posted as tweet_image (docs.x.com, media best practices).
IMAGE_BYTES_MAX = 5 * 1024 * 1024
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
REDIRECTS_MAX = 3
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
) -> ProductImage:
    """Read the image at `url` within the limits of the module docstring.

    `resolve` looks host names up; tests pass their own.
    """
    import requests

    deadline = time.monotonic() + timeout_s * 3
    with requests.Session() as session:
        # The address checked is the one connected to: a proxy (HTTP_PROXY and its
        # kin, which requests reads by default) would be sent the request instead,
        # on loopback or not, and resolve the name itself past the check.
        session.trust_env = False
        for _ in range(REDIRECTS_MAX + 1):
            url = _as_sent(url)
            _refuse_address(url, loopback_only=loopback_only, resolve=resolve)
            try:
                response = session.get(
                    url,
                    stream=True,
                    timeout=timeout_s,
                    allow_redirects=False,
                    headers={"Accept": ", ".join(sorted(IMAGE_TYPES))},
                )
            except requests.RequestException as error:
                raise TransientError(
                    f"the product image could not be read: {error}"
                ) from error

            with response:
                if response.is_redirect:
                    url = urljoin(url, response.headers.get("location", ""))
                    continue
                return _read_image(response, deadline)
    raise ImageUnavailable(
        f"the product image redirects more than {REDIRECTS_MAX} times"
    )


def _read_image(response: Any, deadline: float) -> ProductImage:
    import requests

    status = response.status_code
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
        for chunk in response.iter_content(CHUNK_BYTES):
            data += chunk
            if len(data) > IMAGE_BYTES_MAX:
                raise ImageUnavailable(_too_large(len(data)))
            if time.monotonic() > deadline:
                raise TransientError("the product image arrived too slowly")
    except requests.RequestException as error:
        raise TransientError(f"the product image broke off: {error}") from error
    if not data:
        raise ImageUnavailable("the product image is empty")
    return ProductImage(bytes(data), media_type)


def _too_large(size: int) -> str:
    return f"the product image has {size} bytes or more; X takes {IMAGE_BYTES_MAX}"


def _as_sent(url: str) -> str:
    """Return `url` as requests sends it, so the address checked is the one read.

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


def _refuse_address(url: str, *, loopback_only: bool, resolve: Resolver) -> None:
    """Raise ImageUnavailable unless `url` is http(s) to an address we may reach."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ImageUnavailable(f"the product image URL is not http(s): {url[:100]!r}")
    if loopback_only and not _names_loopback(parts.hostname):
        raise ImageUnavailable(
            f"the product image's host {parts.hostname} is not on loopback, and a "
            "local run (CARTCAST_ENV=local) reads images from loopback only"
        )
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        found = resolve(parts.hostname, port)
    except ValueError as error:
        raise ImageUnavailable(
            f"the product image URL is malformed: {error}"
        ) from error
    except OSError as error:
        raise TransientError(
            f"the product image's host did not resolve: {error}"
        ) from error

    for text in found:
        address = ipaddress.ip_address(text)
        if address.version == 6 and address.ipv4_mapped:
            address = address.ipv4_mapped
        refused = (
            address.is_link_local
            or address.is_multicast
            or address.is_reserved
            or address.is_unspecified
            or (not loopback_only and (address.is_private or address.is_loopback))
            or (loopback_only and not address.is_loopback)
        )
        if refused:
            raise ImageUnavailable(
                f"the product image's host {parts.hostname} is at {address}, an "
                "address cartcast does not fetch from"
            )


def _names_loopback(hostname: str) -> bool:
    """Say whether `hostname` is `localhost` or a loopback address as written."""
    if hostname.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False
