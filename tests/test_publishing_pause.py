"""The operator's pause holds every publish run, not only the Scheduler's next tick.

The pause is recorded in the database before Cloud Scheduler is asked to pause its
two jobs, and cleared only after both are resumed (decision 0077): a tick that
Pub/Sub delivers while it stands publishes nothing, and leaves the posts due. The
Scheduler is the loopback stand-in, X the sandbox, and ticks go through
functions-framework's CloudEvent app as Pub/Sub would push them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import re
import threading
from collections.abc import Iterator

import pytest

from cartcast import publish_schedule, publishing, web
from cartcast import runtime as runtime_module
from cartcast.errors import Conflict, TransientError
from infra.x_sandbox import XSandbox
from tests.conftest import (
    OPERATOR_KEY,
    SCHEDULER_JOB,
    START,
    SWEEP_SCHEDULER_JOB,
    make_app,
)
from tests.helpers import (
    ALPHA,
    brand_body,
    catalog,
    make_brand,
    post_json,
    states,
    tweets_sent,
)
from tests.test_event_functions import SHOP, api_get, tick

WEEK_LATER = START + dt.timedelta(days=7)


@pytest.fixture
def sandbox(clock_file):
    with XSandbox(clock=clock_file) as running:
        running.register_account(**SHOP, token="token-test-goods", followers_count=900)
        yield running


@pytest.fixture
def env(scheduler_env, monkeypatch, sandbox):
    monkeypatch.setenv("X_API_BASE_URL", sandbox.base_url)
    runtime_module.reset()
    return scheduler_env


@pytest.fixture
def api(env):
    return make_app("api", "http").test_client()


@pytest.fixture
def brand_key(api) -> str:
    """A brand with four posts scheduled through the API, due within the week."""
    key = post_json(api, "/v1/brands", brand_body(), OPERATOR_KEY).get_json()["api_key"]
    post_json(api, "/v1/products", catalog(4), key)
    post_json(api, "/v1/captions", {"products": [p["sku"] for p in catalog(4)]}, key)
    post_json(api, "/v1/schedule", {}, key)
    return key


def operator(api, path: str):
    if path.startswith("GET "):
        headers = {"Authorization": f"Bearer {OPERATOR_KEY}"}
        return api.get(path.removeprefix("GET "), headers=headers)
    return post_json(api, path, None, OPERATOR_KEY)


def post_states(brand_key: str) -> dict[str, int]:
    found = api_get("/v1/posts?limit=50", brand_key)["posts"]
    counted: dict[str, int] = {}
    for post in found:
        counted[post["state"]] = counted.get(post["state"], 0) + 1
    return counted


def test_a_tick_delivered_while_paused_publishes_nothing_and_one_after_resume_does(
    api, brand_key, clock_file, sandbox
) -> None:
    clock_file.set(WEEK_LATER)

    paused = operator(api, "/v1/publishing/pause")
    while_paused = tick("publish_due_posts", WEEK_LATER)
    states_while_paused = post_states(brand_key)
    reasons_while_paused = [
        post["failure_reason"] for post in api_get("/v1/posts", brand_key)["posts"]
    ]
    sent_while_paused = tweets_sent(sandbox)
    resumed = operator(api, "/v1/publishing/resume")
    after = tick("publish_due_posts", WEEK_LATER)

    assert paused.status_code == 200 and paused.get_json()["paused"] is True
    assert while_paused.status_code == 200
    # Still due: nothing claimed, failed, or held with a reason for the brand.
    assert states_while_paused == {"scheduled": 4}
    assert reasons_while_paused == [None] * 4
    assert sent_while_paused == 0
    assert resumed.status_code == 200 and resumed.get_json()["paused"] is False
    assert after.status_code == 200
    assert post_states(brand_key) == {"published": 4}
    assert tweets_sent(sandbox) == 4


def test_a_sweep_tick_while_paused_sends_nothing_and_holds_nothing(
    api, brand_key, clock_file, sandbox, caplog
) -> None:
    late = WEEK_LATER + dt.timedelta(hours=1)
    clock_file.set(late)
    operator(api, "/v1/publishing/pause")

    swept = tick("publish_due_posts", late, payload={"sweep": True})

    assert swept.status_code == 200
    assert tweets_sent(sandbox) == 0
    assert post_states(brand_key) == {"scheduled": 4}
    assert "the publish job seems not to run" not in caplog.text


def test_a_post_claimed_before_the_pause_is_not_sent_and_stays_due(
    x_runtime, x_sandbox
) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)
    claimed, attempts, _ = publishing._claim(x_runtime, START + dt.timedelta(days=8))

    with x_runtime.database.transaction() as tx:
        publish_schedule.record_pause(tx, actor="operator", now=START)
    outcome = publishing._publish_one(x_runtime, claimed[0], attempts[claimed[0]["id"]])

    assert outcome == "lost"
    assert tweets_sent(x_sandbox) == 0
    assert states(x_runtime, brand_id) == ["scheduled"]


def test_a_pause_is_recorded_even_when_the_scheduler_refuses_and_a_retry_finishes_it(
    api, brand_key, clock_file, sandbox, scheduler, monkeypatch
) -> None:
    clock_file.set(WEEK_LATER)
    monkeypatch.setenv("CARTCAST_SWEEP_SCHEDULER_JOB", SWEEP_SCHEDULER_JOB + "-gone")
    runtime_module.reset()

    refused = operator(api, "/v1/publishing/pause")
    state = operator(api, "GET /v1/publishing/pause").get_json()
    ticked = tick("publish_due_posts", WEEK_LATER)
    monkeypatch.setenv("CARTCAST_SWEEP_SCHEDULER_JOB", SWEEP_SCHEDULER_JOB)
    runtime_module.reset()
    again = operator(api, "/v1/publishing/pause")

    assert refused.status_code == 409
    message = refused.get_json()["error"]["message"]
    assert message.startswith("publishing is paused")
    assert refused.get_json()["error"]["field"] == "CARTCAST_SWEEP_SCHEDULER_JOB"
    assert state["paused"] is True
    assert ticked.status_code == 200 and tweets_sent(sandbox) == 0
    assert again.status_code == 200
    assert again.get_json()["paused_at"] == state["paused_at"]
    assert (
        scheduler.is_paused(SCHEDULER_JOB),
        scheduler.is_paused(SWEEP_SCHEDULER_JOB),
    ) == (True, True)


def test_a_pause_while_the_scheduler_is_down_still_holds_every_tick(
    api, brand_key, clock_file, sandbox, scheduler
) -> None:
    clock_file.set(WEEK_LATER)
    scheduler.stop()

    unavailable = operator(api, "/v1/publishing/pause")
    ticked = tick("publish_due_posts", WEEK_LATER)

    assert unavailable.status_code == 503
    error = unavailable.get_json()["error"]
    assert error["code"] == "unavailable"
    assert error["message"].startswith("publishing is paused")
    assert ticked.status_code == 200 and tweets_sent(sandbox) == 0
    assert post_states(brand_key) == {"scheduled": 4}


def test_a_resume_the_scheduler_does_not_answer_leaves_publishing_paused(
    api, brand_key, clock_file, sandbox, scheduler
) -> None:
    clock_file.set(WEEK_LATER)
    operator(api, "/v1/publishing/pause")
    scheduler.stop()

    unavailable = operator(api, "/v1/publishing/resume")
    state = operator(api, "GET /v1/publishing/pause").get_json()
    ticked = tick("publish_due_posts", WEEK_LATER)

    assert unavailable.status_code == 503
    assert unavailable.get_json()["error"]["message"].startswith(
        "publishing is still paused"
    )
    assert state["paused"] is True
    assert ticked.status_code == 200 and tweets_sent(sandbox) == 0


# The database ending the resume's own transaction, as it ends one of two that
# cannot both commit (40001), however often it is tried.
REFUSE_CLEARING = (
    """
    CREATE FUNCTION refuse_clearing_the_pause() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'could not serialize access'
            USING ERRCODE = 'serialization_failure';
    END $$
    """,
    """
    CREATE TRIGGER refuse_clearing_the_pause BEFORE DELETE ON publishing_pause
    FOR EACH ROW EXECUTE FUNCTION refuse_clearing_the_pause()
    """,
)
UNDO_REFUSE_CLEARING = (
    "DROP TRIGGER refuse_clearing_the_pause ON publishing_pause",
    "DROP FUNCTION refuse_clearing_the_pause()",
)


@contextlib.contextmanager
def clearing_the_pause_fails() -> Iterator[None]:
    database = runtime_module.current().database
    with database.transaction() as tx:
        for statement in REFUSE_CLEARING:
            tx.execute(statement)
    try:
        yield
    finally:
        with database.transaction() as tx:
            for statement in UNDO_REFUSE_CLEARING:
                tx.execute(statement)


def test_a_resume_whose_database_step_fails_says_publishing_is_still_paused(
    api, brand_key, clock_file, sandbox, scheduler
) -> None:
    clock_file.set(WEEK_LATER)
    operator(api, "/v1/publishing/pause")

    with clearing_the_pause_fails():
        failed = operator(api, "/v1/publishing/resume")
    state = operator(api, "GET /v1/publishing/pause").get_json()
    jobs_running = (
        scheduler.is_paused(SCHEDULER_JOB),
        scheduler.is_paused(SWEEP_SCHEDULER_JOB),
    )
    ticked = tick("publish_due_posts", WEEK_LATER)
    again = operator(api, "/v1/publishing/resume")

    assert failed.status_code == 503
    error = failed.get_json()["error"]
    assert error["code"] == "unavailable"
    assert error["message"].startswith("publishing is still paused")
    assert "Cloud Scheduler's jobs are resumed" in error["message"]
    assert state["paused"] is True
    assert jobs_running == (False, False)
    assert ticked.status_code == 200 and tweets_sent(sandbox) == 0
    assert again.status_code == 200 and again.get_json()["paused"] is False


def test_pausing_and_resuming_twice_changes_nothing_the_second_time(
    api, scheduler, clock_file
) -> None:
    first = operator(api, "/v1/publishing/pause")
    clock_file.set(START + dt.timedelta(minutes=5))
    second = operator(api, "/v1/publishing/pause")
    resumed = operator(api, "/v1/publishing/resume")
    resumed_again = operator(api, "/v1/publishing/resume")
    state = operator(api, "GET /v1/publishing/pause")

    assert first.status_code == second.status_code == 200
    # The second pause keeps the first one's time.
    assert second.get_json()["paused_at"] == first.get_json()["paused_at"]
    assert first.get_json()["paused_at"] == START.isoformat()
    assert second.get_json()["paused_by"] == "operator"
    assert resumed.status_code == resumed_again.status_code == 200
    assert resumed_again.get_json()["paused"] is False
    assert state.status_code == 200
    assert state.get_json() == {"paused": False, "paused_at": None, "paused_by": None}
    assert (
        scheduler.is_paused(SCHEDULER_JOB),
        scheduler.is_paused(SWEEP_SCHEDULER_JOB),
    ) == (False, False)


def test_a_brand_key_may_not_read_the_deployment_pause(api, brand_key) -> None:
    answer = api.get(
        "/v1/publishing/pause", headers={"Authorization": f"Bearer {brand_key}"}
    )

    assert answer.status_code == 403


def test_a_brand_s_crisis_pause_still_holds_its_posts_while_the_deployment_runs(
    api, brand_key, clock_file, sandbox
) -> None:
    clock_file.set(WEEK_LATER)
    operator(api, "/v1/publishing/pause")
    operator(api, "/v1/publishing/resume")

    post_json(api, "/v1/brand/pause", {"reason": "recall"}, brand_key)
    tick("publish_due_posts", WEEK_LATER)

    assert post_states(brand_key) == {"held": 4}
    assert tweets_sent(sandbox) == 0


def test_the_console_status_page_shows_the_deployment_pause(
    api, brand_key, monkeypatch
) -> None:
    from tests.test_console import SECRET, sign_in, text_of

    monkeypatch.setenv("CARTCAST_CONSOLE_SECRET", SECRET)
    runtime_module.reset()
    console = make_app("api", "http").test_client()
    sign_in(console, brand_key)

    def publishing_line() -> str:
        page = text_of(console.get("/console/status"))
        return re.search(r"<dt>Publishing</dt><dd>([^<]*)", page).group(1)

    running = publishing_line()
    operator(api, "/v1/publishing/pause")
    paused = publishing_line()

    assert running == "running"
    assert paused.startswith("paused for every brand by the operator since")


def test_a_pause_and_a_resume_sent_at_once_leave_the_mark_and_both_jobs_agreeing(
    api, scheduler
) -> None:
    held = scheduler.hold("pause", SCHEDULER_JOB)
    answers = []
    pausing = threading.Thread(
        target=lambda: answers.append(
            operator(api.application.test_client(), "/v1/publishing/pause")
        )
    )
    pausing.start()
    arrived = held.arrived.wait(30)

    resumed = operator(api, "/v1/publishing/resume")
    held.release()
    pausing.join(30)
    state = operator(api, "GET /v1/publishing/pause").get_json()

    assert arrived
    # The mark and both jobs agree: the pause that came first holds.
    jobs = (
        scheduler.is_paused(SCHEDULER_JOB),
        scheduler.is_paused(SWEEP_SCHEDULER_JOB),
    )
    assert (state["paused"], *jobs) == (True, True, True)
    assert [answer.status_code for answer in answers] == [200]
    # The resume met the pause under way and changed nothing.
    assert resumed.status_code == 409
    error = resumed.get_json()["error"]
    assert (error["code"], error["field"]) == ("conflict", None)
    assert error["message"].startswith("another pause or resume is under way")
    assert int(resumed.headers["Retry-After"]) >= 1


def test_a_resume_sent_again_once_the_pause_under_way_ends_resumes_everything(
    api, scheduler
) -> None:
    held = scheduler.hold("pause", SWEEP_SCHEDULER_JOB)
    pausing = threading.Thread(
        target=operator, args=(api.application.test_client(), "/v1/publishing/pause")
    )
    pausing.start()
    held.arrived.wait(30)
    refused = operator(api, "/v1/publishing/resume")
    held.release()
    pausing.join(30)

    resumed = operator(api, "/v1/publishing/resume")

    assert refused.status_code == 409
    assert resumed.status_code == 200 and resumed.get_json()["paused"] is False
    assert (
        scheduler.is_paused(SCHEDULER_JOB),
        scheduler.is_paused(SWEEP_SCHEDULER_JOB),
    ) == (False, False)


def due_times(brand_key: str) -> list[dt.datetime]:
    found = api_get("/v1/posts?limit=50", brand_key)["posts"]
    return sorted(dt.datetime.fromisoformat(post["scheduled_at"]) for post in found)


def test_the_first_sweep_after_a_long_pause_raises_no_alarm_for_posts_due_in_it(
    api, brand_key, clock_file, caplog
) -> None:
    operator(api, "/v1/publishing/pause")
    resumed_at = due_times(brand_key)[-1] + dt.timedelta(hours=1)
    clock_file.set(resumed_at)
    operator(api, "/v1/publishing/resume")

    # Due 1 h before the resume, but the publish job has run for one minute only.
    soon = resumed_at + dt.timedelta(minutes=1)
    clock_file.set(soon)
    first = tick("publish_due_posts", soon, payload={"sweep": True})
    alarm_at_first = "the publish job seems not to run" in caplog.text
    # Past CARTCAST_MISSED_AFTER_S (900 s) from the resume, with no publish tick.
    later = resumed_at + dt.timedelta(minutes=16)
    clock_file.set(later)
    second = tick("publish_due_posts", later, payload={"sweep": True})

    assert first.status_code == second.status_code == 200
    assert alarm_at_first is False
    assert "the publish job seems not to run" in caplog.text


def test_a_post_whose_turn_the_pause_refuses_says_the_operator_paused_publishing(
    x_runtime, x_sandbox
) -> None:
    make_brand(x_runtime, "alpha", ALPHA, products=1)
    claimed, attempts, _ = publishing._claim(x_runtime, START + dt.timedelta(days=8))
    with x_runtime.database.transaction() as tx:
        publish_schedule.record_pause(tx, actor="operator", now=START)

    publishing._publish_one(x_runtime, claimed[0], attempts[claimed[0]["id"]])

    with x_runtime.database.transaction() as tx:
        attempt = tx.one("SELECT error_class, error FROM publish_attempts")
        reason = tx.scalar("SELECT failure_reason FROM posts")
    assert attempt["error_class"] == "deployment_paused"
    assert "the operator paused publishing" in attempt["error"]
    assert "the operator paused publishing" in reason


def test_the_shared_error_answer_gives_a_conflict_s_wait_as_retry_after() -> None:
    busy = Conflict("another pause or resume is under way", retry_after_s=7)

    body, status, headers = web.error_response(busy, logging.getLogger("t"), START)

    assert (status, headers["Retry-After"]) == (409, "7")
    error = {"code": "conflict", "message": str(busy), "field": None}
    assert json.loads(body) == {"error": error}


def test_the_shared_error_answer_shows_a_schedule_failure_s_message_only() -> None:
    failed = publish_schedule.ScheduleUnavailable("publishing is paused; but ...")
    hidden = TransientError("pg8000 said: password for x")

    shown_body, status, _ = web.error_response(failed, logging.getLogger("t"), START)
    hidden_body, _, _ = web.error_response(hidden, logging.getLogger("t"), START)

    assert status == 503
    assert json.loads(shown_body)["error"] == {
        "code": "unavailable",
        "message": "publishing is paused; but ...",
    }
    assert "pg8000" not in hidden_body
