"""Brands: who posts, in which time zone and voice, to which store and X account.

The settings are given when the operator creates the brand; the brand's own key
changes the link policy and its X money settings afterwards, and an admin key the
X account and the alert webhook (`update_brand`). The money settings: whether the
brand brings its own X developer app (`x_own_app`: its own app-wide post window,
and owned reads at the owned price) and its monthly X budget
(`monthly_x_budget_usd`, null for none; costs.py). Setting an X token or user
reconnects an account X disconnected (connections.py): the posts held for it are
queued again.

X tokens are written, never read back (`has_x_token`); a token given here is
sealed before it is stored when a token key is configured, and an account is best
connected through X's OAuth flow instead (x_oauth.py), which also refreshes it.

`webhook_secret` is the shared secret the store signs order webhooks with
(order_webhooks.py); like the alert webhook it is written, never read back
(`has_webhook_secret`), and null removes it.

`alert_webhook_url` takes https only; http is accepted only to a loopback address
when CARTCAST_ENV is local (the tests' receiver). An https URL whose host is an IP
literal that is no public unicast address is refused too (addresses.py), and so,
through the API, is a name that resolves to one when it is set
(`check_webhook_hosts`); a name that does not resolve yet is accepted, and each
delivery looks it up again (decision 0099).

Setting a webhook URL (alerts or escalations, a new one or the same one again),
or the escalation secret while a CRM URL is set, makes the brand's alerts or
escalations that wait out a failed webhook's back-off due at once, in the
transaction that stores it: the owner has just repaired it. A URL sent also
revives those abandoned because the webhook was refused, while they are younger
than their outbox's max age (decision 0099). Removing a URL does not, and those
abandoned for their age stay abandoned (alerts.py, escalations.py).
"""

from __future__ import annotations

import datetime as dt
import decimal
import ipaddress
import json
import re
import socket
import unicodedata
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any

from cartcast import (
    addresses,
    alerts,
    audit,
    connections,
    hashtags,
    keys,
    link_policy,
    links,
    post_text,
    slots,
    validation,
    web,
)
from cartcast.db import Transaction
from cartcast.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    TransientError,
)
from cartcast.settings import Settings

# How a webhook URL's host is looked up when it is set: pinned_http.Resolver.
HostLookup = Callable[[str, int], Sequence[str]]

# A brand that leaves but keeps its KPIs is written back under this prefix and
# its id (offboarding.stripped_slug): no new brand may take such a slug, or the
# write-back would fail at every sweep. Kept here, not in offboarding, so the
# functions that create drafts do not import the module that revokes X tokens.
STRIPPED_SLUG_PREFIX = "offboarded-"

INSERT_BRAND = """
INSERT INTO brands (slug, name, time_zone, voice, language, banned_words,
    required_hashtags, disclosure_tag, store_base_url, currency, approvals_required,
    posting_slots, x_user_id, x_username, x_access_token, link_policy,
    link_posts_per_month, x_own_app, monthly_x_budget_usd, alert_webhook_url,
    created_at)
VALUES (:slug, :name, :time_zone, :voice, :language, CAST(:banned_words AS text[]),
    CAST(:required_hashtags AS text[]), :disclosure_tag, :store_base_url, :currency,
    :approvals_required, CAST(:posting_slots AS jsonb), :x_user_id, :x_username,
    :x_access_token, :link_policy, :link_posts_per_month, :x_own_app,
    CAST(:monthly_x_budget_usd AS numeric), :alert_webhook_url, :created_at)
ON CONFLICT DO NOTHING
RETURNING id
"""
# A Slack webhook URL carries its own secret: it is written, never read back.
SELECT_BRAND = """
SELECT id, slug, name, time_zone, voice, language, banned_words, required_hashtags,
    disclosure_tag, store_base_url, currency, approvals_required, posting_slots,
    x_user_id, x_username, link_policy, link_posts_per_month, x_own_app,
    monthly_x_budget_usd, alert_webhook_url IS NOT NULL AS has_alert_webhook,
    escalation_webhook_url IS NOT NULL AS has_escalation_webhook,
    order_issue_due_min, complaint_due_min, question_due_min,
    order_webhook_secret IS NOT NULL AS has_webhook_secret,
    x_disconnected_at, x_disconnected_reason,
    x_access_token IS NOT NULL AS has_x_token, x_token_expires_at, x_token_scopes,
    created_at
FROM brands WHERE id = :brand_id
"""
UPDATE_SETTINGS = """
UPDATE brands SET link_policy = :link_policy,
    link_posts_per_month = :link_posts_per_month, x_own_app = :x_own_app,
    monthly_x_budget_usd = CAST(:monthly_x_budget_usd AS numeric)
WHERE id = :brand_id
"""
# An X account belongs to one brand (sql/014). Checked under a lock keyed by the
# account, so two requests naming it at once get a 409 each but the first.
LOCK_X_ACCOUNT = "SELECT pg_advisory_xact_lock(7311, hashtext(:x_user_id))"
SELECT_ACCOUNT_HOLDER = """
SELECT slug FROM brands WHERE x_user_id = :x_user_id
  AND (CAST(:brand_id AS uuid) IS NULL OR id <> CAST(:brand_id AS uuid))
"""
# A token set by hand has no refresh token and no known expiry (decision 0030).
UPDATE_X_ACCOUNT = """
UPDATE brands SET x_access_token = COALESCE(:x_access_token, x_access_token),
    x_refresh_token = CASE WHEN CAST(:x_access_token AS text) IS NULL
        THEN x_refresh_token END,
    x_token_expires_at = CASE WHEN CAST(:x_access_token AS text) IS NULL
        THEN x_token_expires_at END,
    x_token_scopes = CASE WHEN CAST(:x_access_token AS text) IS NULL
        THEN x_token_scopes END,
    x_user_id = COALESCE(:x_user_id, x_user_id),
    x_username = COALESCE(:x_username, x_username)
WHERE id = :brand_id
"""
UPDATE_ALERT_WEBHOOK = """
UPDATE brands SET alert_webhook_url = :alert_webhook_url WHERE id = :brand_id
"""
SELECT_ESCALATION = """
SELECT escalation_webhook_url, escalation_secret FROM brands WHERE id = :brand_id
"""
UPDATE_ESCALATION = """
UPDATE brands SET escalation_webhook_url = :escalation_webhook_url,
    escalation_secret = :escalation_secret
WHERE id = :brand_id
"""
UPDATE_DEADLINES = """
UPDATE brands SET order_issue_due_min = :order_issue_due_min,
    complaint_due_min = :complaint_due_min, question_due_min = :question_due_min
WHERE id = :brand_id
"""
UPDATE_ORDER_WEBHOOK_SECRET = """
UPDATE brands SET order_webhook_secret = :secret WHERE id = :brand_id
"""
# What PATCH /v1/brand may change so far; the other settings are fixed at creation.
LINK_SETTINGS = ("link_policy", "link_posts_per_month")
MONEY_SETTINGS = ("x_own_app", "monthly_x_budget_usd")
X_ACCOUNT_SETTINGS = ("x_access_token", "x_user_id", "x_username")
ESCALATION_SETTINGS = ("escalation_webhook_url", "escalation_secret")
# Minutes from a mention to its answer being due (triage.py); a week at most.
DEADLINE_SETTINGS = ("order_issue_due_min", "complaint_due_min", "question_due_min")
DEADLINE_MAX_MIN = 10080
UPDATABLE_SETTINGS = (
    *LINK_SETTINGS,
    *MONEY_SETTINGS,
    *X_ACCOUNT_SETTINGS,
    "alert_webhook_url",
    *ESCALATION_SETTINGS,
    *DEADLINE_SETTINGS,
    "webhook_secret",
)
# Changing where posts, alerts or customers' mentions go, or who may sign orders,
# is for admin keys.
# Never written to the audit trail: only that they were set.
SECRET_SETTINGS = ("x_access_token", "escalation_secret", "webhook_secret")
# Written, never read back (a webhook URL carries its own secret): the brand shows
# only whether one is set, so the trail names each one sent, as it does a secret.
WRITE_ONLY_SETTINGS = (*SECRET_SETTINGS, "alert_webhook_url", "escalation_webhook_url")
ADMIN_SETTINGS = (
    *X_ACCOUNT_SETTINGS,
    "alert_webhook_url",
    *ESCALATION_SETTINGS,
    "webhook_secret",
)
# The escalation secret keys an HMAC-SHA256; shorter ones are guessable.
ESCALATION_SECRET_LENGTH = (16, 200)
# Shopify shows its webhook signing key as 64 hex characters; other stores use
# shorter ones. Below 16 characters a secret is guessable.
WEBHOOK_SECRET_LENGTH_MIN = 16
WEBHOOK_SECRET_LENGTH_MAX = 200
# Printable ASCII, no space at either end: Shopify's signing keys are hex, and a
# class JSON Schema can state exactly (docs/openapi.yaml's webhook_secret pattern).
WEBHOOK_SECRET = re.compile(r"[!-~]([ -~]*[!-~])?")
WEBHOOK_URL_LENGTH_MAX = 500
# Each webhook URL a brand sets, and what it must be the URL of.
WEBHOOK_SETTINGS = {
    "alert_webhook_url": "a Slack-compatible incoming webhook",
    "escalation_webhook_url": "the CRM's escalation webhook",
}
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
# Names that mean this machine or the metadata server wherever they resolve.
INTERNAL_NAMES = frozenset({"localhost", "metadata", "metadata.google.internal"})
SELECT_TIME_ZONE = "SELECT name FROM pg_timezone_names WHERE name = :name"
SLUG_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")
STORE_URL_LENGTH_MAX = 200
WORDS_MAX = 100
WORD_LENGTH_MAX = 100
# One hashtag, as X links one (is_one_hashtag), for a brand's disclosure tag and
# each of its required hashtags alike: "#123" is no hashtag on X. The rule is by
# Unicode category (hashtags.continues_hashtag), so docs/openapi.yaml states only
# "^#" and names the rest.
HASHTAG_NAME_MAX = 29
HASHTAG_SHAPE = (
    "one hashtag, like #ad or #sponsored: '#' and up to 29 letters, combining "
    "marks, digits, _ or the few punctuation marks X links inside a hashtag "
    "(such as the middle dot ·), at least one of them a letter, and the first "
    "not U+FE0F or U+20E3, which make the '#' an emoji"
)
# X numbers its users from 1 and writes the id without leading zeros; "09001" would
# slip past the one-account-per-brand check (a string compare) for "9001".
X_USER_ID = re.compile(r"[1-9][0-9]{0,18}")
X_USER_ID_SHAPE = "1 to 19 digits, the first not 0"
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


def create_brand(
    tx: Transaction,
    body: Any,
    *,
    now: dt.datetime,
    environment: str = "cloud",
    seal: Callable[[str], str] | None = None,
    lookup: HostLookup | None = None,
) -> dict[str, Any]:
    """Create a brand and its first admin key from a request body.

    Returns the brand and the key; the key is shown this once and never again.
    `seal` seals an `x_access_token` before it is stored (token_vault.py).
    `lookup` resolves the alert webhook's host (`check_webhook_hosts`).
    """
    values = parse_brand(body, environment=environment)
    check_webhook_hosts(
        {"alert_webhook_url": values["alert_webhook_url"]},
        environment=environment,
        lookup=lookup,
    )
    if seal is not None and values["x_access_token"]:
        values["x_access_token"] = seal(values["x_access_token"])
    # zoneinfo and PostgreSQL each carry their own copy of the tz database; the
    # rollup converts days with AT TIME ZONE, so the name must be one both know.
    if tx.scalar(SELECT_TIME_ZONE, name=values["time_zone"]) is None:
        raise InvalidRequest(
            f"time zone {values['time_zone']!r} is unknown to the database",
            field="time_zone",
        )

    claim_x_account(tx, values["x_user_id"], brand_id=None)
    brand_id = tx.scalar(INSERT_BRAND, **values, created_at=now)
    if brand_id is None:
        raise Conflict(f"a brand with slug {values['slug']!r} exists", field="slug")
    key = keys.create_key(tx, brand_id=brand_id, name="admin", role="admin", now=now)
    # The brand's first key change, made by the operator key that made the brand.
    audit.record(
        tx,
        brand_id=str(brand_id),
        actor=keys.OPERATOR,
        action="key.created",
        subject="key:admin",
        at=now,
        after={"name": "admin", "role": "admin", "prefix": key[:10]},
    )

    brand = get_brand(tx, str(brand_id))
    return {"brand": brand, "api_key": key}


# What a new brand's body may hold (docs/openapi.yaml's BrandInput, which takes no
# other field): a misspelt setting would otherwise leave its default in place.
BRAND_FIELDS = (
    "name",
    "slug",
    "time_zone",
    "voice",
    "language",
    "banned_words",
    "required_hashtags",
    "disclosure_tag",
    "store_base_url",
    "currency",
    "approvals_required",
    "posting_slots",
    "x_user_id",
    "x_username",
    "x_access_token",
    "alert_webhook_url",
    "link_policy",
    "link_posts_per_month",
    "x_own_app",
    "monthly_x_budget_usd",
)


def parse_brand(body: Any, *, environment: str = "cloud") -> dict[str, Any]:
    """Validate a brand body and return the column values."""
    body = validation.require_object(body)
    validation.only_fields(body, BRAND_FIELDS, what="a new brand")
    # The spec types the slug string alone: only leaving it out derives one.
    validation.refuse_nulls(body, ("slug",))
    name = validation.display_name(validation.text(body, "name", max_len=200), "name")
    return {
        "slug": _slug(body, name),
        "name": name,
        "time_zone": validation.time_zone(body.get("time_zone")),
        "voice": validation.text(
            body, "voice", required=False, default="", max_len=2000
        ),
        "language": validation.language(body),
        "banned_words": _word_list(body, "banned_words"),
        "required_hashtags": _required_hashtags(body),
        "disclosure_tag": _disclosure_tag(body),
        "store_base_url": _store_base_url(body),
        "currency": validation.currency(body, "currency", default="USD"),
        "approvals_required": validation.boolean(
            body, "approvals_required", default=True
        ),
        "posting_slots": json.dumps(
            slots.validate_slots(body.get("posting_slots", slots.DEFAULT_SLOTS))
        ),
        "x_user_id": _optional_match(body, "x_user_id", X_USER_ID, X_USER_ID_SHAPE),
        "x_username": _optional_match(
            body, "x_username", X_USERNAME, "1 to 15 letters, digits or _"
        ),
        "x_access_token": _x_access_token(body),
        "alert_webhook_url": alert_webhook_url(body, environment=environment),
        **link_policy.parse_settings(body),
        **_x_money_settings(body),
    }


def update_brand(
    tx: Transaction,
    brand_id: str,
    body: Any,
    *,
    role: str,
    environment: str,
    now: dt.datetime,
    seal: Callable[[str], str] | None = None,
    actor: str = "system",
    lookup: HostLookup | None = None,
    alert_max_age_s: float = Settings.alert_max_age_s,
    escalation_max_age_s: float = Settings.escalation_max_age_s,
) -> dict[str, Any]:
    """Change the brand's link policy, X money settings, X account, alert webhook
    or order webhook secret; return the brand.

    Only UPDATABLE_SETTINGS may be sent; a field left out keeps its value. The X
    account, the webhook and the secret need an admin key. A new `x_access_token` or
    `x_user_id` reconnects an account X disconnected: its held posts are queued. A
    webhook URL set ends the back-off of the alerts or escalations waiting for it.
    `lookup` resolves a webhook URL's host before anything is written
    (`check_webhook_hosts`). A webhook URL sent also revives the brand's alerts
    or escalations abandoned as refused that are younger than `alert_max_age_s`
    or `escalation_max_age_s` (CARTCAST_ALERT_MAX_AGE_S and its kin).
    """
    body = validation.require_object(body)
    validation.only_fields(body, UPDATABLE_SETTINGS, what="PATCH /v1/brand")
    if not body:
        # An empty PATCH is most likely a client that dropped its fields: saying
        # so beats a 200 that changed nothing.
        raise InvalidRequest(
            f"nothing to change: send at least one of {', '.join(UPDATABLE_SETTINGS)}",
            field="body",
        )
    restricted = sorted(name for name in ADMIN_SETTINGS if name in body)
    if restricted and role != "admin":
        raise Forbidden(
            f"only an admin key may change {', '.join(restricted)}",
            field=restricted[0],
        )
    current = get_brand(tx, brand_id)
    # Every URL is checked, its host looked up, before the first write: a slow
    # lookup then holds no lock on the brand's row.
    webhook_urls = {
        name: _webhook_url(body, name, what=what, environment=environment)
        for name, what in WEBHOOK_SETTINGS.items()
        if name in body
    }
    check_webhook_hosts(webhook_urls, environment=environment, lookup=lookup)

    if any(name in body for name in (*LINK_SETTINGS, *MONEY_SETTINGS)):
        values = link_policy.parse_settings(body, current=current)
        values.update(_x_money_settings(body, current=current))
        tx.execute(UPDATE_SETTINGS, brand_id=brand_id, **values)
    if "alert_webhook_url" in body:
        url = webhook_urls["alert_webhook_url"]
        tx.execute(UPDATE_ALERT_WEBHOOK, brand_id=brand_id, alert_webhook_url=url)
        if url is not None:
            alerts.end_back_off(tx, brand_id=brand_id, now=now)
            alerts.revive_refused(
                tx, brand_id=brand_id, now=now, max_age_s=alert_max_age_s
            )
    if any(name in body for name in ESCALATION_SETTINGS):
        _set_escalation(
            tx,
            brand_id,
            body,
            webhook_urls,
            now=now,
            max_age_s=escalation_max_age_s,
        )
    if any(name in body for name in DEADLINE_SETTINGS):
        deadlines = {
            name: validation.integer(
                body, name, default=current[name], minimum=1, maximum=DEADLINE_MAX_MIN
            )
            for name in DEADLINE_SETTINGS
        }
        tx.execute(UPDATE_DEADLINES, brand_id=brand_id, **deadlines)
    if "webhook_secret" in body:
        secret = _webhook_secret(body)
        tx.execute(UPDATE_ORDER_WEBHOOK_SECRET, brand_id=brand_id, secret=secret)
    if any(name in body for name in X_ACCOUNT_SETTINGS):
        _set_x_account(tx, brand_id, body, now=now, seal=seal)
    updated = get_brand(tx, brand_id)
    _record_update(tx, brand_id, body, current, updated, actor=actor, now=now)
    return updated


def _record_update(
    tx: Transaction,
    brand_id: str,
    body: dict[str, Any],
    before: dict[str, Any],
    after: dict[str, Any],
    *,
    actor: str,
    now: dt.datetime,
) -> None:
    """Add what the update changed to the audit trail; secrets only by name."""
    changed = sorted(name for name in after if before.get(name) != after[name])
    secrets_sent = sorted(name for name in WRITE_ONLY_SETTINGS if name in body)
    if not changed and not secrets_sent:
        return
    audit.record(
        tx,
        brand_id=brand_id,
        actor=actor,
        action="brand.updated",
        subject="brand:settings",
        at=now,
        before={name: before.get(name) for name in changed},
        after={
            **{name: after[name] for name in changed},
            **({"secrets_set": secrets_sent} if secrets_sent else {}),
        },
    )


def _webhook_secret(body: dict) -> str | None:
    """Return the new order webhook secret, or None (null) to remove it."""
    secret = body["webhook_secret"]
    if secret is None:
        return None
    if (
        not isinstance(secret, str)
        or not WEBHOOK_SECRET.fullmatch(secret)
        or not WEBHOOK_SECRET_LENGTH_MIN <= len(secret) <= WEBHOOK_SECRET_LENGTH_MAX
    ):
        raise InvalidRequest(
            f"'webhook_secret' must be {WEBHOOK_SECRET_LENGTH_MIN} to "
            f"{WEBHOOK_SECRET_LENGTH_MAX} printable ASCII characters without "
            "surrounding spaces (the store's webhook signing key), or null to remove "
            "it",
            field="webhook_secret",
        )
    return secret


def _set_x_account(
    tx: Transaction,
    brand_id: str,
    body: dict,
    *,
    now: dt.datetime,
    seal: Callable[[str], str] | None = None,
) -> None:
    """Store a new X token or user (the ones given) and reconnect the account."""
    if "x_access_token" in body and validation.is_blank(
        str(body["x_access_token"] or "")
    ):
        raise InvalidRequest(
            "'x_access_token' must be the account's new token; an empty one would "
            "leave the old token in place",
            field="x_access_token",
        )
    values = {
        "x_user_id": _optional_match(body, "x_user_id", X_USER_ID, X_USER_ID_SHAPE),
        "x_username": _optional_match(
            body, "x_username", X_USERNAME, "1 to 15 letters, digits or _"
        ),
        "x_access_token": _x_access_token(body),
    }
    claim_x_account(tx, values["x_user_id"], brand_id=brand_id)
    if seal is not None and values["x_access_token"]:
        values["x_access_token"] = seal(values["x_access_token"])
    tx.execute(UPDATE_X_ACCOUNT, brand_id=brand_id, **values)
    if values["x_access_token"] or values["x_user_id"]:
        connections.reconnect(tx, brand_id=brand_id, now=now)


def claim_x_account(tx: Transaction, x_user_id: str | None, *, brand_id: Any) -> None:
    """Refuse an X account another brand has connected (409 naming x_user_id).

    Only the operator creating a brand (`brand_id` None) is told which brand holds
    it: a brand's key must learn nothing of the deployment's other brands.
    """
    if x_user_id is None:
        return
    tx.execute(LOCK_X_ACCOUNT, x_user_id=x_user_id)
    holder = tx.scalar(SELECT_ACCOUNT_HOLDER, x_user_id=x_user_id, brand_id=brand_id)
    if holder is not None:
        where = f"brand {holder!r}" if brand_id is None else "another brand"
        raise Conflict(
            f"X account {x_user_id} is already connected to {where}; an X "
            "account posts for one brand",
            field="x_user_id",
        )


def alert_webhook_url(body: dict, *, environment: str) -> str | None:
    """Return the body's `alert_webhook_url` (None when absent or null), or 400.

    https only; http only to a loopback host when `environment` is "local". The
    host is not looked up here (`check_webhook_hosts`).
    """
    return _webhook_url(
        body,
        "alert_webhook_url",
        what=WEBHOOK_SETTINGS["alert_webhook_url"],
        environment=environment,
    )


def check_webhook_hosts(
    urls: dict[str, str | None], *, environment: str, lookup: HostLookup | None
) -> None:
    """Refuse (400 naming the field) a webhook URL whose host resolves to an
    address a delivery would refuse; `urls` maps each field to its checked URL.

    The lookup and the rule are a delivery's (webhooks.checked_webhook), loopback
    allowed in a local run alone. A name that does not resolve is accepted: its
    DNS may be set up after the URL, and each delivery looks it up again
    (decision 0099). So is one whose lookup did not answer in time: the API
    passes the runtime's resolver (getaddrinfo in a deployment) bounded by
    CARTCAST_WEBHOOK_LOOKUP_TIMEOUT_S, past which it raises as a resolver whose
    attempts all timed out (decision 0106). `lookup` None looks nothing up
    (benches, tests of other things).
    """
    if lookup is None:
        return
    from cartcast import webhooks

    for name, url in urls.items():
        if url is None:
            continue
        try:
            webhooks.checked_webhook(
                url, allow_loopback=environment == "local", resolve=lookup
            )
        except webhooks.WebhookRefused as error:
            raise InvalidRequest(
                f"'{name}' must be an https URL of {WEBHOOK_SETTINGS[name]}: {error}",
                field=name,
            ) from error
        except TransientError:
            continue  # Not resolved yet: each delivery looks it up again.


def _webhook_url(body: dict, name: str, *, what: str, environment: str) -> str | None:
    url = validation.text(
        body, name, required=False, nullable=True, max_len=WEBHOOK_URL_LENGTH_MAX
    )
    if not url:
        return None
    problem = _url_problem(url) or _webhook_problem(url, environment)
    if problem:
        raise InvalidRequest(
            f"'{name}' must be an https URL of {what}: {problem}", field=name
        )
    return url


def _set_escalation(
    tx: Transaction,
    brand_id: str,
    body: dict,
    webhook_urls: dict[str, str | None],
    *,
    now: dt.datetime,
    max_age_s: float,
) -> None:
    """Store the CRM webhook and its signing secret; a webhook needs a secret.

    A field left out keeps its stored value; `webhook_urls` holds the URL sent,
    checked. With a URL set afterwards, the brand's escalations waiting out a
    back-off are due `now`; with a URL sent, so are those abandoned as refused
    that are younger than `max_age_s`.
    """
    stored = tx.one(SELECT_ESCALATION, brand_id=brand_id) or {}
    url = stored.get("escalation_webhook_url")
    secret = stored.get("escalation_secret")
    if "escalation_webhook_url" in body:
        url = webhook_urls["escalation_webhook_url"]
    if "escalation_secret" in body:
        secret = _escalation_secret(body)

    if url and not secret:
        raise InvalidRequest(
            "'escalation_secret' is needed with an escalation_webhook_url: every "
            "delivery is signed with it",
            field="escalation_secret",
        )
    tx.execute(
        UPDATE_ESCALATION,
        brand_id=brand_id,
        escalation_webhook_url=url,
        escalation_secret=secret,
    )
    if url:
        # Imported here: only a CRM webhook set needs its outbox (decision 0028).
        from cartcast import escalations

        escalations.end_back_off(tx, brand_id=brand_id, now=now)
        if "escalation_webhook_url" in body:
            escalations.revive_refused(
                tx, brand_id=brand_id, now=now, max_age_s=max_age_s
            )


def _escalation_secret(body: dict) -> str | None:
    low, high = ESCALATION_SECRET_LENGTH
    secret = validation.text(
        body, "escalation_secret", required=False, nullable=True, max_len=high
    )
    if secret and len(secret) < low:
        raise InvalidRequest(
            f"'escalation_secret' must be {low} to {high} characters",
            field="escalation_secret",
        )
    return secret or None


def _webhook_problem(url: str, environment: str) -> str | None:
    parts = urllib.parse.urlsplit(url)
    # A rooted name ("10.0.0.1.", "localhost.") is the same host to a resolver.
    host = (parts.hostname or "").rstrip(".")
    if not host.isascii():
        # _url_problem refused a host with no IDNA name; read the one sent.
        host = _idna_host(host) or host
    loopback = host in LOOPBACK_HOSTS or host.endswith(".localhost")
    if parts.scheme == "http" and not (loopback and environment == "local"):
        return "http is accepted only for a loopback address in a local run"
    address = _host_address(host)
    if address is None:
        # A name; only an https URL gets here outside local runs. Names are
        # resolved later (check_webhook_hosts), but those that always mean this
        # machine or the metadata server are refused here as their addresses are.
        if host in INTERNAL_NAMES or host.endswith(".localhost"):
            if loopback and environment == "local":
                return None
            return f"{host} names an internal address"
        return None
    if addresses.is_refused(address, allow_loopback=environment == "local"):
        return f"{address} is an internal address"
    return None


def _idna_host(host: str) -> str | None:
    """The ASCII name a non-ASCII host is sent as, or None when it has none.

    Delivery (requests, through urllib3) encodes such a host with IDNA 2008's
    strict rules and fails on a name they refuse (fullwidth letters, U+2488), so
    the checks here read the name as it would be sent, or refuse it.
    """
    import idna

    try:
        return idna.encode(host, strict=True, std3_rules=True).decode("ascii")
    except idna.IDNAError:
        return None


def _host_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a URL's host spells, in any form the resolver reads as one.

    Besides dotted quads, getaddrinfo takes inet_aton's numeric forms without a
    lookup ("2852039166", "0xa9fea9fe", "127.1"): each is an address, not a name.
    """
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if not host or not all(char in "0123456789abcdefxABCDEFX." for char in host):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _x_access_token(body: dict) -> str | None:
    """The token sent, or None for none or a blank one (validation.is_blank)."""
    token = validation.text(body, "x_access_token", required=False, max_len=500)
    return None if token is None or validation.is_blank(token) else token


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
            asked = budget
            budget = validation.money(budget, "monthly_x_budget_usd")
            if budget != decimal.Decimal(str(asked)):
                # 0.005 would round to a budget of nothing, 0.015 to more than meant.
                raise InvalidRequest(
                    "'monthly_x_budget_usd' must be dollars in whole cents, "
                    f"such as 5.00 (got {asked})",
                    field="monthly_x_budget_usd",
                )
    return {"x_own_app": own_app, "monthly_x_budget_usd": budget}


def _disclosure_tag(body: dict) -> str:
    """Return the hashtag sponsored posts carry (default #ad)."""
    tag = validation.text(body, "disclosure_tag", required=False, max_len=30) or "#ad"
    if not is_one_hashtag(tag):
        raise InvalidRequest(
            f"'disclosure_tag' must be {HASHTAG_SHAPE}", field="disclosure_tag"
        )
    return tag


def is_one_hashtag(tag: str) -> bool:
    """Whether `tag` is one hashtag X links: '#', then characters X links inside
    one (hashtags.continues_hashtag: letters, combining marks, decimal digits and
    a few joiners and punctuation marks), at least one a letter. '#' followed by
    VS16 or the keycap mark is an emoji to X, no hashtag (hashtags.starts_hashtag).
    """
    name = tag[1:]
    if tag[:1] != "#" or not 0 < len(name) <= HASHTAG_NAME_MAX:
        return False
    if not hashtags.starts_hashtag(tag):
        return False
    has_letter = any(unicodedata.category(char)[0] == "L" for char in name)
    return has_letter and all(hashtags.continues_hashtag(char) for char in name)


def _required_hashtags(body: dict) -> list[str]:
    """Return the hashtags every post carries, each one hashtag as the disclosure
    tag is: "ok" or "#a b" would be appended to posts as words, not a hashtag."""
    tags = _word_list(body, "required_hashtags")
    for index, tag in enumerate(tags):
        if not is_one_hashtag(tag):
            raise InvalidRequest(
                f"'required_hashtags[{index}]' must be {HASHTAG_SHAPE}",
                field=f"required_hashtags[{index}]",
            )
    return tags


def get_brand(tx: Transaction, brand_id: str) -> dict[str, Any]:
    brand = tx.one(SELECT_BRAND, brand_id=brand_id)
    if brand is None:
        raise NotFound("brand not found")
    return brand


def _slug(body: dict, name: str) -> str:
    # Matched as sent, as docs/openapi.yaml's pattern is: stripping blanks first
    # took " shop", and "" fell back to the name, both of which the spec refuses.
    given = body.get("slug")
    if given is not None and not isinstance(given, str):
        raise InvalidRequest("'slug' must be a string", field="slug")
    slug = _slugify(name) if given is None else given
    if not SLUG_PATTERN.fullmatch(slug):
        hint = (
            ""
            if given is not None
            else f" (derived from the name: {slug!r}); send a 'slug'"
        )
        raise InvalidRequest(
            f"'slug' must be 2-63 lowercase letters, digits or dashes{hint}",
            field="slug",
        )
    # A brand that leaves but keeps its KPIs is written back under this prefix
    # and its id: a brand holding that slug first would stop its deletion.
    if slug.startswith(STRIPPED_SLUG_PREFIX):
        raise InvalidRequest(
            f"'slug' must not begin with {STRIPPED_SLUG_PREFIX!r}, "
            "which names the kept rows of brands that left"
            + ("" if given is not None else f" (derived from the name: {slug!r})"),
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
    problem = _unlinked_problem(url.rstrip("/"))
    if problem:
        raise InvalidRequest(f"'store_base_url' {problem}", field="store_base_url")
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
    host = parts.hostname.rstrip(".")
    if not host.isascii() and _idna_host(host) is None:
        return (
            "its host is no valid internationalised name (IDNA), so nothing could "
            "reach it"
        )
    if parts.port == 0:
        return "port 0 is no port anything could reach"
    if parts.username is not None or parts.password is not None:
        return "it carries credentials"
    # links.product_link keeps a query and a fragment where they would then sit,
    # before and after its own parameters; a store base has no need for either.
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        return "it has a query or a fragment"
    return None


# Any product link built on the base stands for one: its post id is a UUID and its
# handle is percent-encoded, so only the base decides whether X links it.
_SAMPLE_POST_ID = "00000000-0000-4000-8000-000000000000"


def _unlinked_problem(base: str) -> str | None:
    """Say why X would not link the store's product links as a whole, if it would not.

    X links what twitter-text's URL parser finds (post_text.linked_urls): a host on
    a top-level domain outside X's list (".example", ".internal", an IP address,
    "localhost"), or with a label over 63 characters or an underscore, is no link,
    so every post would count it at its full length and none would carry a link.
    """
    sample = links.product_link(
        base, "product", post_id=_SAMPLE_POST_ID, campaign="campaign"
    )
    if post_text.linked_urls(sample) == [sample]:
        return None
    return (
        "is a URL X would not link (its host needs labels of at most 63 letters, "
        "digits or dashes and a top-level domain on X's list), so no post could "
        "carry its product links"
    )


def _optional_match(
    body: dict, name: str, pattern: re.Pattern[str], described: str
) -> str | None:
    # text() measures the value as sent; the spec bounds these by their pattern
    # alone, which allows any run of blanks around them, so only the body's size
    # bounds what is sent, and the pattern what is left.
    value = validation.text(
        body, name, required=False, nullable=True, max_len=web.BODY_BYTES_MAX
    )
    if not value:
        return None
    if not pattern.fullmatch(value):
        raise InvalidRequest(f"'{name}' must be {described}", field=name)
    return value


def _word_list(body: dict, name: str) -> list[str]:
    value = body.get(name, [])
    shape = (
        f"'{name}' must be a list of at most {WORDS_MAX} non-empty strings of "
        f"up to {WORD_LENGTH_MAX} characters"
    )
    if not isinstance(value, list) or len(value) > WORDS_MAX:
        raise InvalidRequest(shape, field=name)

    # Blank and stripped as validation.text() has it, so a word sent with a
    # byte-order mark around it still matches the caption's word.
    for index, word in enumerate(value):
        if (
            not isinstance(word, str)
            or validation.is_blank(word)
            or len(word) > WORD_LENGTH_MAX
        ):
            raise InvalidRequest(shape, field=f"{name}[{index}]")
    return [word.strip(validation.BLANK) for word in value]


def _slugify(name: str) -> str:
    """Spell a name in ASCII slug letters: "Crème Brûlée Co." -> "creme-brulee-co"."""
    ascii_name = unicodedata.normalize("NFKD", name.translate(LATIN_LETTERS_SPELLED))
    ascii_name = ascii_name.encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:63].strip("-")
