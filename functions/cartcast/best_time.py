"""Best time to post: hours of the week ranked by the brand's own history.

An hour of the week is a local weekday (0 = Monday) and hour in the brand's time
zone, computed in SQL with AT TIME ZONE so the process time zone never matters (a
half-hour zone such as Asia/Kolkata groups 13:30 UTC under its local 19:00).

A published post counts towards its hour's sample once its latest metric snapshot
has impressions; replies to mentions do not count. Each hour is scored by the mean
of its posts' engagement rates (likes, reposts, replies, quotes and bookmarks over
impressions); ties go to more attributed orders per post, then to the larger
sample, then to the earlier hour.
Only hours with at least MIN_SAMPLE_POSTS posts are ranked; until one has, the
answer is the brand's configured posting slots, marked as the default. The default
slots not already named by a ranked hour follow the ranked hours, so the list
always offers somewhere to post.
"""

from __future__ import annotations

from typing import Any

from cartcast import brands
from cartcast.db import Transaction

# Three posts is the least that keeps one lucky post from deciding an hour.
MIN_SAMPLE_POSTS = 3

# Only the brand's own posts teach when to post: a reply to a mention goes out when
# the customer wrote and is seen by that conversation, not the brand's followers.
SELECT_HOURS = """
WITH measured AS (
    SELECT p.id,
        CAST(EXTRACT(ISODOW FROM p.published_at AT TIME ZONE :tz) AS integer) - 1
            AS weekday,
        CAST(EXTRACT(HOUR FROM p.published_at AT TIME ZONE :tz) AS integer) AS hour,
        CAST(m.engagements AS double precision) / m.impressions AS engagement_rate
    FROM posts p
    JOIN LATERAL (
        SELECT s.impressions,
            s.likes + s.reposts + s.replies + s.quotes + s.bookmarks AS engagements
        FROM metric_snapshots s WHERE s.post_id = p.id
        ORDER BY s.captured_at DESC LIMIT 1
    ) m ON m.impressions > 0
    WHERE p.brand_id = :brand_id AND p.state = 'published'
      AND p.published_at IS NOT NULL AND p.in_reply_to IS NULL
)
SELECT measured.weekday, measured.hour, COUNT(*) AS posts,
    AVG(measured.engagement_rate) AS engagement_rate,
    COALESCE(SUM(sold.orders), 0) AS orders
FROM measured
LEFT JOIN LATERAL (
    SELECT COUNT(*) AS orders FROM orders o WHERE o.post_id = measured.id
) sold ON true
GROUP BY measured.weekday, measured.hour
"""


def suggest(tx: Transaction, *, brand_id: str) -> dict[str, Any]:
    """Return the brand's hours of the week, best first, and where they came from."""
    brand = brands.get_brand(tx, brand_id)
    hours = tx.rows(SELECT_HOURS, brand_id=brand_id, tz=brand["time_zone"])

    ranked = sorted(
        (_ranked_hour(row) for row in hours if row["posts"] >= MIN_SAMPLE_POSTS),
        key=lambda hour: (
            -hour["engagement_rate"],
            -hour["orders_per_post"],
            -hour["posts"],
            hour["weekday"],
            hour["hour"],
        ),
    )
    listed = {(hour["weekday"], hour["hour"]) for hour in ranked}
    defaults = [
        {
            "weekday": slot["weekday"],
            "hour": int(slot["time"][:2]),
            "time": slot["time"],
            "source": "default",
        }
        for slot in brand["posting_slots"]
        if (slot["weekday"], int(slot["time"][:2])) not in listed
    ]

    return {
        "time_zone": brand["time_zone"],
        "min_sample_posts": MIN_SAMPLE_POSTS,
        "source": "history" if ranked else "default",
        "suggestions": ranked + defaults,
    }


def _ranked_hour(row: dict[str, Any]) -> dict[str, Any]:
    posts = int(row["posts"])
    return {
        "weekday": row["weekday"],
        "hour": row["hour"],
        "time": f"{row['hour']:02d}:00",
        "source": "history",
        "posts": posts,
        "engagement_rate": round(float(row["engagement_rate"]), 5),
        "orders": int(row["orders"]),
        "orders_per_post": round(int(row["orders"]) / posts, 5),
    }
