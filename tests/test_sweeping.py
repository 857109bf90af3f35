"""The missed-post sweeper: due posts no publish run picked up, through the sandbox."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import uuid

import pytest

from cartcast import connections, crisis, events, posts, publishing, sweeping
from tests.conftest import OPERATOR_KEY, START, make_app
from tests.helpers import (
    ALPHA,
    brand_body,
    catalog,
    make_brand,
    post_json,
    states,
    tweets_sent,
)

SELECT_POSTS = """
SELECT id, state, scheduled_at, failure_reason FROM posts
WHERE brand_id = :brand_id ORDER BY scheduled_at, id
"""


@pytest.fixture
def alerts(caplog):
    """The ERROR lines cartcast logs (its logger does not propagate to the root)."""
    logger = logging.getLogger("cartcast")
    logger.addHandler(caplog.handler)
    yield caplog
    logger.removeHandler(caplog.handler)


def brand_posts(runtime, brand_id: str) -> list[dict]:
    with runtime.database.transaction() as tx:
        return tx.rows(SELECT_POSTS, brand_id=brand_id)


def missed_job_alerts(caplog) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.levelno == logging.ERROR
        and record.fields.get("alert") == "publish_job_not_running"
    ]


def test_a_due_post_no_run_picked_up_is_sent_by_the_sweep_and_the_job_is_reported(
    x_runtime, clock, x_sandbox, alerts
) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=2)
    first, second = brand_posts(x_runtime, brand_id)
    clock.set(second["scheduled_at"] + dt.timedelta(minutes=20))

    outcome = sweeping.sweep_missed(x_runtime, as_of=clock.now())

    (alert,) = missed_job_alerts(alerts)
    assert outcome["missed"] == 2 and outcome["published"] == 2
    assert states(x_runtime, brand_id) == ["published", "published"]
    assert alert.fields["missed"] == 2
    assert alert.fields["oldest_due"] == first["scheduled_at"]
    assert tweets_sent(x_sandbox) == 2


def test_a_post_due_only_minutes_ago_is_left_to_the_publish_job(
    x_runtime, clock, x_sandbox, alerts
) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)
    (post,) = brand_posts(x_runtime, brand_id)
    clock.set(post["scheduled_at"] + dt.timedelta(minutes=5))

    outcome = sweeping.sweep_missed(x_runtime, as_of=clock.now())

    assert outcome["missed"] == 0 and "published" not in outcome
    assert states(x_runtime, brand_id) == ["scheduled"]
    assert missed_job_alerts(alerts) == []
    assert tweets_sent(x_sandbox) == 0


def test_a_post_the_publish_job_keeps_retrying_is_not_missed(
    x_runtime, clock, x_sandbox, alerts
) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)
    (post,) = brand_posts(x_runtime, brand_id)
    x_sandbox.add_fault(method="POST", path_prefix="/2/tweets", status=503, count=2)
    clock.set(post["scheduled_at"])
    publishing.publish_due(x_runtime, as_of=clock.now())
    clock.advance(dt.timedelta(minutes=30))
    publishing.publish_due(x_runtime, as_of=clock.now())  # X still down

    outcome = sweeping.sweep_missed(x_runtime, as_of=clock.now())

    assert outcome["missed"] == 0
    assert states(x_runtime, brand_id) == ["scheduled"]
    assert missed_job_alerts(alerts) == []
    assert tweets_sent(x_sandbox) == 2


def test_the_posts_of_a_brand_x_paused_are_not_missed(
    x_runtime, clock, x_sandbox, alerts
) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)
    (post,) = brand_posts(x_runtime, brand_id)
    x_sandbox.add_fault(
        method="POST", path_prefix="/2/tweets", status=429, reset_in_s=3600
    )
    clock.set(post["scheduled_at"])
    publishing.publish_due(x_runtime, as_of=clock.now())
    clock.advance(dt.timedelta(minutes=30))

    outcome = sweeping.sweep_missed(x_runtime, as_of=clock.now())

    assert outcome["missed"] == 0
    assert states(x_runtime, brand_id) == ["scheduled"]
    assert tweets_sent(x_sandbox) == 1


def test_the_posts_waiting_for_the_shared_app_s_window_are_not_missed(
    x_runtime, clock, x_sandbox, alerts
) -> None:
    # The shared app's pause (x_app_pauses) holds every brand on it for up to 24
    # hours, as a 429 holds one brand: the claim skips their posts, so the sweep
    # must not take them for posts the publish job never ran for.
    x_runtime.settings = dataclasses.replace(
        x_runtime.settings, x_posts_per_24h_per_app=1
    )
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=2)
    _, second = brand_posts(x_runtime, brand_id)
    clock.set(second["scheduled_at"])
    publishing.publish_due(x_runtime, as_of=clock.now())
    clock.advance(dt.timedelta(minutes=30))

    outcome = sweeping.sweep_missed(x_runtime, as_of=clock.now())

    assert outcome["missed"] == 0
    assert missed_job_alerts(alerts) == []
    assert states(x_runtime, brand_id) == ["published", "scheduled"]
    assert tweets_sent(x_sandbox) == 1


def test_the_posts_a_brand_s_x_pause_held_are_not_missed_just_after_it_ends(
    x_runtime, clock, x_sandbox, alerts
) -> None:
    # Held posts count as due when the pause ends, as at the operator's resume
    # (decision 0080): a sweep between its end and the next tick saw the job as
    # not running.
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=2)
    _, second = brand_posts(x_runtime, brand_id)
    x_sandbox.add_fault(
        method="POST", path_prefix="/2/tweets", status=429, reset_in_s=3600, count=1
    )
    clock.set(second["scheduled_at"])
    publishing.publish_due(x_runtime, as_of=clock.now())
    clock.set(paused_until(x_runtime, brand_id) + dt.timedelta(seconds=30))

    outcome = sweeping.sweep_missed(x_runtime, as_of=clock.now())

    assert outcome["missed"] == 0
    assert missed_job_alerts(alerts) == []
    assert states(x_runtime, brand_id) == ["scheduled", "scheduled"]


def test_the_posts_the_shared_app_s_window_held_are_not_missed_just_after_it_ends(
    x_runtime, clock, x_sandbox, alerts
) -> None:
    x_runtime.settings = dataclasses.replace(
        x_runtime.settings, x_posts_per_24h_per_app=1
    )
    with_late_bound(x_runtime, hours=48)
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=2)
    _, second = brand_posts(x_runtime, brand_id)
    clock.set(second["scheduled_at"])
    publishing.publish_due(x_runtime, as_of=clock.now())
    clock.set(app_paused_until(x_runtime) + dt.timedelta(seconds=30))

    outcome = sweeping.sweep_missed(x_runtime, as_of=clock.now())

    assert outcome["missed"] == 0
    assert missed_job_alerts(alerts) == []
    assert states(x_runtime, brand_id) == ["published", "scheduled"]


class UpperBound:
    """A random source whose every draw is the top of its range."""

    def uniform(self, low: float, high: float) -> float:
        return high


def test_a_post_retried_after_a_long_back_off_is_not_missed_just_after_it_ends(
    x_runtime, clock, x_sandbox, alerts
) -> None:
    # A back-off longer than CARTCAST_MISSED_AFTER_S (the cap allows 1800 s by
    # default) leaves the post's last attempt older than the missed clock when
    # its not_before comes; the next tick, not a sweep, is due to send it.
    x_runtime.settings = dataclasses.replace(
        x_runtime.settings, publish_retry_base_s=1200
    )
    x_runtime.random = UpperBound()
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)
    (post,) = brand_posts(x_runtime, brand_id)
    x_sandbox.add_fault(method="POST", path_prefix="/2/tweets", status=503, count=1)
    clock.set(post["scheduled_at"])
    publishing.publish_due(x_runtime, as_of=clock.now())
    clock.set(not_before(x_runtime, post["id"]) + dt.timedelta(seconds=30))

    outcome = sweeping.sweep_missed(x_runtime, as_of=clock.now())

    assert outcome["missed"] == 0
    assert missed_job_alerts(alerts) == []
    assert states(x_runtime, brand_id) == ["scheduled"]


def not_before(runtime, post_id) -> dt.datetime:
    with runtime.database.transaction() as tx:
        return tx.scalar("SELECT not_before FROM posts WHERE id = :id", id=post_id)


def test_the_posts_a_crisis_pause_held_are_not_missed_just_after_its_resume(
    x_runtime, clock, x_sandbox, alerts
) -> None:
    # The resume puts them back in `scheduled`, long due: the next tick sends
    # them, and a sweep before it must not report the publish job.
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)
    (post,) = brand_posts(x_runtime, brand_id)
    with x_runtime.database.transaction() as tx:
        crisis.pause_brand(
            tx, brand_id=brand_id, actor="test", reason=None, now=clock.now()
        )
    clock.set(post["scheduled_at"] + dt.timedelta(hours=1))
    with x_runtime.database.transaction() as tx:
        crisis.resume_brand(tx, brand_id=brand_id, now=clock.now(), actor="test")

    outcome = sweeping.sweep_missed(x_runtime, as_of=clock.now())

    assert outcome["missed"] == 0
    assert missed_job_alerts(alerts) == []
    assert states(x_runtime, brand_id) == ["scheduled"]


def paused_until(runtime, brand_id: str) -> dt.datetime:
    with runtime.database.transaction() as tx:
        return tx.scalar(
            "SELECT x_posts_paused_until FROM brands WHERE id = :brand_id",
            brand_id=brand_id,
        )


def app_paused_until(runtime) -> dt.datetime:
    with runtime.database.transaction() as tx:
        return tx.scalar(
            "SELECT posts_paused_until FROM x_app_pauses WHERE app = 'shared'"
        )


def with_late_bound(runtime, hours: float) -> None:
    runtime.settings = dataclasses.replace(
        runtime.settings, missed_max_late_s=int(hours * 3600)
    )


def test_a_post_too_late_to_send_is_held_with_a_reason_to_schedule_it_again(
    x_runtime, clock, x_sandbox
) -> None:
    with_late_bound(x_runtime, hours=6)
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)
    (post,) = brand_posts(x_runtime, brand_id)
    clock.set(post["scheduled_at"] + dt.timedelta(days=2))

    outcome = sweeping.sweep_missed(x_runtime, as_of=clock.now())

    (held,) = brand_posts(x_runtime, brand_id)
    assert outcome["too_late"] == 1 and outcome["missed"] == 0
    assert held["state"] == "held"
    assert "2026-03-02 09:30 EST, America/New_York" in held["failure_reason"]
    assert "48.0 h late" in held["failure_reason"]
    assert f"POST /v1/posts/{post['id']}/schedule" in held["failure_reason"]
    assert tweets_sent(x_sandbox) == 0


def test_a_post_held_as_too_late_goes_out_once_scheduled_again(
    x_runtime, clock, x_sandbox
) -> None:
    with_late_bound(x_runtime, hours=6)
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)
    (post,) = brand_posts(x_runtime, brand_id)
    clock.set(post["scheduled_at"] + dt.timedelta(days=2))
    sweeping.sweep_missed(x_runtime, as_of=clock.now())

    with x_runtime.database.transaction() as tx:
        again = posts.schedule(
            tx, brand_id=brand_id, post_id=str(post["id"]), body={}, now=clock.now()
        )
    clock.set(again["scheduled_at"])
    publishing.publish_due(x_runtime, as_of=clock.now())

    (published,) = brand_posts(x_runtime, brand_id)
    assert again["state"] == "scheduled" and again["failure_reason"] is None
    assert published["state"] == "published"
    assert tweets_sent(x_sandbox) == 1


def test_the_sweep_expires_the_lease_of_a_publisher_that_died_before_sending(
    x_runtime, clock, x_sandbox
) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)
    (post,) = brand_posts(x_runtime, brand_id)
    clock.set(post["scheduled_at"])
    publishing._claim(x_runtime, clock.now())  # claimed, then the process died
    clock.advance(dt.timedelta(minutes=20))

    outcome = sweeping.sweep_missed(x_runtime, as_of=clock.now())

    assert outcome["expired"] == 1 and outcome["missed"] == 1
    assert states(x_runtime, brand_id) == ["published"]
    assert tweets_sent(x_sandbox) == 1


@pytest.mark.parametrize(("bound_hours", "too_late"), [(24, 1), (72, 0)])
def test_the_late_bound_is_a_setting(
    x_runtime, clock, x_sandbox, bound_hours, too_late
) -> None:
    with_late_bound(x_runtime, hours=bound_hours)
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)
    (post,) = brand_posts(x_runtime, brand_id)
    clock.set(post["scheduled_at"] + dt.timedelta(days=2))

    outcome = sweeping.sweep_missed(x_runtime, as_of=clock.now())

    assert outcome["too_late"] == too_late
    assert tweets_sent(x_sandbox) == 1 - too_late


def test_a_publish_tick_holds_a_post_7_hours_overdue_with_the_sweepers_reason(
    x_runtime, clock, x_sandbox
) -> None:
    with_late_bound(x_runtime, hours=6)
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)
    (post,) = brand_posts(x_runtime, brand_id)
    clock.set(post["scheduled_at"] + dt.timedelta(hours=7))

    outcome = publishing.publish_due(x_runtime, as_of=clock.now())

    (held,) = brand_posts(x_runtime, brand_id)
    expected = sweeping.too_late_reason(
        {**post, "time_zone": "America/New_York"}, clock.now()
    )
    assert outcome["held"] == 1 and outcome["published"] == 0
    assert held["state"] == "held" and held["failure_reason"] == expected
    assert "7.0 h late" in held["failure_reason"]
    assert tweets_sent(x_sandbox) == 0


def test_a_post_within_the_bound_still_goes_out_at_the_publish_tick(
    x_runtime, clock, x_sandbox
) -> None:
    with_late_bound(x_runtime, hours=6)
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)
    (post,) = brand_posts(x_runtime, brand_id)
    clock.set(post["scheduled_at"] + dt.timedelta(hours=5))

    outcome = publishing.publish_due(x_runtime, as_of=clock.now())

    assert outcome["published"] == 1 and outcome["held"] == 0
    assert tweets_sent(x_sandbox) == 1


def test_a_reconnected_accounts_posts_go_out_within_the_bound_and_are_held_beyond(
    x_runtime, clock, x_sandbox
) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=2)
    first, second = brand_posts(x_runtime, brand_id)
    clock.set(first["scheduled_at"])
    x_sandbox.add_fault(method="POST", path_prefix="/2/tweets", status=401)
    publishing.publish_due(x_runtime, as_of=clock.now())  # disconnects, holds both
    assert states(x_runtime, brand_id) == ["held", "held"]

    # Reconnected an hour after the second was due: the first is a whole slot gap
    # plus an hour late, beyond a bound of one slot gap; the second is within it.
    gap = second["scheduled_at"] - first["scheduled_at"]
    with_late_bound(x_runtime, hours=gap.total_seconds() / 3600)
    clock.set(second["scheduled_at"] + dt.timedelta(hours=1))
    with x_runtime.database.transaction() as tx:
        connections.reconnect(tx, brand_id=brand_id, now=clock.now())
    publishing.publish_due(x_runtime, as_of=clock.now())

    late, on_time = brand_posts(x_runtime, brand_id)
    assert gap > dt.timedelta(hours=1)
    assert late["state"] == "held" and "h late" in late["failure_reason"]
    assert on_time["state"] == "published"
    assert len(x_sandbox.snapshot()["posts"]) == 1
    assert tweets_sent(x_sandbox) == 2  # the refused one, then the second post


def tick(at: dt.datetime, payload: dict):
    headers, body = events.envelope(
        topic="cartcast-publish_due_posts",
        project="test",
        payload=payload,
        message_id=uuid.uuid4().hex,
        time=at,
    )
    client = make_app("publish_due_posts", "cloudevent").test_client()
    return client.post("/", headers=headers, data=json.dumps(body))


def test_a_sweep_message_to_publish_due_posts_runs_the_sweeper(
    function_env, monkeypatch, clock_file, alerts
) -> None:
    from infra.x_sandbox import XSandbox

    with XSandbox(clock=clock_file) as sandbox:
        sandbox.register_account(**ALPHA, token="token-test-goods")
        monkeypatch.setenv("X_API_BASE_URL", sandbox.base_url)
        api = make_app("api", "http").test_client()
        body = brand_body(x_user_id=ALPHA["user_id"])
        key = post_json(api, "/v1/brands", body, OPERATOR_KEY).get_json()["api_key"]
        post_json(api, "/v1/products", catalog(1), key)
        post_json(api, "/v1/captions", {"products": [catalog(1)[0]["sku"]]}, key)
        post_json(api, "/v1/schedule", {}, key)
        late = START + dt.timedelta(hours=8)  # due 14:30 UTC, swept at 16:00
        clock_file.set(late)

        answered = tick(late, {"sweep": True})

        on_x = sandbox.snapshot()["posts"]
    assert answered.status_code == 200
    assert len(on_x) == 1
    assert len(missed_job_alerts(alerts)) == 1
