"""The one rule for the addresses cartcast sends to, and the webhook fields it guards.

Every address here is only parsed; nothing connects to any of them.
"""

from __future__ import annotations

import ipaddress
import json

import pytest

from cartcast import addresses
from tests.conftest import OPERATOR_KEY
from tests.helpers import auth, brand_body, post_json

INTERNAL = [
    "100.64.0.1",  # shared address space (RFC 6598); a VPC subnet on Google Cloud
    "::ffff:100.64.0.1",
    "2002:a9fe:a9fe::",  # 6to4 wrapping 169.254.169.254
    "fec0::1",  # deprecated site-local
    "64:ff9b::a9fe:a9fe",  # NAT64 wrapping the metadata server
    "::a9fe:a9fe",  # deprecated IPv4-compatible form
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    "169.254.169.254",
    "10.1.2.3",
    "fd00::1",
    "fe80::1",
    "0.0.0.0",
    "::",
    "240.0.0.1",
    "198.18.0.1",
    "192.0.2.10",  # documentation ranges are not global either
    "224.0.1.1",  # global multicast
    "ff0e::1",
]

# Real-looking public addresses, parsed and judged only.
PUBLIC = [
    "8.8.4.4",
    "151.101.1.69",
    "2606:4700:4700::1111",
    "2a00:1450:4001:80b::200e",
    "::ffff:8.8.4.4",
    "2002:808:404::",  # 6to4 of a public address
    "64:ff9b::808:404",  # NAT64 of a public address
]

LOOPBACK = ["127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"]


@pytest.mark.parametrize("text", INTERNAL)
def test_an_internal_address_is_refused_in_every_run(text) -> None:
    address = ipaddress.ip_address(text)

    assert addresses.is_refused(address, allow_loopback=False)
    assert addresses.is_refused(address, allow_loopback=True)


@pytest.mark.parametrize("text", PUBLIC)
def test_a_public_address_is_allowed(text) -> None:
    address = ipaddress.ip_address(text)

    assert not addresses.is_refused(address, allow_loopback=False)


@pytest.mark.parametrize("text", LOOPBACK)
def test_loopback_is_allowed_in_a_local_run_only(text) -> None:
    address = ipaddress.ip_address(text)

    assert addresses.is_refused(address, allow_loopback=False)
    assert not addresses.is_refused(address, allow_loopback=True)


def test_loopback_wrapped_in_6to4_is_no_loopback() -> None:
    # 2002:7f00:1:: is 127.0.0.1 as 6to4 names it, but a relay's address, not ours.
    address = ipaddress.ip_address("2002:7f00:1::")

    assert addresses.is_refused(address, allow_loopback=True)


WEBHOOK_HOSTS = ["100.64.0.1", "[::ffff:100.64.0.1]", "[2002:a9fe:a9fe::]", "[fec0::1]"]


@pytest.fixture
def admin_key(client) -> str:
    created = post_json(client, "/v1/brands", brand_body(), OPERATOR_KEY)
    return created.get_json()["api_key"]


@pytest.mark.parametrize("host", WEBHOOK_HOSTS)
@pytest.mark.parametrize("field", ["alert_webhook_url", "escalation_webhook_url"])
def test_a_webhook_at_an_internal_address_is_a_400_naming_the_field(
    client, admin_key, field, host
) -> None:
    body = {field: f"https://{host}/hook", "escalation_secret": "s" * 32}

    answer = client.patch(
        "/v1/brand",
        data=json.dumps(body),
        headers=auth(admin_key),
        content_type="application/json",
    )

    assert answer.status_code == 400
    error = answer.get_json()["error"]
    assert error["field"] == field
    assert "internal address" in error["message"]
    brand = client.get("/v1/brand", headers=auth(admin_key)).get_json()["brand"]
    assert not brand["has_alert_webhook"] and not brand["has_escalation_webhook"]
