"""Crises: a surge of negative mentions seen once, and a brand's publishing paused.

Detection (`watch`) runs after mentions are scored. It compares the share of
negative mentions posted in the last CARTCAST_CRISIS_WINDOW_MIN minutes with the
brand's own share over the CARTCAST_CRISIS_BASELINE_DAYS days before that window.
A crisis begins when the window holds at least CARTCAST_CRISIS_MIN_MENTIONS scored
mentions and its share is both CARTCAST_CRISIS_FACTOR times the baseline and
CARTCAST_CRISIS_RISE_PCT points above it: a brand with a 10 % baseline needs 30 %
(the rise), one with 25 % needs 50 % (the factor), and a new brand with no history
needs 20 %. Each crisis is one row of `crises` and one alert (alerts.py), keyed by
when it began, so thirty scoring runs inside it raise one alert, not thirty. It
ends, quietly, once a whole window has passed since it began and the window no
longer meets the condition; a later surge is a new crisis with its own alert.
Each run that still sees the surge records it (`last_seen_at`); a crisis whose
window has passed since then ended then (`last_seen_at` plus a window), though no
run came to close it, as watch runs only after mentions are scored: the next run
closes it before judging a new surge, and GET /v1/crises shows it ended. A surge
that goes a whole window without a scored mention and comes back is therefore a
new crisis with a new alert.

The crisis pause (`pause_brand`) is a person's decision, taken on the alert; it is
not automatic, because a false alarm would silence a brand (decision 0019). It
holds every queued post of the brand at once, as a disconnection does
(connections.py): `scheduled` posts and claimed ones whose intent is not written
yet are held with the pause's reason; a post already handed to X finishes. While
paused, the claim skips the brand, each publish run holds posts scheduled
meanwhile (`hold_while_paused`), and a thread stops before its next part. Replies
to mentions are not held: answering customers is what a crisis needs.
`resume_brand` puts the held posts back in `scheduled`; past due, they go at the
next run, and the late bound (sweeping.py) holds those too late to make sense.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from cartcast import alerts, audit, holds, page_cursors, validation
from cartcast.db import Transaction
from cartcast.errors import Conflict, InvalidRequest
from cartcast.logs import fields

ALERT_KIND = "crisis"
HELD_PREFIX = "crisis pause: "
HELD_FIX = "; POST /v1/brand/resume puts it back in the queue"
PAUSE_REASON_MAX = 300
DEFAULT_PAUSE_REASON = "paused by a person"

# NO KEY, as posts.LOCK_BRAND: a post's change logged meanwhile takes KEY SHARE on
# the brand, and FOR UPDATE made a pause that holds that post its deadlock.
LOCK_BRAND = "SELECT slug FROM brands WHERE id = :brand_id FOR NO KEY UPDATE"
# Scored mentions only: an unscored one has no sentiment to count yet.
COUNT_SHARES = """
SELECT
    count(*) FILTER (WHERE posted_at > :window_start) AS window_mentions,
    count(*) FILTER (WHERE posted_at > :window_start
        AND sentiment = 'negative') AS window_negative,
    count(*) FILTER (WHERE posted_at <= :window_start) AS baseline_mentions,
    count(*) FILTER (WHERE posted_at <= :window_start
        AND sentiment = 'negative') AS baseline_negative
FROM mentions
WHERE brand_id = :brand_id AND scored_at IS NOT NULL
  AND posted_at > :baseline_start AND posted_at <= :now
"""
SELECT_OPEN = """
SELECT id, started_at, last_seen_at FROM crises
WHERE brand_id = :brand_id AND ended_at IS NULL
"""
OPEN_CRISIS = """
INSERT INTO crises (brand_id, started_at, last_seen_at, window_mentions,
    window_negative, baseline_share)
VALUES (:brand_id, :now, :now, :window_mentions, :window_negative, :baseline_share)
ON CONFLICT (brand_id) WHERE ended_at IS NULL DO NOTHING
RETURNING id
"""
SEEN_AGAIN = "UPDATE crises SET last_seen_at = :now WHERE id = :id"
CLOSE_CRISIS = "UPDATE crises SET ended_at = :ended_at WHERE id = :id"
# An open crisis unseen for a whole window ended then, closed by a run or not.
SELECT_CRISES = """
SELECT id, started_at,
    COALESCE(ended_at, CASE WHEN last_seen_at + :window <= :now
                            THEN last_seen_at + :window END) AS ended_at,
    window_mentions, window_negative, baseline_share
FROM crises WHERE brand_id = :brand_id
  AND (CAST(:after_at AS timestamptz) IS NULL
       OR (started_at, id) < (CAST(:after_at AS timestamptz), :after_id))
ORDER BY started_at DESC, id DESC LIMIT :limit
"""
BRANDS_OF_MENTIONS = """
SELECT DISTINCT brand_id FROM mentions WHERE id = ANY(CAST(:ids AS uuid[]))
"""

MARK_PAUSED = """
UPDATE brands SET publishing_paused_at = :now, publishing_paused_by = :actor,
    publishing_paused_reason = :reason
WHERE id = :brand_id AND publishing_paused_at IS NULL
RETURNING publishing_paused_at
"""
SELECT_PAUSE = """
SELECT publishing_paused_at, publishing_paused_by, publishing_paused_reason
FROM brands WHERE id = :brand_id
"""
HOLD_WHILE_PAUSED = """
UPDATE posts p SET state = 'held', updated_at = :now,
    failure_reason = :prefix || b.publishing_paused_reason || :fix
FROM brands b
WHERE b.id = p.brand_id AND b.publishing_paused_at IS NOT NULL
  AND p.state = 'scheduled' AND p.in_reply_to IS NULL
RETURNING p.id
"""
CLEAR_PAUSE = """
UPDATE brands SET publishing_paused_at = NULL, publishing_paused_by = NULL,
    publishing_paused_reason = NULL
WHERE id = :brand_id AND publishing_paused_at IS NOT NULL
RETURNING id
"""


@dataclasses.dataclass(frozen=True)
class Shares:
    """Scored mentions in the window and in the baseline before it."""

    window_mentions: int
    window_negative: int
    baseline_mentions: int
    baseline_negative: int

    @property
    def window_share(self) -> float:
        return (
            self.window_negative / self.window_mentions if self.window_mentions else 0
        )

    @property
    def baseline_share(self) -> float:
        if not self.baseline_mentions:
            return 0.0
        return self.baseline_negative / self.baseline_mentions


def is_crisis(shares: Shares, settings: Any) -> bool:
    """Say if the window's negative share is well above the baseline, with volume."""
    if shares.window_mentions < settings.crisis_min_mentions:
        return False
    needed = max(
        shares.baseline_share * settings.crisis_factor,
        shares.baseline_share + settings.crisis_rise_pct / 100,
    )
    return shares.window_share >= needed


def watch(
    tx: Transaction, *, brand_id: str, settings: Any, now: dt.datetime
) -> str | None:
    """Open or close the brand's crisis as its mentions say; return what changed.

    Returns "started" when a crisis began (its alert is queued in `tx`), "ended"
    when one ended, None otherwise. Serialised per brand by the brand's row lock,
    so two scoring runs never both start one.
    """
    slug = tx.scalar(LOCK_BRAND, brand_id=brand_id)
    if slug is None:
        return None
    window = dt.timedelta(minutes=settings.crisis_window_min)
    row = tx.one(
        COUNT_SHARES,
        brand_id=brand_id,
        window_start=now - window,
        baseline_start=now - window - dt.timedelta(days=settings.crisis_baseline_days),
        now=now,
    )
    shares = Shares(**row)
    open_crisis = tx.one(SELECT_OPEN, brand_id=brand_id)

    surge = is_crisis(shares, settings)

    if open_crisis is not None:
        unseen_since = open_crisis["last_seen_at"] + window
        if unseen_since <= now:
            # Over before this run: close it, then judge this window afresh.
            tx.execute(CLOSE_CRISIS, id=open_crisis["id"], ended_at=unseen_since)
            if not surge:
                return "ended"
        elif surge:
            tx.execute(SEEN_AGAIN, id=open_crisis["id"], now=now)
            return None
        elif now - open_crisis["started_at"] < window:
            return None
        else:
            tx.execute(CLOSE_CRISIS, id=open_crisis["id"], ended_at=now)
            return "ended"
    if not surge:
        return None

    tx.scalar(
        OPEN_CRISIS,
        brand_id=brand_id,
        now=now,
        window_mentions=shares.window_mentions,
        window_negative=shares.window_negative,
        baseline_share=shares.baseline_share,
    )
    alerts.raise_alert(
        tx,
        brand_id=brand_id,
        kind=ALERT_KIND,
        episode=now.isoformat(),
        text=_alert_text(slug, shares, settings),
        now=now,
    )
    return "started"


def watch_after_scoring(runtime: Any, *, mention_ids: list[str]) -> dict[str, int]:
    """Check the brands of freshly scored mentions for a crisis; return counts.

    Meant to run right after scoring commits (score_sentiment, the sweeper), once
    per batch: each brand is checked once, in a transaction of its own.
    """
    counts = {"crises_started": 0, "crises_ended": 0}
    if not mention_ids:
        return counts
    now = runtime.clock.now()
    with runtime.database.transaction() as tx:
        brand_ids = [
            str(row["brand_id"]) for row in tx.rows(BRANDS_OF_MENTIONS, ids=mention_ids)
        ]
    for brand_id in brand_ids:
        with runtime.database.transaction() as tx:
            change = watch(tx, brand_id=brand_id, settings=runtime.settings, now=now)
        if change is not None:
            counts[f"crises_{change}"] += 1
            log = runtime.log.warning if change == "started" else runtime.log.info
            log(f"crisis {change}", extra=fields(brand_id=brand_id))
    return counts


def list_crises(
    tx: Transaction,
    *,
    brand_id: str,
    limit: int,
    now: dt.datetime,
    window_min: int,
    after: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Return one page of the brand's crises, latest first, and the `next` token;
    one unseen for a window has ended. `after` is the `next` of a previous page."""
    after_at, after_id = page_cursors.place_after(after, "crises", _place, (None, None))
    rows = tx.rows(
        SELECT_CRISES,
        brand_id=brand_id,
        after_at=after_at,
        after_id=after_id,
        limit=limit + 1,
        now=now,
        window=dt.timedelta(minutes=window_min),
    )

    page, next_token = page_cursors.next_page(rows, limit, "crises", _key)
    return [_view(row) for row in page], next_token


def _key(row: dict[str, Any]) -> list[Any]:
    return [row["started_at"].isoformat(), row["id"]]


def _place(key: list[Any]) -> tuple[dt.datetime, int]:
    at, row_id = key
    return page_cursors.instant(at), page_cursors.row_number(row_id)


def _view(row: dict[str, Any]) -> dict[str, Any]:
    """A crisis as the API shows it: its row id only orders the pages."""
    return {name: value for name, value in row.items() if name != "id"}


def _alert_text(slug: str, shares: Shares, settings: Any) -> str:
    return (
        f"cartcast ({slug}): possible crisis. {shares.window_negative} of "
        f"{shares.window_mentions} mentions in the last {settings.crisis_window_min} "
        f"min are negative ({shares.window_share:.0%}), against "
        f"{shares.baseline_share:.0%} over the {settings.crisis_baseline_days} days "
        "before. Scheduled posts still go out; to hold them, POST /v1/brand/pause "
        "(POST /v1/brand/resume sends them again). Open mentions: GET /v1/mentions."
    )


def pause_reason(given: Any, *, blank_is_default: bool = False) -> str | None:
    """Return a pause's `reason`, stripped of the blanks around it.

    The API and the console's form check it alike: at most PAUSE_REASON_MAX
    characters measured as sent, spaces around it included (docs/openapi.yaml's
    maxLength measures so, and the form's maxlength counts what is typed), and
    no control character inside (validation.without_controls). A blank reason
    (only spaces, controls and invisible marks) is refused, or None, the default
    reason, with `blank_is_default` (the console's optional field).

    Raises:
        InvalidRequest: naming `reason`.
    """
    if not isinstance(given, str):
        raise InvalidRequest("'reason' must be a non-empty text", field="reason")
    if len(given) > PAUSE_REASON_MAX:
        raise InvalidRequest(
            f"'reason' must be at most {PAUSE_REASON_MAX} characters, spaces "
            "around it included",
            field="reason",
        )

    reason = validation.without_controls(given.strip(validation.BLANK), "reason")
    if not validation.is_blank(reason):
        return reason
    if blank_is_default:
        return None
    raise InvalidRequest("'reason' must be a non-empty text", field="reason")


def pause_brand(
    tx: Transaction,
    *,
    brand_id: str,
    actor: str,
    reason: str | None,
    now: dt.datetime,
) -> dict[str, Any]:
    """Pause the brand's publishing and hold its queued posts; return the pause.

    Idempotent: pausing a paused brand keeps the first pause (its time, who and
    why) and holds any post queued since. `reason` None stands for the default.

    Raises:
        Conflict: the brand is paused already for another reason, which the
            message names; the reason is not rewritten behind the first person's
            back (resume, then pause again).
    """
    given = None if reason is None else reason[:PAUSE_REASON_MAX]
    # Lock the brand first: MARK_PAUSED locks nothing when the brand is already
    # paused, so a resume committing between it and SELECT_PAUSE would leave this
    # pause reading a NULL reason (a 500 `make faults` met with two workers).
    tx.scalar(LOCK_BRAND, brand_id=brand_id)
    marked = tx.scalar(
        MARK_PAUSED,
        brand_id=brand_id,
        now=now,
        actor=actor,
        reason=DEFAULT_PAUSE_REASON if given is None else given,
    )
    pause = tx.one(SELECT_PAUSE, brand_id=brand_id)
    current = pause["publishing_paused_reason"]
    if marked is None and given is not None and given != current:
        raise Conflict(
            f"the brand is already paused, for another reason: {current!r} (by "
            f"{pause['publishing_paused_by']}); resume it first to pause it for "
            "a new one",
            field="reason",
        )
    held_reason = HELD_PREFIX + pause["publishing_paused_reason"] + HELD_FIX

    # Replies to mentions go on: answering customers is what a crisis needs.
    held = holds.hold_queued(
        tx, brand_id=brand_id, reason=held_reason, now=now, replies=False
    )
    if marked is not None or held:
        audit.record(
            tx,
            brand_id=brand_id,
            actor=actor,
            action="brand.paused",
            subject="brand:publishing",
            at=now,
            before={"paused": marked is None},
            after={
                "paused": True,
                "reason": pause["publishing_paused_reason"],
                "held": held,
            },
        )
    return {**_pause_view(pause), "held": held}


def resume_brand(
    tx: Transaction, *, brand_id: str, now: dt.datetime, actor: str
) -> dict[str, Any]:
    """Lift the brand's pause and queue its held posts again; 409 when not paused."""
    tx.scalar(LOCK_BRAND, brand_id=brand_id)
    before = tx.one(SELECT_PAUSE, brand_id=brand_id)
    if tx.scalar(CLEAR_PAUSE, brand_id=brand_id) is None:
        raise Conflict("the brand's publishing is not paused", field="brand")
    released = holds.release_held(tx, brand_id=brand_id, prefix=HELD_PREFIX, now=now)
    audit.record(
        tx,
        brand_id=brand_id,
        actor=actor,
        action="brand.resumed",
        subject="brand:publishing",
        at=now,
        before={"paused": True, "reason": before["publishing_paused_reason"]},
        after={"paused": False, "released": released},
    )
    return {"paused": False, "released": released}


def hold_while_paused(tx: Transaction, *, now: dt.datetime) -> int:
    """Hold posts scheduled for a paused brand since its pause; return how many."""
    held = tx.rows(HOLD_WHILE_PAUSED, prefix=HELD_PREFIX, fix=HELD_FIX, now=now)
    return len(held)


def pause_state(tx: Transaction, *, brand_id: str) -> dict[str, Any]:
    return _pause_view(tx.one(SELECT_PAUSE, brand_id=brand_id))


def _pause_view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "paused": row["publishing_paused_at"] is not None,
        "paused_at": row["publishing_paused_at"],
        "paused_by": row["publishing_paused_by"],
        "reason": row["publishing_paused_reason"],
    }
