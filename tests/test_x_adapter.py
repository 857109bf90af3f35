"""XClient drives the real tweepy client against the X sandbox."""

import datetime as dt
import socket

import pytest

from cartcast import errors
from cartcast.clock import FixedClock
from cartcast.x import (
    OWNED_READ,
    POST,
    POST_WITH_URL,
    CreatedPost,
    XClient,
    XRejected,
    XTimeout,
    XUser,
)
from infra.x_sandbox import XSandbox
from tests.helpers import serve_in_thread

START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
SHOP = {"user_id": "1500000000000000001", "username": "shop", "name": "Shop"}
SHOP_ID = SHOP["user_id"]


@pytest.fixture
def clock():
    return FixedClock(START)


@pytest.fixture
def sandbox(clock):
    with XSandbox(clock=clock) as sandbox:
        sandbox.register_account(**SHOP, token="shop-token", followers_count=1520)
        sandbox.register_account(
            user_id="1500000000000000002",
            username="other",
            name="Other",
            token="other-token",
        )
        yield sandbox


@pytest.fixture
def x(sandbox):
    return XClient(access_token="shop-token", base_url=sandbox.base_url, timeout_s=2)


def add_mentions(sandbox, count, **kwargs):
    """Inject `count` mentions of the shop from distinct customers; return ids."""
    return [
        sandbox.add_mention(
            to_user_id=SHOP_ID,
            text=f"@shop question {n}",
            author={"id": str(1600000000000000000 + n), "username": f"fan{n}"},
            **kwargs,
        )
        for n in range(count)
    ]


# Account and posting


def test_me_names_the_account_the_token_acts_for(x):
    assert x.me() == XUser(id=SHOP_ID, username="shop", name="Shop")


def test_create_post_returns_the_id_x_assigned(x, sandbox):
    created = x.create_post("Spring sale starts today")

    assert created == CreatedPost(id=created.id, text="Spring sale starts today")
    assert sandbox.snapshot()["posts"][0]["id"] == created.id
    assert x.requests_made == {POST: 1}


def test_a_post_with_a_link_is_metered_apart_and_comes_back_with_a_tco_link(x):
    created = x.create_post(
        "Back in stock: https://shop.example.com/linen", has_link=True
    )

    assert created.text.startswith("Back in stock: https://t.co/")
    assert x.requests_made == {POST_WITH_URL: 1}


def test_posting_the_same_text_twice_is_a_permanent_duplicate(x):
    x.create_post("Restocked: linen shirts")

    with pytest.raises(errors.PermanentError) as refused:
        x.create_post("Restocked: linen shirts")

    assert isinstance(refused.value, XRejected)
    assert refused.value.reason == "duplicate"
    assert refused.value.status == 403
    assert "duplicate content" in str(refused.value)


def test_an_overlong_post_is_refused_as_too_long(x):
    with pytest.raises(XRejected) as refused:
        x.create_post("a" * 281)

    assert refused.value.reason == "too_long"


def test_an_unknown_token_is_refused_as_unauthorized(sandbox):
    stranger = XClient(access_token="revoked", base_url=sandbox.base_url)

    with pytest.raises(XRejected) as refused:
        stranger.me()

    assert refused.value.reason == "unauthorized"
    assert stranger.last_rate_limit is None


# Failures: rate limits, outages, unknown outcomes


def test_a_429_raises_rate_limited_with_the_reset_time(x, sandbox, clock):
    sandbox.add_fault(
        method="POST", path_prefix="/2/tweets", status=429, reset_in_s=600
    )

    with pytest.raises(errors.RateLimited) as limited:
        x.create_post("hello")

    assert limited.value.reset_at == clock.now() + dt.timedelta(seconds=600)
    assert x.last_rate_limit.remaining == 0


def test_spending_the_post_limit_raises_until_the_window_resets(x, sandbox, clock):
    sandbox.set_limit("POST /2/tweets", 2)
    x.create_post("one")
    x.create_post("two")

    with pytest.raises(errors.RateLimited) as limited:
        x.create_post("three")
    clock.set(limited.value.reset_at)
    after_reset = x.create_post("three")

    assert limited.value.reset_at == START + dt.timedelta(minutes=15)
    assert after_reset.text == "three"


def test_a_503_is_transient_and_not_an_unknown_outcome(x, sandbox):
    sandbox.add_fault(method="POST", path_prefix="/2/tweets", status=503)

    with pytest.raises(errors.TransientError) as failed:
        x.create_post("hello")

    assert not isinstance(failed.value, XTimeout)
    assert sandbox.snapshot()["posts"] == []


def test_a_slow_answer_is_an_unknown_outcome_though_the_post_exists(sandbox):
    x = XClient(access_token="shop-token", base_url=sandbox.base_url, timeout_s=0.2)
    sandbox.add_fault(method="POST", path_prefix="/2/tweets", delay_s=0.6)

    with pytest.raises(XTimeout):
        x.create_post("did it go out?")
    found = x.own_posts(SHOP_ID, start_time=START)

    assert [p.text for p in found] == ["did it go out?"]
    assert x.requests_made == {POST: 1, OWNED_READ: 1}


def test_a_connection_dropped_after_sending_is_an_unknown_outcome(x, sandbox):
    sandbox.add_fault(method="POST", path_prefix="/2/tweets", drop=True)

    with pytest.raises(XTimeout):
        x.create_post("did it go out?")

    assert len(sandbox.snapshot()["posts"]) == 1


def test_an_unreachable_x_is_transient_and_not_an_unknown_outcome():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    x = XClient(access_token="t", base_url=f"http://127.0.0.1:{closed_port}")

    with pytest.raises(errors.TransientError) as failed:
        x.create_post("hello")

    assert not isinstance(failed.value, XTimeout)


def test_last_rate_limit_reports_the_last_answers_headers(x):
    x.create_post("one")

    info = x.last_rate_limit

    assert (info.limit, info.remaining) == (100, 99)
    assert info.reset_at == START + dt.timedelta(minutes=15)


# Mentions


def test_mentions_are_read_to_the_end_newest_first_with_their_authors(x, sandbox):
    ids = add_mentions(sandbox, 23)

    batch = x.mentions(SHOP_ID, since_id=None, page_size=10)

    assert [m.id for m in batch.mentions] == list(reversed(ids))
    assert (batch.pages_read, batch.complete) == (3, True)
    assert batch.newest_id == ids[-1]
    newest = batch.mentions[0]
    assert newest.author_username == "fan22"
    assert newest.created_at == START
    assert newest.conversation_id == newest.id
    assert newest.in_reply_to_user_id is None
    assert x.requests_made == {OWNED_READ: 3}


def test_mentions_since_id_return_only_the_newer_ones(x, sandbox, clock):
    first = x.mentions(SHOP_ID, since_id=None)
    clock.advance(dt.timedelta(minutes=5))
    newer = add_mentions(sandbox, 3)

    second = x.mentions(SHOP_ID, since_id=first.newest_id)
    third = x.mentions(SHOP_ID, since_id=second.newest_id)

    assert first.mentions == [] and first.newest_id is None
    assert [m.id for m in second.mentions] == list(reversed(newer))
    assert third.mentions == [] and third.complete


def test_mentions_stop_at_max_pages_and_say_the_batch_is_incomplete(x, sandbox):
    add_mentions(sandbox, 12)

    batch = x.mentions(SHOP_ID, since_id=None, page_size=5, max_pages=2)

    assert len(batch.mentions) == 10
    assert (batch.pages_read, batch.complete) == (2, False)


def test_a_mention_appears_once_the_clock_reaches_its_time(x, sandbox, clock):
    later = START + dt.timedelta(hours=3)
    add_mentions(sandbox, 1, created_at=later)

    before = x.mentions(SHOP_ID, since_id=None)
    clock.set(later)
    after = x.mentions(SHOP_ID, since_id=None)

    assert before.mentions == []
    assert [m.created_at for m in after.mentions] == [later]


def test_a_reply_mention_points_at_the_conversation_of_the_post(x, sandbox):
    post = x.create_post("Which colour next?")
    sandbox.add_mention(
        to_user_id=SHOP_ID,
        text="@shop green!",
        author={"id": "1600000000000000001", "username": "ada", "name": "Ada"},
        in_reply_to_tweet_id=post.id,
    )

    [reply] = x.mentions(SHOP_ID, since_id=None).mentions

    assert reply.conversation_id == post.id
    assert reply.in_reply_to_user_id == SHOP_ID
    assert reply.author_name == "Ada"


def test_a_page_size_outside_xs_bounds_is_a_programming_error(x):
    with pytest.raises(ValueError):
        x.mentions(SHOP_ID, since_id=None, page_size=200)


# Metrics, followers and own posts


def test_metrics_never_decrease_as_the_clock_advances(x, clock):
    post = x.create_post("Linen is back https://shop.example.com/linen", has_link=True)

    readings = []
    for hours in (0, 2, 8, 24, 72, 24 * 7):
        clock.set(START + dt.timedelta(hours=hours))
        readings.append(x.post_metrics([post.id])[post.id])

    assert readings[0].impressions == 0
    assert readings[-1].impressions > readings[2].impressions > 0
    assert readings[-1].link_clicks > 0
    for earlier, later in zip(readings, readings[1:], strict=False):
        for name in ("impressions", "likes", "reposts", "link_clicks"):
            assert getattr(later, name) >= getattr(earlier, name)


def test_private_metrics_end_after_30_days_but_public_ones_remain(x, clock):
    post = x.create_post("A month of linen")
    clock.advance(dt.timedelta(days=29))
    young = x.post_metrics([post.id])[post.id]
    clock.advance(dt.timedelta(days=2))

    old = x.post_metrics([post.id])[post.id]

    assert young.link_clicks == 0 and young.profile_clicks is not None
    assert old.link_clicks is None and old.profile_clicks is None
    assert old.impressions >= young.impressions > 0
    assert old.likes >= young.likes


def test_public_metrics_alone_leave_the_clicks_unknown(x, clock):
    post = x.create_post("Public only")
    clock.advance(dt.timedelta(days=1))

    metrics = x.post_metrics([post.id], private=False)[post.id]

    assert metrics.impressions > 0
    assert metrics.link_clicks is None


def test_metrics_of_more_than_100_posts_are_read_in_batches(x, sandbox):
    sandbox.set_limit("POST /2/tweets", 1000)
    ids = [x.create_post(f"post {n}").id for n in range(101)]

    metrics = x.post_metrics(ids + ["1234"])

    assert set(metrics) == set(ids)
    assert x.requests_made[OWNED_READ] == 2


def test_a_lookup_tells_a_deleted_post_from_one_whose_clicks_x_withholds(x, sandbox):
    mine = x.create_post("Mine")
    gone = x.create_post("Gone")
    other = XClient(access_token="other-token", base_url=sandbox.base_url)
    theirs = other.create_post("Theirs")
    sandbox.delete_post(gone.id)

    read = x.read_metrics([mine.id, gone.id, theirs.id], private=True)

    assert set(read.metrics) == {mine.id, theirs.id}
    assert read.missing == {gone.id}
    assert read.metrics[theirs.id].link_clicks is None
    assert read.requests == 2


def test_a_lookup_takes_1_to_100_ids(x):
    with pytest.raises(ValueError):
        x.read_metrics([str(10**18 + n) for n in range(101)], private=False)
    with pytest.raises(ValueError):
        x.read_metrics([], private=False)


def test_followers_count_reads_the_public_metrics(x):
    assert x.followers_count(SHOP_ID) == 1520


def test_followers_count_of_an_unknown_user_is_permanent(x):
    with pytest.raises(XRejected) as refused:
        x.followers_count("42")

    assert refused.value.reason == "not_found"


def test_own_posts_lists_what_was_published_since_a_time(x, clock):
    x.create_post("monday")
    clock.advance(dt.timedelta(days=1))
    tuesday = x.create_post("tuesday")

    found = x.own_posts(SHOP_ID, start_time=START + dt.timedelta(hours=12))

    assert found == [CreatedPost(id=tuesday.id, text="tuesday", created_at=clock.now())]


def test_a_revoked_token_is_a_refusal_that_disconnects_the_account(x, sandbox):
    sandbox.register_account(**SHOP, token="shop-token-renewed")

    with pytest.raises(XRejected) as refused:
        x.create_post("hello")

    assert refused.value.reason == "unauthorized" and refused.value.disconnects


@pytest.mark.parametrize(
    ("detail", "problem_type"),
    [
        (
            "Your client app is not configured with the appropriate oauth1 app "
            "permissions for this endpoint.",
            "https://api.twitter.com/2/problems/oauth1-permissions",
        ),
        (
            "When authenticating requests to the Twitter API v2 endpoints, you must "
            "use keys and tokens from a Twitter developer App that is attached to a "
            "Project. You can create a project via the developer portal.",
            "https://api.twitter.com/2/problems/client-forbidden",
        ),
    ],
)
def test_a_403_about_credentials_disconnects_the_account(
    x, sandbox, detail, problem_type
):
    sandbox.add_fault(
        method="POST",
        path_prefix="/2/tweets",
        status=403,
        detail=detail,
        problem_type=problem_type,
    )

    with pytest.raises(XRejected) as refused:
        x.create_post("hello")

    assert refused.value.reason == "credentials" and refused.value.disconnects
    assert refused.value.detail == detail


def test_a_duplicate_or_a_bare_403_does_not_disconnect(x, sandbox):
    x.create_post("same words")
    sandbox.add_fault(method="POST", path_prefix="/2/tweets", status=403)

    with pytest.raises(XRejected) as bare:
        x.create_post("other words")
    with pytest.raises(XRejected) as duplicate:
        x.create_post("same words")

    assert (bare.value.reason, duplicate.value.reason) == ("forbidden", "duplicate")
    assert not bare.value.disconnects and not duplicate.value.disconnects


def test_a_reply_nobody_summoned_is_refused_with_xs_words(x, sandbox):
    other = XClient(access_token="other-token", base_url=sandbox.base_url, timeout_s=2)
    stranger_post = other.create_post("nothing to do with the shop")

    with pytest.raises(XRejected) as refused:
        x.create_post("hi there", in_reply_to=stranger_post.id)

    assert refused.value.reason == "refused_reply" and refused.value.status == 403
    assert "not been mentioned or otherwise engaged" in refused.value.detail
    assert not refused.value.disconnects


def test_a_reply_to_a_mention_or_to_the_own_post_is_allowed(x, sandbox):
    own = x.create_post("our news")
    mention_id = sandbox.add_mention(
        to_user_id=SHOP_ID,
        text="@shop is this in stock?",
        author={"id": "1500000000000000009", "username": "fan", "name": "Fan"},
    )

    to_own = x.create_post("more news", in_reply_to=own.id)
    to_mention = x.create_post("yes, it is!", in_reply_to=mention_id)

    assert to_own.id and to_mention.id


# The session reads the environment's proxy once, and still uses it


class RecordingProxy:
    """A forward proxy on loopback that answers every request as X would."""

    def __init__(self) -> None:
        import json
        from http.server import BaseHTTPRequestHandler

        self.targets: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                proxy.targets.append(self.path)
                body = json.dumps({"data": {"id": "1", "text": "via the proxy"}})
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: object) -> None:
                pass

        self.server = serve_in_thread("127.0.0.1", 0, Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"


def test_a_proxy_set_in_the_environment_carries_every_call_to_x(monkeypatch):
    proxy = RecordingProxy()
    for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    # Another loopback address: reached only through the proxy, nothing listens.
    client = XClient(access_token="shop-token", base_url="http://127.0.0.2:9")

    first = client.create_post("one")
    second = client.create_post("two")

    proxy.server.shutdown()
    assert (first.status, second.status) == (201, 201)
    assert proxy.targets == ["http://127.0.0.2:9/2/tweets"] * 2


def test_a_mentions_page_with_unusable_posts_and_a_repeat_parses_the_rest():
    from cartcast.x import _mentions_from

    good = {
        "id": "1800000000000000001",
        "text": "@alpha hi",
        "author_id": "42",
        "created_at": "2026-03-02T08:00:00.000Z",
        "conversation_id": "1800000000000000001",
    }
    page = {
        "data": [
            good,
            {**good, "id": "1800000000000000002", "created_at": "not a time"},
            {key: value for key, value in good.items() if key != "author_id"},
            {"text": "no id at all"},
        ],
        "includes": {"users": [{"id": "42", "username": "fan", "name": "A Fan"}]},
    }

    mentions, unusable = _mentions_from(page)

    assert [m.id for m in mentions] == ["1800000000000000001"]
    assert mentions[0].author_username == "fan" and unusable == 3


def test_mentions_carry_the_authors_followers_and_their_media_types(x, sandbox):
    sandbox.add_mention(
        to_user_id=SHOP_ID,
        text="@shop look at this",
        author={"id": "1600000000000000001", "username": "fan", "followers_count": 77},
        media_types=["photo", "animated_gif"],
    )
    add_mentions(sandbox, 1)

    batch = x.mentions(SHOP_ID, since_id=None)

    plain, with_media = batch.mentions
    assert with_media.author_followers == 77
    assert with_media.media_types == ("photo", "animated_gif")
    assert plain.media_types == ()


def test_the_sandbox_refuses_a_media_type_x_does_not_have(sandbox):
    with pytest.raises(ValueError, match="media type"):
        sandbox.add_mention(
            to_user_id=SHOP_ID,
            text="@shop hi",
            author={"id": "1600000000000000001", "username": "fan"},
            media_types=["hologram"],
        )


def test_a_mention_timed_at_the_last_leap_second_datetime_holds_is_unusable():
    # review2: 9999-12-31T23:59:60Z is a leap second's place by decision 0088, and
    # its next minute is past datetime's range: parse_instant raises OverflowError,
    # which _mentions_from does not count as unusable, so the whole page fails.
    from cartcast.x import _mentions_from

    page = {
        "data": [
            {
                "id": "1800000000000000009",
                "text": "@alpha hi",
                "author_id": "42",
                "created_at": "9999-12-31T23:59:60.000Z",
            }
        ],
        "includes": {"users": [{"id": "42", "username": "fan", "name": "A Fan"}]},
    }

    mentions, unusable = _mentions_from(page)

    assert mentions == [] and unusable == 1


class OwnPostsAnswer:
    """A loopback X that answers every read with one page of the shop's posts."""

    def __init__(self, posts: list[dict[str, str]]) -> None:
        import json
        from http.server import BaseHTTPRequestHandler

        body = json.dumps({"data": posts, "meta": {"result_count": len(posts)}})

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: object) -> None:
                pass

        self.server = serve_in_thread("127.0.0.1", 0, Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"


def test_an_own_post_at_the_last_leap_second_stops_the_read_as_x_s_refusal_would():
    # Skipping it could hide the post a reconciliation looks for; an unreadable
    # time escaped as a ValueError that reconciling.py does not stop on.
    answer = OwnPostsAnswer(
        [{"id": "1", "text": "mugs", "created_at": "9999-12-31T23:59:60.000Z"}]
    )
    client = XClient(access_token="shop-token", base_url=answer.url)

    try:
        with pytest.raises(errors.PermanentError, match="cannot read"):
            client.own_posts(SHOP_ID, start_time=START)
    finally:
        answer.server.shutdown()
        answer.server.server_close()
