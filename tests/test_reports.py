"""KPI reports as JSON, CSV and an HTML page, against a small fixture of three days.

The fixture writes the rollup's rows by hand, so every figure here is one a test
chose: the reports read what the rollup wrote and must change none of it.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from decimal import Decimal

import markupsafe
import pytest

from cartcast import report_page, reports
from tests.conftest import OPERATOR_KEY, make_app
from tests.helpers import auth, brand_body, post_json

UTC = dt.UTC
FIRST, LAST = "2026-03-01", "2026-03-03"
RANGE = {"from": FIRST, "to": LAST}
FORMULA = '=CMD|" /C calc"!A0 Spring sale'
SCRIPT = "<script>alert(1)</script> Mugs & more"
DAYS = [
    # day, posts, impressions, engagements, clicks, orders, revenue, rate, followers
    ("2026-03-01", 1, 1000, 40, 12, 2, "25.00", "0.04000", 1200),
    ("2026-03-02", 1, 1500, 130, 30, 1, "100.10", "0.08667", None),
    ("2026-03-03", 1, 250, 5, 1, 0, "0.00", "0.02000", 1210),
]


@pytest.fixture
def client(function_env):
    return make_app("api", "http").test_client()


@pytest.fixture
def brand(client) -> dict:
    response = post_json(client, "/v1/brands", brand_body(), OPERATOR_KEY)
    created = response.get_json()
    return {"id": created["brand"]["id"], "key": created["api_key"]}


@pytest.fixture
def fixture(brand) -> dict:
    """Three days of KPIs, three posts, four orders and four mentions."""
    from cartcast import runtime as runtime_module

    posted = dt.datetime(2026, 3, 1, 15, 0, tzinfo=UTC)
    with runtime_module.current().database.transaction() as tx:
        for row in DAYS:
            add_day(tx, brand["id"], *row, computed_at=posted)
        formula = add_post(tx, brand["id"], FORMULA, posted, impressions=1000, likes=40)
        script = add_post(
            tx, brand["id"], SCRIPT, posted + dt.timedelta(days=1), 500, likes=90
        )
        add_post(tx, brand["id"], "A quiet post", posted + dt.timedelta(days=2))
        for external_id, total, post_id in (
            ("@SUM(1+1)", "19.99", formula),
            ("-2+3", "5.01", formula),
            ("1001", "100.10", script),
            ("1002", "7.50", None),
        ):
            add_order(tx, brand["id"], external_id, Decimal(total), post_id, posted)
        for number, sentiment in enumerate(["positive", "positive", "negative", None]):
            add_mention(tx, brand["id"], number, sentiment, posted + dt.timedelta(1))
    return {"formula_post": formula, "script_post": script, **brand}


def add_day(
    tx,
    brand_id,
    day,
    posts,
    impressions,
    engagements,
    clicks,
    orders,
    revenue,
    rate,
    followers,
    *,
    computed_at,
) -> None:
    tx.execute(
        "INSERT INTO daily_kpis (brand_id, day, posts_published, impressions, "
        "engagements, engagement_rate, link_clicks, click_through_rate, "
        "attributed_orders, revenue, conversion_rate, unattributed_orders, "
        "mentions, negative_mentions, followers, api_spend_usd, computed_at) "
        "VALUES (:brand_id, :day, :posts, :impressions, :engagements, :rate, "
        ":clicks, NULL, :orders, :revenue, NULL, 1, 0, 0, :followers, "
        "0.0150, :computed_at)",
        brand_id=brand_id,
        day=dt.date.fromisoformat(day),
        posts=posts,
        impressions=impressions,
        engagements=engagements,
        rate=Decimal(rate),
        clicks=clicks,
        orders=orders,
        revenue=Decimal(revenue),
        followers=followers,
        computed_at=computed_at,
    )


def add_mention(tx, brand_id, number, sentiment, posted_at) -> None:
    tx.execute(
        "INSERT INTO mentions (brand_id, x_post_id, author_id, text, posted_at, "
        "received_at, sentiment) "
        "VALUES (:brand_id, :x_post_id, '42', 'hi', :at, :at, :sentiment)",
        brand_id=brand_id,
        x_post_id=str(1900000000000000000 + number),
        at=posted_at,
        sentiment=sentiment,
    )


def add_post(
    tx,
    brand_id: str,
    text: str,
    at: dt.datetime,
    impressions=None,
    likes=0,
    in_reply_to: str | None = None,
) -> str:
    post_id = str(uuid.uuid4())
    tx.execute(
        "INSERT INTO posts (id, brand_id, text, state, engine, weighted_length, "
        "published_at, x_post_id, in_reply_to, reply_conversation_id, created_by, "
        "created_at, updated_at) "
        "VALUES (:id, :brand_id, :text, 'published', 'manual', 40, :at, :x_post_id, "
        ":in_reply_to, :in_reply_to, 'test', :at, :at)",
        id=post_id,
        brand_id=brand_id,
        text=text,
        at=at,
        x_post_id=str(1800000000000000000 + int(at.timestamp())),
        in_reply_to=in_reply_to,
    )
    if impressions is not None:
        tx.execute(
            "INSERT INTO metric_snapshots (post_id, captured_at, impressions, likes, "
            "reposts, replies, quotes, bookmarks, link_clicks) "
            "VALUES (:post_id, :at, :impressions, :likes, 0, 0, 0, 0, 3)",
            post_id=post_id,
            at=at + dt.timedelta(hours=6),
            impressions=impressions,
            likes=likes,
        )
    return post_id


def add_order(tx, brand_id, external_id, total, post_id, at) -> None:
    tx.execute(
        "INSERT INTO orders (brand_id, external_id, ordered_at, currency, total_price, "
        "post_id, received_at) "
        "VALUES (:brand_id, :external_id, :at, 'USD', :total, :post_id, :at)",
        brand_id=brand_id,
        external_id=external_id,
        at=at + dt.timedelta(hours=8),
        total=total,
        post_id=post_id,
    )


def get(client, path: str, key: str, **query):
    return client.get(path, query_string=query, headers=auth(key))


def read_csv(response) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


# JSON and CSV


def test_the_daily_report_answers_the_days_as_json_with_exact_decimals(
    client, fixture
) -> None:
    response = get(client, "/v1/reports/daily", fixture["key"], **RANGE)

    answer = response.get_json()
    assert response.status_code == 200
    assert (answer["from"], answer["to"]) == (FIRST, LAST)
    assert [day["revenue"] for day in answer["days"]] == ["25.00", "100.10", "0.00"]
    assert answer["days"][1]["engagement_rate"] == "0.08667"
    assert answer["days"][0]["api_spend_usd"] == "0.0150"


def test_the_daily_report_as_csv_has_a_header_and_the_exact_figures(
    client, fixture
) -> None:
    response = get(client, "/v1/reports/daily", fixture["key"], format="csv", **RANGE)

    rows = read_csv(response)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response.headers["Content-Disposition"]
    assert response.get_data(as_text=True).splitlines()[0] == ",".join(
        reports.DAILY_COLUMNS
    )
    assert [row["day"] for row in rows] == [day[0] for day in DAYS]
    assert [row["revenue"] for row in rows] == ["25.00", "100.10", "0.00"]
    assert rows[1]["engagement_rate"] == "0.08667"
    assert rows[0]["api_spend_usd"] == "0.0150"
    # A missing value is an empty cell, not "None".
    assert rows[1]["followers"] == "" and rows[0]["followers"] == "1200"


def test_the_daily_report_shows_the_revenue_no_post_was_credited_with_in_every_format(
    client, fixture
) -> None:
    # Four orders on March 1st in New York: 125.10 credited to posts, 7.50 not.
    answer = get(client, "/v1/reports/daily", fixture["key"], **RANGE).get_json()
    rows = read_csv(
        get(client, "/v1/reports/daily", fixture["key"], format="csv", **RANGE)
    )
    page = get(
        client, "/v1/reports/daily", fixture["key"], format="html", **RANGE
    ).get_data(as_text=True)

    first = answer["days"][0]
    assert (first["store_orders"], first["store_revenue"]) == (4, "132.60")
    assert first["unattributed_revenue"] == "7.50"
    assert first["attributed_revenue_share"] == "0.94344"
    assert answer["days"][1]["unattributed_revenue"] == "0.00"
    assert answer["days"][1]["attributed_revenue_share"] is None
    assert answer["totals"]["unattributed_revenue"] == "7.50"
    assert answer["totals"]["store_revenue"] == "132.60"
    assert answer["totals"]["attributed_revenue_share"] == "0.94344"
    assert [row["unattributed_revenue"] for row in rows] == ["7.50", "0.00", "0.00"]
    assert rows[0]["store_revenue"] == "132.60"
    assert "<dt>Revenue not attributed</dt><dd>7.50 USD</dd>" in page
    assert "<dt>Revenue share attributed</dt><dd>94.34 %</dd>" in page
    assert "<td>7.50 USD</td>" in page


def test_the_page_totals_replies_apart_and_only_when_every_day_counted_them(
    client, fixture
) -> None:
    # The fixture's rows were written without replies' figures, as the rollup
    # wrote them before migrations 042 and 045: their posts counted the replies too.
    from cartcast import runtime as runtime_module

    before = get(
        client, "/v1/reports/daily", fixture["key"], format="html", **RANGE
    ).get_data(as_text=True)
    with runtime_module.current().database.transaction() as tx:
        tx.execute(
            "UPDATE daily_kpis SET replies_published = 2, reply_impressions = 40, "
            "reply_engagements = 3 WHERE brand_id = :brand_id",
            brand_id=fixture["id"],
        )
    after = get(client, "/v1/reports/daily", fixture["key"], **RANGE).get_json()
    page = get(
        client, "/v1/reports/daily", fixture["key"], format="html", **RANGE
    ).get_data(as_text=True)

    assert "<dt>Replies published</dt><dd>–</dd>" in before
    assert "<dt>Reply impressions</dt><dd>–</dd>" in before
    assert [day["replies_published"] for day in after["days"]] == [2, 2, 2]
    assert [day["reply_impressions"] for day in after["days"]] == [40, 40, 40]
    assert "<dt>Replies published</dt><dd>6</dd>" in page
    assert "<dt>Reply impressions</dt><dd>120</dd>" in page
    assert "<dt>Reply engagements</dt><dd>9</dd>" in page


def test_money_has_two_decimals_in_every_row_even_when_nothing_was_sold(
    client, fixture
) -> None:
    from cartcast import runtime as runtime_module

    with runtime_module.current().database.transaction() as tx:
        # The rollup writes an unconstrained numeric: a quiet day reads back "0".
        tx.execute(
            "UPDATE daily_kpis SET revenue = 0, api_spend_usd = 0 "
            "WHERE brand_id = :brand_id AND day = '2026-03-03'",
            brand_id=fixture["id"],
        )

    rows = read_csv(
        get(client, "/v1/reports/daily", fixture["key"], format="csv", **RANGE)
    )
    posts = read_csv(get(client, "/v1/reports/posts", fixture["key"], format="csv"))

    assert rows[2]["revenue"] == "0.00" and rows[2]["api_spend_usd"] == "0.0000"
    assert rows[2]["unattributed_revenue"] == "0.00"
    assert rows[1]["engagement_rate"] == "0.08667"
    assert sorted(post["revenue"] for post in posts) == ["0.00", "100.10", "25.00"]


def test_the_orders_report_gives_order_times_in_the_brands_zone(
    client, fixture
) -> None:
    answer = get(client, "/v1/reports/orders", fixture["key"], **RANGE).get_json()
    rows = read_csv(
        get(client, "/v1/reports/orders", fixture["key"], format="csv", **RANGE)
    )

    # 23:00 UTC on March 1st is 18:00 in New York, five hours behind in winter.
    assert answer["orders"][0]["ordered_at"] == "2026-03-01T18:00:00-05:00"
    assert rows[0]["ordered_at"] == "2026-03-01T18:00:00-05:00"


def test_an_empty_range_as_csv_is_the_header_alone(client, fixture) -> None:
    response = get(
        client, "/v1/reports/daily", fixture["key"], format="csv", to="2025-01-07"
    )

    assert response.status_code == 200
    assert response.get_data(as_text=True) == ",".join(reports.DAILY_COLUMNS) + "\r\n"


def test_a_post_text_that_is_a_formula_is_text_in_the_posts_csv(
    client, fixture
) -> None:
    response = get(client, "/v1/reports/posts", fixture["key"], format="csv")

    texts = {row["id"]: row["text"] for row in read_csv(response)}
    assert response.status_code == 200
    assert texts[fixture["formula_post"]] == "'" + FORMULA
    assert texts[fixture["script_post"]] == SCRIPT


def test_order_ids_that_are_formulas_are_text_in_the_orders_csv(
    client, fixture
) -> None:
    response = get(client, "/v1/reports/orders", fixture["key"], format="csv", **RANGE)

    rows = {row["order_id"]: row for row in read_csv(response)}
    assert response.status_code == 200
    assert set(rows) == {"'@SUM(1+1)", "'-2+3", "1001", "1002"}
    assert rows["'@SUM(1+1)"]["total_price"] == "19.99"
    assert rows["'-2+3"]["post_id"] == fixture["formula_post"]
    # The unattributed order is reported too, with no post.
    assert rows["1002"]["post_id"] == ""


def test_the_orders_report_as_json_keeps_the_ids_as_sent(client, fixture) -> None:
    response = get(client, "/v1/reports/orders", fixture["key"], **RANGE)

    ids = [order["order_id"] for order in response.get_json()["orders"]]
    assert response.status_code == 200
    assert sorted(ids) == sorted(["@SUM(1+1)", "-2+3", "1001", "1002"])


def test_the_mentions_report_as_csv_counts_by_sentiment_and_intent(
    client, fixture
) -> None:
    response = get(client, "/v1/reports/mentions", fixture["key"], format="csv")

    counted = {row["sentiment"]: row["mentions"] for row in read_csv(response)}
    assert response.status_code == 200
    assert counted == {"negative": "1", "positive": "2", "unscored": "1"}


@pytest.mark.parametrize(
    "text",
    ["=1+1", "+1", "-1", "@SUM(A1)", "\tcmd", "\rcmd", "=", "-"],
)
def test_every_text_a_spreadsheet_would_evaluate_gets_a_leading_quote(text) -> None:
    assert reports.csv_cell(text) == "'" + text


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("plain", "plain"),
        (" =1", " =1"),
        ("a=1", "a=1"),
        ("", ""),
        (None, ""),
        (-12, "-12"),
        (Decimal("-1.50"), "-1.50"),
        (Decimal("0E-5"), "0.00000"),
        (Decimal("12345678901234.99"), "12345678901234.99"),
        (True, "true"),
        (dt.date(2026, 3, 1), "2026-03-01"),
    ],
)
def test_numbers_and_harmless_text_are_written_as_they_are(value, cell) -> None:
    assert reports.csv_cell(value) == cell


# The HTML page


def test_the_html_report_draws_every_chart_with_a_text_alternative(
    client, fixture
) -> None:
    response = get(client, "/v1/reports/daily", fixture["key"], format="html", **RANGE)

    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "<title>KPI report: Test Goods, 2026-03-01 to 2026-03-03</title>" in page
    assert "<h1>KPIs for Test Goods</h1>" in page
    for chart in CHARTS:
        assert f'id="{chart}"' in page
        assert f'<title id="{chart}-title">' in page
        assert f'<desc id="{chart}-desc">' in page
    assert "125.10 USD" in page  # the three days' revenue, to the cent
    assert "Positive: 2 (50 %)" in page


CHARTS = (
    "chart-impressions",
    "chart-engagements",
    "chart-link-clicks",
    "chart-revenue",
    "chart-top-revenue",
    "chart-top-engagement",
    "chart-sentiment",
)


def test_a_post_text_holding_a_script_is_shown_as_text(client, fixture) -> None:
    response = get(client, "/v1/reports/daily", fixture["key"], format="html", **RANGE)

    page = response.get_data(as_text=True)
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Mugs &amp; more" in page


def test_the_brand_name_is_escaped_in_the_title_and_heading(client) -> None:
    body = brand_body(name='<img src=x onerror="alert(1)">', slug="odd-name")
    key = post_json(client, "/v1/brands", body, OPERATOR_KEY).get_json()["api_key"]

    page = get(client, "/v1/reports/daily", key, format="html").get_data(as_text=True)

    assert "<img" not in page
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in page


def test_the_html_report_is_served_with_a_policy_that_loads_nothing(
    client, fixture
) -> None:
    response = get(client, "/v1/reports/daily", fixture["key"], format="html", **RANGE)

    policy = response.headers["Content-Security-Policy"]
    page = response.get_data(as_text=True)
    assert policy.startswith("default-src 'none'; style-src 'sha256-")
    assert "unsafe-inline" not in policy and "script-src" not in policy
    in_page = policy.removesuffix("; frame-ancestors 'none'")
    assert f'content="{markupsafe.escape(in_page)}"' in page
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    for external in ("http://", "https://", "src=", "@import", "url("):
        assert external not in page.replace("http://www.w3.org/2000/svg", "")


def test_an_empty_range_renders_a_page_saying_there_is_no_data(client, fixture) -> None:
    response = get(
        client,
        "/v1/reports/daily",
        fixture["key"],
        format="html",
        **{"from": "2025-01-01", "to": "2025-01-31"},
    )

    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "No data for these days" in page
    assert "<svg" not in page


def test_the_top_posts_are_those_published_in_the_range(client, fixture) -> None:
    response = get(
        client,
        "/v1/reports/daily",
        fixture["key"],
        format="html",
        **{"from": "2026-03-02", "to": "2026-03-02"},
    )

    page = response.get_data(as_text=True)
    assert "Mugs &amp; more" in page
    assert "Spring sale" not in page


def test_replies_to_mentions_are_not_among_the_brands_posts_in_any_report(
    client, fixture
) -> None:
    # A reply that drew more engagement than any post: it would top every list.
    from cartcast import runtime as runtime_module

    answered = dt.datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    with runtime_module.current().database.transaction() as tx:
        reply_id = add_post(
            tx,
            fixture["id"],
            "Sorry! DM us your order number",
            answered,
            impressions=9000,
            likes=900,
            in_reply_to="1900000000000000001",
        )

    listed = get(client, "/v1/reports/posts", fixture["key"]).get_json()["posts"]
    as_csv = read_csv(get(client, "/v1/reports/posts", fixture["key"], format="csv"))
    page = get(
        client, "/v1/reports/daily", fixture["key"], format="html", **RANGE
    ).get_data(as_text=True)

    assert reply_id not in [post["id"] for post in listed]
    assert fixture["script_post"] in [post["id"] for post in listed]
    assert reply_id not in [row["id"] for row in as_csv]
    assert "DM us your order number" not in page
    assert "Mugs &amp; more" in page


WIDE_TEXTS = [
    "🎉" * 60,
    "WWW MMM " * 20,
    "限定セール" * 20,
    "👩🏽‍💻 " * 40,
    "Spring sale on every mug in the shop, free shipping above fifty dollars",
]


@pytest.mark.parametrize("text", WIDE_TEXTS)
@pytest.mark.parametrize("big", ["11999.97", "999999999.99", "0.01"])
def test_every_bar_label_and_value_fits_inside_the_chart(text, big) -> None:
    small = Decimal("0.01")
    items = [
        ({"text": text}, Decimal(big), report_page._money(Decimal(big), "USD")),
        ({"text": "Small"}, small, report_page._money(small, "USD")),
    ]

    chart = report_page._bar_chart("chart-top-revenue", "Top", items)

    for row in chart["rows"]:
        assert report_page._text_width(row["label"]) <= chart["width"], row
        value_end = row["value_x"] + report_page._text_width(row["value"])
        assert 0 <= row["value_x"] and value_end <= chart["width"], row
        if not row["value_inside"]:
            assert row["value_x"] >= row["length"] or value_end == chart["width"]
    assert chart["rows"][0]["label"].endswith("…") == (text != "Small")


@pytest.mark.parametrize(("most", "labels"), [(None, ["0", "1"]), (3, ["0", "5"])])
def test_a_count_axis_has_whole_number_ticks(most, labels) -> None:
    day = dt.date(2026, 3, 1)
    days = [] if most is None else [{"day": day, "impressions": most}]

    chart = report_page._trend_chart(
        "impressions", "Impressions", "line", days, day, day, "USD"
    )
    revenue = report_page._trend_chart("revenue", "Revenue", "bar", [], day, day, "USD")

    assert [tick["label"] for tick in chart["y_ticks"]] == labels
    assert [tick["label"] for tick in revenue["y_ticks"]] == ["0", "0.5", "1"]


def test_emoji_and_capitals_are_estimated_wider_than_thin_letters() -> None:
    thin, plain = report_page._text_width("i" * 10), report_page._text_width("a" * 10)
    wide, emoji = report_page._text_width("W" * 10), report_page._text_width("🎉" * 10)

    assert thin < plain < wide < emoji
    # A skin tone or a joiner draws nothing of its own.
    assert report_page._text_width("👍🏽") == report_page._text_width("👍")


# Bad input: one check for every format


@pytest.mark.parametrize("answer", ["json", "csv", "html"])
@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"from": "2016-03-01", "to": "2026-03-01"}, "from"),
        ({"from": "2026-03-05", "to": "2026-03-01"}, "from"),
        ({"from": "March 1st"}, "from"),
        ({"to": "0001-01-03"}, "to"),
        # 367 days counting both ends: one more than the longest range.
        ({"from": "2025-03-02", "to": "2026-03-03"}, "from"),
        # Forms Python's fromisoformat reads, but not the YYYY-MM-DD the API documents.
        ({"from": "20260301"}, "from"),
        ({"from": "2026-W10-1"}, "from"),
        ({"from": "2026-03-01T00:00"}, "from"),
        ({"to": "20260303"}, "to"),
    ],
)
def test_a_range_too_long_reversed_or_unreadable_is_a_400_in_every_format(
    client, brand, answer, query, field
) -> None:
    response = get(client, "/v1/reports/daily", brand["key"], format=answer, **query)

    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == field


@pytest.mark.parametrize("answer", ["json", "csv", "html"])
def test_an_early_range_with_from_given_never_computes_the_default_range(
    client, brand, answer
) -> None:
    response = get(
        client,
        "/v1/reports/daily",
        brand["key"],
        format=answer,
        **{"from": "0001-01-01", "to": "0001-01-03"},
    )

    assert response.status_code == 200


@pytest.mark.parametrize(
    ("path", "answer"),
    [
        ("/v1/reports/daily", "xlsx"),
        ("/v1/reports/daily", "CSV"),
        ("/v1/reports/daily", ""),
        ("/v1/reports/posts", "html"),
        ("/v1/reports/mentions", "pdf"),
        ("/v1/reports/orders", "html"),
    ],
)
def test_an_unknown_format_is_a_400_naming_format(client, brand, path, answer) -> None:
    response = get(client, path, brand["key"], format=answer)

    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "format"


@pytest.mark.parametrize("answer", ["json", "csv", "html"])
def test_every_format_needs_the_api_key(client, fixture, answer) -> None:
    response = client.get("/v1/reports/daily", query_string={"format": answer})

    assert response.status_code == 401


@pytest.mark.parametrize(
    ("first", "last"), [("2026-03-02", "2026-03-02"), ("2025-03-03", "2026-03-03")]
)
def test_one_day_and_the_longest_range_draw_every_trend_chart(
    client, fixture, first, last
) -> None:
    response = get(
        client,
        "/v1/reports/daily",
        fixture["key"],
        format="html",
        **{"from": first, "to": last},
    )

    page = response.get_data(as_text=True)
    assert response.status_code == 200
    for chart in CHARTS[:4]:
        assert f'id="{chart}"' in page
    # A coordinate computed from an empty or one-day range would print as nan or inf.
    assert '"nan"' not in page and '"inf"' not in page and '"-inf"' not in page


def test_figures_a_report_works_out_round_half_up_as_stored_amounts_do() -> None:
    # 1.00 of 200,000.00 is a share of 0.000005, a tie at the share's five places;
    # 0.00125 spend is a tie at a money figure's four. Half to even would give
    # 0.00000 and 0.0012; every amount cartcast stores rounds half up.
    figures = reports.store_figures(
        store_orders=3,
        store_revenue=Decimal("200000.00"),
        unattributed_revenue=Decimal("199999.00"),
    )
    row = reports.with_money_places({"api_spend_usd": Decimal("0.00125")})

    assert figures["attributed_revenue_share"] == Decimal("0.00001")
    assert row["api_spend_usd"] == Decimal("0.0013")
