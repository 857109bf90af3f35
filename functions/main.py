"""cartcast's Cloud Functions: seven thin entry points over the `cartcast` package.

Each one decodes its trigger, takes the process's runtime (settings, clock, lazily
opened database and clients), calls one domain function and maps the outcome. Domain
modules are imported inside each function, so a function loads only what it runs.

Event functions follow one rule for retries: raise (TransientError, a database
outage) when trying again can help; log and return when it cannot (a payload that
will never parse, an event older than CARTCAST_MAX_EVENT_AGE_S).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import functions_framework

from cartcast import compiled_patterns

# First, before cartcast and the libraries its functions load (tweepy, requests,
# pg8000) compile their regular expressions: the deploy archive holds them compiled
# (decision 0036). A checkout has no table, and this does nothing.
compiled_patterns.preload()

from cartcast import events, runtime  # noqa: E402
from cartcast.errors import (  # noqa: E402
    ConfigurationError,
    PermanentError,
    TransientError,
)
from cartcast.logs import fields  # noqa: E402

if TYPE_CHECKING:
    import flask
    from cloudevents.http import CloudEvent


@functions_framework.http
def api(request: flask.Request) -> tuple[str, int, dict[str, str]]:
    from cartcast import api as http_api

    try:
        current = runtime.current()
    except ConfigurationError as error:
        return _misconfigured(request, error)
    return http_api.handle(request, current)


def _misconfigured(
    request: flask.Request, error: ConfigurationError
) -> tuple[str, int, dict[str, str]]:
    """Answer settings that do not load as the API answers any misconfiguration.

    Without settings there is no runtime to log through, and functions-framework
    would answer its HTML 500 page; this logs the problems named by settings.load
    as one JSON line and gives the client the JSON error docs/openapi.yaml describes.
    No route ran to read the body away, so it is done here (web.discard_body):
    functions-framework would otherwise read all of it into memory, whatever its
    size.
    """
    from cartcast import web
    from cartcast.clock import SystemClock
    from cartcast.logs import get_logger

    web.bound_body_waits(request, web.BODY_WAIT_S)
    web.discard_body(request)
    return web.error_response(error, get_logger("cartcast"), SystemClock().now())


@functions_framework.errorhandler(404)
def answer_unrouted_path(error: Exception) -> tuple[str, int, dict[str, str]]:
    """Answer a path functions-framework routes to no function as the API would.

    Its catch-all rule `/<path:path>` stops at a newline, so a path holding one
    (%0A) never reaches `api` and Flask would answer an HTML page; clients and
    docs/openapi.yaml expect the JSON error of every other unknown path, and a
    browser under /console the console's own page.
    """
    import flask

    from cartcast import web

    # No function ran to discard the body it did not read (web.discard_body),
    # nor to bound the wait for it; settings may not load, so the default does.
    web.bound_body_waits(flask.request, web.BODY_WAIT_S)
    web.discard_body(flask.request)
    path = flask.request.path
    if path == "/console" or path.startswith("/console/"):
        from cartcast import console

        return console.page_not_found()

    from cartcast import api as http_api

    return http_api.route_not_found(path)


@functions_framework.http
def generate_caption(request: flask.Request) -> tuple[str, int, dict[str, str]]:
    from cartcast import api as http_api

    try:
        current = runtime.current()
    except ConfigurationError as error:
        return _misconfigured(request, error)
    return http_api.handle_caption_request(request, current)


@functions_framework.cloud_event
def publish_due_posts(cloud_event: CloudEvent) -> None:
    # Claims already make a second delivery a no-op: no need to track deliveries. A
    # message {"sweep": true}, from the sweeper's own Scheduler job, re-drives posts
    # no run picked up (decision 0012).
    _on_tick(
        cloud_event,
        "publish_due_posts",
        _publish_run,
        once=False,
        sweep=_sweep_run,
    )


def _publish_run(current: runtime.Runtime, *, as_of: Any) -> dict[str, Any]:
    """Settle `unconfirmed` posts from each account's timeline (adopt X's id, or
    re-queue one absent well after sending), then claim and send due posts,
    re-queued ones too."""
    from cartcast import reconciling

    return _around_posts(current, as_of, reconciling.reconcile_then_publish)


def _sweep_run(current: runtime.Runtime, *, as_of: Any) -> dict[str, Any]:
    from cartcast import sweeping

    return _around_posts(current, as_of, sweeping.sweep_missed)


def _around_posts(
    current: runtime.Runtime, as_of: Any, work: Callable[..., dict[str, Any]]
) -> dict[str, Any]:
    """Do nothing to posts while the operator's pause holds the deployment (a
    tick it did not stop in time is acknowledged, its posts left due); send
    alerts last, so a slow webhook never delays a post."""
    from cartcast import alerts, publishing

    pause = publishing.deployment_pause(current)
    if pause is None:
        outcome = work(current, as_of=as_of)
    else:
        current.log.info(
            "publishing is paused for the deployment: this run publishes nothing",
            extra=fields(**pause),
        )
        outcome = {"deployment_paused": True}
    return {**outcome, **alerts.deliver_pending(current)}


@functions_framework.cloud_event
def poll_mentions(cloud_event: CloudEvent) -> None:
    _on_tick(cloud_event, "poll_mentions", _poll_run)


def _poll_run(current: runtime.Runtime, *, as_of: Any) -> dict[str, Any]:
    """Read and fan out new mentions, then score any that no event scored (one
    dropped as too old, or lost), then send the escalations and alerts that are
    due (a crisis the sweep's scores started)."""
    from cartcast import mentions, scoring

    outcome = mentions.poll_mentions(current, as_of=as_of)
    outcome["swept_scored"] = scoring.sweep_unscored(current)
    return {**outcome, **_deliver_mention_news(current, retry_alerts=True)}


@functions_framework.cloud_event
def score_sentiment(cloud_event: CloudEvent) -> None:
    message = _fresh_message(cloud_event, "score_sentiment")
    if message is None:
        return
    ids = events.id_list(message.payload, "mention_ids")
    if ids is None:
        _drop("score_sentiment", message, "payload has no list of mention ids")
        return
    from cartcast import scoring

    # Idempotent per mention: a second delivery finds them scored and does nothing.
    current = runtime.current()
    outcome = scoring.score_mentions(current, mention_ids=ids)
    outcome.update(_deliver_mention_news(current, retry_alerts=False))
    _done("score_sentiment", message, {**outcome, "received": len(ids)})


def _deliver_mention_news(
    current: runtime.Runtime, *, retry_alerts: bool
) -> dict[str, Any]:
    """Send the due alerts, then the escalations: a crisis scoring has just started
    must not wait for a publish run, which the operator's pause may stop."""
    from cartcast import delivery_budget

    return delivery_budget.deliver_mention_news(current, retry_alerts=retry_alerts)


@functions_framework.cloud_event
def rollup_kpis(cloud_event: CloudEvent) -> None:
    _on_tick(cloud_event, "rollup_kpis", _rollup_run)


def _rollup_run(current: runtime.Runtime, *, as_of: Any) -> dict[str, Any]:
    """Roll the KPIs up, then carry out the data duties that are due: brands past
    their offboarding grace period, mention texts past their retention, the kept
    X ids of removed mentions no poll reaches any more, the addresses of failed
    console sign-ins whose window is over, the console sign-outs of sessions
    already expired, tick claims past their keep, and caption requests'
    Idempotency-Keys past their day."""
    from cartcast import (
        console_signouts,
        idempotency_keys,
        kpis,
        offboarding,
        retention,
        signin_limits,
    )

    outcome = kpis.rollup(current, as_of=as_of)
    now = current.clock.now()
    outcome.update(offboarding.sweep_due_offboardings(current, now=now))
    outcome.update(retention.sweep_old_mention_texts(current, now=now))
    outcome.update(retention.sweep_removed_mention_ids(current, now=now))
    outcome.update(signin_limits.sweep_past_windows(current, now=now))
    outcome.update(console_signouts.sweep_expired(current, now=now))
    outcome.update(retention.sweep_handled_events(current, now=now))
    outcome.update(idempotency_keys.sweep_old_keys(current, now=now))
    return outcome


@functions_framework.cloud_event
def drain_caption_jobs(cloud_event: CloudEvent) -> None:
    from cartcast import caption_drain

    # Items claimed FOR UPDATE SKIP LOCKED make a second delivery a no-op for the
    # work the first did; it may only go on with what is left (decision 0007).
    _on_tick(
        cloud_event, "drain_caption_jobs", caption_drain.drain_for_tick, once=False
    )


def _on_tick(
    cloud_event: CloudEvent,
    function: str,
    work: Callable[..., dict[str, Any]],
    once: bool = True,
    sweep: Callable[..., dict[str, Any]] | None = None,
) -> None:
    """Run a scheduled job as of the tick's time, unless the tick is unusable or old.

    With `once`, a tick that another delivery ran is acknowledged without running
    again: Pub/Sub delivers at least once, and a second poll or rollup would read
    from X, and pay, a second time. One that another delivery is running raises, so
    Pub/Sub asks again once that run is over; a run that died leaves its claim to
    the next delivery at once (decisions 0068, 0078). With
    `sweep`, a message whose payload says `"sweep": true` runs it instead of `work`.
    """
    message = _fresh_message(cloud_event, function)
    if message is None:
        return
    if sweep is not None and message.payload.get("sweep") is True:
        work = sweep
    current = runtime.current()
    from cartcast import post_events

    # The posts this run moves are logged as "system:<function>". The claim moves
    # none, but it runs inside the block too: the connection it opens on a cold
    # instance then starts with the actor set, and no later transaction spends a
    # round trip setting it (decision 0046).
    with post_events.acting_as(f"system:{function}"):
        claimed_at = current.clock.now()
        claim = (
            events.claim(current, function, message, claimed_at=claimed_at)
            if once
            else contextlib.nullcontext(events.Claim.CLAIMED)
        )
        # A claimed run is marked alive (its lock held) until this block ends.
        with claim as found:
            if found is events.Claim.FINISHED:
                _drop(function, message, "delivered again; another delivery ran it")
                return
            if found is events.Claim.RUNNING:
                # Acknowledging now would lose the tick if that run then fails.
                raise TransientError("another delivery of this event is running")
            outcome = _run_claimed(
                current, function, message, work, claimed_at=claimed_at, once=once
            )
    _done(function, message, outcome)


def _run_claimed(
    current: runtime.Runtime,
    function: str,
    message: events.Message,
    work: Callable[..., dict[str, Any]],
    *,
    claimed_at: Any,
    once: bool,
) -> dict[str, Any]:
    """Run the tick's work; finish its claim, or give it back if the work failed."""
    # A tick stands for its own time, but never for a time that has not come
    # yet: a message stamped in the future must not publish anything early.
    as_of = min(message.time, current.clock.now())
    finished = False
    try:
        outcome = work(current, as_of=as_of)
        if once:
            events.finish(current, function, message, claimed_at=claimed_at)
        finished = True
    finally:
        if once and not finished:
            events.release(current, function, message, claimed_at=claimed_at)
    return outcome


def _fresh_message(cloud_event: CloudEvent, function: str) -> events.Message | None:
    """Decode the event; return None (acknowledge) when it is unusable or stale."""
    current = runtime.current()
    try:
        message = events.decode(cloud_event)
    except PermanentError as error:
        current.log.error(
            "unusable event dropped",
            extra=fields(
                function=function, event_id=cloud_event.get("id"), reason=str(error)
            ),
        )
        return None
    age_s = events.age_s(message, current.clock.now())
    if age_s > current.settings.max_event_age_s:
        _drop(function, message, f"event is {age_s:.0f} s old")
        return None
    return message


def _drop(function: str, message: events.Message, reason: str) -> None:
    runtime.current().log.warning(
        "event dropped",
        extra=fields(function=function, event_id=message.event_id, reason=reason),
    )


def _done(function: str, message: events.Message, outcome: dict[str, Any]) -> None:
    runtime.current().log.info(
        f"{function} done",
        extra=fields(
            function=function, event_id=message.event_id, as_of=message.time, **outcome
        ),
    )
