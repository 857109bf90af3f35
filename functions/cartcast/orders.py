"""Store orders, received in the shape of Shopify's orders/create webhook.

An order is stored once per (brand, order id): a redelivered webhook answers with the
order already stored. Attribution is last touch: an order whose landing site carries
the UTM parameters of a cartcast post (utm_content = the post id) is credited to that
post when it came within the attribution window after the post was published
(`attribution`). Orders without such a link, or outside the window, stay
unattributed and are reported.

Known limitation: one currency per brand. Revenue is summed as stored, so an order in
another currency than the brand's is refused (400) rather than added to the wrong
total; converting at the order's exchange rate would lift this.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from cartcast import attribution, brands, validation
from cartcast.db import Transaction
from cartcast.errors import InvalidRequest

# The store's ids are indexed (UNIQUE (brand_id, external_id)); a btree entry must
# stay under about 2.7 kB, and no store's id comes near this.
EXTERNAL_ID_LENGTH_MAX = 200

INSERT_ORDER = """
INSERT INTO orders (brand_id, external_id, ordered_at, currency, total_price,
    landing_site, referring_site, customer_id, line_items, received_at)
VALUES (:brand_id, :external_id, :ordered_at, :currency, :total_price, :landing_site,
    :referring_site, :customer_id, CAST(:line_items AS jsonb), :now)
ON CONFLICT (brand_id, external_id) DO NOTHING
RETURNING id
"""
SELECT_ORDER = """
SELECT id, external_id, ordered_at, currency, total_price, landing_site, post_id
FROM orders WHERE brand_id = :brand_id AND external_id = :external_id
"""


def receive_order(
    tx: Transaction, *, brand_id: str, body: Any, now: dt.datetime, window_days: int
) -> dict[str, Any]:
    """Store an order (idempotent on its id) and attribute it when it can be."""
    order = parse_order(body)
    brand_currency = brands.get_brand(tx, brand_id)["currency"].strip()
    if order["currency"] != brand_currency:
        raise InvalidRequest(
            f"'currency' is {order['currency']}, but the brand reports revenue in "
            f"{brand_currency}; orders in other currencies are not supported yet",
            field="currency",
        )

    inserted = tx.scalar(INSERT_ORDER, brand_id=brand_id, now=now, **order)
    if inserted is not None:
        attribution.attribute_pending(tx, brand_id=brand_id, window_days=window_days)

    stored = tx.one(SELECT_ORDER, brand_id=brand_id, external_id=order["external_id"])
    return {"order": stored, "duplicate": inserted is None}


def parse_order(body: Any) -> dict[str, Any]:
    """Validate a store order body and return the column values."""
    body = validation.require_object(body)
    external = body.get("id")
    if (
        isinstance(external, bool)
        or not isinstance(external, (int, str))
        or not str(external).strip()
    ):
        raise InvalidRequest("'id' (the store's order id) is required", field="id")
    if len(str(external).strip()) > EXTERNAL_ID_LENGTH_MAX:
        raise InvalidRequest(
            f"'id' is longer than {EXTERNAL_ID_LENGTH_MAX} characters", field="id"
        )
    if "created_at" not in body:
        raise InvalidRequest("'created_at' is required", field="created_at")
    if "total_price" not in body:
        raise InvalidRequest("'total_price' is required", field="total_price")
    items = body.get("line_items", [])
    if not isinstance(items, list):
        raise InvalidRequest("'line_items' must be a list", field="line_items")
    return {
        "external_id": str(external).strip(),
        "ordered_at": validation.instant(body["created_at"], "created_at"),
        "currency": validation.currency(body, "currency"),
        "total_price": validation.money(body["total_price"], "total_price"),
        "landing_site": validation.text(
            body, "landing_site", required=False, max_len=2000
        ),
        "referring_site": validation.text(
            body, "referring_site", required=False, max_len=2000
        ),
        "customer_id": _customer_id(body.get("customer")),
        "line_items": json.dumps(items),
    }


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
    text = str(customer_id).strip()
    if len(text) > EXTERNAL_ID_LENGTH_MAX:
        raise InvalidRequest(
            f"'customer.id' is longer than {EXTERNAL_ID_LENGTH_MAX} characters",
            field="customer.id",
        )
    return text or None
