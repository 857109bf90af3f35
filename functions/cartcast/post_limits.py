"""The governor that keeps publishing under X's post limits, before X says 429.

X limits POST /2/tweets per user (the brand's X account) per 15 minutes and per
3 hours, and per developer app per 24 hours (decision 0010 gives the figures and
their source; the settings CARTCAST_X_POSTS_PER_15MIN_PER_USER,
CARTCAST_X_POSTS_PER_3H_PER_USER and CARTCAST_X_POSTS_PER_24H_PER_APP hold them).
Every post or thread part handed to X leaves a row in `x_post_intents`, written in
the same commit as its intent, and the windows are counted from those rows, so
concurrent publishers share one count:

- the user windows are checked under the brand's row lock;
- the shared app's window under a transaction-level advisory lock that every
  publisher takes after its brand's lock (always in that order, so two
  publishers never wait on each other in a circle);
- a brand that brings its own X developer app (`x_own_app`) has its own 24-hour
  app window, counted from its own rows under its row lock.

A full window never makes a function sleep: the post goes back to `scheduled`
with the instant the window frees, and the brand (or every brand on the shared
app) is paused until then, as a 429 from X would pause it (accounts.pause_x).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from cartcast import accounts
from cartcast.db import Transaction

# pg_advisory_xact_lock key of the shared app's 24-hour window: "cartcast" in ASCII.
SHARED_APP_LOCK_KEY = 0x63617274_63617374
LOCK_BRAND = """
SELECT id, time_zone, x_own_app, monthly_x_budget_usd FROM brands
WHERE id = :brand_id
FOR NO KEY UPDATE
"""
LOCK_SHARED_APP = "SELECT pg_advisory_xact_lock(:key)"
# The window's sends, oldest first: the one at position used - limit is the one
# whose ageing out frees a place.
SENDS_IN_BRAND_WINDOW = """
SELECT sent_at FROM x_post_intents
WHERE brand_id = :brand_id AND sent_at > :since
  AND (CAST(:own_app AS boolean) IS NULL OR own_app = :own_app)
ORDER BY sent_at
"""
COUNT_SHARED_APP_WINDOW = """
SELECT count(*) FROM x_post_intents WHERE NOT own_app AND sent_at > :since
"""
NTH_SEND_IN_SHARED_APP_WINDOW = """
SELECT sent_at FROM x_post_intents WHERE NOT own_app AND sent_at > :since
ORDER BY sent_at OFFSET :skip LIMIT 1
"""
INSERT_INTENT = """
INSERT INTO x_post_intents (brand_id, post_id, part, own_app, sent_at)
VALUES (:brand_id, :post_id, :part, :own_app, :now)
"""
PAUSE_SHARED_APP = """
INSERT INTO x_app_pauses (app, posts_paused_until) VALUES ('shared', :until)
ON CONFLICT (app) DO UPDATE SET posts_paused_until = EXCLUDED.posts_paused_until
"""


@dataclass(frozen=True)
class Wait:
    """A full window: who waits (the brand, or the shared app) and until when."""

    until: dt.datetime
    reason: str
    shared_app: bool = False


def lock_brand(tx: Transaction, brand_id: Any) -> dict[str, Any]:
    """Take the brand's row lock for this transaction; return what the turn needs."""
    return tx.one(LOCK_BRAND, brand_id=str(brand_id))


def wait_for_window(
    tx: Transaction,
    settings: Any,
    brand: dict[str, Any],
    *,
    now: dt.datetime,
    needed: int = 1,
) -> Wait | None:
    """Return the wait `needed` more posts would need (a thread's parts still to
    send), or None when every window has room for them.

    The caller holds the brand's row lock (lock_brand). The shared app's lock is
    taken here, last, and held until the caller commits its intent.
    """
    user_windows = (
        (dt.timedelta(minutes=15), settings.x_posts_per_15min_per_user, "15 minutes"),
        (dt.timedelta(hours=3), settings.x_posts_per_3h_per_user, "3 hours"),
    )
    # One read serves both user windows: the 15 minutes lie inside the 3 hours.
    longest = max(window for window, _, _ in user_windows)
    recent = _brand_sends(tx, brand, since=now - longest, own_app=None)
    for window, limit, named in user_windows:
        in_window = [sent_at for sent_at in recent if sent_at > now - window]
        frees_at = _frees_at(in_window, window, limit, needed)
        if frees_at is not None:
            return Wait(frees_at, _reason(limit, named, "this X account", frees_at))

    day, app_limit = dt.timedelta(hours=24), settings.x_posts_per_24h_per_app
    if brand["x_own_app"]:
        sends = _brand_sends(tx, brand, since=now - day, own_app=True)
        frees_at = _frees_at(sends, day, app_limit, needed)
        if frees_at is not None:
            whose = "the brand's own X app"
            return Wait(frees_at, _reason(app_limit, "24 hours", whose, frees_at))
        return None

    tx.scalar(LOCK_SHARED_APP, key=SHARED_APP_LOCK_KEY)
    used = tx.scalar(COUNT_SHARED_APP_WINDOW, since=now - day)
    needed = min(needed, app_limit)
    if used + needed <= app_limit:
        return None
    oldest_to_go = tx.scalar(
        NTH_SEND_IN_SHARED_APP_WINDOW,
        since=now - day,
        skip=used - app_limit + needed - 1,
    )
    frees_at = oldest_to_go + day
    return Wait(
        frees_at,
        _reason(app_limit, "24 hours", "the shared X app", frees_at),
        shared_app=True,
    )


def record_intent(
    tx: Transaction,
    brand: dict[str, Any],
    *,
    post_id: Any,
    part: int | None,
    now: dt.datetime,
) -> None:
    """Count one post (or thread part) handed to X in the brand's and app's windows."""
    tx.execute(
        INSERT_INTENT,
        brand_id=str(brand["id"]),
        post_id=str(post_id),
        part=part,
        own_app=brand["x_own_app"],
        now=now,
    )


def pause(
    tx: Transaction, brand: dict[str, Any], wait: Wait, *, now: dt.datetime
) -> None:
    """Keep the brand's posts (or the shared app's) away until the window frees."""
    if wait.shared_app:
        tx.execute(PAUSE_SHARED_APP, until=wait.until)
        return
    accounts.pause_x(
        tx, brand_id=str(brand["id"]), family="posts", reset_at=wait.until, now=now
    )


def _brand_sends(
    tx: Transaction, brand: dict[str, Any], *, since: dt.datetime, own_app: bool | None
) -> list[dt.datetime]:
    """Return the brand's sends after `since`, oldest first (own app's only, if
    `own_app`)."""
    rows = tx.rows(
        SENDS_IN_BRAND_WINDOW, brand_id=str(brand["id"]), since=since, own_app=own_app
    )
    return [row["sent_at"] for row in rows]


def _frees_at(
    sends: list[dt.datetime], window: dt.timedelta, limit: int, needed: int = 1
) -> dt.datetime | None:
    """Return when a window (its sends oldest first) has room for `needed` more, or
    None when it has now. A thread longer than the limit waits for a whole window."""
    needed = min(needed, limit)
    if len(sends) + needed <= limit:
        return None
    return sends[len(sends) - limit + needed - 1] + window


def _reason(limit: int, window: str, whose: str, until: dt.datetime) -> str:
    return (
        f"X allows {limit} posts per {window} for {whose}; "
        f"waiting until {until.isoformat()}"
    )
