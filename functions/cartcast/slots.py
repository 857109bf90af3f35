"""Weekly posting slots, kept in the brand's own time zone and resolved to UTC.

A slot is a weekday (0 = Monday) and a wall-clock time. Resolving it for a date uses
zoneinfo with `fold=0`, which defines both daylight-saving edge cases:

- a slot inside the hour skipped when clocks go forward (02:30 on a spring-forward
  night in New York) happens at the same distance past the jump: 03:30 local;
- a slot inside the hour repeated when clocks go back happens at its first
  occurrence (the earlier UTC instant), once;
- two slots that land on one instant that way (02:30 and 03:30 on that night) fill
  one slot, not two.

The process time zone never matters: every input and output is aware.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Iterable, Iterator
from typing import Any

from cartcast import validation
from cartcast.clock import UTC
from cartcast.errors import InvalidRequest

DEFAULT_SLOTS = (
    [{"weekday": day, "time": "09:30"} for day in range(5)]
    + [{"weekday": day, "time": "12:30"} for day in range(5)]
    + [{"weekday": day, "time": "18:00"} for day in range(5)]
    + [{"weekday": day, "time": "11:00"} for day in (5, 6)]
)
# ASCII digits only (\d also matches "٩"), matched with fullmatch: "$" would let
# "09:00\n" through.
TIME_PATTERN = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")
HORIZON_DAYS = 366


def validate_slots(value: Any) -> list[dict[str, Any]]:
    """Check a slot list from a request body and return it sorted."""
    if not isinstance(value, list) or not value:
        raise InvalidRequest(
            "'posting_slots' must be a non-empty list", field="posting_slots"
        )
    first_index: dict[tuple[int, str], int] = {}
    for index, slot in enumerate(value):
        where = f"posting_slots[{index}]"
        if not isinstance(slot, dict):
            raise InvalidRequest(f"{where} must be an object", field=where)
        validation.only_fields(slot, ("weekday", "time"), what=where)
        weekday, time = slot.get("weekday"), slot.get("time")
        if (
            isinstance(weekday, bool)
            or not isinstance(weekday, int)
            or weekday not in range(7)
        ):
            raise InvalidRequest(
                f"{where}.weekday must be 0 (Monday) to 6", field=where
            )
        if not isinstance(time, str) or not TIME_PATTERN.fullmatch(time):
            raise InvalidRequest(f"{where}.time must be HH:MM (24 h)", field=where)
        # A repeat was dropped quietly; it is more likely a typo for another slot.
        earlier = first_index.setdefault((weekday, time), index)
        if earlier != index:
            raise InvalidRequest(
                f"{where} repeats posting_slots[{earlier}] (weekday {weekday} at "
                f"{time}); give each slot once",
                field=where,
            )
    return [{"weekday": day, "time": time} for day, time in sorted(first_index)]


def resolve(
    local_date: dt.date, time_text: str, zone: zoneinfo.ZoneInfo
) -> dt.datetime:
    """Return the UTC instant of a wall-clock time on a local date (see module doc)."""
    hour, minute = (int(part) for part in time_text.split(":"))
    wall = dt.datetime.combine(local_date, dt.time(hour, minute), tzinfo=zone)
    # Round-trip through UTC normalises a skipped wall time forward by the gap.
    return wall.astimezone(UTC)


def resolve_wall_time(
    wall: dt.datetime, time_zone: str
) -> tuple[dt.datetime, str | None]:
    """Return the UTC instant of a naive local wall time, and a note when the zone's
    clocks make it move (skipped) or name two instants (repeated); else None.

    The outcomes are the slots' (see module doc): forward by the gap, or the first
    of the two.
    """
    zone = zoneinfo.ZoneInfo(time_zone)
    first = wall.replace(tzinfo=zone, fold=0)
    instant = first.astimezone(UTC)
    shown = instant.astimezone(zone)
    what = f"{wall:%H:%M} on {wall:%Y-%m-%d} in {time_zone}"

    if shown.replace(tzinfo=None) != wall:
        return instant, (
            f"{what} does not exist (the clocks go forward); scheduled at "
            f"{shown:%H:%M %Z} ({instant:%H:%M} UTC)"
        )
    if first.replace(fold=1).utcoffset() != first.utcoffset():
        return instant, (
            f"{what} happens twice (the clocks go back); scheduled at the first, "
            f"{shown:%H:%M %Z} ({instant:%H:%M} UTC)"
        )
    return instant, None


def upcoming(
    slots: Iterable[dict[str, Any]], time_zone: str, after: dt.datetime
) -> Iterator[dt.datetime]:
    """Yield slot instants strictly after `after`, in order, up to a year ahead."""
    zone = zoneinfo.ZoneInfo(time_zone)
    by_weekday: dict[int, list[str]] = {}
    for slot in slots:
        by_weekday.setdefault(slot["weekday"], []).append(slot["time"])
    start = after.astimezone(zone).date()
    for offset in range(HORIZON_DAYS):
        day = start + dt.timedelta(days=offset)
        instants = sorted(
            resolve(day, time, zone) for time in by_weekday.get(day.weekday(), [])
        )
        for instant in instants:
            if instant > after:
                yield instant


def next_free(
    slots: Iterable[dict[str, Any]],
    time_zone: str,
    after: dt.datetime,
    taken: set[dt.datetime],
    count: int,
) -> list[dt.datetime]:
    """Return the next `count` distinct slot instants after `after` not taken.

    Two wall times can name one instant (02:30 and 03:30 on a spring-forward night);
    it is returned once, so callers never schedule two posts into one slot.
    """
    free: list[dt.datetime] = []
    seen: set[dt.datetime] = set()
    for instant in upcoming(list(slots), time_zone, after):
        if instant in taken or instant in seen:
            continue
        seen.add(instant)
        free.append(instant)
        if len(free) == count:
            break
    return free
