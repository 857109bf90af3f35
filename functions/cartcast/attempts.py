"""Publish attempts as a brand sees them: when, what came of it, what X answered.

Every claim of a post starts an attempt (publishing.py); its end stores the
outcome, the HTTP status X answered (`x_status`, None when no answer came) and an
`error_class` from this small vocabulary, so a person or a dashboard can count
failures by cause without parsing the free-text `error`:

    X answered with a refusal or a failure (x_status set)
        rate_limited     429: the account (or app) waits for X's reset
        server_error     5xx: X created nothing; retried with backoff
        duplicate        403 "duplicate content": settled from the timeline
        too_long         the text is over X's limit (400 or 403)
        unauthorized     401: the account is disconnected until a new token
        credentials      403 about the app's or token's permissions: the same
        refused_reply    403: X lets the app reply only where it was summoned
        forbidden        any other 403
        invalid_request  400
        not_found        404
        refused          any other 4xx
    No answer came (x_status null)
        network          the connection was refused or never accepted: nothing sent
        timeout          no answer in time: the post may be on X
        dropped          X closed the connection after the request: the same
        unreadable       the answer broke off or did not parse: the same
    Cartcast stopped before sending (x_status null, nothing reached X)
        held_claims      the catalog no longer supports the copy, or the product
                         is gone (publish_checks.py)
        held_budget      the brand's monthly X budget cannot pay for the post
        held_image       the product's image could not be fetched
        post_limit       one of X's post windows is full (post_limits.py)
        lease_lost       another run took the post, or paused the account
        deployment_paused  the operator paused publishing for the deployment
        part_in_doubt    a thread part sent before without an answer: never resent

A published attempt has `x_status` 201 and no error class. The SQL check
(sql/013, widened by sql/052) holds the same list.
"""

from __future__ import annotations

from typing import Any

from cartcast.db import Transaction

ERROR_CLASSES = frozenset(
    {
        "rate_limited",
        "server_error",
        "network",
        "timeout",
        "dropped",
        "unreadable",
        "duplicate",
        "too_long",
        "unauthorized",
        "credentials",
        "refused_reply",
        "forbidden",
        "invalid_request",
        "not_found",
        "refused",
        "held_claims",
        "held_budget",
        "held_image",
        "post_limit",
        "lease_lost",
        "deployment_paused",
        "part_in_doubt",
    }
)

SELECT_ATTEMPTS = """
SELECT a.id, a.started_at, a.sent_at, a.finished_at, a.outcome, a.x_status,
    a.error_class, a.error, a.x_post_id
FROM publish_attempts a
JOIN posts p ON p.id = a.post_id
WHERE a.post_id = :post_id AND p.brand_id = :brand_id
ORDER BY a.started_at, a.id
"""


def error_class_of(error: Exception) -> str:
    """Name the class of an X failure raised by x.py (see the module docstring)."""
    from cartcast.errors import RateLimited, TransientError
    from cartcast.x import XRejected, XTimeout

    if isinstance(error, XTimeout):
        return error.lost
    if isinstance(error, RateLimited):
        return "rate_limited"
    if isinstance(error, XRejected):
        return error.reason
    if isinstance(error, TransientError) and error.status is not None:
        return "server_error"
    return "network"


def list_attempts(
    tx: Transaction, *, brand_id: str, post_id: str
) -> list[dict[str, Any]]:
    """Return a post's publish attempts, oldest first."""
    rows = tx.rows(SELECT_ATTEMPTS, brand_id=brand_id, post_id=post_id)
    return [{**row, "id": str(row["id"])} for row in rows]
