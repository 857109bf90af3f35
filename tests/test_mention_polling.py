"""Polling mentions through tweepy against the X sandbox: every page, late-indexed
mentions, a stale cursor, rate limits, pacing, the read budget and bad mentions."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import threading
from decimal import Decimal

import pytest

from cartcast import author_data, mentions, removed_mentions, x
from infra.x_sandbox import XSandbox
from tests.helpers import admin_updates_brand
from tests.test_event_functions import PushReceiver
from tests.test_mentions import ALPHA, BETA, FAN, add_brand, stored, wire
from tests.test_publish_kill import wait_until

MENTIONS_ROUTE = "GET /2/users/:id/mentions"
STORED = """
SELECT x_post_id, author_id, author_username, author_name, text, author_followers,
    photo_count, lang
FROM mentions ORDER BY x_post_id
"""
OTHER = {"id": "77", "username": "other", "name": "Someone Else"}
GAMMA = {"user_id": "1500000000000000003", "username": "gamma", "name": "Gamma"}
CURSOR = """
SELECT mentions_since_id, mentions_resume_token, mentions_poll_interval_s,
    mentions_next_poll_at
FROM brands WHERE id = :brand_id
"""


@pytest.fixture
def sandbox(clock):
    with XSandbox(clock=clock) as running:
        running.register_account(**ALPHA, token="token-alpha")
        yield running


@pytest.fixture
def receiver():
    running = PushReceiver()
    yield running
    running.server.shutdown()


@pytest.fixture
def alpha(runtime, sandbox, receiver) -> str:
    """The brand alpha, connected, its fan-out pushed to the receiver."""
    wire(runtime, sandbox, receiver.url)
    return add_brand(runtime, "alpha", ALPHA, "token-alpha")


def mention(sandbox, clock, text: str = "@alpha hello", **options) -> str:
    mention_id = sandbox.add_mention(
        to_user_id=ALPHA["user_id"], text=text, author=FAN, **options
    )
    clock.advance(dt.timedelta(seconds=1))
    return mention_id


def cursor(runtime, brand_id: str) -> dict:
    with runtime.database.transaction() as tx:
        return tx.one(CURSOR, brand_id=brand_id)


def rows(runtime) -> list[dict]:
    with runtime.database.transaction() as tx:
        return tx.rows(STORED)


def mention_reads(sandbox) -> int:
    return sandbox.snapshot()["requests"].get(MENTIONS_ROUTE, {}).get("count", 0)


def pushed(receiver) -> list[dict]:
    """Return the payloads of the Pub/Sub CloudEvents pushed to the receiver."""
    return [
        json.loads(base64.b64decode(body["message"]["data"]))
        for _headers, body in receiver.received
    ]


def poll(runtime, clock) -> dict[str, int]:
    return mentions.poll_mentions(runtime, as_of=clock.now())


def next_tick(runtime, clock) -> None:
    """Move the clock past the longest interval: the brand's next poll is due."""
    clock.advance(dt.timedelta(seconds=runtime.settings.mention_poll_max_s))


# Pagination and the cursor


def halted_read(runtime, sandbox, clock) -> tuple[str, dict[str, int]]:
    """Poll one mention, then 150 more in a read X rate-limits after its first page.

    The halted read is a new 15-minute window whose second page meets a 429 with
    X's reset; return the first mention's id and that read's outcome.
    """
    first = mention(sandbox, clock, "@alpha first")
    poll(runtime, clock)
    for n in range(150):
        mention(sandbox, clock, f"@alpha hello {n}")
    next_tick(runtime, clock)
    sandbox.set_limit(MENTIONS_ROUTE, 1)
    return first, poll(runtime, clock)


def test_several_pages_are_read_to_the_end_before_the_cursor_moves(
    runtime, sandbox, clock, alpha
) -> None:
    ids = [mention(sandbox, clock, f"@alpha hello {n}") for n in range(250)]

    outcome = poll(runtime, clock)

    assert outcome["new"] == 250 and stored(runtime) == 250
    assert mention_reads(sandbox) == 3
    assert cursor(runtime, alpha)["mentions_since_id"] == ids[-1]


def test_a_page_refused_midway_keeps_the_pages_read_and_leaves_the_cursor(
    runtime, sandbox, clock, alpha
) -> None:
    old, outcome = halted_read(runtime, sandbox, clock)
    halfway = cursor(runtime, alpha)

    assert outcome["new"] == 100
    assert halfway["mentions_since_id"] == old
    assert halfway["mentions_resume_token"] is not None
    with runtime.database.transaction() as tx:
        paused = tx.scalar("SELECT x_reads_paused_until FROM brands")
    assert paused > clock.now()

    clock.advance(dt.timedelta(minutes=16))
    finished = poll(runtime, clock)

    assert finished["new"] == 50 and stored(runtime) == 151
    assert cursor(runtime, alpha)["mentions_resume_token"] is None
    assert cursor(runtime, alpha)["mentions_since_id"] != old


def test_a_page_token_kept_past_the_reread_margin_is_dropped_for_the_cursor(
    runtime, sandbox, clock, alpha, caplog
) -> None:
    # A removed author's ids are kept only a day past the poll's reach
    # (removed_mentions.REREAD_MARGIN); a token's query may reach back further.
    old, halted = halted_read(runtime, sandbox, clock)
    assert halted["new"] == 100
    assert cursor(runtime, alpha)["mentions_resume_token"] is not None
    sandbox.set_limit(MENTIONS_ROUTE, 300)  # X's limit again: every page answers

    clock.advance(removed_mentions.REREAD_MARGIN + dt.timedelta(minutes=1))
    outcome = poll(runtime, clock)

    # The read starts again from the cursor (its overlap reaching back to the
    # first mention): all 151 are read, not the 50 the token had left.
    assert outcome["read"] == 151 and outcome["new"] == 50 and stored(runtime) == 151
    assert cursor(runtime, alpha)["mentions_resume_token"] is None
    assert cursor(runtime, alpha)["mentions_since_id"] != old
    dropped = [r for r in caplog.records if "page token" in r.getMessage()]
    assert dropped and dropped[-1].levelname == "WARNING"


def test_a_page_token_x_refuses_is_dropped_with_a_warning_that_does_not_repeat_it(
    runtime, sandbox, clock, alpha, caplog
) -> None:
    # X's refusal quotes the token it was sent; the poll reads again from the
    # cursor at once, a routine fallback, and no log line carries the token.
    old, halted = halted_read(runtime, sandbox, clock)
    assert halted["new"] == 100
    refused = "no-longer-a-page-token"
    with runtime.database.transaction() as tx:
        tx.execute("UPDATE brands SET mentions_resume_token = :t", t=refused)
    sandbox.set_limit(MENTIONS_ROUTE, 300)
    caplog.clear()

    clock.advance(dt.timedelta(minutes=16))
    outcome = poll(runtime, clock)

    statuses = sandbox.snapshot()["requests"][MENTIONS_ROUTE]["statuses"]
    assert statuses["400"] == 1
    assert outcome["read"] == 151 and outcome["new"] == 50 and stored(runtime) == 151
    assert cursor(runtime, alpha)["mentions_resume_token"] is None
    assert cursor(runtime, alpha)["mentions_since_id"] != old
    assert [r for r in caplog.records if r.levelname == "ERROR"] == []
    dropped = [r for r in caplog.records if "page token" in r.getMessage()]
    assert [r.levelname for r in dropped] == ["WARNING"]
    assert "refused" in dropped[0].getMessage()
    logged = [f"{r.getMessage()} {getattr(r, 'fields', '')}" for r in caplog.records]
    assert not [line for line in logged if refused in line]


def test_a_next_page_token_x_refuses_mid_read_is_logged_without_quoting_it(
    runtime, sandbox, clock, alpha, caplog
) -> None:
    # X may refuse the token of a read's next page as it refuses a saved one:
    # the pages before it are stored, and no log line carries the token.
    for n in range(150):
        mention(sandbox, clock, f"@alpha hello {n}")
    refused = "a-next-page-token-x-refused"
    sandbox.add_fault(method="GET", path_prefix="/2/users/", hold=True)
    running = threading.Thread(target=poll, args=(runtime, clock))

    running.start()
    try:
        wait_until(lambda: mention_reads(sandbox), "the first page's read to reach X")
        sandbox.add_fault(
            method="GET",
            path_prefix="/2/users/",
            status=400,
            detail=f"The `pagination_token` query parameter value [{refused}] "
            "is not valid",
        )
    finally:
        sandbox.release_answers()
        running.join(60)

    assert stored(runtime) == 100
    assert cursor(runtime, alpha)["mentions_resume_token"] is None
    logged = [f"{r.getMessage()} {getattr(r, 'fields', '')}" for r in caplog.records]
    assert not [line for line in logged if refused in line]
    assert [r for r in caplog.records if r.levelname == "ERROR"] == []
    again = poll(runtime, clock)
    assert again["new"] == 50 and stored(runtime) == 150


def test_a_page_token_within_the_reread_margin_is_still_resumed(
    runtime, sandbox, clock, alpha
) -> None:
    halted_read(runtime, sandbox, clock)

    clock.advance(removed_mentions.REREAD_MARGIN - dt.timedelta(minutes=1))
    outcome = poll(runtime, clock)

    # The token's query reaches back past the cursor: the first mention is read
    # again, and stored once.
    assert outcome["read"] == 51 and outcome["new"] == 50 and stored(runtime) == 151


def test_a_resumed_read_keeps_the_overlap_its_first_page_was_asked_with(
    runtime, sandbox, clock, alpha
) -> None:
    # X ties a page token to its query: the resumed read sends the since_id the
    # first read sent, reached back past the cursor, and so still finds a mention
    # indexed late below the cursor.
    late = mention(sandbox, clock, "@alpha where is my order", index_lag_s=90)
    _, halted = halted_read(runtime, sandbox, clock)
    assert halted["new"] == 100

    clock.advance(dt.timedelta(minutes=16))
    resumed = poll(runtime, clock)

    assert resumed["new"] == 51 and stored(runtime) == 152
    assert late in {row["x_post_id"] for row in rows(runtime)}
    assert cursor(runtime, alpha)["mentions_resume_token"] is None


def test_a_mention_indexed_late_below_the_cursor_is_found_by_the_overlap(
    runtime, sandbox, clock, alpha
) -> None:
    late = mention(sandbox, clock, "@alpha where is my order", index_lag_s=90)
    newer = mention(sandbox, clock, "@alpha love it")
    first = poll(runtime, clock)
    assert first["new"] == 1 and cursor(runtime, alpha)["mentions_since_id"] == newer

    next_tick(runtime, clock)
    second = poll(runtime, clock)

    assert second["new"] == 1
    assert {row["x_post_id"] for row in rows(runtime)} == {late, newer}
    # The overlap re-read the newer mention too, and stored it once.
    assert second["read"] == 2 and stored(runtime) == 2


def test_without_an_overlap_a_late_mention_below_the_cursor_is_lost(
    runtime, sandbox, clock, alpha
) -> None:
    # The counterpart of the test above: what the overlap is for.
    runtime.settings = dataclasses.replace(runtime.settings, mention_overlap_s=0)
    mention(sandbox, clock, "@alpha where is my order", index_lag_s=90)
    mention(sandbox, clock, "@alpha love it")
    poll(runtime, clock)

    next_tick(runtime, clock)
    poll(runtime, clock)

    assert stored(runtime) == 1


def test_a_cursor_x_refuses_as_too_old_falls_back_to_the_last_seven_days(
    runtime, sandbox, clock, alpha
) -> None:
    mention(sandbox, clock, "@alpha first")
    poll(runtime, clock)
    clock.advance(dt.timedelta(days=8))
    recent = mention(sandbox, clock, "@alpha still there?")

    outcome = poll(runtime, clock)

    statuses = sandbox.snapshot()["requests"][MENTIONS_ROUTE]["statuses"]
    assert statuses["400"] == 1
    assert outcome["new"] == 1 and outcome["skipped"] == 0
    assert cursor(runtime, alpha)["mentions_since_id"] == recent

    next_tick(runtime, clock)
    assert poll(runtime, clock)["brands"] == 1
    assert sandbox.snapshot()["requests"][MENTIONS_ROUTE]["statuses"]["400"] == 1


def test_a_rate_limited_brand_waits_for_x_s_reset_not_a_fixed_window(
    runtime, sandbox, clock, alpha
) -> None:
    sandbox.add_fault(
        method="GET", path_prefix="/2/users/", status=429, count=1, reset_in_s=1800
    )
    poll(runtime, clock)
    reads = mention_reads(sandbox)

    clock.advance(dt.timedelta(minutes=20))
    waiting = poll(runtime, clock)
    clock.advance(dt.timedelta(minutes=11))
    after = poll(runtime, clock)

    assert waiting["skipped"] == 1 and mention_reads(sandbox) == reads + 1
    assert after["brands"] == 1


def test_the_brands_longest_due_are_polled_first_whatever_their_ids(
    runtime, sandbox, clock, receiver, caplog
) -> None:
    # Arrange: a run cut off by its timeout leaves the brands it did not reach to
    # the next; in id order those would be the same brands every time.
    wire(runtime, sandbox, receiver.url)
    accounts = [ALPHA, BETA, GAMMA]
    for account in accounts[1:]:
        sandbox.register_account(**account, token=f"token-{account['username']}")
    ids = sorted(
        add_brand(runtime, account["username"], account, f"token-{account['username']}")
        for account in accounts
    )
    lowest, middle, highest = ids
    due_since = {
        highest: clock.now() - dt.timedelta(minutes=30),
        lowest: clock.now() - dt.timedelta(minutes=5),
        middle: clock.now() - dt.timedelta(minutes=5),
    }
    with runtime.database.transaction() as tx:
        for brand_id, due_at in due_since.items():
            tx.execute(
                "UPDATE brands SET mentions_next_poll_at = :due_at WHERE id = :id",
                due_at=due_at,
                id=brand_id,
            )

    # Act
    poll(runtime, clock)

    # Assert: the longest due first; the two due alike in id order.
    polled = [
        record.fields["brand_id"]
        for record in caplog.records
        if record.getMessage() == "mentions polled"
    ]
    assert polled == [highest, lowest, middle]


# Pacing


def test_a_quiet_brand_is_polled_less_often_and_at_once_more_when_mentions_come(
    runtime, sandbox, clock, alpha
) -> None:
    intervals = []
    for _ in range(6):
        poll(runtime, clock)
        pace = cursor(runtime, alpha)
        intervals.append(pace["mentions_poll_interval_s"])
        assert poll(runtime, clock)["not_due"] == 1
        clock.advance(pace["mentions_next_poll_at"] - clock.now())

    mention(sandbox, clock)
    clock.advance(dt.timedelta(seconds=900))
    busy = poll(runtime, clock)

    assert intervals == [120, 240, 480, 900, 900, 900]
    assert busy["new"] == 1
    assert cursor(runtime, alpha)["mentions_poll_interval_s"] == 60


def test_a_poll_overlapping_a_running_one_leaves_the_brand_to_it(
    runtime, sandbox, clock, alpha
) -> None:
    # Two Scheduler ticks' runs at once (poll_mentions runs up to two instances):
    # the brand is read, and X paid, once.
    mention(sandbox, clock, "@alpha is my order on its way?")
    sandbox.add_fault(method="GET", path_prefix="/2/users/", hold=True)
    running = threading.Thread(target=poll, args=(runtime, clock))

    running.start()
    try:
        wait_until(lambda: mention_reads(sandbox), "the first poll's read to reach X")
        overlapping = poll(runtime, clock)
    finally:
        sandbox.release_answers()
        running.join(60)

    assert overlapping["not_due"] == 1 and overlapping["brands"] == 0
    assert mention_reads(sandbox) == 1 and stored(runtime) == 1


def test_a_poll_holds_its_brand_for_the_lease_the_deployment_sets(
    runtime, sandbox, clock, alpha
) -> None:
    # The deployment sets the lease to poll_mentions' timeout (terraform), which an
    # operator may raise to 540 s: a lease shorter than a run would let the next
    # tick's run read, and pay for, the same mentions while this one still reads.
    runtime.settings = dataclasses.replace(runtime.settings, mention_poll_lease_s=540)
    sandbox.add_fault(method="GET", path_prefix="/2/users/", hold=True)
    running = threading.Thread(target=poll, args=(runtime, clock))

    running.start()
    try:
        wait_until(lambda: mention_reads(sandbox), "the poll's read to reach X")
        held_until = cursor(runtime, alpha)["mentions_next_poll_at"]
    finally:
        sandbox.release_answers()
        running.join(60)

    assert held_until == clock.now() + dt.timedelta(seconds=540)


def test_a_poll_whose_read_x_failed_leaves_the_brand_due_at_the_next_tick(
    runtime, sandbox, clock, alpha
) -> None:
    sandbox.add_fault(method="GET", path_prefix="/2/users/", status=503)
    failed = poll(runtime, clock)
    mention(sandbox, clock, "@alpha is my order on its way?")

    again = poll(runtime, clock)

    assert failed["brands"] == 0 and again["new"] == 1


def test_the_poll_interval_settings_bound_the_backoff(runtime, sandbox, clock, alpha):
    runtime.settings = dataclasses.replace(
        runtime.settings, mention_poll_min_s=300, mention_poll_max_s=400
    )
    poll(runtime, clock)
    first = cursor(runtime, alpha)["mentions_poll_interval_s"]
    clock.advance(dt.timedelta(seconds=first))
    poll(runtime, clock)

    assert (first, cursor(runtime, alpha)["mentions_poll_interval_s"]) == (400, 400)


# The read budget


def set_budget(runtime, brand_id: str, usd: str) -> None:
    with runtime.database.transaction() as tx:
        admin_updates_brand(
            tx, brand_id, {"monthly_x_budget_usd": usd}, runtime.clock.now()
        )


def spend(runtime, brand_id: str, usd: str) -> None:
    with runtime.database.transaction() as tx:
        tx.execute(
            "INSERT INTO cost_ledger (brand_id, occurred_at, service, operation, "
            "units, usd, ref, reserved) VALUES (:brand_id, :now, 'x', 'post', 1, "
            ":usd, 'spent-before', false)",
            brand_id=brand_id,
            now=runtime.clock.now(),
            usd=Decimal(usd),
        )


def test_a_brand_whose_budget_cannot_pay_a_full_page_skips_the_poll(
    runtime, sandbox, clock, alpha
) -> None:
    # A shared-app read costs $0.005: a page of 100 is $0.50, and $0.49 is left.
    set_budget(runtime, alpha, "10.00")
    spend(runtime, alpha, "9.51")
    mention(sandbox, clock)

    outcome = poll(runtime, clock)

    assert outcome["skipped"] == 1 and mention_reads(sandbox) == 0
    assert stored(runtime) == 0


def test_a_nearly_spent_budget_reads_only_the_pages_it_can_pay(
    runtime, sandbox, clock, alpha
) -> None:
    set_budget(runtime, alpha, "10.00")
    spend(runtime, alpha, "8.90")  # $1.10 left: two pages of $0.50
    [mention(sandbox, clock, f"@alpha hello {n}") for n in range(250)]

    outcome = poll(runtime, clock)

    assert mention_reads(sandbox) == 2 and outcome["new"] == 200
    with runtime.database.transaction() as tx:
        spent = tx.scalar("SELECT sum(usd) FROM cost_ledger")
    assert spent <= Decimal("10.00")


# Bad mentions: each stored or skipped on purpose, never a crash


def test_a_mention_with_empty_text_is_stored_with_empty_text(
    runtime, sandbox, clock, alpha
) -> None:
    mention(sandbox, clock, "")

    assert poll(runtime, clock)["new"] == 1
    assert rows(runtime)[0]["text"] == ""


def test_a_mention_of_only_emoji_is_stored_as_sent(
    runtime, sandbox, clock, alpha
) -> None:
    mention(sandbox, clock, "😡😡📦❓")

    assert poll(runtime, clock)["new"] == 1
    assert rows(runtime)[0]["text"] == "😡😡📦❓"


def test_a_4000_character_mention_is_stored_whole_from_its_note(
    runtime, sandbox, clock, alpha
) -> None:
    text = "@alpha " + "my parcel never came. " * 200
    text = text[:4000]
    mention(sandbox, clock, text)

    assert poll(runtime, clock)["new"] == 1
    assert rows(runtime)[0]["text"] == text


def test_unpaired_surrogates_are_replaced_and_the_rest_kept(
    runtime, sandbox, clock, alpha
) -> None:
    mention(sandbox, clock, "@alpha \udc00broken\ud83d and 😀 fine")

    assert poll(runtime, clock)["new"] == 1
    assert rows(runtime)[0]["text"] == "@alpha ?broken? and 😀 fine"


def test_a_mention_whose_author_x_left_out_is_stored_without_author_details(
    runtime, sandbox, clock, alpha
) -> None:
    sandbox.add_mention(
        to_user_id=ALPHA["user_id"],
        text="@alpha hello",
        author={"id": "77", "username": "gone", "suspended": True},
    )

    assert poll(runtime, clock)["new"] == 1
    row = rows(runtime)[0]
    assert row["author_id"] == "77"
    assert (row["author_username"], row["author_name"], row["author_followers"]) == (
        None,
        None,
        None,
    )


def test_a_mention_listed_twice_in_one_page_is_stored_and_fanned_out_once(
    runtime, sandbox, clock, alpha, receiver
) -> None:
    mention(sandbox, clock, "@alpha twice", listed_twice=True)
    mention(sandbox, clock, "@alpha once")

    outcome = poll(runtime, clock)

    assert outcome["read"] == 2 and outcome["new"] == 2 and stored(runtime) == 2
    sent = [i for payload in pushed(receiver) for i in payload["mention_ids"]]
    assert len(sent) == len(set(sent)) == 2
    with runtime.database.transaction() as tx:
        billed = tx.scalar("SELECT sum(units) FROM cost_ledger")
    assert billed == 3  # X returned the repeated post twice, and bills each


def test_the_author_s_reach_photos_and_language_are_kept_for_triage(
    runtime, sandbox, clock, alpha
) -> None:
    sandbox.add_mention(
        to_user_id=ALPHA["user_id"],
        text="@alpha look at it on my shelf",
        author={"id": "88", "username": "big", "followers_count": 120_000},
        photo=True,
    )

    poll(runtime, clock)

    row = rows(runtime)[0]
    assert (row["author_followers"], row["photo_count"], row["lang"]) == (
        120_000,
        1,
        "en",
    )


# A removed author's mentions, read again


def remove_author(runtime, brand_id: str, username: str) -> dict:
    with runtime.database.transaction() as tx:
        return author_data.remove_author_data(
            tx,
            brand_id=brand_id,
            body={"username": username},
            actor="admin",
            now=runtime.clock.now(),
            reread_reach=removed_mentions.reread_reach(runtime.settings),
        )


def fanned_out(receiver) -> set[str]:
    return {i for payload in pushed(receiver) for i in payload["mention_ids"]}


def removed_author_traces(runtime) -> dict[str, int]:
    """Count what would show the removed author's mention came back."""
    with runtime.database.transaction() as tx:
        return tx.one(
            "SELECT (SELECT count(*) FROM mentions WHERE author_username = 'fan') "
            "AS by_fan, (SELECT count(*) FROM escalation_outbox) AS escalations"
        )


def test_a_removed_authors_mention_read_again_by_the_overlap_is_not_stored(
    runtime, sandbox, clock, alpha, receiver, caplog
) -> None:
    removed = mention(sandbox, clock, "@alpha my parcel never came")
    poll(runtime, clock)
    assert remove_author(runtime, alpha, "@fan")["mentions"] == 1
    # Someone else's mention, indexed late, comes in the same page as the re-read.
    late = sandbox.add_mention(
        to_user_id=ALPHA["user_id"],
        text="@alpha mine came fine",
        author=OTHER,
        index_lag_s=90,
    )
    clock.advance(dt.timedelta(seconds=1))
    before = fanned_out(receiver)

    next_tick(runtime, clock)
    outcome = poll(runtime, clock)

    assert outcome["read"] == 2 and outcome["new"] == 1
    assert removed_author_traces(runtime) == {"by_fan": 0, "escalations": 0}
    assert removed not in {row["x_post_id"] for row in rows(runtime)}
    with runtime.database.transaction() as tx:
        other = tx.one("SELECT id, x_post_id FROM mentions WHERE author_id = '77'")
    assert other["x_post_id"] == late
    assert fanned_out(receiver) - before == {str(other["id"])}
    polled = [r.fields for r in caplog.records if r.getMessage() == "mentions polled"]
    assert polled[-1]["removed_author"] == 1 and polled[-1]["new"] == 1


def test_a_removed_authors_mention_read_again_after_a_stale_cursor_is_not_stored(
    runtime, sandbox, clock, alpha, receiver
) -> None:
    mention(sandbox, clock, "@alpha my parcel never came")
    poll(runtime, clock)
    remove_author(runtime, alpha, "@fan")
    clock.advance(dt.timedelta(days=2))
    with runtime.database.transaction() as tx:
        # A cursor X no longer keeps: the poll restarts from seven days ago.
        tx.execute(
            "UPDATE brands SET mentions_since_id = :since_id",
            since_id=x.id_at(clock.now() - dt.timedelta(days=8)),
        )
    before = fanned_out(receiver)

    outcome = poll(runtime, clock)

    statuses = sandbox.snapshot()["requests"][MENTIONS_ROUTE]["statuses"]
    assert statuses["400"] == 1
    assert outcome["read"] == 1 and outcome["new"] == 0
    assert removed_author_traces(runtime) == {"by_fan": 0, "escalations": 0}
    assert fanned_out(receiver) == before
