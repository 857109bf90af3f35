"""A name the console shows (a brand's, a product's title) holds no bidirectional
override, embedding or isolate control: "\u202e" would turn the rest of the name
around where it is shown, so a brand or a product would read as another."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from cartcast.validation import BIDI_CONTROLS
from tests.conftest import OPERATOR_KEY
from tests.helpers import auth, brand_body, post_json

SPEC = Path(__file__).resolve().parents[1] / "docs" / "openapi.yaml"


@pytest.mark.parametrize("control", sorted(BIDI_CONTROLS))
def test_a_brand_name_holding_a_bidi_control_is_a_400_naming_name(
    client, control
) -> None:
    body = brand_body(name=f"Test {control}sdooG")

    response = post_json(client, "/v1/brands", body, OPERATOR_KEY)

    error = response.get_json()["error"]
    assert response.status_code == 400, error
    assert error["field"] == "name"
    assert f"U+{ord(control):04X}" in error["message"]
    # Nothing was written: the slug is still free.
    retried = post_json(client, "/v1/brands", brand_body(), OPERATOR_KEY)
    assert retried.status_code == 201, retried.get_json()


@pytest.mark.parametrize("control", sorted(BIDI_CONTROLS))
def test_a_product_title_holding_a_bidi_control_is_a_400_naming_the_row(
    client, brand_key, control
) -> None:
    feed = [
        {"sku": "P1", "title": "Blue mug", "price": 9},
        {"sku": "P2", "title": f"Mug {control}gum", "price": 9},
    ]

    response = post_json(client, "/v1/products", feed, brand_key)

    error = response.get_json()["error"]
    assert response.status_code == 400, error
    assert error["field"] == "products"
    assert "products[1]: 'title' holds a bidirectional control" in error["message"]
    listed = client.get("/v1/products", headers=auth(brand_key)).get_json()
    assert listed["products"] == []


@pytest.mark.parametrize(
    "name",
    [
        "Café Ünïcode",
        "\u05d7\u05e0\u05d5\u05ea \u05e4\u05e8\u05d7\u05d9\u05dd",
        "a\u200db",
    ],
)
def test_names_in_any_script_and_with_joiners_are_taken(client, name) -> None:
    response = post_json(client, "/v1/brands", brand_body(name=name), OPERATOR_KEY)

    assert response.status_code == 201, response.get_json()
    assert response.get_json()["brand"]["name"] == name


def test_the_spec_refuses_the_same_controls_in_both_names() -> None:
    schemas = yaml.safe_load(SPEC.read_text())["components"]["schemas"]
    names = [
        schemas["BrandInput"]["properties"]["name"],
        schemas["ProductInput"]["properties"]["title"],
    ]

    for schema in names:
        refused = re.compile(schema["not"]["pattern"])
        every = {chr(code) for code in range(0x2000, 0x2100)}
        assert {char for char in every if refused.search(char)} == BIDI_CONTROLS
