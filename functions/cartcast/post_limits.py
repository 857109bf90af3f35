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
  publishers never wait on each other in a circle), as the last step before
  its commit: the lock is held for one statement (count the window and write the
  intent's row if it has room) and the commit, so concurrent publishers queue on
  it as briefly as they can (decision 0016);
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
# The account's sends in both user windows in one read (the 15 minutes lie inside
# the 3 hours), counted by the server: a full window is rare, and only then are
# its instants read (NTH_BRAND_SEND).
COUNT_BRAND_WINDOWS = """
SELECT count(*) FILTER (WHERE sent_at > :since_short) AS short, count(*) AS long
FROM x_post_intents
WHERE brand_id = :brand_id AND sent_at > :since_long
"""
COUNT_BRAND_OWN_APP_WINDOW = """
SELECT count(*) FROM x_post_intents
WHERE brand_id = :brand_id AND own_app AND sent_at > :since
"""
# The window's sends, oldest first: the one at position used - limit is the one
# whose ageing out frees a place.
NTH_BRAND_SEND = """
SELECT sent_at FROM x_post_intents
WHERE brand_id = :brand_id AND sent_at > :since
  AND (CAST(:own_app AS boolean) IS NULL OR own_app = :own_app)
ORDER BY sent_at OFFSET :skip LIMIT 1
"""
# Under the shared app's lock, in a statement of its own: in READ COMMITTED each
# statement reads what was committed when it began, so the count sees every send
# of the publishers that held the lock before.
INSERT_INTENT_IF_SHARED_APP_HAS_ROOM = """
INSERT INTO x_post_intents (brand_id, post_id, part, own_app, sent_at)
SELECT :brand_id, :post_id, :part, false, :now
WHERE (SELECT count(*) FROM x_post_intents WHERE NOT own_app AND sent_at > :since)
    + :needed <= :app_limit
RETURNING id
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
    send) in the account's windows and a brand's own app's, or None when they have
    room. The shared app's window is checked when the intent is recorded.

    The caller holds the brand's row lock (lock_brand).
    """
    short, long = dt.timedelta(minutes=15), dt.timedelta(hours=3)
    counts = tx.one(
        COUNT_BRAND_WINDOWS,
        brand_id=str(brand["id"]),
        since_short=now - short,
        since_long=now - long,
    )
    user_windows = (
        (short, settings.x_posts_per_15min_per_user, "15 minutes", counts["short"]),
        (long, settings.x_posts_per_3h_per_user, "3 hours", counts["long"]),
    )
    for window, limit, named, used in user_windows:
        frees_at = _frees_at(
            tx, brand, now=now, window=window, used=used, limit=limit, needed=needed
        )
        if frees_at is not None:
            return Wait(frees_at, _reason(limit, named, "this X account", frees_at))

    if not brand["x_own_app"]:
        return None
    day, app_limit = dt.timedelta(hours=24), settings.x_posts_per_24h_per_app
    used = tx.scalar(
        COUNT_BRAND_OWN_APP_WINDOW, brand_id=str(brand["id"]), since=now - day
    )
    frees_at = _frees_at(
        tx,
        brand,
        now=now,
        window=day,
        used=used,
        limit=app_limit,
        needed=needed,
        own_app=True,
    )
    if frees_at is None:
        return None
    whose = "the brand's own X app"
    return Wait(frees_at, _reason(app_limit, "24 hours", whose, frees_at))


def record_intent(
    tx: Transaction,
    settings: Any,
    brand: dict[str, Any],
    *,
    post_id: Any,
    part: int | None,
    now: dt.datetime,
    needed: int = 1,
) -> Wait | None:
    """Count one post (or thread part) handed to X in the brand's and app's windows;
    call it last before the commit. On the shared app, return the wait instead,
    writing nothing, when its window has no room for `needed` more posts; the
    caller then rolls back what it wrote with the intent.
    """
    row = {
        "brand_id": str(brand["id"]),
        "post_id": str(post_id),
        "part": part,
        "now": now,
    }
    if brand["x_own_app"]:
        tx.execute(INSERT_INTENT, own_app=True, **row)
        return None

    day, app_limit = dt.timedelta(hours=24), settings.x_posts_per_24h_per_app
    needed = min(needed, app_limit)
    tx.scalar(LOCK_SHARED_APP, key=SHARED_APP_LOCK_KEY)
    written = tx.scalar(
        INSERT_INTENT_IF_SHARED_APP_HAS_ROOM,
        since=now - day,
        needed=needed,
        app_limit=app_limit,
        **row,
    )
    if written is not None:
        return None
    used = tx.scalar(COUNT_SHARED_APP_WINDOW, since=now - day)
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


def _frees_at(
    tx: Transaction,
    brand: dict[str, Any],
    *,
    now: dt.datetime,
    window: dt.timedelta,
    used: int,
    limit: int,
    needed: int,
    own_app: bool | None = None,
) -> dt.datetime | None:
    """Return when a window holding `used` of the brand's sends has room for
    `needed` more (the instant the send that makes room ages out), or None when it
    has room now. A thread longer than the limit waits for a whole window.

    `own_app` True counts only sends through the brand's own app; None counts all.
    """
    needed = min(needed, limit)
    if used + needed <= limit:
        return None
    ages_out = tx.scalar(
        NTH_BRAND_SEND,
        brand_id=str(brand["id"]),
        since=now - window,
        own_app=own_app,
        skip=used - limit + needed - 1,
    )
    return ages_out + window


def _reason(limit: int, window: str, whose: str, until: dt.datetime) -> str:
    return (
        f"X allows {limit} posts per {window} for {whose}; "
        f"waiting until {until.isoformat()}"
    )
