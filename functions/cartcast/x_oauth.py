"""A brand's X account connected with OAuth 2.0 (authorization code with PKCE).

The flow (docs.x.com, "OAuth 2.0 Authorization Code Flow with PKCE"):

1. `start_authorization` (POST /v1/brand/x/connect, admin key): a random `state`
   bound to the brand and a PKCE verifier are stored (the state as its SHA-256, the
   verifier sealed), and the answer is X's authorize URL with the S256 challenge and
   the scopes tweet.read tweet.write users.read media.write offline.access;
2. the person approves on X, and X sends the browser to CARTCAST_X_REDIRECT_URI
   with `state` and `code`;
3. `finish_authorization` (GET /v1/x/callback, where the state is the credential;
   or POST /v1/brand/x/callback with the brand's admin key, where the state must
   also be that brand's) takes the state once, before it expires, exchanges the
   code and the verifier at POST /2/oauth2/token, asks X who the account is, and
   `connect_account` stores both tokens sealed, with the access token's expiry,
   and reconnects the brand (connections.py: held posts go back to `scheduled`).

A forged, expired, used or other brand's state is a 400 (403 for another brand's)
naming `state`, and nothing is written; so is a code X refuses (naming `code`).
Each is raised as `CallbackRefused`, which names the brand the state was issued
for, so api.py can record the attempt in that brand's trail once the request's
transaction has rolled back (a forged state names no brand; decision 0039).

Refreshing (`usable_token`): X's access tokens live two hours, and X rotates
refresh tokens, voiding the one used. So a token within
CARTCAST_X_TOKEN_REFRESH_MARGIN_S of its expiry is refreshed by one caller at a
time: `refresh_tokens` locks the brand's row, reads the tokens again and refreshes
only if they are still the near-expiry ones; the callers queued behind it find the
new token and use it. X refusing the refresh (revoked, or the refresh token void)
disconnects the account through connections.py in the same transaction.

`disconnect_account` (POST /v1/brand/x/disconnect, admin key) revokes both tokens
with X and forgets them. Connection changes go through `connect_account`,
`record_refreshed_tokens` and `disconnect_account`, so a later audit trail can
record each in one place.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from cartcast import audit, connections
from cartcast.db import Transaction
from cartcast.errors import (
    CartcastError,
    ConfigurationError,
    Conflict,
    Forbidden,
    InvalidRequest,
    PermanentError,
    TransientError,
)
from cartcast.logs import fields

# media.write: X's v2 media upload, which image posts use, refuses a token without
# it (docs.x.com, authentication mapping).
SCOPES = ("tweet.read", "tweet.write", "users.read", "media.write", "offline.access")
TOKEN_PATH = "/2/oauth2/token"
REVOKE_PATH = "/2/oauth2/revoke"
X_API_URL = "https://api.x.com"
# RFC 7636: a verifier is 43 to 128 characters; 64 random bytes make 86.
VERIFIER_BYTES = 64
STATE_BYTES = 32
STATE_LENGTH_MAX = 200
CODE_LENGTH_MAX = 2000
# X's token endpoint answers a refused grant (a void code or refresh token) with
# 400 invalid_request; that refuses the account's tokens. A 401 refuses cartcast's
# own client (a wrong or rotated CARTCAST_X_CLIENT_SECRET): the account's tokens
# are untouched, and disconnecting every brand for it would make each one approve
# the app on X again once the secret is fixed.
REFUSED_GRANT_STATUSES = (400,)
CLIENT_REFUSED_STATUS = 401
# X's access tokens live two hours (docs.x.com, OAuth 2.0 Authorization Code Flow
# with PKCE); an expires_in past a day is not one X sends, and is taken as this.
ACCESS_TOKEN_LIFE_S = 2 * 60 * 60
EXPIRES_IN_MAX_S = 24 * 60 * 60
CALLBACK_FIELDS = ("state", "code", "error", "error_description")
# Why a callback was refused, as CallbackRefused and the trail name it.
REFUSAL_REASONS = ("unknown", "used", "expired", "another_brand", "code_refused")

INSERT_STATE = """
INSERT INTO x_oauth_states (state_hash, brand_id, code_verifier, created_at,
    expires_at)
VALUES (:state_hash, :brand_id, :code_verifier, :now, :expires_at)
"""
LOCK_STATE = """
SELECT brand_id, code_verifier, expires_at, used_at FROM x_oauth_states
WHERE state_hash = :state_hash
FOR UPDATE
"""
USE_STATE = "UPDATE x_oauth_states SET used_at = :now WHERE state_hash = :state_hash"
# States of the brand older than a day are of no use to anyone.
FORGET_OLD_STATES = """
DELETE FROM x_oauth_states WHERE brand_id = :brand_id AND expires_at < :before
"""
CONNECT = """
UPDATE brands SET x_access_token = :access_token, x_refresh_token = :refresh_token,
    x_token_expires_at = :expires_at, x_token_scopes = :scopes,
    x_user_id = :x_user_id, x_username = :x_username
WHERE id = :brand_id
"""
# Held across X's token or revoke call (up to CARTCAST_X_TIMEOUT_S). NO KEY UPDATE
# still keeps out a second refresh, a connection and a deletion of the brand, but
# not the KEY SHARE a foreign key check takes: every post change logs itself
# (post_events) against the brand, and FOR UPDATE made each wait for X.
LOCK_TOKENS = """
SELECT x_access_token, x_refresh_token, x_token_expires_at, x_disconnected_at
FROM brands WHERE id = :brand_id
FOR NO KEY UPDATE
"""
RECORD_REFRESHED = """
UPDATE brands SET x_access_token = :access_token, x_refresh_token = :refresh_token,
    x_token_expires_at = :expires_at, x_token_scopes = :scopes
WHERE id = :brand_id
"""
FORGET_TOKENS = """
UPDATE brands SET x_access_token = NULL, x_refresh_token = NULL,
    x_token_expires_at = NULL, x_token_scopes = NULL
WHERE id = :brand_id
"""
SELECT_UNSEALED = """
SELECT id, x_access_token, x_refresh_token FROM brands
WHERE (x_access_token IS NOT NULL AND NOT starts_with(x_access_token, :prefix))
   OR (x_refresh_token IS NOT NULL AND NOT starts_with(x_refresh_token, :prefix))
FOR UPDATE
"""
SEAL_TOKENS = """
UPDATE brands SET x_access_token = :access_token, x_refresh_token = :refresh_token
WHERE id = :brand_id
"""


class CallbackRefused(CartcastError):
    """A callback refused once its state was looked up: `error` is the 4xx to
    answer, `brand_id` the brand the state was issued for (None when no state of
    this deployment matches), `reason` one of REFUSAL_REASONS."""

    def __init__(
        self, error: InvalidRequest, *, brand_id: str | None, reason: str
    ) -> None:
        super().__init__(str(error))
        self.error = error
        self.brand_id = brand_id
        self.reason = reason


class ClientRefused(TransientError):
    """X's token endpoint refused cartcast's client credentials (a 401): the
    deployment's X app settings are wrong, not the account's tokens."""


class TokenRefused(PermanentError):
    """X's token endpoint refused the grant (a code or refresh token void)."""

    def __init__(self, message: str, *, status: int, detail: str) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail


def start_authorization(
    tx: Transaction, runtime: Any, *, brand_id: str, now: dt.datetime
) -> dict[str, Any]:
    """Store a state and a PKCE verifier for the brand; return X's authorize URL."""
    settings = _require_app(runtime.settings)
    state = secrets.token_urlsafe(STATE_BYTES)
    verifier = secrets.token_urlsafe(VERIFIER_BYTES)
    expires_at = now + dt.timedelta(seconds=settings.x_oauth_state_ttl_s)

    tx.execute(FORGET_OLD_STATES, brand_id=brand_id, before=now - dt.timedelta(days=1))
    tx.execute(
        INSERT_STATE,
        state_hash=_digest(state),
        brand_id=brand_id,
        code_verifier=runtime.token_vault().seal(verifier),
        now=now,
        expires_at=expires_at,
    )
    query = {
        "response_type": "code",
        "client_id": settings.x_client_id,
        "redirect_uri": settings.x_oauth_redirect_uri,
        "scope": " ".join(SCOPES),
        "state": state,
        "code_challenge": pkce_challenge(verifier),
        "code_challenge_method": "S256",
    }
    url = settings.x_authorize_url + "?" + urllib.parse.urlencode(query)
    return {"authorize_url": url, "state_expires_at": expires_at}


def finish_authorization(
    tx: Transaction,
    runtime: Any,
    params: Any,
    *,
    now: dt.datetime,
    brand_id: str | None = None,
) -> dict[str, Any]:
    """Take the callback's state once, exchange its code, connect the account.

    `brand_id`: the calling key's brand, when the callback comes with one; a state
    issued for another brand is then refused. Returns the brand's connection.
    """
    state, code = _callback_params(params)
    row = tx.one(LOCK_STATE, state_hash=_digest(state))
    state_brand_id = None if row is None else str(row["brand_id"])
    # Another brand's state is refused as such before its own problems are read:
    # whether it was used or expired is that brand's business, not the caller's.
    if row is not None and brand_id is not None and state_brand_id != str(brand_id):
        forbidden = Forbidden(
            "'state' was issued for another brand; start the connection with this "
            "brand's key",
            field="state",
        )
        raise CallbackRefused(
            forbidden, brand_id=state_brand_id, reason="another_brand"
        )
    problem = _state_problem(row, now)
    if problem:
        reason, message = problem
        raise CallbackRefused(
            InvalidRequest(f"'state' {message}; start again", field="state"),
            brand_id=state_brand_id,
            reason=reason,
        )
    if params.get("error"):
        # The person declined on X: the state is spent, nothing is connected.
        tx.execute(USE_STATE, state_hash=_digest(state), now=now)
        return {"connected": False, "error": str(params["error"])[:100]}

    verifier = runtime.token_vault().open(row["code_verifier"])
    try:
        tokens = request_tokens(
            runtime.settings,
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": runtime.settings.x_oauth_redirect_uri,
                "code_verifier": verifier,
            },
        )
    except TokenRefused as error:
        refused = InvalidRequest(
            f"X refused the authorization code ({error.detail}); start again",
            field="code",
        )
        raise CallbackRefused(
            refused, brand_id=state_brand_id, reason="code_refused"
        ) from error
    except ClientRefused as error:
        raise Conflict(
            f"this deployment cannot connect X accounts yet: {error}",
            field="x_account",
        ) from error
    tx.execute(USE_STATE, state_hash=_digest(state), now=now)
    account = runtime.x_client(tokens["access_token"]).me()
    return connect_account(
        tx,
        runtime,
        brand_id=str(row["brand_id"]),
        tokens=tokens,
        account=account,
        now=now,
    )


def connect_account(
    tx: Transaction,
    runtime: Any,
    *,
    brand_id: str,
    tokens: dict[str, Any],
    account: Any,
    now: dt.datetime,
) -> dict[str, Any]:
    """Store the account's sealed tokens and reconnect the brand (posts resume)."""
    from cartcast import brands

    brands.claim_x_account(tx, account.id, brand_id=brand_id)
    vault = runtime.token_vault()
    tx.execute(
        CONNECT,
        brand_id=brand_id,
        access_token=vault.seal(tokens["access_token"]),
        refresh_token=_seal_optional(vault, tokens.get("refresh_token")),
        expires_at=_expiry(tokens, now, log=runtime.log, brand_id=brand_id),
        scopes=tokens.get("scope"),
        x_user_id=account.id,
        x_username=account.username,
    )
    resumed = connections.reconnect(tx, brand_id=brand_id, now=now)
    resumed += connections.release_unconnected(tx, brand_id=brand_id, now=now)
    audit.record(
        tx,
        brand_id=brand_id,
        actor=audit.current_actor(tx),
        action="x_account.connected",
        subject="brand:x_account",
        at=now,
        after={"x_user_id": account.id, "x_username": account.username},
    )
    runtime.log.info(
        "X account connected",
        extra=fields(brand_id=brand_id, x_user_id=account.id, resumed=resumed),
    )
    return {
        "connected": True,
        "x_user_id": account.id,
        "x_username": account.username,
        "scopes": tokens.get("scope"),
        "resumed_posts": resumed,
    }


def usable_token(runtime: Any, row: dict[str, Any]) -> str | None:
    """Return the stored token to call X with for `row` (a brand, or a claimed post).

    The token as read unless it expires within the refresh margin; then the one
    `refresh_tokens` leaves, or None when X refused the refresh (the account is
    disconnected).
    """
    expires_at = row.get("x_token_expires_at")
    margin = dt.timedelta(seconds=runtime.settings.x_token_refresh_margin_s)
    if expires_at is None or expires_at - margin > runtime.clock.now():
        return row["x_access_token"]
    brand_id = row["brand_id"] if "brand_id" in row else row["id"]
    return refresh_tokens(runtime, brand_id=str(brand_id))


def refresh_tokens(runtime: Any, *, brand_id: str) -> str | None:
    """Refresh the brand's tokens unless another caller just did; return the stored
    access token to use, or None when the account is (now) disconnected.

    The brand's row stays locked from the read to the commit, so one caller at a
    time reaches X's token endpoint; X voids a refresh token once used, and a second
    refresh with it would be refused and disconnect the account.
    """
    now = runtime.clock.now()
    margin = dt.timedelta(seconds=runtime.settings.x_token_refresh_margin_s)
    with runtime.database.transaction() as tx:
        row = tx.one(LOCK_TOKENS, brand_id=brand_id)
        if row is None or row["x_disconnected_at"] is not None:
            return None
        expires_at = row["x_token_expires_at"]
        if expires_at is None or expires_at - margin > now:
            return row["x_access_token"]  # refreshed while this caller waited
        if row["x_refresh_token"] is None:
            return row["x_access_token"]  # nothing to refresh with: X will say

        vault = runtime.token_vault()
        grant = {
            "grant_type": "refresh_token",
            "refresh_token": vault.open(row["x_refresh_token"]),
        }
        try:
            tokens = request_tokens(runtime.settings, grant)
        except TokenRefused as error:
            connections.disconnect(
                tx,
                brand_id=brand_id,
                status=error.status,
                detail=f"refreshing the token: {error.detail}",
                token=row["x_access_token"],
                now=now,
            )
            runtime.log.error(
                "X refused to refresh the account's token; its posts are held",
                extra=fields(brand_id=brand_id, status=error.status),
            )
            return None
        except TransientError as error:
            if expires_at > now:
                runtime.log.warning(
                    "X's token endpoint unavailable; the current token is used",
                    extra=fields(brand_id=brand_id, reason=str(error)),
                )
                return row["x_access_token"]
            if isinstance(error, ClientRefused):
                runtime.log.error(
                    "X refused cartcast's client credentials; the token cannot be "
                    "refreshed",
                    extra=fields(brand_id=brand_id),
                )
            raise
        stored = record_refreshed_tokens(
            tx, runtime, brand_id=brand_id, tokens=tokens, now=now
        )
    runtime.log.info("X token refreshed", extra=fields(brand_id=brand_id))
    return stored


def record_refreshed_tokens(
    tx: Transaction,
    runtime: Any,
    *,
    brand_id: str,
    tokens: dict[str, Any],
    now: dt.datetime,
) -> str:
    """Store a refresh's new pair (the old refresh token is void); return the
    sealed access token."""
    vault = runtime.token_vault()
    access_token = vault.seal(tokens["access_token"])
    tx.execute(
        RECORD_REFRESHED,
        brand_id=brand_id,
        access_token=access_token,
        refresh_token=_seal_optional(vault, tokens.get("refresh_token")),
        expires_at=_expiry(tokens, now, log=runtime.log, brand_id=brand_id),
        scopes=tokens.get("scope"),
    )
    return access_token


def disconnect_account(
    tx: Transaction, runtime: Any, *, brand_id: str, now: dt.datetime
) -> dict[str, Any]:
    """Revoke the brand's tokens with X and forget them; queued posts stay queued
    and wait (held at the next publish run) until an account is connected again.
    """
    row = tx.one(LOCK_TOKENS, brand_id=brand_id)
    if row is None or row["x_access_token"] is None:
        raise Conflict("the brand has no X account connected", field="x_account")

    revoked = revoke_with_x(runtime, row)
    tx.execute(FORGET_TOKENS, brand_id=brand_id)
    audit.record(
        tx,
        brand_id=brand_id,
        actor=audit.current_actor(tx),
        action="x_account.disconnected",
        subject="brand:x_account",
        at=now,
        before={"connected": True},
        after={"connected": False, "revoked_with_x": revoked},
    )
    runtime.log.info(
        "X account disconnected by the brand", extra=fields(brand_id=brand_id)
    )
    return {"connected": False, "revoked_with_x": revoked}


def revoke_with_x(runtime: Any, row: dict[str, Any]) -> bool:
    """Revoke a brand's stored refresh and access tokens with X (`row` holds
    `x_refresh_token` and `x_access_token`); return whether X confirmed each.

    The refresh token goes first: revoking it ends the grant, so no new access
    token can be made from it. The caller forgets the tokens either way.
    """
    revoked = []
    for kind in ("refresh_token", "access_token"):
        stored = row.get(f"x_{kind}")
        if stored is None:
            continue
        token = runtime.open_token(stored)
        revoked.append(revoke_token(runtime.settings, token, kind=kind))
    return all(revoked)


def seal_plaintext_tokens(database: Any, vault: Any) -> int:
    """Seal every token stored in plaintext (from before sealing); return how many
    brands changed. Safe to run again: sealed values are left alone."""
    from cartcast import token_vault

    with database.transaction() as tx:
        rows = tx.rows(SELECT_UNSEALED, prefix=token_vault.SEALED_PREFIX)
        for row in rows:
            tx.execute(
                SEAL_TOKENS,
                brand_id=row["id"],
                access_token=_seal_plain(vault, row["x_access_token"]),
                refresh_token=_seal_plain(vault, row["x_refresh_token"]),
            )
    return len(rows)


def request_tokens(settings: Any, form: dict[str, str]) -> dict[str, Any]:
    """POST a grant to X's token endpoint; return its JSON answer.

    A confidential client authenticates with HTTP Basic (client id and secret); a
    public one sends `client_id` in the form (docs.x.com, OAuth 2.0).
    """
    status, body = _post_form(settings, TOKEN_PATH, form)
    if status == CLIENT_REFUSED_STATUS:
        raise ClientRefused(
            "X refused cartcast's client credentials: check CARTCAST_X_CLIENT_ID and "
            "CARTCAST_X_CLIENT_SECRET against the X app",
            status=status,
        )
    if status in REFUSED_GRANT_STATUSES:
        detail = str(body.get("error_description") or body.get("error") or status)
        raise TokenRefused(
            f"X refused the {form['grant_type']} grant", status=status, detail=detail
        )
    if status != 200 or not body.get("access_token"):
        raise TransientError(f"X's token endpoint answered {status}", status=status)
    return body


def revoke_token(settings: Any, token: str, *, kind: str) -> bool:
    """Ask X to revoke one token; return whether X said it did.

    Without an X app configured (a token set by hand) nothing can be revoked.
    """
    if not settings.x_client_id:
        return False
    try:
        status, body = _post_form(
            settings, REVOKE_PATH, {"token": token, "token_type_hint": kind}
        )
    except TransientError:
        return False
    return status == 200 and bool(body.get("revoked"))


def pkce_challenge(verifier: str) -> str:
    """Return the S256 code challenge of a verifier (RFC 7636, section 4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _post_form(settings: Any, path: str, form: dict[str, str]) -> tuple[int, dict]:
    _require_app(settings)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    form = dict(form)
    if settings.x_client_secret:
        pair = f"{settings.x_client_id}:{settings.x_client_secret}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    else:
        form["client_id"] = settings.x_client_id
    url = (settings.x_api_base_url or X_API_URL).rstrip("/") + path
    request = urllib.request.Request(
        url, data=urllib.parse.urlencode(form).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=settings.x_timeout_s) as answer:
            status, raw = answer.status, answer.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    except (OSError, TimeoutError) as error:
        raise TransientError(f"X's token endpoint unreachable: {error}") from error
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        body = {}
    return status, body if isinstance(body, dict) else {}


def _require_app(settings: Any) -> Any:
    missing = [
        name
        for name, value in (
            ("CARTCAST_X_CLIENT_ID", settings.x_client_id),
            ("CARTCAST_X_REDIRECT_URI", settings.x_oauth_redirect_uri),
        )
        if not value
    ]
    if missing:
        raise ConfigurationError(
            f"connecting X accounts needs {' and '.join(missing)} (the X app's OAuth "
            "2.0 client)"
        )
    return settings


def _callback_params(params: Any) -> tuple[str, str]:
    unknown = sorted(set(params) - set(CALLBACK_FIELDS))
    if unknown:
        raise InvalidRequest(
            f"unknown callback parameter {unknown[0][:100]!r}", field=unknown[0][:100]
        )
    state = params.get("state")
    if not isinstance(state, str) or not 0 < len(state) <= STATE_LENGTH_MAX:
        raise InvalidRequest("'state' is missing or malformed", field="state")
    code = params.get("code")
    if params.get("error"):
        return state, code
    if code is None or code == "":
        raise InvalidRequest(
            "'code' is missing: X sends it with the state once the person approves",
            field="code",
        )
    if not isinstance(code, str) or len(code) > CODE_LENGTH_MAX:
        raise InvalidRequest(
            f"'code' is malformed: X's code is text of at most {CODE_LENGTH_MAX} "
            "characters",
            field="code",
        )
    return state, code


def _state_problem(
    row: dict[str, Any] | None, now: dt.datetime
) -> tuple[str, str] | None:
    """Return (reason, message) when the state cannot be taken, else None."""
    if row is None:
        return "unknown", "is unknown (not one this deployment issued)"
    if row["used_at"] is not None:
        return "used", "was already used"
    if row["expires_at"] <= now:
        return "expired", "has expired"
    return None


def _digest(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def _expiry(
    tokens: dict[str, Any], now: dt.datetime, *, log: Any, brand_id: str
) -> dt.datetime | None:
    """Return when the access token expires by X's `expires_in`, or None when X
    named no usable life.

    A life longer than EXPIRES_IN_MAX_S is an answer X would not give (its tokens
    live two hours), and a huge one overflowed the date: it is taken as X's two
    hours, so the token is refreshed early rather than believed for ever.
    """
    expires_in = tokens.get("expires_in")
    if not isinstance(expires_in, int) or expires_in <= 0:
        return None
    if expires_in > EXPIRES_IN_MAX_S:
        log.warning(
            "X's token answer named an unusable expires_in; two hours assumed",
            extra=fields(brand_id=brand_id, expires_in=str(expires_in)[:40]),
        )
        expires_in = ACCESS_TOKEN_LIFE_S
    return now + dt.timedelta(seconds=expires_in)


def _seal_optional(vault: Any, token: str | None) -> str | None:
    return vault.seal(token) if token else None


def _seal_plain(vault: Any, stored: str | None) -> str | None:
    from cartcast import token_vault

    if stored is None or token_vault.is_sealed(stored):
        return stored
    return vault.seal(stored)
