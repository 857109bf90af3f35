"""The `api` function: the HTTP API store owners and agencies call.

Routes are matched with Werkzeug's router (Flask's own, already loaded by
functions-framework). Each route authenticates the caller, runs in one database
transaction, and sees only the calling brand's rows: another brand's product or post
answers 404, exactly like one that does not exist.

ROUTE_ROLES says which key each route needs, and `handle` checks it before any
handler runs: a route with no row there fails at import. A refusal (a key of too
low a role, a revoked key) is written to the brand's audit trail.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import re
import zoneinfo
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

from werkzeug.exceptions import MethodNotAllowed
from werkzeug.exceptions import NotFound as RouteNotFound
from werkzeug.routing import Map, Rule

# Only what routing and authentication need is imported here; each handler imports
# the domain modules it runs, so a cold start loads one route's modules, not all
# of them (the caption function, for one, never loads the reports' jinja2).
from cartcast import (
    audit,
    idempotency_keys,
    keys,
    offboarding,
    post_events,
    validation,
    web,
)
from cartcast.db import Transaction
from cartcast.errors import (
    CartcastError,
    ConfigurationError,
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    UnsupportedMediaType,
)
from cartcast.logs import fields

LIST_LIMIT_MAX = 500
LIMIT_PATTERN = re.compile(r"[0-9]{1,9}")
REPORT_DAYS_MAX = 366
ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
DEFAULT_REPORT_DAYS = 7
# CARTCAST_AUDIT_REFUSALS_PER_HOUR counts refusals over this window; every
# refusal's action starts with the prefix, and the one that reaches the cap is
# recorded as REFUSALS_CAPPED (decision 0039).
REFUSALS_WINDOW = dt.timedelta(hours=1)
REFUSAL_PREFIX = "access."
REFUSALS_CAPPED = "access.refusals_capped"
CALLBACK_REFUSED = "access.x_callback_refused"
# The actor of a callback refused in the trail of the brand whose state another
# brand's key presented: that brand's key names are not this brand's to read, and
# a key name has no colon, so no key of the brand can be mistaken for it.
OTHER_BRANDS_KEY = "other_brand:key"
SCHEDULE_APPROVED_FIELDS = ("limit",)
POST_STATES = (
    "needs_approval",
    "approved",
    "scheduled",
    "publishing",
    "published",
    "failed",
    "unconfirmed",
    "held",
    "cancelled",
    "rejected",
)


def _rules() -> list[Rule]:
    """The API's routes, one per path and method (docs/openapi.yaml lists them)."""
    return [
        Rule("/v1/brands", methods=["POST"], endpoint="create_brand"),
        Rule("/v1/brand", methods=["GET"], endpoint="get_brand"),
        Rule("/v1/brand", methods=["PATCH"], endpoint="update_brand"),
        Rule("/v1/brand/x/connect", methods=["POST"], endpoint="connect_x_account"),
        Rule("/v1/brand/x/callback", methods=["POST"], endpoint="finish_x_connection"),
        Rule(
            "/v1/brand/x/disconnect", methods=["POST"], endpoint="disconnect_x_account"
        ),
        Rule("/v1/x/callback", methods=["GET"], endpoint="x_oauth_callback"),
        Rule("/v1/brand/pause", methods=["GET"], endpoint="get_brand_pause"),
        Rule("/v1/brand/pause", methods=["POST"], endpoint="pause_brand"),
        Rule("/v1/brand/resume", methods=["POST"], endpoint="resume_brand"),
        Rule("/v1/crises", methods=["GET"], endpoint="list_crises"),
        Rule("/v1/publishing/pause", methods=["GET"], endpoint="get_publishing_pause"),
        Rule("/v1/publishing/pause", methods=["POST"], endpoint="pause_publishing"),
        Rule("/v1/publishing/resume", methods=["POST"], endpoint="resume_publishing"),
        Rule("/v1/products", methods=["POST"], endpoint="import_products"),
        Rule("/v1/products", methods=["GET"], endpoint="list_products"),
        Rule("/v1/products/<product_id>", methods=["GET"], endpoint="get_product"),
        Rule(
            "/v1/products/<product_id>", methods=["DELETE"], endpoint="retire_product"
        ),
        Rule("/v1/captions", methods=["POST"], endpoint="create_captions"),
        Rule("/v1/gemini", methods=["GET"], endpoint="gemini_state"),
        Rule("/v1/caption-jobs", methods=["POST"], endpoint="create_caption_job"),
        Rule("/v1/caption-jobs", methods=["GET"], endpoint="list_caption_jobs"),
        Rule("/v1/caption-jobs/<job_id>", methods=["GET"], endpoint="get_caption_job"),
        Rule(
            "/v1/caption-jobs/<job_id>/cancel",
            methods=["POST"],
            endpoint="cancel_caption_job",
        ),
        Rule("/v1/posts", methods=["GET"], endpoint="list_posts"),
        Rule("/v1/posts/<post_id>", methods=["GET"], endpoint="get_post"),
        Rule("/v1/posts/<post_id>", methods=["PATCH"], endpoint="edit_post"),
        Rule(
            "/v1/posts/<post_id>/events", methods=["GET"], endpoint="list_post_events"
        ),
        Rule(
            "/v1/posts/<post_id>/attempts",
            methods=["GET"],
            endpoint="list_post_attempts",
        ),
        Rule("/v1/posts/<post_id>/approve", methods=["POST"], endpoint="approve_post"),
        Rule("/v1/posts/<post_id>/reject", methods=["POST"], endpoint="reject_post"),
        Rule(
            "/v1/posts/<post_id>/schedule", methods=["POST"], endpoint="schedule_post"
        ),
        Rule("/v1/posts/<post_id>/cancel", methods=["POST"], endpoint="cancel_post"),
        Rule("/v1/posts/<post_id>/settle", methods=["POST"], endpoint="settle_post"),
        Rule("/v1/schedule", methods=["POST"], endpoint="schedule_approved"),
        Rule("/v1/slots/suggestions", methods=["GET"], endpoint="slot_suggestions"),
        Rule("/v1/mentions", methods=["GET"], endpoint="list_mentions"),
        Rule(
            "/v1/mentions/<mention_id>/handle",
            methods=["POST"],
            endpoint="handle_mention",
        ),
        Rule(
            "/v1/mentions/<mention_id>/reply",
            methods=["POST"],
            endpoint="reply_to_mention",
        ),
        Rule("/v1/orders", methods=["POST"], endpoint="receive_order"),
        Rule("/v1/orders/import", methods=["POST"], endpoint="import_orders"),
        Rule(
            "/v1/webhooks/orders/<brand_slug>",
            methods=["POST"],
            endpoint="receive_signed_order",
        ),
        Rule("/v1/reports/daily", methods=["GET"], endpoint="daily_report"),
        Rule("/v1/reports/posts", methods=["GET"], endpoint="post_report"),
        Rule("/v1/reports/mentions", methods=["GET"], endpoint="mention_report"),
        Rule("/v1/reports/orders", methods=["GET"], endpoint="order_report"),
        # The data duties (data_export.py, author_data.py, offboarding.py,
        # retention.py).
        Rule("/v1/brand/export", methods=["GET"], endpoint="export_brand"),
        Rule("/v1/brand/offboarding", methods=["GET"], endpoint="get_offboarding"),
        Rule("/v1/brand/offboarding", methods=["POST"], endpoint="request_offboarding"),
        Rule(
            "/v1/brand/offboarding/cancel",
            methods=["POST"],
            endpoint="cancel_offboarding",
        ),
        Rule("/v1/brand/retention", methods=["GET"], endpoint="get_retention"),
        Rule("/v1/brand/retention", methods=["PATCH"], endpoint="set_retention"),
        Rule(
            "/v1/author-data-removals",
            methods=["POST"],
            endpoint="remove_author_data",
        ),
        Rule(
            "/v1/author-data-removals",
            methods=["GET"],
            endpoint="list_author_data_removals",
        ),
        Rule("/v1/keys", methods=["POST"], endpoint="create_key"),
        Rule("/v1/keys", methods=["GET"], endpoint="list_keys"),
        Rule("/v1/keys/<key_id>/revoke", methods=["POST"], endpoint="revoke_key"),
        Rule("/v1/audit", methods=["GET"], endpoint="list_audit"),
    ]


@functools.cache
def routes() -> Map:
    """Build the router on the first API request: compiling it takes tens of
    milliseconds, which the caption function, routing nothing, does not pay."""
    # merge_slashes would answer "/v1//brand" with a 308 to the bound name,
    # http://localhost/v1/brand: a host the client never called. It is a 404.
    return Map(_rules(), strict_slashes=False, merge_slashes=False)


VIEWER, EDITOR, APPROVER, ADMIN = keys.ROLES
OPERATOR = keys.OPERATOR
# No key: the store signs the body (order_webhooks.py).
SIGNED = "signed"
# The least a key must be to call each route (keys.py draws the ladder). One row
# per endpoint; a new route without one stops the module from loading.
ROUTE_ROLES = {
    "create_brand": OPERATOR,
    "get_publishing_pause": OPERATOR,
    "pause_publishing": OPERATOR,
    "resume_publishing": OPERATOR,
    "receive_signed_order": SIGNED,
    # X's redirect: the single-use OAuth state, not a key, is the credential.
    "x_oauth_callback": SIGNED,
    "get_brand": VIEWER,
    "get_brand_pause": VIEWER,
    "list_crises": VIEWER,
    "list_posts": VIEWER,
    "get_post": VIEWER,
    "list_post_events": VIEWER,
    "list_post_attempts": VIEWER,
    "list_mentions": VIEWER,
    "daily_report": VIEWER,
    "post_report": VIEWER,
    "mention_report": VIEWER,
    "order_report": VIEWER,
    "import_products": EDITOR,
    "list_products": EDITOR,
    "get_product": EDITOR,
    "retire_product": EDITOR,
    "create_captions": EDITOR,
    "gemini_state": EDITOR,
    "create_caption_job": EDITOR,
    "list_caption_jobs": EDITOR,
    "get_caption_job": EDITOR,
    "cancel_caption_job": EDITOR,
    "edit_post": EDITOR,
    "schedule_post": EDITOR,
    "cancel_post": EDITOR,
    "schedule_approved": EDITOR,
    "slot_suggestions": EDITOR,
    "handle_mention": EDITOR,
    "reply_to_mention": EDITOR,
    "receive_order": EDITOR,
    "import_orders": EDITOR,
    "approve_post": APPROVER,
    "reject_post": APPROVER,
    "settle_post": APPROVER,
    "pause_brand": APPROVER,
    "resume_brand": APPROVER,
    "get_offboarding": VIEWER,
    "get_retention": VIEWER,
    "update_brand": ADMIN,
    "connect_x_account": ADMIN,
    "finish_x_connection": ADMIN,
    "disconnect_x_account": ADMIN,
    "export_brand": ADMIN,
    "request_offboarding": ADMIN,
    "cancel_offboarding": ADMIN,
    "set_retention": ADMIN,
    "remove_author_data": ADMIN,
    "list_author_data_removals": ADMIN,
    "create_key": ADMIN,
    "list_keys": ADMIN,
    "revoke_key": ADMIN,
    "list_audit": ADMIN,
}
# The query parameters each keyed route reads, as docs/openapi.yaml lists them; any
# other is a 400 naming it, so a misspelt filter (`?acton=`) is not answered with
# everything as if it had been obeyed. A route not named here takes none.
QUERY_PARAMETERS = {
    "list_products": ("limit", "after", "retired"),
    "list_caption_jobs": ("limit", "state", "after"),
    "list_posts": ("limit", "state", "after"),
    "list_mentions": (
        "limit",
        "state",
        "intent",
        "priority",
        "sentiment",
        "overdue",
        "after",
    ),
    "list_crises": ("limit", "after"),
    "daily_report": ("from", "to", "format"),
    "post_report": ("limit", "format", "after"),
    "mention_report": ("format",),
    "order_report": ("from", "to", "format"),
    "list_audit": ("limit", "action", "subject", "after"),
    "list_author_data_removals": ("limit", "after"),
}
# GET /v1/products?retired=: which products a page lists (decision 0110).
RETIRED_FILTERS = ("exclude", "include", "only")
# A CSV's media types as browsers and spreadsheets send them.
CSV_MEDIA_TYPES = ("text/csv", "application/csv", "application/vnd.ms-excel")
# The generate_caption function answers what POST /v1/captions does.
CAPTION_FUNCTION_ROLE = ROUTE_ROLES["create_captions"]

_served = {rule.endpoint for rule in _rules()}
if _served != set(ROUTE_ROLES):
    raise RuntimeError(
        "ROUTE_ROLES must name each route once: no role for "
        f"{sorted(_served - set(ROUTE_ROLES))}, no route for "
        f"{sorted(set(ROUTE_ROLES) - _served)}"
    )


def route_not_found(path: str) -> web.Response:
    """The JSON 404 of a path no route takes (main.py answers with it too, for the
    paths functions-framework itself routes nowhere)."""
    body = {"error": {"code": "not_found", "message": f"no route {path}"}}
    return web.json_response(body, 404)


def handle(request: Any, runtime: Any) -> web.Response:
    """Route one HTTP request and answer it as JSON; /console is the web console.

    Whatever of the body the route did not read is discarded before the answer
    goes, so the client gets it, and never held (web.discard_body); a body that
    stops arriving is waited for at most CARTCAST_BODY_WAIT_S at a time.
    """
    web.bound_body_waits(request, runtime.settings.body_wait_s)
    try:
        return _route(request, runtime)
    finally:
        web.discard_body(request)


def _route(request: Any, runtime: Any) -> web.Response:
    if request.path == "/console" or request.path.startswith("/console/"):
        from cartcast import console

        return console.handle(request, runtime)
    try:
        endpoint, arguments = (
            routes().bind("localhost").match(request.path, request.method)
        )
    except RouteNotFound:
        return route_not_found(request.path)
    except MethodNotAllowed as error:
        allowed = ", ".join(sorted(error.valid_methods or []))
        body = {"error": {"code": "method_not_allowed", "message": f"use {allowed}"}}
        return web.json_response(body, 405, {"Allow": allowed})
    if ROUTE_ROLES[endpoint] == SIGNED:
        return HANDLERS[endpoint](request, runtime=runtime, **arguments)
    try:
        with runtime.database.transaction() as tx:
            caller = _authorize(tx, request, runtime, ROUTE_ROLES[endpoint])
            _refuse_unknown_query(request, QUERY_PARAMETERS.get(endpoint, ()))
            body = None
            if endpoint in _CSV_BODY:
                body = web.read_csv(request)
            elif endpoint in _BODYLESS:
                _refuse_a_body(request)
            elif request.method in ("POST", "PATCH"):
                body = _read_json_body(request, endpoint)
            # POST /v1/captions alone reads a header past Authorization.
            headers = (
                {"idempotency_key": request.headers.get(idempotency_keys.HEADER)}
                if endpoint == "create_captions"
                else {}
            )
            with _not_found_names(arguments):
                return HANDLERS[endpoint](
                    tx,
                    runtime=runtime,
                    caller=caller,
                    body=body,
                    query=request.args,
                    **arguments,
                    **headers,
                )
    except _Refused as refused:
        route = _route_pattern(request.path, request.method)
        return _record_refusal(runtime, refused, f"{request.method} {route}")
    except _CallbackRefused as refused:
        route = _route_pattern(request.path, request.method)
        return _record_refused_callback(
            runtime, refused.refusal, f"{request.method} {route}", refused.caller
        )
    except CartcastError as error:
        return web.error_response(error, runtime.log, runtime.clock.now())


def _refuse_unknown_query(
    request: Any, taken: tuple[str, ...], operation: str | None = None
) -> None:
    """Refuse a parameter the operation does not take, or one given twice.

    Every parameter the spec lists is a single value: with `?priority=1&priority=2`
    the first alone would answer a filter the caller did not ask for. The
    operation is named in the refusal, by default as the route that matched.
    """
    for name in request.args:
        if name not in taken:
            if operation is None:
                route = _route_pattern(request.path, request.method)
                operation = f"{request.method} {route}"
            raise InvalidRequest(
                f"{operation} has no parameter {name[:100]!r}; it takes "
                f"{', '.join(taken) if taken else 'none'}",
                field=name[:100],
            )
        web.query_value(request, name)


def handle_caption_request(request: Any, runtime: Any) -> web.Response:
    """Answer the generate_caption function: POST a caption request, get drafts.

    As in `handle`, a body not read is discarded, not held, and a body that stops
    arriving is waited for at most CARTCAST_BODY_WAIT_S at a time.
    """
    web.bound_body_waits(request, runtime.settings.body_wait_s)
    try:
        return _caption_request(request, runtime)
    finally:
        web.discard_body(request)


def _caption_request(request: Any, runtime: Any) -> web.Response:
    if request.method != "POST":
        body = {"error": {"code": "method_not_allowed", "message": "use POST"}}
        return web.json_response(body, 405, {"Allow": "POST"})
    try:
        with runtime.database.transaction() as tx:
            caller = _authorize(tx, request, runtime, CAPTION_FUNCTION_ROLE)
            # The spec lists no parameter for it: one would be a misplaced field.
            _refuse_unknown_query(request, (), "POST generate_caption")
            return captions_response(
                tx,
                runtime,
                caller,
                web.read_json(request),
                idempotency_key=request.headers.get(idempotency_keys.HEADER),
            )
    except _Refused as refused:
        return _record_refusal(runtime, refused, "POST generate_caption")
    except CartcastError as error:
        return web.error_response(error, runtime.log, runtime.clock.now())


class _Refused(CartcastError):
    """A request refused for its key, to be recorded once its transaction ended."""

    def __init__(self, error: InvalidRequest, caller: keys.Caller | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.caller = caller


class _CallbackRefused(CartcastError):
    """An OAuth callback refused under a brand's key (x_oauth.CallbackRefused), to
    be recorded once the request's transaction ended."""

    def __init__(self, refusal: Any, caller: keys.Caller) -> None:
        super().__init__(str(refusal))
        self.refusal = refusal
        self.caller = caller


def _authorize(tx: Transaction, request: Any, runtime: Any, needed: str) -> keys.Caller:
    """Return the caller if its key may call the route; else raise _Refused.

    The caller's name is then the actor of every post event the request causes.
    """
    now = runtime.clock.now()
    try:
        caller = keys.authenticate(
            tx,
            request.headers.get("Authorization"),
            operator_key=runtime.settings.operator_key,
        )
    except keys.RevokedKey as error:
        raise _Refused(error, None) from error
    keys.note_use(runtime.database, caller, now=now)
    # A brand past its offboarding grace period has no working key (offboarding.py).
    offboarding.refuse_after_grace(tx, brand_id=caller.brand_id, now=now)

    try:
        keys.require_role(caller, needed)
    except Forbidden as error:
        raise _Refused(error, caller) from error
    post_events.act_as(tx, caller.key_name)
    return caller


def _record_refusal(runtime: Any, refused: _Refused, route: str) -> web.Response:
    """Write a refused request to its brand's trail, then answer the refusal.

    The request's own transaction has rolled back; this one holds only the record.
    A refusal of the operator key, or of a key no brand has, concerns no brand.
    When the record cannot be written the refusal is still answered, and logged.
    """
    now = runtime.clock.now()
    error, caller = refused.error, refused.caller
    if isinstance(error, keys.RevokedKey):
        brand_id, actor = error.brand_id, error.key_name
        action, after = "access.revoked_key_used", {"route": route}
    elif caller is not None and caller.brand_id is not None:
        brand_id, actor = caller.brand_id, caller.key_name
        action = "access.refused"
        after = {"route": route, "role": caller.role, "message": str(error)}
    else:
        return web.error_response(error, runtime.log, now)

    record_refusal(
        runtime,
        brand_id=brand_id,
        actor=actor,
        action=action,
        route=route,
        after=after,
        now=now,
    )
    return web.error_response(error, runtime.log, now)


def record_refusal(
    runtime: Any,
    *,
    brand_id: str,
    actor: str,
    action: str,
    route: str,
    after: dict[str, Any],
    now: dt.datetime,
) -> None:
    """Write a refusal to the brand's trail in a transaction of its own (the
    request's rolled back); logged instead when the database fails. The console
    records its refused forms through it too."""
    try:
        _write_refusal(runtime, brand_id, actor, action, route, after, now)
    except CartcastError as failure:
        runtime.log.warning(
            "refusal not recorded: the database failed",
            exc_info=failure,
            extra=fields(brand_id=brand_id, action=action, actor=actor, after=after),
        )


def _write_refusal(
    runtime: Any,
    brand_id: str,
    actor: str,
    action: str,
    route: str,
    after: dict[str, Any],
    now: dt.datetime,
) -> None:
    """Record the refusal unless its actor's hourly cap in the brand is reached
    (decisions 0039, 0043).

    A bot replaying a revoked key or an old OAuth state would otherwise grow the
    trail without end. Below the cap each refusal is a row; the refusal that
    reaches it is recorded as `access.refusals_capped` instead, so the trail says
    that what follows within the hour is only logged. The cap is counted per
    actor (a key's name, `system:x_oauth_callback` for a keyless callback,
    `other_brand:key`), so a flood from one cannot silence another's refusal: a
    brand holds at most cap + 1 refusal rows per actor and hour, and the lock
    makes the count exact under concurrent refusals.
    """
    cap = runtime.settings.audit_refusals_per_hour
    with runtime.database.transaction() as tx:
        audit.lock_refusals(tx, brand_id=brand_id)
        recorded = audit.count_recent(
            tx,
            brand_id=brand_id,
            actor=actor,
            prefix=REFUSAL_PREFIX,
            since=now - REFUSALS_WINDOW,
            cap=cap + 1,
        )
        if recorded > cap:
            # The log line is then all that is left of the refusal: it carries
            # what its row would have (route, role or reason, message).
            runtime.log.warning(
                "refusal not recorded: its actor's hourly cap is reached",
                extra=fields(
                    brand_id=brand_id, action=action, actor=actor, after=after
                ),
            )
            return
        if recorded == cap:
            after = {
                "cap_per_hour": cap,
                "first_unrecorded": {**after, "action": action},
            }
            action = REFUSALS_CAPPED
        audit.record(
            tx,
            brand_id=brand_id,
            actor=actor,
            action=action,
            subject=f"route:{route}",
            at=now,
            after=after,
        )


def _record_refused_callback(
    runtime: Any, refusal: Any, route: str, caller: keys.Caller | None
) -> web.Response:
    """Answer a refused OAuth callback and record it where it concerns a brand.

    The brand the state was issued for always (its connection was attempted); the
    calling key's brand too when it is another (it presented a state not its own).
    A state that matches no row names no brand: it is only logged, without it.
    """
    now = runtime.clock.now()
    after = {"route": route, "reason": refusal.reason, "message": str(refusal.error)}
    if refusal.brand_id is None:
        runtime.log.warning(
            "OAuth callback with an unknown state refused",
            extra=fields(route=route, brand_id=caller.brand_id if caller else None),
        )
    else:
        if caller is None:
            actor = "system:x_oauth_callback"
        elif str(caller.brand_id) == refusal.brand_id:
            actor = caller.key_name
        else:
            actor = OTHER_BRANDS_KEY
        record_refusal(
            runtime,
            brand_id=refusal.brand_id,
            actor=actor,
            action=CALLBACK_REFUSED,
            route=route,
            after=after,
            now=now,
        )
    if caller is not None and str(caller.brand_id) != refusal.brand_id:
        record_refusal(
            runtime,
            brand_id=str(caller.brand_id),
            actor=caller.key_name,
            action=CALLBACK_REFUSED,
            route=route,
            after=after,
            now=now,
        )
    return web.error_response(refusal.error, runtime.log, now)


def _route_pattern(path: str, method: str) -> str:
    """Return the rule a path matched (`/v1/posts/<post_id>/approve`), not its ids."""
    rule, _ = routes().bind("localhost").match(path, method, return_rule=True)
    return re.sub(r"<(\w+)>", r"{\1}", rule.rule)


_CSV_BODY = {"import_orders"}
_BODYLESS = {
    "retire_product",
    "approve_post",
    "connect_x_account",
    "disconnect_x_account",
    "revoke_key",
    "cancel_caption_job",
    "cancel_offboarding",
    "handle_mention",
    "resume_brand",
    "pause_publishing",
    "resume_publishing",
}


def _read_json_body(request: Any, endpoint: str) -> Any:
    """Read a JSON route's body; a CSV sent to POST /v1/products is told where
    CSVs go."""
    try:
        return web.read_json(request, optional=endpoint in _OPTIONAL_BODY)
    except UnsupportedMediaType as error:
        if endpoint != "import_products" or request.mimetype not in CSV_MEDIA_TYPES:
            raise
        raise UnsupportedMediaType(
            f"{error}. POST /v1/products takes a JSON feed; a Shopify product CSV "
            "is imported on the console's Catalog page (Catalog import, "
            "/console/catalog)",
            field=error.field,
        ) from error


def _refuse_a_body(request: Any) -> None:
    """Refuse content sent to a route that takes none, as an unknown field is.

    An empty body, `null` or `{}` is no content; anything else would be ignored,
    which hides a client's mistake (a reason sent to /handle, say).
    """
    body = web.read_json_if_any(request)
    if body is None or body == {}:
        return
    if not isinstance(body, dict):
        raise InvalidRequest(f"{request.path} takes no body", field="body")
    name = next(iter(body))
    raise InvalidRequest(
        f"{request.path} takes no body; it has field {name[:100]!r}",
        field=name[:100],
    )


_OPTIONAL_BODY = {
    "request_offboarding",
    "schedule_post",
    "schedule_approved",
    "reject_post",
    "cancel_post",
    "pause_brand",
}
PAUSE_FIELDS = ("reason",)


def _limit(query: Any, default: int = 100) -> int:
    raw = query.get("limit", str(default))
    # str.isdigit() also takes "²" and "٣"; int() fails on the first and reads the
    # second. Only ASCII digits, and few of them (int() refuses over 4300).
    if not LIMIT_PATTERN.fullmatch(raw) or not 1 <= int(raw) <= LIST_LIMIT_MAX:
        raise InvalidRequest(
            f"'limit' must be a whole number from 1 to {LIST_LIMIT_MAX}, written in "
            f"digits (got {raw[:20]!r})",
            field="limit",
        )
    return int(raw)


@contextlib.contextmanager
def _not_found_names(arguments: dict[str, str]) -> Iterator[None]:
    """Name a route's one path parameter (`post_id`) in a 404 that names no field.

    The domain says "post not found" without knowing the id came in the path; a
    404 about something the body named already carries that field.
    """
    try:
        yield
    except NotFound as error:
        if error.field is None and len(arguments) == 1:
            error.field = next(iter(arguments))
        raise


def _row_id(value: str, what: str) -> str:
    """Return a UUID path segment; anything else names no row, so it is a 404."""
    try:
        return validation.identifier(value, what)
    except InvalidRequest as error:
        raise NotFound(f"{what} not found") from error


def create_brand(
    tx: Transaction, *, runtime: Any, caller: keys.Caller, body: Any, query: Any
) -> web.Response:
    from cartcast import brands

    created = brands.create_brand(
        tx,
        body,
        now=runtime.clock.now(),
        environment=runtime.settings.environment,
        seal=_sealing(runtime),
        lookup=_host_lookup(runtime),
    )
    return web.json_response(created, 201)


def get_brand(
    tx: Transaction, *, runtime: Any, caller: keys.Caller, body: Any, query: Any
) -> web.Response:
    from cartcast import brands

    return web.json_response(
        {"brand": brands.get_brand(tx, keys.require_brand(caller))}
    )


def update_brand(
    tx: Transaction, *, runtime: Any, caller: keys.Caller, body: Any, query: Any
) -> web.Response:
    from cartcast import brands

    brand = brands.update_brand(
        tx,
        keys.require_brand(caller),
        body,
        role=caller.role,
        environment=runtime.settings.environment,
        now=runtime.clock.now(),
        seal=_sealing(runtime),
        actor=caller.key_name,
        lookup=_host_lookup(runtime),
        alert_max_age_s=runtime.settings.alert_max_age_s,
        escalation_max_age_s=runtime.settings.escalation_max_age_s,
    )
    return web.json_response({"brand": brand})


def _host_lookup(runtime: Any) -> Any:
    """Return how a webhook URL's host is resolved when it is set: the runtime's
    resolver, the one its deliveries use (getaddrinfo unless a test gives one),
    given up on after CARTCAST_WEBHOOK_LOOKUP_TIMEOUT_S: the request's
    transaction is open meanwhile (decision 0106)."""
    from cartcast import pinned_http

    return pinned_http.resolver_within(
        runtime.resolve or pinned_http.resolve_host,
        runtime.settings.webhook_lookup_timeout_s,
    )


def connect_x_account(
    tx: Transaction, *, runtime: Any, caller: keys.Caller, body: Any, query: Any
) -> web.Response:
    """Start connecting the brand's X account: answer X's authorize URL."""
    from cartcast import x_oauth

    brand_id = _require_admin(caller, "connect the X account")
    with _x_app_usable():
        started = x_oauth.start_authorization(
            tx, runtime, brand_id=brand_id, now=runtime.clock.now()
        )
    return web.json_response(started, 201)


def finish_x_connection(
    tx: Transaction, *, runtime: Any, caller: keys.Caller, body: Any, query: Any
) -> web.Response:
    """Finish the connection with the state and code X sent, under the brand's key."""
    from cartcast import x_oauth

    brand_id = _require_admin(caller, "connect the X account")
    try:
        with _x_app_usable():
            connection = x_oauth.finish_authorization(
                tx,
                runtime,
                validation.require_object(body),
                now=runtime.clock.now(),
                brand_id=brand_id,
            )
    except x_oauth.CallbackRefused as refused:
        raise _CallbackRefused(refused, caller) from refused
    return web.json_response({"x_account": connection})


def disconnect_x_account(
    tx: Transaction, *, runtime: Any, caller: keys.Caller, body: Any, query: Any
) -> web.Response:
    """Revoke the brand's X tokens with X and forget them."""
    from cartcast import x_oauth

    brand_id = _require_admin(caller, "disconnect the X account")
    with _x_app_usable():
        result = x_oauth.disconnect_account(
            tx, runtime, brand_id=brand_id, now=runtime.clock.now()
        )
    return web.json_response({"x_account": result})


def x_oauth_callback(request: Any, *, runtime: Any) -> web.Response:
    """Where X sends the browser back: the state names the brand; no API key."""
    from cartcast import x_oauth

    try:
        with runtime.database.transaction() as tx, _x_app_usable():
            # No key: the trail names the redirect that finished the connection.
            post_events.act_as(tx, "system:x_oauth_callback")
            connection = x_oauth.finish_authorization(
                tx, runtime, request.args.to_dict(), now=runtime.clock.now()
            )
    except x_oauth.CallbackRefused as refused:
        return _record_refused_callback(runtime, refused, "GET /v1/x/callback", None)
    except CartcastError as error:
        return web.error_response(error, runtime.log, runtime.clock.now())
    return web.json_response({"x_account": connection})


@contextlib.contextmanager
def _x_app_usable() -> Iterator[None]:
    """Answer a deployment without the X app or a usable token key (missing,
    readable by others, or not the key the stored values were sealed under) with
    a 409 saying what to fix, not a 500; nothing is written."""
    try:
        yield
    except ConfigurationError as error:
        raise Conflict(
            f"this deployment cannot use X accounts' tokens: {error}",
            field="x_account",
        ) from error


def _sealing(runtime: Any) -> Callable[[str], str]:
    """`runtime.seal_token`, a token key it cannot use being a 409 naming the token."""

    def seal(token: str) -> str:
        try:
            return runtime.seal_token(token)
        except ConfigurationError as error:
            raise Conflict(
                f"this deployment cannot store X tokens: {error}",
                field="x_access_token",
            ) from error

    return seal


def _require_admin(caller: keys.Caller, what: str) -> str:
    brand_id = keys.require_brand(caller)
    if caller.role != "admin":
        raise Forbidden(f"only an admin key may {what}")
    return brand_id


def import_products(
    tx: Transaction, *, runtime: Any, caller: keys.Caller, body: Any, query: Any
) -> web.Response:
    from cartcast import catalog

    brand_id = keys.require_brand(caller)
    result = catalog.import_products(
        tx, brand_id=brand_id, feed=body, now=runtime.clock.now()
    )
    return web.json_response(result, 200)


def list_products(
    tx: Transaction, *, runtime: Any, caller: keys.Caller, body: Any, query: Any
) -> web.Response:
    from cartcast import catalog

    after = query.get("after")
    if after is not None and ("\x00" in after or len(after) > 100):
        raise InvalidRequest(
            "'after' must be a SKU from a previous page", field="after"
        )
    limit = _limit(query)
    retired = query.get("retired", "exclude")
    if retired not in RETIRED_FILTERS:
        raise InvalidRequest(
            "'retired' must be exclude (products on sale, the default), include or "
            "only",
            field="retired",
        )
    found = catalog.list_products(
        tx,
        brand_id=keys.require_brand(caller),
        after_sku=after,
        limit=limit,
        retired=retired,
    )

    # A short page is the last one; a full page may be too, and then the next
    # request answers an empty page.
    last_page = len(found) < limit
    return web.json_response(
        {"products": found, "next": None if last_page else found[-1]["sku"]}
    )


def retire_product(
    tx: Transaction,
    *,
    runtime: Any,
    caller: keys.Caller,
    body: Any,
    query: Any,
    product_id: str,
) -> web.Response:
    """Retire a product: kept for its posts and reports, promoted no more."""
    from cartcast import catalog

    product = catalog.retire_product(
        tx,
        brand_id=keys.require_brand(caller),
        ref=_row_id(product_id, "product"),
        now=runtime.clock.now(),
    )
    return web.json_response({"product": product})


def get_product(
    tx: Transaction,
    *,
    runtime: Any,
    caller: keys.Caller,
    body: Any,
    query: Any,
    product_id: str,
) -> web.Response:
    from cartcast import catalog

    brand_id = keys.require_brand(caller)
    product = catalog.find_product(
        tx, brand_id=brand_id, ref=_row_id(product_id, "product"), field="product_id"
    )
    return web.json_response({"product": product})


def create_captions(
    tx: Transaction,
    *,
    runtime: Any,
    caller: keys.Caller,
    body: Any,
    query: Any,
    idempotency_key: str | None = None,
) -> web.Response:
    return captions_response(tx, runtime, caller, body, idempotency_key=idempotency_key)


def captions_response(
    tx: Any,
    runtime: Any,
    caller: keys.Caller,
    body: Any,
    *,
    idempotency_key: str | None = None,
) -> web.Response:
    """Write and store drafts for products (also the generate_caption function).

    A brand that asked to leave gets a 409 before Gemini is called: a cost recorded
    on it would mark KPI days while the offboarding sweep deletes its rows. With
    an Idempotency-Key header, a request sent again gets the first answer
    (idempotency_keys.py).
    """
    from cartcast import caption_jobs, posts

    brand_id = keys.require_brand(caller)
    key = idempotency_keys.parse_key(idempotency_key)
    # The transaction waits for Gemini holding the key's claim: an instance lost
    # meanwhile must not keep the key in use for good (decision 0106).
    tx.end_if_idle_longer_than(runtime.settings.caption_idle_max_s)
    caption_jobs.refuse_while_offboarding(
        tx, brand_id=brand_id, refused="no captions are written"
    )
    if key is not None:
        stored = idempotency_keys.claim(
            tx, brand_id=brand_id, key=key, body=body, now=runtime.clock.now()
        )
        if stored is not None:
            status, answer = stored
            replayed = {idempotency_keys.REPLAYED_HEADER: "true"}
            return web.json_response(answer, status, replayed)

    created = posts.create_drafts(
        tx,
        brand_id=brand_id,
        body=body,
        created_by=caller.key_name,
        now=runtime.clock.now(),
        gemini=runtime.gemini(),
        near_duplicate_threshold=runtime.settings.near_duplicate_threshold,
        near_duplicate_days=runtime.settings.near_duplicate_days,
    )
    response = web.json_response(created, 201)
    if key is not None:
        idempotency_keys.remember(
            tx, brand_id=brand_id, key=key, status=201, answer=response[0]
        )
    return response


def gemini_state(
    tx: Transaction, *, runtime: Any, caller: keys.Caller, body: Any, query: Any
) -> web.Response:
    """Say whether captions can use Gemini now, and how much of its quota is left."""
    keys.require_brand(caller)
    gemini = runtime.gemini()
    if gemini is None:
        return web.json_response({"configured": False, "engine": "template"})
    state = gemini.governor.state()
    engine = "gemini" if state["available"] else "template"
    return web.json_response({"configured": True, "engine": engine, **state})


def create_caption_job(
    tx: Transaction, *, runtime: Any, caller: keys.Caller, body: Any, query: Any
) -> web.Response:
    """Queue products for drain_caption_jobs; 202, with where to follow progress."""
    from cartcast import caption_jobs

    brand_id = keys.require_brand(caller)
    job = caption_jobs.enqueue(
        tx,
        brand_id=brand_id,
        body=body,
        requested_by=caller.key_name,
        now=runtime.clock.now(),
        gemini_configured=runtime.gemini() is not None,
    )
    location = {"Location": f"/v1/caption-jobs/{job['id']}"}
    answer = _caption_jobs_answer(tx, runtime, brand_id, job=job)
    return web.json_response(answer, 202, location)


def list_caption_jobs(
    tx: Transaction, *, runtime: Any, caller: keys.Caller, body: Any, query: Any
) -> web.Response:
    from cartcast import caption_jobs

    state = query.get("state")
    if state is not None and state not in caption_jobs.JOB_STATES:
        raise InvalidRequest(
            f"'state' must be one of {', '.join(caption_jobs.JOB_STATES)}",
            field="state",
        )
    brand_id = keys.require_brand(caller)
    found, next_token = caption_jobs.list_jobs(
        tx,
        brand_id=brand_id,
        state=state,
        limit=_limit(query),
        after=query.get("after"),
    )
    answer = _caption_jobs_answer(tx, runtime, brand_id, jobs=found)
    return web.json_response({**answer, "next": next_token})


def get_caption_job(
    tx: Transaction,
    *,
    runtime: Any,
    caller: keys.Caller,
    body: Any,
    query: Any,
    job_id: str,
) -> web.Response:
    from cartcast import caption_jobs

    brand_id = keys.require_brand(caller)
    job = caption_jobs.get_job(
        tx, brand_id=brand_id, job_id=_row_id(job_id, "caption job")
    )
    return web.json_response(_caption_jobs_answer(tx, runtime, brand_id, job=job))


def cancel_caption_job(
    tx: Transaction,
    *,
    runtime: Any,
    caller: keys.Caller,
    body: Any,
    query: Any,
    job_id: str,
) -> web.Response:
    from cartcast import caption_jobs

    brand_id = keys.require_brand(caller)
    job = caption_jobs.cancel(
        tx,
        brand_id=brand_id,
        job_id=_row_id(job_id, "caption job"),
        now=runtime.clock.now(),
    )
    return web.json_response(_caption_jobs_answer(tx, runtime, brand_id, job=job))


def _caption_jobs_answer(
    tx: Transaction,
    runtime: Any,
    brand_id: str,
    *,
    job: dict | None = None,
    jobs: list[dict] | None = None,
) -> dict[str, Any]:
    """Show jobs with what their next chunk uses, and the Gemini quota behind it."""
    from cartcast import caption_jobs

    quota = caption_jobs.quota_state(runtime)
    now = runtime.clock.now()
    leaving_at = caption_jobs.offboarding_due_at(tx, brand_id=brand_id)
    answer: dict[str, Any] = {
        "gemini": {"configured": quota is not None, **(quota or {})}
    }

    def outlook(item: dict) -> dict[str, Any]:
        return caption_jobs.with_outlook(item, quota, now, leaving_at=leaving_at)

    if job is not None:
        answer["job"] = outlook(job)
    if jobs is not None:
        answer["jobs"] = [outlook(item) for item in jobs]
    return answer


def list_posts(
    tx: Transaction, *, runtime: Any, caller: keys.Caller, body: Any, query: Any
) -> web.Response:
    from cartcast import posts

    state = query.get("state")
    if state is not None and state not in POST_STATES:
        raise InvalidRequest(
            f"'state' must be one of {', '.join(POST_STATES)}", field="state"
        )
    page = posts.page_of_posts(
        tx,
        brand_id=keys.require_brand(caller),
        state=state,
        limit=_limit(query),
        after=query.get("after"),
        prices=runtime.settings.x_prices_usd,
    )
    return web.json_response(page)


def get_post(
    tx: Transaction,
    *,
    runtime: Any,
    caller: keys.Caller,
    body: Any,
    query: Any,
    post_id: str,
) -> web.Response:
    from cartcast import posts

    post = posts.get_post(
        tx,
        brand_id=keys.require_brand(caller),
        post_id=_row_id(post_id, "post"),
        prices=runtime.settings.x_prices_usd,
    )
    return web.json_response({"post": post})


def edit_post(
    tx: Transaction,
    *,
    runtime: Any,
    caller: keys.Caller,
    body: Any,
    query: Any,
    post_id: str,
) -> web.Response:
    from cartcast import post_edits

    post = post_edits.edit_post(
        tx,
        brand_id=keys.require_brand(caller),
        post_id=_row_id(post_id, "post"),
        body=body,
        now=runtime.clock.now(),
        near_duplicate_threshold=runtime.settings.near_duplicate_threshold,
        near_duplicate_days=runtime.settings.near_duplicate_days,
    )
    return web.json_response({"post": post})


def list_post_events(
    tx: Transaction,
    *,
    runtime: Any,
    caller: keys.Caller,
    body: Any,
    query: Any,
    post_id: str,
) -> web.Response:
    """List who moved a post from which state to which, when and why."""
    from cartcast import posts

    brand_id = keys.require_brand(caller)
    post_id = _row_id(post_id, "post")
    posts.get_post(tx, brand_id=brand_id, post_id=post_id)
    events = post_events.list_events(tx, brand_id=brand_id, post_id=post_id)
    return web.json_response({"events": events})


def list_post_attempts(
    tx: Transaction,
    *,
    runtime: Any,
    caller: keys.Caller,
    body: Any,
    query: Any,
    post_id: str,
) -> web.Response:
    """List a post's publish attempts: times, outcome, X's status, error class."""
    from cartcast import attempts, posts

    brand_id = keys.require_brand(caller)
    post_id = _row_id(post_id, "post")
    posts.get_post(tx, brand_id=brand_id, post_id=post_id)
    found = attempts.list_attempts(tx, brand_id=brand_id, post_id=post_id)
    return web.json_response({"attempts": found})


def reject_post(
    tx: Transaction,
    *,
    runtime: Any,
    caller: keys.Caller,
    body: Any,
    query: Any,
    post_id: str,
) -> web.Response:
    from cartcast import posts

    post = posts.reject(
        tx,
        brand_id=keys.require_brand(caller),
        post_id=_row_id(post_id, "post"),
        body=body,
        now=runtime.clock.now(),
    )
    return web.json_response({"post": post})


def approve_post(
    tx: Transaction,
    *,
    runtime: Any,
    caller: keys.Caller,
    body: Any,
    query: Any,
    post_id: str,
) -> web.Response:
    from cartcast import posts

    post = posts.apply_action(
        tx,
        brand_id=keys.require_brand(caller),
        post_id=_row_id(post_id, "post"),
        action="approve",
        now=runtime.clock.now(),
    )
    return web.json_response({"post": post})


def cancel_post(
    tx: Transaction,
    *,
    runtime: Any,
    caller: keys.Caller,
    body: Any,
    query: Any,
    post_id: str,
) -> web.Response:
    from cartcast import posts

    post = posts.cancel(
        tx,
        brand_id=keys.require_brand(caller),
        post_id=_row_id(post_id, "post"),
        body=body,
        now=runtime.clock.now(),
    )
    return web.json_response({"post": post})


def settle_post(
    tx: Transaction,
    *,
    runtime: Any,
    caller: keys.Caller,
    body: Any,
    query: Any,
    post_id: str,
) -> web.Response:
    """Say what X has of an unconfirmed post: on X (with its id), absent, cancel."""
    from cartcast import settling

    answer = settling.settle(
        tx,
        brand_id=keys.require_brand(caller),
        post_id=_row_id(post_id, "post"),
        body=body,
        role=caller.role,
        now=runtime.clock.now(),
        prices=runtime.settings.x_prices_usd,
    )
    return web.json_response(answer)


def schedule_post(
    tx: Transaction,
    *,
    runtime: Any,
    caller: keys.Caller,
    body: Any,
    query: Any,
    post_id: str,
) -> web.Response:
    from cartcast import posts

    post = posts.schedule(
        tx,
        brand_id=keys.require_brand(caller),
        post_id=_row_id(post_id, "post"),
        body=body,
        now=runtime.clock.now(),
        horizon_days=runtime.settings.schedule_horizon_days,
    )
    return web.json_response({"post": post})


def schedule_approved(
    tx: Transaction, *, runtime: Any, caller: keys.Caller, body: Any, query: Any
) -> web.Response:
    from cartcast import posts

    body = validation.require_object(body)
    validation.only_fields(
        body, SCHEDULE_APPROVED_FIELDS, what="a request to schedule approved posts"
    )
    limit = validation.integer(
        body, "limit", default=50, minimum=1, maximum=LIST_LIMIT_MAX
    )
    scheduled = posts.schedule_approved(
        tx, brand_id=keys.require_brand(caller), limit=limit, now=runtime.clock.now()
    )
    return web.json_response({"posts": scheduled})


def slot_suggestions(
    tx: Transaction, *, runtime: Any, caller: keys.Caller, body: Any, query: Any
) -> web.Response:
    from cartcast import best_time

    suggested = best_time.suggest(tx, brand_id=keys.require_brand(caller))
    return web.json_response(suggested)


def list_mentions(
    tx: Transaction, *, runtime: Any, caller: keys.Caller, body: Any, query: Any
) -> web.Response:
    """List mentions most urgent first, with filters, one page at a time."""
    from cartcast import inbox

    page = inbox.list_inbox(
        tx,
        brand_id=keys.require_brand(caller),
        query=query,
        limit=_limit(query),
        now=runtime.clock.now(),
    )
    return web.json_response(page)


def handle_mention(
    tx: Transaction,
    *,
    runtime: Any,
    caller: keys.Caller,
    body: Any,
    query: Any,
    mention_id: str,
) -> web.Response:
    from cartcast import inbox

    mention = inbox.mark_handled(
        tx,
        brand_id=keys.require_brand(caller),
        mention_id=_row_id(mention_id, "mention"),
        caller=caller,
        now=runtime.clock.now(),
    )
    return web.json_response({"mention": mention})


def reply_to_mention(
    tx: Transaction,
    *,
    runtime: Any,
    caller: keys.Caller,
    body: Any,
    query: Any,
    mention_id: str,
) -> web.Response:
    """Queue a reply to a mention; 202, the publisher sends it at its next run."""
    from cartcast import inbox, posts

    brand_id = keys.require_brand(caller)
    answer = inbox.reply(
        tx,
        brand_id=brand_id,
        mention_id=_row_id(mention_id, "mention"),
        body=body,
        caller=caller,
        now=runtime.clock.now(),
    )
    post = posts.get_post(
        tx,
        brand_id=brand_id,
        post_id=answer["post_id"],
        prices=runtime.settings.x_prices_usd,
    )
    location = {"Location": f"/v1/posts/{answer['post_id']}"}
    return web.json_response(
        {"mention": answer["mention"], "post": post}, 202, location
    )


def get_brand_pause(
    tx: Transaction, *, runtime: Any, caller: keys.Caller, body: Any, query: Any
) -> web.Response:
    from cartcast import crisis

    return web.json_response(
        crisis.pause_state(tx, brand_id=keys.require_brand(caller))
    )


def pause_brand(
    tx: Transaction, *, runtime: Any, caller: keys.Caller, body: Any, query: Any
) -> web.Response:
    """Pause the brand's publishing now: its queued posts are held (crisis.py)."""
    from cartcast import crisis

    brand_id = keys.require_brand(caller)
    validation.only_fields(body, PAUSE_FIELDS, what="a pause")
    reason = body.get("reason")
    if reason is not None:
        reason = crisis.pause_reason(reason)
    pause = crisis.pause_brand(
        tx,
        brand_id=brand_id,
        actor=caller.key_name,
        reason=reason,
        now=runtime.clock.now(),
    )
    return web.json_response(pause)


def resume_brand(
    tx: Transaction, *, runtime: Any, caller: keys.Caller, body: Any, query: Any
) -> web.Response:
    from cartcast import crisis

    brand_id = keys.require_brand(caller)
    resumed = crisis.resume_brand(
        tx, brand_id=brand_id, now=runtime.clock.now(), actor=caller.key_name
    )
    return web.json_response(resumed)


def list_crises(
    tx: Transaction, *, runtime: Any, caller: keys.Caller, body: Any, query: Any
) -> web.Response:
    from cartcast import crisis

    found, next_token = crisis.list_crises(
        tx,
        brand_id=keys.require_brand(caller),
        limit=_limit(query),
        now=runtime.clock.now(),
        window_min=runtime.settings.crisis_window_min,
        after=query.get("after"),
    )
    return web.json_response({"crises": found, "next": next_token})


def get_publishing_pause(
    tx: Transaction, *, runtime: Any, caller: keys.Caller, body: Any, query: Any
) -> web.Response:
    """Say whether the operator's pause holds the deployment, from the database."""
    from cartcast import publish_schedule

    return web.json_response(publish_schedule.pause_state(tx))


def pause_publishing(
    tx: Transaction, *, runtime: Any, caller: keys.Caller, body: Any, query: Any
) -> web.Response:
    """Pause publishing for the whole deployment (the database's mark, then Cloud
    Scheduler's two jobs: publish_schedule.py); operator only."""
    from cartcast import publish_schedule

    return web.json_response(publish_schedule.pause(runtime, actor=caller.key_name))


def resume_publishing(
    tx: Transaction, *, runtime: Any, caller: keys.Caller, body: Any, query: Any
) -> web.Response:
    from cartcast import publish_schedule

    return web.json_response(publish_schedule.resume(runtime))


def receive_order(
    tx: Transaction, *, runtime: Any, caller: keys.Caller, body: Any, query: Any
) -> web.Response:
    from cartcast import orders

    result = orders.receive_order(
        tx,
        brand_id=keys.require_brand(caller),
        body=body,
        now=runtime.clock.now(),
        window_days=runtime.settings.attribution_window_days,
    )
    if result.get("test"):
        runtime.log.info("test order dropped", extra=fields(brand_id=caller.brand_id))
        return web.json_response(result, 200)
    if result.get("cancelled"):
        runtime.log.info(
            "cancelled order dropped",
            extra=fields(brand_id=caller.brand_id, removed=result["removed"]),
        )
        return web.json_response(result, 200)
    return web.json_response(result, 200 if result["duplicate"] else 201)


def import_orders(
    tx: Transaction, *, runtime: Any, caller: keys.Caller, body: Any, query: Any
) -> web.Response:
    """Backfill past orders from a CSV export; 200 with a report row by row."""
    from cartcast import order_imports

    report = order_imports.import_orders(
        tx,
        brand_id=keys.require_brand(caller),
        text=body,
        now=runtime.clock.now(),
        window_days=runtime.settings.attribution_window_days,
    )
    counts = {name: report[name] for name in ("rows", "stored", "duplicates")}
    runtime.log.info(
        "orders imported",
        extra=fields(brand_id=caller.brand_id, errors=len(report["errors"]), **counts),
    )
    return web.json_response(report)


def receive_signed_order(
    request: Any, *, runtime: Any, brand_slug: str
) -> web.Response:
    """Store an order the store signed (order_webhooks.py); no API key."""
    from cartcast import order_webhooks

    try:
        raw_body = web.read_body(request)
        with runtime.database.transaction() as tx:
            result = order_webhooks.receive_signed_order(
                tx,
                brand_slug=brand_slug,
                raw_body=raw_body,
                headers=request.headers,
                parse_body=lambda raw: web.parse_json(request, raw),
                now=runtime.clock.now(),
                window_days=runtime.settings.attribution_window_days,
            )
    except CartcastError as error:
        return web.error_response(error, runtime.log, runtime.clock.now())
    # The shop domain is logged, never trusted: the signature names the brand.
    if "refund" in result:
        runtime.log.info(
            "refund received",
            extra=fields(
                brand_slug=brand_slug,
                refund_id=result["refund"]["id"],
                applied=result["refund"]["applied"],
                pending=result["refund"]["pending"],
                duplicate=result["duplicate"],
                webhook_id=request.headers.get(order_webhooks.WEBHOOK_ID_HEADER),
            ),
        )
        return web.json_response(result, 200)
    test = bool(result.get("test"))
    dropped = test or bool(result.get("cancelled"))
    if test:
        message = "test order dropped"
    elif dropped:
        message = "cancelled order dropped"
    else:
        message = "signed order received"
    runtime.log.info(
        message,
        extra=fields(
            brand_slug=brand_slug,
            order_id=None if dropped else str(result["order"]["id"]),
            duplicate=result["duplicate"],
            webhook_id=request.headers.get(order_webhooks.WEBHOOK_ID_HEADER),
            shop_domain=request.headers.get(order_webhooks.SHOP_DOMAIN_HEADER),
        ),
    )
    created = not (dropped or result["duplicate"])
    return web.json_response(result, 201 if created else 200)


def daily_report(
    tx: Transaction, *, runtime: Any, caller: keys.Caller, body: Any, query: Any
) -> web.Response:
    from cartcast import brands, report_page, reports

    answer = _report_format(query, ("json", "csv", "html"))
    brand = brands.get_brand(tx, keys.require_brand(caller))
    first_day, last_day = report_range(query, brand, runtime.clock.now())
    days = {"first_day": first_day, "last_day": last_day}

    if answer == "html":
        report = reports.kpi_report(tx, brand=brand, **days)
        page = report_page.render(
            report, brand=brand, **days, generated_at=runtime.clock.now()
        )
        return page, 200, report_page.headers()
    rows = reports.daily(
        tx, brand_id=str(brand["id"]), time_zone=brand["time_zone"], **days
    )
    if answer == "csv":
        name = f"daily-kpis-{first_day}-to-{last_day}"
        return _csv_response(reports.DAILY_COLUMNS, rows, name)
    return web.json_response(
        {
            "time_zone": brand["time_zone"],
            "from": first_day,
            "to": last_day,
            "days": rows,
            "totals": reports.daily_totals(rows),
        }
    )


def post_report(
    tx: Transaction, *, runtime: Any, caller: keys.Caller, body: Any, query: Any
) -> web.Response:
    from cartcast import reports

    answer = _report_format(query, ("json", "csv"))
    limit = _limit(query)
    rows, next_token = reports.post_revenue(
        tx, brand_id=keys.require_brand(caller), limit=limit, after=query.get("after")
    )

    if answer == "csv":
        # A CSV has no room for the token: the next page is a Link header (RFC
        # 8288) whose target, a bare query, resolves against this request's path.
        following = {"format": "csv", "limit": limit, "after": next_token}
        link = f'<?{urlencode(following)}>; rel="next"'
        extra = {} if next_token is None else {"Link": link}
        return _csv_response(reports.POST_COLUMNS, rows, "posts", extra)
    return web.json_response({"posts": rows, "next": next_token})


def mention_report(
    tx: Transaction, *, runtime: Any, caller: keys.Caller, body: Any, query: Any
) -> web.Response:
    from cartcast import reports

    answer = _report_format(query, ("json", "csv"))
    rows = reports.mention_summary(tx, brand_id=keys.require_brand(caller))
    if answer == "csv":
        return _csv_response(reports.MENTION_COLUMNS, rows, "mentions")
    return web.json_response({"mentions": rows})


def order_report(
    tx: Transaction, *, runtime: Any, caller: keys.Caller, body: Any, query: Any
) -> web.Response:
    from cartcast import brands, reports

    answer = _report_format(query, ("json", "csv"))
    brand = brands.get_brand(tx, keys.require_brand(caller))
    first_day, last_day = report_range(query, brand, runtime.clock.now())

    try:
        rows = reports.orders(
            tx,
            brand_id=str(brand["id"]),
            time_zone=brand["time_zone"],
            first_day=first_day,
            last_day=last_day,
        )
    except reports.TooManyRows as error:
        raise InvalidRequest(
            f"these days hold {error}; ask for fewer days", field="from"
        ) from error
    if answer == "csv":
        name = f"orders-{first_day}-to-{last_day}"
        return _csv_response(reports.ORDER_COLUMNS, rows, name)
    return web.json_response(
        {
            "time_zone": brand["time_zone"],
            "from": first_day,
            "to": last_day,
            "orders": rows,
        }
    )


def _report_format(query: Any, allowed: tuple[str, ...]) -> str:
    """Return the `format` a report is asked in (json by default), or refuse it."""
    chosen = query.get("format", "json")
    if chosen not in allowed:
        raise InvalidRequest(
            f"'format' must be one of {', '.join(allowed)}", field="format"
        )
    return chosen


def report_range(
    query: Any, brand: dict[str, Any], now: dt.datetime
) -> tuple[dt.date, dt.date]:
    """Return the report's first and last brand-local day, checked once for every
    format: `to` defaults to today, `from` to the default range before `to`."""
    today = now.astimezone(zoneinfo.ZoneInfo(brand["time_zone"])).date()
    last_day = _day(query.get("to"), "to", today)
    if query.get("from") is None:
        first_day = _default_first_day(last_day)
    else:
        first_day = _day(query.get("from"), "from", last_day)

    # The range counts both ends: from 2025-03-03 to 2026-03-03 is 366 days.
    if first_day > last_day or (last_day - first_day).days + 1 > REPORT_DAYS_MAX:
        raise InvalidRequest(
            f"'from' must be on or before 'to', at most {REPORT_DAYS_MAX} days apart",
            field="from",
        )
    return first_day, last_day


def _csv_response(
    columns: tuple[str, ...],
    rows: list[dict[str, Any]],
    name: str,
    extra_headers: dict[str, str] | None = None,
) -> web.Response:
    from cartcast import reports

    headers = {
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="cartcast-{name}.csv"',
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        **(extra_headers or {}),
    }
    return reports.to_csv(columns, rows), 200, headers


def _day(value: str | None, name: str, default: dt.date) -> dt.date:
    """Read a YYYY-MM-DD day; the other forms fromisoformat takes since Python 3.11
    (20260301, 2026-W10-1) are refused, since the README promises only this one."""
    if value is None:
        return default
    try:
        if not ISO_DAY.fullmatch(value):
            raise ValueError(value)
        return dt.date.fromisoformat(value)
    except ValueError as error:
        raise InvalidRequest(
            f"'{name}' must be a date written YYYY-MM-DD, like 2026-03-01", field=name
        ) from error


def _default_first_day(last_day: dt.date) -> dt.date:
    """Return the first day of the default report range that ends on `last_day`."""
    try:
        return last_day - dt.timedelta(days=DEFAULT_REPORT_DAYS - 1)
    except OverflowError as error:
        raise InvalidRequest(
            f"'to' is too early for the default {DEFAULT_REPORT_DAYS}-day range; "
            "send 'from' as well",
            field="to",
        ) from error


def export_brand(
    tx: Transaction, *, runtime: Any, caller: keys.Caller, body: Any, query: Any
) -> web.Response:
    """Answer the brand's archive, streamed (data_export.py); admin keys only."""
    from cartcast import brands, data_export

    brand_id = keys.require_brand(caller)
    offboarding.require_admin(caller.role, "exporting the brand's data")
    validation.only_fields(query, (), what="an export")
    slug = brands.get_brand(tx, brand_id)["slug"]
    chunks = data_export.stream_archive(
        runtime.database, brand_id=brand_id, now=runtime.clock.now()
    )
    headers = {
        "Content-Type": "application/zip",
        "Content-Disposition": (
            f'attachment; filename="{data_export.archive_name(slug)}"'
        ),
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }
    return chunks, 200, headers


def get_offboarding(
    tx: Transaction, *, runtime: Any, caller: keys.Caller, body: Any, query: Any
) -> web.Response:
    state = offboarding.offboarding_state(tx, brand_id=keys.require_brand(caller))
    return web.json_response(state)


def request_offboarding(
    tx: Transaction, *, runtime: Any, caller: keys.Caller, body: Any, query: Any
) -> web.Response:
    """Ask for the brand to be offboarded after the grace period; 202."""
    brand_id = keys.require_brand(caller)
    offboarding.require_admin(caller.role, "offboarding the brand")
    validation.only_fields(body, ("keep_daily_kpis",), what="an offboarding")
    keep = body.get("keep_daily_kpis", False)
    if not isinstance(keep, bool):
        raise InvalidRequest(
            "'keep_daily_kpis' must be true or false", field="keep_daily_kpis"
        )
    state = offboarding.request_offboarding(
        tx,
        brand_id=brand_id,
        actor=caller.key_name,
        keep_daily_kpis=keep,
        grace_days=runtime.settings.offboarding_grace_days,
        now=runtime.clock.now(),
    )
    runtime.log.info(
        "offboarding requested", extra=fields(brand_id=brand_id, keep_kpis=keep)
    )
    return web.json_response(state, 202)


def cancel_offboarding(
    tx: Transaction, *, runtime: Any, caller: keys.Caller, body: Any, query: Any
) -> web.Response:
    brand_id = keys.require_brand(caller)
    offboarding.require_admin(caller.role, "cancelling the offboarding")
    state = offboarding.cancel_offboarding(
        tx, brand_id=brand_id, now=runtime.clock.now()
    )
    return web.json_response(state)


def get_retention(
    tx: Transaction, *, runtime: Any, caller: keys.Caller, body: Any, query: Any
) -> web.Response:
    from cartcast import retention

    state = retention.retention_state(
        tx, brand_id=keys.require_brand(caller), settings=runtime.settings
    )
    return web.json_response(state)


def set_retention(
    tx: Transaction, *, runtime: Any, caller: keys.Caller, body: Any, query: Any
) -> web.Response:
    from cartcast import retention

    brand_id = keys.require_brand(caller)
    offboarding.require_admin(caller.role, "changing how long data is kept")
    state = retention.set_retention(
        tx, brand_id=brand_id, body=body, settings=runtime.settings
    )
    return web.json_response(state)


def remove_author_data(
    tx: Transaction, *, runtime: Any, caller: keys.Caller, body: Any, query: Any
) -> web.Response:
    """Remove one mention author's personal data (author_data.py); admin keys."""
    from cartcast import author_data, removed_mentions

    brand_id = keys.require_brand(caller)
    offboarding.require_admin(caller.role, "removing an author's data")
    record = author_data.remove_author_data(
        tx,
        brand_id=brand_id,
        body=body,
        actor=caller.key_name,
        now=runtime.clock.now(),
        reread_reach=removed_mentions.reread_reach(runtime.settings),
    )
    return web.json_response({"removal": record})


def list_author_data_removals(
    tx: Transaction, *, runtime: Any, caller: keys.Caller, body: Any, query: Any
) -> web.Response:
    from cartcast import author_data

    brand_id = keys.require_brand(caller)
    offboarding.require_admin(caller.role, "reading the removals of authors' data")
    found, next_token = author_data.list_removals(
        tx, brand_id=brand_id, limit=_limit(query), after=query.get("after")
    )
    return web.json_response({"removals": found, "next": next_token})


def create_key(
    tx: Transaction, *, runtime: Any, caller: keys.Caller, body: Any, query: Any
) -> web.Response:
    """Make a key of the brand; its value is in this answer and nowhere after."""
    created = keys.add_key(
        tx,
        brand_id=keys.require_brand(caller),
        body=body,
        actor=caller.key_name,
        now=runtime.clock.now(),
    )
    return web.json_response(created, 201)


def list_keys(
    tx: Transaction, *, runtime: Any, caller: keys.Caller, body: Any, query: Any
) -> web.Response:
    return web.json_response(
        {"keys": keys.list_keys(tx, brand_id=keys.require_brand(caller))}
    )


def revoke_key(
    tx: Transaction,
    *,
    runtime: Any,
    caller: keys.Caller,
    body: Any,
    query: Any,
    key_id: str,
) -> web.Response:
    revoked = keys.revoke_key(
        tx,
        brand_id=keys.require_brand(caller),
        key_id=_row_id(key_id, "key"),
        actor=caller.key_name,
        now=runtime.clock.now(),
    )
    return web.json_response({"key": revoked})


def list_audit(
    tx: Transaction, *, runtime: Any, caller: keys.Caller, body: Any, query: Any
) -> web.Response:
    """List the brand's audit trail newest first; filter by action and subject."""
    page = audit.list_trail(
        tx, brand_id=keys.require_brand(caller), query=query, limit=_limit(query)
    )
    return web.json_response(page)


HANDLERS = {rule.endpoint: globals()[rule.endpoint] for rule in _rules()}
