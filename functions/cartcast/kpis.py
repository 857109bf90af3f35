"""KPI rollup: metric snapshots from X, order attribution, daily KPIs per brand.

A day is the brand's local calendar day. A day's impressions, engagements and link
clicks are the growth between consecutive snapshots of each post, credited to the
local day of the later snapshot; each snapshot carries its growth from the moment it
is stored (migration 021), so a day's figures are one plain GROUP BY. Those figures
and their rates are the brand's own posts'; replies to mentions are summed apart
(`reply_impressions`, `reply_engagements`, migration 045), so a rate never mixes a
summoned reply's reach with a post's.

Only days that changed are computed again. Every write that moves a brand's day (a
snapshot, an order, an attribution, a published post, a mention or its score, a
ledger row, a follower count) marks that (brand, local day) in `kpi_marks`, by a
trigger; the rollup takes the marks and rewrites those days' rows whole, so running
it twice replaces, never adds (decision 0021).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable
from typing import Any

from cartcast import accounts, attribution, metrics
from cartcast.logs import fields, get_logger

log = get_logger(__name__)

# No time zone is more than 14 hours from UTC (Pacific/Kiritimati is UTC+14): a
# local day lies within these margins of the UTC day of the same date.
ZONE_MARGIN = dt.timedelta(hours=14)

# Two recomputes of one day must not commit in the opposite order of what they read,
# or the older figures would win; they take turns (pg_advisory_xact_lock's two-key
# form: 7310 and 7311 are settling's and brands').
LOCK_RECOMPUTE = "SELECT pg_advisory_xact_lock(7312, 0)"
# How the recompute's statements are planned, for its own transaction only
# (decision 0027):
# - The same statement reads one day or a whole year; a plan cached for one would
#   do the other badly, so each execution is planned for its own range.
# - JIT compiling costs about a second per statement (measured 1.0 to 1.4 s on
#   the bench's data), more than a chunk takes to run; a chunk whose estimate
#   crossed jit_above_cost (100,000 by default) paid it on every chunk.
# - The planner cannot count the (brand, local day) groups of a chunk (the day is
#   an expression over a join) and guesses one per snapshot; past work_mem it
#   then sorted every snapshot on disk to build a few hundred groups. Hashing is
#   right whatever the volume: the groups are at most brands x days.
# The turn and the plan in one statement, one round trip per chunk rather than two
# (decision 0046): the settings last to the transaction's end either way, and the
# chunk's statements, which they are for, come after both.
TAKE_TURN_AND_PLAN_THE_RECOMPUTE = """
SELECT pg_advisory_xact_lock(7312, 0) AS turn,
    set_config('plan_cache_mode', 'force_custom_plan', true) AS plan_cache_mode,
    set_config('jit', 'off', true) AS jit,
    set_config('enable_sort', 'off', true) AS enable_sort
"""
MARK_TODAY = """
INSERT INTO kpi_marks (brand_id, day)
SELECT id, CAST(CAST(:now AS timestamptz) AT TIME ZONE time_zone AS date)
FROM brands WHERE id = ANY(CAST(:brand_ids AS uuid[]))
"""
# The hourly rollup's first chunk takes this many days into one statement and one
# transaction; each later chunk is sized by how long the one before took: doubled
# (up to CHUNK_DAYS_MAX) while a chunk commits within half of CHUNK_TARGET_S,
# halved (down to one day) once one takes longer. A first rollup over years of
# marks thus stays far inside pg8000's 10-second socket timeout however much data
# a day holds, keeps each chunk it wrote, and pays each chunk's fixed cost (the
# posts read again, the plan, the commit) a few times, not a dozen (decision 0027).
CHUNK_DAYS = 31
CHUNK_DAYS_MAX = 366
CHUNK_TARGET_S = 2.0
# The marks on the first marked day (or :from_day) and the chunk's days after it,
# of every brand not skipped or of :brand_id only, as this statement's snapshot sees
# them; a mark committed later stays for the next chunk or run, and the data it
# marks was committed with it. Marks of a deleted brand are dropped here (taken,
# and left out of the rewrite), and so are those of an offboarded brand's kept row:
# its daily KPIs are frozen, and a write that lands after its data went (a caption
# job's cost, say) would otherwise rewrite a kept day from emptied tables.
TAKE_CHUNK_OF_MARKS = """
WITH first AS (
    SELECT COALESCE(CAST(:from_day AS date), MIN(day)) AS day FROM kpi_marks
    WHERE (CAST(:brand_id AS uuid) IS NULL OR brand_id = CAST(:brand_id AS uuid))
      AND brand_id <> ALL(CAST(:skipped AS uuid[]))
),
taken AS (
    DELETE FROM kpi_marks k USING first
    WHERE (CAST(:brand_id AS uuid) IS NULL OR k.brand_id = CAST(:brand_id AS uuid))
      AND k.brand_id <> ALL(CAST(:skipped AS uuid[]))
      AND k.day >= first.day
      AND k.day < first.day + CAST(:chunk_days AS integer)
    RETURNING k.brand_id, k.day
)
SELECT DISTINCT taken.brand_id, taken.day, b.id IS NOT NULL AS brand_exists
FROM taken LEFT JOIN brands b ON b.id = taken.brand_id AND b.offboarded_at IS NULL
ORDER BY taken.day, taken.brand_id
"""
# Every source is read for the marked brands only, over [:since, :until), a range of
# instants that covers the marked days in every zone; a group outside the marked
# (brand, day)s is dropped by the join on `marked`. A rate is NULL unless its
# denominator is positive and its numerator not negative: a day X recounted down
# keeps its signed growth, and a negative rate would mean nothing (decision 0021).
UPSERT_DAILY_KPIS = """
WITH marked AS (
    SELECT m.brand_id, m.day
    FROM unnest(CAST(:brand_ids AS uuid[]), CAST(:days AS date[])) AS m (brand_id, day)
),
growth AS (
    SELECT p.brand_id, CAST(s.captured_at AT TIME ZONE b.time_zone AS date) AS day,
        SUM(s.impressions_growth) FILTER (WHERE p.in_reply_to IS NULL)
            AS impressions,
        SUM(s.engagements_growth) FILTER (WHERE p.in_reply_to IS NULL)
            AS engagements,
        SUM(s.link_clicks_growth) FILTER (WHERE p.in_reply_to IS NULL)
            AS link_clicks,
        SUM(s.impressions_growth) FILTER (WHERE p.in_reply_to IS NOT NULL)
            AS reply_impressions,
        SUM(s.engagements_growth) FILTER (WHERE p.in_reply_to IS NOT NULL)
            AS reply_engagements
    FROM metric_snapshots s
    JOIN posts p ON p.id = s.post_id
    JOIN brands b ON b.id = p.brand_id
    WHERE p.brand_id = ANY(CAST(:brands AS uuid[]))
      AND s.captured_at >= :since AND s.captured_at < :until
    GROUP BY 1, 2
),
published AS (
    SELECT p.brand_id, CAST(p.published_at AT TIME ZONE b.time_zone AS date) AS day,
        COUNT(*) FILTER (WHERE p.in_reply_to IS NULL) AS posts,
        COUNT(*) FILTER (WHERE p.in_reply_to IS NOT NULL) AS replies
    FROM posts p JOIN brands b ON b.id = p.brand_id
    WHERE p.brand_id = ANY(CAST(:brands AS uuid[])) AND p.state = 'published'
      AND p.published_at >= :since AND p.published_at < :until
    GROUP BY 1, 2
),
sales AS (
    SELECT o.brand_id, CAST(o.ordered_at AT TIME ZONE b.time_zone AS date) AS day,
        COUNT(*) FILTER (WHERE o.post_id IS NOT NULL) AS attributed,
        COUNT(*) FILTER (WHERE o.post_id IS NULL) AS unattributed,
        COALESCE(SUM(o.total_price) FILTER (WHERE o.post_id IS NOT NULL), 0)
            AS revenue
    FROM orders o JOIN brands b ON b.id = o.brand_id
    WHERE o.brand_id = ANY(CAST(:brands AS uuid[]))
      AND o.ordered_at >= :since AND o.ordered_at < :until
    GROUP BY 1, 2
),
talk AS (
    SELECT m.brand_id, CAST(m.posted_at AT TIME ZONE b.time_zone AS date) AS day,
        COUNT(*) AS mentions,
        COUNT(*) FILTER (WHERE m.sentiment = 'negative') AS negative
    FROM mentions m JOIN brands b ON b.id = m.brand_id
    WHERE m.brand_id = ANY(CAST(:brands AS uuid[]))
      AND m.posted_at >= :since AND m.posted_at < :until
    GROUP BY 1, 2
),
spend AS (
    SELECT c.brand_id, CAST(c.occurred_at AT TIME ZONE b.time_zone AS date) AS day,
        SUM(c.usd) AS usd
    FROM cost_ledger c JOIN brands b ON b.id = c.brand_id
    WHERE c.brand_id = ANY(CAST(:brands AS uuid[]))
      AND c.occurred_at >= :since AND c.occurred_at < :until
    GROUP BY 1, 2
)
INSERT INTO daily_kpis (brand_id, day, posts_published, replies_published,
    reply_impressions, reply_engagements, impressions, engagements,
    engagement_rate, link_clicks, click_through_rate, attributed_orders, revenue,
    conversion_rate, unattributed_orders, mentions, negative_mentions, followers,
    follower_change, api_spend_usd, cost_per_attributed_order_usd, computed_at)
SELECT marked.brand_id, marked.day,
    COALESCE(published.posts, 0),
    COALESCE(published.replies, 0),
    COALESCE(growth.reply_impressions, 0),
    COALESCE(growth.reply_engagements, 0),
    COALESCE(growth.impressions, 0),
    COALESCE(growth.engagements, 0),
    CASE WHEN growth.impressions > 0 AND growth.engagements >= 0
         THEN ROUND(growth.engagements::numeric / growth.impressions, 5) END,
    COALESCE(growth.link_clicks, 0),
    CASE WHEN growth.impressions > 0 AND growth.link_clicks >= 0
         THEN ROUND(growth.link_clicks::numeric / growth.impressions, 5) END,
    COALESCE(sales.attributed, 0),
    COALESCE(sales.revenue, 0),
    CASE WHEN growth.link_clicks > 0
         THEN ROUND(COALESCE(sales.attributed, 0)::numeric / growth.link_clicks, 5)
    END,
    COALESCE(sales.unattributed, 0),
    COALESCE(talk.mentions, 0),
    COALESCE(talk.negative, 0),
    followers.followers,
    followers.followers - day_before.followers,
    COALESCE(spend.usd, 0),
    CASE WHEN sales.attributed > 0
         THEN ROUND(COALESCE(spend.usd, 0) / sales.attributed, 4) END,
    :now
FROM marked
LEFT JOIN growth USING (brand_id, day)
LEFT JOIN published USING (brand_id, day)
LEFT JOIN sales USING (brand_id, day)
LEFT JOIN talk USING (brand_id, day)
LEFT JOIN spend USING (brand_id, day)
LEFT JOIN account_snapshots followers
    ON followers.brand_id = marked.brand_id AND followers.local_day = marked.day
LEFT JOIN account_snapshots day_before
    ON day_before.brand_id = marked.brand_id AND day_before.local_day = marked.day - 1
ON CONFLICT (brand_id, day) DO UPDATE SET
    posts_published = EXCLUDED.posts_published,
    replies_published = EXCLUDED.replies_published,
    reply_impressions = EXCLUDED.reply_impressions,
    reply_engagements = EXCLUDED.reply_engagements,
    impressions = EXCLUDED.impressions,
    engagements = EXCLUDED.engagements, engagement_rate = EXCLUDED.engagement_rate,
    link_clicks = EXCLUDED.link_clicks,
    click_through_rate = EXCLUDED.click_through_rate,
    attributed_orders = EXCLUDED.attributed_orders, revenue = EXCLUDED.revenue,
    conversion_rate = EXCLUDED.conversion_rate,
    unattributed_orders = EXCLUDED.unattributed_orders,
    mentions = EXCLUDED.mentions, negative_mentions = EXCLUDED.negative_mentions,
    followers = EXCLUDED.followers, follower_change = EXCLUDED.follower_change,
    api_spend_usd = EXCLUDED.api_spend_usd,
    cost_per_attributed_order_usd = EXCLUDED.cost_per_attributed_order_usd,
    computed_at = EXCLUDED.computed_at
"""


def rollup(runtime: Any, *, as_of: dt.datetime) -> dict[str, int]:
    """Snapshot metrics, attribute orders and recompute the changed daily KPIs.

    Snapshots are stamped with the time they were read, not the tick's: a late or
    redelivered tick reads today's figures, and must not file them under an earlier
    instant. The tick's `as_of` has done its work by then: an event too old to act
    on never gets here.
    """
    now = runtime.clock.now()
    connected = accounts.connected_brands(runtime.database.reads())
    totals = {"brands": 0, "snapshots": 0, "attributed": 0, "days": 0}
    for brand in connected:
        paused_until = brand["x_reads_paused_until"]
        if (
            paused_until is None or paused_until <= runtime.clock.now()
        ) and not accounts.over_budget_for_reads(runtime, brand, what="metrics"):
            totals["snapshots"] += metrics.snapshot_brand(runtime, brand, now)
        with runtime.database.transaction() as tx:
            totals["attributed"] += attribution.attribute_pending(
                tx,
                brand_id=brand["id"],
                window_days=runtime.settings.attribution_window_days,
            )
        totals["brands"] += 1

    # Today gets its row at every run, data or not, so a quiet day still shows.
    with runtime.database.transaction() as tx:
        tx.execute(
            MARK_TODAY, brand_ids=[str(brand["id"]) for brand in connected], now=now
        )
    recomputed = recompute_in_chunks(runtime.database, now=runtime.clock.now())
    totals.update(recomputed)
    return totals


def recompute_marked_days(
    tx: Any,
    *,
    now: dt.datetime,
    brand_id: str | None = None,
    chunk_days: int = CHUNK_DAYS,
) -> int:
    """Rewrite the daily KPI rows of every marked (brand, day) in `tx`; return rows.

    Statements stay bounded (`chunk_days` at most) but share `tx`: an order
    import's days commit with its orders. The hourly rollup uses
    `recompute_in_chunks`, which commits chunk by chunk and isolates a failing brand.

    Args:
        brand_id: take only this brand's marks (an order import's); None takes all.
    """
    _begin(tx)
    written = 0
    while True:
        taken, rows = recompute_chunk(
            tx, now=now, brand_id=brand_id, chunk_days=chunk_days
        )
        written += rows
        if not taken:
            return written


def recompute_in_chunks(
    database: Any,
    *,
    now: dt.datetime,
    chunk_days: int = CHUNK_DAYS,
    max_chunk_days: int = CHUNK_DAYS_MAX,
) -> dict[str, int]:
    """Rewrite every marked day, a chunk of days of every brand per transaction.

    The first chunk spans `chunk_days`; later ones are sized by `next_chunk_days`.
    A chunk that fails is rolled back, marks and all, and done again brand by brand;
    a brand that fails alone keeps its marks for the next run, is logged, and is
    left out of the later chunks, while every other brand is still rolled up.
    Returns rows written and brands that failed.
    """
    # Only what PostgreSQL refuses (a day's figure it cannot store, a zone it does
    # not know) is one brand's trouble; a lost connection or a bug raises, so the
    # platform retries the whole run.
    from pg8000.dbapi import DatabaseError

    failed: list[str] = []
    written = 0
    while True:
        taken: list[dict[str, Any]] = []
        started = time.monotonic()
        try:
            with database.transaction() as tx:
                _begin(tx)
                taken = _take_chunk(tx, chunk_days=chunk_days, skipped=failed)
                written += _rewrite(tx, taken, now=now)
        except DatabaseError as error:  # retried brand by brand below
            if not taken:
                raise
            log.warning(
                "KPI rollup chunk failed; doing it again brand by brand",
                extra=fields(first_day=str(taken[0]["day"]), error=repr(error)[:300]),
            )
        else:
            if not taken:
                return {"days": written, "failed_brands": len(failed)}
            chunk_days = next_chunk_days(
                chunk_days, time.monotonic() - started, most=max_chunk_days
            )
            continue
        for brand in sorted(
            {str(row["brand_id"]) for row in taken if row["brand_exists"]}
        ):
            try:
                with database.transaction() as tx:
                    _begin(tx)
                    own = _take_chunk(
                        tx,
                        chunk_days=chunk_days,
                        brand_id=brand,
                        from_day=taken[0]["day"],
                    )
                    written += _rewrite(tx, own, now=now)
            except DatabaseError as error:  # one brand must not stop all
                failed.append(brand)
                log.error(
                    "KPI rollup failed for a brand; its marked days wait for the "
                    "next run",
                    extra=fields(brand_id=brand, error=repr(error)[:300]),
                )


def next_chunk_days(days: int, seconds: float, *, most: int = CHUNK_DAYS_MAX) -> int:
    """Size the next chunk from the days and seconds the last one took."""
    if seconds > CHUNK_TARGET_S:
        return max(days // 2, 1)
    if seconds < CHUNK_TARGET_S / 2:
        return max(min(days * 2, most), 1)
    return days


def recompute_chunk(
    tx: Any,
    *,
    now: dt.datetime,
    brand_id: str | None = None,
    chunk_days: int = CHUNK_DAYS,
) -> tuple[int, int]:
    """Take the marks of one chunk of days and rewrite those days' rows.

    The caller holds LOCK_RECOMPUTE. Returns ((brand, day)s taken, rows written);
    none taken means no marks are left.
    """
    taken = _take_chunk(tx, chunk_days=chunk_days, brand_id=brand_id)
    return len(taken), _rewrite(tx, taken, now=now)


def _begin(tx: Any) -> None:
    tx.one(TAKE_TURN_AND_PLAN_THE_RECOMPUTE)


def _take_chunk(
    tx: Any,
    *,
    chunk_days: int,
    brand_id: str | None = None,
    skipped: Iterable[str] = (),
    from_day: dt.date | None = None,
) -> list[dict[str, Any]]:
    return tx.rows(
        TAKE_CHUNK_OF_MARKS,
        brand_id=None if brand_id is None else str(brand_id),
        skipped=list(skipped),
        from_day=from_day,
        chunk_days=chunk_days,
    )


def _rewrite(tx: Any, marked: list[dict[str, Any]], *, now: dt.datetime) -> int:
    """Upsert the rows of the marked (brand, day)s, one statement per day run."""
    by_day: dict[dt.date, list[str]] = {}
    for row in marked:
        if not row["brand_exists"]:
            continue
        by_day.setdefault(row["day"], []).append(str(row["brand_id"]))
    written = 0
    for first_day, last_day in day_runs(by_day):
        in_run = [
            (brand, day)
            for day in sorted(by_day)
            if first_day <= day <= last_day
            for brand in by_day[day]
        ]
        written += tx.execute(
            UPSERT_DAILY_KPIS,
            brand_ids=[brand for brand, _ in in_run],
            brands=sorted({brand for brand, _ in in_run}),
            days=[day for _, day in in_run],
            since=_utc_midnight(first_day) - ZONE_MARGIN,
            until=_utc_midnight(last_day + dt.timedelta(days=1)) + ZONE_MARGIN,
            now=now,
        )
    return written


def day_runs(days: Iterable[dt.date]) -> list[tuple[dt.date, dt.date]]:
    """Group days into (first, last) runs of consecutive days, in order."""
    runs: list[tuple[dt.date, dt.date]] = []
    for day in sorted(set(days)):
        if runs and runs[-1][1] + dt.timedelta(days=1) == day:
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def _utc_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
