"""A brand's monthly X budget: never passed by a post, even by concurrent
publishers, and X calls priced by class and by the brand's app."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from decimal import Decimal

import pytest

from cartcast import costs, kpis, mentions, posts, publishing, reconciling
from cartcast.clock import UTC
from tests.conftest import OPERATOR_KEY, make_app
from tests.helpers import (
    ALPHA,
    admin_updates_brand,
    auth,
    brand_body,
    make_brand,
    post_json,
    states,
)
from tests.test_event_functions import PushReceiver
from tests.test_mentions import FAN, wire
from tests.test_post_limits import run_together

LEDGER = """
SELECT operation, units, usd, reserved FROM cost_ledger WHERE brand_id = :brand_id
ORDER BY id
"""


@pytest.fixture
def receiver():
    running = PushReceiver()
    yield running
    running.server.shutdown()


def budget(runtime, brand_id: str, usd: str | None, **more) -> None:
    with runtime.database.transaction() as tx:
        admin_updates_brand(
            tx, brand_id, {"monthly_x_budget_usd": usd, **more}, runtime.clock.now()
        )


def ledger(runtime, brand_id: str) -> list[dict]:
    with runtime.database.transaction() as tx:
        return tx.rows(LEDGER, brand_id=brand_id)


def held(runtime, brand_id: str) -> list[dict]:
    with runtime.database.transaction() as tx:
        return posts.list_posts(tx, brand_id=brand_id, state="held", limit=50)


def x_requests(sandbox, key: str) -> int:
    return sandbox.snapshot()["requests"].get(key, {}).get("count", 0)


def test_a_post_that_would_pass_the_budget_is_held_naming_cap_spent_and_month(
    x_runtime, clock, x_sandbox
) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=2)  # link posts
    budget(x_runtime, brand_id, "0.30")
    clock.advance(dt.timedelta(days=7))

    outcome = publishing.publish_due(x_runtime, as_of=clock.now())

    (waiting,) = held(x_runtime, brand_id)
    assert outcome["published"] == 1 and outcome["held"] == 1
    assert waiting["failure_reason"] == (
        "monthly X budget of $0.30 reached ($0.20 spent in 2026-03); "
        "raise it or wait for 2026-04"
    )
    assert len(x_sandbox.snapshot()["posts"]) == 1


def test_a_half_cent_spent_is_named_rounded_up_as_stores_round(runtime) -> None:
    # Python's own format of Decimal("0.025") is "0.02" (half to even); every
    # amount cartcast shows rounds half up (validation.to_cents), so "0.03".
    brand_id = make_brand(runtime, "alpha", ALPHA, products=1)
    budget(runtime, brand_id, "0.02")
    with runtime.database.transaction() as tx:
        costs.record(
            tx,
            brand_id=brand_id,
            occurred_at=runtime.clock.now(),
            operation="post_read",
            units=5,
            usd=Decimal("0.025"),
            ref="half-cent",
        )

        refusal = costs.at_budget(tx, brand_id, runtime.clock.now())

    assert refusal == (
        "monthly X budget of $0.02 reached ($0.03 spent in 2026-03); "
        "raise it or wait for 2026-04"
    )


def test_raising_the_budget_sends_the_held_post_at_the_next_run(
    x_runtime, clock, x_sandbox
) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=2)
    budget(x_runtime, brand_id, "0.30")
    clock.advance(dt.timedelta(days=7))
    publishing.publish_due(x_runtime, as_of=clock.now())

    budget(x_runtime, brand_id, "0.40")
    publishing.publish_due(x_runtime, as_of=clock.now())

    assert states(x_runtime, brand_id) == ["published", "published"]
    assert sum(row["usd"] for row in ledger(x_runtime, brand_id)) == Decimal("0.40")


def test_the_month_turns_at_midnight_in_the_brand_s_time_zone(
    x_runtime, clock, x_sandbox
) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=2)  # New York
    budget(x_runtime, brand_id, "0.20")
    clock.advance(dt.timedelta(days=7))
    publishing.publish_due(x_runtime, as_of=clock.now())

    # 03:59 UTC on April 1st is still March 31st in New York (UTC-4).
    clock.set(dt.datetime(2026, 4, 1, 3, 59, tzinfo=UTC))
    publishing.publish_due(x_runtime, as_of=clock.now())
    still_held = states(x_runtime, brand_id)
    clock.set(dt.datetime(2026, 4, 1, 4, 0, tzinfo=UTC))
    publishing.publish_due(x_runtime, as_of=clock.now())

    assert still_held == ["held", "published"]
    assert states(x_runtime, brand_id) == ["published", "published"]


def test_a_refused_post_gives_its_reserved_price_back(
    x_runtime, clock, x_sandbox
) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)
    budget(x_runtime, brand_id, "5")
    clock.advance(dt.timedelta(days=7))
    x_sandbox.add_fault(method="POST", path_prefix="/2/tweets", status=403)

    publishing.publish_due(x_runtime, as_of=clock.now())

    assert states(x_runtime, brand_id) == ["failed"]
    assert ledger(x_runtime, brand_id) == []


def test_an_unanswered_post_keeps_its_reservation_and_the_cap_counts_it(
    x_runtime, clock, x_sandbox
) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=2)
    budget(x_runtime, brand_id, "0.30")
    clock.advance(dt.timedelta(days=7))
    x_sandbox.add_fault(method="POST", path_prefix="/2/tweets", drop=True)

    publishing.publish_due(x_runtime, as_of=clock.now())

    (waiting,) = held(x_runtime, brand_id)
    assert states(x_runtime, brand_id) == ["held", "unconfirmed"]
    assert ledger(x_runtime, brand_id) == [
        {
            "operation": "post_with_url",
            "units": 1,
            "usd": Decimal("0.2"),
            "reserved": True,
        }
    ]
    assert "($0.20 spent in 2026-03)" in waiting["failure_reason"]


def test_concurrent_publishers_never_pass_the_budget(
    x_runtime, clock, x_sandbox
) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=6)
    budget(x_runtime, brand_id, "0.50")
    clock.advance(dt.timedelta(days=7))
    x_sandbox.add_fault(method="POST", path_prefix="/2/tweets", delay_s=0.05, count=6)

    # One post a claim: each publisher holds its own post, and all check at once.
    settings = dataclasses.replace(x_runtime.settings, publish_batch_size=1)
    run_together(settings, clock, invocations=4)

    spent = sum(row["usd"] for row in ledger(x_runtime, brand_id))
    assert sorted(states(x_runtime, brand_id)) == ["held"] * 4 + ["published"] * 2
    assert spent == Decimal("0.40")
    assert len(x_sandbox.snapshot()["posts"]) == 2


def test_a_brand_at_its_budget_makes_no_paid_read(
    x_runtime,
    clock,
    x_sandbox,
    receiver,
) -> None:
    runtime = wire(x_runtime, x_sandbox, receiver.url)
    brand_id = make_brand(runtime, "alpha", ALPHA, products=1, link=False)
    clock.advance(dt.timedelta(days=7))
    publishing.publish_due(runtime, as_of=clock.now())
    budget(runtime, brand_id, "0.01")  # already spent: $0.015
    x_sandbox.add_mention(to_user_id=ALPHA["user_id"], text="@alpha hi", author=FAN)

    polled = mentions.poll_mentions(runtime, as_of=clock.now())
    kpis.rollup(runtime, as_of=clock.now())

    assert polled["skipped"] == 1
    assert x_requests(x_sandbox, "GET /2/users/:id/mentions") == 0
    assert x_requests(x_sandbox, "GET /2/tweets") == 0
    assert [row["operation"] for row in ledger(runtime, brand_id)] == ["post"]


@pytest.mark.parametrize(
    ("own_app", "read_class", "read_usd"),
    [(True, "owned_read", Decimal("0.001")), (False, "post_read", Decimal("0.005"))],
)
def test_the_account_s_own_mentions_are_owned_reads_only_on_its_own_app_metrics_never(
    x_runtime,
    clock,
    x_sandbox,
    receiver,
    own_app,
    read_class,
    read_usd,
) -> None:
    runtime = wire(x_runtime, x_sandbox, receiver.url)
    brand_id = make_brand(runtime, "alpha", ALPHA, products=1, link=False)
    budget(runtime, brand_id, None, x_own_app=own_app)
    clock.advance(dt.timedelta(days=7))
    publishing.publish_due(runtime, as_of=clock.now())
    for text in ("@alpha hi", "@alpha hello"):
        x_sandbox.add_mention(to_user_id=ALPHA["user_id"], text=text, author=FAN)

    mentions.poll_mentions(runtime, as_of=clock.now())
    kpis.rollup(runtime, as_of=clock.now())

    reads = [row for row in ledger(runtime, brand_id) if row["operation"] != "post"]
    # A metric lookup by id is a post read with any app (decision 0022).
    assert reads == [
        {"operation": read_class, "units": 2, "usd": 2 * read_usd, "reserved": False},
        {
            "operation": "post_read",
            "units": 1,
            "usd": Decimal("0.005"),
            "reserved": False,
        },
        {
            "operation": "user_read",
            "units": 1,
            "usd": Decimal("0.010"),
            "reserved": False,
        },
    ]


@pytest.fixture
def api(function_env):
    return make_app("api", "http").test_client()


def patch_brand(api, key: str, body: dict):
    return api.patch(
        "/v1/brand",
        data=json.dumps(body),
        headers=auth(key),
        content_type="application/json",
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"monthly_x_budget_usd": -1}, "monthly_x_budget_usd"),
        ({"monthly_x_budget_usd": "lots"}, "monthly_x_budget_usd"),
        ({"monthly_x_budget_usd": True}, "monthly_x_budget_usd"),
        ({"monthly_x_budget_usd": 0.005}, "monthly_x_budget_usd"),
        ({"monthly_x_budget_usd": "0.015"}, "monthly_x_budget_usd"),
        ({"monthly_x_budget_usd": [5]}, "monthly_x_budget_usd"),
        ({"x_own_app": "yes"}, "x_own_app"),
    ],
)
def test_a_bad_budget_or_own_app_flag_is_a_400_naming_it_and_changes_nothing(
    api, body, field
) -> None:
    created = post_json(api, "/v1/brands", brand_body(), OPERATOR_KEY)
    key = created.get_json()["api_key"]

    response = patch_brand(api, key, {"x_own_app": True, **body})
    creating = post_json(
        api, "/v1/brands", brand_body(slug="other-goods", **body), OPERATOR_KEY
    )

    brand = api.get("/v1/brand", headers=auth(key)).get_json()["brand"]
    assert response.status_code == 400 and field in json.dumps(response.get_json())
    assert creating.status_code == 400
    assert brand["x_own_app"] is False and brand["monthly_x_budget_usd"] is None


def test_the_brand_key_sets_and_clears_its_budget_and_own_app(api) -> None:
    created = post_json(
        api,
        "/v1/brands",
        brand_body(monthly_x_budget_usd=12.5, x_own_app=True),
        OPERATOR_KEY,
    )
    key = created.get_json()["api_key"]

    cleared = patch_brand(api, key, {"monthly_x_budget_usd": None})
    kept_own_app = cleared.get_json()["brand"]["x_own_app"]
    changed = patch_brand(api, key, {"monthly_x_budget_usd": "5", "x_own_app": False})

    assert Decimal(str(created.get_json()["brand"]["monthly_x_budget_usd"])) == 12.5
    assert cleared.get_json()["brand"]["monthly_x_budget_usd"] is None
    assert kept_own_app is True
    assert Decimal(str(changed.get_json()["brand"]["monthly_x_budget_usd"])) == 5
    assert changed.get_json()["brand"]["x_own_app"] is False


def test_a_post_the_reconciler_finds_absent_gives_its_price_back_and_is_paid_once(
    x_runtime, clock, x_sandbox
) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)
    budget(x_runtime, brand_id, "5")
    clock.advance(dt.timedelta(days=7))
    claimed, attempts, _ = publishing._claim(x_runtime, clock.now())
    post = claimed[0]
    publishing._take_turn(x_runtime, post, attempts[post["id"]])  # then it dies
    in_flight = ledger(x_runtime, brand_id)
    clock.advance(dt.timedelta(seconds=x_runtime.settings.publish_lease_s + 1))
    publishing.publish_due(x_runtime, as_of=clock.now())  # the lease ran out

    clock.advance(dt.timedelta(seconds=x_runtime.settings.reconcile_delay_s + 1))
    reconciling.reconcile_then_publish(x_runtime, as_of=clock.now())

    assert in_flight == [
        {
            "operation": "post_with_url",
            "units": 1,
            "usd": Decimal("0.2"),
            "reserved": True,
        }
    ]
    assert states(x_runtime, brand_id) == ["published"]
    assert len(x_sandbox.snapshot()["posts"]) == 1
    assert ledger(x_runtime, brand_id) == [
        {
            "operation": "post_with_url",
            "units": 1,
            "usd": Decimal("0.2"),
            "reserved": False,
        }
    ]


def test_an_x_account_belongs_to_one_brand(api) -> None:
    first = post_json(api, "/v1/brands", brand_body(x_user_id="2002"), OPERATOR_KEY)
    second = post_json(
        api, "/v1/brands", brand_body(slug="second", x_user_id="2002"), OPERATOR_KEY
    )
    third = post_json(api, "/v1/brands", brand_body(slug="third"), OPERATOR_KEY)
    third_key = third.get_json()["api_key"]

    moved = patch_brand(api, third_key, {"x_user_id": "2002"})

    assert first.status_code == 201 and third.status_code == 201
    assert second.status_code == 409
    assert second.get_json()["error"]["field"] == "x_user_id"
    assert (
        "already connected to brand 'test-goods'"
        in (second.get_json()["error"]["message"])
    )
    assert (
        moved.status_code == 409 and moved.get_json()["error"]["field"] == "x_user_id"
    )
    # Only the operator, who created both, is told which brand holds the account.
    assert "test-goods" not in moved.get_json()["error"]["message"]


@pytest.mark.parametrize("token", ["", "   ", None])
def test_an_empty_x_token_is_a_400_and_the_old_one_stays(api, token) -> None:
    created = post_json(api, "/v1/brands", brand_body(), OPERATOR_KEY)
    key = created.get_json()["api_key"]

    response = patch_brand(api, key, {"x_access_token": token})

    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "x_access_token"


def test_a_thread_the_budget_cannot_pay_in_full_is_held_before_its_first_part(
    x_runtime, clock, x_sandbox
) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=2, kind="thread")
    budget(x_runtime, brand_id, "0.25")  # one thread costs 0.015 + 0.20
    clock.advance(dt.timedelta(days=7))

    outcome = publishing.publish_due(x_runtime, as_of=clock.now())

    (waiting,) = held(x_runtime, brand_id)
    assert outcome["published"] == 1 and outcome["held"] == 1
    assert all(part["x_post_id"] is None for part in waiting["parts"])
    assert "(the 2 parts still to send cost $0.215)" in waiting["failure_reason"]
    assert x_requests(x_sandbox, "POST /2/tweets") == 2  # the first thread only


def test_a_held_thread_is_released_only_when_the_budget_fits_all_its_parts(
    x_runtime, clock, x_sandbox
) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=2, kind="thread")
    budget(x_runtime, brand_id, "0.25")
    clock.advance(dt.timedelta(days=7))
    publishing.publish_due(x_runtime, as_of=clock.now())
    budget(x_runtime, brand_id, "0.42")  # $0.205 left: one post, not both parts

    clock.advance(dt.timedelta(minutes=1))
    still = publishing.publish_due(x_runtime, as_of=clock.now())
    budget(x_runtime, brand_id, "0.43")  # $0.215 left: the whole thread fits
    clock.advance(dt.timedelta(minutes=1))
    released = publishing.publish_due(x_runtime, as_of=clock.now())

    with x_runtime.database.transaction() as tx:
        tries = tx.scalar(
            "SELECT count(*) FROM publish_attempts a JOIN posts p ON p.id = a.post_id"
            " WHERE p.brand_id = :b",
            b=brand_id,
        )
    assert still["published"] == 0 and still["held"] == 0
    assert released["published"] == 1
    assert tries == 3  # one per thread sent, one for the first hold: no retry loop


def test_an_unconfirmed_post_at_the_budget_says_its_settling_read_waits(
    x_runtime, clock, x_sandbox
) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)  # a link post
    budget(x_runtime, brand_id, "0.20")
    clock.advance(dt.timedelta(days=7))
    x_sandbox.add_fault(method="POST", path_prefix="/2/tweets", drop=True)
    publishing.publish_due(x_runtime, as_of=clock.now())
    clock.advance(dt.timedelta(hours=1))

    outcome = reconciling.reconcile_unconfirmed(x_runtime)

    with x_runtime.database.transaction() as tx:
        (post,) = posts.list_posts(tx, brand_id=brand_id, state="unconfirmed", limit=5)
    assert outcome["waiting"] == 1
    assert "monthly X budget is spent: raise it" in post["failure_reason"]
    assert f"POST /v1/posts/{post['id']}/settle" in post["failure_reason"]
    assert x_requests(x_sandbox, "GET /2/users/:id/tweets") == 0
