"""Crises: one alert per surge of negative mentions, and a brand's crisis pause."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools

import pytest

from cartcast import alerts, crisis, publishing
from tests.conftest import OPERATOR_KEY, START, make_app
from tests.helpers import (
    ALPHA,
    admin_updates_brand,
    auth,
    brand_body,
    dead_loopback_port,
    make_brand,
    post_json,
    states,
    tweets_sent,
)
from tests.test_refusals import WebhookReceiver

MINUTE = dt.timedelta(minutes=1)
_x_ids = itertools.count(1_800_000_000_000_000_000)

STORE_SCORED = """
INSERT INTO mentions (brand_id, x_post_id, author_id, text, posted_at, received_at,
    sentiment, priority, scored_at)
VALUES (:brand_id, :x_post_id, '42', :text, :posted_at, :posted_at, :sentiment, 3,
    :posted_at)
RETURNING id
"""


@pytest.fixture
def webhook():
    running = WebhookReceiver()
    yield running
    running.server.shutdown()
    running.server.server_close()


def add_brand(runtime, webhook_url: str | None = None, slug: str = "test-goods") -> str:
    from cartcast import brands

    body = brand_body(slug=slug)
    if webhook_url:
        body["alert_webhook_url"] = webhook_url
    with runtime.database.transaction() as tx:
        created = brands.create_brand(
            tx, body, now=runtime.clock.now(), environment="local"
        )
    return str(created["brand"]["id"])


def scored(runtime, brand_id: str, *, negative: bool, at: dt.datetime) -> str:
    """Store one scored mention posted at `at`; return its id."""
    with runtime.database.transaction() as tx:
        return str(
            tx.scalar(
                STORE_SCORED,
                brand_id=brand_id,
                x_post_id=str(next(_x_ids)),
                text="@testgoods " + ("broken, awful" if negative else "thanks"),
                posted_at=at,
                sentiment="negative" if negative else "neutral",
            )
        )


def baseline(runtime, brand_id: str, *, mentions: int, negative: int) -> None:
    """Spread `mentions` over the two weeks before the last hour."""
    for index in range(mentions):
        at = START - dt.timedelta(hours=2) - index * dt.timedelta(hours=3)
        scored(runtime, brand_id, negative=index < negative, at=at)


def raise_crisis_alert(runtime, brand_id: str, now: dt.datetime) -> None:
    """Queue a crisis alert for the brand, as a scoring run that saw a surge does."""
    with runtime.database.transaction() as tx:
        alerts.raise_alert(
            tx,
            brand_id=brand_id,
            kind=crisis.ALERT_KIND,
            episode=now.isoformat(),
            text="possible crisis",
            now=now,
        )


def crisis_alerts(runtime, brand_id: str) -> list[dict]:
    with runtime.database.transaction() as tx:
        found = alerts.list_alerts(tx, brand_id=brand_id)
    return [alert for alert in found if alert["kind"] == "crisis"]


def test_a_surge_over_a_ten_percent_baseline_raises_exactly_one_alert(
    runtime, clock, webhook
) -> None:
    brand_id = add_brand(runtime, webhook.url)
    baseline(runtime, brand_id, mentions=100, negative=10)

    # 30 mentions over the next hour, 18 negative (60 %), each scored on its own
    # and checked after its scoring, as score_sentiment would.
    started = []
    for index in range(30):
        clock.set(START + index * 2 * MINUTE)
        mention_id = scored(runtime, brand_id, negative=index % 5 < 3, at=clock.now())
        started.append(
            crisis.watch_after_scoring(runtime, mention_ids=[mention_id])[
                "crises_started"
            ]
        )
    delivered = alerts.deliver_pending(runtime)

    assert sum(started) == 1
    assert len(crisis_alerts(runtime, brand_id)) == 1
    assert delivered["alerts_sent"] == 1
    text = webhook.accepted[0]["text"]
    assert "possible crisis" in text and "against 10% over the 14 days" in text


def test_a_dead_webhook_s_backlog_never_holds_back_another_brand_s_crisis_alert(
    runtime, clock, webhook
) -> None:
    # Arrange: one brand's Slack webhook is gone with more alerts waiting than a
    # run sends; then another brand's crisis starts.
    dead = add_brand(runtime, f"http://127.0.0.1:{dead_loopback_port()}/hook")
    with runtime.database.transaction() as tx:
        for episode in range(alerts.ALERTS_PER_RUN + 1):
            alerts.raise_alert(
                tx,
                brand_id=dead,
                kind="x_disconnected",
                episode=str(episode),
                text="the X account was disconnected",
                now=clock.now(),
            )
    alerts.deliver_pending(runtime)
    clock.advance(MINUTE)
    brand_id = add_brand(runtime, webhook.url, slug="other")
    raise_crisis_alert(runtime, brand_id, clock.now())

    # Act
    delivered = alerts.deliver_pending(runtime)

    # Assert
    assert delivered["alerts_sent"] == 1
    assert [alert["text"] for alert in webhook.accepted] == ["possible crisis"]


def test_a_failed_alert_waits_its_back_off_before_its_webhook_is_called_again(
    runtime, clock, webhook
) -> None:
    # Arrange: the brand's webhook refuses every alert; score_sentiment and each
    # poll sweep deliver alerts, so runs come far closer together than the back-off.
    webhook.status = 503
    runtime.settings = dataclasses.replace(runtime.settings, alert_retry_base_s=60.0)
    brand_id = add_brand(runtime, webhook.url)
    raise_crisis_alert(runtime, brand_id, clock.now())

    # Act
    first = alerts.deliver_pending(runtime)
    calls_after_first = len(webhook.received)
    clock.advance(dt.timedelta(seconds=1))
    right_after = alerts.deliver_pending(runtime)
    calls_right_after = len(webhook.received)
    clock.advance(dt.timedelta(seconds=60))
    webhook.status = 200
    after_back_off = alerts.deliver_pending(runtime)

    # Assert
    assert first["alerts_failed"] == 1 and calls_after_first == 1
    assert right_after == dict.fromkeys(right_after, 0) and calls_right_after == 1
    assert after_back_off["alerts_sent"] == 1 and len(webhook.received) == 2
    (alert,) = crisis_alerts(runtime, brand_id)
    assert alert["attempts"] == 2 and alert["delivered_at"] == clock.now()


def test_a_dead_alert_webhook_s_back_off_doubles_with_each_failure(
    runtime, clock
) -> None:
    # Nothing listens on the port: every POST is refused.
    runtime.settings = dataclasses.replace(runtime.settings, alert_retry_base_s=60.0)
    brand_id = add_brand(runtime, f"http://127.0.0.1:{dead_loopback_port()}/hook")
    raise_crisis_alert(runtime, brand_id, clock.now())
    started = clock.now()

    alerts.deliver_pending(runtime)
    clock.advance(dt.timedelta(seconds=60))
    alerts.deliver_pending(runtime)

    (alert,) = crisis_alerts(runtime, brand_id)
    assert alert["attempts"] == 2
    assert alert["next_attempt_at"] == started + dt.timedelta(seconds=60 + 120)
    assert "webhook unreachable" in alert["last_error"]


def test_three_negative_mentions_are_too_few_to_be_a_crisis(runtime, clock) -> None:
    brand_id = add_brand(runtime)

    ids = [scored(runtime, brand_id, negative=True, at=START) for _ in range(3)]
    outcome = crisis.watch_after_scoring(runtime, mention_ids=ids)

    assert outcome == {"crises_started": 0, "crises_ended": 0}
    assert crisis_alerts(runtime, brand_id) == []


def test_a_brand_whose_baseline_is_already_negative_needs_a_larger_rise(
    runtime, clock
) -> None:
    brand_id = add_brand(runtime)
    baseline(runtime, brand_id, mentions=100, negative=40)
    # 60 % against a 40 % baseline: 20 points up, but not twice the baseline.
    ids = [scored(runtime, brand_id, negative=n < 18, at=START) for n in range(30)]

    outcome = crisis.watch_after_scoring(runtime, mention_ids=ids)

    assert outcome["crises_started"] == 0


def test_a_crisis_ends_once_a_calm_window_passes_and_a_new_surge_alerts_again(
    runtime, clock
) -> None:
    brand_id = add_brand(runtime)
    baseline(runtime, brand_id, mentions=100, negative=0)
    surge = [scored(runtime, brand_id, negative=True, at=START) for _ in range(20)]
    crisis.watch_after_scoring(runtime, mention_ids=surge)

    clock.set(START + 2 * dt.timedelta(hours=1))
    calm = [scored(runtime, brand_id, negative=False, at=clock.now())]
    ended = crisis.watch_after_scoring(runtime, mention_ids=calm)
    clock.set(START + 3 * dt.timedelta(hours=1))
    again = [
        scored(runtime, brand_id, negative=True, at=clock.now()) for _ in range(25)
    ]
    restarted = crisis.watch_after_scoring(runtime, mention_ids=again)

    assert ended["crises_ended"] == 1
    assert restarted["crises_started"] == 1
    assert len(crisis_alerts(runtime, brand_id)) == 2


def test_the_thresholds_are_settings(runtime, clock) -> None:
    runtime.settings = dataclasses.replace(runtime.settings, crisis_min_mentions=3)
    brand_id = add_brand(runtime)

    ids = [scored(runtime, brand_id, negative=True, at=START) for _ in range(3)]

    assert crisis.watch_after_scoring(runtime, mention_ids=ids)["crises_started"] == 1


def pause(runtime, brand_id: str, reason: str = "shipping incident") -> dict:
    with runtime.database.transaction() as tx:
        return crisis.pause_brand(
            tx, brand_id=brand_id, actor="admin", reason=reason, now=START
        )


def test_a_crisis_pause_holds_the_queue_at_once_and_the_claim_sends_nothing(
    x_runtime, x_sandbox
) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=3)

    paused = pause(x_runtime, brand_id)
    outcome = publishing.publish_due(x_runtime, as_of=START + dt.timedelta(days=8))

    assert paused["paused"] is True and paused["held"] == 3
    assert outcome["published"] == 0
    assert tweets_sent(x_sandbox) == 0
    assert states(x_runtime, brand_id) == ["held"] * 3
    with x_runtime.database.transaction() as tx:
        reasons = tx.rows("SELECT failure_reason FROM posts")
    assert all(
        row["failure_reason"].startswith("crisis pause: shipping incident")
        for row in reasons
    )


def test_a_post_claimed_before_the_pause_is_not_sent(x_runtime, x_sandbox) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)
    due = START + dt.timedelta(days=8)
    claimed, attempts, _ = publishing._claim(x_runtime, due)

    pause(x_runtime, brand_id)
    outcome = publishing._publish_one(x_runtime, claimed[0], attempts[claimed[0]["id"]])

    assert outcome == "lost"
    assert tweets_sent(x_sandbox) == 0
    assert states(x_runtime, brand_id) == ["held"]


def test_resuming_queues_the_held_posts_again_and_they_go_out(
    x_runtime, x_sandbox
) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=2)
    pause(x_runtime, brand_id)
    again = pause(x_runtime, brand_id)

    with x_runtime.database.transaction() as tx:
        resumed = crisis.resume_brand(tx, brand_id=brand_id, now=START, actor="test")
    outcome = publishing.publish_due(x_runtime, as_of=START + dt.timedelta(days=8))

    assert again["reason"] == "shipping incident" and again["held"] == 0
    assert resumed == {"paused": False, "released": 2}
    assert outcome["published"] == 2
    assert tweets_sent(x_sandbox) == 2


def test_a_post_scheduled_while_paused_is_held_by_the_next_run(
    x_runtime, x_sandbox
) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)
    pause(x_runtime, brand_id)
    with x_runtime.database.transaction() as tx:
        tx.execute("UPDATE posts SET state = 'scheduled', failure_reason = NULL")

    outcome = publishing.publish_due(x_runtime, as_of=START + dt.timedelta(days=8))

    assert outcome["held"] == 1 and outcome["published"] == 0
    assert tweets_sent(x_sandbox) == 0


@pytest.fixture
def client(function_env):
    return make_app("api", "http").test_client()


def test_the_api_pauses_and_resumes_for_admins_and_approvers_only(
    client, runtime
) -> None:
    from cartcast import keys

    body = brand_body()
    admin = post_json(client, "/v1/brands", body, OPERATOR_KEY).get_json()["api_key"]
    with runtime.database.transaction() as tx:
        brand_id = str(tx.scalar("SELECT id FROM brands"))
        editor = keys.create_key(
            tx, brand_id=brand_id, name="ed", role="editor", now=START
        )
        approver = keys.create_key(
            tx, brand_id=brand_id, name="ap", role="approver", now=START
        )

    refused = post_json(client, "/v1/brand/pause", {}, editor)
    paused = post_json(client, "/v1/brand/pause", {"reason": "recall"}, approver)
    shown = client.get("/v1/brand/pause", headers=auth(editor)).get_json()
    resumed = post_json(client, "/v1/brand/resume", {}, admin)
    twice = post_json(client, "/v1/brand/resume", {}, admin)

    assert refused.status_code == 403
    assert paused.status_code == 200
    assert shown["paused"] is True and shown["paused_by"] == "ap"
    assert shown["reason"] == "recall"
    assert resumed.get_json() == {"paused": False, "released": 0}
    assert twice.status_code == 409


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"reason": ""}, "reason"),
        ({"reason": "\ufeff"}, "reason"),
        ({"reason": "\u200b\u200d"}, "reason"),
        ({"reason": " \u2066\u2069\u00ad "}, "reason"),
        ({"reason": "x" * 301}, "reason"),
        # Measured as sent, spaces around it included (docs/openapi.yaml's maxLength).
        ({"reason": " " + "x" * 300}, "reason"),
        ({"why": 1}, "why"),
    ],
)
def test_a_bad_pause_is_a_400_naming_the_field(client, body, field) -> None:
    response = post_json(client, "/v1/brands", brand_body(), OPERATOR_KEY)
    key = response.get_json()["api_key"]

    refused = post_json(client, "/v1/brand/pause", body, key)
    shown = client.get("/v1/brand/pause", headers=auth(key)).get_json()

    assert refused.status_code == 400
    assert refused.get_json()["error"]["field"] == field
    assert shown["paused"] is False


@pytest.mark.parametrize(
    "reason",
    [
        "recall\x07",
        "product\nrecall",
        "product\trecall",
        "recall\x1b[2J",
        "recall\x7f",
        "recall\x85",
        "recall\x9b",
        "product\u2028recall",
        # "Test \u202esdooG" shows as "Test Goods": an override turns the text after
        # it around on every page that prints the reason.
        "\u202erecall",
        "\u202brecall\u202c",
    ],
)
def test_a_pause_reason_with_a_control_character_is_a_400_naming_it(
    client, reason
) -> None:
    # The reason is shown on every console page and written into each held post's
    # reason: a control inside it would break lines or turn the text around.
    response = post_json(client, "/v1/brands", brand_body(), OPERATOR_KEY)
    key = response.get_json()["api_key"]

    refused = post_json(client, "/v1/brand/pause", {"reason": reason}, key)
    shown = client.get("/v1/brand/pause", headers=auth(key)).get_json()

    assert refused.status_code == 400, refused.get_json()
    error = refused.get_json()["error"]
    assert error["field"] == "reason"
    assert "control character" in error["message"]
    assert shown["paused"] is False


def test_a_pause_reason_keeps_the_bidi_marks_inside_its_text(client) -> None:
    response = post_json(client, "/v1/brands", brand_body(), OPERATOR_KEY)
    key = response.get_json()["api_key"]
    reason = "\u2067\u05e8\u05d9\u05e7\u05d5\u05dc\u2069 recall"

    paused = post_json(client, "/v1/brand/pause", {"reason": reason}, key)

    assert paused.status_code == 200, paused.get_json()
    assert client.get("/v1/brand/pause", headers=auth(key)).get_json()["reason"] == (
        reason
    )


def test_the_brand_lists_its_crises(client, runtime, clock) -> None:
    response = post_json(client, "/v1/brands", brand_body(), OPERATOR_KEY)
    key = response.get_json()["api_key"]
    with runtime.database.transaction() as tx:
        brand_id = str(tx.scalar("SELECT id FROM brands"))
    ids = [scored(runtime, brand_id, negative=True, at=START) for _ in range(20)]
    crisis.watch_after_scoring(runtime, mention_ids=ids)

    found = client.get("/v1/crises", headers=auth(key)).get_json()["crises"]

    assert len(found) == 1
    assert found[0]["window_negative"] == 20 and found[0]["ended_at"] is None


def test_a_thread_half_on_x_stops_before_its_next_part(x_runtime, x_sandbox) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1, kind="thread")
    claimed, attempts, _ = publishing._claim(x_runtime, START + dt.timedelta(days=8))
    [thread] = claimed
    # Its first part went out with this attempt: the pause must leave the post to
    # its publisher, which then sends no further part.
    with x_runtime.database.transaction() as tx:
        tx.execute(
            "UPDATE post_parts SET sent_at = :now, x_post_id = '1700000000000000001' "
            "WHERE post_id = :id AND position = 0",
            id=thread["id"],
            now=START,
        )
        tx.execute(
            "UPDATE publish_attempts SET sent_at = :now WHERE id = :id",
            id=attempts[thread["id"]],
            now=START,
        )
    paused = pause(x_runtime, brand_id)

    outcome = publishing._publish_one(x_runtime, thread, attempts[thread["id"]])
    later = publishing.publish_due(x_runtime, as_of=START + dt.timedelta(days=8))

    assert paused["held"] == 0
    assert outcome == "lost"
    assert tweets_sent(x_sandbox) == 0
    assert later["held"] == 1 and states(x_runtime, brand_id) == ["held"]


def test_a_surge_days_after_a_crisis_nobody_closed_raises_a_new_alert(
    runtime, clock
) -> None:
    brand_id = add_brand(runtime)
    baseline(runtime, brand_id, mentions=100, negative=0)
    first = [scored(runtime, brand_id, negative=True, at=START) for _ in range(20)]
    crisis.watch_after_scoring(runtime, mention_ids=first)

    # Five quiet days: nothing is scored, so no run comes to close the crisis.
    clock.set(START + dt.timedelta(days=5))
    second = [
        scored(runtime, brand_id, negative=True, at=clock.now()) for _ in range(20)
    ]
    outcome = crisis.watch_after_scoring(runtime, mention_ids=second)

    assert outcome == {"crises_started": 1, "crises_ended": 0}
    assert len(crisis_alerts(runtime, brand_id)) == 2
    with runtime.database.transaction() as tx:
        rows = tx.rows("SELECT started_at, ended_at FROM crises ORDER BY started_at")
    # The first ended a window after it was last seen, not when the run came.
    assert rows == [
        {"started_at": START, "ended_at": START + dt.timedelta(hours=1)},
        {"started_at": clock.now(), "ended_at": None},
    ]


def test_a_surge_still_seen_each_run_stays_one_crisis(runtime, clock) -> None:
    brand_id = add_brand(runtime)
    baseline(runtime, brand_id, mentions=100, negative=0)

    started = 0
    for step in range(12):
        clock.set(START + step * 15 * MINUTE)
        ids = [
            scored(runtime, brand_id, negative=True, at=clock.now()) for _ in range(20)
        ]
        started += crisis.watch_after_scoring(runtime, mention_ids=ids)[
            "crises_started"
        ]

    assert started == 1
    assert len(crisis_alerts(runtime, brand_id)) == 1


def test_the_crisis_list_shows_one_unseen_for_a_window_as_ended(
    client, runtime, clock, clock_file
) -> None:
    response = post_json(client, "/v1/brands", brand_body(), OPERATOR_KEY)
    key = response.get_json()["api_key"]
    with runtime.database.transaction() as tx:
        brand_id = str(tx.scalar("SELECT id FROM brands"))
    ids = [scored(runtime, brand_id, negative=True, at=START) for _ in range(20)]
    crisis.watch_after_scoring(runtime, mention_ids=ids)

    clock_file.set(START + 59 * MINUTE)
    within = client.get("/v1/crises", headers=auth(key)).get_json()["crises"]
    clock_file.set(START + dt.timedelta(days=2))
    after = client.get("/v1/crises", headers=auth(key)).get_json()["crises"]

    assert within[0]["ended_at"] is None
    assert after[0]["ended_at"] == (START + dt.timedelta(hours=1)).isoformat()


def test_pausing_a_paused_brand_for_another_reason_is_a_409_naming_it(
    client, runtime
) -> None:
    response = post_json(client, "/v1/brands", brand_body(), OPERATOR_KEY)
    key = response.get_json()["api_key"]

    post_json(client, "/v1/brand/pause", {"reason": "product recall"}, key)
    same = post_json(client, "/v1/brand/pause", {"reason": "product recall"}, key)
    without_reason = post_json(client, "/v1/brand/pause", {}, key)
    other = post_json(client, "/v1/brand/pause", {"reason": "storm"}, key)
    shown = client.get("/v1/brand/pause", headers=auth(key)).get_json()

    assert same.status_code == 200 and without_reason.status_code == 200
    assert other.status_code == 409
    assert other.get_json()["error"]["field"] == "reason"
    assert "'product recall'" in other.get_json()["error"]["message"]
    assert shown["reason"] == "product recall"


def test_a_pause_reason_is_stripped_of_the_blanks_text_strips(client, runtime) -> None:
    """A reason sent with a byte-order mark or ideographic space around it is
    the same reason: stored without them, a later pause for it is no 409."""
    response = post_json(client, "/v1/brands", brand_body(), OPERATOR_KEY)
    key = response.get_json()["api_key"]

    first = post_json(client, "/v1/brand/pause", {"reason": "\ufeffrecall\u3000"}, key)
    again = post_json(client, "/v1/brand/pause", {"reason": "recall"}, key)
    shown = client.get("/v1/brand/pause", headers=auth(key)).get_json()

    assert first.status_code == 200
    assert again.status_code == 200
    assert shown["reason"] == "recall"


def test_a_body_sent_to_resume_is_a_400_naming_its_field(client, runtime) -> None:
    response = post_json(client, "/v1/brands", brand_body(), OPERATOR_KEY)
    key = response.get_json()["api_key"]
    post_json(client, "/v1/brand/pause", {"reason": "recall"}, key)

    refused = post_json(client, "/v1/brand/resume", {"release": "all"}, key)
    shown = client.get("/v1/brand/pause", headers=auth(key)).get_json()

    assert refused.status_code == 400
    assert refused.get_json()["error"]["field"] == "release"
    assert shown["paused"] is True


def set_alert_webhook(runtime, brand_id: str, url: str | None) -> None:
    """Change the brand's alert webhook as PATCH /v1/brand does, with an admin key."""
    with runtime.database.transaction() as tx:
        admin_updates_brand(
            tx, brand_id, {"alert_webhook_url": url}, runtime.clock.now()
        )


def test_a_repaired_alert_webhook_gets_the_alerts_waiting_out_a_back_off_at_once(
    runtime, clock, webhook
) -> None:
    # Arrange: the brand's webhook was dead when its crisis started; a day-old
    # alert was given up on before that.
    brand_id = add_brand(runtime, f"http://127.0.0.1:{dead_loopback_port()}/hook")
    with runtime.database.transaction() as tx:
        alerts.raise_alert(
            tx,
            brand_id=brand_id,
            kind="x_disconnected",
            episode="yesterday",
            text="the X account was disconnected",
            now=clock.now(),
        )
    clock.advance(dt.timedelta(seconds=runtime.settings.alert_max_age_s + 1))
    alerts.deliver_pending(runtime)
    raise_crisis_alert(runtime, brand_id, clock.now())
    alerts.deliver_pending(runtime)
    (waiting,) = crisis_alerts(runtime, brand_id)
    assert waiting["next_attempt_at"] > clock.now()

    # Act: the owner points the alerts at a webhook that works.
    clock.advance(dt.timedelta(seconds=1))
    set_alert_webhook(runtime, brand_id, webhook.url)
    delivered = alerts.deliver_pending(runtime)

    # Assert: the crisis alert goes now, not after its back-off; the abandoned one
    # stays abandoned.
    assert delivered["alerts_sent"] == 1
    assert [alert["text"] for alert in webhook.accepted] == ["possible crisis"]
    with runtime.database.transaction() as tx:
        given_up = alerts.list_alerts(tx, brand_id=brand_id)[0]
    assert given_up["abandoned_at"] is not None and given_up["delivered_at"] is None


def test_removing_the_alert_webhook_leaves_a_back_off_as_it_was(runtime, clock) -> None:
    brand_id = add_brand(runtime, f"http://127.0.0.1:{dead_loopback_port()}/hook")
    raise_crisis_alert(runtime, brand_id, clock.now())
    alerts.deliver_pending(runtime)
    (before,) = crisis_alerts(runtime, brand_id)

    set_alert_webhook(runtime, brand_id, None)

    (after,) = crisis_alerts(runtime, brand_id)
    assert after["next_attempt_at"] == before["next_attempt_at"] > clock.now()


def test_a_webhook_change_that_is_rolled_back_leaves_the_back_off_as_it_was(
    runtime, clock, webhook
) -> None:
    brand_id = add_brand(runtime, f"http://127.0.0.1:{dead_loopback_port()}/hook")
    raise_crisis_alert(runtime, brand_id, clock.now())
    alerts.deliver_pending(runtime)
    (before,) = crisis_alerts(runtime, brand_id)

    # The URL and the back-off change in the caller's transaction, or not at all.
    with pytest.raises(RuntimeError), runtime.database.transaction() as tx:
        admin_updates_brand(
            tx, brand_id, {"alert_webhook_url": webhook.url}, clock.now()
        )
        raise RuntimeError("the request failed after the update")

    (after,) = crisis_alerts(runtime, brand_id)
    assert after["next_attempt_at"] == before["next_attempt_at"] > clock.now()


# Past crises, many of one brand, a few of another, each a day apart.
STORE_PAST_CRISES = """
INSERT INTO crises (brand_id, started_at, last_seen_at, ended_at, window_mentions,
    window_negative, baseline_share)
SELECT :brand_id, day, day, day + interval '1 hour', 20, 10, 0.1
FROM generate_series(1, :count) AS n,
    LATERAL (SELECT CAST(:start AS timestamptz) + make_interval(days => n)) AS d (day)
"""


def plan_nodes(plan: dict) -> list[dict]:
    """Every node of an EXPLAIN (FORMAT JSON) plan, the top one first."""
    nodes, stack = [], [plan]
    while stack:
        node = stack.pop()
        nodes.append(node)
        stack.extend(node.get("Plans", []))
    return nodes


# The first page, and one after a cursor (the 20th day's crisis).
PAGE_CURSORS = [(None, None), (START + dt.timedelta(days=20), 2020)]


@pytest.mark.parametrize(("after_at", "after_id"), PAGE_CURSORS)
def test_a_brand_s_crisis_page_is_read_by_its_index_not_a_scan_of_all(
    runtime, after_at, after_id
) -> None:
    # Arrange: a busy brand's crises fill most of the table.
    busy, quiet = add_brand(runtime, slug="busy"), add_brand(runtime, slug="quiet")
    with runtime.database.transaction() as tx:
        tx.execute(STORE_PAST_CRISES, brand_id=busy, start=START, count=2000)
        tx.execute(STORE_PAST_CRISES, brand_id=quiet, start=START, count=30)
        tx.execute("ANALYZE crises")

    # Act: the plan of the list's page, as GET /v1/crises asks for it.
    with runtime.database.transaction() as tx:
        (explained,) = tx.rows(
            "EXPLAIN (FORMAT JSON) " + crisis.SELECT_CRISES,
            brand_id=quiet,
            after_at=after_at,
            after_id=after_id,
            limit=51,
            now=START,
            window=dt.timedelta(hours=1),
        )
    nodes = plan_nodes(explained["QUERY PLAN"][0]["Plan"])

    # Assert: the brand's rows by its index, not every brand's read and dropped.
    # (Whether the page is read in index order or sorted is the planner's
    # choice by cost: for a few dozen rows it may sort them.)
    indexes = {node.get("Index Name") for node in nodes}
    assert "crises_by_brand_started" in indexes
    assert "Seq Scan" not in {node["Node Type"] for node in nodes}
