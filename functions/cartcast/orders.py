"""Store orders, received in the shape of Shopify's orders/create webhook.

An order is stored once per (brand, order id): a redelivered webhook answers with the
order already stored. Attribution is last touch: an order whose landing site carries
the UTM parameters of a cartcast post (utm_content = the post id) is credited to that
post when it came within the attribution window after the post was published. Orders
without such a link, or outside the window, stay unattributed and are reported.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from cartcast import links, validation
from cartcast.db import Transaction
from cartcast.errors import InvalidRequest

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
SELECT_UNATTRIBUTED = """
SELECT id, landing_site, ordered_at FROM orders
WHERE brand_id = :brand_id AND post_id IS NULL AND landing_site LIKE '%utm_content=%'
"""
ATTRIBUTE = """
UPDATE orders o SET post_id = p.id
FROM posts p
WHERE o.id = :order_id AND o.post_id IS NULL
  AND p.id = :post_id AND p.brand_id = o.brand_id AND p.state = 'published'
  AND o.ordered_at >= p.published_at
  AND o.ordered_at < p.published_at + make_interval(days => :window_days)
"""


def receive_order(
    tx: Transaction, *, brand_id: str, body: Any, now: dt.datetime, window_days: int
) -> dict[str, Any]:
    """Store an order (idempotent on its id) and attribute it when it can be."""
    order = parse_order(body)

    inserted = tx.scalar(INSERT_ORDER, brand_id=brand_id, now=now, **order)
    if inserted is not None:
        attribute_pending(tx, brand_id=brand_id, window_days=window_days)

    stored = tx.one(SELECT_ORDER, brand_id=brand_id, external_id=order["external_id"])
    return {"order": stored, "duplicate": inserted is None}


def parse_order(body: Any) -> dict[str, Any]:
    body = validation.require_object(body)
    external = body.get("id")
    if (
        isinstance(external, bool)
        or not isinstance(external, (int, str))
        or not str(external).strip()
    ):
        raise InvalidRequest("'id' (the store's order id) is required", field="id")
    if "created_at" not in body:
        raise InvalidRequest("'created_at' is required", field="created_at")
    if "total_price" not in body:
        raise InvalidRequest("'total_price' is required", field="total_price")
    currency = validation.text(body, "currency", max_len=3).upper()
    if len(currency) != 3 or not currency.isalpha():
        raise InvalidRequest("'currency' must be a 3-letter code", field="currency")
    items = body.get("line_items", [])
    if not isinstance(items, list):
        raise InvalidRequest("'line_items' must be a list", field="line_items")
    customer = body.get("customer")
    customer_id = customer.get("id") if isinstance(customer, dict) else None
    return {
        "external_id": str(external).strip(),
        "ordered_at": validation.instant(body["created_at"], "created_at"),
        "currency": currency,
        "total_price": validation.money(body["total_price"], "total_price"),
        "landing_site": validation.text(
            body, "landing_site", required=False, max_len=2000
        ),
        "referring_site": validation.text(
            body, "referring_site", required=False, max_len=2000
        ),
        "customer_id": None if customer_id is None else str(customer_id),
        "line_items": json.dumps(items),
    }


def attribute_pending(tx: Transaction, *, brand_id: str, window_days: int) -> int:
    """Credit unattributed orders that carry a cartcast UTM link; return how many."""
    credited = 0
    for order in tx.rows(SELECT_UNATTRIBUTED, brand_id=brand_id):
        post_id = links.post_id_from_landing_site(order["landing_site"])
        if post_id is None:
            continue
        credited += tx.execute(
            ATTRIBUTE, order_id=order["id"], post_id=post_id, window_days=window_days
        )
    return credited
