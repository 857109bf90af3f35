"""HTTP plumbing shared by the two HTTP functions: JSON in, JSON out, errors mapped.

Every failure a client can cause answers a 4xx with {"error": {"code", "message",
"field"}}; a request that fails writes nothing, because each request runs in one
transaction that commits only when the handler returns.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from typing import Any

from cartcast.errors import (
    CartcastError,
    ConfigurationError,
    InvalidRequest,
    RateLimited,
    TransientError,
)

BODY_BYTES_MAX = 2 * 1024 * 1024
JSON_HEADERS = {"Content-Type": "application/json", "Cache-Control": "no-store"}

Response = tuple[str, int, dict[str, str]]


def read_json(request: Any, *, optional: bool = False) -> Any:
    """Return the request's JSON body, or raise InvalidRequest saying what is wrong.

    With `optional`, an empty body reads as an empty object.
    """
    if request.content_length and request.content_length > BODY_BYTES_MAX:
        raise InvalidRequest(f"body is larger than {BODY_BYTES_MAX} bytes")
    raw = request.get_data(cache=True)
    if not raw.strip():
        if optional:
            return {}
        raise InvalidRequest("body is empty; send a JSON object")
    if not (request.mimetype or "").endswith("json"):
        raise InvalidRequest("Content-Type must be application/json")
    try:
        text = raw.decode("utf-8")
        body = json.loads(text)
    except (UnicodeDecodeError, ValueError) as error:
        raise InvalidRequest(f"body is not valid JSON: {error}") from error
    # PostgreSQL text cannot hold NUL; refuse it here rather than fail on insert.
    if "\\u0000" in text.lower():
        raise InvalidRequest("strings must not contain NUL (\\u0000) characters")
    return body


def json_response(
    payload: Any, status: int = 200, headers: dict | None = None
) -> Response:
    return (
        json.dumps(payload, default=_encode),
        status,
        {**JSON_HEADERS, **(headers or {})},
    )


def error_response(error: CartcastError, log: Any, now: dt.datetime) -> Response:
    """Map a cartcast error to its HTTP answer."""
    if isinstance(error, InvalidRequest):
        code = type(error).__name__
        body = {"code": _snake(code), "message": str(error), "field": error.field}
        return json_response({"error": body}, error.status)
    if isinstance(error, TransientError):
        headers = {}
        if isinstance(error, RateLimited) and error.reset_at:
            wait_s = int((error.reset_at - now).total_seconds())
            headers["Retry-After"] = str(max(1, wait_s))
        log.warning("dependency unavailable", exc_info=error)
        body = {
            "code": "unavailable",
            "message": "a dependency is unavailable; retry later",
        }
        return json_response({"error": body}, 503, headers)
    if isinstance(error, ConfigurationError):
        log.error("misconfigured", exc_info=error)
    else:
        log.error("request failed", exc_info=error)
    return json_response(
        {"error": {"code": "internal", "message": "internal error"}}, 500
    )


def _encode(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def _snake(name: str) -> str:
    out = "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
    return out
