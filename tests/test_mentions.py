"""Polling mentions: nothing lost to page limits, failed fan-outs or other brands."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from cartcast import brands, mentions
from infra.x_sandbox import XSandbox
from tests.helpers import brand_body
from tests.test_event_functions import PushReceiver

ALPHA = {"user_id": "1500000000000000001", "username": "alpha", "name": "Alpha"}
BETA = {"user_id": "1500000000000000002", "username": "beta", "name": "Beta"}
FAN = {"id": "42", "username": "fan", "name": "A Fan"}


@pytest.fixture
def sandbox(clock):
    with XSandbox(clock=clock) as running:
        running.register_account(**ALPHA, token="token-alpha")
        yield running


@pytest.fixture
def receiver():
    running = PushReceiver()
    yield running
    running.server.shutdown()


def wire(runtime, sandbox, push_url: str, **changes):
    runtime.settings = dataclasses.replace(
        runtime.settings,
        x_api_base_url=sandbox.base_url,
        pubsub_push_endpoints={"cartcast-mentions": push_url},
        **changes,
    )
    runtime._publisher = None
    return runtime


def add_brand(runtime, slug: str, account: dict, token: str) -> str:
    body = brand_body(
        slug=slug, name=slug, x_user_id=account["user_id"], x_access_token=token
    )
    with runtime.database.transaction() as tx:
        return str(
            brands.create_brand(tx, body, now=runtime.clock.now())["brand"]["id"]
        )


def stored(runtime) -> int:
    with runtime.database.transaction() as tx:
        return tx.scalar("SELECT count(*) AS n FROM mentions")


def mention(sandbox, clock, count: int) -> None:
    for index in range(count):
        sandbox.add_mention(
            to_user_id=ALPHA["user_id"], text=f"@alpha hello {index}", author=FAN
        )
        clock.advance(dt.timedelta(seconds=1))


def test_a_burst_larger_than_one_polls_budget_is_read_over_the_next_polls(
    runtime, sandbox, receiver, clock
) -> None:
    wire(runtime, sandbox, receiver.url, mention_pages_max=1)
    add_brand(runtime, "alpha", ALPHA, "token-alpha")
    mention(sandbox, clock, 150)

    first = mentions.poll_mentions(runtime, as_of=clock.now())
    second = mentions.poll_mentions(runtime, as_of=clock.now())
    mention(sandbox, clock, 1)
    clock.advance(dt.timedelta(seconds=runtime.settings.mention_poll_min_s))
    third = mentions.poll_mentions(runtime, as_of=clock.now())

    assert (first["new"], second["new"], third["new"]) == (100, 50, 1)
    assert stored(runtime) == 151


def test_mentions_whose_fan_out_was_lost_are_sent_again_by_a_later_poll(
    runtime, sandbox, receiver, clock
) -> None:
    wire(runtime, sandbox, "http://127.0.0.1:9/")  # nothing listens there
    add_brand(runtime, "alpha", ALPHA, "token-alpha")
    mention(sandbox, clock, 2)
    first = mentions.poll_mentions(runtime, as_of=clock.now())
    assert first["fan_out_failed"] == 1 and stored(runtime) == 2

    wire(runtime, sandbox, receiver.url)
    clock.advance(mentions.SWEEP_AFTER + dt.timedelta(seconds=1))
    outcome = mentions.poll_mentions(runtime, as_of=clock.now())

    assert outcome["swept"] == 2
    assert len(receiver.received) == 1


def test_a_brand_whose_token_x_refuses_does_not_stop_the_others(
    runtime, sandbox, receiver, clock
) -> None:
    wire(runtime, sandbox, receiver.url)
    add_brand(runtime, "revoked", BETA, "token-revoked")
    add_brand(runtime, "alpha", ALPHA, "token-alpha")
    mention(sandbox, clock, 1)

    outcome = mentions.poll_mentions(runtime, as_of=clock.now())

    assert outcome["brands"] == 1 and outcome["skipped"] == 1
    assert stored(runtime) == 1


def test_a_rate_limited_brand_is_not_polled_again_until_the_reset(
    runtime, sandbox, receiver, clock
) -> None:
    wire(runtime, sandbox, receiver.url)
    add_brand(runtime, "alpha", ALPHA, "token-alpha")
    sandbox.add_fault(
        method="GET", path_prefix="/2/users/", status=429, count=1, reset_in_s=300
    )

    mentions.poll_mentions(runtime, as_of=clock.now())
    reads = sandbox.snapshot()["requests"]
    mentions.poll_mentions(runtime, as_of=clock.now())

    assert sandbox.snapshot()["requests"] == reads
    clock.advance(dt.timedelta(minutes=6))
    assert mentions.poll_mentions(runtime, as_of=clock.now())["brands"] == 1


def test_a_mention_with_a_nul_or_a_lone_surrogate_is_stored_cleaned(
    runtime, sandbox, receiver, clock
) -> None:
    wire(runtime, sandbox, receiver.url)
    add_brand(runtime, "alpha", ALPHA, "token-alpha")
    sandbox.add_mention(
        to_user_id=ALPHA["user_id"], text="@alpha bad\x00 \ud800 bytes", author=FAN
    )

    outcome = mentions.poll_mentions(runtime, as_of=clock.now())

    with runtime.database.transaction() as tx:
        text = tx.scalar("SELECT text FROM mentions")
    assert outcome["new"] == 1
    assert "\x00" not in text and text.startswith("@alpha bad")


def test_a_stray_past_scorings_own_sweep_is_not_sent_again(
    runtime, sandbox, receiver, clock
) -> None:
    from cartcast import scoring

    wire(runtime, sandbox, "http://127.0.0.1:9/")  # nothing listens there
    add_brand(runtime, "alpha", ALPHA, "token-alpha")
    mention(sandbox, clock, 2)
    mentions.poll_mentions(runtime, as_of=clock.now())

    wire(runtime, sandbox, receiver.url)
    clock.advance(scoring.UNSCORED_SWEEP_AFTER + dt.timedelta(seconds=1))
    outcome = mentions.poll_mentions(runtime, as_of=clock.now())

    assert outcome["swept"] == 0
    assert receiver.received == []
