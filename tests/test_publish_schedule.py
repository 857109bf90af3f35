"""The operator pauses the publish schedule through google-cloud-scheduler.

The real client, on its REST transport with anonymous credentials, talks to the
Cloud Scheduler stand-in on loopback, which records the `:pause` and `:resume`
calls. GOOGLE_APPLICATION_CREDENTIALS names a file that does not exist, so a
client that went looking for credentials would fail the test.
"""

from __future__ import annotations

import contextlib
import socket

import pytest

from cartcast import runtime as runtime_module
from infra.scheduler_standin import SchedulerStandIn
from tests.conftest import OPERATOR_KEY, START, make_app
from tests.helpers import brand_body, post_json

JOB = "projects/shop-prod/locations/europe-west1/jobs/cartcast-publish_due_posts"
SWEEP = "projects/shop-prod/locations/europe-west1/jobs/cartcast-sweep_missed_posts"
PORTS = range(44100, 44200)


def loopback_port() -> int:
    """Return a free port of this suite's range on 127.0.0.1."""
    for port in PORTS:
        with contextlib.suppress(OSError), socket.socket() as probe:
            probe.bind(("127.0.0.1", port))
            return port
    raise RuntimeError(f"no free port in {PORTS}")


@pytest.fixture
def scheduler():
    with SchedulerStandIn(port=loopback_port()) as running:
        running.add_job(JOB)
        running.add_job(SWEEP)
        yield running


@pytest.fixture
def client(function_env, monkeypatch, scheduler):
    monkeypatch.setenv("CARTCAST_SCHEDULER_JOB", JOB)
    monkeypatch.setenv("CARTCAST_SWEEP_SCHEDULER_JOB", SWEEP)
    monkeypatch.setenv("CARTCAST_SCHEDULER_ENDPOINT", scheduler.endpoint)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/key.json")
    runtime_module.reset()
    return make_app("api", "http").test_client()


def test_the_operator_pauses_and_resumes_the_publish_and_sweep_jobs(
    client, scheduler
) -> None:
    paused = post_json(client, "/v1/publishing/pause", None, OPERATOR_KEY)
    while_paused = (scheduler.is_paused(JOB), scheduler.is_paused(SWEEP))
    resumed = post_json(client, "/v1/publishing/resume", None, OPERATOR_KEY)

    assert paused.status_code == 200
    assert paused.get_json() == {
        "paused": True,
        "paused_at": START.isoformat(),
        "paused_by": "operator",
        "job": JOB,
        "state": "paused",
        "sweep": {"job": SWEEP, "state": "paused"},
    }
    assert while_paused == (True, True)
    assert resumed.get_json() == {
        "paused": False,
        "paused_at": None,
        "paused_by": None,
        "job": JOB,
        "state": "enabled",
        "sweep": {"job": SWEEP, "state": "enabled"},
    }
    # The publish job stops first and starts last: the sweep never runs alone.
    assert scheduler.calls == [
        ("POST", f"/v1/{JOB}:pause"),
        ("POST", f"/v1/{SWEEP}:pause"),
        ("POST", f"/v1/{SWEEP}:resume"),
        ("POST", f"/v1/{JOB}:resume"),
    ]


def test_without_a_sweep_job_the_pause_is_refused_before_any_call(
    client, scheduler, monkeypatch
) -> None:
    monkeypatch.delenv("CARTCAST_SWEEP_SCHEDULER_JOB")
    runtime_module.reset()

    response = post_json(client, "/v1/publishing/pause", None, OPERATOR_KEY)

    assert response.status_code == 409
    assert response.get_json()["error"]["field"] == "CARTCAST_SWEEP_SCHEDULER_JOB"
    assert scheduler.calls == []


def test_a_sweep_job_scheduler_does_not_know_is_named(
    client, scheduler, monkeypatch
) -> None:
    monkeypatch.setenv("CARTCAST_SWEEP_SCHEDULER_JOB", SWEEP + "-gone")
    runtime_module.reset()

    response = post_json(client, "/v1/publishing/pause", None, OPERATOR_KEY)

    assert response.status_code == 409
    assert response.get_json()["error"]["field"] == "CARTCAST_SWEEP_SCHEDULER_JOB"


@pytest.mark.parametrize("path", ["/v1/publishing/pause", "/v1/publishing/resume"])
def test_a_body_sent_to_the_schedule_is_a_400_naming_its_field(
    client, scheduler, path
) -> None:
    response = post_json(client, path, {"reason": "storm"}, OPERATOR_KEY)

    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "reason"
    assert scheduler.calls == []


def test_a_brand_key_may_not_touch_the_schedule(client, scheduler) -> None:
    created = post_json(client, "/v1/brands", brand_body(), OPERATOR_KEY)
    admin = created.get_json()["api_key"]

    response = post_json(client, "/v1/publishing/pause", None, admin)

    assert response.status_code == 403
    assert scheduler.calls == []


def test_a_job_scheduler_does_not_know_is_a_409_with_its_answer(
    client, scheduler, monkeypatch
) -> None:
    monkeypatch.setenv("CARTCAST_SCHEDULER_JOB", JOB + "-gone")
    runtime_module.reset()

    response = post_json(client, "/v1/publishing/pause", None, OPERATOR_KEY)

    assert response.status_code == 409
    assert "Job not found" in response.get_json()["error"]["message"]


def test_a_scheduler_that_does_not_answer_is_a_503(
    client, scheduler, monkeypatch
) -> None:
    scheduler.stop()

    response = post_json(client, "/v1/publishing/resume", None, OPERATOR_KEY)

    assert response.status_code == 503


def test_without_a_job_there_is_nothing_to_pause(function_env, monkeypatch) -> None:
    monkeypatch.delenv("CARTCAST_SCHEDULER_JOB", raising=False)
    runtime_module.reset()
    client = make_app("api", "http").test_client()

    response = post_json(client, "/v1/publishing/pause", None, OPERATOR_KEY)

    assert response.status_code == 409
    assert response.get_json()["error"]["field"] == "CARTCAST_SCHEDULER_JOB"


def test_the_local_ticker_sends_no_publish_tick_while_the_job_is_paused(
    tmp_path,
) -> None:
    from infra.local_cloud import PUBLISH_JOB, SWEEP_JOB, LocalCloud

    cloud = LocalCloud(
        database_url="postgresql://unused@127.0.0.1:1/none",
        clock_file=None,
        work_dir=tmp_path,
        operator_key=OPERATOR_KEY,
        sandbox=False,
    )
    with cloud.scheduler:
        cloud.scheduler.jobs[PUBLISH_JOB] = "PAUSED"
        cloud.scheduler.jobs[SWEEP_JOB] = "PAUSED"

        sent = cloud.tick("publish_due_posts", time=START)
        swept = cloud.sweep(time=START)

    assert sent is None
    assert swept is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CARTCAST_SCHEDULER_JOB", "publish_due_posts"),
        ("CARTCAST_SCHEDULER_JOB", "projects/p/locations/l/jobs/a b"),
        ("CARTCAST_SWEEP_SCHEDULER_JOB", "sweep"),
        ("CARTCAST_SCHEDULER_ENDPOINT", "127.0.0.1:8085"),
        ("CARTCAST_SCHEDULER_ENDPOINT", "ftp://127.0.0.1/"),
        ("CARTCAST_SCHEDULER_TIMEOUT_S", "541"),
        ("CARTCAST_CRISIS_WINDOW_MIN", "1441"),
        ("CARTCAST_CRISIS_BASELINE_DAYS", "91"),
        ("CARTCAST_CRISIS_MIN_MENTIONS", "0"),
        ("CARTCAST_CRISIS_FACTOR", "nan"),
        ("CARTCAST_CRISIS_FACTOR", "1"),
        ("CARTCAST_CRISIS_FACTOR", "0.5"),
        ("CARTCAST_CRISIS_RISE_PCT", "101"),
    ],
)
def test_a_bad_scheduler_or_crisis_setting_is_named(name, value) -> None:
    from cartcast import settings
    from cartcast.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match=name):
        settings.load({"DATABASE_URL": "postgresql://x@127.0.0.1/db", name: value})


def test_the_scheduler_and_crisis_settings_load_with_their_defaults() -> None:
    from cartcast import settings

    loaded = settings.load(
        {
            "DATABASE_URL": "postgresql://x@127.0.0.1/db",
            "CARTCAST_SCHEDULER_JOB": JOB,
            "CARTCAST_SWEEP_SCHEDULER_JOB": SWEEP,
            "CARTCAST_SCHEDULER_ENDPOINT": "http://127.0.0.1:44100/",
        }
    )

    assert (loaded.scheduler_job, loaded.sweep_scheduler_job) == (JOB, SWEEP)
    assert loaded.scheduler_endpoint == "http://127.0.0.1:44100"
    assert (loaded.crisis_window_min, loaded.crisis_min_mentions) == (60, 20)
    assert (loaded.crisis_factor, loaded.crisis_rise_pct) == (2.0, 20)
