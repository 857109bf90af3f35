"""The api function, through functions-framework's real app and a real database."""

from __future__ import annotations

import pytest

from tests.conftest import OPERATOR_KEY, make_app
from tests.helpers import auth, brand_body, catalog, post_json


@pytest.fixture
def client(function_env):
    return make_app("api", "http").test_client()


@pytest.fixture
def brand_key(client) -> str:
    response = post_json(client, "/v1/brands", brand_body(), OPERATOR_KEY)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["api_key"]


@pytest.fixture
def other_brand_key(client) -> str:
    body = brand_body(
        name="Other", slug="other-brand", x_user_id=None, x_access_token=None
    )
    return post_json(client, "/v1/brands", body, OPERATOR_KEY).get_json()["api_key"]


def test_the_operator_creates_a_brand_and_its_key_is_shown_once(client) -> None:
    response = post_json(client, "/v1/brands", brand_body(), OPERATOR_KEY)

    created = response.get_json()
    assert response.status_code == 201
    assert created["api_key"].startswith("cc_")
    assert created["brand"]["time_zone"] == "America/New_York"
    assert "x_access_token" not in created["brand"]
    me = client.get("/v1/brand", headers=auth(created["api_key"]))
    assert me.get_json()["brand"]["slug"] == "test-goods"
    assert "api_key" not in me.get_json()


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer nope"}, 401),
        ({"Authorization": "Basic x"}, 401),
    ],
)
def test_a_missing_or_wrong_key_is_401(client, headers, status) -> None:
    response = client.get("/v1/brand", headers=headers)

    assert response.status_code == status
    assert response.get_json()["error"]["code"] == "unauthorized"


def test_a_brand_key_cannot_create_brands(client, brand_key) -> None:
    response = post_json(client, "/v1/brands", brand_body(slug="second"), brand_key)

    assert response.status_code == 403


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"name": 42}, "name"),
        ({"store_base_url": "ftp://x"}, "store_base_url"),
        ({"posting_slots": [{"weekday": 9, "time": "09:00"}]}, "posting_slots[0]"),
        ({"approvals_required": "yes"}, "approvals_required"),
    ],
)
def test_bad_brand_fields_are_named_in_a_400(client, change, field) -> None:
    response = post_json(client, "/v1/brands", brand_body(**change), OPERATOR_KEY)

    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == field


def test_malformed_json_is_a_400_naming_the_problem(client, brand_key) -> None:
    response = client.post(
        "/v1/products",
        data="{not json",
        headers=auth(brand_key),
        content_type="application/json",
    )

    assert response.status_code == 400
    assert "not valid JSON" in response.get_json()["error"]["message"]


def test_a_body_that_is_not_json_typed_is_a_400(client, brand_key) -> None:
    response = client.post(
        "/v1/products", data="[]", headers=auth(brand_key), content_type="text/plain"
    )

    assert response.status_code == 400
    assert "Content-Type" in response.get_json()["error"]["message"]


def test_the_catalog_imports_and_reimports_by_sku(client, brand_key) -> None:
    first = post_json(client, "/v1/products", {"products": catalog(5)}, brand_key)
    again = post_json(client, "/v1/products", catalog(6), brand_key)

    assert first.get_json() == {"inserted": 5, "updated": 0}
    assert again.get_json() == {"inserted": 1, "updated": 5}
    listed = client.get("/v1/products?limit=100", headers=auth(brand_key)).get_json()
    assert len(listed["products"]) == 6


def test_one_bad_product_rejects_the_whole_import(client, brand_key) -> None:
    rows = catalog(3)
    rows[1] = {**rows[1], "price": "free"}

    response = post_json(client, "/v1/products", rows, brand_key)

    assert response.status_code == 400
    assert "products[1]" in response.get_json()["error"]["message"]
    listed = client.get("/v1/products", headers=auth(brand_key)).get_json()
    assert listed["products"] == []


def test_another_brands_product_is_not_found(
    client, brand_key, other_brand_key
) -> None:
    post_json(client, "/v1/products", catalog(1), brand_key)
    product_id = client.get("/v1/products", headers=auth(brand_key)).get_json()[
        "products"
    ][0]["id"]

    mine = client.get(f"/v1/products/{product_id}", headers=auth(brand_key))
    theirs = client.get(f"/v1/products/{product_id}", headers=auth(other_brand_key))
    nonsense = client.get("/v1/products/not-a-uuid", headers=auth(other_brand_key))

    assert mine.status_code == 200
    assert theirs.status_code == 404
    assert nonsense.status_code == 404
    assert (
        theirs.get_json()["error"]["code"]
        == nonsense.get_json()["error"]["code"]
        == "not_found"
    )


def test_unknown_routes_and_methods_answer_404_and_405(client, brand_key) -> None:
    assert client.get("/v2/nothing", headers=auth(brand_key)).status_code == 404
    assert client.delete("/v1/products", headers=auth(brand_key)).status_code == 405


def test_captions_are_stored_and_scheduled_into_slots(client, brand_key) -> None:
    post_json(client, "/v1/products", catalog(3), brand_key)
    skus = [p["sku"] for p in catalog(3)]

    drafted = post_json(client, "/v1/captions", {"products": skus}, brand_key)
    scheduled = post_json(client, "/v1/schedule", {}, brand_key)

    assert drafted.status_code == 201
    posts = drafted.get_json()["posts"]
    assert [p["state"] for p in posts] == ["approved"] * 3
    assert all(p["link"] in p["text"] for p in posts)
    times = [p["scheduled_at"] for p in scheduled.get_json()["posts"]]
    assert len(set(times)) == 3
    assert times == sorted(times)


def test_a_caption_request_for_an_unknown_sku_writes_nothing(client, brand_key) -> None:
    post_json(client, "/v1/products", catalog(1), brand_key)

    response = post_json(
        client,
        "/v1/captions",
        {"products": [catalog(1)[0]["sku"], "NOPE-1"]},
        brand_key,
    )

    assert response.status_code == 404
    assert "NOPE-1" in response.get_json()["error"]["message"]
    assert client.get("/v1/posts", headers=auth(brand_key)).get_json()["posts"] == []


def test_an_order_is_stored_once_per_store_order_id(client, brand_key) -> None:
    order = {
        "id": 1001,
        "created_at": "2026-03-02T10:00:00Z",
        "currency": "usd",
        "total_price": "19.98",
        "landing_site": "/",
        "line_items": [],
    }

    first = post_json(client, "/v1/orders", order, brand_key)
    again = post_json(client, "/v1/orders", order, brand_key)

    assert first.status_code == 201
    assert again.status_code == 200
    assert again.get_json()["duplicate"] is True
    assert first.get_json()["order"]["id"] == again.get_json()["order"]["id"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": None}, "id"),
        ({"total_price": "-3"}, "total_price"),
        ({"created_at": "yesterday"}, "created_at"),
        ({"currency": "dollars"}, "currency"),
    ],
)
def test_bad_orders_are_named_in_a_400(client, brand_key, change, field) -> None:
    order = {
        "id": 1002,
        "created_at": "2026-03-02T10:00:00Z",
        "currency": "USD",
        "total_price": "10.00",
        **change,
    }

    response = post_json(client, "/v1/orders", order, brand_key)

    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == field


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/products", [{"sku": "A", "title": "x\u0000y", "price": 1}], None),
        (
            "/v1/products",
            [{"sku": "A", "title": "T", "price": 1, "stock": 10**12}],
            "products",
        ),
        (
            "/v1/orders",
            {
                "id": 1,
                "created_at": "0001-01-01T00:00:00+05:00",
                "currency": "USD",
                "total_price": "1",
            },
            "created_at",
        ),
        (
            "/v1/orders",
            {
                "id": 1,
                "created_at": "2026-03-02T10:00:00Z",
                "currency": "USD",
                "total_price": "1e30",
            },
            "total_price",
        ),
    ],
)
def test_input_postgres_cannot_store_is_refused_before_it_gets_there(
    client, brand_key, path, body, field
) -> None:
    response = post_json(client, path, body, brand_key)

    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == field


def test_a_page_cursor_with_a_nul_is_a_400(client, brand_key) -> None:
    response = client.get("/v1/products?after=%00", headers=auth(brand_key))

    assert response.status_code == 400
