"""The `next` token a paged list answers, and the `after` that reads it back.

A token is the last row's sort key as a JSON list in URL-safe base64, unpadded.
Each list says how to read its key back (`read`'s `shape`); a token that is not
one a list wrote, however it is broken, is a 400 naming `after`, never a 500.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable
from typing import Any, TypeVar

from cartcast.errors import InvalidRequest

# Longer than any key a list writes; a longer `after` is refused unread.
TOKEN_LENGTH_MAX = 400
# What a broken token raises on its way through base64, JSON and a shape: a
# RecursionError is JSON nested deeper than the reader goes (a few kB of "["), an
# OverflowError an instant with no UTC time Python can hold.
UNREADABLE = (ValueError, TypeError, OverflowError, RecursionError)

T = TypeVar("T")


def write(key: list[Any]) -> str:
    """Return the token for a row's sort key."""
    raw = json.dumps(key).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def read(token: str, shape: Callable[[list[Any]], T]) -> T:
    """Decode a token and hand its key to `shape`, which returns the values the
    list's query takes and raises one of UNREADABLE where they are not such."""
    refused = InvalidRequest(
        "'after' must be the 'next' token of a previous page", field="after"
    )
    if len(token) > TOKEN_LENGTH_MAX or not token.isascii():
        raise refused
    try:
        key = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if not isinstance(key, list):
            raise TypeError(key)
        return shape(key)
    except UNREADABLE as error:
        raise refused from error


def instant(value: Any) -> dt.datetime:
    """Read an ISO instant that carries its offset, in UTC as the database compares.

    "0001-01-01T00:00:00+14:00" parses but has no UTC instant: OverflowError.
    """
    if not isinstance(value, str):
        raise TypeError(value)
    parsed = dt.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(value)
    return parsed.astimezone(dt.UTC)


def uuid_text(value: Any) -> str:
    """Read a row id written as a UUID string, in its canonical form."""
    import uuid

    if not isinstance(value, str):
        raise TypeError(value)
    return str(uuid.UUID(value))
