"""Claims are checked against the catalog again just before a post goes to X."""

from __future__ import annotations

import datetime as dt

import pytest

from cartcast import catalog as catalog_module
from cartcast import posts, publishing
from infra.x_sandbox import XSandbox
from tests.conftest import OPERATOR_KEY, START, make_app
from tests.helpers import ALPHA, auth, brand_body, make_brand, post_json, tweets_sent
from tests.test_event_functions import tick

MUG = {
    "sku": "MUG-20",
    "title": "Stoneware Mug",
    "description": "A sturdy stoneware mug that keeps coffee hot.",
    "category": "kitchen",
    "price": 20,
    "discountPercentage": 20,
    "stock": 5,
}


def make_mug_brand(runtime, row: dict, **caption_fields) -> str:
    """Create a brand on ALPHA's account with the row's posts scheduled."""
    return make_brand(runtime, "alpha", ALPHA, rows=[row], **caption_fields)


def change_catalog(runtime, brand_id: str, row: dict) -> None:
    with runtime.database.transaction() as tx:
        catalog_module.import_products(
            tx, brand_id=brand_id, feed=[row], now=runtime.clock.now()
        )


def brand_posts(runtime, brand_id: str) -> list[dict]:
    with runtime.database.transaction() as tx:
        return posts.list_posts(tx, brand_id=brand_id, state=None, limit=10)


@pytest.fixture
def sandbox(clock_file):
    with XSandbox(clock=clock_file) as running:
        running.register_account(**ALPHA, token="token-test-goods")
        yield running


def test_a_discount_cut_before_publishing_holds_every_post_naming_both_values(
    function_env, monkeypatch, clock_file, sandbox
) -> None:
    monkeypatch.setenv("X_API_BASE_URL", sandbox.base_url)
    api = make_app("api", "http").test_client()
    key = post_json(api, "/v1/brands", brand_body(), OPERATOR_KEY).get_json()["api_key"]
    post_json(api, "/v1/products", [MUG], key)
    drafted = post_json(
        api, "/v1/captions", {"products": ["MUG-20"], "variants": 3}, key
    )
    post_json(api, "/v1/schedule", {}, key)
    post_json(api, "/v1/products", [{**MUG, "discountPercentage": 10}], key)
    week_later = START + dt.timedelta(days=7)
    clock_file.set(week_later)

    ticked = tick("publish_due_posts", week_later)

    assert ticked.status_code == 200
    reasons = {}
    for drafted_post in drafted.get_json()["posts"]:
        path = f"/v1/posts/{drafted_post['id']}"
        post = api.get(path, headers=auth(key)).get_json()["post"]
        assert post["state"] == "held"
        reasons[post["failure_reason"]] = drafted_post["text"]
    assert "claims 20% off, the catalog says 10%" in reasons
    assert (
        "claims a price of $16.00, the catalog says $20.00, on sale at $18.00"
        in reasons
    )
    assert tweets_sent(sandbox) == 0 and sandbox.snapshot()["posts"] == []


def test_a_price_rise_before_publishing_holds_the_post(
    x_runtime, clock, x_sandbox
) -> None:
    row = {**MUG, "discountPercentage": None}
    brand_id = make_mug_brand(x_runtime, row)
    change_catalog(x_runtime, brand_id, {**row, "price": 25})
    clock.advance(dt.timedelta(days=7))

    outcome = publishing.publish_due(x_runtime, as_of=clock.now())

    (post,) = brand_posts(x_runtime, brand_id)
    assert outcome["held"] == 1
    assert post["failure_reason"] == (
        "claims a price of $20.00, the catalog says $25.00"
    )
    assert tweets_sent(x_sandbox) == 0


def test_a_price_in_another_currency_holds_the_post_naming_it(
    x_runtime, clock, x_sandbox
) -> None:
    row = {**MUG, "discountPercentage": None}
    brand_id = make_mug_brand(x_runtime, row)
    with x_runtime.database.transaction() as tx:  # a person wrote a euro price
        tx.execute(
            "UPDATE posts SET text = 'Now €20! ' || text WHERE brand_id = :b",
            b=brand_id,
        )
    clock.advance(dt.timedelta(days=7))

    publishing.publish_due(x_runtime, as_of=clock.now())

    (post,) = brand_posts(x_runtime, brand_id)
    assert post["state"] == "held"
    assert post["failure_reason"] == (
        "claims a price in € (€ 20.00), the catalog's prices are in USD"
    )
    assert tweets_sent(x_sandbox) == 0


def test_a_stock_claim_the_catalog_no_longer_supports_holds_the_post(
    x_runtime, clock, x_sandbox
) -> None:
    row = {**MUG, "discountPercentage": None, "stock": 3}
    brand_id = make_mug_brand(x_runtime, row)
    with x_runtime.database.transaction() as tx:  # a person added a stock line
        tx.execute(
            "UPDATE posts SET text = 'Only 3 left! ' || text WHERE brand_id = :b",
            b=brand_id,
        )
    change_catalog(x_runtime, brand_id, {**row, "stock": 1})
    clock.advance(dt.timedelta(days=7))

    publishing.publish_due(x_runtime, as_of=clock.now())

    (post,) = brand_posts(x_runtime, brand_id)
    assert post["state"] == "held"
    assert post["failure_reason"] == "claims only 3 left, the catalog has 1"
    assert tweets_sent(x_sandbox) == 0


def test_a_product_deleted_from_the_catalog_holds_its_post(
    x_runtime, clock, x_sandbox
) -> None:
    brand_id = make_mug_brand(x_runtime, MUG)
    with x_runtime.database.transaction() as tx:
        tx.execute("DELETE FROM products WHERE brand_id = :b", b=brand_id)
    clock.advance(dt.timedelta(days=7))

    publishing.publish_due(x_runtime, as_of=clock.now())

    (post,) = brand_posts(x_runtime, brand_id)
    assert post["state"] == "held"
    assert post["failure_reason"] == "the product is no longer in the catalog"
    assert tweets_sent(x_sandbox) == 0


def test_a_thread_is_held_whole_when_its_claims_went_stale(
    x_runtime, clock, x_sandbox
) -> None:
    row = {**MUG, "discountPercentage": None}
    brand_id = make_mug_brand(x_runtime, row, kind="thread")
    change_catalog(x_runtime, brand_id, {**row, "price": 18})
    clock.advance(dt.timedelta(days=7))

    publishing.publish_due(x_runtime, as_of=clock.now())

    (post,) = brand_posts(x_runtime, brand_id)
    assert post["state"] == "held"
    assert "the catalog says $18.00" in post["failure_reason"]
    assert tweets_sent(x_sandbox) == 0


def test_a_poll_option_the_catalog_contradicts_holds_the_poll(
    x_runtime, clock, x_sandbox
) -> None:
    options = ["Yes at 20% off", "Not now"]
    brand_id = make_mug_brand(x_runtime, MUG, kind="poll", poll_options=options)
    change_catalog(x_runtime, brand_id, {**MUG, "discountPercentage": 15})
    clock.advance(dt.timedelta(days=7))

    publishing.publish_due(x_runtime, as_of=clock.now())

    (post,) = brand_posts(x_runtime, brand_id)
    assert post["state"] == "held"
    assert "the catalog says 15%" in post["failure_reason"]


def test_claims_the_catalog_still_supports_are_published(
    x_runtime, clock, x_sandbox
) -> None:
    brand_id = make_mug_brand(x_runtime, MUG)
    # A sale since the draft: "only a few left" is still true of 4.
    change_catalog(x_runtime, brand_id, {**MUG, "stock": 4})
    clock.advance(dt.timedelta(days=7))

    publishing.publish_due(x_runtime, as_of=clock.now())

    (post,) = brand_posts(x_runtime, brand_id)
    assert post["state"] == "published"
    assert tweets_sent(x_sandbox) == 1


def test_a_held_post_can_be_cancelled(x_runtime, clock, x_sandbox) -> None:
    brand_id = make_mug_brand(x_runtime, MUG)
    change_catalog(x_runtime, brand_id, {**MUG, "price": 30})
    clock.advance(dt.timedelta(days=7))
    publishing.publish_due(x_runtime, as_of=clock.now())
    (held,) = brand_posts(x_runtime, brand_id)

    with x_runtime.database.transaction() as tx:
        cancelled = posts.apply_action(
            tx,
            brand_id=brand_id,
            post_id=str(held["id"]),
            action="cancel",
            now=clock.now(),
        )

    assert cancelled["state"] == "cancelled"
