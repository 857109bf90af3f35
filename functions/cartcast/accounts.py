"""A brand's X account as the event functions see it: connected, or paused.

Publishing, polling and the rollup act for every brand with an X account, and each
stays away from an account X has rate-limited until the reset X announced. This
module holds only that state, so the event functions do not load the request
validation that creating and editing brands needs.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from cartcast import costs
from cartcast.db import Reads, Transaction
from cartcast.errors import (
    CartcastError,
    PermanentError,
    RateLimited,
    TransientError,
)
from cartcast.logs import fields

# X's rate limits are counted in 15-minute windows (X API v2 rate-limit docs).
X_RATE_LIMIT_WINDOW = dt.timedelta(minutes=15)
SELECT_CONNECTED = """
SELECT id, time_zone, x_user_id, x_access_token, x_token_expires_at, x_own_app,
    mentions_since_id,
    mentions_resume_token, mentions_resume_started_at, mentions_resume_since_id,
    mentions_pending_newest_id,
    x_reads_paused_until,
    mentions_poll_interval_s, mentions_next_poll_at
FROM brands
WHERE x_user_id IS NOT NULL AND x_access_token IS NOT NULL
  AND x_disconnected_at IS NULL AND offboarding_requested_at IS NULL
ORDER BY id
"""
PAUSE_X_POSTS = "UPDATE brands SET x_posts_paused_until = :until WHERE id = :brand_id"
PAUSE_X_READS = "UPDATE brands SET x_reads_paused_until = :until WHERE id = :brand_id"


def connected_brands(tx: Reads) -> list[dict[str, Any]]:
    """Return every brand with a connected X account to poll and measure for.

    An account X disconnected (connections.py) is left out until a new token, and
    a brand that asked to leave (offboarding.py) is left out from then on."""
    return tx.rows(SELECT_CONNECTED)


def usable_token(runtime: Any, row: dict[str, Any]) -> str | None:
    """Return the brand's stored X token to call with, refreshed first when it
    expires within CARTCAST_X_TOKEN_REFRESH_MARGIN_S (x_oauth.py); None when X
    refused the refresh and the account is now disconnected, or when the token
    has expired and X's token endpoint is unavailable: the read waits for the next
    run, and the other brands' reads go on."""
    expires_at = row.get("x_token_expires_at")
    margin = dt.timedelta(seconds=runtime.settings.x_token_refresh_margin_s)
    if expires_at is None or expires_at - margin > runtime.clock.now():
        return row["x_access_token"]
    from cartcast import x_oauth

    try:
        return x_oauth.usable_token(runtime, row)
    except TransientError as error:
        brand_id = row["brand_id"] if "brand_id" in row else row["id"]
        runtime.log.warning(
            "X's token endpoint unavailable and the token expired; the read waits "
            "for the next run",
            extra=fields(brand_id=str(brand_id), reason=str(error)),
        )
        return None


def pause_x(
    tx: Transaction,
    *,
    brand_id: str,
    family: str,
    reset_at: dt.datetime | None,
    now: dt.datetime,
) -> dt.datetime:
    """Record that X refuses the brand's `family` ("posts" or "reads") for now.

    The pause lasts until X's announced reset, or one 15-minute rate-limit window
    when X gave none; the instant is returned for the log.
    """
    until = reset_at if reset_at is not None and reset_at > now else None
    until = until or now + X_RATE_LIMIT_WINDOW
    query = PAUSE_X_POSTS if family == "posts" else PAUSE_X_READS
    tx.execute(query, brand_id=brand_id, until=until)
    return until


def over_budget_for_reads(runtime: Any, brand: dict[str, Any], *, what: str) -> bool:
    """Tell whether the brand's monthly X budget is spent, logging the skipped read.

    Reads are paid per item X returns, so a brand at its budget makes none until
    the budget is raised or its month ends (costs.at_budget).
    """
    reads = runtime.database.reads()
    reason = costs.at_budget(reads, str(brand["id"]), runtime.clock.now())
    if reason is not None:
        runtime.log.warning(
            f"{what} read skipped: {reason}", extra=fields(brand_id=str(brand["id"]))
        )
    return reason is not None


def note_read_trouble(
    runtime: Any, brand: dict[str, Any], error: CartcastError, *, what: str
) -> None:
    """Record why X did not answer a read for one brand; the caller moves on.

    A rate limit pauses the brand's reads until X's reset; a refusal (a revoked
    token, say) is an error for a person to look at; anything else is X being
    unavailable, and the next scheduled run tries again.
    """
    brand_id = str(brand["id"])
    if isinstance(error, RateLimited):
        with runtime.database.transaction() as tx:
            until = pause_x(
                tx,
                brand_id=brand["id"],
                family="reads",
                reset_at=error.reset_at,
                now=runtime.clock.now(),
            )
        runtime.log.warning(
            f"X rate limit; {what} wait", extra=fields(brand_id=brand_id, until=until)
        )
    elif isinstance(error, PermanentError):
        runtime.log.error(
            f"X refused the {what} read",
            extra=fields(brand_id=brand_id, reason=str(error)),
        )
    else:
        runtime.log.warning(
            f"X unavailable; {what} wait for the next run",
            extra=fields(brand_id=brand_id, reason=str(error)),
        )
