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
  (pinned_http.py, as webhook deliveries do): a DNS answer that changes between
  check and connection (rebinding) cannot move it. Each of at most REDIRECTS_MAX
  redirects is checked and pinned the same way, each URL as requests would send
  it (`pinned_http.as_sent`), since urlsplit and urllib3 can read two hosts from
  one string.
- one timeout for connecting and for each read, and a deadline of three such
  timeouts for the whole fetch, redirects, head and body included (pinned_http
  gives each connection and read the time left), so a server that drips bytes
  cannot hold the run;
- at most IMAGE_BYTES_MAX bytes of a JPEG, PNG, GIF or WEBP (what X takes as
  `tweet_image`), judged by the Content-Type the server sends.

    ImageUnavailable (PermanentError)   the image cannot be used as it is: a 4xx,
                                        a wrong type, too large, a refused address;
                                        a person must fix the catalog
    TransientError                      timeout, refused connection, 5xx, 429:
                                        the next publish run tries again
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from cartcast import pinned_http
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


def fetch_image(
    url: str,
    *,
    timeout_s: float,
    loopback_only: bool,
    resolve: pinned_http.Resolver | None = None,
    ca_file: str | None = None,
) -> ProductImage:
    """Read the image at `url` within the limits of the module docstring.

    `resolve` looks host names up (getaddrinfo when None) and `ca_file` names the
    certificate authorities trusted (certifi's by default, as requests'); tests
    pass their own.
    """
    deadline = time.monotonic() + timeout_s * 3
    for _ in range(REDIRECTS_MAX + 1):
        url = _as_sent(url)
        checked = _checked_addresses(url, loopback_only=loopback_only, resolve=resolve)
        with pinned_http.pinned_request(
            "GET",
            url,
            checked,
            headers={"Accept": ", ".join(sorted(IMAGE_TYPES))},
            timeout_s=timeout_s,
            deadline=deadline,
            tls=pinned_http.tls_context(ca_file) if ca_file else None,
            what="the product image",
        ) as response:
            location = response.get_redirect_location()
            if location:
                url = urljoin(url, location)
                continue
            return _read_image(response)
    raise ImageUnavailable(
        f"the product image redirects more than {REDIRECTS_MAX} times"
    )


def _read_image(response: Any) -> ProductImage:
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
    except urllib3.exceptions.ReadTimeoutError as error:
        # The read's own timeout, or the fetch's deadline (pinned_request's).
        raise TransientError("the product image arrived too slowly") from error
    except urllib3.exceptions.HTTPError as error:
        raise TransientError(f"the product image broke off: {error}") from error
    if not data:
        raise ImageUnavailable("the product image is empty")
    return ProductImage(bytes(data), media_type)


def _too_large(size: int) -> str:
    return f"the product image has {size} bytes or more; X takes {IMAGE_BYTES_MAX}"


def _as_sent(url: str) -> str:
    try:
        return pinned_http.as_sent(url)
    except pinned_http.HostMalformed as error:
        # The message names what is wrong (a malformed URL, port 0) and the URL.
        raise ImageUnavailable(f"the product image cannot be read: {error}") from error


def _checked_addresses(
    url: str, *, loopback_only: bool, resolve: pinned_http.Resolver | None
) -> list[str]:
    """Return the addresses of `url`'s host, or raise ImageUnavailable when it is
    not http(s) or any address is one cartcast may not reach (addresses.py)."""
    parts = urlsplit(url)
    if parts.scheme not in pinned_http.DEFAULT_PORTS or not parts.hostname:
        raise ImageUnavailable(f"the product image URL is not http(s): {url[:100]!r}")
    if loopback_only and not _names_loopback(parts.hostname):
        raise ImageUnavailable(
            f"the product image's host {parts.hostname} is not on loopback, and a "
            "local run (CARTCAST_ENV=local) reads images from loopback only"
        )
    try:
        found = pinned_http.checked_addresses(
            parts.hostname,
            pinned_http.port_of(parts),
            allow_loopback=loopback_only,
            resolve=resolve,
        )
    except pinned_http.HostMalformed as error:
        raise ImageUnavailable(
            f"the product image URL is malformed: {error}"
        ) from error
    except pinned_http.AddressRefused as error:
        raise _refused(parts.hostname) from error
    except TransientError as error:
        raise TransientError(
            f"the product image's host did not resolve: {error}"
        ) from error

    for text in found:
        address = ipaddress.ip_address(text)
        if address.version == 6 and address.ipv4_mapped:
            address = address.ipv4_mapped
        if not address.is_loopback and loopback_only:
            raise _refused(parts.hostname)
    return found


def _refused(hostname: str) -> ImageUnavailable:
    # The host, not the address: the reason reaches the brand (AddressRefused).
    return ImageUnavailable(
        f"the product image's host {hostname} resolves to an internal address "
        "(private, loopback, link-local or reserved), which cartcast does not "
        "fetch from"
    )


def _names_loopback(hostname: str) -> bool:
    """Say whether `hostname` is `localhost` or a loopback address as written."""
    if hostname.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False
