"""The daily rollup against figures worked out by hand, in a zone that changes clocks.

The brand is in America/New_York, which moved from EST (UTC-5) to EDT (UTC-4) at
02:00 on 2026-03-08. One post, two snapshots three local days apart across that
change, orders, spend, mentions and follower counts; every expected figure below is
computed by hand in the comments beside it.
"""

from __future__ import annotations

import datetime as dt
import threading
import types
import uuid
from decimal import Decimal

from cartcast import attribution, brands, kpis, orders, snapshots
from tests.helpers import brand_body

UTC = dt.UTC
# 21:00 EST on Thursday 2026-03-05.
PUBLISHED_AT = dt.datetime(2026, 3, 6, 2, 0, tzinfo=UTC)
# 23:30 EST on 2026-03-05: a UTC calendar would call it the 6th.
FIRST_SNAPSHOT_AT = dt.datetime(2026, 3, 6, 4, 30, tzinfo=UTC)
# 00:30 EDT on 2026-03-09: a zone fixed at EST would call it 23:30 on the 8th.
SECOND_SNAPSHOT_AT = dt.datetime(2026, 3, 9, 4, 30, tzinfo=UTC)
MARCH_5, MARCH_8, MARCH_9 = (dt.date(2026, 3, day) for day in (5, 8, 9))
FIGURES = (
    "day, posts_published, impressions, engagements, engagement_rate, link_clicks, "
    "click_through_rate, attributed_orders, revenue, conversion_rate, "
    "unattributed_orders, mentions, negative_mentions, followers, follower_change, "
    "api_spend_usd, cost_per_attributed_order_usd"
)
SELECT_DAYS = (
    f"SELECT {FIGURES}, computed_at FROM daily_kpis "
    "WHERE brand_id = :brand_id ORDER BY day"
)


def metrics(impressions: int, likes: int, link_clicks: int | None, **rest: int):
    """The values metrics.py hands to store_snapshot."""
    values = {"reposts": 0, "replies": 0, "quotes": 0, "bookmarks": 0, **rest}
    return types.SimpleNamespace(
        impressions=impressions,
        likes=likes,
        link_clicks=link_clicks,
        profile_clicks=None,
        **values,
    )


def make_fixture(runtime) -> dict[str, str]:
    """Store the fixture the module docstring describes; return the ids."""
    now = runtime.clock.now()
    with runtime.database.transaction() as tx:
        created = brands.create_brand(
            tx, brand_body(slug="dst", name="DST", x_user_id=None), now=now
        )
        brand_id = str(created["brand"]["id"])
        post_id = str(uuid.uuid4())
        tx.execute(
            "INSERT INTO posts (id, brand_id, text, state, engine, weighted_length, "
            "published_at, created_by, created_at, updated_at) "
            "VALUES (:id, :brand_id, 'rollup', 'published', 'manual', 6, "
            ":at, 'test', :at, :at)",
            id=post_id,
            brand_id=brand_id,
            at=PUBLISHED_AT,
        )
        # Engagements 10 + 2 + 1 + 0 + 1 = 14; then 30 + 5 + 4 + 1 + 2 = 42.
        first = metrics(100, 10, 5, reposts=2, replies=1, bookmarks=1)
        second = metrics(400, 30, 20, reposts=5, replies=4, quotes=1, bookmarks=2)
        for at, values in ((FIRST_SNAPSHOT_AT, first), (SECOND_SNAPSHOT_AT, second)):
            snapshots.store_snapshot(tx, post_id=post_id, captured_at=at, values=values)

        at_9 = dt.datetime(2026, 3, 9, 14, 0, tzinfo=UTC)  # 10:00 EDT on the 9th
        add_order(tx, brand_id, "attributed", at_9, "50.00", post_id=post_id)
        add_order(tx, brand_id, "unattributed", at_9, "20.00")
        for at, usd in (
            (PUBLISHED_AT, "0.2000"),  # 21:00 EST on the 5th
            (at_9, "0.2000"),
            (at_9 + dt.timedelta(hours=1), "0.0500"),
        ):
            tx.execute(
                "INSERT INTO cost_ledger (brand_id, occurred_at, service, operation, "
                "units, usd, ref) VALUES (:brand_id, :at, 'x', 'post_create_url', 1, "
                ":usd, :ref)",
                brand_id=brand_id,
                at=at,
                usd=Decimal(usd),
                ref=str(uuid.uuid4()),
            )
        for number, sentiment in enumerate(("negative", "positive")):
            tx.execute(
                "INSERT INTO mentions (brand_id, x_post_id, author_id, text, "
                "posted_at, received_at, sentiment) "
                "VALUES (:brand_id, :x_id, '7', 'hi', :at, :at, :sentiment)",
                brand_id=brand_id,
                x_id=f"19000000000000000{number}",
                at=at_9 + dt.timedelta(hours=2),
                sentiment=sentiment,
            )
        for day, followers in ((MARCH_8, 1000), (MARCH_9, 1012)):
            tx.execute(
                "INSERT INTO account_snapshots (brand_id, local_day, captured_at, "
                "followers) VALUES (:brand_id, :day, :at, :followers)",
                brand_id=brand_id,
                day=day,
                at=SECOND_SNAPSHOT_AT,
                followers=followers,
            )
    return {"brand_id": brand_id, "post_id": post_id}


def add_order(
    tx,
    brand_id: str,
    external_id: str,
    at: dt.datetime,
    total: str,
    *,
    post_id: str | None = None,
    landing_site: str | None = None,
) -> None:
    order_id = tx.scalar(
        orders.INSERT_ORDER,
        brand_id=brand_id,
        external_id=external_id,
        name=None,
        ordered_at=at,
        currency="USD",
        total_price=Decimal(total),
        landing_site=landing_site,
        referring_site=None,
        customer_id=None,
        line_items="[]",
        now=at,
        webhook_id=None,
        refunded_in_file=None,
    )
    if post_id is not None:
        tx.execute(
            "UPDATE orders SET post_id = :post_id WHERE id = :id",
            post_id=post_id,
            id=order_id,
        )


def roll_up(runtime) -> int:
    with runtime.database.transaction() as tx:
        return kpis.recompute_marked_days(tx, now=runtime.clock.now())


def days(runtime, brand_id: str) -> dict[dt.date, dict]:
    with runtime.database.transaction() as tx:
        return {row["day"]: row for row in tx.rows(SELECT_DAYS, brand_id=brand_id)}


def figures(row: dict) -> dict:
    return {name: value for name, value in row.items() if name != "computed_at"}


EXPECTED = {
    MARCH_5: {
        "day": MARCH_5,
        "posts_published": 1,
        "impressions": 100,  # the first snapshot's whole figure
        "engagements": 14,
        "engagement_rate": Decimal("0.14000"),  # 14 / 100
        "link_clicks": 5,
        "click_through_rate": Decimal("0.05000"),  # 5 / 100
        "attributed_orders": 0,
        "revenue": Decimal("0.00"),
        "conversion_rate": Decimal("0.00000"),  # 0 orders / 5 clicks
        "unattributed_orders": 0,
        "mentions": 0,
        "negative_mentions": 0,
        "followers": None,
        "follower_change": None,
        "api_spend_usd": Decimal("0.2000"),
        "cost_per_attributed_order_usd": None,  # no attributed order
    },
    # Marked by its follower count alone; the 7th has none, so no change is known.
    MARCH_8: {
        "day": MARCH_8,
        "posts_published": 0,
        "impressions": 0,
        "engagements": 0,
        "engagement_rate": None,
        "link_clicks": 0,
        "click_through_rate": None,
        "attributed_orders": 0,
        "revenue": Decimal("0.00"),
        "conversion_rate": None,
        "unattributed_orders": 0,
        "mentions": 0,
        "negative_mentions": 0,
        "followers": 1000,
        "follower_change": None,
        "api_spend_usd": Decimal("0.0000"),
        "cost_per_attributed_order_usd": None,
    },
    MARCH_9: {
        "day": MARCH_9,
        "posts_published": 0,
        "impressions": 300,  # 400 - 100: the growth over three days
        "engagements": 28,  # 42 - 14
        "engagement_rate": Decimal("0.09333"),  # 28 / 300
        "link_clicks": 15,  # 20 - 5
        "click_through_rate": Decimal("0.05000"),  # 15 / 300
        "attributed_orders": 1,
        "revenue": Decimal("50.00"),
        "conversion_rate": Decimal("0.06667"),  # 1 / 15
        "unattributed_orders": 1,
        "mentions": 2,
        "negative_mentions": 1,
        "followers": 1012,
        "follower_change": 12,  # 1012 - 1000 on the 8th
        "api_spend_usd": Decimal("0.2500"),  # 0.20 + 0.05
        "cost_per_attributed_order_usd": Decimal("0.2500"),  # 0.25 / 1
    },
}


def test_the_rollup_credits_growth_to_the_later_snapshots_local_day_across_dst(
    runtime,
) -> None:
    ids = make_fixture(runtime)

    roll_up(runtime)

    rows = days(runtime, ids["brand_id"])
    assert {day: figures(row) for day, row in rows.items()} == EXPECTED


def test_rolling_up_a_day_again_replaces_its_row_and_adds_nothing(
    runtime, clock
) -> None:
    ids = make_fixture(runtime)
    roll_up(runtime)
    first = days(runtime, ids["brand_id"])

    clock.advance(dt.timedelta(hours=1))
    with runtime.database.transaction() as tx:
        for day in first:
            tx.execute(
                "INSERT INTO kpi_marks (brand_id, day) VALUES (:brand_id, :day)",
                brand_id=ids["brand_id"],
                day=day,
            )
    written = roll_up(runtime)

    again = days(runtime, ids["brand_id"])
    assert written == 3
    assert {day: figures(row) for day, row in again.items()} == EXPECTED
    assert all(row["computed_at"] == clock.now() for row in again.values())


def test_a_late_order_changes_only_its_own_day(runtime, clock) -> None:
    ids = make_fixture(runtime)
    roll_up(runtime)
    before = days(runtime, ids["brand_id"])

    # Days later an order placed at 22:00 EST on the 5th arrives through the post's
    # link; attribution credits it when it is tried.
    clock.advance(dt.timedelta(days=10))
    landing = (
        "/products/mug?utm_source=x&utm_medium=social&utm_campaign=spring"
        f"&utm_content={ids['post_id']}"
    )
    with runtime.database.transaction() as tx:
        add_order(
            tx,
            ids["brand_id"],
            "late",
            dt.datetime(2026, 3, 6, 3, 0, tzinfo=UTC),
            "30.00",
            landing_site=landing,
        )
    with runtime.database.transaction() as tx:
        credited = attribution.attribute_pending(
            tx, brand_id=ids["brand_id"], window_days=7
        )
    written = roll_up(runtime)

    after = days(runtime, ids["brand_id"])
    assert credited == 1
    assert written == 1
    assert figures(after[MARCH_5]) == {
        **EXPECTED[MARCH_5],
        "attributed_orders": 1,
        "revenue": Decimal("30.00"),
        "conversion_rate": Decimal("0.20000"),  # 1 order / 5 clicks
        "cost_per_attributed_order_usd": Decimal("0.2000"),  # 0.20 / 1
    }
    assert after[MARCH_5]["computed_at"] == clock.now()
    assert after[MARCH_8] == before[MARCH_8]
    assert after[MARCH_9] == before[MARCH_9]


def test_a_snapshot_older_than_the_posts_newest_is_ignored(runtime) -> None:
    ids = make_fixture(runtime)

    with runtime.database.transaction() as tx:
        stored = snapshots.store_snapshot(
            tx,
            post_id=ids["post_id"],
            captured_at=SECOND_SNAPSHOT_AT - dt.timedelta(hours=1),
            values=metrics(350, 25, 18),
        )
    roll_up(runtime)

    assert stored is False
    rows = days(runtime, ids["brand_id"])
    assert {day: figures(row) for day, row in rows.items()} == EXPECTED


def test_two_runs_storing_one_post_take_turns_on_its_previous_snapshot(
    runtime,
) -> None:
    ids = make_fixture(runtime)
    later = SECOND_SNAPSHOT_AT + dt.timedelta(hours=1)
    latest = SECOND_SNAPSHOT_AT + dt.timedelta(hours=2)
    second_run_done = threading.Event()

    def second_run() -> None:
        with runtime.database.transaction() as tx:
            snapshots.store_snapshot(
                tx,
                post_id=ids["post_id"],
                captured_at=latest,
                values=metrics(700, 30, 20),
            )
        second_run_done.set()

    # The first run stores its reading and, before it commits, a second run stores a
    # later one: the second waits for the first, then grows from its row.
    with runtime.database.transaction() as tx:
        snapshots.store_snapshot(
            tx, post_id=ids["post_id"], captured_at=later, values=metrics(500, 30, 20)
        )
        waiter = threading.Thread(target=second_run)
        waiter.start()
        wait_until_a_statement_waits_for_a_lock(runtime)
        assert not second_run_done.is_set()
    waiter.join()

    with runtime.database.transaction() as tx:
        growth = tx.rows(
            "SELECT captured_at, impressions_growth FROM metric_snapshots "
            "WHERE post_id = :post_id ORDER BY captured_at",
            post_id=ids["post_id"],
        )
    assert [row["impressions_growth"] for row in growth] == [100, 300, 100, 200]


def wait_until_a_statement_waits_for_a_lock(runtime) -> None:
    """Poll pg_stat_activity until another session of this database waits on a lock."""
    while True:
        with runtime.database.transaction() as tx:
            waiting = tx.scalar(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        if waiting:
            return


def test_a_score_and_a_follower_count_stored_late_rewrite_the_days_they_move(
    runtime,
) -> None:
    ids = make_fixture(runtime)
    roll_up(runtime)

    # Scoring turns the positive mention of the 9th negative; the 7th's follower
    # count arrives after the 8th's, which now has a day before to compare with.
    with runtime.database.transaction() as tx:
        tx.execute(
            "UPDATE mentions SET sentiment = 'negative' WHERE brand_id = :brand_id",
            brand_id=ids["brand_id"],
        )
        tx.execute(
            "INSERT INTO account_snapshots (brand_id, local_day, captured_at, "
            "followers) VALUES (:brand_id, :day, :at, 990)",
            brand_id=ids["brand_id"],
            day=dt.date(2026, 3, 7),
            at=SECOND_SNAPSHOT_AT,
        )
    written = roll_up(runtime)

    rows = days(runtime, ids["brand_id"])
    assert written == 3  # the 7th, the 8th and the 9th
    assert rows[dt.date(2026, 3, 7)]["followers"] == 990
    assert rows[MARCH_8]["follower_change"] == 10  # 1000 - 990
    assert rows[MARCH_9]["negative_mentions"] == 2
    assert figures(rows[MARCH_5]) == EXPECTED[MARCH_5]


def new_brand(tx, now, slug: str, zone: str = "UTC") -> str:
    created = brands.create_brand(
        tx, brand_body(slug=slug, name=slug, time_zone=zone, x_user_id=None), now=now
    )
    return str(created["brand"]["id"])


def new_post(tx, brand_id: str, at: dt.datetime) -> str:
    post_id = str(uuid.uuid4())
    tx.execute(
        "INSERT INTO posts (id, brand_id, text, state, engine, weighted_length, "
        "published_at, created_by, created_at, updated_at) "
        "VALUES (:id, :brand_id, 'p', 'published', 'manual', 1, :at, 'test', :at, :at)",
        id=post_id,
        brand_id=brand_id,
        at=at,
    )
    return post_id


def snap(tx, post_id: str, at: dt.datetime, impressions: int, likes: int, clicks=None):
    snapshots.store_snapshot(
        tx, post_id=post_id, captured_at=at, values=metrics(impressions, likes, clicks)
    )


def marked_days(runtime, brand_id: str) -> list[dt.date]:
    with runtime.database.transaction() as tx:
        return [
            row["day"]
            for row in tx.rows(
                "SELECT DISTINCT day FROM kpi_marks WHERE brand_id = :b ORDER BY day",
                b=brand_id,
            )
        ]


def at(day: int, hour: int = 12) -> dt.datetime:
    return dt.datetime(2026, 3, day, hour, tzinfo=UTC)


def test_a_rate_of_a_thousand_or_more_is_stored_whole(runtime) -> None:
    # Day 2: p recounted 6000 -> 1000 impressions (-5000), q grew 0 -> 5001 and
    # gained 1500 likes: 1 impression and 1500 engagements, a rate of 1500.
    with runtime.database.transaction() as tx:
        brand_id = new_brand(tx, runtime.clock.now(), "recount")
        p, q = new_post(tx, brand_id, at(1, 1)), new_post(tx, brand_id, at(1, 1))
        snap(tx, p, at(1, 2), 6000, 10)
        snap(tx, q, at(1, 2), 0, 0)
        snap(tx, p, at(2, 2), 1000, 10)
        snap(tx, q, at(2, 3), 5001, 1500)
    roll_up(runtime)
    day_2 = days(runtime, brand_id)[dt.date(2026, 3, 2)]
    assert (day_2["impressions"], day_2["engagements"]) == (1, 1500)
    assert day_2["engagement_rate"] == Decimal("1500.00000")


def test_a_day_recounted_down_keeps_signed_growth_and_no_rate(runtime) -> None:
    # Day 2: p 1000 -> 900 impressions, 50 -> 45 likes, 40 -> 30 clicks; q grows
    # 10 -> 220 impressions and 0 -> 2 likes. The day: 110 impressions, -3
    # engagements, -10 clicks. A negative numerator or a denominator not above 0
    # has no rate.
    with runtime.database.transaction() as tx:
        brand_id = new_brand(tx, runtime.clock.now(), "down")
        p, q = new_post(tx, brand_id, at(1, 1)), new_post(tx, brand_id, at(1, 1))
        snap(tx, p, at(1, 2), 1000, 50, 40)
        snap(tx, q, at(1, 2), 10, 0, 0)
        snap(tx, p, at(2, 2), 900, 45, 30)
        snap(tx, q, at(2, 3), 220, 2, 0)
        add_order(tx, brand_id, "d2", at(2), "10.00", post_id=p)
    roll_up(runtime)
    day_2 = days(runtime, brand_id)[dt.date(2026, 3, 2)]
    assert (day_2["impressions"], day_2["engagements"], day_2["link_clicks"]) == (
        110,
        -3,
        -10,
    )
    assert day_2["engagement_rate"] is None
    assert day_2["click_through_rate"] is None
    assert day_2["conversion_rate"] is None
    assert day_2["attributed_orders"] == 1


def test_one_brands_failure_leaves_every_other_brand_rolled_up(runtime) -> None:
    with runtime.database.transaction() as tx:
        healthy = new_brand(tx, runtime.clock.now(), "healthy")
        broken = new_brand(tx, runtime.clock.now(), "broken")
        # Day 1 falls in one chunk for both brands; 20 April in a later one.
        for brand_id in (healthy, broken):
            add_order(tx, brand_id, "first", at(1), "10.00")
            add_order(
                tx, brand_id, "later", dt.datetime(2026, 4, 20, tzinfo=UTC), "5.00"
            )
        # A zone PostgreSQL does not know makes that brand's recompute fail.
        tx.execute(
            "UPDATE brands SET time_zone = 'Nowhere/Atlantis' WHERE id = :b", b=broken
        )
    totals = kpis.recompute_in_chunks(runtime.database, now=runtime.clock.now())
    assert totals["failed_brands"] == 1
    rolled_up = days(runtime, healthy)
    assert rolled_up[dt.date(2026, 3, 1)]["unattributed_orders"] == 1
    assert rolled_up[dt.date(2026, 4, 20)]["unattributed_orders"] == 1
    assert marked_days(runtime, healthy) == []
    assert days(runtime, broken) == {}
    assert marked_days(runtime, broken) == [dt.date(2026, 3, 1), dt.date(2026, 4, 20)]


def test_a_chunk_takes_at_most_its_days_and_commits_them(runtime) -> None:
    with runtime.database.transaction() as tx:
        brand_id = new_brand(tx, runtime.clock.now(), "chunks")
        for day in (1, 2, 3, 5, 9):
            add_order(tx, brand_id, f"o{day}", at(day), "10.00")
    now = runtime.clock.now()
    with runtime.database.transaction() as tx:
        tx.scalar(kpis.LOCK_RECOMPUTE)
        taken = kpis.recompute_chunk(tx, brand_id=brand_id, now=now, chunk_days=3)
    # The 1st, 2nd and 3rd lie within three days of the first mark; the rest wait.
    assert taken == (3, 3)
    assert marked_days(runtime, brand_id) == [dt.date(2026, 3, 5), dt.date(2026, 3, 9)]
    totals = kpis.recompute_in_chunks(runtime.database, now=now, chunk_days=2)
    assert totals == {"days": 2, "failed_brands": 0}
    assert sorted(days(runtime, brand_id)) == [
        dt.date(2026, 3, d) for d in (1, 2, 3, 5, 9)
    ]


def test_the_next_chunk_grows_while_chunks_are_quick_and_shrinks_when_one_is_slow():
    target_s = kpis.CHUNK_TARGET_S

    quick = kpis.next_chunk_days(31, target_s / 4)
    steady = kpis.next_chunk_days(31, target_s * 3 / 4)
    slow = kpis.next_chunk_days(31, target_s * 2)

    assert (quick, steady, slow) == (62, 31, 15)
    assert kpis.next_chunk_days(300, 0.0, most=366) == 366
    assert kpis.next_chunk_days(1, target_s * 10) == 1


def test_chunks_growing_from_one_day_rewrite_every_marked_day_once(runtime) -> None:
    with runtime.database.transaction() as tx:
        brand_id = new_brand(tx, runtime.clock.now(), "growing")
        for day in range(1, 13):
            add_order(tx, brand_id, f"g{day}", at(day), "10.00")

    totals = kpis.recompute_in_chunks(
        runtime.database, now=runtime.clock.now(), chunk_days=1, max_chunk_days=4
    )

    assert totals == {"days": 12, "failed_brands": 0}
    assert marked_days(runtime, brand_id) == []
    rows = days(runtime, brand_id)
    assert sorted(rows) == [dt.date(2026, 3, d) for d in range(1, 13)]
    assert {row["unattributed_orders"] for row in rows.values()} == {1}


def test_the_recompute_plans_only_its_own_transactions(runtime) -> None:
    with runtime.database.transaction() as tx:
        add_order(tx, new_brand(tx, runtime.clock.now(), "planned"), "p", at(1), "1")

    kpis.recompute_in_chunks(runtime.database, now=runtime.clock.now())

    # JIT and sorts are turned off with set_config(..., true): the next
    # transaction on the same pooled connection plans with the server's defaults.
    with runtime.database.transaction() as tx:
        after = tx.one(
            "SELECT current_setting('enable_sort') AS enable_sort, "
            "current_setting('plan_cache_mode') AS plan_cache_mode"
        )
    assert after == {"enable_sort": "on", "plan_cache_mode": "auto"}


def test_deleting_an_order_or_a_post_rewrites_the_days_they_counted_on(
    runtime,
) -> None:
    with runtime.database.transaction() as tx:
        brand_id = new_brand(tx, runtime.clock.now(), "deletes")
        post_id = new_post(tx, brand_id, at(1, 1))
        snap(tx, post_id, at(1, 2), 100, 5)
        snap(tx, post_id, at(2, 2), 150, 5)
        add_order(tx, brand_id, "gone", at(1), "40.00", post_id=post_id)
    roll_up(runtime)
    with runtime.database.transaction() as tx:
        tx.execute("DELETE FROM orders WHERE external_id = 'gone'")
    assert marked_days(runtime, brand_id) == [dt.date(2026, 3, 1)]
    roll_up(runtime)
    day_1 = days(runtime, brand_id)[dt.date(2026, 3, 1)]
    assert (day_1["attributed_orders"], day_1["revenue"]) == (0, Decimal("0.00"))

    with runtime.database.transaction() as tx:
        tx.execute("DELETE FROM posts WHERE id = :id", id=post_id)
    assert marked_days(runtime, brand_id) == [dt.date(2026, 3, 1), dt.date(2026, 3, 2)]
    roll_up(runtime)
    rows = days(runtime, brand_id)
    assert (
        rows[dt.date(2026, 3, 1)]["posts_published"],
        rows[dt.date(2026, 3, 1)]["impressions"],
    ) == (0, 0)
    assert rows[dt.date(2026, 3, 2)]["impressions"] == 0


def new_reply(tx, brand_id: str, at: dt.datetime) -> str:
    reply_id = str(uuid.uuid4())
    tx.execute(
        "INSERT INTO posts (id, brand_id, text, state, engine, weighted_length, "
        "published_at, in_reply_to, reply_conversation_id, created_by, "
        "created_at, updated_at) "
        "VALUES (:id, :brand_id, 'thanks!', 'published', 'manual', 7, :at, "
        "'1900000000000000000', '1900000000000000000', 'test', :at, :at)",
        id=reply_id,
        brand_id=brand_id,
        at=at,
    )
    return reply_id


def test_a_reply_to_a_mention_counts_as_a_reply_not_as_a_post(runtime) -> None:
    # One post and one reply to a mention, both published at 21:00 EST on the 5th.
    ids = make_fixture(runtime)
    with runtime.database.transaction() as tx:
        new_reply(tx, ids["brand_id"], PUBLISHED_AT)

    roll_up(runtime)

    march_5 = days(runtime, ids["brand_id"])[MARCH_5]
    with runtime.database.transaction() as tx:
        replies = tx.scalar(
            "SELECT replies_published FROM daily_kpis "
            "WHERE brand_id = :brand_id AND day = :day",
            brand_id=ids["brand_id"],
            day=MARCH_5,
        )
    assert (march_5["posts_published"], replies) == (1, 1)


def test_a_replys_impressions_and_engagements_are_kept_apart_from_the_posts(
    runtime,
) -> None:
    # Day 1: the post reaches 1000 impressions with 20 likes and 10 clicks; the
    # reply 50 impressions with 30 likes. The day's post figures are the post's
    # alone (a rate of 20 / 1000, not 50 / 1050); the reply's stand apart.
    with runtime.database.transaction() as tx:
        brand_id = new_brand(tx, runtime.clock.now(), "apart")
        post = new_post(tx, brand_id, at(1, 1))
        reply = new_reply(tx, brand_id, at(1, 1))
        snap(tx, post, at(1, 2), 1000, 20, 10)
        snap(tx, reply, at(1, 2), 50, 30, 0)

    roll_up(runtime)

    with runtime.database.transaction() as tx:
        day_1 = tx.one(
            "SELECT * FROM daily_kpis WHERE brand_id = :brand_id AND day = :day",
            brand_id=brand_id,
            day=dt.date(2026, 3, 1),
        )
    assert (day_1["posts_published"], day_1["impressions"], day_1["engagements"]) == (
        1,
        1000,
        20,
    )
    assert day_1["engagement_rate"] == Decimal("0.02000")
    assert (day_1["link_clicks"], day_1["click_through_rate"]) == (
        10,
        Decimal("0.01000"),
    )
    assert {
        name: day_1.get(name)
        for name in ("replies_published", "reply_impressions", "reply_engagements")
    } == {"replies_published": 1, "reply_impressions": 50, "reply_engagements": 30}
