"""The publish schedule itself, paused and resumed for the whole deployment.

A brand's crisis pause (crisis.py) holds one brand's posts. The operator's pause
stops every brand at once: it pauses both Cloud Scheduler jobs that drive
`publish_due_posts`, the publish tick (CARTCAST_SCHEDULER_JOB) and the missed-post
sweep (CARTCAST_SWEEP_SCHEDULER_JOB), so no run starts until it is resumed. The
sweep must be paused too: it exists to publish what the tick missed, and a paused
tick misses everything (decision 0019). Posts due meanwhile go at the first run
after; the late bound (sweeping.py) holds those too late to make sense.

The publish job is paused first and resumed last, so the sweep never runs alone
on a schedule the operator meant to stop; a call that fails half-way leaves the
sweep running and answers 503 or 409, and the operator calls again (pausing a
paused job, or resuming a running one, changes nothing).

The client is google-cloud-scheduler's CloudSchedulerClient on its REST
transport, built only when the operator calls, never at import or cold start:

- CARTCAST_SCHEDULER_ENDPOINT set (the local stand-in in infra/local_cloud.py, a
  test's stub): anonymous credentials, that endpoint; nothing asks Google for
  credentials;
- unset: Google's endpoint with the function's own service account (Application
  Default Credentials), which is what the cloud deployment asks for.

Without CARTCAST_SCHEDULER_JOB or CARTCAST_SWEEP_SCHEDULER_JOB the pause would be
partial: 409 naming the missing one, before any call.
"""

from __future__ import annotations

from typing import Any

from cartcast.errors import Conflict, TransientError

# Cloud Scheduler's job states (google.cloud.scheduler_v1.Job.State).
STATE_NAMES = {1: "enabled", 2: "paused", 3: "disabled", 4: "update_failed"}


def pause(settings: Any) -> dict[str, Any]:
    """Pause the publish job, then the sweep's; return their states as Scheduler
    reports them."""
    _require_jobs(settings)
    client = scheduler_client(settings)
    publish = _call(client, settings, "pause_job", settings.scheduler_job)
    sweep = _call(client, settings, "pause_job", settings.sweep_scheduler_job)
    return {**publish, "sweep": sweep}


def resume(settings: Any) -> dict[str, Any]:
    """Resume the sweep's job, then the publish job; return their states."""
    _require_jobs(settings)
    client = scheduler_client(settings)
    sweep = _call(client, settings, "resume_job", settings.sweep_scheduler_job)
    publish = _call(client, settings, "resume_job", settings.scheduler_job)
    return {**publish, "sweep": sweep}


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

    try:
        job = getattr(client, method)(name=name, timeout=settings.scheduler_timeout_s)
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


def scheduler_client(settings: Any) -> Any:
    """Build the Cloud Scheduler client the settings ask for (see the docstring)."""
    from google.api_core.client_options import ClientOptions
    from google.cloud import scheduler_v1

    if settings.scheduler_endpoint is None:
        return scheduler_v1.CloudSchedulerClient(transport="rest")

    from google.auth.credentials import AnonymousCredentials

    return scheduler_v1.CloudSchedulerClient(
        transport="rest",
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=settings.scheduler_endpoint),
    )
