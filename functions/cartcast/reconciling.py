"""Settling `unconfirmed` posts from the account's own timeline, never by re-sending.

A post is `unconfirmed` when its request may have reached X but no answer came (a
timeout, a dropped connection, a publisher that died after writing its intent, or
X calling the text a duplicate). X takes no idempotency key, so only X's copy can
say what happened (decision 0003). Each run, per brand with such posts:

1. read the account's own posts, from a minute before the first attempt of the
   oldest unconfirmed post, following X's pages (100 posts each) back to that
   instant, at most CARTCAST_RECONCILE_PAGES_MAX pages, unless the brand's monthly
   X budget is spent; each page is metered in the cost ledger as it arrives, per
   post returned (an owned read with the brand's own X app, a post read otherwise);
2. match each unconfirmed post by its text, with every link reduced to a mark on
   both sides (X returns links as t.co links) and X's HTML escapes undone;
3. found: adopt X's id, so the post is `published` as of X's `created_at` and its
   attempt `published`;
4. not found in a read taken at least CARTCAST_RECONCILE_DELAY_S after `sent_at`
   (X indexes a new post in the timeline with a lag): back to `scheduled`, and the
   attempt says why (`retry`, "absent from the timeline read at ..."); but a post
   whose last attempt X refused as a duplicate is `failed` instead ("X refuses
   this text as a duplicate of an earlier post of the account, so it was not
   posted; ..."), and its reserved price given back: the post
   X compares it with is older than the read, or deleted, and the same text would
   be refused again on every round;
5. not found, earlier than that: left `unconfirmed`; the attempt's `checked_at`
   says when it was last looked for.

A read whose first page fails or meets a rate limit changes nothing; the next run
tries again. A page whose metering the database keeps failing is no failed read:
the error is raised, and the run retried (`_meter_page`). "Absent" is concluded
only for posts the read covered: when it stopped before X ran out of pages (the
page limit, or a later page failing), only for attempts sent after the oldest post
it read. An older one stays `unconfirmed` until a read covers it.

A thread is `unconfirmed` when one part is in flight (decision 0008): that part is
matched by its own text. Found, it gets its X id and the thread either is
`published` (it was the last part) or goes back to `scheduled` to send the rest;
absent after the delay, its intent is withdrawn and the thread resumes from it.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import uuid
from collections import defaultdict
from typing import Any

from cartcast import accounts, costs, publishing
from cartcast.errors import PermanentError, RateLimited, TransientError
from cartcast.logs import fields

# X's clock and ours may differ a little; a post's created_at can precede sent_at.
CLOCK_MARGIN = dt.timedelta(minutes=1)
LINK_MARK = "\x00link\x00"
# Transactions to record a page read in; the database may end one for another's
# sake (PostgreSQL's documentation, "Serialization Failure Handling").
METER_TRIES = 3
# X starts a reply's text with the @username of the author it answers (X API v2,
# Tweet object: `display_text_range` leaves them out); a reply from the inbox is
# stored without them.
LEADING_MENTIONS = re.compile(r"^(?:[@＠][A-Za-z0-9_]{1,15}\s+)+")

# The attempt of a post is the one holding its lease; a thread's part in flight is
# the one with an intent and no X id.
SELECT_UNCONFIRMED = """
SELECT p.id, p.brand_id, p.kind, p.text, p.link, p.in_reply_to,
    a.id AS attempt_id,
    COALESCE(pp.sent_at, a.sent_at) AS sent_at,
    (SELECT min(e.sent_at) FROM publish_attempts e WHERE e.post_id = p.id)
        AS first_sent_at,
    pp.position AS part,
    pp.text AS part_text, pp.has_link AS part_has_link,
    (SELECT count(*) FROM post_parts x WHERE x.post_id = p.id) AS part_count,
    a.refused_as_duplicate, b.x_user_id, b.x_access_token, b.x_token_expires_at,
    b.x_own_app
FROM posts p
JOIN brands b ON b.id = p.brand_id
JOIN publish_attempts a ON a.id = p.lease_attempt_id
LEFT JOIN post_parts pp ON pp.post_id = p.id
    AND pp.sent_at IS NOT NULL AND pp.x_post_id IS NULL
WHERE p.state = 'unconfirmed' AND a.sent_at IS NOT NULL
  AND b.x_access_token IS NOT NULL AND b.x_user_id IS NOT NULL
  AND (p.kind <> 'thread' OR pp.position IS NOT NULL)
ORDER BY p.brand_id, sent_at, p.id
"""
# X ids this brand already holds: a timeline post can be adopted by one post only.
SELECT_KNOWN_IDS = """
SELECT x_post_id FROM posts WHERE brand_id = :brand_id AND x_post_id IS NOT NULL
UNION
SELECT pp.x_post_id FROM post_parts pp JOIN posts p ON p.id = pp.post_id
WHERE p.brand_id = :brand_id AND pp.x_post_id IS NOT NULL
"""
ADOPT_POST = """
UPDATE posts SET state = 'published', x_post_id = :x_post_id,
    published_at = :published_at, failure_reason = NULL, updated_at = :now
WHERE id = :post_id AND lease_attempt_id = :attempt_id AND state = 'unconfirmed'
RETURNING id
"""
REQUEUE_POST = """
UPDATE posts SET state = 'scheduled', failure_reason = :reason, updated_at = :now
WHERE id = :post_id AND lease_attempt_id = :attempt_id AND state = 'unconfirmed'
RETURNING id
"""
SETTLE_ATTEMPT = """
UPDATE publish_attempts SET outcome = :outcome, x_post_id = CAST(:x_post_id AS text),
    error = concat_ws('; ', error, CAST(:note AS text)),
    finished_at = COALESCE(finished_at, :now),
    checked_at = :now, reconciled_at = :now
WHERE id = :attempt_id
"""
MARK_CHECKED = "UPDATE publish_attempts SET checked_at = :now WHERE id = :attempt_id"
FAIL_POST = """
UPDATE posts SET state = 'failed', failure_reason = :reason, updated_at = :now
WHERE id = :post_id AND lease_attempt_id = :attempt_id AND state = 'unconfirmed'
RETURNING id
"""
NOTE_WAITING_FOR_BUDGET = """
UPDATE posts SET failure_reason = :reason WHERE id = :post_id AND state = 'unconfirmed'
"""
BUDGET_WAIT_REASON = (
    "X may have it; the timeline read that would settle it waits, as the brand's "
    "monthly X budget is spent: raise it (PATCH /v1/brand) or settle the post by "
    "hand (POST /v1/posts/{post_id}/settle)"
)
DUPLICATE_REASON = (
    "X refuses this text as a duplicate of an earlier post of the account, so it was "
    "not posted; draft the post again with new copy (POST /v1/captions)"
)


def reconcile_then_publish(runtime: Any, *, as_of: dt.datetime) -> dict[str, int]:
    """Settle unconfirmed posts, then publish what is due (re-queued posts too)."""
    settled = reconcile_unconfirmed(runtime)
    published = publishing.publish_due(runtime, as_of=as_of)
    return {**settled, **published}


def reconcile_unconfirmed(runtime: Any) -> dict[str, int]:
    """Look for every unconfirmed post on its account's timeline; return counts.

    `adopted`: found on X and published; `requeued`: absent after the delay and
    scheduled again; `failed_duplicate`: absent after the delay although X called
    it a duplicate; `waiting`: not settled yet (too early, or the read failed).
    """
    counts = {"adopted": 0, "requeued": 0, "failed_duplicate": 0, "waiting": 0}
    rows = runtime.database.reads().rows(SELECT_UNCONFIRMED)

    by_brand: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_brand[row["brand_id"]].append(row)
    for brand_rows in by_brand.values():
        for outcome in _reconcile_brand(runtime, brand_rows):
            counts[outcome] += 1
    return counts


def _reconcile_brand(runtime: Any, rows: list[dict[str, Any]]) -> list[str]:
    """Read one brand's timeline back to its oldest attempt; settle each post."""
    # From the post's first attempt: a re-sent post that X called a duplicate was
    # created by an earlier attempt.
    since = min(row["first_sent_at"] for row in rows) - CLOCK_MARGIN
    brand = {"id": rows[0]["brand_id"], "x_own_app": rows[0]["x_own_app"]}
    if accounts.over_budget_for_reads(runtime, brand, what="timeline"):
        # The read that would settle them is what the budget stops: say so on each.
        with runtime.database.transaction() as tx:
            for row in rows:
                tx.execute(
                    NOTE_WAITING_FOR_BUDGET,
                    post_id=row["id"],
                    reason=BUDGET_WAIT_REASON.format(post_id=row["id"]),
                )
        return ["waiting"] * len(rows)
    read = _read_timeline(runtime, rows[0], since)
    if read is None:
        return ["waiting"] * len(rows)
    timeline, covered_from = read

    read_at = runtime.clock.now()
    with runtime.database.transaction() as tx:
        known = {
            row["x_post_id"]
            for row in tx.rows(SELECT_KNOWN_IDS, brand_id=rows[0]["brand_id"])
        }

    delay = dt.timedelta(seconds=runtime.settings.reconcile_delay_s)
    outcomes = []
    for row in rows:
        match = _find(row, timeline, known)
        if match is not None:
            known.add(match.id)
            outcomes.append(_adopt(runtime, row, match, read_at))
        elif read_at - row["sent_at"] < delay or (
            covered_from is None or row["first_sent_at"] - CLOCK_MARGIN < covered_from
        ):
            with runtime.database.transaction() as tx:
                tx.execute(MARK_CHECKED, attempt_id=row["attempt_id"], now=read_at)
            outcomes.append("waiting")
        elif row["refused_as_duplicate"]:
            outcomes.append(_fail_duplicate(runtime, row, read_at))
        else:
            outcomes.append(_requeue(runtime, row, read_at))
    return outcomes


def _read_timeline(
    runtime: Any, row: dict[str, Any], since: dt.datetime
) -> tuple[list[Any], dt.datetime | None] | None:
    """Read the account's posts since `since`, page by page, each page metered.

    Returns the posts and the instant the read covers back to: `since` when X had
    no more, else the oldest post read (CARTCAST_RECONCILE_PAGES_MAX reached, or a
    later page failed); None when not even the first page could be read.
    """
    brand_id = row["brand_id"]
    token = accounts.usable_token(runtime, row)
    if token is None:
        return None  # X refused to refresh the token: the account is disconnected
    client = runtime.x_client(token)
    pages = iter(
        client.own_post_pages(
            row["x_user_id"],
            start_time=since,
            max_pages=runtime.settings.reconcile_pages_max,
        )
    )
    timeline: list[Any] = []
    complete, pages_read = False, 0
    while True:
        # Only X's errors stop the read: the metering below is the database's.
        try:
            fetched = next(pages, None)
        except (RateLimited, TransientError, PermanentError) as error:
            runtime.log.warning(
                "timeline read stopped; posts it did not cover wait",
                extra=fields(
                    brand_id=str(brand_id), pages_read=pages_read, reason=str(error)
                ),
            )
            if pages_read == 0:
                return None
            complete = False
            break
        if fetched is None:
            break
        page, more = fetched
        _meter_page(runtime, row, page)
        timeline.extend(page)
        complete, pages_read = not more, pages_read + 1

    if complete:
        return timeline, since
    if pages_read == runtime.settings.reconcile_pages_max:
        runtime.log.warning(
            "timeline longer than the pages read; older posts wait",
            extra=fields(brand_id=str(brand_id), pages_read=pages_read),
        )
    oldest = min((post.created_at for post in timeline), default=None)
    return timeline, oldest


def _meter_page(runtime: Any, row: dict[str, Any], page: list[Any]) -> None:
    """Record one page of the account's own posts, priced per post returned.

    X has answered the page, so it is paid for whatever the database does. A
    transaction the database ends (a deadlock's victim, a serialization failure,
    a dropped connection) is tried again, METER_TRIES in all, under the same ref,
    so a commit whose answer was lost counts once. Still failing, the error is
    raised and the run retried; that page's price is then missing from the
    ledger, and the ERROR line says how much.
    """
    price_class = costs.read_class(own_app=row["x_own_app"])
    usd = costs.price(runtime.settings.x_prices_usd, price_class, len(page))
    ref = f"reconcile:{uuid.uuid4()}"
    for tries_left in reversed(range(METER_TRIES)):
        try:
            with runtime.database.transaction() as tx:
                costs.record(
                    tx,
                    brand_id=row["brand_id"],
                    occurred_at=runtime.clock.now(),
                    operation=price_class,
                    units=len(page),
                    usd=usd,
                    ref=ref,
                )
            return
        except TransientError as error:
            if tries_left == 0:
                runtime.log.error(
                    "timeline page read from X but not metered",
                    extra=fields(
                        brand_id=str(row["brand_id"]),
                        operation=price_class,
                        units=len(page),
                        usd=str(usd),
                        reason=str(error),
                    ),
                )
                raise


def _find(row: dict[str, Any], timeline: list[Any], known: set[str]) -> Any:
    """Return the timeline post carrying this post's (or in-flight part's) text.

    A reply from the inbox must also answer the same post: two customers may get
    the same canned words, and once the leading @username is dropped only the
    post replied to tells the two replies apart.
    """
    wanted = comparable_text(row["part_text"] or row["text"])
    for post in timeline:
        if post.id in known or comparable_text(post.text) != wanted:
            continue
        if row["in_reply_to"] is not None and post.in_reply_to != row["in_reply_to"]:
            continue
        return post
    return None


def comparable_text(text: str) -> str:
    """Reduce a post's text to what survives X's rewriting: links become one mark.

    X returns every link as a t.co link and escapes `&`, `<` and `>` as HTML
    entities in a post's text (X API v2 documentation, Tweet object), and puts the
    @usernames a reply answers before its text; leading mentions are dropped from
    both sides of the comparison.
    """
    from twitter_text import extract_urls_with_indices

    text = LEADING_MENTIONS.sub("", html.unescape(text).lstrip())
    for found in reversed(extract_urls_with_indices(text)):
        start, end = found["indices"]
        text = f"{text[:start]}{LINK_MARK}{text[end:]}"
    return text.strip()


def _adopt(runtime: Any, row: dict[str, Any], match: Any, read_at: dt.datetime) -> str:
    """Take X's id for the post (or its thread part) and record what it cost."""
    is_part = row["part"] is not None
    has_link = row["part_has_link"] if is_part else bool(row["link"])
    ref = f"{row['id']}/{row['part']}" if is_part else str(row["id"])
    with runtime.database.transaction() as tx:
        if is_part:
            tx.execute(
                publishing.MARK_PART_PUBLISHED,
                post_id=row["id"],
                position=row["part"],
                x_post_id=match.id,
            )
        costs.record(
            tx,
            brand_id=row["brand_id"],
            occurred_at=match.created_at or read_at,
            operation=costs.post_class(has_link),
            units=1,
            usd=costs.price(runtime.settings.x_prices_usd, costs.post_class(has_link)),
            ref=ref,
        )
        if is_part and row["part"] + 1 < row["part_count"]:
            # The thread goes on from the next part in the next claim.
            note = f"part {row['part'] + 1} found on X as {match.id}; resuming"
            tx.execute(
                REQUEUE_POST,
                post_id=row["id"],
                attempt_id=row["attempt_id"],
                reason=f"will retry: {note}",
                now=read_at,
            )
            outcome = "retry"
        else:
            x_post_id = (
                tx.scalar(publishing.FIRST_PART_ID, post_id=row["id"])
                if is_part
                else match.id
            )
            tx.execute(
                ADOPT_POST,
                post_id=row["id"],
                attempt_id=row["attempt_id"],
                x_post_id=x_post_id,
                published_at=match.created_at or read_at,
                now=read_at,
            )
            note, outcome = f"found on X as {match.id}", "published"
        tx.execute(
            SETTLE_ATTEMPT,
            attempt_id=row["attempt_id"],
            outcome=outcome,
            x_post_id=match.id,
            note=f"{note} in the timeline read at {read_at.isoformat()}",
            now=read_at,
        )
    runtime.log.info(
        "unconfirmed post found on X",
        extra=fields(post_id=str(row["id"]), part=row["part"], x_post_id=match.id),
    )
    return "adopted"


def _requeue(runtime: Any, row: dict[str, Any], read_at: dt.datetime) -> str:
    """Send the post back to `scheduled`: X does not have it, well after sending."""
    waited_s = int((read_at - row["sent_at"]).total_seconds())
    note = (
        f"absent from the timeline read at {read_at.isoformat()}, "
        f"{waited_s} s after sending"
    )
    ref = str(row["id"]) if row["part"] is None else f"{row['id']}/{row['part']}"
    with runtime.database.transaction() as tx:
        # X does not have it: the price reserved when it was sent goes back.
        costs.release(tx, ref=ref)
        if row["part"] is not None:
            tx.execute(
                publishing.CLEAR_PART_SENT, post_id=row["id"], position=row["part"]
            )
        tx.execute(
            REQUEUE_POST,
            post_id=row["id"],
            attempt_id=row["attempt_id"],
            reason=f"will retry: {note}",
            now=read_at,
        )
        tx.execute(
            SETTLE_ATTEMPT,
            attempt_id=row["attempt_id"],
            outcome="retry",
            x_post_id=None,
            note=f"{note}; re-queued",
            now=read_at,
        )
    runtime.log.warning(
        "unconfirmed post absent from X; re-queued",
        extra=fields(post_id=str(row["id"]), part=row["part"], waited_s=waited_s),
    )
    return "requeued"


def _fail_duplicate(runtime: Any, row: dict[str, Any], read_at: dt.datetime) -> str:
    """Fail a post X called a duplicate when the timeline, read well after sending
    and back to its first attempt, does not hold it: the earlier post X means is
    older, or gone, and sending the text again would be refused again."""
    note = f"absent from the timeline read at {read_at.isoformat()}"
    ref = str(row["id"]) if row["part"] is None else f"{row['id']}/{row['part']}"
    with runtime.database.transaction() as tx:
        # X created nothing for this text: the price reserved when it was sent goes
        # back, as for any refusal.
        costs.release(tx, ref=ref)
        tx.execute(
            FAIL_POST,
            post_id=row["id"],
            attempt_id=row["attempt_id"],
            reason=DUPLICATE_REASON,
            now=read_at,
        )
        tx.execute(
            SETTLE_ATTEMPT,
            attempt_id=row["attempt_id"],
            outcome="failed",
            x_post_id=None,
            note=f"{note}; {DUPLICATE_REASON}",
            now=read_at,
        )
    runtime.log.error(
        "X calls a post a duplicate of one the timeline does not show; failed",
        extra=fields(post_id=str(row["id"]), part=row["part"]),
    )
    return "failed_duplicate"
