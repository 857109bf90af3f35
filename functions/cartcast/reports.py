"""Reports read back what the rollup wrote: KPIs per day, revenue per post."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cartcast.db import Transaction

SELECT_DAILY = """
SELECT day, posts_published, impressions, engagements, engagement_rate, link_clicks,
    click_through_rate, attributed_orders, revenue, conversion_rate,
    unattributed_orders, mentions, negative_mentions, followers, api_spend_usd,
    computed_at
FROM daily_kpis
WHERE brand_id = :brand_id AND day BETWEEN :first_day AND :last_day
ORDER BY day
"""
SELECT_POST_REVENUE = """
SELECT p.id, p.text, p.published_at, p.x_post_id, p.engine,
    COALESCE(m.impressions, 0) AS impressions,
    COALESCE(m.engagements, 0) AS engagements,
    COALESCE(m.link_clicks, 0) AS link_clicks,
    COUNT(o.id) AS orders,
    COALESCE(SUM(o.total_price), 0) AS revenue
FROM posts p
LEFT JOIN LATERAL (
    SELECT s.impressions, s.likes + s.reposts + s.replies + s.quotes + s.bookmarks
               AS engagements, s.link_clicks
    FROM metric_snapshots s WHERE s.post_id = p.id
    ORDER BY s.captured_at DESC LIMIT 1
) m ON true
LEFT JOIN orders o ON o.post_id = p.id
WHERE p.brand_id = :brand_id AND p.state = 'published'
GROUP BY p.id, m.impressions, m.engagements, m.link_clicks
ORDER BY revenue DESC, p.published_at
LIMIT :limit
"""
SELECT_MENTION_SUMMARY = """
SELECT COALESCE(sentiment, 'unscored') AS sentiment,
    COALESCE(intent, 'unscored') AS intent,
    COUNT(*) AS mentions, COUNT(*) FILTER (WHERE escalate) AS escalated
FROM mentions WHERE brand_id = :brand_id
GROUP BY 1, 2 ORDER BY 1, 2
"""


def daily(
    tx: Transaction, *, brand_id: str, first_day: dt.date, last_day: dt.date
) -> list[dict[str, Any]]:
    return tx.rows(
        SELECT_DAILY, brand_id=brand_id, first_day=first_day, last_day=last_day
    )


def post_revenue(tx: Transaction, *, brand_id: str, limit: int) -> list[dict[str, Any]]:
    return tx.rows(SELECT_POST_REVENUE, brand_id=brand_id, limit=limit)


def mention_summary(tx: Transaction, *, brand_id: str) -> list[dict[str, Any]]:
    return tx.rows(SELECT_MENTION_SUMMARY, brand_id=brand_id)
