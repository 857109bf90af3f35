"""The publish schedule itself, paused and resumed for the whole deployment.

A brand's crisis pause (crisis.py) holds one brand's posts. The operator's pause
stops every brand at once: it pauses the Cloud Scheduler job that ticks
`publish_due_posts` (CARTCAST_SCHEDULER_JOB), so no run starts until it is
resumed; posts due meanwhile go at the first run after, and the late bound
(sweeping.py) holds those too late to make sense.

The client is google-cloud-scheduler's CloudSchedulerClient on its REST
transport, built only when the operator calls, never at import or cold start:

- CARTCAST_SCHEDULER_ENDPOINT set (the local stand-in in infra/local_cloud.py, a
  test's stub): anonymous credentials, that endpoint; nothing asks Google for
  credentials;
- unset: Google's endpoint with the function's own service account (Application
  Default Credentials), which is what the cloud deployment asks for.

Without CARTCAST_SCHEDULER_JOB there is no schedule to pause: 409 naming it.
"""

from __future__ import annotations

from typing import Any

from cartcast.errors import Conflict, TransientError

# Cloud Scheduler's job states (google.cloud.scheduler_v1.Job.State).
STATE_NAMES = {1: "enabled", 2: "paused", 3: "disabled", 4: "update_failed"}


def pause(settings: Any) -> dict[str, Any]:
    """Pause the publish schedule's job; return its state as Scheduler reports it."""
    return _call(settings, "pause_job")


def resume(settings: Any) -> dict[str, Any]:
    """Resume the publish schedule's job; return its state."""
    return _call(settings, "resume_job")


def _call(settings: Any, method: str) -> dict[str, Any]:
    from google.api_core import exceptions as google_exceptions

    if settings.scheduler_job is None:
        raise Conflict(
            "this deployment names no publish schedule job: set "
            "CARTCAST_SCHEDULER_JOB to pause it",
            field="CARTCAST_SCHEDULER_JOB",
        )
    client = scheduler_client(settings)
    try:
        job = getattr(client, method)(
            name=settings.scheduler_job, timeout=settings.scheduler_timeout_s
        )
    except (google_exceptions.ServerError, google_exceptions.TooManyRequests) as error:
        raise TransientError(f"Cloud Scheduler {method} failed: {error}") from error
    except google_exceptions.RetryError as error:
        raise TransientError(f"Cloud Scheduler {method} timed out") from error
    except google_exceptions.GoogleAPICallError as error:
        # A job that does not exist, or that the service account may not touch:
        # the operator must fix the deployment; the answer says which.
        raise Conflict(
            f"Cloud Scheduler refused {method}: {error}", field="CARTCAST_SCHEDULER_JOB"
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
