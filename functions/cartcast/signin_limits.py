"""A bound on failed console sign-ins per client address, against guessing keys.

Each failed sign-in adds one to its client's count in the current fixed window
(CARTCAST_CONSOLE_SIGNIN_WINDOW_MIN); once the count reaches
CARTCAST_CONSOLE_SIGNIN_FAILURES, every sign-in from that address is answered 429
with Retry-After until the window ends, before any key is looked up. Functions keep
nothing between requests, so the counts are rows of console_signin_failures
(sql/037; decision 0038); each hourly rollup_kpis tick deletes the rows of
windows that are over, so no address is kept past its window for long.

The client is the address that reached Google's front end: the entry
CARTCAST_CONSOLE_PROXY_HOPS from the right of X-Forwarded-For (entries to its left
are whatever the client sent), or the peer's address when no proxy is in front.
IPv6 clients are counted by their /64, the block one host is usually given.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from typing import Any

from cartcast.db import Transaction
from cartcast.errors import TooManyRequests

# Sign-ins from one client take turns from the check to the commit: two guesses
# racing would both read the count before either added to it, and a burst would get
# past the limit. Two-key advisory locks 7310-7313 are taken (audit.py).
LOCK_CLIENT = "SELECT pg_advisory_xact_lock(7314, hashtext(:client))"
SELECT_FAILURES = """
SELECT failures FROM console_signin_failures
WHERE client = :client AND window_start = :window_start
"""
COUNT_FAILURE = """
INSERT INTO console_signin_failures AS f (client, window_start, failures)
VALUES (:client, :window_start, 1)
ON CONFLICT (client, window_start) DO UPDATE SET failures = f.failures + 1
RETURNING failures
"""
# Past windows count for nothing; each failure clears them, a few at a time.
DELETE_PAST = """
DELETE FROM console_signin_failures WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM console_signin_failures WHERE window_start < :window_start
    LIMIT 100))
"""
# The sweep each hourly rollup_kpis tick runs: an address is kept no longer than
# its window, even when no later failure comes to clear it.
DELETE_ALL_PAST = (
    "DELETE FROM console_signin_failures WHERE window_start < :window_start"
)
UNKNOWN_CLIENT = "unknown"


def client_address(remote_addr: str | None, forwarded_for: str, hops: int) -> str:
    """Return the address a sign-in is counted against."""
    if hops > 0:
        entries = [entry.strip() for entry in forwarded_for.split(",")]
        entries = [entry for entry in entries if entry]
        found = entries[-hops] if len(entries) >= hops else None
    else:
        found = remote_addr
    try:
        address = ipaddress.ip_address((found or "").strip())
    except ValueError:
        # No usable address: such requests share one count, so a flood of them
        # is still bounded.
        return UNKNOWN_CLIENT
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def check(
    tx: Transaction,
    *,
    client: str,
    now: dt.datetime,
    failures_max: int,
    window_min: int,
) -> None:
    """Raise TooManyRequests when the client has used up its failures this window.

    Holds the client's lock until the transaction ends, so the failure it then
    records is counted before the client's next sign-in is checked.
    """
    window_start, window_end = _window(now, window_min)
    tx.scalar(LOCK_CLIENT, client=client)
    failures = tx.scalar(SELECT_FAILURES, client=client, window_start=window_start)
    if failures is not None and failures >= failures_max:
        wait_s = max(1, int((window_end - now).total_seconds()))
        raise TooManyRequests(
            f"too many failed sign-ins from your address; try again in "
            f"{_spelled(wait_s)}",
            retry_after_s=wait_s,
        )


def record_failure(
    tx: Transaction, *, client: str, now: dt.datetime, window_min: int
) -> int:
    """Count one failed sign-in; return the client's failures in this window."""
    window_start, _ = _window(now, window_min)
    tx.execute(DELETE_PAST, window_start=window_start)
    return tx.scalar(COUNT_FAILURE, client=client, window_start=window_start)


def sweep_past_windows(runtime: Any, *, now: dt.datetime) -> dict[str, int]:
    """Delete the failures of windows already over; return how many rows went."""
    window_start, _ = _window(now, runtime.settings.console_signin_window_min)
    with runtime.database.transaction() as tx:
        deleted = tx.execute(DELETE_ALL_PAST, window_start=window_start)
    return {"signin_failures_removed": deleted}


def _window(now: dt.datetime, window_min: int) -> tuple[dt.datetime, dt.datetime]:
    """Return the fixed window `now` falls in, counted from the Unix epoch."""
    length_s = window_min * 60
    start_s = int(now.timestamp()) // length_s * length_s
    start = dt.datetime.fromtimestamp(start_s, dt.UTC)
    return start, start + dt.timedelta(seconds=length_s)


def _spelled(seconds: int) -> str:
    minutes = -(-seconds // 60)
    return f"{seconds} seconds" if seconds < 60 else f"{minutes} minute(s)"
