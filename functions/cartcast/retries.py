"""When to try a post again after X failed before it could have accepted it.

A 5xx or a connection X never took leaves nothing on X, so the post may be sent
again, but not at once and not forever. The n-th retry waits a random time drawn
uniformly between 0 and min(CARTCAST_PUBLISH_RETRY_MAX_S,
CARTCAST_PUBLISH_RETRY_BASE_S × 2^(n-1)): exponential backoff with "full jitter",
which spreads the brands an outage hit so they do not all come back in the same
second (AWS Architecture Blog, "Exponential Backoff And Jitter", 2015). After
CARTCAST_PUBLISH_RETRIES retries the next failure is final. The failures are
counted per post (`posts.transient_failures`); an edit starts the count again.

Nothing here sleeps: the publisher stores the instant as the post's `not_before`
and returns, and the claim skips the post until then. The random source is the
runtime's (`Runtime.random`), so a test seeds it or asserts the bounds.

The outboxes that POST to a brand's webhooks (alerts.py, escalations.py) share
one plainer policy, `webhook_retry_delay`: a failed delivery waits its base (a
setting of each), doubled per earlier attempt, up to an hour, and is not tried
again before then. No jitter: each brand's webhook is a receiver of its own, so
there is no shared service for the retries to crowd back onto at once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random as random_module
from typing import Any

WEBHOOK_RETRY_DELAY_MAX = dt.timedelta(hours=1)


@dataclasses.dataclass(frozen=True)
class RetryPlan:
    """What follows the `failures`-th failure: a retry `at`, or none."""

    failures: int
    limit: int
    at: dt.datetime | None

    @property
    def gives_up(self) -> bool:
        return self.at is None

    def explain(self, reason: str) -> str:
        """Say what happens next and why, as the post's failure_reason."""
        if not self.gives_up:
            at = self.at.strftime("%Y-%m-%dT%H:%M:%SZ")
            return (
                f"will retry at {at} (attempt {self.failures} of {self.limit}): "
                f"{reason}"
            )
        return (
            f"X failed {self.failures} times, the last: {reason}. "
            f"Gave up after {self.limit} retries (CARTCAST_PUBLISH_RETRIES); nothing "
            "was posted. Check X's API status, then schedule a new copy of this "
            "post (POST /v1/captions) once X answers again."
        )


def delay_cap_s(failures: int, *, base_s: float, max_s: float) -> float:
    """Return the longest wait after the `failures`-th failure (1, 2, ...)."""
    # 2 ** 64 is already past any cap; keep the float finite for large counts.
    return min(max_s, base_s * 2.0 ** min(failures - 1, 64))


def plan(
    failures: int,
    *,
    settings: Any,
    random: random_module.Random,
    now: dt.datetime,
) -> RetryPlan:
    """Plan what follows the `failures`-th failure of one post."""
    limit = settings.publish_retries
    if failures > limit:
        return RetryPlan(failures=failures, limit=limit, at=None)

    cap_s = delay_cap_s(
        failures,
        base_s=settings.publish_retry_base_s,
        max_s=settings.publish_retry_max_s,
    )
    wait_s = random.uniform(0.0, cap_s)
    return RetryPlan(
        failures=failures, limit=limit, at=now + dt.timedelta(seconds=wait_s)
    )


def webhook_retry_delay(base_s: float, attempts_before: int) -> dt.timedelta:
    """Return the wait after a failed webhook delivery with `attempts_before` before.

    The base doubles with each earlier attempt, up to WEBHOOK_RETRY_DELAY_MAX.
    """
    cap_s = delay_cap_s(
        attempts_before + 1,
        base_s=base_s,
        max_s=WEBHOOK_RETRY_DELAY_MAX.total_seconds(),
    )
    return dt.timedelta(seconds=cap_s)
