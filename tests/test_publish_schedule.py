"""The operator pauses the publish schedule through google-cloud-scheduler.

The real client, on its REST transport with anonymous credentials, talks to the
Cloud Scheduler stand-in on loopback, which records the `:pause` and `:resume`
calls. GOOGLE_APPLICATION_CREDENTIALS names a file that does not exist, so a
client that went looking for credentials would fail the test.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cartcast import runtime as runtime_module
from tests.conftest import (
    OPERATOR_KEY,
    SCHEDULER_JOB,
    START,
    SWEEP_SCHEDULER_JOB,
    make_app,
)
from tests.helpers import brand_body, dead_loopback_port, post_json


@pytest.fixture
def client(scheduler_env):
    return make_app("api", "http").test_client()


def test_the_operator_pauses_and_resumes_the_publish_and_sweep_jobs(
    client, scheduler
) -> None:
    paused = post_json(client, "/v1/publishing/pause", None, OPERATOR_KEY)
    while_paused = (
        scheduler.is_paused(SCHEDULER_JOB),
        scheduler.is_paused(SWEEP_SCHEDULER_JOB),
    )
    resumed = post_json(client, "/v1/publishing/resume", None, OPERATOR_KEY)

    assert paused.status_code == 200
    assert paused.get_json() == {
        "paused": True,
        "paused_at": START.isoformat(),
        "paused_by": "operator",
        "job": SCHEDULER_JOB,
        "state": "paused",
        "sweep": {"job": SWEEP_SCHEDULER_JOB, "state": "paused"},
    }
    assert while_paused == (True, True)
    assert resumed.get_json() == {
        "paused": False,
        "paused_at": None,
        "paused_by": None,
        "job": SCHEDULER_JOB,
        "state": "enabled",
        "sweep": {"job": SWEEP_SCHEDULER_JOB, "state": "enabled"},
    }
    # The publish job stops first and starts last: the sweep never runs alone.
    assert scheduler.calls == [
        ("POST", f"/v1/{SCHEDULER_JOB}:pause"),
        ("POST", f"/v1/{SWEEP_SCHEDULER_JOB}:pause"),
        ("POST", f"/v1/{SWEEP_SCHEDULER_JOB}:resume"),
        ("POST", f"/v1/{SCHEDULER_JOB}:resume"),
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
    monkeypatch.setenv("CARTCAST_SWEEP_SCHEDULER_JOB", SWEEP_SCHEDULER_JOB + "-gone")
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
    monkeypatch.setenv("CARTCAST_SCHEDULER_JOB", SCHEDULER_JOB + "-gone")
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
            "CARTCAST_SCHEDULER_JOB": SCHEDULER_JOB,
            "CARTCAST_SWEEP_SCHEDULER_JOB": SWEEP_SCHEDULER_JOB,
            "CARTCAST_SCHEDULER_ENDPOINT": "http://127.0.0.1:44100/",
        }
    )

    assert (loaded.scheduler_job, loaded.sweep_scheduler_job) == (
        SCHEDULER_JOB,
        SWEEP_SCHEDULER_JOB,
    )
    assert loaded.scheduler_endpoint == "http://127.0.0.1:44100"
    assert (loaded.crisis_window_min, loaded.crisis_min_mentions) == (60, 20)
    assert (loaded.crisis_factor, loaded.crisis_rise_pct) == (2.0, 20)


# --- Google's credentials, on the way to Google's own endpoint --------------------
#
# Without CARTCAST_SCHEDULER_ENDPOINT the client is Google's, with Application
# Default Credentials. These tests make those credentials fail before any call:
# no file at all, or a workload identity federation file (google-auth's
# external_account, which honours its `token_url`, where an authorized-user file
# always refreshes at Google) whose subject token is missing, or whose token
# exchange is a loopback stub that refuses or a loopback port nobody answers. The
# audit hook below refuses any name lookup or connection to a host but loopback
# while a test watches, so a credential that did work would still reach nothing.

LOOPBACK_HOSTS = {"127.0.0.1", "::1", "localhost"}
_watchers: list[list[str]] = []


def _refuse_other_hosts(event: str, args: tuple) -> None:
    if not _watchers or event not in ("socket.getaddrinfo", "socket.connect"):
        return
    if event == "socket.connect" and args[0].family == socket.AF_UNIX:
        return  # a path on this machine: PostgreSQL's socket, as CI reaches it
    host = args[0] if event == "socket.getaddrinfo" else args[1]
    if isinstance(host, tuple):
        host = host[0]
    if isinstance(host, bytes):
        host = host.decode()
    if isinstance(host, str) and host not in LOOPBACK_HOSTS:
        for seen in _watchers:
            seen.append(f"{event} {host}")
        raise OSError(f"this test reaches loopback only, not {host}")


sys.addaudithook(_refuse_other_hosts)


@contextlib.contextmanager
def loopback_only() -> Iterator[list[str]]:
    """Refuse, and list, every lookup or connection to a host but loopback."""
    seen: list[str] = []
    _watchers.append(seen)
    try:
        yield seen
    finally:
        _watchers.remove(seen)


class _RefusingTokenExchange(BaseHTTPRequestHandler):
    """Google's Security Token Service refusing the subject token (RFC 8693)."""

    asked: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 - the http.server hook's name
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.asked.append(self.path)
        body = json.dumps(
            {"error": "invalid_grant", "error_description": "The token is revoked."}
        ).encode()
        self.send_response(400)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        """Quiet."""


@pytest.fixture
def refusing_token_exchange() -> Iterator[str]:
    _RefusingTokenExchange.asked = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RefusingTokenExchange)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/token"
    finally:
        server.shutdown()
        server.server_close()
        serving.join()


def google_credentials(
    monkeypatch, tmp_path, *, token_url: str | None, subject_token: bool = True
) -> None:
    """Aim the client at Google's endpoint with a federation file exchanging its
    subject token at `token_url`, or with no credentials at all (None: the
    client fixture's GOOGLE_APPLICATION_CREDENTIALS names no file)."""
    monkeypatch.delenv("CARTCAST_SCHEDULER_ENDPOINT")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "shop-prod")
    if token_url is not None:
        subject = tmp_path / "subject-token"
        if subject_token:
            subject.write_text("a-subject-token")
        federation = {
            "type": "external_account",
            "audience": "//iam.googleapis.com/projects/1/locations/global/"
            "workloadIdentityPools/shop/providers/ci",
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "token_url": token_url,
            "credential_source": {"file": str(subject)},
        }
        path = tmp_path / "adc.json"
        path.write_text(json.dumps(federation))
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    runtime_module.reset()


def test_no_google_credentials_is_a_409_saying_publishing_is_paused(
    client, scheduler, monkeypatch, tmp_path
) -> None:
    google_credentials(monkeypatch, tmp_path, token_url=None)

    with loopback_only() as elsewhere:
        response = post_json(client, "/v1/publishing/pause", None, OPERATOR_KEY)
        state = client.get(
            "/v1/publishing/pause", headers={"Authorization": f"Bearer {OPERATOR_KEY}"}
        ).get_json()

    assert response.status_code == 409
    message = response.get_json()["error"]["message"]
    assert message.startswith("publishing is paused")
    assert "Cloud Scheduler's jobs could not be reached" in message
    assert "/nonexistent/key.json" in message
    assert state["paused"] is True
    assert elsewhere == []


@pytest.mark.parametrize(
    ("subject_token", "reason"),
    [(False, "subject-token"), (True, "invalid_grant")],
    ids=["subject token missing", "token exchange refused"],
)
def test_credentials_that_do_not_refresh_are_a_409_saying_what_holds(
    client,
    scheduler,
    monkeypatch,
    tmp_path,
    refusing_token_exchange,
    subject_token,
    reason,
) -> None:
    google_credentials(
        monkeypatch,
        tmp_path,
        token_url=refusing_token_exchange,
        subject_token=subject_token,
    )

    with loopback_only() as elsewhere:
        paused = post_json(client, "/v1/publishing/pause", None, OPERATOR_KEY)
        resumed = post_json(client, "/v1/publishing/resume", None, OPERATOR_KEY)

    assert (paused.status_code, resumed.status_code) == (409, 409)
    paused_message = paused.get_json()["error"]["message"]
    resumed_message = resumed.get_json()["error"]["message"]
    assert paused_message.startswith("publishing is paused")
    assert resumed_message.startswith("publishing is still paused")
    assert "Cloud Scheduler's jobs could not be reached" in paused_message
    assert reason in paused_message
    assert len(_RefusingTokenExchange.asked) == (2 if subject_token else 0)
    assert elsewhere == []


def test_a_token_exchange_that_does_not_answer_is_a_503_saying_what_holds(
    client, scheduler, monkeypatch, tmp_path
) -> None:
    nobody = f"http://127.0.0.1:{dead_loopback_port()}/v1/token"
    google_credentials(monkeypatch, tmp_path, token_url=nobody)

    with loopback_only() as elsewhere:
        paused = post_json(client, "/v1/publishing/pause", None, OPERATOR_KEY)
        resumed = post_json(client, "/v1/publishing/resume", None, OPERATOR_KEY)

    assert (paused.status_code, resumed.status_code) == (503, 503)
    assert paused.get_json()["error"]["message"].startswith("publishing is paused")
    resumed_message = resumed.get_json()["error"]["message"]
    assert resumed_message.startswith("publishing is still paused")
    assert "Cloud Scheduler's jobs could not be reached" in resumed_message
    assert elsewhere == []
