"""Link posts, link-free posts, and the brand's monthly allowance of link posts."""

from __future__ import annotations

import datetime as dt
import json
import threading
from decimal import Decimal

import pytest

from cartcast.captions import (
    LINK_FREE_CHECK_NAMES,
    BrandVoice,
    DraftRequest,
    write_drafts,
)
from cartcast.clock import UTC
from cartcast.post_text import linked_urls
from infra.gemini_standin import GeminiStandIn
from tests.conftest import OPERATOR_KEY, make_app
from tests.helpers import WAITING_ON_A_LOCK, auth, brand_body, catalog, post_json
from tests.test_captions import brief_from_catalog


@pytest.fixture
def api(function_env):
    return make_app("api", "http").test_client()


def make_brand(api, **settings) -> str:
    created = post_json(api, "/v1/brands", brand_body(**settings), OPERATOR_KEY)
    assert created.status_code == 201, created.get_json()
    key = created.get_json()["api_key"]
    post_json(api, "/v1/products", catalog(6), key)
    return key


def draft(api, key: str, count: int = 1, **fields):
    body = {"products": [p["sku"] for p in catalog(count)], **fields}
    return post_json(api, "/v1/captions", body, key)


def patch_brand(api, key: str, body: dict):
    return api.patch(
        "/v1/brand",
        data=json.dumps(body),
        headers=auth(key),
        content_type="application/json",
    )


def stored_posts(api, key: str) -> list[dict]:
    return api.get("/v1/posts", headers=auth(key)).get_json()["posts"]


def test_a_new_brand_puts_its_link_in_every_post(api) -> None:
    key = make_brand(api)

    posts = draft(api, key, 2).get_json()["posts"]

    brand = api.get("/v1/brand", headers=auth(key)).get_json()["brand"]
    assert brand["link_policy"] == "always"
    assert brand["link_posts_per_month"] is None
    assert all(post["link"] and post["link"] in post["text"] for post in posts)


def test_the_brand_key_changes_the_link_policy(api) -> None:
    key = make_brand(api)

    changed = patch_brand(
        api, key, {"link_policy": "monthly", "link_posts_per_month": 3}
    )
    back = patch_brand(api, key, {"link_policy": "never"})

    assert changed.status_code == 200
    assert changed.get_json()["brand"]["link_posts_per_month"] == 3
    assert back.get_json()["brand"]["link_policy"] == "never"
    assert back.get_json()["brand"]["link_posts_per_month"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"link_policy": "sometimes"}, "link_policy"),
        ({"link_policy": "monthly"}, "link_posts_per_month"),
        (
            {"link_policy": "monthly", "link_posts_per_month": -1},
            "link_posts_per_month",
        ),
        (
            {"link_policy": "monthly", "link_posts_per_month": "5"},
            "link_posts_per_month",
        ),
        ({"link_policy": "always", "link_posts_per_month": 5}, "link_posts_per_month"),
        ({"name": "Renamed"}, "name"),
    ],
)
def test_a_bad_link_setting_is_a_400_naming_the_field_and_changes_nothing(
    api, body, field
) -> None:
    key = make_brand(api)

    response = patch_brand(api, key, body)

    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == field
    brand = api.get("/v1/brand", headers=auth(key)).get_json()["brand"]
    assert brand["link_policy"] == "always"


def test_a_brand_can_be_created_with_a_monthly_allowance(api) -> None:
    key = make_brand(api, link_policy="monthly", link_posts_per_month=4)

    brand = api.get("/v1/brand", headers=auth(key)).get_json()["brand"]

    assert (brand["link_policy"], brand["link_posts_per_month"]) == ("monthly", 4)


def test_a_link_free_draft_has_no_url_no_link_and_the_lower_price(api) -> None:
    key = make_brand(api)

    post = draft(api, key, link=False).get_json()["posts"][0]

    assert post["link"] is None
    assert post["link_note"] is None
    assert not linked_urls(post["text"])
    assert post["checks"] == dict.fromkeys(LINK_FREE_CHECK_NAMES, True)
    assert Decimal(post["x_price_usd"]) == Decimal("0.015")
    assert post["product_id"]  # still the product's post


def test_under_never_asking_for_a_link_is_a_409_naming_link_and_stores_nothing(
    api,
) -> None:
    key = make_brand(api, link_policy="never")

    response = draft(api, key, link=True)

    assert response.status_code == 409
    assert response.get_json()["error"]["field"] == "link"
    assert stored_posts(api, key) == []


def test_under_never_posts_are_link_free_without_asking(api) -> None:
    key = make_brand(api, link_policy="never")

    posts = draft(api, key, 2).get_json()["posts"]

    assert [post["link"] for post in posts] == [None, None]
    assert not any(linked_urls(post["text"]) for post in posts)


def test_past_the_monthly_allowance_drafts_are_link_free_with_a_note(api) -> None:
    key = make_brand(api, link_policy="monthly", link_posts_per_month=2)

    first = draft(api, key, 3).get_json()["posts"]
    later = draft(api, key, 1, variants=2).get_json()["posts"]

    assert [bool(post["link"]) for post in first] == [True, True, False]
    assert first[2]["link_note"] == (
        "link-free: the 2 link posts allowed for 2026-03 are spent"
    )
    assert [post["link"] for post in later] == [None, None]
    assert all(post["link_note"] for post in later)


def test_asking_for_more_links_than_the_month_has_left_is_a_409_storing_nothing(
    api,
) -> None:
    key = make_brand(api, link_policy="monthly", link_posts_per_month=2)
    draft(api, key, 1)

    response = draft(api, key, 2, link=True)

    assert response.status_code == 409
    assert response.get_json()["error"]["field"] == "link"
    assert "1 are left for 2026-03" in response.get_json()["error"]["message"]
    assert len(stored_posts(api, key)) == 1


def test_asking_for_no_link_is_allowed_whatever_is_left(api) -> None:
    key = make_brand(api, link_policy="monthly", link_posts_per_month=0)

    response = draft(api, key, 2, link=False)

    assert response.status_code == 201
    assert all(post["link_note"] is None for post in response.get_json()["posts"])


def test_a_cancelled_link_post_gives_its_place_in_the_allowance_back(api) -> None:
    key = make_brand(api, link_policy="monthly", link_posts_per_month=1)
    first = draft(api, key).get_json()["posts"][0]
    post_json(api, f"/v1/posts/{first['id']}/cancel", {}, key)

    again = draft(api, key, link=True)

    assert again.status_code == 201
    assert again.get_json()["posts"][0]["link"]


def test_the_allowance_starts_again_with_the_brand_local_month(api, clock_file) -> None:
    # 23:30 on 31 March in New York is already 1 April in UTC.
    clock_file.set(dt.datetime(2026, 4, 1, 3, 30, tzinfo=UTC))
    key = make_brand(api, link_policy="monthly", link_posts_per_month=1)
    draft(api, key)
    spent = draft(api, key).get_json()["posts"][0]

    clock_file.set(dt.datetime(2026, 4, 1, 4, 30, tzinfo=UTC))  # 00:30 in New York
    fresh = draft(api, key).get_json()["posts"][0]

    assert spent["link"] is None and "2026-03" in spent["link_note"]
    assert fresh["link"]


def test_the_template_engine_writes_clean_link_free_copy_for_the_catalog() -> None:
    voice = BrandVoice(
        name="Cartcast Demo", voice="warm", required_hashtags=("#CartcastDemo",)
    )
    requests = [
        DraftRequest(brief_from_catalog(row), "", variant)
        for row in catalog(40)
        for variant in range(2)
    ]

    drafts = write_drafts(requests, voice)

    for written in drafts:
        assert written.checks == dict.fromkeys(LINK_FREE_CHECK_NAMES, True)
        assert "  " not in written.text and written.text == written.text.strip()
        assert "link" not in written.text.casefold().replace("#", " ").split()


def test_a_link_free_post_pointing_at_a_link_fails_its_no_link_check() -> None:
    from cartcast.captions import check_text

    voice = BrandVoice(name="Shop", voice="plain")
    request = DraftRequest(brief_from_catalog(catalog(1)[0]), "")

    pointing = check_text("Love it? Details at the link.", request, voice)
    with_url = check_text("Love it? shop.example.com has it.", request, voice)
    clean = check_text("Love it? Ask us anything.", request, voice)

    assert pointing["no_link"] is False
    assert with_url["no_link"] is False
    assert clean["no_link"] is True
    assert "link_once" not in clean


def test_gemini_is_told_which_products_have_no_link(api, monkeypatch) -> None:
    key = make_brand(api)
    with GeminiStandIn() as standin:
        monkeypatch.setenv("GEMINI_API_KEY", standin.api_key)
        monkeypatch.setenv("GEMINI_BASE_URL", standin.base_url)
        from cartcast import runtime

        runtime.reset()
        gemini_api = make_app("api", "http").test_client()

        posts = draft(gemini_api, key, 2, link=False).get_json()["posts"]
        sent = standin.requests()[0]["body"]

    system = sent["systemInstruction"]["parts"][0]["text"]
    user_text = sent["contents"][0]["parts"][0]["text"]
    assert "never point the reader to one" in system
    assert user_text.count('"link": false') == 2
    assert {post["engine"] for post in posts} == {"gemini"}
    assert all(post["link"] is None and not linked_urls(post["text"]) for post in posts)


# What the foreign key check of a row naming the brand takes on it: a post's
# change logs itself (post_events) with one.
KEY_SHARE_NOWAIT = "SELECT id FROM brands WHERE id = :brand_id FOR KEY SHARE NOWAIT"


def test_counting_the_monthly_allowance_leaves_the_brand_to_rows_that_name_it(
    api,
) -> None:
    # Arrange: a caption request, its copy written, counts the month's link posts
    # again under the brand's lock, held to its commit.
    from cartcast import brands, link_policy
    from cartcast import runtime as runtime_module

    key = make_brand(api, link_policy="monthly", link_posts_per_month=5)
    brand_id = api.get("/v1/brand", headers=auth(key)).get_json()["brand"]["id"]
    current = runtime_module.current()
    with current.database.transaction() as counting:
        brand = brands.get_brand(counting, brand_id)
        planned = link_policy.choose_links(
            counting, brand, asked=None, drafts=1, now=current.clock.now()
        )
        link_policy.confirm_links(
            counting, brand, planned, asked=None, now=current.clock.now()
        )

        # Act: meanwhile, a change of one of the brand's posts logs itself.
        with current.database.transaction() as edit:
            logged = edit.scalar(KEY_SHARE_NOWAIT, brand_id=brand_id)

    # Assert: it did not wait for the caption request.
    assert str(logged) == brand_id


# What the brand's publisher and schedulers take on its row (posts.LOCK_BRAND),
# asked not to wait: it fails at once if another transaction holds the row.
NO_KEY_UPDATE_NOWAIT = (
    "SELECT id FROM brands WHERE id = :brand_id FOR NO KEY UPDATE NOWAIT"
)


def test_no_brand_lock_is_held_while_gemini_writes_and_a_spent_link_turns_link_free(
    api, monkeypatch
) -> None:
    """Gemini's answer is held until the test has locked the brand's row (as its
    publisher does) and, meanwhile, spent the month's one link post on another
    product; the held request then stores its draft link-free, with the note."""
    from cartcast import posts
    from cartcast import runtime as runtime_module

    key = make_brand(api, link_policy="monthly", link_posts_per_month=1)
    brand_id = api.get("/v1/brand", headers=auth(key)).get_json()["brand"]["id"]
    held_sku, other_sku = (product["sku"] for product in catalog(2))
    with GeminiStandIn() as standin:
        monkeypatch.setenv("GEMINI_API_KEY", standin.api_key)
        monkeypatch.setenv("GEMINI_BASE_URL", standin.base_url)
        runtime_module.reset()
        gemini_api = make_app("api", "http")
        release = standin.hold_answers()
        answers = []
        request = threading.Thread(
            target=lambda: answers.append(
                post_json(
                    gemini_api.test_client(),
                    "/v1/captions",
                    {"products": [held_sku]},
                    key,
                )
            )
        )
        request.start()
        try:
            assert standin.wait_for_requests(1), "the request never reached Gemini"
            current = runtime_module.current()

            # Act: while Gemini writes, the brand's row is locked, and another
            # request spends the month's one link post.
            with current.database.transaction() as publisher:
                locked = publisher.scalar(NO_KEY_UPDATE_NOWAIT, brand_id=brand_id)
            with current.database.transaction() as tx:
                spent = posts.create_drafts(
                    tx,
                    brand_id=brand_id,
                    body={"products": [other_sku]},
                    created_by="test",
                    now=current.clock.now(),
                )
        finally:
            release.set()
            request.join()

    # Assert
    assert str(locked) == brand_id
    assert spent["posts"][0]["link"]
    (answer,) = answers
    assert answer.status_code == 201, answer.get_json()
    (held,) = answer.get_json()["posts"]
    assert held["link"] is None and not linked_urls(held["text"])
    assert held["link_note"] == (
        "link-free: the 1 link posts allowed for 2026-03 are spent"
    )
    assert held["engine"] == "template"
    assert answer.get_json()["gemini_usage"]["calls"] == 1


def test_a_monthly_count_lets_a_draft_of_the_same_product_log_itself_meanwhile(
    api, runtime
) -> None:
    """A caption request under a monthly allowance locks the brand to count its
    link posts, then takes its products' draft locks (posts.LOCK_PRODUCT_DRAFTS).
    A request for the same product that read the brand before a PATCH made the
    policy monthly holds that product's lock without the brand's, and its draft's
    insert checks its brand key (KEY SHARE): a FOR UPDATE brand lock refused
    that share while it waited on the product, and PostgreSQL ended one of the
    two as a deadlock."""
    from cartcast import posts

    key = make_brand(api, link_policy="monthly", link_posts_per_month=5)
    brand_id = api.get("/v1/brand", headers=auth(key)).get_json()["brand"]["id"]
    product = api.get("/v1/products", headers=auth(key)).get_json()["products"][0]
    answers = []
    request = threading.Thread(
        target=lambda: answers.append(
            post_json(api, "/v1/captions", {"products": [product["sku"]]}, key)
        )
    )

    # The other request, by hand: its product lock, then its draft's key check.
    with runtime.database.transaction() as tx:
        tx.scalar(posts.LOCK_PRODUCT_DRAFTS, product_id=product["id"])
        request.start()
        for _ in range(3000):
            with runtime.database.transaction() as watch:
                if watch.scalar(WAITING_ON_A_LOCK):
                    break
        else:
            raise AssertionError("the caption request never waited on the product")
        tx.one("SELECT 1 FROM brands WHERE id = :b FOR KEY SHARE", b=brand_id)
    request.join(timeout=60)

    (answer,) = answers
    assert answer.status_code == 201, answer.get_data(as_text=True)


def test_links_asked_for_and_spent_while_the_copy_was_written_are_a_409(api) -> None:
    from cartcast import brands, link_policy
    from cartcast import runtime as runtime_module
    from cartcast.errors import Conflict

    key = make_brand(api, link_policy="monthly", link_posts_per_month=1)
    brand_id = api.get("/v1/brand", headers=auth(key)).get_json()["brand"]["id"]
    current = runtime_module.current()
    with current.database.transaction() as tx:
        brand = brands.get_brand(tx, brand_id)
        planned = link_policy.choose_links(
            tx, brand, asked=True, drafts=1, now=current.clock.now()
        )

    draft(api, key, 1)
    with current.database.transaction() as tx, pytest.raises(Conflict) as refused:
        link_policy.confirm_links(
            tx, brand, planned, asked=True, now=current.clock.now()
        )

    assert planned == [link_policy.LinkChoice(True)]
    assert refused.value.field == "link"
    assert "0 are left for 2026-03" in str(refused.value)


def test_a_policy_turned_never_while_gemini_writes_leaves_the_draft_link_free(
    api, monkeypatch
) -> None:
    """Gemini's answer is held while an admin sets link_policy 'never' on a brand
    that was 'always'; the held request then stores its draft without a link."""
    from cartcast import runtime as runtime_module

    key = make_brand(api)
    sku = catalog(1)[0]["sku"]
    with GeminiStandIn() as standin:
        monkeypatch.setenv("GEMINI_API_KEY", standin.api_key)
        monkeypatch.setenv("GEMINI_BASE_URL", standin.base_url)
        runtime_module.reset()
        gemini_api = make_app("api", "http")
        release = standin.hold_answers()
        answers = []
        request = threading.Thread(
            target=lambda: answers.append(
                post_json(
                    gemini_api.test_client(), "/v1/captions", {"products": [sku]}, key
                )
            )
        )
        request.start()
        try:
            assert standin.wait_for_requests(1), "the request never reached Gemini"

            # Act: while Gemini writes, the brand stops paying for links.
            changed = gemini_api.test_client().patch(
                "/v1/brand",
                data=json.dumps({"link_policy": "never"}),
                headers=auth(key),
                content_type="application/json",
            )
        finally:
            release.set()
            request.join()

    # Assert
    assert changed.status_code == 200, changed.get_json()
    (answer,) = answers
    assert answer.status_code == 201, answer.get_json()
    (held,) = answer.get_json()["posts"]
    assert held["link"] is None and not linked_urls(held["text"])
    assert held["link_note"] == "link-free: the brand's link_policy is 'never'"
