"""The Gemini quota governor: one budget in PostgreSQL, shared by every instance.

The free tier allows a few requests a minute and about 20 a day per project
(Google's published limits, 2026), and a 429 costs a request too. So cartcast never
asks when the budget says no: before each call to Gemini the governor takes a slot,
under a transaction-level advisory lock, if fewer than `per_minute` calls were made
in the last 60 seconds and fewer than `per_day` since midnight Pacific time (when
Google resets the daily count). A call is counted from its answer (`answered`):
Google counts it when it arrives, after the slot was taken, and a window counted
from the slot would free up to a call's duration before Google's does. When Google
answers 429 anyway, the governor pauses every instance until the delay Google gave,
or, when the 429 names the per-day quota, until midnight Pacific (gemini.py).
A refused slot raises RateLimited with the moment a slot frees, and the caption path
falls back to the template engine.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

from cartcast.clock import Clock
from cartcast.errors import RateLimited

PACIFIC = zoneinfo.ZoneInfo("America/Los_Angeles")
LOCK_ID = 7_310_262_020_004
MINUTE = dt.timedelta(seconds=60)
# Calls older than this are no longer counted by any window.
KEEP_CALLS = dt.timedelta(days=2)

LOCK = "SELECT pg_advisory_xact_lock(:lock_id)"
SELECT_PAUSE = "SELECT paused_until, reason FROM gemini_pause WHERE id = 1"
SELECT_MINUTE = """
SELECT count(*) AS calls, min(called_at) AS oldest FROM gemini_calls
WHERE called_at > :since
"""
SELECT_DAY = "SELECT count(*) AS calls FROM gemini_calls WHERE quota_day = :day"
INSERT_CALL = """
INSERT INTO gemini_calls (called_at, quota_day) VALUES (:now, :day) RETURNING id
"""
RESTAMP_CALL = """
UPDATE gemini_calls SET called_at = :now, quota_day = :day WHERE id = :id
"""
FORGET_OLD_CALLS = "DELETE FROM gemini_calls WHERE called_at < :before"
UPSERT_PAUSE = """
INSERT INTO gemini_pause (id, paused_until, reason) VALUES (1, :until, :reason)
ON CONFLICT (id) DO UPDATE SET
    paused_until = GREATEST(gemini_pause.paused_until, EXCLUDED.paused_until),
    reason = EXCLUDED.reason
"""


class QuotaGovernor:
    """Takes a slot before each Gemini call; pauses everyone after a 429."""

    def __init__(
        self, database: Any, clock: Clock, *, per_minute: int, per_day: int
    ) -> None:
        self._database = database
        self._clock = clock
        self.per_minute = per_minute
        self.per_day = per_day

    def reserve(self) -> int:
        """Take a call's slot and return its id; raise RateLimited when none is free."""
        now = self._clock.now()
        day = quota_day(now)
        with self._database.transaction() as tx:
            tx.execute(LOCK, lock_id=LOCK_ID)
            refusal = self._refusal(tx, now, day)
            if refusal is None:
                slot = tx.scalar(INSERT_CALL, now=now, day=day)
                tx.execute(FORGET_OLD_CALLS, before=now - KEEP_CALLS)
        if refusal is not None:
            reason, reset_at = refusal
            raise RateLimited(f"Gemini quota governor: {reason}", reset_at=reset_at)
        return slot

    def answered(self, slot: int) -> None:
        """Count the call of a slot from now, when its answer (or failure) came."""
        now = self._clock.now()
        with self._database.transaction() as tx:
            tx.execute(RESTAMP_CALL, id=slot, now=now, day=quota_day(now))

    def pause(self, *, until: dt.datetime, reason: str) -> None:
        """Stop every instance from calling Gemini until `until`."""
        with self._database.transaction() as tx:
            tx.execute(UPSERT_PAUSE, until=until, reason=reason)

    def state(self) -> dict[str, Any]:
        """Return the budget as it stands, for people and dashboards."""
        now = self._clock.now()
        day = quota_day(now)
        with self._database.transaction() as tx:
            minute = tx.one(SELECT_MINUTE, since=now - MINUTE)
            today = tx.scalar(SELECT_DAY, day=day)
            pause = tx.one(SELECT_PAUSE)
            refusal = self._refusal(tx, now, day)
        return {
            "per_minute": self.per_minute,
            "per_day": self.per_day,
            "calls_last_minute": minute["calls"],
            "calls_today": today,
            "quota_day": day,
            "paused_until": pause["paused_until"] if pause else None,
            "pause_reason": pause["reason"] if pause else None,
            "available": refusal is None,
            "unavailable_reason": refusal[0] if refusal else None,
            "available_at": refusal[1] if refusal else now,
        }

    def _refusal(
        self, tx: Any, now: dt.datetime, day: dt.date
    ) -> tuple[str, dt.datetime] | None:
        pause = tx.one(SELECT_PAUSE)
        if pause is not None and pause["paused_until"] > now:
            return f"paused after {pause['reason']}", pause["paused_until"]
        if tx.scalar(SELECT_DAY, day=day) >= self.per_day:
            return f"{self.per_day} calls today", next_quota_day(now)
        minute = tx.one(SELECT_MINUTE, since=now - MINUTE)
        if minute["calls"] >= self.per_minute:
            return f"{self.per_minute} calls a minute", minute["oldest"] + MINUTE
        return None


def quota_day(now: dt.datetime) -> dt.date:
    """Return the Pacific calendar day Google counts `now` in."""
    return now.astimezone(PACIFIC).date()


def next_quota_day(now: dt.datetime) -> dt.datetime:
    """Return the next midnight Pacific time, when the daily count starts again."""
    tomorrow = quota_day(now) + dt.timedelta(days=1)
    return dt.datetime.combine(tomorrow, dt.time(), tzinfo=PACIFIC).astimezone(dt.UTC)
