"""Storing metric snapshots: one row per post per reading, as the rollup needs it."""

from __future__ import annotations

import datetime as dt
from typing import Any

# X withholds clicks once a post is 30 days old; the last known figure then carries
# forward, so a day never shows clicks taken back.
INSERT_SNAPSHOT = """
INSERT INTO metric_snapshots (post_id, captured_at, impressions, likes, reposts,
    replies, quotes, bookmarks, link_clicks, profile_clicks)
SELECT :post_id, :captured_at, :impressions, :likes, :reposts, :replies, :quotes,
    :bookmarks,
    COALESCE(CAST(:link_clicks AS bigint), last.link_clicks),
    COALESCE(CAST(:profile_clicks AS bigint), last.profile_clicks)
FROM (SELECT 1) AS one
LEFT JOIN LATERAL (
    SELECT link_clicks, profile_clicks FROM metric_snapshots
    WHERE post_id = :post_id AND captured_at < :captured_at
    ORDER BY captured_at DESC LIMIT 1
) AS last ON true
ON CONFLICT (post_id, captured_at) DO NOTHING
"""


def store_snapshot(
    tx: Any, *, post_id: str, captured_at: dt.datetime, values: Any
) -> None:
    """Store one post's metrics as read from X at `captured_at`."""
    tx.execute(
        INSERT_SNAPSHOT,
        post_id=post_id,
        captured_at=captured_at,
        impressions=values.impressions,
        likes=values.likes,
        reposts=values.reposts,
        replies=values.replies,
        quotes=values.quotes,
        bookmarks=values.bookmarks,
        link_clicks=values.link_clicks,
        profile_clicks=values.profile_clicks,
    )
