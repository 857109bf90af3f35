"""The KPI rollup: snapshots, carried-forward clicks, and days that add up."""

from __future__ import annotations

import datetime as dt

from cartcast import kpis, publishing, snapshots
from tests.helpers import ALPHA, make_brand


def daily(runtime, brand_id: str) -> list[dict]:
    with runtime.database.transaction() as tx:
        return tx.rows(
            "SELECT day, link_clicks, impressions FROM daily_kpis "
            "WHERE brand_id = :brand_id ORDER BY day",
            brand_id=brand_id,
        )


def test_clicks_carry_forward_once_x_stops_showing_them_after_30_days(
    x_runtime, clock
) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)
    clock.advance(dt.timedelta(days=7))
    publishing.publish_due(x_runtime, as_of=clock.now())
    clock.advance(dt.timedelta(days=29))
    kpis.rollup(x_runtime, as_of=clock.now())
    with x_runtime.database.transaction() as tx:
        last = tx.one(
            "SELECT * FROM metric_snapshots ORDER BY captured_at DESC LIMIT 1"
        )

    # X withholds private metrics from 30 days on: the next snapshot has no clicks.
    clock.advance(dt.timedelta(days=1, seconds=1))
    with x_runtime.database.transaction() as tx:
        withheld = {**last, "captured_at": clock.now(), "link_clicks": None}
        withheld["profile_clicks"] = None
        tx.execute(snapshots.INSERT_SNAPSHOT, **withheld)
        kpis.recompute_marked_days(tx, now=clock.now())
        carried = tx.scalar(
            "SELECT link_clicks FROM metric_snapshots ORDER BY captured_at DESC LIMIT 1"
        )

    assert carried == last["link_clicks"] is not None
    assert all(row["link_clicks"] >= 0 for row in daily(x_runtime, brand_id))


def test_running_the_rollup_twice_changes_no_daily_figure(x_runtime, clock) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=2)
    clock.advance(dt.timedelta(days=7))
    publishing.publish_due(x_runtime, as_of=clock.now())
    clock.advance(dt.timedelta(hours=5))
    kpis.rollup(x_runtime, as_of=clock.now())
    first = daily(x_runtime, brand_id)

    kpis.rollup(x_runtime, as_of=clock.now())

    assert daily(x_runtime, brand_id) == first
