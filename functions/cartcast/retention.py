"""How long mention texts are kept, and the sweeper that removes older ones.

Each brand keeps a mention's text for its own number of days (GET/PATCH
/v1/brand/retention, `mention_text_days`), or, when it set none, for the
deployment's CARTCAST_MENTION_TEXT_RETENTION_DAYS; never longer than
CARTCAST_MENTION_TEXT_RETENTION_MAX_DAYS, even if the maximum was lowered after
the brand chose. Days count from when the mention was posted on X.

The sweeper runs with each `rollup_kpis` tick, after the rollup. It empties the
text of older mentions (`text` becomes "", `text_removed_at` is set) and deletes
their escalations, whose payload quotes the text. The triage figures stay:
sentiment, intent, priority, deadlines, handled or not, so KPIs and response times
do not change. Author fields stay too; removing them is a person's request
(author_data.py).

The same tick deletes the X ids kept of a removed author's mentions
(`removed_mention_ids`) once past their `forget_after`, when no poll reaches back
to them any more (decision 0056), and the claims of poll and rollup ticks
(`handled_events`) once no delivery of their event would be acted on (decision 0071).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from cartcast import validation
from cartcast.db import Transaction
from cartcast.errors import InvalidRequest

FIELDS = ("mention_text_days",)
# Mentions cleared per statement; a brand with more goes on in the next statement,
# up to SWEEP_MENTIONS_MAX per brand and tick.
SWEEP_BATCH = 5000
SWEEP_MENTIONS_MAX = 200_000

SELECT_SETTING = "SELECT mention_text_retention_days FROM brands WHERE id = :brand_id"
UPDATE_SETTING = """
UPDATE brands SET mention_text_retention_days = :days WHERE id = :brand_id
"""
# Only the brands that hold a text past their window: at most ticks none does, and
# a brand with nothing to clear would otherwise cost a transaction of its own. The
# window is counted in seconds, as the sweep's `now - timedelta(days=...)` counts it.
SELECT_BRAND_WINDOWS = """
SELECT b.id, w.days
FROM brands b
CROSS JOIN LATERAL (
    SELECT LEAST(COALESCE(b.mention_text_retention_days, :default_days), :max_days)
        AS days
) w
WHERE b.offboarded_at IS NULL
  AND EXISTS (
    SELECT 1 FROM mentions m
    WHERE m.brand_id = b.id AND m.text_removed_at IS NULL
      AND m.posted_at
          < CAST(:now AS timestamptz) - make_interval(secs => w.days * 86400)
  )
ORDER BY b.id
"""
CLEAR_OLD_TEXTS = """
WITH old AS (
    SELECT id FROM mentions
    WHERE brand_id = :brand_id AND text_removed_at IS NULL AND posted_at < :before
    ORDER BY posted_at
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
),
cleared AS (
    UPDATE mentions m SET text = '', text_removed_at = :now
    FROM old WHERE m.id = old.id
    RETURNING m.id
),
dropped AS (
    DELETE FROM escalation_outbox e USING cleared WHERE e.mention_id = cleared.id
    RETURNING e.id
)
SELECT (SELECT count(*) FROM cleared) AS texts,
    (SELECT count(*) FROM dropped) AS escalations
"""
DELETE_FORGOTTEN_IDS = """
DELETE FROM removed_mention_ids WHERE forget_after <= :now
"""

# Pub/Sub redelivers a message only while its subscription keeps it: at most 7 days,
# its maximum and default (ours keep 1 day, terraform/pubsub.tf), and an event older
# than CARTCAST_MAX_EVENT_AGE_S is dropped before its claim is read. A claim kept for
# the longer of the two is there for every delivery that would otherwise run again.
# The console's status page counts the events of this window.
HANDLED_EVENTS_KEEP_MIN_S = 7 * 86400
# Each function's newest claim stays, however old: the status page shows it as the
# function's last run, and a function that stopped must not vanish from the page.
# One statement: with terraform's schedules (a poll a minute, a rollup an hour) a
# week holds about 10,300 claims, and an hourly prune deletes about 60.
DELETE_OLD_HANDLED_EVENTS = """
WITH newest AS (
    SELECT function, max(handled_at) AS handled_at FROM handled_events
    GROUP BY function
)
DELETE FROM handled_events h USING newest
WHERE h.function = newest.function
  AND h.handled_at < newest.handled_at
  AND h.handled_at < :before
"""


def retention_state(tx: Transaction, *, brand_id: str, settings: Any) -> dict[str, Any]:
    chosen = tx.scalar(SELECT_SETTING, brand_id=brand_id)
    return {
        "mention_text_days": chosen,
        "effective_mention_text_days": min(
            chosen or settings.mention_text_retention_days,
            settings.mention_text_retention_max_days,
        ),
        "default_mention_text_days": settings.mention_text_retention_days,
        "max_mention_text_days": settings.mention_text_retention_max_days,
    }


def set_retention(
    tx: Transaction, *, brand_id: str, body: Any, settings: Any
) -> dict[str, Any]:
    """Set the brand's days for mention texts (null: the deployment's default)."""
    if not isinstance(body, dict):
        raise InvalidRequest("body must be a JSON object", field="body")
    validation.only_fields(body, FIELDS, what="a retention setting")
    if "mention_text_days" not in body:
        raise InvalidRequest("send 'mention_text_days'", field="mention_text_days")
    days = body["mention_text_days"]
    top = settings.mention_text_retention_max_days
    if days is not None and (
        isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= top
    ):
        raise InvalidRequest(
            f"'mention_text_days' must be a whole number of days from 1 to {top} "
            "(this deployment's maximum), or null for its default",
            field="mention_text_days",
        )
    tx.execute(UPDATE_SETTING, brand_id=brand_id, days=days)
    return retention_state(tx, brand_id=brand_id, settings=settings)


def sweep_old_mention_texts(runtime: Any, *, now: dt.datetime) -> dict[str, int]:
    """Remove the texts of mentions older than their brand keeps them; counts."""
    settings = runtime.settings
    windows = runtime.database.reads().rows(
        SELECT_BRAND_WINDOWS,
        default_days=settings.mention_text_retention_days,
        max_days=settings.mention_text_retention_max_days,
        now=now,
    )
    totals = {"texts_removed": 0, "escalations_removed": 0}
    for brand in windows:
        before = now - dt.timedelta(days=brand["days"])
        cleared = SWEEP_BATCH
        done = 0
        while cleared == SWEEP_BATCH and done < SWEEP_MENTIONS_MAX:
            with runtime.database.transaction() as tx:
                row = tx.one(
                    CLEAR_OLD_TEXTS,
                    brand_id=str(brand["id"]),
                    before=before,
                    now=now,
                    limit=SWEEP_BATCH,
                )
            cleared = row["texts"]
            done += cleared
            totals["texts_removed"] += cleared
            totals["escalations_removed"] += row["escalations"]
    return totals


def sweep_removed_mention_ids(runtime: Any, *, now: dt.datetime) -> dict[str, int]:
    """Delete the kept X ids of removed mentions past `forget_after`; count them."""
    with runtime.database.transaction() as tx:
        deleted = tx.execute(DELETE_FORGOTTEN_IDS, now=now)
    return {"removed_mention_ids_forgotten": deleted}


def handled_events_keep_s(settings: Any) -> int:
    """Seconds a tick's claim is kept: past every delivery that would be acted on."""
    return max(HANDLED_EVENTS_KEEP_MIN_S, settings.max_event_age_s)


def sweep_handled_events(runtime: Any, *, now: dt.datetime) -> dict[str, int]:
    """Delete tick claims older than their keep, but each function's newest; count."""
    before = now - dt.timedelta(seconds=handled_events_keep_s(runtime.settings))
    with runtime.database.transaction() as tx:
        deleted = tx.execute(DELETE_OLD_HANDLED_EVENTS, before=before)
    return {"handled_events_pruned": deleted}
