"""Signed order webhooks: the api function served on loopback, signed like Shopify.

The test signs each body itself (base64 of HMAC-SHA256 over the raw bytes) and sends
it with urllib over a real socket to functions-framework's app.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import threading
import urllib.error
import urllib.request
import uuid
from decimal import Decimal

import pytest
from werkzeug.serving import make_server

from cartcast import attribution, keys, order_imports, order_refunds, orders
from cartcast import runtime as runtime_module
from tests.conftest import OPERATOR_KEY, START, make_app
from tests.helpers import WAITING_ON_A_LOCK, auth, brand_body, post_json

SECRET = "shpss_0123456789abcdef0123456789abcdef"


class ApiServer:
    """The api function behind a real HTTP server on a free loopback port."""

    def __init__(self, app) -> None:
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.server.server_port}"

    def post(self, path: str, raw: bytes, headers: dict[str, str]):
        """POST raw bytes; return (status, JSON answer)."""
        request = urllib.request.Request(
            self.base_url + path,
            data=raw,
            headers={"Content-Type": "application/json", **headers},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)


@pytest.fixture
def app(function_env):
    return make_app("api", "http")


@pytest.fixture
def server(app):
    running = ApiServer(app)
    yield running
    running.close()


@pytest.fixture
def brand(app) -> dict:
    """A brand whose admin has set the webhook secret; its id, key and slug."""
    client = app.test_client()
    created = post_json(client, "/v1/brands", brand_body(), OPERATOR_KEY).get_json()
    key = created["api_key"]
    patched = client.patch(
        "/v1/brand",
        data=json.dumps({"webhook_secret": SECRET}),
        headers=auth(key),
        content_type="application/json",
    )
    assert patched.status_code == 200, patched.get_json()
    return {"id": created["brand"]["id"], "key": key, "slug": "test-goods"}


def sign(raw: bytes, secret: str = SECRET) -> str:
    digest = hmac.new(secret.encode(), raw, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def shopify_order(**changes) -> bytes:
    """An orders/create body as Shopify writes it: ids as numbers, money as text.

    Another id gets another name, as in a store, where names are unique too.
    """
    order_id = changes.get("id", 820982911946154508)
    order = {
        "id": order_id,
        "name": "#1001" if order_id == 820982911946154508 else f"#{order_id}",
        "created_at": "2026-03-02T05:30:00-05:00",
        "currency": "USD",
        "total_price": "199.65",
        "landing_site": "/products/mug?utm_source=x&utm_medium=social",
        "referring_site": "https://t.co/abc",
        "customer": {"id": 115310627314723954},
        "line_items": [{"id": 1, "title": "Mug", "quantity": 1, "price": "199.65"}],
        **changes,
    }
    # Shopify's own spacing; the signature must hold for exactly these bytes.
    return json.dumps(order, indent=2).encode()


def headers_for(raw: bytes, **extra: str) -> dict[str, str]:
    return {
        "X-Shopify-Hmac-Sha256": sign(raw),
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Shop-Domain": "test-goods.myshopify.com",
        "X-Shopify-Webhook-Id": str(uuid.uuid4()),
        **extra,
    }


def stored_orders() -> list[dict]:
    with runtime_module.current().database.transaction() as tx:
        return tx.rows(
            "SELECT external_id, total_price, webhook_id, post_id FROM orders "
            "ORDER BY external_id"
        )


def test_a_signed_order_is_stored_once_and_a_replay_is_a_200(server, brand) -> None:
    raw = shopify_order()
    headers = headers_for(raw)

    first = server.post("/v1/webhooks/orders/test-goods", raw, headers)
    again = server.post("/v1/webhooks/orders/test-goods", raw, headers)

    assert first[0] == 201, first[1]
    assert first[1]["order"]["external_id"] == "820982911946154508"
    assert again == (200, {**first[1], "duplicate": True})
    assert len(stored_orders()) == 1


@pytest.mark.parametrize("total", ["-0", "-0.00", -0.0])
def test_a_signed_zero_total_is_an_order_of_zero(server, brand, total) -> None:
    raw = shopify_order(total_price=total)

    response = server.post("/v1/webhooks/orders/test-goods", raw, headers_for(raw))

    assert response[0] == 201, response[1]
    assert response[1]["order"]["total_price"] == "0.00"
    assert [str(order["total_price"]) for order in stored_orders()] == ["0.00"]


def test_a_new_delivery_of_a_stored_order_is_a_200(server, brand) -> None:
    raw = shopify_order()

    first = server.post("/v1/webhooks/orders/test-goods", raw, headers_for(raw))
    again = server.post("/v1/webhooks/orders/test-goods", raw, headers_for(raw))

    assert (first[0], again[0]) == (201, 200)
    assert again[1]["order"]["id"] == first[1]["order"]["id"]


def test_a_replayed_delivery_id_answers_the_order_it_first_brought(
    server, brand
) -> None:
    raw = shopify_order()
    headers = headers_for(raw)
    server.post("/v1/webhooks/orders/test-goods", raw, headers)
    other = shopify_order(id=5)

    answer = server.post(
        "/v1/webhooks/orders/test-goods",
        other,
        {**headers, "X-Shopify-Hmac-Sha256": sign(other)},
    )

    assert answer[0] == 200
    assert answer[1]["order"]["external_id"] == "820982911946154508"
    assert [row["external_id"] for row in stored_orders()] == ["820982911946154508"]


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "not base64 at all",
        sign(b"another body"),
        sign(shopify_order(), secret="a-different-secret-entirely"),
        "é" * 44,
    ],
)
def test_a_wrong_or_missing_signature_is_a_401_and_stores_nothing(
    server, brand, signature
) -> None:
    raw = shopify_order()
    headers = headers_for(raw)
    if signature is None:
        del headers["X-Shopify-Hmac-Sha256"]
    else:
        headers["X-Shopify-Hmac-Sha256"] = signature

    status, answer = server.post("/v1/webhooks/orders/test-goods", raw, headers)

    assert status == 401
    assert answer["error"]["code"] == "unauthorized"
    assert stored_orders() == []


def test_a_brand_past_its_offboarding_grace_takes_no_signed_orders(
    server, app, brand
) -> None:
    # Its keys stop working then (offboarding.refuse_after_grace); a store's
    # webhook must too, or an order lands, and marks a day for the rollup, while
    # the sweep deletes the brand's rows batch by batch, over several ticks.
    client = app.test_client()
    asked = post_json(
        client, "/v1/brand/offboarding", {"keep_daily_kpis": True}, brand["key"]
    )
    assert asked.status_code == 202, asked.get_json()
    with runtime_module.current().database.transaction() as tx:
        tx.execute(
            "UPDATE brands SET offboarding_due_at = :due WHERE id = :id",
            due=START - dt.timedelta(minutes=1),
            id=brand["id"],
        )
    raw = shopify_order()

    status, body = server.post("/v1/webhooks/orders/test-goods", raw, headers_for(raw))

    assert status == 401, body
    assert stored_orders() == []


def test_a_refused_signature_names_the_header_it_wants(app, brand) -> None:
    # RFC 9110 section 11.6.1: a 401 carries at least one challenge. The store
    # signs with no HTTP authentication scheme, so it names the header it reads.
    raw = shopify_order()
    headers = {**headers_for(raw), "X-Shopify-Hmac-Sha256": sign(b"another body")}

    answer = app.test_client().post(
        "/v1/webhooks/orders/test-goods",
        data=raw,
        headers=headers,
        content_type="application/json",
    )

    assert answer.status_code == 401
    assert answer.headers.get("WWW-Authenticate") == (
        'HMAC-SHA256 realm="cartcast", header="X-Shopify-Hmac-Sha256"'
    )


def test_a_body_changed_after_signing_is_a_401(server, brand) -> None:
    raw = shopify_order()
    headers = headers_for(raw)
    tampered = raw.replace(b"199.65", b"  1.00")

    status, _ = server.post("/v1/webhooks/orders/test-goods", tampered, headers)

    assert status == 401
    assert stored_orders() == []


def test_a_signed_order_needs_no_api_key_and_an_api_key_is_no_signature(
    server, brand
) -> None:
    raw = shopify_order()
    headers = {**auth(brand["key"]), "X-Shopify-Topic": "orders/create"}

    status, _ = server.post("/v1/webhooks/orders/test-goods", raw, headers)

    assert status == 401


@pytest.mark.parametrize("slug", ["no-such-brand", "x", "Test-Goods"])
def test_an_unknown_slug_reads_like_a_wrong_signature(server, brand, slug) -> None:
    raw = shopify_order()

    status, _ = server.post(f"/v1/webhooks/orders/{slug}", raw, headers_for(raw))

    assert status == 401


def test_a_brand_without_a_secret_takes_no_signed_orders(server, app) -> None:
    post_json(app.test_client(), "/v1/brands", brand_body(), OPERATOR_KEY)
    raw = shopify_order()

    status, _ = server.post("/v1/webhooks/orders/test-goods", raw, headers_for(raw))

    assert status == 401


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"total_price": "-19.99"}, "total_price"),
        ({"currency": "EUR"}, "currency"),
        ({"created_at": "2026-03-02 05:30"}, "created_at"),
        ({"created_at": "0001-01-01T00:30:00Z"}, "created_at"),
        ({"id": "1001\n1002"}, "id"),
        ({"customer": {"id": "7\u0007"}}, "customer.id"),
        ({"referring_site": "https://t.co/\u001b[31m"}, "referring_site"),
        ({"created_at": "2006-03-20T23:59:59Z"}, "created_at"),
        ({"created_at": "2026-03-03T08:00:01Z"}, "created_at"),
    ],
)
def test_a_bad_order_is_a_400_naming_the_field(server, brand, change, field) -> None:
    raw = shopify_order(**change)

    status, answer = server.post(
        "/v1/webhooks/orders/test-goods", raw, headers_for(raw)
    )

    assert status == 400, answer
    assert answer["error"]["field"] == field
    assert stored_orders() == []


@pytest.mark.parametrize(
    "landing",
    [
        "/products/mug?utm_content=%zz",
        "/products/mug?utm_source=x&utm_medium=%E2%82",
        "/products/mug?utm_source=x%E9&utm_medium=social",
        "http://[broken/?utm_source=x",
        "/products/mug?utm_source=x utm_medium=social",
        "/products/mug?utm_source=x&utm_medium=social\u0007",
    ],
)
def test_an_unreadable_landing_site_keeps_the_order_unattributed(
    server, brand, landing
) -> None:
    raw = shopify_order(landing_site=landing)

    status, answer = server.post(
        "/v1/webhooks/orders/test-goods", raw, headers_for(raw)
    )

    # A 2xx, or Shopify would retry the sale for hours and then drop it.
    assert status == 201, answer
    assert "landing_site" in answer["landing_site_ignored"]
    assert answer["order"]["landing_site"] is None
    assert answer["order"]["post_id"] is None
    assert len(stored_orders()) == 1


def test_empty_query_fields_in_a_landing_site_are_accepted(server, brand) -> None:
    raw = shopify_order(landing_site="/?ref=a&&flag&utm_source=x")

    status, _ = server.post("/v1/webhooks/orders/test-goods", raw, headers_for(raw))

    assert status == 201


@pytest.mark.parametrize(
    ("headers", "field"),
    [
        ({"X-Shopify-Topic": "orders/updated"}, "X-Shopify-Topic"),
        ({"X-Shopify-Webhook-Id": "w" * 201}, "X-Shopify-Webhook-Id"),
    ],
)
def test_a_wrong_topic_or_delivery_id_is_a_400(server, brand, headers, field) -> None:
    raw = shopify_order()

    status, answer = server.post(
        "/v1/webhooks/orders/test-goods", raw, headers_for(raw, **headers)
    )

    assert status == 400
    assert answer["error"]["field"] == field


def test_a_signed_but_broken_json_body_is_a_400(server, brand) -> None:
    raw = b'{"id": 1, "created_at": '

    status, answer = server.post(
        "/v1/webhooks/orders/test-goods", raw, headers_for(raw)
    )

    assert status == 400
    assert "JSON" in answer["error"]["message"]


def test_a_signed_order_from_a_post_link_is_attributed_to_the_post(
    server, brand
) -> None:
    post_id = str(uuid.uuid4())
    published_at = START - dt.timedelta(days=1)
    with runtime_module.current().database.transaction() as tx:
        tx.execute(
            "INSERT INTO posts (id, brand_id, text, state, engine, weighted_length, "
            "published_at, created_by, created_at, updated_at) "
            "VALUES (:id, :brand_id, 'mug', 'published', 'manual', 3, "
            ":published_at, 'test', :published_at, :published_at)",
            id=post_id,
            brand_id=brand["id"],
            published_at=published_at,
        )
    landing = f"/products/mug?utm_source=x&utm_medium=social&utm_content={post_id}"
    raw = shopify_order(landing_site=landing)

    status, answer = server.post(
        "/v1/webhooks/orders/test-goods", raw, headers_for(raw)
    )

    assert status == 201
    assert answer["order"]["post_id"] == post_id


def test_the_secret_is_set_by_an_admin_and_never_shown(app, brand) -> None:
    with runtime_module.current().database.transaction() as tx:
        editor_key = keys.create_key(
            tx, brand_id=brand["id"], name="editor", role="editor", now=START
        )
    client = app.test_client()

    refused = client.patch(
        "/v1/brand",
        data=json.dumps({"webhook_secret": "another-secret-of-the-editor"}),
        headers=auth(editor_key),
        content_type="application/json",
    )
    shown = client.get("/v1/brand", headers=auth(brand["key"])).get_json()["brand"]

    # PATCH /v1/brand as a whole needs an admin key (api.ROUTE_ROLES).
    assert refused.status_code == 403
    assert refused.get_json()["error"]["message"].startswith(
        "this needs a key of role admin;"
    )
    assert shown["has_webhook_secret"] is True
    assert SECRET not in json.dumps(shown)


@pytest.mark.parametrize(
    "secret", ["short", " padded-secret-value ", "x" * 201, 12345678901234567890]
)
def test_a_weak_or_odd_secret_is_a_400(app, brand, secret) -> None:
    response = app.test_client().patch(
        "/v1/brand",
        data=json.dumps({"webhook_secret": secret}),
        headers=auth(brand["key"]),
        content_type="application/json",
    )

    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "webhook_secret"


def test_a_signed_order_in_another_charset_is_a_415_and_not_stored(
    server, brand
) -> None:
    raw = shopify_order(name="#Café").decode().encode("latin-1")
    headers = headers_for(raw, **{"Content-Type": "application/json; charset=latin-1"})

    status, answer = server.post("/v1/webhooks/orders/test-goods", raw, headers)

    assert status == 415, answer
    assert "latin-1" in answer["error"]["message"]
    assert stored_orders() == []


def test_a_null_secret_turns_signed_orders_off(server, app, brand) -> None:
    app.test_client().patch(
        "/v1/brand",
        data=json.dumps({"webhook_secret": None}),
        headers=auth(brand["key"]),
        content_type="application/json",
    )
    raw = shopify_order()

    status, _ = server.post("/v1/webhooks/orders/test-goods", raw, headers_for(raw))

    assert status == 401


def test_a_new_order_tries_only_itself_and_the_rollup_credits_the_rest(
    server, brand
) -> None:
    post_id = str(uuid.uuid4())
    landing = f"/products/mug?utm_source=x&utm_medium=social&utm_content={post_id}"
    early = shopify_order(id=1, landing_site=landing)
    server.post("/v1/webhooks/orders/test-goods", early, headers_for(early))
    # The post is recorded as published only after its first order came in.
    published_at = START - dt.timedelta(days=1)
    with runtime_module.current().database.transaction() as tx:
        tx.execute(
            "INSERT INTO posts (id, brand_id, text, state, engine, weighted_length, "
            "published_at, created_by, created_at, updated_at) "
            "VALUES (:id, :brand_id, 'mug', 'published', 'manual', 3, "
            ":published_at, 'test', :published_at, :published_at)",
            id=post_id,
            brand_id=brand["id"],
            published_at=published_at,
        )

    later = shopify_order(id=2)
    server.post("/v1/webhooks/orders/test-goods", later, headers_for(later))
    untouched = {row["external_id"]: row["post_id"] for row in stored_orders()}
    with runtime_module.current().database.transaction() as tx:
        credited = attribution.attribute_pending(
            tx, brand_id=brand["id"], window_days=7
        )

    assert untouched == {"1": None, "2": None}
    assert credited == 1
    assert str(stored_orders()[0]["post_id"]) == post_id


def test_a_signed_test_order_is_answered_and_not_stored(server, brand) -> None:
    raw = shopify_order(test=True)

    status, answer = server.post(
        "/v1/webhooks/orders/test-goods", raw, headers_for(raw)
    )

    assert status == 200
    assert answer == {"order": None, "duplicate": False, "test": True}
    assert stored_orders() == []


def test_a_test_order_by_api_is_answered_and_not_stored(app, brand) -> None:
    body = json.loads(shopify_order(test=True))
    client = app.test_client()

    response = post_json(client, "/v1/orders", body, brand["key"])
    odd = post_json(client, "/v1/orders", {**body, "test": "yes"}, brand["key"])
    real = post_json(client, "/v1/orders", {**body, "test": False}, brand["key"])

    assert response.status_code == 200
    assert response.get_json()["test"] is True
    assert odd.status_code == 400
    assert odd.get_json()["error"]["field"] == "test"
    assert real.status_code == 201
    assert len(stored_orders()) == 1


@pytest.mark.parametrize(
    "query",
    [
        "UTM_SOURCE=x&UTM_MEDIUM=social&UTM_CONTENT={post_id}",
        "utm%5Fsource=x&utm%5Fmedium=social&utm%5Fcontent={post_id}",
        # An unrelated parameter in Latin-1 or with a broken escape is no reason
        # to distrust UTM parameters that decode cleanly.
        "q=caf%E9&utm_source=x&utm_medium=social&utm_content={post_id}",
        "utm_source=x&utm_medium=social&utm_content={post_id}&ref=100%&x=%zz",
        # A raw space in a search term, or a utm_term attribution never reads.
        "utm_source=x&utm_medium=social&utm_content={post_id}&q=red shoes",
        "utm_source=x&utm_medium=social&utm_content={post_id}&utm_term=caf%E9",
    ],
)
def test_utm_names_in_any_case_or_percent_encoded_are_attributed(
    server, brand, query
) -> None:
    post_id = str(uuid.uuid4())
    published_at = START - dt.timedelta(days=1)
    with runtime_module.current().database.transaction() as tx:
        tx.execute(
            "INSERT INTO posts (id, brand_id, text, state, engine, weighted_length, "
            "published_at, created_by, created_at, updated_at) "
            "VALUES (:id, :brand_id, 'mug', 'published', 'manual', 3, "
            ":published_at, 'test', :published_at, :published_at)",
            id=post_id,
            brand_id=brand["id"],
            published_at=published_at,
        )
    raw = shopify_order(landing_site="/products/mug?" + query.format(post_id=post_id))

    status, answer = server.post(
        "/v1/webhooks/orders/test-goods", raw, headers_for(raw)
    )

    assert status == 201
    assert answer["order"]["post_id"] == post_id


def test_a_signed_cancelled_order_is_answered_and_not_stored(server, brand) -> None:
    raw = shopify_order(cancelled_at="2026-03-02T06:00:00-05:00")

    status, answer = server.post(
        "/v1/webhooks/orders/test-goods", raw, headers_for(raw)
    )

    assert status == 200, answer
    assert answer == {
        "order": None,
        "duplicate": False,
        "cancelled": True,
        "removed": False,
    }
    assert stored_orders() == []


def test_a_cancelled_order_by_api_removes_the_sale_stored_before(app, brand) -> None:
    body = json.loads(shopify_order())
    client = app.test_client()
    placed = post_json(client, "/v1/orders", body, brand["key"])

    cancelled = post_json(
        client,
        "/v1/orders",
        {**body, "cancelled_at": "2026-03-02T07:00:00-05:00"},
        brand["key"],
    )
    odd = post_json(client, "/v1/orders", {**body, "cancelled_at": 5}, brand["key"])

    assert placed.status_code == 201
    assert cancelled.status_code == 200, cancelled.get_json()
    assert cancelled.get_json()["removed"] is True
    assert stored_orders() == []
    assert odd.status_code == 400
    assert odd.get_json()["error"]["field"] == "cancelled_at"


def test_a_total_past_the_cent_is_rounded_half_up_as_stores_do(app, brand) -> None:
    body = json.loads(shopify_order(total_price="10.005"))

    response = post_json(app.test_client(), "/v1/orders", body, brand["key"])

    assert response.status_code == 201, response.get_json()
    assert response.get_json()["order"]["total_price"] == "10.01"


def test_the_attribution_window_is_whole_days_of_24_hours_whatever_the_db_zone(
    server, brand
) -> None:
    # Published on 2025-10-30; New York fell back on 2025-11-02, so seven of its
    # calendar days after the post are 169 hours, seven days of 24 hours are 168.
    post_id = str(uuid.uuid4())
    published_at = dt.datetime(2025, 10, 30, 12, tzinfo=dt.UTC)
    with runtime_module.current().database.transaction() as tx:
        tx.execute(
            "INSERT INTO posts (id, brand_id, text, state, engine, weighted_length, "
            "published_at, created_by, created_at, updated_at) "
            "VALUES (:id, :brand_id, 'mug', 'published', 'manual', 3, "
            ":published_at, 'test', :published_at, :published_at)",
            id=post_id,
            brand_id=brand["id"],
            published_at=published_at,
        )
    landing = f"/products/mug?utm_source=x&utm_medium=social&utm_content={post_id}"
    late = published_at + dt.timedelta(hours=168, minutes=30)
    raw = shopify_order(landing_site=landing, created_at=late.isoformat())
    server.post("/v1/webhooks/orders/test-goods", raw, headers_for(raw))

    # A PostgreSQL server whose TimeZone is New York (initdb takes the host's).
    with runtime_module.current().database.transaction() as tx:
        tx.execute("SET LOCAL TimeZone = 'America/New_York'")
        credited = attribution.attribute_pending(
            tx, brand_id=brand["id"], window_days=7
        )

    assert credited == 0
    assert stored_orders()[0]["post_id"] is None


# Shopify delivers at least once and in any order, and a store's own integration
# resends a create it saw fail: a cancellation must hold against what comes after.


def test_an_order_created_after_its_cancellation_is_not_stored(app, brand) -> None:
    body = json.loads(shopify_order())
    client = app.test_client()
    cancelled = post_json(
        client,
        "/v1/orders",
        {**body, "cancelled_at": "2026-03-02T07:00:00-05:00"},
        brand["key"],
    )

    late = post_json(client, "/v1/orders", body, brand["key"])

    assert cancelled.status_code == 200, cancelled.get_json()
    assert late.status_code == 200, late.get_json()
    assert late.get_json()["cancelled"] is True
    assert stored_orders() == []


def test_a_create_redelivered_after_the_cancellation_stays_cancelled(
    server, app, brand
) -> None:
    raw = shopify_order()
    headers = headers_for(raw)
    first = server.post("/v1/webhooks/orders/test-goods", raw, headers)
    body = json.loads(raw)
    post_json(
        app.test_client(),
        "/v1/orders",
        {**body, "cancelled_at": "2026-03-02T07:00:00-05:00"},
        brand["key"],
    )

    again = server.post("/v1/webhooks/orders/test-goods", raw, headers)

    assert first[0] == 201, first[1]
    assert again[0] == 200, again[1]
    assert again[1]["cancelled"] is True
    assert stored_orders() == []


def test_a_cancellation_racing_the_uncommitted_creation_still_removes_it(
    brand,
) -> None:
    body = json.loads(shopify_order())
    database = runtime_module.current().database
    cancel_done = threading.Event()

    def cancel() -> None:
        with database.transaction() as tx:
            orders.receive_order(
                tx,
                brand_id=brand["id"],
                body={**body, "cancelled_at": "2026-03-02T07:00:00-05:00"},
                now=START,
                window_days=7,
            )
        cancel_done.set()

    # The creation has inserted but not committed when the cancellation runs.
    with database.transaction() as tx:
        orders.receive_order(
            tx, brand_id=brand["id"], body=body, now=START, window_days=7
        )
        canceller = threading.Thread(target=cancel)
        canceller.start()
        # Without a turn to take, the cancellation finishes before this commit.
        cancel_done.wait(timeout=5)
    canceller.join(timeout=30)

    assert not canceller.is_alive()


def test_a_signed_order_backfilled_by_name_before_is_the_same_order(
    server, app, brand
) -> None:
    backfill = "Name,Created at,Currency,Total\n#1001,2026-03-02T10:30:00Z,USD,199.65"
    imported = app.test_client().post(
        "/v1/orders/import",
        data=backfill,
        headers=auth(brand["key"]),
        content_type="text/csv",
    )
    raw = shopify_order()

    status, answer = server.post(
        "/v1/webhooks/orders/test-goods", raw, headers_for(raw)
    )

    assert imported.get_json()["stored"] == 1
    assert status == 200, answer
    assert answer["duplicate"] is True
    assert [row["external_id"] for row in stored_orders()] == ["820982911946154508"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": 1001}, "name"),
        ({"name": "#10\n01"}, "name"),
        ({"financial_status": 5}, "financial_status"),
    ],
    ids=["number-name", "control-name", "number-status"],
)
def test_a_bad_name_or_financial_status_is_a_400(app, brand, change, field) -> None:
    body = json.loads(shopify_order(**change))

    response = post_json(app.test_client(), "/v1/orders", body, brand["key"])

    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"]["field"] == field
    assert stored_orders() == []


def test_a_voided_order_by_api_is_no_sale(app, brand) -> None:
    body = json.loads(shopify_order(financial_status="voided"))

    response = post_json(app.test_client(), "/v1/orders", body, brand["key"])

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["cancelled"] is True
    assert stored_orders() == []


def shopify_refund(refund_id: int = 929361462, **changes) -> bytes:
    """A refunds/create body as Shopify writes it: the money back in transactions."""
    refund = {
        "id": refund_id,
        "order_id": 820982911946154508,
        "created_at": "2026-03-03T09:00:00-05:00",
        "note": "wrong size",
        "refund_line_items": [{"line_item_id": 1, "quantity": 1}],
        "transactions": [
            {"id": 1, "kind": "refund", "status": "success", "amount": "50.00",
             "currency": "USD"},
            {"id": 2, "kind": "refund", "status": "failure", "amount": "50.00",
             "currency": "USD"},
        ],
        **changes,
    }  # fmt: skip
    return json.dumps(refund).encode()


def marked_days(brand_id: str) -> list[str]:
    with runtime_module.current().database.transaction() as tx:
        rows = tx.rows(
            "SELECT DISTINCT CAST(day AS text) AS day FROM kpi_marks "
            "WHERE brand_id = :brand_id",
            brand_id=brand_id,
        )
    return [row["day"] for row in rows]


def forget_marks() -> None:
    """What the rollup does once it has rewritten the marked days."""
    with runtime_module.current().database.transaction() as tx:
        tx.execute("DELETE FROM kpi_marks")


def test_a_signed_cancellation_removes_the_order_and_marks_its_day(
    server, brand
) -> None:
    placed = shopify_order()
    server.post("/v1/webhooks/orders/test-goods", placed, headers_for(placed))
    forget_marks()
    raw = shopify_order(cancelled_at="2026-03-02T06:00:00-05:00")
    cancelled = headers_for(raw, **{"X-Shopify-Topic": "orders/cancelled"})

    status, answer = server.post("/v1/webhooks/orders/test-goods", raw, cancelled)
    again, repeated = server.post("/v1/webhooks/orders/test-goods", raw, cancelled)

    assert status == 200, answer
    assert (answer["cancelled"], answer["removed"]) == (True, True)
    assert (again, repeated["removed"]) == (200, False)
    assert stored_orders() == []
    assert marked_days(brand["id"]) == ["2026-03-02"]


def test_a_refund_is_taken_off_once_however_often_it_is_delivered(
    server, brand
) -> None:
    placed = shopify_order()
    server.post("/v1/webhooks/orders/test-goods", placed, headers_for(placed))
    forget_marks()
    raw = shopify_refund()
    topic = {"X-Shopify-Topic": "refunds/create"}

    first = server.post(
        "/v1/webhooks/orders/test-goods", raw, headers_for(raw, **topic)
    )
    second = server.post(
        "/v1/webhooks/orders/test-goods", raw, headers_for(raw, **topic)
    )

    assert first[0] == 200, first[1]
    assert first[1]["refund"] == {
        "id": "929361462",
        "amount": "50.00",
        "applied": True,
        "pending": False,
    }
    assert (first[1]["duplicate"], second[1]["duplicate"]) == (False, True)
    assert [str(row["total_price"]) for row in stored_orders()] == ["149.65"]
    assert marked_days(brand["id"]) == ["2026-03-02"]


def test_a_second_refund_past_what_is_left_leaves_zero(server, brand) -> None:
    placed = shopify_order()
    server.post("/v1/webhooks/orders/test-goods", placed, headers_for(placed))
    topic = {"X-Shopify-Topic": "refunds/create"}
    for refund_id, amount in ((1, "150.00"), (2, "60.00")):
        transaction = {"kind": "refund", "status": "success", "amount": amount}
        raw = shopify_refund(refund_id, transactions=[transaction])
        server.post("/v1/webhooks/orders/test-goods", raw, headers_for(raw, **topic))

    assert [str(row["total_price"]) for row in stored_orders()] == ["0.00"]


def test_a_refund_of_an_order_not_stored_is_answered_applied_false_and_no_order(
    server, brand
) -> None:
    raw = shopify_refund()
    topic = {"X-Shopify-Topic": "refunds/create"}

    status, answer = server.post(
        "/v1/webhooks/orders/test-goods", raw, headers_for(raw, **topic)
    )

    assert status == 200, answer
    assert answer["order"] is None
    assert answer["refund"]["applied"] is False
    assert stored_orders() == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": None}, "id"),
        ({"order_id": True}, "order_id"),
        ({"transactions": {"amount": "5"}}, "transactions"),
        (
            {"transactions": [{"kind": "refund", "status": "success", "amount": "-5"}]},
            "transactions.amount",
        ),
        (
            {
                "transactions": [
                    {"kind": "refund", "status": "success", "amount": "5",
                     "currency": "EUR"}
                ]
            },
            "transactions.currency",
        ),
        ({"created_at": "yesterday"}, "created_at"),
        (
            {"transactions": [{"kind": "refund", "status": "pending",
                               "amount_set": "50.00"}]},
            "transactions.amount_set.shop_money",
        ),
        (
            {"transactions": [{"kind": "refund", "status": "success",
                               "amount_set": {"shop_money": {"amount": "x"}}}]},
            "transactions.amount_set.shop_money.amount",
        ),
    ],
    ids=[
        "no-id", "bool-order", "not-a-list", "negative", "currency", "created-at",
        "amount-set", "shop-amount",
    ],
)  # fmt: skip
def test_a_bad_refund_is_a_400_and_takes_nothing_off(
    server, brand, change, field
) -> None:
    placed = shopify_order()
    server.post("/v1/webhooks/orders/test-goods", placed, headers_for(placed))
    raw = shopify_refund(**change)
    topic = {"X-Shopify-Topic": "refunds/create"}

    status, answer = server.post(
        "/v1/webhooks/orders/test-goods", raw, headers_for(raw, **topic)
    )

    assert status == 400, answer
    assert answer["error"]["field"] == field
    assert [str(row["total_price"]) for row in stored_orders()] == ["199.65"]


@pytest.mark.parametrize("order_stored", [True, False], ids=["stored", "waiting"])
def test_refund_transactions_adding_up_past_any_amount_are_a_400(
    server, brand, order_stored
) -> None:
    # Each amount fits numeric(12, 2); their sum does not, and a waiting refund
    # keeps the sum in such a column (pending_refunds.amount).
    if order_stored:
        placed = shopify_order()
        server.post("/v1/webhooks/orders/test-goods", placed, headers_for(placed))
    most = {"kind": "refund", "status": "success", "amount": "9999999999.99"}
    raw = shopify_refund(transactions=[most, most])

    status, answer = server.post(
        "/v1/webhooks/orders/test-goods",
        raw,
        headers_for(raw, **{"X-Shopify-Topic": "refunds/create"}),
    )

    assert status == 400, answer
    assert answer["error"]["field"] == "transactions"
    assert pending_refunds() == []
    expected = ["199.65"] if order_stored else []
    assert [str(row["total_price"]) for row in stored_orders()] == expected


def test_a_refund_or_cancellation_needs_the_signature_too(server, brand) -> None:
    placed = shopify_order()
    server.post("/v1/webhooks/orders/test-goods", placed, headers_for(placed))
    refund = shopify_refund()
    cancel = shopify_order(cancelled_at="2026-03-02T06:00:00-05:00")

    refused = [
        server.post(
            "/v1/webhooks/orders/test-goods",
            raw,
            headers_for(
                raw, **{"X-Shopify-Topic": topic, "X-Shopify-Hmac-Sha256": "x"}
            ),
        )[0]
        for raw, topic in ((refund, "refunds/create"), (cancel, "orders/cancelled"))
    ]

    assert refused == [401, 401]
    assert [str(row["total_price"]) for row in stored_orders()] == ["199.65"]


def test_a_refund_delivered_twice_at_once_is_taken_off_once(server, brand) -> None:
    placed = shopify_order()
    server.post("/v1/webhooks/orders/test-goods", placed, headers_for(placed))
    raw = shopify_refund()
    topic = {"X-Shopify-Topic": "refunds/create"}
    current = runtime_module.current()
    answers: list = []

    def second_delivery() -> None:
        answers.append(
            server.post(
                "/v1/webhooks/orders/test-goods", raw, headers_for(raw, **topic)
            )
        )

    # The first delivery has taken the refund off and not yet committed when the
    # second arrives: the second must wait for it, then find the refund's id.
    with current.database.transaction() as first:
        first.scalar(
            order_refunds.TAKE_REFUND_OFF,
            brand_id=brand["id"],
            order_id="820982911946154508",
            refund_id="929361462",
            amount=Decimal("50.00"),
            refunded_at=None,
        )
        racer = threading.Thread(target=second_delivery)
        racer.start()
        while racer.is_alive() and not _waiting_for_a_lock(current):
            racer.join(0.01)
    racer.join()

    status, answer = answers[0]
    assert status == 200, answer
    assert answer["duplicate"] is True
    assert [str(row["total_price"]) for row in stored_orders()] == ["149.65"]


def _waiting_for_a_lock(current) -> bool:
    # A row lock is waited for on the holder's transaction id, which pg_locks
    # lists without a database; pg_stat_activity names the waiter's database.
    with current.database.transaction() as tx:
        return tx.scalar(WAITING_ON_A_LOCK) > 0


# orders/cancelled goes the way of every cancellation (decision 0100): the order's
# id and name are kept, and it waits for the creations in flight (decision 0104).


def test_a_create_redelivered_after_orders_cancelled_is_not_stored(
    server, brand
) -> None:
    placed = shopify_order()
    created = headers_for(placed)
    server.post("/v1/webhooks/orders/test-goods", placed, created)
    raw = shopify_order(cancelled_at="2026-03-02T06:00:00-05:00")
    cancelled = headers_for(raw, **{"X-Shopify-Topic": "orders/cancelled"})
    server.post("/v1/webhooks/orders/test-goods", raw, cancelled)

    status, answer = server.post("/v1/webhooks/orders/test-goods", placed, created)

    assert status == 200, answer
    assert answer["cancelled"] is True
    assert stored_orders() == []


def test_orders_cancelled_before_its_create_keeps_the_order_out(server, brand) -> None:
    # The topic says it: the body need not carry cancelled_at.
    raw = shopify_order()
    cancelled = headers_for(raw, **{"X-Shopify-Topic": "orders/cancelled"})
    first, answer = server.post("/v1/webhooks/orders/test-goods", raw, cancelled)

    status, late = server.post("/v1/webhooks/orders/test-goods", raw, headers_for(raw))

    assert (first, answer["removed"]) == (200, False), answer
    assert status == 200, late
    assert late["cancelled"] is True
    assert stored_orders() == []


def test_orders_cancelled_waits_for_the_uncommitted_creation_and_removes_it(
    server, brand
) -> None:
    body = json.loads(shopify_order())
    raw = shopify_order()
    cancelled = headers_for(raw, **{"X-Shopify-Topic": "orders/cancelled"})
    current = runtime_module.current()
    answers: list = []

    def cancel() -> None:
        answers.append(server.post("/v1/webhooks/orders/test-goods", raw, cancelled))

    # The creation has inserted and not yet committed when the cancellation
    # arrives: it must wait for the creation's turn, then find and remove it.
    with current.database.transaction() as tx:
        orders.receive_order(
            tx, brand_id=brand["id"], body=body, now=START, window_days=7
        )
        canceller = threading.Thread(target=cancel)
        canceller.start()
        while canceller.is_alive() and not _waiting_for_a_lock(current):
            canceller.join(0.01)
    canceller.join()

    status, answer = answers[0]
    assert status == 200, answer
    assert answer["removed"] is True
    assert stored_orders() == []


def test_another_order_id_under_a_stored_name_is_a_409_naming_name(app, brand) -> None:
    client = app.test_client()
    first = json.loads(shopify_order(id=5001, name="#7"))
    other = json.loads(shopify_order(id=5002, name="#7", total_price="12.00"))

    stored = post_json(client, "/v1/orders", first, brand["key"])
    reused = post_json(client, "/v1/orders", other, brand["key"])

    assert stored.status_code in (200, 201), stored.get_json()
    assert reused.status_code == 409, reused.get_json()
    assert reused.get_json()["error"]["field"] == "name"
    assert [row["external_id"] for row in stored_orders()] == ["5001"]


def test_a_refund_delivered_before_its_order_is_taken_off_once_the_order_comes(
    server, brand
) -> None:
    raw = shopify_refund()
    topic = {"X-Shopify-Topic": "refunds/create"}
    status, early = server.post(
        "/v1/webhooks/orders/test-goods", raw, headers_for(raw, **topic)
    )
    again = server.post(
        "/v1/webhooks/orders/test-goods", raw, headers_for(raw, **topic)
    )[1]

    placed = shopify_order()
    server.post("/v1/webhooks/orders/test-goods", placed, headers_for(placed))
    after = server.post(
        "/v1/webhooks/orders/test-goods", raw, headers_for(raw, **topic)
    )[1]

    assert status == 200, early
    assert (early["refund"]["applied"], early["refund"]["pending"]) == (False, True)
    assert (early["duplicate"], again["duplicate"]) == (False, True)
    assert (after["refund"]["applied"], after["duplicate"]) == (True, True)
    assert [str(row["total_price"]) for row in stored_orders()] == ["149.65"]
    assert pending_refunds() == []


def pending_refunds() -> list[str]:
    with runtime_module.current().database.transaction() as tx:
        return tx.rows("SELECT refund_id FROM pending_refunds ORDER BY refund_id")


def test_a_refund_waiting_for_its_order_is_taken_off_an_order_sent_by_api(
    server, app, brand
) -> None:
    raw = shopify_refund()
    server.post(
        "/v1/webhooks/orders/test-goods",
        raw,
        headers_for(raw, **{"X-Shopify-Topic": "refunds/create"}),
    )

    response = post_json(
        app.test_client(), "/v1/orders", json.loads(shopify_order()), brand["key"]
    )

    assert response.status_code in (200, 201), response.get_json()
    assert str(response.get_json()["order"]["total_price"]) == "149.65"
    assert [str(row["total_price"]) for row in stored_orders()] == ["149.65"]


def test_a_refund_of_an_order_cancelled_before_is_not_kept_waiting(
    server, brand
) -> None:
    cancelled = shopify_order()
    server.post(
        "/v1/webhooks/orders/test-goods",
        cancelled,
        headers_for(cancelled, **{"X-Shopify-Topic": "orders/cancelled"}),
    )
    raw = shopify_refund()

    status, answer = server.post(
        "/v1/webhooks/orders/test-goods",
        raw,
        headers_for(raw, **{"X-Shopify-Topic": "refunds/create"}),
    )

    assert status == 200, answer
    assert (answer["refund"]["applied"], answer["refund"]["pending"]) == (False, False)
    assert pending_refunds() == []


CSV_HEADER = "Id,Name,Created at,Currency,Total,Refunded Amount"


def import_csv(app, brand: dict, *rows: str):
    return app.test_client().post(
        "/v1/orders/import",
        data="\n".join([CSV_HEADER, *rows]),
        headers=auth(brand["key"]),
        content_type="text/csv",
    )


def test_a_refund_waiting_for_its_order_is_not_taken_again_off_a_file_net_of_it(
    server, app, brand
) -> None:
    # The refund came before the backfill, so the file's Refunded Amount has it.
    raw = shopify_refund(created_at="2026-03-01T12:00:00Z")
    server.post(
        "/v1/webhooks/orders/test-goods",
        raw,
        headers_for(raw, **{"X-Shopify-Topic": "refunds/create"}),
    )

    imported = import_csv(
        app, brand, "820982911946154508,#1001,2026-03-01T10:00:00Z,USD,199.65,50.00"
    )

    assert imported.get_json()["stored"] == 1, imported.get_json()
    assert [str(row["total_price"]) for row in stored_orders()] == ["149.65"]
    assert pending_refunds() == []


def test_a_refund_a_file_already_took_off_is_not_taken_off_again(
    server, app, brand
) -> None:
    import_csv(
        app, brand, "820982911946154508,#1001,2026-03-01T10:00:00Z,USD,199.65,50.00"
    )
    topic = {"X-Shopify-Topic": "refunds/create"}
    # Made before the file was imported: the file's 50.00 is this refund.
    counted = shopify_refund(1, created_at="2026-03-01T12:00:00Z")
    # Made after it: no file could have counted it.
    later = shopify_refund(
        2,
        created_at="2026-03-02T09:00:00Z",
        transactions=[{"kind": "refund", "status": "success", "amount": "20.00"}],
    )

    first = server.post(
        "/v1/webhooks/orders/test-goods", counted, headers_for(counted, **topic)
    )
    second = server.post(
        "/v1/webhooks/orders/test-goods", later, headers_for(later, **topic)
    )

    assert (first[0], second[0]) == (200, 200), (first, second)
    assert [str(row["total_price"]) for row in stored_orders()] == ["129.65"]


def test_a_refund_past_what_the_file_took_off_takes_off_the_rest(
    server, app, brand
) -> None:
    import_csv(
        app, brand, "820982911946154508,#1001,2026-03-01T10:00:00Z,USD,199.65,30.00"
    )
    raw = shopify_refund(created_at="2026-03-01T12:00:00Z")

    server.post(
        "/v1/webhooks/orders/test-goods",
        raw,
        headers_for(raw, **{"X-Shopify-Topic": "refunds/create"}),
    )

    # 199.65 - 30.00 in the file, then the 20.00 of the 50.00 it did not count.
    assert [str(row["total_price"]) for row in stored_orders()] == ["149.65"]


def test_a_pending_refund_transaction_counts_as_money_given_back(server, brand) -> None:
    placed = shopify_order()
    server.post("/v1/webhooks/orders/test-goods", placed, headers_for(placed))
    raw = shopify_refund(
        transactions=[
            {"kind": "refund", "status": "pending", "amount": "30.00"},
            {"kind": "refund", "status": "failure", "amount": "30.00"},
            {"kind": "refund", "status": "error", "amount": "30.00"},
        ]
    )

    status, answer = server.post(
        "/v1/webhooks/orders/test-goods",
        raw,
        headers_for(raw, **{"X-Shopify-Topic": "refunds/create"}),
    )

    assert status == 200, answer
    assert answer["refund"]["amount"] == "30.00"
    assert [str(row["total_price"]) for row in stored_orders()] == ["169.65"]


def test_a_refund_in_another_presentment_currency_is_counted_in_shop_money(
    server, brand
) -> None:
    placed = shopify_order()
    server.post("/v1/webhooks/orders/test-goods", placed, headers_for(placed))
    raw = shopify_refund(
        transactions=[
            {
                "kind": "refund", "status": "success", "amount": "45.00",
                "currency": "EUR",
                "amount_set": {
                    "shop_money": {"amount": "50.00", "currency_code": "USD"},
                    "presentment_money": {"amount": "45.00", "currency_code": "EUR"},
                },
            },
            # Failed, and in another currency: it returned nothing to check.
            {"kind": "refund", "status": "failure", "amount": "9.00",
             "currency": "GBP"},
        ]
    )  # fmt: skip

    status, answer = server.post(
        "/v1/webhooks/orders/test-goods",
        raw,
        headers_for(raw, **{"X-Shopify-Topic": "refunds/create"}),
    )

    assert status == 200, answer
    assert answer["refund"]["amount"] == "50.00"
    assert [str(row["total_price"]) for row in stored_orders()] == ["149.65"]


def test_a_refund_whose_shop_money_is_another_currency_is_a_400(server, brand) -> None:
    placed = shopify_order()
    server.post("/v1/webhooks/orders/test-goods", placed, headers_for(placed))
    raw = shopify_refund(
        transactions=[
            {
                "kind": "refund", "status": "success", "amount": "50.00",
                "currency": "USD",
                "amount_set": {
                    "shop_money": {"amount": "40.00", "currency_code": "EUR"},
                },
            },
        ]
    )  # fmt: skip

    status, answer = server.post(
        "/v1/webhooks/orders/test-goods",
        raw,
        headers_for(raw, **{"X-Shopify-Topic": "refunds/create"}),
    )

    assert status == 400, answer
    assert answer["error"]["field"] == "transactions.amount_set.shop_money"
    assert [str(row["total_price"]) for row in stored_orders()] == ["199.65"]


def test_a_refund_for_an_order_cancelled_meanwhile_is_not_applied(
    server, brand
) -> None:
    placed = shopify_order()
    server.post("/v1/webhooks/orders/test-goods", placed, headers_for(placed))
    raw = shopify_refund()
    topic = {"X-Shopify-Topic": "refunds/create"}
    current = runtime_module.current()
    answers: list = []

    def refund() -> None:
        answers.append(
            server.post(
                "/v1/webhooks/orders/test-goods", raw, headers_for(raw, **topic)
            )
        )

    # The cancellation has removed the order and not yet committed when the refund
    # arrives: the refund finds the order gone, and nothing took its money off.
    with current.database.transaction() as tx:
        orders.receive_cancellation(
            tx, brand_id=brand["id"], body=json.loads(placed), now=START
        )
        refunder = threading.Thread(target=refund)
        refunder.start()
        while refunder.is_alive() and not _waiting_for_a_lock(current):
            refunder.join(0.01)
    refunder.join()

    status, answer = answers[0]
    assert status == 200, answer
    assert answer["refund"]["applied"] is False
    assert answer["duplicate"] is False
    assert stored_orders() == []


def test_a_refund_with_a_blank_order_id_is_a_400_naming_order_id(server, brand) -> None:
    raw = shopify_refund(order_id=" ")
    topic = {"X-Shopify-Topic": "refunds/create"}

    status, answer = server.post(
        "/v1/webhooks/orders/test-goods", raw, headers_for(raw, **topic)
    )

    assert status == 400, answer
    assert answer["error"]["field"] == "order_id"
    assert "must not be blank" in answer["error"]["message"]


def test_a_refund_racing_the_uncommitted_creation_of_its_order_is_taken_off(
    server, brand
) -> None:
    body = json.loads(shopify_order())
    raw = shopify_refund()
    topic = {"X-Shopify-Topic": "refunds/create"}
    current = runtime_module.current()
    answers: list = []

    def refund() -> None:
        answers.append(
            server.post(
                "/v1/webhooks/orders/test-goods", raw, headers_for(raw, **topic)
            )
        )

    # The creation has inserted and not yet committed when the refund arrives: it
    # must not be kept waiting for an order that is already there.
    with current.database.transaction() as tx:
        orders.receive_order(
            tx, brand_id=brand["id"], body=body, now=START, window_days=7
        )
        refunder = threading.Thread(target=refund)
        refunder.start()
        while refunder.is_alive() and not _waiting_for_a_lock(current):
            refunder.join(0.01)
    refunder.join()

    status, answer = answers[0]
    assert status == 200, answer
    assert (answer["refund"]["applied"], answer["refund"]["pending"]) == (True, False)
    assert [str(row["total_price"]) for row in stored_orders()] == ["149.65"]
    assert pending_refunds() == []


def test_a_refund_racing_a_file_storing_its_order_net_of_it_is_taken_off_once(
    server, brand
) -> None:
    # Made before the file was imported: the file's 50.00 is this refund.
    raw = shopify_refund(created_at="2026-03-01T12:00:00Z")
    topic = {"X-Shopify-Topic": "refunds/create"}
    current = runtime_module.current()
    answers: list = []

    def refund() -> None:
        answers.append(
            server.post(
                "/v1/webhooks/orders/test-goods", raw, headers_for(raw, **topic)
            )
        )

    # The file has stored the order and not yet committed when the refund comes.
    with current.database.transaction() as tx:
        order_imports.import_orders(
            tx,
            brand_id=brand["id"],
            text="\n".join([CSV_HEADER, ROW_1001.format(refunded="50.00")]),
            now=START,
            window_days=7,
        )
        refunder = threading.Thread(target=refund)
        refunder.start()
        while refunder.is_alive() and not _waiting_for_a_lock(current):
            refunder.join(0.01)
    refunder.join()

    status, answer = answers[0]
    assert status == 200, answer
    assert (answer["refund"]["applied"], answer["refund"]["pending"]) == (True, False)
    assert [str(row["total_price"]) for row in stored_orders()] == ["149.65"]
    assert pending_refunds() == []


ROW_1001 = "820982911946154508,#1001,2026-03-01T10:00:00Z,USD,199.65,{refunded}"


def test_a_refund_waits_for_the_id_of_an_order_a_file_stored_by_name(
    server, app, brand
) -> None:
    by_name = app.test_client().post(
        "/v1/orders/import",
        data="Name,Created at,Currency,Total\n#1001,2026-03-01T10:00:00Z,USD,199.65",
        headers=auth(brand["key"]),
        content_type="text/csv",
    )
    raw = shopify_refund()
    server.post(
        "/v1/webhooks/orders/test-goods",
        raw,
        headers_for(raw, **{"X-Shopify-Topic": "refunds/create"}),
    )

    placed = shopify_order()
    status, answer = server.post(
        "/v1/webhooks/orders/test-goods", placed, headers_for(placed)
    )

    assert by_name.get_json()["stored"] == 1, by_name.get_json()
    assert status == 200, answer
    assert answer["duplicate"] is True
    assert [str(row["total_price"]) for row in stored_orders()] == ["149.65"]


def test_a_refund_taken_off_a_backfilled_order_is_in_the_daily_report(
    server, app, brand
) -> None:
    raw = shopify_refund(created_at="2026-03-01T12:00:00Z")
    server.post(
        "/v1/webhooks/orders/test-goods",
        raw,
        headers_for(raw, **{"X-Shopify-Topic": "refunds/create"}),
    )

    import_csv(app, brand, "820982911946154508,#1001,2026-03-01T15:00:00Z,USD,199.65,")
    report = (
        app.test_client()
        .get(
            "/v1/reports/daily?from=2026-03-01&to=2026-03-01",
            headers=auth(brand["key"]),
        )
        .get_json()
    )

    (day,) = report["days"]
    assert (day["unattributed_orders"], day["unattributed_revenue"]) == (1, "149.65")


def test_a_cancellation_drops_the_refunds_waiting_for_its_order(server, brand) -> None:
    raw = shopify_refund()
    server.post(
        "/v1/webhooks/orders/test-goods",
        raw,
        headers_for(raw, **{"X-Shopify-Topic": "refunds/create"}),
    )
    cancelled = shopify_order()

    server.post(
        "/v1/webhooks/orders/test-goods",
        cancelled,
        headers_for(cancelled, **{"X-Shopify-Topic": "orders/cancelled"}),
    )

    assert pending_refunds() == []


def test_a_refund_waiting_for_a_name_keyed_order_is_taken_off_when_a_file_gives_its_id(
    server, app, brand
) -> None:
    app.test_client().post(
        "/v1/orders/import",
        data="Name,Created at,Currency,Total\n#1001,2026-03-01T10:00:00Z,USD,199.65",
        headers=auth(brand["key"]),
        content_type="text/csv",
    )
    raw = shopify_refund()
    server.post(
        "/v1/webhooks/orders/test-goods",
        raw,
        headers_for(raw, **{"X-Shopify-Topic": "refunds/create"}),
    )

    by_id = import_csv(
        app, brand, "820982911946154508,#1001,2026-03-01T10:00:00Z,USD,199.65,"
    )

    assert by_id.get_json()["duplicates"] == 1, by_id.get_json()
    assert [row["external_id"] for row in stored_orders()] == ["820982911946154508"]
    assert [str(row["total_price"]) for row in stored_orders()] == ["149.65"]
    assert pending_refunds() == []
