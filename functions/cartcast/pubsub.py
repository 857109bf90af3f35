"""Publishing to Pub/Sub: the real client in the cloud, direct pushes locally.

Both publishers block until every message is accepted (a Pub/Sub publish future
left unawaited can be lost when the function instance is frozen), and both raise
TransientError when they cannot, so the calling event function is retried.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from typing import Any, Protocol

from cartcast import events
from cartcast.clock import Clock
from cartcast.errors import ConfigurationError, TransientError

PUBLISH_TIMEOUT_S = 30


class Publisher(Protocol):
    def publish(self, topic: str, payloads: list[dict[str, Any]]) -> list[str]:
        """Publish each payload as one JSON message; return the message ids."""


class PushPublisher:
    """Deliver each message straight to its subscriber as a Pub/Sub CloudEvent.

    The local stand-in for a push subscription: `endpoints` maps a topic to the URL
    of the function subscribed to it.
    """

    def __init__(
        self, endpoints: Mapping[str, str], clock: Clock, project: str = "local"
    ) -> None:
        self._endpoints = dict(endpoints)
        self._clock = clock
        self._project = project

    def publish(self, topic: str, payloads: list[dict[str, Any]]) -> list[str]:
        url = self._endpoints.get(topic)
        if url is None:
            raise ConfigurationError(f"no push endpoint for topic {topic!r}")
        ids = []
        for payload in payloads:
            message_id = uuid.uuid4().hex
            headers, body = events.envelope(
                topic=topic,
                project=self._project,
                payload=payload,
                message_id=message_id,
                time=self._clock.now(),
            )
            _post(url, headers, body)
            ids.append(message_id)
        return ids


def _post(url: str, headers: dict[str, str], body: dict[str, Any]) -> None:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=PUBLISH_TIMEOUT_S) as response:
            response.read()
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        raise TransientError(f"push to {url} failed: {error}") from error


class GooglePublisher:
    """google-cloud-pubsub's PublisherClient, created on first use."""

    def __init__(self, project: str) -> None:
        self._project = project
        self._client: Any = None
        # One client for every thread: a second one built at the same time would
        # be dropped with messages still in its batch.
        self._client_lock = threading.Lock()

    def publish(self, topic: str, payloads: list[dict[str, Any]]) -> list[str]:
        from google.api_core import exceptions as google_exceptions
        from google.cloud import pubsub_v1

        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = pubsub_v1.PublisherClient()
        client = self._client
        path = client.topic_path(self._project, topic)
        futures = [
            client.publish(path, json.dumps(payload).encode()) for payload in payloads
        ]
        # Every future is awaited, failed ones too: an instance may be frozen as
        # soon as the function returns, and a message still in the client's batch
        # would go out, or not, whenever it thaws.
        ids, failures = [], []
        for future in futures:
            try:
                ids.append(future.result(timeout=PUBLISH_TIMEOUT_S))
            except (google_exceptions.GoogleAPIError, TimeoutError) as error:
                failures.append(error)
        if failures:
            raise TransientError(
                f"publish to {topic} failed for {len(failures)} of {len(futures)} "
                f"messages: {failures[0]}"
            ) from failures[0]
        return ids


def publisher_from_settings(settings: Any, clock: Clock) -> Publisher:
    """Build the publisher CARTCAST_PUBSUB names; nothing connects until it is used."""
    if settings.pubsub_mode == "google":
        return GooglePublisher(settings.google_cloud_project)
    return PushPublisher(settings.pubsub_push_endpoints, clock)
