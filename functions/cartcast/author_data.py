"""One mention author's personal data removed on request, and the record kept.

A person who wrote to or about the brand on X may ask the brand to remove what it
holds about them. POST /v1/author-data-removals (admin keys) names them by X user
id or by handle, and, for every mention of the brand they wrote:

- the text, the author's id, handle, display name and follower count, the mention's
  X id and conversation id (each leads back to the person's post on X), its media
  types and language are removed; the mention's X id becomes `removed:<mention
  id>` so the row keeps its unique key;
- its escalation (the payload queued for the brand's CRM, holding the text and the
  handle) is deleted, delivered or not;
- the triage figures stay (sentiment, intent, priority, deadlines, handled), so the
  daily KPIs and response times do not change;
- the brand's replies to those mentions not yet handed to X (waiting for approval,
  approved, scheduled or held) are cancelled with REPLY_CANCEL_REASON, which their
  post events carry as the request's key and reason: a removal request means
  cartcast stops acting on the person's mentions (decision 0039). A reply already
  publishing, or sent, is the brand's post on X and is left as it is; one that
  comes back unsent (X failed before taking it, its lease ran out before its
  intent, it was found absent) is cancelled then (sql/041, decision 0043).

The answer counts what was removed and cancelled; a second request finds nothing
and counts 0.
A mention a poll could still read again from X (posted within
`removed_mentions.reread_reach` of now) leaves its X id in `removed_mention_ids` until
that reach has passed, so the poll skips it instead of storing it anew; an older
one leaves nothing (decision 0056).
`author_data_removals` records when, by which key, how the person was named and
the counts, never the id or handle itself (decision 0032).

Another person's mention that replies to them loses the X user id it names them by
(`in_reply_to_user_id`). Not covered: a mention by someone else that quotes the
person's handle in its text, and the brand's own replies, which start with the
handle (they are the brand's posts, on X under its name); the README says so.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from cartcast import page_cursors, post_events, removed_mentions, validation
from cartcast.db import Transaction
from cartcast.errors import Conflict, InvalidRequest

FIELDS = ("x_user_id", "username")
# X user ids are decimal snowflakes (at most 19 digits, never a leading zero, so
# "042" would match nobody and report 0 removed); handles are 1-15 letters,
# digits or underscores (X help: "Username requirements").
X_USER_ID = re.compile(r"[1-9][0-9]{0,18}")
X_USERNAME = re.compile(r"[A-Za-z0-9_]{1,15}")
# What a cleared mention's X id starts with (CLEAR_MENTIONS): nothing on X to answer.
REMOVED_X_ID_PREFIX = "removed:"

# Both statements find the author's mentions not yet cleared, by one of two keys.
SELECT_BY_ID = """
SELECT id, author_id, x_post_id, reply_post_id, posted_at FROM mentions
WHERE brand_id = :brand_id AND author_id = :value AND author_removed_at IS NULL
FOR UPDATE
"""
SELECT_BY_USERNAME = """
SELECT id, author_id, x_post_id, reply_post_id, posted_at FROM mentions
WHERE brand_id = :brand_id AND lower(author_username) = lower(:value)
  AND author_removed_at IS NULL
FOR UPDATE
"""
# The brand's replies to those mentions that X has not been handed: the states
# posts.cancel leaves, so a reply being published is left to finish (holds.py's
# rule). By the mention's link to its reply, and by the X id replied to, which a
# reply that failed and was queued again still carries. Run before CLEAR_MENTIONS
# rewrites the X ids.
REPLY_CANCEL_REASON = (
    "cancelled: the author of the mention asked for their data to be removed "
    "(POST /v1/author-data-removals)"
)
CANCEL_REPLIES = """
UPDATE posts SET state = 'cancelled', failure_reason = :reason, updated_at = :now
WHERE brand_id = :brand_id
  AND (id = ANY(CAST(:post_ids AS uuid[]))
       OR in_reply_to = ANY(CAST(:x_post_ids AS text[])))
  AND in_reply_to IS NOT NULL
  AND state IN ('needs_approval', 'approved', 'scheduled', 'held')
RETURNING id
"""
# The replies out of the queue that may yet come back to it unsent: marked, so
# sql/041's trigger cancels them then with the reason, instead of queueing them.
# A reply being published whose intent is written may be on X and is left to
# finish; one whose intent is not written yet is refused its turn (publishing.py).
MARK_REPLIES_IN_FLIGHT = """
UPDATE posts SET cancel_if_unsent = :reason
WHERE brand_id = :brand_id
  AND (id = ANY(CAST(:post_ids AS uuid[]))
       OR in_reply_to = ANY(CAST(:x_post_ids AS text[])))
  AND in_reply_to IS NOT NULL
  AND state IN ('publishing', 'unconfirmed', 'failed')
"""
# Run before CLEAR_MENTIONS rewrites the X ids. Only X's own ids (decimal
# snowflakes) can come back from a read; the id is kept plainly (decision 0056).
KEEP_REMOVED_IDS = """
INSERT INTO removed_mention_ids (brand_id, x_post_id, forget_after)
SELECT :brand_id, x_post_id, posted_at + make_interval(secs => :reach_s)
FROM mentions
WHERE brand_id = :brand_id AND id = ANY(CAST(:ids AS uuid[]))
  AND x_post_id ~ '^[0-9]{1,19}$'
  AND posted_at + make_interval(secs => :reach_s) > :now
ON CONFLICT (brand_id, x_post_id) DO NOTHING
"""
DELETE_ESCALATIONS = """
DELETE FROM escalation_outbox
WHERE brand_id = :brand_id AND mention_id = ANY(CAST(:ids AS uuid[]))
RETURNING id
"""
CLEAR_MENTIONS = """
UPDATE mentions SET text = '', author_id = '', author_username = NULL,
    author_name = NULL, author_followers = NULL, conversation_id = NULL,
    x_post_id = :removed_prefix || CAST(id AS text), media_types = '{}', lang = NULL,
    text_removed_at = COALESCE(text_removed_at, :now), author_removed_at = :now
WHERE brand_id = :brand_id AND id = ANY(CAST(:ids AS uuid[]))
RETURNING id
"""
# Other people's mentions that reply to the person name them by X id too.
FORGET_REPLIED_TO = """
UPDATE mentions SET in_reply_to_user_id = NULL
WHERE brand_id = :brand_id AND in_reply_to_user_id = ANY(CAST(:user_ids AS text[]))
"""
SELECT_OWN_ACCOUNT = "SELECT x_user_id, x_username FROM brands WHERE id = :brand_id"
RECORD_REMOVAL = """
INSERT INTO author_data_removals (brand_id, requested_at, requested_by, matched_by,
    mentions, escalations, replies_cancelled)
VALUES (:brand_id, :now, :actor, :matched_by, :mentions, :escalations,
    :replies_cancelled)
RETURNING id, requested_at, requested_by, matched_by, mentions, escalations,
    replies_cancelled
"""
LIST_REMOVALS = """
SELECT id, requested_at, requested_by, matched_by, mentions, escalations,
    replies_cancelled
FROM author_data_removals
WHERE brand_id = :brand_id AND (CAST(:after_id AS bigint) IS NULL OR id < :after_id)
ORDER BY id DESC LIMIT :limit
"""


def remove_author_data(
    tx: Transaction,
    *,
    brand_id: str,
    body: Any,
    actor: str,
    now: dt.datetime,
    reread_reach: dt.timedelta,
) -> dict[str, Any]:
    """Remove one author's data from the brand's mentions; return the record.

    Args:
        reread_reach: how far back of now a poll may read a mention again
            (`removed_mentions.reread_reach`); the X ids of mentions posted within it
            are kept that long after they were posted, so no poll stores them anew.

    Idempotent: the author's mentions already cleared are not found again.
    """
    matched_by, value = read_author(body)
    # Waits for a poll storing the brand's mentions, so what it stored is found.
    tx.execute(removed_mentions.LOCK_BRAND_MENTIONS, brand_id=str(brand_id))
    own = tx.one(SELECT_OWN_ACCOUNT, brand_id=brand_id) or {}
    if (matched_by == "x_user_id" and value == own.get("x_user_id")) or (
        matched_by == "username"
        and value.lower() == (own.get("x_username") or "").lower()
    ):
        # Its own posts would go from the inbox, and mentions replying to it would
        # lose what makes them answerable (inbox._summoned).
        raise Conflict(
            f"'{matched_by}' names the brand's own X account, not a person who "
            "wrote to it; nothing was removed",
            field=matched_by,
        )
    query = SELECT_BY_ID if matched_by == "x_user_id" else SELECT_BY_USERNAME
    found = tx.rows(query, brand_id=brand_id, value=value)
    ids = [str(row["id"]) for row in found]
    # Named by handle, the person's id is read from their mentions.
    user_ids = {row["author_id"] for row in found if row["author_id"]}
    if matched_by == "x_user_id":
        user_ids.add(value)

    replies = cancel_replies(tx, brand_id=brand_id, mentions=found, now=now)
    tx.execute(
        KEEP_REMOVED_IDS,
        brand_id=brand_id,
        ids=ids,
        reach_s=reread_reach.total_seconds(),
        now=now,
    )
    escalations = tx.rows(DELETE_ESCALATIONS, brand_id=brand_id, ids=ids)
    cleared = tx.rows(
        CLEAR_MENTIONS,
        brand_id=brand_id,
        ids=ids,
        now=now,
        removed_prefix=REMOVED_X_ID_PREFIX,
    )
    tx.execute(FORGET_REPLIED_TO, brand_id=brand_id, user_ids=sorted(user_ids))
    return tx.one(
        RECORD_REMOVAL,
        brand_id=brand_id,
        now=now,
        actor=actor,
        matched_by=matched_by,
        mentions=len(cleared),
        escalations=len(escalations),
        replies_cancelled=replies,
    )


def cancel_replies(
    tx: Transaction, *, brand_id: str, mentions: list[dict[str, Any]], now: dt.datetime
) -> int:
    """Cancel the brand's queued replies to `mentions`; return how many.

    The cancellation is each post's event, with the request's key as its actor and
    REPLY_CANCEL_REASON as its reason (post_events.py), so the trail shows it.
    """
    post_ids = [str(row["reply_post_id"]) for row in mentions if row["reply_post_id"]]
    x_post_ids = [row["x_post_id"] for row in mentions]
    post_events.give_reason(tx, REPLY_CANCEL_REASON)
    cancelled = tx.rows(
        CANCEL_REPLIES,
        brand_id=brand_id,
        post_ids=post_ids,
        x_post_ids=x_post_ids,
        reason=REPLY_CANCEL_REASON,
        now=now,
    )
    tx.execute(
        MARK_REPLIES_IN_FLIGHT,
        brand_id=brand_id,
        post_ids=post_ids,
        x_post_ids=x_post_ids,
        reason=REPLY_CANCEL_REASON,
    )
    post_events.give_reason(tx, None)
    return len(cancelled)


def list_removals(
    tx: Transaction, *, brand_id: str, limit: int, after: str | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """Return one page of the brand's removal records, newest first, and the
    `next` token; `after` is the `next` of a previous page (400 if not)."""
    after_id = page_cursors.place_after(after, "author_data_removals", _place, None)
    rows = tx.rows(LIST_REMOVALS, brand_id=brand_id, after_id=after_id, limit=limit + 1)

    return page_cursors.next_page(
        rows, limit, "author_data_removals", lambda row: [row["id"]]
    )


def _place(key: list[Any]) -> int:
    (row_id,) = key
    return page_cursors.row_number(row_id)


def read_author(body: Any) -> tuple[str, str]:
    """Return how the request names the author and the value; 400 otherwise."""
    if not isinstance(body, dict):
        raise InvalidRequest("body must be a JSON object", field="body")
    validation.only_fields(body, FIELDS, what="an author data removal")
    # Present, null or not: docs/openapi.yaml types both as strings, so a null
    # beside the other field is refused rather than read as absent.
    named = [name for name in FIELDS if name in body]
    if len(named) != 1:
        raise InvalidRequest(
            "name the author by exactly one of 'x_user_id' or 'username'",
            field="x_user_id" if not named else named[1],
        )
    name = named[0]
    value = body[name]
    if not isinstance(value, str):
        raise InvalidRequest(f"'{name}' must be a string", field=name)
    if name == "username":
        value = value.removeprefix("@")
        if not X_USERNAME.fullmatch(value):
            raise InvalidRequest(
                "'username' must be an X handle: 1-15 letters, digits or "
                "underscores, with or without the @",
                field=name,
            )
    elif not X_USER_ID.fullmatch(value):
        raise InvalidRequest(
            "'x_user_id' must be an X user id: 1-19 ASCII digits, the first not 0",
            field=name,
        )
    return name, value
