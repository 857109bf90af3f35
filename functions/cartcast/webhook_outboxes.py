"""What the two webhook outboxes, alerts.py and escalations.py, do alike.

Both send a brand's rows to the brand's webhook, one row per transaction, and
both remember within a run what each webhook URL did (`RunWebhooks`): a URL that
failed is not called again in that run, its other rows waiting for the next; a
URL that was refused (webhooks.WebhookRefused: its host is at an address cartcast
does not reach) refuses its other rows on the same answer, without another lookup,
while they were read with the same version of the brand's row.

A refused row is abandoned at once (`abandon_refused`): nothing was sent, so no
attempt is counted, `last_error` reads "webhook refused: <why>", and one ERROR
line says which row. No retry could reach another address, but the owner who
repairs the URL revives the refused rows still young enough to matter
(`REFUSED_PATTERN`, used by each outbox's `revive_refused`; decision 0099).

The row was read with the brand's URL before the lookup; a PATCH that set the URL
meanwhile (a new one, or the same once its DNS is repaired) looked for refused
rows to revive before this one was refused, and found none. So before the row is
abandoned, the brand's row is read again under a share lock and its version
(PostgreSQL's xmin, new at each update) compared with the one read with the URL:
a brand updated since leaves the row due for the next run, which looks the host
up again, and a PATCH that commits later waits for this transaction and then
revives the row.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from cartcast.db import Transaction
from cartcast.logs import fields
from cartcast.webhooks import WebhookRefused

# The most of a problem both outboxes keep in a row's last_error.
ERROR_LENGTH_MAX = 500
# The brand's row version now, locked against a PATCH until the row is settled.
BRAND_VERSION_NOW = "SELECT xmin::text FROM brands WHERE id = :brand_id FOR SHARE"
REFUSED_PREFIX = "webhook refused: "
# LIKE's pattern for a row's last_error when it was abandoned as refused; the
# prefix holds no % or _ to escape.
REFUSED_PATTERN = REFUSED_PREFIX + "%"


class RunWebhooks:
    """What one delivery run has learned of the webhook URLs it called."""

    def __init__(self) -> None:
        self._failed: set[str] = set()
        # (URL, the brand row's version it was read with) -> the refusal's message:
        # a brand changed since (its URL set again) gets a lookup of its own.
        self._refused: dict[tuple[str, str], str] = {}

    def failed_earlier(self, url: str) -> bool:
        """Say whether `url` failed (not refused) earlier in this run: its rows
        wait for the next run."""
        return url in self._failed

    def post(
        self, url: str, send: Callable[[], str | None], *, brand_version: str
    ) -> str | None:
        """Call `send` (one POST to `url`, read with the brand row's
        `brand_version`) and return its problem, or None.

        Raises:
            WebhookRefused: from `send`, or at once for a URL refused earlier in
                this run and read with the same brand version (no new lookup).
        """
        refusal = self._refused.get((url, brand_version))
        if refusal is not None:
            raise WebhookRefused(refusal)
        try:
            problem = send()
        except WebhookRefused as error:
            self._refused[(url, brand_version)] = str(error)
            raise
        if problem is not None:
            self._failed.add(url)
        return problem


def abandon_refused(
    runtime: Any,
    tx: Transaction,
    error: WebhookRefused,
    *,
    brand_version: str,
    mark_refused: str,
    row_id: int,
    brand_id: str,
    what: str,
    log_fields: Mapping[str, Any],
    now: dt.datetime,
) -> bool:
    """Abandon one row whose webhook is refused, and say so in an ERROR line;
    return False, abandoning nothing, when the brand's row has changed since
    its URL was read (`brand_version`).

    The brand's row is read FOR SHARE (`BRAND_VERSION_NOW`), so a PATCH of it
    waits for, or is seen by, this row.

    Args:
        mark_refused: the outbox's UPDATE of `abandoned_at` (:now) and
            `last_error` (:error) for the row :id; it counts no attempt.
        what: the row's kind as the log line opens ("alert", "escalation").
    """
    if tx.scalar(BRAND_VERSION_NOW, brand_id=brand_id) != brand_version:
        runtime.log.info(
            f"{what} not abandoned: its brand was changed while it was refused",
            extra=fields(**log_fields),
        )
        return False
    reason = f"{REFUSED_PREFIX}{error}"
    tx.execute(mark_refused, id=row_id, now=now, error=reason[:ERROR_LENGTH_MAX])
    runtime.log.error(
        f"{what} abandoned: its webhook is refused",
        extra=fields(**log_fields, reason=reason),
    )
    return True


def revive_refused(
    tx: Transaction,
    revive_refused_sql: str,
    *,
    brand_id: str,
    now: dt.datetime,
    max_age_s: float,
) -> int:
    """Make the brand's rows abandoned as refused, and younger than `max_age_s`,
    due `now` again; return how many.

    For a webhook URL the owner has just set: a refusal says where the old URL's
    host pointed, and nothing was sent. Those past `max_age_s` would only be
    abandoned again, for their age, at their next delivery.

    Args:
        revive_refused_sql: the outbox's UPDATE clearing `abandoned_at` and
            setting `next_attempt_at` (:now) for the brand's (:brand_id)
            undelivered rows whose `last_error` is LIKE :refused and whose
            `created_at` is at least :oldest.
    """
    return tx.execute(
        revive_refused_sql,
        brand_id=brand_id,
        now=now,
        refused=REFUSED_PATTERN,
        oldest=now - dt.timedelta(seconds=max_age_s),
    )
