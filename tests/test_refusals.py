"""X's errors by class: backoff after failures, disconnected accounts, refused replies.

Through tweepy against the X sandbox; alerts go to a webhook receiver this module
starts on loopback. The account tests run the real `api` and `publish_due_posts`
functions, as the scheduler and a brand's admin would.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import random
import threading
import time
from http.server import BaseHTTPRequestHandler

import pytest

from cartcast import alerts, brands, post_events, posts, publishing, retries
from cartcast.errors import Forbidden, InvalidRequest
from infra.x_sandbox import REFUSED_REPLY_DETAIL, XSandbox
from tests.conftest import OPERATOR_KEY, START, make_app
from tests.helpers import (
    ALPHA,
    admin_updates_brand,
    auth,
    brand_body,
    catalog,
    make_brand,
    post_json,
    serve_in_thread,
    states,
    tweets_sent,
)

PROBLEMS = "https://api.x.com/2/problems/"


class WebhookReceiver:
    """A Slack-style incoming webhook on loopback that answers `status`."""

    def __init__(self) -> None:
        self.status = 200
        self.received: list[dict] = []
        self.accepted: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.received.append(body)
                if receiver.status == 200:
                    receiver.accepted.append(body)
                self.send_response(receiver.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = serve_in_thread("127.0.0.1", 0, Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"


class UpperBound:
    """A random source whose every draw is the top of its range."""

    def uniform(self, low: float, high: float) -> float:
        return high


@pytest.fixture
def webhook():
    running = WebhookReceiver()
    yield running
    running.server.shutdown()
    running.server.server_close()


# Backoff after X failed before it could have accepted the post


def test_x_failing_backs_off_within_the_jitter_bounds_then_fails_after_the_limit(
    x_runtime, clock, x_sandbox
) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)
    x_runtime.random = random.Random(4)
    settings = x_runtime.settings
    limit = settings.publish_retries
    x_sandbox.add_fault(method="POST", path_prefix="/2/tweets", status=503, count=9)
    clock.advance(dt.timedelta(days=7))

    waits = []
    for attempt in range(1, limit + 1):
        failed_at = clock.now()
        outcome = publishing.publish_due(x_runtime, as_of=clock.now())
        post = only_post(x_runtime, brand_id)
        assert outcome["deferred"] == 1 and post["state"] == "scheduled"
        assert (
            f"(attempt {attempt} of {limit}): X failed with 503"
            in (post["failure_reason"])
        )
        waits.append((post["not_before"] - failed_at).total_seconds())
        clock.set(post["not_before"])
    last = publishing.publish_due(x_runtime, as_of=clock.now())

    caps = [
        min(settings.publish_retry_max_s, settings.publish_retry_base_s * 2**n)
        for n in range(limit)
    ]
    assert all(0 <= wait <= cap for wait, cap in zip(waits, caps, strict=True))
    assert len(set(waits)) == limit  # jittered, not one fixed ladder
    failed = only_post(x_runtime, brand_id)
    assert last["failed"] == 1 and failed["state"] == "failed"
    assert f"Gave up after {limit} retries" in failed["failure_reason"]
    assert tweets_sent(x_sandbox) == limit + 1
    assert x_sandbox.snapshot()["posts"] == []


def test_a_post_waiting_out_its_backoff_is_not_claimed_before_its_time(
    x_runtime, clock, x_sandbox
) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)
    x_runtime.random = UpperBound()
    x_sandbox.add_fault(method="POST", path_prefix="/2/tweets", status=502)
    clock.advance(dt.timedelta(days=7))
    publishing.publish_due(x_runtime, as_of=clock.now())
    not_before = only_post(x_runtime, brand_id)["not_before"]

    clock.set(not_before - dt.timedelta(seconds=1))
    early = publishing.publish_due(x_runtime, as_of=clock.now())
    clock.set(not_before)
    on_time = publishing.publish_due(x_runtime, as_of=clock.now())

    base_s = x_runtime.settings.publish_retry_base_s
    assert not_before == START + dt.timedelta(days=7, seconds=base_s)
    assert early["published"] == 0 and on_time["published"] == 1
    assert tweets_sent(x_sandbox) == 2
    assert states(x_runtime, brand_id) == ["published"]


def test_a_connection_x_never_accepted_is_retried_like_a_5xx(
    x_runtime, clock, x_sandbox
) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)
    # Nothing listens on loopback port 9: the connection is refused.
    x_runtime.settings = dataclasses.replace(
        x_runtime.settings, x_api_base_url="http://127.0.0.1:9"
    )
    clock.advance(dt.timedelta(days=7))

    outcome = publishing.publish_due(x_runtime, as_of=clock.now())

    post = only_post(x_runtime, brand_id)
    assert outcome["deferred"] == 1 and post["not_before"] > clock.now()
    assert "(attempt 1 of 5): X is unreachable" in post["failure_reason"]


def test_the_retry_delay_doubles_from_the_base_up_to_the_cap() -> None:
    settings = type(
        "S",
        (),
        {
            "publish_retries": 8,
            "publish_retry_base_s": 30.0,
            "publish_retry_max_s": 600,
        },
    )

    delays = [
        (retries.plan(n, settings=settings, random=UpperBound(), now=START).at - START)
        for n in range(1, 9)
    ]
    beyond = retries.plan(9, settings=settings, random=UpperBound(), now=START)

    assert [d.total_seconds() for d in delays] == [30, 60, 120, 240, 480, 600, 600, 600]
    assert beyond.gives_up and "Gave up after 8 retries" in beyond.explain("503")


def test_a_seeded_random_source_draws_the_same_retry_times() -> None:
    settings = type(
        "S",
        (),
        {"publish_retries": 3, "publish_retry_base_s": 60, "publish_retry_max_s": 900},
    )

    def draw(seed: int) -> list[dt.datetime]:
        source = random.Random(seed)
        return [
            retries.plan(n, settings=settings, random=source, now=START).at
            for n in (1, 2, 3)
        ]

    assert draw(11) == draw(11)
    assert draw(11) != draw(12)  # the times come from the source, not a fixed ladder


# Disconnected accounts


def test_a_revoked_token_holds_all_40_queued_posts_and_sends_exactly_one_alert(
    account, clock_file, webhook
) -> None:
    sandbox, api, key = account["sandbox"], account["api"], account["key"]
    sandbox.register_account(**ALPHA, token="token-alpha-renewed")  # old one revoked
    later = START + dt.timedelta(days=28)
    clock_file.set(later)

    first = tick("publish_due_posts", later)
    clock_file.set(later + dt.timedelta(minutes=1))
    tick("publish_due_posts", later + dt.timedelta(minutes=1))

    held = list_posts(api, key, "held")
    brand = api.get("/v1/brand", headers=auth(key)).get_json()["brand"]
    assert first.status_code == 200
    assert len(held) == 40 and list_posts(api, key, "scheduled") == []
    assert all(p["failure_reason"].startswith("account disconnected: ") for p in held)
    assert "401" in held[0]["failure_reason"]
    assert brand["x_disconnected_at"] is not None
    assert tweets_sent(sandbox) == 1  # the first refusal stopped the rest
    assert len(webhook.accepted) == 1
    assert "disconnected" in webhook.accepted[0]["text"]
    assert "40 queued post(s) are held" in webhook.accepted[0]["text"]


def test_a_webhook_that_is_down_gets_the_alert_at_a_later_run(
    account, clock_file, webhook
) -> None:
    sandbox = account["sandbox"]
    sandbox.register_account(**ALPHA, token="token-alpha-renewed")
    webhook.status = 503
    later = START + dt.timedelta(days=28)
    clock_file.set(later)

    first = tick("publish_due_posts", later)
    held_while_down = list_posts(account["api"], account["key"], "held")
    webhook.status = 200
    for minutes in (1, 2):
        clock_file.set(later + dt.timedelta(minutes=minutes))
        tick("publish_due_posts", later + dt.timedelta(minutes=minutes))

    assert first.status_code == 200 and len(held_while_down) == 40
    assert len(webhook.received) == 2 and len(webhook.accepted) == 1


def test_a_new_token_resumes_the_held_posts_and_publishes_each_once(
    account, clock_file, webhook
) -> None:
    sandbox, api, key = account["sandbox"], account["api"], account["key"]
    sandbox.register_account(**ALPHA, token="token-alpha-renewed")
    later = START + dt.timedelta(days=28)
    clock_file.set(later)
    tick("publish_due_posts", later)

    patched = patch_brand(api, key, {"x_access_token": "token-alpha-renewed"})
    scheduled_again = list_posts(api, key, "scheduled")
    clock_file.set(later + dt.timedelta(minutes=1))
    tick("publish_due_posts", later + dt.timedelta(minutes=1))
    clock_file.set(later + dt.timedelta(minutes=2))
    tick("publish_due_posts", later + dt.timedelta(minutes=2))

    published = list_posts(api, key, "published")
    on_x = sandbox.snapshot()["posts"]
    assert patched.status_code == 200
    assert patched.get_json()["brand"]["x_disconnected_at"] is None
    assert len(scheduled_again) == 40
    assert len(published) == len(on_x) == 40
    assert {p["x_post_id"] for p in published} == {p["id"] for p in on_x}
    assert tweets_sent(sandbox) == 41  # the one refused, then each once
    assert len(webhook.accepted) == 1


def test_a_credentials_403_disconnects_but_another_403_only_fails_its_post(
    x_runtime, clock, x_sandbox
) -> None:
    alpha = make_brand(x_runtime, "alpha", ALPHA, products=3)
    clock.advance(dt.timedelta(days=7))
    x_sandbox.add_fault(
        method="POST",
        path_prefix="/2/tweets",
        status=403,
        detail=(
            "Authenticating with OAuth 2.0 Application-Only is forbidden for this "
            "endpoint.  Supported authentication types are [OAuth 1.0a User "
            "Context, OAuth 2.0 User Context]."
        ),
        problem_type=PROBLEMS + "unsupported-authentication",
    )

    outcome = publishing.publish_due(x_runtime, as_of=clock.now())

    with x_runtime.database.transaction() as tx:
        queued = tx.rows("SELECT kind FROM alert_outbox WHERE brand_id = :b", b=alpha)
    assert outcome["held"] == 1 and states(x_runtime, alpha) == ["held"] * 3
    assert queued == [{"kind": "x_disconnected"}]
    assert tweets_sent(x_sandbox) == 1


def test_a_403_saying_the_account_is_suspended_holds_the_queue_with_one_alert(
    x_runtime, clock, x_sandbox
) -> None:
    alpha = make_brand(x_runtime, "alpha", ALPHA, products=3)
    clock.advance(dt.timedelta(days=7))
    x_sandbox.add_fault(
        method="POST",
        path_prefix="/2/tweets",
        status=403,
        detail="Your account is suspended and is not permitted to access this feature.",
    )

    outcome = publishing.publish_due(x_runtime, as_of=clock.now())

    with x_runtime.database.transaction() as tx:
        queued = tx.rows("SELECT kind FROM alert_outbox WHERE brand_id = :b", b=alpha)
        reasons = tx.rows(
            "SELECT failure_reason FROM posts WHERE brand_id = :b", b=alpha
        )
    assert outcome["held"] == 1 and states(x_runtime, alpha) == ["held"] * 3
    assert queued == [{"kind": "x_disconnected"}]
    assert tweets_sent(x_sandbox) == 1
    assert all("account is suspended" in row["failure_reason"] for row in reasons)
    assert all("PATCH /v1/brand" in row["failure_reason"] for row in reasons)


def test_a_brand_without_a_webhook_gets_a_log_line_instead(
    x_runtime, clock, x_sandbox, caplog
) -> None:
    make_brand(x_runtime, "alpha", ALPHA, products=2)
    x_sandbox.register_account(**ALPHA, token="token-alpha-renewed")
    clock.advance(dt.timedelta(days=7))

    publishing.publish_due(x_runtime, as_of=clock.now())
    first = alerts.deliver_pending(x_runtime)
    again = alerts.deliver_pending(x_runtime)

    assert first["alerts_logged"] == 1 and again == dict.fromkeys(again, 0)
    assert any("no alert_webhook_url" in r.getMessage() for r in caplog.records)


def test_raising_the_same_alert_episode_twice_queues_it_once(x_runtime) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)
    now = x_runtime.clock.now()

    with x_runtime.database.transaction() as tx:
        raised = [
            alerts.raise_alert(
                tx, brand_id=brand_id, kind="k", episode="e1", text="t", now=now
            )
            for _ in range(3)
        ]
        raised.append(
            alerts.raise_alert(
                tx, brand_id=brand_id, kind="k", episode="e2", text="t", now=now
            )
        )
        queued = alerts.list_alerts(tx, brand_id=brand_id)

    assert raised == [True, False, False, True] and len(queued) == 2


@pytest.mark.parametrize(
    ("url", "environment"),
    [
        ("ftp://hooks.example.com/x", "local"),
        ("http://hooks.example.com/x", "local"),
        ("http://127.0.0.1:8080/hook", "cloud"),
        ("https://10.1.2.3/hook", "cloud"),
        ("https://169.254.169.254/hook", "local"),
        ("https://user:pw@hooks.example.com/x", "cloud"),
        (42, "cloud"),
    ],
)
def test_an_alert_webhook_that_is_not_https_to_a_public_host_is_refused(
    url, environment
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        brands.alert_webhook_url({"alert_webhook_url": url}, environment=environment)

    assert refused.value.field == "alert_webhook_url"


@pytest.mark.parametrize(
    "url",
    [
        "https://169.254.169.254./hook",  # a trailing dot names the same address
        "https://2852039166/hook",  # 169.254.169.254 as one number
        "https://0xa9fea9fe/hook",
        "https://0251.0376.0251.0376/hook",
        "https://169.254.43518/hook",
        "https://10.0.0.1./hook",
        "https://127.1/hook",
        "https://0/hook",
        "https://localhost/hook",
        "https://api.localhost./hook",
        "https://metadata.google.internal/computeMetadata/v1/",
    ],
)
def test_an_internal_address_in_another_spelling_is_refused_as_a_webhook(
    url,
) -> None:
    # The resolver reads each of these as an internal address (inet_aton's
    # numeric forms, a rooted name) or names one; none is a public https host.
    with pytest.raises(InvalidRequest) as refused:
        brands.alert_webhook_url({"alert_webhook_url": url}, environment="cloud")

    assert refused.value.field == "alert_webhook_url"
    assert "internal" in str(refused.value)


@pytest.mark.parametrize(
    "url",
    [
        "https://\uff48\uff4f\uff4f\uff4b\uff53.example.com/x",  # fullwidth letters
        "https://\uff4d\uff45\uff54\uff41\uff44\uff41\uff54\uff41/x",  # "metadata"
        "https://\u2488.example.com/x",  # a digit with a full stop in one character
    ],
)
def test_a_webhook_host_no_delivery_could_encode_is_refused(url) -> None:
    # urllib3 encodes a non-ASCII host as IDNA 2008 and fails on each of these:
    # stored, the URL would fail every delivery after a 200.
    with pytest.raises(InvalidRequest) as refused:
        brands.alert_webhook_url({"alert_webhook_url": url}, environment="cloud")

    assert refused.value.field == "alert_webhook_url"
    assert "IDNA" in str(refused.value)


@pytest.mark.parametrize(
    "url",
    [
        "https://\uff53\uff48\uff4f\uff50.example.com",  # "shop", fullwidth
        "https://shop.example.com:0",
    ],
)
def test_a_store_base_url_no_link_could_reach_is_refused(url) -> None:
    # Every post's link starts with it: X would show a link nobody could follow.
    with pytest.raises(InvalidRequest) as refused:
        brands._store_base_url({"store_base_url": url})

    assert refused.value.field == "store_base_url"


def test_a_webhook_on_port_0_is_refused() -> None:
    url = "https://hooks.example.com:0/x"

    with pytest.raises(InvalidRequest) as refused:
        brands.alert_webhook_url({"alert_webhook_url": url}, environment="cloud")

    assert refused.value.field == "alert_webhook_url"
    assert "port 0" in str(refused.value)


def test_an_internationalised_webhook_host_is_accepted() -> None:
    url = "https://b\u00fccher.example/hook"

    assert brands.alert_webhook_url({"alert_webhook_url": url}, environment="cloud")


def test_an_https_webhook_and_a_local_loopback_one_are_accepted() -> None:
    https = "https://hooks.slack.com/services/T0/B0/x"

    assert brands.alert_webhook_url({"alert_webhook_url": https}, environment="cloud")
    assert brands.alert_webhook_url(
        {"alert_webhook_url": "http://127.0.0.1:9/hook"}, environment="local"
    )


@pytest.mark.parametrize("name", ["alert_webhook_url", "escalation_webhook_url"])
def test_a_webhook_url_is_as_long_as_it_was_sent_blanks_and_all(name) -> None:
    """docs/openapi.yaml's maxLength (500) counts the value as sent: 490
    characters of URL and 20 spaces are too long, though the URL alone fits."""
    url = "https://hooks.example.com/" + "a" * (490 - len("https://hooks.example.com/"))
    limit = brands.WEBHOOK_URL_LENGTH_MAX

    with pytest.raises(InvalidRequest) as refused:
        brands._webhook_url(
            {name: url + " " * 20}, name, what="a hook", environment="cloud"
        )

    assert refused.value.field == name
    assert f"longer than {limit} characters" in str(refused.value)
    padded = "\u3000" * 5 + url + " " * 5
    kept = brands._webhook_url({name: padded}, name, what="a hook", environment="cloud")
    assert kept == url


def test_only_an_admin_key_may_change_the_x_account_or_the_webhook(x_runtime) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)

    with pytest.raises(Forbidden) as refused, x_runtime.database.transaction() as tx:
        brands.update_brand(
            tx,
            brand_id,
            {"x_access_token": "stolen", "link_policy": "never"},
            role="editor",
            environment="local",
            now=x_runtime.clock.now(),
        )

    assert refused.value.field == "x_access_token"


def test_a_bad_webhook_in_patch_is_a_400_naming_the_field(account) -> None:
    answer = patch_brand(
        account["api"], account["key"], {"alert_webhook_url": "http://example.com/"}
    )

    assert answer.status_code == 400
    assert answer.get_json()["error"]["field"] == "alert_webhook_url"


# Refused replies and the rest


def test_a_reply_x_did_not_let_the_app_make_fails_for_good(
    x_runtime, clock, x_sandbox
) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)
    clock.advance(dt.timedelta(days=7))
    x_sandbox.add_fault(
        method="POST", path_prefix="/2/tweets", status=403, detail=REFUSED_REPLY_DETAIL
    )

    outcome = publishing.publish_due(x_runtime, as_of=clock.now())
    clock.advance(dt.timedelta(hours=1))
    publishing.publish_due(x_runtime, as_of=clock.now())

    failed = only_post(x_runtime, brand_id)
    assert outcome["failed"] == 1 and failed["state"] == "failed"
    assert "refused_reply" in failed["failure_reason"]
    assert REFUSED_REPLY_DETAIL in failed["failure_reason"]
    assert tweets_sent(x_sandbox) == 1


def test_the_system_moves_posts_under_the_name_of_its_function(
    account, clock_file
) -> None:
    later = START + dt.timedelta(days=28)
    clock_file.set(later)

    tick("publish_due_posts", later)

    api, key = account["api"], account["key"]
    post_id = list_posts(api, key, "published")[0]["id"]
    found = api.get(f"/v1/posts/{post_id}/events", headers=auth(key)).get_json()
    actors = [event["actor"] for event in found["events"]]
    assert actors[-2:] == ["system:publish_due_posts"] * 2


def test_a_rejected_post_carries_its_reason(runtime) -> None:
    from cartcast import catalog as catalog_module

    now = runtime.clock.now()
    with runtime.database.transaction() as tx:
        created = brands.create_brand(tx, brand_body(approvals_required=True), now=now)
        brand_id = str(created["brand"]["id"])
        catalog_module.import_products(tx, brand_id=brand_id, feed=catalog(1), now=now)
        body = {"products": [catalog(1)[0]["sku"]]}
        posts.create_drafts(tx, brand_id=brand_id, body=body, created_by="t", now=now)
        (draft,) = posts.list_posts(tx, brand_id=brand_id, state=None, limit=5)

    with runtime.database.transaction() as tx:
        post_events.act_as(tx, "admin")
        rejected = posts.reject(
            tx,
            brand_id=brand_id,
            post_id=str(draft["id"]),
            body={"reason": "off brand"},
            now=now,
        )
        again = posts.get_post(tx, brand_id=brand_id, post_id=str(draft["id"]))

    assert rejected["rejection_reason"] == again["rejection_reason"] == "off brand"


# Helpers


@pytest.fixture
def account(function_env, monkeypatch, clock_file, webhook):
    """A brand with 40 scheduled posts on the sandbox, and its admin key."""
    with XSandbox(clock=clock_file) as sandbox:
        sandbox.register_account(**ALPHA, token="token-alpha")
        monkeypatch.setenv("X_API_BASE_URL", sandbox.base_url)
        monkeypatch.setenv("CARTCAST_PUBLISH_BATCH", "50")
        api = make_app("api", "http").test_client()
        body = brand_body(
            x_user_id=ALPHA["user_id"],
            x_username=ALPHA["username"],
            x_access_token="token-alpha",
            alert_webhook_url=webhook.url,
        )
        key = post_json(api, "/v1/brands", body, OPERATOR_KEY).get_json()["api_key"]
        rows = catalog(40)
        post_json(api, "/v1/products", rows, key)
        for start in (0, 20):
            skus = [row["sku"] for row in rows[start : start + 20]]
            post_json(api, "/v1/captions", {"products": skus}, key)
        for draft in list_posts(api, key, "needs_approval"):
            post_json(api, f"/v1/posts/{draft['id']}/approve", None, key)
        post_json(api, "/v1/schedule", {"limit": 40}, key)
        assert len(list_posts(api, key, "scheduled")) == 40
        yield {"sandbox": sandbox, "api": api, "key": key}


def tick(target: str, at: dt.datetime):
    import uuid

    from cartcast import events

    headers, body = events.envelope(
        topic=target, project="test", payload={}, message_id=uuid.uuid4().hex, time=at
    )
    client = make_app(target, "cloudevent").test_client()
    return client.post("/", headers=headers, data=json.dumps(body))


def list_posts(api, key: str, state: str) -> list[dict]:
    answer = api.get(f"/v1/posts?state={state}&limit=100", headers=auth(key))
    return answer.get_json()["posts"]


def patch_brand(api, key: str, body: dict):
    return api.patch(
        "/v1/brand",
        data=json.dumps(body),
        headers=auth(key),
        content_type="application/json",
    )


def only_post(runtime, brand_id: str) -> dict:
    with runtime.database.transaction() as tx:
        (post,) = posts.list_posts(tx, brand_id=brand_id, state=None, limit=5)
    return post


def test_the_brand_says_it_has_a_webhook_without_showing_its_secret_url(
    account, webhook
) -> None:
    answer = account["api"].get("/v1/brand", headers=auth(account["key"]))

    brand = answer.get_json()["brand"]
    assert brand["has_alert_webhook"] is True
    assert webhook.url not in answer.get_data(as_text=True)


def test_a_post_scheduled_while_the_account_is_disconnected_is_held_next_run(
    account, clock_file
) -> None:
    sandbox, api, key = account["sandbox"], account["api"], account["key"]
    sandbox.register_account(**ALPHA, token="token-alpha-renewed")
    later = START + dt.timedelta(days=28)
    clock_file.set(later)
    tick("publish_due_posts", later)
    held = list_posts(api, key, "held")[0]
    edited = api.patch(
        f"/v1/posts/{held['id']}",
        data=json.dumps({"text": "A new line for this one, same link " + held["link"]}),
        headers=auth(key),
        content_type="application/json",
    )
    post_json(api, f"/v1/posts/{held['id']}/approve", None, key)
    post_json(api, f"/v1/posts/{held['id']}/schedule", {}, key)

    clock_file.set(later + dt.timedelta(days=14))
    tick("publish_due_posts", later + dt.timedelta(days=14))

    after = api.get(f"/v1/posts/{held['id']}", headers=auth(key)).get_json()["post"]
    assert edited.status_code == 200
    assert after["state"] == "held"
    assert after["failure_reason"].startswith("account disconnected: ")
    assert tweets_sent(sandbox) == 1


def test_a_second_refusal_of_the_same_account_raises_no_second_alert(
    x_runtime, clock
) -> None:
    from cartcast import connections

    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=2)

    with x_runtime.database.transaction() as tx:
        first = connections.disconnect(
            tx,
            brand_id=brand_id,
            status=401,
            detail="Unauthorized",
            token="token-alpha",
            now=clock.now(),
        )
    clock.advance(dt.timedelta(minutes=5))
    with x_runtime.database.transaction() as tx:
        second = connections.disconnect(
            tx,
            brand_id=brand_id,
            status=403,
            detail="other words",
            token="token-alpha",
            now=clock.now(),
        )
        queued = alerts.list_alerts(tx, brand_id=brand_id)

    assert first == second  # the first reason stands
    assert len(queued) == 1


def test_x_refusing_the_account_is_one_connection_change_in_the_trail(
    x_runtime, clock
) -> None:
    from cartcast import audit, connections

    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=2)
    for status in (401, 403):  # the second finds it disconnected already
        with x_runtime.database.transaction() as tx:
            post_events.act_as(tx, "system:publish_due_posts")
            connections.disconnect(
                tx,
                brand_id=brand_id,
                status=status,
                detail="Unauthorized",
                token="token-alpha",
                now=clock.now(),
            )

    with x_runtime.database.transaction() as tx:
        trail = audit.list_trail(
            tx, brand_id=brand_id, query={"subject": "brand:x_account"}, limit=10
        )
    [event] = trail["events"]
    assert event["action"] == "x_account.disconnected"
    assert event["actor"] == "system:publish_due_posts"
    assert event["before"] == {"connected": True}
    assert event["after"]["connected"] is False
    assert "401" in event["after"]["reason"]
    assert "token-alpha" not in str(event)
    assert states(x_runtime, brand_id) == ["held", "held"]


def test_a_thread_whose_token_was_revoked_midway_resumes_after_reconnecting(
    x_runtime, clock, x_sandbox
) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, rows=catalog(1), kind="thread")
    clock.advance(dt.timedelta(days=7))
    x_sandbox.add_fault(method="POST", path_prefix="/2/tweets")  # served as usual
    x_sandbox.add_fault(method="POST", path_prefix="/2/tweets", status=401)

    first = publishing.publish_due(x_runtime, as_of=clock.now())
    held = only_post(x_runtime, brand_id)
    with x_runtime.database.transaction() as tx:
        admin_updates_brand(
            tx, brand_id, {"x_access_token": "token-alpha"}, clock.now()
        )
    second = publishing.publish_due(x_runtime, as_of=clock.now())

    head, reply = sorted(x_sandbox.snapshot()["posts"], key=lambda p: int(p["id"]))
    assert first["held"] == 1 and held["state"] == "held"
    assert held["failure_reason"].startswith("account disconnected: ")
    assert second["published"] == 1
    assert reply["in_reply_to_tweet_id"] == head["id"]
    assert tweets_sent(x_sandbox) == 3  # part 1, part 2 refused, part 2 again


def test_a_thread_x_kept_failing_after_part_one_is_held_then_resumes_when_rescheduled(
    x_runtime, clock, x_sandbox
) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, rows=catalog(1), kind="thread")
    limit = x_runtime.settings.publish_retries
    clock.advance(dt.timedelta(days=7))
    x_sandbox.add_fault(method="POST", path_prefix="/2/tweets")  # part 1 goes out
    x_sandbox.add_fault(
        method="POST", path_prefix="/2/tweets", status=503, count=limit + 1
    )

    for _ in range(limit + 1):
        publishing.publish_due(x_runtime, as_of=clock.now())
        post = only_post(x_runtime, brand_id)
        if post["state"] == "scheduled":
            clock.set(post["not_before"])
    held = only_post(x_runtime, brand_id)
    with x_runtime.database.transaction() as tx:
        posts.schedule(
            tx,
            brand_id=brand_id,
            post_id=str(held["id"]),
            body={},
            now=clock.now(),
        )
    clock.advance(dt.timedelta(days=7))
    resumed = publishing.publish_due(x_runtime, as_of=clock.now())

    assert held["state"] == "held"
    assert "part 1 is on X already; the rest was not sent" in held["failure_reason"]
    assert "Schedule the post again" in held["failure_reason"]
    assert resumed["published"] == 1
    head, reply = sorted(x_sandbox.snapshot()["posts"], key=lambda p: int(p["id"]))
    assert reply["in_reply_to_tweet_id"] == head["id"]
    assert tweets_sent(x_sandbox) == 1 + (limit + 1) + 1


def test_a_401_for_a_token_replaced_while_it_was_out_does_not_disconnect_the_brand(
    x_runtime, clock, x_sandbox
) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=3)
    x_sandbox.register_account(**ALPHA, token="token-alpha-2")
    clock.advance(dt.timedelta(days=7))
    x_sandbox.add_fault(method="POST", path_prefix="/2/tweets", status=401, hold=True)
    outcomes = []
    publisher = threading.Thread(
        target=lambda: outcomes.append(
            publishing.publish_due(x_runtime, as_of=clock.now())
        )
    )

    publisher.start()
    for _ in range(3000):  # until X has the request and holds its answer
        if tweets_sent(x_sandbox):
            break
        time.sleep(0.01)
    with x_runtime.database.transaction() as tx:
        admin_updates_brand(
            tx, brand_id, {"x_access_token": "token-alpha-2"}, clock.now()
        )
    x_sandbox.release_answers()
    publisher.join(timeout=30)
    after = publishing.publish_due(x_runtime, as_of=clock.now())

    with x_runtime.database.transaction() as tx:
        brand = brands.get_brand(tx, brand_id)
        queued = alerts.list_alerts(tx, brand_id=brand_id)
    # The run sends nothing more with the token it now knows is replaced.
    assert outcomes[0]["deferred"] == 3
    assert brand["x_disconnected_at"] is None and queued == []
    assert after["published"] == 3
    assert tweets_sent(x_sandbox) == 1 + 3
