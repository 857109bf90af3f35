"""The inbox through the API: urgency order, filters and pages, handling, replies.

The API runs on the shared file clock and publishing on the test's pinned clock,
both at START; replies reach the X sandbox through tweepy.
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
import random

import pytest

from cartcast import keys, publishing
from tests.conftest import OPERATOR_KEY, START, make_app
from tests.helpers import ALPHA, BETA, auth, brand_body, post_json, tweets_sent

FAN = {"id": "42", "username": "fan", "name": "A Fan"}
MINUTE = dt.timedelta(minutes=1)
_x_ids = itertools.count(1_900_000_000_000_000_000)

STORE_MENTION = """
INSERT INTO mentions (brand_id, x_post_id, author_id, author_username, text,
    conversation_id, in_reply_to_user_id, posted_at, received_at, sentiment,
    intent, priority, response_due_at, scored_at)
VALUES (:brand_id, :x_post_id, :author_id, 'fan', :text, :conversation_id,
    :in_reply_to_user_id, :posted_at, :posted_at, :sentiment, :intent, :priority,
    :due, :scored_at)
RETURNING id
"""


@pytest.fixture
def client(function_env):
    return make_app("api", "http").test_client()


@pytest.fixture
def shop_key(client) -> str:
    """A brand on the sandbox's account ALPHA (@alpha)."""
    body = brand_body(x_access_token="token-alpha", x_username="alpha")
    response = post_json(client, "/v1/brands", body, OPERATOR_KEY)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["api_key"]


def brand_id_of(runtime) -> str:
    with runtime.database.transaction() as tx:
        return str(tx.scalar("SELECT id FROM brands WHERE slug = 'test-goods'"))


def store_mention(
    runtime,
    *,
    text: str = "@alpha where is my order?",
    x_post_id: str | None = None,
    posted_at: dt.datetime = START,
    priority: int | None = None,
    due: dt.datetime | None = None,
    sentiment: str | None = None,
    intent: str | None = None,
    author_id: str = FAN["id"],
    conversation_id: str | None = None,
    in_reply_to_user_id: str | None = None,
) -> str:
    """Store one mention as polling and scoring would leave it; return its id."""
    with runtime.database.transaction() as tx:
        return str(
            tx.scalar(
                STORE_MENTION,
                brand_id=brand_id_of(runtime),
                x_post_id=x_post_id or str(next(_x_ids)),
                author_id=author_id,
                text=text,
                conversation_id=conversation_id,
                in_reply_to_user_id=in_reply_to_user_id,
                posted_at=posted_at,
                sentiment=sentiment,
                intent=intent,
                priority=priority,
                due=due,
                scored_at=posted_at if priority is not None else None,
            )
        )


def sandbox_mention(x_sandbox, runtime, text: str, to: dict = ALPHA, **fields) -> str:
    """Post a mention on the sandbox and store it as polled; return its row id."""
    x_post_id = x_sandbox.add_mention(
        to_user_id=to["user_id"], text=text, author=FAN, created_at=START - MINUTE
    )
    return store_mention(
        runtime, text=text, x_post_id=x_post_id, posted_at=START - MINUTE, **fields
    )


def inbox(client, key: str, query: str = "") -> dict:
    response = client.get(f"/v1/mentions{query}", headers=auth(key))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def reply(client, key: str, mention_id: str, text: str = "Sorry! DM us your order"):
    return post_json(client, f"/v1/mentions/{mention_id}/reply", {"text": text}, key)


def key_of_role(runtime, role: str) -> str:
    with runtime.database.transaction() as tx:
        return keys.create_key(
            tx, brand_id=brand_id_of(runtime), name=role, role=role, now=START
        )


def test_open_mentions_come_most_urgent_first_with_the_time_left(
    client, shop_key, runtime
) -> None:
    later = store_mention(runtime, priority=2, due=START + 30 * MINUTE)
    soon = store_mention(runtime, priority=1, due=START + 10 * MINUTE)
    unscored = store_mention(runtime)
    less_soon = store_mention(runtime, priority=1, due=START + 50 * MINUTE)

    found = inbox(client, shop_key)["mentions"]

    assert [row["id"] for row in found] == [soon, less_soon, later, unscored]
    assert found[0]["time_left_s"] == 600 and found[0]["overdue"] is False
    assert found[3]["time_left_s"] is None


def test_an_order_issue_comes_before_the_rest_of_its_priority_whatever_its_deadline(
    client, shop_key, runtime
) -> None:
    complaint = store_mention(
        runtime, priority=2, intent="complaint", due=START + 10 * MINUTE
    )
    order = store_mention(
        runtime, priority=2, intent="order_issue", due=START + 50 * MINUTE
    )
    urgent = store_mention(runtime, priority=1, intent="complaint", due=START)

    found = inbox(client, shop_key)["mentions"]
    assert [row["id"] for row in found] == [urgent, order, complaint]

    first = inbox(client, shop_key, "?limit=2")
    rest = inbox(client, shop_key, f"?limit=2&after={first['next']}")
    assert [row["id"] for row in rest["mentions"]] == [complaint]


def test_filters_pick_intent_priority_sentiment_overdue_and_state(
    client, shop_key, runtime
) -> None:
    late = store_mention(
        runtime,
        priority=1,
        intent="order_issue",
        sentiment="negative",
        due=START - MINUTE,
    )
    praise = store_mention(runtime, priority=4, intent="praise", sentiment="positive")
    post_json(client, f"/v1/mentions/{praise}/handle", {}, shop_key)

    def ids(query: str) -> list[str]:
        return [row["id"] for row in inbox(client, shop_key, query)["mentions"]]

    assert ids("?intent=order_issue") == [late]
    assert ids("?priority=1&sentiment=negative") == [late]
    assert ids("?overdue=true") == [late]
    assert ids("?overdue=false") == []
    assert ids("?state=handled") == [praise]
    assert sorted(ids("?state=all")) == sorted([late, praise])


def test_pages_follow_the_next_token_without_gaps_or_repeats(
    client, shop_key, runtime
) -> None:
    # Ties on priority, deadline and time: only the id tells these apart.
    stored = {
        store_mention(runtime, priority=2, due=START + 5 * MINUTE) for _ in range(5)
    }
    stored |= {store_mention(runtime, posted_at=START - n * MINUTE) for n in range(3)}
    stored.add(store_mention(runtime, priority=1, due=START + 5 * MINUTE))

    seen, query, pages = [], "?limit=2", 0
    while True:
        page = inbox(client, shop_key, query)
        seen += [row["id"] for row in page["mentions"]]
        pages += 1
        if page["next"] is None:
            break
        query = f"?limit=2&after={page['next']}"

    assert len(seen) == len(set(seen)) == 9
    assert set(seen) == stored
    assert pages == 5


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?state=closed", "state"),
        ("?priority=0", "priority"),
        ("?priority=١", "priority"),
        ("?overdue=yes", "overdue"),
        ("?sentiment=angry", "sentiment"),
        ("?intent=Order%20issue", "intent"),
        ("?after=not-a-token", "after"),
        ("?after=WzEsMl0", "after"),
        ("?after=" + "A" * 500, "after"),
        ("?limit=0", "limit"),
    ],
)
def test_a_bad_inbox_query_is_a_400_naming_the_parameter(
    client, shop_key, query, field
) -> None:
    response = client.get(f"/v1/mentions{query}", headers=auth(shop_key))

    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == field


def test_an_unknown_intent_is_a_400_listing_the_intents(client, shop_key) -> None:
    response = client.get("/v1/mentions?intent=bogus", headers=auth(shop_key))

    error = response.get_json()["error"]
    assert response.status_code == 400
    assert error["field"] == "intent"
    for intent in ("order_issue", "question", "complaint", "praise", "spam", "other"):
        assert intent in error["message"]


def test_marking_handled_records_who_when_and_the_response_time(
    client, shop_key, runtime, clock_file
) -> None:
    mention_id = store_mention(runtime, posted_at=START - 20 * MINUTE)

    first = post_json(client, f"/v1/mentions/{mention_id}/handle", {}, shop_key)
    clock_file.set(START + 5 * MINUTE)
    again = post_json(client, f"/v1/mentions/{mention_id}/handle", {}, shop_key)

    handled = first.get_json()["mention"]
    assert first.status_code == 200
    assert handled["state"] == "handled" and handled["handled_by"] == "admin"
    assert handled["response_s"] == 20 * 60
    assert again.status_code == 200
    assert again.get_json()["mention"]["handled_at"] == handled["handled_at"]
    assert inbox(client, shop_key)["mentions"] == []


def test_handling_and_replying_are_in_the_audit_trail_once(
    client, shop_key, runtime
) -> None:
    handled_id = store_mention(runtime)
    answered_id = store_mention(runtime)

    for _ in range(2):
        post_json(client, f"/v1/mentions/{handled_id}/handle", {}, shop_key)
    reply(client, shop_key, answered_id)

    trail = client.get("/v1/audit?action=mention.handled", headers=auth(shop_key))
    [handled] = trail.get_json()["events"]
    assert (handled["subject"], handled["actor"]) == (f"mention:{handled_id}", "admin")
    assert handled["before"] == {"state": "open"}
    trail = client.get("/v1/audit?action=mention.replied", headers=auth(shop_key))
    [replied] = trail.get_json()["events"]
    assert replied["subject"] == f"mention:{answered_id}"
    assert replied["after"]["text"] == "Sorry! DM us your order"


def test_a_viewer_may_read_the_inbox_but_not_answer(client, shop_key, runtime) -> None:
    mention_id = store_mention(runtime)
    viewer = key_of_role(runtime, "viewer")

    listed = client.get("/v1/mentions", headers=auth(viewer))
    handled = post_json(client, f"/v1/mentions/{mention_id}/handle", {}, viewer)
    replied = reply(client, viewer, mention_id)

    assert listed.status_code == 200
    assert handled.status_code == 403 and replied.status_code == 403


def test_another_brands_or_an_unknown_mention_is_a_404(
    client, shop_key, runtime
) -> None:
    mention_id = store_mention(runtime)
    body = brand_body(slug="other-brand", name="Other")
    other = post_json(client, "/v1/brands", body, OPERATOR_KEY).get_json()["api_key"]

    for key, target in [(other, mention_id), (shop_key, "nope"), (shop_key, START)]:
        response = post_json(client, f"/v1/mentions/{target}/handle", {}, key)
        assert response.status_code == 404


def test_a_reply_goes_out_once_on_x_as_a_summoned_reply_and_answers_the_mention(
    client, shop_key, x_runtime, x_sandbox
) -> None:
    mention_id = sandbox_mention(x_sandbox, x_runtime, "@alpha my parcel is late")

    queued = reply(client, shop_key, mention_id)
    first = publishing.publish_due(x_runtime, as_of=START)
    second = publishing.publish_due(x_runtime, as_of=START)

    answer = queued.get_json()
    assert queued.status_code == 202
    assert answer["post"]["state"] == "scheduled"
    assert answer["post"]["x_price_usd"] == "0.010"
    assert answer["mention"]["state"] == "handled"
    assert answer["mention"]["response_s"] == 60
    assert first["published"] == 1 and second["published"] == 0
    assert tweets_sent(x_sandbox) == 1
    with x_runtime.database.transaction() as tx:
        charged = tx.rows("SELECT operation, usd FROM cost_ledger")
        sent = tx.one("SELECT in_reply_to, x_post_id FROM posts")
    mention_x_id = inbox(client, shop_key, "?state=all")["mentions"][0]["x_post_id"]
    assert sent["in_reply_to"] == mention_x_id and sent["x_post_id"]
    assert [(row["operation"], str(row["usd"])) for row in charged] == [
        ("summoned_reply", "0.0100")
    ]


def test_a_mention_that_did_not_summon_the_brand_is_refused_with_the_reason(
    client, shop_key, runtime
) -> None:
    # It names @alphabet, not @alpha, and answers nobody.
    mention_id = store_mention(runtime, text="@alphabet and alpha@example.com")

    response = reply(client, shop_key, mention_id)

    assert response.status_code == 409
    assert "did not summon the brand" in response.get_json()["error"]["message"]


@pytest.mark.parametrize(
    "text",
    [
        "my order, see x.com/@alpha",
        "as on https://example.com/@alpha today",
        "on the list @alpha/new-in",
        "wow!@alpha",
        "@alpha@example hi",
    ],
)
def test_an_at_handle_x_does_not_read_as_a_mention_summons_nobody(
    client, shop_key, runtime, text
) -> None:
    # X links the URL, the list or nothing at all there: the post mentions no
    # account, and X refuses the reply (the mention then came back reopened).
    mention_id = store_mention(runtime, text=text)

    response = reply(client, shop_key, mention_id)

    assert response.status_code == 409
    assert "did not summon the brand" in response.get_json()["error"]["message"]


@pytest.mark.parametrize(
    "text", ["@fan @Alpha thanks for the help", "RT @alpha: new mugs", "＠ALPHA hi"]
)
def test_a_mention_x_reads_summons_the_brand_leading_reply_handles_too(
    client, shop_key, runtime, text
) -> None:
    # The @handles X puts at the start of a reply are in the post's mentions.
    mention_id = store_mention(runtime, text=text)

    assert reply(client, shop_key, mention_id).status_code == 202


def test_a_reply_to_one_of_the_brands_posts_counts_as_summoned(
    client, shop_key, runtime
) -> None:
    mention_id = store_mention(
        runtime, text="is this back in stock?", in_reply_to_user_id=ALPHA["user_id"]
    )

    assert reply(client, shop_key, mention_id).status_code == 202


def test_a_mention_whose_author_was_removed_cannot_be_answered(
    client, shop_key, runtime
) -> None:
    mention_id = store_mention(
        runtime, text="is this back in stock?", in_reply_to_user_id=ALPHA["user_id"]
    )
    removed = post_json(
        client, "/v1/author-data-removals", {"x_user_id": FAN["id"]}, shop_key
    )
    assert removed.get_json()["removal"]["mentions"] == 1

    response = reply(client, shop_key, mention_id)

    # Its X id is gone with the author's data: there is nothing on X to answer.
    assert response.status_code == 409
    assert response.get_json()["error"]["field"] == "mention"
    assert "author-data-removals" in response.get_json()["error"]["message"]
    with runtime.database.transaction() as tx:
        replies = tx.scalar("SELECT count(*) FROM posts WHERE in_reply_to IS NOT NULL")
    assert replies == 0


def test_cartcast_never_replies_to_the_brands_own_posts(
    client, shop_key, runtime
) -> None:
    mention_id = store_mention(
        runtime, text="@alpha our own thread", author_id=ALPHA["user_id"]
    )

    response = reply(client, shop_key, mention_id)

    assert response.status_code == 409
    assert "own post or reply" in response.get_json()["error"]["message"]


def test_one_reply_per_conversation_however_many_mentions_it_holds(
    client, shop_key, runtime
) -> None:
    first = store_mention(runtime, conversation_id="777")
    second = store_mention(runtime, text="@alpha me too!", conversation_id="777")
    elsewhere = store_mention(runtime, conversation_id="778")

    answers = [reply(client, shop_key, m) for m in (first, second, elsewhere)]

    assert [answer.status_code for answer in answers] == [202, 409, 202]
    message = answers[1].get_json()["error"]["message"]
    assert "already replied in this conversation" in message
    assert inbox(client, shop_key, "?state=open")["mentions"][0]["id"] == second


def test_a_reply_x_refuses_fails_and_frees_the_conversation(
    client, shop_key, x_runtime, x_sandbox
) -> None:
    # The stored text names @alpha, but on X the post mentions BETA only: X
    # refuses the reply with its 403 for unsummoned replies.
    mention_id = sandbox_mention(
        x_sandbox, x_runtime, "@alpha @beta hello", to=BETA, conversation_id="900"
    )
    reply(client, shop_key, mention_id)

    outcome = publishing.publish_due(x_runtime, as_of=START)

    assert outcome["failed"] == 1
    with x_runtime.database.transaction() as tx:
        attempt = tx.one("SELECT error_class, x_status FROM publish_attempts")
    assert attempt == {"error_class": "refused_reply", "x_status": 403}
    assert reply(client, shop_key, mention_id).status_code == 202


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": ""}, "text"),
        ({"text": "   "}, "text"),
        ({"text": "\u200b\u200b"}, "text"),
        ({"text": " \u2060\u200d\u00ad "}, "text"),
        ({"text": 42}, "text"),
        ({"text": "x" * 281}, "text"),
        ({"text": "track it at shop.example.com/orders"}, "text"),
        ({"text": "hi", "tone": "warm"}, "tone"),
        ({}, "text"),
    ],
)
def test_a_bad_reply_is_a_400_naming_the_field_and_queues_nothing(
    client, shop_key, runtime, body, field
) -> None:
    mention_id = store_mention(runtime)

    response = post_json(client, f"/v1/mentions/{mention_id}/reply", body, shop_key)

    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == field
    with runtime.database.transaction() as tx:
        assert tx.scalar("SELECT count(*) FROM posts") == 0
        assert tx.scalar("SELECT state FROM mentions") == "open"


def test_a_reply_is_stripped_of_the_blanks_around_it_as_every_text_is(
    client, shop_key, runtime
) -> None:
    # A byte-order mark pasted before the text is no part of it (validation.BLANK).
    mention_id = store_mention(runtime)

    queued = reply(client, shop_key, mention_id, "\ufeff Sorry! DM us \ufeff")

    assert queued.status_code == 202
    with runtime.database.transaction() as tx:
        assert tx.scalar("SELECT text FROM posts") == "Sorry! DM us"


def test_a_brand_without_an_x_account_cannot_reply(client, runtime) -> None:
    body = brand_body(x_user_id=None, omit=("x_access_token",))
    key = post_json(client, "/v1/brands", body, OPERATOR_KEY).get_json()["api_key"]
    mention_id = store_mention(runtime)

    response = reply(client, key, mention_id)

    assert response.status_code == 409
    assert "no X account" in response.get_json()["error"]["message"]


def test_a_reply_whose_answer_was_lost_is_adopted_from_the_timeline_not_resent(
    client, shop_key, x_runtime, x_sandbox, clock
) -> None:
    from cartcast import reconciling

    mention_id = sandbox_mention(x_sandbox, x_runtime, "@alpha it arrived broken")
    reply(client, shop_key, mention_id, "So sorry! A new one ships today")
    x_sandbox.add_fault(method="POST", path_prefix="/2/tweets", drop=True)

    lost = reconciling.reconcile_then_publish(x_runtime, as_of=clock.now())
    clock.advance(dt.timedelta(minutes=10))
    settled = reconciling.reconcile_then_publish(x_runtime, as_of=clock.now())

    assert lost["unconfirmed"] == 1
    assert settled["adopted"] == 1 and settled["published"] == 0
    assert tweets_sent(x_sandbox) == 1
    [on_x] = [p for p in x_sandbox.snapshot()["posts"] if p["user_id"] != FAN["id"]]
    # X starts the reply with the @username it answers; the stored text has none.
    assert on_x["text"] == "@fan So sorry! A new one ships today"
    with x_runtime.database.transaction() as tx:
        post = tx.one("SELECT state, x_post_id FROM posts")
    assert post == {"state": "published", "x_post_id": on_x["id"]}


def test_a_reply_still_goes_out_while_the_brands_publishing_is_paused(
    client, shop_key, x_runtime, x_sandbox
) -> None:
    mention_id = sandbox_mention(x_sandbox, x_runtime, "@alpha is this a recall?")
    post_json(client, "/v1/brand/pause", {"reason": "product recall"}, shop_key)

    queued = reply(client, shop_key, mention_id, "Yes: details on our site today")
    outcome = publishing.publish_due(x_runtime, as_of=START)

    assert queued.status_code == 202
    assert outcome["published"] == 1 and outcome["held"] == 0
    assert tweets_sent(x_sandbox) == 1


def test_a_reply_scheduled_without_a_time_goes_out_at_the_next_publish_run(
    client, shop_key, x_runtime, x_sandbox
) -> None:
    # A reply takes no posting slot: `{}` sends it as soon as the publisher runs,
    # not at the brand's next slot, hours past the mention's response deadline.
    mention_id = sandbox_mention(
        x_sandbox, x_runtime, "@alpha my parcel is late", priority=1, due=START
    )
    post_id = reply(client, shop_key, mention_id).get_json()["post"]["id"]
    put_off = {"at": (START + dt.timedelta(hours=3)).isoformat()}
    post_json(client, f"/v1/posts/{post_id}/schedule", put_off, shop_key)

    moved = post_json(client, f"/v1/posts/{post_id}/schedule", {}, shop_key)
    outcome = publishing.publish_due(x_runtime, as_of=START)

    assert moved.status_code == 200, moved.get_json()
    assert moved.get_json()["post"]["scheduled_at"] == START.isoformat()
    assert outcome["published"] == 1
    assert tweets_sent(x_sandbox) == 1


def test_a_reply_may_be_put_at_the_instant_of_a_posts_slot(
    client, shop_key, runtime
) -> None:
    # Replies are due when written, never in a slot (migration 017): one may share
    # an instant with the feed post that holds the slot.
    slot = (START + dt.timedelta(days=1)).isoformat()
    post_id = reply(client, shop_key, store_mention(runtime)).get_json()["post"]["id"]
    with runtime.database.transaction() as tx:
        tx.execute(
            "INSERT INTO posts (id, brand_id, text, state, engine, weighted_length, "
            "scheduled_at, created_by, created_at, updated_at) "
            "VALUES (gen_random_uuid(), :brand_id, 'in the slot', 'scheduled', "
            "'manual', 11, :at, 'test', :now, :now)",
            brand_id=brand_id_of(runtime),
            at=START + dt.timedelta(days=1),
            now=START,
        )

    moved = post_json(client, f"/v1/posts/{post_id}/schedule", {"at": slot}, shop_key)

    assert moved.status_code == 200, moved.get_json()
    assert moved.get_json()["post"]["scheduled_at"] == slot


def test_scheduling_the_approved_posts_makes_a_reply_due_now_not_in_a_slot(
    client, shop_key, runtime
) -> None:
    # A reply settled "absent" goes back to approved, unscheduled (settling.py);
    # POST /v1/schedule then must not give it the brand's next feed slot, a day
    # past the customer's deadline, any more than `schedule {}` does.
    post_id = reply(client, shop_key, store_mention(runtime)).get_json()["post"]["id"]
    with runtime.database.transaction() as tx:
        tx.execute(
            "UPDATE posts SET state = 'approved', scheduled_at = NULL WHERE id = :id",
            id=post_id,
        )

    response = post_json(client, "/v1/schedule", {}, shop_key)

    assert response.status_code == 200, response.get_json()
    [scheduled] = response.get_json()["posts"]
    assert scheduled["id"] == post_id
    assert scheduled["scheduled_at"] == START.isoformat()


def test_a_lost_reply_never_adopts_another_customers_reply_of_the_same_words(
    client, shop_key, x_runtime, x_sandbox, clock
) -> None:
    from cartcast import reconciling

    # The reply to A never reached X and the one to B did; both answers are lost.
    # Once "@cust_b " is dropped, B's reply on X reads exactly as A's would.
    words = "Sorry! Please DM us your order number"
    faults = [{"status": 503, "drop": True}, {"drop": True}]
    mention_ids = []
    for author, fault in zip(
        (
            {"id": "7001", "username": "cust_a", "name": "A"},
            {"id": "7002", "username": "cust_b", "name": "B"},
        ),
        faults,
        strict=True,
    ):
        x_post_id = x_sandbox.add_mention(
            to_user_id=ALPHA["user_id"],
            text="@alpha where is my order",
            author=author,
            created_at=START - MINUTE,
        )
        mention_ids.append(
            store_mention(x_runtime, x_post_id=x_post_id, author_id=author["id"])
        )
        assert reply(client, shop_key, mention_ids[-1], words).status_code == 202
        x_sandbox.add_fault(method="POST", path_prefix="/2/tweets", **fault)
        publishing.publish_due(x_runtime, as_of=clock.now())
        clock.advance(MINUTE)

    # A's reply is sent again and X calls it a duplicate (of B's): the next
    # reconciling, finding no post of A's own, fails it.
    for _ in range(2):
        clock.advance(dt.timedelta(seconds=x_runtime.settings.reconcile_delay_s + 5))
        reconciling.reconcile_then_publish(x_runtime, as_of=clock.now())

    [on_x] = [
        p for p in x_sandbox.snapshot()["posts"] if p["user_id"] == ALPHA["user_id"]
    ]
    assert on_x["text"] == f"@cust_b {words}"
    with x_runtime.database.transaction() as tx:
        replies = tx.rows("SELECT state, in_reply_to, x_post_id FROM posts")
    published = [row for row in replies if row["state"] == "published"]
    # B's reply holds its own post; A's, sent again, is X's duplicate and fails.
    assert published == [
        {
            "state": "published",
            "in_reply_to": on_x["in_reply_to_tweet_id"],
            "x_post_id": on_x["id"],
        }
    ]
    with x_runtime.database.transaction() as tx:
        reopened = tx.one(
            "SELECT state, reply_failure FROM mentions WHERE id = :id",
            id=mention_ids[0],
        )
    assert reopened["state"] == "open" and "duplicate" in reopened["reply_failure"]


def test_a_reply_x_refuses_reopens_its_mention_and_says_why(
    client, shop_key, x_runtime, x_sandbox
) -> None:
    mention_id = sandbox_mention(
        x_sandbox, x_runtime, "@alpha @beta hello", to=BETA, conversation_id="901"
    )
    queued = reply(client, shop_key, mention_id).get_json()["mention"]

    publishing.publish_due(x_runtime, as_of=START)

    [reopened] = inbox(client, shop_key)["mentions"]
    assert queued["state"] == "handled" and queued["reply_post_id"]
    assert reopened["id"] == mention_id and reopened["state"] == "open"
    assert reopened["reply_post_id"] is None
    assert reopened["responded_at"] is None and reopened["response_s"] is None
    assert reopened["handled_at"] is None and reopened["handled_by"] is None
    assert reopened["reply_failure"]
    with x_runtime.database.transaction() as tx:
        reason = tx.scalar("SELECT failure_reason FROM posts")
    assert reopened["reply_failure"] == reason


def test_a_new_reply_clears_the_last_failure(
    client, shop_key, x_runtime, x_sandbox
) -> None:
    mention_id = sandbox_mention(
        x_sandbox, x_runtime, "@alpha @beta hello", to=BETA, conversation_id="902"
    )
    reply(client, shop_key, mention_id)
    publishing.publish_due(x_runtime, as_of=START)

    again = reply(client, shop_key, mention_id, "Sorry, try this").get_json()

    assert again["mention"]["state"] == "handled"
    assert again["mention"]["reply_failure"] is None


def test_a_queued_reply_is_edited_in_place_and_x_gets_the_new_words(
    client, shop_key, x_runtime, x_sandbox
) -> None:
    # A reply has no product to check and skips approvals: an edit changes its
    # words within the reply rules and leaves it queued, as it was written.
    mention_id = sandbox_mention(x_sandbox, x_runtime, "@alpha my parcel is late")
    post_id = reply(client, shop_key, mention_id).get_json()["post"]["id"]

    edited = client.patch(
        f"/v1/posts/{post_id}",
        json={"text": " Sorry! Please DM us your order number "},
        headers=auth(shop_key),
    )
    publishing.publish_due(x_runtime, as_of=START)

    assert edited.status_code == 200, edited.get_json()
    assert edited.get_json()["post"]["state"] == "scheduled"
    assert edited.get_json()["post"]["text"] == "Sorry! Please DM us your order number"
    # X shows a reply with the handle it answers in front.
    [sent] = x_sandbox.snapshot()["posts"]
    assert sent["text"] == "@fan Sorry! Please DM us your order number"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": "track it at shop.example.com/orders"}, "text"),
        ({"text": "\u200b "}, "text"),
        ({"text": "x" * 281}, "text"),
        ({"parts": ["one", "two"]}, "parts"),
        ({}, "text"),
    ],
)
def test_a_reply_edit_the_reply_rules_refuse_is_a_400_and_changes_nothing(
    client, shop_key, runtime, body, field
) -> None:
    post_id = reply(client, shop_key, store_mention(runtime)).get_json()["post"]["id"]

    response = client.patch(f"/v1/posts/{post_id}", json=body, headers=auth(shop_key))

    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == field
    with runtime.database.transaction() as tx:
        row = tx.one("SELECT text, state FROM posts")
    assert (row["text"], row["state"]) == ("Sorry! DM us your order", "scheduled")


def _token(place) -> str:
    """Write a place as inbox.py writes it, its list's kind first; a value that
    is no list is written as it is."""
    key = ["mentions", *place] if isinstance(place, list) else place
    raw = json.dumps(key).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


GOOD_PLACE = [
    2,
    1,
    "2026-03-02T10:00:00+00:00",
    "2026-03-02T09:00:00+00:00",
    "5b3f7c2e-8d1a-4c4e-9f43-0a1b2c3d4e5f",
]


@pytest.mark.parametrize(
    "place",
    [
        [True, *GOOD_PLACE[1:]],
        [1.0, *GOOD_PLACE[1:]],
        [2, True, *GOOD_PLACE[2:]],
        [2, 4, *GOOD_PLACE[2:]],
        [2, "0", *GOOD_PLACE[2:]],
        [2, 1, "0001-01-01T00:00:00+14:00", *GOOD_PLACE[3:]],
        [*GOOD_PLACE[:3], "9999-12-31T23:59:59-14:00", GOOD_PLACE[4]],
        [*GOOD_PLACE[:4], 12345],
        [*GOOD_PLACE[:4], ["5b3f7c2e-8d1a-4c4e-9f43-0a1b2c3d4e5f"]],
        [2, 1, 1700000000, *GOOD_PLACE[3:]],
        [2, 1, "2026-03-02T10:00:00", *GOOD_PLACE[3:]],
        # A token from before order issues sorted first, without that place.
        [2, *GOOD_PLACE[2:]],
        dict.fromkeys("abcd", 1),
        "abcd",
        None,
        [[[[[]]]]],
    ],
)
def test_a_malformed_after_token_is_a_400_naming_after(client, shop_key, place) -> None:
    response = client.get(f"/v1/mentions?after={_token(place)}", headers=auth(shop_key))

    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "after"


def test_after_tokens_built_from_good_and_bad_parts_never_give_a_500(
    client, shop_key
) -> None:
    # Each slot: the good value first, then shapes a forged token could carry.
    slots = [
        [2, 5, True, False, 0, 6, "2", None, 2.5, -1],
        [1, 0, True, 2, -1, "0", None],
        [
            "infinity",
            GOOD_PLACE[2],
            "0001-01-01T00:00:00+14:00",
            "9999-12-31T23:59:59-14:00",
            "2026-03-02",
            0,
            None,
            "+infinity",
            [],
            "2026-13-01T00:00:00+00:00",
        ],
        [
            GOOD_PLACE[3],
            "0001-01-01T00:00:00+14:00",
            "9999-12-31T23:59:59-14:00",
            "x",
            None,
            12,
            {},
            "2026-03-02T09:00:00",
        ],
        [
            GOOD_PLACE[4],
            12345,
            "",
            None,
            "5B3F7C2E8D1A4C4E9F430A1B2C3D4E5F",
            "{}",
            True,
        ],
    ]
    picker = random.Random(20260302)
    answers = set()

    for _ in range(80):
        place = [
            slot[0] if picker.random() < 0.6 else picker.choice(slot[1:])
            for slot in slots
        ]
        response = client.get(
            f"/v1/mentions?after={_token(place)}", headers=auth(shop_key)
        )
        answers.add(response.status_code)
        assert response.status_code in (200, 400), place
        if response.status_code == 400:
            assert response.get_json()["error"]["field"] == "after", place

    assert answers == {200, 400}


def test_praise_comes_after_other_mentions_and_before_spam_across_pages(
    client, shop_key, runtime
) -> None:
    spam = store_mention(runtime, priority=4, intent="spam")
    praise = store_mention(runtime, priority=4, intent="praise")
    other = store_mention(runtime, priority=4, intent="other")
    question = store_mention(
        runtime, priority=3, intent="question", due=START + 240 * MINUTE
    )

    first = inbox(client, shop_key, "?limit=2")
    rest = inbox(client, shop_key, f"?limit=2&after={first['next']}")

    found = [row["id"] for row in first["mentions"] + rest["mentions"]]
    assert found == [question, other, praise, spam]
    assert not any(key.startswith("sort_") for key in first["mentions"][0])


@pytest.mark.parametrize("query", ["?sentimnet=negative", "?state=open&page=2"])
def test_an_unknown_inbox_parameter_is_a_400_naming_it(client, shop_key, query) -> None:
    response = client.get(f"/v1/mentions{query}", headers=auth(shop_key))

    assert response.status_code == 400
    assert response.get_json()["error"]["field"] in ("sentimnet", "page")


def test_a_body_sent_to_handle_is_a_400_and_leaves_the_mention_open(
    client, shop_key, runtime
) -> None:
    mention_id = store_mention(runtime)

    refused = post_json(
        client, f"/v1/mentions/{mention_id}/handle", {"note": "done"}, shop_key
    )
    empty = post_json(client, f"/v1/mentions/{mention_id}/handle", None, shop_key)

    assert refused.status_code == 400
    assert refused.get_json()["error"]["field"] == "note"
    assert empty.status_code == 200


def test_the_inbox_shows_which_praise_is_content_to_reshare(
    client, shop_key, runtime
) -> None:
    praise = store_mention(runtime, text="@alpha love it, look!", priority=3)
    plain = store_mention(runtime, priority=1)
    with runtime.database.transaction() as tx:
        tx.execute("UPDATE mentions SET ugc_candidate = true WHERE id = :id", id=praise)

    found = {
        row["id"]: row["ugc_candidate"] for row in inbox(client, shop_key)["mentions"]
    }

    assert found == {plain: False, praise: True}
