"""Console sessions that were signed out, refused until they would have expired.

A console cookie is signed, not stored: clearing it in the browser that signs out
leaves any copy of it valid until its expiry. So a sign-out records the session's
id (the cookie's random nonce), hashed, with the instant the cookie expires, in
console_sessions_ended (sql/056; decision 0089), and every console request asks
whether its session is there: one primary-key probe. Past its expiry a cookie is
refused for its age alone, so its row can go: each sign-out deletes a few such
rows, and each hourly rollup_kpis tick deletes the rest.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from cartcast.db import Transaction

SELECT_SIGNED_OUT = (
    "SELECT 1 FROM console_sessions_ended WHERE session_hash = :session_hash"
)
# Signing out twice (two tabs, a resent form) records the session once.
RECORD_SIGNED_OUT = """
INSERT INTO console_sessions_ended (session_hash, expires_at)
VALUES (:session_hash, :expires_at)
ON CONFLICT (session_hash) DO NOTHING
"""
# A few at a time, so a sign-out never waits on a big backlog.
DELETE_SOME_EXPIRED = """
DELETE FROM console_sessions_ended WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM console_sessions_ended WHERE expires_at <= :now LIMIT 100))
"""
DELETE_ALL_EXPIRED = "DELETE FROM console_sessions_ended WHERE expires_at <= :now"


def is_signed_out(tx: Transaction, *, session_id: str) -> bool:
    """Return whether the session was signed out (and has not expired since)."""
    return tx.one(SELECT_SIGNED_OUT, session_hash=_hash(session_id)) is not None


def record(
    tx: Transaction, *, session_id: str, expires_at: dt.datetime, now: dt.datetime
) -> None:
    """Record a sign-out until `expires_at`; idempotent. Clears up to 100 expired."""
    tx.execute(RECORD_SIGNED_OUT, session_hash=_hash(session_id), expires_at=expires_at)
    tx.execute(DELETE_SOME_EXPIRED, now=now)


def sweep_expired(runtime: Any, *, now: dt.datetime) -> dict[str, int]:
    """Delete the sign-outs of sessions already expired; return how many rows went."""
    with runtime.database.transaction() as tx:
        deleted = tx.execute(DELETE_ALL_EXPIRED, now=now)
    return {"console_signouts_removed": deleted}


def _hash(session_id: str) -> str:
    # The table keeps nothing a cookie or its CSRF token is drawn from.
    return hashlib.sha256(session_id.encode()).hexdigest()
