"""One source of time for the whole package.

Every "now" in cartcast comes from a `Clock`. The cloud uses the system clock. Tests
inject a `FixedClock` they move by hand, and the demo runs every process against a
`FileClock`: one file holding an instant, which the demo driver advances, so six
functions and the X sandbox in separate processes share a simulated week.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Protocol

UTC = dt.UTC
# A time with second 60, as RFC 3339 writes a leap second ("2016-12-31T23:59:60Z").
SECOND_60 = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}):60(.*)")


class NotALeapSecond(ValueError):
    """A time with second 60 where no leap second falls."""


class OutOfRange(ValueError):
    """A time with no UTC instant a datetime holds: before year 1 or after 9999.

    A ValueError, so that every reader refusing a time that is none refuses this
    one too, where datetime's own OverflowError would have escaped them."""


class Clock(Protocol):
    def now(self) -> dt.datetime:
        """Return the current instant as a timezone-aware UTC datetime."""


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(UTC)


class FixedClock:
    """A clock that stands still until a test moves it."""

    def __init__(self, instant: dt.datetime) -> None:
        self._instant = as_utc(instant)

    def now(self) -> dt.datetime:
        return self._instant

    def set(self, instant: dt.datetime) -> None:
        self._instant = as_utc(instant)

    def advance(self, delta: dt.timedelta) -> None:
        self._instant += delta


class FileClock:
    """A clock whose instant is an ISO-8601 line in a file, shared by processes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def now(self) -> dt.datetime:
        return parse_instant(self.path.read_text().strip())

    def set(self, instant: dt.datetime) -> None:
        # Write then rename, so a reader never sees a half-written instant.
        scratch = self.path.with_suffix(".tmp")
        scratch.write_text(as_utc(instant).isoformat() + "\n")
        scratch.replace(self.path)


def as_utc(instant: dt.datetime) -> dt.datetime:
    """Return `instant` in UTC; a naive datetime is refused, never guessed."""
    if instant.tzinfo is None:
        raise ValueError("naive datetime: cartcast only handles timezone-aware times")
    return instant.astimezone(UTC)


def parse_instant(text: str) -> dt.datetime:
    """Parse an ISO-8601 instant with an offset (a trailing Z is accepted).

    Second 60 is read only as a leap second: at 23:59:60 UTC on a month's last day
    (RFC 3339 section 5.7; ITU-R TF.460 allows any month's end), as the first
    instant of the next minute, as PostgreSQL reads it, since a datetime has no
    second 60. Anywhere else it is no time at all, and NotALeapSecond is raised:
    "09:30:60Z" is not 09:31. An instant before year 1 or past 9999 in UTC raises
    OutOfRange; both are ValueErrors.
    """
    text = text.replace("Z", "+00:00")
    leap = SECOND_60.fullmatch(text)
    try:
        if leap is None:
            return as_utc(dt.datetime.fromisoformat(text))
        after = as_utc(dt.datetime.fromisoformat(f"{leap[1]}:59{leap[2]}"))
        after += dt.timedelta(seconds=1)
    except OverflowError as error:
        # "0001-01-01T00:00:00+14:00", or the leap second of 9999-12-31.
        raise OutOfRange(f"{text}: no instant a datetime can hold") from error
    if (after.day, after.hour, after.minute, after.second) != (1, 0, 0, 0):
        raise NotALeapSecond(
            f"{text}: second 60 is a leap second's, and leap seconds fall at "
            "23:59:60 UTC on a month's last day alone"
        )
    return after


def clock_from_setting(value: str | None) -> Clock:
    """Build the clock named by CARTCAST_CLOCK: empty for system time, else a file."""
    if not value:
        return SystemClock()
    return FileClock(Path(value))
