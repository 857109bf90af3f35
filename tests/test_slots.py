"""Posting slots resolve in the brand's zone, with defined daylight-saving outcomes."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from cartcast import slots
from cartcast.clock import UTC
from cartcast.errors import InvalidRequest

NEW_YORK = "America/New_York"


def test_a_slot_resolves_to_utc_in_the_brands_zone() -> None:
    monday = dt.datetime(2026, 3, 2, 0, 0, tzinfo=UTC)

    found = slots.next_free(
        [{"weekday": 0, "time": "09:30"}], NEW_YORK, monday, set(), 1
    )

    assert found == [dt.datetime(2026, 3, 2, 14, 30, tzinfo=UTC)]


def test_a_slot_in_the_skipped_hour_moves_forward_by_the_gap() -> None:
    saturday = dt.datetime(2026, 3, 7, 12, 0, tzinfo=UTC)

    found = slots.next_free(
        [{"weekday": 6, "time": "02:30"}], NEW_YORK, saturday, set(), 1
    )

    # 02:30 does not exist on 2026-03-08 in New York; it happens at 03:30 EDT.
    assert found == [dt.datetime(2026, 3, 8, 7, 30, tzinfo=UTC)]


def test_a_slot_in_the_repeated_hour_happens_once_at_its_first_occurrence() -> None:
    saturday = dt.datetime(2026, 10, 31, 12, 0, tzinfo=UTC)

    found = slots.next_free(
        [{"weekday": 6, "time": "01:30"}], NEW_YORK, saturday, set(), 2
    )

    # 01:30 happens twice on 2026-11-01; the first (EDT, UTC-4) is used, once.
    assert found[0] == dt.datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
    assert found[1] == dt.datetime(2026, 11, 8, 6, 30, tzinfo=UTC)


def test_taken_slots_are_skipped_and_order_is_kept() -> None:
    weekly = [{"weekday": day, "time": "09:00"} for day in range(7)]
    start = dt.datetime(2026, 6, 1, 0, 0, tzinfo=UTC)
    first_two = slots.next_free(weekly, "Europe/Berlin", start, set(), 2)

    found = slots.next_free(weekly, "Europe/Berlin", start, {first_two[0]}, 2)

    assert found[0] == first_two[1]
    assert found == sorted(found)


def test_the_process_time_zone_does_not_matter(monkeypatch) -> None:
    start = dt.datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
    expected = slots.next_free(slots.DEFAULT_SLOTS, NEW_YORK, start, set(), 5)

    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        found = slots.next_free(slots.DEFAULT_SLOTS, NEW_YORK, start, set(), 5)
    finally:
        monkeypatch.undo()
        time.tzset()

    assert found == expected


def test_two_wall_times_that_fold_into_one_instant_give_it_once() -> None:
    saturday = dt.datetime(2026, 3, 7, 12, 0, tzinfo=UTC)
    sunday_early = [{"weekday": 6, "time": "02:30"}, {"weekday": 6, "time": "03:30"}]

    found = slots.next_free(sunday_early, NEW_YORK, saturday, set(), 3)

    # On 2026-03-08 both 02:30 (skipped) and 03:30 are 07:30 UTC; a week later they
    # are an hour apart again.
    assert found == [
        dt.datetime(2026, 3, 8, 7, 30, tzinfo=UTC),
        dt.datetime(2026, 3, 15, 6, 30, tzinfo=UTC),
        dt.datetime(2026, 3, 15, 7, 30, tzinfo=UTC),
    ]


@pytest.mark.parametrize(
    "time_text", ["09:00\n", "9:00", "09:00:00", "24:00", "0٩:00", " 09:00", "09.00"]
)
def test_a_slot_time_must_be_exactly_hh_mm(time_text) -> None:
    with pytest.raises(InvalidRequest) as raised:
        slots.validate_slots([{"weekday": 0, "time": time_text}])

    assert raised.value.field == "posting_slots[0]"


@pytest.mark.parametrize("weekday", [1.0, True, "1", -1, 7, None])
def test_a_slot_weekday_must_be_an_integer_0_to_6(weekday) -> None:
    with pytest.raises(InvalidRequest):
        slots.validate_slots([{"weekday": weekday, "time": "09:00"}])
