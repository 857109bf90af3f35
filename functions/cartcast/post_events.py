"""Post events: the log of every change of a post's state, text or schedule.

A database trigger (sql/008) writes one `post_events` row for each such change,
whoever makes it, so publishing.py and the caption drain are logged without calling
anything here. Who acted and why are read from two settings of the transaction:

    cartcast.actor    the API key's name, or "system:<function>" for a scheduled
                      function (`acting_as`, set by main.py for each tick:
                      "system:publish_due_posts", "system:drain_caption_jobs");
                      unset means "system" (a domain call outside any function)
    cartcast.reason   why, when the caller gave one (a rejection, an edit); for
                      the system's changes, the post's failure_reason (why
                      publishing failed, held, could not confirm or retries it)

Both are local to the transaction (set_config(..., true)), so a pooled connection
never carries one request's key into the next. Decision 0009 says why a trigger.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from cartcast import db
from cartcast.db import Transaction

SET_SETTING = "SELECT set_config(:name, :value, true)"
SELECT_EVENTS = """
SELECT from_state, to_state, actor, reason, at FROM post_events
WHERE brand_id = :brand_id AND post_id = :post_id
ORDER BY at, id
"""


def act_as(tx: Transaction, actor: str) -> None:
    """Record the transaction's changes to posts as made by `actor` (a key's name)."""
    tx.scalar(SET_SETTING, name="cartcast.actor", value=actor)


@contextlib.contextmanager
def acting_as(actor: str) -> Iterator[None]:
    """Record every transaction's changes to posts inside the block as `actor`."""
    with db.settings_for_transactions({"cartcast.actor": actor}):
        yield


def give_reason(tx: Transaction, reason: str | None) -> None:
    """Record the transaction's next changes to posts with `reason` (None clears it)."""
    tx.scalar(SET_SETTING, name="cartcast.reason", value=reason or "")


def list_events(
    tx: Transaction, *, brand_id: str, post_id: str
) -> list[dict[str, Any]]:
    """Return a post's events, oldest first."""
    return tx.rows(SELECT_EVENTS, brand_id=brand_id, post_id=post_id)
