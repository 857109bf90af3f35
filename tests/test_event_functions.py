"""The four event functions, through functions-framework's CloudEvent app.

X is the sandbox on loopback; Pub/Sub fan-out lands on a loopback receiver that
stands where the push subscription's endpoint would be.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import logging
import threading
import uuid
from http.server import BaseHTTPRequestHandler

import pytest

from cartcast import events
from infra.x_sandbox import XSandbox
from tests.conftest import OPERATOR_KEY, START, make_app
from tests.helpers import (
    brand_body,
    catalog,
    dead_loopback_port,
    post_json,
    serve_in_thread,
)
from tests.test_refusals import WebhookReceiver

SHOP = {"user_id": "1500000000000000001", "username": "testgoods", "name": "Test Goods"}


class PushReceiver:
    """Records the Pub/Sub CloudEvents pushed to it, answering 204 like a function."""

    def __init__(self) -> None:
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((dict(self.headers), json.loads(body)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = serve_in_thread("127.0.0.1", 0, Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/"


@pytest.fixture
def sandbox(clock_file):
    with XSandbox(clock=clock_file) as running:
        running.register_account(**SHOP, token="token-test-goods", followers_count=900)
        yield running


@pytest.fixture
def receiver():
    running = PushReceiver()
    yield running
    running.server.shutdown()


@pytest.fixture
def env(function_env, monkeypatch, sandbox, receiver):
    monkeypatch.setenv("X_API_BASE_URL", sandbox.base_url)
    monkeypatch.setenv("CARTCAST_PUBSUB_PUSH", f"cartcast-mentions={receiver.url}")
    return function_env


@pytest.fixture
def brand_key(env) -> str:
    api = make_app("api", "http").test_client()
    key = post_json(api, "/v1/brands", brand_body(), OPERATOR_KEY).get_json()["api_key"]
    post_json(api, "/v1/products", catalog(4), key)
    post_json(api, "/v1/captions", {"products": [p["sku"] for p in catalog(4)]}, key)
    post_json(api, "/v1/schedule", {}, key)
    return key


def tick(
    target: str, at: dt.datetime, payload: dict | None = None, message_id: str = ""
):
    headers, body = events.envelope(
        topic=target,
        project="test",
        payload=payload or {},
        message_id=message_id or uuid.uuid4().hex,
        time=at,
    )
    client = make_app(target, "cloudevent").test_client()
    return client.post("/", headers=headers, data=json.dumps(body))


def api_get(path: str, key: str):
    client = make_app("api", "http").test_client()
    return client.get(path, headers={"Authorization": f"Bearer {key}"}).get_json()


def test_a_tick_publishes_due_posts_once_even_when_delivered_twice(
    brand_key, clock_file, sandbox
) -> None:
    week_later = START + dt.timedelta(days=7)
    clock_file.set(week_later)

    first = tick("publish_due_posts", week_later)
    again = tick("publish_due_posts", week_later)

    assert first.status_code == again.status_code == 200
    published = api_get("/v1/posts?state=published", brand_key)["posts"]
    assert len(published) == 4
    assert len(sandbox.snapshot()["posts"]) == 4


def test_the_next_tick_adopts_a_post_whose_answer_was_lost_instead_of_resending(
    brand_key, clock_file, sandbox
) -> None:
    week_later = START + dt.timedelta(days=7)
    clock_file.set(week_later)
    sandbox.add_fault(method="POST", path_prefix="/2/tweets", drop=True)
    tick("publish_due_posts", week_later)
    unconfirmed = api_get("/v1/posts?state=unconfirmed", brand_key)["posts"]

    clock_file.set(week_later + dt.timedelta(minutes=1))
    tick("publish_due_posts", week_later + dt.timedelta(minutes=1))

    on_x = {p["id"] for p in sandbox.snapshot()["posts"]}
    published = api_get("/v1/posts?state=published", brand_key)["posts"]
    assert len(unconfirmed) == 1
    assert len(published) == len(on_x) == 4
    assert {p["x_post_id"] for p in published} == on_x
    assert sandbox.snapshot()["requests"]["POST /2/tweets"]["count"] == 4


def test_posts_not_yet_due_stay_scheduled(brand_key, clock_file, sandbox) -> None:
    tick("publish_due_posts", START)

    assert api_get("/v1/posts?state=scheduled", brand_key)["posts"]
    assert sandbox.snapshot()["posts"] == []


def test_a_stale_tick_is_acknowledged_and_does_nothing(
    brand_key, clock_file, sandbox
) -> None:
    clock_file.set(START + dt.timedelta(days=7))

    response = tick("publish_due_posts", START + dt.timedelta(days=6))

    assert response.status_code == 200
    assert sandbox.snapshot()["posts"] == []


def test_x_rate_limit_defers_publishing_without_failing_posts(
    brand_key, clock_file, sandbox
) -> None:
    clock_file.set(START + dt.timedelta(days=7))
    sandbox.add_fault(method="POST", path_prefix="/2/tweets", status=429, count=1)

    response = tick("publish_due_posts", START + dt.timedelta(days=7))

    assert response.status_code == 200
    assert len(api_get("/v1/posts?state=scheduled", brand_key)["posts"]) == 4
    assert api_get("/v1/posts?state=failed", brand_key)["posts"] == []


def test_mentions_are_stored_once_fanned_out_and_scored(
    brand_key, clock_file, sandbox, receiver
) -> None:
    for text in (
        "@testgoods where is my order #4411? it never arrived",
        "@testgoods love it!",
    ):
        sandbox.add_mention(
            to_user_id=SHOP["user_id"],
            text=text,
            author={"id": "42", "username": "shopper", "name": "A Shopper"},
        )

    tick("poll_mentions", START)
    tick("poll_mentions", START)
    pushed = [events.decode(_as_event(h, b)) for h, b in receiver.received]
    for message in pushed:
        tick("score_sentiment", START, message.payload)

    inbox = api_get("/v1/mentions", brand_key)["mentions"]
    assert len(pushed) == 1 and len(pushed[0].payload["mention_ids"]) == 2
    assert len(inbox) == 2
    assert inbox[0]["intent"] == "order_issue"
    assert inbox[0]["priority"] < inbox[1]["priority"]


def test_a_score_event_without_mention_ids_is_acknowledged(env) -> None:
    response = tick("score_sentiment", START, {"something": "else"})

    assert response.status_code == 200


def test_an_event_without_pubsub_data_is_acknowledged(env) -> None:
    headers, _ = events.envelope(
        topic="t", project="p", payload={}, message_id="1", time=START
    )
    client = make_app("rollup_kpis", "cloudevent").test_client()

    response = client.post(
        "/", headers=headers, data=json.dumps({"message": {"data": "%%%"}})
    )

    assert response.status_code == 200


def test_the_rollup_snapshots_metrics_and_writes_daily_kpis(
    brand_key, clock_file
) -> None:
    published_at = START + dt.timedelta(days=7)
    clock_file.set(published_at)
    tick("publish_due_posts", published_at)
    later = published_at + dt.timedelta(hours=6)
    clock_file.set(later)

    response = tick("rollup_kpis", later)

    assert response.status_code == 200
    days = api_get(f"/v1/reports/daily?to={later.date()}", brand_key)["days"]
    assert sum(day["posts_published"] for day in days) == 4
    assert sum(day["impressions"] for day in days) > 0
    assert float(sum(float(day["api_spend_usd"]) for day in days)) >= 4 * 0.20


def _as_event(headers: dict, body: dict):
    from cloudevents.http import CloudEvent

    attributes = {
        k[3:]: v
        for k, v in {k.lower(): v for k, v in headers.items()}.items()
        if k.startswith("ce-")
    }
    return CloudEvent(attributes, body)


@pytest.mark.parametrize(
    "payload",
    [{"mention_ids": ["not-a-uuid"]}, {"mention_ids": [1, 2]}, {"mention_ids": []}],
)
def test_a_score_event_with_unusable_ids_is_acknowledged_not_retried(
    env, payload
) -> None:
    response = tick("score_sentiment", START, payload)

    assert response.status_code == 200


def test_a_tick_stamped_in_the_future_publishes_nothing_early(
    brand_key, sandbox
) -> None:
    response = tick("publish_due_posts", START + dt.timedelta(days=7))

    assert response.status_code == 200
    assert sandbox.snapshot()["posts"] == []


def test_a_brand_x_refuses_does_not_stop_the_rollup_of_others(
    brand_key, clock_file, sandbox
) -> None:
    api = make_app("api", "http").test_client()
    body = brand_body(
        slug="revoked", x_user_id="1500000000000000009", x_access_token="revoked"
    )
    post_json(api, "/v1/brands", body, OPERATOR_KEY)
    later = START + dt.timedelta(days=7)
    clock_file.set(later)
    tick("publish_due_posts", later)
    clock_file.set(later + dt.timedelta(hours=6))

    response = tick("rollup_kpis", later + dt.timedelta(hours=6))

    assert response.status_code == 200
    days = api_get(f"/v1/reports/daily?to={later.date()}", brand_key)["days"]
    assert sum(day["impressions"] for day in days) > 0
    assert sum(day["posts_published"] for day in days) == 4


def test_the_same_rollup_event_delivered_twice_reads_x_once(
    brand_key, clock_file, sandbox
) -> None:
    later = START + dt.timedelta(days=7)
    clock_file.set(later)
    tick("publish_due_posts", later)
    reads_before = copy.deepcopy(sandbox.snapshot()["requests"])

    first = tick("rollup_kpis", later, message_id="rollup-1")
    reads_after_first = copy.deepcopy(sandbox.snapshot()["requests"])
    again = tick("rollup_kpis", later, message_id="rollup-1")

    assert first.status_code == again.status_code == 200
    assert reads_after_first != reads_before
    assert sandbox.snapshot()["requests"] == reads_after_first


def _poll_and_collect(receiver, at) -> list:
    tick("poll_mentions", at)
    pushed = [events.decode(_as_event(h, b)) for h, b in receiver.received]
    receiver.received.clear()
    return pushed


def _mention_states(brand_key) -> list:
    mentions = api_get("/v1/mentions", brand_key)["mentions"]
    return [m["intent"] for m in mentions]


def _brand_with_a_surge(sandbox, webhook, alert_path: str = "") -> str:
    """Add a brand whose alerts go to `webhook`, and four angry mentions of it:
    a crisis once CARTCAST_CRISIS_MIN_MENTIONS is 4. Return its admin key."""
    api = make_app("api", "http").test_client()
    created = post_json(
        api,
        "/v1/brands",
        brand_body(alert_webhook_url=webhook.url + alert_path),
        OPERATOR_KEY,
    )
    for number in range(4):
        sandbox.add_mention(
            to_user_id=SHOP["user_id"],
            text=f"@testgoods order #44{number} never arrived, this is awful",
            author={"id": f"4{number}", "username": f"buyer{number}", "name": "B"},
        )
    return created.get_json()["api_key"]


def test_a_crisis_alert_goes_out_from_the_scoring_run_that_saw_the_surge(
    env, monkeypatch, sandbox, receiver
) -> None:
    # Arrange: no publish tick runs (the operator paused the deployment's publish
    # jobs, say), and a surge of angry mentions comes in.
    monkeypatch.setenv("CARTCAST_CRISIS_MIN_MENTIONS", "4")
    webhook = WebhookReceiver()
    _brand_with_a_surge(sandbox, webhook)

    # Act
    try:
        for message in _poll_and_collect(receiver, START):
            tick("score_sentiment", START, message.payload)
    finally:
        webhook.server.shutdown()
        webhook.server.server_close()

    # Assert: the brand's people hear of it now, once, not at some later publish run.
    assert len(webhook.accepted) == 1
    assert "possible crisis" in webhook.accepted[0]["text"]


def test_an_alert_its_webhook_refused_waits_for_the_next_tick_not_each_scoring_run(
    env, monkeypatch, sandbox, receiver, clock_file
) -> None:
    # Arrange: the brand's webhook is down when its crisis starts; scoring runs
    # come by the dozen a minute on a busy day.
    monkeypatch.setenv("CARTCAST_CRISIS_MIN_MENTIONS", "4")
    webhook = WebhookReceiver()
    webhook.status = 503
    _brand_with_a_surge(sandbox, webhook)
    (message,) = _poll_and_collect(receiver, START)

    # Act: the run that starts the crisis, then three more scoring runs; then the
    # next poll tick, the webhook back.
    try:
        for _ in range(4):
            tick("score_sentiment", START, message.payload)
        tried_by_scoring = len(webhook.received)
        webhook.status = 200
        clock_file.set(START + dt.timedelta(minutes=1))
        tick("poll_mentions", START + dt.timedelta(minutes=1))
    finally:
        webhook.server.shutdown()
        webhook.server.server_close()

    # Assert: tried at once, then again on the tick's own cadence, as a publish
    # run tries it: not once more for every scoring run, each waiting out a dead
    # webhook's timeout.
    assert tried_by_scoring == 1
    assert len(webhook.received) == 2 and len(webhook.accepted) == 1


class ClockMovingWebhook:
    """A loopback receiver for a brand's alerts and its CRM alike that takes every
    POST, moving the shared clock on by `takes` while it does: slow, with no real
    waiting. It records each POST's path."""

    def __init__(self, clock_file, takes: dt.timedelta) -> None:
        paths = self.paths = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                paths.append(self.path)
                clock_file.set(clock_file.now() + takes)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = serve_in_thread("127.0.0.1", 0, Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"


def test_a_scoring_run_s_escalations_and_alerts_share_one_webhook_budget(
    env, monkeypatch, sandbox, receiver, clock_file
) -> None:
    # Arrange: four late orders, each escalated, and the crisis they make, for a
    # CRM and an alert webhook that take 5 s over each POST; 12 s of budget.
    monkeypatch.setenv("CARTCAST_CRISIS_MIN_MENTIONS", "4")
    monkeypatch.setenv("CARTCAST_WEBHOOK_BUDGET_S", "12")
    webhook = ClockMovingWebhook(clock_file, dt.timedelta(seconds=5))
    admin_key = _brand_with_a_surge(sandbox, webhook, alert_path="/alerts")
    api = make_app("api", "http").test_client()
    patched = api.patch(
        "/v1/brand",
        json={
            "escalation_webhook_url": f"{webhook.url}/crm",
            "escalation_secret": "a-crm-secret-of-some-length",
        },
        headers={"Authorization": f"Bearer {admin_key}"},
    )
    assert patched.status_code == 200, patched.get_json()
    (message,) = _poll_and_collect(receiver, START)

    # Act: the scoring run, then the next poll tick.
    try:
        tick("score_sentiment", START, message.payload)
        by_scoring = list(webhook.paths)
        next_tick = clock_file.now() + dt.timedelta(minutes=1)
        clock_file.set(next_tick)
        tick("poll_mentions", next_tick)
    finally:
        webhook.server.shutdown()
        webhook.server.server_close()

    # Assert: POSTs started at 0, 5 and 10 s, the crisis alert first (decision
    # 0075); the last two escalations were left due, and the tick sent them,
    # nothing twice.
    assert by_scoring == ["/alerts", "/crm", "/crm"]
    assert sorted(webhook.paths) == ["/alerts"] + ["/crm"] * 4


def test_a_stale_score_event_is_dropped_with_a_log_line_and_swept_later(
    brand_key, clock_file, sandbox, receiver, caplog
) -> None:
    _add_a_broken_order_mention(sandbox)
    (message,) = _poll_and_collect(receiver, START)
    late = START + dt.timedelta(minutes=16)
    clock_file.set(late)

    response = tick("score_sentiment", START, message.payload)

    assert response.status_code == 200
    dropped = [r.fields for r in caplog.records if r.getMessage() == "event dropped"]
    assert dropped and dropped[-1]["function"] == "score_sentiment"
    assert dropped[-1]["reason"].startswith("event is 960 s old")
    assert _mention_states(brand_key) == [None]

    swept_at = START + dt.timedelta(minutes=21)
    clock_file.set(swept_at)
    _poll_and_collect(receiver, swept_at)

    assert _mention_states(brand_key) == ["order_issue"]


def test_score_sentiment_fails_for_a_retry_when_the_database_is_down(
    env, monkeypatch
) -> None:
    from cartcast import runtime as runtime_module

    # Nothing listens on that loopback port: the connection is refused.
    port = dead_loopback_port()
    monkeypatch.setenv("DATABASE_URL", f"postgresql://postgres@127.0.0.1:{port}/x")
    runtime_module.reset()
    payload = {"mention_ids": [str(uuid.uuid4())]}

    try:
        response = tick("score_sentiment", START, payload)
    finally:
        monkeypatch.setenv("DATABASE_URL", env["DATABASE_URL"])
        runtime_module.reset()

    assert response.status_code == 500


def test_a_duplicate_score_event_scores_nothing_more(
    brand_key, sandbox, receiver
) -> None:
    sandbox.add_mention(
        to_user_id=SHOP["user_id"],
        text="@testgoods love it!",
        author={"id": "42", "username": "shopper", "name": "A Shopper"},
    )
    (message,) = _poll_and_collect(receiver, START)

    tick("score_sentiment", START, message.payload, message_id="m1")
    first = api_get("/v1/mentions", brand_key)["mentions"]
    tick("score_sentiment", START, message.payload, message_id="m2")

    assert api_get("/v1/mentions", brand_key)["mentions"] == first


@pytest.fixture
def cartcast_log(caplog):
    """What cartcast logs, whichever test first set its logger not to propagate."""
    logger = logging.getLogger("cartcast")
    logger.addHandler(caplog.handler)
    yield caplog
    logger.removeHandler(caplog.handler)


def _encoded(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.mark.parametrize(
    "data",
    [
        123,
        ["a"],
        {"a": 1},
        0,
        False,
        [],
        {},
        _encoded(b"[" * 100_000),
        _encoded(b'{"a":' * 100_000),
    ],
    ids=[
        "number",
        "list",
        "object",
        "zero",
        "false",
        "empty-list",
        "empty-object",
        "deeply-nested-array",
        "deeply-nested-object",
    ],
)
@pytest.mark.parametrize("target", ["score_sentiment", "rollup_kpis"])
def test_message_data_of_the_wrong_type_or_nested_past_parsing_is_acknowledged(
    env, cartcast_log, target, data
) -> None:
    headers, _ = events.envelope(
        topic="t", project="p", payload={}, message_id="1", time=START
    )
    client = make_app(target, "cloudevent").test_client()

    response = client.post(
        "/", headers=headers, data=json.dumps({"message": {"data": data}})
    )

    assert response.status_code == 200
    assert "unusable event dropped" in [r.getMessage() for r in cartcast_log.records]


def test_a_poll_cut_off_from_the_database_runs_again_when_pubsub_retries(
    brand_key, env, monkeypatch, clock_file, sandbox, receiver
) -> None:
    from bench.faults.proxy import CuttableProxy
    from cartcast import runtime as runtime_module

    _add_a_broken_order_mention(sandbox)

    with CuttableProxy(env["DATABASE_URL"]) as proxy:
        monkeypatch.setenv("DATABASE_URL", proxy.url)
        runtime_module.reset()
        try:
            # The run claims the tick, then X's answer waits while the database
            # goes away: the poll, and giving its claim back, both fail.
            run, answers = _start_a_poll_held_at_its_mentions_read(sandbox)
            proxy.cut()
            sandbox.release_answers()
            run.join()
            proxy.restore()
            _wait_until_no_run_is_marked_alive(runtime_module.current().database)

            # Pub/Sub's retry comes after its back-off; this one after the poll's
            # hold on the brand (CARTCAST_MENTION_POLL_LEASE_S) ended too.
            lease_s = runtime_module.current().settings.mention_poll_lease_s
            clock_file.set(START + dt.timedelta(seconds=lease_s))
            retried = tick("poll_mentions", START, {}, "t1")
        finally:
            monkeypatch.setenv("DATABASE_URL", env["DATABASE_URL"])
            runtime_module.reset()

    assert answers[0].status_code == 500
    assert retried.status_code == 200
    assert len(api_get("/v1/mentions", brand_key)["mentions"]) == 1


def test_a_tick_delivered_again_while_its_run_goes_on_is_retried_not_run_twice(
    brand_key, clock_file, sandbox, receiver
) -> None:
    _add_a_broken_order_mention(sandbox)
    run, answers = _start_a_poll_held_at_its_mentions_read(sandbox)

    during = tick("poll_mentions", START, {}, "t1")
    sandbox.release_answers()
    run.join()
    after = tick("poll_mentions", START, {}, "t1")

    assert during.status_code == 500
    assert answers[0].status_code == after.status_code == 200
    reads = sandbox.snapshot()["requests"]["GET /2/users/:id/mentions"]["count"]
    assert reads == 1
    assert len(api_get("/v1/mentions", brand_key)["mentions"]) == 1


def test_a_poll_cut_off_from_the_database_is_taken_over_by_the_first_retry(
    brand_key, env, monkeypatch, clock_file, sandbox, receiver
) -> None:
    from bench.faults.proxy import CuttableProxy
    from cartcast import runtime as runtime_module

    _add_a_broken_order_mention(sandbox)
    first_retry_at = START + dt.timedelta(seconds=10)  # terraform's least back-off

    # Arrange: the run's connections, the one marking it alive among them, are
    # cut while X holds its answer: the run fails and keeps its claim.
    with CuttableProxy(env["DATABASE_URL"]) as proxy:
        monkeypatch.setenv("DATABASE_URL", proxy.url)
        runtime_module.reset()
        try:
            run, answers = _start_a_poll_held_at_its_mentions_read(sandbox)
            proxy.cut()
            sandbox.release_answers()
            run.join()
        finally:
            monkeypatch.setenv("DATABASE_URL", env["DATABASE_URL"])
            runtime_module.reset()
    database = runtime_module.current().database
    _wait_until_no_run_is_marked_alive(database)

    # Act: Pub/Sub's first retry, well inside a minute.
    clock_file.set(first_retry_at)
    retried = tick("poll_mentions", START, {}, "t1")

    # Assert: it took the claim over and ran, rather than waiting for it to age.
    assert answers[0].status_code == 500
    assert retried.status_code == 200
    claim = database.reads().one(SELECT_CLAIM, event_id="t1")
    assert claim == {"handled_at": first_retry_at, "finished": True}


def test_a_rollup_running_past_a_minute_is_not_run_again_by_a_second_delivery(
    brand_key, clock_file, sandbox
) -> None:
    # Arrange: a rollup's run waits for X's followers answer, two minutes on.
    sandbox.add_fault(method="GET", path_prefix="/2/users/", hold=True)
    answers: list = []
    run = threading.Thread(
        target=lambda: answers.append(tick("rollup_kpis", START, {}, "r1"))
    )
    run.start()
    _wait_for_a_held_read(sandbox, "GET /2/users/:id")
    clock_file.set(START + dt.timedelta(minutes=2))

    # Act: Pub/Sub delivers the same tick again while the run goes on.
    during = tick("rollup_kpis", START, {}, "r1")
    sandbox.release_answers()
    run.join()

    # Assert: the second delivery is retried later; X's followers are read once.
    assert during.status_code == 500
    assert answers[0].status_code == 200
    reads = sandbox.snapshot()["requests"]["GET /2/users/:id"]["count"]
    assert reads == 1


SELECT_CLAIM = """
SELECT handled_at, finished_at IS NOT NULL AS finished FROM handled_events
WHERE function = 'poll_mentions' AND event_id = :event_id
"""
SELECT_LIVE_RUN_LOCKS = """
SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 7317
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


def _wait_until_no_run_is_marked_alive(database) -> None:
    """Wait for the server to end the sessions the cut closed, and their locks."""
    for _ in range(500):
        if not database.reads().scalar(SELECT_LIVE_RUN_LOCKS):
            return
        threading.Event().wait(0.01)
    raise AssertionError("a cut session still holds its run's lock")


def _add_a_broken_order_mention(sandbox) -> None:
    sandbox.add_mention(
        to_user_id=SHOP["user_id"],
        text="@testgoods my order #5120 arrived broken",
        author={"id": "42", "username": "shopper", "name": "A Shopper"},
    )


def _start_a_poll_held_at_its_mentions_read(sandbox) -> tuple[threading.Thread, list]:
    """Run tick t1's poll in a thread; return it and its answers once X holds it."""
    sandbox.add_fault(method="GET", path_prefix="/2/users/", hold=True)
    answers: list = []
    run = threading.Thread(
        target=lambda: answers.append(tick("poll_mentions", START, {}, "t1"))
    )
    run.start()
    _wait_for_a_held_mentions_read(sandbox)
    return run, answers


def _wait_for_a_held_mentions_read(sandbox) -> None:
    _wait_for_a_held_read(sandbox, "GET /2/users/:id/mentions")


def _wait_for_a_held_read(sandbox, endpoint: str) -> None:
    requests = {}
    for _ in range(2000):
        requests = sandbox.snapshot()["requests"]
        if requests.get(endpoint, {}).get("count"):
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"no {endpoint} reached the sandbox: {requests}")


@pytest.mark.parametrize(
    "time", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+14:00"]
)
def test_an_event_time_with_no_utc_instant_is_acknowledged(
    env, cartcast_log, time
) -> None:
    headers, body = events.envelope(
        topic="t", project="p", payload={}, message_id="1", time=START
    )
    headers["ce-time"] = time
    client = make_app("rollup_kpis", "cloudevent").test_client()

    response = client.post("/", headers=headers, data=json.dumps(body))

    assert response.status_code == 200
    assert "unusable event dropped" in [r.getMessage() for r in cartcast_log.records]
