"""Settling an unconfirmed post by hand: a person says what X has.

The reconciler (reconciling.py) settles most `unconfirmed` posts from the account's
timeline, and leaves some for a person: one older than the page it read, one whose
reads keep failing, one X stored with a text it changed. An approver (a key of role
`admin` or `approver`) looks at the account and answers with one `outcome`:

    on_x     with `x_post_id`, the id of the post found on the account (digits):
             the post becomes `published` with it. For a thread, the id is the
             part in flight's; the thread is `published` when that was its last
             part, and otherwise goes back to `scheduled` to send the rest at once.
    absent   X does not have it: back to `approved`, unscheduled, to be scheduled
             again; a thread keeps its parts already on X and resumes after them.
             The answer warns that, if X has it after all, it will be posted twice.
    cancel   withdraw it: `cancelled`, and nothing more is sent. Whatever X has
             stays on X.

The post's attempt records what the person said (its outcome and a note), a post
adopted this way is billed as X billed it, and the event names the key, like every
API transition (post_events.py). An optional `reason` joins the event's reason.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from cartcast import costs, post_events, posts, publishing, validation
from cartcast.db import Transaction
from cartcast.errors import Conflict, Forbidden, InvalidRequest, NotFound

OUTCOMES = ("on_x", "absent", "cancel")
SETTLE_FIELDS = ("outcome", "x_post_id", "reason")
SETTLING_ROLES = ("admin", "approver")
# X post ids are 64-bit snowflakes: up to 19 decimal digits.
X_POST_ID = re.compile(r"[0-9]{1,19}")
ABSENT_WARNING = (
    "if X does have this post after all, scheduling it again posts it twice; look "
    "at the account once more before you do"
)

LOCK_POST = """
SELECT id, kind, link, state, lease_attempt_id FROM posts
WHERE brand_id = :brand_id AND id = :id
FOR UPDATE
"""
# The part sent without an answer; a thread is unconfirmed because of it.
SELECT_PART_IN_FLIGHT = """
SELECT position, has_link,
    (SELECT count(*) FROM post_parts x WHERE x.post_id = :post_id) AS part_count
FROM post_parts
WHERE post_id = :post_id AND sent_at IS NOT NULL AND x_post_id IS NULL
ORDER BY position LIMIT 1
"""
# The two-key form has a key space of its own, apart from the one-bigint locks.
LOCK_X_POST_ID = "SELECT pg_advisory_xact_lock(7310, hashtext(:x_post_id))"
SELECT_HOLDER = """
SELECT brand_id, id AS post_id FROM posts WHERE x_post_id = :x_post_id
UNION ALL
SELECT p.brand_id, p.id FROM post_parts pp JOIN posts p ON p.id = pp.post_id
WHERE pp.x_post_id = :x_post_id
LIMIT 1
"""
MARK_PUBLISHED = """
UPDATE posts SET state = 'published', x_post_id = :x_post_id, published_at = :now,
    failure_reason = NULL, lease_until = NULL, updated_at = :now
WHERE id = :post_id AND state = 'unconfirmed'
"""
MARK_ID_BY_HAND = "UPDATE posts SET x_post_id_by_hand = true WHERE id = :post_id"
# A thread with parts left resumes at the next run: its slot is already past.
MARK_RESUMING = """
UPDATE posts SET state = 'scheduled', failure_reason = NULL, lease_until = NULL,
    updated_at = :now
WHERE id = :post_id AND state = 'unconfirmed'
"""
MARK_APPROVED = """
UPDATE posts SET state = 'approved', scheduled_at = NULL, failure_reason = NULL,
    lease_until = NULL, updated_at = :now
WHERE id = :post_id AND state = 'unconfirmed'
"""
MARK_CANCELLED = """
UPDATE posts SET state = 'cancelled', lease_until = NULL, updated_at = :now
WHERE id = :post_id AND state = 'unconfirmed'
"""
SETTLE_ATTEMPT = """
UPDATE publish_attempts SET outcome = :outcome, x_post_id = CAST(:x_post_id AS text),
    error = concat_ws('; ', error, CAST(:note AS text)),
    finished_at = COALESCE(finished_at, :now), reconciled_at = :now
WHERE id = :attempt_id
"""


def settle(
    tx: Transaction,
    *,
    brand_id: str,
    post_id: str,
    body: Any,
    role: str,
    now: dt.datetime,
    prices: Mapping[str, Decimal],
) -> dict[str, Any]:
    """Settle an unconfirmed post as on X, absent, or cancelled; return the answer.

    The answer is {"post": ...}, with a "warning" for `absent`. Raises Forbidden
    for a key of another role, and Conflict for a post that is not unconfirmed or
    an X id another post already has.
    """
    if role not in SETTLING_ROLES:
        raise Forbidden(
            "settling an unconfirmed post needs a key of role admin or approver"
        )
    outcome, x_post_id, reason = _parse_settlement(body)

    post = tx.one(LOCK_POST, brand_id=brand_id, id=post_id)
    if post is None:
        raise NotFound("post not found")
    if post["state"] != "unconfirmed":
        raise Conflict(
            f"post is {post['state']}; only an unconfirmed post is settled by hand"
        )
    part = None
    if post["kind"] == "thread":
        part = tx.one(SELECT_PART_IN_FLIGHT, post_id=post_id)

    said = {
        "on_x": f"settled by hand: on X as {x_post_id}",
        "absent": "settled by hand: absent from X",
        "cancel": "settled by hand: cancelled",
    }[outcome]
    post_events.give_reason(tx, f"{said}; {reason}" if reason else said)
    if outcome == "on_x":
        _adopt(tx, post, part, x_post_id, brand_id=brand_id, now=now, prices=prices)
    elif outcome == "absent":
        _give_up(tx, post, part, now=now)
    else:
        tx.execute(MARK_CANCELLED, post_id=post_id, now=now)
    _record_on_attempt(tx, post, outcome, x_post_id, said, now)
    post_events.give_reason(tx, None)

    answer: dict[str, Any] = {
        "post": posts.get_post(tx, brand_id=brand_id, post_id=post_id)
    }
    if outcome == "absent":
        answer["warning"] = ABSENT_WARNING
    return answer


def _parse_settlement(body: Any) -> tuple[str, str | None, str | None]:
    """Return the outcome, the X id (on_x only) and the optional reason."""
    body = validation.require_object(body)
    validation.only_fields(body, SETTLE_FIELDS, what="a settlement")
    outcome = body.get("outcome")
    if outcome not in OUTCOMES:
        raise InvalidRequest(
            f"'outcome' must be one of {', '.join(OUTCOMES)}", field="outcome"
        )

    x_post_id = body.get("x_post_id")
    if outcome != "on_x":
        # docs/openapi.yaml: x_post_id is `false` unless on_x, so a null is refused
        # too (a client sending one has the outcome or the field wrong).
        if "x_post_id" in body:
            sent = "null" if x_post_id is None else "given"
            raise InvalidRequest(
                f"'x_post_id' is {sent}; it goes with outcome 'on_x' only, so leave "
                "it out",
                field="x_post_id",
            )
    elif not isinstance(x_post_id, str) or not X_POST_ID.fullmatch(x_post_id):
        raise InvalidRequest(
            "outcome 'on_x' needs 'x_post_id': the id of the post on X, as a string "
            "of up to 19 digits (the number at the end of the post's address)",
            field="x_post_id",
        )
    reason = validation.text(
        body, "reason", required=False, max_len=posts.REASON_LENGTH_MAX
    )
    return outcome, x_post_id, reason


def _adopt(
    tx: Transaction,
    post: dict[str, Any],
    part: dict[str, Any] | None,
    x_post_id: str,
    *,
    brand_id: str,
    now: dt.datetime,
    prices: Mapping[str, Decimal],
) -> None:
    """Give the post (or its part in flight) X's id, and bill it as X did."""
    # Two people settling two posts with one X id at once: the second waits here,
    # then finds the first's post holding it (a 409, not the UNIQUE index's 500).
    tx.execute(LOCK_X_POST_ID, x_post_id=x_post_id)
    holder = tx.one(SELECT_HOLDER, x_post_id=x_post_id)
    if holder is not None:
        whose = (
            f"post {holder['post_id']}"
            if str(holder["brand_id"]) == brand_id
            else "a post of another brand"
        )
        raise Conflict(
            f"X post {x_post_id} is already {whose}; look for this one's own id",
            field="x_post_id",
        )
    if post["kind"] == "thread" and part is None:
        raise Conflict("no part of this thread is in flight; settle it as absent")

    post_id = str(post["id"])
    # A typed id is not X's word: the rollup empties no post for it until X has
    # returned the post once (decision 0022).
    tx.execute(MARK_ID_BY_HAND, post_id=post_id)
    has_link = part["has_link"] if part else bool(post["link"])
    ref = f"{post_id}/{part['position']}" if part else post_id
    costs.record(
        tx,
        brand_id=brand_id,
        occurred_at=now,
        operation=costs.post_class(has_link),
        units=1,
        usd=costs.price(prices, costs.post_class(has_link)),
        ref=ref,
    )
    if part is None:
        tx.execute(MARK_PUBLISHED, post_id=post_id, x_post_id=x_post_id, now=now)
        return
    tx.execute(
        publishing.MARK_PART_PUBLISHED,
        post_id=post_id,
        position=part["position"],
        x_post_id=x_post_id,
    )
    if part["position"] + 1 < part["part_count"]:
        tx.execute(MARK_RESUMING, post_id=post_id, now=now)
    else:
        first = tx.scalar(publishing.FIRST_PART_ID, post_id=post_id)
        tx.execute(MARK_PUBLISHED, post_id=post_id, x_post_id=first, now=now)


def _give_up(
    tx: Transaction, post: dict[str, Any], part: dict[str, Any] | None, *, now: Any
) -> None:
    """Send the post back to `approved`; a thread's part in flight may be sent again.

    The price reserved when it was sent goes back: a person says X has nothing.
    """
    ref = str(post["id"])
    if part is not None:
        tx.execute(
            publishing.CLEAR_PART_SENT, post_id=post["id"], position=part["position"]
        )
        ref = f"{post['id']}/{part['position']}"
    costs.release(tx, ref=ref)
    tx.execute(MARK_APPROVED, post_id=post["id"], now=now)


def _record_on_attempt(
    tx: Transaction,
    post: dict[str, Any],
    outcome: str,
    x_post_id: str | None,
    said: str,
    now: dt.datetime,
) -> None:
    """Write what the person said on the attempt that left the post unconfirmed."""
    if post["lease_attempt_id"] is None:
        return
    tx.execute(
        SETTLE_ATTEMPT,
        attempt_id=post["lease_attempt_id"],
        # A cancelled post's fate on X stays unknown.
        outcome={"on_x": "published", "absent": "retry", "cancel": "unknown"}[outcome],
        x_post_id=x_post_id,
        note=f"{said} at {now.isoformat()}",
        now=now,
    )
