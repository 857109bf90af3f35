"""What a bench's live mode (--gemini) asks of the Gemini quota governor.

A bench labels many texts in one run, and its Gemini figure should be Gemini's: it
refuses to start when today's budget cannot carry every request it will make,
waits for the governor's minute window before each request, where a billed
function would fall back at once (quota.py), and stops, writing no figure, when
the quota refuses a batch all the same.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

# The governor's minute window frees a slot within 60 s of the oldest call in it.
MINUTE_WINDOW_WAIT_MAX_S = 61.0


def deployed_settings() -> Any:
    """Load the deployment's settings for a live run, or stop naming what is missing.

    The quota governor keeps its counts in the database, so a live run needs
    DATABASE_URL as well as the key.
    """
    from cartcast import settings as settings_module
    from cartcast.errors import ConfigurationError

    try:
        deployed = settings_module.load()
    except ConfigurationError as error:
        raise SystemExit(f"--gemini needs the deployment's settings: {error}") from None
    if not deployed.gemini_api_key:
        raise SystemExit("--gemini needs GEMINI_API_KEY (and DATABASE_URL for quota)")
    return deployed


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


def stop_for_the_quota(
    reason: str, governor: Any, *, labelled: int, of: str, smaller_run: str = ""
) -> None:
    """Stop the run: the rest labelled offline would pass for Gemini's figure.

    `of` names the whole run ("12 tweets"); `smaller_run` the option that would
    make a run fit, where the bench has one.
    """
    again_at = governor.state()["available_at"].astimezone(dt.UTC)
    raise SystemExit(
        f"--gemini stopped after {labelled} of {of}: {reason}; no figure is "
        "written, since the offline scorer would fill in the rest. Run again once "
        f"the governor allows it ({again_at:%Y-%m-%d %H:%M} UTC){smaller_run}"
    )
