"""Reading Pub/Sub's dead letters for the status page, without consuming them.

A message that a push subscription could not deliver after its attempts goes to the
dead-letter topic, whose one subscription keeps it a week (terraform/pubsub.tf).
Pub/Sub has no call that lists a subscription's messages, so this pulls them and
hands each back at once with an acknowledgement deadline of 0, which Pub/Sub takes
as a nack: the message is redelivered to the next pull, kept as before (Pub/Sub,
"Modify the acknowledgement deadline"; decision 0038). Nothing is acknowledged.

A client is built only when CARTCAST_DEAD_LETTER_SUBSCRIPTION names the
subscription, and outside the cloud only when PUBSUB_EMULATOR_HOST points the
client at an emulator: a Google client without either would look for credentials
on the network.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from typing import Any

from cartcast.errors import ConfigurationError, TransientError

# Attributes Pub/Sub sets on a dead-lettered message (Pub/Sub, "Dead-letter topics").
SOURCE_SUBSCRIPTION = "CloudPubSubDeadLetterSourceSubscription"
DELIVERY_ATTEMPTS = "CloudPubSubDeadLetterSourceDeliveryCount"
# A pull returns at most 1,000 messages; the page counts at most this many, in a
# few pulls, and says "at least" past it.
PULL_MESSAGES_MAX = 100
PULLS_MAX = 5
SHOWN_MAX = 5
PULL_TIMEOUT_S = 5.0


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    message_id: str
    source_subscription: str
    delivery_attempts: str
    published_at: dt.datetime
    age_s: int


@dataclasses.dataclass(frozen=True)
class DeadLetters:
    """What the status page shows: a count (a floor when `more` is true) and the
    newest few messages. `answered` is false when the first pull ran out of time:
    Pub/Sub holds a pull open while nothing is there, so an empty subscription and
    a Pub/Sub that does not answer look the same, and the page says so."""

    subscription: str
    count: int
    more: bool
    newest: list[DeadLetter]
    answered: bool = True


def configured(settings: Any) -> bool:
    """True when a subscription is named and a client may be built for it."""
    if not settings.dead_letter_subscription or not settings.google_cloud_project:
        return False
    return settings.environment == "cloud" or bool(
        os.environ.get("PUBSUB_EMULATOR_HOST", "").strip()
    )


def subscription_path(settings: Any) -> str:
    name = settings.dead_letter_subscription
    if name.startswith("projects/"):
        return name
    return f"projects/{settings.google_cloud_project}/subscriptions/{name}"


def peek(subscriber: Any, subscription: str, *, now: dt.datetime) -> DeadLetters:
    """Count the subscription's messages and return the newest, consuming none.

    Every pulled message is handed back (deadline 0) before returning, even when a
    later pull fails. While it is held (milliseconds) another reader misses it.

    Raises:
        ConfigurationError: the subscription does not exist; the setting is wrong.
        TransientError: Pub/Sub refused or timed out; the page says so.
    """
    from google.api_core import exceptions as google_exceptions

    bounded = _bounded_retry()
    held: list[Any] = []
    more = False
    answered = False
    try:
        for _ in range(PULLS_MAX):
            try:
                pulled = subscriber.pull(
                    request={
                        "subscription": subscription,
                        "max_messages": PULL_MESSAGES_MAX,
                    },
                    timeout=PULL_TIMEOUT_S,
                    retry=bounded,
                )
            except google_exceptions.DeadlineExceeded:
                # Pub/Sub may hold a pull open while nothing is there to deliver:
                # a pull that ran out of time found nothing more.
                break
            answered = True
            held += pulled.received_messages
            if not pulled.received_messages:
                break
        else:
            more = True
    except google_exceptions.NotFound as error:
        raise ConfigurationError(
            f"{subscription.rsplit('/', 1)[-1]} does not exist in "
            f"{subscription.split('/')[1]}: check CARTCAST_DEAD_LETTER_SUBSCRIPTION "
            f"and GOOGLE_CLOUD_PROJECT ({error})"
        ) from error
    except (google_exceptions.GoogleAPIError, TimeoutError) as error:
        raise TransientError(f"reading {subscription} failed: {error}") from error
    finally:
        _hand_back(subscriber, subscription, held)

    # A message redelivered within the pulls would be counted twice.
    unique = {received.message.message_id: received.message for received in held}
    newest = sorted(unique.values(), key=_published_at, reverse=True)[:SHOWN_MAX]
    return DeadLetters(
        subscription=subscription,
        count=len(unique),
        more=more,
        newest=[_dead_letter(message, now) for message in newest],
        answered=answered,
    )


def _bounded_retry() -> Any:
    """The client library's retry of a call, cut to PULL_TIMEOUT_S in all.

    Its default keeps retrying an unreachable Pub/Sub for 60 s (the pull's default
    in google-cloud-pubsub), and the status page would wait for all of it.
    """
    from google.api_core import retry

    return retry.Retry(timeout=PULL_TIMEOUT_S)


def _hand_back(subscriber: Any, subscription: str, held: list[Any]) -> None:
    from google.api_core import exceptions as google_exceptions

    bounded = _bounded_retry()
    ack_ids = [received.ack_id for received in held]
    # modifyAckDeadline takes at most 2,500 ids (the Pub/Sub API reference).
    for start in range(0, len(ack_ids), 2500):
        try:
            subscriber.modify_ack_deadline(
                request={
                    "subscription": subscription,
                    "ack_ids": ack_ids[start : start + 2500],
                    "ack_deadline_seconds": 0,
                },
                timeout=PULL_TIMEOUT_S,
                retry=bounded,
            )
        except (google_exceptions.GoogleAPIError, TimeoutError):
            # Not lost: the subscription's 60 s deadline hands them back anyway.
            continue


def _published_at(message: Any) -> dt.datetime:
    published = message.publish_time
    return dt.datetime.fromtimestamp(published.timestamp(), dt.UTC)


def _dead_letter(message: Any, now: dt.datetime) -> DeadLetter:
    published_at = _published_at(message)
    attributes = dict(message.attributes)
    return DeadLetter(
        message_id=message.message_id,
        source_subscription=attributes.get(SOURCE_SUBSCRIPTION, "").rsplit("/", 1)[-1],
        delivery_attempts=attributes.get(DELIVERY_ATTEMPTS, ""),
        published_at=published_at,
        # The deployment's clock may be simulated; an age is never negative.
        age_s=max(0, int((now - published_at).total_seconds())),
    )
