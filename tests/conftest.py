"""Shared fixtures: a real PostgreSQL, a pinned clock, the X sandbox, the Cloud
Scheduler stand-in, function apps.

The database is TEST_DATABASE_URL's server when set (CI points it at the machine's
PostgreSQL), otherwise the embedded server of infra/pg.py. Each test session gets
a fresh database with sql/ applied; each test starts from empty tables.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cartcast import runtime as runtime_module
from cartcast.clock import UTC, FileClock, FixedClock
from cartcast.settings import Settings
from infra import pg

REPO = Path(__file__).resolve().parents[1]
OPERATOR_KEY = "operator-test-key"
# A Monday morning in UTC; tests that need another instant move the clock.
START = dt.datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
# Every table a test can write; brands cascades to everything that belongs to one.
# kpi_marks names brands without a foreign key (a mark may outlive its brand), so it
# is listed, or one test's marks would be rolled up by the next.
TRUNCATE_ALL = (
    "TRUNCATE brands, cost_ledger, handled_events, gemini_calls, gemini_pause, "
    "x_app_pauses, kpi_marks, console_signin_failures, console_sessions_ended, "
    "publishing_pause, publishing_resume CASCADE"
)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    server = os.environ.get("TEST_DATABASE_URL", "").strip()
    if not server:
        server = pg.embedded_server().get_uri()
    # Two test sessions on one server (two checkouts, say) each name their own.
    name = os.environ.get("CARTCAST_TEST_DB", "").strip() or "cartcast_test"
    url = pg.create_database(server, name)
    pg.migrate(url)
    yield url
    pg.drop_database(url)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


# Many tests move the pinned clock days ahead before publishing; the late bound
# (CARTCAST_MISSED_MAX_LATE_S, 6 h by default) would hold those posts. The tests
# about the bound set the value they test.
LONG_LATE_BOUND_S = 30 * 86400


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        operator_key=OPERATOR_KEY,
        missed_max_late_s=LONG_LATE_BOUND_S,
    )


@pytest.fixture
def runtime(settings: Settings, clock: FixedClock) -> Iterator[runtime_module.Runtime]:
    current = runtime_module.Runtime(settings, clock=clock)
    yield current
    with current.database.transaction() as tx:
        tx.execute(TRUNCATE_ALL)
    current.close()


@pytest.fixture
def clock_file(tmp_path: Path) -> FileClock:
    """A clock shared through a file, as the demo shares one between processes."""
    shared = FileClock(tmp_path / "clock")
    shared.set(START)
    return shared


@pytest.fixture
def function_env(
    monkeypatch: pytest.MonkeyPatch, database_url: str, clock_file: FileClock
) -> Iterator[dict[str, str]]:
    """Environment for functions built by functions-framework inside the test."""
    env = {
        "DATABASE_URL": database_url,
        "CARTCAST_OPERATOR_KEY": OPERATOR_KEY,
        "CARTCAST_CLOCK": str(clock_file.path),
        "CARTCAST_MISSED_MAX_LATE_S": str(LONG_LATE_BOUND_S),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("GEMINI_API_KEY", "X_API_BASE_URL", "CARTCAST_PUBSUB_PUSH"):
        monkeypatch.delenv(name, raising=False)
    runtime_module.reset()
    yield env
    current = runtime_module.current()
    with current.database.transaction() as tx:
        tx.execute(TRUNCATE_ALL)
    runtime_module.reset()


@pytest.fixture
def client(function_env):
    """A test client of the api function's real app; a module may define its own."""
    return make_app("api", "http").test_client()


@pytest.fixture
def brand_key(client) -> str:
    """The API key of a new brand made through the api function."""
    from tests.helpers import brand_body, post_json

    response = post_json(client, "/v1/brands", brand_body(), OPERATOR_KEY)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["api_key"]


@pytest.fixture
def x_sandbox(clock: FixedClock):
    """The X sandbox on the test's clock, with the accounts ALPHA and BETA."""
    from infra.x_sandbox import XSandbox
    from tests.helpers import ALPHA, BETA

    with XSandbox(clock=clock) as running:
        running.register_account(**ALPHA, token="token-alpha")
        running.register_account(**BETA, token="token-beta")
        yield running


@pytest.fixture
def x_runtime(runtime: runtime_module.Runtime, x_sandbox) -> runtime_module.Runtime:
    """The test runtime, with tweepy pointed at the sandbox."""
    runtime.settings = dataclasses.replace(
        runtime.settings, x_api_base_url=x_sandbox.base_url
    )
    return runtime


# The deployment's two Cloud Scheduler jobs, as the stand-in knows them.
SCHEDULER_JOB = (
    "projects/shop-prod/locations/europe-west1/jobs/cartcast-publish_due_posts"
)
SWEEP_SCHEDULER_JOB = (
    "projects/shop-prod/locations/europe-west1/jobs/cartcast-sweep_missed_posts"
)


@pytest.fixture
def scheduler():
    """The Cloud Scheduler stand-in, holding the publish job and the sweep's.

    It listens on a port the system picks (port 0), so no other process on a
    shared machine can hold it; scheduler_env aims the client at `endpoint`,
    which names that port once the stand-in has started.
    """
    from infra.scheduler_standin import SchedulerStandIn

    with SchedulerStandIn() as running:
        running.add_job(SCHEDULER_JOB)
        running.add_job(SWEEP_SCHEDULER_JOB)
        yield running


@pytest.fixture
def scheduler_env(function_env, monkeypatch: pytest.MonkeyPatch, scheduler):
    """function_env, with the api's Scheduler client aimed at the stand-in.

    GOOGLE_APPLICATION_CREDENTIALS names a file that does not exist, so a client
    that went looking for credentials would fail the test.
    """
    monkeypatch.setenv("CARTCAST_SCHEDULER_JOB", SCHEDULER_JOB)
    monkeypatch.setenv("CARTCAST_SWEEP_SCHEDULER_JOB", SWEEP_SCHEDULER_JOB)
    monkeypatch.setenv("CARTCAST_SCHEDULER_ENDPOINT", scheduler.endpoint)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/key.json")
    runtime_module.reset()
    return function_env


def make_app(target: str, signature_type: str):
    """Build functions-framework's real app for one function of functions/main.py."""
    from functions_framework import create_app

    return create_app(target, str(REPO / "functions" / "main.py"), signature_type)
