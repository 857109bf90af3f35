"""Escalations: high-priority mentions sent to the brand's CRM, signed, from an outbox.

Scoring queues a mention whose triage says escalate (`queue_escalation`) in the
transaction that saves its score; the mention id is unique in the outbox, so a
mention scored twice is queued once. `deliver_pending` then POSTs each due row to
the brand's `escalation_webhook_url`, with CARTCAST_ESCALATION_TIMEOUT_S:

    Content-Type: application/json
    X-Cartcast-Delivery: <outbox id, the same on every retry: the CRM's dedupe key>
    X-Cartcast-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>

The signature is HMAC-SHA256, keyed with the brand's `escalation_secret`, of
`"<t>." + body` (the exact bytes sent). A receiver recomputes it, compares in
constant time and refuses a `t` too far from its clock, which stops a replay of
an old delivery. The body is fixed when the row is queued, so every retry signs
the same bytes under a fresh timestamp.

Each POST looks the webhook's host up and goes to the address checked (webhooks.py).
A host at an address cartcast does not reach (the metadata server, a private or VPC
range; loopback outside a local run) is refused before anything is sent, and the row
abandoned at once, with an ERROR line and `last_error` "webhook refused: ...". A 2xx
answer delivers the row. Anything else (no answer to the lookup, no connection, a
timeout, 4xx, 5xx) keeps it for a retry after CARTCAST_ESCALATION_RETRY_BASE_S,
doubled each attempt up to an hour; past CARTCAST_ESCALATION_MAX_AGE_S it is
abandoned with an ERROR line. One failing webhook is tried once per run, and each
run takes every brand's oldest due row before any brand's second, so one CRM's
backlog delays no other. A run starts no POST past its time budget
(delivery_budget.py); the rows it leaves stay due for the next. A brand without a
webhook gets a WARNING line per escalation instead. Delivery is at least once: a run
that dies between the CRM's answer and the commit sends the row again, with the same
X-Cartcast-Delivery.

Setting the webhook URL (a new one, or the same again) or the secret ends the
back-off of the brand's waiting escalations (`end_back_off`, called by brands.py
in the same transaction): a CRM that refused a signature made with an old secret
takes one made with the new. Removing the URL ends none, and rows abandoned for
their age stay abandoned: past CARTCAST_ESCALATION_MAX_AGE_S a mention is no
longer news to the CRM, and the brand's inbox still shows it. Setting the URL
(not the secret alone) revives the rows abandoned as refused that are younger
than that (`revive_refused`, decision 0099).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from typing import Any

from cartcast import webhook_outboxes
from cartcast.db import Transaction
from cartcast.delivery_budget import DeliveryBudget
from cartcast.logs import fields
from cartcast.retries import webhook_retry_delay
from cartcast.webhook_outboxes import ERROR_LENGTH_MAX, RunWebhooks, abandon_refused
from cartcast.webhooks import WebhookRefused, post_webhook

ESCALATIONS_PER_RUN = 20
SIGNATURE_HEADER = "X-Cartcast-Signature"
DELIVERY_HEADER = "X-Cartcast-Delivery"

INSERT_ESCALATION = """
INSERT INTO escalation_outbox (brand_id, mention_id, body, created_at, next_attempt_at)
VALUES (:brand_id, :mention_id, :body, :now, :now)
ON CONFLICT (mention_id) DO NOTHING
RETURNING id
"""
# Each brand's oldest due row first, then each one's second, and so on: a CRM that
# is down with a backlog of more than a run's rows (tried once a run, the rest of
# them skipped) would otherwise fill every run, and no other brand's would be sent.
SELECT_DUE = """
SELECT id FROM (
    SELECT id, next_attempt_at,
        row_number() OVER (PARTITION BY brand_id ORDER BY next_attempt_at, id)
            AS place_in_brand
    FROM escalation_outbox
    WHERE delivered_at IS NULL AND abandoned_at IS NULL AND next_attempt_at <= :now
) due
ORDER BY place_in_brand, next_attempt_at, id
LIMIT :limit
"""
# Locked while it is sent, so two overlapping runs never both send it.
LOCK_ESCALATION = """
SELECT o.id, o.brand_id, o.mention_id, o.body, o.created_at, o.attempts,
    b.escalation_webhook_url, b.xmin::text AS brand_version, b.escalation_secret
FROM escalation_outbox o JOIN brands b ON b.id = o.brand_id
WHERE o.id = :id AND o.delivered_at IS NULL AND o.abandoned_at IS NULL
    AND o.next_attempt_at <= :now
FOR UPDATE OF o SKIP LOCKED
"""
MARK_DELIVERED = """
UPDATE escalation_outbox SET delivered_at = :now, delivered_to = :channel,
    attempts = attempts + :attempted
WHERE id = :id
"""
MARK_FAILED = """
UPDATE escalation_outbox SET attempts = attempts + 1, last_error = :error,
    next_attempt_at = :next_attempt_at
WHERE id = :id
"""
MARK_ABANDONED = "UPDATE escalation_outbox SET abandoned_at = :now WHERE id = :id"
# Nothing was sent, so no attempt is counted.
MARK_REFUSED = """
UPDATE escalation_outbox SET abandoned_at = :now, last_error = :error WHERE id = :id
"""
# Only the rows waiting out a back-off: one already due keeps its place in line.
END_BACK_OFF = """
UPDATE escalation_outbox SET next_attempt_at = :now
WHERE brand_id = :brand_id AND delivered_at IS NULL AND abandoned_at IS NULL
    AND next_attempt_at > :now
"""
# The rows abandoned because the webhook was refused, young enough to be worth
# sending still: the owner has just set the URL again (decision 0099). A row
# abandoned for its age, or any row older than :oldest, stays abandoned.
REVIVE_REFUSED = """
UPDATE escalation_outbox SET abandoned_at = NULL, next_attempt_at = :now
WHERE brand_id = :brand_id AND delivered_at IS NULL AND abandoned_at IS NOT NULL
    AND last_error LIKE :refused AND created_at >= :oldest
"""
SELECT_ESCALATIONS = """
SELECT mention_id, created_at, attempts, last_error, next_attempt_at, delivered_at,
    delivered_to, abandoned_at
FROM escalation_outbox WHERE brand_id = :brand_id ORDER BY created_at, id
"""


def queue_escalation(
    tx: Transaction, *, brand_id: str, mention: dict[str, Any], now: dt.datetime
) -> bool:
    """Queue one mention for the brand's CRM; False when it was queued before.

    `mention` holds the fields the CRM receives (see `escalation_body`).
    """
    body = escalation_body(brand_id=brand_id, mention=mention)
    queued = tx.scalar(
        INSERT_ESCALATION,
        brand_id=brand_id,
        mention_id=mention["id"],
        body=body,
        now=now,
    )
    return queued is not None


def escalation_body(*, brand_id: str, mention: dict[str, Any]) -> str:
    """Return the JSON the CRM receives for one mention, as the bytes to sign."""
    due = mention.get("response_due_at")
    payload = {
        "type": "mention.escalated",
        "brand_id": str(brand_id),
        "mention": {
            "id": str(mention["id"]),
            "x_post_id": mention["x_post_id"],
            "url": f"https://x.com/i/web/status/{mention['x_post_id']}",
            "author_username": mention.get("author_username"),
            "author_followers": mention.get("author_followers"),
            "text": mention["text"],
            "posted_at": mention["posted_at"].isoformat(),
            "intent": mention["intent"],
            "sentiment": mention["sentiment"],
            "priority": mention["priority"],
            "response_due_at": due.isoformat() if due else None,
            "reasons": list(mention.get("reasons") or ()),
        },
    }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def sign(secret: str, body: bytes, *, timestamp_s: int) -> str:
    """Return the X-Cartcast-Signature value for `body` sent at `timestamp_s`."""
    message = str(timestamp_s).encode("ascii") + b"." + body
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()
    return f"t={timestamp_s},v1={digest}"


def verify(
    secret: str, body: bytes, header: str, *, now_s: int, tolerance_s: int = 300
) -> bool:
    """Check a signature header as a receiver should: HMAC, then the timestamp."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp_s = int(parts["t"])
    except (KeyError, ValueError):
        return False
    expected = sign(secret, body, timestamp_s=timestamp_s)
    fresh = abs(now_s - timestamp_s) <= tolerance_s
    return hmac.compare_digest(expected, header.strip()) and fresh


def end_back_off(tx: Transaction, *, brand_id: str, now: dt.datetime) -> int:
    """Make the brand's undelivered escalations that wait out a back-off due `now`.

    For a webhook the owner has just set: the failures counted against the old one
    say nothing of it. Abandoned rows are left as they are. Returns how many came
    due.
    """
    return tx.execute(END_BACK_OFF, brand_id=brand_id, now=now)


def revive_refused(
    tx: Transaction, *, brand_id: str, now: dt.datetime, max_age_s: float
) -> int:
    """Make the brand's escalations abandoned as refused, and younger than
    `max_age_s`, due `now` again (webhook_outboxes.revive_refused)."""
    return webhook_outboxes.revive_refused(
        tx, REVIVE_REFUSED, brand_id=brand_id, now=now, max_age_s=max_age_s
    )


def list_escalations(tx: Transaction, *, brand_id: str) -> list[dict[str, Any]]:
    """Return the brand's escalations, oldest first."""
    return tx.rows(SELECT_ESCALATIONS, brand_id=brand_id)


def deliver_pending(
    runtime: Any, *, budget: DeliveryBudget | None = None
) -> dict[str, int]:
    """Send the escalations that are due (at most ESCALATIONS_PER_RUN); count them.

    Args:
        budget: the run's time for webhook deliveries (delivery_budget.py), shared
            with its alerts; CARTCAST_WEBHOOK_BUDGET_S from now when None. The rows
            not started in it stay due (`escalations_out_of_time`).
    """
    counts = {
        "escalations_sent": 0,
        "escalations_logged": 0,
        "escalations_failed": 0,
        "escalations_out_of_time": 0,
    }
    if budget is None:
        budget = DeliveryBudget.starting_now(runtime)
    now = runtime.clock.now()
    reads = runtime.database.reads()
    due = [
        row["id"] for row in reads.rows(SELECT_DUE, now=now, limit=ESCALATIONS_PER_RUN)
    ]

    run_webhooks = RunWebhooks()
    return budget.deliver_in_time(
        due,
        lambda escalation_id: _deliver_one(runtime, escalation_id, run_webhooks),
        counts,
        out_of_time="escalations_out_of_time",
    )


def _deliver_one(
    runtime: Any, escalation_id: int, run_webhooks: RunWebhooks
) -> str | None:
    """Send, log, defer or abandon one escalation under its row lock."""
    now = runtime.clock.now()
    settings = runtime.settings
    with runtime.database.transaction() as tx:
        row = tx.one(LOCK_ESCALATION, id=escalation_id, now=now)
        if row is None:
            return None  # another run has it, or has sent it
        url = row["escalation_webhook_url"]
        log_fields = {
            "brand_id": str(row["brand_id"]),
            "mention_id": str(row["mention_id"]),
        }

        if url is None:
            runtime.log.warning(
                "escalation logged: the brand has no escalation_webhook_url",
                extra=fields(**log_fields),
            )
            tx.execute(
                MARK_DELIVERED, id=escalation_id, now=now, channel="log", attempted=0
            )
            return "escalations_logged"
        if run_webhooks.failed_earlier(url):
            return None  # already failed in this run; its rows wait for the next
        age = now - row["created_at"]
        if age > dt.timedelta(seconds=settings.escalation_max_age_s):
            runtime.log.error(
                "escalation abandoned: the CRM never took it",
                extra=fields(**log_fields, attempts=row["attempts"]),
            )
            tx.execute(MARK_ABANDONED, id=escalation_id, now=now)
            return "escalations_failed"

        try:
            problem = run_webhooks.post(
                url,
                lambda: _post(
                    runtime,
                    url,
                    row["body"].encode("utf-8"),
                    secret=row["escalation_secret"],
                    delivery_id=str(escalation_id),
                    now=now,
                ),
                brand_version=row["brand_version"],
            )
        except WebhookRefused as error:
            abandoned = abandon_refused(
                runtime,
                tx,
                error,
                brand_version=row["brand_version"],
                mark_refused=MARK_REFUSED,
                row_id=escalation_id,
                brand_id=row["brand_id"],
                what="escalation",
                log_fields=log_fields,
                now=now,
            )
            return "escalations_failed" if abandoned else None
        if problem is None:
            tx.execute(
                MARK_DELIVERED,
                id=escalation_id,
                now=now,
                channel="webhook",
                attempted=1,
            )
            return "escalations_sent"
        delay = webhook_retry_delay(settings.escalation_retry_base_s, row["attempts"])
        tx.execute(
            MARK_FAILED,
            id=escalation_id,
            error=problem[:ERROR_LENGTH_MAX],
            next_attempt_at=now + delay,
        )
    runtime.log.warning(
        "escalation webhook failed; retrying later",
        extra=fields(**log_fields, reason=problem, retry_in_s=delay.total_seconds()),
    )
    return "escalations_failed"


def _post(
    runtime: Any,
    url: str,
    body: bytes,
    *,
    secret: str,
    delivery_id: str,
    now: dt.datetime,
) -> str | None:
    """POST a signed body to the CRM's webhook; return the problem, or None.

    Raises:
        WebhookRefused: nothing was sent, and nothing will be to this URL.
    """
    headers = {
        "Content-Type": "application/json",
        DELIVERY_HEADER: delivery_id,
        SIGNATURE_HEADER: sign(secret, body, timestamp_s=int(now.timestamp())),
    }
    return post_webhook(
        runtime,
        url,
        body,
        headers=headers,
        timeout_s=runtime.settings.escalation_timeout_s,
    )
