"""Settling unconfirmed posts from the account's timeline, through the X sandbox."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
from collections.abc import Iterator
from decimal import Decimal

import pytest

from cartcast import publishing, reconciling
from cartcast.errors import TransientError
from tests.helpers import ALPHA, admin_updates_brand, make_brand, states, tweets_sent

SELECT_ATTEMPTS = """
SELECT a.outcome, a.x_post_id, a.error, a.sent_at, a.checked_at, a.reconciled_at
FROM publish_attempts a JOIN posts p ON p.id = a.post_id
WHERE p.brand_id = :brand_id ORDER BY a.id
"""
SELECT_POST = "SELECT state, x_post_id, published_at FROM posts WHERE brand_id = :b"
SELECT_READS = """
SELECT operation, units, usd FROM cost_ledger WHERE brand_id = :brand_id
  AND operation IN ('owned_read', 'post_read')
"""


@pytest.fixture
def impatient_runtime(x_runtime):
    """The runtime with a short X timeout, so a slow answer times out quickly."""
    x_runtime.settings = dataclasses.replace(x_runtime.settings, x_timeout_s=0.2)
    return x_runtime


def attempts(runtime, brand_id: str) -> list[dict]:
    with runtime.database.transaction() as tx:
        return tx.rows(SELECT_ATTEMPTS, brand_id=brand_id)


def the_post(runtime, brand_id: str) -> dict:
    with runtime.database.transaction() as tx:
        (post,) = tx.rows(SELECT_POST, b=brand_id)
    return post


def timeline_reads(runtime, brand_id: str) -> list[dict]:
    with runtime.database.transaction() as tx:
        return tx.rows(SELECT_READS, brand_id=brand_id)


def wait(clock, seconds: float) -> None:
    clock.advance(dt.timedelta(seconds=seconds))


def test_a_post_accepted_after_the_client_timed_out_is_adopted_with_x_id(
    impatient_runtime, clock, x_sandbox
) -> None:
    brand_id = make_brand(impatient_runtime, "alpha", ALPHA, products=1)
    wait(clock, 7 * 86400)
    x_sandbox.add_fault(method="POST", path_prefix="/2/tweets", delay_s=0.6)
    reconciling.reconcile_then_publish(impatient_runtime, as_of=clock.now())
    unconfirmed = states(impatient_runtime, brand_id)

    wait(clock, 10)
    outcome = reconciling.reconcile_then_publish(impatient_runtime, as_of=clock.now())

    (on_x,) = x_sandbox.snapshot()["posts"]
    post = the_post(impatient_runtime, brand_id)
    (attempt,) = attempts(impatient_runtime, brand_id)
    assert unconfirmed == ["unconfirmed"]
    assert outcome["adopted"] == 1
    assert post["state"] == "published" and post["x_post_id"] == on_x["id"]
    assert post["published_at"] == attempt["sent_at"]  # X's created_at
    assert attempt["outcome"] == "published" and attempt["x_post_id"] == on_x["id"]
    assert "found on X" in attempt["error"]
    assert attempt["reconciled_at"] == clock.now()
    assert on_x["text"] != on_x["submitted_text"]  # matched through X's t.co link
    assert tweets_sent(x_sandbox) == 1


def test_the_timeline_read_is_an_owned_read_with_the_brand_s_own_app(
    impatient_runtime, clock, x_sandbox
) -> None:
    brand_id = make_brand(impatient_runtime, "alpha", ALPHA, products=1)
    with impatient_runtime.database.transaction() as tx:
        admin_updates_brand(
            tx, brand_id, {"x_own_app": True}, impatient_runtime.clock.now()
        )
    wait(clock, 7 * 86400)
    x_sandbox.add_fault(method="POST", path_prefix="/2/tweets", drop=True)
    publishing.publish_due(impatient_runtime, as_of=clock.now())

    wait(clock, 10)
    reconciling.reconcile_unconfirmed(impatient_runtime)

    assert timeline_reads(impatient_runtime, brand_id) == [
        {"operation": "owned_read", "units": 1, "usd": Decimal("0.001")}
    ]
    assert x_sandbox.snapshot()["requests"]["GET /2/users/:id/tweets"]["count"] == 1


def test_the_timeline_read_on_the_shared_app_is_priced_as_a_post_read(
    impatient_runtime, clock, x_sandbox
) -> None:
    brand_id = make_brand(impatient_runtime, "alpha", ALPHA, products=1)
    wait(clock, 7 * 86400)
    x_sandbox.add_fault(method="POST", path_prefix="/2/tweets", drop=True)
    publishing.publish_due(impatient_runtime, as_of=clock.now())

    wait(clock, 10)
    reconciling.reconcile_unconfirmed(impatient_runtime)

    assert timeline_reads(impatient_runtime, brand_id) == [
        {"operation": "post_read", "units": 1, "usd": Decimal("0.005")}
    ]


def test_a_post_accepted_but_not_yet_indexed_is_never_sent_again(
    x_runtime, clock, x_sandbox
) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)
    wait(clock, 7 * 86400)
    x_sandbox.set_index_lag(200)
    x_sandbox.add_fault(method="POST", path_prefix="/2/tweets", drop=True)
    reconciling.reconcile_then_publish(x_runtime, as_of=clock.now())

    wait(clock, 100)
    early = reconciling.reconcile_then_publish(x_runtime, as_of=clock.now())
    early_states = states(x_runtime, brand_id)
    early_attempt = attempts(x_runtime, brand_id)[0]
    wait(clock, 200)
    later = reconciling.reconcile_then_publish(x_runtime, as_of=clock.now())

    assert early["waiting"] == 1 and early_states == ["unconfirmed"]
    assert early_attempt["checked_at"] is not None
    assert early_attempt["reconciled_at"] is None
    assert later["adopted"] == 1
    assert states(x_runtime, brand_id) == ["published"]
    assert tweets_sent(x_sandbox) == 1 and len(x_sandbox.snapshot()["posts"]) == 1


def test_a_post_absent_well_after_sending_is_requeued_and_published_once(
    x_runtime, clock, x_sandbox
) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)
    wait(clock, 7 * 86400)
    claimed, started, _ = publishing._claim(x_runtime, clock.now())
    with x_runtime.database.transaction() as tx:  # the intent is written, then death
        tx.execute(
            publishing.MARK_SENT, attempt_id=started[claimed[0]["id"]], now=clock.now()
        )
    wait(clock, x_runtime.settings.publish_lease_s + 1)
    reconciling.reconcile_then_publish(x_runtime, as_of=clock.now())  # lease ends

    outcome = reconciling.reconcile_then_publish(x_runtime, as_of=clock.now())

    first, second = attempts(x_runtime, brand_id)
    assert outcome["requeued"] == 1 and outcome["published"] == 1
    assert states(x_runtime, brand_id) == ["published"]
    assert first["outcome"] == "retry" and "absent from the timeline" in first["error"]
    assert first["reconciled_at"] == clock.now()
    assert second["outcome"] == "published"
    assert tweets_sent(x_sandbox) == 1


def test_a_post_absent_before_the_delay_stays_unconfirmed(
    x_runtime, clock, x_sandbox
) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)
    wait(clock, 7 * 86400)
    claimed, started, _ = publishing._claim(x_runtime, clock.now())
    with x_runtime.database.transaction() as tx:
        tx.execute(
            publishing.MARK_SENT, attempt_id=started[claimed[0]["id"]], now=clock.now()
        )
    x_runtime.settings = dataclasses.replace(x_runtime.settings, reconcile_delay_s=3600)
    wait(clock, x_runtime.settings.publish_lease_s + 1)
    reconciling.reconcile_then_publish(x_runtime, as_of=clock.now())

    outcome = reconciling.reconcile_then_publish(x_runtime, as_of=clock.now())

    assert outcome["waiting"] == 1
    assert states(x_runtime, brand_id) == ["unconfirmed"]
    assert tweets_sent(x_sandbox) == 0


def test_a_rate_limited_timeline_read_changes_nothing(
    x_runtime, clock, x_sandbox
) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)
    wait(clock, 7 * 86400)
    x_sandbox.add_fault(method="POST", path_prefix="/2/tweets", drop=True)
    publishing.publish_due(x_runtime, as_of=clock.now())
    before = attempts(x_runtime, brand_id)
    x_sandbox.add_fault(method="GET", path_prefix="/2/users/", status=429)

    wait(clock, 3600)
    outcome = reconciling.reconcile_then_publish(x_runtime, as_of=clock.now())

    assert outcome["waiting"] == 1
    assert states(x_runtime, brand_id) == ["unconfirmed"]
    assert attempts(x_runtime, brand_id) == before
    assert timeline_reads(x_runtime, brand_id) == []
    assert tweets_sent(x_sandbox) == 1


def test_a_thread_part_without_an_answer_is_adopted_and_the_thread_goes_on(
    x_runtime, clock, x_sandbox
) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1, kind="thread")
    wait(clock, 7 * 86400)
    x_sandbox.add_fault(method="POST", path_prefix="/2/tweets", drop=True)
    reconciling.reconcile_then_publish(x_runtime, as_of=clock.now())
    unconfirmed = states(x_runtime, brand_id)

    wait(clock, 10)
    reconciling.reconcile_then_publish(x_runtime, as_of=clock.now())

    sent = sorted(x_sandbox.snapshot()["posts"], key=lambda p: int(p["id"]))
    post = the_post(x_runtime, brand_id)
    assert unconfirmed == ["unconfirmed"]
    assert post["state"] == "published" and post["x_post_id"] == sent[0]["id"]
    assert sent[1]["in_reply_to_tweet_id"] == sent[0]["id"]
    assert tweets_sent(x_sandbox) == len(sent) == 2


def test_text_compares_equal_once_links_are_reduced_and_entities_undone() -> None:
    sent = "Socks & more: https://shop.example.com/p/1?utm_source=x"
    on_x = "Socks &amp; more: https://t.co/abcdefghij"

    assert reconciling.comparable_text(sent) == reconciling.comparable_text(on_x)
    assert reconciling.comparable_text("Socks") != reconciling.comparable_text(on_x)


def test_a_delay_shorter_than_x_lag_still_leaves_one_post_on_x(
    x_runtime, clock, x_sandbox
) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)
    wait(clock, 7 * 86400)
    x_sandbox.set_index_lag(600)
    x_sandbox.add_fault(method="POST", path_prefix="/2/tweets", drop=True)
    reconciling.reconcile_then_publish(x_runtime, as_of=clock.now())

    wait(clock, 400)  # past the 300 s delay, before X shows the post
    resent = reconciling.reconcile_then_publish(x_runtime, as_of=clock.now())
    wait(clock, 300)
    settled = reconciling.reconcile_then_publish(x_runtime, as_of=clock.now())

    assert resent["requeued"] == 1 and resent["unconfirmed"] == 1  # X: duplicate
    assert settled["adopted"] == 1
    assert states(x_runtime, brand_id) == ["published"]
    assert len(x_sandbox.snapshot()["posts"]) == 1


SELECT_TEXT = "SELECT text FROM posts WHERE brand_id = :b"


def post_by_hand(runtime, sandbox, count: int, text: str = "") -> None:
    """Post on the account outside cartcast, as its owner would in X's app."""
    sandbox.set_limit("POST /2/tweets", 1000)
    client = runtime.x_client("token-alpha")
    for number in range(count):
        client.create_post(text or f"Posted by hand, number {number}")


def test_the_reconciler_follows_the_timeline_back_to_the_send_time_page_by_page(
    x_runtime, clock, x_sandbox
) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)
    wait(clock, 7 * 86400)
    x_sandbox.add_fault(method="POST", path_prefix="/2/tweets", drop=True)
    publishing.publish_due(x_runtime, as_of=clock.now())
    wait(clock, 10)
    post_by_hand(x_runtime, x_sandbox, 150)  # newer: the lost post is on page 2

    outcome = reconciling.reconcile_unconfirmed(x_runtime)

    assert outcome["adopted"] == 1
    assert states(x_runtime, brand_id) == ["published"]
    assert sorted(read["units"] for read in timeline_reads(x_runtime, brand_id)) == [
        51,
        100,
    ]
    assert x_sandbox.snapshot()["requests"]["GET /2/users/:id/tweets"]["count"] == 2
    assert tweets_sent(x_sandbox) == 151


def test_a_post_beyond_the_pages_read_is_never_concluded_absent(
    x_runtime, clock, x_sandbox
) -> None:
    x_runtime.settings = dataclasses.replace(x_runtime.settings, reconcile_pages_max=1)
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)
    wait(clock, 7 * 86400)
    x_sandbox.add_fault(method="POST", path_prefix="/2/tweets", drop=True)
    publishing.publish_due(x_runtime, as_of=clock.now())
    wait(clock, 10)
    post_by_hand(x_runtime, x_sandbox, 150)
    wait(clock, 3600)

    outcome = reconciling.reconcile_then_publish(x_runtime, as_of=clock.now())

    assert outcome["waiting"] == 1 and outcome["requeued"] == 0
    assert states(x_runtime, brand_id) == ["unconfirmed"]
    assert timeline_reads(x_runtime, brand_id) == [
        {"operation": "post_read", "units": 100, "usd": Decimal("0.500")}
    ]
    assert tweets_sent(x_sandbox) == 151


def test_a_duplicate_of_a_post_the_timeline_does_not_show_fails_with_what_to_do(
    x_runtime, clock, x_sandbox
) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)
    with x_runtime.database.transaction() as tx:
        (text,) = [row["text"] for row in tx.rows(SELECT_TEXT, b=brand_id)]
    post_by_hand(x_runtime, x_sandbox, 1, text=text)  # a week before it is due
    wait(clock, 7 * 86400)
    first = reconciling.reconcile_then_publish(x_runtime, as_of=clock.now())
    wait(clock, 10)
    early = reconciling.reconcile_then_publish(x_runtime, as_of=clock.now())

    wait(clock, x_runtime.settings.reconcile_delay_s)
    settled = reconciling.reconcile_then_publish(x_runtime, as_of=clock.now())
    later = reconciling.reconcile_then_publish(x_runtime, as_of=clock.now())

    post = the_post(x_runtime, brand_id)
    (attempt,) = attempts(x_runtime, brand_id)
    assert first["unconfirmed"] == 1 and early["waiting"] == 1
    assert settled["failed_duplicate"] == 1 and later["failed_duplicate"] == 0
    assert states(x_runtime, brand_id) == ["failed"]
    assert post["x_post_id"] is None
    assert attempt["outcome"] == "failed"
    assert reconciling.DUPLICATE_REASON in attempt["error"]
    assert tweets_sent(x_sandbox) == 2  # the hand-made post and the one refusal
    with x_runtime.database.transaction() as tx:
        reserved = tx.rows(
            "SELECT ref FROM cost_ledger WHERE brand_id = :b"
            " AND operation IN ('post', 'post_with_url')",
            b=brand_id,
        )
    assert reserved == []  # X charged nothing for the refused text


def test_a_duplicate_that_was_our_own_lost_post_is_adopted_not_failed(
    x_runtime, clock, x_sandbox
) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)
    wait(clock, 7 * 86400)
    claimed, started, _ = publishing._claim(x_runtime, clock.now())
    x_sandbox.add_fault(method="POST", path_prefix="/2/tweets", drop=True)
    publishing._publish_one(x_runtime, claimed[0], started[claimed[0]["id"]])
    with x_runtime.database.transaction() as tx:  # as if it had been re-queued
        tx.execute(
            "UPDATE posts SET state = 'scheduled' WHERE brand_id = :b", b=brand_id
        )
    resent = publishing.publish_due(x_runtime, as_of=clock.now())

    wait(clock, x_runtime.settings.reconcile_delay_s)
    settled = reconciling.reconcile_unconfirmed(x_runtime)

    (on_x,) = x_sandbox.snapshot()["posts"]
    assert resent["unconfirmed"] == 1
    assert settled["adopted"] == 1
    assert the_post(x_runtime, brand_id)["x_post_id"] == on_x["id"]


def test_a_read_cut_short_meters_the_page_it_got_and_concludes_nothing_older(
    x_runtime, clock, x_sandbox
) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)
    wait(clock, 7 * 86400)
    x_sandbox.add_fault(method="POST", path_prefix="/2/tweets", drop=True)
    publishing.publish_due(x_runtime, as_of=clock.now())
    wait(clock, 10)
    post_by_hand(x_runtime, x_sandbox, 150)
    wait(clock, 3600)
    x_sandbox.set_limit("GET /2/users/:id/tweets", 1)  # the second page meets a 429

    outcome = reconciling.reconcile_unconfirmed(x_runtime)

    assert outcome["waiting"] == 1 and outcome["requeued"] == 0
    assert states(x_runtime, brand_id) == ["unconfirmed"]
    assert timeline_reads(x_runtime, brand_id) == [
        {"operation": "post_read", "units": 100, "usd": Decimal("0.500")}
    ]


# PostgreSQL ending the metering transaction as a deadlock's victim (40P01), the
# next `times` times: a sequence counts the tries up to 0, as no rollback undoes it.
DEADLOCK_METERING = (
    "CREATE SEQUENCE metering_tries MINVALUE -1000000",
    "SELECT setval('metering_tries', -CAST(:times AS bigint))",
    """
    CREATE FUNCTION end_metering_as_deadlocked() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        IF nextval('metering_tries') <= 0 THEN
            RAISE EXCEPTION 'deadlock detected' USING ERRCODE = 'deadlock_detected';
        END IF;
        RETURN NEW;
    END $$
    """,
    """
    CREATE TRIGGER end_metering_as_deadlocked BEFORE INSERT ON cost_ledger
    FOR EACH ROW WHEN (NEW.ref LIKE 'reconcile:%')
    EXECUTE FUNCTION end_metering_as_deadlocked()
    """,
)
UNDO_DEADLOCK_METERING = (
    "DROP TRIGGER end_metering_as_deadlocked ON cost_ledger",
    "DROP FUNCTION end_metering_as_deadlocked()",
    "DROP SEQUENCE metering_tries",
)


@contextlib.contextmanager
def metering_deadlocked(runtime, *, times: int) -> Iterator[None]:
    """End the next `times` metering transactions of a timeline read as deadlocked."""
    create_sequence, count_down, create_function, create_trigger = DEADLOCK_METERING
    with runtime.database.transaction() as tx:
        tx.execute(create_sequence)
        tx.scalar(count_down, times=times)
        tx.execute(create_function)
        tx.execute(create_trigger)
    try:
        yield
    finally:
        with runtime.database.transaction() as tx:
            for statement in UNDO_DEADLOCK_METERING:
                tx.execute(statement)


def lost_post_read_back(runtime, clock, sandbox) -> str:
    """Leave one post unconfirmed on a brand, on X all the same; return the brand."""
    brand_id = make_brand(runtime, "alpha", ALPHA, products=1)
    wait(clock, 7 * 86400)
    sandbox.add_fault(method="POST", path_prefix="/2/tweets", drop=True)
    publishing.publish_due(runtime, as_of=clock.now())
    wait(clock, 10)
    return brand_id


def test_a_page_whose_metering_deadlocks_is_metered_on_the_next_try(
    x_runtime, clock, x_sandbox
) -> None:
    brand_id = lost_post_read_back(x_runtime, clock, x_sandbox)

    with metering_deadlocked(x_runtime, times=1):
        outcome = reconciling.reconcile_unconfirmed(x_runtime)

    assert outcome["adopted"] == 1
    assert timeline_reads(x_runtime, brand_id) == [
        {"operation": "post_read", "units": 1, "usd": Decimal("0.005")}
    ]
    assert x_sandbox.snapshot()["requests"]["GET /2/users/:id/tweets"]["count"] == 1


def test_metering_that_keeps_failing_is_raised_not_taken_for_a_stopped_read(
    x_runtime, clock, x_sandbox
) -> None:
    brand_id = lost_post_read_back(x_runtime, clock, x_sandbox)

    with metering_deadlocked(x_runtime, times=1000):
        with pytest.raises(TransientError, match="deadlock"):
            reconciling.reconcile_unconfirmed(x_runtime)

    # The run is retried; its read is metered then.
    outcome = reconciling.reconcile_unconfirmed(x_runtime)
    assert outcome["adopted"] == 1
    assert states(x_runtime, brand_id) == ["published"]
