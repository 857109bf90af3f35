"""Captions keep clear of the brand's recent posts, through the api function."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from cartcast import runtime
from cartcast.near_duplicates import copy_words, similarity
from infra.gemini_standin import GeminiStandIn
from tests.conftest import OPERATOR_KEY, START
from tests.helpers import auth, brand_body, catalog, post_json

PRODUCT = catalog(1)[0]


@pytest.fixture
def brand_key(client) -> str:
    response = post_json(client, "/v1/brands", brand_body(), OPERATOR_KEY)
    key = response.get_json()["api_key"]
    post_json(client, "/v1/products", [PRODUCT], key)
    return key


def caption(client, key: str) -> dict:
    response = post_json(client, "/v1/captions", {"products": [PRODUCT["sku"]]}, key)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["posts"][0]


def copy_of(post: dict) -> str:
    return post["text"].replace(post["link"], "")


def edit_one_word(post_id: str, text: str) -> str:
    """Change the post's longest word, as a person editing it might; return the text.

    No route edits a post's text yet, so the edit goes to the database.
    """
    longest = max((word for word in text.split() if word.isalpha()), key=len)
    edited = re.sub(rf"\b{longest}\b", "remarkable", text, count=1)
    with runtime.current().database.transaction() as tx:
        tx.execute(
            "UPDATE posts SET text = :text WHERE id = :id", text=edited, id=post_id
        )
    return edited


def test_a_one_word_edit_of_a_recent_post_is_refused_as_a_near_duplicate(
    client, brand_key
) -> None:
    first = caption(client, brand_key)
    edited = edit_one_word(first["id"], first["text"])

    again = caption(client, brand_key)

    # Not the same text, so a check for exact repeats would have let it through.
    assert copy_words(edited) != copy_words(first["text"])
    assert similarity(copy_words(edited), copy_words(first["text"])) >= 0.8
    assert copy_of(again) != copy_of(first)
    assert similarity(copy_words(again["text"]), copy_words(edited)) < 0.8
    assert again["checks"]["distinct"] is True


@pytest.mark.parametrize(
    ("window_days", "published_days_later", "held"),
    [
        (None, None, False),  # created 31 days ago: outside the default 30 days
        ("45", None, True),  # inside a window of 45 days
        (None, 20, True),  # created 31 days ago, but published 11 days ago
    ],
)
def test_the_window_decides_which_posts_a_caption_must_not_resemble(
    client, brand_key, clock_file, monkeypatch, window_days, published_days_later, held
) -> None:
    if window_days:
        monkeypatch.setenv("CARTCAST_NEAR_DUPLICATE_DAYS", window_days)
        runtime.reset()  # settings are read once per process; this is a new one
    first = caption(client, brand_key)
    edit_one_word(first["id"], first["text"])
    if published_days_later is not None:
        with runtime.current().database.transaction() as tx:
            tx.execute(
                "UPDATE posts SET state = 'published', published_at = :at "
                "WHERE id = :id",
                at=START + dt.timedelta(days=published_days_later),
                id=first["id"],
            )
    clock_file.set(START + dt.timedelta(days=31))

    again = caption(client, brand_key)

    # Held against it, the engine moves on from its first phrasing; else not.
    assert (copy_of(again) != copy_of(first)) is held


def test_a_cancelled_post_is_not_held_against_a_caption(client, brand_key) -> None:
    first = caption(client, brand_key)
    cancelled = client.post(f"/v1/posts/{first['id']}/cancel", headers=auth(brand_key))
    assert cancelled.status_code == 200

    again = caption(client, brand_key)

    assert copy_of(again) == copy_of(first)


def test_a_reply_to_a_mention_is_not_held_against_a_caption(client, brand_key) -> None:
    # A reply answers one customer in a conversation, not on the brand's feed: a
    # caption that says what the brand once answered is not a repeat of its posts.
    first = caption(client, brand_key)
    client.post(f"/v1/posts/{first['id']}/cancel", headers=auth(brand_key))
    with runtime.current().database.transaction() as tx:
        tx.execute(
            "INSERT INTO posts (id, brand_id, kind, text, state, engine, "
            "weighted_length, published_at, x_post_id, in_reply_to, "
            "reply_conversation_id, created_by, created_at, updated_at) "
            "SELECT gen_random_uuid(), brand_id, 'text', :text, 'published', "
            "'manual', 100, :at, '1800000000000000001', '1900000000000000001', "
            "'1900000000000000001', 'editor', :at, :at FROM posts WHERE id = :id",
            text=copy_of(first).strip(),
            at=START,
            id=first["id"],
        )

    again = caption(client, brand_key)

    assert copy_of(again) == copy_of(first)


def test_gemini_copy_near_a_recent_post_falls_back_naming_that_post(
    client, brand_key, monkeypatch
) -> None:
    with GeminiStandIn() as standin:
        monkeypatch.setenv("GEMINI_API_KEY", standin.api_key)
        monkeypatch.setenv("GEMINI_BASE_URL", standin.base_url)
        runtime.reset()  # settings are read once per process; this is a new one
        first = caption(client, brand_key)
        edited = edit_one_word(first["id"], first["text"])

        # The stand-in answers the same product with the same copy.
        again = caption(client, brand_key)

    score = similarity(copy_words(first["text"]), copy_words(edited))
    assert first["engine"] == "gemini"
    assert again["engine"] == "template"
    # The post is named by its id alone: none of its words (decision 0022).
    assert again["fallback_reason"] == (
        f"gemini: near-duplicate of post {first['id']} (similarity {score:.2f})"
    )
    assert again["checks"]["distinct"] is True
