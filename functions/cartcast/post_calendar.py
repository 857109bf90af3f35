"""The console's calendar: a brand's posts by day in its time zone, week or month."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from cartcast import posts
from cartcast.db import Transaction

VIEWS = ("week", "month")
POSTS_SHOWN_MAX = 1000
SELECT_POSTS_BETWEEN = (
    posts.POST_COLUMNS
    + """
WHERE brand_id = :brand_id AND in_reply_to IS NULL
  AND COALESCE(published_at, scheduled_at) >= :start
  AND COALESCE(published_at, scheduled_at) < :end
ORDER BY COALESCE(published_at, scheduled_at), id
LIMIT :limit
"""
)


def first_day(view: str, day: dt.date) -> dt.date:
    """Return the Monday of the week, or the first of the month, holding `day`."""
    if view == "month":
        return day.replace(day=1)
    return day - dt.timedelta(days=day.weekday())


def days_of(view: str, start: dt.date) -> list[dt.date]:
    """Return the days the view shows: 7, or every day of the month."""
    if view == "week":
        return [start + dt.timedelta(days=offset) for offset in range(7)]
    following = (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return [
        start + dt.timedelta(days=offset) for offset in range((following - start).days)
    ]


def neighbours(view: str, start: dt.date) -> tuple[dt.date, dt.date]:
    """Return the first days of the previous and the next page."""
    if view == "week":
        return start - dt.timedelta(days=7), start + dt.timedelta(days=7)
    previous = (start - dt.timedelta(days=1)).replace(day=1)
    following = (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return previous, following


def posts_by_day(
    tx: Transaction,
    *,
    brand_id: str,
    time_zone: str,
    days: list[dt.date],
    prices: Mapping[str, Decimal] | None,
) -> dict[dt.date, list[dict[str, Any]]]:
    """Return the posts scheduled or published on each brand-local day."""
    zone = zoneinfo.ZoneInfo(time_zone)
    start = dt.datetime.combine(days[0], dt.time(), zone)
    end = dt.datetime.combine(days[-1] + dt.timedelta(days=1), dt.time(), zone)
    found = tx.rows(
        SELECT_POSTS_BETWEEN,
        brand_id=brand_id,
        start=start,
        end=end,
        limit=POSTS_SHOWN_MAX,
    )

    by_day: dict[dt.date, list[dict[str, Any]]] = {day: [] for day in days}
    for post in found:
        local = (post["published_at"] or post["scheduled_at"]).astimezone(zone)
        shown = posts.with_price(post, prices)
        by_day.setdefault(local.date(), []).append({**shown, "local_time": local})
    return by_day
