"""The web console under /console: server-rendered pages over the same domain calls.

The api function hands every /console path here. Each request runs in one database
transaction, like the JSON API: a form that fails changes nothing, and its page says
why with the status the API would answer (400, 403, 404, 409). Pages are Jinja2
templates with one stylesheet served from /console/console.css, under a
Content-Security-Policy that allows nothing else (decision 0033); a big import's
progress page alone also runs its own script, and works without it (decision 0038).

Sign-in, the session cookie, CSRF tokens and what each role may do live in
console_session.py; a state-changing form is checked for its token first, then for
the role, then handed to the domain function the JSON API calls.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import io
import re
import urllib.parse
import zoneinfo
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2
from werkzeug.exceptions import MethodNotAllowed
from werkzeug.exceptions import NotFound as RouteNotFound
from werkzeug.formparser import MultiPartParser
from werkzeug.routing import Map, Rule
from werkzeug.sansio.multipart import (
    Data,
    Epilogue,
    Field,
    File,
    MultipartDecoder,
    NeedData,
)

from cartcast import (
    best_time,
    brands,
    catalog,
    catalog_imports,
    console_session,
    console_status,
    costs,
    crisis,
    dead_letters,
    inbox,
    keys,
    post_calendar,
    post_edits,
    post_events,
    posts,
    report_page,
    reports,
    signin_limits,
    slots,
    validation,
    web,
)
from cartcast.console_session import Session, SessionExpired
from cartcast.db import Transaction
from cartcast.errors import (
    BodyTimedOut,
    CartcastError,
    ConfigurationError,
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    TooManyRequests,
    TransientError,
    Unauthorized,
)
from cartcast.logs import fields

TEMPLATES = Path(__file__).resolve().parent / "templates"
STYLESHEETS = (TEMPLATES / "kpi_report.css", TEMPLATES / "console" / "console.css")
IMPORT_SCRIPT = TEMPLATES / "console" / "catalog_import.js"
UNFINISHED_IMPORTS_SHOWN_MAX = 5
APPROVALS_SHOWN_MAX = 200
BULK_APPROVE_MAX = 200
INBOX_SHOWN_MAX = 100
PRODUCTS_SHOWN_MAX = 500
CALENDAR_FIRST_DAY = dt.date(2, 1, 1)
CALENDAR_LAST_DAY = dt.date(9998, 12, 31)
# A wall time as the post page's slots and datetime-local field write it.
WALL_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}")
# A Shopify export of a thousand products with their variants and images.
UPLOAD_BYTES_MAX = 8 * 1024 * 1024
HTML_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    ),
}
# The import's progress page alone runs a script: its own, fetching its own chunks.
SCRIPTED_POLICY = (
    HTML_HEADERS["Content-Security-Policy"] + "; script-src 'self'; connect-src 'self'"
)
# What a redirect after a form may say; a code, so no text travels in a URL.
NOTICES = {
    "approved": "Approved.",
    "bulk": "The selected drafts were approved.",
    "rejected": "Rejected, with your reason.",
    "edited": "Saved. The checks ran again and the post waits for approval again.",
    "scheduled": "Scheduled.",
    "handled": "Marked handled.",
    "replied": "Reply queued; the publisher sends it at its next run.",
    "replied_deployment": (
        "Reply queued, but held: the operator has paused publishing for the whole "
        "deployment, so nothing is sent, replies included, until it is resumed "
        "(System status says since when)."
    ),
    "replied_disconnected": (
        "Reply queued, but held: the brand's X account is disconnected, and "
        "nothing is sent until it is connected again."
    ),
    "replied_offboarding": (
        "Reply queued, but held: the brand has asked to leave cartcast, and "
        "nothing is sent while its offboarding is pending (cancelling it sends "
        "the reply at the next publish run)."
    ),
    "replied_x_limit": (
        "Reply queued, but held: X's posting limit for this account is reached; "
        "the publisher sends it at its first run after the limit resets (System "
        "status says when)."
    ),
    "replied_crisis": (
        "Reply queued: the crisis pause holds the brand's posts but not its "
        "replies, so the publisher sends it at its next run."
    ),
    "paused": "Publishing is paused: queued posts are held.",
    "resumed": "Publishing resumed.",
    "signed_out": "Signed out.",
    "expired": (
        "Your session ended (it expired, was signed out, or its key was revoked): "
        "sign in again."
    ),
    "signin_again": "You are not signed in: sign in again.",
    "drafted": "Drafts written: they wait on the Approvals page.",
}

ROUTES = Map(
    [
        Rule("/console", methods=["GET"], endpoint="home"),
        Rule("/console/console.css", methods=["GET"], endpoint="stylesheet"),
        Rule("/console/favicon.svg", methods=["GET"], endpoint="icon"),
        Rule("/console/catalog_import.js", methods=["GET"], endpoint="import_script"),
        Rule("/console/signin", methods=["GET"], endpoint="signin_page"),
        Rule("/console/signin", methods=["POST"], endpoint="sign_in"),
        Rule("/console/signout", methods=["POST"], endpoint="sign_out"),
        Rule("/console/approvals", methods=["GET"], endpoint="approvals"),
        Rule("/console/approvals/bulk", methods=["POST"], endpoint="bulk_approve"),
        Rule("/console/posts/<post_id>", methods=["GET"], endpoint="post_page"),
        Rule("/console/posts/<post_id>/approve", methods=["POST"], endpoint="approve"),
        Rule("/console/posts/<post_id>/reject", methods=["POST"], endpoint="reject"),
        Rule("/console/posts/<post_id>/edit", methods=["POST"], endpoint="edit"),
        Rule(
            "/console/posts/<post_id>/schedule", methods=["POST"], endpoint="schedule"
        ),
        Rule("/console/calendar", methods=["GET"], endpoint="calendar"),
        Rule("/console/inbox", methods=["GET"], endpoint="inbox_page"),
        Rule(
            "/console/mentions/<mention_id>/handle",
            methods=["POST"],
            endpoint="handle_mention",
        ),
        Rule(
            "/console/mentions/<mention_id>/reply",
            methods=["POST"],
            endpoint="reply_to_mention",
        ),
        Rule("/console/pause", methods=["POST"], endpoint="pause"),
        Rule("/console/resume", methods=["POST"], endpoint="resume"),
        Rule("/console/kpis", methods=["GET"], endpoint="kpis"),
        Rule("/console/kpis.csv", methods=["GET"], endpoint="kpis_csv"),
        Rule("/console/status", methods=["GET"], endpoint="status"),
        Rule("/console/catalog", methods=["GET"], endpoint="catalog_page"),
        Rule("/console/catalog/import", methods=["POST"], endpoint="import_catalog"),
        Rule(
            "/console/catalog/imports/<import_id>",
            methods=["GET"],
            endpoint="import_page",
        ),
        Rule(
            "/console/catalog/imports/<import_id>/continue",
            methods=["POST"],
            endpoint="continue_import",
        ),
        Rule(
            "/console/catalog/captions", methods=["POST"], endpoint="caption_products"
        ),
    ],
    strict_slashes=False,
    # Not merged: a 308 to the bound name, http://localhost/..., is no page.
    merge_slashes=False,
)
# The pages in the navigation, in order; each is a GET of its own.
NAVIGATION = (
    ("approvals", "Approvals"),
    ("calendar", "Calendar"),
    ("inbox_page", "Inbox"),
    ("catalog_page", "Catalog"),
    ("kpis", "KPIs"),
    ("status", "System status"),
)
PUBLIC = {"stylesheet", "signin_page", "sign_in"}

Response = tuple[str, int, dict[str, str]]


def handle(request: Any, runtime: Any) -> Response:
    """Answer one /console request with a page, a redirect or the stylesheet."""
    try:
        endpoint, arguments = ROUTES.bind("localhost").match(
            request.path, request.method
        )
    except RouteNotFound:
        return page_not_found()
    except MethodNotAllowed as error:
        # RFC 9110 section 15.5.6: a 405 names the methods the page takes.
        page = _message_page(405, "This page does not take that kind of request.")
        page[2]["Allow"] = ", ".join(sorted(error.valid_methods or []))
        return page
    if endpoint == "stylesheet":
        return _stylesheet()
    if endpoint == "icon":
        return _icon()
    if endpoint == "import_script":
        return _import_script()
    if request.method == "POST":
        body_bytes_max = _body_bytes_max(endpoint)
        try:
            _read_form_within(request, body_bytes_max)
        except PayloadTooLarge:
            return _message_page(
                413,
                f"This form is larger than {body_bytes_max // (1024 * 1024)} MiB, "
                "the most the console takes from one form.",
            )
        except BodyTimedOut:
            return _message_page(
                408, "This form stopped arriving before its end; send it again."
            )
        except InvalidRequest:
            return _message_page(
                400,
                "This form arrived cut off or garbled; send it again.",
            )

    secret = runtime.settings.console_secret
    if not secret:
        return _message_page(
            503,
            "The console is off: this deployment has no CARTCAST_CONSOLE_SECRET.",
        )
    now = runtime.clock.now()
    # The key refused a form for its role, recorded once the transaction ended.
    refused_caller: keys.Caller | None = None
    try:
        with runtime.database.transaction() as tx:
            if endpoint in PUBLIC:
                return HANDLERS[endpoint](tx, request=request, runtime=runtime)
            session = console_session.read(
                tx,
                request.cookies.get(console_session.COOKIE_NAME),
                secret=secret,
                now=now,
            )
            post_events.act_as(tx, session.caller.key_name)
            if request.method == "POST":
                _check_form_is_utf8(request)
                session.check_csrf(request.form.get(console_session.CSRF_FIELD))
                _check_storable(request.form)
            try:
                return HANDLERS[endpoint](
                    tx, request=request, runtime=runtime, session=session, **arguments
                )
            except Forbidden:
                refused_caller = session.caller
                raise
    except SessionExpired as expired:
        if request.method in ("GET", "HEAD"):
            # A page asked for: to the sign-in page, saying why when a cookie was
            # sent; one that fails its signature (changed, emptied) ended no
            # session, and is told only that it is not signed in. A HEAD is a GET
            # without the body (RFC 9110, 9.3.2); Werkzeug leaves the body out.
            had_one = console_session.COOKIE_NAME in request.cookies
            notice = f"?notice={expired.notice}" if had_one else ""
            location = "/console/signin" + notice
            return _redirect(location, {"Set-Cookie": _cleared_cookie()})
        return _signin_form(str(expired), status=401, clear_cookie=True)
    except InvalidRequest as refused:
        if refused_caller is not None and refused_caller.brand_id is not None:
            _record_refusal(runtime, request, refused_caller, refused, now)
        return _message_page(refused.status, str(refused), field=refused.field)
    except CartcastError as error:
        web.error_response(error, runtime.log, now)
        return _message_page(503, "Something failed on our side; try again later.")


def _body_bytes_max(endpoint: str) -> int:
    """A catalog import takes UPLOAD_BYTES_MAX, any other form the API's limit."""
    return UPLOAD_BYTES_MAX if endpoint == "import_catalog" else web.BODY_BYTES_MAX


def _read_form_within(request: Any, body_bytes_max: int) -> None:
    """Read and cache a form's body, refusing one past `body_bytes_max` bytes.

    The cap is the API's (web.read_body_within): a longer declared length is
    refused with none of it kept, a chunked body kept one byte past the limit at
    most, and the rest discarded. Werkzeug's
    own cap on one multipart text field (500,000 bytes by default) is raised to
    the same limit, so that a pasted catalog is held to the upload's size alone.

    Raises:
        PayloadTooLarge: the body is longer than `body_bytes_max`.
    """
    raw = web.read_body_within(request, body_bytes_max)
    request.max_form_memory_size = body_bytes_max
    # Werkzeug parses the form, and get_data answers, from the bytes read.
    request.stream = io.BytesIO(raw)
    request.get_data(cache=True)


def _record_refusal(
    runtime: Any, request: Any, caller: keys.Caller, error: Any, now: dt.datetime
) -> None:
    """Put a form refused for the key's role in its brand's trail, as the API does."""
    route = _route_of(request)
    _api_refusal(
        runtime,
        brand_id=caller.brand_id,
        actor=caller.key_name,
        action="access.refused",
        route=route,
        after={"route": route, "role": caller.role, "message": str(error)},
        now=now,
    )


def _api_refusal(runtime: Any, **record: Any) -> None:
    from cartcast import api

    api.record_refusal(runtime, **record)


def _route_of(request: Any) -> str:
    """`POST /console/posts/{post_id}/approve`: the rule a request matched."""
    rule, _ = ROUTES.bind("localhost").match(
        request.path, request.method, return_rule=True
    )
    return f"{request.method} " + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)


# --- sign-in ---------------------------------------------------------------


def signin_page(tx: Transaction, *, request: Any, runtime: Any) -> Response:
    return _signin_form(None, notice=_notice(request))


def sign_in(tx: Transaction, *, request: Any, runtime: Any) -> Response:
    """Check the key, set the session cookie and go to the approvals.

    An address that failed too often this window is refused first, with no key
    looked up (signin_limits); each wrong key counts against it.
    """
    _require_same_origin(request)
    settings, now = runtime.settings, runtime.clock.now()
    client = signin_limits.client_address(
        request.remote_addr,
        request.headers.get("X-Forwarded-For", ""),
        settings.console_proxy_hops,
    )
    try:
        signin_limits.check(
            tx,
            client=client,
            now=now,
            failures_max=settings.console_signin_failures,
            window_min=settings.console_signin_window_min,
        )
    except TooManyRequests as limited:
        _record_limited_sign_in(runtime, tx, request, now)
        runtime.log.warning("console sign-in limited", extra=fields(client=client))
        response = _signin_form(str(limited), status=limited.status)
        response[2]["Retry-After"] = str(limited.retry_after_s)
        return response
    try:
        session, cookie = console_session.sign_in(
            tx,
            key=request.form.get("key", ""),
            secret=settings.console_secret,
            now=now,
            lifetime_min=settings.console_session_min,
        )
    except InvalidRequest as refused:
        if isinstance(refused, Unauthorized):
            window_min = settings.console_signin_window_min
            signin_limits.record_failure(
                tx, client=client, now=now, window_min=window_min
            )
        if isinstance(refused, keys.RevokedKey):
            route = _route_of(request)
            _api_refusal(
                runtime,
                brand_id=refused.brand_id,
                actor=refused.key_name,
                action="access.revoked_key_used",
                route=route,
                after={"route": route},
                now=now,
            )
        return _signin_form(str(refused), status=refused.status)
    # The browser drops its old cookie for the new one; its session ends too.
    console_session.end_replaced(
        tx,
        request.cookies.get(console_session.COOKIE_NAME),
        secret=settings.console_secret,
        now=now,
    )
    header = console_session.cookie_header(
        cookie,
        host=request.host,
        max_age_s=settings.console_session_min * 60,
    )
    runtime.log.info("console sign-in", extra=fields(brand_id=session.caller.brand_id))
    return _redirect("/console/approvals", {"Set-Cookie": header})


def _record_limited_sign_in(
    runtime: Any, tx: Transaction, request: Any, now: dt.datetime
) -> None:
    """Put a refused sign-in in the trail of the brand whose key it carried, if any:
    someone holding a brand's key (live or revoked) is being held off."""
    key = request.form.get("key", "").strip()
    if not key.isascii() or not key or len(key) > console_session.KEY_LENGTH_MAX:
        return
    row = tx.one(keys.SELECT_ANY_KEY, key_hash=keys.hash_key(key))
    if row is None:
        return
    route = _route_of(request)
    _api_refusal(
        runtime,
        brand_id=str(row["brand_id"]),
        actor=row["name"],
        action="access.signin_limited",
        route=route,
        after={"route": route},
        now=now,
    )


def sign_out(
    tx: Transaction, *, request: Any, runtime: Any, session: Session
) -> Response:
    """End the session on the server, then clear the browser's cookie.

    Clearing the cookie alone left any copy of it working until it expired.
    """
    console_session.sign_out(tx, session, now=runtime.clock.now())
    clear = console_session.cookie_header("", host=request.host, max_age_s=0)
    return _redirect("/console/signin?notice=signed_out", {"Set-Cookie": clear})


def home(tx: Transaction, *, request: Any, runtime: Any, session: Session) -> Response:
    return _redirect("/console/approvals")


# --- approvals ---------------------------------------------------------------


def approvals(
    tx: Transaction, *, request: Any, runtime: Any, session: Session
) -> Response:
    """Drafts waiting for approval, grouped by product: variants side by side; then
    the approved posts waiting for a time."""
    brand_id = session.caller.brand_id
    waiting = posts.list_posts(
        tx,
        brand_id=brand_id,
        state="needs_approval",
        limit=APPROVALS_SHOWN_MAX,
        prices=runtime.settings.x_prices_usd,
    )
    # Approved posts have no calendar day until they are given a time.
    approved = posts.list_posts(
        tx,
        brand_id=brand_id,
        state="approved",
        limit=APPROVALS_SHOWN_MAX,
        prices=runtime.settings.x_prices_usd,
    )
    products = _products_of(tx, brand_id, waiting)
    groups: dict[str, list[dict[str, Any]]] = {}
    for post in waiting:
        groups.setdefault(str(post["product_id"]), []).append(post)
    return _page(
        "approvals.html",
        request,
        session,
        tx,
        title="Approvals",
        groups=[(products.get(key), drafts) for key, drafts in groups.items()],
        count=len(waiting),
        approved=[post for post in approved if post["in_reply_to"] is None],
    )


def bulk_approve(
    tx: Transaction, *, request: Any, runtime: Any, session: Session
) -> Response:
    session.require("approve")
    # A draft chosen twice (a form sent with its checkbox repeated, an id in
    # another case) is one draft to approve: asked twice, its second approval
    # found it approved and refused the whole selection with a 409.
    chosen = {_row_id(chosen_id, "post") for chosen_id in request.form.getlist("post")}
    if not chosen:
        raise InvalidRequest("choose at least one draft to approve", field="post")
    if len(chosen) > BULK_APPROVE_MAX:
        raise InvalidRequest(
            f"approve at most {BULK_APPROVE_MAX} drafts at once", field="post"
        )
    # Each approval locks its post until commit: two selections of the same
    # drafts in different orders would each wait for the other, and PostgreSQL
    # fails one (deadlock detected). In id order, the second waits for the first.
    for post_id in sorted(chosen):
        try:
            posts.apply_action(
                tx,
                brand_id=session.caller.brand_id,
                post_id=post_id,
                action="approve",
                now=runtime.clock.now(),
            )
        except Conflict as refused:
            # One draft approved or rejected in another tab since the page was
            # loaded refuses the selection; the page said "post is approved"
            # without saying which of the selection, nor that none was approved.
            raise Conflict(
                f"draft {post_id}: {refused}; none of the selection was approved. "
                "Reload the page to see the drafts as they are now",
                field="post",
            ) from refused
    return _redirect("/console/approvals?notice=bulk")


def post_page(
    tx: Transaction, *, request: Any, runtime: Any, session: Session, post_id: str
) -> Response:
    brand_id = session.caller.brand_id
    post = _brand_post(tx, runtime, session, post_id)
    products = _products_of(tx, brand_id, [post])
    brand = brands.get_brand(tx, brand_id)
    zone = zoneinfo.ZoneInfo(brand["time_zone"])
    events = post_events.list_events(tx, brand_id=brand_id, post_id=str(post["id"]))

    # A time already past would only come back as a 400 ("must be in the future"):
    # the field starts empty instead, which schedules the next free slot.
    scheduled_at = post["scheduled_at"]
    time_passed = scheduled_at is not None and scheduled_at <= runtime.clock.now()
    return _page(
        "post.html",
        request,
        session,
        tx,
        title="Post",
        post=post,
        product=products.get(str(post["product_id"])),
        events=events,
        zone=brand["time_zone"],
        local_scheduled="" if time_passed else _local(scheduled_at, zone),
        time_passed=time_passed,
        suggested=_suggested_slots(tx, brand_id, zone, runtime.clock.now()),
    )


def approve(
    tx: Transaction, *, request: Any, runtime: Any, session: Session, post_id: str
) -> Response:
    session.require("approve")
    post = _brand_post(tx, runtime, session, post_id)
    posts.apply_action(
        tx,
        brand_id=session.caller.brand_id,
        post_id=str(post["id"]),
        action="approve",
        now=runtime.clock.now(),
    )
    return _redirect(_back(request, "/console/approvals") + "notice=approved")


def reject(
    tx: Transaction, *, request: Any, runtime: Any, session: Session, post_id: str
) -> Response:
    session.require("approve")
    post = _brand_post(tx, runtime, session, post_id)
    reason = request.form.get("reason", "").strip()
    if not reason:
        raise InvalidRequest("say why the post is rejected", field="reason")
    posts.reject(
        tx,
        brand_id=session.caller.brand_id,
        post_id=str(post["id"]),
        body={"reason": reason},
        now=runtime.clock.now(),
    )
    return _redirect("/console/approvals?notice=rejected")


def edit(
    tx: Transaction, *, request: Any, runtime: Any, session: Session, post_id: str
) -> Response:
    """Replace the copy; post_edits re-runs the checks and asks for approval."""
    session.require("edit")
    post = _brand_post(tx, runtime, session, post_id)
    if post["kind"] == "thread":
        parts = [part for part in request.form.getlist("part")]
        body: dict[str, Any] = {"parts": parts}
    else:
        body = {"text": request.form.get("text", "")}
    post_edits.edit_post(
        tx,
        brand_id=session.caller.brand_id,
        post_id=str(post["id"]),
        body=body,
        now=runtime.clock.now(),
        near_duplicate_threshold=runtime.settings.near_duplicate_threshold,
        near_duplicate_days=runtime.settings.near_duplicate_days,
    )
    return _redirect(f"/console/posts/{post['id']}?notice=edited")


def schedule(
    tx: Transaction, *, request: Any, runtime: Any, session: Session, post_id: str
) -> Response:
    """Schedule or move a post to a wall time in the brand's zone, or the next slot."""
    session.require("schedule")
    post = _brand_post(tx, runtime, session, post_id)
    slot = request.form.get("slot", "").strip()
    typed = request.form.get("local_time", "").strip()
    # The time field comes filled with the post's own time, so a slot picked above
    # it is a move to the slot. A time changed as well is two answers: taking the
    # slot would drop the typed time without a word.
    brand = brands.get_brand(tx, session.caller.brand_id)
    zone = zoneinfo.ZoneInfo(brand["time_zone"])
    if slot and typed and typed != _local(post["scheduled_at"], zone):
        raise InvalidRequest(
            "pick a suggested slot or type a time, not both", field="slot"
        )
    now = runtime.clock.now()
    if slot:
        _refuse_a_passed_slot(slot, zone, now)

    body = {"local_time": slot or typed} if slot or typed else {}
    posts.schedule(
        tx,
        brand_id=session.caller.brand_id,
        post_id=str(post["id"]),
        body=body,
        now=now,
        horizon_days=runtime.settings.schedule_horizon_days,
        # A refusal names the form's field the person filled in.
        wall_time_field="slot" if slot else "local_time",
    )
    return _redirect(
        _back(request, f"/console/posts/{post['id']}") + "notice=scheduled"
    )


# --- calendar ----------------------------------------------------------------


def calendar(
    tx: Transaction, *, request: Any, runtime: Any, session: Session
) -> Response:
    brand = brands.get_brand(tx, session.caller.brand_id)
    zone = zoneinfo.ZoneInfo(brand["time_zone"])
    # A parameter the page reads is refused given twice, as the API refuses one;
    # others (a link's utm_source) are let be: a page only shows, and a browser
    # or add-on adds its own to the links it follows.
    view = web.query_value(request, "view")
    view = "week" if view is None else view
    if view not in post_calendar.VIEWS:
        raise InvalidRequest("'view' must be week or month", field="view")
    today = runtime.clock.now().astimezone(zone).date()
    start_day = _day(web.query_value(request, "start"), today)
    start = post_calendar.first_day(view, start_day)
    days = post_calendar.days_of(view, start)
    previous, following = post_calendar.neighbours(view, start)

    by_day = post_calendar.posts_by_day(
        tx,
        brand_id=session.caller.brand_id,
        time_zone=brand["time_zone"],
        days=days,
        prices=runtime.settings.x_prices_usd,
    )
    return _page(
        "calendar.html",
        request,
        session,
        tx,
        title="Calendar",
        view=view,
        zone=brand["time_zone"],
        days=[(day, by_day.get(day, [])) for day in days],
        today=today,
        previous=previous,
        following=following,
        suggested=_suggested_slots(
            tx, session.caller.brand_id, zone, runtime.clock.now()
        ),
    )


# --- inbox -------------------------------------------------------------------


def inbox_page(
    tx: Transaction, *, request: Any, runtime: Any, session: Session
) -> Response:
    """Open mentions, INBOX_SHOWN_MAX a page, most urgent first; the crisis pause.

    A page links the next by the API's own token (`after`), so a brand with more
    open mentions than one page holds can reach its least urgent ones.
    """
    brand_id = session.caller.brand_id
    brand = brands.get_brand(tx, brand_id)
    after = web.query_value(request, "after")
    page = inbox.list_inbox(
        tx,
        brand_id=brand_id,
        query={} if after is None else {"after": after},
        limit=INBOX_SHOWN_MAX,
        now=runtime.clock.now(),
        brand=brand,
    )
    following = page["next"]
    return _page(
        "inbox.html",
        request,
        session,
        tx,
        title="Inbox",
        mentions=page["mentions"],
        first_page=after is None,
        after=after,
        next_page=(
            None
            if following is None
            else "/console/inbox?" + urllib.parse.urlencode({"after": following})
        ),
        page_size=INBOX_SHOWN_MAX,
        reason_max=crisis.PAUSE_REASON_MAX,
        pause=crisis.pause_state(tx, brand_id=brand_id),
        crises=crisis.list_crises(
            tx,
            brand_id=brand_id,
            limit=5,
            now=runtime.clock.now(),
            window_min=runtime.settings.crisis_window_min,
        )[0],
    )


def handle_mention(
    tx: Transaction, *, request: Any, runtime: Any, session: Session, mention_id: str
) -> Response:
    session.require("answer")
    back = _inbox_page_of(request)
    with _brand_mention():
        inbox.mark_handled(
            tx,
            brand_id=session.caller.brand_id,
            mention_id=_row_id(mention_id, "mention"),
            caller=session.caller,
            now=runtime.clock.now(),
        )
    return _redirect(back + "notice=handled")


def reply_to_mention(
    tx: Transaction, *, request: Any, runtime: Any, session: Session, mention_id: str
) -> Response:
    session.require("answer")
    back = _inbox_page_of(request)
    with _brand_mention():
        inbox.reply(
            tx,
            brand_id=session.caller.brand_id,
            mention_id=_row_id(mention_id, "mention"),
            body={"text": request.form.get("text", "")},
            caller=session.caller,
            now=runtime.clock.now(),
        )
    # The publisher's pauses are read after the reply is queued, in the same
    # transaction: the notice says what holds it, not only what would send it.
    hold = console_status.reply_hold(
        tx, brand_id=session.caller.brand_id, now=runtime.clock.now()
    )
    return _redirect(back + "notice=replied" + (f"_{hold}" if hold else ""))


def _inbox_page_of(request: Any) -> str:
    """Return the inbox page a mention's form was sent from, ready for a query.

    The form carries its page's `after` token, so answering a mention on the
    second page goes back there, not to the first. The token is checked before
    anything changes: one this list did not write is a 400 naming `after`.
    """
    after = request.form.get("after", "")
    if not after:
        return "/console/inbox?"
    inbox.check_after(after)
    return "/console/inbox?" + urllib.parse.urlencode({"after": after}) + "&"


@contextlib.contextmanager
def _brand_mention() -> Iterator[None]:
    """Say of another brand's mention, as of a missing one, that it is not ours.

    inbox.py answers both with a bare "mention not found"; the console's pages
    say which brand's data they look at, as _brand_post does for posts.
    """
    try:
        yield
    except NotFound as error:
        raise NotFound(
            "this mention is not one of your brand's mentions (or it does not exist)"
        ) from error


def pause(tx: Transaction, *, request: Any, runtime: Any, session: Session) -> Response:
    """The crisis pause: hold every queued post until someone resumes."""
    session.require("pause")
    # The field is optional, so a reason the API calls blank (only spaces and
    # invisible marks) is none, and the default reason is kept: stored, it read
    # "paused ... by admin: ." on every page. Otherwise checked as the API checks it.
    reason = crisis.pause_reason(request.form.get("reason", ""), blank_is_default=True)
    crisis.pause_brand(
        tx,
        brand_id=session.caller.brand_id,
        actor=session.caller.key_name,
        reason=reason,
        now=runtime.clock.now(),
    )
    return _redirect("/console/inbox?notice=paused")


def resume(
    tx: Transaction, *, request: Any, runtime: Any, session: Session
) -> Response:
    session.require("pause")
    crisis.resume_brand(
        tx,
        brand_id=session.caller.brand_id,
        now=runtime.clock.now(),
        actor=session.caller.key_name,
    )
    return _redirect("/console/inbox?notice=resumed")


# --- KPIs and status ---------------------------------------------------------


def kpis(tx: Transaction, *, request: Any, runtime: Any, session: Session) -> Response:
    """The KPI report's charts for a range of brand-local days, and its CSV."""
    brand = brands.get_brand(tx, session.caller.brand_id)
    first_day, last_day = _range(request, brand, runtime.clock.now())
    report = reports.kpi_report(tx, brand=brand, first_day=first_day, last_day=last_day)
    charts = report_page.charts(
        report,
        brand=brand,
        first_day=first_day,
        last_day=last_day,
        generated_at=runtime.clock.now(),
    )
    query = urllib.parse.urlencode({"from": first_day, "to": last_day})
    return _page(
        "kpis.html",
        request,
        session,
        tx,
        title="KPIs",
        csv_url=f"/console/kpis.csv?{query}",
        **charts,
    )


def kpis_csv(
    tx: Transaction, *, request: Any, runtime: Any, session: Session
) -> Response:
    brand = brands.get_brand(tx, session.caller.brand_id)
    first_day, last_day = _range(request, brand, runtime.clock.now())
    rows = reports.daily(
        tx,
        brand_id=str(brand["id"]),
        time_zone=brand["time_zone"],
        first_day=first_day,
        last_day=last_day,
    )
    headers = {
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": (
            f'attachment; filename="cartcast-daily-kpis-{first_day}-to-{last_day}.csv"'
        ),
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }
    return reports.to_csv(reports.DAILY_COLUMNS, rows), 200, headers


def status(
    tx: Transaction, *, request: Any, runtime: Any, session: Session
) -> Response:
    brand_id, now = session.caller.brand_id, runtime.clock.now()
    found = console_status.system_status(tx, brand_id=brand_id, now=now)
    spent, month, _ = costs.month_spend(tx, brands.get_brand(tx, brand_id), now)
    gemini = runtime.gemini()
    return _page(
        "status.html",
        request,
        session,
        tx,
        title="System status",
        gemini=gemini.governor.state() if gemini is not None else None,
        x_spent_usd=spent,
        x_month=month,
        x_budget_reached=costs.at_budget(tx, brand_id, now),
        pubsub_dead_letters=_pubsub_dead_letters(runtime, session, now),
        **found,
    )


def _pubsub_dead_letters(
    runtime: Any, session: Session, now: dt.datetime
) -> dict[str, Any] | None:
    """Pub/Sub's dead letters, for an admin: they are the deployment's messages,
    of every brand, so other roles see none of them (decision 0038)."""
    if session.caller.role != "admin":
        return None
    shown: dict[str, Any] = {
        "configured": False,
        "problem": None,
        "found": None,
        "pull_timeout_s": int(dead_letters.PULL_TIMEOUT_S),
    }
    subscriber = runtime.dead_letter_subscriber()
    if subscriber is None:
        return shown
    shown["configured"] = True
    subscription = dead_letters.subscription_path(runtime.settings)
    try:
        shown["found"] = dead_letters.peek(subscriber, subscription, now=now)
    except TransientError as error:
        runtime.log.warning("dead letters not read", exc_info=error)
        shown["problem"] = f"Pub/Sub did not answer ({error}); reload later."
    except ConfigurationError as error:
        runtime.log.error("dead letters not read", exc_info=error)
        shown["problem"] = f"Not read: {error}."
    return shown


# --- catalog -----------------------------------------------------------------


def catalog_page(
    tx: Transaction, *, request: Any, runtime: Any, session: Session
) -> Response:
    return _catalog(tx, request=request, session=session, report=None)


def import_catalog(
    tx: Transaction, *, request: Any, runtime: Any, session: Session
) -> Response:
    """Check an uploaded Shopify CSV or JSON feed, keep it as an import job and
    store its first chunk; a file that fits shows its report at once, a bigger one
    goes on from its progress page (decision 0038)."""
    session.require("import")
    if request.content_length and request.content_length > UPLOAD_BYTES_MAX:
        raise InvalidRequest(
            f"the file is larger than {UPLOAD_BYTES_MAX // (1024 * 1024)} MiB",
            field="file",
        )
    # Two files, or a paste given twice, would import the first and drop the
    # other without a word, as a file and a paste together did.
    for field, given in (("file", request.files), ("pasted", request.form)):
        if len(given.getlist(field)) > 1:
            raise InvalidRequest(f"give one {field}, not several", field=field)
    upload = request.files.get("file")
    pasted = request.form.get("pasted", "")
    if upload is not None and upload.filename and pasted.strip():
        # Taking one and dropping the other would import what the person did not
        # mean to, and say nothing.
        raise InvalidRequest(
            "choose a file or paste a catalog, not both", field="pasted"
        )
    if upload is not None and upload.filename:
        field = "file"
        kind, content = catalog_imports.read_upload(upload.read(), upload.filename)
    elif pasted.strip():
        field = "pasted"
        kind, content = catalog_imports.read_pasted(pasted)
    else:
        raise InvalidRequest("choose a file to import, or paste one", field="file")
    if kind == "csv":
        prepared = catalog_imports.prepare_shopify_csv(content, field=field)
    else:
        prepared = catalog_imports.prepare_json_feed(content, field=field)

    brand_id, now = session.caller.brand_id, runtime.clock.now()
    import_id = catalog_imports.create_import(
        tx,
        brand_id=brand_id,
        prepared=prepared,
        created_by=session.caller.key_name,
        now=now,
    )
    progress = catalog_imports.run_chunk(
        tx,
        brand_id=brand_id,
        import_id=import_id,
        limit=runtime.settings.console_import_chunk,
        now=now,
    )
    _log_chunk(runtime, brand_id, progress)
    if not progress["done"]:
        return _redirect(f"/console/catalog/imports/{import_id}")
    return _catalog(tx, request=request, session=session, report=progress)


def import_page(
    tx: Transaction, *, request: Any, runtime: Any, session: Session, import_id: str
) -> Response:
    """An import's progress, or its report once every row is done."""
    progress = catalog_imports.progress(
        tx,
        brand_id=session.caller.brand_id,
        import_id=_row_id(import_id, "import"),
    )
    if progress["done"]:
        return _catalog(tx, request=request, session=session, report=progress)
    body, status, headers = _page(
        "catalog_import.html",
        request,
        session,
        tx,
        title="Importing the catalog",
        progress=progress,
    )
    return body, status, {**headers, "Content-Security-Policy": SCRIPTED_POLICY}


def continue_import(
    tx: Transaction, *, request: Any, runtime: Any, session: Session, import_id: str
) -> Response:
    """Store the import's next chunk: JSON progress for the page's script, else
    back to the progress page."""
    session.require("import")
    brand_id = session.caller.brand_id
    progress = catalog_imports.run_chunk(
        tx,
        brand_id=brand_id,
        import_id=_row_id(import_id, "import"),
        limit=runtime.settings.console_import_chunk,
        now=runtime.clock.now(),
    )
    _log_chunk(runtime, brand_id, progress)
    if "application/json" in request.headers.get("Accept", ""):
        shown = ("rows_done", "rows", "done", "imported", "refused")
        return web.json_response({name: progress[name] for name in shown})
    return _redirect(f"/console/catalog/imports/{progress['id']}")


def _log_chunk(runtime: Any, brand_id: str, progress: dict[str, Any]) -> None:
    runtime.log.info(
        "catalog import chunk stored",
        extra=fields(
            brand_id=brand_id,
            import_id=progress["id"],
            kind=progress["kind"],
            rows_done=progress["rows_done"],
            rows=progress["rows"],
            imported=progress["imported"],
            refused=progress["refused"],
            done=progress["done"],
        ),
    )


def _catalog(
    tx: Transaction, *, request: Any, session: Session, report: Any
) -> Response:
    """The catalog page, with an import's report when there was one."""
    brand_id = session.caller.brand_id
    # Retired products are listed too, marked, with no box to caption them.
    found = catalog.list_products(
        tx,
        brand_id=brand_id,
        after_sku=None,
        limit=PRODUCTS_SHOWN_MAX,
        retired="include",
    )
    return _page(
        "catalog.html",
        request,
        session,
        tx,
        title="Catalog",
        products=found,
        report=report,
        unfinished=catalog_imports.unfinished(
            tx, brand_id=brand_id, limit=UNFINISHED_IMPORTS_SHOWN_MAX
        ),
        drafts_max=posts.PRODUCTS_PER_REQUEST_MAX,
    )


def caption_products(
    tx: Transaction, *, request: Any, runtime: Any, session: Session
) -> Response:
    """Write drafts for the chosen products, as POST /v1/captions does."""
    session.require("edit")
    chosen = request.form.getlist("sku")
    if not chosen:
        raise InvalidRequest("choose at least one product to caption", field="sku")
    posts.create_drafts(
        tx,
        brand_id=session.caller.brand_id,
        body={"products": chosen},
        created_by=session.caller.key_name,
        now=runtime.clock.now(),
        gemini=runtime.gemini(),
        near_duplicate_threshold=runtime.settings.near_duplicate_threshold,
        near_duplicate_days=runtime.settings.near_duplicate_days,
    )
    return _redirect("/console/approvals?notice=drafted")


# --- plumbing ----------------------------------------------------------------


def _page(
    template: str,
    request: Any,
    session: Session,
    tx: Transaction,
    *,
    title: str,
    **values: Any,
) -> Response:
    brand = brands.get_brand(tx, session.caller.brand_id)
    body = (
        _environment()
        .get_template(template)
        .render(
            title=title,
            brand=brand,
            session=session,
            csrf=session.csrf_token,
            navigation=NAVIGATION,
            current=request.path,
            notice=_notice(request),
            **values,
        )
    )
    return body, 200, dict(HTML_HEADERS)


def _notice(request: Any) -> str | None:
    """The line a redirect asked the page to show; one given twice is refused."""
    return NOTICES.get(web.query_value(request, "notice") or "")


def _signin_form(
    problem: str | None,
    *,
    status: int = 200,
    notice: str | None = None,
    clear_cookie: bool = False,
) -> Response:
    body = (
        _environment()
        .get_template("signin.html")
        .render(title="Sign in", problem=problem, notice=notice)
    )
    headers = dict(HTML_HEADERS)
    if clear_cookie:
        headers["Set-Cookie"] = _cleared_cookie()
    return body, status, headers


def _cleared_cookie() -> str:
    return f"{console_session.COOKIE_NAME}=; Path=/console; Max-Age=0"


def page_not_found() -> Response:
    """The console's 404 page, for a path it does not know."""
    return _message_page(404, "There is no such page in the console.")


def _message_page(status: int, message: str, *, field: str | None = None) -> Response:
    body = (
        _environment()
        .get_template("message.html")
        .render(
            title="Not done" if status < 500 else "Unavailable",
            status=status,
            message=message,
            field=field,
        )
    )
    return body, status, dict(HTML_HEADERS)


def _redirect(location: str, headers: dict[str, str] | None = None) -> Response:
    return (
        "",
        303,
        {"Location": location, "Cache-Control": "no-store", **(headers or {})},
    )


def _back(request: Any, default: str) -> str:
    """Return the console page a form asked to go back to, ready for a query."""
    wanted = request.form.get("back", "")
    # Only a path of this console: no scheme, host, backslash or control character.
    safe = wanted.isascii() and wanted.isprintable() and "\\" not in wanted
    if not (safe and wanted.startswith("/console/")) or "//" in wanted:
        wanted = default
    return wanted + ("&" if "?" in wanted else "?")


def _check_form_is_utf8(request: Any) -> None:
    """Refuse a form whose text fields are not UTF-8, before it is read.

    Werkzeug decodes form fields, urlencoded and multipart alike, with
    errors="replace": a reply, a reason or a pasted catalog would otherwise be
    stored, or posted on X, as U+FFFD characters nobody typed. The body is
    cached, so that request.form parses these same bytes afterwards.
    """
    if request.mimetype == "application/x-www-form-urlencoded":
        fields = _urlencoded_fields(request.get_data(cache=True))
    elif request.mimetype == "multipart/form-data":
        fields = _multipart_text_fields(request)
    else:
        return
    for name, value, charset in fields:
        try:
            name.decode("utf-8"), value.decode(charset)
        except UnicodeDecodeError as error:
            raise InvalidRequest(
                "this form holds bytes that are not UTF-8 text",
                field=name.decode("utf-8", "replace")[:100],
            ) from error


def _urlencoded_fields(raw: bytes) -> Iterator[tuple[bytes, bytes, str]]:
    """Yield each field of a urlencoded body as raw bytes, escapes undone."""
    for pair in raw.split(b"&"):
        name, _, value = (
            urllib.parse.unquote_to_bytes(part.replace(b"+", b" "))
            for part in pair.partition(b"=")
        )
        yield name, value, "utf-8"


def _multipart_text_fields(request: Any) -> Iterator[tuple[bytes, bytes, str]]:
    """Yield each text field (not file) of a multipart body as raw bytes, with the
    charset Werkzeug will decode it in: UTF-8 unless the part names another.

    A body Werkzeug cannot split (no boundary, cut short before its closing
    boundary, a broken part) is refused here as such: Werkzeug would read it as an
    empty form, and the CSRF check would then blame a missing token. The body's
    size is already capped (_read_form_within).
    """
    malformed = InvalidRequest(
        "this upload was cut short or malformed; nothing was read from it. "
        "Send it again."
    )
    boundary = request.mimetype_params.get("boundary", "")
    if not boundary or not boundary.isascii():
        raise malformed
    decoder = MultipartDecoder(boundary.encode("ascii"))
    decoder.receive_data(request.get_data(cache=True))
    decoder.receive_data(None)
    # Werkzeug's own choice of a part's charset, so that exactly the bytes it
    # would replace are refused.
    part_charset = MultiPartParser().get_part_charset
    part: Field | File | None = None
    chunks: list[bytes] = []
    while True:
        try:
            event = decoder.next_event()
        except ValueError as error:
            raise malformed from error
        if isinstance(event, Epilogue):
            return
        if isinstance(event, NeedData):
            # The whole body was given: wanting more means it ended early.
            raise malformed
        if isinstance(event, (Field, File)):
            part, chunks = event, []
        elif isinstance(event, Data) and isinstance(part, Field):
            chunks.append(event.data)
            if not event.more_data:
                value = b"".join(chunks)
                yield part.name.encode("utf-8"), value, part_charset(part.headers)


def _check_storable(form: Any) -> None:
    """Refuse a form field PostgreSQL text cannot hold (NUL), as the API's JSON
    reader does, instead of failing in the database."""
    for name, value in form.items(multi=True):
        if web.UNSTORABLE_CHARACTER.search(name + value):
            raise InvalidRequest(
                "this field holds a character that cannot be stored (NUL, \\u0000)",
                field=web.UNSTORABLE_CHARACTER.sub("", name)[:100],
            )


def _require_same_origin(request: Any) -> None:
    """Refuse a sign-in posted from another site (login CSRF); browsers send Origin.

    The console's own form sends Origin "null" under its no-referrer policy, as a
    sandboxed frame elsewhere does; Sec-Fetch-Site, which browsers send whatever
    the policy, tells the two apart.
    """
    origin = request.headers.get("Origin")
    site = request.headers.get("Sec-Fetch-Site")
    if (
        origin
        and origin != "null"
        and urllib.parse.urlsplit(origin).netloc != request.host
    ) or (site is not None and site not in ("same-origin", "none")):
        raise InvalidRequest("sign in from the console's own page", field="key")


def _brand_post(
    tx: Transaction, runtime: Any, session: Session, post_id: str
) -> dict[str, Any]:
    """Return the brand's post; another brand's post is a 404 like a missing one."""
    try:
        return posts.get_post(
            tx,
            brand_id=session.caller.brand_id,
            post_id=_row_id(post_id, "post"),
            prices=runtime.settings.x_prices_usd,
        )
    except NotFound as error:
        raise NotFound(
            "this post is not one of your brand's posts (or it does not exist)"
        ) from error


def _row_id(value: str, what: str) -> str:
    try:
        return validation.identifier(value, what)
    except InvalidRequest as error:
        raise NotFound(f"this {what} is not one of your brand's") from error


SELECT_PRODUCTS_BY_ID = """
SELECT id, sku, title, price, image_url FROM products
WHERE brand_id = :brand_id AND id = ANY(CAST(:ids AS uuid[]))
"""


def _products_of(
    tx: Transaction, brand_id: str, found: list[dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    ids = sorted({str(post["product_id"]) for post in found if post["product_id"]})
    rows = tx.rows(SELECT_PRODUCTS_BY_ID, brand_id=brand_id, ids=ids) if ids else []
    return {str(row["id"]): row for row in rows}


def _suggested_slots(
    tx: Transaction, brand_id: str, zone: zoneinfo.ZoneInfo, now: dt.datetime
) -> list[str]:
    """Return the next week's best hours as wall times to pick from (best_time)."""
    hours = best_time.suggest(tx, brand_id=brand_id)["suggestions"][:5]
    local_now = now.astimezone(zone)
    offered = []
    for hour in hours:
        days_ahead = (hour["weekday"] - local_now.weekday()) % 7
        day = local_now.date() + dt.timedelta(days=days_ahead)
        at = dt.datetime.combine(day, dt.time.fromisoformat(hour["time"]))
        # By its instant, as _refuse_a_passed_slot judges it once picked.
        if slots.resolve_wall_time(at, zone.key)[0] <= now:
            at += dt.timedelta(days=7)
        offered.append(at.strftime("%Y-%m-%dT%H:%M"))
    return sorted(offered)


def _refuse_a_passed_slot(slot: str, zone: zoneinfo.ZoneInfo, now: dt.datetime) -> None:
    """Refuse a suggested slot whose time came while its page sat open.

    The slot's instant is compared, as posts.schedule resolves it: wall times do
    not sort as they fall in the hour the clocks go back (it comes twice) or skip.
    Any text that is no wall time is left for posts.schedule to refuse.
    """
    if not WALL_TIME.fullmatch(slot):
        return
    try:
        at, _ = slots.resolve_wall_time(dt.datetime.fromisoformat(slot), zone.key)
    except (ValueError, OverflowError):
        return
    if at <= now:
        raise InvalidRequest(
            f"the slot {slot} has passed; pick a later one, or leave both empty "
            "for the next free slot",
            field="slot",
        )


def _local(at: dt.datetime | None, zone: zoneinfo.ZoneInfo) -> str:
    return "" if at is None else at.astimezone(zone).strftime("%Y-%m-%dT%H:%M")


def _day(value: str | None, default: dt.date) -> dt.date:
    if value is None:
        return default
    try:
        if len(value) != 10 or not value.isascii():
            raise ValueError(value)
        day = dt.date.fromisoformat(value)
    except ValueError as error:
        raise InvalidRequest(
            "'start' must be a date written YYYY-MM-DD", field="start"
        ) from error
    # The page links the week or month before and after, and reads its days in
    # the brand's zone: in year 1 or 9999 those fall outside what a date holds.
    if not CALENDAR_FIRST_DAY <= day <= CALENDAR_LAST_DAY:
        raise InvalidRequest(
            f"'start' must lie between {CALENDAR_FIRST_DAY} and {CALENDAR_LAST_DAY}",
            field="start",
        )
    return day


def _range(
    request: Any, brand: dict[str, Any], now: dt.datetime
) -> tuple[dt.date, dt.date]:
    """Read from/to as the API's report does (api._report_range)."""
    from cartcast import api

    given = {name: web.query_value(request, name) for name in ("from", "to")}
    query = {name: value for name, value in given.items() if (value or "").strip()}
    return api.report_range(query, brand, now)


@functools.cache
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader([TEMPLATES / "console", TEMPLATES]),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["when"] = _when
    environment.filters["age"] = _age
    environment.filters["span"] = _span
    return environment


def _when(value: Any, zone: str | None = None) -> str:
    """Spell an instant for people: in the brand's zone, to the minute."""
    if value is None:
        return "—"
    if zone:
        # With the zone's abbreviation: the hour clocks go back comes twice
        # (01:30 EDT, then 01:30 EST), and two deadlines in it must read apart.
        value = value.astimezone(zoneinfo.ZoneInfo(zone))
        return value.strftime("%a %Y-%m-%d %H:%M %Z")
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _age(seconds: int) -> str:
    """Spell an age to its largest unit: 40 s, 12 min, 5 h, 3 days."""
    for unit_s, unit in ((86400, " day(s)"), (3600, " h"), (60, " min")):
        if seconds >= unit_s:
            return f"{seconds // unit_s}{unit}"
    return f"{seconds} s"


def _span(seconds: int) -> str:
    """Spell a wait to the minute in its two largest units: 6 d 18 h, 3 h 20 min."""
    minutes = seconds // 60
    days, minutes = divmod(minutes, 1440)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min"


@functools.cache
def _stylesheet_text() -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in STYLESHEETS)


def _stylesheet() -> Response:
    headers = {
        "Content-Type": "text/css; charset=utf-8",
        "Cache-Control": "max-age=300",
        "X-Content-Type-Options": "nosniff",
    }
    return _stylesheet_text(), 200, headers


@functools.cache
def _import_script_text() -> str:
    return IMPORT_SCRIPT.read_text(encoding="utf-8")


def _import_script() -> Response:
    headers = {
        "Content-Type": "text/javascript; charset=utf-8",
        "Cache-Control": "max-age=300",
        "X-Content-Type-Options": "nosniff",
    }
    return _import_script_text(), 200, headers


def _icon() -> Response:
    headers = {
        "Content-Type": "image/svg+xml",
        "Cache-Control": "max-age=86400",
        "X-Content-Type-Options": "nosniff",
    }
    icon = TEMPLATES / "console" / "favicon.svg"
    return icon.read_text(encoding="utf-8"), 200, headers


HANDLERS = {
    rule.endpoint: globals()[rule.endpoint]
    for rule in ROUTES.iter_rules()
    if rule.endpoint not in ("stylesheet", "icon", "import_script")
}
