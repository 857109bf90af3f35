"""Metric snapshots: read published posts' metrics and the account's followers from X.

What is read is stored by `snapshots.store_snapshot`; the daily rollup works from there.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from typing import Any

from cartcast import accounts, costs, snapshots
from cartcast.errors import CartcastError

# X serves link and profile clicks only for posts younger than 30 days (X API v2
# metrics documentation); older posts keep their last snapshot.
METRICS_WINDOW_DAYS = 30

SELECT_RECENT_POSTS = """
SELECT id, x_post_id FROM posts
WHERE brand_id = :brand_id AND state = 'published' AND published_at > :since
ORDER BY published_at
"""
INSERT_FOLLOWERS = """
INSERT INTO account_snapshots (brand_id, local_day, captured_at, followers)
VALUES (:brand_id, :local_day, :captured_at, :followers)
ON CONFLICT (brand_id, local_day) DO NOTHING
"""
HAS_FOLLOWERS = """
SELECT 1 FROM account_snapshots WHERE brand_id = :brand_id AND local_day = :local_day
"""


def snapshot_brand(runtime: Any, brand: dict[str, Any], now: dt.datetime) -> int:
    """Read recent posts' metrics and today's followers; return posts read."""
    client = runtime.x_client(brand["x_access_token"])
    local_day = now.astimezone(zoneinfo.ZoneInfo(brand["time_zone"])).date()
    with runtime.database.transaction() as tx:
        posts = tx.rows(
            SELECT_RECENT_POSTS,
            brand_id=brand["id"],
            since=now - dt.timedelta(days=METRICS_WINDOW_DAYS),
        )
        needs_followers = (
            tx.one(HAS_FOLLOWERS, brand_id=brand["id"], local_day=local_day) is None
        )

    by_x_id = {post["x_post_id"]: post["id"] for post in posts}
    try:
        metrics = client.post_metrics(list(by_x_id)) if by_x_id else {}
        followers = (
            client.followers_count(brand["x_user_id"]) if needs_followers else None
        )
    except CartcastError as error:
        # One brand's trouble with X (rate limit, revoked token, outage) skips its
        # snapshot this time; orders and daily KPIs are still brought up to date.
        accounts.note_read_trouble(runtime, brand, error, what="metrics")
        return 0

    with runtime.database.transaction() as tx:
        for x_id, values in metrics.items():
            snapshots.store_snapshot(
                tx, post_id=by_x_id[x_id], captured_at=now, values=values
            )
        # The account's own posts' metrics are an owned read with the brand's own
        # X app; the follower count is a user lookup, priced as a user read.
        prices, read_class = (
            runtime.settings.x_prices_usd,
            costs.read_class(own_app=brand["x_own_app"]),
        )
        reads = [(read_class, len(metrics))]
        reads.append(("user_read", 1 if followers is not None else 0))
        for price_class, units in reads:
            costs.record(
                tx,
                brand_id=brand["id"],
                occurred_at=now,
                operation=price_class,
                units=units,
                usd=costs.price(prices, price_class, units),
                ref=f"metrics:{uuid.uuid4()}",
            )
        if followers is not None:
            tx.execute(
                INSERT_FOLLOWERS,
                brand_id=brand["id"],
                local_day=local_day,
                captured_at=now,
                followers=followers,
            )
    return len(metrics)
