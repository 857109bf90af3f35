"""Refunds the store made after an order was stored, taken off the order's total.

Shopify's refunds/create webhook carries a refund (REST Admin API, Refund
resource): its `id`, the `order_id` it belongs to, and `transactions`, the records
of money returned. Only a transaction of kind `refund` whose status is `success`
returned money (a refund object alone does not guarantee it, shopify.dev); their
amounts are added and taken off the stored order's `total_price`, never below 0.

Shopify delivers a webhook at least once, so the refund's id is kept on the order
(`orders.refunds`, sql/060) in the same statement that takes its amount off: the
same refund delivered twice, or twice at once, is taken off once (decision 0104).
The order's day is marked by the orders trigger, so the rollup rewrites it.

A refund for an order cartcast has not stored (placed before the webhook was set
up, cancelled, or keyed by its Name only) is answered 200 with `"applied": false`
and kept nowhere: a backfill's `Refunded Amount` is what reaches such an order.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from cartcast import orders, validation
from cartcast.db import Transaction
from cartcast.errors import InvalidRequest

# The refund's id is kept only when the order is there to take its amount; the
# row lock makes a second delivery of it wait, then find the id and skip.
TAKE_REFUND_OFF = """
UPDATE orders
SET total_price = GREATEST(total_price - CAST(:amount AS numeric), 0),
    refunds = COALESCE(refunds, CAST('{}' AS jsonb))
        || jsonb_build_object(CAST(:refund_id AS text), CAST(:amount AS text))
WHERE brand_id = :brand_id AND external_id = :order_id
    AND (COALESCE(refunds, CAST('{}' AS jsonb)) -> CAST(:refund_id AS text)) IS NULL
RETURNING id, external_id, name, ordered_at, currency, total_price, landing_site,
    post_id
"""
REFUND_KIND = "refund"
SUCCESS_STATUS = "success"


def receive_refund(tx: Transaction, *, brand_id: str, body: Any) -> dict[str, Any]:
    """Take a refund's returned money off its stored order, once per refund id.

    Raises:
        InvalidRequest: the refund's id, order id, or a transaction is malformed,
            or money came back in another currency than the order's.
    """
    body = validation.require_object(body)
    refund_id = orders.store_id(body, "id", what="the store's refund id")
    order_id = orders.store_id(body, "order_id", what="the refunded order's id")
    amount = refunded_amount(body)

    stored = tx.one(orders.SELECT_ORDER, brand_id=brand_id, external_id=order_id)
    if stored is None:
        return _answer(None, refund_id, amount, applied=False, duplicate=False)
    _check_currency(body, stored["currency"].strip())

    taken = tx.one(
        TAKE_REFUND_OFF,
        brand_id=brand_id,
        order_id=order_id,
        refund_id=refund_id,
        amount=amount,
    )
    if taken is None:
        # The refund's id was there, or a cancellation removed the order while
        # this waited on its row: only the first is a duplicate.
        stored = tx.one(orders.SELECT_ORDER, brand_id=brand_id, external_id=order_id)
        if stored is None:
            return _answer(None, refund_id, amount, applied=False, duplicate=False)
        return _answer(stored, refund_id, amount, applied=True, duplicate=True)
    return _answer(taken, refund_id, amount, applied=True, duplicate=False)


def refunded_amount(body: dict) -> Decimal:
    """Add the amounts of the refund's successful refund transactions."""
    transactions = body.get("transactions", [])
    if not isinstance(transactions, list):
        raise InvalidRequest("'transactions' must be a list", field="transactions")
    total = Decimal("0.00")
    for transaction in transactions:
        if not isinstance(transaction, dict):
            raise InvalidRequest(
                "each of 'transactions' must be an object", field="transactions"
            )
        if _lowered(transaction.get("kind")) != REFUND_KIND:
            continue
        if _lowered(transaction.get("status")) != SUCCESS_STATUS:
            continue
        total += validation.money(transaction.get("amount"), "transactions.amount")
    return total


def _check_currency(body: dict, order_currency: str) -> None:
    for transaction in body.get("transactions", []):
        currency = transaction.get("currency")
        if currency is not None and currency != order_currency:
            raise InvalidRequest(
                f"'transactions.currency' is {currency}, but the order is in "
                f"{order_currency}",
                field="transactions.currency",
            )


def _lowered(value: Any) -> str | None:
    return value.strip().lower() if isinstance(value, str) else None


def _answer(
    order: dict[str, Any] | None,
    refund_id: str,
    amount: Decimal,
    *,
    applied: bool,
    duplicate: bool,
) -> dict[str, Any]:
    return {
        "order": order,
        "duplicate": duplicate,
        "refund": {"id": refund_id, "amount": amount, "applied": applied},
    }
