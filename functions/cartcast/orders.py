"""Store orders, received in the shape of Shopify's orders/create webhook.

An order is stored once per (brand, order id), and once per (brand, order name) when
the store sends its `name` ("#1001"): a redelivered webhook answers with the order
already stored, and so does a webhook for an order a CSV file without an Id column
stored under its Name (decision 0103).

Attribution is last touch: an order whose landing site carries the UTM parameters
of a cartcast post (utm_content = the post id) is credited to that post when it came
within the attribution window after the post was published (`attribution`). Orders
without such a link, or outside the window, stay unattributed and are reported.

A landing site whose query string cannot be read (a broken percent escape, say) does
not cost the store its order: the order is stored unattributed, without the landing
site, and the answer says why under `landing_site_ignored`. Refusing it would make
the store retry a sale for hours and then drop it from every total.

An order the store marks `"test": true` (Shopify's test gateway, its "Send test
notification" sample) is answered 200 with `"test": true` and stored nowhere.

A cancelled order (`cancelled_at` set), or one whose `financial_status` says no
money was ever taken (`voided`, `expired`), is no sale either: it is answered 200
with `"cancelled": true`, stored nowhere, and an order stored before under its id or
name is removed (`"removed": true`), so revenue never counts money the store gave
back. A `refunded` order was paid and given back in full: it is kept at 0.00.
A refund that came before its order is taken off once the order is stored
(order_refunds.apply_pending).
Its id and name are kept (cancelled_orders, decisions 0100 and 0103): Shopify
delivers at least once and in no set order, so the order's creation may come after
its cancellation, by id or by name; it is answered the same way. Creations take a
brand's turn shared and cancellations alone, so a creation not yet committed is not
missed by a cancellation beside it.

Known limitation: one currency per brand. Revenue is summed as stored, so an order in
another currency than the brand's is refused (400) rather than added to the wrong
total; converting at the order's exchange rate would lift this.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import urllib.parse
from decimal import Decimal
from typing import Any

from cartcast import attribution, brands, order_refunds, validation
from cartcast.db import Transaction
from cartcast.errors import Conflict, InvalidRequest

# The store's ids are indexed (UNIQUE (brand_id, external_id)); a btree entry must
# stay under about 2.7 kB, and no store's id comes near this.
EXTERNAL_ID_LENGTH_MAX = 200

INSERT_ORDER = """
INSERT INTO orders (brand_id, external_id, name, ordered_at, currency, total_price,
    landing_site, referring_site, customer_id, line_items, received_at, webhook_id,
    refunded_in_file)
VALUES (:brand_id, :external_id, :name, :ordered_at, :currency, :total_price,
    :landing_site, :referring_site, :customer_id, CAST(:line_items AS jsonb), :now,
    :webhook_id, :refunded_in_file)
ON CONFLICT DO NOTHING
RETURNING id
"""
SELECT_ORDER = """
SELECT id, external_id, name, ordered_at, currency, total_price, landing_site,
    post_id
FROM orders WHERE brand_id = :brand_id AND external_id = :external_id
"""
SELECT_ORDER_BY_NAME = """
SELECT id, external_id, name, ordered_at, currency, total_price, landing_site,
    post_id
FROM orders WHERE brand_id = :brand_id AND name = :name
"""
# An order a Name-keyed backfill stored takes the store's id when the webhook
# brings it, so what later names the order by id alone (a refund) finds it.
ADOPT_ORDER_ID = """
UPDATE orders SET external_id = :external_id
WHERE brand_id = :brand_id AND name = :name AND external_id = name
    AND NOT EXISTS (SELECT 1 FROM orders o
                    WHERE o.brand_id = :brand_id AND o.external_id = :external_id)
RETURNING id, external_id, name, ordered_at, currency, total_price, landing_site,
    post_id
"""
# A creation holds its brand's turn shared, a cancellation alone: else a
# cancellation would not see, and so not delete, an order inserted beside it and
# not yet committed, nor would that creation see the cancellation's record.
TAKE_CREATION_TURN = "SELECT pg_advisory_xact_lock_shared(7319, hashtext(:brand_id))"
TAKE_CANCELLATION_TURN = "SELECT pg_advisory_xact_lock(7319, hashtext(:brand_id))"
# The name is kept beside the id (sql/060): a cancellation by name alone, before
# the order's id was ever seen, must keep out its creation by id (decision 0103).
RECORD_CANCELLATION = """
INSERT INTO cancelled_orders (brand_id, external_id, name, recorded_at)
VALUES (:brand_id, :external_id, :name, :now)
ON CONFLICT (brand_id, external_id) DO UPDATE
SET name = COALESCE(cancelled_orders.name, EXCLUDED.name)
"""
# A cancelled order is never stored, so refunds waiting for it would wait for good.
DROP_WAITING_REFUNDS = """
DELETE FROM pending_refunds
WHERE brand_id = :brand_id AND order_id = ANY(CAST(:external_ids AS text[]))
"""
SELECT_CANCELLED = """
SELECT external_id, name FROM cancelled_orders
WHERE brand_id = :brand_id
    AND (external_id = ANY(CAST(:external_ids AS text[]))
         OR name = ANY(CAST(:names AS text[])))
"""
# Its day is marked by the orders trigger, so the rollup rewrites it without it.
DELETE_ORDER = """
DELETE FROM orders
WHERE brand_id = :brand_id AND (external_id = :external_id OR name = :name)
RETURNING id, external_id, name
"""
SELECT_ORDER_BY_WEBHOOK = """
SELECT id, external_id, name, ordered_at, currency, total_price, landing_site,
    post_id
FROM orders WHERE brand_id = :brand_id AND webhook_id = :webhook_id
"""
# No order can have come from an X post before X's first post (2006-03-21), and a
# store's clock is not a day ahead of ours: a created_at outside these bounds is a
# typo or a placeholder, and would land the order on a day no report shows.
ORDERED_AT_EARLIEST = dt.datetime(2006, 3, 21, tzinfo=dt.UTC)
ORDERED_AT_AHEAD_MAX = dt.timedelta(days=1)
# Shopify's financial_status values (Admin API, OrderDisplayFinancialStatus,
# shopify.dev/docs/api/admin-graphql/latest/enums/OrderDisplayFinancialStatus):
# voided is "an unpaid (payment authorized but not captured) order was manually
# canceled", expired a payment not captured before the provider's deadline. Neither
# took money: no sale. refunded is "the full amount paid ... was refunded": kept 0.
NO_SALE_STATUSES = frozenset({"voided", "expired"})
REFUNDED_STATUS = "refunded"
# Indexed like the id (orders_one_per_name), so held to the same bound.
ORDER_NAME_LENGTH_MAX = EXTERNAL_ID_LENGTH_MAX
# Shopify's longest status is 18 characters; this only keeps a stray text short.
FINANCIAL_STATUS_LENGTH_MAX = 200
# The query parameters attribution reads (links.post_id_from_landing_site); only a
# flaw in one of these makes a landing site untrustworthy.
ATTRIBUTION_PARAMETERS = frozenset({"utm_source", "utm_medium", "utm_content"})
# A percent sign not followed by two hex digits: no browser or store writes one.
BROKEN_PERCENT_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def receive_order(
    tx: Transaction,
    *,
    brand_id: str,
    body: Any,
    now: dt.datetime,
    window_days: int,
    webhook_id: str | None = None,
) -> dict[str, Any]:
    """Store an order (idempotent on its id) and attribute it when it can be.

    Args:
        webhook_id: the store's id of the delivery that brought the order, if any;
            a second order under the same delivery id is answered as the first.
    """
    if is_test_order(body):
        return {"order": None, "duplicate": False, "test": True}
    if is_cancelled_order(body) or is_no_sale_status(body):
        return receive_cancellation(tx, brand_id=brand_id, body=body, now=now)
    order = parse_order(body, now=now)
    ignored = order.pop("landing_site_ignored")
    brand_currency = brands.get_brand(tx, brand_id)["currency"].strip()
    check_currency(order, brand_currency)
    order["total_price"] = kept_by_store(order["total_price"], body)

    tx.execute(TAKE_CREATION_TURN, brand_id=brand_id)
    if cancelled_among(tx, brand_id=brand_id, orders=[order]):
        return _cancelled_answer(removed=False)
    inserted = tx.scalar(
        INSERT_ORDER, brand_id=brand_id, now=now, webhook_id=webhook_id, **order
    )
    if inserted is not None:
        attribution.attribute_pending(
            tx, brand_id=brand_id, window_days=window_days, order_ids=[inserted]
        )

    stored = tx.one(SELECT_ORDER, brand_id=brand_id, external_id=order["external_id"])
    if stored is None and order["name"] is not None:
        stored = _stored_under_name(tx, brand_id=brand_id, order=order)
        _refuse_a_name_taken(stored, order)
    if stored is None:
        # The insert met the delivery id, not the order id: a redelivery whose
        # body names another order is answered with the order it first brought.
        stored = tx.one(
            SELECT_ORDER_BY_WEBHOOK, brand_id=brand_id, webhook_id=webhook_id
        )
    if stored is not None and order_refunds.apply_pending(
        tx, brand_id=brand_id, order_ids=[stored["external_id"]]
    ):
        stored = tx.one(
            SELECT_ORDER, brand_id=brand_id, external_id=stored["external_id"]
        )
    answer = {"order": stored, "duplicate": inserted is None}
    if ignored:
        answer["landing_site_ignored"] = ignored
    return answer


def is_test_order(body: Any) -> bool:
    """Say whether the store marked the order as a test ("test": true).

    Shopify sets it on orders from its test gateway and on the sample order of
    "Send test notification"; they are not sales, so they are answered and dropped.
    """
    if not isinstance(body, dict) or body.get("test") in (None, False):
        return False
    if body["test"] is not True:
        raise InvalidRequest("'test' must be true or false", field="test")
    return True


def is_cancelled_order(body: Any) -> bool:
    """Say whether the store cancelled the order (`cancelled_at` is a time).

    Shopify sets it when an order is cancelled; its money went back to the buyer,
    so it is no sale to count.
    """
    if not isinstance(body, dict) or body.get("cancelled_at") is None:
        return False
    validation.instant(body["cancelled_at"], "cancelled_at")
    return True


def receive_cancellation(
    tx: Transaction, *, brand_id: str, body: dict, now: dt.datetime
) -> dict[str, Any]:
    """Cancel the order the body names by its id and name, for good.

    Every cancellation takes this path (a cancelled or voided order by JSON or
    webhook, Shopify's orders/cancelled topic), so each takes its brand's turn
    alone and leaves the id behind (decision 0100).
    """
    external_id = order_id(body)
    name = order_name(body)

    tx.execute(TAKE_CANCELLATION_TURN, brand_id=brand_id)
    removed = cancel_order(
        tx, brand_id=brand_id, external_id=external_id, name=name, now=now
    )
    return _cancelled_answer(removed=removed)


def cancel_order(
    tx: Transaction,
    *,
    brand_id: str,
    external_id: str,
    name: str | None = None,
    now: dt.datetime,
) -> bool:
    """Delete the order stored under this id or name and keep both cancelled; say
    whether one was stored.

    The order deleted is kept under its own id and name too: a cancellation by
    name (a CSV keyed by Name) of an order the webhook stored keeps out that
    order's id. The caller holds its brand's cancellation turn
    (TAKE_CANCELLATION_TURN).
    """
    removed = tx.rows(
        DELETE_ORDER, brand_id=brand_id, external_id=external_id, name=name
    )

    kept = {(external_id, name)}
    kept.update((row["external_id"], row["name"] or name) for row in removed)
    for kept_id, kept_name in sorted(kept, key=lambda pair: pair[0]):
        tx.execute(
            RECORD_CANCELLATION,
            brand_id=brand_id,
            external_id=kept_id,
            name=kept_name,
            now=now,
        )
    tx.execute(
        DROP_WAITING_REFUNDS,
        brand_id=brand_id,
        external_ids=sorted(kept_id for kept_id, _ in kept),
    )
    return bool(removed)


def cancelled_among(
    tx: Transaction, *, brand_id: str, orders: list[dict[str, Any]]
) -> set[str]:
    """Return the ids of those of these parsed orders the store has cancelled, by
    their id or their name.

    The caller holds its brand's creation turn (TAKE_CREATION_TURN), so no
    cancellation commits between this answer and its insert.
    """
    rows = tx.rows(
        SELECT_CANCELLED,
        brand_id=brand_id,
        external_ids=[order["external_id"] for order in orders],
        names=[order["name"] for order in orders if order["name"] is not None],
    )
    ids = {row["external_id"] for row in rows}
    names = {row["name"] for row in rows if row["name"] is not None}
    return {
        order["external_id"]
        for order in orders
        if order["external_id"] in ids or order["name"] in names
    }


def _cancelled_answer(*, removed: bool) -> dict[str, Any]:
    return {"order": None, "duplicate": False, "cancelled": True, "removed": removed}


def is_no_sale_status(body: Any) -> bool:
    """Say whether `financial_status` says the store never took the money."""
    return financial_status(body) in NO_SALE_STATUSES


def kept_by_store(total: Decimal, body: Any) -> Decimal:
    """Return what the store kept of `total`: nothing once refunded in full.

    The status decides, not the amounts: an order paid in part and refunded is
    `refunded` with a refund below its total, and the store kept nothing of it.
    """
    return Decimal("0.00") if financial_status(body) == REFUNDED_STATUS else total


def financial_status(body: Any) -> str | None:
    """Read the store's `financial_status`, lower-cased; None when not sent.

    A value cartcast does not act on (paid, pending, one Shopify adds later) is
    kept as a sale: refusing it would lose the order.
    """
    if not isinstance(body, dict) or body.get("financial_status") is None:
        return None
    status = body["financial_status"]
    if not isinstance(status, str) or len(status) > FINANCIAL_STATUS_LENGTH_MAX:
        raise InvalidRequest(
            "'financial_status' must be a string of at most "
            f"{FINANCIAL_STATUS_LENGTH_MAX} characters",
            field="financial_status",
        )
    return status.strip(validation.BLANK).lower() or None


def _stored_under_name(
    tx: Transaction, *, brand_id: str, order: dict[str, Any]
) -> dict[str, Any] | None:
    """Return the order stored under this name, giving it the store's id if a
    backfill without an Id column keyed it by its name."""
    adopted = tx.one(
        ADOPT_ORDER_ID,
        brand_id=brand_id,
        external_id=order["external_id"],
        name=order["name"],
    )
    return adopted or tx.one(
        SELECT_ORDER_BY_NAME, brand_id=brand_id, name=order["name"]
    )


def refuse_a_name_taken_by_another(
    tx: Transaction, *, brand_id: str, order: dict[str, Any]
) -> None:
    """Refuse (409 naming `name`) an order not stored under its own id whose name
    another order id holds; a row a file keyed by that name (its id is the name)
    is the same order, a duplicate, and passes."""
    if order["name"] is None or order["external_id"] == order["name"]:
        return
    if tx.one(SELECT_ORDER, brand_id=brand_id, external_id=order["external_id"]):
        return
    stored = tx.one(SELECT_ORDER_BY_NAME, brand_id=brand_id, name=order["name"])
    if stored is not None and stored["external_id"] != order["name"]:
        _refuse_a_name_taken(stored, order)


def _refuse_a_name_taken(stored: dict[str, Any] | None, order: dict[str, Any]) -> None:
    """Refuse an order whose name another order id holds (409 naming `name`).

    Shopify's names are unique in a store, but a client of POST /v1/orders may
    reuse one (numbering restarted, two channels): answering it as a duplicate of
    the other order would drop its sale while saying 200.
    """
    if stored is not None and stored["external_id"] != order["external_id"]:
        raise Conflict(
            f"'name' {order['name']!r} is the name of the stored order "
            f"{stored['external_id']!r}; an order's name is unique in the brand",
            field="name",
        )


def check_currency(order: dict[str, Any], brand_currency: str) -> None:
    """Refuse an order in another currency than the one the brand reports in."""
    if order["currency"] != brand_currency:
        raise InvalidRequest(
            f"'currency' is {order['currency']}, but the brand reports revenue in "
            f"{brand_currency}; orders in other currencies are not supported yet",
            field="currency",
        )


def parse_order(body: Any, *, now: dt.datetime) -> dict[str, Any]:
    """Validate a store order body and return the column values.

    Beside the columns, `landing_site_ignored` says why an unreadable landing site
    was left out (None when it was kept or absent).
    """
    body = validation.require_object(body)
    external = order_id(body)
    if "created_at" not in body:
        raise InvalidRequest("'created_at' is required", field="created_at")
    if "total_price" not in body:
        raise InvalidRequest("'total_price' is required", field="total_price")
    items = body.get("line_items", [])
    if not isinstance(items, list):
        raise InvalidRequest("'line_items' must be a list", field="line_items")
    landing, ignored = landing_site(body)
    return {
        "external_id": external,
        "name": order_name(body),
        "ordered_at": ordered_at(body["created_at"], now=now),
        "currency": validation.currency(body, "currency"),
        "total_price": validation.money(body["total_price"], "total_price"),
        "landing_site": landing,
        "landing_site_ignored": ignored,
        "referring_site": refuse_control_characters(
            validation.text(
                body, "referring_site", required=False, nullable=True, max_len=2000
            ),
            "referring_site",
        ),
        "customer_id": _customer_id(body.get("customer")),
        "line_items": json.dumps(items),
        # Only a CSV row says what was refunded before it was stored.
        "refunded_in_file": None,
    }


def order_id(body: dict) -> str:
    """Return the store's order id as text, refusing one no store writes."""
    return store_id(body, "id", what="the store's order id")


def store_id(body: dict, name: str, *, what: str) -> str:
    """Return the store id under `name` (an integer or a string) as text, refusing
    one no store writes; `what` says in the refusal what the id is."""
    external = body.get(name)
    if external is None:
        raise InvalidRequest(f"'{name}' ({what}) is required", field=name)
    if isinstance(external, bool) or not isinstance(external, (int, str)):
        raise InvalidRequest(
            f"'{name}' ({what}) must be an integer or a string", field=name
        )
    if not str(external).strip(validation.BLANK):
        raise InvalidRequest(f"'{name}' ({what}) must not be blank", field=name)
    # Measured as sent, as the spec's maxLength is (it bounds a string id only).
    if len(str(external)) > EXTERNAL_ID_LENGTH_MAX:
        raise InvalidRequest(
            f"'{name}' is longer than {EXTERNAL_ID_LENGTH_MAX} characters", field=name
        )
    refuse_control_characters(str(external), name)
    return str(external).strip(validation.BLANK)


def order_name(body: Any) -> str | None:
    """Return the store's order name ("#1001"), or None when not sent or blank.

    Shopify's `name` is what its orders export writes under Name; it is unique in a
    store, so it finds an order a backfill keyed by Name stored (decision 0103).
    """
    if not isinstance(body, dict) or body.get("name") is None:
        return None
    name = body["name"]
    if not isinstance(name, str):
        raise InvalidRequest(
            "'name' (the store's order name) must be a string", field="name"
        )
    if len(name) > ORDER_NAME_LENGTH_MAX:
        raise InvalidRequest(
            f"'name' is longer than {ORDER_NAME_LENGTH_MAX} characters", field="name"
        )
    refuse_control_characters(name, "name")
    return name.strip(validation.BLANK) or None


def ordered_at(value: Any, *, now: dt.datetime) -> dt.datetime:
    """Read `created_at`, refusing a time before X existed or over a day ahead."""
    instant = validation.instant(value, "created_at")
    latest = now + ORDERED_AT_AHEAD_MAX
    if not ORDERED_AT_EARLIEST <= instant <= latest:
        raise InvalidRequest(
            f"'created_at' must lie between {ORDERED_AT_EARLIEST.isoformat()} (X's "
            f"first post) and {latest.isoformat()} (a day from now)",
            field="created_at",
        )
    return instant


def landing_site(body: dict) -> tuple[str | None, str | None]:
    """Return the order's landing page, or None and why its UTM parameters cannot be
    read.

    A broken percent escape (`%zz`), one that decodes to invalid UTF-8, or a raw
    space in a UTM parameter attribution reads (utm_source, utm_medium,
    utm_content) means it is not what the browser sent, so utm_content cannot be
    trusted either way. The same flaw in another parameter (a search for
    `q=caf%E9` or `q=red shoes`, or a utm_term cartcast never reads) says nothing
    about those three: the landing site is kept and attributed. Control characters
    anywhere drop it, since they would be stored and printed. Empty fields and bare
    flags (`?a&&b`) are what browsers and stores do write, and are kept.
    """
    value = validation.text(
        body, "landing_site", required=False, nullable=True, max_len=2000
    )
    if not value:
        return value, None
    problem = None
    if validation.has_unprintable(value):
        problem = "it contains control characters"
    else:
        try:
            query = urllib.parse.urlsplit(value).query
        except ValueError as error:
            problem = f"it cannot be read as a URL ({error})"
        else:
            problem = _unreadable_utm_parameter(query)
    if problem:
        return None, (
            f"'landing_site' was left out and the order not attributed: {problem}"
        )
    return value, None


def _unreadable_utm_parameter(query: str) -> str | None:
    """Say which UTM parameter attribution reads cannot be decoded, if any."""
    for field in query.split("&"):
        raw_name, _, raw_value = field.partition("=")
        name = urllib.parse.unquote_plus(raw_name, errors="replace")
        if name.lower() not in ATTRIBUTION_PARAMETERS:
            continue
        if " " in field:
            return f"its {name} contains a space"
        if BROKEN_PERCENT_ESCAPE.search(field):
            return f"its {name} has a % not followed by two hex digits"
        try:
            urllib.parse.unquote_plus(raw_value, errors="strict")
        except UnicodeDecodeError:
            return f"its {name} is not UTF-8 once decoded"
    return None


def _customer_id(customer: Any) -> str | None:
    """Return the store's customer id as text; a guest checkout has none."""
    if customer is None:
        return None
    if not isinstance(customer, dict):
        raise InvalidRequest("'customer' must be an object", field="customer")
    customer_id = customer.get("id")
    if customer_id is None:
        return None
    if isinstance(customer_id, bool) or not isinstance(customer_id, (int, str)):
        raise InvalidRequest(
            "'customer.id' must be an integer or a string", field="customer.id"
        )
    text = str(customer_id).strip(validation.BLANK)
    if len(str(customer_id)) > EXTERNAL_ID_LENGTH_MAX:
        raise InvalidRequest(
            f"'customer.id' is longer than {EXTERNAL_ID_LENGTH_MAX} characters",
            field="customer.id",
        )
    refuse_control_characters(text, "customer.id")
    return text or None


def refuse_control_characters(value: str | None, name: str) -> str | None:
    """Refuse a value with characters no store writes (NUL, newlines, escapes).

    They would be stored as they came and printed into reports and logs.
    """
    if value is not None and validation.has_unprintable(value):
        raise InvalidRequest(
            f"'{name}' contains control or other unprintable characters", field=name
        )
    return value
