"""A product the store stopped selling is retired: kept, but no longer promoted.

Imports only added and updated products, so an archived product stayed in the
catalog and `{"products": "all"}` caption jobs kept drafting posts about it.
Retiring keeps the row (posts, attribution and reports refer to it) and takes it
out of what cartcast promotes (decision 0110).
"""

from __future__ import annotations

import datetime as dt

from tests.conftest import START
from tests.helpers import auth, post_json
from tests.test_console import SHOPIFY_COLUMNS, add_key, csrf_of, text_of, upload
from tests.test_console import brand as brand  # noqa: F401 (fixture)
from tests.test_console import client as client  # noqa: F401 (fixture)
from tests.test_console import signed_in as signed_in  # noqa: F401 (fixture)
from tests.test_event_functions import tick

PRODUCTS_URL = "/v1/products"


def product(sku: str, title: str = "", **more) -> dict:
    return {"sku": sku, "title": title or f"Mug {sku}", "price": 12, **more}


def skus_listed(client, key: str, query: str = "") -> list[str]:
    answer = client.get(f"{PRODUCTS_URL}?limit=100{query}", headers=auth(key))
    assert answer.status_code == 200, answer.get_json()
    return [row["sku"] for row in answer.get_json()["products"]]


def id_of(client, key: str, sku: str) -> str:
    answer = client.get(f"{PRODUCTS_URL}?limit=100&retired=include", headers=auth(key))
    (found,) = [row for row in answer.get_json()["products"] if row["sku"] == sku]
    return found["id"]


def retire(client, key: str, sku: str):
    product_id = id_of(client, key, sku)
    return client.delete(f"{PRODUCTS_URL}/{product_id}", headers=auth(key))


def job_for(client, key: str, body: dict) -> dict:
    answer = post_json(client, "/v1/caption-jobs", body, key)
    assert answer.status_code == 202, answer.get_json()
    return answer.get_json()["job"]


def drain_all(clock_file) -> None:
    assert tick("drain_caption_jobs", clock_file.now()).status_code == 200


def post_of(client, key: str, post_id: str) -> dict:
    return client.get(f"/v1/posts/{post_id}", headers=auth(key)).get_json()["post"]


# --- DELETE /v1/products/{id} ---------------------------------------------------


def test_deleting_a_product_retires_it_and_keeps_it_readable(client, brand_key) -> None:
    post_json(client, PRODUCTS_URL, [product("A"), product("B")], brand_key)
    drafted = post_json(client, "/v1/captions", {"products": ["A"]}, brand_key)
    (draft,) = drafted.get_json()["posts"]

    answer = retire(client, brand_key, "A")

    assert answer.status_code == 200, answer.get_json()
    retired = answer.get_json()["product"]
    assert retired["sku"] == "A" and retired["retired_at"] is not None
    assert skus_listed(client, brand_key) == ["B"]
    assert skus_listed(client, brand_key, "&retired=include") == ["A", "B"]
    assert skus_listed(client, brand_key, "&retired=only") == ["A"]
    path = f"{PRODUCTS_URL}/{retired['id']}"
    found = client.get(path, headers=auth(brand_key)).get_json()
    assert found["product"]["retired_at"] == retired["retired_at"]
    assert post_of(client, brand_key, draft["id"])["product_id"] == retired["id"]


def test_retiring_twice_keeps_the_first_instant(client, brand_key) -> None:
    post_json(client, PRODUCTS_URL, [product("A")], brand_key)
    first = retire(client, brand_key, "A").get_json()["product"]["retired_at"]

    again = retire(client, brand_key, "A")

    assert again.status_code == 200
    assert again.get_json()["product"]["retired_at"] == first


def test_retiring_an_unknown_product_is_a_404_naming_it(client, brand_key) -> None:
    answer = client.delete(
        f"{PRODUCTS_URL}/0b6f7b52-3c8e-4f55-9a7e-4d1c9d1d2a10", headers=auth(brand_key)
    )

    assert answer.status_code == 404
    assert answer.get_json()["error"]["field"] == "product_id"


def test_a_viewer_key_may_not_retire_a_product(client, brand_key) -> None:
    post_json(client, PRODUCTS_URL, [product("A")], brand_key)
    brand_id = client.get("/v1/brand", headers=auth(brand_key)).get_json()["brand"]
    viewer = add_key(brand_id["id"], "viewer")

    product_id = id_of(client, brand_key, "A")

    answer = client.delete(f"{PRODUCTS_URL}/{product_id}", headers=auth(viewer))

    assert answer.status_code == 403
    assert skus_listed(client, brand_key) == ["A"]


def test_a_listing_filter_it_does_not_know_is_a_400_naming_it(
    client, brand_key
) -> None:
    answer = client.get(f"{PRODUCTS_URL}?retired=yes", headers=auth(brand_key))

    assert answer.status_code == 400
    assert answer.get_json()["error"]["field"] == "retired"


# --- status on import -----------------------------------------------------------


def test_a_feeds_status_retires_and_restores_and_its_absence_changes_nothing(
    client, brand_key
) -> None:
    post_json(client, PRODUCTS_URL, [product("A"), product("B")], brand_key)

    archived = post_json(
        client,
        PRODUCTS_URL,
        [product("A", status="archived"), product("B", status="draft")],
        brand_key,
    )
    assert archived.status_code == 200, archived.get_json()
    assert skus_listed(client, brand_key) == []

    post_json(client, PRODUCTS_URL, [product("A"), product("B")], brand_key)
    assert skus_listed(client, brand_key) == []

    post_json(client, PRODUCTS_URL, [product("A", status="Active")], brand_key)
    assert skus_listed(client, brand_key) == ["A"]


def test_an_unlisted_product_is_on_sale_and_restores_a_retired_one(
    client, brand_key
) -> None:
    """Shopify's `unlisted` status (Admin API 2025-10 on) is a product on sale
    whose page opens from a direct link, as a post's does: imported, not refused."""
    post_json(client, PRODUCTS_URL, [product("A"), product("B")], brand_key)
    retire(client, brand_key, "B")

    answer = post_json(
        client,
        PRODUCTS_URL,
        [product("A", status="unlisted"), product("B", status="Unlisted")],
        brand_key,
    )

    assert answer.status_code == 200, answer.get_json()
    assert skus_listed(client, brand_key) == ["A", "B"]


def test_a_new_product_given_as_archived_comes_in_retired(client, brand_key) -> None:
    post_json(client, PRODUCTS_URL, [product("A", status="archived")], brand_key)

    assert skus_listed(client, brand_key) == []
    assert skus_listed(client, brand_key, "&retired=only") == ["A"]


def test_a_status_it_does_not_know_refuses_the_feed_naming_it(
    client, brand_key
) -> None:
    answer = post_json(
        client, PRODUCTS_URL, [product("A", status="sold out")], brand_key
    )

    assert answer.status_code == 400
    message = answer.get_json()["error"]["message"]
    assert "'status'" in message and "active, unlisted, draft or archived" in message
    assert skus_listed(client, brand_key, "&retired=include") == []


def test_a_shopify_csvs_status_column_retires_and_restores(
    client,  # noqa: F811
    signed_in,  # noqa: F811
) -> None:
    key = signed_in["key"]
    header = SHOPIFY_COLUMNS + ",Status"
    token = csrf_of(client, "/console/catalog")

    def import_csv(*lines: str) -> str:
        body = "\r\n".join([header, *lines]) + "\r\n"
        answer = upload(client, token, body.encode(), "products_export.csv")
        assert answer.status_code == 200, text_of(answer)
        return text_of(answer)

    import_csv(
        "mug-a,Mug A,,,,,,,,12.00,,5,,,,active",
        "mug-b,Mug B,,,,,,,,12.00,,5,,,,archived",
        "mug-c,Mug C,,,,,,,,12.00,,5,,,,",
    )
    listed = skus_listed(client, key)
    assert "mug-a" in listed and "mug-c" in listed and "mug-b" not in listed

    import_csv("mug-b,Mug B,,,,,,,,12.00,,5,,,,active")
    assert "mug-b" in skus_listed(client, key)

    refused = import_csv("mug-d,Mug D,,,,,,,,12.00,,5,,,,gone")
    assert "Imported 0 of 1" in refused and "Status" in refused


def test_the_console_catalog_marks_retired_products(
    client,  # noqa: F811
    signed_in,  # noqa: F811
) -> None:
    key = signed_in["key"]
    post_json(client, PRODUCTS_URL, [product("OLD-1", "Old Mug")], key)
    retire(client, key, "OLD-1")

    page = text_of(client.get("/console/catalog"))

    assert "Old Mug" in page and "retired" in page


# --- caption jobs ---------------------------------------------------------------


def test_a_job_for_all_passes_over_retired_and_tracked_sold_out_products(
    client, brand_key
) -> None:
    post_json(
        client,
        PRODUCTS_URL,
        [
            product("ON-SALE", stock=3),
            product("SOLD-OUT", stock=0),
            product("UNTRACKED"),
            product("GONE", stock=3, status="archived"),
        ],
        brand_key,
    )

    job = job_for(client, brand_key, {"products": "all"})

    assert job["progress"]["products_total"] == 2
    drafted = post_json(
        client, "/v1/captions", {"products": ["ON-SALE", "UNTRACKED"]}, brand_key
    )
    assert drafted.status_code == 201


def test_a_job_for_all_of_a_catalog_all_retired_says_so(client, brand_key) -> None:
    post_json(client, PRODUCTS_URL, [product("A", status="archived")], brand_key)

    answer = post_json(client, "/v1/caption-jobs", {"products": "all"}, brand_key)

    assert answer.status_code == 409
    assert "retired" in answer.get_json()["error"]["message"]


def test_naming_a_retired_product_for_captions_is_a_409_naming_it(
    client, brand_key
) -> None:
    post_json(client, PRODUCTS_URL, [product("A"), product("B")], brand_key)
    retire(client, brand_key, "B")

    for path in ("/v1/captions", "/v1/caption-jobs"):
        answer = post_json(client, path, {"products": ["A", "B"]}, brand_key)

        assert answer.status_code == 409, (path, answer.get_json())
        error = answer.get_json()["error"]
        assert error["field"] == "products[1]"
        assert "'B' is retired" in error["message"]


def test_an_open_job_skips_a_product_retired_meanwhile_and_finishes(
    client, brand_key, clock_file
) -> None:
    post_json(client, PRODUCTS_URL, [product("A"), product("B")], brand_key)
    job = job_for(client, brand_key, {"products": "all"})
    retire(client, brand_key, "B")

    drain_all(clock_file)

    found = client.get(f"/v1/caption-jobs/{job['id']}", headers=auth(brand_key))
    finished = found.get_json()["job"]
    assert finished["state"] == "done"
    progress = finished["progress"]
    assert progress["products_total"] == 2
    assert (progress["done"], progress["skipped"], progress["remaining"]) == (1, 1, 0)
    (skip,) = finished["skipped"]
    assert skip["sku"] == "B" and "retired" in skip["reason"]
    posts = client.get("/v1/posts?limit=10", headers=auth(brand_key)).get_json()
    assert {post["product_id"] for post in posts["posts"]} == {
        id_of(client, brand_key, "A")
    }


# --- scheduled posts --------------------------------------------------------------


def scheduled_post(client, key: str, sku: str) -> str:
    drafted = post_json(client, "/v1/captions", {"products": [sku]}, key)
    (draft,) = drafted.get_json()["posts"]
    answer = post_json(client, "/v1/schedule", {}, key)
    assert answer.status_code == 200, answer.get_json()
    assert post_of(client, key, draft["id"])["state"] == "scheduled"
    return draft["id"]


def test_retiring_holds_its_scheduled_posts_and_restoring_queues_them_again(
    client, brand_key
) -> None:
    post_json(client, PRODUCTS_URL, [product("A"), product("B")], brand_key)
    held_id = scheduled_post(client, brand_key, "A")
    other_id = scheduled_post(client, brand_key, "B")

    retire(client, brand_key, "A")

    held = post_of(client, brand_key, held_id)
    assert held["state"] == "held"
    assert held["failure_reason"].startswith("retired: ")
    assert post_of(client, brand_key, other_id)["state"] == "scheduled"

    post_json(client, PRODUCTS_URL, [product("A", status="active")], brand_key)

    again = post_of(client, brand_key, held_id)
    assert again["state"] == "scheduled" and again["failure_reason"] is None


def test_a_feed_archiving_a_product_holds_its_scheduled_posts(
    client, brand_key
) -> None:
    post_json(client, PRODUCTS_URL, [product("A")], brand_key)
    post_id = scheduled_post(client, brand_key, "A")

    post_json(client, PRODUCTS_URL, [product("A", status="archived")], brand_key)

    assert post_of(client, brand_key, post_id)["state"] == "held"


def test_a_scheduled_post_whose_product_is_retired_unseen_is_held_when_due(
    client, brand_key, clock_file
) -> None:
    from cartcast import runtime as runtime_module

    post_json(client, PRODUCTS_URL, [product("A")], brand_key)
    post_id = scheduled_post(client, brand_key, "A")
    # As a retirement committing while the publisher claims the post would leave
    # it: the product retired, the post still scheduled.
    with runtime_module.current().database.transaction() as tx:
        tx.execute("UPDATE products SET retired_at = now() WHERE sku = 'A'")
    week_later = START + dt.timedelta(days=7)
    clock_file.set(week_later)

    assert tick("publish_due_posts", week_later).status_code == 200

    post = post_of(client, brand_key, post_id)
    assert post["state"] == "held"
    assert post["failure_reason"].startswith("retired: ")


# --- messages ---------------------------------------------------------------------


def test_a_csv_sent_to_the_products_route_is_pointed_at_the_console(
    client, brand_key
) -> None:
    answer = client.post(
        PRODUCTS_URL,
        data=SHOPIFY_COLUMNS + "\r\n",
        headers={**auth(brand_key), "Content-Type": "text/csv"},
    )

    assert answer.status_code == 415
    message = answer.get_json()["error"]["message"]
    assert "Catalog import" in message and "console" in message


def test_a_semicolon_separated_csv_is_named_as_such(
    client,  # noqa: F811
    signed_in,  # noqa: F811
) -> None:
    token = csrf_of(client, "/console/catalog")
    body = SHOPIFY_COLUMNS.replace(",", ";") + "\r\nmug-a;Mug A;;;;;;;;12,00;;5;;;\r\n"

    answer = upload(client, token, body.encode(), "products_export.csv")

    page = text_of(answer)
    assert answer.status_code == 400, page
    assert "semicolon" in page and "comma" in page


def test_restoring_releases_only_the_posts_retirement_held(client, brand_key) -> None:
    from cartcast import runtime as runtime_module

    post_json(client, PRODUCTS_URL, [product("A")], brand_key)
    first_id = scheduled_post(client, brand_key, "A")
    second_id = scheduled_post(client, brand_key, "A")
    with runtime_module.current().database.transaction() as tx:
        tx.execute(
            "UPDATE posts SET state = 'held', failure_reason = :reason WHERE id = :id",
            reason="crisis pause: 12 negative mentions in an hour",
            id=second_id,
        )
    retire(client, brand_key, "A")

    post_json(client, PRODUCTS_URL, [product("A", status="active")], brand_key)

    assert post_of(client, brand_key, first_id)["state"] == "scheduled"
    still = post_of(client, brand_key, second_id)
    assert still["state"] == "held"
    assert still["failure_reason"].startswith("crisis pause: ")


def import_csv_alone(client, key: str, columns: str, rows: list[str]) -> None:
    """Import a Shopify CSV with these columns past SHOPIFY_COLUMNS, the demo
    products the signed-in brand starts with retired, so only the file's count."""
    for sku in ("BEA-ESS-ESS-001", "BEA-GLA-EYE-002"):
        retire(client, key, sku)
    lines = [SHOPIFY_COLUMNS + columns, *rows]
    token = csrf_of(client, "/console/catalog")
    upload(client, token, ("\r\n".join(lines) + "\r\n").encode(), "export.csv")


def stock_tracked_by_sku(client, key: str) -> dict[str, bool]:
    listed = client.get(PRODUCTS_URL, headers=auth(key)).get_json()["products"]
    return {row["sku"]: row["stock_tracked"] for row in listed}


def test_a_csv_product_whose_stock_nobody_tracks_stays_in_a_job_for_all(
    client,  # noqa: F811
    signed_in,  # noqa: F811
) -> None:
    key = signed_in["key"]
    import_csv_alone(
        client,
        key,
        ",Variant Inventory Tracker",
        [
            "untracked,Untracked Mug,,,,,,,,12.00,,0,,,,",
            "sold-out,Sold Out Mug,,,,,,,,12.00,,0,,,,shopify",
            "in-stock,Stocked Mug,,,,,,,,12.00,,4,,,,shopify",
        ],
    )

    job = job_for(client, key, {"products": "all"})

    assert job["progress"]["products_total"] == 2
    assert stock_tracked_by_sku(client, key) == {
        "in-stock": True,
        "sold-out": True,
        "untracked": False,
    }


def test_a_csv_product_with_a_variant_nobody_tracks_is_not_sold_out(
    client,  # noqa: F811
    signed_in,  # noqa: F811
) -> None:
    """Shopify sells a variant whose inventory nobody tracks whatever its
    quantity (exported as 0): a product with one such variant is on sale even
    when its tracked variants have none left."""
    key = signed_in["key"]
    import_csv_alone(
        client,
        key,
        ",Variant Inventory Tracker",
        [
            "mixed,Mixed Mug,,,,,Size,Small,,12.00,,0,,,,shopify",
            "mixed,,,,,,,Large,,12.00,,0,,,,",
            "partly,Partly Mug,,,,,Size,Small,,12.00,,5,,,,shopify",
            "partly,,,,,,,Large,,12.00,,0,,,,",
        ],
    )

    job = job_for(client, key, {"products": "all"})

    assert job["progress"]["products_total"] == 2
    assert stock_tracked_by_sku(client, key) == {"mixed": False, "partly": False}
    # The stock its claims are checked against is still its variants' sum.
    listed = client.get(PRODUCTS_URL, headers=auth(key)).get_json()["products"]
    assert {row["sku"]: row["stock"] for row in listed} == {"mixed": 0, "partly": 5}


def test_a_csv_product_sold_when_out_of_stock_stays_in_a_job_for_all(
    client,  # noqa: F811
    signed_in,  # noqa: F811
) -> None:
    """A variant whose Variant Inventory Policy is `continue` is sold past 0
    (a backorder, a pre-order): its product is on sale at a stock of 0."""
    key = signed_in["key"]
    import_csv_alone(
        client,
        key,
        ",Variant Inventory Tracker,Variant Inventory Policy",
        [
            "backorder,Backorder Mug,,,,,,,,12.00,,0,,,,shopify,continue",
            "sold-out,Sold Out Mug,,,,,,,,12.00,,0,,,,shopify,deny",
        ],
    )

    job = job_for(client, key, {"products": "all"})

    assert job["progress"]["products_total"] == 1
    assert stock_tracked_by_sku(client, key) == {"backorder": False, "sold-out": True}


def test_an_import_payload_stored_before_statuses_leaves_retirement_alone() -> None:
    from cartcast import catalog

    stored_before = {"sku": "A", "title": "Mug", "price": "12", "handle_given": False}

    assert catalog.columns(stored_before) == {
        "sku": "A",
        "title": "Mug",
        "price": "12",
        "status": None,
        "stock_tracked": False,
    }


def test_scheduling_approved_posts_leaves_a_retired_products_waiting(
    client, brand_key
) -> None:
    post_json(client, PRODUCTS_URL, [product("A"), product("B")], brand_key)
    drafted = post_json(client, "/v1/captions", {"products": ["A", "B"]}, brand_key)
    first, second = drafted.get_json()["posts"]
    retire(client, brand_key, "A")

    answer = post_json(client, "/v1/schedule", {}, brand_key)

    assert answer.status_code == 200, answer.get_json()
    assert post_of(client, brand_key, first["id"])["state"] == "approved"
    assert post_of(client, brand_key, second["id"])["state"] == "scheduled"


def test_scheduling_one_post_of_a_retired_product_is_a_409_saying_so(
    client, brand_key
) -> None:
    post_json(client, PRODUCTS_URL, [product("A")], brand_key)
    held_id = scheduled_post(client, brand_key, "A")
    retire(client, brand_key, "A")

    answer = post_json(client, f"/v1/posts/{held_id}/schedule", {}, brand_key)

    assert answer.status_code == 409
    assert "retired" in answer.get_json()["error"]["message"]
    assert post_of(client, brand_key, held_id)["state"] == "held"
