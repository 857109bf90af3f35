"""The exceptions cartcast raises, grouped by what the caller should do.

    CartcastError
    ├── ConfigurationError   the deployment is wrong: fix settings, do not retry
    ├── TransientError       a dependency is down or busy: raise so the platform retries
    │   ├── RateLimited      the service said when to come back (`reset_at`)
    │   └── LockNotGranted   a statement waited its lock_timeout and gave way
    ├── PermanentError       retrying cannot help: record the reason and acknowledge
    └── InvalidRequest       the client sent something wrong: HTTP 4xx with a message
        ├── Unauthorized     no key, or a key that matches no brand (401)
        ├── Forbidden        a key that may not do this (403)
        ├── NotFound         absent, or belongs to another brand (404)
        ├── BodyTimedOut     a body that stopped arriving before its end (408)
        ├── Conflict         the request clashes with the current state (409)
        ├── PayloadTooLarge  a body past its route's limit, read away (413)
        ├── UnsupportedMediaType  a body not JSON, not UTF-8 or compressed (415)
        └── TooManyRequests  too many failed tries: wait `retry_after_s` (429)

Adapters translate library exceptions into these with `raise ... from`, so domain code
and entry points never catch a tweepy, google-genai or pg8000 class. A transient
error carries the HTTP `status` the service answered, or None when no answer came
(a refused connection, a timeout); publishing stores it with each attempt.
"""

from __future__ import annotations

import datetime as dt


class CartcastError(Exception):
    """Base of every error cartcast raises on purpose."""


class ConfigurationError(CartcastError):
    """The settings or the deployment are wrong; retrying will not help."""


class TransientError(CartcastError):
    """A dependency failed in a way that may pass; let the platform retry.

    The HTTP answer (503) hides the message, which may quote a library, unless a
    subclass written to be read by the caller sets `message_is_safe`.
    """

    message_is_safe = False

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        # What a Gemini batch was billed before this ended it (an earlier attempt's
        # tokens), so the batch's usage still counts them; empty elsewhere.
        self.usage: dict[str, int] = {}


class RateLimited(TransientError):
    """A service refused for now and said when it will accept again."""

    def __init__(
        self,
        message: str,
        *,
        reset_at: dt.datetime | None = None,
        status: int | None = 429,
    ) -> None:
        super().__init__(message, status=status)
        self.reset_at = reset_at


class LockNotGranted(TransientError):
    """A statement waited PostgreSQL's lock_timeout for a lock and gave up (55P03);
    its transaction was rolled back, and a later try may find the lock free."""


class PermanentError(CartcastError):
    """Retrying cannot help: record the reason and acknowledge the work item."""


class InvalidRequest(CartcastError):
    """The caller sent something wrong; answered with a 4xx naming the problem,
    and with Retry-After when `retry_after_s` says when trying again may help."""

    status = 400

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        retry_after_s: int | None = None,
    ) -> None:
        super().__init__(message)
        self.field = field
        self.retry_after_s = retry_after_s


BEARER_CHALLENGE = 'Bearer realm="cartcast"'
# RFC 6750 section 3.1: a bearer token was sent, and is not one the server takes.
INVALID_TOKEN_CHALLENGE = 'Bearer realm="cartcast", error="invalid_token"'


class Unauthorized(InvalidRequest):
    """No credentials, or ones that identify no one; answered with the
    WWW-Authenticate `challenge` every 401 carries (RFC 9110 section 11.6.1)."""

    status = 401

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        challenge: str = BEARER_CHALLENGE,
    ) -> None:
        super().__init__(message, field=field)
        self.challenge = challenge


class Forbidden(InvalidRequest):
    status = 403


class NotFound(InvalidRequest):
    status = 404


class BodyTimedOut(InvalidRequest):
    status = 408


class Conflict(InvalidRequest):
    status = 409


class PayloadTooLarge(InvalidRequest):
    status = 413


class UnsupportedMediaType(InvalidRequest):
    status = 415


class TooManyRequests(InvalidRequest):
    """The caller failed too often lately; it may try again after `retry_after_s`."""

    status = 429

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message, retry_after_s=retry_after_s)
