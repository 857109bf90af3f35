"""Storing metric snapshots: one row per post per reading, as the rollup needs it.

The database does the arithmetic where the row is stored (migration 021's trigger,
decision 0021), so every writer gets the same: the growth since the post's previous
snapshot, which the daily rollup sums; clicks X withholds from 30 days on carried
forward from the last known figure; and a snapshot not newer than the post's newest
ignored. Two runs storing the same post take turns on the post's row, so neither
computes its growth against a row the other is about to supersede.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

INSERT_SNAPSHOT = """
INSERT INTO metric_snapshots (post_id, captured_at, impressions, likes, reposts,
    replies, quotes, bookmarks, link_clicks, profile_clicks)
VALUES (:post_id, :captured_at, :impressions, :likes, :reposts, :replies, :quotes,
    :bookmarks, :link_clicks, :profile_clicks)
ON CONFLICT (post_id, captured_at) DO NOTHING
"""


def store_snapshot(
    tx: Any, *, post_id: str, captured_at: dt.datetime, values: Any
) -> bool:
    """Store one post's metrics as read from X at `captured_at`.

    Returns False when the snapshot was ignored: the post already has one taken at
    or after `captured_at` (an overlapping run stored a later reading first).
    """
    stored = tx.execute(
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
    return stored == 1
