"""Refunds the store made, taken off their order's total once per refund id.

Shopify's refunds/create webhook carries a refund (REST Admin API, Refund
resource): its `id`, the `order_id` it belongs to, its `created_at`, and
`transactions`, the records of money returned. A transaction of kind `refund`
whose status is `success` returned money; one that is `pending` is money the
store has sent back and its payment provider not yet confirmed, counted too
(decision 0105). A refund object alone does not mean money went back
(shopify.dev), so `failure` and `error` count nothing. Amounts are read in the
shop's money, `amount_set.shop_money`, where sent (an order's presentment
currency may be the buyer's); their sum is taken off the order's `total_price`,
never below 0.

Shopify delivers a webhook at least once, so the refund's id is kept on the order
(`orders.refunds`, sql/060) in the same statement that takes its amount off: the
same refund delivered twice, or twice at once, is taken off once (decision 0104).
The order's day is marked by the orders trigger, so the rollup rewrites it.

Shopify sets no order between topics: a refund for an order not stored yet waits
in `pending_refunds` (sql/061) by its id, and is taken off when its order comes,
by webhook, JSON or CSV (`apply_pending`). A refund of a cancelled order waits
for nothing: that order is never stored.

A CSV file's order is stored net of its `Refunded Amount`, which the order keeps
as `refunded_in_file`. A delivered refund made before the file was imported may
be money the file already took off: it is taken off only for what that amount
does not already cover. One made after the import is taken off whole
(decision 0105).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from cartcast import brands, orders, validation
from cartcast.db import Transaction
from cartcast.errors import InvalidRequest

# What the file already took off covers a refund made no later than the order was
# stored from it (received_at); the SET expressions read the row as it is when
# its lock is held, so two refunds at once share the file's amount, never both.
TAKE_REFUND_OFF = """
UPDATE orders
SET total_price = GREATEST(
        total_price - (CAST(:amount AS numeric) - CASE
            WHEN CAST(:refunded_at AS timestamptz) > received_at THEN 0
            ELSE LEAST(CAST(:amount AS numeric), COALESCE(refunded_in_file, 0))
        END),
        0),
    refunded_in_file = refunded_in_file - CASE
        WHEN CAST(:refunded_at AS timestamptz) > received_at THEN 0
        ELSE LEAST(CAST(:amount AS numeric), COALESCE(refunded_in_file, 0))
    END,
    refunds = COALESCE(refunds, CAST('{}' AS jsonb))
        || jsonb_build_object(CAST(:refund_id AS text), CAST(:amount AS text))
WHERE brand_id = :brand_id AND external_id = :order_id
    AND (COALESCE(refunds, CAST('{}' AS jsonb)) -> CAST(:refund_id AS text)) IS NULL
RETURNING id, external_id, name, ordered_at, currency, total_price, landing_site,
    post_id
"""
KEEP_PENDING = """
INSERT INTO pending_refunds (brand_id, refund_id, order_id, amount, refunded_at,
    received_at)
VALUES (:brand_id, :refund_id, :order_id, :amount, :refunded_at, :now)
ON CONFLICT (brand_id, refund_id) DO NOTHING
RETURNING refund_id
"""
# Deleted as they are taken off: a second creation of the order finds none.
TAKE_PENDING = """
DELETE FROM pending_refunds
WHERE brand_id = :brand_id AND order_id = ANY(CAST(:order_ids AS text[]))
RETURNING refund_id, order_id, amount, refunded_at
"""
SELECT_CANCELLED_ID = """
SELECT 1 FROM cancelled_orders WHERE brand_id = :brand_id AND external_id = :order_id
"""
REFUND_KIND = "refund"
# Shopify's transaction statuses are pending, failure, success and error (REST
# Admin API, Transaction resource); AWAITING_RESPONSE and UNKNOWN exist in
# GraphQL's OrderTransactionStatus only.
COUNTED_STATUSES = frozenset({"success", "pending"})
# A refund sent without created_at may be one a file counted, as an early one is.
UNKNOWN_TIME_FIRST = dt.datetime.min.replace(tzinfo=dt.UTC)


def receive_refund(
    tx: Transaction, *, brand_id: str, body: Any, now: dt.datetime
) -> dict[str, Any]:
    """Take a refund's returned money off its order, once per refund id; keep it
    waiting when the order is not stored yet.

    Raises:
        InvalidRequest: the refund's id, order id, created_at or a counted
            transaction is malformed, or returned money in another currency than
            the order's (the brand's, for an order not stored yet).
    """
    body = validation.require_object(body)
    refund = {
        "refund_id": orders.store_id(body, "id", what="the store's refund id"),
        "order_id": orders.store_id(body, "order_id", what="the refunded order's id"),
        "refunded_at": _refunded_at(body),
    }
    refund["amount"], currencies = counted_money(body)

    answer = _take_off(tx, brand_id=brand_id, currencies=currencies, **refund)
    if answer is not None:
        return answer

    # Not stored, or removed while this waited on its row. The cancellation turn
    # waits for every creation in flight, so an order committed meanwhile is seen
    # now, and one that comes later sees this refund waiting.
    tx.execute(orders.TAKE_CANCELLATION_TURN, brand_id=brand_id)
    answer = _take_off(tx, brand_id=brand_id, currencies=currencies, **refund)
    if answer is not None:
        return answer
    if tx.one(SELECT_CANCELLED_ID, brand_id=brand_id, order_id=refund["order_id"]):
        return _answer(None, refund, applied=False, pending=False, duplicate=False)

    _check_currency(currencies, brands.get_brand(tx, brand_id)["currency"].strip())
    kept = tx.scalar(KEEP_PENDING, brand_id=brand_id, now=now, **refund)
    return _answer(None, refund, applied=False, pending=True, duplicate=kept is None)


def apply_pending(tx: Transaction, *, brand_id: str, order_ids: list[str]) -> int:
    """Take off these stored orders the refunds that came before them; return how
    many were.

    The caller holds its brand's creation turn (orders.TAKE_CREATION_TURN), so no
    refund is kept waiting for these orders between its insert and this.
    """
    if not order_ids:
        return 0
    waiting = tx.rows(TAKE_PENDING, brand_id=brand_id, order_ids=order_ids)
    # The earliest first, as they were made: a file's amount covers those first.
    earliest_first = sorted(
        waiting,
        key=lambda row: (
            row["order_id"],
            row["refunded_at"] or UNKNOWN_TIME_FIRST,
            row["refund_id"],
        ),
    )
    for row in earliest_first:
        tx.one(
            TAKE_REFUND_OFF,
            brand_id=brand_id,
            order_id=row["order_id"],
            refund_id=row["refund_id"],
            amount=row["amount"],
            refunded_at=row["refunded_at"],
        )
    return len(waiting)


def counted_money(body: dict) -> tuple[Decimal, list[tuple[str, str]]]:
    """Add the shop-money amounts of the refund's counted refund transactions;
    return the sum and each one's (currency, field) as sent.

    A transaction that is not counted (another kind, a failed one) returned
    nothing, so its amount and currency are not read.
    """
    transactions = body.get("transactions", [])
    if not isinstance(transactions, list):
        raise InvalidRequest("'transactions' must be a list", field="transactions")
    total = Decimal("0.00")
    currencies: list[tuple[str, str]] = []
    for transaction in transactions:
        if not isinstance(transaction, dict):
            raise InvalidRequest(
                "each of 'transactions' must be an object", field="transactions"
            )
        if _lowered(transaction.get("kind")) != REFUND_KIND:
            continue
        if _lowered(transaction.get("status")) not in COUNTED_STATUSES:
            continue
        amount, currency = _shop_money(transaction)
        total += amount
        if currency is not None:
            currencies.append(currency)

    # Each amount is held under the limit, their sum is not: a waiting refund
    # keeps it in numeric(12, 2), and no order's total is as large.
    if total >= validation.AMOUNT_LIMIT:
        raise InvalidRequest(
            "the counted refund transactions add up to "
            f"{total}, not less than {validation.AMOUNT_LIMIT:f}",
            field="transactions",
        )
    return validation.to_cents(total), currencies


def _shop_money(transaction: dict) -> tuple[Decimal, tuple[str, str] | None]:
    """Read a transaction's amount in the shop's currency, and that currency.

    Shopify's `amount_set` holds it twice: `shop_money`, in the currency the store
    reports in, and `presentment_money`, in the buyer's. `amount` and `currency`
    are read when no `amount_set` is sent.
    """
    amount_set = transaction.get("amount_set")
    if amount_set is None:
        amount = validation.money(transaction.get("amount"), "transactions.amount")
        currency = transaction.get("currency")
        return amount, None if currency is None else (currency, "transactions.currency")
    field = "transactions.amount_set.shop_money"
    shop_money = amount_set.get("shop_money") if isinstance(amount_set, dict) else None
    if not isinstance(shop_money, dict):
        raise InvalidRequest(f"'{field}' must be an object", field=field)
    amount = validation.money(shop_money.get("amount"), f"{field}.amount")
    currency = shop_money.get("currency_code")
    return amount, None if currency is None else (currency, field)


def _refunded_at(body: dict) -> dt.datetime | None:
    """Read the refund's `created_at`; None when not sent."""
    if body.get("created_at") is None:
        return None
    return validation.instant(body["created_at"], "created_at")


def _take_off(
    tx: Transaction,
    *,
    brand_id: str,
    currencies: list[tuple[str, str]],
    **refund: Any,
) -> dict[str, Any] | None:
    """Take the refund off its order; None when the order is not stored, or went
    while this waited on its row."""
    stored = tx.one(
        orders.SELECT_ORDER, brand_id=brand_id, external_id=refund["order_id"]
    )
    if stored is None:
        return None
    _check_currency(currencies, stored["currency"].strip())
    taken = tx.one(TAKE_REFUND_OFF, brand_id=brand_id, **refund)
    if taken is not None:
        return _answer(taken, refund, applied=True, pending=False, duplicate=False)

    # The refund's id was there, or a cancellation removed the order while this
    # waited on its row: only the first is a duplicate.
    stored = tx.one(
        orders.SELECT_ORDER, brand_id=brand_id, external_id=refund["order_id"]
    )
    if stored is None:
        return None
    return _answer(stored, refund, applied=True, pending=False, duplicate=True)


def _check_currency(currencies: list[tuple[str, str]], order_currency: str) -> None:
    for currency, field in currencies:
        if currency != order_currency:
            raise InvalidRequest(
                f"'{field}' is in {currency}, but the order is in {order_currency}",
                field=field,
            )


def _lowered(value: Any) -> str | None:
    return value.strip().lower() if isinstance(value, str) else None


def _answer(
    order: dict[str, Any] | None,
    refund: dict[str, Any],
    *,
    applied: bool,
    pending: bool,
    duplicate: bool,
) -> dict[str, Any]:
    return {
        "order": order,
        "duplicate": duplicate,
        "refund": {
            "id": refund["refund_id"],
            "amount": refund["amount"],
            "applied": applied,
            "pending": pending,
        },
    }
