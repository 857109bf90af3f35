"""Mentions: polled from X, stored once each, fanned out, scored, triaged.

Polling reads every page back to the stored cursor, stores the mentions (the X id is
unique per brand, so a re-read stores nothing twice) and only then advances the
cursor, in the same transaction. New mention ids go out on Pub/Sub in batches, and
every publish is confirmed before the function returns.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from cartcast import brands, costs
from cartcast.errors import RateLimited
from cartcast.logs import fields

FANOUT_BATCH_SIZE = 100

INSERT_MENTION = """
INSERT INTO mentions (brand_id, x_post_id, author_id, author_username, author_name,
    text, conversation_id, in_reply_to_user_id, posted_at, received_at)
VALUES (:brand_id, :x_post_id, :author_id, :author_username, :author_name, :text,
    :conversation_id, :in_reply_to_user_id, :posted_at, :received_at)
ON CONFLICT (brand_id, x_post_id) DO NOTHING
RETURNING id
"""
ADVANCE_CURSOR = """
UPDATE brands SET mentions_since_id = :since_id
WHERE id = :brand_id
  AND (mentions_since_id IS NULL
       OR length(mentions_since_id) < length(:since_id)
       OR (length(mentions_since_id) = length(:since_id)
           AND mentions_since_id < :since_id))
"""
SELECT_UNSCORED = """
SELECT id, text, posted_at FROM mentions
WHERE id = ANY(CAST(:ids AS uuid[])) AND scored_at IS NULL
FOR UPDATE SKIP LOCKED
"""
SAVE_SCORE = """
UPDATE mentions SET sentiment = :sentiment, compound = :compound, intent = :intent,
    priority = :priority, escalate = :escalate, reasons = CAST(:reasons AS text[]),
    response_due_at = :response_due_at, scorer_version = :scorer_version,
    scored_at = :now
WHERE id = :id AND scored_at IS NULL
"""
SELECT_INBOX = """
SELECT id, x_post_id, author_username, author_name, text, posted_at, sentiment,
    intent, priority, escalate, response_due_at, state
FROM mentions
WHERE brand_id = :brand_id AND (CAST(:state AS text) IS NULL OR state = :state)
ORDER BY priority NULLS LAST, response_due_at NULLS LAST, posted_at DESC
LIMIT :limit
"""


def poll_mentions(runtime: Any, *, as_of: dt.datetime) -> dict[str, int]:
    """Poll every connected brand's mentions; return how many were new."""
    with runtime.database.transaction() as tx:
        connected = brands.connected_brands(tx)
    totals = {"brands": 0, "read": 0, "new": 0, "deferred": 0}
    for brand in connected:
        try:
            read, new_ids = _poll_brand(runtime, brand)
        except RateLimited as error:
            runtime.log.warning(
                "X rate limit; mentions poll deferred",
                extra=fields(brand_id=str(brand["id"]), reset_at=error.reset_at),
            )
            totals["deferred"] += 1
            continue
        _fan_out(runtime, brand_id=str(brand["id"]), mention_ids=new_ids)
        totals["brands"] += 1
        totals["read"] += read
        totals["new"] += len(new_ids)
    return totals


def _poll_brand(runtime: Any, brand: dict[str, Any]) -> tuple[int, list[str]]:
    client = runtime.x_client(brand["x_access_token"])
    batch = client.mentions(
        brand["x_user_id"],
        since_id=brand["mentions_since_id"],
        max_pages=runtime.settings.mention_pages_max,
    )
    now = runtime.clock.now()
    new_ids = []
    with runtime.database.transaction() as tx:
        for mention in batch.mentions:
            mention_id = tx.scalar(
                INSERT_MENTION,
                brand_id=brand["id"],
                x_post_id=mention.id,
                author_id=mention.author_id,
                author_username=mention.author_username,
                author_name=mention.author_name,
                text=mention.text,
                conversation_id=mention.conversation_id,
                in_reply_to_user_id=mention.in_reply_to_user_id,
                posted_at=mention.created_at,
                received_at=now,
            )
            if mention_id is not None:
                new_ids.append(str(mention_id))
        costs.record(
            tx,
            brand_id=brand["id"],
            occurred_at=now,
            operation="owned_read",
            units=len(batch.mentions),
            usd=costs.X_OWNED_READ_USD * len(batch.mentions),
            ref=f"mentions:{brand['id']}:{batch.newest_id}",
        )
        # Advance only when every page was read: a partial read resumes from here.
        if batch.complete and batch.newest_id:
            tx.execute(ADVANCE_CURSOR, brand_id=brand["id"], since_id=batch.newest_id)
    runtime.log.info(
        "mentions polled",
        extra=fields(
            brand_id=str(brand["id"]), read=len(batch.mentions), new=len(new_ids)
        ),
    )
    return len(batch.mentions), new_ids


def _fan_out(runtime: Any, *, brand_id: str, mention_ids: list[str]) -> None:
    batches = [
        {"brand_id": brand_id, "mention_ids": mention_ids[i : i + FANOUT_BATCH_SIZE]}
        for i in range(0, len(mention_ids), FANOUT_BATCH_SIZE)
    ]
    if batches:
        runtime.publisher.publish(runtime.settings.mentions_topic, batches)


def score_mentions(runtime: Any, *, mention_ids: list[str]) -> int:
    """Score the given mentions that are not scored yet; return how many were."""
    from cartcast.sentiment import SCORER_VERSION, score_mention

    now = runtime.clock.now()
    with runtime.database.transaction() as tx:
        rows = tx.rows(SELECT_UNSCORED, ids=mention_ids)
        for row in rows:
            score = score_mention(row["text"])
            due = (
                None
                if score.response_due_min is None
                else row["posted_at"] + dt.timedelta(minutes=score.response_due_min)
            )
            tx.execute(
                SAVE_SCORE,
                id=row["id"],
                sentiment=score.sentiment,
                compound=score.compound,
                intent=score.intent,
                priority=score.priority,
                escalate=score.escalate,
                reasons=list(score.reasons),
                response_due_at=due,
                scorer_version=SCORER_VERSION,
                now=now,
            )
    return len(rows)


def inbox(
    tx: Any, *, brand_id: str, state: str | None, limit: int
) -> list[dict[str, Any]]:
    return tx.rows(SELECT_INBOX, brand_id=brand_id, state=state, limit=limit)
