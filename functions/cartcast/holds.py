"""Holding a brand's queued posts, and queueing them again: one way for every cause.

A disconnected account, a crisis pause and a brand leaving cartcast all stop the
brand's posts the same way, and a retired product its own posts. First every
queued post of the brand is locked, which
waits for a run between committing a send's intent and its commit; then the hold
sees every intent written. A claimed post whose attempt wrote its intent may be on
X: it is left to finish (or to the lease and the reconciler); the others are held
with the cause's reason. Each cause's reason starts with its own prefix, so queueing
again releases only the posts that cause held.
"""

from __future__ import annotations

import datetime as dt

from cartcast.db import Transaction

LOCK_QUEUED = """
SELECT id FROM posts
WHERE brand_id = :brand_id AND state IN ('scheduled', 'publishing')
  AND (:replies OR in_reply_to IS NULL)
ORDER BY id
FOR UPDATE
"""
HOLD_QUEUED = """
UPDATE posts p SET state = 'held', failure_reason = :reason, lease_until = NULL,
    not_before = NULL, updated_at = :now
WHERE p.brand_id = :brand_id AND (:replies OR p.in_reply_to IS NULL)
  AND (p.state = 'scheduled' OR (p.state = 'publishing' AND NOT EXISTS (
      SELECT 1 FROM publish_attempts a
      WHERE a.id = p.lease_attempt_id AND a.sent_at IS NOT NULL)))
RETURNING p.id
"""
RELEASE_HELD = """
UPDATE posts SET state = 'scheduled', failure_reason = NULL, not_before = NULL,
    updated_at = :now
WHERE brand_id = :brand_id AND state = 'held' AND starts_with(failure_reason, :prefix)
RETURNING id
"""

# A retired product's posts (catalog.retire_product): the same locking, one
# product's top-level posts only (a reply has no product).
LOCK_PRODUCT_QUEUED = """
SELECT id FROM posts
WHERE product_id = :product_id AND state IN ('scheduled', 'publishing')
  AND in_reply_to IS NULL
ORDER BY id
FOR UPDATE
"""
HOLD_PRODUCT_QUEUED = """
UPDATE posts p SET state = 'held', failure_reason = :reason, lease_until = NULL,
    not_before = NULL, updated_at = :now
WHERE p.product_id = :product_id AND p.in_reply_to IS NULL
  AND (p.state = 'scheduled' OR (p.state = 'publishing' AND NOT EXISTS (
      SELECT 1 FROM publish_attempts a
      WHERE a.id = p.lease_attempt_id AND a.sent_at IS NOT NULL)))
RETURNING p.id
"""
RELEASE_PRODUCT_HELD = """
UPDATE posts SET state = 'scheduled', failure_reason = NULL, not_before = NULL,
    updated_at = :now
WHERE product_id = :product_id AND state = 'held'
  AND starts_with(failure_reason, :prefix)
RETURNING id
"""


def hold_queued(
    tx: Transaction,
    *,
    brand_id: str,
    reason: str,
    now: dt.datetime,
    replies: bool = True,
) -> int:
    """Hold the brand's queued posts (its replies too unless `replies` is False);
    return how many were held."""
    tx.rows(LOCK_QUEUED, brand_id=brand_id, replies=replies)
    return len(
        tx.rows(HOLD_QUEUED, brand_id=brand_id, reason=reason, now=now, replies=replies)
    )


def release_held(
    tx: Transaction, *, brand_id: str, prefix: str, now: dt.datetime
) -> int:
    """Queue again the brand's posts held with a reason starting with `prefix`;
    return how many went back to `scheduled`."""
    return len(tx.rows(RELEASE_HELD, brand_id=brand_id, prefix=prefix, now=now))


def hold_product_queued(
    tx: Transaction, *, product_id: str, reason: str, now: dt.datetime
) -> int:
    """Hold the queued posts of one product; return how many were held."""
    tx.rows(LOCK_PRODUCT_QUEUED, product_id=product_id)
    return len(
        tx.rows(HOLD_PRODUCT_QUEUED, product_id=product_id, reason=reason, now=now)
    )


def release_product_held(
    tx: Transaction, *, product_id: str, prefix: str, now: dt.datetime
) -> int:
    """Queue again one product's posts held with a reason starting with `prefix`;
    return how many went back to `scheduled`."""
    return len(
        tx.rows(RELEASE_PRODUCT_HELD, product_id=product_id, prefix=prefix, now=now)
    )
