"""A brand that leaves: asked for, a grace period, then every row of it deleted.

1. An admin key asks (POST /v1/brand/offboarding), saying whether the brand keeps
   its aggregate daily KPIs. At once the brand's queued posts, replies included,
   are held with an "offboarding" reason, the publish claim skips the brand, and
   mentions and metrics are no longer read from X (the brand leaves
   `accounts.connected_brands`). Its keys still work during the grace period, so
   it can take its export and change its mind.
2. During the grace period (CARTCAST_OFFBOARDING_GRACE_DAYS) an admin key may
   cancel (POST /v1/brand/offboarding/cancel): the held posts go back to
   `scheduled`, and polling and publishing resume.
3. Once the grace period has passed, the brand's keys are refused (401) even before
   the sweeper has run, and the sweeper, run by each `rollup_kpis` tick after the
   rollup, offboards it: it revokes the brand's X tokens (`revoke_x_tokens`),
   deletes its posts (with everything of theirs), mentions, orders and ledger rows
   in batches, each its own transaction, then deletes the brand, which cascades to
   every other table that names it, and the rollup's marks, which name it without
   a foreign key. A brand that kept its KPIs
   is written back as a stripped row holding only its id, time zone, currency and
   the dates of its offboarding, with its `daily_kpis` rows (decision 0032).

Each step is one named function, so the audit trail can record it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from cartcast import holds
from cartcast.db import Transaction
from cartcast.errors import (
    INVALID_TOKEN_CHALLENGE,
    ConfigurationError,
    Conflict,
    Forbidden,
    NotFound,
    Unauthorized,
)
from cartcast.logs import fields

HELD_PREFIX = "offboarding: "
HELD_FIX = (
    "; POST /v1/brand/offboarding/cancel keeps the brand and puts this post back "
    "in the queue"
)
# A brand's big tables are deleted in batches, each its own transaction, so no
# statement nears the database socket's timeout; a sweep runs at most this many
# batches, and a brand left half deleted is taken up again by the next tick.
POSTS_PER_BATCH = 500
ROWS_PER_BATCH = 5000
SWEEP_BATCHES_MAX = 2000
STRIPPED_NAME = "offboarded brand"

# NO KEY: the request and its cancel then hold or release the brand's posts, and
# an approval or edit of one of them, holding its row, logs itself (post_events,
# by trigger) with a foreign key that takes KEY SHARE on the brand; FOR UPDATE
# refused that, and PostgreSQL ended one of the two as a deadlock. Requests still
# exclude each other, schedulers, pauses and the sweep (TAKE_DUE, which deletes).
LOCK_BRAND = """
SELECT id, slug, offboarding_requested_at, offboarding_due_at, offboarded_at
FROM brands WHERE id = :brand_id FOR NO KEY UPDATE
"""
MARK_REQUESTED = """
UPDATE brands SET offboarding_requested_at = :now, offboarding_requested_by = :actor,
    offboarding_due_at = :due_at, offboarding_keeps_kpis = :keep_daily_kpis
WHERE id = :brand_id AND offboarding_requested_at IS NULL
"""
CLEAR_REQUEST = """
UPDATE brands SET offboarding_requested_at = NULL, offboarding_requested_by = NULL,
    offboarding_due_at = NULL, offboarding_keeps_kpis = false
WHERE id = :brand_id
"""
SELECT_STATE = """
SELECT offboarding_requested_at, offboarding_requested_by, offboarding_due_at,
    offboarding_keeps_kpis
FROM brands WHERE id = :brand_id
"""
HOLD_WHILE_OFFBOARDING = """
UPDATE posts p SET state = 'held', updated_at = :now,
    failure_reason = :prefix || 'the brand asked to leave cartcast; its data is '
        || 'deleted at ' || to_char(b.offboarding_due_at AT TIME ZONE 'UTC',
            'YYYY-MM-DD"T"HH24:MI:SS"+00:00"') || :fix
FROM brands b
WHERE b.id = p.brand_id AND b.offboarding_requested_at IS NOT NULL
  AND p.state = 'scheduled'
RETURNING p.id
"""
PAST_GRACE = """
SELECT 1 FROM brands
WHERE id = :brand_id AND offboarding_due_at IS NOT NULL AND offboarding_due_at <= :now
"""
# Brands whose grace period is over, each taken by one sweeper only.
TAKE_DUE = """
SELECT id, slug, offboarding_keeps_kpis, time_zone, currency, created_at,
    offboarding_requested_at
FROM brands
WHERE offboarding_due_at <= :now AND offboarded_at IS NULL
  AND id <> ALL(CAST(:skipped AS uuid[]))
ORDER BY offboarding_due_at, id
LIMIT :limit
FOR UPDATE SKIP LOCKED
"""
# Posts go with their parts, events, attempts, intents and metric snapshots.
DELETE_BATCHES = (
    (
        """
        DELETE FROM posts WHERE id IN (
            SELECT id FROM posts WHERE brand_id = :brand_id ORDER BY id LIMIT :limit)
        """,
        POSTS_PER_BATCH,
    ),
    (
        """
        DELETE FROM mentions WHERE id IN (
            SELECT id FROM mentions WHERE brand_id = :brand_id LIMIT :limit)
        """,
        ROWS_PER_BATCH,
    ),
    (
        """
        DELETE FROM orders WHERE id IN (
            SELECT id FROM orders WHERE brand_id = :brand_id LIMIT :limit)
        """,
        ROWS_PER_BATCH,
    ),
    (
        """
        DELETE FROM cost_ledger WHERE id IN (
            SELECT id FROM cost_ledger WHERE brand_id = :brand_id LIMIT :limit)
        """,
        ROWS_PER_BATCH,
    ),
    # The audit trail's own rows (audit.py); refusals alone may add 100 an hour.
    (
        """
        DELETE FROM audit_events WHERE id IN (
            SELECT id FROM audit_events WHERE brand_id = :brand_id LIMIT :limit)
        """,
        ROWS_PER_BATCH,
    ),
)
# The hook the X connection's code replaces with a revocation at X (issue 7).
SELECT_X_TOKENS = """
SELECT x_access_token, x_refresh_token FROM brands WHERE id = :brand_id
"""
CLEAR_X_TOKEN = """
UPDATE brands SET x_access_token = NULL, x_refresh_token = NULL,
    x_token_expires_at = NULL, x_token_scopes = NULL
WHERE id = :brand_id
"""
# The kept KPIs leave as text and come back whole: numeric values stay exact.
SELECT_KEPT_KPIS = """
SELECT CAST(COALESCE(jsonb_agg(to_jsonb(k)), '[]') AS text)
FROM daily_kpis k WHERE k.brand_id = :brand_id
"""
DELETE_BRAND = "DELETE FROM brands WHERE id = :brand_id"
# kpi_marks has no foreign key (a mark may outlive its brand: sql/021).
DELETE_MARKS = "DELETE FROM kpi_marks WHERE brand_id = :brand_id"
INSERT_STRIPPED_BRAND = """
INSERT INTO brands (id, slug, name, time_zone, store_base_url, currency,
    posting_slots, created_at, offboarding_requested_at, offboarding_requested_by,
    offboarding_due_at, offboarding_keeps_kpis, offboarded_at)
VALUES (:brand_id, :slug, :name, :time_zone, '', :currency, '[]', :created_at,
    :requested_at, 'offboarding', :now, true, :now)
"""
RESTORE_KPIS = """
INSERT INTO daily_kpis
SELECT * FROM jsonb_populate_recordset(NULL::daily_kpis, CAST(:rows AS jsonb))
RETURNING day
"""


def request_offboarding(
    tx: Transaction,
    *,
    brand_id: str,
    actor: str,
    keep_daily_kpis: bool,
    grace_days: int,
    now: dt.datetime,
) -> dict[str, Any]:
    """Mark the brand offboarding and hold its queued posts; 409 when already asked.

    Publishing and reading from X stop at once; the data goes after `grace_days`.
    """
    brand = _lock(tx, brand_id)
    if brand["offboarding_requested_at"] is not None:
        raise Conflict(
            f"offboarding was already asked for at "
            f"{brand['offboarding_requested_at'].isoformat()}; it is due at "
            f"{brand['offboarding_due_at'].isoformat()} "
            "(POST /v1/brand/offboarding/cancel to keep the brand)"
        )
    due_at = now + dt.timedelta(days=grace_days)
    tx.execute(
        MARK_REQUESTED,
        brand_id=brand_id,
        actor=actor,
        now=now,
        due_at=due_at,
        keep_daily_kpis=keep_daily_kpis,
    )

    reason = (
        f"{HELD_PREFIX}the brand asked to leave cartcast; its data is deleted at "
        f"{due_at.isoformat()}{HELD_FIX}"
    )
    held = holds.hold_queued(tx, brand_id=brand_id, reason=reason, now=now)
    return {**offboarding_state(tx, brand_id=brand_id), "posts_held": held}


def cancel_offboarding(
    tx: Transaction, *, brand_id: str, now: dt.datetime
) -> dict[str, Any]:
    """Keep the brand: clear the request, queue its held posts again; 409 when none."""
    brand = _lock(tx, brand_id)
    if brand["offboarding_requested_at"] is None:
        raise Conflict("no offboarding was asked for; there is nothing to cancel")
    tx.execute(CLEAR_REQUEST, brand_id=brand_id)
    released = holds.release_held(tx, brand_id=brand_id, prefix=HELD_PREFIX, now=now)
    return {**offboarding_state(tx, brand_id=brand_id), "posts_released": released}


def offboarding_state(tx: Transaction, *, brand_id: str) -> dict[str, Any]:
    row = tx.one(SELECT_STATE, brand_id=brand_id)
    if row is None:
        raise NotFound("brand not found")
    return {
        "offboarding": row["offboarding_requested_at"] is not None,
        "requested_at": row["offboarding_requested_at"],
        "requested_by": row["offboarding_requested_by"],
        "delete_at": row["offboarding_due_at"],
        "keep_daily_kpis": row["offboarding_keeps_kpis"],
    }


def hold_while_offboarding(tx: Transaction, *, now: dt.datetime) -> int:
    """Hold posts scheduled for a leaving brand since it asked; return how many."""
    return len(
        tx.rows(HOLD_WHILE_OFFBOARDING, prefix=HELD_PREFIX, fix=HELD_FIX, now=now)
    )


def refuse_after_grace(
    tx: Transaction, *, brand_id: str | None, now: dt.datetime
) -> None:
    """Refuse a brand's key once its grace period is over, swept or not (401)."""
    if brand_id is not None and tx.one(PAST_GRACE, brand_id=brand_id, now=now):
        raise Unauthorized(
            "unknown or revoked API key", challenge=INVALID_TOKEN_CHALLENGE
        )


def require_admin(role: str, what: str) -> None:
    if role != "admin":
        raise Forbidden(f"{what} needs a key of role admin")


def sweep_due_offboardings(
    runtime: Any, *, now: dt.datetime, batches_max: int = SWEEP_BATCHES_MAX
) -> dict[str, int]:
    """Offboard the brands whose grace period is over, a batch per transaction.

    Each transaction takes a due brand (SKIP LOCKED: two sweeps never share one),
    revokes its X tokens (idempotent), and deletes one batch of its posts, mentions,
    orders or ledger rows; once none is left, the last one deletes the brand.

    A batch that PostgreSQL refuses is rolled back and its brand left for the next
    tick, logged; the sweep goes on with the other brands. Else the first brand due
    would be taken first, and fail, at every tick: no other brand would ever be
    deleted, the retention sweep after it would never run, and the failed rollup
    tick would be delivered again.
    """
    from pg8000.dbapi import DatabaseError

    counts = {"offboarded": 0, "offboarding_batches": 0, "offboarding_failed": 0}
    failed: list[str] = []
    while counts["offboarding_batches"] < batches_max:
        brand_id = None
        try:
            with runtime.database.transaction() as tx:
                due = tx.one(TAKE_DUE, now=now, limit=1, skipped=failed)
                if due is None:
                    break
                brand_id = str(due["id"])
                revoke_x_tokens(tx, runtime, brand_id=brand_id)
                removed = delete_brand_batch(tx, brand_id=brand_id)
                kept = None if removed else delete_brand_data(tx, brand=due, now=now)
        except DatabaseError as error:  # one brand must not stop all
            if brand_id is None:
                raise
            failed.append(brand_id)
            counts["offboarding_failed"] += 1
            runtime.log.error(
                "offboarding failed for a brand; it is tried again at the next tick",
                extra=fields(brand_id=brand_id, error=repr(error)[:300]),
            )
            continue
        counts["offboarding_batches"] += 1
        if kept is not None:
            counts["offboarded"] += 1
            runtime.log.info(
                "brand offboarded", extra=fields(brand_id=brand_id, kept_kpi_days=kept)
            )
    return counts


def delete_brand_batch(tx: Transaction, *, brand_id: str) -> int:
    """Delete one batch of the brand's biggest tables; return the rows, 0 if none.

    The deletes mark the brand's days for the rollup (sql/027); the marks go in
    the same transaction, or the rollup would rewrite kept KPIs from empty tables.
    """
    for statement, limit in DELETE_BATCHES:
        removed = tx.execute(statement, brand_id=brand_id, limit=limit)
        if removed:
            tx.execute(DELETE_MARKS, brand_id=brand_id)
            return removed
    return 0


def revoke_x_tokens(tx: Transaction, runtime: Any, *, brand_id: str) -> None:
    """Revoke the brand's X tokens with X (x_oauth.revoke_with_x) and forget them.

    Runs before the brand's rows go; once forgotten, later batches call nothing.
    X being unreachable, a token set by hand that no X app issued, or a token key
    that no longer opens the tokens (replaced, or gone) is not retried: the tokens
    are forgotten all the same, since the deletion is the brand's due and must
    not wait on the deployment's X settings (an error is logged for the operator).
    """
    row = tx.one(SELECT_X_TOKENS, brand_id=brand_id)
    if row is not None and (row["x_access_token"] or row["x_refresh_token"]):
        from cartcast import x_oauth

        try:
            revoked = x_oauth.revoke_with_x(runtime, row)
        except ConfigurationError as error:
            revoked = False
            runtime.log.error(
                "X tokens of a leaving brand could not be revoked with X",
                extra=fields(brand_id=brand_id, reason=str(error)),
            )
        runtime.log.info(
            "X tokens of a leaving brand forgotten",
            extra=fields(brand_id=brand_id, revoked_with_x=revoked),
        )
    tx.execute(CLEAR_X_TOKEN, brand_id=brand_id)


def delete_brand_data(
    tx: Transaction, *, brand: dict[str, Any], now: dt.datetime
) -> int:
    """Delete every row of the brand; keep its daily KPIs if it chose. Return how
    many KPI days were kept."""
    brand_id = str(brand["id"])
    kept_rows, kept = "[]", 0
    if brand["offboarding_keeps_kpis"]:
        kept_rows = tx.scalar(SELECT_KEPT_KPIS, brand_id=brand_id)

    tx.execute(DELETE_BRAND, brand_id=brand_id)
    if brand["offboarding_keeps_kpis"]:
        tx.execute(
            INSERT_STRIPPED_BRAND,
            brand_id=brand_id,
            slug=stripped_slug(brand_id),
            name=STRIPPED_NAME,
            time_zone=brand["time_zone"],
            currency=brand["currency"],
            created_at=brand["created_at"],
            requested_at=brand["offboarding_requested_at"],
            now=now,
        )
        kept = len(tx.rows(RESTORE_KPIS, rows=kept_rows))
    # Last: the deletes above may mark days of the brand for the rollup.
    tx.execute(DELETE_MARKS, brand_id=brand_id)
    return kept


def stripped_slug(brand_id: str) -> str:
    """The slug of a kept brand row: frees the brand's own for a later sign-up."""
    from cartcast.brands import STRIPPED_SLUG_PREFIX

    return STRIPPED_SLUG_PREFIX + brand_id.replace("-", "")


def _lock(tx: Transaction, brand_id: str) -> dict[str, Any]:
    brand = tx.one(LOCK_BRAND, brand_id=brand_id)
    if brand is None:
        raise NotFound("brand not found")
    return brand
