"""Publishing on X at most once, per account, through the sandbox."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from cartcast import brands, catalog, posts, publishing
from infra.x_sandbox import XSandbox
from tests.helpers import brand_body
from tests.helpers import catalog as catalog_rows

ALPHA = {"user_id": "1500000000000000001", "username": "alpha", "name": "Alpha"}
BETA = {"user_id": "1500000000000000002", "username": "beta", "name": "Beta"}


@pytest.fixture
def sandbox(clock):
    with XSandbox(clock=clock) as running:
        running.register_account(**ALPHA, token="token-alpha")
        running.register_account(**BETA, token="token-beta")
        yield running


@pytest.fixture
def x_runtime(runtime, sandbox):
    runtime.settings = dataclasses.replace(
        runtime.settings, x_api_base_url=sandbox.base_url
    )
    return runtime


def make_brand(runtime, slug: str, account: dict | None, products: int = 2) -> str:
    """Create a brand with scheduled posts; return its id."""
    x = (
        {"x_user_id": account["user_id"], "x_access_token": f"token-{slug}"}
        if account
        else {"x_user_id": None, "x_access_token": None}
    )
    now = runtime.clock.now()
    with runtime.database.transaction() as tx:
        brand_id = str(
            brands.create_brand(tx, brand_body(slug=slug, name=slug, **x), now=now)[
                "brand"
            ]["id"]
        )
        catalog.import_products(
            tx, brand_id=brand_id, feed=catalog_rows(products), now=now
        )
        refs = [row["sku"] for row in catalog_rows(products)]
        posts.create_drafts(
            tx, brand_id=brand_id, body={"products": refs}, created_by="test", now=now
        )
        posts.schedule_approved(tx, brand_id=brand_id, limit=10, now=now)
    return brand_id


def states(runtime, brand_id: str) -> list[str]:
    with runtime.database.transaction() as tx:
        return sorted(
            p["state"]
            for p in posts.list_posts(tx, brand_id=brand_id, state=None, limit=50)
        )


def test_a_rate_limit_pauses_only_the_account_that_got_it(
    x_runtime, clock, sandbox
) -> None:
    alpha = make_brand(x_runtime, "alpha", ALPHA)
    beta = make_brand(x_runtime, "beta", BETA)
    clock.advance(dt.timedelta(days=7))
    sandbox.add_fault(
        method="POST", path_prefix="/2/tweets", status=429, count=1, reset_in_s=600
    )

    first = publishing.publish_due(x_runtime, as_of=clock.now())
    sent_after_first = sandbox.snapshot()["requests"]["POST /2/tweets"]["count"]
    publishing.publish_due(x_runtime, as_of=clock.now())
    sent_after_second = sandbox.snapshot()["requests"]["POST /2/tweets"]["count"]

    limited, other = (
        (alpha, beta) if states(x_runtime, alpha).count("scheduled") else (beta, alpha)
    )
    assert first["published"] == 2 and first["deferred"] == 2
    assert states(x_runtime, other) == ["published", "published"]
    assert states(x_runtime, limited) == ["scheduled", "scheduled"]
    assert sent_after_second == sent_after_first  # nobody knocks while paused

    clock.advance(dt.timedelta(minutes=11))
    publishing.publish_due(x_runtime, as_of=clock.now())

    assert states(x_runtime, limited) == ["published", "published"]


def test_a_post_claimed_but_never_sent_is_retried_after_its_lease(
    x_runtime, clock, sandbox
) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)
    clock.advance(dt.timedelta(days=7))
    publishing._claim(x_runtime, clock.now())  # the publisher dies right after claiming

    clock.advance(dt.timedelta(seconds=x_runtime.settings.publish_lease_s + 1))
    publishing.publish_due(x_runtime, as_of=clock.now())

    assert states(x_runtime, brand_id) == ["published"]
    assert len(sandbox.snapshot()["posts"]) == 1


def test_a_post_sent_without_an_answer_becomes_unconfirmed_and_is_not_resent(
    x_runtime, clock, sandbox
) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)
    clock.advance(dt.timedelta(days=7))
    claimed, attempts, _ = publishing._claim(x_runtime, clock.now())
    with x_runtime.database.transaction() as tx:  # the intent was written, then death
        tx.execute(
            publishing.MARK_SENT, attempt_id=attempts[claimed[0]["id"]], now=clock.now()
        )

    clock.advance(dt.timedelta(seconds=x_runtime.settings.publish_lease_s + 1))
    publishing.publish_due(x_runtime, as_of=clock.now())

    assert states(x_runtime, brand_id) == ["unconfirmed"]
    assert sandbox.snapshot()["posts"] == []


def test_due_posts_of_a_brand_without_x_are_held_with_the_reason(
    x_runtime, clock
) -> None:
    brand_id = make_brand(x_runtime, "offline", None, products=1)
    clock.advance(dt.timedelta(days=7))

    outcome = publishing.publish_due(x_runtime, as_of=clock.now())

    with x_runtime.database.transaction() as tx:
        held = posts.list_posts(tx, brand_id=brand_id, state="held", limit=5)
    assert outcome["held"] == 1
    assert held[0]["failure_reason"] == "the brand has no X account connected"


def test_x_refusing_a_post_fails_it_with_x_reason(x_runtime, clock, sandbox) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)
    clock.advance(dt.timedelta(days=7))
    sandbox.add_fault(method="POST", path_prefix="/2/tweets", status=403, count=1)

    publishing.publish_due(x_runtime, as_of=clock.now())

    with x_runtime.database.transaction() as tx:
        failed = posts.list_posts(tx, brand_id=brand_id, state="failed", limit=5)
    assert len(failed) == 1 and failed[0]["failure_reason"]
