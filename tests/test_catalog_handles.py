"""A product's handle is its page in the store: no two products of a brand share one.

Two products holding one handle send every post about the second to the first's
page, at the first's price: DummyJSON's own demo catalog has two "Rolex Cellini
Moonphase" (men's at $12,999.99, women's at $15,999.99), and both linked to
/products/rolex-cellini-moonphase.
"""

from __future__ import annotations

import json

from tests.helpers import WAITING_ON_A_LOCK, auth, post_json
from tests.test_console import SHOPIFY_COLUMNS, csrf_of, text_of, upload
from tests.test_console import brand as brand  # noqa: F401 (fixture)
from tests.test_console import client as client  # noqa: F401 (fixture)
from tests.test_console import signed_in as signed_in  # noqa: F401 (fixture)


def product(sku: str, title: str, price: float = 9, **more) -> dict:
    return {"sku": sku, "title": title, "price": price, **more}


def handles(client, key: str) -> dict[str, str]:
    answer = client.get("/v1/products?limit=500", headers=auth(key)).get_json()
    return {row["sku"]: row["handle"] for row in answer["products"]}


def test_two_products_of_one_title_get_a_page_each(client, brand_key) -> None:
    watches = [
        product("MEN-ROL-096", "Rolex Cellini Moonphase", 12999.99),
        product("WOM-ROL-191", "Rolex Cellini Moonphase", 15999.99),
    ]

    answer = post_json(client, "/v1/products", watches, brand_key)

    assert answer.status_code == 200, answer.get_json()
    assert handles(client, brand_key) == {
        "MEN-ROL-096": "rolex-cellini-moonphase",
        "WOM-ROL-191": "rolex-cellini-moonphase-wom-rol-191",
    }


def test_a_derived_handle_stays_when_the_feed_comes_again_in_another_order(
    client, brand_key
) -> None:
    watches = [
        product("MEN-ROL-096", "Rolex Cellini Moonphase"),
        product("WOM-ROL-191", "Rolex Cellini Moonphase"),
    ]
    post_json(client, "/v1/products", watches, brand_key)
    first = handles(client, brand_key)

    again = post_json(client, "/v1/products", watches[::-1], brand_key)

    assert again.get_json() == {"inserted": 0, "updated": 2}
    assert handles(client, brand_key) == first


def test_a_product_imported_later_with_a_taken_title_gets_its_own_page(
    client, brand_key
) -> None:
    post_json(client, "/v1/products", [product("A-1", "Sage Candle")], brand_key)

    post_json(client, "/v1/products", [product("B-2", "Sage Candle")], brand_key)

    assert handles(client, brand_key) == {
        "A-1": "sage-candle",
        "B-2": "sage-candle-b-2",
    }


def test_a_drafted_link_leads_to_the_products_own_page(client, brand_key) -> None:
    watches = [
        product("MEN-ROL-096", "Rolex Cellini Moonphase", 12999.99),
        product("WOM-ROL-191", "Rolex Cellini Moonphase", 15999.99),
    ]
    post_json(client, "/v1/products", watches, brand_key)

    drafted = post_json(
        client, "/v1/captions", {"products": ["WOM-ROL-191"]}, brand_key
    )

    link = drafted.get_json()["posts"][0]["link"]
    assert "/products/rolex-cellini-moonphase-wom-rol-191?" in link


def test_a_handle_given_twice_in_a_feed_is_a_400_naming_the_second(
    client, brand_key
) -> None:
    feed = [
        product("C1", "Sage Candle", 9.99, handle="sage"),
        product("C2", "Sage Candle Big", 19.99, handle="sage"),
    ]

    answer = post_json(client, "/v1/products", feed, brand_key)

    error = answer.get_json()["error"]
    assert answer.status_code == 400, error
    assert error["field"] == "products[1].handle"
    assert "'sage'" in error["message"] and "'C1'" in error["message"]
    assert handles(client, brand_key) == {}


def test_a_handle_another_product_holds_in_other_letter_case_is_a_400(
    client, brand_key
) -> None:
    # Shopify stores a handle in lower case: "Sage" is the page of "sage".
    post_json(client, "/v1/products", [product("C1", "Sage", handle="sage")], brand_key)

    answer = post_json(
        client, "/v1/products", [product("C2", "Sage Big", handle="Sage")], brand_key
    )
    made_up = post_json(client, "/v1/products", [product("C3", "SAGE")], brand_key)

    error = answer.get_json()["error"]
    assert answer.status_code == 400, error
    assert error["field"] == "products[0].handle"
    assert "'C1'" in error["message"]
    assert made_up.status_code == 200, made_up.get_json()
    assert handles(client, brand_key) == {"C1": "sage", "C3": "sage-c3"}


def test_a_handle_another_product_holds_is_a_400_with_nothing_imported(
    client, brand_key
) -> None:
    post_json(client, "/v1/products", [product("C1", "Sage", handle="sage")], brand_key)

    answer = post_json(
        client,
        "/v1/products",
        [product("C0", "Cedar"), product("C2", "Sage Big", handle="sage")],
        brand_key,
    )

    error = answer.get_json()["error"]
    assert answer.status_code == 400, error
    assert error["field"] == "products[1].handle"
    assert "'C1'" in error["message"]
    assert handles(client, brand_key) == {"C1": "sage"}


def test_a_handle_given_up_in_the_same_feed_may_be_taken(client, brand_key) -> None:
    post_json(client, "/v1/products", [product("C1", "Sage", handle="sage")], brand_key)

    answer = post_json(
        client,
        "/v1/products",
        [
            product("C2", "Sage Big", handle="sage"),
            product("C1", "Sage", handle="sage-small"),
        ],
        brand_key,
    )

    assert answer.status_code == 200, answer.get_json()
    assert handles(client, brand_key) == {"C1": "sage-small", "C2": "sage"}


def test_a_console_csv_product_whose_handle_another_holds_is_reported(
    client,  # noqa: F811
    signed_in,  # noqa: F811
) -> None:
    key = signed_in["key"]
    post_json(client, "/v1/products", [product("SKU-1", "Mug", handle="mug-1")], key)
    token = csrf_of(client, "/console/catalog")
    csv = "\r\n".join(
        [
            SHOPIFY_COLUMNS,
            "mug-1,Mug One,,,,,,,,12.00,,5,,,",
            "mug-2,Mug Two,,,,,,,,12.00,,5,,,",
        ]
    )

    answer = upload(client, token, (csv + "\r\n").encode(), "export.csv")

    page = text_of(answer)
    assert answer.status_code == 200, page
    assert "Imported 1 of 2 product(s)" in page
    assert "'SKU-1'" in page
    stored = handles(client, key)
    assert stored["SKU-1"] == "mug-1" and "mug-1" not in stored


def test_a_console_json_feed_with_one_title_twice_gets_a_page_each(
    client,  # noqa: F811
    signed_in,  # noqa: F811
) -> None:
    token = csrf_of(client, "/console/catalog")
    feed = [product("A-1", "Sage Candle"), product("B-2", "Sage Candle")]

    answer = upload(client, token, json.dumps(feed).encode(), "feed.json")

    assert "Imported 2 of 2 product(s)" in text_of(answer)
    stored = handles(client, signed_in["key"])
    assert stored["A-1"] == "sage-candle"
    assert stored["B-2"] == "sage-candle-b-2"


def test_two_imports_at_once_cannot_give_one_handle_to_two_products(
    client, brand_key
) -> None:
    import threading

    from cartcast import catalog
    from cartcast import runtime as runtime_module
    from cartcast.errors import InvalidRequest

    post_json(client, "/v1/products", [product("C0", "Cedar")], brand_key)
    current = runtime_module.current()
    with current.database.transaction() as tx:
        brand_id = tx.scalar("SELECT brand_id FROM products WHERE sku = 'C0'")
    outcome: list[str] = []

    def second_import() -> None:
        with current.database.transaction() as tx:
            try:
                catalog.import_products(
                    tx,
                    brand_id=brand_id,
                    feed=[product("C2", "Sage Big", handle="sage")],
                    now=current.clock.now(),
                )
            except InvalidRequest as error:
                outcome.append(error.field)
            else:
                outcome.append("imported")

    # The first import has claimed "sage" and not committed when a second one
    # gives it to another SKU: the second must wait and then see it taken.
    with current.database.transaction() as first:
        catalog.import_products(
            first,
            brand_id=brand_id,
            feed=[product("C1", "Sage", handle="sage")],
            now=current.clock.now(),
        )
        racer = threading.Thread(target=second_import)
        racer.start()
        while racer.is_alive() and not waiting_for_a_lock(current):
            racer.join(0.01)
    racer.join()

    assert outcome == ["products[0].handle"]
    assert handles(client, brand_key) == {"C0": "cedar", "C1": "sage"}


def waiting_for_a_lock(current) -> bool:
    with current.database.transaction() as tx:
        return tx.scalar(WAITING_ON_A_LOCK) > 0


def test_a_console_product_refused_keeps_its_handle_from_the_one_taking_it(
    client,  # noqa: F811
    signed_in,  # noqa: F811
) -> None:
    key = signed_in["key"]
    post_json(
        client,
        "/v1/products",
        [
            product("MOVE-1", "Sage", handle="sage"),
            product("MOVE-2", "Thyme", handle="thyme"),
            product("KEEP-1", "Basil", handle="basil"),
        ],
        key,
    )
    token = csrf_of(client, "/console/catalog")
    # MOVE-1 takes MOVE-2's page, which MOVE-2 gives up for one KEEP-1 holds: MOVE-2
    # is refused and keeps "thyme", so MOVE-1 may not have it.
    feed = [
        product("MOVE-1", "Sage", handle="thyme"),
        product("MOVE-2", "Thyme", handle="basil"),
    ]

    answer = upload(client, token, json.dumps(feed).encode(), "feed.json")

    assert answer.status_code == 200, text_of(answer)
    stored = handles(client, key)
    assert [stored[sku] for sku in ("MOVE-1", "MOVE-2", "KEEP-1")] == [
        "sage",
        "thyme",
        "basil",
    ]
    assert "Imported 0 of 2 product(s)" in text_of(answer)
