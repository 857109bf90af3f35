"""Reading metrics from X through tweepy against the sandbox: which posts are read
and when, the 30-day window for clicks, posts deleted on X, followers once a day,
and what the cost ledger records."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from decimal import Decimal

import pytest

from cartcast import accounts, brands, metrics, posts, token_vault
from cartcast.errors import ConfigurationError
from cartcast.x import XClient
from tests.helpers import (
    ALPHA,
    brand_body,
    printed_by_a_fresh_functions_interpreter,
)

HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
INSERT_POST = """
INSERT INTO posts (id, brand_id, kind, text, link, state, engine, weighted_length,
    created_by, created_at, updated_at, published_at, x_post_id)
VALUES (:id, :brand_id, 'text', :text, :link, 'published', 'manual', :length, 'test',
    :now, :now, :now, :x_post_id)
"""


@pytest.fixture
def brand(x_runtime) -> dict:
    """The brand of the sandbox's account ALPHA, as the rollup sees it."""
    body = brand_body(
        slug="alpha",
        name="alpha",
        x_user_id=ALPHA["user_id"],
        x_access_token="token-alpha",
    )
    with x_runtime.database.transaction() as tx:
        brands.create_brand(tx, body, now=x_runtime.clock.now())
        return accounts.connected_brands(tx)[0]


@pytest.fixture
def alpha(x_sandbox) -> XClient:
    x_sandbox.set_limit("POST /2/tweets", 1000)
    return XClient(access_token="token-alpha", base_url=x_sandbox.base_url)


def publish(runtime, brand: dict, x: XClient, text: str) -> str:
    """Post `text` on X now and record it as the brand's published post; return
    cartcast's post id."""
    link = f"https://shop.example.com/p?utm_content={uuid.uuid4()}"
    created = x.create_post(f"{text} {link}", has_link=True)
    return record_post(runtime, brand, created.id, text=f"{text} {link}", link=link)


def record_post(
    runtime, brand: dict, x_post_id: str, *, text: str, link: str | None = None
) -> str:
    post_id = str(uuid.uuid4())
    with runtime.database.transaction() as tx:
        tx.execute(
            INSERT_POST,
            id=post_id,
            brand_id=brand["id"],
            text=text,
            link=link,
            length=min(len(text), 280),
            now=runtime.clock.now(),
            x_post_id=x_post_id,
        )
    return post_id


def read(runtime, brand: dict) -> int:
    return metrics.snapshot_brand(runtime, brand, runtime.clock.now())


def lookups(sandbox) -> int:
    return sandbox.snapshot()["requests"].get("GET /2/tweets", {}).get("count", 0)


def snapshots_of(runtime, post_id: str) -> list[dict]:
    with runtime.database.transaction() as tx:
        return tx.rows(
            "SELECT * FROM metric_snapshots WHERE post_id = :post_id "
            "ORDER BY captured_at",
            post_id=post_id,
        )


def post_row(runtime, post_id: str) -> dict:
    with runtime.database.transaction() as tx:
        return tx.one("SELECT * FROM posts WHERE id = :id", id=post_id)


def wait_until(condition, what: str) -> object:
    """Wait for another thread's step, with a deadline (no timing is asserted)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"gave up waiting for {what}")


def ledger(runtime, operation: str) -> int:
    with runtime.database.transaction() as tx:
        return tx.scalar(
            "SELECT COALESCE(SUM(units), 0) FROM cost_ledger WHERE operation = :op",
            op=operation,
        )


# Which posts are read, and how many a request


def test_250_due_posts_are_read_in_three_lookups(x_runtime, x_sandbox, brand, alpha):
    post_ids = [publish(x_runtime, brand, alpha, f"Post {n}") for n in range(250)]
    x_runtime.clock.advance(2 * HOUR)

    posts_read = read(x_runtime, brand)

    assert posts_read == 250
    assert lookups(x_sandbox) == 3
    assert all(len(snapshots_of(x_runtime, p)) == 1 for p in post_ids[::50])
    assert ledger(x_runtime, "post_read") == 250


def test_a_young_post_is_read_hourly_and_an_old_one_weekly(
    x_runtime, x_sandbox, clock, brand, alpha
) -> None:
    old = publish(x_runtime, brand, alpha, "Old linen")
    clock.advance(40 * DAY)
    young = publish(x_runtime, brand, alpha, "New linen")
    clock.advance(dt.timedelta(minutes=1))
    read(x_runtime, brand)

    clock.advance(HOUR)
    posts_read = read(x_runtime, brand)

    assert posts_read == 1
    assert len(snapshots_of(x_runtime, young)) == 2
    assert len(snapshots_of(x_runtime, old)) == 1
    assert post_row(x_runtime, old)["metrics_due_at"] == clock.now() - HOUR + 7 * DAY


def test_nothing_is_asked_of_x_when_nothing_is_due(x_runtime, x_sandbox, brand, alpha):
    publish(x_runtime, brand, alpha, "Read once")
    x_runtime.clock.advance(dt.timedelta(minutes=5))
    read(x_runtime, brand)
    before = lookups(x_sandbox)

    x_runtime.clock.advance(dt.timedelta(minutes=30))
    posts_read = read(x_runtime, brand)

    assert posts_read == 0
    assert lookups(x_sandbox) == before == 1


@pytest.mark.parametrize(
    ("age", "interval"),
    [
        (dt.timedelta(minutes=10), HOUR),
        (DAY + HOUR, 6 * HOUR),
        (8 * DAY, DAY),
        (31 * DAY, 7 * DAY),
        (400 * DAY, 7 * DAY),
    ],
)
def test_the_next_reading_follows_the_posts_age(age, interval) -> None:
    posted_at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    due_at = metrics.next_reading_at(posted_at, posted_at + age)

    assert due_at == posted_at + age + interval


# The 30-day window for clicks


def test_the_last_reading_of_clicks_is_due_six_hours_before_day_30(
    x_runtime, x_sandbox, clock, brand, alpha
) -> None:
    post_id = publish(x_runtime, brand, alpha, "A month of linen")
    clock.advance(29 * DAY + 2 * HOUR)
    read(x_runtime, brand)

    clock.advance(16 * HOUR)
    posts_read = read(x_runtime, brand)

    last = snapshots_of(x_runtime, post_id)[-1]
    assert posts_read == 1
    assert last["captured_at"] == clock.now()
    assert last["profile_clicks"] is not None and last["link_clicks"] is not None
    assert post_row(x_runtime, post_id)["metrics_due_at"] == clock.now() + DAY


def test_clicks_are_asked_for_at_29_days_23_hours_and_not_at_30_days_1_hour(
    x_runtime, x_sandbox, clock, brand, alpha
) -> None:
    older = publish(x_runtime, brand, alpha, "Older linen")
    clock.advance(2 * HOUR)
    younger = publish(x_runtime, brand, alpha, "Younger linen")
    clock.advance(29 * DAY + 23 * HOUR)

    read(x_runtime, brand)

    requests = x_sandbox.snapshot()["requests"]["GET /2/tweets"]
    assert requests == {"count": 2, "statuses": {"200": 2}}
    (young,) = snapshots_of(x_runtime, younger)
    (old,) = snapshots_of(x_runtime, older)
    assert young["link_clicks"] > 0 and young["profile_clicks"] is not None
    assert old["link_clicks"] is None and old["profile_clicks"] is None
    assert old["impressions"] > 0 and old["likes"] >= 0


def test_private_fields_x_withholds_are_not_a_deletion(
    x_runtime, x_sandbox, brand
) -> None:
    # A post of another account: X withholds its private fields from ALPHA.
    beta = XClient(access_token="token-beta", base_url=x_sandbox.base_url)
    theirs = beta.create_post("Beta's post")
    post_id = record_post(x_runtime, brand, theirs.id, text="Beta's post")
    x_runtime.clock.advance(HOUR)
    read(x_runtime, brand)

    x_runtime.clock.advance(HOUR)
    read(x_runtime, brand)

    row = post_row(x_runtime, post_id)
    assert row["deleted_on_x_at"] is None and row["missing_on_x_at"] is None
    assert row["text"] == "Beta's post"
    assert [s["link_clicks"] for s in snapshots_of(x_runtime, post_id)] == [None] * 2
    # Each read asked for the clicks, was refused them, and read the public fields.
    assert lookups(x_sandbox) == 4


# Posts deleted on X


def test_a_post_deleted_on_x_loses_its_text_keeps_its_orders_and_is_not_read_again(
    x_runtime, x_sandbox, clock, brand, alpha
) -> None:
    post_id = publish(x_runtime, brand, alpha, "Gone soon")
    x_post_id = post_row(x_runtime, post_id)["x_post_id"]
    with x_runtime.database.transaction() as tx:
        tx.execute(
            "INSERT INTO orders (brand_id, external_id, ordered_at, currency, "
            "total_price, post_id, received_at) VALUES (:brand_id, '1001', :now, "
            "'USD', 42.50, :post_id, :now)",
            brand_id=brand["id"],
            now=clock.now(),
            post_id=post_id,
        )
    clock.advance(HOUR)
    read(x_runtime, brand)
    x_sandbox.delete_post(x_post_id)

    clock.advance(HOUR)
    read(x_runtime, brand)
    missing = post_row(x_runtime, post_id)
    clock.advance(HOUR)
    read(x_runtime, brand)
    deleted = post_row(x_runtime, post_id)
    asked = lookups(x_sandbox)
    clock.advance(40 * DAY)
    read(x_runtime, brand)

    assert missing["missing_on_x_at"] is not None and missing["text"] != ""
    assert missing["deleted_on_x_at"] is None
    assert deleted["deleted_on_x_at"] == clock.now() - 40 * DAY
    assert deleted["text"] == "" and deleted["state"] == "published"
    assert lookups(x_sandbox) == asked == 3
    assert len(snapshots_of(x_runtime, post_id)) == 1
    with x_runtime.database.transaction() as tx:
        shown = posts.get_post(tx, brand_id=str(brand["id"]), post_id=post_id)
        order = tx.one("SELECT post_id, total_price FROM orders")
        event = tx.one(
            "SELECT from_state, to_state, reason FROM post_events "
            "WHERE post_id = :post_id ORDER BY id DESC LIMIT 1",
            post_id=post_id,
        )
    assert shown["deleted_on_x_at"] == deleted["deleted_on_x_at"]
    assert shown["text"] == "" and shown["metrics_due_at"] is None
    assert order == {"post_id": uuid.UUID(post_id), "total_price": Decimal("42.50")}
    assert event["from_state"] == event["to_state"] == "published"
    assert event["reason"].startswith(f"deleted on X: X has no post {x_post_id}")


def test_a_deleted_polls_options_and_parts_go_with_its_text(
    x_runtime, x_sandbox, clock, brand, alpha
) -> None:
    post_id = publish(x_runtime, brand, alpha, "Which linen?")
    with x_runtime.database.transaction() as tx:
        tx.execute(
            "UPDATE posts SET kind = 'poll', poll_options = ARRAY['Sand', 'Sage'], "
            "poll_duration_minutes = 60 WHERE id = :id",
            id=post_id,
        )
        tx.execute(
            "INSERT INTO post_parts (post_id, position, text, weighted_length, "
            "has_link) VALUES (:id, 0, 'Which linen?', 12, false)",
            id=post_id,
        )
    x_sandbox.delete_post(post_row(x_runtime, post_id)["x_post_id"])
    for _ in range(2):
        clock.advance(HOUR)
        read(x_runtime, brand)

    row = post_row(x_runtime, post_id)
    with x_runtime.database.transaction() as tx:
        parts = tx.rows("SELECT text FROM post_parts WHERE post_id = :id", id=post_id)
    assert row["deleted_on_x_at"] is not None
    assert (row["text"], row["poll_options"]) == ("", None)
    assert parts == [{"text": ""}]


def test_a_post_x_finds_again_after_one_not_found_is_kept(
    x_runtime, x_sandbox, clock, brand, alpha
) -> None:
    post_id = publish(x_runtime, brand, alpha, "Back again")
    clock.advance(HOUR)
    with x_runtime.database.transaction() as tx:
        # As a first lookup that answered resource-not-found leaves it.
        tx.execute(
            "UPDATE posts SET missing_on_x_at = :then, metrics_due_at = :now "
            "WHERE id = :id",
            then=clock.now() - HOUR,
            now=clock.now(),
            id=post_id,
        )

    posts_read = read(x_runtime, brand)

    row = post_row(x_runtime, post_id)
    assert posts_read == 1
    assert row["missing_on_x_at"] is None and row["deleted_on_x_at"] is None
    assert row["text"].startswith("Back again")


def test_a_failed_lookup_marks_nothing_and_the_posts_stay_due(
    x_runtime, x_sandbox, brand, alpha
) -> None:
    post_id = publish(x_runtime, brand, alpha, "Still here")
    x_runtime.clock.advance(HOUR)
    x_sandbox.add_fault(method="GET", path_prefix="/2/tweets", status=503)

    first = read(x_runtime, brand)
    second = read(x_runtime, brand)

    row = post_row(x_runtime, post_id)
    assert (first, second) == (0, 1)
    assert row["missing_on_x_at"] is None and row["deleted_on_x_at"] is None


def test_a_rate_limit_pauses_the_brands_reads(x_runtime, x_sandbox, brand, alpha):
    post_id = publish(x_runtime, brand, alpha, "Limited")
    x_runtime.clock.advance(HOUR)
    x_sandbox.add_fault(
        method="GET", path_prefix="/2/tweets", status=429, reset_in_s=600
    )

    posts_read = read(x_runtime, brand)

    with x_runtime.database.transaction() as tx:
        paused_until = tx.scalar(
            "SELECT x_reads_paused_until FROM brands WHERE id = :id", id=brand["id"]
        )
    assert posts_read == 0 and snapshots_of(x_runtime, post_id) == []
    assert paused_until == x_runtime.clock.now() + dt.timedelta(seconds=600)


class ClientsCounted:
    """The runtime as snapshot_brand sees it, counting the X clients asked of it."""

    def __init__(self, runtime) -> None:
        self._runtime = runtime
        self.clients_asked = 0

    def __getattr__(self, name: str):
        return getattr(self._runtime, name)

    def x_client(self, access_token: str):
        self.clients_asked += 1
        return self._runtime.x_client(access_token)


def test_no_x_client_is_built_when_nothing_is_due_and_followers_are_read(
    x_runtime, brand, alpha
) -> None:
    publish(x_runtime, brand, alpha, "Read once")
    x_runtime.clock.advance(dt.timedelta(minutes=5))
    first = ClientsCounted(x_runtime)
    read(first, brand)  # the post and today's followers
    x_runtime.clock.advance(dt.timedelta(minutes=30))
    second = ClientsCounted(x_runtime)

    posts_read = read(second, brand)

    assert first.clients_asked == 1
    assert (posts_read, second.clients_asked) == (0, 0)


def test_a_token_that_cannot_be_opened_leaves_the_due_posts_due(
    x_runtime, brand, alpha
) -> None:
    post_id = publish(x_runtime, brand, alpha, "Sealed away")
    x_runtime.clock.advance(dt.timedelta(minutes=5))
    # Sealed with a key this runtime was never given (no CARTCAST_TOKEN_KEY_*).
    sealed = token_vault.Vault(bytes(token_vault.KEY_BYTES)).seal("token-alpha")

    with pytest.raises(ConfigurationError):
        read(x_runtime, {**brand, "x_access_token": sealed})
    posts_read = read(x_runtime, brand)

    assert posts_read == 1
    assert len(snapshots_of(x_runtime, post_id)) == 1


def test_the_rollups_modules_load_no_x_client_library() -> None:
    code = (
        "import sys\n"
        "import main\n"
        "from cartcast import kpis, offboarding, retention, signin_limits\n"
        "print(sorted({'cartcast.x', 'tweepy', 'requests'} & set(sys.modules)))\n"
    )

    loaded = printed_by_a_fresh_functions_interpreter(code)

    assert loaded == "[]"


# Followers and the ledger


def test_followers_are_read_once_per_local_day(x_runtime, x_sandbox, clock, brand):
    # 08:00 UTC is 03:00 in New York; its next day starts at 05:00 UTC tomorrow.
    read(x_runtime, brand)
    clock.advance(20 * HOUR)
    read(x_runtime, brand)
    clock.advance(2 * HOUR)
    read(x_runtime, brand)

    users = x_sandbox.snapshot()["requests"]["GET /2/users/:id"]["count"]
    with x_runtime.database.transaction() as tx:
        days = tx.rows("SELECT local_day FROM account_snapshots ORDER BY local_day")
    assert users == 2
    assert [row["local_day"] for row in days] == [
        dt.date(2026, 3, 2),
        dt.date(2026, 3, 3),
    ]
    assert ledger(x_runtime, "user_read") == 2


def test_a_post_returned_again_the_same_utc_day_is_billed_once(
    x_runtime, x_sandbox, clock, brand, alpha
) -> None:
    publish(x_runtime, brand, alpha, "Billed once a day")
    gone = publish(x_runtime, brand, alpha, "Billed never once gone")
    x_sandbox.delete_post(post_row(x_runtime, gone)["x_post_id"])
    for _ in range(3):
        clock.advance(HOUR)
        read(x_runtime, brand)
    billed_today = ledger(x_runtime, "post_read")

    clock.advance(DAY)
    read(x_runtime, brand)

    assert billed_today == 1
    assert ledger(x_runtime, "post_read") == 2
    assert lookups(x_sandbox) == 4


def test_the_monthly_budget_stops_a_run_between_lookups(
    x_runtime, x_sandbox, brand, alpha
) -> None:
    for n in range(150):
        publish(x_runtime, brand, alpha, f"Budget {n}")
    with x_runtime.database.transaction() as tx:
        # 100 posts at $0.005 each pass $0.40.
        tx.execute(
            "UPDATE brands SET monthly_x_budget_usd = 0.40 WHERE id = :id",
            id=brand["id"],
        )
    x_runtime.clock.advance(HOUR)

    posts_read = read(x_runtime, brand)

    assert posts_read == 100
    assert lookups(x_sandbox) == 1


# Review of issue 6: ids typed by hand, threads, a failed second request,
# overlapping runs, reading times, deleted words elsewhere, the read price


def settled_by_hand(runtime, brand: dict, x_post_id: str, text: str) -> str:
    """Record a post a person settled on X with `x_post_id`, as settling.py does."""
    post_id = record_post(runtime, brand, x_post_id, text=text)
    with runtime.database.transaction() as tx:
        tx.execute(
            "UPDATE posts SET x_post_id_by_hand = true WHERE id = :id", id=post_id
        )
    return post_id


def test_an_id_typed_by_hand_that_x_never_had_keeps_the_text_and_says_so(
    x_runtime, x_sandbox, clock, brand, alpha
) -> None:
    real = alpha.create_post("Settled by hand")
    slip = str(int(real.id) + 1)
    post_id = settled_by_hand(x_runtime, brand, slip, "Settled by hand")
    first_look = clock.now() + HOUR
    for _ in range(3):
        clock.advance(HOUR)
        read(x_runtime, brand)

    row = post_row(x_runtime, post_id)
    assert row["text"] == "Settled by hand" and row["deleted_on_x_at"] is None
    # The first not-found stays, for a person to see and check the id.
    assert row["missing_on_x_at"] == first_look
    assert row["metrics_due_at"] > clock.now()


def test_an_id_typed_by_hand_that_x_returned_once_is_emptied_when_gone(
    x_runtime, x_sandbox, clock, brand, alpha
) -> None:
    real = alpha.create_post("Settled right")
    post_id = settled_by_hand(x_runtime, brand, real.id, "Settled right")
    clock.advance(HOUR)
    read(x_runtime, brand)
    x_sandbox.delete_post(real.id)
    for _ in range(2):
        clock.advance(HOUR)
        read(x_runtime, brand)

    row = post_row(x_runtime, post_id)
    assert row["deleted_on_x_at"] is not None and row["text"] == ""


def thread_of(runtime, brand: dict, parts: list[tuple[str, str, bool]]) -> str:
    """Record a published thread of (X id, text, has link) parts; return its id."""
    post_id = record_post(
        runtime, brand, parts[0][0], text="\n\n".join(text for _, text, _ in parts)
    )
    with runtime.database.transaction() as tx:
        tx.execute("UPDATE posts SET kind = 'thread' WHERE id = :id", id=post_id)
        for position, (x_post_id, text, has_link) in enumerate(parts):
            tx.execute(
                "INSERT INTO post_parts (post_id, position, text, weighted_length, "
                "has_link, x_post_id) VALUES (:id, :position, :text, 10, :has_link, "
                ":x_post_id)",
                id=post_id,
                position=position,
                text=text,
                has_link=has_link,
                x_post_id=x_post_id,
            )
    return post_id


def part_texts(runtime, post_id: str) -> list[str]:
    with runtime.database.transaction() as tx:
        return tx.scalar(
            "SELECT array_agg(text ORDER BY position) FROM post_parts "
            "WHERE post_id = :id",
            id=post_id,
        )


def test_a_threads_parts_are_looked_up_with_it_and_its_clicks_come_from_the_link(
    x_runtime, x_sandbox, clock, brand, alpha
) -> None:
    first = alpha.create_post("Linen, part one")
    last = alpha.create_post(
        "Part two https://shop.example.com/linen", has_link=True, in_reply_to=first.id
    )
    thread = thread_of(
        x_runtime,
        brand,
        [(first.id, "Linen, part one", False), (last.id, "Part two …", True)],
    )
    single = publish(x_runtime, brand, alpha, "On its own")
    clock.advance(HOUR)
    before = lookups(x_sandbox)

    read(x_runtime, brand)

    assert lookups(x_sandbox) - before == 1
    (snapshot,) = snapshots_of(x_runtime, thread)
    link_part = alpha.read_metrics([last.id], private=True).metrics[last.id]
    assert snapshot["link_clicks"] == link_part.link_clicks > 0
    assert snapshot["profile_clicks"] == link_part.profile_clicks
    assert len(snapshots_of(x_runtime, single)) == 1
    # Three posts returned on X: the thread's two parts and the single post.
    assert ledger(x_runtime, "post_read") == 3


def test_a_threads_part_deleted_on_x_loses_its_text_and_the_rest_stays(
    x_runtime, x_sandbox, clock, brand, alpha
) -> None:
    first = alpha.create_post("Thread part one")
    last = alpha.create_post("Thread part two", in_reply_to=first.id)
    thread = thread_of(
        x_runtime,
        brand,
        [(first.id, "Thread part one", False), (last.id, "Thread part two", False)],
    )
    x_sandbox.delete_post(last.id)
    for _ in range(3):
        clock.advance(HOUR)
        read(x_runtime, brand)

    row = post_row(x_runtime, thread)
    assert part_texts(x_runtime, thread) == ["Thread part one", ""]
    assert row["text"] == "Thread part one" and row["deleted_on_x_at"] is None
    assert len(snapshots_of(x_runtime, thread)) == 3


def test_a_thread_whose_first_part_is_gone_is_deleted_and_a_live_part_keeps_its_text(
    x_runtime, x_sandbox, clock, brand, alpha
) -> None:
    first = alpha.create_post("Thread A one")
    last = alpha.create_post("Thread A two", in_reply_to=first.id)
    thread = thread_of(
        x_runtime,
        brand,
        [(first.id, "Thread A one", False), (last.id, "Thread A two", False)],
    )
    x_sandbox.delete_post(first.id)
    for _ in range(3):
        clock.advance(HOUR)
        read(x_runtime, brand)

    row = post_row(x_runtime, thread)
    assert row["deleted_on_x_at"] is not None
    assert part_texts(x_runtime, thread) == ["", "Thread A two"]
    assert row["text"] == "Thread A two"


def test_a_failed_public_reread_keeps_and_bills_what_the_first_request_returned(
    x_runtime, x_sandbox, brand, alpha
) -> None:
    mine = publish(x_runtime, brand, alpha, "Mine")
    beta = XClient(access_token="token-beta", base_url=x_sandbox.base_url)
    theirs = record_post(
        x_runtime, brand, beta.create_post("Beta's post").id, text="Beta's post"
    )
    was_due = post_row(x_runtime, theirs)["published_at"]
    x_runtime.clock.advance(HOUR)
    # The first request is answered; the public re-read of Beta's post is a 429.
    x_sandbox.set_limit("GET /2/tweets", 1)

    posts_read = read(x_runtime, brand)

    assert posts_read == 1 and len(snapshots_of(x_runtime, mine)) == 1
    assert ledger(x_runtime, "post_read") == 1
    assert snapshots_of(x_runtime, theirs) == []
    assert post_row(x_runtime, theirs)["metrics_due_at"] == was_due


def test_overlapping_runs_split_the_due_posts_and_bill_each_once(
    x_runtime, x_sandbox, brand, alpha
) -> None:
    for n in range(150):
        publish(x_runtime, brand, alpha, f"Overlap {n}")
    x_runtime.clock.advance(HOUR)
    now = x_runtime.clock.now()
    # The first run's first lookup is held at X while a second run starts.
    x_sandbox.add_fault(method="GET", path_prefix="/2/tweets", hold=True)
    first: list[int] = []
    running = threading.Thread(
        target=lambda: first.append(metrics.snapshot_brand(x_runtime, brand, now))
    )
    running.start()
    try:
        wait_until(lambda: lookups(x_sandbox), "the first run's lookup")
        second = metrics.snapshot_brand(x_runtime, brand, now)
    finally:
        x_sandbox.release_answers()
        running.join()

    assert (first, second) == ([150], 0)
    assert ledger(x_runtime, "post_read") == 150


def test_a_crashed_runs_claim_lapses(x_runtime, x_sandbox, brand, alpha) -> None:
    post_id = publish(x_runtime, brand, alpha, "Claimed then lost")
    x_runtime.clock.advance(HOUR)
    with x_runtime.database.transaction() as tx:
        tx.execute(
            "UPDATE posts SET metrics_due_at = :lease_until WHERE id = :id",
            id=post_id,
            lease_until=x_runtime.clock.now() + metrics.CLAIM_LEASE,
        )
    assert read(x_runtime, brand) == 0

    x_runtime.clock.advance(metrics.CLAIM_LEASE)

    assert read(x_runtime, brand) == 1


def test_a_reading_is_stamped_with_when_x_answered_not_when_the_rollup_began(
    x_runtime, x_sandbox, clock, brand, alpha
) -> None:
    post_id = publish(x_runtime, brand, alpha, "Read late")
    began = clock.now() + HOUR
    clock.advance(3 * HOUR)

    metrics.snapshot_brand(x_runtime, brand, began)

    (snapshot,) = snapshots_of(x_runtime, post_id)
    assert snapshot["captured_at"] == clock.now()
    assert post_row(x_runtime, post_id)["last_metrics_at"] == clock.now()


def test_a_second_not_found_less_than_an_hour_after_the_first_deletes_nothing(
    x_runtime, x_sandbox, clock, brand, alpha
) -> None:
    post_id = publish(x_runtime, brand, alpha, "Gone, maybe")
    x_sandbox.delete_post(post_row(x_runtime, post_id)["x_post_id"])
    clock.advance(HOUR)
    read(x_runtime, brand)
    clock.advance(dt.timedelta(minutes=20))

    # A rollup that began an hour before it got to this brand.
    metrics.snapshot_brand(x_runtime, brand, clock.now() + 40 * dt.timedelta(minutes=1))

    row = post_row(x_runtime, post_id)
    assert row["deleted_on_x_at"] is None and row["text"].startswith("Gone, maybe")


def test_a_deleted_posts_words_leave_other_posts_reasons_and_the_logs(
    x_runtime, x_sandbox, clock, brand, alpha, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    post_id = publish(x_runtime, brand, alpha, "Secretive linen scarf for autumn")
    other = record_post(x_runtime, brand, "1", text="Another linen scarf")
    with x_runtime.database.transaction() as tx:
        # A reason written before posts were named by their id alone.
        tx.execute(
            "UPDATE posts SET fallback_reason = :reason WHERE id = :id",
            id=other,
            reason=f'gemini: near-duplicate of post {post_id} ("Secretive linen '
            'scarf for autumn…", similarity 0.91)',
        )
    x_sandbox.delete_post(post_row(x_runtime, post_id)["x_post_id"])
    for _ in range(2):
        clock.advance(HOUR)
        read(x_runtime, brand)

    with x_runtime.database.transaction() as tx:
        stored = tx.scalar(
            "SELECT string_agg(row_to_json(p)::text, ' ') FROM posts p"
        ) + " ".join(
            event["reason"] or "" for event in tx.rows("SELECT reason FROM post_events")
        )
    assert post_row(x_runtime, post_id)["deleted_on_x_at"] is not None
    assert "Secretive" not in stored and "Secretive" not in caplog.text
    assert post_row(x_runtime, other)["fallback_reason"] == (
        f"gemini: near-duplicate of post {post_id} (similarity 0.91)"
    )


def test_lookups_by_id_are_post_reads_even_with_the_brands_own_app(
    x_runtime, x_sandbox, brand, alpha
) -> None:
    with x_runtime.database.transaction() as tx:
        tx.execute("UPDATE brands SET x_own_app = true WHERE id = :id", id=brand["id"])
        (own_app_brand,) = accounts.connected_brands(tx)
    publish(x_runtime, brand, alpha, "Own app")
    x_runtime.clock.advance(HOUR)

    read(x_runtime, own_app_brand)

    with x_runtime.database.transaction() as tx:
        usd = tx.scalar(
            "SELECT SUM(usd) FROM cost_ledger WHERE operation = 'post_read'"
        )
    assert ledger(x_runtime, "owned_read") == 0
    assert ledger(x_runtime, "post_read") == 1 and usd == Decimal("0.005")
