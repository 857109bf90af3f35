"""Brands: who posts, in which time zone and voice, to which store and X account.

The settings are given when the operator creates the brand; the brand's own key
changes the link policy and its X money settings afterwards (`update_settings`):
whether it brings its own X developer app (`x_own_app`: its own app-wide post
window, and owned reads at the owned price) and its monthly X budget
(`monthly_x_budget_usd`, null for none; costs.py).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import unicodedata
import urllib.parse
from typing import Any

from cartcast import keys, link_policy, slots, validation
from cartcast.db import Transaction
from cartcast.errors import Conflict, InvalidRequest, NotFound

INSERT_BRAND = """
INSERT INTO brands (slug, name, time_zone, voice, language, banned_words,
    required_hashtags, disclosure_tag, store_base_url, currency, approvals_required,
    posting_slots, x_user_id, x_username, x_access_token, link_policy,
    link_posts_per_month, x_own_app, monthly_x_budget_usd, created_at)
VALUES (:slug, :name, :time_zone, :voice, :language, CAST(:banned_words AS text[]),
    CAST(:required_hashtags AS text[]), :disclosure_tag, :store_base_url, :currency,
    :approvals_required, CAST(:posting_slots AS jsonb), :x_user_id, :x_username,
    :x_access_token, :link_policy, :link_posts_per_month, :x_own_app,
    CAST(:monthly_x_budget_usd AS numeric), :created_at)
ON CONFLICT (slug) DO NOTHING
RETURNING id
"""
SELECT_BRAND = """
SELECT id, slug, name, time_zone, voice, language, banned_words, required_hashtags,
    disclosure_tag, store_base_url, currency, approvals_required, posting_slots,
    x_user_id, x_username, link_policy, link_posts_per_month, x_own_app,
    monthly_x_budget_usd, created_at
FROM brands WHERE id = :brand_id
"""
UPDATE_SETTINGS = """
UPDATE brands SET link_policy = :link_policy,
    link_posts_per_month = :link_posts_per_month, x_own_app = :x_own_app,
    monthly_x_budget_usd = CAST(:monthly_x_budget_usd AS numeric)
WHERE id = :brand_id
"""
# What PATCH /v1/brand may change so far; the other settings are fixed at creation.
UPDATABLE_SETTINGS = (
    "link_policy",
    "link_posts_per_month",
    "x_own_app",
    "monthly_x_budget_usd",
)
SELECT_TIME_ZONE = "SELECT name FROM pg_timezone_names WHERE name = :name"
SLUG_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")
STORE_URL_LENGTH_MAX = 200
WORDS_MAX = 100
WORD_LENGTH_MAX = 100
DISCLOSURE_TAG = re.compile(r"#\w{1,29}")
X_USER_ID = re.compile(r"[0-9]{1,19}")
X_USERNAME = re.compile(r"[A-Za-z0-9_]{1,15}")
# Latin letters NFKD does not decompose, spelled the way their languages do.
LATIN_LETTERS_SPELLED = str.maketrans(
    {
        "ß": "ss",
        "æ": "ae",
        "Æ": "AE",
        "œ": "oe",
        "Œ": "OE",
        "ø": "o",
        "Ø": "O",
        "đ": "d",
        "Đ": "D",
        "ð": "d",
        "Ð": "D",
        "þ": "th",
        "Þ": "TH",
        "ł": "l",
        "Ł": "L",
        "ı": "i",
    }
)


def create_brand(tx: Transaction, body: Any, *, now: dt.datetime) -> dict[str, Any]:
    """Create a brand and its first admin key from a request body.

    Returns the brand and the key; the key is shown this once and never again.
    """
    values = parse_brand(body)
    # zoneinfo and PostgreSQL each carry their own copy of the tz database; the
    # rollup converts days with AT TIME ZONE, so the name must be one both know.
    if tx.scalar(SELECT_TIME_ZONE, name=values["time_zone"]) is None:
        raise InvalidRequest(
            f"time zone {values['time_zone']!r} is unknown to the database",
            field="time_zone",
        )

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
    return {
        "slug": _slug(body, name),
        "name": name,
        "time_zone": validation.time_zone(body.get("time_zone")),
        "voice": validation.text(
            body, "voice", required=False, default="", max_len=2000
        ),
        "language": validation.language(body),
        "banned_words": _word_list(body, "banned_words"),
        "required_hashtags": _word_list(body, "required_hashtags"),
        "disclosure_tag": _disclosure_tag(body),
        "store_base_url": _store_base_url(body),
        "currency": validation.currency(body, "currency", default="USD"),
        "approvals_required": validation.boolean(
            body, "approvals_required", default=True
        ),
        "posting_slots": json.dumps(
            slots.validate_slots(body.get("posting_slots", slots.DEFAULT_SLOTS))
        ),
        "x_user_id": _optional_match(body, "x_user_id", X_USER_ID, "1 to 19 digits"),
        "x_username": _optional_match(
            body, "x_username", X_USERNAME, "1 to 15 letters, digits or _"
        ),
        "x_access_token": validation.text(
            body, "x_access_token", required=False, max_len=500
        )
        or None,
        **link_policy.parse_settings(body),
        **_x_money_settings(body),
    }


def update_settings(tx: Transaction, brand_id: str, body: Any) -> dict[str, Any]:
    """Change the brand's link policy (link_policy.py), own-app flag or monthly X
    budget; return the brand.

    Only UPDATABLE_SETTINGS may be sent; a field left out keeps its value.
    """
    body = validation.require_object(body)
    validation.only_fields(body, UPDATABLE_SETTINGS, what="PATCH /v1/brand")
    current = get_brand(tx, brand_id)
    values = link_policy.parse_settings(body, current=current)
    values.update(_x_money_settings(body, current=current))
    tx.execute(UPDATE_SETTINGS, brand_id=brand_id, **values)
    return get_brand(tx, brand_id)


def _x_money_settings(
    body: dict[str, Any], *, current: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Return `x_own_app` and `monthly_x_budget_usd` from a body over `current`.

    A budget is dollars a month, in cents (null: no budget); it is checked
    against what the brand's X calls cost this month in its own time zone.
    """
    current = current or {"x_own_app": False, "monthly_x_budget_usd": None}
    own_app = validation.boolean(body, "x_own_app", default=current["x_own_app"])
    budget = current["monthly_x_budget_usd"]
    if "monthly_x_budget_usd" in body:
        budget = body["monthly_x_budget_usd"]
        if budget is not None:
            budget = validation.money(budget, "monthly_x_budget_usd")
    return {"x_own_app": own_app, "monthly_x_budget_usd": budget}


def _disclosure_tag(body: dict) -> str:
    """Return the hashtag sponsored posts carry (default #ad)."""
    tag = validation.text(body, "disclosure_tag", required=False, max_len=30) or "#ad"
    if not DISCLOSURE_TAG.fullmatch(tag):
        raise InvalidRequest(
            "'disclosure_tag' must be one hashtag, like #ad or #sponsored",
            field="disclosure_tag",
        )
    return tag


def get_brand(tx: Transaction, brand_id: str) -> dict[str, Any]:
    brand = tx.one(SELECT_BRAND, brand_id=brand_id)
    if brand is None:
        raise NotFound("brand not found")
    return brand


def _slug(body: dict, name: str) -> str:
    given = validation.text(body, "slug", required=False, max_len=63)
    slug = given or _slugify(name)
    if not SLUG_PATTERN.fullmatch(slug):
        hint = "" if given else f" (derived from the name: {slug!r}); send a 'slug'"
        raise InvalidRequest(
            f"'slug' must be 2-63 lowercase letters, digits or dashes{hint}",
            field="slug",
        )
    return slug


def _store_base_url(body: dict) -> str:
    """Return the store's http(s) URL without a trailing slash; links add paths."""
    url = validation.text(body, "store_base_url", max_len=STORE_URL_LENGTH_MAX)
    problem = _url_problem(url)
    if problem:
        raise InvalidRequest(
            f"'store_base_url' must be an http(s) URL with a host and no query or "
            f"fragment: {problem}",
            field="store_base_url",
        )
    return url.rstrip("/")


def _url_problem(url: str) -> str | None:
    if any(char.isspace() or not char.isprintable() for char in url):
        return "it contains spaces or control characters"
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - urlsplit checks the port only when asked
    except ValueError as error:
        return str(error)
    if parts.scheme not in ("http", "https"):
        return "the scheme is not http or https"
    if not parts.hostname:
        return "there is no host"
    if parts.username is not None or parts.password is not None:
        return "it carries credentials"
    # links.product_link keeps a query and a fragment where they would then sit,
    # before and after its own parameters; a store base has no need for either.
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        return "it has a query or a fragment"
    return None


def _optional_match(
    body: dict, name: str, pattern: re.Pattern[str], described: str
) -> str | None:
    value = validation.text(body, name, required=False, max_len=100)
    if not value:
        return None
    if not pattern.fullmatch(value):
        raise InvalidRequest(f"'{name}' must be {described}", field=name)
    return value


def _word_list(body: dict, name: str) -> list[str]:
    value = body.get(name, [])
    if (
        not isinstance(value, list)
        or len(value) > WORDS_MAX
        or not all(
            isinstance(v, str) and v.strip() and len(v) <= WORD_LENGTH_MAX
            for v in value
        )
    ):
        raise InvalidRequest(
            f"'{name}' must be a list of at most {WORDS_MAX} non-empty strings of "
            f"up to {WORD_LENGTH_MAX} characters",
            field=name,
        )
    return [v.strip() for v in value]


def _slugify(name: str) -> str:
    """Spell a name in ASCII slug letters: "Crème Brûlée Co." -> "creme-brulee-co"."""
    ascii_name = unicodedata.normalize("NFKD", name.translate(LATIN_LETTERS_SPELLED))
    ascii_name = ascii_name.encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:63].strip("-")
