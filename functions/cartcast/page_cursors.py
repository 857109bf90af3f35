"""The `next` token a paged list answers, and the `after` that reads it back.

A token is the list's kind followed by the last row's sort key, as a JSON list in
URL-safe base64, unpadded. The kind makes a token one list wrote useless to any
other, even where two lists' keys look alike (a time and a UUID). Each list says
how to read its key back (`read`'s `shape`); a token that is not one this list
wrote, however it is broken, is a 400 naming `after`, never a 500.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from cartcast.errors import InvalidRequest

# Longer than any key a list writes; a longer `after` is refused unread.
TOKEN_LENGTH_MAX = 400
# What a broken token raises on its way through base64, JSON and a shape: a
# RecursionError is JSON nested deeper than the reader goes (a few kB of "["), an
# OverflowError an instant with no UTC time Python can hold.
UNREADABLE = (ValueError, TypeError, OverflowError, RecursionError)
# The largest id a bigserial column holds.
ROW_NUMBER_MAX = 2**63 - 1

T = TypeVar("T")


def write(kind: str, key: list[Any]) -> str:
    """Return the token for a row's sort key in the list named `kind`."""
    raw = json.dumps([kind, *key]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def read(token: str, kind: str, shape: Callable[[list[Any]], T]) -> T:
    """Decode a token the list named `kind` wrote and hand its key to `shape`,
    which returns the values the list's query takes and raises one of UNREADABLE
    where they are not such."""
    refused = InvalidRequest(
        "'after' must be the 'next' token of a previous page of this list",
        field="after",
    )
    if len(token) > TOKEN_LENGTH_MAX or not token.isascii():
        raise refused
    try:
        key = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if not isinstance(key, list) or not key or key[0] != kind:
            raise ValueError(kind)
        return shape(key[1:])
    except UNREADABLE as error:
        raise refused from error


def place_after(
    token: str | None, kind: str, shape: Callable[[list[Any]], T], first: T
) -> T:
    """Return where a page starts: `first` when no `after` was given, else the
    place the token holds, read as `read` does (a 400 naming `after` if not)."""
    return first if token is None else read(token, kind, shape)


def next_page(
    rows: list[dict[str, Any]],
    limit: int,
    kind: str,
    key: Callable[[dict[str, Any]], list[Any]],
) -> tuple[list[dict[str, Any]], str | None]:
    """Split the `limit + 1` rows a list's query fetched into its page and the
    `next` token: None when no row is left after the page."""
    page = rows[:limit]
    if len(rows) <= limit:
        return page, None
    return page, write(kind, key(page[-1]))


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
    if not isinstance(value, str):
        raise TypeError(value)
    return str(uuid.UUID(value))


def row_number(value: Any) -> int:
    """Read a bigserial row id; JSON's true is a Python int, so only a real one."""
    if type(value) is not int or not 0 < value <= ROW_NUMBER_MAX:
        raise ValueError(value)
    return value


def instant_and_uuid(key: list[Any]) -> tuple[dt.datetime, str]:
    """Read the key of a list ordered by a time, then a UUID id."""
    at, row_id = key
    return instant(at), uuid_text(row_id)
