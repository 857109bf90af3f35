"""Store orders pushed by the store itself, signed instead of sent with an API key.

Shopify's order webhooks are the model (decision 0020). The store POSTs to
/v1/webhooks/orders/{brand_slug}, names the topic in X-Shopify-Topic and signs the
body: X-Shopify-Hmac-Sha256 is the base64 of HMAC-SHA256 over the raw body, keyed
with the webhook secret an admin set on the brand (PATCH /v1/brand
`webhook_secret`). The signature is checked on the bytes as they arrived, before
the body is parsed, and compared in constant time.

Three topics, on one route and one secret (decision 0104):
- orders/create (or no topic): the order is stored, as POST /v1/orders does;
- orders/cancelled: the body is the order; the one stored under its id or name is
  removed, and its day rewritten at the next rollup (`"cancelled": true`);
- refunds/create: the body is a refund; its successful and pending refund
  transactions are taken off the stored order's total once per refund id, or
  wait for the order when it is not stored yet (order_refunds.py).

What comes back:
- no secret set, an unknown slug, or a missing or wrong signature: 401, nothing
  stored (the three read alike, so the route does not say which slugs exist);
- another topic: 400 naming X-Shopify-Topic;
- a redelivery (the same X-Shopify-Webhook-Id, or the same order id or name): 200
  with the order first stored; Shopify retries anything but a 2xx;
- a bad order (negative total, foreign currency): the 400 of POST /v1/orders,
  naming the field; an unreadable landing site is no reason to lose a sale, so that
  order is stored unattributed (`orders.landing_site`).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from typing import Any

from cartcast import brands, offboarding, order_refunds, orders, validation
from cartcast.db import Transaction
from cartcast.errors import InvalidRequest, Unauthorized

SIGNATURE_HEADER = "X-Shopify-Hmac-Sha256"
TOPIC_HEADER = "X-Shopify-Topic"
WEBHOOK_ID_HEADER = "X-Shopify-Webhook-Id"
SHOP_DOMAIN_HEADER = "X-Shopify-Shop-Domain"
# The challenge of a refused delivery's 401 (RFC 9110 section 11.6.1 wants one):
# the store signs with no HTTP authentication scheme, so it names the header read.
SIGNATURE_CHALLENGE = f'HMAC-SHA256 realm="cartcast", header="{SIGNATURE_HEADER}"'
ORDER_TOPIC = "orders/create"
CANCELLED_TOPIC = "orders/cancelled"
REFUND_TOPIC = "refunds/create"
TOPICS = (ORDER_TOPIC, CANCELLED_TOPIC, REFUND_TOPIC)
WEBHOOK_ID_LENGTH_MAX = orders.EXTERNAL_ID_LENGTH_MAX
# Keyed by slug: the slug is in the URL the store is given, and is fixed for life.
SELECT_SIGNING_BRAND = """
SELECT id, order_webhook_secret FROM brands WHERE slug = :slug
"""
# Checked against so that an unknown slug costs an HMAC like a known one.
_NO_SECRET = b"no secret: this signature matches nothing a store could send"


def receive_signed_order(
    tx: Transaction,
    *,
    brand_slug: str,
    raw_body: bytes,
    headers: Any,
    parse_body: Any,
    now: dt.datetime,
    window_days: int,
) -> dict[str, Any]:
    """Verify a signed order delivery, then store it as POST /v1/orders does.

    Args:
        raw_body: the request body exactly as received; the signature covers it.
        parse_body: turns the verified raw body into JSON (web.parse_json).

    Raises:
        Unauthorized: the signature does not match (nothing is stored).
        InvalidRequest: the topic or the order is wrong, naming the field.
    """
    brand = None
    if brands.SLUG_PATTERN.fullmatch(brand_slug):
        brand = tx.one(SELECT_SIGNING_BRAND, slug=brand_slug)
    secret = brand["order_webhook_secret"] if brand else None
    signed = signature_matches(secret, raw_body, headers.get(SIGNATURE_HEADER))
    if brand is None or secret is None or not signed:
        raise Unauthorized(
            f"missing or wrong {SIGNATURE_HEADER} signature for this brand's "
            "webhook secret",
            challenge=SIGNATURE_CHALLENGE,
        )
    # Past its offboarding grace a brand's keys no longer work, and the sweep is
    # deleting its rows over several ticks: an order stored now would mark a day
    # the rollup then rewrites from half-deleted tables, the day the brand keeps.
    if tx.one(offboarding.PAST_GRACE, brand_id=brand["id"], now=now):
        raise Unauthorized(
            "this brand is offboarded; its order webhook is closed",
            challenge=SIGNATURE_CHALLENGE,
        )

    topic = _topic(headers.get(TOPIC_HEADER))
    webhook_id = _webhook_id(headers.get(WEBHOOK_ID_HEADER))
    brand_id = str(brand["id"])

    if topic == CANCELLED_TOPIC:
        return _cancel_order(tx, brand_id=brand_id, body=parse_body(raw_body), now=now)
    if topic == REFUND_TOPIC:
        return order_refunds.receive_refund(
            tx, brand_id=brand_id, body=parse_body(raw_body), now=now
        )

    if webhook_id is not None:
        seen = tx.one(
            orders.SELECT_ORDER_BY_WEBHOOK, brand_id=brand_id, webhook_id=webhook_id
        )
        if seen is not None:
            return {"order": seen, "duplicate": True}
    return orders.receive_order(
        tx,
        brand_id=brand_id,
        body=parse_body(raw_body),
        now=now,
        window_days=window_days,
        webhook_id=webhook_id,
    )


def sign(secret: str, raw_body: bytes) -> str:
    """Return the X-Shopify-Hmac-Sha256 value a store would send for `raw_body`."""
    digest = hmac.new(secret.encode(), raw_body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def signature_matches(secret: str | None, raw_body: bytes, header: str | None) -> bool:
    """Compare the header with the body's signature in constant time."""
    expected = sign(secret, raw_body) if secret else sign(_NO_SECRET.decode(), b"")
    # compare_digest takes str only when ASCII; a header with other characters is
    # compared as bytes and simply does not match.
    given = (header or "").strip().encode("utf-8", "surrogateescape")
    return hmac.compare_digest(expected.encode("ascii"), given) and bool(secret)


def _cancel_order(
    tx: Transaction, *, brand_id: str, body: Any, now: dt.datetime
) -> dict[str, Any]:
    """Cancel the order Shopify says was cancelled (orders/cancelled), for good.

    The topic is what says it: the body's cancelled_at is not needed. It goes the
    way of every cancellation (orders.receive_cancellation): the order's id is
    kept, so its orders/create delivered again after this is not stored, and a
    second delivery of this answers `"removed": false`.
    """
    body = validation.require_object(body)
    return orders.receive_cancellation(tx, brand_id=brand_id, body=body, now=now)


def _topic(value: str | None) -> str:
    """Read X-Shopify-Topic; a delivery without one is a new order, as before."""
    if value is None:
        return ORDER_TOPIC
    topic = value.strip()
    if topic not in TOPICS:
        raise InvalidRequest(
            f"{TOPIC_HEADER} must be one of {', '.join(TOPICS)}",
            field=TOPIC_HEADER,
        )
    return topic


def _webhook_id(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    value = value.strip()
    if len(value) > WEBHOOK_ID_LENGTH_MAX or not value.isprintable():
        raise InvalidRequest(
            f"{WEBHOOK_ID_HEADER} must be at most {WEBHOOK_ID_LENGTH_MAX} printable "
            "characters",
            field=WEBHOOK_ID_HEADER,
        )
    return value
