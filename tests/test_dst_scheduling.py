"""Scheduling across 2027's daylight-saving changes, through the API, in any process
time zone: explicit wall times and the next free slot get the slots' outcomes."""

from __future__ import annotations

import datetime as dt
import os
import time

import pytest

from cartcast.clock import parse_instant
from tests.conftest import OPERATOR_KEY, make_app
from tests.helpers import auth, brand_body, catalog, post_json

# (brand's zone, local wall time, the instant it must become, what the note says)
CASES = [
    pytest.param(
        "America/New_York",
        "2027-03-14T02:30",
        "2027-03-14T07:30:00+00:00",
        "02:30 on 2027-03-14 in America/New_York does not exist (the clocks go "
        "forward); scheduled at 03:30 EDT (07:30 UTC)",
        id="new-york-skipped",
    ),
    pytest.param(
        "America/New_York",
        "2027-11-07T01:30",
        "2027-11-07T05:30:00+00:00",
        "01:30 on 2027-11-07 in America/New_York happens twice (the clocks go "
        "back); scheduled at the first, 01:30 EDT (05:30 UTC)",
        id="new-york-repeated",
    ),
    pytest.param(
        "Europe/Berlin",
        "2027-03-28T02:30",
        "2027-03-28T01:30:00+00:00",
        "02:30 on 2027-03-28 in Europe/Berlin does not exist (the clocks go "
        "forward); scheduled at 03:30 CEST (01:30 UTC)",
        id="berlin-skipped",
    ),
    pytest.param(
        "Europe/Berlin",
        "2027-10-31T02:30",
        "2027-10-31T00:30:00+00:00",
        "02:30 on 2027-10-31 in Europe/Berlin happens twice (the clocks go "
        "back); scheduled at the first, 02:30 CEST (00:30 UTC)",
        id="berlin-repeated",
    ),
    pytest.param(
        "Asia/Kolkata",
        "2027-03-14T09:30",
        "2027-03-14T04:00:00+00:00",
        None,
        id="kolkata-half-hour",
    ),
]
# Process zones with their own quirks: none, western DST, a half-hour DST shift
# (Lord Howe) and a 45-minute offset (Kathmandu).
PROCESS_ZONES = ["UTC", "America/Los_Angeles", "Australia/Lord_Howe", "Asia/Kathmandu"]


@pytest.fixture(params=PROCESS_ZONES)
def process_tz(request):
    """Run the test with the process's TZ set, then put the old one back."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = request.param
    time.tzset()
    yield request.param
    if before is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = before
    time.tzset()


@pytest.fixture
def client(function_env):
    return make_app("api", "http").test_client()


def new_brand(client, time_zone: str, **fields) -> str:
    body = brand_body(time_zone=time_zone, **fields)
    response = post_json(client, "/v1/brands", body, OPERATOR_KEY)
    assert response.status_code == 201, response.get_json()
    key = response.get_json()["api_key"]
    post_json(client, "/v1/products", catalog(1), key)
    return key


def approved_post(client, key: str) -> str:
    drafted = post_json(
        client, "/v1/captions", {"products": [catalog(1)[0]["sku"]]}, key
    )
    assert drafted.status_code == 201, drafted.get_json()
    (post,) = drafted.get_json()["posts"]
    assert post["state"] == "approved"
    return post["id"]


def pin_day_before(clock_file, local_time: str) -> None:
    day = dt.date.fromisoformat(local_time[:10]) - dt.timedelta(days=1)
    clock_file.set(dt.datetime.combine(day, dt.time(12, 0), tzinfo=dt.UTC))


def schedule(client, key: str, post_id: str, body: dict):
    return post_json(client, f"/v1/posts/{post_id}/schedule", body, key)


@pytest.mark.parametrize(("zone", "local_time", "instant", "note"), CASES)
def test_a_local_time_is_scheduled_at_its_defined_instant_with_a_note(
    client, clock_file, process_tz, zone, local_time, instant, note
) -> None:
    pin_day_before(clock_file, local_time)
    key = new_brand(client, zone)
    post_id = approved_post(client, key)

    response = schedule(client, key, post_id, {"local_time": local_time})

    answer = response.get_json()["post"]
    stored = client.get(f"/v1/posts/{post_id}", headers=auth(key)).get_json()
    assert response.status_code == 200, response.get_json()
    assert parse_instant(answer["scheduled_at"]) == parse_instant(instant)
    assert answer["schedule_note"] == note
    assert parse_instant(stored["post"]["scheduled_at"]) == parse_instant(instant)


@pytest.mark.parametrize(("zone", "local_time", "instant", "note"), CASES)
def test_the_next_free_slot_on_the_night_gets_the_same_instant(
    client, clock_file, process_tz, zone, local_time, instant, note
) -> None:
    pin_day_before(clock_file, local_time)
    weekday = dt.date.fromisoformat(local_time[:10]).weekday()
    slot = [{"weekday": weekday, "time": local_time[11:16]}]
    key = new_brand(client, zone, posting_slots=slot)
    post_id = approved_post(client, key)

    response = schedule(client, key, post_id, {})

    assert response.status_code == 200, response.get_json()
    scheduled = parse_instant(response.get_json()["post"]["scheduled_at"])
    assert scheduled == parse_instant(instant)


def test_a_local_time_may_name_another_zone_than_the_brands(
    client, clock_file, process_tz
) -> None:
    pin_day_before(clock_file, "2027-03-28T02:30")
    key = new_brand(client, "America/New_York")
    post_id = approved_post(client, key)

    response = schedule(
        client,
        key,
        post_id,
        {"local_time": "2027-03-28T02:30", "time_zone": "Europe/Berlin"},
    )

    assert response.status_code == 200, response.get_json()
    answer = response.get_json()["post"]
    assert parse_instant(answer["scheduled_at"]) == parse_instant("2027-03-28T01:30Z")
    assert "in Europe/Berlin does not exist" in answer["schedule_note"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {"local_time": "2027-03-14T02:30", "time_zone": "Mars/Olympus_Mons"},
            "time_zone",
        ),
        ({"local_time": "2027-03-14T02:30", "time_zone": ""}, "time_zone"),
        ({"local_time": "2027-03-12T09:30"}, "local_time"),
        ({"local_time": "2027-03-14T02:30-05:00"}, "local_time"),
        ({"local_time": "2027-02-30T09:30"}, "local_time"),
        ({"local_time": "14 March 2027, 9:30"}, "local_time"),
        ({"local_time": 1804224600}, "local_time"),
        ({"local_time": "9999-12-31T23:59"}, "local_time"),
        ({"local_time": "2028-06-14T09:30"}, "local_time"),
        ({"local_time": "2027-03-14T09:30:30"}, "local_time"),
        (
            {"at": "2027-03-14T12:00:00Z", "local_time": "2027-03-14T09:30"},
            "local_time",
        ),
        ({"time_zone": "Europe/Berlin"}, "time_zone"),
        ({"when": "2027-03-14T09:30"}, "when"),
    ],
)
def test_a_bad_schedule_request_is_a_400_naming_the_field_and_changes_nothing(
    client, clock_file, body, field
) -> None:
    pin_day_before(clock_file, "2027-03-14T02:30")
    key = new_brand(client, "America/New_York")
    post_id = approved_post(client, key)

    response = schedule(client, key, post_id, body)

    stored = client.get(f"/v1/posts/{post_id}", headers=auth(key)).get_json()["post"]
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"]["field"] == field
    assert stored["state"] == "approved" and stored["scheduled_at"] is None


def test_another_brands_post_cannot_be_scheduled_at_a_local_time(
    client, clock_file
) -> None:
    pin_day_before(clock_file, "2027-03-14T02:30")
    key = new_brand(client, "America/New_York")
    post_id = approved_post(client, key)
    other = post_json(
        client, "/v1/brands", brand_body(name="Other", slug="other"), OPERATOR_KEY
    ).get_json()["api_key"]

    response = schedule(client, other, post_id, {"local_time": "2027-03-14T09:30"})

    stored = client.get(f"/v1/posts/{post_id}", headers=auth(key)).get_json()["post"]
    assert response.status_code == 404
    assert stored["state"] == "approved" and stored["scheduled_at"] is None


@pytest.mark.parametrize(
    ("field", "value"),
    [("local_time", "2027-03-14T09:30"), ("at", "2027-03-14T13:30:00Z")],
)
def test_a_time_another_post_holds_is_a_409_naming_the_field_sent(
    client, clock_file, field, value
) -> None:
    pin_day_before(clock_file, "2027-03-14T09:30")
    key = new_brand(client, "America/New_York")
    first, second = approved_post(client, key), approved_post(client, key)
    schedule(client, key, first, {"local_time": "2027-03-14T09:30"})

    response = schedule(client, key, second, {field: value})

    error = response.get_json()["error"]
    stored = client.get(f"/v1/posts/{second}", headers=auth(key)).get_json()["post"]
    assert response.status_code == 409, error
    assert error["field"] == field
    assert error["message"].startswith(f"'{field}' {value} is taken")
    assert stored["state"] == "approved" and stored["scheduled_at"] is None


def test_an_offset_of_23_59_is_taken_and_one_of_24_00_refused_naming_at(
    client, clock_file
) -> None:
    """Python's datetime, as RFC 3339's numoffset, holds offsets strictly inside
    ±24:00; the message gives the range that is taken, not its open bound."""
    pin_day_before(clock_file, "2027-03-14T02:30")
    key = new_brand(client, "America/New_York")
    taken, refused = approved_post(client, key), approved_post(client, key)

    ahead = schedule(client, key, taken, {"at": "2027-03-15T09:30:00+23:59"})
    too_far = schedule(client, key, refused, {"at": "2027-03-15T09:30:00+24:00"})

    assert ahead.status_code == 200, ahead.get_json()
    assert parse_instant(ahead.get_json()["post"]["scheduled_at"]) == parse_instant(
        "2027-03-14T09:31:00Z"
    )
    assert too_far.status_code == 400
    error = too_far.get_json()["error"]
    assert error["field"] == "at"
    assert "-23:59 to +23:59" in error["message"]
