"""The X sandbox speaks X's wire format, checked over plain HTTP."""

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

from cartcast.clock import FileClock, FixedClock
from infra.x_sandbox import XSandbox

START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
SHOP = {"user_id": "1500000000000000001", "username": "shop", "name": "Shop"}
OTHER = {"user_id": "1500000000000000002", "username": "other", "name": "Other"}
CUSTOMER = {"id": "1600000000000000001", "username": "ada", "name": "Ada"}
REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def clock():
    return FixedClock(START)


@pytest.fixture
def sandbox(clock):
    with XSandbox(clock=clock) as sandbox:
        sandbox.register_account(**SHOP, token="shop-token", followers_count=1520)
        sandbox.register_account(**OTHER, token="other-token")
        yield sandbox


@pytest.fixture
def http(sandbox):
    """Return a function that calls the sandbox as the shop's account."""

    def call(method, path, token="shop-token", **kwargs):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.request(
            method, sandbox.base_url + path, headers=headers, timeout=5, **kwargs
        )

    return call


def post(http, text, **kwargs):
    return http("POST", "/2/tweets", json={"text": text}, **kwargs)


def mention(sandbox, text, **kwargs):
    return sandbox.add_mention(
        to_user_id=SHOP["user_id"], text=text, author=CUSTOMER, **kwargs
    )


# Posting


def test_creating_a_post_answers_201_with_x_body_and_headers(http, clock):
    response = post(http, "Spring sale starts today")

    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.headers["x-rate-limit-limit"] == "100"
    assert response.headers["x-rate-limit-remaining"] == "99"
    reset = int(response.headers["x-rate-limit-reset"])
    assert reset == int((clock.now() + dt.timedelta(minutes=15)).timestamp())
    data = response.json()["data"]
    assert data == {
        "id": data["id"],
        "text": "Spring sale starts today",
        "edit_history_tweet_ids": [data["id"]],
    }


def test_post_ids_are_19_digit_strings_that_grow_with_time(http, clock):
    first = post(http, "one").json()["data"]["id"]
    second = post(http, "two").json()["data"]["id"]
    clock.advance(dt.timedelta(seconds=1))
    third = post(http, "three").json()["data"]["id"]

    assert all(len(i) == 19 and i.isdigit() for i in (first, second, third))
    assert int(first) < int(second) < int(third)


def test_a_request_without_a_known_token_is_refused_like_x(http):
    missing = http("GET", "/2/users/me", token=None)
    unknown = http("GET", "/2/users/me", token="stolen")

    for response in (missing, unknown):
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert "x-rate-limit-limit" not in response.headers
        assert response.json() == {
            "title": "Unauthorized",
            "detail": "Unauthorized",
            "type": "about:blank",
            "status": 401,
        }


def test_empty_text_is_an_invalid_request(http):
    response = post(http, "   ")

    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "https://api.x.com/2/problems/invalid-request"
    assert body["title"] == "Invalid Request"
    assert body["errors"][0]["parameters"] == {"text": ["   "]}


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("a" * 280, 201),
        ("a" * 281, 403),
        ("の" * 140, 201),  # CJK weighs 2: 280
        ("の" * 141, 403),
        ("x" * 256 + " https://shop.example.com/" + "p" * 40, 201),  # a link is 23
    ],
)
def test_length_is_weighted_as_twitter_text_counts_it(http, text, status):
    response = post(http, text)

    assert response.status_code == status
    if status == 403:
        assert response.json()["detail"] == "Your Tweet text is too long."


def test_the_same_text_twice_is_forbidden_as_duplicate_content(http):
    post(http, "Restocked: linen shirts")

    again = post(http, "Restocked: linen shirts")
    by_another_account = post(http, "Restocked: linen shirts", token="other-token")

    assert again.status_code == 403
    assert again.json() == {
        "title": "Forbidden",
        "detail": "You are not allowed to create a Tweet with duplicate content.",
        "type": "about:blank",
        "status": 403,
    }
    assert by_another_account.status_code == 201


def test_a_reply_to_an_unknown_post_is_forbidden(http):
    response = http(
        "POST",
        "/2/tweets",
        json={"text": "thanks!", "reply": {"in_reply_to_tweet_id": "1234567890"}},
    )

    assert response.status_code == 403
    assert "deleted or not visible" in response.json()["detail"]


def test_links_come_back_as_23_character_tco_links(http):
    response = post(http, "New in: https://shop.example.com/products/linen-shirt")

    text = response.json()["data"]["text"]
    assert text.startswith("New in: https://t.co/")
    assert len(text) == len("New in: ") + 23


# Mentions


def test_a_mention_carries_only_the_fields_asked_for(sandbox, http):
    mention_id = mention(sandbox, "@shop do you ship to Lyon?")

    bare = http("GET", f"/2/users/{SHOP['user_id']}/mentions").json()
    rich = http(
        "GET",
        f"/2/users/{SHOP['user_id']}/mentions",
        params={
            "tweet.fields": "created_at,author_id,conversation_id,public_metrics",
            "expansions": "author_id",
            "user.fields": "username,name,public_metrics",
        },
    ).json()

    assert bare["data"] == [
        {
            "id": mention_id,
            "text": "@shop do you ship to Lyon?",
            "edit_history_tweet_ids": [mention_id],
        }
    ]
    assert "includes" not in bare
    assert rich["data"][0]["created_at"] == "2026-03-02T09:00:00.000Z"
    assert rich["data"][0]["author_id"] == CUSTOMER["id"]
    assert rich["data"][0]["conversation_id"] == mention_id
    assert set(rich["data"][0]["public_metrics"]) == {
        "retweet_count",
        "reply_count",
        "like_count",
        "quote_count",
        "bookmark_count",
        "impression_count",
    }
    author = rich["includes"]["users"][0]
    assert author["username"] == "ada"
    assert author["public_metrics"]["followers_count"] == 0
    assert rich["meta"] == {
        "result_count": 1,
        "newest_id": mention_id,
        "oldest_id": mention_id,
    }


def test_a_reply_mention_names_the_conversation_and_the_post(sandbox, http):
    post_id = post(http, "Which colour next?").json()["data"]["id"]
    reply_id = mention(sandbox, "@shop green!", in_reply_to_tweet_id=post_id)

    answer = http(
        "GET",
        f"/2/users/{SHOP['user_id']}/mentions",
        params={
            "tweet.fields": "conversation_id,in_reply_to_user_id,referenced_tweets"
        },
    ).json()

    assert answer["data"][0]["id"] == reply_id
    assert answer["data"][0]["conversation_id"] == post_id
    assert answer["data"][0]["in_reply_to_user_id"] == SHOP["user_id"]
    assert answer["data"][0]["referenced_tweets"] == [
        {"type": "replied_to", "id": post_id}
    ]


def test_an_empty_timeline_answers_only_a_zero_count(http):
    response = http("GET", f"/2/users/{SHOP['user_id']}/mentions")

    assert response.status_code == 200
    assert response.json() == {"meta": {"result_count": 0}}


@pytest.mark.parametrize("max_results", ["4", "101", "ten"])
def test_max_results_outside_5_to_100_is_an_invalid_request(http, max_results):
    response = http(
        "GET",
        f"/2/users/{SHOP['user_id']}/mentions",
        params={"max_results": max_results},
    )

    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["parameters"] == {"max_results": [max_results]}
    assert "is not between 5 and 100" in error["message"]


def test_pagination_walks_every_mention_once_newest_first(sandbox, http):
    ids = [mention(sandbox, f"@shop question {n}") for n in range(12)]

    seen, pages, token = [], 0, None
    while True:
        params = {"max_results": 5, "pagination_token": token}
        page = http("GET", f"/2/users/{SHOP['user_id']}/mentions", params=params)
        pages += 1
        seen += [m["id"] for m in page.json()["data"]]
        token = page.json()["meta"].get("next_token")
        if token is None:
            break

    assert pages == 3
    assert seen == list(reversed(ids))


def test_a_page_token_goes_on_with_the_since_id_it_was_issued_for(sandbox, http):
    oldest = mention(sandbox, "@shop first")
    ids = [mention(sandbox, f"@shop question {n}") for n in range(8)]
    query = {"max_results": 5, "since_id": oldest}
    first = http("GET", f"/2/users/{SHOP['user_id']}/mentions", params=query).json()

    query["pagination_token"] = first["meta"]["next_token"]
    second = http("GET", f"/2/users/{SHOP['user_id']}/mentions", params=query)

    assert second.status_code == 200
    assert [m["id"] for m in second.json()["data"]] == list(reversed(ids[:3]))


@pytest.mark.parametrize(
    "changed", [{"since_id": None}, {"since_id": "later"}, {"until_id": "later"}]
)
def test_a_page_token_sent_with_another_query_is_an_invalid_request(
    sandbox, http, changed
):
    # X ties a page token to the query that issued it.
    oldest = mention(sandbox, "@shop first")
    ids = [mention(sandbox, f"@shop question {n}") for n in range(8)]
    query = {"max_results": 5, "since_id": oldest}
    first = http("GET", f"/2/users/{SHOP['user_id']}/mentions", params=query).json()
    token = first["meta"]["next_token"]

    query["pagination_token"] = token
    query.update({k: ids[-1] if v == "later" else v for k, v in changed.items()})
    response = http("GET", f"/2/users/{SHOP['user_id']}/mentions", params=query)

    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "https://api.x.com/2/problems/invalid-request"
    assert body["errors"][0]["parameters"] == {"pagination_token": [token]}


def test_since_id_returns_only_newer_mentions(sandbox, http):
    old = mention(sandbox, "@shop first")
    new = mention(sandbox, "@shop second")

    answer = http(
        "GET", f"/2/users/{SHOP['user_id']}/mentions", params={"since_id": old}
    ).json()

    assert [m["id"] for m in answer["data"]] == [new]


def test_a_mention_stays_hidden_until_the_clock_reaches_it(sandbox, http, clock):
    later = clock.now() + dt.timedelta(hours=2)
    mention(sandbox, "@shop hello from the future", created_at=later)

    before = http("GET", f"/2/users/{SHOP['user_id']}/mentions").json()
    clock.set(later)
    after = http("GET", f"/2/users/{SHOP['user_id']}/mentions").json()

    assert before == {"meta": {"result_count": 0}}
    assert after["meta"]["result_count"] == 1


def test_an_unknown_tweet_field_is_an_invalid_request(http):
    response = http(
        "GET",
        f"/2/users/{SHOP['user_id']}/mentions",
        params={"tweet.fields": "created_at,mood"},
    )

    assert response.status_code == 400
    assert response.json()["errors"][0]["parameters"] == {"tweet.fields": ["mood"]}


def test_the_own_timeline_lists_the_accounts_posts_since_a_time(http, clock):
    post(http, "monday")
    clock.advance(dt.timedelta(days=1))
    tuesday = post(http, "tuesday").json()["data"]["id"]

    answer = http(
        "GET",
        f"/2/users/{SHOP['user_id']}/tweets",
        params={"start_time": "2026-03-03T00:00:00Z", "tweet.fields": "created_at"},
    ).json()

    assert [p["id"] for p in answer["data"]] == [tuesday]
    assert answer["data"][0]["created_at"] == "2026-03-03T09:00:00.000Z"


# Users


def test_users_me_and_user_lookup_answer_like_x(http):
    me = http("GET", "/2/users/me").json()
    user = http(
        "GET",
        f"/2/users/{SHOP['user_id']}",
        params={"user.fields": "public_metrics"},
    ).json()
    nobody = http("GET", "/2/users/42").json()

    assert me == {"data": {"id": SHOP["user_id"], "name": "Shop", "username": "shop"}}
    assert user["data"]["public_metrics"]["followers_count"] == 1520
    assert nobody["errors"][0]["detail"] == "Could not find user with id: [42]."
    assert "data" not in nobody


# Post lookup and metrics


def test_post_lookup_accepts_1_to_100_ids(http):
    too_many = ",".join(str(10**18 + n) for n in range(101))

    response = http("GET", "/2/tweets", params={"ids": too_many})

    assert response.status_code == 400
    assert response.json()["type"] == "https://api.x.com/2/problems/invalid-request"


def test_unknown_ids_come_back_as_not_found_errors_beside_the_data(http):
    post_id = post(http, "hello").json()["data"]["id"]

    answer = http("GET", "/2/tweets", params={"ids": f"{post_id},1234"}).json()

    assert [p["id"] for p in answer["data"]] == [post_id]
    assert answer["errors"] == [
        {
            "value": "1234",
            "detail": "Could not find tweet with ids: [1234].",
            "title": "Not Found Error",
            "resource_type": "tweet",
            "parameter": "ids",
            "resource_id": "1234",
            "type": "https://api.x.com/2/problems/resource-not-found",
        }
    ]


def test_a_deleted_post_is_looked_up_as_not_found_even_with_private_fields(
    http, sandbox
):
    kept = post(http, "kept").json()["data"]["id"]
    gone = post(http, "gone").json()["data"]["id"]
    deleted = requests.post(
        sandbox.base_url + "/_sandbox/deletions", json={"post_id": gone}, timeout=5
    )
    params = {"ids": f"{kept},{gone}", "tweet.fields": "non_public_metrics"}

    answer = http("GET", "/2/tweets", params=params)

    assert deleted.status_code == 200
    assert answer.status_code == 200
    assert [p["id"] for p in answer.json()["data"]] == [kept]
    (error,) = answer.json()["errors"]
    assert error["type"] == "https://api.x.com/2/problems/resource-not-found"
    assert error["detail"] == f"Could not find tweet with ids: [{gone}]."
    assert (error["value"], error["resource_id"]) == (gone, gone)
    assert post(http, "gone").status_code == 201


def test_only_every_id_unknown_leaves_data_out(http, sandbox):
    gone = post(http, "short-lived").json()["data"]["id"]
    sandbox.delete_post(gone)

    answer = http("GET", "/2/tweets", params={"ids": gone}).json()

    assert set(answer) == {"errors"}
    with pytest.raises(ValueError):
        sandbox.delete_post(gone)


def test_private_metrics_of_another_accounts_post_are_refused_per_field(http):
    theirs = post(http, "not yours", token="other-token").json()["data"]["id"]

    answer = http(
        "GET",
        "/2/tweets",
        params={"ids": theirs, "tweet.fields": "public_metrics,non_public_metrics"},
    ).json()

    assert "data" not in answer
    assert [e["field"] for e in answer["errors"]] == [
        "non_public_metrics.impression_count",
        "non_public_metrics.url_link_clicks",
        "non_public_metrics.user_profile_clicks",
    ]
    assert {e["type"] for e in answer["errors"]} == {
        "https://api.x.com/2/problems/not-authorized-for-field"
    }


def test_private_metrics_are_shown_for_30_days_only(http, clock):
    post_id = post(http, "a month from now").json()["data"]["id"]
    params = {"ids": post_id, "tweet.fields": "non_public_metrics"}

    clock.advance(dt.timedelta(days=29, hours=23))
    young = http("GET", "/2/tweets", params=params).json()
    clock.advance(dt.timedelta(hours=1))
    old = http("GET", "/2/tweets", params=params).json()

    assert "non_public_metrics" in young["data"][0]
    assert "data" not in old
    assert len(old["errors"]) == 3


def test_metrics_depend_only_on_age_and_never_decrease(http, clock):
    post_id = post(http, "Linen shirts are back https://shop.example.com").json()[
        "data"
    ]["id"]
    params = {"ids": post_id, "tweet.fields": "public_metrics,non_public_metrics"}

    readings = []
    for hours in (0, 1, 3, 6, 12, 24, 72, 24 * 7, 24 * 29):
        clock.set(START + dt.timedelta(hours=hours))
        readings.append(http("GET", "/2/tweets", params=params).json()["data"][0])
    clock.set(START + dt.timedelta(hours=12))
    again = http("GET", "/2/tweets", params=params).json()["data"][0]

    assert readings[0]["public_metrics"]["impression_count"] == 0
    assert readings[-1]["public_metrics"]["impression_count"] > 0
    assert readings[-1]["non_public_metrics"]["url_link_clicks"] > 0
    for earlier, later in zip(readings, readings[1:], strict=False):
        for group in ("public_metrics", "non_public_metrics"):
            for name, value in earlier[group].items():
                assert later[group][name] >= value
    assert again == readings[4]


def test_link_clicks_stay_zero_without_a_link(http, clock):
    post_id = post(http, "No link here").json()["data"]["id"]
    clock.advance(dt.timedelta(days=3))

    answer = http(
        "GET",
        "/2/tweets",
        params={"ids": post_id, "tweet.fields": "non_public_metrics"},
    ).json()

    assert answer["data"][0]["non_public_metrics"]["url_link_clicks"] == 0
    assert answer["data"][0]["non_public_metrics"]["user_profile_clicks"] > 0


# Rate limits and faults


def test_a_limit_applies_per_token_and_endpoint_and_resets_after_15_minutes(
    sandbox, http, clock
):
    sandbox.set_limit("POST /2/tweets", 2)
    post(http, "one")
    post(http, "two")

    spent = post(http, "three")
    other_token = post(http, "three", token="other-token")
    other_endpoint = http("GET", "/2/users/me")
    clock.advance(dt.timedelta(minutes=15))
    renewed = post(http, "three")

    assert spent.status_code == 429
    assert spent.headers["x-rate-limit-remaining"] == "0"
    assert int(spent.headers["x-rate-limit-reset"]) == int(
        (START + dt.timedelta(minutes=15)).timestamp()
    )
    assert spent.json()["title"] == "Too Many Requests"
    assert other_token.status_code == 201
    assert other_endpoint.status_code == 200
    assert renewed.status_code == 201


def test_a_queued_503_answers_in_xs_format_then_clears(sandbox, http):
    requests.post(
        sandbox.base_url + "/_sandbox/faults",
        json={"method": "POST", "path_prefix": "/2/tweets", "status": 503},
        timeout=5,
    )

    failed = post(http, "hello")
    served = post(http, "hello")

    assert failed.status_code == 503
    assert failed.json() == {
        "title": "Service Unavailable",
        "detail": "Service Unavailable",
        "type": "about:blank",
        "status": 503,
    }
    assert served.status_code == 201


def test_a_queued_429_carries_the_rate_limit_headers(sandbox, http, clock):
    sandbox.add_fault(
        method="GET", path_prefix="/2/users/", status=429, count=2, reset_in_s=120
    )

    first = http("GET", "/2/users/me")
    second = http("GET", f"/2/users/{SHOP['user_id']}/mentions")
    third = http("GET", "/2/users/me")

    for response in (first, second):
        assert response.status_code == 429
        assert response.headers["x-rate-limit-remaining"] == "0"
        assert int(response.headers["x-rate-limit-reset"]) == int(
            (clock.now() + dt.timedelta(seconds=120)).timestamp()
        )
    assert third.status_code == 200


def test_a_dropped_answer_closes_the_connection_after_the_post_is_made(sandbox, http):
    sandbox.add_fault(method="POST", path_prefix="/2/tweets", drop=True)

    with pytest.raises(requests.ConnectionError):
        post(http, "did it go out?")

    assert [p["text"] for p in sandbox.snapshot()["posts"]] == ["did it go out?"]


def test_an_unserved_drop_closes_the_connection_before_the_post_is_made(sandbox, http):
    requests.post(
        sandbox.base_url + "/_sandbox/faults",
        json={
            "method": "POST",
            "path_prefix": "/2/tweets",
            "drop": True,
            "unserved": True,
        },
        timeout=5,
    )

    with pytest.raises(requests.ConnectionError):
        post(http, "did it go out?")
    again = post(http, "did it go out?")

    assert again.status_code == 201  # not a duplicate: X never had the first
    assert [p["text"] for p in sandbox.snapshot()["posts"]] == ["did it go out?"]
    statuses = sandbox.snapshot()["requests"]["POST /2/tweets"]["statuses"]
    assert statuses == {"0": 1, "201": 1}


def test_unserved_is_refused_without_drop(sandbox):
    with pytest.raises(ValueError, match="drop=True"):
        sandbox.add_fault(method="POST", path_prefix="/2/tweets", unserved=True)


def test_clearing_faults_forgets_them_and_lets_held_answers_go(sandbox, http):
    sandbox.add_fault(method="POST", path_prefix="/2/tweets", hold=True, count=5)
    sandbox.add_fault(method="POST", path_prefix="/2/tweets", status=503)

    sandbox.clear_faults()

    assert post(http, "straight through").status_code == 201
    assert sandbox.snapshot()["faults"] == []


def test_a_held_answer_leaves_only_when_released_the_post_made_before(sandbox, http):
    sandbox.add_fault(method="POST", path_prefix="/2/tweets", hold=True)
    answers = []
    sending = threading.Thread(target=lambda: answers.append(post(http, "held")))
    sending.start()

    while not sandbox.snapshot()["posts"]:
        sending.join(0.01)
    waiting = list(answers)
    requests.post(sandbox.base_url + "/_sandbox/release_answers", timeout=5)
    sending.join()

    assert waiting == []
    assert [p["text"] for p in sandbox.snapshot()["posts"]] == ["held"]
    assert answers[0].status_code == 201


def test_a_new_post_reaches_the_timeline_only_after_the_indexing_lag(
    sandbox, http, clock
):
    requests.post(
        sandbox.base_url + "/_sandbox/index_lag", json={"seconds": 90}, timeout=5
    )
    created = post(http, "indexed late").json()["data"]
    timeline = f"/2/users/{SHOP['user_id']}/tweets"

    at_once = http("GET", timeline).json()
    by_id = http("GET", "/2/tweets", params={"ids": created["id"]}).json()
    clock.advance(dt.timedelta(seconds=90))
    later = http("GET", timeline).json()

    assert at_once == {"meta": {"result_count": 0}}
    assert [p["id"] for p in by_id["data"]] == [created["id"]]
    assert [p["id"] for p in later["data"]] == [created["id"]]
    assert sandbox.snapshot()["index_lag_s"] == 90


def test_a_negative_indexing_lag_is_a_400(sandbox):
    response = requests.post(
        sandbox.base_url + "/_sandbox/index_lag", json={"seconds": -1}, timeout=5
    )

    assert response.status_code == 400
    assert "seconds" in response.json()["error"]


def test_with_a_latency_the_post_is_made_before_the_late_answer_leaves(sandbox):
    control = sandbox.base_url + "/_sandbox/latency"
    set_to = requests.post(control, json={"seconds": 2}, timeout=5)

    def post_waiting(text: str, timeout_s: float) -> requests.Response:
        return requests.post(
            sandbox.base_url + "/2/tweets",
            json={"text": text},
            headers={"Authorization": "Bearer shop-token"},
            timeout=timeout_s,
        )

    with pytest.raises(requests.ReadTimeout):
        post_waiting("made, then answered late", 0.3)
    # The control API is never slowed: a test can always take the latency back.
    state = requests.get(sandbox.base_url + "/_sandbox/state", timeout=0.3).json()
    requests.post(control, json={"seconds": 0}, timeout=0.3)
    answered = post_waiting("answered at once", 1)

    assert set_to.json() == {"data": {"latency_s": 2.0}}
    assert state["latency_s"] == 2.0
    assert [p["text"] for p in state["posts"]] == ["made, then answered late"]
    assert answered.status_code == 201


@pytest.mark.parametrize("seconds", [-0.5, 61, "nan"])
def test_a_latency_below_0_or_over_a_minute_is_a_400(sandbox, seconds):
    response = requests.post(
        sandbox.base_url + "/_sandbox/latency", json={"seconds": seconds}, timeout=5
    )

    assert response.status_code == 400
    assert "seconds must be 0 to 60" in response.json()["error"]
    assert sandbox.snapshot()["latency_s"] == 0


# Control API and process


def test_the_control_api_registers_injects_reports_and_resets(sandbox, http):
    control = sandbox.base_url + "/_sandbox/"
    requests.post(
        control + "accounts",
        json={
            "user_id": "1700000000000000001",
            "username": "newshop",
            "name": "New Shop",
            "token": "new-token",
            "followers_count": 12,
        },
        timeout=5,
    )
    injected = requests.post(
        control + "mentions",
        json={
            "to_user_id": "1700000000000000001",
            "mentions": [
                {"text": "@newshop hi", "author": CUSTOMER},
                {
                    "text": "@newshop later",
                    "author": CUSTOMER,
                    "created_at": "2026-03-02T10:00:00Z",
                },
            ],
        },
        timeout=5,
    )
    post(http, "hello", token="new-token")
    requests.post(
        control + "limits", json={"endpoint": "POST /2/tweets", "limit": 7}, timeout=5
    )

    state = requests.get(control + "state", timeout=5).json()
    requests.post(control + "reset", timeout=5)
    cleared = requests.get(control + "state", timeout=5).json()

    assert injected.status_code == 201
    assert [m["created_at"] for m in injected.json()["data"]] == [
        "2026-03-02T09:00:00.000Z",
        "2026-03-02T10:00:00.000Z",
    ]
    assert "newshop" in [a["username"] for a in state["accounts"]]
    assert "token" not in json.dumps(state["accounts"])
    assert [m["text"] for m in state["mentions"]] == ["@newshop hi", "@newshop later"]
    assert state["posts"][0]["username"] == "newshop"
    assert state["requests"]["POST /2/tweets"] == {"count": 1, "statuses": {"201": 1}}
    assert state["limits"]["POST /2/tweets"] == 7
    assert cleared["accounts"] == cleared["posts"] == cleared["mentions"] == []
    assert cleared["limits"]["POST /2/tweets"] == 100


def test_a_bad_control_request_is_a_400_naming_the_problem(sandbox):
    response = requests.post(
        sandbox.base_url + "/_sandbox/mentions",
        json={"to_user_id": "999", "mentions": [{"text": "x", "author": CUSTOMER}]},
        timeout=5,
    )

    assert response.status_code == 400
    assert "no account 999" in response.json()["error"]


def test_the_process_serves_on_its_port_writes_state_and_stops_on_sigterm(tmp_path):
    clock_file = tmp_path / "clock"
    FileClock(clock_file).set(START)
    state_file = tmp_path / "x-state.json"
    environment = {**os.environ, "PYTHONPATH": f"functions{os.pathsep}."}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "infra.x_sandbox",
            "--port",
            "0",
            "--clock-file",
            str(clock_file),
            "--state-file",
            str(state_file),
        ],
        cwd=REPO_ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline().strip()
        base_url = line.removeprefix("x-sandbox listening on ")
        requests.post(
            base_url + "/_sandbox/accounts",
            json={**SHOP, "token": "shop-token"},
            timeout=5,
        )
        created = requests.post(
            base_url + "/2/tweets",
            json={"text": "from a process"},
            headers={"Authorization": "Bearer shop-token"},
            timeout=5,
        )
    finally:
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(timeout=10)

    assert line.startswith("x-sandbox listening on http://127.0.0.1:")
    assert created.status_code == 201
    state = json.loads(state_file.read_text())
    assert state["now"] == "2026-03-02T09:00:00.000Z"
    assert state["posts"][0]["text"] == "from a process"
    assert exit_code == 0


def test_a_queued_fault_can_carry_xs_exact_detail_and_problem_type(sandbox, http):
    http(
        "POST",
        "/_sandbox/faults",
        json={
            "method": "POST",
            "path_prefix": "/2/tweets",
            "status": 403,
            "detail": "Your client app is not configured with the appropriate oauth1 "
            "app permissions for this endpoint.",
            "problem_type": "https://api.twitter.com/2/problems/oauth1-permissions",
        },
    )

    refused = http("POST", "/2/tweets", json={"text": "hello"})

    assert refused.status_code == 403
    assert refused.json()["type"].endswith("/problems/oauth1-permissions")
    assert refused.json()["detail"].startswith("Your client app is not configured")


def test_a_reply_to_another_accounts_post_that_never_mentioned_us_is_refused(
    sandbox, http
):
    theirs = http("POST", "/2/tweets", token="other-token", json={"text": "news"})

    refused = http(
        "POST",
        "/2/tweets",
        json={
            "text": "great!",
            "reply": {"in_reply_to_tweet_id": theirs.json()["data"]["id"]},
        },
    )

    assert refused.status_code == 403
    assert "not been mentioned or otherwise engaged" in refused.json()["detail"]


def ascii_texts() -> list[str]:
    """ASCII texts to weigh: the conformance file's, and seeded random ones with
    URLs, bare domains and line endings of every kind."""
    import random
    import string

    import yaml

    cases = yaml.safe_load(
        (Path(__file__).parent / "data" / "twitter_text_v3.yml").read_text()
    )
    found: list[str] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            text = node.get("text")
            if isinstance(text, str) and text.isascii():
                found.append(text)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(cases)
    draw = random.Random(280)
    alphabet = string.printable + "..//::\r\n"
    for index in range(1500):
        text = "".join(draw.choice(alphabet) for _ in range(draw.randint(1, 200)))
        if draw.random() < 0.5:
            text += f" https://shop.example.com/p/{index}?utm_source=x"
        if draw.random() < 0.3:
            text = "see example.com or t.co/abc\r\n" + text
        found.append(text)
    return found


def test_the_sandbox_weighs_ascii_text_as_twitter_text_does() -> None:
    from twitter_text import parse_tweet

    from infra.x_sandbox import weighted_length

    texts = ascii_texts()
    differ = [t for t in texts if weighted_length(t) != parse_tweet(t).weightedLength]

    assert len(texts) > 1500 and differ == []


def test_a_full_length_reply_reads_back_whole_with_the_name_x_adds(http, sandbox):
    long_name = {"id": "1600000000000000777", "username": "a_rather_long_name"}
    answered = sandbox.add_mention(
        to_user_id=SHOP["user_id"], text="@shop is it back in stock?", author=long_name
    )
    reply = "y" * 272  # within X's 280; the "@a_rather_long_name " X adds is not

    created = http(
        "POST",
        "/2/tweets",
        json={"text": reply, "reply": {"in_reply_to_tweet_id": answered}},
    )
    read = http("GET", f"/2/users/{SHOP['user_id']}/tweets").json()

    assert created.status_code == 201
    assert [post["text"] for post in read["data"]] == ["@a_rather_long_name " + reply]


# --- OAuth 2.0 with PKCE ----------------------------------------------------------


def _authorize(sandbox, *, verifier: str = "v" * 43, scope: str = "") -> str:
    """Run the authorize step as the approving account; return the code."""
    import base64
    import hashlib
    from urllib.parse import parse_qsl, urlsplit

    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        .decode()
        .rstrip("=")
    )
    answer = requests.get(
        sandbox.base_url + "/i/oauth2/authorize",
        params={
            "response_type": "code",
            "client_id": "app",
            "redirect_uri": "http://127.0.0.1:9/cb",
            "scope": scope or "tweet.read tweet.write users.read offline.access",
            "state": "s1",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
        allow_redirects=False,
        timeout=5,
    )
    assert answer.status_code == 302
    back = dict(parse_qsl(urlsplit(answer.headers["location"]).query))
    assert back["state"] == "s1"
    return back["code"]


def _token(sandbox, form: dict, auth=None) -> requests.Response:
    return requests.post(
        sandbox.base_url + "/2/oauth2/token", data=form, auth=auth, timeout=5
    )


def test_oauth_issues_tokens_that_post_and_expire_after_two_hours(sandbox, clock):
    sandbox.configure_oauth(client_id="app")
    sandbox.approve_as(SHOP["user_id"])
    code = _authorize(sandbox)

    issued = _token(
        sandbox,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": "http://127.0.0.1:9/cb",
            "code_verifier": "v" * 43,
            "client_id": "app",
        },
    ).json()
    bearer = {"Authorization": f"Bearer {issued['access_token']}"}
    me = requests.get(sandbox.base_url + "/2/users/me", headers=bearer, timeout=5)
    clock.advance(dt.timedelta(hours=2))
    late = requests.get(sandbox.base_url + "/2/users/me", headers=bearer, timeout=5)

    assert issued["token_type"] == "bearer" and issued["expires_in"] == 7200
    assert issued["refresh_token"]
    assert me.json()["data"]["username"] == SHOP["username"]
    assert late.status_code == 401


def test_oauth_refuses_a_wrong_verifier_and_a_reused_code(sandbox):
    sandbox.configure_oauth(client_id="app")
    sandbox.approve_as(SHOP["user_id"])
    code = _authorize(sandbox)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": "http://127.0.0.1:9/cb",
        "client_id": "app",
    }

    wrong = _token(sandbox, {**form, "code_verifier": "w" * 43})
    reused = _token(sandbox, {**form, "code_verifier": "v" * 43})

    assert wrong.status_code == 400 and reused.status_code == 400
    assert reused.json()["error"] == "invalid_request"


def test_refresh_tokens_rotate_and_a_used_one_is_void(sandbox):
    sandbox.configure_oauth(client_id="app", client_secret="secret")
    sandbox.approve_as(SHOP["user_id"])
    first = _token(
        sandbox,
        {
            "grant_type": "authorization_code",
            "code": _authorize(sandbox),
            "redirect_uri": "http://127.0.0.1:9/cb",
            "code_verifier": "v" * 43,
        },
        auth=("app", "secret"),
    ).json()
    refresh = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}

    second = _token(sandbox, refresh, auth=("app", "secret"))
    again = _token(sandbox, refresh, auth=("app", "secret"))
    unauthenticated = _token(
        sandbox, {**refresh, "refresh_token": second.json()["refresh_token"]}
    )

    assert second.status_code == 200
    assert second.json()["refresh_token"] != first["refresh_token"]
    assert again.status_code == 400
    assert again.json()["error_description"].startswith("Value passed for the token")
    assert unauthenticated.status_code == 401
    assert sandbox.snapshot()["oauth"]["grants"]["refresh_token"] == 1


def test_without_an_approving_account_the_person_is_sent_back_denied(sandbox):
    from urllib.parse import parse_qsl, urlsplit

    sandbox.configure_oauth(client_id="app")

    answer = requests.get(
        sandbox.base_url + "/i/oauth2/authorize",
        params={
            "response_type": "code",
            "client_id": "app",
            "redirect_uri": "http://127.0.0.1:9/cb",
            "scope": "tweet.read",
            "state": "s1",
            "code_challenge": "c" * 43,
            "code_challenge_method": "S256",
        },
        allow_redirects=False,
        timeout=5,
    )

    back = dict(parse_qsl(urlsplit(answer.headers["location"]).query))
    assert back == {"state": "s1", "error": "access_denied"}
