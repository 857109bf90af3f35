"""API keys: made once, shown once, stored only as a SHA-256 hash, each with a role.

A key is 32 random bytes, so a fast hash is enough to make a leaked table useless;
a slow password hash would only add latency to every request (decision 0002).

A brand's key has one of four roles, each allowed what the one before it is:

    viewer     reads posts, the inbox, the pause and the reports
    editor     also drafts, edits and schedules posts, reads and imports the
               catalog, answers mentions and sends orders
    approver   also approves and rejects posts, settles them, pauses and resumes
    admin      also the brand's settings and X account, its keys and audit trail

The operator key (CARTCAST_OPERATOR_KEY) is no brand's: it creates brands and
pauses the deployment's schedule, nothing else. Which route needs which role is
api.ROUTE_ROLES (decision 0031).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import re
import secrets
from typing import Any

from cartcast import audit, validation
from cartcast.db import Transaction
from cartcast.errors import (
    INVALID_TOKEN_CHALLENGE,
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    Unauthorized,
)

KEY_PREFIX = "cc_"
# Lowest first: each role may do what the roles before it may.
ROLES = ("viewer", "editor", "approver", "admin")
OPERATOR = "operator"
KEY_FIELDS = ("name", "role")
# A comma, then an auth-scheme and its credentials: the header sent twice, which
# the server hands over as one value joined by a comma (RFC 9110 section 5.3). No
# key cartcast issues holds a comma (token_urlsafe).
REPEATED_CREDENTIALS = re.compile(r",\s*[!#$%&'*+.^_`|~0-9A-Za-z-]+ +\S")
# Names are what the audit trail shows as the actor: no "system:..." look-alikes,
# and no space at the end, where "ops" and "ops " would read as one name.
KEY_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9 ._@-]{0,62}[A-Za-z0-9._@-])?")
RESERVED_NAMES = ("operator", "system")
# last_used_at is written at most this often per key, so that reads do not all
# become writes of the same row.
LAST_USED_PRECISION = dt.timedelta(minutes=5)

# Two requests for one name can both pass add_key's check before either commits:
# the unique name, not the check, decides which of them gets the key.
INSERT_KEY = """
INSERT INTO api_keys (brand_id, name, role, key_hash, key_prefix, created_at)
VALUES (:brand_id, :name, :role, :key_hash, :key_prefix, :created_at)
ON CONFLICT (brand_id, name) DO NOTHING
RETURNING id
"""
# A live key (the console's session reads it too: a revoked key ends its session).
SELECT_KEY = """
SELECT k.brand_id, k.name, k.role
FROM api_keys k
WHERE k.key_hash = :key_hash AND k.revoked_at IS NULL
"""
# Any key, revoked or not: a revoked key's row names the brand its use concerns.
SELECT_ANY_KEY = """
SELECT k.id, k.brand_id, k.name, k.role, k.revoked_at, k.last_used_at
FROM api_keys k
WHERE k.key_hash = :key_hash
"""
# Run in a transaction of its own (note_use), never the request's: a request
# holding its key's row locked until it commits (a caption call can take 20 s)
# would make a revocation of that key wait for it, and two admins revoking each
# other's keys deadlock on LOCK_LIVE_ADMINS. SKIP LOCKED: of two notes at once,
# one is enough.
MARK_USED = """
UPDATE api_keys SET last_used_at = :now
WHERE id = (
    SELECT id FROM api_keys
    WHERE id = :id AND (last_used_at IS NULL OR last_used_at < :stale_before)
    FOR UPDATE SKIP LOCKED
)
"""
SELECT_KEYS = """
SELECT id, name, role, key_prefix, created_at, last_used_at, revoked_at
FROM api_keys WHERE brand_id = :brand_id
ORDER BY created_at, name
"""
SELECT_KEY_BY_ID = """
SELECT id, name, role, key_prefix, created_at, last_used_at, revoked_at
FROM api_keys WHERE brand_id = :brand_id AND id = :id
FOR UPDATE
"""
SELECT_KEY_NAMED = "SELECT 1 FROM api_keys WHERE brand_id = :brand_id AND name = :name"
# Locks every live admin key of the brand, so two admins revoking each other at
# once cannot both pass the check that one admin stays.
LOCK_LIVE_ADMINS = """
SELECT id FROM api_keys
WHERE brand_id = :brand_id AND role = 'admin' AND revoked_at IS NULL
ORDER BY id
FOR UPDATE
"""
REVOKE_KEY = "UPDATE api_keys SET revoked_at = :now WHERE id = :id"


@dataclasses.dataclass(frozen=True)
class Caller:
    """Who is calling: a brand's key, or the operator."""

    brand_id: str | None
    key_name: str
    role: str
    # The key's row and when its use was last noted (note_use); None for the
    # operator key.
    key_id: str | None = dataclasses.field(default=None, compare=False)
    last_used_at: dt.datetime | None = dataclasses.field(default=None, compare=False)

    @property
    def is_operator(self) -> bool:
        return self.role == OPERATOR


class RevokedKey(Unauthorized):
    """A revoked key was used; its brand is known, so the attempt is recorded."""

    def __init__(self, message: str, *, brand_id: str, key_name: str) -> None:
        super().__init__(message, challenge=INVALID_TOKEN_CHALLENGE)
        self.brand_id = brand_id
        self.key_name = key_name


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def name_taken(name: str) -> Conflict:
    """Return the 409 for a key name the brand has used, revoked or not."""
    return Conflict(
        f"the brand has a key named {name!r} already (revoked keys keep their names)",
        field="name",
    )


def create_key(
    tx: Transaction, *, brand_id: str, name: str, role: str, now: dt.datetime
) -> str:
    """Store a new key for the brand and return it; it cannot be read back later.

    Raises:
        Conflict: the brand has a key of that name, revoked or not, perhaps stored
            by a concurrent request since the caller looked.
    """
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    key_id = tx.scalar(
        INSERT_KEY,
        brand_id=brand_id,
        name=name,
        role=role,
        key_hash=hash_key(key),
        key_prefix=key[:10],
        created_at=now,
    )
    if key_id is None:
        raise name_taken(name)

    return key


def bearer_token(authorization: str | None) -> str:
    """Return the token of an `Authorization: Bearer ...` header, or raise 401."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        if REPEATED_CREDENTIALS.search(authorization or ""):
            # Another scheme's credentials, then a second header: no operator
            # key is read from it, so it is refused as sent twice at once.
            raise _sent_twice()
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    return token.strip()


def _sent_twice() -> InvalidRequest:
    # RFC 6750 section 3.1: credentials given more than once are a 400
    # (invalid_request), not a key that is unknown.
    return InvalidRequest(
        "Authorization is given more than once; send it once, as 'Bearer <key>'",
        field="Authorization",
    )


def authenticate(
    tx: Transaction,
    authorization: str | None,
    *,
    operator_key: str | None,
) -> Caller:
    """Identify the caller from the Authorization header, or raise Unauthorized.

    A revoked key raises RevokedKey, which names its brand. Nothing is written:
    note_use notes the key's use.
    """
    token = bearer_token(authorization)
    # Keys are ASCII (token_urlsafe); hmac.compare_digest raises TypeError for str
    # with other characters, so those are simply unknown, and bytes are compared.
    if not token.isascii():
        raise Unauthorized(
            "unknown or revoked API key", challenge=INVALID_TOKEN_CHALLENGE
        )
    if operator_key and hmac.compare_digest(
        token.encode(), operator_key.encode("utf-8", "surrogateescape")
    ):
        return Caller(brand_id=None, key_name="operator", role="operator")
    if REPEATED_CREDENTIALS.search(token):
        raise _sent_twice()
    row = tx.one(SELECT_ANY_KEY, key_hash=hash_key(token))
    if row is None:
        raise Unauthorized(
            "unknown or revoked API key", challenge=INVALID_TOKEN_CHALLENGE
        )
    if row["revoked_at"] is not None:
        raise RevokedKey(
            "unknown or revoked API key",
            brand_id=str(row["brand_id"]),
            key_name=row["name"],
        )
    return Caller(
        brand_id=str(row["brand_id"]),
        key_name=row["name"],
        role=row["role"],
        key_id=str(row["id"]),
        last_used_at=row["last_used_at"],
    )


def note_use(database: Any, caller: Caller, *, now: dt.datetime) -> None:
    """Note that the caller's key was used now (to LAST_USED_PRECISION).

    In a transaction of its own, committed at once, so that the request's
    transaction never holds its key's row (see MARK_USED).
    """
    if caller.key_id is None:
        return
    stale_before = now - LAST_USED_PRECISION
    if caller.last_used_at is not None and caller.last_used_at >= stale_before:
        return
    with database.transaction() as tx:
        tx.execute(MARK_USED, id=caller.key_id, now=now, stale_before=stale_before)


def require_role(caller: Caller, needed: str) -> None:
    """Raise Forbidden unless the caller's key may act as `needed`.

    `needed` is a role of ROLES, which a brand's key of that role or a higher one
    satisfies, or OPERATOR, which only the operator key does.
    """
    if needed == OPERATOR:
        require_operator(caller)
        return
    allowed = " or ".join(reversed(ROLES[ROLES.index(needed) :]))
    if caller.is_operator:
        raise Forbidden(
            f"this needs a brand's key of role {allowed}; the operator key is no "
            "brand's",
            field="role",
        )
    if ROLES.index(caller.role) < ROLES.index(needed):
        raise Forbidden(
            f"this needs a key of role {allowed}; this key is {caller.role}",
            field="role",
        )


def require_brand(caller: Caller) -> str:
    """Return the caller's brand id; the operator key is not a brand's key."""
    if caller.brand_id is None:
        raise Forbidden("this route needs a brand's API key, not the operator key")
    return caller.brand_id


def require_operator(caller: Caller) -> None:
    if not caller.is_operator:
        raise Forbidden("only the operator key may do this")


def add_key(
    tx: Transaction, *, brand_id: str, body: Any, actor: str, now: dt.datetime
) -> dict[str, Any]:
    """Create a key from {"name", "role"}; return it with the key, shown this once.

    Raises:
        InvalidRequest: a name or role that is missing or not allowed.
        Conflict: the brand has a key of that name, revoked ones included (the
            audit trail names keys, so a name is never reused).
    """
    body = validation.require_object(body)
    validation.only_fields(body, KEY_FIELDS, what="a key")
    # Matched as sent, as docs/openapi.yaml's pattern is: stripping blanks first
    # took " ops", which the spec refuses.
    name = body.get("name")
    if name is None:
        raise InvalidRequest("'name' is required", field="name")
    if (
        not isinstance(name, str)
        or not KEY_NAME.fullmatch(name)
        or name.lower() in RESERVED_NAMES
    ):
        raise InvalidRequest(
            "'name' must be 1 to 64 ASCII letters (A-Z, a-z), digits, spaces or "
            ". _ @ -, starting with a letter or digit, not ending with a space, "
            "and not 'operator' or 'system'",
            field="name",
        )
    role = body.get("role")
    if role not in ROLES:
        raise InvalidRequest(f"'role' must be one of {', '.join(ROLES)}", field="role")
    if tx.scalar(SELECT_KEY_NAMED, brand_id=brand_id, name=name) is not None:
        raise name_taken(name)

    key = create_key(tx, brand_id=brand_id, name=name, role=role, now=now)
    created = next(
        row for row in list_keys(tx, brand_id=brand_id) if row["name"] == name
    )
    audit.record(
        tx,
        brand_id=brand_id,
        actor=actor,
        action="key.created",
        subject=f"key:{name}",
        at=now,
        after={"name": name, "role": role, "prefix": created["prefix"]},
    )
    return {"key": created, "api_key": key}


def list_keys(tx: Transaction, *, brand_id: str) -> list[dict[str, Any]]:
    """Return the brand's keys, revoked ones too, oldest first; never a key itself."""
    return [_view(row) for row in tx.rows(SELECT_KEYS, brand_id=brand_id)]


def revoke_key(
    tx: Transaction, *, brand_id: str, key_id: str, actor: str, now: dt.datetime
) -> dict[str, Any]:
    """Revoke a key at once; a revoked key is answered unchanged.

    Raises:
        NotFound: no such key of this brand.
        Conflict: it is the brand's last admin key, whose loss would leave no one
            able to make keys (the operator key makes none).
    """
    live_admins = tx.rows(LOCK_LIVE_ADMINS, brand_id=brand_id)
    row = tx.one(SELECT_KEY_BY_ID, brand_id=brand_id, id=key_id)
    if row is None:
        raise NotFound("key not found", field="key_id")
    if row["revoked_at"] is not None:
        return _view(row)
    if row["role"] == "admin" and len(live_admins) == 1:
        raise Conflict(
            "this is the brand's last admin key; create another admin key first",
            field="key_id",
        )

    tx.execute(REVOKE_KEY, id=key_id, now=now)
    audit.record(
        tx,
        brand_id=brand_id,
        actor=actor,
        action="key.revoked",
        subject=f"key:{row['name']}",
        at=now,
        before={"revoked_at": None},
        after={"revoked_at": now},
    )
    return _view({**row, "revoked_at": now})


def _view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "role": row["role"],
        "prefix": row["key_prefix"],
        "created_at": row["created_at"],
        "last_used_at": row["last_used_at"],
        "revoked_at": row["revoked_at"],
        "revoked": row["revoked_at"] is not None,
    }
