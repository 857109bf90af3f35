"""Publishing fan-out messages with google-cloud-pubsub, against Google's emulator.

The emulator (installed with the Google Cloud CLI) runs on loopback; with
PUBSUB_EMULATOR_HOST set, the client uses anonymous credentials and probes nothing.
Outside CI a machine without the emulator skips these tests with a message; under
CI=true that is a failure, so CI never passes without them.

The end-to-end tests run the chain as deployed: poll_mentions publishes through
the real client, the emulator pushes each message to score_sentiment served by
functions-framework on loopback (a push subscription, no CloudEvent headers, which
functions-framework converts), and a message pushed again changes nothing.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cartcast import mentions
from cartcast.pubsub import GooglePublisher
from infra.local_cloud import free_port
from infra.x_sandbox import XSandbox
from tests.conftest import make_app
from tests.test_mentions import ALPHA, FAN, add_brand

REPO = Path(__file__).resolve().parents[1]
EMULATOR = Path(
    os.environ.get("PUBSUB_EMULATOR_BIN")
    or "/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator"
)
PROJECT = "cartcast-test"
TOPIC = "cartcast-mentions"
START_TIMEOUT_S = 60
# How long a test waits for the emulator to push what was published.
DELIVERY_TIMEOUT_S = 30
SCORED = "SELECT count(*) FROM mentions WHERE scored_at IS NOT NULL"


def unavailable(reason: str) -> None:
    """Skip, or fail under CI=true: CI must never pass without the emulator."""
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"{reason}; CI=true requires it")
    pytest.skip(f"{reason}; install the Google Cloud CLI's pubsub-emulator and Java")


@pytest.fixture(scope="module")
def emulator_host():
    if not EMULATOR.exists():
        unavailable(f"Google's Pub/Sub emulator is not installed at {EMULATOR}")
    if shutil.which("java") is None:
        unavailable("Java, which Google's Pub/Sub emulator runs on, is not installed")
    port = free_port()
    process = subprocess.Popen(
        [str(EMULATOR), "--host=127.0.0.1", f"--port={port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.2)
    else:
        process.kill()
        pytest.fail("the Pub/Sub emulator did not start")
    yield f"127.0.0.1:{port}"
    process.terminate()
    process.wait(10)


def test_every_message_is_published_and_confirmed(emulator_host, monkeypatch) -> None:
    from google.cloud import pubsub_v1

    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", emulator_host)
    publisher_client = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    topic = publisher_client.topic_path(PROJECT, "cartcast-mentions")
    subscription = subscriber.subscription_path(PROJECT, "score")
    publisher_client.create_topic(request={"name": topic})
    subscriber.create_subscription(request={"name": subscription, "topic": topic})
    payloads = [{"brand_id": "b", "mention_ids": [str(n)]} for n in range(3)]

    ids = GooglePublisher(PROJECT).publish("cartcast-mentions", payloads)

    received: list[dict] = []
    deadline = time.monotonic() + 10
    while len(received) < len(payloads) and time.monotonic() < deadline:
        pulled = subscriber.pull(
            request={"subscription": subscription, "max_messages": 10}, timeout=5
        )
        received += [json.loads(m.message.data) for m in pulled.received_messages]
    assert len(ids) == 3 and all(ids)
    assert sorted(received, key=str) == sorted(payloads, key=str)


# poll_mentions -> Pub/Sub -> score_sentiment, through the emulator


class PushedFunction:
    """score_sentiment on functions-framework, served on loopback for the emulator's
    push subscription; it keeps every body pushed to it."""

    def __init__(self) -> None:
        from werkzeug.serving import make_server

        self.app = make_app("score_sentiment", "cloudevent")
        self.bodies: list[dict] = []
        self.server = make_server("127.0.0.1", 0, self._recording, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _recording(self, environ, start_response):
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        self.bodies.append(json.loads(body))
        environ["wsgi.input"] = io.BytesIO(body)
        return self.app(environ, start_response)

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(5)


@pytest.fixture
def google_pubsub(emulator_host, monkeypatch):
    """The emulator's address in the environment, as the client library reads it."""
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", emulator_host)
    from google.cloud import pubsub_v1

    publisher_client = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    yield publisher_client, subscriber
    subscriber.close()


@pytest.fixture
def topic(google_pubsub, request) -> str:
    """A topic of this test's own, so messages of other tests never reach it."""
    publisher_client, _ = google_pubsub
    name = f"{TOPIC}-{request.node.name[-40:].strip('_')}"
    publisher_client.create_topic(
        request={"name": publisher_client.topic_path(PROJECT, name)}
    )
    return name


@pytest.fixture
def x_sandbox_alpha(clock):
    with XSandbox(clock=clock) as running:
        running.register_account(**ALPHA, token="token-alpha")
        yield running


def google_runtime(runtime, sandbox, topic: str):
    runtime.settings = dataclasses.replace(
        runtime.settings,
        x_api_base_url=sandbox.base_url,
        pubsub_mode="google",
        google_cloud_project=PROJECT,
        mentions_topic=topic,
    )
    runtime._publisher = None
    return runtime


def subscribe(google_pubsub, topic: str, push_url: str | None = None) -> str:
    _, subscriber = google_pubsub
    path = subscriber.subscription_path(PROJECT, f"{topic}-sub")
    request = {"name": path, "topic": f"projects/{PROJECT}/topics/{topic}"}
    if push_url:
        request["push_config"] = {"push_endpoint": push_url}
    subscriber.create_subscription(request=request)
    return path


def pull_all(subscriber, subscription: str, expected: int) -> list[dict]:
    received: list[dict] = []
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S
    while len(received) < expected and time.monotonic() < deadline:
        pulled = subscriber.pull(
            request={"subscription": subscription, "max_messages": 100}, timeout=5
        )
        received += [json.loads(m.message.data) for m in pulled.received_messages]
        if pulled.received_messages:
            subscriber.acknowledge(
                request={
                    "subscription": subscription,
                    "ack_ids": [m.ack_id for m in pulled.received_messages],
                }
            )
    return received


def count(runtime, sql: str) -> int:
    with runtime.database.transaction() as tx:
        return tx.scalar(sql)


def wait_until(condition, what: str) -> None:
    """Wait for the emulator's asynchronous delivery, with a deadline."""
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_poll_mentions_publishes_every_new_id_in_batches_of_100(
    runtime, clock, x_sandbox_alpha, google_pubsub, topic
) -> None:
    _, subscriber = google_pubsub
    subscription = subscribe(google_pubsub, topic)
    google_runtime(runtime, x_sandbox_alpha, topic)
    brand_id = add_brand(runtime, "alpha", ALPHA, "token-alpha")
    for n in range(150):
        x_sandbox_alpha.add_mention(
            to_user_id=ALPHA["user_id"], text=f"@alpha hi {n}", author=FAN
        )

    outcome = mentions.poll_mentions(runtime, as_of=clock.now())

    messages = pull_all(subscriber, subscription, expected=2)
    with runtime.database.transaction() as tx:
        stored = {str(r["id"]) for r in tx.rows("SELECT id FROM mentions")}
    assert outcome["new"] == 150 and outcome["fan_out_failed"] == 0
    assert sorted(len(m["mention_ids"]) for m in messages) == [50, 100]
    assert {i for m in messages for i in m["mention_ids"]} == stored
    assert {m["brand_id"] for m in messages} == {brand_id}


def test_pushed_messages_are_scored_and_a_second_push_changes_nothing(
    runtime, clock, x_sandbox_alpha, google_pubsub, topic, function_env
) -> None:
    function = PushedFunction()
    try:
        subscribe(google_pubsub, topic, push_url=function.url)
        google_runtime(runtime, x_sandbox_alpha, topic)
        add_brand(runtime, "alpha", ALPHA, "token-alpha")
        for text in ("@alpha where is my order?", "@alpha love it!"):
            x_sandbox_alpha.add_mention(
                to_user_id=ALPHA["user_id"], text=text, author=FAN
            )

        mentions.poll_mentions(runtime, as_of=clock.now())
        wait_until(lambda: count(runtime, SCORED) == 2, "both mentions scored")
        with runtime.database.transaction() as tx:
            first = tx.rows("SELECT id, scored_at, sentiment FROM mentions ORDER BY id")

        pushed = function.bodies[0]
        again = function.app.test_client().post("/", json=pushed)
    finally:
        function.stop()

    assert "subscription" in pushed and "ce-id" not in pushed
    ids = json.loads(base64.b64decode(pushed["message"]["data"]))["mention_ids"]
    assert len(ids) == 2
    assert again.status_code == 200
    with runtime.database.transaction() as tx:
        assert tx.rows("SELECT id, scored_at, sentiment FROM mentions ORDER BY id") == (
            first
        )


def test_a_missing_emulator_skips_outside_ci_and_fails_under_ci(tmp_path) -> None:
    def run(ci: str) -> subprocess.CompletedProcess:
        env = {
            **os.environ,
            "CI": ci,
            "PUBSUB_EMULATOR_BIN": str(tmp_path / "no-emulator"),
        }
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "-rs",
                f"{__file__}::test_every_message_is_published_and_confirmed",
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    outside, under = run("false"), run("true")

    assert outside.returncode == 0, outside.stdout[-2000:]
    assert "1 skipped" in outside.stdout and "not installed" in outside.stdout
    assert under.returncode == 1, under.stdout[-2000:]
    assert "CI=true requires it" in under.stdout


def test_a_publish_the_emulator_refuses_leaves_the_mentions_stored_for_the_sweep(
    runtime, clock, x_sandbox_alpha, google_pubsub
) -> None:
    # No such topic: every publish future fails, and each is awaited.
    google_runtime(runtime, x_sandbox_alpha, "cartcast-no-such-topic")
    add_brand(runtime, "alpha", ALPHA, "token-alpha")
    x_sandbox_alpha.add_mention(
        to_user_id=ALPHA["user_id"], text="@alpha hi", author=FAN
    )

    outcome = mentions.poll_mentions(runtime, as_of=clock.now())

    assert outcome["new"] == 1 and outcome["fan_out_failed"] == 1
    assert count(runtime, "SELECT count(*) FROM mentions WHERE scored_at IS NULL") == 1
