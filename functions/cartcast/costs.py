"""The cost ledger: what each paid call to X cost, recorded once per reference.

Prices are X's pay-per-use rates since February 2026 (X developer documentation):
a post costs $0.015, a post carrying a URL $0.20, and reading a resource the account
owns (its mentions, its posts' metrics) $0.001 each. Each part of a thread is a post
of its own. The media upload an image post makes first is not recorded: those rates
name no price for it.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from cartcast.db import Transaction

X_POST_USD = Decimal("0.015")
X_POST_WITH_URL_USD = Decimal("0.20")
X_OWNED_READ_USD = Decimal("0.001")

INSERT_COST = """
INSERT INTO cost_ledger (brand_id, occurred_at, service, operation, units, usd, ref)
VALUES (:brand_id, :occurred_at, :service, :operation, :units, :usd, :ref)
ON CONFLICT (service, operation, ref) DO NOTHING
"""


def post_price(has_link: bool) -> Decimal:
    return X_POST_WITH_URL_USD if has_link else X_POST_USD


def posts_price(with_links: list[bool]) -> Decimal:
    """Price the posts one publication creates (a thread's parts), each as itself."""
    return sum((post_price(has_link) for has_link in with_links), Decimal(0))


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
) -> None:
    """Record a paid call; the same (service, operation, ref) is recorded once."""
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
    )
