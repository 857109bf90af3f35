"""Every publish attempt is stored with its times, outcome, X's status and a class.

Through tweepy against the X sandbox; the API test runs the real `api` and
`publish_due_posts` functions, as a brand and the scheduler would.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import socket
import uuid

import pytest

from cartcast import attempts, events, publishing
from infra.x_sandbox import DUPLICATE_DETAIL, XSandbox
from tests.conftest import OPERATOR_KEY, START, make_app
from tests.helpers import ALPHA, auth, brand_body, catalog, make_brand, post_json


def attempts_of(runtime, brand_id: str) -> list[dict]:
    with runtime.database.transaction() as tx:
        post_id = str(tx.scalar("SELECT id FROM posts WHERE brand_id = :b", b=brand_id))
        return attempts.list_attempts(tx, brand_id=brand_id, post_id=post_id)


def summary(found: list[dict]) -> list[tuple]:
    return [(a["outcome"], a["x_status"], a["error_class"]) for a in found]


@pytest.fixture
def due_post(x_runtime, clock) -> str:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)
    clock.advance(dt.timedelta(days=7))
    return brand_id


def test_a_published_attempt_keeps_x_status_201_and_no_error_class(
    x_runtime, clock, due_post
) -> None:
    publishing.publish_due(x_runtime, as_of=clock.now())

    (attempt,) = attempts_of(x_runtime, due_post)
    assert summary([attempt]) == [("published", 201, None)]
    assert attempt["x_post_id"] and attempt["error"] is None
    assert attempt["started_at"] <= attempt["sent_at"] <= attempt["finished_at"]


def test_a_rate_limit_is_stored_as_429_rate_limited(
    x_runtime, clock, x_sandbox, due_post
) -> None:
    x_sandbox.add_fault(method="POST", path_prefix="/2/tweets", status=429)

    publishing.publish_due(x_runtime, as_of=clock.now())

    assert summary(attempts_of(x_runtime, due_post)) == [
        ("rate_limited", 429, "rate_limited")
    ]


def test_an_outage_is_stored_as_503_server_error_and_the_retry_as_published(
    x_runtime, clock, x_sandbox, due_post
) -> None:
    x_sandbox.add_fault(method="POST", path_prefix="/2/tweets", status=503)

    publishing.publish_due(x_runtime, as_of=clock.now())
    clock.advance(dt.timedelta(hours=1))
    publishing.publish_due(x_runtime, as_of=clock.now())

    assert summary(attempts_of(x_runtime, due_post)) == [
        ("retry", 503, "server_error"),
        ("published", 201, None),
    ]


def test_a_duplicate_refusal_is_stored_as_403_duplicate(
    x_runtime, clock, x_sandbox, due_post
) -> None:
    x_sandbox.add_fault(
        method="POST", path_prefix="/2/tweets", status=403, detail=DUPLICATE_DETAIL
    )

    publishing.publish_due(x_runtime, as_of=clock.now())

    (attempt,) = attempts_of(x_runtime, due_post)
    assert summary([attempt]) == [("unknown", 403, "duplicate")]
    assert "duplicate content" in attempt["error"]


def test_a_refused_token_is_stored_as_401_unauthorized(
    x_runtime, clock, x_sandbox, due_post
) -> None:
    x_sandbox.add_fault(method="POST", path_prefix="/2/tweets", status=401)

    publishing.publish_due(x_runtime, as_of=clock.now())

    assert summary(attempts_of(x_runtime, due_post)) == [("held", 401, "unauthorized")]


def test_an_answer_that_comes_too_late_is_stored_without_status_as_timeout(
    x_runtime, clock, x_sandbox, due_post
) -> None:
    x_runtime.settings = dataclasses.replace(x_runtime.settings, x_timeout_s=0.2)
    x_sandbox.add_fault(method="POST", path_prefix="/2/tweets", delay_s=0.6)

    publishing.publish_due(x_runtime, as_of=clock.now())

    assert summary(attempts_of(x_runtime, due_post)) == [("unknown", None, "timeout")]
    assert len(x_sandbox.snapshot()["posts"]) == 1  # X took it; its answer was lost


def test_a_dropped_connection_is_stored_without_status_as_dropped(
    x_runtime, clock, x_sandbox, due_post
) -> None:
    x_sandbox.add_fault(method="POST", path_prefix="/2/tweets", drop=True)

    publishing.publish_due(x_runtime, as_of=clock.now())

    assert summary(attempts_of(x_runtime, due_post)) == [("unknown", None, "dropped")]


def test_a_refused_connection_is_stored_without_status_as_network(
    x_runtime, clock, due_post
) -> None:
    with socket.socket() as unused:  # a loopback port nobody listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    x_runtime.settings = dataclasses.replace(
        x_runtime.settings, x_api_base_url=f"http://127.0.0.1:{port}"
    )

    publishing.publish_due(x_runtime, as_of=clock.now())

    assert summary(attempts_of(x_runtime, due_post)) == [("retry", None, "network")]


def test_a_post_held_by_the_catalog_is_stored_as_held_claims_without_status(
    x_runtime, clock, x_sandbox, due_post
) -> None:
    with x_runtime.database.transaction() as tx:
        tx.execute("DELETE FROM products WHERE brand_id = :b", b=due_post)

    publishing.publish_due(x_runtime, as_of=clock.now())

    assert summary(attempts_of(x_runtime, due_post)) == [("held", None, "held_claims")]
    assert x_sandbox.snapshot()["posts"] == []


def test_the_database_accepts_exactly_the_documented_error_classes(runtime) -> None:
    with runtime.database.transaction() as tx:
        check = tx.scalar(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conname = 'publish_attempts_error_class_check'"
        )

    assert set(re.findall(r"'(\w+)'", check)) == attempts.ERROR_CLASSES


def tick(at: dt.datetime) -> None:
    headers, body = events.envelope(
        topic="publish_due_posts",
        project="test",
        payload={},
        message_id=uuid.uuid4().hex,
        time=at,
    )
    client = make_app("publish_due_posts", "cloudevent").test_client()
    assert client.post("/", headers=headers, data=json.dumps(body)).status_code < 300


def test_the_api_lists_a_posts_attempts_oldest_first(
    function_env, monkeypatch, clock_file
) -> None:
    with XSandbox(clock=clock_file) as sandbox:
        sandbox.register_account(**ALPHA, token="token-alpha")
        monkeypatch.setenv("X_API_BASE_URL", sandbox.base_url)
        api = make_app("api", "http").test_client()
        body = brand_body(
            x_user_id=ALPHA["user_id"],
            x_username=ALPHA["username"],
            x_access_token="token-alpha",
        )
        key = post_json(api, "/v1/brands", body, OPERATOR_KEY).get_json()["api_key"]
        post_json(api, "/v1/products", catalog(1), key)
        post_json(api, "/v1/captions", {"products": [catalog(1)[0]["sku"]]}, key)
        post_json(api, "/v1/schedule", {"limit": 1}, key)
        sandbox.add_fault(method="POST", path_prefix="/2/tweets", status=503)

        for later in (START + dt.timedelta(days=7), START + dt.timedelta(days=8)):
            clock_file.set(later)
            tick(later)

        listed = api.get("/v1/posts?state=published", headers=auth(key)).get_json()
        post_id = listed["posts"][0]["id"]
        answer = api.get(f"/v1/posts/{post_id}/attempts", headers=auth(key))

    assert answer.status_code == 200
    found = answer.get_json()["attempts"]
    assert summary(found) == [("retry", 503, "server_error"), ("published", 201, None)]
    assert "503" in found[0]["error"] and found[1]["x_post_id"]
