"""A SKU names one product however it is written around: the blanks around it are
stripped, and an invisible format character (Unicode category Cf) is refused."""

from __future__ import annotations

import pytest

from tests.helpers import auth, post_json


def product(sku: str, title: str = "Mug") -> dict:
    return {"sku": sku, "title": title, "price": 9}


def stored_skus(client, key: str) -> list[str]:
    answer = client.get("/v1/products", headers=auth(key)).get_json()
    return [row["sku"] for row in answer["products"]]


def test_a_sku_sent_with_unicode_blanks_around_it_updates_the_same_product(
    client, brand_key
) -> None:
    post_json(client, "/v1/products", [product("P")], brand_key)

    again = post_json(
        client, "/v1/products", [product("\u3000P\u2003", "Blue mug")], brand_key
    )

    assert again.status_code in (200, 201), again.get_json()
    assert stored_skus(client, brand_key) == ["P"]


@pytest.mark.parametrize("mark", ["\u200b", "\u200d", "\u2060", "\u00ad", "\u202e"])
def test_a_sku_holding_an_invisible_format_character_is_a_400_naming_sku(
    client, brand_key, mark
) -> None:
    post_json(client, "/v1/products", [product("P")], brand_key)

    answer = post_json(client, "/v1/products", [product(f"P{mark}")], brand_key)

    assert answer.status_code == 400, answer.get_json()
    # Each bad row is named in the message, as the feed's other refusals are.
    assert answer.get_json()["error"]["field"] == "products"
    assert (
        "products[0]: 'sku' holds an invisible" in answer.get_json()["error"]["message"]
    )
    assert stored_skus(client, brand_key) == ["P"]


def test_a_caption_request_finds_a_product_by_its_sku_with_blanks_around(
    client, brand_key
) -> None:
    post_json(client, "/v1/products", [product("P")], brand_key)

    drafted = post_json(client, "/v1/captions", {"products": [" P\t"]}, brand_key)

    assert drafted.status_code in (200, 201), drafted.get_json()
    assert len(drafted.get_json()["posts"]) == 1


def test_a_caption_job_finds_a_product_by_its_sku_with_blanks_around(
    client, brand_key
) -> None:
    post_json(client, "/v1/products", [product("P")], brand_key)

    queued = post_json(client, "/v1/caption-jobs", {"products": [" P\t"]}, brand_key)

    assert queued.status_code == 202, queued.get_json()
