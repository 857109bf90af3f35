"""Mentions: polled from X, stored once each, fanned out, scored, triaged.

Polling reads pages back to the stored cursor, stores the mentions (the X id is
unique per brand, so a re-read stores nothing twice) and moves the cursor in the same
transaction, only once every page back to it was read; a poll that runs out of pages
resumes from X's page token next time. New mention ids, and any still unscored a
while after they were stored, go out on Pub/Sub in batches, and every publish is
confirmed before the function returns. Scoring and triage live in scoring.py.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from cartcast import accounts, costs
from cartcast.errors import CartcastError, PermanentError, TransientError
from cartcast.logs import fields

FANOUT_BATCH_SIZE = 100
# Mentions still unscored this long after they were stored are sent to scoring
# again: the fan-out that carried them may have been lost, and scoring is
# idempotent. Every poll is also this sweep.
SWEEP_AFTER = dt.timedelta(minutes=10)
SWEEP_BATCH_MAX = 1000

INSERT_MENTION = """
INSERT INTO mentions (brand_id, x_post_id, author_id, author_username, author_name,
    text, conversation_id, in_reply_to_user_id, posted_at, received_at,
    author_followers, media_types)
VALUES (:brand_id, :x_post_id, :author_id, :author_username, :author_name, :text,
    :conversation_id, :in_reply_to_user_id, :posted_at, :received_at,
    :author_followers, CAST(:media_types AS text[]))
ON CONFLICT (brand_id, x_post_id) DO NOTHING
RETURNING id
"""
SAVE_CURSOR = """
UPDATE brands SET mentions_since_id = :since_id,
    mentions_resume_token = :resume_token,
    mentions_pending_newest_id = :pending_newest_id
WHERE id = :brand_id
"""
FORGET_RESUME = """
UPDATE brands SET mentions_resume_token = NULL, mentions_pending_newest_id = NULL
WHERE id = :brand_id
"""
SELECT_STRAYS = """
SELECT id FROM mentions
WHERE brand_id = :brand_id AND scored_at IS NULL AND received_at < :before
ORDER BY received_at LIMIT :limit
"""


def poll_mentions(runtime: Any, *, as_of: dt.datetime) -> dict[str, int]:
    """Poll every connected brand's mentions; return how many were read and new.

    One brand's trouble with X (a revoked token, a rate limit, an outage) is logged
    and skipped, so it never holds up the other brands; database failures raise.
    """
    now = runtime.clock.now()
    with runtime.database.transaction() as tx:
        connected = accounts.connected_brands(tx)
    totals = dict.fromkeys(
        ("brands", "read", "new", "swept", "skipped", "fan_out_failed"), 0
    )
    for brand in connected:
        paused_until = brand["x_reads_paused_until"]
        batch = None
        if not (paused_until and paused_until > now) and not (
            accounts.over_budget_for_reads(runtime, brand, what="mentions")
        ):
            batch = _read(runtime, brand)
        if batch is None:
            totals["skipped"] += 1
            continue
        new_ids = _store(runtime, brand, batch)
        strays = _strays(runtime, brand_id=brand["id"], exclude=set(new_ids))
        try:
            _fan_out(runtime, brand_id=str(brand["id"]), mention_ids=new_ids + strays)
        except TransientError as error:
            # The mentions are stored; a later poll's sweep sends them again. Other
            # brands' mentions still get read and stored meanwhile.
            totals["fan_out_failed"] += 1
            runtime.log.error(
                "mention fan-out failed",
                extra=fields(brand_id=str(brand["id"]), reason=str(error)),
            )
        totals["brands"] += 1
        totals["read"] += len(batch.mentions)
        totals["new"] += len(new_ids)
        totals["swept"] += len(strays)
    return totals


def _read(runtime: Any, brand: dict[str, Any]) -> Any:
    """Read the brand's next mentions from X, or None when X would not answer."""
    client = runtime.x_client(brand["x_access_token"])
    try:
        return client.mentions(
            brand["x_user_id"],
            since_id=brand["mentions_since_id"],
            max_pages=runtime.settings.mention_pages_max,
            pagination_token=brand["mentions_resume_token"],
        )
    except CartcastError as error:
        if isinstance(error, PermanentError) and brand["mentions_resume_token"]:
            # X no longer accepts the saved page token: start again from the cursor.
            with runtime.database.transaction() as tx:
                tx.execute(FORGET_RESUME, brand_id=brand["id"])
        accounts.note_read_trouble(runtime, brand, error, what="mentions")
    return None


def _store(runtime: Any, brand: dict[str, Any], batch: Any) -> list[str]:
    """Store a batch of mentions and move the cursor; return the new mentions' ids."""
    now = runtime.clock.now()
    new_ids = []
    with runtime.database.transaction() as tx:
        for mention in batch.mentions:
            mention_id = tx.scalar(
                INSERT_MENTION,
                brand_id=brand["id"],
                x_post_id=mention.id,
                author_id=mention.author_id,
                author_username=_storable(mention.author_username),
                author_name=_storable(mention.author_name),
                text=_storable(mention.text),
                conversation_id=mention.conversation_id,
                in_reply_to_user_id=mention.in_reply_to_user_id,
                posted_at=mention.created_at,
                received_at=now,
                author_followers=mention.author_followers,
                media_types=list(mention.media_types),
            )
            if mention_id is not None:
                new_ids.append(str(mention_id))
        # The account's own mentions: an owned read with the brand's own X app.
        price_class = costs.read_class(own_app=brand["x_own_app"])
        costs.record(
            tx,
            brand_id=brand["id"],
            occurred_at=now,
            operation=price_class,
            units=len(batch.mentions),
            usd=costs.price(
                runtime.settings.x_prices_usd, price_class, len(batch.mentions)
            ),
            ref=f"mentions:{uuid.uuid4()}",
        )
        tx.execute(SAVE_CURSOR, brand_id=brand["id"], **_next_cursor(brand, batch))
    runtime.log.info(
        "mentions polled",
        extra=fields(
            brand_id=str(brand["id"]),
            read=len(batch.mentions),
            new=len(new_ids),
            complete=batch.complete,
        ),
    )
    return new_ids


def _storable(text: str | None) -> str | None:
    """Make X's text storable: PostgreSQL text holds no NUL and no lone surrogate."""
    if text is None:
        return None
    return text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "")


def _next_cursor(brand: dict[str, Any], batch: Any) -> dict[str, str | None]:
    """Work out the cursor after a read.

    The cursor (since_id) moves only once every page back to it was read. A read
    that ran out of pages keeps X's token for the older pages and the newest id it
    saw; the next poll continues there, and when it reaches the cursor the cursor
    jumps to that newest id.
    """
    newest = brand["mentions_pending_newest_id"] or batch.newest_id
    if batch.complete:
        return {
            "since_id": _later_id(brand["mentions_since_id"], newest),
            "resume_token": None,
            "pending_newest_id": None,
        }
    return {
        "since_id": brand["mentions_since_id"],
        "resume_token": batch.next_token,
        "pending_newest_id": newest,
    }


def _later_id(current: str | None, candidate: str | None) -> str | None:
    """Return the later of two X ids (decimal strings, compared as numbers)."""
    if current is None or candidate is None:
        return candidate or current
    return max(current, candidate, key=lambda value: (len(value), value))


def _strays(runtime: Any, *, brand_id: Any, exclude: set[str]) -> list[str]:
    """Return mentions stored a while ago and still unscored (a lost fan-out)."""
    before = runtime.clock.now() - SWEEP_AFTER
    with runtime.database.transaction() as tx:
        rows = tx.rows(
            SELECT_STRAYS, brand_id=brand_id, before=before, limit=SWEEP_BATCH_MAX
        )
    return [str(row["id"]) for row in rows if str(row["id"]) not in exclude]


def _fan_out(runtime: Any, *, brand_id: str, mention_ids: list[str]) -> None:
    batches = [
        {"brand_id": brand_id, "mention_ids": mention_ids[i : i + FANOUT_BATCH_SIZE]}
        for i in range(0, len(mention_ids), FANOUT_BATCH_SIZE)
    ]
    if batches:
        runtime.publisher.publish(runtime.settings.mentions_topic, batches)


def score_mentions(runtime: Any, *, mention_ids: list[str]) -> int:
    """Score the given mentions not scored yet (scoring.py); return how many were."""
    from cartcast import scoring

    return scoring.score_mentions(runtime, mention_ids=mention_ids)["scored"]
