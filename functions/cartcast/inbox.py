"""The inbox: open mentions most urgent first, marked handled, or answered on X.

The list is ordered by priority (1 first), then the place within it (order issues
before the rest of their priority, praise and then spam after it:
`triage.place_in_priority`), then the response deadline (the least time left
first), then the newest; unscored mentions come last. Pages are
keyed by the last row's place in that order (`after`, an opaque token), so a
mention handled between two pages moves no other row to another page.

Marking a mention handled records who did it and when; the first answer of any
kind (handled, or a reply) is its response time, kept on the mention.

A reply (`reply`) is a post of the brand that answers the mention on X. It is
queued `scheduled` for now and goes through the publisher like every post
(publishing.py: intent before send, unconfirmed and reconciled when X's answer is
lost), priced as X's summoned reply. Before it is queued, the rules X and the
brand set are checked, each refusal a 409 that names it (decision 0019):

- the mention must have summoned the brand: it mentions @the_brand as X reads a
  mention (post_text.mentioned_accounts: not inside a URL, a word or an e-mail
  address, nor a list) or answers one of its posts (X refuses other replies from
  API apps since 2026-02; a 403 X still returns fails the post, `refused_reply`);
- never a reply to the brand's own posts or replies;
- at most one live reply per conversation (a unique index; one X refused or a
  person cancelled no longer counts).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from cartcast import audit, author_data, page_cursors, post_text, triage, validation
from cartcast.db import Transaction
from cartcast.errors import Conflict, Forbidden, InvalidRequest, NotFound

STATES = ("open", "handled", "all")
# The list's query parameters; any other is refused, as a body's unknown field is,
# so a misspelt filter (`sentimnet=negative`) is not a page of every mention.
LIST_PARAMS = ("state", "sentiment", "intent", "priority", "overdue", "after", "limit")
SENTIMENTS = ("negative", "neutral", "positive")
# Who may answer a mention: everyone but a read-only key.
ANSWERING_ROLES = ("admin", "approver", "editor")
REPLY_FIELDS = ("text",)
# Unscored mentions have no priority nor deadline: they sort after every scored
# one, as priority 5 (SELECT_PAGE) and no deadline.
UNSCORED_PRIORITY = 5

# triage.place_in_priority in SQL; the places are fixed integers, never user text.
PLACE_SQL = (
    "CASE m.intent "
    + " ".join(
        f"WHEN '{intent}' THEN {place}"
        for intent, place in triage.PLACE_IN_PRIORITY.items()
    )
    + f" ELSE {triage.OTHER_PLACE} END"
)
PLACES = (*triage.PLACE_IN_PRIORITY.values(), triage.OTHER_PLACE)
# The query's parameters for the last row read; all None before the first page.
PLACE_FIELDS = (
    "after_id",
    "after_priority",
    "after_place",
    "after_due",
    "after_posted",
)

SELECT_PAGE = """
SELECT m.id, m.x_post_id, m.author_id, m.author_username, m.author_name, m.text,
    m.conversation_id, m.posted_at, m.sentiment, m.intent, m.priority, m.escalate,
    m.response_due_at, m.state, m.responded_at, m.handled_at, m.handled_by,
    m.reply_post_id, m.reply_failure, m.ugc_candidate, m.in_reply_to_user_id,
    COALESCE(m.priority, CAST(:unscored_priority AS integer)) AS sort_priority,
    {place} AS sort_place,
    COALESCE(m.response_due_at, 'infinity') AS sort_due
FROM mentions m
WHERE m.brand_id = :brand_id
  AND (CAST(:state AS text) IS NULL OR m.state = :state)
  AND (CAST(:intent AS text) IS NULL OR m.intent = :intent)
  AND (CAST(:priority AS integer) IS NULL OR m.priority = :priority)
  AND (CAST(:sentiment AS text) IS NULL OR m.sentiment = :sentiment)
  AND (CAST(:overdue AS boolean) IS NULL
       OR COALESCE(m.state = 'open' AND m.response_due_at < :now, false) = :overdue)
  AND (CAST(:after_id AS uuid) IS NULL
       OR (COALESCE(m.priority, CAST(:unscored_priority AS integer)),
           {place},
           COALESCE(m.response_due_at, 'infinity'))
          > (CAST(:after_priority AS integer), CAST(:after_place AS integer),
             CAST(:after_due AS timestamptz))
       OR ((COALESCE(m.priority, CAST(:unscored_priority AS integer)),
            {place},
            COALESCE(m.response_due_at, 'infinity'))
           = (CAST(:after_priority AS integer), CAST(:after_place AS integer),
              CAST(:after_due AS timestamptz))
           AND (m.posted_at < :after_posted
                OR (m.posted_at = :after_posted AND m.id > :after_id))))
ORDER BY sort_priority, sort_place, sort_due, m.posted_at DESC, m.id
LIMIT :limit
""".replace("{place}", PLACE_SQL)
SELECT_MENTION = """
SELECT m.id, m.x_post_id, m.author_id, m.author_username, m.author_name, m.text,
    m.conversation_id, m.posted_at, m.sentiment, m.intent, m.priority, m.escalate,
    m.response_due_at, m.state, m.responded_at, m.handled_at, m.handled_by,
    m.reply_post_id, m.reply_failure, m.ugc_candidate,
    m.in_reply_to_user_id
FROM mentions m WHERE m.id = :id AND m.brand_id = :brand_id
FOR UPDATE
"""
MARK_HANDLED = """
UPDATE mentions SET state = 'handled', handled_at = :now, handled_by = :actor,
    responded_at = COALESCE(responded_at, :now)
WHERE id = :id AND state = 'open'
"""
SELECT_BRAND_ACCOUNT = """
SELECT x_user_id, x_username FROM brands WHERE id = :brand_id
"""
# The brand's own post or thread part, by X id.
SELECT_OWN_POST = """
SELECT 1 FROM posts WHERE brand_id = :brand_id AND x_post_id = :x_post_id
UNION ALL
SELECT 1 FROM post_parts pp JOIN posts p ON p.id = pp.post_id
WHERE p.brand_id = :brand_id AND pp.x_post_id = :x_post_id
LIMIT 1
"""
SELECT_LIVE_REPLY = """
SELECT id FROM posts
WHERE brand_id = :brand_id AND reply_conversation_id = :conversation_id
  AND state NOT IN ('failed', 'cancelled', 'rejected')
"""
INSERT_REPLY = """
INSERT INTO posts (id, brand_id, kind, text, state, engine, weighted_length,
    scheduled_at, in_reply_to, reply_conversation_id, created_by, created_at,
    updated_at)
VALUES (:id, :brand_id, 'text', :text, 'scheduled', 'manual', :weighted_length,
    :now, :in_reply_to, :conversation_id, :actor, :now, :now)
ON CONFLICT (brand_id, reply_conversation_id) WHERE reply_conversation_id IS NOT NULL
    AND state NOT IN ('failed', 'cancelled', 'rejected')
DO NOTHING
RETURNING id
"""
MARK_REPLIED = """
UPDATE mentions SET reply_post_id = :post_id, state = 'handled',
    reply_failure = NULL,
    handled_at = COALESCE(handled_at, :now), handled_by = COALESCE(handled_by, :actor),
    responded_at = COALESCE(responded_at, :now)
WHERE id = :id
"""


def list_inbox(
    tx: Transaction,
    *,
    brand_id: str,
    query: Any,
    limit: int,
    now: dt.datetime,
    brand: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Return one page of the brand's mentions and the token of the next page.

    With the `brand`, each mention also says whether it `summoned` the brand, that
    is whether a reply may be sent (the console offers one only then).
    """
    for name in query:
        if name not in LIST_PARAMS:
            raise InvalidRequest(
                f"GET /v1/mentions has no parameter {name[:100]!r}; it takes "
                f"{', '.join(LIST_PARAMS)}",
                field=name[:100],
            )
    state = query.get("state", "open")
    if state not in STATES:
        raise InvalidRequest(
            f"'state' must be one of {', '.join(STATES)}", field="state"
        )
    sentiment = query.get("sentiment")
    if sentiment is not None and sentiment not in SENTIMENTS:
        raise InvalidRequest(
            f"'sentiment' must be one of {', '.join(SENTIMENTS)}", field="sentiment"
        )
    intent = query.get("intent")
    # A misspelt intent answered with no mentions reads as an empty inbox.
    if intent is not None and intent not in triage.INTENTS:
        raise InvalidRequest(
            f"'intent' must be one of {', '.join(triage.INTENTS)}", field="intent"
        )
    priority = _priority(query.get("priority"))
    overdue = _flag(query.get("overdue"), "overdue")
    after = page_cursors.place_after(
        query.get("after"), "mentions", _place, dict.fromkeys(PLACE_FIELDS)
    )

    rows = tx.rows(
        SELECT_PAGE,
        brand_id=brand_id,
        state=None if state == "all" else state,
        intent=intent,
        priority=priority,
        sentiment=sentiment,
        overdue=overdue,
        now=now,
        limit=limit + 1,
        unscored_priority=UNSCORED_PRIORITY,
        **after,
    )
    page, next_token = page_cursors.next_page(rows, limit, "mentions", _key)
    return {"mentions": [_view(row, now, brand) for row in page], "next": next_token}


def check_after(token: str) -> None:
    """Refuse an `after` this list did not write, with a 400 naming `after`."""
    page_cursors.read(token, "mentions", _place)


def mark_handled(
    tx: Transaction, *, brand_id: str, mention_id: str, caller: Any, now: dt.datetime
) -> dict[str, Any]:
    """Mark a mention handled by the caller; a handled one is answered unchanged."""
    _require_answering_role(caller)
    mention = _lock_mention(tx, brand_id, mention_id)
    if tx.execute(MARK_HANDLED, id=mention_id, now=now, actor=caller.key_name):
        audit.record(
            tx,
            brand_id=brand_id,
            actor=caller.key_name,
            action="mention.handled",
            subject=f"mention:{mention['id']}",
            at=now,
            before={"state": mention["state"]},
            after={"state": "handled"},
        )
    return _view(_lock_mention(tx, brand_id, mention["id"]), now)


def reply(
    tx: Transaction,
    *,
    brand_id: str,
    mention_id: str,
    body: Any,
    caller: Any,
    now: dt.datetime,
) -> dict[str, Any]:
    """Queue the brand's reply to a mention; return the mention and the reply post.

    Raises:
        InvalidRequest: the text is missing, too long for X, or carries a link.
        Conflict: one of the reply rules refuses (see the module docstring).
    """
    _require_answering_role(caller)
    text = read_reply_text(body)
    mention = _lock_mention(tx, brand_id, mention_id)
    account = tx.one(SELECT_BRAND_ACCOUNT, brand_id=brand_id)
    _check_reply_rules(tx, brand_id, mention, account)

    conversation_id = mention["conversation_id"] or mention["x_post_id"]
    post_id = tx.scalar(
        INSERT_REPLY,
        id=str(uuid.uuid4()),
        brand_id=brand_id,
        text=text,
        weighted_length=post_text.weighted_length(text),
        now=now,
        in_reply_to=mention["x_post_id"],
        conversation_id=conversation_id,
        actor=caller.key_name,
    )
    if post_id is None:
        # Another request queued one for this conversation since the check.
        raise _already_replied(tx, brand_id, conversation_id)
    tx.execute(
        MARK_REPLIED, id=mention["id"], post_id=post_id, now=now, actor=caller.key_name
    )
    audit.record(
        tx,
        brand_id=brand_id,
        actor=caller.key_name,
        action="mention.replied",
        subject=f"mention:{mention['id']}",
        at=now,
        before={"state": mention["state"], "reply_post_id": None},
        after={"state": "handled", "reply_post_id": str(post_id), "text": text},
    )
    return {
        "mention": _view(_lock_mention(tx, brand_id, mention["id"]), now),
        "post_id": str(post_id),
    }


def read_reply_text(body: Any) -> str:
    """Return a reply's text from a body that may carry only `text`, or refuse it."""
    body = validation.require_object(body)
    validation.only_fields(body, REPLY_FIELDS, what="a reply")
    text = body.get("text")
    # Zero-width marks alone are blank (validation.NOT_BLANK): such a reply would
    # go out on X as an empty-looking post in the brand's name.
    if not isinstance(text, str) or validation.is_blank(text):
        raise InvalidRequest("'text' must be the reply's text", field="text")
    text = text.strip(validation.BLANK)
    if not post_text.fits_on_x(text):
        raise InvalidRequest(
            f"'text' weighs {post_text.weighted_length(text)}; X takes at most 280",
            field="text",
        )
    if post_text.linked_urls(text):
        raise InvalidRequest(
            "'text' carries a link; a reply from cartcast carries none (X prices a "
            "post with a link as a post, not as a summoned reply)",
            field="text",
        )
    return text


def _check_reply_rules(
    tx: Transaction,
    brand_id: str,
    mention: dict[str, Any],
    account: dict[str, Any],
) -> None:
    """Raise Conflict naming the first reply rule the mention breaks."""
    user_id, username = account["x_user_id"], account["x_username"]
    if user_id is None:
        raise Conflict("the brand has no X account connected", field="mention")
    if mention["x_post_id"].startswith(author_data.REMOVED_X_ID_PREFIX):
        raise Conflict(
            "this mention's author had their data removed (POST "
            "/v1/author-data-removals): its X id went with it, so there is no post "
            "on X to reply to",
            field="mention",
        )
    own_post = tx.one(
        SELECT_OWN_POST, brand_id=brand_id, x_post_id=mention["x_post_id"]
    )
    if mention["author_id"] == user_id or own_post is not None:
        raise Conflict(
            "this mention is the brand's own post or reply; cartcast never replies "
            "to those",
            field="mention",
        )
    if not _summoned(mention, user_id, username):
        named = f"@{username}" if username else "the brand's account"
        raise Conflict(
            f"this mention did not summon the brand: it neither names {named} nor "
            "replies to its posts, and X refuses replies from apps to posts that "
            "did not (its reply policy since February 2026)",
            field="mention",
        )
    conversation_id = mention["conversation_id"] or mention["x_post_id"]
    if tx.one(SELECT_LIVE_REPLY, brand_id=brand_id, conversation_id=conversation_id):
        raise _already_replied(tx, brand_id, conversation_id)


def _summoned(mention: dict[str, Any], user_id: str, username: str | None) -> bool:
    """Say if X lets the brand reply: the mention answers one of its posts, or
    mentions its account as X reads a mention (decision 0101).

    X's rule for API replies since 2026-02-23: "You can only reply if the original
    author @ mentions you or quotes your post" (@XDevelopers); its 403 says "not
    been mentioned or otherwise engaged by the author". An @handle inside a URL
    ("x.com/@shop"), after a letter or a sign ("!@shop"), or naming a list
    ("@shop/new-in") mentions no account, so it summons nobody. The @handles X
    puts at the start of a reply are mentions like any other, on X as here.
    """
    if mention["in_reply_to_user_id"] == user_id:
        return True
    if not username:
        return False
    wanted = username.casefold()
    mentioned = post_text.mentioned_accounts(mention["text"])
    return any(name.casefold() == wanted for name in mentioned)


def _already_replied(tx: Transaction, brand_id: str, conversation_id: str) -> Conflict:
    existing = tx.scalar(
        SELECT_LIVE_REPLY, brand_id=brand_id, conversation_id=conversation_id
    )
    return Conflict(
        "cartcast already replied in this conversation "
        f"(post {existing}); it sends at most one reply per conversation",
        field="mention",
    )


def _require_answering_role(caller: Any) -> None:
    if caller.role not in ANSWERING_ROLES:
        raise Forbidden(
            "answering mentions needs a key of role admin, approver or editor"
        )


def _lock_mention(tx: Transaction, brand_id: str, mention_id: Any) -> dict[str, Any]:
    mention = tx.one(SELECT_MENTION, id=str(mention_id), brand_id=brand_id)
    if mention is None:
        raise NotFound("mention not found")
    return mention


def _view(
    row: dict[str, Any], now: dt.datetime, brand: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Show a mention with its time left and, once answered, its response time."""
    due, responded = row["response_due_at"], row["responded_at"]
    shown = {
        key: value
        for key, value in row.items()
        if key not in ("sort_priority", "sort_place", "sort_due", "in_reply_to_user_id")
    }
    shown["time_left_s"] = (
        None if due is None or row["state"] != "open" else _seconds(due - now)
    )
    shown["overdue"] = row["state"] == "open" and due is not None and due < now
    shown["response_s"] = (
        None if responded is None else _seconds(responded - row["posted_at"])
    )
    if brand is not None:
        # A mention cleared on its author's request has no X id left to answer.
        shown["author_removed"] = row["x_post_id"].startswith(
            author_data.REMOVED_X_ID_PREFIX
        )
        # The brand's own post is never answered (_check_reply_rules): no box.
        shown["own_post"] = bool(brand["x_user_id"]) and (
            row["author_id"] == brand["x_user_id"]
        )
        shown["summoned"] = (
            bool(brand["x_user_id"])
            and not shown["author_removed"]
            and not shown["own_post"]
            and _summoned(row, brand["x_user_id"], brand["x_username"])
        )
    return shown


def _seconds(delta: dt.timedelta) -> int:
    return int(delta.total_seconds())


def _priority(raw: str | None) -> int | None:
    if raw is None:
        return None
    if raw not in ("1", "2", "3", "4"):
        raise InvalidRequest("'priority' must be 1, 2, 3 or 4", field="priority")
    return int(raw)


def _flag(raw: str | None, name: str) -> bool | None:
    if raw is None:
        return None
    if raw not in ("true", "false"):
        raise InvalidRequest(f"'{name}' must be true or false", field=name)
    return raw == "true"


def _key(row: dict[str, Any]) -> list[Any]:
    due = row["sort_due"]
    return [
        row["sort_priority"],
        row["sort_place"],
        "infinity" if row["response_due_at"] is None else due.isoformat(),
        row["posted_at"].isoformat(),
        str(row["id"]),
    ]


def _place(key: list[Any]) -> dict[str, Any]:
    priority, place_in_priority, due, posted, row_id = key
    # JSON's true is a Python int (bool subclasses it): only a real integer.
    if type(priority) is not int or not 1 <= priority <= UNSCORED_PRIORITY:
        raise ValueError(priority)
    if type(place_in_priority) is not int or place_in_priority not in PLACES:
        raise ValueError(place_in_priority)
    return {
        "after_id": page_cursors.uuid_text(row_id),
        "after_priority": priority,
        "after_place": place_in_priority,
        "after_due": due if due == "infinity" else page_cursors.instant(due),
        "after_posted": page_cursors.instant(posted),
    }
