"""Small checks for request bodies, each raising InvalidRequest naming the field.

Every HTTP route validates its whole input before it writes anything, so bad input
answers 400 with the field's name and leaves the database as it was.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from cartcast.clock import parse_instant
from cartcast.errors import InvalidRequest


def require_object(body: Any, where: str = "body") -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidRequest(f"{where} must be a JSON object", field=where)
    return body


def text(
    body: dict,
    name: str,
    *,
    required: bool = True,
    max_len: int = 10_000,
    default: str | None = None,
) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise InvalidRequest(f"'{name}' is required", field=name)
        return default
    if not isinstance(value, str):
        raise InvalidRequest(f"'{name}' must be a string", field=name)
    value = value.strip()
    if required and not value:
        raise InvalidRequest(f"'{name}' must not be empty", field=name)
    if len(value) > max_len:
        raise InvalidRequest(
            f"'{name}' is longer than {max_len} characters", field=name
        )
    return value


def integer(body: dict, name: str, *, default: int, minimum: int, maximum: int) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"'{name}' must be an integer", field=name)
    if not minimum <= value <= maximum:
        raise InvalidRequest(
            f"'{name}' must be between {minimum} and {maximum}", field=name
        )
    return value


def boolean(body: dict, name: str, *, default: bool) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise InvalidRequest(f"'{name}' must be true or false", field=name)
    return value


def money(value: Any, name: str) -> Decimal:
    """Parse a non-negative amount given as a JSON number or a decimal string."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InvalidRequest(f"'{name}' must be a number", field=name)
    try:
        amount = Decimal(str(value))
    except InvalidOperation as error:
        raise InvalidRequest(f"'{name}' must be a number", field=name) from error
    if not amount.is_finite() or amount < 0 or amount >= Decimal("1e10"):
        raise InvalidRequest(f"'{name}' must be a non-negative amount", field=name)
    return amount.quantize(Decimal("0.01"))


def instant(value: Any, name: str) -> dt.datetime:
    if not isinstance(value, str):
        raise InvalidRequest(f"'{name}' must be an ISO-8601 time string", field=name)
    try:
        return parse_instant(value)
    except (ValueError, OverflowError) as error:
        raise InvalidRequest(
            f"'{name}' must be an ISO-8601 time with an offset, e.g. "
            "2026-03-01T09:00:00+01:00",
            field=name,
        ) from error


def time_zone(value: Any, name: str = "time_zone") -> str:
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"'{name}' must be an IANA time zone name", field=name)
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as error:
        raise InvalidRequest(f"unknown time zone {value!r}", field=name) from error
    return value


def identifier(value: Any, name: str) -> str:
    """Return a UUID string; anything else cannot name a row, so it is 404-shaped."""
    try:
        return str(uuid.UUID(str(value)))
    except ValueError as error:
        raise InvalidRequest(f"'{name}' must be a UUID", field=name) from error
