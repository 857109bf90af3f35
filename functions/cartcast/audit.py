"""The audit trail: who changed what of a brand, when, and what it was before.

Two tables hold it, read as one through the view `audit_trail` (sql/032):

    post_events    every change of a post's state, text, poll or schedule, written
                   by a trigger whoever makes it (post_events.py, decision 0009),
                   with the fields it replaced and wrote
    audit_events   everything else, written by `record`: keys created and revoked,
                   mentions handled and answered, the brand paused and resumed,
                   and the requests refused that concern the brand

`record` writes in the caller's transaction, so the change and its record commit or
vanish together. A refusal is the one exception: the request's transaction rolls
back, so api.py records it in a transaction of its own (decision 0031).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from cartcast import page_cursors
from cartcast.db import Transaction
from cartcast.errors import InvalidRequest

ACTION_PATTERN = re.compile(r"[a-z_]+\.[a-z_]+")
SUBJECT_LENGTH_MAX = 300
FILTER_LENGTH_MAX = 300

INSERT_EVENT = """
INSERT INTO audit_events (brand_id, at, actor, action, subject, before, after)
VALUES (:brand_id, :at, :actor, :action, :subject,
        CAST(:before AS jsonb), CAST(:after AS jsonb))
"""
# Newest first. The cursor is the last row's (at, source, id); `source` breaks ties
# between the two tables, `id` within one. Each table is read on its own, in the
# order of its (brand_id, at DESC, id DESC) index and cut at the page's size, and
# only then merged: sorting the whole union would read every row of the brand.
SELECT_TRAIL = """
SELECT * FROM (
    (SELECT source, id, at, actor, action, subject, before, after
     FROM audit_trail
     WHERE source = 'audit' AND brand_id = :brand_id
       AND (CAST(:action AS text) IS NULL OR action = :action)
       AND (CAST(:subject AS text) IS NULL OR subject = :subject)
       AND (CAST(:after_at AS timestamptz) IS NULL
            OR (at, source, id) < (:after_at, :after_source, :after_id))
     ORDER BY at DESC, id DESC
     LIMIT :limit)
    UNION ALL
    (SELECT source, id, at, actor, action, subject, before, after
     FROM audit_trail
     WHERE source = 'post' AND brand_id = :brand_id
       AND (CAST(:action AS text) IS NULL OR action = :action)
       AND (CAST(:subject AS text) IS NULL OR subject = :subject)
       AND (CAST(:after_at AS timestamptz) IS NULL
            OR (at, source, id) < (:after_at, :after_source, :after_id))
     ORDER BY at DESC, id DESC
     LIMIT :limit)
) page
ORDER BY at DESC, source DESC, id DESC
LIMIT :limit
"""


# Two-key advisory locks: 7310-7312 are settling's, brands' and the KPIs'.
LOCK_REFUSALS = "SELECT pg_advisory_xact_lock(7313, hashtext(:brand_id))"
SELECT_ACTOR = "SELECT NULLIF(current_setting('cartcast.actor', true), '') AS actor"
# At most :cap rows are counted: the question is only whether the cap is reached.
COUNT_RECENT = """
SELECT count(*) FROM (
    SELECT 1 FROM audit_events
    WHERE brand_id = :brand_id AND starts_with(action, :prefix) AND at > :since
      AND actor = :actor
    LIMIT :cap
) recent
"""


def record(
    tx: Transaction,
    *,
    brand_id: str,
    actor: str,
    action: str,
    subject: str,
    at: dt.datetime,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """Add one event to the brand's trail, in the caller's transaction.

    Args:
        action: "<what>.<verb>" in lower case, such as "key.revoked".
        subject: "<kind>:<id or name>", such as "key:ops-bot".
        before, after: what the change replaced and what it wrote; JSON values,
            never a secret.
    """
    if not ACTION_PATTERN.fullmatch(action):
        raise ValueError(f"an audit action reads '<what>.<verb>', not {action!r}")
    tx.execute(
        INSERT_EVENT,
        brand_id=brand_id,
        at=at,
        actor=actor,
        action=action,
        subject=subject[:SUBJECT_LENGTH_MAX],
        before=_json(before),
        after=_json(after),
    )


def current_actor(tx: Transaction) -> str:
    """Return who the transaction acts as (post_events.act_as), "system" if unset."""
    return tx.scalar(SELECT_ACTOR) or "system"


def count_recent(
    tx: Transaction,
    *,
    brand_id: str,
    actor: str,
    prefix: str,
    since: dt.datetime,
    cap: int,
) -> int:
    """Count the brand's events by `actor` whose action starts with `prefix` since
    `since`, up to `cap`."""
    return tx.scalar(
        COUNT_RECENT,
        brand_id=brand_id,
        actor=actor,
        prefix=prefix,
        since=since,
        cap=cap,
    )


def lock_refusals(tx: Transaction, *, brand_id: str) -> None:
    """Take the brand's refusal-recording lock until the transaction ends, so two
    refusals at once cannot both find the hourly cap unreached."""
    tx.scalar(LOCK_REFUSALS, brand_id=str(brand_id))


def list_trail(
    tx: Transaction, *, brand_id: str, query: Any, limit: int
) -> dict[str, Any]:
    """Return one page of the brand's trail, newest first, and the next cursor.

    `query` may hold `action` and `subject` (exact matches) and `after`, the
    cursor a previous page answered as `next`.
    """
    action = _filter(query, "action")
    subject = _filter(query, "subject")
    after_at, after_source, after_id = page_cursors.place_after(
        query.get("after"), "audit", _place, (None, None, None)
    )

    rows = tx.rows(
        SELECT_TRAIL,
        brand_id=brand_id,
        action=action,
        subject=subject,
        after_at=after_at,
        after_source=after_source,
        after_id=after_id,
        limit=limit + 1,
    )
    page, next_token = page_cursors.next_page(rows, limit, "audit", _key)
    return {"events": [_view(row) for row in page], "next": next_token}


def _view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "at": row["at"],
        "actor": row["actor"],
        "action": row["action"],
        "subject": row["subject"],
        "before": row["before"],
        "after": row["after"],
    }


def _filter(query: Any, name: str) -> str | None:
    value = query.get(name)
    if value is None:
        return None
    if not value or len(value) > FILTER_LENGTH_MAX or "\x00" in value:
        raise InvalidRequest(
            f"'{name}' must be 1 to {FILTER_LENGTH_MAX} characters", field=name
        )
    return value


def _key(row: dict[str, Any]) -> list[Any]:
    return [row["at"].isoformat(), row["source"], row["id"]]


def _place(key: list[Any]) -> tuple[dt.datetime, str, int]:
    at, source, row_id = key
    if source not in ("audit", "post"):
        raise ValueError(source)
    return page_cursors.instant(at), source, page_cursors.row_number(row_id)


def _json(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, default=_encode)


def _encode(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return str(value)
