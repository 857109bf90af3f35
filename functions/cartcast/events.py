"""Decoding the CloudEvents that Pub/Sub delivers (directly or via Cloud Scheduler).

A schedule tick's `time` attribute is the instant it stands for: a function acting
"as of now" for a tick uses it, so a replayed or simulated tick means the same thing.
Delivery is at least once, and a message can arrive late: an event older than the
configured maximum age is dropped (a sweeper covers its work) rather than acted on.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import datetime as dt
import enum
import json
import uuid
from collections.abc import Iterator
from typing import Any

from cartcast.clock import parse_instant
from cartcast.errors import PermanentError

IDS_PER_MESSAGE_MAX = 1000

# A run holds a session-level advisory lock on its tick's claim for as long as it
# runs, on a connection kept out of the pool, which the run's own transactions use
# too (Database.session_lock, decision 0084): the lock says it is alive, and goes
# when its connection does, with the process or the database; a run whose
# connection failed stops at its next database call.
# Two-key advisory locks 7310-7316 are taken (posts.py). A run may not get it: the
# run it took its claim over from holds it still, or another tick's run whose key
# shares its hashtext does. Its claim says so (`run_holds_lock`, sql/054).
TRY_LOCK_RUN = "SELECT pg_try_advisory_lock(7317, hashtext(:run_key))"
UNLOCK_RUN = "SELECT pg_advisory_unlock(7317, hashtext(:run_key))"

# A free lock says a claim's run is dead only if that run held it: the claim is
# then taken over at once, its run's lock having gone with its connection. Any
# other unfinished claim is taken over only once older than the function's
# timeout: the platform ended that run's request, and its thread, if it goes on
# at all (Cloud Run leaves it, often without CPU), answers no one, so only a retry
# can. A lock held proves no claim's run alive: another tick's run may hold it.
CLAIM_EVENT = """
INSERT INTO handled_events (function, event_id, handled_at, run_holds_lock)
VALUES (:function, :event_id, :now, :lock_taken)
ON CONFLICT (function, event_id) DO UPDATE
SET handled_at = EXCLUDED.handled_at, run_holds_lock = EXCLUDED.run_holds_lock
WHERE handled_events.finished_at IS NULL
  AND ((:lock_taken AND handled_events.run_holds_lock)
    OR handled_events.handled_at < :timed_out_before)
RETURNING event_id
"""
SELECT_CLAIM_FINISHED = """
SELECT finished_at IS NOT NULL FROM handled_events
WHERE function = :function AND event_id = :event_id
"""
# Finishing and releasing touch the run's own claim only, known by its time: one
# taken over since belongs to the run that took it.
FINISH_EVENT = """
UPDATE handled_events SET finished_at = :now
WHERE function = :function AND event_id = :event_id AND handled_at = :claimed_at
"""
RELEASE_EVENT = """
DELETE FROM handled_events
WHERE function = :function AND event_id = :event_id AND handled_at = :claimed_at
"""


class Claim(enum.Enum):
    """What claiming an event for a run found."""

    CLAIMED = "claimed"  # run it
    FINISHED = "finished"  # another delivery ran it: acknowledge
    RUNNING = "running"  # another delivery is running it: let Pub/Sub retry


@dataclasses.dataclass(frozen=True)
class Message:
    event_id: str
    time: dt.datetime
    payload: dict[str, Any]


def decode(cloud_event: Any) -> Message:
    """Return the event's id, time and JSON payload; raise PermanentError if unusable.

    An empty message body (Cloud Scheduler may send none) is an empty payload.
    """
    try:
        event_time = parse_instant(cloud_event["time"])
    except (KeyError, TypeError, ValueError) as error:
        # ValueError includes clock.OutOfRange: "0001-01-01T00:00:00+14:00" parses
        # but has no UTC instant.
        raise PermanentError("event has no usable 'time' attribute") from error
    data = cloud_event.data if isinstance(cloud_event.data, dict) else {}
    message = data.get("message") if isinstance(data.get("message"), dict) else {}
    # Absent or null is no data; any other value but a string is the wrong type,
    # a falsy one (0, false, [], {}) as much as another.
    encoded = message.get("data")
    if encoded is None:
        encoded = ""
    if not isinstance(encoded, str):
        raise PermanentError("message data must be a base64 string")
    try:
        raw = base64.b64decode(encoded, validate=True) if encoded else b""
        payload = json.loads(raw) if raw.strip() else {}
    except (binascii.Error, ValueError) as error:
        raise PermanentError("message data is not base64-encoded JSON") from error
    except RecursionError as error:
        # json.loads recurses once per level: a message nested some thousand
        # levels deep (Pub/Sub carries up to 10 MB) would fail every retry.
        raise PermanentError("message data is nested too deeply") from error
    if not isinstance(payload, dict):
        raise PermanentError("message data must be a JSON object")
    return Message(event_id=str(cloud_event["id"]), time=event_time, payload=payload)


def id_list(payload: dict[str, Any], name: str) -> list[str] | None:
    """Return payload[name] if it is a list of 1 to 1,000 UUID strings, else None."""
    value = payload.get(name)
    if not isinstance(value, list) or not 0 < len(value) <= IDS_PER_MESSAGE_MAX:
        return None
    try:
        return [str(uuid.UUID(item)) for item in value]
    except (TypeError, ValueError, AttributeError):
        return None


@contextlib.contextmanager
def claim(
    runtime: Any, function: str, message: Message, *, claimed_at: dt.datetime
) -> Iterator[Claim]:
    """Claim an event for a run in the block, unless another delivery ran it or
    runs it; a claimed run is marked alive until the block ends.

    Pub/Sub delivers at least once, sometimes twice at the same moment. The first
    delivery to claim an event runs it; a run that fails releases its claim so
    that Pub/Sub's retry runs again. One that cannot (the database is what failed)
    leaves a claim whose lock went with its connection, and the next delivery
    takes it over at once; one that is still running holds its lock, and a
    delivery meanwhile finds it RUNNING until the function's timeout has passed
    (CARTCAST_FUNCTION_TIMEOUT_S). A run that claims without the lock (another
    run held it) is marked so, and only that timeout ends its claim early, dead
    or alive. `claimed_at` (the run's now) marks the claim: `finish` and
    `release` take it, inside the block.
    """
    run_key = f"{function}/{message.event_id}"
    lock = runtime.database.session_lock(TRY_LOCK_RUN, UNLOCK_RUN, run_key=run_key)
    with lock as lock_taken:
        if _take_claim(runtime, function, message, claimed_at, lock_taken=lock_taken):
            yield Claim.CLAIMED
            return
    # The lock is given back by now: a delivery that does not run holds nothing.
    yield _claim_of_another(runtime, function, message)


def _take_claim(
    runtime: Any,
    function: str,
    message: Message,
    claimed_at: dt.datetime,
    *,
    lock_taken: bool,
) -> bool:
    timeout = dt.timedelta(seconds=runtime.settings.function_timeout_s)
    with runtime.database.transaction() as tx:
        claimed = tx.scalar(
            CLAIM_EVENT,
            function=function,
            event_id=message.event_id,
            now=claimed_at,
            lock_taken=lock_taken,
            timed_out_before=claimed_at - timeout,
        )
    return claimed is not None


def _claim_of_another(runtime: Any, function: str, message: Message) -> Claim:
    """Say whether the claim another delivery made is finished or running.

    No claim at all is one its run gave back after this delivery's claim found
    it: Pub/Sub's retry runs it again.
    """
    finished = runtime.database.reads().scalar(
        SELECT_CLAIM_FINISHED, function=function, event_id=message.event_id
    )
    return Claim.FINISHED if finished else Claim.RUNNING


def finish(
    runtime: Any, function: str, message: Message, *, claimed_at: dt.datetime
) -> None:
    """Record that the claimed event's run is over: a redelivery is acknowledged."""
    with runtime.database.transaction() as tx:
        tx.execute(
            FINISH_EVENT,
            function=function,
            event_id=message.event_id,
            claimed_at=claimed_at,
            now=runtime.clock.now(),
        )


def release(
    runtime: Any, function: str, message: Message, *, claimed_at: dt.datetime
) -> None:
    """Give back the claim of a run that failed, so a redelivery runs again."""
    with runtime.database.transaction() as tx:
        tx.execute(
            RELEASE_EVENT,
            function=function,
            event_id=message.event_id,
            claimed_at=claimed_at,
        )


def age_s(message: Message, now: dt.datetime) -> float:
    return (now - message.time).total_seconds()


def envelope(
    *,
    topic: str,
    project: str,
    payload: dict[str, Any],
    message_id: str,
    time: dt.datetime,
) -> tuple[dict[str, str], dict[str, Any]]:
    """Build a binary-mode Pub/Sub CloudEvent, as Eventarc delivers one."""
    published = time.isoformat().replace("+00:00", "Z")
    headers = {
        "ce-id": message_id,
        "ce-specversion": "1.0",
        "ce-source": f"//pubsub.googleapis.com/projects/{project}/topics/{topic}",
        "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        "ce-time": published,
        "content-type": "application/json",
    }
    body = {
        "message": {
            "data": base64.b64encode(json.dumps(payload).encode()).decode(),
            "attributes": {},
            "messageId": message_id,
            "publishTime": published,
        },
        "subscription": f"projects/{project}/subscriptions/{topic}-push",
    }
    return headers, body
