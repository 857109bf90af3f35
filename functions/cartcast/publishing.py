"""Publishing due posts on X, each at most once.

X takes no idempotency key, so the order of writes is what prevents doubles:

1. claim: due posts move from `scheduled` to `publishing` with a lease, under
   `FOR UPDATE SKIP LOCKED`, and the attempt is recorded, all in one commit; an
   overlapping run or a redelivered tick finds nothing left to claim;
2. call X once per claimed post;
3. record the answer: `published` with X's id, `failed` with the reason, back to
   `scheduled` when X said "not now" (rate limit, outage), or `unconfirmed` when the
   call may have reached X but no answer came.

A post whose lease expired in `publishing` (the function died between steps 1 and
3) also becomes `unconfirmed`, never `scheduled`: sending it again could post it
twice. The reconciler of the publishing issue settles unconfirmed posts from the
account's own timeline.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from cartcast import costs
from cartcast.errors import PermanentError, RateLimited, TransientError
from cartcast.logs import fields

CLAIM_DUE = """
WITH due AS (
    SELECT p.id FROM posts p
    JOIN brands b ON b.id = p.brand_id
    WHERE p.state = 'scheduled' AND p.scheduled_at <= :as_of
      AND b.x_access_token IS NOT NULL
    ORDER BY p.scheduled_at, p.id
    LIMIT :batch_size
    FOR UPDATE OF p SKIP LOCKED
)
UPDATE posts p SET state = 'publishing', lease_until = :lease_until, updated_at = :now
FROM due, brands b
WHERE p.id = due.id AND b.id = p.brand_id
RETURNING p.id, p.brand_id, p.text, p.link, b.x_access_token
"""
EXPIRE_LEASES = """
UPDATE posts SET state = 'unconfirmed', lease_until = NULL, updated_at = :now,
    failure_reason = 'publisher stopped before X answered; check the timeline'
WHERE state = 'publishing' AND lease_until < :now
RETURNING id
"""
START_ATTEMPT = """
INSERT INTO publish_attempts (post_id, started_at) VALUES (:post_id, :now) RETURNING id
"""
FINISH_ATTEMPT = """
UPDATE publish_attempts SET finished_at = :now, outcome = :outcome,
    x_post_id = :x_post_id, error = :error
WHERE id = :attempt_id
"""
MARK_PUBLISHED = """
UPDATE posts SET state = 'published', x_post_id = :x_post_id, published_at = :now,
    lease_until = NULL, failure_reason = NULL, updated_at = :now
WHERE id = :post_id AND state = 'publishing'
"""
MARK_OUTCOME = """
UPDATE posts SET state = :state, failure_reason = :reason, lease_until = NULL,
    updated_at = :now
WHERE id = :post_id AND state = 'publishing'
"""


def publish_due(runtime: Any, *, as_of: dt.datetime) -> dict[str, int]:
    """Publish every post due at `as_of`; return counts by outcome."""
    database, clock = runtime.database, runtime.clock
    settings = runtime.settings
    counts = {
        "published": 0,
        "failed": 0,
        "unconfirmed": 0,
        "deferred": 0,
        "expired": 0,
    }

    with database.transaction() as tx:
        counts["expired"] = len(tx.rows(EXPIRE_LEASES, now=clock.now()))
        now = clock.now()
        claimed = tx.rows(
            CLAIM_DUE,
            as_of=as_of,
            batch_size=settings.publish_batch_size,
            lease_until=now + dt.timedelta(seconds=settings.publish_lease_s),
            now=now,
        )
        attempts = {
            row["id"]: tx.scalar(START_ATTEMPT, post_id=row["id"], now=now)
            for row in claimed
        }

    for index, post in enumerate(claimed):
        outcome = _publish_one(runtime, post, attempts[post["id"]])
        counts[outcome] += 1
        if outcome == "deferred":
            # X said "not now" for this account; leave the rest for the next tick.
            for later in claimed[index + 1 :]:
                _finish(
                    runtime,
                    later,
                    attempts[later["id"]],
                    "scheduled",
                    "retry",
                    "deferred after a rate limit",
                )
                counts["deferred"] += 1
            break
    return counts


def _publish_one(runtime: Any, post: dict[str, Any], attempt_id: int) -> str:
    from cartcast.x import XTimeout

    client = runtime.x_client(post["x_access_token"])
    try:
        created = client.create_post(post["text"], has_link=bool(post["link"]))
    except XTimeout as error:
        _finish(runtime, post, attempt_id, "unconfirmed", "unknown", str(error))
        return "unconfirmed"
    except RateLimited as error:
        _finish(runtime, post, attempt_id, "scheduled", "rate_limited", str(error))
        runtime.log.warning(
            "X rate limit; post deferred",
            extra=fields(post_id=str(post["id"]), reset_at=error.reset_at),
        )
        return "deferred"
    except TransientError as error:
        _finish(runtime, post, attempt_id, "scheduled", "retry", str(error))
        return "deferred"
    except PermanentError as error:
        _finish(runtime, post, attempt_id, "failed", "failed", str(error))
        runtime.log.error(
            "X refused a post", extra=fields(post_id=str(post["id"]), reason=str(error))
        )
        return "failed"

    now = runtime.clock.now()
    with runtime.database.transaction() as tx:
        tx.execute(MARK_PUBLISHED, post_id=post["id"], x_post_id=created.id, now=now)
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
    runtime.log.info(
        "published", extra=fields(post_id=str(post["id"]), x_post_id=created.id)
    )
    return "published"


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
