"""Backfill past orders from a CSV file in the columns of Shopify's orders export.

POST /v1/orders/import with the brand's key and a text/csv body. The columns read
(decision 0020), matched by header name without regard to case:

    Id or Name      the order id: Id when the header has it (it is the id the
                    webhook sends, so an order sent both ways is stored once; a
                    row with an empty Id is refused), else Name. Name is kept as
                    the order's name either way, and an order stored under the
                    same name (the webhook sends it) is the same order
                    (decision 0103); an order a file keyed by Name stored
                    takes its Id from a later file that has one
    Created at      "2026-03-02 10:00:00 -0500" as Shopify exports it, or RFC 3339
    Currency        ISO 4217 code, the brand's
    Total           the order total, not negative ("-0" is 0)
    Landing Site    optional; carries the post's UTM parameters
    Referring Site  optional
    Cancelled at    optional; a row with a time here is no sale: it is not stored,
                    an order stored before under its id or name is removed,
                    and a later row or webhook of that id is counted as
                    cancelled, not stored; a value that is no time is a
                    reported row
    Financial Status optional; voided or expired is no sale, as Cancelled at;
                    refunded was paid and given back in full: kept as 0.00
    Refunded Amount optional; taken off the Total, so revenue is what the store
                    kept (a refund larger than the Total is a reported row);
                    kept on the order, so a refund delivered later that is this
                    money is not taken off again (decision 0105)

Any other column is ignored. Shopify writes one row per line item and fills the
order's fields on the first only; a later row of an order already read, with an
empty Total, is such a continuation and is skipped quietly.

Each row is checked on its own: a broken row is reported with its line number and
field and the others are stored. Storing is idempotent on the order id, and
attribution runs once over the orders the file stored, as it does for a webhook's
order (the rollup retries the rest, attribution.py); the daily
KPIs of the days the file added orders to are then recomputed. Refunds
delivered before the file's orders were stored are taken off them. Files of one
brand are imported one at a time.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from decimal import Decimal
from typing import Any

from cartcast import attribution, brands, kpis, order_refunds, orders, validation
from cartcast.db import Transaction
from cartcast.errors import Conflict, InvalidRequest

# A year of a busy store's orders fits in a few files; more orders than this in one
# request would hold its transaction for too long (the 2 MiB body cap bounds the
# line items).
IMPORT_ROWS_MAX = 5000
ID_COLUMNS = ("id", "name")
REQUIRED_COLUMNS = ("created at", "currency", "total")
# Read beside the order's fields: what the store gave back (Shopify's export
# writes both on an order's first row).
CANCELLED_COLUMN = "cancelled at"
REFUNDED_COLUMN = "refunded amount"
STATUS_COLUMN = "financial status"
COLUMN_FIELDS = {
    "created at": "created_at",
    "currency": "currency",
    "total": "total_price",
    "landing site": "landing_site",
    "referring site": "referring_site",
}
# Shopify's export time with second 60 ("2016-12-31 18:59:60 -0500"), which
# strptime cannot make a datetime of: it goes to validation as RFC 3339 instead.
SHOPIFY_SECOND_60 = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2}) ([0-9]{2}:[0-9]{2}:60(?:\.[0-9]+)?) "
    r"([+-][0-9]{2})([0-9]{2})"
)
# One import of a brand at a time (decision 0105); a class of its own, so that
# JSON and webhook orders (7319) do not wait for a file.
TAKE_IMPORT_TURN = "SELECT pg_advisory_xact_lock(7320, hashtext(:brand_id))"
# csv's default field limit is 128 kB; a landing site is at most 2,000 characters.
FIELD_SIZE_MAX = 4000


def import_orders(
    tx: Transaction, *, brand_id: str, text: str, now: dt.datetime, window_days: int
) -> dict[str, Any]:
    """Store every valid order row of a CSV export; report the rest row by row."""
    key_column, rows = _read_rows(text)
    brand = brands.get_brand(tx, brand_id)
    brand_currency = brand["currency"].strip()
    stored_ids: list[str] = []
    arrived_ids: list[str] = []

    report: dict[str, Any] = {
        "rows": 0,
        "stored": 0,
        "duplicates": 0,
        "cancelled": 0,
        "errors": [],
        "warnings": [],
    }
    seen: set[str] = set()
    lines: dict[str, int] = {}
    valid: list[dict[str, Any]] = []
    # By id: a cancellation written on two rows of the file is one.
    cancelled: dict[str, str | None] = {}
    for line, row in rows:
        order_key = _order_key(row, key_column)
        if order_key in seen and not row.get("total", "").strip():
            continue  # a further line item of an order already read or refused
        report["rows"] += 1
        if order_key:
            seen.add(order_key)
        try:
            if _is_no_sale(row):
                external_id, name = _cancelled_key(row, order_key)
                if external_id in cancelled:
                    report["duplicates"] += 1
                cancelled[external_id] = cancelled.get(external_id) or name
                continue
            body = _as_order(row, order_key)
            order = orders.parse_order(body, now=now)
            orders.check_currency(order, brand_currency)
            placed = order["total_price"]
            net = _net_of_refund(placed, row)
            order["total_price"] = orders.kept_by_store(net, body)
            # What the file took off is kept, so a refund delivered later that is
            # that same money is not taken off again (order_refunds.py).
            order["refunded_in_file"] = placed - order["total_price"] or None
        except InvalidRequest as error:
            report["errors"].append(
                {
                    "line": line,
                    "id": order_key,
                    "field": error.field,
                    "message": str(error),
                }
            )
            continue
        ignored = order.pop("landing_site_ignored")
        if ignored:
            report["warnings"].append(
                {
                    "line": line,
                    "id": order["external_id"],
                    "field": "landing_site",
                    "message": ignored,
                }
            )
        seen.add(order["external_id"])
        lines[order["external_id"]] = line
        valid.append(order)

    # A row of an order the file also cancels is that order: a cancellation is
    # final, so it is not stored only to be removed, and counts as a duplicate.
    cancelled_names = {name for name in cancelled.values() if name is not None}
    rows_placed = len(valid)
    valid = [
        order
        for order in valid
        if order["external_id"] not in cancelled
        and order["name"] not in cancelled_names
    ]
    report["duplicates"] += rows_placed - len(valid)

    # One file of a brand at a time: the inserts wait for another file's rows of
    # the same id or name, and two files keyed by Id and by Name sort their rows
    # apart, so each would wait for the other (deadlock detected, a 503).
    tx.execute(TAKE_IMPORT_TURN, brand_id=brand_id)

    # A file that cancels takes its brand's turn alone, as a cancelled order by
    # JSON does (orders.TAKE_CANCELLATION_TURN); an order cancelled before is no
    # sale, however often its creation comes again.
    turn = orders.TAKE_CANCELLATION_TURN if cancelled else orders.TAKE_CREATION_TURN
    tx.execute(turn, brand_id=brand_id)
    cancelled_before = orders.cancelled_among(tx, brand_id=brand_id, orders=valid)
    report["cancelled"] += len(cancelled_before)
    valid = [order for order in valid if order["external_id"] not in cancelled_before]

    # An insert waits for another transaction's uncommitted order of the same id:
    # two files of the same orders in different orders would each wait for the
    # other, and PostgreSQL fails one (deadlock detected). In one order, the
    # second waits for the first. The sort is stable: a repeated id stays second.
    for order in sorted(valid, key=lambda order: order["external_id"]):
        inserted = tx.scalar(
            orders.INSERT_ORDER, brand_id=brand_id, now=now, webhook_id=None, **order
        )
        if inserted is not None:
            report["stored"] += 1
            stored_ids.append(str(inserted))
            arrived_ids.append(order["external_id"])
            continue
        try:
            orders.refuse_a_name_taken_by_another(tx, brand_id=brand_id, order=order)
        except Conflict as error:
            report["errors"].append(
                {
                    "line": lines[order["external_id"]],
                    "id": order["external_id"],
                    "field": error.field,
                    "message": str(error),
                }
            )
            continue
        report["duplicates"] += 1
        if _adopted_id(tx, brand_id=brand_id, order=order):
            arrived_ids.append(order["external_id"])

    # In the inserts' order, for the same reason.
    for external_id, name in sorted(cancelled.items()):
        orders.cancel_order(
            tx, brand_id=brand_id, external_id=external_id, name=name, now=now
        )
    report["cancelled"] += len(cancelled)
    # Refunds delivered before these orders were stored, or took the id a
    # refund names (order_refunds.py).
    order_refunds.apply_pending(tx, brand_id=brand_id, order_ids=sorted(arrived_ids))

    report["attributed"] = attribution.attribute_pending(
        tx, brand_id=brand_id, window_days=window_days, order_ids=stored_ids
    )
    # The rollup reaches every marked day at its next run; the file's days are
    # written now so that the report shows the backfill as soon as it is answered.
    kpis.recompute_marked_days(tx, now=now, brand_id=brand_id)
    return report


def _adopted_id(tx: Transaction, *, brand_id: str, order: dict[str, Any]) -> bool:
    """Give an order a file keyed by Name stored the store's id this row brings, as
    its webhook would (decision 0103); say whether it took it.

    What names the order by id alone (a refund waiting for it) then finds it.
    """
    if order["name"] is None or order["external_id"] == order["name"]:
        return False
    adopted = tx.one(
        orders.ADOPT_ORDER_ID,
        brand_id=brand_id,
        external_id=order["external_id"],
        name=order["name"],
    )
    return adopted is not None


def _read_rows(text: str) -> tuple[str, list[tuple[int, dict[str, str]]]]:
    """Return the key column, and (line, row by lower-cased column) for each row."""
    reader = csv.reader(
        io.StringIO(text.removeprefix("\ufeff"), newline=""), strict=True
    )
    try:
        header = next(reader, None)
        if header is None:
            raise InvalidRequest("the CSV file is empty", field="body")
        columns = [name.strip().lower() for name in header]
        _check_columns(columns)
        key_column = "id" if "id" in columns else "name"

        rows = []
        # The cap counts orders, not lines: Shopify writes a line per line item,
        # and a row without an id counts as an order of its own.
        order_keys: set[str] = set()
        # A record is named by its first line: a quoted cell may run over several,
        # and the reader's line_num is then the record's last.
        first_line = reader.line_num + 1
        for record in reader:
            line, first_line = first_line, reader.line_num + 1
            if not any(cell.strip() for cell in record):
                continue
            if any(len(cell) > FIELD_SIZE_MAX for cell in record):
                raise InvalidRequest(
                    f"line {line} has a cell longer than {FIELD_SIZE_MAX} characters",
                    field="body",
                )
            row = dict(zip(columns, record, strict=False))
            order_keys.add(_order_key(row, key_column) or f"line {line}")
            if len(order_keys) > IMPORT_ROWS_MAX:
                raise InvalidRequest(
                    f"the CSV file has more than {IMPORT_ROWS_MAX} orders; "
                    "split it into smaller files",
                    field="body",
                )
            rows.append((line, row))
    except csv.Error as error:
        raise InvalidRequest(
            f"the CSV file cannot be read at line {reader.line_num}: {error}",
            field="body",
        ) from error
    return key_column, rows


def _check_columns(columns: list[str]) -> None:
    # csv keeps the last of two cells under one name: a second Id or Total would
    # stand in for the first without a word. Columns not read may repeat.
    read = (
        *ID_COLUMNS,
        *COLUMN_FIELDS,
        CANCELLED_COLUMN,
        REFUNDED_COLUMN,
        STATUS_COLUMN,
    )
    repeated = next(
        (name for name in read if columns.count(name) > 1),
        None,
    )
    if repeated is not None:
        raise InvalidRequest(
            f"the CSV header names the column {_spelled(repeated)} twice; keep one",
            field="body",
        )
    missing = [_spelled(name) for name in REQUIRED_COLUMNS if name not in columns]
    if not any(name in columns for name in ID_COLUMNS):
        missing.insert(0, "Id or Name")
    if missing:
        raise InvalidRequest(
            f"the CSV header lacks {', '.join(missing)} (the columns of Shopify's "
            "orders export)",
            field="body",
        )


def _spelled(column: str) -> str:
    """A column's name as Shopify's export writes it: "Id", "Created at"."""
    return column.capitalize()


def _order_key(row: dict[str, str], key_column: str) -> str:
    """Read the order id from the file's one key column.

    A file with an Id column is keyed by Id alone, and a row without one is refused
    (naming id): falling back to its Name would store the order a second time under
    another key.
    """
    return (row.get(key_column) or "").strip()


def _cancelled_key(row: dict[str, str], order_key: str) -> tuple[str, str | None]:
    """Return the id and name of the order the row cancels, refusing a row that
    cannot.

    A cancellation is kept for good (orders.cancel_order), so a "no" or "N/A"
    in the column, or an id no store writes, is a reported row, as the JSON
    route refuses a `cancelled_at` that is no time. A voided or expired row
    needs no time there.
    """
    external_id = orders.order_id({"id": order_key or None})
    name = orders.order_name({"name": _order_name(row)})
    if (row.get(CANCELLED_COLUMN) or "").strip():
        validation.instant(_created_at(row[CANCELLED_COLUMN]), "cancelled_at")
    return external_id, name


def _order_name(row: dict[str, str]) -> str | None:
    """Read the order's name ("#1001"), kept whichever column keys the file."""
    return (row.get("name") or "").strip() or None


def _is_no_sale(row: dict[str, str]) -> bool:
    """Say whether the row is no sale: cancelled, or its payment voided or expired."""
    if (row.get(CANCELLED_COLUMN) or "").strip():
        return True
    return orders.is_no_sale_status({"financial_status": row.get(STATUS_COLUMN)})


def _net_of_refund(total: Decimal, row: dict[str, str]) -> Decimal:
    """Take the row's Refunded Amount off the order's total: what the store kept."""
    refunded = row.get(REFUNDED_COLUMN) or ""
    if not refunded.strip():
        return total
    amount = validation.money(refunded, "refunded_amount")
    if amount > total:
        raise InvalidRequest(
            f"'refunded_amount' ({amount}) is more than the order's total ({total})",
            field="refunded_amount",
        )
    return total - amount


def _as_order(row: dict[str, str], order_key: str) -> dict[str, Any]:
    """Spell a CSV row as the order body POST /v1/orders takes.

    A blank cell is a field left out; any other is taken as written, so that a
    Total of " 5" or a Currency of "USD " is refused as the JSON order refuses it.
    """
    body: dict[str, Any] = {
        "id": order_key or None,
        "name": _order_name(row),
        "financial_status": row.get(STATUS_COLUMN) or None,
    }
    for column, field in COLUMN_FIELDS.items():
        value = row.get(column) or ""
        if value.strip():
            body[field] = value
    if "created_at" in body:
        body["created_at"] = _created_at(body["created_at"])
    if "currency" not in body:
        raise InvalidRequest("'currency' is required", field="currency")
    return body


def _created_at(value: str) -> str:
    """Turn Shopify's export time into RFC 3339; leave anything else to validation."""
    if not value.isascii():
        # strptime reads any Unicode digit ("\u0662026" as 2026); validation
        # refuses them, as it refuses them in an RFC 3339 time.
        return value
    shopify = SHOPIFY_SECOND_60.fullmatch(value)
    if shopify:
        # A datetime has no second 60: validation reads it as RFC 3339 does.
        return f"{shopify[1]}T{shopify[2]}{shopify[3]}:{shopify[4]}"
    try:
        return dt.datetime.strptime(value, "%Y-%m-%d %H:%M:%S %z").isoformat()
    except ValueError:
        return value
