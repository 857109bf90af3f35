"""How long one run goes on starting webhook deliveries (escalations, alerts).

A run that POSTs to brands' webhooks must end inside its function's timeout:
score_sentiment (120 s) after its scores, poll_mentions and publish_due_posts after
their own work. Each POST may take its timeout (CARTCAST_ESCALATION_TIMEOUT_S,
CARTCAST_ALERT_TIMEOUT_S), and a run sends up to 20 of each. So a run starts no
delivery once CARTCAST_WEBHOOK_BUDGET_S has passed since its deliveries began, and
ends about one webhook timeout past that: the timeout is a deadline for the whole
POST (pinned_http.pinned_request), every address tried and the answer's head
included, so a webhook that drips its answer cannot stretch it. The first delivery
always starts, so a tiny budget slows delivery down but never stops it. A run
sends its alerts before its escalations (deliver_mention_news), so that first
start is a due crisis alert's, whatever a slow CRM would take.

A row not started is left as it was, due, and the next run or tick sends it:
nothing is locked or marked, so nothing is lost or sent twice. The deployment sets
the budget to a quarter of each delivering function's timeout (terraform/main.tf),
so that the budget and one webhook timeout leave most of the run to its own work.

Time is the runtime's clock, so a test moves it rather than sleeping.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any

from cartcast.clock import Clock


@dataclasses.dataclass(frozen=True)
class DeliveryBudget:
    """The instant after which a run starts no more webhook deliveries."""

    clock: Clock
    deadline: dt.datetime

    @classmethod
    def starting_now(cls, runtime: Any) -> DeliveryBudget:
        """Open a budget of CARTCAST_WEBHOOK_BUDGET_S from the runtime's now."""
        budget = dt.timedelta(seconds=runtime.settings.webhook_budget_s)
        return cls(clock=runtime.clock, deadline=runtime.clock.now() + budget)

    def allows_another(self) -> bool:
        """Say whether a delivery may still start."""
        return self.clock.now() < self.deadline

    def deliver_in_time(
        self,
        row_ids: list[int],
        deliver_one: Callable[[int], str | None],
        counts: dict[str, int],
        *,
        out_of_time: str,
    ) -> dict[str, int]:
        """Deliver the rows in order while the budget allows; count into `counts`.

        `deliver_one` names the count its row adds to (None: another run had it);
        the rows not started are counted under `out_of_time`, and stay due.
        """
        for place, row_id in enumerate(row_ids):
            if not self.allows_another():
                counts[out_of_time] = len(row_ids) - place
                break
            outcome = deliver_one(row_id)
            if outcome is not None:
                counts[outcome] += 1
        return counts


def deliver_mention_news(runtime: Any, *, retry_alerts: bool) -> dict[str, int]:
    """Send the due alerts, then the escalations, under one budget; count them.

    Alerts go first (decision 0075): a crisis alert is the more urgent, and a slow
    CRM after it can no longer spend the budget it needs. A run's first delivery
    always starts, so a due alert always starts; the escalations take what the
    alerts leave. Only a tick retries a failed alert (`retry_alerts`), after its
    back-off: a scoring run, on the path of every Pub/Sub delivery, never waits out
    a webhook already known to fail. Both share one CARTCAST_WEBHOOK_BUDGET_S, so
    the run ends about one webhook timeout past it; what it leaves stays due for
    the next run.
    """
    # Imported here: both outboxes import this module for DeliveryBudget.
    from cartcast import alerts, escalations

    budget = DeliveryBudget.starting_now(runtime)
    alerted = alerts.deliver_pending(runtime, retry=retry_alerts, budget=budget)
    escalated = escalations.deliver_pending(runtime, budget=budget)
    return {**alerted, **escalated}
