"""Attribution: which post brought in which order.

The model is last touch. Every link cartcast posts carries utm_content = the post's
id; an order whose landing site carries a cartcast post's UTM parameters is credited
to that post when it was placed within the attribution window after the post was
published. Orders without such a link, or outside the window, stay unattributed and
are counted as such in the daily KPIs, never hidden. A link-free post (link_policy.py)
carries no link, so no order is ever credited to it: what it sells shows up among the
unattributed orders.

When it runs: an order that arrives (webhook, POST /v1/orders, CSV import) is tried
at once, and only that order: a store waits about 5 s for a webhook's answer, and
rescanning every unattributed order of the brand took 4-5 s with 40,000 of them.
The hourly rollup tries every unattributed order again, so an order whose post was
recorded as published after the order arrived is still credited.
"""

from __future__ import annotations

from collections.abc import Sequence

from cartcast import links
from cartcast.db import Transaction

# A cheap pre-filter; links.post_id_from_landing_site decides. It must let through
# every spelling that function reads: any case (UTM_CONTENT) and a percent-encoded
# name (utm%5Fcontent), hence ILIKE with a wildcard for the underscore.
# :order_ids NULL tries every unattributed order of the brand (the rollup); a list
# tries only those (the orders a request just stored).
SELECT_UNATTRIBUTED = """
SELECT id, landing_site, ordered_at FROM orders
WHERE brand_id = :brand_id AND post_id IS NULL AND landing_site ILIKE '%utm%content=%'
  AND (CAST(:order_ids AS uuid[]) IS NULL OR id = ANY(CAST(:order_ids AS uuid[])))
"""
# The window is days of 24 hours: an interval of days is added in the session's
# TimeZone, which the PostgreSQL server sets (initdb takes the host's), and across
# a DST change seven such days are 167 or 169 hours.
ATTRIBUTE = """
UPDATE orders o SET post_id = p.id
FROM posts p
WHERE o.id = :order_id AND o.post_id IS NULL
  AND p.id = :post_id AND p.brand_id = o.brand_id AND p.state = 'published'
  AND o.ordered_at >= p.published_at
  AND o.ordered_at < p.published_at + make_interval(hours => 24 * :window_days)
"""


def attribute_pending(
    tx: Transaction,
    *,
    brand_id: str,
    window_days: int,
    order_ids: Sequence[str] | None = None,
) -> int:
    """Credit unattributed orders that carry a cartcast UTM link; return how many.

    Args:
        order_ids: try only these orders (the ones just stored); None tries every
            unattributed order of the brand, as the rollup does.
    """
    if order_ids is not None and not order_ids:
        return 0
    pending = tx.rows(
        SELECT_UNATTRIBUTED,
        brand_id=brand_id,
        order_ids=None if order_ids is None else [str(each) for each in order_ids],
    )

    credited = 0
    for order in pending:
        post_id = links.post_id_from_landing_site(order["landing_site"])
        if post_id is None:
            continue
        credited += tx.execute(
            ATTRIBUTE, order_id=order["id"], post_id=post_id, window_days=window_days
        )
    return credited
