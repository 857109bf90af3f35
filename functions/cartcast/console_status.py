"""What the console's System status page reads: runs, troubled posts, X, dead letters.

Every query is the signed-in brand's, except the runs of event functions and the
operator's pause, which belong to the whole deployment and name no brand.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from cartcast.db import Transaction
from cartcast.retention import HANDLED_EVENTS_KEEP_MIN_S

TROUBLED_SHOWN_MAX = 100
DEAD_LETTERS_SHOWN_MAX = 50
# Events handled are counted over the week the rollup keeps their claims for
# (retention.py); the last run is each function's newest claim, which it keeps.
RUNS_COUNTED_DAYS = HANDLED_EVENTS_KEEP_MIN_S // 86400

SELECT_FUNCTION_RUNS = """
SELECT function, max(handled_at) AS last_run,
    count(*) FILTER (WHERE handled_at > :counted_since) AS runs
FROM handled_events GROUP BY function ORDER BY function
"""
SELECT_LAST_ATTEMPT = """
SELECT a.started_at, a.finished_at, a.outcome, a.error
FROM publish_attempts a JOIN posts p ON p.id = a.post_id
WHERE p.brand_id = :brand_id
ORDER BY a.started_at DESC, a.id DESC LIMIT 1
"""
SELECT_TROUBLED_POSTS = """
SELECT id, state, text, scheduled_at, failure_reason, updated_at
FROM posts
WHERE brand_id = :brand_id AND state IN ('unconfirmed', 'held', 'failed')
ORDER BY updated_at DESC, id LIMIT :limit
"""
SELECT_X_CONNECTION = """
SELECT x_user_id, x_username, x_disconnected_at, x_disconnected_reason
FROM brands WHERE id = :brand_id
"""
# Until when X posting is held for this brand now: its own window, or the shared
# app's unless it posts through its own app (publishing.py's due query).
SELECT_X_PAUSE = """
SELECT greatest(
    CASE WHEN b.x_posts_paused_until > :now THEN b.x_posts_paused_until END,
    (SELECT ap.posts_paused_until FROM x_app_pauses ap
     WHERE ap.app = 'shared' AND ap.posts_paused_until > :now AND NOT b.x_own_app)
) AS paused_until
FROM brands b WHERE b.id = :brand_id
"""
# The operator's pause of every brand's publishing (publish_schedule.py).
SELECT_DEPLOYMENT_PAUSE = "SELECT paused_at FROM publishing_pause"
# What keeps a reply queued now from going at the next publish run, in the order
# the notice names them: publishing.py's due query (CLAIM_DUE) holds a reply for
# each of the first four; the crisis pause holds posts but lets replies go
# (crisis.py). tests/test_console.py pins the two together, pause by pause.
SELECT_REPLY_HOLDS = """
SELECT EXISTS (SELECT 1 FROM publishing_pause) AS deployment,
    b.x_disconnected_at IS NOT NULL AS disconnected,
    b.offboarding_requested_at IS NOT NULL AS offboarding,
    (b.x_posts_paused_until > :now
     OR (NOT b.x_own_app AND EXISTS (SELECT 1 FROM x_app_pauses ap
         WHERE ap.app = 'shared' AND ap.posts_paused_until > :now))) AS x_limit,
    b.publishing_paused_at IS NOT NULL AS crisis
FROM brands b WHERE b.id = :brand_id
"""
REPLY_HOLDS = ("deployment", "disconnected", "offboarding", "x_limit", "crisis")
SELECT_DEAD_LETTERS = """
SELECT 'alert' AS kind, created_at, attempts, last_error, abandoned_at
FROM alert_outbox WHERE brand_id = :brand_id AND abandoned_at IS NOT NULL
UNION ALL
SELECT 'escalation', created_at, attempts, last_error, abandoned_at
FROM escalation_outbox WHERE brand_id = :brand_id AND abandoned_at IS NOT NULL
ORDER BY abandoned_at DESC LIMIT :limit
"""


def system_status(
    tx: Transaction, *, brand_id: str, now: dt.datetime
) -> dict[str, Any]:
    """Gather the status page's tables for one brand."""
    pause = tx.one(SELECT_X_PAUSE, brand_id=brand_id, now=now)
    return {
        "function_runs": tx.rows(
            SELECT_FUNCTION_RUNS,
            counted_since=now - dt.timedelta(days=RUNS_COUNTED_DAYS),
        ),
        "runs_counted_days": RUNS_COUNTED_DAYS,
        "last_attempt": tx.one(SELECT_LAST_ATTEMPT, brand_id=brand_id),
        "troubled": tx.rows(
            SELECT_TROUBLED_POSTS, brand_id=brand_id, limit=TROUBLED_SHOWN_MAX
        ),
        "x_connection": tx.one(SELECT_X_CONNECTION, brand_id=brand_id),
        "x_paused_until": pause["paused_until"] if pause else None,
        "deployment_paused_at": tx.scalar(SELECT_DEPLOYMENT_PAUSE),
        "dead_letters": tx.rows(
            SELECT_DEAD_LETTERS, brand_id=brand_id, limit=DEAD_LETTERS_SHOWN_MAX
        ),
    }


def reply_hold(tx: Transaction, *, brand_id: str, now: dt.datetime) -> str | None:
    """Name the first pause that bears on a reply queued now, or None.

    "deployment", "disconnected", "offboarding" and "x_limit" hold it past the
    next publish run; "crisis" is the brand's pause, which lets replies go.
    """
    row = tx.one(SELECT_REPLY_HOLDS, brand_id=brand_id, now=now)
    return next((hold for hold in REPLY_HOLDS if row and row[hold]), None)
