"""Editing a post by hand: new copy, checked like a draft, back for approval.

A post can be edited until publishing takes it: in needs_approval, approved,
scheduled or held. The body carries the new `text` (a thread: its `parts` instead;
a poll: `poll_options` too, or only them). What X or the post itself cannot take is
a 400 naming the field, and nothing is written:

    text / parts[i]   no words besides the post's link, over X's 280 weighted, the
                      post's link missing or twice, another URL (a second link), a
                      URL in a link-free post
    poll_options      not 2 to 4 distinct options of at most 25 characters

What a person should look at is not refused: the new copy runs every check of
captions.check_copy against the product as the catalog has it now (claims, price,
banned words, hashtags, a near-duplicate of the brand's recent posts other than
this one), and the results replace the post's `checks`. The post goes back to
needs_approval and loses its slot, whichever state it was in, even for a brand with
approvals off: someone changed the copy after it was checked, so someone approves
it again. Its engine becomes "manual".

Nothing X already has can change (409 naming it): a post with an X id, or the parts
of a thread that X turned away midway (it is `scheduled` again with its first parts
on X). Such a thread's edit repeats those parts as they are and may change only the
parts after them, which keep being sent as replies; the parts on X keep their ids.

A reply to a mention (`in_reply_to` set) has no product to check and skips
approvals: its edit takes only `text`, under the rules it was written with
(inbox.read_reply_text: no link, at most 280 weighted), and leaves it in its state
and slot, so a queued reply still goes out on the next run with the new words.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from cartcast import (
    brands,
    catalog,
    inbox,
    links,
    post_events,
    post_kinds,
    posts,
    validation,
)
from cartcast.captions import DraftRequest, check_copy
from cartcast.claims import brief_from_catalog
from cartcast.db import Transaction
from cartcast.errors import Conflict, InvalidRequest
from cartcast.near_duplicates import CopyIndex
from cartcast.post_text import (
    X_MAX_WEIGHTED_LENGTH,
    fits_on_x,
    linked_urls,
    weighted_length,
)

EDITABLE_STATES = ("needs_approval", "approved", "scheduled", "held")
EDIT_FIELDS = ("text", "parts", "poll_options")
_WORD = re.compile(r"\w")

UPDATE_COPY = """
UPDATE posts SET text = :text, poll_options = CAST(:poll_options AS text[]),
    weighted_length = :weighted_length, checks = CAST(:checks AS jsonb),
    engine = 'manual', model = NULL, fallback_reason = NULL, failure_reason = NULL,
    state = 'needs_approval', scheduled_at = NULL, not_before = NULL,
    transient_failures = 0, updated_at = :now
WHERE brand_id = :brand_id AND id = :id
  AND state = ANY(CAST(:from_states AS text[]))
RETURNING id
"""
UPDATE_REPLY_TEXT = """
UPDATE posts SET text = :text, weighted_length = :weighted_length, engine = 'manual',
    updated_at = :now
WHERE brand_id = :brand_id AND id = :id AND x_post_id IS NULL
  AND state = ANY(CAST(:from_states AS text[]))
RETURNING id
"""
# Parts X has, or may have (an intent without an answer), stay as they are.
SELECT_PARTS_ON_X = """
SELECT position, text, x_post_id FROM post_parts
WHERE post_id = :post_id AND (x_post_id IS NOT NULL OR sent_at IS NOT NULL)
ORDER BY position
"""
DELETE_UNSENT_PARTS = """
DELETE FROM post_parts
WHERE post_id = :post_id AND x_post_id IS NULL AND sent_at IS NULL
"""


def edit_post(
    tx: Transaction,
    *,
    brand_id: str,
    post_id: str,
    body: Any,
    now: dt.datetime,
    near_duplicate_threshold: float,
    near_duplicate_days: int,
) -> dict[str, Any]:
    """Replace a post's copy, re-run its checks and send it back for approval."""
    post = posts.get_post(tx, brand_id=brand_id, post_id=post_id)
    if post["state"] not in EDITABLE_STATES:
        raise Conflict(
            f"post is {post['state']}; only a post in "
            + ", ".join(EDITABLE_STATES)
            + " can be edited"
        )
    if post["in_reply_to"] is not None:
        return _edit_reply(tx, brand_id=brand_id, post=post, body=body, now=now)

    copy, options = _parse_edit(post, body)
    on_x = _require_what_is_on_x_unchanged(tx, post, copy)

    brand = brands.get_brand(tx, brand_id)
    request = DraftRequest(
        _product_brief(tx, brand, post),
        post["link"] or "",
        kind=post["kind"],
        poll_options=options or None,
    )
    earlier = _recent_posts(
        tx,
        brand_id=brand_id,
        post_id=post_id,
        now=now,
        threshold=near_duplicate_threshold,
        days=near_duplicate_days,
    )
    voice = posts.brand_voice(brand, sponsored=post["sponsored"])
    text, checks = check_copy(copy, options, request, voice, earlier)

    post_events.give_reason(tx, "edited")
    moved = tx.scalar(
        UPDATE_COPY,
        brand_id=brand_id,
        id=post_id,
        text=text,
        poll_options=list(options) if post["kind"] == "poll" else None,
        weighted_length=max(weighted_length(part) for part in copy),
        checks=json.dumps(checks),
        from_states=list(EDITABLE_STATES),
        now=now,
    )
    if moved is None:
        raise Conflict("post changed state while it was being edited; try again")
    post_events.give_reason(tx, None)
    if post["kind"] == "thread":
        _replace_unsent_parts(tx, post_id, copy[len(on_x) :], len(on_x), post["link"])
    return posts.get_post(tx, brand_id=brand_id, post_id=post_id)


def _edit_reply(
    tx: Transaction,
    *,
    brand_id: str,
    post: dict[str, Any],
    body: Any,
    now: dt.datetime,
) -> dict[str, Any]:
    """Replace a queued reply's words, keeping its state and slot."""
    text = inbox.read_reply_text(body)
    _require_what_is_on_x_unchanged(tx, post, [text])

    post_events.give_reason(tx, "edited")
    moved = tx.scalar(
        UPDATE_REPLY_TEXT,
        brand_id=brand_id,
        id=str(post["id"]),
        text=text,
        weighted_length=weighted_length(text),
        from_states=list(EDITABLE_STATES),
        now=now,
    )
    if moved is None:
        raise Conflict("the reply changed state while it was being edited; try again")
    post_events.give_reason(tx, None)
    return posts.get_post(tx, brand_id=brand_id, post_id=str(post["id"]))


def _parse_edit(post: dict[str, Any], body: Any) -> tuple[list[str], tuple[str, ...]]:
    """Return the new copy (one text, or a thread's parts) and a poll's options."""
    body = validation.require_object(body)
    validation.only_fields(body, EDIT_FIELDS, what="an edit")
    if not any(name in body for name in EDIT_FIELDS):
        raise InvalidRequest(
            "an edit needs 'text' (a thread: 'parts'; a poll may send only "
            "'poll_options')",
            field="text",
        )
    kind = post["kind"]
    if kind == "thread" and "text" in body:
        raise InvalidRequest("a thread is edited by its 'parts'", field="text")
    if kind != "thread" and "parts" in body:
        raise InvalidRequest("'parts' goes with a thread only", field="parts")
    if kind != "poll" and "poll_options" in body:
        raise InvalidRequest(
            "'poll_options' goes with a poll only", field="poll_options"
        )

    link = post["link"] or ""
    if kind == "thread":
        copy = _parts(body.get("parts"), link)
    else:
        text = body.get("text", post["text"])
        _require_postable(text, link, "text")
        _require_the_link(text, link, "text")
        copy = [text.strip()]

    options: tuple[str, ...] = ()
    if kind == "poll":
        asked = body.get("poll_options", post["poll_options"])
        problem = post_kinds.poll_options_problem(asked)
        if problem:
            raise InvalidRequest(f"'poll_options' {problem}", field="poll_options")
        options = tuple(option.strip(validation.BLANK) for option in asked)
    return copy, options


def _parts(parts: Any, link: str) -> list[str]:
    low, high = post_kinds.THREAD_PARTS_MIN, post_kinds.THREAD_PARTS_MAX
    if not isinstance(parts, list) or not low <= len(parts) <= high:
        raise InvalidRequest(
            f"'parts' must be a list of {low} to {high} texts", field="parts"
        )
    for index, part in enumerate(parts):
        _require_postable(part, link, f"parts[{index}]")
    _require_the_link("\n\n".join(parts), link, "parts")
    return [part.strip() for part in parts]


def _require_postable(text: Any, link: str, field: str) -> None:
    # The words are looked for around the link: the link's own letters made a text
    # of nothing but "<link>" pass as copy.
    if not isinstance(text, str) or not _WORD.search(
        links.without_standalone_link(text, link)
    ):
        raise InvalidRequest(
            f"'{field}' must be text with words in it, besides the post's link",
            field=field,
        )
    if not fits_on_x(text.strip()):
        weight = weighted_length(text.strip())
        problem = (
            f"weighs {weight} on X, over its 280 (URLs count 23, emoji 2)"
            if weight > X_MAX_WEIGHTED_LENGTH
            else "has characters X does not accept in a post"
        )
        raise InvalidRequest(f"'{field}' {problem}", field=field)


def _require_the_link(text: str, link: str, field: str) -> None:
    """Keep the post's tracked link exactly once, whole, and no other URL beside it.

    Whole means as X would link it: followed by a space, the end, or sentence
    punctuation. "<link>zzz" or "<link>&x=1" would post a longer URL whose
    utm_content no longer names the post.
    """
    if link:
        found = links.standalone_link_count(text, link)
        if found != 1:
            seen = "not at all" if found == 0 else f"{found} times"
            raise InvalidRequest(
                f"'{field}' must contain the post's link {link} exactly once, standing "
                "alone (followed by a space, the end, or punctuation such as . , ! ?); "
                f"it has it {seen} that way. Orders are attributed through it",
                field=field,
            )
    others = linked_urls(links.without_standalone_link(text, link))
    if others:
        what = "a second link" if link else "a link, and the post is link-free"
        raise InvalidRequest(
            f"'{field}' has {what}: {others[0]}; X would show it as one", field=field
        )


def _product_brief(tx: Transaction, brand: dict[str, Any], post: dict[str, Any]):
    if post["product_id"] is None:
        raise Conflict(
            "the post's product is no longer in the catalog, so its claims cannot "
            "be checked; cancel the post and draft a new one"
        )
    product = catalog.find_product(
        tx, brand_id=str(brand["id"]), ref=str(post["product_id"])
    )
    return brief_from_catalog(product, brand["currency"])


def _recent_posts(
    tx: Transaction,
    *,
    brand_id: str,
    post_id: str,
    now: dt.datetime,
    threshold: float,
    days: int,
) -> CopyIndex:
    """Index the brand's recent posts, this one aside, as a caption request does."""
    earlier = CopyIndex(threshold)
    since = now - dt.timedelta(days=days)
    for row in tx.rows(posts.SELECT_RECENT_TEXTS, brand_id=brand_id, since=since):
        if str(row["id"]) != post_id:
            earlier.add(f"post {row['id']}", row["text"])
    return earlier


def _require_what_is_on_x_unchanged(
    tx: Transaction, post: dict[str, Any], copy: list[str]
) -> list[dict[str, Any]]:
    """Refuse an edit of anything X already has; return the thread's parts on X.

    A thread that X turned away midway is `scheduled` again with its first parts on
    X: those stay as they are (a reply chain cannot be rewritten), and the edit may
    change only the parts after them, which the next run sends as replies.
    """
    if post["kind"] != "thread":
        if post["x_post_id"] is not None:
            raise Conflict(
                f"the post is on X already as {post['x_post_id']}; it cannot be edited"
            )
        return []

    on_x = tx.rows(SELECT_PARTS_ON_X, post_id=post["id"])
    for part in on_x:
        index = part["position"]
        where = (
            f"is on X already as {part['x_post_id']}"
            if part["x_post_id"]
            else "may be on X already"
        )
        if index >= len(copy) or copy[index] != part["text"]:
            raise Conflict(
                f"parts[{index}] {where} and cannot change: "
                + _keep_as_they_are(len(on_x))
                + " and edit only the parts after them",
                field=f"parts[{index}]",
            )
    if on_x and len(copy) == len(on_x):
        raise Conflict(
            f"parts[0] to parts[{len(on_x) - 1}] are on X already; an edit needs at "
            "least one part after them (cancel the post to send no more)",
            field="parts",
        )
    return on_x


def _replace_unsent_parts(
    tx: Transaction, post_id: str, parts: list[str], first: int, link: str | None
) -> None:
    """Replace the parts X does not have by `parts`, from position `first` on."""
    tx.execute(DELETE_UNSENT_PARTS, post_id=post_id)
    for position, part in enumerate(parts, start=first):
        tx.execute(
            posts.INSERT_PART,
            post_id=post_id,
            position=position,
            text=part,
            weighted_length=weighted_length(part),
            has_link=links.standalone_link_count(part, link or "") > 0,
        )


def _keep_as_they_are(count: int) -> str:
    """Say which leading parts an edit must repeat unchanged."""
    if count == 1:
        return "send parts[0] exactly as it is"
    return f"send parts[0] to parts[{count - 1}] exactly as they are"
