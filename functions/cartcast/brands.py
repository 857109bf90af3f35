"""Brands: who posts, in which time zone and voice, to which store and X account."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from cartcast import keys, slots, validation
from cartcast.db import Transaction
from cartcast.errors import Conflict, InvalidRequest, NotFound

INSERT_BRAND = """
INSERT INTO brands (slug, name, time_zone, voice, language, banned_words,
    required_hashtags, store_base_url, currency, approvals_required, posting_slots,
    x_user_id, x_username, x_access_token, created_at)
VALUES (:slug, :name, :time_zone, :voice, :language, CAST(:banned_words AS text[]),
    CAST(:required_hashtags AS text[]), :store_base_url, :currency,
    :approvals_required, CAST(:posting_slots AS jsonb), :x_user_id, :x_username,
    :x_access_token, :created_at)
ON CONFLICT (slug) DO NOTHING
RETURNING id
"""
SELECT_BRAND = """
SELECT id, slug, name, time_zone, voice, language, banned_words, required_hashtags,
    store_base_url, currency, approvals_required, posting_slots, x_user_id,
    x_username, created_at
FROM brands WHERE id = :brand_id
"""
SELECT_CONNECTED = """
SELECT id, time_zone, x_user_id, x_access_token, mentions_since_id,
    mentions_resume_token, mentions_pending_newest_id, x_reads_paused_until
FROM brands
WHERE x_user_id IS NOT NULL AND x_access_token IS NOT NULL
ORDER BY id
"""
PAUSE_X_POSTS = "UPDATE brands SET x_posts_paused_until = :until WHERE id = :brand_id"
PAUSE_X_READS = "UPDATE brands SET x_reads_paused_until = :until WHERE id = :brand_id"
# X's rate limits are counted in 15-minute windows (X API v2 rate-limit docs).
X_RATE_LIMIT_WINDOW = dt.timedelta(minutes=15)
SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


def create_brand(tx: Transaction, body: Any, *, now: dt.datetime) -> dict[str, Any]:
    """Create a brand and its first admin key from a request body.

    Returns the brand and the key; the key is shown this once and never again.
    """
    values = parse_brand(body)

    brand_id = tx.scalar(INSERT_BRAND, **values, created_at=now)
    if brand_id is None:
        raise Conflict(f"a brand with slug {values['slug']!r} exists", field="slug")
    key = keys.create_key(tx, brand_id=brand_id, name="admin", role="admin", now=now)

    brand = get_brand(tx, str(brand_id))
    return {"brand": brand, "api_key": key}


def parse_brand(body: Any) -> dict[str, Any]:
    """Validate a brand body and return the column values."""
    body = validation.require_object(body)
    name = validation.text(body, "name", max_len=200)
    slug = validation.text(body, "slug", required=False, max_len=63) or _slugify(name)
    if not SLUG_PATTERN.match(slug):
        raise InvalidRequest(
            "'slug' must be 2-63 lowercase letters, digits or dashes", field="slug"
        )
    store = validation.text(body, "store_base_url", max_len=500)
    if not store.startswith(("https://", "http://")):
        raise InvalidRequest(
            "'store_base_url' must be an http(s) URL", field="store_base_url"
        )
    currency = validation.text(body, "currency", required=False, default="USD").upper()
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise InvalidRequest(
            "'currency' must be a 3-letter ISO 4217 code", field="currency"
        )
    return {
        "slug": slug,
        "name": name,
        "time_zone": validation.time_zone(body.get("time_zone")),
        "voice": validation.text(
            body, "voice", required=False, default="", max_len=2000
        ),
        "language": validation.text(
            body, "language", required=False, default="en", max_len=10
        ),
        "banned_words": _word_list(body, "banned_words"),
        "required_hashtags": _word_list(body, "required_hashtags"),
        "store_base_url": store.rstrip("/"),
        "currency": currency,
        "approvals_required": validation.boolean(
            body, "approvals_required", default=True
        ),
        "posting_slots": json.dumps(
            slots.validate_slots(body.get("posting_slots", slots.DEFAULT_SLOTS))
        ),
        "x_user_id": validation.text(body, "x_user_id", required=False, max_len=30),
        "x_username": validation.text(body, "x_username", required=False, max_len=30),
        "x_access_token": validation.text(
            body, "x_access_token", required=False, max_len=500
        ),
    }


def get_brand(tx: Transaction, brand_id: str) -> dict[str, Any]:
    brand = tx.one(SELECT_BRAND, brand_id=brand_id)
    if brand is None:
        raise NotFound("brand not found")
    return brand


def connected_brands(tx: Transaction) -> list[dict[str, Any]]:
    """Return every brand with an X account to publish, poll and measure for."""
    return tx.rows(SELECT_CONNECTED)


def pause_x(
    tx: Transaction,
    *,
    brand_id: str,
    family: str,
    reset_at: dt.datetime | None,
    now: dt.datetime,
) -> dt.datetime:
    """Record that X refuses the brand's `family` ("posts" or "reads") for now.

    The pause lasts until X's announced reset, or one 15-minute rate-limit window
    when X gave none; the instant is returned for the log.
    """
    until = reset_at if reset_at is not None and reset_at > now else None
    until = until or now + X_RATE_LIMIT_WINDOW
    query = PAUSE_X_POSTS if family == "posts" else PAUSE_X_READS
    tx.execute(query, brand_id=brand_id, until=until)
    return until


def _word_list(body: dict, name: str) -> list[str]:
    value = body.get(name, [])
    if not isinstance(value, list) or not all(
        isinstance(v, str) and v.strip() for v in value
    ):
        raise InvalidRequest(
            f"'{name}' must be a list of non-empty strings", field=name
        )
    return [v.strip() for v in value]


def _slugify(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:63] or "brand"
