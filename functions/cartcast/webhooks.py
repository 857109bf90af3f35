"""One POST to a brand's webhook (alerts.py, escalations.py), on a checked address.

The URL's host is the brand's, and so is its DNS. PATCH /v1/brand looks it up
when the URL is set (`checked_webhook`, brands.py), but the answer may change
after that, so each POST looks the host up again (pinned_http.py), refuses
it when an address found is one addresses.py refuses (loopback is allowed in a
local run alone, CARTCAST_ENV=local), and connects to the address checked, so a
name that resolves, or comes to resolve, to the metadata server or a VPC address
is never posted to. No redirect is followed: a webhook answers itself, and a
redirect could lead anywhere. The answer's body is left unread: the status says
whether the webhook took the delivery, and a slow body after a 2xx must neither
fail it nor hold the run. An https webhook goes through an http:// HTTPS_PROXY
when one is set and NO_PROXY does not name its host, by a CONNECT to the checked
address (`tunnel_proxy`, decision 0099).

    WebhookRefused (PermanentError)  the host is at a refused address, or the URL
                                     cannot be sent: nothing was sent, and retrying
                                     cannot help until the brand changes its URL
    a returned problem (str)         no answer to the lookup, no connection, a
                                     timeout, a status other than 2xx: the caller
                                     tries again after its back-off
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import SplitResult, urlsplit

from cartcast.errors import PermanentError, TransientError


class WebhookRefused(PermanentError):
    """No POST may go to the webhook's URL as it is; the message says why."""


def post_webhook(
    runtime: Any,
    url: str,
    body: bytes,
    *,
    headers: Mapping[str, str],
    timeout_s: float,
) -> str | None:
    """POST `body` to `url`; return the problem of a failed POST, or None.

    Args:
        timeout_s: bounds the whole POST, from connecting to the answer's head
            (pinned_http's deadline); past it the POST fails as a timeout.

    Raises:
        WebhookRefused: before anything is sent (see the module docstring).
    """
    # Imported here: the functions that deliver webhooks import this module on
    # their cold start, and most of their runs deliver none.
    from cartcast import pinned_http

    try:
        sent, checked = checked_webhook(
            url,
            allow_loopback=runtime.settings.environment == "local",
            resolve=runtime.resolve,
        )
    except TransientError:
        return "webhook unreachable: its host did not resolve"

    parts = urlsplit(sent)
    if not tunnels_webhooks(runtime.settings):
        runtime.warn_of_direct_egress("webhook deliveries")
    try:
        with pinned_http.pinned_request(
            "POST",
            sent,
            checked,
            headers=headers,
            body=body,
            timeout_s=timeout_s,
            tls=pinned_http.tls_context(
                runtime.ca_file, runtime.settings.webhook_ca_file or None
            ),
            proxy_url=tunnel_proxy(runtime.settings, parts),
            what="the webhook",
        ) as answer:
            status = answer.status
    except TransientError as error:
        # The library's class alone: its message may quote the brand's URL.
        return f"webhook unreachable: {type(error.__cause__).__name__}"
    if not 200 <= status < 300:
        return f"webhook answered {status}"
    return None


def checked_webhook(
    url: str,
    *,
    allow_loopback: bool,
    resolve: Callable[[str, int], Sequence[str]] | None,
) -> tuple[str, list[str]]:
    """Return `url` as it is sent and its host's addresses, looked up once and
    every one of them allowed.

    A delivery connects to the addresses returned; PATCH /v1/brand asks the same
    question when a webhook URL is set (brands.py), so both refuse alike.
    `resolve` is pinned_http.Resolver (getaddrinfo when None).

    Raises:
        WebhookRefused: the URL cannot be sent, or its host is at an address
            cartcast does not reach.
        TransientError: the host did not resolve (no answer, no such name).
    """
    from cartcast import pinned_http

    try:
        sent = pinned_http.as_sent(url)
        parts = urlsplit(sent)
        if parts.scheme not in pinned_http.DEFAULT_PORTS or not parts.hostname:
            raise WebhookRefused("the webhook URL is not http(s) with a host")
        checked = pinned_http.checked_addresses(
            parts.hostname,
            pinned_http.port_of(parts),
            allow_loopback=allow_loopback,
            resolve=resolve,
        )
    except (pinned_http.AddressRefused, pinned_http.HostMalformed) as error:
        raise WebhookRefused(str(error)) from error
    return sent, checked


def tunnel_proxy(settings: Any, parts: SplitResult) -> str | None:
    """Return the proxy an https webhook is tunnelled through, or None.

    HTTPS_PROXY (or https_proxy) when it is an http:// proxy and NO_PROXY does
    not name the host, as requests chose; the CONNECT names the checked address
    (pinned_http). An http webhook, which a local run alone allows, goes direct.
    A NO_PROXY entry may name a port ("crm.example:8443"); the standard library
    matches it against the host and port given. A proxy named without a port is
    the one on 80, as requests reads it: urllib3 would dial an https pool's
    proxy on 443.
    """
    if parts.scheme != "https" or not tunnels_webhooks(settings):
        return None
    import urllib.request

    host = parts.hostname or ""
    if ":" not in host:  # An IPv6 literal is matched bare: its colons are no port.
        host = f"{host}:{parts.port or 443}"
    if settings.no_proxy and urllib.request.proxy_bypass_environment(
        host, {"no": settings.no_proxy}
    ):
        return None
    proxy = settings.webhook_proxy_url
    named = urlsplit(proxy)
    if named.port is None:
        return named._replace(netloc=f"{named.netloc}:80").geturl()
    return proxy


def tunnels_webhooks(settings: Any) -> bool:
    """Say whether https webhooks go through a proxy (`tunnel_proxy`), or go
    around every proxy the environment names."""
    proxy = settings.webhook_proxy_url
    return bool(proxy) and _is_http_proxy(proxy)


def proxy_notice(settings: Any) -> str:
    """Say what goes around the proxy `settings.proxy_variable` names; never its
    value, which may hold a password."""
    said = (
        f"{settings.proxy_variable} is set, but product image fetches connect "
        "directly to the address they checked, through no proxy"
    )
    if tunnels_webhooks(settings):
        return f"{said}; https webhook deliveries are tunnelled through HTTPS_PROXY"
    return (
        f"{said}, and so do webhook deliveries, which use an http:// HTTPS_PROXY "
        "alone (README, Known limitations)"
    )


def _is_http_proxy(proxy_url: str) -> bool:
    parts = urlsplit(proxy_url)
    return parts.scheme == "http" and bool(parts.hostname)
