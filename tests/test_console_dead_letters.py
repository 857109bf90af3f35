"""Pub/Sub's dead letters on the console's status page, read from Google's emulator.

The emulator is the one tests/test_pubsub.py starts (its fixtures, reused). Its
dead-lettering itself is tested there; here the dead-letter topic gets messages
published as Pub/Sub forwards them (with the source subscription and delivery
count attributes), and the page must show them to an admin without consuming any:
the same messages are still there to pull afterwards.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest

from cartcast import dead_letters
from cartcast import runtime as runtime_module
from cartcast.settings import Settings
from tests.conftest import START
from tests.test_console import add_key, make_brand, sign_in, text_of
from tests.test_console import client as client  # noqa: F401 (fixture)
from tests.test_pubsub import (  # noqa: F401 (fixtures)
    DEAD_LETTER_COUNT,
    DEAD_LETTER_SOURCE,
    DELIVERY_TIMEOUT_S,
    PROJECT,
    emulator_host,
    google_pubsub,
)

SUBSCRIPTION = "cartcast-dead-letter"


@pytest.fixture
def dead_letter_subscription(google_pubsub, request) -> str:  # noqa: F811
    """A dead-letter topic and its subscription, named for this test."""
    publisher, subscriber = google_pubsub
    name = f"{SUBSCRIPTION}-{request.node.name[-30:].strip('_')}"
    topic = publisher.topic_path(PROJECT, name)
    publisher.create_topic(request={"name": topic})
    subscriber.create_subscription(
        request={
            "name": subscriber.subscription_path(PROJECT, name),
            "topic": topic,
            "ack_deadline_seconds": 60,
        }
    )
    return name


@pytest.fixture
def status_client(client, monkeypatch, dead_letter_subscription):  # noqa: F811
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", PROJECT)
    monkeypatch.setenv("CARTCAST_DEAD_LETTER_SUBSCRIPTION", dead_letter_subscription)
    runtime_module.reset()
    return client


def dead_letter(google_pubsub, name: str, source: str, number: int) -> None:  # noqa: F811
    """Publish what Pub/Sub forwards after a push subscription gave up."""
    publisher, _ = google_pubsub
    publisher.publish(
        publisher.topic_path(PROJECT, name),
        f'{{"mention_ids": ["{number}"]}}'.encode(),
        **{
            DEAD_LETTER_SOURCE: f"projects/{PROJECT}/subscriptions/{source}",
            DEAD_LETTER_COUNT: "5",
        },
    ).result(timeout=DELIVERY_TIMEOUT_S)


def pull_and_ack_all(google_pubsub, name: str) -> int:  # noqa: F811
    """Consume the subscription for real; return how many messages it held."""
    _, subscriber = google_pubsub
    path = subscriber.subscription_path(PROJECT, name)
    seen: set[str] = set()
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S
    while time.monotonic() < deadline:
        pulled = subscriber.pull(
            request={"subscription": path, "max_messages": 100}, timeout=5
        )
        if not pulled.received_messages and seen:
            break
        seen |= {m.message.message_id for m in pulled.received_messages}
        if pulled.received_messages:
            subscriber.acknowledge(
                request={
                    "subscription": path,
                    "ack_ids": [m.ack_id for m in pulled.received_messages],
                }
            )
    return len(seen)


def test_an_admin_sees_the_dead_letters_count_and_newest_and_none_is_consumed(
    status_client,
    google_pubsub,  # noqa: F811
    dead_letter_subscription,
    clock_file,
) -> None:
    # The emulator stamps messages with the wall clock; the deployment's clock is
    # set two hours and a half past it, so each message is 2 h old on the page.
    clock_file.set(dt.datetime.now(dt.UTC) + dt.timedelta(hours=2, minutes=30))
    brand = make_brand(status_client)
    sign_in(status_client, brand["key"])
    for number in range(7):
        source = "cartcast-mentions-push" if number % 2 else "cartcast-ticks-push"
        dead_letter(google_pubsub, dead_letter_subscription, source, number)

    first = text_of(status_client.get("/console/status"))
    second = text_of(status_client.get("/console/status"))

    for page in (first, second):
        assert "Dead-lettered Pub/Sub messages" in page
        assert f"7 message(s) wait in {dead_letter_subscription}" in page
        # The newest five, each with the subscription it came from and its age.
        mentions = page.count("<td>cartcast-mentions-push</td>")
        ticks = page.count("<td>cartcast-ticks-push</td>")
        assert mentions >= 1 and ticks >= 1
        assert mentions + ticks == dead_letters.SHOWN_MAX
        assert page.count("<td>2 h</td><td>5</td>") == dead_letters.SHOWN_MAX
        assert "Dead-lettered webhook messages" in page
    assert pull_and_ack_all(google_pubsub, dead_letter_subscription) == 7


def test_an_empty_dead_letter_subscription_says_none_wait(
    status_client, dead_letter_subscription
) -> None:
    brand = make_brand(status_client)
    sign_in(status_client, brand["key"])

    page = text_of(status_client.get("/console/status"))

    # The emulator answers an empty pull: nothing waits.
    assert f"0 message(s) wait in {dead_letter_subscription}" in page


def test_a_pubsub_that_never_answers_is_not_shown_as_an_empty_subscription() -> None:
    from google.api_core import exceptions

    subscriber = FakeSubscriber([exceptions.DeadlineExceeded("no answer")])

    found = dead_letters.peek(subscriber, "projects/p/subscriptions/dl", now=START)

    # Nothing answered: an empty subscription and a silent Pub/Sub look the same.
    assert (found.count, found.answered) == (0, False)


def test_an_admin_is_told_when_no_pull_was_answered(status_client, monkeypatch) -> None:
    import socket

    # A loopback server that takes the connection and never answers.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{silent.getsockname()[1]}")
    runtime_module.reset()
    brand = make_brand(status_client)
    sign_in(status_client, brand["key"])

    try:
        page = text_of(status_client.get("/console/status"))
    finally:
        silent.close()

    assert "within 5 s: none waits there, or Pub/Sub is slow to answer" in page
    assert "message(s) wait" not in page


def test_other_roles_see_no_pubsub_dead_letters(
    status_client,
    google_pubsub,  # noqa: F811
    dead_letter_subscription,
) -> None:
    brand = make_brand(status_client)
    dead_letter(google_pubsub, dead_letter_subscription, "cartcast-ticks-push", 1)
    sign_in(status_client, add_key(brand["id"], "approver"))

    page = text_of(status_client.get("/console/status"))

    assert "Dead-lettered Pub/Sub messages" not in page
    assert "Dead-lettered webhook messages" in page
    assert pull_and_ack_all(google_pubsub, dead_letter_subscription) == 1


def test_without_a_subscription_named_no_client_is_built(client, monkeypatch) -> None:  # noqa: F811
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    brand = make_brand(client)
    sign_in(client, brand["key"])

    page = text_of(client.get("/console/status"))

    assert "Not read: this deployment names no dead-letter subscription" in page
    assert runtime_module.current().dead_letter_subscriber() is None


@pytest.mark.parametrize(
    ("fields", "emulator", "built"),
    [
        ({}, "127.0.0.1:8085", False),
        ({"dead_letter_subscription": "dl"}, "127.0.0.1:8085", False),
        ({"dead_letter_subscription": "dl", "google_cloud_project": "p"}, "", False),
        ({"dead_letter_subscription": "dl", "google_cloud_project": "p"}, "h", True),
        (
            {
                "dead_letter_subscription": "dl",
                "google_cloud_project": "p",
                "environment": "cloud",
            },
            "",
            True,
        ),
    ],
)
def test_a_client_is_built_only_for_a_named_subscription_in_the_cloud_or_emulator(
    monkeypatch, fields, emulator, built
) -> None:
    # Locally, without the emulator's address, a Google client would look for
    # credentials on the network: none is built.
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", emulator)

    assert dead_letters.configured(Settings(**fields)) is built


def test_the_subscription_setting_takes_an_id_or_a_path() -> None:
    from cartcast import settings
    from cartcast.errors import ConfigurationError

    base = {"DATABASE_URL": "postgresql://x@127.0.0.1/y", "GOOGLE_CLOUD_PROJECT": "p"}
    short = settings.load({**base, "CARTCAST_DEAD_LETTER_SUBSCRIPTION": "cc-dead"})
    path = "projects/shop-123/subscriptions/cc-dead"
    full = settings.load({**base, "CARTCAST_DEAD_LETTER_SUBSCRIPTION": path})

    assert dead_letters.subscription_path(short) == "projects/p/subscriptions/cc-dead"
    assert dead_letters.subscription_path(full) == path
    with pytest.raises(ConfigurationError, match="Pub/Sub subscription id"):
        settings.load({**base, "CARTCAST_DEAD_LETTER_SUBSCRIPTION": "a b"})
    with pytest.raises(ConfigurationError, match="GOOGLE_CLOUD_PROJECT is required"):
        settings.load(
            {
                "DATABASE_URL": base["DATABASE_URL"],
                "CARTCAST_DEAD_LETTER_SUBSCRIPTION": "cc-dead",
            }
        )


class FakeSubscriber:
    """Answers pulls from a script, and keeps what is handed back: the seam
    peek() takes, for what the emulator will not do on cue."""

    def __init__(self, answers: list) -> None:
        self.answers = answers
        self.handed_back: list[str] = []
        self.retries: list = []

    def pull(self, request, timeout, retry=None):
        self.retries.append(retry)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def modify_ack_deadline(self, request, timeout, retry=None):
        self.retries.append(retry)
        assert request["ack_deadline_seconds"] == 0
        self.handed_back += request["ack_ids"]


def pulled(*ids: str):
    from google.cloud import pubsub_v1

    return pubsub_v1.types.PullResponse(
        received_messages=[
            {
                "ack_id": f"ack-{message_id}",
                "message": {
                    "message_id": message_id,
                    "publish_time": {"seconds": 1_772_438_400},
                    "attributes": {DEAD_LETTER_SOURCE: "projects/p/subscriptions/s"},
                },
            }
            for message_id in ids
        ]
    )


def test_a_pull_that_runs_out_of_time_ends_the_count_and_hands_all_back() -> None:
    from google.api_core import exceptions

    subscriber = FakeSubscriber([pulled("1", "2"), exceptions.DeadlineExceeded("t")])

    found = dead_letters.peek(subscriber, "projects/p/subscriptions/dl", now=START)

    assert (found.count, found.more, found.answered) == (2, False, True)
    assert [letter.source_subscription for letter in found.newest] == ["s", "s"]
    assert subscriber.handed_back == ["ack-1", "ack-2"]


def test_pubsub_refusing_a_pull_is_transient_and_what_was_pulled_goes_back() -> None:
    from google.api_core import exceptions

    from cartcast.errors import TransientError

    subscriber = FakeSubscriber([pulled("1"), exceptions.PermissionDenied("no")])

    with pytest.raises(TransientError, match="no"):
        dead_letters.peek(subscriber, "projects/p/subscriptions/dl", now=START)
    assert subscriber.handed_back == ["ack-1"]


def test_five_full_pulls_count_as_at_least() -> None:
    answers = [pulled(*(f"{n}-{i}" for i in range(3))) for n in range(5)]
    subscriber = FakeSubscriber(answers)

    found = dead_letters.peek(subscriber, "projects/p/subscriptions/dl", now=START)

    assert (found.count, found.more) == (15, True)
    assert len(subscriber.handed_back) == 15


def test_no_call_to_pubsub_retries_past_the_pulls_time() -> None:
    # The client's own retry of a pull goes on for 60 s: with no Pub/Sub listening,
    # the status page took a minute to say so.
    subscriber = FakeSubscriber([pulled("1"), pulled()])

    dead_letters.peek(subscriber, "projects/p/subscriptions/dl", now=START)

    assert len(subscriber.retries) == 3
    for retry in subscriber.retries:
        assert retry is not None and retry.timeout <= dead_letters.PULL_TIMEOUT_S


def test_a_subscription_that_does_not_exist_is_named_as_a_setting_to_fix(
    client,  # noqa: F811
    google_pubsub,  # noqa: F811
    monkeypatch,
) -> None:
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", PROJECT)
    monkeypatch.setenv("CARTCAST_DEAD_LETTER_SUBSCRIPTION", "no-such-subscription")
    runtime_module.reset()
    brand = make_brand(client)
    sign_in(client, brand["key"])

    answer = client.get("/console/status")

    page = text_of(answer)
    assert answer.status_code == 200
    assert "no-such-subscription does not exist" in page
    assert "CARTCAST_DEAD_LETTER_SUBSCRIPTION" in page
    assert "did not answer" not in page and "reload later" not in page
