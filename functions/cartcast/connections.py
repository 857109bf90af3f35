"""A brand's X account disconnected by X, and connected again by the brand.

When X refuses the account's token (a 401, or a 403 about credentials) every
other post of that account would meet the same refusal, so at the first one:

1. the brand is marked disconnected (`x_disconnected_at`, `x_disconnected_reason`);
2. every queued post of the brand (`scheduled`, and `publishing` ones not yet
   sent) is held with the reason "account disconnected: ...";
3. one alert (alerts.py) is raised for the episode, keyed by when it began, so the
   other posts, and later runs, raise nothing more.

All three commit with the refused post's own outcome. Until the brand has a new
token, the claim skips it and each publish run holds any post scheduled meanwhile
(`hold_while_disconnected`). Connecting the account again (x_oauth.py) or setting
a token (PATCH /v1/brand) calls `reconnect`, which clears the mark and puts the
posts held for it back in `scheduled`; being past due, they go out at the next run.
X refusing to refresh the account's token (x_oauth.refresh_tokens) disconnects it
here too.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from cartcast import alerts, audit, holds
from cartcast.db import Transaction

HELD_PREFIX = "account disconnected: "
# What the person reading a held post's reason can do about it.
HELD_FIX = (
    "; once X accepts the account again (a suspension or lock is lifted with X "
    "itself), connect it again (POST /v1/brand/x/connect, or PATCH /v1/brand "
    "with a new x_access_token) and this post goes out at the next publish run"
)
ALERT_KIND = "x_disconnected"
DETAIL_LENGTH_MAX = 300

# Held to the refused post's commit. NO KEY UPDATE, as every brand lock is (see
# x_oauth.LOCK_TOKENS), still keeps out a reconnection, but not the KEY SHARE a
# post change's log (post_events) takes on the brand: FOR UPDATE made it wait,
# and a holder that then waited on that post's row was a deadlock.
LOCK_TOKEN = """
SELECT x_access_token FROM brands WHERE id = :brand_id FOR NO KEY UPDATE
"""
MARK_DISCONNECTED = """
UPDATE brands SET x_disconnected_at = :now, x_disconnected_reason = :reason
WHERE id = :brand_id AND x_disconnected_at IS NULL
RETURNING slug, x_username
"""
SELECT_DISCONNECTION = """
SELECT x_disconnected_reason FROM brands WHERE id = :brand_id
"""
HOLD_WHILE_DISCONNECTED = """
UPDATE posts p SET state = 'held', updated_at = :now,
    failure_reason = :prefix || b.x_disconnected_reason || :fix
FROM brands b
WHERE b.id = p.brand_id AND b.x_disconnected_at IS NOT NULL AND p.state = 'scheduled'
RETURNING p.id
"""
CLEAR_DISCONNECTION = """
UPDATE brands SET x_disconnected_at = NULL, x_disconnected_reason = NULL
WHERE id = :brand_id
"""
# Why publishing holds a due post of a brand with no token or account
# (publishing.HOLD_UNCONNECTED): never connected, or disconnected by the brand.
NO_ACCOUNT_REASON = "the brand has no X account connected"
RELEASE_UNCONNECTED = """
UPDATE posts SET state = 'scheduled', failure_reason = NULL, not_before = NULL,
    updated_at = :now
WHERE brand_id = :brand_id AND state = 'held' AND failure_reason = :reason
RETURNING id
"""


def disconnect(
    tx: Transaction,
    *,
    brand_id: str,
    status: int | None,
    detail: str,
    token: str,
    now: dt.datetime,
) -> str | None:
    """Mark the brand's X account disconnected and hold its queued posts.

    `token` is the one X refused. When the brand holds another by now (it was
    reconnected while the request was out), nothing is marked and None is returned:
    the new token has not been refused.

    Idempotent: a brand already disconnected keeps its first reason and time, and
    no second alert is raised. Returns the reason the held posts carry.
    """
    reason = (
        f"X refused the account or its token ({status or 'no status'}): "
        f"{detail[:DETAIL_LENGTH_MAX]}"
    )
    if tx.scalar(LOCK_TOKEN, brand_id=brand_id) != token:
        return None
    marked = tx.one(MARK_DISCONNECTED, brand_id=brand_id, now=now, reason=reason)
    if marked is None:
        reason = tx.scalar(SELECT_DISCONNECTION, brand_id=brand_id) or reason
    held_reason = HELD_PREFIX + reason + HELD_FIX

    held = holds.hold_queued(tx, brand_id=brand_id, reason=held_reason, now=now)
    if marked is not None:
        # A connection change like the brand's own disconnection (x_oauth.py),
        # by the function whose call X refused.
        audit.record(
            tx,
            brand_id=brand_id,
            actor=audit.current_actor(tx),
            action="x_account.disconnected",
            subject="brand:x_account",
            at=now,
            before={"connected": True},
            after={"connected": False, "reason": reason},
        )
        alerts.raise_alert(
            tx,
            brand_id=brand_id,
            kind=ALERT_KIND,
            episode=now.isoformat(),
            text=_alert_text(marked, reason, queued=held + 1, now=now),
            now=now,
        )
    return held_reason


def hold_while_disconnected(tx: Transaction, *, now: dt.datetime) -> int:
    """Hold posts scheduled for a disconnected brand since; return how many."""
    return len(
        tx.rows(HOLD_WHILE_DISCONNECTED, prefix=HELD_PREFIX, fix=HELD_FIX, now=now)
    )


def reconnect(tx: Transaction, *, brand_id: str, now: dt.datetime) -> int:
    """Clear the brand's disconnection and queue its held posts again; return how
    many went back to `scheduled`."""
    tx.execute(CLEAR_DISCONNECTION, brand_id=brand_id)
    return holds.release_held(tx, brand_id=brand_id, prefix=HELD_PREFIX, now=now)


def release_unconnected(tx: Transaction, *, brand_id: str, now: dt.datetime) -> int:
    """Queue again the posts held because the brand had no X account (it
    disconnected its own, or never had one); return how many. Called when an
    account is connected through X's flow (x_oauth.py), as the README promises."""
    return len(
        tx.rows(
            RELEASE_UNCONNECTED, brand_id=brand_id, reason=NO_ACCOUNT_REASON, now=now
        )
    )


def _alert_text(
    brand: dict[str, Any], reason: str, *, queued: int, now: dt.datetime
) -> str:
    account = f"@{brand['x_username']}" if brand["x_username"] else "The X account"
    at = now.strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"cartcast ({brand['slug']}): {account} was disconnected at {at}. "
        f"{reason.rstrip('.')}. "
        f"{queued} queued post(s) are held and nothing more is sent. Once X accepts "
        "the account again (a suspension or lock is lifted with X itself), connect "
        "it again (POST /v1/brand/x/connect, or PATCH /v1/brand with a new "
        "x_access_token); the held posts then go out at the next publish run."
    )
