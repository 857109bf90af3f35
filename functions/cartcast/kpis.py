"""KPI rollup: metric snapshots from X, order attribution, daily KPIs per brand.

A day is the brand's local calendar day. A day's impressions, engagements and link
clicks are the growth between consecutive snapshots of each post, credited to the
local day of the later snapshot, so re-running the rollup recomputes the same
figures (daily rows are upserted) and no growth is counted twice.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

from cartcast import accounts, attribution, metrics

UPSERT_DAILY_KPIS = """
WITH days AS (
    SELECT CAST(d AS date) AS day
    FROM generate_series(CAST(:first_day AS date), CAST(:last_day AS date),
                         interval '1 day') AS d
),
growth AS (
    SELECT CAST(s.captured_at AT TIME ZONE :tz AS date) AS day,
        s.impressions - COALESCE(LAG(s.impressions) OVER w, 0) AS impressions,
        (s.likes + s.reposts + s.replies + s.quotes + s.bookmarks)
          - COALESCE(LAG(s.likes + s.reposts + s.replies + s.quotes + s.bookmarks)
                     OVER w, 0) AS engagements,
        COALESCE(s.link_clicks, 0) - COALESCE(LAG(s.link_clicks) OVER w, 0)
            AS link_clicks
    FROM metric_snapshots s JOIN posts p ON p.id = s.post_id
    WHERE p.brand_id = :brand_id
    WINDOW w AS (PARTITION BY s.post_id ORDER BY s.captured_at)
),
metrics AS (
    SELECT day, SUM(impressions) AS impressions, SUM(engagements) AS engagements,
        SUM(link_clicks) AS link_clicks
    FROM growth GROUP BY day
),
published AS (
    SELECT CAST(published_at AT TIME ZONE :tz AS date) AS day, COUNT(*) AS posts
    FROM posts WHERE brand_id = :brand_id AND state = 'published' GROUP BY 1
),
sales AS (
    SELECT CAST(ordered_at AT TIME ZONE :tz AS date) AS day,
        COUNT(*) FILTER (WHERE post_id IS NOT NULL) AS attributed,
        COUNT(*) FILTER (WHERE post_id IS NULL) AS unattributed,
        COALESCE(SUM(total_price) FILTER (WHERE post_id IS NOT NULL), 0) AS revenue
    FROM orders WHERE brand_id = :brand_id GROUP BY 1
),
talk AS (
    SELECT CAST(posted_at AT TIME ZONE :tz AS date) AS day, COUNT(*) AS mentions,
        COUNT(*) FILTER (WHERE sentiment = 'negative') AS negative
    FROM mentions WHERE brand_id = :brand_id GROUP BY 1
),
spend AS (
    SELECT CAST(occurred_at AT TIME ZONE :tz AS date) AS day, SUM(usd) AS usd
    FROM cost_ledger WHERE brand_id = :brand_id GROUP BY 1
)
INSERT INTO daily_kpis (brand_id, day, posts_published, impressions, engagements,
    engagement_rate, link_clicks, click_through_rate, attributed_orders, revenue,
    conversion_rate, unattributed_orders, mentions, negative_mentions, followers,
    api_spend_usd, computed_at)
SELECT :brand_id, days.day,
    COALESCE(published.posts, 0),
    COALESCE(metrics.impressions, 0),
    COALESCE(metrics.engagements, 0),
    CASE WHEN metrics.impressions > 0
         THEN ROUND(metrics.engagements::numeric / metrics.impressions, 5) END,
    COALESCE(metrics.link_clicks, 0),
    CASE WHEN metrics.impressions > 0
         THEN ROUND(metrics.link_clicks::numeric / metrics.impressions, 5) END,
    COALESCE(sales.attributed, 0),
    COALESCE(sales.revenue, 0),
    CASE WHEN metrics.link_clicks > 0
         THEN ROUND(COALESCE(sales.attributed, 0)::numeric / metrics.link_clicks, 5)
    END,
    COALESCE(sales.unattributed, 0),
    COALESCE(talk.mentions, 0),
    COALESCE(talk.negative, 0),
    followers.followers,
    COALESCE(spend.usd, 0),
    :now
FROM days
LEFT JOIN metrics ON metrics.day = days.day
LEFT JOIN published ON published.day = days.day
LEFT JOIN sales ON sales.day = days.day
LEFT JOIN talk ON talk.day = days.day
LEFT JOIN spend ON spend.day = days.day
LEFT JOIN account_snapshots followers
    ON followers.brand_id = :brand_id AND followers.local_day = days.day
ON CONFLICT (brand_id, day) DO UPDATE SET
    posts_published = EXCLUDED.posts_published, impressions = EXCLUDED.impressions,
    engagements = EXCLUDED.engagements, engagement_rate = EXCLUDED.engagement_rate,
    link_clicks = EXCLUDED.link_clicks,
    click_through_rate = EXCLUDED.click_through_rate,
    attributed_orders = EXCLUDED.attributed_orders, revenue = EXCLUDED.revenue,
    conversion_rate = EXCLUDED.conversion_rate,
    unattributed_orders = EXCLUDED.unattributed_orders,
    mentions = EXCLUDED.mentions, negative_mentions = EXCLUDED.negative_mentions,
    followers = EXCLUDED.followers, api_spend_usd = EXCLUDED.api_spend_usd,
    computed_at = EXCLUDED.computed_at
"""


def rollup(runtime: Any, *, as_of: dt.datetime) -> dict[str, int]:
    """Snapshot metrics, attribute orders and recompute daily KPIs for every brand.

    Snapshots are stamped with the time they were read, not the tick's: a late or
    redelivered tick reads today's figures, and must not file them under an earlier
    instant. The tick's `as_of` has done its work by then: an event too old to act
    on never gets here.
    """
    now = runtime.clock.now()
    with runtime.database.transaction() as tx:
        connected = accounts.connected_brands(tx)
    totals = {"brands": 0, "snapshots": 0, "attributed": 0, "days": 0}
    for brand in connected:
        paused_until = brand["x_reads_paused_until"]
        if (
            paused_until is None or paused_until <= runtime.clock.now()
        ) and not accounts.over_budget_for_reads(runtime, brand, what="metrics"):
            totals["snapshots"] += metrics.snapshot_brand(runtime, brand, now)
        with runtime.database.transaction() as tx:
            totals["attributed"] += attribution.attribute_pending(
                tx,
                brand_id=brand["id"],
                window_days=runtime.settings.attribution_window_days,
            )
            totals["days"] += recompute_days(runtime, tx, brand, now)
        totals["brands"] += 1
    return totals


def recompute_days(
    runtime: Any, tx: Any, brand: dict[str, Any], now: dt.datetime
) -> int:
    """Upsert the brand's daily KPI rows for the look-back window ending at `now`."""
    last_day = now.astimezone(zoneinfo.ZoneInfo(brand["time_zone"])).date()
    first_day = last_day - dt.timedelta(days=runtime.settings.rollup_lookback_days - 1)
    return tx.execute(
        UPSERT_DAILY_KPIS,
        brand_id=brand["id"],
        tz=brand["time_zone"],
        first_day=first_day,
        last_day=last_day,
        now=runtime.clock.now(),
    )
