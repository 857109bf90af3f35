"""Publishing fan-out messages with google-cloud-pubsub, against Google's emulator.

The emulator (installed with the Google Cloud CLI) runs on loopback; with
PUBSUB_EMULATOR_HOST set, the client uses anonymous credentials and probes nothing.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from cartcast.pubsub import GooglePublisher
from infra.local_cloud import free_port

EMULATOR = Path(
    "/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator"
)
PROJECT = "cartcast-test"
START_TIMEOUT_S = 60


@pytest.fixture(scope="module")
def emulator_host():
    if not EMULATOR.exists() or shutil.which("java") is None:
        pytest.skip("Google's Pub/Sub emulator (and Java) is not installed here")
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
