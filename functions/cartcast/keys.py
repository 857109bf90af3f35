"""API keys: made once, shown once, stored only as a SHA-256 hash.

A key is 32 random bytes, so a fast hash is enough to make a leaked table useless;
a slow password hash would only add latency to every request (decision 0002).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import secrets

from cartcast.db import Transaction
from cartcast.errors import Forbidden, Unauthorized

KEY_PREFIX = "cc_"

INSERT_KEY = """
INSERT INTO api_keys (brand_id, name, role, key_hash, key_prefix, created_at)
VALUES (:brand_id, :name, :role, :key_hash, :key_prefix, :created_at)
"""
SELECT_KEY = """
SELECT k.brand_id, k.name, k.role
FROM api_keys k
WHERE k.key_hash = :key_hash AND k.revoked_at IS NULL
"""


@dataclasses.dataclass(frozen=True)
class Caller:
    """Who is calling: a brand's key, or the operator."""

    brand_id: str | None
    key_name: str
    role: str

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(
    tx: Transaction, *, brand_id: str, name: str, role: str, now: dt.datetime
) -> str:
    """Store a new key for the brand and return it; it cannot be read back later."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    tx.execute(
        INSERT_KEY,
        brand_id=brand_id,
        name=name,
        role=role,
        key_hash=hash_key(key),
        key_prefix=key[:10],
        created_at=now,
    )
    return key


def bearer_token(authorization: str | None) -> str:
    """Return the token of an `Authorization: Bearer ...` header, or raise 401."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    return token.strip()


def authenticate(
    tx: Transaction, authorization: str | None, *, operator_key: str | None
) -> Caller:
    """Identify the caller from the Authorization header, or raise Unauthorized."""
    token = bearer_token(authorization)
    # Keys are ASCII (token_urlsafe); hmac.compare_digest raises TypeError for str
    # with other characters, so those are simply unknown, and bytes are compared.
    if not token.isascii():
        raise Unauthorized("unknown or revoked API key")
    if operator_key and hmac.compare_digest(
        token.encode(), operator_key.encode("utf-8", "surrogateescape")
    ):
        return Caller(brand_id=None, key_name="operator", role="operator")
    row = tx.one(SELECT_KEY, key_hash=hash_key(token))
    if row is None:
        raise Unauthorized("unknown or revoked API key")
    return Caller(brand_id=str(row["brand_id"]), key_name=row["name"], role=row["role"])


def require_brand(caller: Caller) -> str:
    """Return the caller's brand id; the operator key is not a brand's key."""
    if caller.brand_id is None:
        raise Forbidden("this route needs a brand's API key, not the operator key")
    return caller.brand_id


def require_operator(caller: Caller) -> None:
    if not caller.is_operator:
        raise Forbidden("only the operator key may do this")
