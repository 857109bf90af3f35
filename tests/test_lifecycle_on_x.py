"""Lifecycle calls on posts X has, or may have: a half-sent thread's edit, and a
person settling an unconfirmed post through the API.

The API runs on the shared file clock, publishing on the test's pinned clock; both
are moved together, and tweepy reaches the X sandbox.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time

import pytest

from cartcast import accounts, keys, metrics, publishing, reconciling, settling
from tests.conftest import OPERATOR_KEY, START, make_app
from tests.helpers import auth, brand_body, catalog, post_json

WEEK = dt.timedelta(days=7)


@pytest.fixture
def client(function_env):
    return make_app("api", "http").test_client()


@pytest.fixture
def shop_key(client) -> str:
    """A brand on the sandbox's account ALPHA, approvals off, with its catalog."""
    body = brand_body(x_access_token="token-alpha", approvals_required=False)
    response = post_json(client, "/v1/brands", body, OPERATOR_KEY)
    assert response.status_code == 201, response.get_json()
    key = response.get_json()["api_key"]
    post_json(client, "/v1/products", catalog(3), key)
    return key


def scheduled_post(client, key: str, index: int = 0, **fields) -> dict:
    body = {"products": [catalog(3)[index]["sku"]], **fields}
    drafted = post_json(client, "/v1/captions", body, key).get_json()["posts"][0]
    response = post_json(client, f"/v1/posts/{drafted['id']}/schedule", {}, key)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["post"]


def move_both_clocks(clock, clock_file, to: dt.datetime) -> None:
    clock.set(to)
    clock_file.set(to)


def get_post(client, key: str, post_id: str) -> dict:
    return client.get(f"/v1/posts/{post_id}", headers=auth(key)).get_json()["post"]


def patch_json(client, path: str, body, key: str):
    return client.patch(
        path, data=json.dumps(body), headers=auth(key), content_type="application/json"
    )


def on_x(x_sandbox) -> list[dict]:
    return sorted(x_sandbox.snapshot()["posts"], key=lambda post: int(post["id"]))


def ledger_refs(x_runtime) -> list[str]:
    with x_runtime.database.transaction() as tx:
        found = tx.rows(
            "SELECT ref FROM cost_ledger WHERE operation IN ('post', 'post_with_url')"
        )
    return sorted(row["ref"] for row in found)


def half_sent_thread(
    client, key, x_runtime, clock, clock_file, x_sandbox, how: str = "503"
) -> dict:
    """A thread with its first part on X and its second turned away (503).

    `how` is "503" (part 1 served, part 2 refused) or "drop-then-503", the tester's
    path: part 1's answer lost (unconfirmed), found on the timeline by the
    reconciler, then part 2 refused.
    """
    thread = scheduled_post(client, key, kind="thread")
    move_both_clocks(clock, clock_file, START + WEEK)
    if how == "503":
        x_sandbox.add_fault(method="POST", path_prefix="/2/tweets")  # served
        x_sandbox.add_fault(method="POST", path_prefix="/2/tweets", status=503)
        publishing.publish_due(x_runtime, as_of=clock.now())
    else:
        x_sandbox.add_fault(method="POST", path_prefix="/2/tweets", drop=True)
        reconciling.reconcile_then_publish(x_runtime, as_of=clock.now())
        move_both_clocks(clock, clock_file, START + WEEK + dt.timedelta(seconds=10))
        x_sandbox.add_fault(method="POST", path_prefix="/2/tweets", status=503)
        reconciling.reconcile_then_publish(x_runtime, as_of=clock.now())
    return get_post(client, key, thread["id"])


def test_a_half_sent_threads_part_on_x_cannot_be_edited_and_nothing_changes(
    client, shop_key, x_runtime, clock, clock_file, x_sandbox
) -> None:
    thread = half_sent_thread(client, shop_key, x_runtime, clock, clock_file, x_sandbox)
    rewritten = ["A new first part.", f"And where to get it {thread['link']}"]

    response = patch_json(
        client, f"/v1/posts/{thread['id']}", {"parts": rewritten}, shop_key
    )

    error = response.get_json()["error"]
    assert thread["state"] == "scheduled"
    assert response.status_code == 409
    assert error["field"] == "parts[0]"
    assert "on X already as " + thread["parts"][0]["x_post_id"] in error["message"]
    assert get_post(client, shop_key, thread["id"]) == thread


@pytest.mark.parametrize("how", ["503", "drop-then-503"])
def test_a_half_sent_thread_edited_after_its_part_on_x_sends_only_the_new_part(
    client, shop_key, x_runtime, clock, clock_file, x_sandbox, how
) -> None:
    thread = half_sent_thread(
        client, shop_key, x_runtime, clock, clock_file, x_sandbox, how
    )
    first = thread["parts"][0]
    new_second = f"Edited: where to get it {thread['link']}"
    path = f"/v1/posts/{thread['id']}"

    edited = patch_json(client, path, {"parts": [first["text"], new_second]}, shop_key)
    post_json(client, f"{path}/approve", {}, shop_key)
    post_json(client, f"{path}/schedule", {}, shop_key)
    move_both_clocks(clock, clock_file, START + 2 * WEEK)
    publishing.publish_due(x_runtime, as_of=clock.now())

    assert (thread["state"], first["x_post_id"] is not None) == ("scheduled", True)
    assert edited.status_code == 200, edited.get_json()
    assert edited.get_json()["post"]["parts"][0]["x_post_id"] == first["x_post_id"]
    head, reply = on_x(x_sandbox)
    assert head["id"] == first["x_post_id"]
    assert reply["submitted_text"] == new_second
    assert reply["in_reply_to_tweet_id"] == head["id"]
    published = get_post(client, shop_key, thread["id"])
    assert published["state"] == "published"
    assert published["x_post_id"] == head["id"]
    assert ledger_refs(x_runtime) == sorted([f"{thread['id']}/0", f"{thread['id']}/1"])


# --- Settling an unconfirmed post by hand --------------------------------------------


def unconfirmed_post(client, key, x_runtime, clock, clock_file, x_sandbox, **fields):
    """A post whose request reached X (it has it) while the answer was lost."""
    post = scheduled_post(client, key, **fields)
    move_both_clocks(clock, clock_file, START + WEEK)
    x_sandbox.add_fault(method="POST", path_prefix="/2/tweets", drop=True)
    publishing.publish_due(x_runtime, as_of=clock.now())
    return get_post(client, key, post["id"])


def settle(client, key: str, post_id: str, body):
    return post_json(client, f"/v1/posts/{post_id}/settle", body, key)


def events(client, key: str, post_id: str) -> list[dict]:
    response = client.get(f"/v1/posts/{post_id}/events", headers=auth(key))
    return response.get_json()["events"]


def test_an_unconfirmed_post_found_on_x_is_published_with_the_id_a_person_gives(
    client, shop_key, x_runtime, clock, clock_file, x_sandbox
) -> None:
    post = unconfirmed_post(client, shop_key, x_runtime, clock, clock_file, x_sandbox)
    (found,) = on_x(x_sandbox)

    response = settle(
        client,
        shop_key,
        post["id"],
        {"outcome": "on_x", "x_post_id": found["id"], "reason": "seen on the profile"},
    )

    settled = response.get_json()["post"]
    assert post["state"] == "unconfirmed"
    assert response.status_code == 200, response.get_json()
    assert (settled["state"], settled["x_post_id"]) == ("published", found["id"])
    assert settled["published_at"] == clock_file.now().isoformat()
    last = events(client, shop_key, post["id"])[-1]
    assert (last["from_state"], last["to_state"], last["actor"]) == (
        "unconfirmed",
        "published",
        "admin",
    )
    assert last["reason"] == (
        f"settled by hand: on X as {found['id']}; seen on the profile"
    )
    assert ledger_refs(x_runtime) == [post["id"]]
    assert len(on_x(x_sandbox)) == 1


def test_a_post_settled_with_a_mistyped_id_keeps_its_text_and_shows_x_has_not_it(
    client, shop_key, x_runtime, clock, clock_file, x_sandbox
) -> None:
    post = unconfirmed_post(client, shop_key, x_runtime, clock, clock_file, x_sandbox)
    (found,) = on_x(x_sandbox)
    slip = found["id"][:-1] + str((int(found["id"][-1]) + 1) % 10)
    settled = settle(
        client, shop_key, post["id"], {"outcome": "on_x", "x_post_id": slip}
    )
    assert settled.status_code == 200, settled.get_json()

    for _ in range(3):
        move_both_clocks(clock, clock_file, clock.now() + dt.timedelta(hours=1))
        with x_runtime.database.transaction() as tx:
            (brand,) = accounts.connected_brands(tx)
        metrics.snapshot_brand(x_runtime, brand, clock.now())

    after = get_post(client, shop_key, post["id"])
    assert after["text"] == post["text"] and after["deleted_on_x_at"] is None
    # X never returned the typed id: the API shows it missing for a person to check.
    assert after["missing_on_x_at"] is not None


def test_an_unconfirmed_post_declared_absent_can_be_scheduled_again_with_a_warning(
    client, shop_key, x_runtime, clock, clock_file, x_sandbox
) -> None:
    post = unconfirmed_post(client, shop_key, x_runtime, clock, clock_file, x_sandbox)

    response = settle(client, shop_key, post["id"], {"outcome": "absent"})
    again = post_json(client, f"/v1/posts/{post['id']}/schedule", {}, shop_key)

    answer = response.get_json()
    assert response.status_code == 200, answer
    assert (answer["post"]["state"], answer["post"]["scheduled_at"]) == (
        "approved",
        None,
    )
    assert "posts it twice" in answer["warning"]
    assert again.status_code == 200
    assert again.get_json()["post"]["state"] == "scheduled"
    with x_runtime.database.transaction() as tx:
        attempt = tx.one("SELECT outcome, error FROM publish_attempts")
    assert attempt["outcome"] == "retry"
    assert "settled by hand: absent from X" in attempt["error"]
    # X has nothing, so the price reserved when it was sent is given back.
    assert ledger_refs(x_runtime) == []


def test_an_unconfirmed_post_can_be_cancelled_by_hand(
    client, shop_key, x_runtime, clock, clock_file, x_sandbox
) -> None:
    post = unconfirmed_post(client, shop_key, x_runtime, clock, clock_file, x_sandbox)

    response = settle(client, shop_key, post["id"], {"outcome": "cancel"})

    assert response.status_code == 200
    assert response.get_json()["post"]["state"] == "cancelled"
    assert "warning" not in response.get_json()


def test_a_thread_part_settled_as_on_x_lets_the_thread_send_the_rest(
    client, shop_key, x_runtime, clock, clock_file, x_sandbox
) -> None:
    thread = unconfirmed_post(
        client, shop_key, x_runtime, clock, clock_file, x_sandbox, kind="thread"
    )
    (first,) = on_x(x_sandbox)

    response = settle(
        client, shop_key, thread["id"], {"outcome": "on_x", "x_post_id": first["id"]}
    )
    resumed = response.get_json()["post"]
    publishing.publish_due(x_runtime, as_of=clock.now())

    assert response.status_code == 200, response.get_json()
    assert resumed["state"] == "scheduled"
    assert resumed["parts"][0]["x_post_id"] == first["id"]
    head, reply = on_x(x_sandbox)
    assert reply["in_reply_to_tweet_id"] == head["id"] == first["id"]
    assert get_post(client, shop_key, thread["id"])["state"] == "published"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "outcome"),
        ({"outcome": "gone"}, "outcome"),
        ({"outcome": "on_x"}, "x_post_id"),
        ({"outcome": "on_x", "x_post_id": "12ab"}, "x_post_id"),
        ({"outcome": "on_x", "x_post_id": 1234}, "x_post_id"),
        ({"outcome": "on_x", "x_post_id": "1" * 20}, "x_post_id"),
        ({"outcome": "on_x", "x_post_id": "١٢٣"}, "x_post_id"),
        ({"outcome": "absent", "x_post_id": "123"}, "x_post_id"),
        ({"outcome": "absent", "why": "typo"}, "why"),
    ],
)
def test_a_bad_settlement_is_a_400_naming_the_field_and_changes_nothing(
    client, shop_key, x_runtime, clock, clock_file, x_sandbox, body, field
) -> None:
    post = unconfirmed_post(client, shop_key, x_runtime, clock, clock_file, x_sandbox)

    response = settle(client, shop_key, post["id"], body)

    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == field
    assert get_post(client, shop_key, post["id"]) == post


def test_an_x_id_another_post_holds_is_a_409(
    client, shop_key, x_runtime, clock, clock_file, x_sandbox
) -> None:
    first = scheduled_post(client, shop_key, 0)
    second = scheduled_post(client, shop_key, 1)
    move_both_clocks(clock, clock_file, START + WEEK)
    x_sandbox.add_fault(method="POST", path_prefix="/2/tweets", drop=True, count=2)
    publishing.publish_due(x_runtime, as_of=clock.now())
    found = on_x(x_sandbox)[0]["id"]
    settle(client, shop_key, first["id"], {"outcome": "on_x", "x_post_id": found})

    response = settle(
        client, shop_key, second["id"], {"outcome": "on_x", "x_post_id": found}
    )

    assert len(on_x(x_sandbox)) == 2
    assert response.status_code == 409
    assert f"already post {first['id']}" in response.get_json()["error"]["message"]
    assert get_post(client, shop_key, second["id"])["state"] == "unconfirmed"


def test_two_people_settling_two_posts_with_one_x_id_at_once_get_a_409_not_a_500(
    client, shop_key, x_runtime, clock, clock_file, x_sandbox
) -> None:
    from cartcast import runtime as runtime_module

    first = scheduled_post(client, shop_key, 0)
    second = scheduled_post(client, shop_key, 1)
    move_both_clocks(clock, clock_file, START + WEEK)
    x_sandbox.add_fault(method="POST", path_prefix="/2/tweets", drop=True, count=2)
    publishing.publish_due(x_runtime, as_of=clock.now())
    found = on_x(x_sandbox)[0]["id"]
    other = runtime_module.Runtime(runtime_module.current().settings)
    answers = []

    def settle_second() -> None:
        body = {"outcome": "on_x", "x_post_id": found}
        answers.append(settle(client, shop_key, second["id"], body))

    settler = threading.Thread(target=settle_second)
    # The first settlement holds the id's lock until it commits; the second waits
    # for it, then sees the first post holding the id.
    with other.database.transaction() as tx:
        tx.execute(settling.LOCK_X_POST_ID, x_post_id=found)
        settler.start()
        wait_for_an_advisory_lock_wait(other)
        tx.execute(
            "UPDATE posts SET x_post_id = :x WHERE id = :id", x=found, id=first["id"]
        )
    settler.join(timeout=30)
    other.close()

    (response,) = answers
    assert response.status_code == 409, response.get_json()
    assert f"already post {first['id']}" in response.get_json()["error"]["message"]
    assert get_post(client, shop_key, second["id"])["state"] == "unconfirmed"


def wait_for_an_advisory_lock_wait(runtime) -> None:
    """Return once another session of the test database waits on an advisory lock."""
    for _ in range(3000):
        with runtime.database.transaction() as tx:
            waiting = tx.scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'advisory'"
                " AND datname = current_database()"
            )
        if waiting:
            return
        time.sleep(0.01)
    raise AssertionError("the second settlement never waited for the first")


def test_only_an_unconfirmed_post_is_settled(client, shop_key) -> None:
    post = scheduled_post(client, shop_key)

    response = settle(client, shop_key, post["id"], {"outcome": "absent"})

    assert response.status_code == 409
    assert "post is scheduled" in response.get_json()["error"]["message"]


def test_an_editor_key_may_not_settle_a_post(
    client, shop_key, x_runtime, clock, clock_file, x_sandbox
) -> None:
    post = unconfirmed_post(client, shop_key, x_runtime, clock, clock_file, x_sandbox)
    with x_runtime.database.transaction() as tx:
        brand_id = str(tx.scalar("SELECT id FROM brands"))
        editor = keys.create_key(
            tx, brand_id=brand_id, name="editor", role="editor", now=clock.now()
        )

    response = settle(client, editor, post["id"], {"outcome": "absent"})

    assert response.status_code == 403
    assert get_post(client, shop_key, post["id"])["state"] == "unconfirmed"
