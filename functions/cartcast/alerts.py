"""Alerts to a brand's people: raised once per episode, delivered from an outbox.

Anything that needs a person (an X account disconnected today; later features
their own kinds) calls `raise_alert` inside the transaction that records the cause.
An alert is keyed by (brand, kind, episode): raising the same episode again, from
another post or another run, is a no-op, so forty posts refused for one revoked
token make one alert, not forty.

`deliver_pending` runs after a publish run's posts and after each poll tick, and a
scoring run (score_sentiment), where a crisis starts, sends the alerts never tried:
a crisis alert waits for no publish tick, which the operator's pause may stop. It
POSTs each undelivered alert to the brand's `alert_webhook_url` as Slack-compatible
JSON (`{"text": ...}`), with CARTCAST_ALERT_TIMEOUT_S. A webhook that fails or times
out keeps the alert, which only the ticks try again, and not before
CARTCAST_ALERT_RETRY_BASE_S has passed, doubled each attempt up to an hour
(retries.webhook_retry_delay, the escalations' policy): scoring runs, dozens a
minute on a busy day, never wait out a dead webhook's timeout, and the ticks do so
once per back-off. One failing webhook is tried once per run (its other due alerts
wait for the next), and a run takes each brand's oldest due alert, the least tried
first, before any brand's second, so no backlog holds another brand's back. Each
POST looks the webhook's host up and goes to the address checked (webhooks.py); a
host at an address cartcast does not reach (the metadata server, a private or VPC
range; loopback outside a local run) is refused before anything is sent, and the
alert abandoned at once with an ERROR line and `last_error` "webhook refused: ...":
no retry reaches another address. A run starts no POST past its time budget
(delivery_budget.py), which a scoring run shares with its escalations; the alerts it
leaves stay due for the next run. Past CARTCAST_ALERT_MAX_AGE_S an alert is
abandoned with an ERROR line. A brand with no webhook gets a WARNING log line
instead. Delivery is at least once: a run that dies between the webhook's answer and
the commit sends the alert again next time.

An owner who sets the webhook URL (a new one, or the same one again once it works)
ends the back-off of the brand's waiting alerts (`end_back_off`, called by
brands.py in the same transaction): the next tick sends them. Removing the URL
ends none, and an alert abandoned for its age stays abandoned: it is past the age
at which the brand's people still want it, and a new webhook should not start
with it. One abandoned as refused was abandoned at once, unsent; setting the URL
revives it while it is younger than CARTCAST_ALERT_MAX_AGE_S (`revive_refused`,
decision 0099).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from cartcast import webhook_outboxes
from cartcast.db import Transaction
from cartcast.delivery_budget import DeliveryBudget
from cartcast.logs import fields
from cartcast.retries import webhook_retry_delay
from cartcast.webhook_outboxes import ERROR_LENGTH_MAX, RunWebhooks, abandon_refused
from cartcast.webhooks import WebhookRefused, post_webhook

ALERTS_PER_RUN = 20

INSERT_ALERT = """
INSERT INTO alert_outbox (brand_id, kind, episode, text, created_at, next_attempt_at)
VALUES (:brand_id, :kind, :episode, :text, :now, :now)
ON CONFLICT (brand_id, kind, episode) DO NOTHING
RETURNING id
"""
# Each brand's oldest due alert first, then each one's second, and among those
# the least tried first: a dead webhook's alerts come due again after each
# back-off until abandoned, and oldest first they would fill every run for a day,
# a newer brand's crisis alert behind them.
SELECT_PENDING = """
SELECT id FROM (
    SELECT id, created_at, attempts,
        row_number() OVER (PARTITION BY brand_id ORDER BY created_at, id)
            AS place_in_brand
    FROM alert_outbox
    WHERE delivered_at IS NULL AND abandoned_at IS NULL AND next_attempt_at <= :now
      AND (CAST(:retry AS boolean) OR attempts = 0)
) pending
ORDER BY place_in_brand, attempts, created_at, id
LIMIT :limit
"""
# Locked while it is sent, so two overlapping runs never both send it.
LOCK_ALERT = """
SELECT o.id, o.brand_id, o.kind, o.episode, o.text, o.created_at, o.attempts,
    b.alert_webhook_url, b.xmin::text AS brand_version
FROM alert_outbox o JOIN brands b ON b.id = o.brand_id
WHERE o.id = :id AND o.delivered_at IS NULL AND o.abandoned_at IS NULL
    AND o.next_attempt_at <= :now
FOR UPDATE OF o SKIP LOCKED
"""
MARK_DELIVERED = """
UPDATE alert_outbox SET delivered_at = :now, delivered_to = :channel,
    attempts = attempts + :attempted
WHERE id = :id
"""
MARK_FAILED = """
UPDATE alert_outbox SET attempts = attempts + 1, last_error = :error,
    next_attempt_at = :next_attempt_at
WHERE id = :id
"""
MARK_ABANDONED = "UPDATE alert_outbox SET abandoned_at = :now WHERE id = :id"
# Nothing was sent, so no attempt is counted.
MARK_REFUSED = """
UPDATE alert_outbox SET abandoned_at = :now, last_error = :error WHERE id = :id
"""
# Only the alerts waiting out a back-off: one already due keeps its place in line.
END_BACK_OFF = """
UPDATE alert_outbox SET next_attempt_at = :now
WHERE brand_id = :brand_id AND delivered_at IS NULL AND abandoned_at IS NULL
    AND next_attempt_at > :now
"""
# The rows abandoned because the webhook was refused, young enough to be worth
# sending still: the owner has just set the URL again (decision 0099). A row
# abandoned for its age, or any row older than :oldest, stays abandoned.
REVIVE_REFUSED = """
UPDATE alert_outbox SET abandoned_at = NULL, next_attempt_at = :now
WHERE brand_id = :brand_id AND delivered_at IS NULL AND abandoned_at IS NOT NULL
    AND last_error LIKE :refused AND created_at >= :oldest
"""
SELECT_ALERTS = """
SELECT kind, episode, text, created_at, attempts, last_error, next_attempt_at,
    delivered_at, delivered_to, abandoned_at
FROM alert_outbox WHERE brand_id = :brand_id ORDER BY created_at, id
"""


def raise_alert(
    tx: Transaction,
    *,
    brand_id: str,
    kind: str,
    episode: str,
    text: str,
    now: dt.datetime,
) -> bool:
    """Queue an alert for the brand, once per (kind, episode); say if it is new.

    Args:
        kind: what happened, a short stable name ("x_disconnected").
        episode: what makes this occurrence one, e.g. when it started; the same
            kind and episode raised again is the same alert and is not queued.
    """
    return (
        tx.scalar(
            INSERT_ALERT,
            brand_id=brand_id,
            kind=kind,
            episode=episode,
            text=text,
            now=now,
        )
        is not None
    )


def end_back_off(tx: Transaction, *, brand_id: str, now: dt.datetime) -> int:
    """Make the brand's undelivered alerts that wait out a back-off due `now`.

    For a webhook URL the owner has just set: the failures counted against the old
    one say nothing of it. Abandoned alerts are left as they are. Returns how many
    came due.
    """
    return tx.execute(END_BACK_OFF, brand_id=brand_id, now=now)


def revive_refused(
    tx: Transaction, *, brand_id: str, now: dt.datetime, max_age_s: float
) -> int:
    """Make the brand's alerts abandoned as refused, and younger than
    `max_age_s`, due `now` again (webhook_outboxes.revive_refused)."""
    return webhook_outboxes.revive_refused(
        tx, REVIVE_REFUSED, brand_id=brand_id, now=now, max_age_s=max_age_s
    )


def list_alerts(tx: Transaction, *, brand_id: str) -> list[dict[str, Any]]:
    """Return the brand's alerts, oldest first."""
    return tx.rows(SELECT_ALERTS, brand_id=brand_id)


def deliver_pending(
    runtime: Any, *, retry: bool = True, budget: DeliveryBudget | None = None
) -> dict[str, int]:
    """Send the alerts that are due (at most ALERTS_PER_RUN); return counts.

    Args:
        retry: False sends only the alerts no run has tried yet (a scoring run's
            fresh crisis alert); a failed one waits for a run with True, and its
            back-off.
        budget: the run's time for webhook deliveries (delivery_budget.py), shared
            with its escalations; CARTCAST_WEBHOOK_BUDGET_S from now when None.
            The alerts not started in it stay due (`alerts_out_of_time`).
    """
    counts = {
        "alerts_sent": 0,
        "alerts_logged": 0,
        "alerts_failed": 0,
        "alerts_out_of_time": 0,
    }
    if budget is None:
        budget = DeliveryBudget.starting_now(runtime)
    now = runtime.clock.now()
    reads = runtime.database.reads()
    pending = [
        row["id"]
        for row in reads.rows(
            SELECT_PENDING, now=now, limit=ALERTS_PER_RUN, retry=retry
        )
    ]

    run_webhooks = RunWebhooks()
    return budget.deliver_in_time(
        pending,
        lambda alert_id: _deliver_one(runtime, alert_id, run_webhooks),
        counts,
        out_of_time="alerts_out_of_time",
    )


def _deliver_one(runtime: Any, alert_id: int, run_webhooks: RunWebhooks) -> str | None:
    """Send, log, defer or abandon one alert under its row lock; say what happened."""
    now = runtime.clock.now()
    with runtime.database.transaction() as tx:
        alert = tx.one(LOCK_ALERT, id=alert_id, now=now)
        if alert is None:
            return None  # another run has it, or has sent it
        url = alert["alert_webhook_url"]
        log_fields = {"brand_id": str(alert["brand_id"]), "kind": alert["kind"]}

        if url is None:
            runtime.log.warning(
                f"alert (the brand has no alert_webhook_url): {alert['text']}",
                extra=fields(**log_fields),
            )
            tx.execute(MARK_DELIVERED, id=alert_id, now=now, channel="log", attempted=0)
            return "alerts_logged"
        if run_webhooks.failed_earlier(url):
            return None  # already failed in this run; try again in the next
        if now - alert["created_at"] > dt.timedelta(
            seconds=runtime.settings.alert_max_age_s
        ):
            runtime.log.error(
                "alert abandoned: its webhook never took it",
                extra=fields(**log_fields, attempts=alert["attempts"]),
            )
            tx.execute(MARK_ABANDONED, id=alert_id, now=now)
            return "alerts_failed"

        try:
            problem = run_webhooks.post(
                url,
                lambda: _post_webhook(runtime, url, alert["text"]),
                brand_version=alert["brand_version"],
            )
        except WebhookRefused as error:
            abandoned = abandon_refused(
                runtime,
                tx,
                error,
                brand_version=alert["brand_version"],
                mark_refused=MARK_REFUSED,
                row_id=alert_id,
                brand_id=alert["brand_id"],
                what="alert",
                log_fields=log_fields,
                now=now,
            )
            return "alerts_failed" if abandoned else None
        if problem is None:
            tx.execute(
                MARK_DELIVERED, id=alert_id, now=now, channel="webhook", attempted=1
            )
            return "alerts_sent"
        delay = webhook_retry_delay(
            runtime.settings.alert_retry_base_s, alert["attempts"]
        )
        tx.execute(
            MARK_FAILED,
            id=alert_id,
            error=problem[:ERROR_LENGTH_MAX],
            next_attempt_at=now + delay,
        )
    runtime.log.warning(
        "alert webhook failed; retrying later",
        extra=fields(**log_fields, reason=problem, retry_in_s=delay.total_seconds()),
    )
    return "alerts_failed"


def _post_webhook(runtime: Any, url: str, text: str) -> str | None:
    """POST `{"text": text}` to a Slack-compatible webhook; return the problem.

    Raises:
        WebhookRefused: nothing was sent, and nothing will be to this URL.
    """
    return post_webhook(
        runtime,
        url,
        json.dumps({"text": text}).encode("utf-8"),
        headers={"Content-Type": "application/json"},
        timeout_s=runtime.settings.alert_timeout_s,
    )
