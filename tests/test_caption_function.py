"""The generate_caption function, through functions-framework's real app."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading

import pytest

from cartcast import brands, runtime
from cartcast.near_duplicates import NEAR_DUPLICATE_THRESHOLD, CopyIndex
from infra.gemini_standin import GeminiStandIn
from tests.conftest import OPERATOR_KEY, REPO, make_app
from tests.helpers import (
    auth,
    brand_body,
    catalog,
    post_json,
    until_no_transaction_is_left_idle,
)


@pytest.fixture
def brand_key(function_env) -> str:
    api = make_app("api", "http").test_client()
    key = post_json(api, "/v1/brands", brand_body(), OPERATOR_KEY).get_json()["api_key"]
    post_json(api, "/v1/products", catalog(5), key)
    return key


@pytest.fixture
def standin(monkeypatch):
    """The Gemini stand-in, with the caption function's settings pointed at it."""
    with GeminiStandIn() as running:
        monkeypatch.setenv("GEMINI_API_KEY", running.api_key)
        monkeypatch.setenv("GEMINI_BASE_URL", running.base_url)
        runtime.reset()  # settings are read once per process; this is a new one
        yield running


def caption_client():
    return make_app("generate_caption", "http").test_client()


def test_the_template_engine_writes_when_no_gemini_key_is_set(brand_key) -> None:
    skus = [p["sku"] for p in catalog(2)]

    response = post_json(
        caption_client(), "/", {"products": skus, "variants": 2}, brand_key
    )

    posts = response.get_json()["posts"]
    assert response.status_code == 201
    assert len(posts) == 4
    assert {p["engine"] for p in posts} == {"template"}
    assert len({p["text"] for p in posts}) == 4
    assert all(p["weighted_length"] <= 280 and p["link"] in p["text"] for p in posts)
    assert {p["x_price_usd"] for p in posts} == {"0.20"}  # a post with a link
    assert response.get_json()["gemini_usage"] is None


def test_gemini_writes_through_google_genai_when_a_key_is_set(
    brand_key, standin
) -> None:
    skus = [p["sku"] for p in catalog(3)]

    response = post_json(caption_client(), "/", {"products": skus}, brand_key)

    posts = response.get_json()["posts"]
    assert response.status_code == 201
    assert {p["engine"] for p in posts} == {"gemini"}
    assert all(p["model"] for p in posts)
    assert response.get_json()["gemini_usage"]["total_tokens"] > 0


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({}, 400, "products"),
        ({"products": "BEA-ESS-ESS-001"}, 400, "products"),
        ({"products": ["BEA-ESS-ESS-001"], "variants": 9}, 400, "variants"),
        ({"products": ["NO-SUCH-SKU"]}, 404, "products"),
        ({"products": ["BEA-ESS-ESS-001"], "colour": "red"}, 400, "colour"),
        ({"products": ["BEA-ESS-ESS-001"] * 2}, 400, "products[1]"),
        ({"products": ["BEA-ESS-ESS-001"], "variants": 0}, 400, "variants"),
        ({"products": ["BEA-ESS-ESS-001"], "variants": 10_000}, 400, "variants"),
    ],
)
def test_bad_caption_requests_are_named_and_write_nothing(
    brand_key, body, status, field
) -> None:
    response = post_json(caption_client(), "/", body, brand_key)

    assert response.status_code == status
    assert response.get_json()["error"]["field"] == field
    listed = (
        make_app("api", "http").test_client().get("/v1/posts", headers=auth(brand_key))
    )
    assert listed.get_json()["posts"] == []


def test_a_caption_request_needs_a_brand_key(brand_key) -> None:
    missing = post_json(caption_client(), "/", {"products": ["x"]})
    operator = post_json(caption_client(), "/", {"products": ["x"]}, OPERATOR_KEY)
    wrong_method = caption_client().get("/", headers=auth(brand_key))

    assert missing.status_code == 401
    assert operator.status_code == 403
    assert wrong_method.status_code == 405


def test_a_title_in_a_script_without_spaces_is_cut_to_fit(brand_key) -> None:
    api = make_app("api", "http").test_client()
    long_cjk = {
        "sku": "CJK-1",
        "title": "日本語の商品名" * 30,
        "price": 12,
        "category": "x",
    }
    post_json(api, "/v1/products", [long_cjk], brand_key)

    response = post_json(caption_client(), "/", {"products": ["CJK-1"]}, brand_key)

    post = response.get_json()["posts"][0]
    assert response.status_code == 201
    assert post["weighted_length"] <= 280
    assert post["link"] in post["text"]


def test_required_hashtags_too_long_for_any_post_are_a_400(function_env) -> None:
    api = make_app("api", "http").test_client()
    tags = ["#" + "x" * 28 + str(n) for n in range(10)]
    body = brand_body(slug="tagged", required_hashtags=tags)
    key = post_json(api, "/v1/brands", body, OPERATOR_KEY).get_json()["api_key"]
    post_json(api, "/v1/products", catalog(1), key)

    response = post_json(
        caption_client(), "/", {"products": [catalog(1)[0]["sku"]]}, key
    )

    assert response.status_code == 400
    assert "required hashtags" in response.get_json()["error"]["message"]
    assert api.get("/v1/posts", headers=auth(key)).get_json()["posts"] == []


def test_a_draft_that_fails_a_check_waits_for_approval_even_with_approvals_off(
    brand_key,
) -> None:
    api = make_app("api", "http").test_client()
    gift = {
        "sku": "GIFT-1",
        "title": "Amazon.com Gift Card",
        "price": 25,
        "category": "x",
    }
    post_json(api, "/v1/products", [gift], brand_key)

    response = post_json(caption_client(), "/", {"products": ["GIFT-1"]}, brand_key)

    post = response.get_json()["posts"][0]
    assert response.status_code == 201
    assert post["checks"]["link_once"] is False
    assert post["state"] == "needs_approval"


def test_a_title_that_mentions_a_stranger_waits_for_approval_even_with_approvals_off(
    brand_key,
) -> None:
    api = make_app("api", "http").test_client()
    mug = {"sku": "T2", "title": "Mug @elonmusk edition", "price": 12, "category": "x"}
    post_json(api, "/v1/products", [mug], brand_key)

    response = post_json(caption_client(), "/", {"products": ["T2"]}, brand_key)

    post = response.get_json()["posts"][0]
    assert response.status_code == 201
    assert "@elonmusk" in post["text"]
    assert post["checks"]["no_mentions"] is False
    assert post["state"] == "needs_approval"


def test_a_title_that_mentions_the_brand_itself_is_approved(brand_key) -> None:
    api = make_app("api", "http").test_client()
    mug = {"sku": "T3", "title": "Mug @TestGoods edition", "price": 12, "category": "x"}
    post_json(api, "/v1/products", [mug], brand_key)

    response = post_json(caption_client(), "/", {"products": ["T3"]}, brand_key)

    post = response.get_json()["posts"][0]
    assert post["checks"]["no_mentions"] is True
    assert post["state"] == "approved"


def test_a_sponsored_post_carries_the_brands_disclosure_tag(function_env) -> None:
    api = make_app("api", "http").test_client()
    body = brand_body(slug="partner", disclosure_tag="#sponsored")
    key = post_json(api, "/v1/brands", body, OPERATOR_KEY).get_json()["api_key"]
    post_json(api, "/v1/products", catalog(2), key)
    skus = [p["sku"] for p in catalog(2)]

    paid = post_json(
        caption_client(), "/", {"products": skus[:1], "sponsored": True}, key
    )
    plain = post_json(caption_client(), "/", {"products": skus[1:]}, key)

    paid_post, plain_post = paid.get_json()["posts"][0], plain.get_json()["posts"][0]
    assert "#sponsored" in paid_post["text"] and paid_post["sponsored"] is True
    assert paid_post["checks"]["required_hashtags"] is True
    assert "#sponsored" not in plain_post["text"] and plain_post["sponsored"] is False


NOT_ONE_HASHTAG = [
    "ad",
    "ok",
    "#two words",
    "#a b",
    "#123",
    "#ok!",
    "#summer-sale",
    "#",
    "#" + "x" * 40,
]


@pytest.mark.parametrize("tag", NOT_ONE_HASHTAG)
def test_a_malformed_disclosure_tag_is_a_400(function_env, tag) -> None:
    api = make_app("api", "http").test_client()

    response = post_json(
        api, "/v1/brands", brand_body(disclosure_tag=tag), OPERATOR_KEY
    )

    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "disclosure_tag"


@pytest.mark.parametrize("tag", NOT_ONE_HASHTAG)
def test_a_required_hashtag_that_is_not_one_hashtag_is_a_400_naming_it(
    function_env, tag
) -> None:
    api = make_app("api", "http").test_client()
    body = brand_body(required_hashtags=["#ShopSmall", tag])

    response = post_json(api, "/v1/brands", body, OPERATOR_KEY)

    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["field"] == "required_hashtags[1]"
    assert "one hashtag" in error["message"]
    # Nothing was written: the slug is still free.
    retried = post_json(api, "/v1/brands", brand_body(), OPERATOR_KEY)
    assert retried.status_code == 201, retried.get_json()


def test_required_hashtags_in_any_script_and_with_underscores_are_taken(
    function_env,
) -> None:
    api = make_app("api", "http").test_client()
    tags = ["#ShopSmall", "#Mugs4U", "#_handmade", "#Café", "#手作り", " #ad "]

    response = post_json(
        api, "/v1/brands", brand_body(required_hashtags=tags), OPERATOR_KEY
    )

    assert response.status_code == 201, response.get_json()
    assert response.get_json()["brand"]["required_hashtags"] == [
        "#ShopSmall",
        "#Mugs4U",
        "#_handmade",
        "#Café",
        "#手作り",
        "#ad",
    ]


@pytest.mark.parametrize("language", ["xx", "english", 7, ""])
def test_an_unsupported_language_is_a_400(brand_key, language) -> None:
    body = {"products": [catalog(1)[0]["sku"]], "language": language}

    response = post_json(caption_client(), "/", body, brand_key)

    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "language"


def test_another_language_without_gemini_is_a_400_saying_why(brand_key) -> None:
    body = {"products": [catalog(1)[0]["sku"]], "language": "de"}

    response = post_json(caption_client(), "/", body, brand_key)

    assert response.status_code == 400
    assert "need Gemini" in response.get_json()["error"]["message"]


def test_gemini_is_asked_for_the_language_requested(brand_key, standin) -> None:
    body = {"products": [catalog(1)[0]["sku"]], "language": "de"}

    response = post_json(caption_client(), "/", body, brand_key)
    sent = json.dumps(standin.requests()[0])

    assert response.status_code == 201
    assert "Write in this language: de." in sent


def test_an_english_fallback_for_another_language_waits_for_a_person(
    brand_key, standin
) -> None:
    standin.set_fault("server_error", count=5, status=503)
    body = {"products": [catalog(1)[0]["sku"]], "language": "de"}

    (post,) = post_json(caption_client(), "/", body, brand_key).get_json()["posts"]

    assert post["engine"] == "template"
    assert post["checks"]["in_requested_language"] is False
    assert post["state"] == "needs_approval"


def test_gemini_copy_in_another_language_than_asked_waits_for_a_person(
    brand_key, standin
) -> None:
    standin.set_fault("wrong_language", language="en")
    body = {"products": [catalog(1)[0]["sku"]], "language": "de"}

    (post,) = post_json(caption_client(), "/", body, brand_key).get_json()["posts"]

    assert post["engine"] == "gemini"
    assert post["checks"]["in_requested_language"] is False
    assert post["state"] == "needs_approval"


@pytest.mark.parametrize(
    ("claim", "reason"),
    [
        ("deal at 50％オフ", "gemini: claims 50% off"),
        ("deal, nur noch 2 auf Lager", "gemini: claims only 2 left"),
        ("steal at 2,000円", "gemini: claims a price in 円"),
        ("deal with free shipping", "gemini: claims an offer"),
        ("deal at 50% o\u200bff", "gemini: claims 50% off"),
    ],
)
def test_gemini_copy_with_a_claim_the_catalog_lacks_is_never_approved(
    brand_key, standin, claim: str, reason: str
) -> None:
    # The brand has approvals off: a draft passing every check is approved at once.
    standin.set_fault("banned_word", word=claim)
    body = {"products": [catalog(1)[0]["sku"]]}

    (post,) = post_json(caption_client(), "/", body, brand_key).get_json()["posts"]

    assert post["engine"] == "template"
    assert post["fallback_reason"].startswith(reason)
    assert claim not in post["text"]


def test_a_brand_in_an_unknown_language_is_a_400(function_env) -> None:
    api = make_app("api", "http").test_client()

    response = post_json(
        api, "/v1/brands", brand_body(language="klingon"), OPERATOR_KEY
    )

    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "language"


@pytest.mark.parametrize("query", ["?variants=2", "?language=en&language=en"])
def test_a_query_parameter_is_a_400_naming_it_with_no_draft_written(
    brand_key, query
) -> None:
    """The spec lists none for it, and the api's routes refuse what they do not take."""
    body = {"products": [catalog(1)[0]["sku"]]}

    response = post_json(caption_client(), "/" + query, body, brand_key)

    assert response.status_code == 400
    assert response.get_json()["error"]["field"] in query
    api = make_app("api", "http").test_client()
    assert api.get("/v1/posts", headers=auth(brand_key)).get_json()["posts"] == []


def test_a_key_given_twice_is_a_400_naming_it_with_no_draft_written(brand_key) -> None:
    sku = catalog(1)[0]["sku"]
    raw = json.dumps({"products": [sku], "variants": 1})
    raw = raw[:-1] + ', "variants": 2}'

    response = caption_client().post(
        "/", data=raw, headers=auth(brand_key), content_type="application/json"
    )

    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"]["field"] == "variants"
    api = make_app("api", "http").test_client()
    assert api.get("/v1/posts", headers=auth(brand_key)).get_json()["posts"] == []


def test_a_caption_request_in_another_charset_is_a_415(brand_key) -> None:
    sku = catalog(1)[0]["sku"]

    response = caption_client().post(
        "/",
        data=json.dumps({"products": [sku]}),
        headers=auth(brand_key),
        content_type="application/json; charset=Latin-1",
    )

    assert response.status_code == 415, response.get_json()
    assert "Latin-1" in response.get_json()["error"]["message"]
    api = make_app("api", "http").test_client()
    assert api.get("/v1/posts", headers=auth(brand_key)).get_json()["posts"] == []


@pytest.mark.parametrize("path", ["generate_caption", "POST /v1/captions"])
def test_a_brand_that_asked_to_leave_gets_no_captions_and_no_gemini_cost(
    brand_key, standin, path
) -> None:
    # Arrange: Gemini would write, and its cost would be recorded on the brand
    # while the offboarding sweep deletes the brand's rows.
    api = make_app("api", "http").test_client()
    asked = post_json(api, "/v1/brand/offboarding", {}, brand_key)
    assert asked.status_code == 202, asked.get_json()
    body = {"products": [catalog(1)[0]["sku"]]}

    # Act
    if path == "generate_caption":
        response = post_json(caption_client(), "/", body, brand_key)
    else:
        response = post_json(api, "/v1/captions", body, brand_key)
    gemini_calls = len(standin.requests())

    # Assert
    assert response.status_code == 409
    message = response.get_json()["error"]["message"]
    assert "offboarding" in message and "POST /v1/brand/offboarding/cancel" in message
    assert gemini_calls == 0
    listed = api.get("/v1/posts?limit=10", headers=auth(brand_key)).get_json()
    assert listed["posts"] == []
    with runtime.current().database.transaction() as tx:
        assert tx.scalar("SELECT count(*) FROM cost_ledger") == 0


def test_two_overlapping_requests_for_one_product_do_not_both_pass_distinct(
    brand_key, standin
) -> None:
    """The stand-in writes the same caption for a product every time: the second
    request must see the first's draft and write something else. The first's
    answer is held until the second has either reached Gemini too (the requests
    overlap, each blind to the other's draft) or waits on a database lock."""
    from cartcast import runtime as runtime_module
    from tests.helpers import WAITING_ON_A_LOCK

    sku = catalog(1)[0]["sku"]
    release = standin.hold_answers()
    answers: list = [None, None]
    # One app for both requests, as one process serves them: building an app
    # loads main.py anew, which would drop the runtime the first request holds.
    api = make_app("api", "http")

    def ask(index: int) -> None:
        client = api.test_client()
        answers[index] = post_json(
            client, "/v1/captions", {"products": [sku]}, brand_key
        )

    first = threading.Thread(target=ask, args=(0,))
    first.start()
    assert standin.wait_for_requests(1), "the first request never reached Gemini"
    second = threading.Thread(target=ask, args=(1,))
    second.start()
    database = runtime_module.current().database
    while not standin.wait_for_requests(2, timeout_s=0.01):
        with database.transaction() as tx:
            if tx.scalar(WAITING_ON_A_LOCK):
                break
    release.set()
    first.join()
    second.join()

    assert [answer.status_code for answer in answers] == [201, 201]
    first_text, second_text = (a.get_json()["posts"][0]["text"] for a in answers)
    earlier = CopyIndex(NEAR_DUPLICATE_THRESHOLD)
    earlier.add("the first request's draft", first_text)
    assert earlier.resemblance(second_text) is None, (first_text, second_text)


def test_a_request_for_a_product_whose_copy_gemini_is_writing_does_not_wait_for_it(
    brand_key, standin
) -> None:
    """Decision 0106: the per-product turn is taken after Gemini's call, not
    before it. The first request's answer is held (as a slow Gemini would hold
    it, past the 10 s a database read may wait) until the second has reached
    Gemini too; then both answer 201, the second's copy distinct from the
    first's although the stand-in wrote both the same."""
    sku = catalog(1)[0]["sku"]
    release = standin.hold_answers()
    answers: list = [None, None]
    api = make_app("api", "http")

    def ask(index: int) -> None:
        answers[index] = post_json(
            api.test_client(), "/v1/captions", {"products": [sku]}, brand_key
        )

    first = threading.Thread(target=ask, args=(0,))
    second = threading.Thread(target=ask, args=(1,))
    first.start()
    try:
        assert standin.wait_for_requests(1), "the first request never reached Gemini"
        second.start()
        both_at_gemini = standin.wait_for_requests(2, timeout_s=15)
    finally:
        release.set()
        first.join()
        second.join()

    assert both_at_gemini, "the second request waited for the first's Gemini call"
    assert [answer.status_code for answer in answers] == [201, 201]
    posts = [answer.get_json()["posts"][0] for answer in answers]
    earlier = CopyIndex(NEAR_DUPLICATE_THRESHOLD)
    earlier.add("the first request's draft", posts[0]["text"])
    assert earlier.resemblance(posts[1]["text"]) is None, posts
    # The one that committed second rewrote its copy, and says whose it resembled.
    reasons = sorted(str(post["fallback_reason"]) for post in posts)
    assert reasons[0] == "None"
    assert reasons[1].startswith("gemini: near-duplicate of post "), reasons


# X links these whole: Devanagari and Thai write vowels as combining marks, ZWNJ
# joins Persian words without a space, and a few punctuation marks are written
# inside words: Catalan's middle dot, Hebrew's gershayim in an acronym, a middle
# dot joining a Japanese pair.
HASHTAGS_IN_OTHER_SCRIPTS = ["#विज्ञापन", "#ซื้อเลย", "#تبلیغ\u200cات", "#Café"]
HASHTAGS_WITH_PUNCTUATION_INSIDE = ["#col·lecció", "#צה״ל", "#東京・カフェ"]


@pytest.mark.parametrize(
    "tag", HASHTAGS_IN_OTHER_SCRIPTS + HASHTAGS_WITH_PUNCTUATION_INSIDE
)
def test_a_hashtag_x_links_whole_is_one_hashtag(function_env, tag) -> None:
    api = make_app("api", "http").test_client()
    body = brand_body(disclosure_tag=tag, required_hashtags=[tag])

    response = post_json(api, "/v1/brands", body, OPERATOR_KEY)

    assert response.status_code == 201, response.get_json()
    brand = response.get_json()["brand"]
    assert brand["disclosure_tag"] == tag and brand["required_hashtags"] == [tag]


# The punctuation twitter-text links inside a hashtag (its HASHTAG_SPECIAL_CHARS
# beyond '_' and the joiners), and some it ends one at.
X_HASHTAG_PUNCTUATION = (
    "\ua67e\u05be\u05f3\u05f4\uff5e\u301c\u309b\u309c\u30a0\u30fb\u3003"
    "\u0f0b\u0f0c\u00b7"
)
ENDS_A_HASHTAG = "-.'!&\u2019\u2010"


def test_each_punctuation_mark_x_links_inside_a_hashtag_and_no_other_is_taken() -> None:
    taken = [c for c in X_HASHTAG_PUNCTUATION if brands.is_one_hashtag(f"#a{c}b")]
    refused = [c for c in ENDS_A_HASHTAG if brands.is_one_hashtag(f"#a{c}b")]

    assert taken == list(X_HASHTAG_PUNCTUATION)
    assert refused == []


# twitter-text links no hashtag whose '#' is followed by VS16 (U+FE0F) or the
# keycap mark (U+20E3): "#\ufe0f" is the #️ emoji, not a tag.
@pytest.mark.parametrize("tag", ["#\ufe0fad", "#\u20e3ad"])
def test_a_hash_sign_made_an_emoji_starts_no_hashtag(tag) -> None:
    assert not brands.is_one_hashtag(tag)


# --- Idempotency-Key ----------------------------------------------------------------


def _send_with_key(client, path: str, body: dict, brand_key: str, key: str):
    return client.post(
        path,
        data=json.dumps(body),
        headers={**auth(brand_key), "Idempotency-Key": key},
        content_type="application/json",
    )


def _stored_posts(brand_key: str) -> list[dict]:
    api = make_app("api", "http").test_client()
    return api.get("/v1/posts?limit=50", headers=auth(brand_key)).get_json()["posts"]


@pytest.mark.parametrize("path", ["generate_caption", "POST /v1/captions"])
def test_a_request_sent_again_with_its_key_replays_the_first_answer(
    brand_key, standin, path
) -> None:
    client = caption_client() if path == "generate_caption" else None
    client = client or make_app("api", "http").test_client()
    url = "/" if path == "generate_caption" else "/v1/captions"
    body = {"products": [p["sku"] for p in catalog(2)]}

    first = _send_with_key(client, url, body, brand_key, "retry-7f3a")
    again = _send_with_key(client, url, body, brand_key, "retry-7f3a")

    assert first.status_code == again.status_code == 201, again.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert again.get_json() == first.get_json()
    assert len(standin.requests()) == 1
    assert len(_stored_posts(brand_key)) == 2


def test_a_key_sent_with_another_body_is_a_409_naming_the_header(brand_key) -> None:
    skus = [p["sku"] for p in catalog(2)]
    first = _send_with_key(caption_client(), "/", {"products": skus}, brand_key, "k1")

    other = _send_with_key(
        caption_client(), "/", {"products": skus[:1]}, brand_key, "k1"
    )

    assert first.status_code == 201
    assert other.status_code == 409
    assert other.get_json()["error"]["field"] == "Idempotency-Key"
    assert len(_stored_posts(brand_key)) == 2


def test_a_malformed_key_is_a_400_naming_the_header(brand_key) -> None:
    body = {"products": [catalog(1)[0]["sku"]]}

    response = _send_with_key(caption_client(), "/", body, brand_key, "a key")

    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "Idempotency-Key"
    assert _stored_posts(brand_key) == []


def test_a_key_belongs_to_its_brand(brand_key) -> None:
    api = make_app("api", "http").test_client()
    other = brand_body(slug="other-goods", name="Other Goods")
    other_key = post_json(api, "/v1/brands", other, OPERATOR_KEY).get_json()["api_key"]
    post_json(api, "/v1/products", catalog(1), other_key)
    body = {"products": [catalog(1)[0]["sku"]]}

    mine = _send_with_key(caption_client(), "/", body, brand_key, "shared")
    theirs = _send_with_key(caption_client(), "/", body, other_key, "shared")

    assert mine.status_code == theirs.status_code == 201
    assert "Idempotent-Replayed" not in theirs.headers
    assert len(_stored_posts(other_key)) == 1


def test_a_second_request_with_the_key_waits_for_the_first_and_replays_it(
    brand_key, standin
) -> None:
    """The first's Gemini answer is held until the second waits on a lock."""
    from tests.helpers import WAITING_ON_A_LOCK

    body = {"products": [catalog(1)[0]["sku"]]}
    release = standin.hold_answers()
    app = make_app("api", "http")
    answers: list = [None, None]

    def ask(index: int) -> None:
        answers[index] = _send_with_key(
            app.test_client(), "/v1/captions", body, brand_key, "twice"
        )

    first = threading.Thread(target=ask, args=(0,))
    second = threading.Thread(target=ask, args=(1,))
    first.start()
    try:
        assert standin.wait_for_requests(1), "the first request never reached Gemini"
        second.start()
        database = runtime.current().database
        for _ in range(3000):
            with database.transaction() as tx:
                if tx.scalar(WAITING_ON_A_LOCK):
                    break
        else:
            raise AssertionError("the second request never waited on the first")
    finally:
        release.set()
        first.join()
        if second.is_alive() or second.ident is not None:
            second.join()

    assert [answer.status_code for answer in answers] == [201, 201]
    assert answers[1].get_json() == answers[0].get_json()
    assert len(standin.requests()) == 1
    assert len(_stored_posts(brand_key)) == 1


def test_keys_older_than_a_day_are_pruned(brand_key) -> None:
    from cartcast import idempotency_keys

    body = {"products": [catalog(1)[0]["sku"]]}
    _send_with_key(caption_client(), "/", body, brand_key, "old")
    current = runtime.current()
    now = current.clock.now()

    kept = idempotency_keys.sweep_old_keys(current, now=now + dt.timedelta(hours=23))
    pruned = idempotency_keys.sweep_old_keys(current, now=now + dt.timedelta(hours=25))

    assert kept == {"idempotency_keys_pruned": 0}
    assert pruned == {"idempotency_keys_pruned": 1}


def test_a_second_request_while_the_first_still_writes_is_a_409_not_a_503(
    brand_key, standin
) -> None:
    """Gemini may take longer than a database read may wait: the key is busy."""
    body = {"products": [catalog(1)[0]["sku"]]}
    release = standin.hold_answers()
    app = make_app("api", "http")
    answers: list = [None]

    def ask_first() -> None:
        answers[0] = _send_with_key(
            app.test_client(), "/v1/captions", body, brand_key, "busy"
        )

    first = threading.Thread(target=ask_first)
    first.start()
    try:
        assert standin.wait_for_requests(1), "the first request never reached Gemini"
        second = _send_with_key(
            app.test_client(), "/v1/captions", body, brand_key, "busy"
        )
    finally:
        release.set()
        first.join()
    third = _send_with_key(app.test_client(), "/v1/captions", body, brand_key, "busy")

    assert second.status_code == 409, second.get_json()
    assert second.get_json()["error"]["field"] == "Idempotency-Key"
    assert "Retry-After" in second.headers
    assert answers[0].status_code == 201
    assert third.headers["Idempotent-Replayed"] == "true"
    assert len(_stored_posts(brand_key)) == 1


# A caption request with an Idempotency-Key, sent by an instance of its own: the
# api function's real app in another interpreter, which the test can stop or kill
# mid-request.
ANOTHER_INSTANCE = """
import json, sys
from functions_framework import create_app
app = create_app("api", "functions/main.py", "http")
answer = app.test_client().post(
    "/v1/captions",
    data=sys.argv[1],
    headers={"Authorization": "Bearer " + sys.argv[2], "Idempotency-Key": "lost"},
    content_type="application/json",
)
print(answer.status_code)
"""


@pytest.mark.parametrize("lost", ["killed", "stopped"])
def test_a_key_held_by_an_instance_lost_mid_request_is_free_again(
    brand_key, standin, monkeypatch, lost
) -> None:
    """An instance whose process dies closes its connection, and the database
    rolls its claim back at once. One that stops answering (frozen, cut off from
    the network) keeps its connection open: decision 0106 has the database end
    the session once it has sat idle past CARTCAST_CAPTION_IDLE_MAX_S."""
    monkeypatch.setenv("GEMINI_TIMEOUT_S", "2")
    monkeypatch.setenv("CARTCAST_CAPTION_IDLE_MAX_S", "6")
    runtime.reset()
    body = {"products": [catalog(1)[0]["sku"]]}
    release = standin.hold_answers()
    instance = subprocess.Popen(
        [sys.executable, "-c", ANOTHER_INSTANCE, json.dumps(body), brand_key],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": "functions"},
        stdout=subprocess.DEVNULL,
    )
    try:
        # Arrange: the other instance holds the key, waiting for Gemini; then it
        # is lost.
        assert standin.wait_for_requests(1), "the other instance never reached Gemini"
        instance.send_signal(signal.SIGKILL if lost == "killed" else signal.SIGSTOP)
        release.set()

        # Act: once its session is gone, the client sends the request again.
        session_ended = until_no_transaction_is_left_idle(runtime.current().database)
        retry = _send_with_key(
            make_app("api", "http").test_client(),
            "/v1/captions",
            body,
            brand_key,
            "lost",
        )
    finally:
        release.set()
        instance.kill()
        instance.wait()

    # Assert: the retry ran anew, and only its drafts are stored.
    assert session_ended, "the lost instance's transaction was never ended"
    assert retry.status_code == 201, retry.get_json()
    assert "Idempotent-Replayed" not in retry.headers
    assert len(_stored_posts(brand_key)) == 1


def test_a_product_retired_while_gemini_writes_its_copy_gets_no_draft(
    brand_key, standin
) -> None:
    """Decision 0110: a product retired while its copy is being written is
    refused by name, not drafted. The check before Gemini's call cannot see a
    retirement that lands during it, so it is made again once the copy is back."""
    sku = catalog(1)[0]["sku"]
    api = make_app("api", "http").test_client()
    products = api.get("/v1/products?limit=100", headers=auth(brand_key)).get_json()
    (product_id,) = [row["id"] for row in products["products"] if row["sku"] == sku]
    release = standin.hold_answers()
    answers: list = [None]

    def ask() -> None:
        answers[0] = post_json(
            make_app("api", "http").test_client(),
            "/v1/captions",
            {"products": [sku]},
            brand_key,
        )

    asking = threading.Thread(target=ask)
    asking.start()
    try:
        assert standin.wait_for_requests(1), "the request never reached Gemini"
        retired = api.delete(f"/v1/products/{product_id}", headers=auth(brand_key))
    finally:
        release.set()
        asking.join()

    assert retired.status_code == 200, retired.get_json()
    assert answers[0].status_code == 409, answers[0].get_json()
    error = answers[0].get_json()["error"]
    assert error["field"] == "products[0]" and "retired" in error["message"]
    assert _stored_posts(brand_key) == []
