"""CSV backfill of past orders, in the columns of Shopify's orders export."""

from __future__ import annotations

import datetime as dt
import threading
import uuid

import pytest

from cartcast import order_imports, web
from cartcast import runtime as runtime_module
from tests.conftest import OPERATOR_KEY, START, make_app
from tests.helpers import WAITING_ON_A_LOCK, auth, brand_body, post_json

HEADER = "Name,Id,Created at,Currency,Total,Lineitem name,Landing Site,Referring Site"


@pytest.fixture
def client(function_env):
    return make_app("api", "http").test_client()


@pytest.fixture
def brand(client) -> dict:
    created = post_json(client, "/v1/brands", brand_body(), OPERATOR_KEY).get_json()
    return {"id": created["brand"]["id"], "key": created["api_key"]}


def send_csv(client, key: str, text: str | bytes, content_type: str = "text/csv"):
    return client.post(
        "/v1/orders/import", data=text, headers=auth(key), content_type=content_type
    )


def stored() -> dict[str, dict]:
    with runtime_module.current().database.transaction() as tx:
        rows = tx.rows(
            "SELECT external_id, total_price, ordered_at, post_id FROM orders"
        )
    return {row["external_id"]: row for row in rows}


def test_a_shopify_export_is_stored_one_order_per_id(client, brand) -> None:
    text = "\n".join(
        [
            HEADER,
            "#1001,501,2026-03-01 10:00:00 -0500,USD,29.90,Mug,/products/mug,",
            "#1001,501,2026-03-01 10:00:00 -0500,,,Saucer,,",
            "#1002,502,2026-03-01T16:30:00Z,USD,5.00,Spoon,,https://t.co/x",
        ]
    )

    response = send_csv(client, brand["key"], text)

    report = response.get_json()
    assert response.status_code == 200, report
    assert report == {
        "rows": 2,
        "stored": 2,
        "duplicates": 0,
        "cancelled": 0,
        "attributed": 0,
        "errors": [],
        "warnings": [],
    }
    orders = stored()
    assert str(orders["501"]["total_price"]) == "29.90"
    assert orders["501"]["ordered_at"] == dt.datetime(2026, 3, 1, 15, tzinfo=dt.UTC)


def test_a_signed_zero_total_is_imported_as_zero(client, brand) -> None:
    text = "\n".join(
        [
            HEADER,
            "#1001,501,2026-03-01T10:00:00Z,USD,-0,Mug,,",
            "#1002,502,2026-03-01T11:00:00Z,USD,-0.00,Mug,,",
        ]
    )

    response = send_csv(client, brand["key"], text)

    report = response.get_json()
    assert response.status_code == 200, report
    assert (report["stored"], report["errors"]) == (2, [])
    assert {id_: str(row["total_price"]) for id_, row in stored().items()} == {
        "501": "0.00",
        "502": "0.00",
    }


def test_broken_rows_are_reported_and_the_rest_stored(client, brand) -> None:
    text = "\n".join(
        [
            HEADER,
            "#1,1,2026-03-01 10:00:00 -0500,USD,-3.00,Mug,,",
            "#2,2,2026-03-01 10:00:00 -0500,EUR,3.00,Mug,,",
            "#3,3,yesterday,USD,3.00,Mug,,",
            "#4,4,2026-03-01 10:00:00 -0500,USD,3.00,Mug,/?utm_content=%zz,",
            "#5,5,2026-03-01 10:00:00 -0500,USD,3.00,Mug,,",
            ",,2026-03-01 10:00:00 -0500,USD,3.00,Mug,,",
        ]
    )

    report = send_csv(client, brand["key"], text).get_json()

    assert report["stored"] == 2
    assert [(e["line"], e["field"]) for e in report["errors"]] == [
        (2, "total_price"),
        (3, "currency"),
        (4, "created_at"),
        (7, "id"),
    ]
    # The order with an unreadable landing site is kept, unattributed, and said so.
    assert [(w["line"], w["field"]) for w in report["warnings"]] == [
        (5, "landing_site")
    ]
    assert sorted(stored()) == ["4", "5"]


def test_a_record_over_several_lines_is_reported_at_its_first_line(
    client, brand
) -> None:
    text = (
        f"{HEADER}\n"
        '#1,1,2026-03-01 10:00:00 -0500,USD,oops,"Mug\nwith a\nlid",,\n'
        "#2,2,2026-03-01 10:00:00 -0500,USD,oops,Saucer,,\n"
    )

    report = send_csv(client, brand["key"], text).get_json()

    assert [(e["line"], e["id"]) for e in report["errors"]] == [(2, "1"), (5, "2")]


def test_a_total_with_spaces_is_refused_as_the_json_order_refuses_it(
    client, brand
) -> None:
    text = f"{HEADER}\n#1,1,2026-03-01T10:00:00Z,USD, 5,Mug,,\n"
    order = {"id": 2, "created_at": "2026-03-01T10:00:00Z", "currency": "USD"}

    report = send_csv(client, brand["key"], text).get_json()
    sent = post_json(client, "/v1/orders", {**order, "total_price": " 5"}, brand["key"])

    assert [(e["line"], e["field"]) for e in report["errors"]] == [(2, "total_price")]
    assert sent.status_code == 400
    assert sent.get_json()["error"]["field"] == "total_price"
    assert stored() == {}


@pytest.mark.parametrize(
    "created_at", ["2026-03-01T09:30:60Z", "2026-03-01 09:30:60 -0500"]
)
def test_a_second_60_that_is_no_leap_second_is_refused_naming_created_at(
    client, brand, created_at
) -> None:
    text = f"{HEADER}\n#1,1,{created_at},USD,3.00,Mug,,\n"

    report = send_csv(client, brand["key"], text).get_json()

    assert [(e["line"], e["field"]) for e in report["errors"]] == [(2, "created_at")]
    assert "leap second" in report["errors"][0]["message"]
    assert stored() == {}


def test_a_leap_second_in_shopifys_form_is_read_as_the_next_minute(
    client, brand
) -> None:
    text = f"{HEADER}\n#1,1,2016-12-31 18:59:60 -0500,USD,3.00,Mug,,\n"

    report = send_csv(client, brand["key"], text).get_json()

    assert report["errors"] == []
    assert stored()["1"]["ordered_at"] == dt.datetime(2017, 1, 1, tzinfo=dt.UTC)


def test_importing_the_same_file_twice_stores_nothing_new(client, brand) -> None:
    text = f"{HEADER}\n#1,1,2026-03-01 10:00:00 -0500,USD,3.00,Mug,,\n"

    send_csv(client, brand["key"], text)
    again = send_csv(client, brand["key"], text).get_json()

    assert (again["stored"], again["duplicates"]) == (0, 1)


def test_a_file_stores_its_orders_in_id_order_so_two_imports_cannot_deadlock(
    client, brand
) -> None:
    """Two files of the same new orders in opposite orders each waited on the
    other's first insert, and PostgreSQL failed one of them (a 500). Inserted in
    id order, the second import waits for the first. A fresh table keeps rows in
    the order they were inserted, which ctid shows."""
    ids = ["1003", "1001", "1002"]
    rows = [f"#{i},{i},2026-03-01 10:00:00 +0100,USD,5.00,Mug,," for i in ids]

    response = send_csv(client, brand["key"], "\n".join([HEADER, *rows]) + "\n")

    assert response.status_code == 200, response.get_json()
    with runtime_module.current().database.transaction() as tx:
        written = tx.rows("SELECT external_id FROM orders ORDER BY ctid")
    assert [row["external_id"] for row in written] == ["1001", "1002", "1003"]


def test_an_order_sent_by_api_then_imported_is_one_order(client, brand) -> None:
    order = {
        "id": 77,
        "created_at": "2026-03-01T10:00:00Z",
        "currency": "USD",
        "total_price": "3.00",
    }
    post_json(client, "/v1/orders", order, brand["key"])

    report = send_csv(
        client, brand["key"], f"{HEADER}\n#77,77,2026-03-01 05:00:00 -0500,USD,3,,,\n"
    ).get_json()

    assert (report["stored"], report["duplicates"]) == (0, 1)


def test_an_imported_order_from_a_post_link_is_attributed(client, brand) -> None:
    post_id = str(uuid.uuid4())
    published_at = START - dt.timedelta(days=10)
    with runtime_module.current().database.transaction() as tx:
        tx.execute(
            "INSERT INTO posts (id, brand_id, text, state, engine, weighted_length, "
            "published_at, created_by, created_at, updated_at) "
            "VALUES (:id, :brand_id, 'mug', 'published', 'manual', 3, "
            ":published_at, 'test', :published_at, :published_at)",
            id=post_id,
            brand_id=brand["id"],
            published_at=published_at,
        )
    landing = f'"/products/mug?utm_source=x&utm_medium=social&utm_content={post_id}"'
    early = published_at + dt.timedelta(days=1)
    late = published_at + dt.timedelta(days=8)
    text = "\n".join(
        [
            HEADER,
            f"#1,1,{early.isoformat()},USD,9,,{landing},",
            f"#2,2,{late.isoformat()},USD,9,,{landing},",
        ]
    )

    report = send_csv(client, brand["key"], text).get_json()

    assert report["attributed"] == 1
    assert str(stored()["1"]["post_id"]) == post_id
    assert stored()["2"]["post_id"] is None  # past the 7-day window


@pytest.mark.parametrize(
    ("text", "content_type", "problem"),
    [
        ("", "text/csv", "empty"),
        ("Name,Total\n#1,3\n", "text/csv", "Created at"),
        (f"{HEADER}\n#1,1,x,USD,1,\x00,,\n", "text/csv", "NUL"),
        (b"Id,Created at,Currency,Total\n1,\xff,USD,1\n", "text/csv", "UTF-8"),
        (f'{HEADER}\n#1,1,"2026,USD,1\n', "text/csv", "line"),
        (f"{HEADER}\n#1,1,x,USD,1,{'a' * 5000},,\n", "text/csv", "longer"),
    ],
)
def test_a_file_that_cannot_be_read_is_a_400(
    client, brand, text, content_type, problem
) -> None:
    response = send_csv(client, brand["key"], text, content_type)

    assert response.status_code == 400
    assert problem in response.get_json()["error"]["message"]
    assert stored() == {}


def test_more_rows_than_the_limit_is_a_400_and_stores_nothing(client, brand) -> None:
    row = "#{0},{0},2026-03-01 10:00:00 -0500,USD,1,,,"
    rows = [row.format(n) for n in range(order_imports.IMPORT_ROWS_MAX + 1)]

    response = send_csv(client, brand["key"], "\n".join([HEADER, *rows]))

    assert response.status_code == 400
    assert str(order_imports.IMPORT_ROWS_MAX) in response.get_json()["error"]["message"]
    assert stored() == {}


def test_a_file_over_the_body_cap_is_a_413(client, brand) -> None:
    text = HEADER + "\n" + "x" * web.BODY_BYTES_MAX

    response = send_csv(client, brand["key"], text)

    assert response.status_code == 413
    assert "larger than" in response.get_json()["error"]["message"]


def test_the_import_needs_the_brands_key(client) -> None:
    assert send_csv(client, "cc_nope", HEADER).status_code == 401


def test_a_backfill_older_than_the_rollup_window_reaches_the_daily_report(
    client, brand
) -> None:
    text = "\n".join(
        [
            HEADER,
            "#1,1,2025-06-10 12:00:00 -0400,USD,10.00,,,",
            "#2,2,2025-06-10 13:00:00 -0400,USD,5.50,,,",
        ]
    )

    send_csv(client, brand["key"], text)
    report = client.get(
        "/v1/reports/daily?from=2025-06-09&to=2025-06-11", headers=auth(brand["key"])
    ).get_json()

    by_day = {row["day"]: row for row in report["days"]}
    assert by_day["2025-06-10"]["unattributed_orders"] == 2
    assert by_day["2025-06-10"]["attributed_orders"] == 0


@pytest.mark.parametrize(
    "created_at",
    [
        "0001-01-01T00:30:00Z",  # a day before year 1 in New York
        "9999-12-31T23:30:00Z",  # past year 9999 east of UTC
        "1900-01-01 12:00:00 -0500",
        "2006-03-20T23:59:59Z",
        "2026-03-03T08:00:01Z",  # more than a day after the pinned clock
    ],
)
def test_an_out_of_range_date_is_reported_naming_created_at(
    client, brand, created_at
) -> None:
    text = (
        f"{HEADER}\n#1,1,{created_at},USD,3.00,Mug,,\n"
        "#2,2,2026-03-01T10:00:00Z,USD,1,,,"
    )

    response = send_csv(client, brand["key"], text)

    report = response.get_json()
    assert response.status_code == 200, report
    assert [(e["id"], e["field"]) for e in report["errors"]] == [("1", "created_at")]
    assert set(stored()) == {"2"}


def test_a_backfill_writes_daily_rows_only_for_days_that_got_orders(
    client, brand
) -> None:
    text = "\n".join(
        [
            HEADER,
            "#1,1,2006-03-21 12:00:00 -0400,USD,1,,,",
            "#2,2,2026-03-01 12:00:00 -0500,USD,1,,,",
            "#3,3,2026-03-02 01:00:00 -0500,USD,1,,,",
        ]
    )

    send_csv(client, brand["key"], text)

    with runtime_module.current().database.transaction() as tx:
        days = tx.rows("SELECT day FROM daily_kpis ORDER BY day")
    assert [str(row["day"]) for row in days] == [
        "2006-03-21",
        "2026-03-01",
        "2026-03-02",
    ]


def test_the_row_cap_counts_orders_not_line_items_or_blank_lines(client, brand) -> None:
    row = "#{0},{0},2026-03-01 10:00:00 -0500,USD,1,Mug,,"
    extra_item = "#{0},{0},,,,Saucer,,"
    rows = []
    for number in range(order_imports.IMPORT_ROWS_MAX):
        rows += [row.format(number), extra_item.format(number), ",,,,,,,"]

    response = send_csv(client, brand["key"], "\n".join([HEADER, *rows]))

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["stored"] == order_imports.IMPORT_ROWS_MAX


def test_a_refused_order_is_reported_once_not_once_per_line_item(client, brand) -> None:
    text = "\n".join(
        [
            HEADER,
            "#1,1,2026-03-01 10:00:00 -0500,USD,-3.00,Mug,,",
            "#1,1,,,,Saucer,,",
            "#1,1,,,,Spoon,,",
        ]
    )

    report = send_csv(client, brand["key"], text).get_json()

    assert [(e["line"], e["field"]) for e in report["errors"]] == [(2, "total_price")]
    assert report["rows"] == 1


def test_a_file_with_an_id_column_is_keyed_by_id_alone(client, brand) -> None:
    text = "\n".join(
        [
            HEADER,
            "#1001,501,2026-03-01 10:00:00 -0500,USD,3.00,Mug,,",
            "#1001,,2026-03-01 10:00:00 -0500,USD,3.00,Mug,,",
        ]
    )

    report = send_csv(client, brand["key"], text).get_json()

    assert [(e["line"], e["field"]) for e in report["errors"]] == [(3, "id")]
    assert set(stored()) == {"501"}


@pytest.mark.parametrize(
    "content_type", ["application/json", "text/plain", "application/vnd.ms-excel"]
)
def test_a_file_not_typed_text_csv_is_a_415_naming_the_type_it_takes(
    client, brand, content_type
) -> None:
    text = HEADER + "\n#1001,501,2026-03-01T16:30:00Z,USD,5.00,Mug,,"

    response = send_csv(client, brand["key"], text, content_type)

    error = response.get_json()["error"]
    assert response.status_code == 415, error
    assert error["field"] == "Content-Type"
    assert content_type in error["message"] and "text/csv" in error["message"]
    assert stored() == {}


@pytest.mark.parametrize("content_type", [None, "text/csv", "text/plain"])
def test_an_empty_body_is_a_400_saying_so_whatever_its_type(
    client, brand, content_type
) -> None:
    # An empty body has no type to refuse: the problem is that nothing was sent.
    headers = auth(brand["key"])
    if content_type is not None:
        headers["Content-Type"] = content_type

    response = client.post("/v1/orders/import", headers=headers)

    error = response.get_json()["error"]
    assert response.status_code == 400, error
    assert error["message"].startswith("body is empty") and error["field"] == "body"
    assert stored() == {}


def test_a_csv_file_in_another_charset_is_a_415(client, brand) -> None:
    text = HEADER + "\n#1001,501,2026-03-01T16:30:00Z,USD,5.00,Café,,"

    response = send_csv(
        client, brand["key"], text.encode("cp1252"), "text/csv; charset=windows-1252"
    )

    assert response.status_code == 415, response.get_json()
    assert "windows-1252" in response.get_json()["error"]["message"]
    assert stored() == {}


@pytest.mark.parametrize(
    "header", ["Id,Id,Created at,Currency,Total", "Id,Created at,Currency,Total,TOTAL"]
)
def test_a_file_naming_a_column_it_reads_twice_is_refused_with_nothing_stored(
    client, brand, header
) -> None:
    # csv keeps the last of two cells under one name: another order id, or total,
    # than the sender may have meant would be stored without a word.
    text = f"{header}\n9001,9002,2026-03-01 10:00:00 -0500,USD,5.00\n"

    response = send_csv(client, brand["key"], text)

    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["field"] == "body"
    repeated = "Id" if header.startswith("Id,Id") else "Total"
    assert f"names the column {repeated} twice" in error["message"]
    assert stored() == {}


def test_a_shopify_time_in_other_digits_than_ascii_is_refused(client, brand) -> None:
    # strptime reads any Unicode digit; an RFC 3339 time in them is refused too.
    text = "\n".join(
        [
            "Id,Created at,Currency,Total",
            "9001,\u0662\u0660\u0662\u0666-03-01 10:00:00 -0500,USD,5.00",
        ]
    )

    response = send_csv(client, brand["key"], text)

    report = response.get_json()
    assert response.status_code == 200, report
    assert report["stored"] == 0
    assert [error["field"] for error in report["errors"]] == ["created_at"]
    assert stored() == {}


REFUND_HEADER = "Id,Created at,Currency,Total,Cancelled at,Refunded Amount"


def test_a_refund_is_taken_off_the_total_and_a_cancelled_order_is_no_sale(
    client, brand
) -> None:
    text = "\n".join(
        [
            REFUND_HEADER,
            "501,2026-03-01 10:00:00 -0500,USD,40.00,,0.00",
            "502,2026-03-01 11:00:00 -0500,USD,40.00,,15.50",
            "503,2026-03-01 12:00:00 -0500,USD,40.00,,40.00",
            "504,2026-03-01 13:00:00 -0500,USD,40.00,2026-03-01 14:00:00 -0500,40.00",
            "505,2026-03-01 14:00:00 -0500,USD,40.00,,",
        ]
    )

    response = send_csv(client, brand["key"], text)

    report = response.get_json()
    assert response.status_code == 200, report
    assert (report["rows"], report["stored"], report["cancelled"]) == (5, 4, 1)
    orders = stored()
    assert {key: str(row["total_price"]) for key, row in orders.items()} == {
        "501": "40.00",
        "502": "24.50",
        "503": "0.00",
        "505": "40.00",
    }


def test_a_cancelled_row_removes_the_order_stored_before(client, brand) -> None:
    placed = "\n".join([REFUND_HEADER, "501,2026-03-01T10:00:00Z,USD,40.00,,"])
    cancelled = "\n".join(
        [REFUND_HEADER, "501,2026-03-01T10:00:00Z,USD,40.00,2026-03-02T10:00:00Z,"]
    )
    send_csv(client, brand["key"], placed)

    response = send_csv(client, brand["key"], cancelled)

    assert response.get_json()["cancelled"] == 1
    assert stored() == {}


@pytest.mark.parametrize(
    "refunded",
    ["40.01", "-1.00", "abc", " 5"],
    ids=["more", "negative", "text", "space"],
)
def test_a_refund_that_cannot_be_is_a_reported_row(client, brand, refunded) -> None:
    text = "\n".join([REFUND_HEADER, f"501,2026-03-01T10:00:00Z,USD,40.00,,{refunded}"])

    report = send_csv(client, brand["key"], text).get_json()

    assert report["stored"] == 0
    assert [error["field"] for error in report["errors"]] == ["refunded_amount"]
    assert stored() == {}


def test_a_backfill_does_not_bring_back_an_order_cancelled_before(
    client, brand
) -> None:
    cancelled = "\n".join(
        [REFUND_HEADER, "501,2026-03-01T10:00:00Z,USD,40.00,2026-03-02T10:00:00Z,"]
    )
    placed = "\n".join([REFUND_HEADER, "501,2026-03-01T10:00:00Z,USD,40.00,,"])
    send_csv(client, brand["key"], cancelled)

    response = send_csv(client, brand["key"], placed)

    assert response.status_code == 200, response.get_json()
    assert stored() == {}


@pytest.mark.parametrize(
    ("key", "cancelled_at", "field"),
    [
        ("501", "no", "cancelled_at"),
        ("501", "N/A", "cancelled_at"),
        ("5" * 300, "2026-03-02T10:00:00Z", "id"),
    ],
    ids=["no", "n-a", "long-id"],
)
def test_a_cancelled_row_that_cannot_be_is_a_reported_row(
    client, brand, key, cancelled_at, field
) -> None:
    placed = "\n".join([REFUND_HEADER, f"{key[:200]},2026-03-01T10:00:00Z,USD,40.00,,"])
    send_csv(client, brand["key"], placed)
    text = "\n".join(
        [REFUND_HEADER, f"{key},2026-03-01T10:00:00Z,USD,40.00,{cancelled_at},"]
    )

    response = send_csv(client, brand["key"], text)

    report = response.get_json()
    assert response.status_code == 200, report
    assert report["cancelled"] == 0
    assert [error["field"] for error in report["errors"]] == [field]
    assert list(stored()) == [key[:200]]


NAME_HEADER = "Name,Created at,Currency,Total,Financial Status,Refunded Amount"


def shopify_json_order(**changes) -> dict:
    """The order as the webhook or POST /v1/orders brings it: numeric id and name."""
    return {
        "id": 820982911946154508,
        "name": "#1001",
        "created_at": "2026-03-01T10:00:00-05:00",
        "currency": "USD",
        "total_price": "40.00",
        **changes,
    }


def test_a_name_keyed_backfill_of_an_order_already_sent_is_a_duplicate(
    client, brand
) -> None:
    sent = post_json(client, "/v1/orders", shopify_json_order(), brand["key"])
    text = "\n".join([NAME_HEADER, "#1001,2026-03-01 10:00:00 -0500,USD,40.00,paid,"])

    report = send_csv(client, brand["key"], text).get_json()

    assert sent.status_code == 201, sent.get_json()
    assert (report["stored"], report["duplicates"]) == (0, 1), report
    assert list(stored()) == ["820982911946154508"]


def test_an_order_backfilled_by_name_and_then_sent_is_stored_once_under_its_id(
    client, brand
) -> None:
    text = "\n".join([NAME_HEADER, "#1001,2026-03-01 10:00:00 -0500,USD,40.00,paid,"])
    send_csv(client, brand["key"], text)

    sent = post_json(client, "/v1/orders", shopify_json_order(), brand["key"])

    assert sent.status_code == 200, sent.get_json()
    assert sent.get_json()["duplicate"] is True
    assert sent.get_json()["order"]["name"] == "#1001"
    # It takes the store's id, so what names it by id alone (a refund) finds it.
    assert list(stored()) == ["820982911946154508"]


def test_a_file_with_an_id_column_keeps_the_name_it_carries(client, brand) -> None:
    by_id = "\n".join([HEADER, "#1001,501,2026-03-01T10:00:00Z,USD,29.90,Mug,,"])
    send_csv(client, brand["key"], by_id)
    by_name = "\n".join([NAME_HEADER, "#1001,2026-03-01T10:00:00Z,USD,29.90,paid,"])

    report = send_csv(client, brand["key"], by_name).get_json()

    assert report["duplicates"] == 1, report
    assert list(stored()) == ["501"]


def test_a_voided_order_is_no_sale_and_a_refunded_one_is_kept_at_zero(
    client, brand
) -> None:
    # Shopify: voided is an authorized payment never captured, the order cancelled;
    # refunded is the full amount paid given back, whatever Refunded Amount says
    # (an order paid in part and refunded shows less than its Total there).
    text = "\n".join(
        [
            NAME_HEADER,
            "#1001,2026-03-01T10:00:00Z,USD,40.00,voided,",
            "#1002,2026-03-01T11:00:00Z,USD,40.00,Refunded,",
            "#1003,2026-03-01T12:00:00Z,USD,40.00,refunded,10.00",
            "#1004,2026-03-01T13:00:00Z,USD,40.00,partially_refunded,15.50",
            "#1005,2026-03-01T14:00:00Z,USD,40.00,expired,",
            "#1006,2026-03-01T15:00:00Z,USD,40.00,paid,",
        ]
    )

    report = send_csv(client, brand["key"], text).get_json()

    assert (report["rows"], report["stored"], report["cancelled"]) == (6, 4, 2)
    assert {key: str(row["total_price"]) for key, row in stored().items()} == {
        "#1002": "0.00",
        "#1003": "0.00",
        "#1004": "24.50",
        "#1006": "40.00",
    }


def test_a_voided_row_removes_the_order_sent_before_under_its_name(
    client, brand
) -> None:
    post_json(client, "/v1/orders", shopify_json_order(), brand["key"])
    text = "\n".join([NAME_HEADER, "#1001,2026-03-01T10:00:00Z,USD,40.00,voided,"])

    report = send_csv(client, brand["key"], text).get_json()

    assert report["cancelled"] == 1
    assert stored() == {}


# A cancellation by name, by a voided row or by Cancelled at, is kept as one by id
# is (decision 0100): the order's creation sent after it, under its numeric id and
# that name, is answered as cancelled and stored nowhere (decision 0103).
NAME_CANCELLED_HEADER = "Name,Created at,Currency,Total,Cancelled at"


def test_an_order_cancelled_by_name_is_not_stored_when_sent_later_by_id(
    client, brand
) -> None:
    text = "\n".join(
        [
            NAME_CANCELLED_HEADER,
            "#1001,2026-03-01T10:00:00Z,USD,40.00,2026-03-02T10:00:00Z",
        ]
    )
    report = send_csv(client, brand["key"], text).get_json()

    late = post_json(client, "/v1/orders", shopify_json_order(), brand["key"])

    assert report["cancelled"] == 1, report
    assert late.status_code == 200, late.get_json()
    assert late.get_json()["cancelled"] is True
    assert stored() == {}


def test_a_sent_order_cancelled_by_name_stays_cancelled_under_its_id(
    client, brand
) -> None:
    post_json(client, "/v1/orders", shopify_json_order(), brand["key"])
    text = "\n".join(
        [
            NAME_CANCELLED_HEADER,
            "#1001,2026-03-01T10:00:00Z,USD,40.00,2026-03-02T10:00:00Z",
        ]
    )
    send_csv(client, brand["key"], text)

    again = post_json(client, "/v1/orders", shopify_json_order(), brand["key"])

    assert again.status_code == 200, again.get_json()
    assert again.get_json()["cancelled"] is True
    assert stored() == {}


def test_an_order_cancelled_by_id_is_not_backfilled_later_by_name(
    client, brand
) -> None:
    cancelled = shopify_json_order(cancelled_at="2026-03-02T10:00:00Z")
    post_json(client, "/v1/orders", cancelled, brand["key"])
    text = "\n".join([NAME_HEADER, "#1001,2026-03-01T10:00:00Z,USD,40.00,paid,"])

    report = send_csv(client, brand["key"], text).get_json()

    assert (report["stored"], report["cancelled"]) == (0, 1), report
    assert stored() == {}


@pytest.mark.parametrize("status", ["voided", "expired"])
def test_a_voided_row_keeps_its_order_from_a_later_creation(
    client, brand, status
) -> None:
    text = "\n".join([NAME_HEADER, f"#1001,2026-03-01T10:00:00Z,USD,40.00,{status},"])
    send_csv(client, brand["key"], text)

    late = post_json(client, "/v1/orders", shopify_json_order(), brand["key"])
    again = send_csv(
        client,
        brand["key"],
        "\n".join([NAME_HEADER, "#1001,2026-03-01T10:00:00Z,USD,40.00,paid,"]),
    ).get_json()

    assert late.status_code == 200, late.get_json()
    assert late.get_json()["cancelled"] is True
    assert (again["stored"], again["cancelled"]) == (0, 1), again
    assert stored() == {}


def test_a_voided_order_by_id_keeps_a_later_row_of_its_id_out(client, brand) -> None:
    voided = shopify_json_order(financial_status="voided")
    post_json(client, "/v1/orders", voided, brand["key"])
    text = "\n".join(
        [HEADER, "#1001,820982911946154508,2026-03-01T10:00:00Z,USD,40,,,"]
    )

    report = send_csv(client, brand["key"], text).get_json()

    assert (report["stored"], report["cancelled"]) == (0, 1), report
    assert stored() == {}


def test_another_id_under_a_stored_name_is_a_reported_row_not_a_duplicate(
    client, brand
) -> None:
    # POST /v1/orders answers this with a 409 naming `name`; a file must not
    # count it as a duplicate of the other order and so drop its sale unsaid.
    post_json(client, "/v1/orders", shopify_json_order(), brand["key"])
    by_id = "\n".join([HEADER, "#1001,777,2026-03-02T10:00:00Z,USD,29.90,Mug,,"])

    report = send_csv(client, brand["key"], by_id).get_json()

    assert (report["stored"], report["duplicates"]) == (0, 0), report
    assert [(e["line"], e["id"], e["field"]) for e in report["errors"]] == [
        (2, "777", "name")
    ]
    assert "820982911946154508" in report["errors"][0]["message"]
    assert list(stored()) == ["820982911946154508"]


def test_an_order_cancelled_on_two_rows_of_a_file_is_one_cancellation(
    client, brand
) -> None:
    # Shopify fills the order's fields on its first line item row only, but a
    # file put together by hand or another tool may repeat them on every row.
    cancelled = "501,2026-03-01T10:00:00Z,USD,40.00,2026-03-02T10:00:00Z,"
    text = "\n".join([REFUND_HEADER, cancelled, cancelled])

    report = send_csv(client, brand["key"], text).get_json()

    assert (report["rows"], report["cancelled"], report["duplicates"]) == (2, 1, 1)
    assert stored() == {}


BY_ID_HEADER = "Id,Name,Created at,Currency,Total"


def test_an_import_by_name_waits_for_one_by_id_of_the_same_orders(
    client, brand
) -> None:
    current = runtime_module.current()
    by_name = "\n".join(
        [
            "Name,Created at,Currency,Total",
            "#a,2026-03-01T10:00:00Z,USD,10.00",
            "#b,2026-03-01T11:00:00Z,USD,20.00",
        ]
    )
    answers: list = []

    def import_by_name() -> None:
        answers.append(send_csv(client, brand["key"], by_name))

    # An import keyed by Id has stored #b and not yet committed when one keyed by
    # Name comes: had the second stored #a and waited on #b, the first's #a next
    # would wait on it, and PostgreSQL would fail one (deadlock detected).
    with current.database.transaction() as tx:
        order_imports.import_orders(
            tx,
            brand_id=brand["id"],
            text="\n".join([BY_ID_HEADER, "2,#b,2026-03-01T11:00:00Z,USD,20.00"]),
            now=START,
            window_days=7,
        )
        importer = threading.Thread(target=import_by_name)
        importer.start()
        while importer.is_alive() and not _waiting_for_a_lock(current):
            importer.join(0.01)
        order_imports.import_orders(
            tx,
            brand_id=brand["id"],
            text="\n".join([BY_ID_HEADER, "1,#a,2026-03-01T10:00:00Z,USD,10.00"]),
            now=START,
            window_days=7,
        )
    importer.join()

    response = answers[0]
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["duplicates"] == 2
    assert sorted(stored()) == ["1", "2"]


def _waiting_for_a_lock(current) -> bool:
    with current.database.transaction() as tx:
        return tx.scalar(WAITING_ON_A_LOCK) > 0


def test_an_order_placed_and_cancelled_in_one_file_is_counted_cancelled_not_stored(
    client, brand
) -> None:
    text = "\n".join(
        [
            REFUND_HEADER,
            "501,2026-03-01T10:00:00Z,USD,40.00,,",
            "501,2026-03-01T10:00:00Z,USD,40.00,2026-03-02T10:00:00Z,",
        ]
    )

    report = send_csv(client, brand["key"], text).get_json()

    assert (report["rows"], report["stored"], report["cancelled"]) == (2, 0, 1)
    assert report["duplicates"] == 1
    assert stored() == {}
