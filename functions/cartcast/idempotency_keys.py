"""Idempotency-Key on caption requests: a client's retry gets the first answer.

A caption request is slow (Gemini may take tens of seconds) and writes drafts that a
brand with approvals off approves at once, so a client whose connection dropped and
who sends the request again would store, and pay for, a second set. As payment
APIs do, the request may carry an `Idempotency-Key` header (1 to 255 visible ASCII
characters), scoped to the brand:

    same key, same body         the first answer, replayed (`Idempotent-Replayed`)
    same key, another body      409 naming Idempotency-Key; nothing is written
    same key, first still busy  waits for it (5 s at most), then replays its
                                answer; past that, 409 with Retry-After

The key is claimed by inserting its row in the request's own transaction, before any
draft is written: a second request with the key waits on the primary key until the
first commits (then replays) or rolls back (then runs itself), or until
KEY_WAIT_MS pass (then 409, Retry-After: the first may take Gemini's whole call).
Only a stored answer (201) is kept; a refused request rolls its claim back, and
its retry runs anew. So does a request whose instance was lost: a dead process's
connection closes and its claim rolls back at once, and a frozen or cut-off one's
transaction is ended by the database once idle for CARTCAST_CAPTION_IDLE_MAX_S
(api.captions_response; decision 0106).
Keys are kept KEEP (a day) and pruned by the hourly rollup tick (decision 0102).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from typing import Any

from cartcast.db import Transaction
from cartcast.errors import Conflict, InvalidRequest

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEEP = dt.timedelta(hours=24)
_KEY = re.compile(r"[\x21-\x7e]{1,255}")
# A second request waits this long for the first holding its key, then is a 409
# with Retry-After: the first holds it across Gemini's call (up to
# gemini_timeout_s, twice with the retry), longer than a database read may wait
# (db.CONNECT_TIMEOUT_S, 10 s) before its connection is given up for lost.
KEY_WAIT_MS = 5_000
BUSY_RETRY_AFTER_S = 5

CLAIM_KEY = """
INSERT INTO caption_idempotency_keys (brand_id, key, request_sha256, created_at)
VALUES (:brand_id, :key, :request_sha256, :now)
ON CONFLICT (brand_id, key) DO NOTHING
RETURNING key
"""
SELECT_KEY = """
SELECT request_sha256, status, response FROM caption_idempotency_keys
WHERE brand_id = :brand_id AND key = :key
"""
STORE_ANSWER = """
UPDATE caption_idempotency_keys
SET status = :status, response = CAST(:response AS jsonb)
WHERE brand_id = :brand_id AND key = :key
"""
DELETE_OLD_KEYS = "DELETE FROM caption_idempotency_keys WHERE created_at < :before"


def parse_key(value: str | None) -> str | None:
    """Return the header's key, None when absent; refuse one that is malformed."""
    if value is None:
        return None
    if not _KEY.fullmatch(value):
        raise InvalidRequest(
            f"'{HEADER}' must be 1 to 255 visible ASCII characters", field=HEADER
        )
    return value


def fingerprint(body: Any) -> str:
    """Hash the request body as parsed, so key order and spacing do not matter."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def claim(
    tx: Transaction, *, brand_id: str, key: str, body: Any, now: dt.datetime
) -> tuple[int, Any] | None:
    """Claim `key` for this request, or return the answer stored under it.

    None: the key is this request's until its transaction ends. Waits while
    another request holds the key uncommitted. Raises Conflict when the key was
    used with another body.
    """
    request_sha256 = fingerprint(body)
    busy = Conflict(
        f"a request with this {HEADER} is still being answered; send it again "
        "shortly to get its answer",
        field=HEADER,
        retry_after_s=BUSY_RETRY_AFTER_S,
    )
    claimed = tx.scalar_waiting_at_most(
        CLAIM_KEY,
        wait_ms=KEY_WAIT_MS,
        refusal=busy,
        brand_id=brand_id,
        key=key,
        request_sha256=request_sha256,
        now=now,
    )
    if claimed is not None:
        return None

    stored = tx.one(SELECT_KEY, brand_id=brand_id, key=key)
    if stored is None or stored["status"] is None:
        # Pruned, or claimed by this transaction already: nothing to replay.
        return None
    if stored["request_sha256"] != request_sha256:
        raise Conflict(
            f"this {HEADER} was used with another request body; send a new key "
            "for a new request",
            field=HEADER,
        )
    return stored["status"], stored["response"]


def remember(
    tx: Transaction, *, brand_id: str, key: str, status: int, answer: str
) -> None:
    """Store the answer (its JSON text) under the key claimed by this transaction."""
    tx.execute(STORE_ANSWER, brand_id=brand_id, key=key, status=status, response=answer)


def sweep_old_keys(runtime: Any, *, now: dt.datetime) -> dict[str, int]:
    """Delete the keys older than KEEP; count them."""
    with runtime.database.transaction() as tx:
        deleted = tx.execute(DELETE_OLD_KEYS, before=now - KEEP)
    return {"idempotency_keys_pruned": deleted}
