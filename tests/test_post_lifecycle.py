"""A post's lifecycle through the API: reject, edit, and the log of who moved it."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time

import pytest

from cartcast import post_edits, post_events, posts, publishing
from tests.conftest import OPERATOR_KEY, START, make_app
from tests.helpers import ALPHA, auth, brand_body, catalog, make_brand, post_json


@pytest.fixture
def client(function_env):
    return make_app("api", "http").test_client()


@pytest.fixture
def brand_key(client) -> str:
    body = brand_body(approvals_required=True)
    response = post_json(client, "/v1/brands", body, OPERATOR_KEY)
    assert response.status_code == 201, response.get_json()
    key = response.get_json()["api_key"]
    post_json(client, "/v1/products", catalog(3), key)
    return key


def draft(client, key: str, index: int = 0, **fields) -> dict:
    body = {"products": [catalog(3)[index]["sku"]], **fields}
    response = post_json(client, "/v1/captions", body, key)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["posts"][0]


def patch_json(client, path: str, body, key: str):
    return client.patch(
        path, data=json.dumps(body), headers=auth(key), content_type="application/json"
    )


def events(client, key: str, post_id: str) -> list[dict]:
    response = client.get(f"/v1/posts/{post_id}/events", headers=auth(key))
    assert response.status_code == 200, response.get_json()
    return response.get_json()["events"]


def moves(found: list[dict]) -> list[tuple]:
    return [(event["from_state"], event["to_state"], event["actor"]) for event in found]


def test_a_rejected_draft_keeps_its_reason_and_can_no_longer_be_approved(
    client, brand_key
) -> None:
    post = draft(client, brand_key)

    rejected = post_json(
        client, f"/v1/posts/{post['id']}/reject", {"reason": "off-brand"}, brand_key
    )
    approved = post_json(client, f"/v1/posts/{post['id']}/approve", {}, brand_key)

    assert rejected.status_code == 200
    assert rejected.get_json()["post"]["state"] == "rejected"
    assert approved.status_code == 409
    last = events(client, brand_key, post["id"])[-1]
    assert (last["to_state"], last["actor"], last["reason"]) == (
        "rejected",
        "admin",
        "off-brand",
    )


@pytest.mark.parametrize("body", [None, {}, {"reason": "  "}, {"reason": 3}])
def test_a_rejection_without_a_reason_is_a_400_naming_reason(
    client, brand_key, body
) -> None:
    post = draft(client, brand_key)
    path = f"/v1/posts/{post['id']}/reject"

    if body is None:
        response = client.post(path, headers=auth(brand_key))
    else:
        response = post_json(client, path, body, brand_key)

    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "reason"
    assert (
        client.get(f"/v1/posts/{post['id']}", headers=auth(brand_key)).get_json()[
            "post"
        ]["state"]
        == "needs_approval"
    )


def test_a_cancellation_needs_no_body_and_happens_once(client, brand_key) -> None:
    post = draft(client, brand_key)
    path = f"/v1/posts/{post['id']}/cancel"

    bare = client.post(path, headers=auth(brand_key))
    again = post_json(client, path, {"reason": "campaign dropped"}, brand_key)

    assert bare.status_code == 200
    assert again.status_code == 409
    assert events(client, brand_key, post["id"])[-1]["reason"] is None


def test_a_cancellation_reason_is_kept_in_the_events(client, brand_key) -> None:
    post = draft(client, brand_key)

    post_json(
        client,
        f"/v1/posts/{post['id']}/cancel",
        {"reason": "campaign dropped"},
        brand_key,
    )

    last = events(client, brand_key, post["id"])[-1]
    assert (last["to_state"], last["reason"]) == ("cancelled", "campaign dropped")


def test_a_rejected_link_post_gives_its_place_in_the_allowance_back(
    client, brand_key
) -> None:
    policy = {"link_policy": "monthly", "link_posts_per_month": 1}
    patch_json(client, "/v1/brand", policy, brand_key)
    first = draft(client, brand_key, 0)
    post_json(client, f"/v1/posts/{first['id']}/reject", {"reason": "no"}, brand_key)

    second = draft(client, brand_key, 1, link=True)

    assert first["link"] and second["link"]


def test_editing_a_scheduled_post_sends_it_back_for_approval_without_its_slot(
    client, brand_key
) -> None:
    post = draft(client, brand_key)
    post_json(client, f"/v1/posts/{post['id']}/approve", {}, brand_key)
    post_json(client, f"/v1/posts/{post['id']}/schedule", {}, brand_key)
    text = f"Hand-written copy about a favourite of ours. {post['link']}"

    response = patch_json(client, f"/v1/posts/{post['id']}", {"text": text}, brand_key)

    edited = response.get_json()["post"]
    assert response.status_code == 200, edited
    assert edited["state"] == "needs_approval"
    assert edited["scheduled_at"] is None
    assert edited["text"] == text
    assert edited["engine"] == "manual"
    assert all(edited["checks"].values()), edited["checks"]


def test_an_edit_runs_the_claims_check_again_and_records_what_failed(
    client, brand_key
) -> None:
    post = draft(client, brand_key)
    text = f"Now 90% off, only today! {post['link']}"

    response = patch_json(client, f"/v1/posts/{post['id']}", {"text": text}, brand_key)

    assert response.status_code == 200
    assert response.get_json()["post"]["checks"]["claims_match_catalog"] is False


def test_an_edit_that_mentions_a_stranger_records_the_failed_mention_check(
    client, brand_key
) -> None:
    post = draft(client, brand_key)
    text = f"Loved by @elonmusk, they say. {post['link']}"

    response = patch_json(client, f"/v1/posts/{post['id']}", {"text": text}, brand_key)

    assert response.status_code == 200
    assert response.get_json()["post"]["checks"]["no_mentions"] is False


def test_an_edit_is_a_near_duplicate_of_another_post_but_never_of_itself(
    client, brand_key
) -> None:
    first = draft(client, brand_key, 0)
    second = draft(client, brand_key, 1)
    copied = first["text"].replace(first["link"], second["link"])

    unchanged = patch_json(
        client, f"/v1/posts/{first['id']}", {"text": first["text"]}, brand_key
    )
    duplicate = patch_json(
        client, f"/v1/posts/{second['id']}", {"text": copied}, brand_key
    )

    assert unchanged.get_json()["post"]["checks"]["distinct"] is True
    assert duplicate.get_json()["post"]["checks"]["distinct"] is False


@pytest.mark.parametrize(
    ("text", "field", "says"),
    [
        ("", "text", "words"),
        ("... !!! ???", "text", "words"),
        ("word " * 60 + "{link}", "text", "280"),
        ("Two links: {link} and https://elsewhere.example.org/x", "text", "second"),
        ("No link at all in this one.", "text", "exactly once"),
        ("Twice: {link} {link}", "text", "exactly once"),
        (None, "text", "words"),
        ("{link}", "text", "words"),
        ("\u200b {link}", "text", "words"),
        ("{link} !", "text", "words"),
    ],
)
def test_an_edit_x_cannot_take_is_a_400_naming_the_field_and_changes_nothing(
    client, brand_key, text, field, says
) -> None:
    post = draft(client, brand_key)
    body = {"text": text.replace("{link}", post["link"]) if text else text}

    response = patch_json(client, f"/v1/posts/{post['id']}", body, brand_key)

    error = response.get_json()["error"]
    assert response.status_code == 400
    assert error["field"] == field
    assert says in error["message"]
    after = client.get(f"/v1/posts/{post['id']}", headers=auth(brand_key))
    assert after.get_json()["post"]["text"] == post["text"]
    assert len(events(client, brand_key, post["id"])) == 1


def test_a_poll_edited_to_one_option_is_a_400_naming_poll_options(
    client, brand_key
) -> None:
    poll = draft(client, brand_key, kind="poll", poll_options=["Red", "Blue"])

    response = patch_json(
        client, f"/v1/posts/{poll['id']}", {"poll_options": ["Red"]}, brand_key
    )

    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "poll_options"


def test_a_poll_asked_with_one_option_is_a_400_naming_poll_options(
    client, brand_key
) -> None:
    body = {"products": [catalog(1)[0]["sku"]], "kind": "poll", "poll_options": ["A"]}

    response = post_json(client, "/v1/captions", body, brand_key)

    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "poll_options"


def test_a_poll_edit_may_change_only_its_options(client, brand_key) -> None:
    poll = draft(client, brand_key, kind="poll", poll_options=["Red", "Blue"])

    response = patch_json(
        client,
        f"/v1/posts/{poll['id']}",
        {"poll_options": ["Green", "Gold", "Grey"]},
        brand_key,
    )

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["post"]["poll_options"] == ["Green", "Gold", "Grey"]


def test_a_thread_is_edited_by_its_parts_with_the_link_in_one_of_them(
    client, brand_key
) -> None:
    thread = draft(client, brand_key, kind="thread")
    parts = [
        "A first thought about this product.",
        f"And where to get it {thread['link']}",
    ]

    by_text = patch_json(client, f"/v1/posts/{thread['id']}", {"text": "x"}, brand_key)
    by_parts = patch_json(
        client, f"/v1/posts/{thread['id']}", {"parts": parts}, brand_key
    )

    assert by_text.status_code == 400
    assert by_text.get_json()["error"]["field"] == "text"
    edited = by_parts.get_json()["post"]
    assert by_parts.status_code == 200, edited
    assert [part["text"] for part in edited["parts"]] == parts
    assert [part["has_link"] for part in edited["parts"]] == [False, True]
    assert edited["text"] == "\n\n".join(parts)


def test_a_thread_part_that_is_only_the_link_is_a_400_naming_the_part(
    client, brand_key
) -> None:
    thread = draft(client, brand_key, kind="thread")
    parts = ["A first thought about this product.", f"\u200b {thread['link']}"]

    response = patch_json(
        client, f"/v1/posts/{thread['id']}", {"parts": parts}, brand_key
    )

    error = response.get_json()["error"]
    assert response.status_code == 400
    assert error["field"] == "parts[1]"
    assert "words" in error["message"]
    assert len(events(client, brand_key, thread["id"])) == 1


@pytest.mark.parametrize(
    ("how", "state"),
    [("cancel", "cancelled"), ("reject", "rejected")],
)
def test_a_post_that_is_over_cannot_be_edited(client, brand_key, how, state) -> None:
    post = draft(client, brand_key)
    post_json(client, f"/v1/posts/{post['id']}/{how}", {"reason": "no"}, brand_key)

    response = patch_json(
        client, f"/v1/posts/{post['id']}", {"text": post["text"]}, brand_key
    )

    assert response.status_code == 409
    assert state in response.get_json()["error"]["message"]


def test_every_api_transition_is_logged_with_the_key_and_the_time(
    client, brand_key
) -> None:
    post = draft(client, brand_key)
    path = f"/v1/posts/{post['id']}"
    post_json(client, f"{path}/approve", {}, brand_key)
    post_json(client, f"{path}/schedule", {}, brand_key)
    patch_json(client, path, {"text": post["text"]}, brand_key)
    post_json(client, f"{path}/approve", {}, brand_key)
    post_json(client, f"{path}/cancel", {}, brand_key)

    found = events(client, brand_key, post["id"])

    assert moves(found) == [
        (None, "needs_approval", "admin"),
        ("needs_approval", "approved", "admin"),
        ("approved", "scheduled", "admin"),
        ("scheduled", "needs_approval", "admin"),
        ("needs_approval", "approved", "admin"),
        ("approved", "cancelled", "admin"),
    ]
    assert found[3]["reason"] == "edited"
    assert [dt.datetime.fromisoformat(event["at"]) for event in found] == [START] * 6


def test_publishing_transitions_are_logged_as_the_system(
    x_runtime, clock, x_sandbox
) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)
    clock.advance(dt.timedelta(days=7))

    publishing.publish_due(x_runtime, as_of=clock.now())

    with x_runtime.database.transaction() as tx:
        post_id = str(tx.scalar("SELECT id FROM posts WHERE brand_id = :b", b=brand_id))
        found = post_events.list_events(tx, brand_id=brand_id, post_id=post_id)
    assert moves(found)[-2:] == [
        ("scheduled", "publishing", "system"),
        ("publishing", "published", "system"),
    ]
    assert found[-1]["at"] == clock.now()


def test_a_held_post_is_logged_with_the_reason_it_was_held(x_runtime, clock) -> None:
    brand_id = make_brand(x_runtime, "no-x", None, products=1)
    clock.advance(dt.timedelta(days=7))

    publishing.publish_due(x_runtime, as_of=clock.now())

    with x_runtime.database.transaction() as tx:
        post_id = str(tx.scalar("SELECT id FROM posts WHERE brand_id = :b", b=brand_id))
        last = post_events.list_events(tx, brand_id=brand_id, post_id=post_id)[-1]
    assert (last["to_state"], last["actor"]) == ("held", "system")
    assert "no X account" in last["reason"]


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("post", "/approve", {}),
        ("post", "/reject", {"reason": "mine now"}),
        ("post", "/schedule", {}),
        ("post", "/cancel", {}),
        ("patch", "", {"text": "hello"}),
        ("get", "/events", None),
        ("get", "/attempts", None),
    ],
)
def test_another_brands_post_is_not_found_for_every_lifecycle_call(
    client, brand_key, method, suffix, body
) -> None:
    post = draft(client, brand_key)
    other = post_json(
        client, "/v1/brands", brand_body(name="Other", slug="other"), OPERATOR_KEY
    ).get_json()["api_key"]
    path = f"/v1/posts/{post['id']}{suffix}"

    if method == "get":
        response = client.get(path, headers=auth(other))
    else:
        response = getattr(client, method)(
            path,
            data=json.dumps(body),
            headers=auth(other),
            content_type="application/json",
        )

    assert response.status_code == 404
    assert len(events(client, brand_key, post["id"])) == 1


def test_scheduling_in_the_past_is_a_400_naming_at(client, brand_key) -> None:
    post = draft(client, brand_key)
    post_json(client, f"/v1/posts/{post['id']}/approve", {}, brand_key)

    response = post_json(
        client,
        f"/v1/posts/{post['id']}/schedule",
        {"at": "2026-03-01T09:00:00+00:00"},
        brand_key,
    )

    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "at"


def test_a_held_post_edited_waits_for_approval_without_its_old_reason(
    x_runtime, clock
) -> None:
    brand_id = make_brand(x_runtime, "no-x", None, products=1)
    clock.advance(dt.timedelta(days=7))
    publishing.publish_due(x_runtime, as_of=clock.now())

    with x_runtime.database.transaction() as tx:
        held = posts.list_posts(tx, brand_id=brand_id, state="held", limit=1)[0]
        post_events.act_as(tx, "editor")
        edited = post_edits.edit_post(
            tx,
            brand_id=brand_id,
            post_id=str(held["id"]),
            body={"text": held["text"]},
            now=clock.now(),
            near_duplicate_threshold=0.8,
            near_duplicate_days=30,
        )
        found = post_events.list_events(tx, brand_id=brand_id, post_id=str(held["id"]))

    assert (edited["state"], edited["failure_reason"]) == ("needs_approval", None)
    assert moves(found)[-1] == ("held", "needs_approval", "editor")


@pytest.mark.parametrize("glued", ["zzz", "&x=1", "#frag", "/more", "'s"])
def test_an_edit_that_glues_anything_to_the_link_is_a_400_naming_text(
    client, brand_key, glued
) -> None:
    post = draft(client, brand_key)

    response = patch_json(
        client,
        f"/v1/posts/{post['id']}",
        {"text": f"hello {post['link']}{glued}"},
        brand_key,
    )

    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["field"] == "text"
    assert "standing alone" in error["message"]


@pytest.mark.parametrize("around", ["see {}.", "({})!", "{}, soon", "get it: {}"])
def test_an_edit_may_end_a_sentence_right_after_the_link(
    client, brand_key, around
) -> None:
    post = draft(client, brand_key)

    response = patch_json(
        client,
        f"/v1/posts/{post['id']}",
        {"text": "A mug to love, " + around.format(post["link"])},
        brand_key,
    )

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["post"]["checks"]["link_once"] is True


@pytest.mark.parametrize(
    ("ending", "carried"),
    [("#PR, #Tokyo", True), ("#PR・Tokyo #Tokyo", False), ("#PR #Tokyo·Cafe", False)],
)
def test_an_edit_carries_the_disclosure_and_required_hashtags_only_as_x_links_them(
    client, ending, carried
) -> None:
    body = brand_body(
        slug="tokyo-goods", disclosure_tag="#PR", required_hashtags=["#Tokyo"]
    )
    key = post_json(client, "/v1/brands", body, OPERATOR_KEY).get_json()["api_key"]
    post_json(client, "/v1/products", catalog(1), key)
    post = draft(client, key, sponsored=True)
    text = f"A mug to love. {post['link']} {ending}"

    response = patch_json(client, f"/v1/posts/{post['id']}", {"text": text}, key)

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["post"]["checks"]["required_hashtags"] is carried


def approved(client, key: str, index: int = 0) -> dict:
    post = draft(client, key, index)
    response = post_json(client, f"/v1/posts/{post['id']}/approve", {}, key)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["post"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/posts/{id}/schedule", {"when": "2026-03-05T09:00:00+00:00"}, "when"),
        ("/v1/posts/{id}/schedule", {"at": None, "limit": 1}, "limit"),
        ("/v1/schedule", {"limt": 5}, "limt"),
    ],
)
def test_a_schedule_request_with_an_unknown_field_is_a_400_naming_it(
    client, brand_key, path, body, field
) -> None:
    post = approved(client, brand_key)

    response = post_json(client, path.format(id=post["id"]), body, brand_key)

    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == field
    unchanged = client.get(f"/v1/posts/{post['id']}", headers=auth(brand_key))
    assert unchanged.get_json()["post"]["state"] == "approved"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/posts/{id}/schedule", {"at": None}, "at"),
        ("/v1/posts/{id}/schedule", {"local_time": None}, "local_time"),
        ("/v1/posts/{id}/schedule", {"time_zone": None}, "time_zone"),
        ("/v1/posts/{id}/cancel", {"reason": None}, "reason"),
        # The spec's settle takes no x_post_id at all but with on_x (`false`),
        # not even a null.
        (
            "/v1/posts/{id}/settle",
            {"outcome": "absent", "x_post_id": None},
            "x_post_id",
        ),
        (
            "/v1/posts/{id}/settle",
            {"outcome": "cancel", "x_post_id": None},
            "x_post_id",
        ),
    ],
)
def test_a_null_where_the_spec_takes_a_string_is_a_400_not_the_field_left_out(
    client, brand_key, path, body, field
) -> None:
    # docs/openapi.yaml types these `string` alone: leaving one out picks the
    # next slot or no reason, and a null is no way of saying either.
    post = approved(client, brand_key)

    response = post_json(client, path.format(id=post["id"]), body, brand_key)

    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert error["field"] == field and "null" in error["message"], error
    unchanged = client.get(f"/v1/posts/{post['id']}", headers=auth(brand_key))
    assert unchanged.get_json()["post"]["state"] == "approved"


def test_a_schedule_racing_a_cancel_is_a_409_and_never_reports_a_state_it_did_not_set(
    client, brand_key
) -> None:
    from cartcast import runtime as runtime_module

    post = approved(client, brand_key)
    other = runtime_module.Runtime(runtime_module.current().settings)
    answers = []

    def schedule() -> None:
        path = f"/v1/posts/{post['id']}/schedule"
        answers.append(post_json(client, path, {}, brand_key))

    scheduler = threading.Thread(target=schedule)
    # The cancel holds the post's row until it commits; the schedule reads the post
    # as approved, then waits on that row for its UPDATE.
    with other.database.transaction() as tx:
        brand_id = str(
            tx.scalar("SELECT brand_id FROM posts WHERE id = :id", id=post["id"])
        )
        posts.cancel(tx, brand_id=brand_id, post_id=post["id"], body={}, now=START)
        scheduler.start()
        wait_for_a_lock_wait(other)
    scheduler.join(timeout=30)
    other.close()

    (response,) = answers
    assert response.status_code == 409, response.get_json()
    assert "changed state meanwhile" in response.get_json()["error"]["message"]
    assert events(client, brand_key, post["id"])[-1]["to_state"] == "cancelled"


def wait_for_a_lock_wait(runtime) -> None:
    """Return once another session of the test database waits on a row lock."""
    for _ in range(3000):
        with runtime.database.transaction() as tx:
            waiting = tx.scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND datname = current_database()"
            )
        if waiting:
            return
        time.sleep(0.01)
    raise AssertionError("the schedule request never waited on the post's row")


def test_a_post_that_cannot_be_scheduled_is_told_which_states_can(
    client, brand_key
) -> None:
    post = draft(client, brand_key)

    response = post_json(client, f"/v1/posts/{post['id']}/schedule", {}, brand_key)

    assert response.status_code == 409
    assert response.get_json()["error"]["message"] == (
        "post is needs_approval; only an approved or held post can be "
        "scheduled, or a scheduled one moved"
    )


def test_a_scheduled_post_can_be_moved_to_another_time(client, brand_key) -> None:
    post = approved(client, brand_key)
    path = f"/v1/posts/{post['id']}/schedule"
    post_json(client, path, {}, brand_key)

    moved = post_json(client, path, {"at": "2026-03-20T10:00:00+01:00"}, brand_key)

    assert moved.status_code == 200, moved.get_json()
    assert moved.get_json()["post"]["scheduled_at"] == "2026-03-20T09:00:00+00:00"


@pytest.mark.parametrize(
    ("at", "utc"),
    [
        ("2026-03-10T09:00:00-14:00", "2026-03-10T23:00:00+00:00"),
        ("2026-03-10T09:00:00+14:00", "2026-03-09T19:00:00+00:00"),
        ("2026-03-10T09:00:00Z", "2026-03-10T09:00:00+00:00"),
        ("2026-03-10T09:00:00-23:59", "2026-03-11T08:59:00+00:00"),
    ],
)
def test_any_offset_within_a_day_is_accepted_for_at(client, brand_key, at, utc) -> None:
    post = approved(client, brand_key)

    response = post_json(
        client, f"/v1/posts/{post['id']}/schedule", {"at": at}, brand_key
    )

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["post"]["scheduled_at"] == utc


@pytest.mark.parametrize(
    ("at", "says"),
    [
        ("9999-12-31T23:59:59+00:00", "more than 365 days ahead"),
        ("2027-03-03T08:00:00+00:00", "more than 365 days ahead"),
        ("9999-12-31T23:59:59-14:00", "past the last instant"),
        ("2026-03-10T09:00:00", "has no offset"),
        ("2026-03-10T09:00:00+24:00", "from -23:59 to +23:59"),
    ],
)
def test_an_at_too_far_ahead_or_without_a_usable_offset_is_a_400_saying_which(
    client, brand_key, at, says
) -> None:
    post = approved(client, brand_key)

    response = post_json(
        client, f"/v1/posts/{post['id']}/schedule", {"at": at}, brand_key
    )

    error = response.get_json()["error"]
    assert response.status_code == 400
    assert (error["field"], says in error["message"]) == ("at", True), error


def test_the_schedule_horizon_is_a_setting(client, brand_key, monkeypatch) -> None:
    from cartcast import runtime as runtime_module

    monkeypatch.setenv("CARTCAST_SCHEDULE_HORIZON_DAYS", "30")
    runtime_module.reset()
    post = approved(client, brand_key)
    path = f"/v1/posts/{post['id']}/schedule"

    too_far = post_json(client, path, {"at": "2026-04-02T09:00:00Z"}, brand_key)
    within = post_json(client, path, {"at": "2026-03-31T09:00:00Z"}, brand_key)

    assert too_far.status_code == 400
    assert "more than 30 days ahead" in too_far.get_json()["error"]["message"]
    assert within.status_code == 200, within.get_json()


def test_claiming_a_post_clears_the_reason_of_its_last_retry(
    x_runtime, clock, x_sandbox
) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)
    clock.advance(dt.timedelta(days=7))
    x_sandbox.add_fault(method="POST", path_prefix="/2/tweets", status=503)
    publishing.publish_due(x_runtime, as_of=clock.now())
    # Past the longest backoff the 503 can have drawn.
    clock.advance(dt.timedelta(seconds=x_runtime.settings.publish_retry_max_s))

    publishing.publish_due(x_runtime, as_of=clock.now())

    with x_runtime.database.transaction() as tx:
        post_id = str(tx.scalar("SELECT id FROM posts WHERE brand_id = :b", b=brand_id))
        found = post_events.list_events(tx, brand_id=brand_id, post_id=post_id)
    claims = [
        e
        for e in found
        if (e["from_state"], e["to_state"]) == ("scheduled", "publishing")
    ]
    retried = [e for e in found if e["to_state"] == "scheduled" and e["from_state"]]
    assert len(claims) == 2 and claims[1]["reason"] is None
    assert retried[-1]["reason"].startswith("will retry")
    assert found[-1]["to_state"] == "published"


@pytest.mark.parametrize(
    ("module", "lock"),
    [("posts", "LOCK_BRAND"), ("crisis", "LOCK_BRAND")],
)
def test_a_brand_locked_to_move_its_posts_still_lets_a_post_change_log_itself(
    client, brand_key, module, lock
) -> None:
    """Scheduling and the crisis pause lock the brand, then update posts. An edit
    or approval updates its post first, then logs it (post_events, by trigger),
    whose foreign key takes KEY SHARE on the brand. A FOR UPDATE brand lock
    refuses that share, and the two waited for each other: PostgreSQL ended the
    edit as a deadlock, a 500 (found racing PATCH, approve and schedule)."""
    import importlib

    import pg8000.native

    from cartcast import db
    from cartcast import runtime as runtime_module

    brand_id = client.get("/v1/brand", headers=auth(brand_key)).get_json()["brand"]
    runtime = runtime_module.current()
    other = pg8000.native.Connection(
        **db.parse_database_url(runtime.settings.database_url)
    )
    statement = getattr(importlib.import_module(f"cartcast.{module}"), lock)

    with runtime.database.transaction() as tx:
        tx.one(statement, brand_id=brand_id["id"])
        other.run("BEGIN")
        try:
            other.run(
                "SELECT 1 FROM brands WHERE id = CAST(:id AS uuid) "
                "FOR KEY SHARE NOWAIT",
                id=brand_id["id"],
            )
            shared = True
        except pg8000.native.DatabaseError:
            shared = False
        other.run("ROLLBACK")
    other.close()

    assert shared
