"""A webhook URL's host is looked up when the URL is set, as a delivery would.

PATCH /v1/brand and POST /v1/brands resolve the host of `alert_webhook_url` and
`escalation_webhook_url` through the runtime's resolver and refuse, naming the
field, a host any of whose addresses a delivery would refuse. A name that does
not resolve is accepted: each delivery looks it up again (decision 0099). The
tests' resolver answers every name; nothing is looked up on the network, and
nothing connects to the addresses it answers.
"""

from __future__ import annotations

import socket
import threading

import pytest

from cartcast import runtime as runtime_module
from tests.conftest import OPERATOR_KEY, make_app
from tests.helpers import ChangingResolver, auth, brand_body, post_json

SECRET = "a-crm-secret-of-some-length"
URL = "https://hooks.shop.example/incoming"
INTERNAL = ["10.0.0.7", "169.254.169.254", "100.64.0.1", "fd00::1"]


class UnknownName:
    """A lookup that finds no such name, as getaddrinfo's EAI_NONAME does."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append((host, port))
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


@pytest.fixture
def admin_key(client) -> str:
    created = post_json(client, "/v1/brands", brand_body(), OPERATOR_KEY)
    return created.get_json()["api_key"]


def answer_lookups_with(resolve) -> None:
    """Make the api function's runtime look hosts up with `resolve`."""
    runtime_module.current().resolve = resolve


def patch_brand(client, key: str, body: dict):
    return client.patch("/v1/brand", json=body, headers=auth(key))


def the_brand(client, key: str) -> dict:
    return client.get("/v1/brand", headers=auth(key)).get_json()["brand"]


@pytest.mark.parametrize("internal", INTERNAL)
@pytest.mark.parametrize("field", ["alert_webhook_url", "escalation_webhook_url"])
def test_a_webhook_name_resolving_inside_is_a_400_naming_the_field(
    client, admin_key, field, internal
) -> None:
    # Arrange: the brand's DNS points its webhook name at an internal address.
    resolver = ChangingResolver([internal])
    answer_lookups_with(resolver)

    # Act
    answer = patch_brand(client, admin_key, {field: URL, "escalation_secret": SECRET})

    # Assert: refused by name, and nothing of the PATCH was stored.
    assert answer.status_code == 400, answer.get_json()
    error = answer.get_json()["error"]
    assert error["field"] == field
    assert "hooks.shop.example resolves to an internal address" in error["message"]
    # The address itself is the operator's: a brand admin must not learn what
    # the deployment's private DNS answers for names they can choose.
    assert internal not in error["message"]
    assert resolver.asked == [("hooks.shop.example", 443)]
    brand = the_brand(client, admin_key)
    assert not brand["has_alert_webhook"] and not brand["has_escalation_webhook"]


def test_one_internal_address_among_public_ones_is_refused(client, admin_key) -> None:
    answer_lookups_with(ChangingResolver(["8.8.4.4", "8.8.8.8", "10.1.2.3"]))

    answer = patch_brand(client, admin_key, {"alert_webhook_url": URL})

    assert answer.status_code == 400
    error = answer.get_json()["error"]
    assert error["field"] == "alert_webhook_url"
    assert "resolves to an internal address" in error["message"]
    assert "10.1.2.3" not in error["message"]


def test_a_new_brand_whose_alert_webhook_resolves_inside_is_not_created(
    client,
) -> None:
    answer_lookups_with(ChangingResolver(["169.254.169.254"]))

    answer = post_json(
        client, "/v1/brands", brand_body(alert_webhook_url=URL), OPERATOR_KEY
    )

    assert answer.status_code == 400
    assert answer.get_json()["error"]["field"] == "alert_webhook_url"
    again = post_json(client, "/v1/brands", brand_body(), OPERATOR_KEY)
    assert again.status_code == 201, "the refused brand was half-created"


def test_a_webhook_name_that_does_not_resolve_yet_is_accepted(
    client, admin_key
) -> None:
    # The owner may set the URL before the name's DNS records exist; each
    # delivery looks the name up again.
    lookup = UnknownName()
    answer_lookups_with(lookup)

    answer = patch_brand(
        client,
        admin_key,
        {
            "alert_webhook_url": URL,
            "escalation_webhook_url": URL,
            "escalation_secret": SECRET,
        },
    )

    assert answer.status_code == 200, answer.get_json()
    assert lookup.asked == [("hooks.shop.example", 443)] * 2
    brand = answer.get_json()["brand"]
    assert brand["has_alert_webhook"] and brand["has_escalation_webhook"]


def test_a_webhook_name_resolving_to_a_public_address_is_accepted(
    client, admin_key
) -> None:
    answer_lookups_with(ChangingResolver(["8.8.8.8"]))

    answer = patch_brand(client, admin_key, {"alert_webhook_url": URL})

    assert answer.status_code == 200, answer.get_json()


def test_a_local_run_accepts_a_name_resolving_to_loopback(client, admin_key) -> None:
    # The api function's environment leaves CARTCAST_ENV unset: a local run, whose
    # webhooks the tests serve on this machine.
    resolver = ChangingResolver(["127.0.0.1"])
    answer_lookups_with(resolver)

    answer = patch_brand(
        client, admin_key, {"alert_webhook_url": "http://localhost:9/hook"}
    )

    assert answer.status_code == 200, answer.get_json()
    assert resolver.asked == [("localhost", 9)]


class SilentResolver:
    """A resolver that does not answer until released (LONGEST_S at most, then
    EAI_AGAIN, as glibc gives once its attempts time out), so a test can tell
    whether an answer came while the lookup still hung."""

    LONGEST_S = 10.0

    def __init__(self) -> None:
        self.asked: list[tuple[str, int]] = []
        self.answered = threading.Event()
        self.released = threading.Event()

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append((host, port))
        self.released.wait(self.LONGEST_S)
        self.answered.set()
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")


def test_a_resolver_that_never_answers_is_given_up_on_and_the_url_accepted(
    client, admin_key, monkeypatch
) -> None:
    """Decision 0106: past CARTCAST_WEBHOOK_LOOKUP_TIMEOUT_S the name is taken as
    not resolving yet, as an unknown name is, and each delivery looks it up again."""
    # Arrange: a short bound, and a DNS server that never answers.
    monkeypatch.setenv("CARTCAST_WEBHOOK_LOOKUP_TIMEOUT_S", "0.2")
    runtime_module.reset()
    client = make_app("api", "http").test_client()
    silent = SilentResolver()
    answer_lookups_with(silent)

    # Act
    try:
        answer = patch_brand(
            client,
            admin_key,
            {
                "alert_webhook_url": URL,
                "escalation_webhook_url": URL,
                "escalation_secret": SECRET,
            },
        )
        still_hanging = not silent.answered.is_set()
    finally:
        silent.released.set()

    # Assert: answered while the lookups still hung, and the URLs stored.
    assert still_hanging, "the PATCH waited for the resolver"
    assert answer.status_code == 200, answer.get_json()
    assert len(silent.asked) == 2
    brand = answer.get_json()["brand"]
    assert brand["has_alert_webhook"] and brand["has_escalation_webhook"]


def test_a_resolver_that_fails_otherwise_is_raised_at_once_not_waited_out() -> None:
    """The bound is for a lookup that does not answer: a resolver that raises
    something getaddrinfo never does (a bug of its own) says so to its caller at
    once, as it did unbounded, not after the whole bound as a lookup timed out."""
    from cartcast import pinned_http

    def broken(host: str, port: int) -> list[str]:
        raise LookupError(f"no table for {host}")

    bounded = pinned_http.resolver_within(broken, timeout_s=5)

    with pytest.raises(LookupError, match="no table for crm.example"):
        bounded("crm.example", 443)
