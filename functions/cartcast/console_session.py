"""Console sessions: a signed cookie after sign-in with a brand's API key.

The cookie holds the SHA-256 of the key (never the key), a random nonce and the
instant it expires, signed with HMAC-SHA256 under CARTCAST_CONSOLE_SECRET. The
nonce is the session's id: the CSRF token is drawn from it, and signing out records
it (console_signouts.py) until the cookie would have expired, so a copy of a
signed-out cookie is refused (decision 0089); so does a sign-in that replaces a
live cookie in the same browser. Each request looks the key up again,
so a revoked key ends its sessions at once, and so does the end of the brand's
offboarding grace period (as for the API). Expiry is read from the runtime's
clock, so a simulated week expires sessions too.

What each role may do in the console is ROLE_PERMISSIONS, drawn from the API's
ROUTE_ROLES (decision 0033): the pages offer only what it allows, and every form is
checked against it again.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import hmac
import secrets

from cartcast import api, console_signouts, keys, offboarding
from cartcast.db import Transaction
from cartcast.errors import Forbidden, InvalidRequest, Unauthorized

COOKIE_NAME = "cartcast_console"
CSRF_FIELD = "csrf"
KEY_LENGTH_MAX = 200
LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]", "::1")

# What each console permission does, as the API routes that do it: a role may
# do it in the console when its key may call all of them (api.ROUTE_ROLES), so
# the console and the API cannot disagree. Viewing needs none.
PERMISSION_ROUTES: dict[str, tuple[str, ...]] = {
    "approve": ("approve_post", "reject_post"),
    "edit": ("edit_post", "create_captions"),
    "schedule": ("schedule_post",),
    "answer": ("reply_to_mention", "handle_mention"),
    "pause": ("pause_brand", "resume_brand"),
    "import": ("import_products",),
    "settle": ("settle_post",),
}


def _permissions(role: str) -> frozenset[str]:
    rank = keys.ROLES.index(role)
    return frozenset(
        permission
        for permission, endpoints in PERMISSION_ROUTES.items()
        if all(
            rank >= keys.ROLES.index(api.ROUTE_ROLES[endpoint])
            for endpoint in endpoints
        )
    )


ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    role: _permissions(role) for role in keys.ROLES
}
PERMISSION_NAMES = {
    "approve": "approving or rejecting posts",
    "edit": "editing posts",
    "schedule": "scheduling posts",
    "answer": "answering mentions",
    "pause": "pausing or resuming publishing",
    "import": "importing the catalog",
    "settle": "settling unconfirmed posts",
}


class SessionExpired(Unauthorized):
    """The cookie is missing, forged, signed out or past its expiry: sign in again.

    `notice` is the sign-in page's notice code (console.NOTICES) for a page that
    had a cookie: "expired" for a session that ended (its time, a sign-out, its
    key, its brand), "signin_again" for a cookie that was never one of ours, or was
    changed: it ended nothing, and the notice says no more than that.
    """

    def __init__(self, message: str, *, notice: str = "expired") -> None:
        super().__init__(message)
        self.notice = notice


@dataclasses.dataclass(frozen=True)
class Session:
    caller: keys.Caller
    csrf_token: str
    expires_at: dt.datetime
    # The cookie's nonce: what a sign-out records, hashed. Kept out of reprs.
    session_id: str = dataclasses.field(repr=False)

    def may(self, permission: str) -> bool:
        return permission in ROLE_PERMISSIONS.get(self.caller.role, frozenset())

    def require(self, permission: str) -> None:
        if not self.may(permission):
            raise Forbidden(
                f"{PERMISSION_NAMES[permission]} needs another role; this key is "
                f"{self.caller.role}"
            )

    def check_csrf(self, sent: str | None) -> None:
        """Refuse a form whose CSRF token is not this session's."""
        if not sent or not hmac.compare_digest(
            sent.encode("utf-8", "surrogateescape"), self.csrf_token.encode()
        ):
            raise InvalidRequest(
                "the form's security token is missing or wrong; reload the page and "
                "try again (nothing was changed)",
                field=CSRF_FIELD,
            )


def sign_in(
    tx: Transaction, *, key: str, secret: str, now: dt.datetime, lifetime_min: int
) -> tuple[Session, str]:
    """Check a brand's key and return its session and the cookie value."""
    key = key.strip()
    if not key or len(key) > KEY_LENGTH_MAX:
        raise InvalidRequest("enter the brand's API key", field="key")
    caller = keys.authenticate(tx, f"Bearer {key}", operator_key=None)
    # Past its offboarding grace a brand's keys are refused, as the API does.
    offboarding.refuse_after_grace(tx, brand_id=caller.brand_id, now=now)
    expires_at = now + dt.timedelta(minutes=lifetime_min)
    nonce = secrets.token_urlsafe(16)
    value = _sign(f"{keys.hash_key(key)}.{nonce}.{int(expires_at.timestamp())}", secret)
    return Session(caller, _csrf_token(nonce, secret), expires_at, nonce), value


def read(
    tx: Transaction, cookie: str | None, *, secret: str, now: dt.datetime
) -> Session:
    """Return the session a cookie stands for, or raise SessionExpired."""
    payload = _verify(cookie or "", secret)
    if payload is None:
        raise SessionExpired("sign in with your brand's API key", notice="signin_again")
    key_hash, nonce, expires = payload.split(".")
    expires_at = dt.datetime.fromtimestamp(int(expires), dt.UTC)
    if expires_at <= now:
        raise SessionExpired("your session expired; sign in again")
    if console_signouts.is_signed_out(tx, session_id=nonce):
        raise SessionExpired("this session was signed out; sign in again")
    row = tx.one(keys.SELECT_KEY, key_hash=key_hash)
    if row is None:
        raise SessionExpired("this key was revoked; sign in with another")
    caller = keys.Caller(
        brand_id=str(row["brand_id"]), key_name=row["name"], role=row["role"]
    )
    try:
        offboarding.refuse_after_grace(tx, brand_id=caller.brand_id, now=now)
    except Unauthorized as refused:
        raise SessionExpired(
            "this brand has left cartcast; its keys no longer sign in"
        ) from refused
    return Session(caller, _csrf_token(nonce, secret), expires_at, nonce)


def sign_out(tx: Transaction, session: Session, *, now: dt.datetime) -> None:
    """End the session on the server until its cookie would have expired."""
    console_signouts.record(
        tx, session_id=session.session_id, expires_at=session.expires_at, now=now
    )


def end_replaced(
    tx: Transaction, cookie: str | None, *, secret: str, now: dt.datetime
) -> None:
    """End the session whose cookie a new sign-in in the same browser replaces.

    The browser keeps only the new cookie, but a copy of the old one stayed good
    until its own expiry: the sign-in ends it as a sign-out would. A cookie that
    is not ours or has expired ended nothing and is let be. Its key is not looked
    up: a revoked key's session is refused anyway, and recording it costs a row.
    """
    payload = _verify(cookie or "", secret)
    if payload is None:
        return
    _, nonce, expires = payload.split(".")
    expires_at = dt.datetime.fromtimestamp(int(expires), dt.UTC)
    if expires_at <= now:
        return
    console_signouts.record(tx, session_id=nonce, expires_at=expires_at, now=now)


def cookie_header(value: str, *, host: str, max_age_s: int) -> str:
    """Return the Set-Cookie header: HttpOnly, SameSite=Strict, Secure off loopback."""
    parts = [
        f"{COOKIE_NAME}={value}",
        "Path=/console",
        f"Max-Age={max_age_s}",
        "HttpOnly",
        "SameSite=Strict",
    ]
    if not is_local(host):
        parts.append("Secure")
    return "; ".join(parts)


def is_local(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return name.lower() in LOCAL_HOSTS


def _csrf_token(nonce: str, secret: str) -> str:
    return hmac.new(secret.encode(), f"csrf.{nonce}".encode(), "sha256").hexdigest()


def _sign(payload: str, secret: str) -> str:
    mac = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest()
    signature = base64.urlsafe_b64encode(mac).decode().rstrip("=")
    return f"{payload}.{signature}"


def _verify(value: str, secret: str) -> str | None:
    """Return the signed payload (hash.nonce.expiry), or None if it is not ours."""
    payload, _, signature = value.rpartition(".")
    if not payload or not value.isascii() or payload.count(".") != 2:
        return None
    expected = _sign(payload, secret).rpartition(".")[2]
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        return None
    if not payload.rpartition(".")[2].isdigit():
        return None
    return payload
