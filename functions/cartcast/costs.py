"""The cost ledger: what each paid call to X cost, and what the brand may spend.

Prices come from the settings' table by call class (settings.X_PRICES_USD, X's
pay-per-use rates): a post, a post carrying a URL, a summoned reply, a post or
mention read, a user read, and an owned read. Reads of the account's own
timeline and mentions cost the owned price only when the brand brings its own X
developer app; on the shared app they are ordinary post reads. Metric lookups by
post id are post reads on any app (decision 0022). Each part of
a thread is a post of its own. The media upload an image post makes first is not
recorded: those rates name no price for it.

A brand may set a monthly X budget (`monthly_x_budget_usd`). A post's price is
reserved in the ledger in the transaction that writes its intent, under the
brand's row lock, so concurrent publishers see each other's in-flight posts and
the cap is never exceeded by a post. The month is the brand's calendar month in
its own time zone, as for the link allowance (decision 0010).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from cartcast.db import Reads, Transaction
from cartcast.validation import to_cents

# How a hold for the budget begins; the publisher releases such holds (publishing).
BUDGET_REASON_START = "monthly X budget of $"
INSERT_COST = """
INSERT INTO cost_ledger (brand_id, occurred_at, service, operation, units, usd, ref,
    reserved)
VALUES (:brand_id, :occurred_at, :service, :operation, :units, :usd, :ref, :reserved)
ON CONFLICT (service, operation, ref) DO UPDATE SET reserved = false
WHERE cost_ledger.reserved AND NOT EXCLUDED.reserved
"""
# A reservation exists for this ref already when a send was retried: its price is
# counted once.
SELECT_RESERVATION = """
SELECT 1 FROM cost_ledger WHERE service = 'x' AND operation = :operation AND ref = :ref
"""
RELEASE_RESERVATION = """
DELETE FROM cost_ledger WHERE service = 'x' AND ref = :ref AND reserved
"""
# The month in the brand's zone, worked out by PostgreSQL (as the publisher's
# release of budget holds does), so the event functions need no calendar code.
SUM_X_SPEND = """
WITH month AS (
    SELECT date_trunc('month', CAST(:now AS timestamptz) AT TIME ZONE :tz) AS local
)
SELECT COALESCE(sum(c.usd), 0) AS spent,
    to_char(month.local, 'YYYY-MM') AS month,
    to_char(month.local + interval '1 month', 'YYYY-MM') AS next_month
FROM month
LEFT JOIN cost_ledger c ON c.brand_id = :brand_id AND c.service = 'x'
    AND c.occurred_at >= (month.local AT TIME ZONE :tz)
    AND c.occurred_at < ((month.local + interval '1 month') AT TIME ZONE :tz)
GROUP BY month.local
"""
SELECT_BUDGET = """
SELECT monthly_x_budget_usd, time_zone FROM brands WHERE id = :brand_id
"""


# A reply to a post that mentioned the account (X's "summoned reply" rate).
REPLY_CLASS = "summoned_reply"


def post_class(has_link: bool) -> str:
    return "post_with_url" if has_link else "post"


def read_class(*, own_app: bool) -> str:
    """Price class of a read of the account's own timeline or mentions."""
    return "owned_read" if own_app else "post_read"


def price(prices: Mapping[str, Decimal], price_class: str, units: int = 1) -> Decimal:
    return prices[price_class] * units


def posts_price(prices: Mapping[str, Decimal], with_links: list[bool]) -> Decimal:
    """Price the posts one publication creates (a thread's parts), each as itself."""
    return sum((prices[post_class(has_link)] for has_link in with_links), Decimal(0))


def record(
    tx: Transaction,
    *,
    brand_id: str,
    occurred_at: dt.datetime,
    operation: str,
    units: int,
    usd: Decimal,
    ref: str | None,
    service: str = "x",
    reserved: bool = False,
) -> None:
    """Record a paid call; the same (service, operation, ref) is recorded once.

    Recording a call whose price was reserved confirms the reservation, and keeps
    its time, so the month it counts in does not move.
    """
    if units <= 0:
        return
    tx.execute(
        INSERT_COST,
        brand_id=brand_id,
        occurred_at=occurred_at,
        service=service,
        operation=operation,
        units=units,
        usd=usd,
        ref=ref,
        reserved=reserved,
    )


def is_reserved(tx: Transaction, *, operation: str, ref: str) -> bool:
    return tx.one(SELECT_RESERVATION, operation=operation, ref=ref) is not None


def release(tx: Transaction, *, ref: str) -> None:
    """Give back a reserved price: X certainly created nothing for `ref`."""
    tx.execute(RELEASE_RESERVATION, ref=ref)


def month_spend(
    tx: Reads, brand: Mapping[str, Any], now: dt.datetime
) -> tuple[Decimal, str, str]:
    """Return what the brand's X calls cost this month (reservations included),
    this month's name and the next one's, both as YYYY-MM in the brand's zone."""
    row = tx.one(SUM_X_SPEND, brand_id=str(brand["id"]), tz=brand["time_zone"], now=now)
    return Decimal(row["spent"]), row["month"], row["next_month"]


def budget_refusal(
    tx: Transaction,
    brand: Mapping[str, Any],
    *,
    cost_usd: Decimal,
    now: dt.datetime,
) -> str | None:
    """Return why spending `cost_usd` now would exceed the brand's monthly X budget,
    or None when it fits (or the brand has no budget).

    The caller holds the brand's row lock, so no other publisher adds to the month
    between this check and its own reservation.
    """
    budget = brand["monthly_x_budget_usd"]
    if budget is None:
        return None
    spent, month, next_month = month_spend(tx, brand, now)
    if spent + cost_usd <= budget:
        return None
    return _reached(budget, spent, month, next_month)


def at_budget(tx: Reads, brand_id: str, now: dt.datetime) -> str | None:
    """Return why the brand may make no more paid reads this month, or None.

    A read's price is known only once X answers (it is per item returned), so a
    read is skipped once the month's spend has reached the budget; the last read
    before that may go past it by what it returned (README, Known limitations).
    """
    brand = tx.one(SELECT_BUDGET, brand_id=brand_id)
    if brand is None or brand["monthly_x_budget_usd"] is None:
        return None
    spent, month, next_month = month_spend(tx, {**brand, "id": brand_id}, now)
    if spent < brand["monthly_x_budget_usd"]:
        return None
    return _reached(brand["monthly_x_budget_usd"], spent, month, next_month)


def budget_left(tx: Reads, brand_id: str, now: dt.datetime) -> Decimal | None:
    """Return what is left of the brand's monthly X budget, or None with no budget.

    Reservations count as spent; the result is negative once the budget is passed.
    """
    brand = tx.one(SELECT_BUDGET, brand_id=brand_id)
    if brand is None or brand["monthly_x_budget_usd"] is None:
        return None
    spent, _, _ = month_spend(tx, {**brand, "id": brand_id}, now)
    return Decimal(brand["monthly_x_budget_usd"]) - spent


def _reached(budget: Decimal, spent: Decimal, month: str, next_month: str) -> str:
    return (
        f"{BUDGET_REASON_START}{_dollars(budget)} reached (${_dollars(spent)} spent "
        f"in {month}); raise it or wait for {next_month}"
    )


def _dollars(amount: Decimal) -> str:
    return f"{to_cents(Decimal(amount)):,.2f}"
