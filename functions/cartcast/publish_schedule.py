"""The publish schedule itself, paused and resumed for the whole deployment.

A brand's crisis pause (crisis.py) holds one brand's posts. The operator's pause
stops every brand at once, in two places (decision 0077):

- the database: a row in `publishing_pause` (sql/050). Every publish run reads it
  before it does anything, and the claim and each send's turn read it again
  (publishing.py), so a tick Pub/Sub delivers, redelivers or retries after the
  pause publishes nothing, and a run under way sends nothing more once it is
  committed. The posts stay due and go at the first run after the resume;
- Cloud Scheduler: both jobs that drive `publish_due_posts`, the publish tick
  (CARTCAST_SCHEDULER_JOB) and the missed-post sweep
  (CARTCAST_SWEEP_SCHEDULER_JOB), so no tick is sent for nothing. The sweep must
  be paused too: it exists to publish what the tick missed, and a paused tick
  misses everything (decision 0019). The late bound (sweeping.py) holds posts too
  late to make sense once publishing resumes.

The row is what holds the posts, so it is the first thing a pause does and the
last a resume undoes. A pause commits the row, then pauses the publish job, then
the sweep's; a resume resumes the sweep's job, then the publish job, then deletes
the row. Whatever fails half-way leaves the deployment paused, and the answer
(409 or 503) says so in its first words: "publishing is paused" after a pause
whose Scheduler calls failed, "publishing is still paused" after a resume whose
calls, or whose clearing of the row, failed. Every step is idempotent (the row
keeps the first pause's time; pausing a paused job, or resuming a running one,
changes nothing), so the operator calls again until the answer is 200.

The client is google-cloud-scheduler's CloudSchedulerClient on its REST
transport, built only when the operator calls, never at import or cold start:

- CARTCAST_SCHEDULER_ENDPOINT set (the local stand-in in infra/local_cloud.py, a
  test's stub): anonymous credentials, that endpoint; nothing asks Google for
  credentials;
- unset: Google's endpoint with the function's own service account (Application
  Default Credentials), which is what the cloud deployment asks for. Credentials
  google-auth cannot find or refresh answer as a failed call does: 409 when the
  operator must fix them (none, a refused grant), 503 when the token endpoint
  did not answer.

A pause and a resume are never interleaved (decision 0080): each holds one
session-level advisory lock (class 7318, Database.session_lock) from before its
database write until after its last Scheduler call. A request that finds it held
changes nothing and answers 409 "another pause or resume is under way" with
Retry-After, the longest the holder can take (its two Scheduler calls): the
operator reads the state (GET) and sends again what is still wanted. Waiting for
the lock instead would run the second request's steps after the first's and
quietly undo them, while holding a request and a connection.

Without CARTCAST_SCHEDULER_JOB or CARTCAST_SWEEP_SCHEDULER_JOB the pause would be
partial: 409 naming the missing one, before any write or call.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
from collections.abc import Iterator
from typing import Any

from cartcast.db import Transaction
from cartcast.errors import CartcastError, Conflict, TransientError
from cartcast.logs import fields

# Cloud Scheduler's job states (google.cloud.scheduler_v1.Job.State).
STATE_NAMES = {1: "enabled", 2: "paused", 3: "disabled", 4: "update_failed"}

# A second pause keeps the first one's time and actor.
RECORD_PAUSE = """
INSERT INTO publishing_pause (paused_at, paused_by) VALUES (:now, :actor)
ON CONFLICT (singleton) DO NOTHING
"""
CLEAR_PAUSE = "DELETE FROM publishing_pause"
SELECT_PAUSE = "SELECT paused_at, paused_by FROM publishing_pause"
# The resume's time, kept so the missed-post check counts from it (sweeping.py).
# Written with the delete, and only when there was a pause to resume.
RECORD_RESUME = """
INSERT INTO publishing_resume (resumed_at) SELECT :now FROM publishing_pause
ON CONFLICT (singleton) DO UPDATE SET resumed_at = EXCLUDED.resumed_at
"""
# One lock for the whole schedule: a pause and a resume each hold it throughout.
TRY_LOCK_SCHEDULE = "SELECT pg_try_advisory_lock(7318, 0)"
UNLOCK_SCHEDULE = "SELECT pg_advisory_unlock(7318, 0)"


class ScheduleUnavailable(TransientError):
    """Cloud Scheduler did not answer; the message says what the database holds,
    so the API shows it (503) instead of the generic one."""

    message_is_safe = True


def pause(runtime: Any, *, actor: str) -> dict[str, Any]:
    """Record the pause, then pause the publish job and the sweep's; return the
    pause and the jobs' states as Scheduler reports them."""
    settings = runtime.settings
    _require_jobs(settings)

    with _alone(runtime):
        with runtime.database.transaction() as tx:
            record_pause(tx, actor=actor, now=runtime.clock.now())
            state = pause_state(tx)

        said = "publishing is paused: no publish run sends anything"
        with _saying(said, "call again to pause the Scheduler's jobs"):
            client = scheduler_client(settings)
            publish = _call(client, settings, "pause_job", settings.scheduler_job)
            sweep = _call(client, settings, "pause_job", settings.sweep_scheduler_job)

    runtime.log.info(
        "publishing paused for the deployment",
        extra=fields(paused_at=state["paused_at"], paused_by=state["paused_by"]),
    )
    return {**state, **publish, "sweep": sweep}


def resume(runtime: Any) -> dict[str, Any]:
    """Resume the sweep's job, then the publish job, then clear the pause; return
    the (cleared) pause and the jobs' states."""
    settings = runtime.settings
    _require_jobs(settings)

    with _alone(runtime):
        said = "publishing is still paused: no publish run sends anything"
        with _saying(said, "call again to resume"):
            client = scheduler_client(settings)
            sweep = _call(client, settings, "resume_job", settings.sweep_scheduler_job)
            publish = _call(client, settings, "resume_job", settings.scheduler_job)

        try:
            with runtime.database.transaction() as tx:
                tx.execute(RECORD_RESUME, now=runtime.clock.now())
                tx.execute(CLEAR_PAUSE)
                state = pause_state(tx)
        except TransientError as error:
            # The jobs run again, but every run they start still reads the mark.
            raise ScheduleUnavailable(
                f"{said}; Cloud Scheduler's jobs are resumed, but the pause could "
                f"not be cleared in the database: {error}; call again to resume"
            ) from error

    runtime.log.info("publishing resumed for the deployment")
    return {**state, **publish, "sweep": sweep}


def record_pause(tx: Transaction, *, actor: str, now: dt.datetime) -> None:
    """Record the deployment-wide pause; a second one keeps the first's time."""
    tx.execute(RECORD_PAUSE, now=now, actor=actor)


def pause_state(tx: Transaction) -> dict[str, Any]:
    """Return whether the deployment is paused, since when and by whom."""
    row = tx.one(SELECT_PAUSE)
    if row is None:
        return {"paused": False, "paused_at": None, "paused_by": None}
    return {"paused": True, **row}


@contextlib.contextmanager
def _alone(runtime: Any) -> Iterator[None]:
    """Hold the schedule's lock for the block; raise a Conflict with
    Retry-After if it is held.

    The lock is a session's, on a connection kept out of the pool, so it spans
    the block's own transactions and Scheduler calls, and ends with the process
    if the process dies mid-way.
    """
    database = runtime.database
    with database.session_lock(TRY_LOCK_SCHEDULE, UNLOCK_SCHEDULE) as taken:
        if not taken:
            # The holder makes two Scheduler calls of at most this timeout each.
            wait_s = math.ceil(2 * runtime.settings.scheduler_timeout_s)
            raise Conflict(
                "another pause or resume is under way: nothing was changed; read "
                "GET /v1/publishing/pause once it ends, then send again what you "
                "still want",
                retry_after_s=max(1, wait_s),
            )
        yield


@contextlib.contextmanager
def _saying(state: str, next_step: str) -> Iterator[None]:
    """Open the message of a Scheduler failure with what the database holds."""
    try:
        yield
    except Conflict as error:
        message = f"{state}; but {error}: fix it, then {next_step}"
        raise Conflict(message, field=error.field) from error
    except TransientError as error:
        raise ScheduleUnavailable(f"{state}; but {error}; {next_step}") from error


def _require_jobs(settings: Any) -> None:
    if settings.scheduler_job is None:
        raise Conflict(
            "this deployment names no publish schedule job: set "
            "CARTCAST_SCHEDULER_JOB to pause it",
            field="CARTCAST_SCHEDULER_JOB",
        )
    if settings.sweep_scheduler_job is None:
        raise Conflict(
            "this deployment names no missed-post sweep job, which would go on "
            "publishing while the publish job is paused: set "
            "CARTCAST_SWEEP_SCHEDULER_JOB to pause both",
            field="CARTCAST_SWEEP_SCHEDULER_JOB",
        )


def _call(client: Any, settings: Any, method: str, name: str) -> dict[str, Any]:
    from google.api_core import exceptions as google_exceptions
    from google.auth import exceptions as auth_exceptions

    try:
        job = getattr(client, method)(name=name, timeout=settings.scheduler_timeout_s)
    except auth_exceptions.GoogleAuthError as error:
        # The credentials' token is fetched or refreshed on the first call.
        raise _credentials_failed(error) from error
    except (google_exceptions.ServerError, google_exceptions.TooManyRequests) as error:
        raise TransientError(f"Cloud Scheduler {method} failed: {error}") from error
    except google_exceptions.RetryError as error:
        raise TransientError(f"Cloud Scheduler {method} timed out") from error
    except google_exceptions.GoogleAPICallError as error:
        # A job that does not exist, or that the service account may not touch:
        # the operator must fix the deployment; the answer says which.
        setting = (
            "CARTCAST_SCHEDULER_JOB"
            if name == settings.scheduler_job
            else "CARTCAST_SWEEP_SCHEDULER_JOB"
        )
        raise Conflict(
            f"Cloud Scheduler refused {method} of {name}: {error}", field=setting
        ) from error
    except OSError as error:
        # The REST transport's requests may surface a refused connection as is.
        raise TransientError(f"Cloud Scheduler unreachable: {error}") from error
    return {"job": job.name, "state": STATE_NAMES.get(int(job.state), "unknown")}


def _credentials_failed(error: Exception) -> CartcastError:
    """Translate google-auth's failure to find or refresh credentials.

    A token endpoint (or metadata server) that did not answer, or a refusal
    google-auth calls retryable, may pass: TransientError (503). No credentials,
    a file it cannot use, a grant refused: the operator must fix the service
    account or GOOGLE_APPLICATION_CREDENTIALS: Conflict (409).
    """
    from google.auth import exceptions as auth_exceptions

    # google-auth puts the reason first and the token endpoint's body after it.
    reason = str(error.args[0]) if error.args else type(error).__name__
    message = (
        "Cloud Scheduler's jobs could not be reached: Google's credentials "
        f"failed: {reason.rstrip('.')}"
    )
    transient = isinstance(error, auth_exceptions.TransportError) or getattr(
        error, "retryable", False
    )
    if transient:
        return TransientError(message)
    return Conflict(message)


def scheduler_client(settings: Any) -> Any:
    """Build the Cloud Scheduler client the settings ask for (see the docstring)."""
    from google.api_core.client_options import ClientOptions
    from google.auth import exceptions as auth_exceptions
    from google.cloud import scheduler_v1

    if settings.scheduler_endpoint is None:
        try:
            return scheduler_v1.CloudSchedulerClient(transport="rest")
        except auth_exceptions.DefaultCredentialsError as error:
            raise _credentials_failed(error) from error

    from google.auth.credentials import AnonymousCredentials

    return scheduler_v1.CloudSchedulerClient(
        transport="rest",
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=settings.scheduler_endpoint),
    )
