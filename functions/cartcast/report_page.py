"""The KPI report as one HTML page, its charts drawn as inline SVG.

The page loads nothing: no script, font, image or stylesheet. Its one style block is
allowed by hash in a Content-Security-Policy sent as a header and repeated in a meta
tag, so a saved copy keeps the policy. Charts are SVG shapes computed here from the
rows and written by a Jinja2 template with autoescaping, since post texts and the
brand's name are user text. Each chart carries a <title> and a <desc> that say
what it shows in words; the table of days repeats the trend's figures.

Geometry uses floats (a pixel needs no cents); every figure a reader sees is
formatted from the Decimal or integer PostgreSQL returned.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import math
import re
import unicodedata
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import jinja2
import markupsafe

from cartcast import post_text, reports

TEMPLATES = Path(__file__).resolve().parent / "templates"
PAGE_TEMPLATE = "kpi_report.html"
STYLESHEET = TEMPLATES / "kpi_report.css"

# Chart frames, in SVG user units. 400 wide shows 12-13 unit text at about 11 px
# on a 375 px phone (less a margin) and at most 1.5 times larger on a desktop.
WIDTH = 400
TREND_HEIGHT = 170
PLOT_LEFT, PLOT_RIGHT, PLOT_TOP, PLOT_BOTTOM = 52, 10, 12, 28
BAR_ROW_HEIGHT = 46
# Room between a bar's end and its value, in SVG units.
BAR_VALUE_GAP = 6
LABEL_WEIGHT_MAX = 52
# The charts' text size (kpi_report.css) in SVG units. No font is measured here: a
# label's width is estimated per character, erring wide, so it never runs out of
# the chart whatever font the reader's system picks.
FONT_SIZE = 13
EM_NARROW, EM_PLAIN, EM_WIDE, EM_DOUBLE = 0.4, 0.62, 0.9, 1.3
NARROW_CHARACTERS = frozenset(" .,:;'|!ijlrtf()[]-")
WIDE_CHARACTERS = frozenset("mwMW@%&—_")
MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
SENTIMENT_LABELS = {
    "positive": "Positive",
    "neutral": "Neutral",
    "negative": "Negative",
    "unscored": "Not scored yet",
}
TREND_SERIES = (
    ("impressions", "Impressions", "line"),
    ("engagements", "Engagements", "line"),
    ("link_clicks", "Link clicks", "line"),
    ("revenue", "Attributed revenue", "bar"),
)
HTML_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_SPACES = re.compile(r"\s+")


def render(
    report: dict[str, Any],
    *,
    brand: dict[str, Any],
    first_day: dt.date,
    last_day: dt.date,
    generated_at: dt.datetime,
) -> str:
    """Return the report page for the rows `reports.kpi_report` gathered."""
    page = charts(
        report,
        brand=brand,
        first_day=first_day,
        last_day=last_day,
        generated_at=generated_at,
    )
    return _environment().get_template(PAGE_TEMPLATE).render(page)


def charts(
    report: dict[str, Any],
    *,
    brand: dict[str, Any],
    first_day: dt.date,
    last_day: dt.date,
    generated_at: dt.datetime,
) -> dict[str, Any]:
    """Return what the report's templates draw (the console's KPI page too)."""
    currency = brand["currency"].strip()
    days = report["days"]
    empty = not (days or report["posts"] or any(report["sentiment"].values()))
    page = {
        "brand_name": brand["name"],
        "time_zone": brand["time_zone"],
        "first_day": first_day.isoformat(),
        "last_day": last_day.isoformat(),
        "generated_at": generated_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "empty": empty,
        "csp": content_security_policy(in_page=True),
        "css": markupsafe.Markup(_stylesheet()),
    }
    if not empty:
        page |= {
            "totals": _totals(days, currency),
            "trend": [
                _trend_chart(name, title, kind, days, first_day, last_day, currency)
                for name, title, kind in TREND_SERIES
            ],
            "top_revenue": _bar_chart(
                "chart-top-revenue",
                "Top posts by attributed revenue",
                [
                    (post, post["revenue"], _money(post["revenue"], currency))
                    for post in report["top_by_revenue"]
                ],
            ),
            "top_engagement": _bar_chart(
                "chart-top-engagement",
                "Top posts by engagements",
                [
                    (post, post["engagements"], f"{post['engagements']:,}")
                    for post in report["top_by_engagement"]
                ],
            ),
            "sentiment": _sentiment_chart(report["sentiment"]),
            "rows": [_day_row(row, currency) for row in days],
        }
    return page


def headers() -> dict[str, str]:
    """Return the headers the page is served with, its policy among them."""
    return {**HTML_HEADERS, "Content-Security-Policy": content_security_policy()}


@functools.cache
def content_security_policy(*, in_page: bool = False) -> str:
    """Allow nothing but the page's own style block, named by its SHA-256.

    A meta tag cannot carry frame-ancestors (browsers ignore it there and log an
    error), so the copy in the page leaves it to the header.
    """
    digest = hashlib.sha256(_stylesheet().encode("utf-8")).digest()
    style = base64.b64encode(digest).decode("ascii")
    policy = (
        f"default-src 'none'; style-src 'sha256-{style}'; "
        "base-uri 'none'; form-action 'none'"
    )
    return policy if in_page else policy + "; frame-ancestors 'none'"


@functools.cache
def _stylesheet() -> str:
    return STYLESHEET.read_text(encoding="utf-8")


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _totals(days: list[dict[str, Any]], currency: str) -> list[tuple[str, str]]:
    def total(name: str) -> Any:
        return sum((row[name] for row in days), start=0)

    store = reports.daily_totals(days)
    return [
        ("Posts published", f"{total('posts_published'):,}"),
        ("Replies published", _count_if_known(days, "replies_published")),
        ("Reply impressions", _count_if_known(days, "reply_impressions")),
        ("Reply engagements", _count_if_known(days, "reply_engagements")),
        ("Impressions", f"{total('impressions'):,}"),
        ("Engagements", f"{total('engagements'):,}"),
        ("Link clicks", f"{total('link_clicks'):,}"),
        ("Attributed orders", f"{store['attributed_orders']:,}"),
        ("Attributed revenue", _money(store["revenue"], currency)),
        ("Orders not attributed", f"{store['unattributed_orders']:,}"),
        ("Revenue not attributed", _money(store["unattributed_revenue"], currency)),
        ("Store revenue", _money(store["store_revenue"], currency)),
        ("Revenue share attributed", _percent(store["attributed_revenue_share"])),
    ]


def _day_row(row: dict[str, Any], currency: str) -> dict[str, str]:
    return {
        "day": row["day"].isoformat(),
        "posts": f"{row['posts_published']:,}",
        "impressions": f"{row['impressions']:,}",
        "engagements": f"{row['engagements']:,}",
        "engagement_rate": _percent(row["engagement_rate"]),
        "link_clicks": f"{row['link_clicks']:,}",
        "orders": f"{row['attributed_orders']:,}",
        "revenue": _money(row["revenue"], currency),
        "conversion_rate": _percent(row["conversion_rate"]),
        "unattributed_revenue": _money(row["unattributed_revenue"], currency),
        "share": _percent(row["attributed_revenue_share"]),
    }


def _trend_chart(
    name: str,
    title: str,
    kind: str,
    days: list[dict[str, Any]],
    first_day: dt.date,
    last_day: dt.date,
    currency: str,
) -> dict[str, Any]:
    """Lay out one figure per local day of the range: a line, or bars for money."""
    count = (last_day - first_day).days + 1
    values = {row["day"]: row[name] for row in days}
    top = _nice_ceiling(max((float(v) for v in values.values()), default=0))
    plot_width = WIDTH - PLOT_LEFT - PLOT_RIGHT
    plot_height = TREND_HEIGHT - PLOT_TOP - PLOT_BOTTOM
    band = plot_width / count

    def x_of(day: dt.date) -> float:
        return PLOT_LEFT + band * ((day - first_day).days + 0.5)

    def y_of(value: Any) -> float:
        return PLOT_TOP + plot_height * (1 - float(value) / top)

    def spell(value: Any) -> str:
        return _money(value, currency) if name == "revenue" else f"{value:,}"

    points = [
        {"x": x_of(day), "y": y_of(v), "label": f"{_short_day(day)}: {spell(v)}"}
        for day, v in sorted(values.items())
    ]
    bars = [
        {
            "x": x_of(day) - max(band * 0.7, 0.5) / 2,
            "y": y_of(value),
            "width": max(band * 0.7, 0.5),
            "height": PLOT_TOP + plot_height - y_of(value),
            "label": f"{_short_day(day)}: {spell(value)}",
        }
        for day, value in sorted(values.items())
    ]
    return {
        "id": f"chart-{name.replace('_', '-')}",
        "kind": kind,
        "series": name,
        "title": f"{title} per day",
        "desc": _trend_description(title, values, spell, count),
        "width": WIDTH,
        "height": TREND_HEIGHT,
        "path": _line_path(points, values) if kind == "line" else "",
        "points": points if kind == "line" else [],
        "bars": bars if kind == "bar" else [],
        "y_ticks": [
            {"y": y_of(top * share), "label": _compact(top * share)}
            for share in _tick_shares(top, counts=name != "revenue")
        ],
        "x_ticks": [
            {"x": x_of(day), "label": _short_day(day), "anchor": anchor}
            for day, anchor in _x_tick_days(first_day, last_day)
        ],
        "plot": {
            "left": PLOT_LEFT,
            "right": WIDTH - PLOT_RIGHT,
            "bottom": PLOT_TOP + plot_height,
        },
    }


def _line_path(points: list[dict[str, Any]], values: dict[dt.date, Any]) -> str:
    """Join the points of consecutive days; a day without figures breaks the line."""
    parts, previous = [], None
    for day, point in zip(sorted(values), points, strict=True):
        joined = previous is not None and (day - previous).days == 1
        parts.append(f"{'L' if joined else 'M'}{point['x']:.1f} {point['y']:.1f}")
        previous = day
    return " ".join(parts)


def _trend_description(
    title: str, values: dict[dt.date, Any], spell: Any, count: int
) -> str:
    if not values:
        return f"{title}: no figures for these days."
    best_day = max(sorted(values), key=lambda day: values[day])
    total = sum(values.values(), start=0)
    missing = count - len(values)
    text = (
        f"{title} over {len(values)} days: {spell(total)} in total, the most "
        f"({spell(values[best_day])}) on {best_day.isoformat()}."
    )
    if missing:
        text += f" {missing} days of the range have no figures yet."
    return text


def _bar_chart(
    chart_id: str, title: str, items: list[tuple[dict[str, Any], Any, str]]
) -> dict[str, Any]:
    """Lay out one labelled horizontal bar per post, longest for the largest value.

    The bars leave room on their right for the widest value, so every value is
    written past its bar's end. Only a value wider than half the chart (never a
    realistic figure) is written inside its bar, or against the chart's edge.
    """
    top = max((float(value) for _, value, _ in items), default=0) or 1
    value_room = max((_text_width(spelled) for _, _, spelled in items), default=0)
    room = WIDTH - min(value_room + BAR_VALUE_GAP + 2, WIDTH / 2)
    rows = []
    for rank, (post, value, spelled) in enumerate(items):
        y = 8 + rank * BAR_ROW_HEIGHT
        length = max(room * float(value) / top, 1)
        rows.append(
            {
                "label": _post_label(post),
                "label_y": y + 12,
                "bar_y": y + 19,
                "length": length,
                "value": spelled,
                **_value_place(length, _text_width(spelled)),
            }
        )
    spoken = "; ".join(f"{row['label']}: {row['value']}" for row in rows)
    return {
        "id": chart_id,
        "title": title,
        "desc": f"{title}, highest first. {spoken}." if rows else "",
        "width": WIDTH,
        "height": 8 + BAR_ROW_HEIGHT * len(rows),
        "rows": rows,
    }


def _value_place(length: float, width: float) -> dict[str, Any]:
    """Place a bar's value past its end, else inside it, else at the chart's edge."""
    if length + BAR_VALUE_GAP + width <= WIDTH:
        return {"value_x": length + BAR_VALUE_GAP, "value_inside": False}
    if width + 2 * BAR_VALUE_GAP <= length:
        return {"value_x": length - BAR_VALUE_GAP - width, "value_inside": True}
    return {"value_x": max(WIDTH - width, 0), "value_inside": False}


def _text_width(text: str, size: float = FONT_SIZE) -> float:
    """Estimate how wide `text` is drawn, in SVG units, erring wide.

    Marks that join or modify the character before them (combining accents, the
    zero-width joiner, variation selectors, skin tones) add nothing; emoji and CJK
    count about 1.3 em, capitals and wide letters 0.9, thin ones 0.4, others 0.62.
    """
    ems = 0.0
    for char in text:
        category = unicodedata.category(char)
        if category in ("Mn", "Me", "Cf") or 0x1F3FB <= ord(char) <= 0x1F3FF:
            continue
        if (
            unicodedata.east_asian_width(char) in ("W", "F")
            or category == "So"
            or ord(char) >= 0x1F000
        ):
            ems += EM_DOUBLE
        elif char in WIDE_CHARACTERS or char.isupper():
            ems += EM_WIDE
        elif char in NARROW_CHARACTERS:
            ems += EM_NARROW
        else:
            ems += EM_PLAIN
    return ems * size


def _sentiment_chart(counted: dict[str, int]) -> dict[str, Any]:
    """Lay out one bar split by sentiment, and a legend with counts and shares."""
    total = sum(counted.values())
    segments, x = [], 0.0
    for name, label in SENTIMENT_LABELS.items():
        share = Decimal(counted[name]) / total if total else Decimal(0)
        width = float(share) * WIDTH
        percent = (share * 100).quantize(Decimal("1"), ROUND_HALF_UP)
        segments.append(
            {
                "name": name,
                "x": x,
                "width": width,
                "legend": f"{label}: {counted[name]:,} ({percent} %)",
            }
        )
        x += width
    for index, segment in enumerate(segments):
        segment["legend_x"] = 0 if index % 2 == 0 else WIDTH / 2
        segment["legend_y"] = 52 + (index // 2) * 22
    return {
        "id": "chart-sentiment",
        "title": "Sentiment of mentions",
        "desc": (
            f"{total:,} mentions posted these days. "
            + "; ".join(segment["legend"] for segment in segments)
            + "."
        ),
        "width": WIDTH,
        "height": 52 + 2 * 22,
        "total": total,
        "segments": segments,
    }


def _post_label(post: dict[str, Any]) -> str:
    """Return the start of a post's text on one line, or say it has none."""
    text = _SPACES.sub(" ", post["text"] or "").strip()
    if not text:
        return "(text removed)"

    # Shorten by X's weight (whole words, whole emoji), then further until the
    # estimated width fits the chart: "W" and emoji are wider than "i".
    for weight in range(LABEL_WEIGHT_MAX, 0, -1):
        label = post_text.shorten(text, weight)
        if _text_width(label) <= WIDTH:
            return label
    return "…"


def _x_tick_days(first_day: dt.date, last_day: dt.date) -> list[tuple[dt.date, str]]:
    if first_day == last_day:
        return [(first_day, "middle")]
    ticks = [(first_day, "start"), (last_day, "end")]
    span = (last_day - first_day).days
    if span >= 4:
        ticks.insert(1, (first_day + dt.timedelta(days=span // 2), "middle"))
    return ticks


def _tick_shares(top: float, *, counts: bool) -> tuple[float, ...]:
    """Return where the y ticks go, as shares of the axis' top.

    A count axis gets no half-way tick that would read 0.5 or 2.5 impressions.
    """
    if counts and not (top / 2).is_integer():
        return (0, 1)
    return (0, 0.5, 1)


def _nice_ceiling(value: float) -> float:
    """Return the smallest 1, 2, 2.5 or 5 times a power of ten at or above value."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power


def _compact(value: float) -> str:
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}"


def _short_day(day: dt.date) -> str:
    return f"{MONTHS[day.month - 1]} {day.day}"


def _money(value: Any, currency: str) -> str:
    return f"{Decimal(value):,.2f} {currency}"


def _count_if_known(days: list[dict[str, Any]], name: str) -> str:
    # A row computed before migration 042 has no replies count, and one before 045
    # no reply metrics (its posts' figures held them): a total over such a row
    # would read as less than the replies had.
    if any(row[name] is None for row in days):
        return "–"
    return f"{sum(row[name] for row in days):,}"


def _percent(rate: Decimal | None) -> str:
    return "–" if rate is None else f"{rate * 100:.2f} %"
