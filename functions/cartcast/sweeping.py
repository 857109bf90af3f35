"""The missed-post sweeper: due posts that no publish run picked up go out late.

Every publish tick claims everything due, so a `scheduled` post still waiting well
after its time means the publish job did not run (a paused or deleted Scheduler job,
a broken deployment), not that it was busy. The sweeper is the same function,
`publish_due_posts`, driven by a Scheduler job of its own whose message is
`{"sweep": true}` (decision 0012). Each sweep, as of the tick's time:

1. expire stale leases, as a claim would: a post whose publisher died goes back to
   `scheduled` (never sent) or becomes `unconfirmed` (it may be on X);
2. hold every `scheduled` post due more than CARTCAST_MISSED_MAX_LATE_S ago, with a
   reason telling the user to schedule it again: a "sale ends tonight" post must not
   go out two days late (every publish claim holds them the same way first, so a
   tick that comes back after an outage, or after an account is reconnected, sends
   none of them);
3. find the missed posts: `scheduled`, due more than CARTCAST_MISSED_AFTER_S ago, of
   a brand X has not paused (nor, for a brand on the shared app, the app's full
   window: the claim skips those posts as it skips a 429's) since that time, so
   the posts such a pause held count as due when it ends, as a retried post
   counts as due at its `not_before` and a post released from `held` (a crisis
   resume, a reconnection) at its release, and without any attempt started in that
   time (a post retried or re-queued by a run that did look at it is not
   missed). While the
   operator's pause stands no post is missed, and until CARTCAST_MISSED_AFTER_S
   after its resume none is either: the publish job could not run before, so the
   posts that came due during the pause (or whose turn it refused) count as due
   at the resume (decision 0080);
4. when there are some, log an ERROR that the publish job seems not to run, then
   settle unconfirmed posts and publish what is due, exactly as a publish tick does
   (same claims, leases and intents, so a sweep and a tick never send one post
   twice). Without missed posts it only settles unconfirmed posts.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

from cartcast import publishing, reconciling
from cartcast.logs import fields

# Rows locked, SKIP LOCKED: a publish run that holds one is sending it right now.
SELECT_TOO_LATE = """
SELECT p.id, p.scheduled_at, b.time_zone FROM posts p
JOIN brands b ON b.id = p.brand_id
WHERE p.state = 'scheduled' AND p.scheduled_at < :late_before
ORDER BY p.scheduled_at, p.id
FOR UPDATE OF p SKIP LOCKED
"""
HOLD_TOO_LATE = """
UPDATE posts SET state = 'held', failure_reason = :reason, lease_until = NULL,
    updated_at = :now
WHERE id = :post_id AND state = 'scheduled'
"""
# Every hold is compared with missed_before, not now: a post counts as due from
# when the last thing holding it (a resume, an X pause, a back-off, a release
# from `held`, which writes updated_at) let it go, so the next tick has
# CARTCAST_MISSED_AFTER_S to send it before a sweep calls it missed. A lease
# this sweep expired (expired_ids) is no release: a running publish job's claim
# would have expired it first.
SELECT_MISSED = """
SELECT p.id, p.brand_id, p.scheduled_at FROM posts p
JOIN brands b ON b.id = p.brand_id
LEFT JOIN publishing_resume r ON true
WHERE p.state = 'scheduled' AND p.scheduled_at <= :missed_before
  AND (p.updated_at <= :missed_before OR p.id = ANY(CAST(:expired_ids AS uuid[])))
  AND (r.resumed_at IS NULL OR r.resumed_at <= :missed_before)
  AND NOT EXISTS (SELECT 1 FROM publishing_pause)
  AND (b.x_posts_paused_until IS NULL OR b.x_posts_paused_until <= :missed_before)
  AND (b.x_own_app OR NOT EXISTS (SELECT 1 FROM x_app_pauses ap
      WHERE ap.app = 'shared' AND ap.posts_paused_until > :missed_before))
  AND (p.not_before IS NULL OR p.not_before <= :missed_before)
  AND b.x_disconnected_at IS NULL
  AND NOT EXISTS (
      SELECT 1 FROM publish_attempts a
      WHERE a.post_id = p.id AND a.started_at >= :missed_before
  )
ORDER BY p.scheduled_at, p.id
"""


def sweep_missed(runtime: Any, *, as_of: dt.datetime) -> dict[str, int]:
    """Expire leases, hold posts too late to send, re-drive missed ones; counts."""
    settings = runtime.settings
    late_before = as_of - dt.timedelta(seconds=settings.missed_max_late_s)
    missed_before = as_of - dt.timedelta(seconds=settings.missed_after_s)

    with runtime.database.transaction() as tx:
        expired = tx.rows(publishing.EXPIRE_LEASES, now=runtime.clock.now())
        too_late = hold_too_late(tx, late_before=late_before, now=as_of)
        missed = tx.rows(
            SELECT_MISSED,
            missed_before=missed_before,
            expired_ids=[str(row["id"]) for row in expired],
        )

    counts = {"expired": len(expired), "too_late": too_late, "missed": len(missed)}
    if too_late:
        runtime.log.warning(
            "posts too late to send were held",
            extra=fields(held=too_late, max_late_s=settings.missed_max_late_s),
        )
    if not missed:
        return {**counts, **reconciling.reconcile_unconfirmed(runtime)}

    # Issue 8 alerts on this line: its message and `alert` field stay as they are.
    runtime.log.error(
        "the publish job seems not to run: due posts were never picked up",
        extra=fields(
            alert="publish_job_not_running",
            missed=len(missed),
            oldest_due=missed[0]["scheduled_at"],
            brands=len({row["brand_id"] for row in missed}),
            missed_after_s=settings.missed_after_s,
        ),
    )
    return {**counts, **reconciling.reconcile_then_publish(runtime, as_of=as_of)}


def hold_too_late(tx: Any, *, late_before: dt.datetime, now: dt.datetime) -> int:
    """Hold each scheduled post due before `late_before`; return how many.

    Every publish claim calls this too (publishing.py), so a post too late is held
    the same way whichever job reaches it first.
    """
    rows = tx.rows(SELECT_TOO_LATE, late_before=late_before)
    for row in rows:
        tx.execute(
            HOLD_TOO_LATE, post_id=row["id"], reason=too_late_reason(row, now), now=now
        )
    return len(rows)


def too_late_reason(post: dict[str, Any], now: dt.datetime) -> str:
    """Say when the post was due, in its brand's time, and what the user can do."""
    zone = zoneinfo.ZoneInfo(post["time_zone"])
    due = post["scheduled_at"].astimezone(zone)
    late_h = (now - post["scheduled_at"]).total_seconds() / 3600
    return (
        f"not sent at its time ({due:%Y-%m-%d %H:%M %Z}, {post['time_zone']}) and "
        f"now {late_h:.1f} h late, too late to go out as planned: schedule it again "
        f"(POST /v1/posts/{post['id']}/schedule) or cancel it"
    )
