"""Mentions: polled from X, stored once each, fanned out, scored, triaged.

Polling reads pages back to the stored cursor, stores the mentions (the X id is
unique per brand, so a re-read stores nothing twice) and moves the cursor in the same
transaction, only once every page back to it was read; a poll that runs out of pages,
or whose read fails after some pages, stores what it read and resumes from X's page
token next time, with the since_id that read first sent (X ties a token to its
query), unless that read started removed_mentions.REREAD_MARGIN ago or
more, or X refuses the token: then it starts again from the cursor. Each read reaches
CARTCAST_MENTION_OVERLAP_S back past the cursor, so a mention X indexed late, with
an id below the cursor, is still found. A cursor X
refuses as too old is replaced by one from seven days ago. A brand is polled again
after an interval that doubles while it is quiet and drops to the shortest as soon
as mentions arrive; a brand is not polled while X rate-limits it or while its monthly
X budget cannot pay for a page (decision 0017). A run polls the brand due the
longest first, so the brands a run cut off by its timeout did not reach are the
next run's first.

A mention whose author had their data removed is not stored again when a read
returns it: the removal keeps its X id in `removed_mention_ids` for as long as a
read could reach back to it (`removed_mentions.reread_reach`), and the poll skips
those ids and
counts them (decision 0056).

New mention ids, and any still unscored a while after they were stored, go out on
Pub/Sub in batches, and every publish is confirmed before the function returns.
Scoring and triage live in scoring.py.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from decimal import Decimal
from typing import Any

from cartcast import accounts, costs, removed_mentions
from cartcast.errors import CartcastError, PermanentError, TransientError
from cartcast.logs import fields

FANOUT_BATCH_SIZE = 100
# Mentions still unscored this long after they were stored are sent to scoring
# again: the fan-out that carried them may have been lost, and scoring is
# idempotent. Every poll is also this sweep.
SWEEP_AFTER = dt.timedelta(minutes=10)
SWEEP_BATCH_MAX = 1000
# X's mentions timeline answers at most 100 mentions a page (max_results).
MENTIONS_PER_PAGE = 100
# A refused cursor restarts as far back as X allows (x.SINCE_ID_WINDOW), less a
# margin that leaves a long backlog time to be paged through before the new
# cursor ages out.
FALLBACK_MARGIN = dt.timedelta(hours=1)
# A quiet brand's interval doubles after each poll that found nothing new.
POLL_BACKOFF_FACTOR = 2
# Rows per INSERT: one statement per thousand mentions keeps a large read's store
# near the cost of a COPY (bench/mention_store.py) without a huge parameter.
STORE_CHUNK = 1000

# One statement stores a chunk. The rows travel as one JSON array, ASCII-escaped
# (json's fastest encoder): the encoder and PostgreSQL's json_to_recordset are both
# native code, where binding a dozen arrays went through pg8000's per-value Python
# encoding, at 2.5 times the time of a COPY. The new ids come back as one string,
# not a row each, for the same reason. The statement is the same for any chunk.
INSERT_MENTIONS = """
WITH stored AS (
INSERT INTO mentions (brand_id, x_post_id, author_id, author_username, author_name,
    text, conversation_id, in_reply_to_user_id, posted_at, received_at,
    author_followers, photo_count, lang, media_types)
SELECT :brand_id, m.x_post_id, m.author_id, m.author_username, m.author_name, m.text,
    m.conversation_id, m.in_reply_to_user_id, m.posted_at, :received_at,
    m.author_followers, m.photo_count, m.lang, m.media_types
FROM json_to_recordset(CAST(:rows AS json)) AS m(x_post_id text, author_id text,
    author_username text, author_name text, text text, conversation_id text,
    in_reply_to_user_id text, posted_at timestamptz, author_followers integer,
    photo_count smallint, lang text, media_types text[])
ON CONFLICT (brand_id, x_post_id) DO NOTHING
RETURNING id
)
SELECT string_agg(CAST(id AS text), ',') AS new_ids FROM stored
"""
SAVE_CURSOR = """
UPDATE brands SET mentions_since_id = :since_id,
    mentions_resume_token = :resume_token,
    mentions_resume_started_at = :resume_started_at,
    mentions_resume_since_id = :resume_since_id,
    mentions_pending_newest_id = :pending_newest_id
WHERE id = :brand_id
"""
FORGET_RESUME = """
UPDATE brands SET mentions_resume_token = NULL, mentions_resume_started_at = NULL,
    mentions_resume_since_id = NULL, mentions_pending_newest_id = NULL
WHERE id = :brand_id
"""
# What FORGET_RESUME leaves, for the brand's row as this poll read it.
RESUME_FORGOTTEN = dict.fromkeys(
    (
        "mentions_resume_token",
        "mentions_resume_started_at",
        "mentions_resume_since_id",
        "mentions_pending_newest_id",
    )
)
RESTART_CURSOR = """
UPDATE brands SET mentions_since_id = :since_id, mentions_resume_token = NULL,
    mentions_resume_started_at = NULL, mentions_resume_since_id = NULL,
    mentions_pending_newest_id = NULL
WHERE id = :brand_id
"""
# A poll takes the brand before it reads X: its next poll moves to the lease's
# end, only if it is still the due time this run saw. A second run at once (an
# overlapping tick; poll_mentions runs up to two instances) finds it moved and
# leaves the brand, so X is read and paid once. The store sets the real next poll.
# The lease, CARTCAST_MENTION_POLL_LEASE_S, is poll_mentions' timeout (terraform
# wires it), so a run cut off there, or one that raised, leaves the brand to the
# polls after it by then at the latest, and no run outlives its own lease.
CLAIM_POLL = """
UPDATE brands SET mentions_next_poll_at = :lease_until
WHERE id = :brand_id AND mentions_next_poll_at IS NOT DISTINCT FROM :seen
RETURNING id
"""
# A read X did not answer gives the brand back to the next tick.
RETURN_POLL = """
UPDATE brands SET mentions_next_poll_at = :seen
WHERE id = :brand_id AND mentions_next_poll_at = :lease_until
"""
SAVE_PACE = """
UPDATE brands SET mentions_poll_interval_s = :interval_s,
    mentions_next_poll_at = :next_poll_at
WHERE id = :brand_id
"""
# Only until scoring's own sweep takes a stray over (scoring.UNSCORED_SWEEP_AFTER):
# past that it is scored in the poll, and publishing it again would do it twice.
SELECT_STRAYS = """
SELECT id FROM mentions
WHERE brand_id = :brand_id AND scored_at IS NULL AND received_at < :before
  AND received_at >= :swept_before
ORDER BY received_at LIMIT :limit
"""
# A brand never polled (no mentions_next_poll_at) sorts as the one due the longest.
NEVER_POLLED = dt.datetime.min.replace(tzinfo=dt.UTC)
TOTALS = ("brands", "read", "new", "swept", "skipped", "not_due", "fan_out_failed")


def poll_mentions(runtime: Any, *, as_of: dt.datetime) -> dict[str, int]:
    """Poll every connected brand whose next poll is due; return what happened.

    One brand's trouble with X (a revoked token, a rate limit, an outage) is logged
    and skipped, so it never holds up the other brands; database failures raise.
    """
    now = runtime.clock.now()
    connected = accounts.connected_brands(runtime.database.reads())
    totals = dict.fromkeys(TOTALS, 0)
    for brand in sorted(connected, key=_longest_due_first):
        outcome = _poll_brand(runtime, brand, now)
        for name, count in outcome.items():
            totals[name] += count
    return totals


def _longest_due_first(brand: dict[str, Any]) -> tuple[dt.datetime, Any]:
    """Sort key putting the brand due the longest first, by id among equals.

    A brand never polled comes first of all. A run its timeout cuts off leaves
    the brands it did not reach due the longest, so the next run takes them first;
    in id order the same brands would always be the ones left.
    """
    return (brand["mentions_next_poll_at"] or NEVER_POLLED, brand["id"])


def _poll_brand(
    runtime: Any, brand: dict[str, Any], now: dt.datetime
) -> dict[str, int]:
    """Poll one brand if it is due and may pay; return its share of the totals."""
    brand_id = str(brand["id"])
    paused_until = brand["x_reads_paused_until"]
    if paused_until and paused_until > now:
        return {"skipped": 1}
    next_poll_at = brand["mentions_next_poll_at"]
    if next_poll_at and next_poll_at > now:
        return {"not_due": 1}

    if not _claim_poll(runtime, brand, now):
        return {"not_due": 1}  # another run is polling the brand right now

    pages = _affordable_pages(runtime, brand, now)
    if pages == 0:
        _schedule_next(runtime, brand_id, runtime.settings.mention_poll_max_s, now)
        return {"skipped": 1}
    _forget_old_resume(runtime, brand, now)
    batch = _read(runtime, brand, max_pages=pages, now=now)
    if batch is None:
        _return_poll(runtime, brand, now)
        return {"skipped": 1}

    new_ids = _store(runtime, brand, batch, read_at=now)
    if batch.failure is not None:
        # The pages before the failure are stored; the rest waits for X.
        _note_later_page_trouble(runtime, brand, batch.failure)

    strays = _strays(runtime, brand_id=brand["id"], exclude=set(new_ids))
    outcome = {
        "brands": 1,
        "read": len(batch.mentions),
        "new": len(new_ids),
        "swept": len(strays),
    }
    try:
        _fan_out(runtime, brand_id=brand_id, mention_ids=new_ids + strays)
    except TransientError as error:
        # The mentions are stored; a later poll's sweep sends them again. Other
        # brands' mentions still get read and stored meanwhile.
        outcome["fan_out_failed"] = 1
        runtime.log.error(
            "mention fan-out failed",
            extra=fields(brand_id=brand_id, reason=str(error)),
        )
    return outcome


def _claim_poll(runtime: Any, brand: dict[str, Any], now: dt.datetime) -> bool:
    """Take the brand for this poll; False when another run took it first."""
    with runtime.database.transaction() as tx:
        claimed = tx.scalar(
            CLAIM_POLL,
            brand_id=brand["id"],
            seen=brand["mentions_next_poll_at"],
            lease_until=_lease_end(runtime, now),
        )
    return claimed is not None


def _lease_end(runtime: Any, now: dt.datetime) -> dt.datetime:
    """Return when a poll begun at `now` gives its brand up, run or not."""
    return now + dt.timedelta(seconds=runtime.settings.mention_poll_lease_s)


def _return_poll(runtime: Any, brand: dict[str, Any], now: dt.datetime) -> None:
    """Give the brand back to the next tick after a read X did not answer."""
    with runtime.database.transaction() as tx:
        tx.execute(
            RETURN_POLL,
            brand_id=brand["id"],
            seen=brand["mentions_next_poll_at"],
            lease_until=_lease_end(runtime, now),
        )


def _affordable_pages(runtime: Any, brand: dict[str, Any], now: dt.datetime) -> int:
    """Return how many pages this poll may read: the setting, or fewer when the
    brand's monthly X budget could not pay for a full page more (0: skip the poll).

    A read is billed per mention returned, so a page costs at most 100 reads; the
    brand stops polling while less than one full page's price is left.
    """
    pages = runtime.settings.mention_pages_max
    left = costs.budget_left(runtime.database.reads(), str(brand["id"]), now)
    if left is None:
        return pages
    price_class = costs.read_class(own_app=brand["x_own_app"])
    page_usd = costs.price(
        runtime.settings.x_prices_usd, price_class, MENTIONS_PER_PAGE
    )
    if page_usd > 0:
        pages = min(pages, max(0, math.floor(left / page_usd)))
    if pages == 0:
        runtime.log.warning(
            "mentions read skipped: monthly X budget nearly spent",
            extra=fields(
                brand_id=str(brand["id"]), left_usd=str(max(left, Decimal(0)))
            ),
        )
    return pages


def _next_interval_s(
    settings: Any, brand: dict[str, Any], batch: Any, new_ids: list[str]
) -> int:
    """Shortest interval when mentions arrived or pages are left; else back off."""
    if new_ids or not batch.complete:
        return settings.mention_poll_min_s
    current = brand["mentions_poll_interval_s"] or settings.mention_poll_min_s
    return min(settings.mention_poll_max_s, current * POLL_BACKOFF_FACTOR)


def _schedule_next(
    runtime: Any, brand_id: str, interval_s: int, now: dt.datetime
) -> None:
    """Set the brand's poll interval; its next poll is due one interval from now."""
    with runtime.database.transaction() as tx:
        tx.execute(
            SAVE_PACE,
            brand_id=brand_id,
            interval_s=interval_s,
            next_poll_at=now + dt.timedelta(seconds=interval_s),
        )


def _read(
    runtime: Any, brand: dict[str, Any], *, max_pages: int, now: dt.datetime
) -> Any:
    """Read the brand's next mentions from X, or None when X would not answer."""
    from cartcast import accounts, x

    token = accounts.usable_token(runtime, brand)
    if token is None:
        return None  # X refused to refresh the token: the account is disconnected
    client = runtime.x_client(token)
    try:
        try:
            return _read_on(runtime, client, brand, max_pages=max_pages, now=now)
        except x.XRejected as error:
            if error.reason != "refused_page_token":
                raise
        _drop_refused_page_token(
            runtime,
            brand,
            "X refused the saved mention page token; dropped it, reading again "
            "from the cursor",
        )
        return _read_on(runtime, client, brand, max_pages=max_pages, now=now)
    except CartcastError as error:
        if isinstance(error, PermanentError) and brand["mentions_resume_token"]:
            # Refused otherwise, a resumed read drops its token all the same: the
            # next poll starts again from the cursor, whatever X meant.
            with runtime.database.transaction() as tx:
                tx.execute(FORGET_RESUME, brand_id=brand["id"])
        accounts.note_read_trouble(runtime, brand, error, what="mentions")
    return None


def _read_on(
    runtime: Any,
    client: Any,
    brand: dict[str, Any],
    *,
    max_pages: int,
    now: dt.datetime,
) -> Any:
    """Read from the saved page token, or else the cursor; from seven days ago
    when X keeps no index as old as the cursor."""
    from cartcast import x

    try:
        return client.mentions(
            brand["x_user_id"],
            since_id=_request_since_id(runtime.settings, brand, now),
            max_pages=max_pages,
            pagination_token=brand["mentions_resume_token"],
        )
    except x.XRejected as error:
        if error.reason != "stale_since_id":
            raise
    restart_id = _restart_cursor(runtime, brand, now)
    return client.mentions(brand["x_user_id"], since_id=restart_id, max_pages=max_pages)


def _drop_refused_page_token(runtime: Any, brand: dict[str, Any], said: str) -> None:
    """Forget a page token X refused, so the next read starts from the cursor.

    Only a warning, `said`, and without X's message: it quotes the token.
    """
    with runtime.database.transaction() as tx:
        tx.execute(FORGET_RESUME, brand_id=brand["id"])
    runtime.log.warning(said, extra=fields(brand_id=str(brand["id"])))
    brand.update(RESUME_FORGOTTEN)


def _note_later_page_trouble(
    runtime: Any, brand: dict[str, Any], failure: CartcastError
) -> None:
    """Record why a read stopped after its first pages.

    A next page's token X refused is forgotten, so the next poll reads from the
    cursor instead of sending it again; any other failure is read trouble as a
    first page's is.
    """
    from cartcast import x

    if isinstance(failure, x.XRejected) and failure.reason == "refused_page_token":
        _drop_refused_page_token(
            runtime,
            brand,
            "X refused the token of a mention read's next page; the pages before "
            "it are stored, and the next poll reads again from the cursor",
        )
    else:
        accounts.note_read_trouble(runtime, brand, failure, what="mentions")


def _forget_old_resume(runtime: Any, brand: dict[str, Any], now: dt.datetime) -> None:
    """Drop a page token whose read started REREAD_MARGIN or more ago (or at an
    unknown time): the read starts again from the cursor.

    A removed author's mention ids are kept until the poll's reach back plus that
    margin has passed (removed_mentions.reread_reach); a query started longer ago
    may reach further back, and would store a forgotten one anew. Starting over
    re-reads what the first pages read, paid for once more, and stores nothing
    twice.
    """
    started_at = brand["mentions_resume_started_at"]
    if not brand["mentions_resume_token"]:
        return
    if started_at is not None and now - started_at < removed_mentions.REREAD_MARGIN:
        return

    with runtime.database.transaction() as tx:
        tx.execute(FORGET_RESUME, brand_id=brand["id"])
    runtime.log.warning(
        "mention page token too old to resume; reading again from the cursor",
        extra=fields(
            brand_id=str(brand["id"]),
            started_at=started_at.isoformat() if started_at else None,
        ),
    )
    brand.update(RESUME_FORGOTTEN)


def _restart_cursor(runtime: Any, brand: dict[str, Any], now: dt.datetime) -> str:
    """Replace a cursor X no longer keeps with seven days ago; return the new one."""
    from cartcast import x

    restart_id = x.id_at(now - x.SINCE_ID_WINDOW + FALLBACK_MARGIN)
    with runtime.database.transaction() as tx:
        tx.execute(RESTART_CURSOR, brand_id=brand["id"], since_id=restart_id)
    runtime.log.warning(
        "mention cursor too old for X; reading the last seven days",
        extra=fields(brand_id=str(brand["id"]), since_id=brand["mentions_since_id"]),
    )
    brand.update(RESUME_FORGOTTEN, mentions_since_id=restart_id)
    return restart_id


def _request_since_id(
    settings: Any, brand: dict[str, Any], now: dt.datetime
) -> str | None:
    """Return the since_id to send: the cursor, reaching back the overlap window.

    A resumed read sends the since_id its first page was asked with, kept beside
    X's page token: X ties a token to its query (what it does with a token sent
    with another query is not documented), and that since_id also re-reads the
    overlap. The overlap never reaches past what X keeps, unless the cursor itself
    already does (then X refuses it and _read restarts from seven days ago).
    """
    from cartcast import x

    if brand["mentions_resume_token"]:
        return brand["mentions_resume_since_id"]
    cursor = brand["mentions_since_id"]
    if cursor is None:
        return cursor
    reach_back = x.id_time(cursor) - dt.timedelta(seconds=settings.mention_overlap_s)
    oldest_kept = now - x.SINCE_ID_WINDOW + dt.timedelta(minutes=1)
    if x.id_time(cursor) < oldest_kept:
        return cursor
    return x.id_at(max(reach_back, oldest_kept))


def _store(
    runtime: Any, brand: dict[str, Any], batch: Any, *, read_at: dt.datetime
) -> list[str]:
    """Store a batch of mentions, move the cursor and set the next poll, in one
    commit; return the new mentions' ids. `read_at` is when the read began."""
    now = runtime.clock.now()
    with runtime.database.transaction() as tx:
        tx.execute(removed_mentions.LOCK_BRAND_MENTIONS, brand_id=str(brand["id"]))
        removed = removed_mentions.removed_ids(
            tx, brand_id=brand["id"], x_post_ids=[m.id for m in batch.mentions]
        )
        kept = [mention for mention in batch.mentions if mention.id not in removed]
        new_ids = store_mentions(
            tx, brand_id=brand["id"], mentions=kept, received_at=now
        )
        # The account's own mentions: an owned read with the brand's own X app.
        # X bills every post it returned, a repeat or an unusable one too.
        price_class = costs.read_class(own_app=brand["x_own_app"])
        costs.record(
            tx,
            brand_id=brand["id"],
            occurred_at=now,
            operation=price_class,
            units=batch.returned,
            usd=costs.price(runtime.settings.x_prices_usd, price_class, batch.returned),
            ref=f"mentions:{uuid.uuid4()}",
        )
        tx.execute(
            SAVE_CURSOR,
            brand_id=brand["id"],
            **_next_cursor(brand, batch, read_at=read_at),
        )

        # Paced in the same commit; pages left unread are read at the next tick.
        interval_s = _next_interval_s(runtime.settings, brand, batch, new_ids)
        wait_s = interval_s if batch.complete else 0
        tx.execute(
            SAVE_PACE,
            brand_id=brand["id"],
            interval_s=interval_s,
            next_poll_at=now + dt.timedelta(seconds=wait_s),
        )
    runtime.log.info(
        "mentions polled",
        extra=fields(
            brand_id=str(brand["id"]),
            read=len(batch.mentions),
            new=len(new_ids),
            removed_author=len(batch.mentions) - len(kept),
            unusable=batch.skipped,
            pages=batch.pages_read,
            complete=batch.complete,
        ),
    )
    return new_ids


def store_mentions(
    tx: Any, *, brand_id: Any, mentions: list[Any], received_at: dt.datetime
) -> list[str]:
    """Store parsed mentions of one brand; return the ids of those that are new.

    Idempotent: a mention already stored (the same X id for the brand) is left as
    it is, so a re-read or a retried poll stores nothing twice.
    """
    new_ids: list[str] = []
    for start in range(0, len(mentions), STORE_CHUNK):
        chunk = mentions[start : start + STORE_CHUNK]
        stored = tx.scalar(
            INSERT_MENTIONS,
            brand_id=brand_id,
            received_at=received_at,
            rows=json.dumps([_row(m) for m in chunk]),
        )
        new_ids += stored.split(",") if stored else []
    return new_ids


def _row(mention: Any) -> dict[str, Any]:
    return {
        "x_post_id": mention.id,
        "author_id": mention.author_id,
        "author_username": _storable(mention.author_username),
        "author_name": _storable(mention.author_name),
        "text": _storable(mention.text),
        "conversation_id": mention.conversation_id,
        "in_reply_to_user_id": mention.in_reply_to_user_id,
        "posted_at": mention.created_at.isoformat(),
        "author_followers": mention.author_followers,
        "photo_count": mention.photo_count,
        "media_types": list(mention.media_types),
        "lang": mention.lang,
    }


def _storable(text: str | None) -> str | None:
    """Make X's text storable: PostgreSQL text holds no NUL and no lone surrogate."""
    if text is None:
        return None
    if "\x00" not in text:
        try:
            text.encode("utf-8")
            return text
        except UnicodeEncodeError:
            pass
    return text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "")


def _next_cursor(
    brand: dict[str, Any], batch: Any, *, read_at: dt.datetime
) -> dict[str, Any]:
    """Work out the cursor after a read.

    The cursor (since_id) moves only once every page back to it was read. A read
    that ran out of pages, or failed after some, keeps X's token for the older
    pages, the newest id it saw, when its query started and the since_id it sent
    (a resumed read keeps the first one's); the next poll continues there with
    that query, and when it reaches the cursor the cursor jumps to that newest id.
    """
    newest = brand["mentions_pending_newest_id"] or batch.newest_id
    if batch.complete:
        return {
            "since_id": _later_id(brand["mentions_since_id"], newest),
            "resume_token": None,
            "resume_started_at": None,
            "resume_since_id": None,
            "pending_newest_id": None,
        }
    resumed = brand["mentions_resume_token"] is not None
    return {
        "since_id": brand["mentions_since_id"],
        "resume_token": batch.next_token,
        "resume_started_at": (
            brand["mentions_resume_started_at"] if resumed else read_at
        ),
        "resume_since_id": batch.since_id,
        "pending_newest_id": newest,
    }


def _later_id(current: str | None, candidate: str | None) -> str | None:
    """Return the later of two X ids (decimal strings, compared as numbers)."""
    if current is None or candidate is None:
        return candidate or current
    return max(current, candidate, key=lambda value: (len(value), value))


def _strays(runtime: Any, *, brand_id: Any, exclude: set[str]) -> list[str]:
    """Return mentions stored a while ago and still unscored (a lost fan-out)."""
    from cartcast import scoring

    now = runtime.clock.now()
    rows = runtime.database.reads().rows(
        SELECT_STRAYS,
        brand_id=brand_id,
        before=now - SWEEP_AFTER,
        swept_before=now - scoring.UNSCORED_SWEEP_AFTER,
        limit=SWEEP_BATCH_MAX,
    )
    return [str(row["id"]) for row in rows if str(row["id"]) not in exclude]


def _fan_out(runtime: Any, *, brand_id: str, mention_ids: list[str]) -> None:
    batches = [
        {"brand_id": brand_id, "mention_ids": mention_ids[i : i + FANOUT_BATCH_SIZE]}
        for i in range(0, len(mention_ids), FANOUT_BATCH_SIZE)
    ]
    if batches:
        runtime.publisher.publish(runtime.settings.mentions_topic, batches)
