"""What a bench's live mode (--gemini) asks of the Gemini quota governor.

A bench labels many texts in one run, and its Gemini figure should be Gemini's: it
refuses to start when today's budget cannot carry every request it will make, and
waits for the governor's minute window before each request, where a billed
function would fall back at once (quota.py).
"""

from __future__ import annotations

import time
from typing import Any

# The governor's minute window frees a slot within 60 s of the oldest call in it.
MINUTE_WINDOW_WAIT_MAX_S = 61.0


def check_day_budget(governor: Any, requests: int, batch: int) -> None:
    """Stop before any request when the governor cannot allow them all today."""
    budget = governor.state()
    left = max(budget["per_day"] - budget["calls_today"], 0)
    if requests > left:
        raise SystemExit(
            f"--gemini needs {requests} requests (batches of {batch}) but the quota "
            f"governor has {left} of GEMINI_REQUESTS_PER_DAY={budget['per_day']} "
            "left today: raise it, or CARTCAST_SENTIMENT_BATCH_SIZE, for this run"
        )


def wait_for_the_minute_window(governor: Any, clock: Any) -> None:
    """Sleep until the governor frees a slot, when only its minute window is full.

    A bench may wait where a billed function never does; a longer refusal (a pause
    after a 429) is not waited out, and the next request is refused.
    """
    budget = governor.state()
    if budget["available"]:
        return
    wait_s = (budget["available_at"] - clock.now()).total_seconds()
    if 0 < wait_s <= MINUTE_WINDOW_WAIT_MAX_S:
        print(f"  waiting {wait_s:.0f} s: {budget['unavailable_reason']}", flush=True)
        time.sleep(wait_s + 0.5)
