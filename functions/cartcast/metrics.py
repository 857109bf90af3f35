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

import datetime as dt
import uuid
import zoneinfo
from collections import Counter
from typing import Any

from cartcast import accounts, costs, post_events, snapshots
from cartcast.errors import CartcastError
from cartcast.logs import fields
from cartcast.x import METRICS_BATCH_SIZE, MetricsRead, id_time

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

SELECT_DUE_POSTS = """
SELECT id, x_post_id, published_at, last_metrics_at, missing_on_x_at FROM posts
WHERE brand_id = :brand_id AND state = 'published' AND x_post_id IS NOT NULL
  AND deleted_on_x_at IS NULL AND COALESCE(metrics_due_at, published_at) <= :now
ORDER BY COALESCE(metrics_due_at, published_at), id
LIMIT :limit
"""
MARK_READ = """
UPDATE posts SET last_metrics_at = :now, metrics_due_at = :due_at,
    missing_on_x_at = NULL
WHERE id = :post_id
"""
MARK_DUE = "UPDATE posts SET metrics_due_at = :due_at WHERE id = :post_id"
MARK_MISSING = """
UPDATE posts SET missing_on_x_at = :now, metrics_due_at = :due_at WHERE id = :post_id
"""
# The copy goes; ids, link, campaign, times and figures stay. updated_at dates the
# post_events row the trigger writes for the text change.
MARK_DELETED = """
UPDATE posts SET deleted_on_x_at = :now, metrics_due_at = NULL, text = '',
    poll_options = NULL, image_alt_text = NULL, updated_at = :now
WHERE id = :post_id AND deleted_on_x_at IS NULL
"""
EMPTY_PARTS = "UPDATE post_parts SET text = '' WHERE post_id = :post_id"
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

    Each lookup of up to 100 posts is stored, metered and rescheduled in its own
    transaction, so a failure part-way keeps what was read and paid for.
    """
    client = runtime.x_client(brand["x_access_token"])
    local_day = now.astimezone(zoneinfo.ZoneInfo(brand["time_zone"])).date()
    with runtime.database.transaction() as tx:
        due = tx.rows(
            SELECT_DUE_POSTS, brand_id=brand["id"], now=now, limit=POSTS_PER_RUN_MAX
        )
        needs_followers = (
            tx.one(HAS_FOLLOWERS, brand_id=brand["id"], local_day=local_day) is None
        )

    tally: Counter[str] = Counter()
    followers = None
    try:
        within_budget = _read_due_posts(runtime, brand, client, due, now, tally)
        if needs_followers and within_budget:
            followers = client.followers_count(brand["x_user_id"])
    except CartcastError as error:
        # One brand's trouble with X (rate limit, revoked token, outage) ends its
        # reads this time; what was read is kept, the rest stays due, and orders
        # and daily KPIs are still brought up to date.
        accounts.note_read_trouble(runtime, brand, error, what="metrics")

    if followers is not None:
        _store_followers(runtime, brand, local_day, followers, now)
    runtime.log.info(
        "metrics read",
        extra=fields(brand_id=str(brand["id"]), due=len(due), **dict(tally)),
    )
    return tally["returned"]


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
    x_post_id = str(post["x_post_id"])
    if x_post_id.isdigit() and len(x_post_id) <= 19:
        return min(post["published_at"], id_time(x_post_id))
    return post["published_at"]


def _lookups(
    due: list[dict[str, Any]], now: dt.datetime
) -> list[tuple[list[dict[str, Any]], bool]]:
    """Split due posts into lookups of at most 100, private fields only for the
    posts X still shows them for."""
    young = [post for post in due if asks_private(posted_on_x_at(post), now)]
    old = [post for post in due if not asks_private(posted_on_x_at(post), now)]
    return [
        (posts[start : start + METRICS_BATCH_SIZE], private)
        for posts, private in ((young, True), (old, False))
        for start in range(0, len(posts), METRICS_BATCH_SIZE)
    ]


def _read_due_posts(
    runtime: Any,
    brand: dict[str, Any],
    client: Any,
    due: list[dict[str, Any]],
    now: dt.datetime,
    tally: Counter[str],
) -> bool:
    """Look up the due posts, storing each lookup; return False if the monthly
    budget stopped them (a run may make 30 lookups, the budget is checked between).

    Raises:
        CartcastError: X failed a lookup; the earlier ones are stored.
    """
    for batch, private in _lookups(due, now):
        if tally["returned"] and _over_budget(runtime, brand, now):
            return False
        answer = client.read_metrics(
            [post["x_post_id"] for post in batch], private=private
        )
        tally.update(_store_lookup(runtime, brand, batch, answer, now))
    return True


def _over_budget(runtime: Any, brand: dict[str, Any], now: dt.datetime) -> bool:
    with runtime.database.transaction() as tx:
        reason = costs.at_budget(tx, str(brand["id"]), now)
    if reason is not None:
        runtime.log.warning(
            f"metrics read stopped: {reason}", extra=fields(brand_id=str(brand["id"]))
        )
    return reason is not None


def _store_lookup(
    runtime: Any,
    brand: dict[str, Any],
    batch: list[dict[str, Any]],
    answer: MetricsRead,
    now: dt.datetime,
) -> Counter[str]:
    """Store one lookup's snapshots, meter it and reschedule its posts; count what
    came of each post."""
    tally: Counter[str] = Counter(requests=answer.requests)
    with runtime.database.transaction() as tx:
        for post in batch:
            post_id, x_post_id = str(post["id"]), post["x_post_id"]
            due_at = next_reading_at(posted_on_x_at(post), now)
            values = answer.metrics.get(x_post_id)
            if values is not None:
                snapshots.store_snapshot(
                    tx, post_id=post_id, captured_at=now, values=values
                )
                tx.execute(MARK_READ, post_id=post_id, now=now, due_at=due_at)
                tally["returned"] += 1
                tally["billed"] += _billed_again(post["last_metrics_at"], now)
            elif x_post_id not in answer.missing:
                # Withheld for another reason: nothing is known, so wait a turn.
                tx.execute(MARK_DUE, post_id=post_id, due_at=due_at)
                tally["withheld"] += 1
            elif post["missing_on_x_at"] is None:
                tx.execute(
                    MARK_MISSING,
                    post_id=post_id,
                    now=now,
                    due_at=now + MISSING_CONFIRM_AFTER,
                )
                tally["missing"] += 1
            else:
                _mark_deleted(tx, post_id=post_id, x_post_id=x_post_id, now=now)
                runtime.log.warning(
                    "post deleted on X; its text was removed",
                    extra=fields(brand_id=str(brand["id"]), post_id=post_id),
                )
                tally["deleted"] += 1

        read_class = costs.read_class(own_app=brand["x_own_app"])
        costs.record(
            tx,
            brand_id=brand["id"],
            occurred_at=now,
            operation=read_class,
            units=tally["billed"],
            usd=costs.price(runtime.settings.x_prices_usd, read_class, tally["billed"]),
            ref=f"metrics:{uuid.uuid4()}",
        )
    return tally


def _billed_again(last_read_at: dt.datetime | None, now: dt.datetime) -> int:
    """Return 1 if X bills this post's return, 0 if it did already today.

    X counts a post returned again on the same day once (X API "Usage and
    billing", daily deduplication); the day is taken as the UTC day.
    """
    if last_read_at is None:
        return 1
    return int(last_read_at.astimezone(dt.UTC).date() != now.astimezone(dt.UTC).date())


def _mark_deleted(tx: Any, *, post_id: str, x_post_id: str, now: dt.datetime) -> None:
    """Record that X no longer has the post, and remove its copy."""
    post_events.give_reason(
        tx,
        f"deleted on X: X has no post {x_post_id} (looked up twice, "
        f"{MISSING_CONFIRM_AFTER} or more apart); its text was removed",
    )
    tx.execute(MARK_DELETED, post_id=post_id, now=now)
    tx.execute(EMPTY_PARTS, post_id=post_id)
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
