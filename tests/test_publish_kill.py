"""A publishing process killed after X created the post and before it recorded the
answer: the next runs settle it from the timeline, and X holds each post once.

The publisher is a real functions-framework process on loopback. The test makes the
window deterministic instead of racing it: the sandbox holds X's answer until
released, and the test holds a row lock on the post, the row the publisher writes
to record the answer; it kills the process once PostgreSQL shows it waiting there.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import signal
import threading
import time
from collections.abc import Callable

import pytest

from cartcast import reconciling
from cartcast import runtime as runtime_module
from infra.local_cloud import FunctionProcess, _base_env, send_tick
from infra.x_sandbox import XSandbox
from tests.conftest import START
from tests.helpers import ALPHA, make_brand, tweets_sent

# Each wait polls until the state it needs holds; this only bounds a broken run.
WAIT_LIMIT_S = 60
SELECT_SENDING = """
SELECT a.post_id FROM publish_attempts a JOIN posts p ON p.id = a.post_id
WHERE p.brand_id = :brand_id AND a.sent_at IS NOT NULL AND a.finished_at IS NULL
"""
LOCK_POST = "SELECT id FROM posts WHERE id = :post_id FOR UPDATE"
# Backends waiting for a lock this transaction holds.
BLOCKED_BY_ME = """
SELECT count(*) FROM pg_stat_activity
WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid))
"""
SELECT_POSTS = """
SELECT state, x_post_id FROM posts WHERE brand_id = :brand_id ORDER BY scheduled_at
"""


def wait_until(condition: Callable[[], object], what: str) -> object:
    deadline = time.monotonic() + WAIT_LIMIT_S
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"gave up waiting for {what}")


@pytest.fixture
def sandbox(clock_file):
    with XSandbox(clock=clock_file) as running:
        running.register_account(**ALPHA, token="token-alpha")
        yield running


@pytest.fixture
def local(settings, clock_file, sandbox, function_env):
    """An in-process runtime on the shared file clock, for the runs after the kill."""
    current = runtime_module.Runtime(
        dataclasses.replace(
            settings, x_api_base_url=sandbox.base_url, reconcile_delay_s=900
        ),
        clock=clock_file,
    )
    yield current
    current.close()


@pytest.fixture
def publisher(function_env, sandbox, tmp_path):
    env = {
        **_base_env(),
        **function_env,
        "X_API_BASE_URL": sandbox.base_url,
        "X_TIMEOUT_S": "60",
    }
    process = FunctionProcess("publish_due_posts", env, tmp_path).start()
    process.wait_ready()
    yield process
    process.stop()


def posts_of(runtime, brand_id: str) -> list[dict]:
    with runtime.database.transaction() as tx:
        return tx.rows(SELECT_POSTS, brand_id=brand_id)


def kill_between_answer_and_commit(local, sandbox, publisher, brand_id: str) -> None:
    """Tick the publisher, hold the post's row while X answers, then SIGKILL it."""
    sandbox.add_fault(method="POST", path_prefix="/2/tweets", hold=True)
    now = local.clock.now()
    tick = threading.Thread(
        target=lambda: _tick_ignoring_the_kill(publisher.url, now), daemon=True
    )
    tick.start()

    wait_until(lambda: sandbox.snapshot()["posts"], "X to create the post")
    with local.database.transaction() as tx:
        (row,) = tx.rows(SELECT_SENDING, brand_id=brand_id)  # its intent is written
        tx.execute(LOCK_POST, post_id=row["post_id"])
        sandbox.release_answers()
        wait_until(
            lambda: tx.scalar(BLOCKED_BY_ME), "the publisher to wait for the row"
        )
        publisher.kill()
    tick.join(WAIT_LIMIT_S)


def _tick_ignoring_the_kill(url: str, now: dt.datetime) -> None:
    try:
        send_tick(url, topic="cartcast-publish_due_posts", time=now)
    except OSError:
        pass  # the process died under the request: that is the point


@pytest.mark.parametrize("index_lag_s", [0, 600])
def test_a_publisher_killed_before_recording_x_answer_leaves_one_post_each(
    local, clock_file, sandbox, publisher, index_lag_s
) -> None:
    brand_id = make_brand(local, "alpha", ALPHA, products=2)
    sandbox.set_index_lag(index_lag_s)
    clock_file.set(START + dt.timedelta(days=7))

    kill_between_answer_and_commit(local, sandbox, publisher, brand_id)
    after_kill = [post["state"] for post in posts_of(local, brand_id)]
    clock_file.set(
        clock_file.now() + dt.timedelta(seconds=local.settings.publish_lease_s + 1)
    )
    expired = reconciling.reconcile_then_publish(local, as_of=clock_file.now())
    clock_file.set(clock_file.now() + dt.timedelta(seconds=10))
    soon = reconciling.reconcile_then_publish(local, as_of=clock_file.now())
    clock_file.set(clock_file.now() + dt.timedelta(seconds=index_lag_s))
    later = reconciling.reconcile_then_publish(local, as_of=clock_file.now())

    on_x = {post["id"] for post in sandbox.snapshot()["posts"]}
    final = posts_of(local, brand_id)
    assert publisher.process.returncode == -signal.SIGKILL
    assert after_kill == ["publishing", "publishing"]
    assert expired["unconfirmed"] == 1 and expired["published"] == 1
    if index_lag_s:
        assert soon["waiting"] == 1  # accepted, not visible yet: not sent again
        assert later["adopted"] == 1
    else:
        assert soon["adopted"] == 1
    assert [post["state"] for post in final] == ["published", "published"]
    assert {post["x_post_id"] for post in final} == on_x
    assert len(on_x) == tweets_sent(sandbox) == 2
