"""Keep a removed author's mentions from being stored again (decision 0056).

An author's data removal (`author_data.py`) clears their mentions in place. A
poll (`mentions.py`) reads recent mentions again: the overlap behind its cursor,
or the last seven days after X refuses a stale one. So the removal keeps the X id
of each removed mention a read could still return, until no read can reach it,
and the poll stores none of those ids. This module is what the two share, apart
from the poll's code, which the api answering a removal does not load.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

# A poll's store and an author's removal take turns per brand, so a removed
# mention a poll reads again is either stored before the removal (and cleared by
# it) or skipped after it. No other statement takes this lock class, so it
# closes no cycle (tests/test_db.py checks that each class has one purpose).
LOCK_BRAND_MENTIONS = "SELECT pg_advisory_xact_lock(7315, hashtext(:brand_id))"
SELECT_REMOVED_IDS = """
SELECT x_post_id FROM removed_mention_ids
WHERE brand_id = :brand_id AND x_post_id = ANY(CAST(:x_post_ids AS text[]))
"""
# How much further than its restart and overlap a read may reach: a read resumed
# from X's page token continues a query started up to a day earlier (a rate-limit
# pause is 15 minutes, a retried tick minutes); the poll drops an older token and
# starts again from its cursor (mentions._forget_old_resume).
REREAD_MARGIN = dt.timedelta(days=1)


def reread_reach(settings: Any) -> dt.timedelta:
    """Return how far back of now a poll may read a mention again: the restart
    after a stale cursor, the overlap behind it, and REREAD_MARGIN."""
    from cartcast import x

    overlap = dt.timedelta(seconds=settings.mention_overlap_s)
    return x.SINCE_ID_WINDOW + overlap + REREAD_MARGIN


def removed_ids(tx: Any, *, brand_id: Any, x_post_ids: list[str]) -> set[str]:
    """Return those of `x_post_ids` whose author's data the brand removed."""
    if not x_post_ids:
        return set()
    rows = tx.rows(SELECT_REMOVED_IDS, brand_id=brand_id, x_post_ids=x_post_ids)
    return {row["x_post_id"] for row in rows}
