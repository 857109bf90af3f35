"""Reports read back what the rollup wrote: KPIs per day, revenue per post, mentions.

Each report is a list of rows, answered as JSON, as CSV (text cells a spreadsheet
would run as a formula are escaped) or, for the KPI report, as an HTML page with
charts drawn by report_charts.py. Money and rates stay Decimal from PostgreSQL to
the last character written: no float ever holds a figure a reader sees.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import uuid
import zoneinfo
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from cartcast import page_cursors
from cartcast.db import Transaction

# The one list of daily_kpis columns a report shows, in order. The query reads the
# whole row, so a column the rollup adds reaches every format by a line here. The
# store's own figures (STORE_COLUMNS) are read live from the orders table.
DAILY_COLUMNS = (
    "day",
    "posts_published",
    "replies_published",
    "reply_impressions",
    "reply_engagements",
    "impressions",
    "engagements",
    "engagement_rate",
    "link_clicks",
    "click_through_rate",
    "attributed_orders",
    "revenue",
    "conversion_rate",
    "unattributed_orders",
    "unattributed_revenue",
    "store_orders",
    "store_revenue",
    "attributed_revenue_share",
    "mentions",
    "negative_mentions",
    "followers",
    "follower_change",
    "api_spend_usd",
    "cost_per_attributed_order_usd",
    "computed_at",
)
POST_COLUMNS = (
    "id",
    "text",
    "published_at",
    "x_post_id",
    "engine",
    "impressions",
    "engagements",
    "link_clicks",
    "orders",
    "revenue",
)
STORE_COLUMNS = (
    "unattributed_revenue",
    "store_orders",
    "store_revenue",
    "attributed_revenue_share",
)
# Rates are written with the rollup's five decimals ("0.08667"). Money is written
# with a fixed number of decimals whatever PostgreSQL returns: daily_kpis stores an
# unconstrained numeric, so a day without sales comes back "0" beside "25.00". The
# store's currency gets cents; API spend in USD the ledger's four places ($0.015).
RATE_PLACES = Decimal("0.00001")
MONEY_PLACES = {
    "revenue": Decimal("0.01"),
    "unattributed_revenue": Decimal("0.01"),
    "store_revenue": Decimal("0.01"),
    "total_price": Decimal("0.01"),
    "api_spend_usd": Decimal("0.0001"),
    "cost_per_attributed_order_usd": Decimal("0.0001"),
}
MENTION_COLUMNS = ("sentiment", "intent", "mentions", "escalated")
ORDER_COLUMNS = (
    "order_id",
    "ordered_at",
    "currency",
    "total_price",
    "post_id",
    "referring_site",
)
SENTIMENTS = ("positive", "neutral", "negative", "unscored")
# A cell starting with one of these is read as a formula by Excel, LibreOffice or
# Google Sheets (OWASP, "CSV Injection"): a leading single quote makes it text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# More orders than this in one report is refused rather than built in memory: an
# HTTP function's answer is capped at 32 MB.
ORDER_ROWS_MAX = 50_000
# A post's revenue as a page token holds it: a sum of numeric(12, 2) prices.
REVENUE_TEXT = re.compile(r"[0-9]{1,30}(\.[0-9]{1,2})?")

SELECT_DAILY = """
SELECT * FROM daily_kpis
WHERE brand_id = :brand_id AND day BETWEEN :first_day AND :last_day
ORDER BY day
"""
# Every order of the range's local days, credited to a post or not, as the rollup
# puts orders on days: the store's revenue beside what the posts brought in.
SELECT_STORE_DAYS = """
SELECT CAST(ordered_at AT TIME ZONE :tz AS date) AS day,
    COUNT(*) AS store_orders,
    SUM(total_price) AS store_revenue,
    COALESCE(SUM(total_price) FILTER (WHERE post_id IS NULL), 0)
        AS unattributed_revenue
FROM orders
WHERE brand_id = :brand_id
    AND CAST(ordered_at AT TIME ZONE :tz AS date) BETWEEN :first_day AND :last_day
GROUP BY 1
"""
# The post reports list the brand's own posts with their figures to date: the
# latest snapshot's engagements and every order attributed to them so far. A reply
# to a mention (in_reply_to set) answers a customer, and is counted apart as the
# rollup counts it. Each report picks its rows from these with a WHERE of its own.
SELECT_POST_FIGURES = """
SELECT * FROM (
    SELECT p.id, p.text, p.published_at, p.x_post_id, p.engine,
        COALESCE(m.impressions, 0) AS impressions,
        COALESCE(m.engagements, 0) AS engagements,
        COALESCE(m.link_clicks, 0) AS link_clicks,
        COUNT(o.id) AS orders,
        COALESCE(SUM(o.total_price), 0) AS revenue
    FROM posts p
    LEFT JOIN LATERAL (
        SELECT s.impressions,
            s.likes + s.reposts + s.replies + s.quotes + s.bookmarks AS engagements,
            s.link_clicks
        FROM metric_snapshots s WHERE s.post_id = p.id
        ORDER BY s.captured_at DESC LIMIT 1
    ) m ON true
    LEFT JOIN orders o ON o.post_id = p.id
    WHERE p.brand_id = :brand_id AND p.state = 'published' AND p.in_reply_to IS NULL
    GROUP BY p.id, m.impressions, m.engagements, m.link_clicks
) post_figures
"""
# The ranking pages on (revenue, time published, id): revenue is summed before it
# can be compared, so the page's rows are the ranked rows past the last one read.
# A post with no time published (none is written so) ranks last, as ASC puts NULL
# last. A post's revenue growing while a reader pages moves it up the ranking: it
# may be listed twice or skipped, never out of order.
SELECT_POST_REVENUE = (
    SELECT_POST_FIGURES
    + """
WHERE CAST(:after_revenue AS numeric) IS NULL
   OR revenue < :after_revenue
   OR (revenue = :after_revenue
       AND (COALESCE(published_at, 'infinity'), id)
           > (CAST(:after_published AS timestamptz), CAST(:after_id AS uuid)))
ORDER BY revenue DESC, COALESCE(published_at, 'infinity'), id
LIMIT :limit
"""
)
# Posts published on the range's local days, with their figures to date.
SELECT_POSTS_PUBLISHED_IN_RANGE = (
    SELECT_POST_FIGURES
    + """
WHERE CAST(published_at AT TIME ZONE :tz AS date) BETWEEN :first_day AND :last_day
ORDER BY published_at, id
"""
)
SELECT_MENTION_SUMMARY = """
SELECT COALESCE(sentiment, 'unscored') AS sentiment,
    COALESCE(intent, 'unscored') AS intent,
    COUNT(*) AS mentions, COUNT(*) FILTER (WHERE escalate) AS escalated
FROM mentions WHERE brand_id = :brand_id
GROUP BY 1, 2 ORDER BY 1, 2
"""
# Mentions are put on the local day they were posted, as the rollup counts them.
SELECT_SENTIMENT_MIX = """
SELECT COALESCE(sentiment, 'unscored') AS sentiment, COUNT(*) AS mentions
FROM mentions
WHERE brand_id = :brand_id
    AND CAST(posted_at AT TIME ZONE :tz AS date) BETWEEN :first_day AND :last_day
GROUP BY 1
"""
SELECT_ORDERS = """
SELECT external_id AS order_id, ordered_at, currency, total_price, post_id,
    referring_site
FROM orders
WHERE brand_id = :brand_id
    AND CAST(ordered_at AT TIME ZONE :tz AS date) BETWEEN :first_day AND :last_day
ORDER BY ordered_at, external_id
LIMIT :limit
"""


class TooManyRows(Exception):
    """A report would hold more rows than it may answer at once."""


def daily(
    tx: Transaction,
    *,
    brand_id: str,
    time_zone: str,
    first_day: dt.date,
    last_day: dt.date,
) -> list[dict[str, Any]]:
    """Return the rollup's rows for the brand-local days first_day..last_day, each
    with the store's orders and revenue of that day beside the attributed ones."""
    rows = tx.rows(
        SELECT_DAILY, brand_id=brand_id, first_day=first_day, last_day=last_day
    )
    store = {
        row["day"]: row
        for row in tx.rows(
            SELECT_STORE_DAYS,
            brand_id=brand_id,
            tz=time_zone,
            first_day=first_day,
            last_day=last_day,
        )
    }

    days = []
    for row in rows:
        sales = store.get(row["day"], {})
        day = {name: row[name] for name in DAILY_COLUMNS if name not in STORE_COLUMNS}
        day |= store_figures(
            store_orders=sales.get("store_orders", 0),
            store_revenue=sales.get("store_revenue", Decimal("0.00")),
            unattributed_revenue=sales.get("unattributed_revenue", Decimal("0.00")),
        )
        days.append(with_money_places({name: day[name] for name in DAILY_COLUMNS}))
    return days


def with_money_places(row: dict[str, Any]) -> dict[str, Any]:
    """Return the row with every money figure written to its fixed decimals."""
    return {
        name: (
            value.quantize(MONEY_PLACES[name], rounding=ROUND_HALF_UP)
            if name in MONEY_PLACES and isinstance(value, Decimal)
            else value
        )
        for name, value in row.items()
    }


def store_figures(
    *, store_orders: int, store_revenue: Decimal, unattributed_revenue: Decimal
) -> dict[str, Any]:
    """Spell the store's figures and the share of its revenue credited to posts
    (None when the store sold nothing: no share of nothing)."""
    share = None
    if store_revenue > 0:
        credited = store_revenue - unattributed_revenue
        share = (credited / store_revenue).quantize(RATE_PLACES, ROUND_HALF_UP)
    return {
        "unattributed_revenue": unattributed_revenue,
        "store_orders": store_orders,
        "store_revenue": store_revenue,
        "attributed_revenue_share": share,
    }


def daily_totals(days: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum the range's days: attributed and unattributed orders and revenue."""

    def total(name: str) -> Any:
        return sum((row[name] for row in days), start=Decimal("0.00"))

    return {
        "attributed_orders": int(total("attributed_orders")),
        "revenue": total("revenue"),
        "unattributed_orders": int(total("unattributed_orders")),
        **store_figures(
            store_orders=int(total("store_orders")),
            store_revenue=total("store_revenue"),
            unattributed_revenue=total("unattributed_revenue"),
        ),
    }


def post_revenue(
    tx: Transaction, *, brand_id: str, limit: int, after: str | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """Return one page of the brand's published posts, highest revenue first, and
    the `next` token; `after` is the `next` of a previous page (400 if not)."""
    after_revenue, after_published, after_id = page_cursors.place_after(
        after, "post_report", _post_place, (None, None, None)
    )
    rows = tx.rows(
        SELECT_POST_REVENUE,
        brand_id=brand_id,
        after_revenue=after_revenue,
        after_published=after_published,
        after_id=after_id,
        limit=limit + 1,
    )

    page, next_token = page_cursors.next_page(rows, limit, "post_report", _post_key)
    return [with_money_places(row) for row in page], next_token


def _post_key(row: dict[str, Any]) -> list[Any]:
    published = row["published_at"]
    return [
        str(row["revenue"]),
        "infinity" if published is None else published.isoformat(),
        str(row["id"]),
    ]


def _post_place(key: list[Any]) -> tuple[Decimal, Any, str]:
    revenue, published, post_id = key
    # A sum of numeric(12, 2) prices; a longer figure would overflow the cast.
    if not isinstance(revenue, str) or not REVENUE_TEXT.fullmatch(revenue):
        raise ValueError(revenue)
    if published != "infinity":
        published = page_cursors.instant(published)
    return Decimal(revenue), published, page_cursors.uuid_text(post_id)


def mention_summary(tx: Transaction, *, brand_id: str) -> list[dict[str, Any]]:
    return tx.rows(SELECT_MENTION_SUMMARY, brand_id=brand_id)


def orders(
    tx: Transaction,
    *,
    brand_id: str,
    time_zone: str,
    first_day: dt.date,
    last_day: dt.date,
) -> list[dict[str, Any]]:
    """Return the orders placed on the range's local days, attributed or not,
    each `ordered_at` in the brand's zone with its UTC offset.

    Raises:
        TooManyRows: the range holds more than ORDER_ROWS_MAX orders.
    """
    rows = tx.rows(
        SELECT_ORDERS,
        brand_id=brand_id,
        tz=time_zone,
        first_day=first_day,
        last_day=last_day,
        limit=ORDER_ROWS_MAX + 1,
    )
    if len(rows) > ORDER_ROWS_MAX:
        raise TooManyRows(f"more than {ORDER_ROWS_MAX} orders")

    # Times in the brand's zone, with their offset, as the days are counted.
    zone = zoneinfo.ZoneInfo(time_zone)
    return [
        with_money_places(row) | {"ordered_at": row["ordered_at"].astimezone(zone)}
        for row in rows
    ]


def kpi_report(
    tx: Transaction,
    *,
    brand: dict[str, Any],
    first_day: dt.date,
    last_day: dt.date,
    top: int = 5,
) -> dict[str, Any]:
    """Gather what the HTML report shows: days, top posts and the sentiment mix."""
    range_of_days = {
        "brand_id": str(brand["id"]),
        "first_day": first_day,
        "last_day": last_day,
    }
    days = daily(tx, time_zone=brand["time_zone"], **range_of_days)
    posts = tx.rows(
        SELECT_POSTS_PUBLISHED_IN_RANGE, tz=brand["time_zone"], **range_of_days
    )
    counted = {
        row["sentiment"]: row["mentions"]
        for row in tx.rows(SELECT_SENTIMENT_MIX, tz=brand["time_zone"], **range_of_days)
    }

    # Ties keep the earlier post first; posts with nothing to show are left out.
    by_revenue = sorted(posts, key=lambda post: post["revenue"], reverse=True)
    by_engagement = sorted(posts, key=lambda post: post["engagements"], reverse=True)
    return {
        "days": days,
        "posts": posts,
        "top_by_revenue": [post for post in by_revenue if post["revenue"] > 0][:top],
        "top_by_engagement": [
            post for post in by_engagement if post["engagements"] > 0
        ][:top],
        "sentiment": {name: counted.get(name, 0) for name in SENTIMENTS},
    }


def to_csv(columns: tuple[str, ...], rows: list[dict[str, Any]]) -> str:
    """Write rows as RFC 4180 CSV with a header, every text cell formula-escaped."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([csv_cell(row.get(name)) for name in columns])
    return out.getvalue()


def csv_cell(value: Any) -> str:
    """Spell one value as a CSV cell: numbers exactly, text made safe to open.

    Only text is escaped: a number such as a negative follower change must stay a
    number in the spreadsheet, and a number cannot carry a formula.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        # "f" never switches to exponent notation ("0E-5"), which str() may.
        return format(value, "f")
    if isinstance(value, (int, uuid.UUID)):
        return str(value)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return escape_formula(str(value))


def escape_formula(text: str) -> str:
    """Prefix text a spreadsheet would evaluate with a single quote."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text
