"""Metric snapshots: read published posts' metrics and the account's followers from X.

Each rollup reads only the posts that are due, on a cadence that follows a post's
age on X (decision 0022): hourly in its first day, when most of its engagement
comes, every 6 hours to a week, daily to 30 days, then weekly for good. X serves
link and profile clicks only while a post is younger than 30 days, so one reading
is always due 6 hours before that window closes, and an older post is asked for
its public fields only. What is read is stored by `snapshots.store_snapshot`; the
daily rollup works from there.

A post that X twice answers resource-not-found for, an hour or more apart, was
deleted on X: its copy is removed, as X's developer terms require of deleted
content, and it is never read again. Its snapshots and orders stay.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
import zoneinfo
from collections import Counter
from typing import TYPE_CHECKING, Any

from cartcast import accounts, costs, post_events, snapshots
from cartcast.errors import CartcastError
from cartcast.logs import fields

if TYPE_CHECKING:
    from cartcast.x import MetricsRead, PostMetrics

# How long after a reading the next is due, by the post's age on X. The bands
# assume a post's engagement comes mostly in its first day with a tail over the
# first week (the decay the X sandbox models; X publishes no curve). Constants,
# not settings: the 30-day window is X's, and the monthly X budget is the knob
# for what reads cost.
CADENCE = (
    (dt.timedelta(days=1), dt.timedelta(hours=1)),
    (dt.timedelta(days=7), dt.timedelta(hours=6)),
    (dt.timedelta(days=30), dt.timedelta(days=1)),
)
OLD_POST_INTERVAL = dt.timedelta(days=7)
# X serves url_link_clicks and user_profile_clicks for posts younger than 30 days
# (X API v2, "Metrics": non_public_metrics). The last private reading is due this
# long before, so the hourly rollup has six tries at it.
PRIVATE_WINDOW = dt.timedelta(days=30)
LAST_PRIVATE_LEAD = dt.timedelta(hours=6)
# Private fields are asked for only this far inside the window, so a clock a few
# minutes off X's does not buy a refused request.
PRIVATE_SKEW = dt.timedelta(minutes=10)
# A post X has no longer is looked up once more this much later before it counts
# as deleted: removing its copy cannot be undone.
MISSING_CONFIRM_AFTER = dt.timedelta(hours=1)
# Posts read per brand and rollup, at most (30 lookups); the rest stay due and go
# first next time. A first run after this migration finds every post due at once.
POSTS_PER_RUN_MAX = 3000

# A run claims the posts it reads: their due time moves a lease ahead in the
# statement that selects them, and rows another run holds are skipped, so two runs
# that overlap split the due posts instead of reading (and paying for) each twice.
# A run that dies leaves its posts due again when the lease ends; one that stops
# early (an X error, the budget) gives the unread ones their old due time back.
CLAIM_LEASE = dt.timedelta(minutes=30)
CLAIM_DUE_POSTS = """
WITH due AS (
    SELECT id, COALESCE(metrics_due_at, published_at) AS was_due FROM posts
    WHERE brand_id = :brand_id AND state = 'published' AND x_post_id IS NOT NULL
      AND deleted_on_x_at IS NULL AND COALESCE(metrics_due_at, published_at) <= :now
    ORDER BY COALESCE(metrics_due_at, published_at), id
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
)
UPDATE posts SET metrics_due_at = :lease_until FROM due WHERE posts.id = due.id
RETURNING posts.id, posts.kind, posts.x_post_id, posts.published_at,
    posts.last_metrics_at, posts.missing_on_x_at, posts.x_post_id_by_hand,
    due.was_due
"""
# Every part of a thread is a post on X, looked up with the thread.
SELECT_PARTS = """
SELECT post_id, position, x_post_id, has_link, missing_on_x_at FROM post_parts
WHERE post_id = ANY(CAST(:post_ids AS uuid[])) AND x_post_id IS NOT NULL
  AND deleted_on_x_at IS NULL
ORDER BY post_id, position
"""
RELEASE_CLAIM = """
UPDATE posts SET metrics_due_at = :was_due
WHERE id = :post_id AND metrics_due_at = :lease_until
"""
MARK_READ = """
UPDATE posts SET last_metrics_at = :now, metrics_due_at = :due_at,
    missing_on_x_at = NULL
WHERE id = :post_id
"""
MARK_DUE = "UPDATE posts SET metrics_due_at = :due_at WHERE id = :post_id"
MARK_MISSING = """
UPDATE posts SET missing_on_x_at = COALESCE(missing_on_x_at, :now),
    metrics_due_at = :due_at
WHERE id = :post_id
"""
# The copy goes; ids, link, campaign, times and figures stay. updated_at dates the
# post_events row the trigger writes for the text change. A thread keeps the text
# of its parts X still has (the part deletions below rebuild it).
MARK_DELETED = """
UPDATE posts SET deleted_on_x_at = :now, metrics_due_at = NULL, text = '',
    poll_options = NULL, image_alt_text = NULL, updated_at = :now
WHERE id = :post_id AND deleted_on_x_at IS NULL
"""
PART_FOUND = """
UPDATE post_parts SET missing_on_x_at = NULL
WHERE post_id = :post_id AND x_post_id = :x_post_id
"""
PART_MISSING = """
UPDATE post_parts SET missing_on_x_at = COALESCE(missing_on_x_at, :now)
WHERE post_id = :post_id AND x_post_id = :x_post_id
"""
# The post's own parts: the first (its id) and any with no X id of its own.
EMPTY_OWN_PARTS = """
UPDATE post_parts SET text = '', deleted_on_x_at = :now
WHERE post_id = :post_id AND (x_post_id IS NULL OR x_post_id = :x_post_id)
"""
DELETE_PART = """
UPDATE post_parts SET text = '', deleted_on_x_at = :now
WHERE post_id = :post_id AND x_post_id = :x_post_id AND deleted_on_x_at IS NULL
"""
# A thread's text is its parts joined by a blank line: what is left of it.
REBUILD_THREAD_TEXT = """
UPDATE posts SET updated_at = :now, text = COALESCE((
    SELECT string_agg(pp.text, E'\\n\\n' ORDER BY pp.position) FROM post_parts pp
    WHERE pp.post_id = posts.id AND pp.text <> ''), '')
WHERE id = :post_id
"""
# Another post's caption that was found to resemble this one quoted its opening
# words until decision 0022 was amended: the quote goes with the copy.
SCRUB_QUOTES = """
UPDATE posts SET fallback_reason = regexp_replace(fallback_reason,
    'near-duplicate of post ' || :post_id || ' \\(".*?", ',
    'near-duplicate of post ' || :post_id || ' (', 'g')
WHERE brand_id = :brand_id
  AND strpos(fallback_reason, 'near-duplicate of post ' || :post_id || ' ("') > 0
"""
INSERT_FOLLOWERS = """
INSERT INTO account_snapshots (brand_id, local_day, captured_at, followers)
VALUES (:brand_id, :local_day, :captured_at, :followers)
ON CONFLICT (brand_id, local_day) DO NOTHING
"""
HAS_FOLLOWERS = """
SELECT 1 FROM account_snapshots WHERE brand_id = :brand_id AND local_day = :local_day
"""


def snapshot_brand(runtime: Any, brand: dict[str, Any], now: dt.datetime) -> int:
    """Read the brand's due posts' metrics and today's followers; return posts read.

    `now` picks the due posts; each reading is stamped with the runtime clock's
    time when X answered it. Each lookup of up to 100 ids is stored, metered and
    rescheduled in its own transaction, so a failure part-way keeps what was read
    and paid for.
    """
    token = accounts.usable_token(runtime, brand)
    if token is None:
        return 0  # X refused to refresh the token: the account is disconnected
    local_day = now.astimezone(zoneinfo.ZoneInfo(brand["time_zone"])).date()
    lease_until = runtime.clock.now() + CLAIM_LEASE
    with runtime.database.transaction() as tx:
        due = tx.rows(
            CLAIM_DUE_POSTS,
            brand_id=brand["id"],
            now=now,
            limit=POSTS_PER_RUN_MAX,
            lease_until=lease_until,
        )
        due.sort(key=lambda post: (post["was_due"], str(post["id"])))
        parts = _parts_of(tx, due)
        needs_followers = (
            tx.one(HAS_FOLLOWERS, brand_id=brand["id"], local_day=local_day) is None
        )

    tally: Counter[str] = Counter()
    stored: set[str] = set()
    followers = None
    try:
        # Most hourly runs find nothing due and today's followers stored: they
        # build no client, so open no sealed token and import no tweepy
        # (decision 0067).
        if due or needs_followers:
            followers = _read_from_x(
                runtime, brand, token, due, parts, now, tally, stored, needs_followers
            )
    finally:
        _release(runtime, [p for p in due if str(p["id"]) not in stored], lease_until)

    if followers is not None:
        _store_followers(runtime, brand, local_day, followers, runtime.clock.now())
    runtime.log.info(
        "metrics read",
        extra=fields(brand_id=str(brand["id"]), due=len(due), **dict(tally)),
    )
    return tally["returned"]


def _read_from_x(
    runtime: Any,
    brand: dict[str, Any],
    token: str,
    due: list[dict[str, Any]],
    parts: dict[str, list[dict[str, Any]]],
    now: dt.datetime,
    tally: Counter[str],
    stored: set[str],
    needs_followers: bool,
) -> int | None:
    """Read the due posts' metrics, then the followers if asked; return those.

    A client that cannot be built (a sealed token without its key) raises; the
    caller then gives the claimed posts back.
    """
    client = runtime.x_client(token)
    try:
        within_budget = _read_due_posts(
            runtime, brand, client, due, parts, now, tally, stored
        )
        if needs_followers and within_budget:
            return client.followers_count(brand["x_user_id"])
    except CartcastError as error:
        # One brand's trouble with X (rate limit, revoked token, outage) ends its
        # reads this time; what was read is kept, the rest stays due, and orders
        # and daily KPIs are still brought up to date.
        accounts.note_read_trouble(runtime, brand, error, what="metrics")
    return None


def _parts_of(tx: Any, due: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Return each due thread's parts on X, other than its first (the post's id)."""
    threads = {str(post["id"]): post for post in due if post["kind"] == "thread"}
    parts: dict[str, list[dict[str, Any]]] = {}
    if not threads:
        return parts
    for part in tx.rows(SELECT_PARTS, post_ids=list(threads)):
        post_id = str(part["post_id"])
        if part["x_post_id"] != threads[post_id]["x_post_id"]:
            parts.setdefault(post_id, []).append(part)
    return parts


def _release(
    runtime: Any, unread: list[dict[str, Any]], lease_until: dt.datetime
) -> None:
    """Give posts claimed but not read their old due time back."""
    if not unread:
        return
    with runtime.database.transaction() as tx:
        for post in unread:
            tx.execute(
                RELEASE_CLAIM,
                post_id=str(post["id"]),
                was_due=post["was_due"],
                lease_until=lease_until,
            )


def next_reading_at(posted_at: dt.datetime, now: dt.datetime) -> dt.datetime:
    """Return when a post created on X at `posted_at` and read at `now` is due next."""
    age = now - posted_at
    interval = next(
        (every for younger_than, every in CADENCE if age < younger_than),
        OLD_POST_INTERVAL,
    )
    due_at = now + interval

    # Never step over the last reading of the clicks.
    last_private = posted_at + PRIVATE_WINDOW - LAST_PRIVATE_LEAD
    if now < last_private < due_at:
        due_at = last_private
    return due_at


def asks_private(posted_at: dt.datetime, now: dt.datetime) -> bool:
    """Say if X still serves a post's clicks, so they are worth asking for."""
    return now - posted_at < PRIVATE_WINDOW - PRIVATE_SKEW


def posted_on_x_at(post: dict[str, Any]) -> dt.datetime:
    """Return when X created the post: its id's time, else when cartcast saw it.

    A post settled by hand is `published_at` the settling time, which may be days
    after X created it; X's 30-day window counts from X's own time.
    """
    from cartcast.x import id_time

    x_post_id = str(post["x_post_id"])
    if x_post_id.isdigit() and len(x_post_id) <= 19:
        return min(post["published_at"], id_time(x_post_id))
    return post["published_at"]


def _lookups(
    due: list[dict[str, Any]], parts: dict[str, list[dict[str, Any]]], now: dt.datetime
) -> list[tuple[list[dict[str, Any]], bool]]:
    """Split due posts into lookups of at most 100 X ids (a thread's parts go
    with it), private fields only for the posts X still shows them for."""
    from cartcast.x import METRICS_BATCH_SIZE

    young = [post for post in due if asks_private(posted_on_x_at(post), now)]
    old = [post for post in due if not asks_private(posted_on_x_at(post), now)]
    lookups: list[tuple[list[dict[str, Any]], bool]] = []
    for posts, private in ((young, True), (old, False)):
        batch: list[dict[str, Any]] = []
        size = 0
        for post in posts:
            ids = 1 + len(parts.get(str(post["id"]), ()))
            if batch and size + ids > METRICS_BATCH_SIZE:
                lookups.append((batch, private))
                batch, size = [], 0
            batch.append(post)
            size += ids
        if batch:
            lookups.append((batch, private))
    return lookups


def _read_due_posts(
    runtime: Any,
    brand: dict[str, Any],
    client: Any,
    due: list[dict[str, Any]],
    parts: dict[str, list[dict[str, Any]]],
    now: dt.datetime,
    tally: Counter[str],
    stored: set[str],
) -> bool:
    """Look up the due posts, storing each lookup; return False if the monthly
    budget stopped them (a run may make 30 lookups, the budget is checked between).

    Raises:
        CartcastError: X failed a lookup; the earlier ones are stored, and so is
            what the failed one's first request returned.
    """
    for batch, private in _lookups(due, parts, now):
        if tally["returned"] and _over_budget(runtime, brand, now):
            return False
        ids = [post["x_post_id"] for post in batch] + [
            part["x_post_id"]
            for post in batch
            for part in parts.get(str(post["id"]), ())
        ]
        answer = client.read_metrics(ids, private=private)
        read_at = runtime.clock.now()
        tally.update(_store_lookup(runtime, brand, batch, parts, answer, read_at))
        # A post the failed second request was to read stays due, as after any
        # failed lookup.
        stored.update(
            str(post["id"])
            for post in batch
            if answer.failure is None
            or post["x_post_id"] in answer.metrics
            or post["x_post_id"] in answer.missing
        )
        if answer.failure is not None:
            raise answer.failure
    return True


def _over_budget(runtime: Any, brand: dict[str, Any], now: dt.datetime) -> bool:
    reason = costs.at_budget(runtime.database.reads(), str(brand["id"]), now)
    if reason is not None:
        runtime.log.warning(
            f"metrics read stopped: {reason}", extra=fields(brand_id=str(brand["id"]))
        )
    return reason is not None


def _store_lookup(
    runtime: Any,
    brand: dict[str, Any],
    batch: list[dict[str, Any]],
    parts: dict[str, list[dict[str, Any]]],
    answer: MetricsRead,
    now: dt.datetime,
) -> Counter[str]:
    """Store one lookup's snapshots, meter it and reschedule its posts; count what
    came of each post. `now` is when X answered."""
    tally: Counter[str] = Counter(requests=answer.requests)
    with runtime.database.transaction() as tx:
        for post in batch:
            post_parts = parts.get(str(post["id"]), [])
            returned = [
                x_id
                for x_id in [post["x_post_id"]] + [p["x_post_id"] for p in post_parts]
                if x_id in answer.metrics
            ]
            tally["billed"] += len(returned) * _billed_again(
                post["last_metrics_at"], now
            )
            _store_post(runtime, tx, brand, post, post_parts, answer, now, tally)

        # X prices a lookup of posts by id (GET /2/tweets) as post reads, whoever
        # wrote them and whichever app asks: its owned-read price is for the
        # /2/users/{id}/... timelines (decision 0022).
        costs.record(
            tx,
            brand_id=brand["id"],
            occurred_at=now,
            operation="post_read",
            units=tally["billed"],
            usd=costs.price(
                runtime.settings.x_prices_usd, "post_read", tally["billed"]
            ),
            ref=f"metrics:{uuid.uuid4()}",
        )
    return tally


def _store_post(
    runtime: Any,
    tx: Any,
    brand: dict[str, Any],
    post: dict[str, Any],
    parts: list[dict[str, Any]],
    answer: MetricsRead,
    now: dt.datetime,
    tally: Counter[str],
) -> None:
    """Store what X said of one post (and of its thread's other parts)."""
    post_id, x_post_id = str(post["id"]), post["x_post_id"]
    due_at = next_reading_at(posted_on_x_at(post), now)
    # A post is emptied only on X's word: X returned it once, or gave its id.
    x_vouched = post["last_metrics_at"] is not None or not post["x_post_id_by_hand"]

    for part in parts:
        if _store_part(runtime, tx, brand, post, part, answer, now, x_vouched):
            due_at = min(due_at, now + MISSING_CONFIRM_AFTER)

    values = answer.metrics.get(x_post_id)
    if values is not None:
        snapshots.store_snapshot(
            tx,
            post_id=post_id,
            captured_at=now,
            values=_with_link_clicks(values, parts, answer),
        )
        tx.execute(MARK_READ, post_id=post_id, now=now, due_at=due_at)
        tally["returned"] += 1
    elif x_post_id not in answer.missing:
        # Withheld for another reason: nothing is known, so wait a turn (or, if
        # the public read of it failed, stay due).
        if answer.failure is None:
            tx.execute(MARK_DUE, post_id=post_id, due_at=due_at)
            tally["withheld"] += 1
    elif (
        post["missing_on_x_at"] is None
        or now - post["missing_on_x_at"] < MISSING_CONFIRM_AFTER
    ):
        tx.execute(
            MARK_MISSING,
            post_id=post_id,
            now=now,
            due_at=min(due_at, now + MISSING_CONFIRM_AFTER),
        )
        tally["missing"] += 1
    elif not x_vouched:
        # A person typed this id and X never had it: most likely a slip. The text
        # stays; missing_on_x_at (shown by the API) tells a person to look.
        tx.execute(MARK_MISSING, post_id=post_id, now=now, due_at=due_at)
        runtime.log.warning(
            "X has no post by the id settled by hand and never had; text kept",
            extra=fields(brand_id=str(brand["id"]), post_id=post_id),
        )
        tally["unknown_id"] += 1
    else:
        _mark_deleted(tx, post, brand_id=str(brand["id"]), now=now)
        runtime.log.warning(
            "post deleted on X; its text was removed",
            extra=fields(brand_id=str(brand["id"]), post_id=post_id),
        )
        tally["deleted"] += 1


def _store_part(
    runtime: Any,
    tx: Any,
    brand: dict[str, Any],
    post: dict[str, Any],
    part: dict[str, Any],
    answer: MetricsRead,
    now: dt.datetime,
    x_vouched: bool,
) -> bool:
    """Note what X said of a thread part other than the first; empty a part X
    twice had not. Return True if the part awaits its second look."""
    post_id, x_post_id = str(post["id"]), part["x_post_id"]
    if x_post_id in answer.metrics:
        if part["missing_on_x_at"] is not None:
            tx.execute(PART_FOUND, post_id=post_id, x_post_id=x_post_id)
        return False
    if x_post_id not in answer.missing:
        return False
    first_seen = part["missing_on_x_at"]
    if first_seen is None or now - first_seen < MISSING_CONFIRM_AFTER:
        tx.execute(PART_MISSING, post_id=post_id, x_post_id=x_post_id, now=now)
        return True
    if not x_vouched:
        return False
    post_events.give_reason(
        tx,
        f"part {part['position'] + 1} deleted on X: X has no post {x_post_id} "
        f"(looked up twice, {MISSING_CONFIRM_AFTER} or more apart); its text was "
        "removed",
    )
    tx.execute(DELETE_PART, post_id=post_id, x_post_id=x_post_id, now=now)
    tx.execute(REBUILD_THREAD_TEXT, post_id=post_id, now=now)
    post_events.give_reason(tx, None)
    runtime.log.warning(
        "thread part deleted on X; its text was removed",
        extra=fields(
            brand_id=str(brand["id"]), post_id=post_id, position=part["position"]
        ),
    )
    return False


def _with_link_clicks(
    values: PostMetrics, parts: list[dict[str, Any]], answer: MetricsRead
) -> PostMetrics:
    """Take a thread's link and profile clicks from the part holding its link."""
    linked = next((part for part in parts if part["has_link"]), None)
    if linked is None or linked["x_post_id"] not in answer.metrics:
        return values
    clicks = answer.metrics[linked["x_post_id"]]
    if clicks.link_clicks is None:
        return values
    return dataclasses.replace(
        values, link_clicks=clicks.link_clicks, profile_clicks=clicks.profile_clicks
    )


def _billed_again(last_read_at: dt.datetime | None, now: dt.datetime) -> int:
    """Return 1 if X bills this post's return, 0 if it did already today.

    X counts a post returned again on the same day once (X API "Usage and
    billing", daily deduplication); the day is taken as the UTC day.
    """
    if last_read_at is None:
        return 1
    return int(last_read_at.astimezone(dt.UTC).date() != now.astimezone(dt.UTC).date())


def _mark_deleted(
    tx: Any, post: dict[str, Any], *, brand_id: str, now: dt.datetime
) -> None:
    """Record that X no longer has the post, and remove its copy (a thread's
    first part; its other parts go by their own answers)."""
    post_id, x_post_id = str(post["id"]), post["x_post_id"]
    post_events.give_reason(
        tx,
        f"deleted on X: X has no post {x_post_id} (looked up twice, "
        f"{MISSING_CONFIRM_AFTER} or more apart); its text was removed",
    )
    tx.execute(MARK_DELETED, post_id=post_id, now=now)
    tx.execute(EMPTY_OWN_PARTS, post_id=post_id, x_post_id=x_post_id, now=now)
    if post["kind"] == "thread":
        tx.execute(REBUILD_THREAD_TEXT, post_id=post_id, now=now)
    tx.execute(SCRUB_QUOTES, brand_id=brand_id, post_id=post_id)
    post_events.give_reason(tx, None)


def _store_followers(
    runtime: Any,
    brand: dict[str, Any],
    local_day: dt.date,
    followers: int,
    now: dt.datetime,
) -> None:
    """Store the day's follower count; a user lookup is priced as a user read."""
    with runtime.database.transaction() as tx:
        costs.record(
            tx,
            brand_id=brand["id"],
            occurred_at=now,
            operation="user_read",
            units=1,
            usd=costs.price(runtime.settings.x_prices_usd, "user_read", 1),
            ref=f"followers:{uuid.uuid4()}",
        )
        tx.execute(
            INSERT_FOLLOWERS,
            brand_id=brand["id"],
            local_day=local_day,
            captured_at=now,
            followers=followers,
        )
