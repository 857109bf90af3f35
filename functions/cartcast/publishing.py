"""Publishing due posts on X, each at most once.

X takes no idempotency key, so the order of writes is what prevents doubles
(decision 0003):

1. claim: due posts move from `scheduled` to `publishing` with a lease, under
   `FOR UPDATE SKIP LOCKED`, and an attempt is recorded, in one commit; an
   overlapping run or a redelivered tick finds nothing left to claim;
2. intent: just before the request leaves, the attempt's `sent_at` is committed;
3. call X once;
4. record the answer: `published` with X's id, `failed` with the reason, back to
   `scheduled` when X said "not now" (rate limit, outage), or `unconfirmed` when the
   request may have reached X but no answer came.

A post whose lease expired in `publishing` goes back to `scheduled` if its attempt
never reached step 2 (it was never sent), and becomes `unconfirmed` otherwise:
sending it again could post it twice. The reconciler of the publishing issue will
settle unconfirmed posts from the account's own timeline.

A 429 pauses only the account that got it, until the reset X announced; the other
brands' posts go on, and every run checks the pause again before each send. Before
each send the attempt also renews its lease, and a run that finds its lease taken
(it outlived it) sends nothing more. Due posts of a brand with no X account are
held, with the reason, instead of waiting silently.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from cartcast import accounts, costs
from cartcast.errors import PermanentError, RateLimited, TransientError
from cartcast.logs import fields

EXPIRE_LEASES = """
UPDATE posts p SET
    state = CASE WHEN a.id IS NOT NULL AND a.sent_at IS NULL
        THEN 'scheduled' ELSE 'unconfirmed' END,
    failure_reason = CASE WHEN a.id IS NOT NULL AND a.sent_at IS NULL THEN NULL
        ELSE 'publisher stopped after sending to X; check the timeline' END,
    lease_until = NULL, updated_at = :now
FROM posts expired
LEFT JOIN publish_attempts a ON a.id = expired.lease_attempt_id
WHERE p.id = expired.id AND p.state = 'publishing' AND p.lease_until < :now
RETURNING p.id, p.state
"""
HOLD_UNCONNECTED = """
UPDATE posts p SET state = 'held', updated_at = :now,
    failure_reason = 'the brand has no X account connected'
FROM brands b
WHERE b.id = p.brand_id AND p.state = 'scheduled' AND p.scheduled_at <= :as_of
  AND (b.x_access_token IS NULL OR b.x_user_id IS NULL)
RETURNING p.id
"""
CLAIM_DUE = """
WITH due AS (
    SELECT p.id FROM posts p
    JOIN brands b ON b.id = p.brand_id
    WHERE p.state = 'scheduled' AND p.scheduled_at <= :as_of
      AND b.x_access_token IS NOT NULL AND b.x_user_id IS NOT NULL
      AND (b.x_posts_paused_until IS NULL OR b.x_posts_paused_until <= :now)
    ORDER BY p.scheduled_at, p.id
    LIMIT :batch_size
    FOR UPDATE OF p SKIP LOCKED
)
UPDATE posts p SET state = 'publishing', lease_until = :lease_until, updated_at = :now
FROM due, brands b
WHERE p.id = due.id AND b.id = p.brand_id
RETURNING p.id, p.brand_id, p.text, p.link, p.scheduled_at, b.x_access_token
"""
START_ATTEMPT = """
INSERT INTO publish_attempts (post_id, started_at) VALUES (:post_id, :now) RETURNING id
"""
HOLD_LEASE = "UPDATE posts SET lease_attempt_id = :attempt_id WHERE id = :post_id"
# Just before sending: the attempt must still hold a live lease and the account must
# not be paused (another run may have met a 429 meanwhile). The lease is renewed, so
# a long batch never loses the posts it has not reached yet.
TAKE_TURN = """
UPDATE posts p SET lease_until = :lease_until, updated_at = :now
FROM brands b
WHERE p.id = :post_id AND p.lease_attempt_id = :attempt_id
  AND p.state = 'publishing' AND p.lease_until > :now AND b.id = p.brand_id
  AND (b.x_posts_paused_until IS NULL OR b.x_posts_paused_until <= :now)
RETURNING p.id
"""
MARK_SENT = "UPDATE publish_attempts SET sent_at = :now WHERE id = :attempt_id"
FINISH_ATTEMPT = """
UPDATE publish_attempts SET finished_at = :now, outcome = :outcome,
    x_post_id = :x_post_id, error = :error
WHERE id = :attempt_id
"""
MARK_PUBLISHED = """
UPDATE posts SET state = 'published', x_post_id = :x_post_id, published_at = :now,
    lease_until = NULL, failure_reason = NULL, updated_at = :now
WHERE id = :post_id AND lease_attempt_id = :attempt_id
  AND state IN ('publishing', 'unconfirmed')
"""
MARK_OUTCOME = """
UPDATE posts SET state = :state, failure_reason = :reason, lease_until = NULL,
    updated_at = :now
WHERE id = :post_id AND lease_attempt_id = :attempt_id AND state = 'publishing'
"""


def publish_due(runtime: Any, *, as_of: dt.datetime) -> dict[str, int]:
    """Publish every post due at `as_of`; return counts by outcome."""
    claimed, attempts, counts = _claim(runtime, as_of)

    for post in sorted(claimed, key=lambda row: (row["scheduled_at"], str(row["id"]))):
        counts[_publish_one(runtime, post, attempts[post["id"]])] += 1
    counts["deferred"] += counts.pop("paused") + counts.pop("lost")
    return counts


def _claim(runtime: Any, as_of: dt.datetime) -> tuple[list[dict], dict, dict[str, int]]:
    settings, now = runtime.settings, runtime.clock.now()
    counts = dict.fromkeys(
        ("published", "failed", "unconfirmed", "deferred", "paused", "held", "lost"),
        0,
    )
    with runtime.database.transaction() as tx:
        expired = tx.rows(EXPIRE_LEASES, now=now)
        counts["unconfirmed"] += sum(row["state"] == "unconfirmed" for row in expired)
        counts["held"] = len(tx.rows(HOLD_UNCONNECTED, as_of=as_of, now=now))
        claimed = tx.rows(
            CLAIM_DUE,
            as_of=as_of,
            batch_size=settings.publish_batch_size,
            lease_until=now + dt.timedelta(seconds=settings.publish_lease_s),
            now=now,
        )
        attempts = {}
        for row in claimed:
            attempts[row["id"]] = tx.scalar(START_ATTEMPT, post_id=row["id"], now=now)
            tx.execute(HOLD_LEASE, post_id=row["id"], attempt_id=attempts[row["id"]])
    if expired or counts["held"]:
        runtime.log.warning(
            "posts recovered or held",
            extra=fields(expired=len(expired), held=counts["held"]),
        )
    return claimed, attempts, counts


def _publish_one(runtime: Any, post: dict[str, Any], attempt_id: int) -> str:
    from cartcast.x import XRejected, XTimeout

    # Commit the intent first: if this write fails, nothing was sent, and the post
    # goes back to `scheduled` when its lease ends.
    if not _take_turn(runtime, post, attempt_id):
        return "lost"

    client = runtime.x_client(post["x_access_token"])
    try:
        created = client.create_post(post["text"], has_link=bool(post["link"]))
    except XTimeout as error:
        _finish(runtime, post, attempt_id, "unconfirmed", "unknown", str(error))
        return "unconfirmed"
    except RateLimited as error:
        _pause_brand(runtime, post, attempt_id, error)
        return "paused"
    except TransientError as error:
        _finish(runtime, post, attempt_id, "scheduled", "retry", str(error))
        return "deferred"
    except XRejected as error:
        if error.reason == "duplicate":
            # X refuses a text the account already posted: most likely this very
            # post, by a run whose answer was lost. Settle it from the timeline.
            _finish(runtime, post, attempt_id, "unconfirmed", "unknown", str(error))
            return "unconfirmed"
        _finish(runtime, post, attempt_id, "failed", "failed", str(error))
        runtime.log.error(
            "X refused a post", extra=fields(post_id=str(post["id"]), reason=str(error))
        )
        return "failed"
    except PermanentError as error:
        _finish(runtime, post, attempt_id, "failed", "failed", str(error))
        runtime.log.error(
            "X refused a post", extra=fields(post_id=str(post["id"]), reason=str(error))
        )
        return "failed"

    # Logged before the write, so X's id survives a database failure in the logs.
    runtime.log.info(
        "X accepted a post", extra=fields(post_id=str(post["id"]), x_post_id=created.id)
    )
    now = runtime.clock.now()
    with runtime.database.transaction() as tx:
        tx.execute(
            MARK_PUBLISHED,
            post_id=post["id"],
            attempt_id=attempt_id,
            x_post_id=created.id,
            now=now,
        )
        tx.execute(
            FINISH_ATTEMPT,
            attempt_id=attempt_id,
            now=now,
            outcome="published",
            x_post_id=created.id,
            error=None,
        )
        costs.record(
            tx,
            brand_id=post["brand_id"],
            occurred_at=now,
            operation="post_with_url" if post["link"] else "post",
            units=1,
            usd=costs.post_price(bool(post["link"])),
            ref=str(post["id"]),
        )
    return "published"


def _take_turn(runtime: Any, post: dict[str, Any], attempt_id: int) -> bool:
    """Renew the lease and commit the intent to send; False when the turn is gone.

    A lease lost to another run (this one outlived it) means hands off. A pause that
    another run recorded meanwhile sends the post back to `scheduled`.
    """
    now = runtime.clock.now()
    lease_until = now + dt.timedelta(seconds=runtime.settings.publish_lease_s)
    with runtime.database.transaction() as tx:
        turn = tx.scalar(
            TAKE_TURN,
            post_id=post["id"],
            attempt_id=attempt_id,
            lease_until=lease_until,
            now=now,
        )
        if turn is not None:
            tx.execute(MARK_SENT, attempt_id=attempt_id, now=now)
            return True
    _finish(runtime, post, attempt_id, "scheduled", "retry", "lease lost or paused")
    return False


def _pause_brand(
    runtime: Any, post: dict[str, Any], attempt_id: int, error: RateLimited
) -> None:
    with runtime.database.transaction() as tx:
        until = accounts.pause_x(
            tx,
            brand_id=post["brand_id"],
            family="posts",
            reset_at=error.reset_at,
            now=runtime.clock.now(),
        )
    _finish(runtime, post, attempt_id, "scheduled", "rate_limited", str(error))
    runtime.log.warning(
        "X rate limit; the brand's posts wait",
        extra=fields(brand_id=str(post["brand_id"]), until=until),
    )


def _finish(
    runtime: Any,
    post: dict[str, Any],
    attempt_id: int,
    state: str,
    outcome: str,
    reason: str,
) -> None:
    now = runtime.clock.now()
    with runtime.database.transaction() as tx:
        tx.execute(
            MARK_OUTCOME,
            post_id=post["id"],
            attempt_id=attempt_id,
            state=state,
            reason=None if state == "scheduled" else reason,
            now=now,
        )
        tx.execute(
            FINISH_ATTEMPT,
            attempt_id=attempt_id,
            now=now,
            outcome=outcome,
            x_post_id=None,
            error=reason,
        )
