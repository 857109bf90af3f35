"""Slot suggestions: hours of the week ranked by the brand's own published history."""

from __future__ import annotations

import datetime as dt
import os
import time
import uuid
import zoneinfo

import pytest

from cartcast import best_time, slots
from cartcast import runtime as runtime_module
from tests.conftest import OPERATOR_KEY, make_app
from tests.helpers import auth, brand_body, post_json

NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
KOLKATA = zoneinfo.ZoneInfo("Asia/Kolkata")
TUESDAY, FRIDAY = 1, 4


@pytest.fixture
def client(function_env):
    return make_app("api", "http").test_client()


def create_brand(client, time_zone: str = "America/New_York") -> tuple[str, str]:
    """Create a brand through the api; return its id and key."""
    body = brand_body(time_zone=time_zone)
    created = post_json(client, "/v1/brands", body, OPERATOR_KEY).get_json()
    return str(created["brand"]["id"]), created["api_key"]


def publish(
    brand_id: str,
    published_at: dt.datetime,
    *,
    impressions: int,
    engagements: int,
    orders: int = 0,
    in_reply_to: str | None = None,
) -> None:
    """Insert one published post with one metric snapshot and its attributed orders."""
    post_id = str(uuid.uuid4())
    captured_at = published_at + dt.timedelta(days=1)
    with runtime_module.current().database.transaction() as tx:
        tx.execute(
            "INSERT INTO posts (id, brand_id, text, state, engine, weighted_length, "
            "published_at, in_reply_to, reply_conversation_id, created_by, "
            "created_at, updated_at) "
            "VALUES (:id, :brand_id, 'history', 'published', 'manual', 7, "
            ":published_at, :in_reply_to, :in_reply_to, 'test', :published_at, "
            ":published_at)",
            id=post_id,
            brand_id=brand_id,
            published_at=published_at,
            in_reply_to=in_reply_to,
        )
        tx.execute(
            "INSERT INTO metric_snapshots (post_id, captured_at, impressions, likes, "
            "reposts, replies, quotes, bookmarks) "
            "VALUES (:post_id, :captured_at, :impressions, :likes, 0, 0, 0, 0)",
            post_id=post_id,
            captured_at=captured_at,
            impressions=impressions,
            likes=engagements,
        )
        for number in range(orders):
            tx.execute(
                "INSERT INTO orders (brand_id, external_id, ordered_at, currency, "
                "total_price, post_id, received_at) "
                "VALUES (:brand_id, :external_id, :at, 'USD', 10, :post_id, :at)",
                brand_id=brand_id,
                external_id=f"{post_id}-{number}",
                at=captured_at,
                post_id=post_id,
            )


def suggestions(client, key: str) -> dict:
    response = client.get("/v1/slots/suggestions", headers=auth(key))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def local(zone: zoneinfo.ZoneInfo, *parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=zone)


def test_history_that_peaks_at_tuesday_19_new_york_time_ranks_that_hour_first(
    client,
) -> None:
    brand_id, key = create_brand(client)
    # Tuesdays at 19:00 local, in winter (UTC-5) and summer (UTC-4): one hour.
    for day in (local(NEW_YORK, 2026, 1, 6, 19), local(NEW_YORK, 2026, 1, 13, 19, 40)):
        publish(brand_id, day, impressions=1000, engagements=80, orders=1)
    publish(
        brand_id, local(NEW_YORK, 2026, 6, 2, 19, 5), impressions=500, engagements=40
    )
    for week in range(3):
        monday = local(NEW_YORK, 2026, 1, 5, 9) + dt.timedelta(weeks=week)
        publish(brand_id, monday, impressions=1000, engagements=20, orders=3)
    # One brilliant post is below the minimum sample, so its hour is not ranked.
    publish(brand_id, local(NEW_YORK, 2026, 1, 7, 10), impressions=10, engagements=9)

    answer = suggestions(client, key)

    assert answer["source"] == "history"
    assert answer["min_sample_posts"] == best_time.MIN_SAMPLE_POSTS
    first, second = answer["suggestions"][:2]
    assert (first["weekday"], first["hour"], first["source"]) == (
        TUESDAY,
        19,
        "history",
    )
    assert first["posts"] == 3
    assert first["engagement_rate"] == 0.08
    assert first["orders_per_post"] == round(2 / 3, 5)
    assert (second["weekday"], second["hour"], second["posts"]) == (0, 9, 3)
    assert all(s["source"] == "default" for s in answer["suggestions"][2:])


def test_the_default_slots_follow_the_ranked_hours_without_repeating_them(
    client,
) -> None:
    brand_id, key = create_brand(client)
    for week in range(3):
        monday = local(NEW_YORK, 2026, 1, 5, 9, 15) + dt.timedelta(weeks=week)
        publish(brand_id, monday, impressions=100, engagements=5)

    answer = suggestions(client, key)

    rest = [(s["weekday"], s["time"]) for s in answer["suggestions"][1:]]
    defaults = [(s["weekday"], s["time"]) for s in slots.DEFAULT_SLOTS]
    assert answer["suggestions"][0]["hour"] == 9
    assert (0, "09:30") not in rest
    assert rest == sorted(slot for slot in defaults if slot != (0, "09:30"))


def test_replies_to_mentions_teach_nothing_about_when_to_post(client) -> None:
    # Replies go out when customers write, and only the conversation sees them:
    # three lively ones on Friday at 23:00 say nothing about the brand's feed.
    brand_id, key = create_brand(client)
    for week in range(best_time.MIN_SAMPLE_POSTS):
        tuesday = local(NEW_YORK, 2026, 1, 6, 19) + dt.timedelta(weeks=week)
        publish(brand_id, tuesday, impressions=1000, engagements=30)
        friday = local(NEW_YORK, 2026, 1, 9, 23) + dt.timedelta(weeks=week)
        publish(
            brand_id,
            friday,
            impressions=100,
            engagements=50,
            in_reply_to=str(1900000000000000000 + week),
        )

    answer = suggestions(client, key)

    ranked = [s for s in answer["suggestions"] if s["source"] == "history"]
    assert [(s["weekday"], s["hour"], s["posts"]) for s in ranked] == [
        (TUESDAY, 19, best_time.MIN_SAMPLE_POSTS)
    ]


def test_below_the_minimum_sample_the_brands_slots_are_answered_as_default(
    client,
) -> None:
    brand_id, key = create_brand(client)
    for week in range(best_time.MIN_SAMPLE_POSTS - 1):
        tuesday = local(NEW_YORK, 2026, 1, 6, 19) + dt.timedelta(weeks=week)
        publish(brand_id, tuesday, impressions=1000, engagements=300, orders=5)

    answer = suggestions(client, key)

    assert answer["source"] == "default"
    listed = [
        {"weekday": s["weekday"], "time": s["time"]} for s in answer["suggestions"]
    ]
    assert listed == slots.validate_slots(slots.DEFAULT_SLOTS)
    assert {s["source"] for s in answer["suggestions"]} == {"default"}


def test_a_half_hour_zone_groups_posts_by_its_own_local_hour(client) -> None:
    brand_id, key = create_brand(client, "Asia/Kolkata")
    # 19:00, 19:45 and 19:15 in Kolkata are 13:30, 14:15 and 13:45 UTC: two UTC
    # hours, one local hour.
    for day, minute in ((9, 0), (16, 45), (23, 15)):
        friday = local(KOLKATA, 2026, 1, day, 19, minute)
        publish(brand_id, friday, impressions=100, engagements=10)

    answer = suggestions(client, key)

    first = answer["suggestions"][0]
    assert answer["time_zone"] == "Asia/Kolkata"
    assert (first["weekday"], first["hour"], first["posts"]) == (FRIDAY, 19, 3)


def test_the_answer_is_the_same_under_another_process_and_session_time_zone(
    client,
) -> None:
    brand_id, key = create_brand(client)
    for week in range(3):
        tuesday = local(NEW_YORK, 2026, 3, 3, 23, 30) + dt.timedelta(weeks=week)
        publish(brand_id, tuesday, impressions=100, engagements=10)
    expected = suggestions(client, key)

    previous = os.environ.get("TZ")
    os.environ["TZ"] = "Pacific/Kiritimati"
    time.tzset()
    try:
        with runtime_module.current().database.transaction() as tx:
            tx.execute("SET LOCAL TimeZone = 'Pacific/Chatham'")
            moved = best_time.suggest(tx, brand_id=brand_id)
    finally:
        if previous is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = previous
        time.tzset()

    assert moved["suggestions"] == expected["suggestions"]
    assert (moved["suggestions"][0]["weekday"], moved["suggestions"][0]["hour"]) == (
        TUESDAY,
        23,
    )


def test_the_operator_key_cannot_ask_for_a_brands_suggestions(client) -> None:
    response = client.get("/v1/slots/suggestions", headers=auth(OPERATOR_KEY))

    assert response.status_code == 403
