"""The tick claims in handled_events: pruned with each rollup, never too early."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import threading
import types
import uuid

import pytest

from cartcast import console_status, db, events, post_events, retention
from cartcast import runtime as runtime_module
from cartcast.errors import TransientError
from tests.conftest import START
from tests.test_event_functions import tick

DAY = dt.timedelta(days=1)

INSERT_CLAIM = """
INSERT INTO handled_events (function, event_id, handled_at, finished_at,
    run_holds_lock)
VALUES (:function, :event_id, :handled_at, :finished_at, :run_holds_lock)
"""
SELECT_EVENT_IDS = "SELECT event_id FROM handled_events ORDER BY event_id"


def _claimed(
    current, function: str, event_id: str, at, *, finished=True, held_lock=True
) -> None:
    with current.database.transaction() as tx:
        tx.execute(
            INSERT_CLAIM,
            function=function,
            event_id=event_id,
            handled_at=at,
            finished_at=at if finished else None,
            run_holds_lock=held_lock,
        )


def _event_ids(current) -> set[str]:
    return {row["event_id"] for row in current.database.reads().rows(SELECT_EVENT_IDS)}


def test_the_rollup_tick_prunes_old_claims_and_keeps_recent_ones(
    function_env, clock_file
) -> None:
    now = START + 30 * DAY
    clock_file.set(now)
    current = runtime_module.current()
    _claimed(current, "poll_mentions", "poll-old", now - 8 * DAY)
    _claimed(current, "poll_mentions", "poll-recent", now - 6 * DAY)
    _claimed(current, "rollup_kpis", "rollup-old", now - 20 * DAY)

    response = tick("rollup_kpis", now, message_id="rollup-now")

    assert response.status_code == 200
    assert _event_ids(current) == {"poll-recent", "rollup-now"}


def test_a_function_s_newest_claim_stays_however_old_for_the_status_page(
    runtime,
) -> None:
    _claimed(runtime, "poll_mentions", "poll-1", START - 40 * DAY)
    _claimed(runtime, "poll_mentions", "poll-2", START - 30 * DAY)

    retention.sweep_handled_events(runtime, now=START)

    with runtime.database.transaction() as tx:
        found = console_status.system_status(tx, brand_id=str(uuid.uuid4()), now=START)
    assert _event_ids(runtime) == {"poll-2"}
    assert [dict(run) for run in found["function_runs"]] == [
        {"function": "poll_mentions", "last_run": START - 30 * DAY, "runs": 0}
    ]


def test_the_status_page_counts_the_events_of_its_window(runtime) -> None:
    _claimed(runtime, "poll_mentions", "poll-1", START - 8 * DAY)
    _claimed(runtime, "poll_mentions", "poll-2", START - 2 * DAY)
    _claimed(runtime, "poll_mentions", "poll-3", START - DAY)

    with runtime.database.transaction() as tx:
        found = console_status.system_status(tx, brand_id=str(uuid.uuid4()), now=START)

    assert [dict(run) for run in found["function_runs"]] == [
        {"function": "poll_mentions", "last_run": START - DAY, "runs": 2}
    ]


def test_an_unfinished_claim_stays_until_its_keep_and_a_retry_takes_it_over(
    runtime,
) -> None:
    # A claim whose run held the lock, which no run holds now: its run died a
    # second ago.
    abandoned_at = START - dt.timedelta(seconds=1)
    _claimed(runtime, "poll_mentions", "t1", abandoned_at, finished=False)
    _claimed(runtime, "poll_mentions", "t2", START, finished=False)
    message = events.Message(event_id="t1", time=abandoned_at, payload={})

    retention.sweep_handled_events(runtime, now=START)
    with events.claim(runtime, "poll_mentions", message, claimed_at=START) as retried:
        pass

    assert _event_ids(runtime) == {"t1", "t2"}
    assert retried is events.Claim.CLAIMED


def test_claims_are_kept_at_least_as_long_as_an_event_may_be_acted_on(
    runtime,
) -> None:
    runtime.settings = dataclasses.replace(
        runtime.settings, max_event_age_s=int((30 * DAY).total_seconds())
    )
    _claimed(runtime, "poll_mentions", "within", START - 29 * DAY)
    _claimed(runtime, "poll_mentions", "past", START - 31 * DAY)
    _claimed(runtime, "poll_mentions", "newest", START)

    retention.sweep_handled_events(runtime, now=START)

    assert _event_ids(runtime) == {"within", "newest"}


def test_a_redelivery_after_its_claim_was_pruned_is_dropped_as_stale_not_run(
    function_env, clock_file
) -> None:
    # Arrange: a rollup tick ran; eight days on, a later rollup pruned its claim.
    first = tick("rollup_kpis", START, message_id="rollup-1")
    later = START + 8 * DAY
    clock_file.set(later)
    tick("rollup_kpis", later, message_id="rollup-2")
    current = runtime_module.current()
    pruned = "rollup-1" not in _event_ids(current)

    # Act: Pub/Sub delivers the first tick again.
    again = tick("rollup_kpis", START, message_id="rollup-1")

    # Assert: acknowledged, and not claimed (so not run): it is past its max age.
    assert first.status_code == again.status_code == 200
    assert pruned
    assert "rollup-1" not in _event_ids(current)


def test_a_run_whose_claim_was_taken_over_leaves_the_new_claim_alone(runtime) -> None:
    # Arrange: a run's lock went with its connection, and a retry took its claim
    # over; then the first run, cut off no longer, fails.
    first_at = START - dt.timedelta(seconds=1)
    message = events.Message(event_id="t1", time=first_at, payload={})
    with events.claim(runtime, "poll_mentions", message, claimed_at=first_at) as first:
        pass
    with events.claim(runtime, "poll_mentions", message, claimed_at=START) as retried:
        # Act: the first run gives back, and marks finished, only the claim it made.
        events.release(runtime, "poll_mentions", message, claimed_at=first_at)
        events.finish(runtime, "poll_mentions", message, claimed_at=first_at)
        third_at = START + dt.timedelta(seconds=1)
        with events.claim(
            runtime, "poll_mentions", message, claimed_at=third_at
        ) as third:
            pass

    # Assert: the retry still holds its claim, so a third delivery waits for it.
    assert first is retried is events.Claim.CLAIMED
    assert third is events.Claim.RUNNING


def test_a_run_older_than_a_minute_is_running_while_it_holds_its_lock(
    runtime,
) -> None:
    message = events.Message(event_id="t1", time=START, payload={})
    four_minutes_on = START + dt.timedelta(minutes=4)

    with events.claim(runtime, "poll_mentions", message, claimed_at=START) as first:
        with events.claim(
            runtime, "poll_mentions", message, claimed_at=four_minutes_on
        ) as second:
            pass
        events.finish(runtime, "poll_mentions", message, claimed_at=START)
    with events.claim(runtime, "poll_mentions", message, claimed_at=START) as third:
        pass

    assert first is events.Claim.CLAIMED
    assert second is events.Claim.RUNNING
    assert third is events.Claim.FINISHED


def test_a_run_killed_with_its_connection_is_taken_over_at_once(runtime) -> None:
    # Arrange: a run holds its claim; the server ends its session, as when the
    # instance dies or the network drops it.
    message = events.Message(event_id="t1", time=START, payload={})
    a_second_on = START + dt.timedelta(seconds=1)
    with events.claim(runtime, "poll_mentions", message, claimed_at=START) as first:
        # From another thread: the run's own thread would use the lock's session.
        ended = _in_another_thread(
            lambda: runtime.database.reads().scalar(END_RUN_SESSIONS)
        )

        # Act: a retry a second later.
        with events.claim(
            runtime, "poll_mentions", message, claimed_at=a_second_on
        ) as retried:
            handled_at = runtime.database.reads().scalar(SELECT_HANDLED_AT)

    # Assert: taken over, not waited for.
    assert first is retried is events.Claim.CLAIMED
    assert ended == 1
    assert handled_at == a_second_on


# Waits (up to 5 s) for each session to be gone: without the wait the signal is
# only sent, and the retry could find the lock still held by a backend that has
# not exited yet (it failed so once over the Unix socket).
END_RUN_SESSIONS = """
SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_locks
WHERE locktype = 'advisory' AND classid = 7317 AND granted
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""
SELECT_HANDLED_AT = "SELECT handled_at FROM handled_events WHERE event_id = 't1'"


def test_a_run_s_lock_is_given_back_when_its_work_raises(runtime) -> None:
    message = events.Message(event_id="t1", time=START, payload={})

    with (
        pytest.raises(RuntimeError),
        events.claim(runtime, "poll_mentions", message, claimed_at=START),
    ):
        raise RuntimeError("the run's work failed")
    held = runtime.database.reads().scalar(COUNT_RUN_LOCKS)

    assert held == 0


COUNT_RUN_LOCKS = """
SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 7317
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


def test_a_run_past_its_function_s_timeout_is_taken_over_though_it_holds_its_lock(
    runtime,
) -> None:
    # Arrange: a run still holds its lock past the function's timeout: the
    # platform ended its request, and its thread, frozen or not, answers no one.
    timeout = dt.timedelta(seconds=runtime.settings.function_timeout_s)
    message = events.Message(event_id="t1", time=START, payload={})
    with events.claim(runtime, "poll_mentions", message, claimed_at=START):
        # Act: Pub/Sub's retries, just before and just after that timeout.
        before_at, after_at = START + timeout, START + timeout + dt.timedelta(seconds=1)
        with events.claim(
            runtime, "poll_mentions", message, claimed_at=before_at
        ) as before:
            pass
        retry = events.claim(runtime, "poll_mentions", message, claimed_at=after_at)
        with retry as after:
            # A third delivery meanwhile waits for the run that took over.
            with events.claim(
                runtime, "poll_mentions", message, claimed_at=after_at
            ) as third:
                pass

    # Assert
    assert before is events.Claim.RUNNING
    assert after is events.Claim.CLAIMED
    assert third is events.Claim.RUNNING


def test_a_run_that_took_over_at_the_timeout_is_not_run_again_once_the_old_one_ends(
    runtime,
) -> None:
    # Arrange: a run outlives its function's timeout, and a retry takes its claim
    # over while it still holds the lock.
    timeout = dt.timedelta(seconds=runtime.settings.function_timeout_s)
    message = events.Message(event_id="t1", time=START, payload={})
    took_at = START + timeout + dt.timedelta(seconds=1)
    old_run = events.claim(runtime, "poll_mentions", message, claimed_at=START)
    old_run.__enter__()
    taking_over = events.claim(runtime, "poll_mentions", message, claimed_at=took_at)
    try:
        took = taking_over.__enter__()
        # Act: the old run ends (its finish matches nothing), and a duplicate
        # delivery comes while the run that took over is still going.
        events.finish(runtime, "poll_mentions", message, claimed_at=START)
        old_run.__exit__(None, None, None)
        later = took_at + dt.timedelta(seconds=5)
        with events.claim(runtime, "poll_mentions", message, claimed_at=later) as dup:
            pass
    finally:
        taking_over.__exit__(None, None, None)

    # Assert: the duplicate waits for the live run that took over.
    assert took is events.Claim.CLAIMED
    assert dup is events.Claim.RUNNING


# Two ticks whose run keys share a hashtext, so their runs share one lock.
SHARING_A_LOCK = ("tick-14623", "tick-224400")
SHARE_A_HASHTEXT = """
SELECT hashtext('poll_mentions/' || :first) = hashtext('poll_mentions/' || :second)
"""


def test_a_tick_run_without_the_lock_another_tick_held_is_not_run_again_once_it_ends(
    runtime,
) -> None:
    # Arrange: a tick runs, so a tick whose key shares its lock runs holding none.
    first, second = (
        events.Message(event_id=event_id, time=START, payload={})
        for event_id in SHARING_A_LOCK
    )
    later = START + dt.timedelta(seconds=5)
    with contextlib.ExitStack() as second_run:
        with events.claim(runtime, "poll_mentions", first, claimed_at=START):
            ran = second_run.enter_context(
                events.claim(runtime, "poll_mentions", second, claimed_at=START)
            )
            events.finish(runtime, "poll_mentions", first, claimed_at=START)

        # Act: the first tick's run is over; the second's run goes on, and a
        # duplicate delivery of the second tick comes.
        with events.claim(runtime, "poll_mentions", second, claimed_at=later) as dup:
            pass
    shared = runtime.database.reads().scalar(
        SHARE_A_HASHTEXT, first=first.event_id, second=second.event_id
    )

    # Assert: the free lock is not read as the second run's death.
    assert shared
    assert ran is events.Claim.CLAIMED
    assert dup is events.Claim.RUNNING


def test_a_dead_run_whose_lock_another_tick_holds_is_taken_over_at_the_timeout(
    runtime,
) -> None:
    # Arrange: a run that held its lock died; a tick whose key shares that lock
    # runs now, so the lock is held, but not by the dead run.
    timeout = dt.timedelta(seconds=runtime.settings.function_timeout_s)
    first, second = (
        events.Message(event_id=event_id, time=START, payload={})
        for event_id in SHARING_A_LOCK
    )
    with events.claim(runtime, "poll_mentions", second, claimed_at=START):
        pass
    before_at, after_at = START + timeout, START + timeout + dt.timedelta(seconds=1)
    with events.claim(runtime, "poll_mentions", first, claimed_at=before_at):
        # Act: the dead run's retries, at and past its function's timeout.
        with events.claim(
            runtime, "poll_mentions", second, claimed_at=before_at
        ) as before:
            pass
        with events.claim(
            runtime, "poll_mentions", second, claimed_at=after_at
        ) as after:
            pass

    # Assert: the held lock is not read as the dead run being alive for ever.
    assert before is events.Claim.RUNNING
    assert after is events.Claim.CLAIMED


INSERT_CLAIM_WITHOUT_LOCK_MARK = """
INSERT INTO handled_events (function, event_id, handled_at)
VALUES ('poll_mentions', :event_id, :handled_at)
"""


def test_a_claim_that_does_not_say_its_run_held_the_lock_is_taken_over_by_age_alone(
    runtime,
) -> None:
    # Arrange: an unfinished claim that does not say, as those made before
    # sql/054 and by the older code while it deploys do not; no lock is held.
    timeout = dt.timedelta(seconds=runtime.settings.function_timeout_s)
    message = events.Message(event_id="t1", time=START, payload={})
    with runtime.database.transaction() as tx:
        tx.execute(INSERT_CLAIM_WITHOUT_LOCK_MARK, event_id="t1", handled_at=START)

    # Act: retries a second on, and just past the function's timeout.
    a_second_on = START + dt.timedelta(seconds=1)
    with events.claim(
        runtime, "poll_mentions", message, claimed_at=a_second_on
    ) as soon:
        pass
    past_at = START + timeout + dt.timedelta(seconds=1)
    with events.claim(runtime, "poll_mentions", message, claimed_at=past_at) as past:
        pass

    # Assert: its run may be alive, so only its age lets a retry take it over.
    assert soon is events.Claim.RUNNING
    assert past is events.Claim.CLAIMED


def test_a_cold_claimed_run_opens_one_connection(runtime) -> None:
    # Arrange: a cold instance's pool, empty, counting the connections it opens.
    cold, opened = _counting_database(runtime)
    current = _runtime_on(runtime, cold)
    message = events.Message(event_id="t1", time=START, payload={})

    # Act: what a tick's run does: claim, a transaction, a lone read, finish.
    with post_events.acting_as("system:poll_mentions"):
        with events.claim(current, "poll_mentions", message, claimed_at=START) as run:
            with cold.transaction() as tx:
                tx.scalar("SELECT CAST(:v AS integer) AS work", v=1)
            cold.reads().scalar(SELECT_HANDLED_AT)
            events.finish(current, "poll_mentions", message, claimed_at=START)
    cold.close()

    # Assert
    assert run is events.Claim.CLAIMED
    assert len(opened) == 1


def test_a_run_s_transactions_share_its_lock_s_session_and_another_thread_s_do_not(
    runtime,
) -> None:
    message = events.Message(event_id="t1", time=START, payload={})

    with events.claim(runtime, "poll_mentions", message, claimed_at=START):
        with runtime.database.transaction() as outer, runtime.database.transaction():
            own = outer.scalar(SELECT_OWN_RUN_LOCKS)
        nested = _in_a_nested_transaction(runtime.database)
        elsewhere = _in_another_thread(
            lambda: runtime.database.reads().scalar(SELECT_OWN_RUN_LOCKS)
        )

    assert (own, nested, elsewhere) == (1, 0, 0)


def test_a_run_s_transaction_that_rolls_back_keeps_its_lock(runtime) -> None:
    message = events.Message(event_id="t1", time=START, payload={})

    with events.claim(runtime, "poll_mentions", message, claimed_at=START):
        with pytest.raises(Exception, match="division by zero"):
            with runtime.database.transaction() as tx:
                tx.scalar("SELECT 1 / CAST(:by AS integer) AS work", by=0)
        with runtime.database.transaction() as tx:
            own = tx.scalar(SELECT_OWN_RUN_LOCKS)
    held_after = runtime.database.reads().scalar(COUNT_RUN_LOCKS)

    assert own == 1
    assert held_after == 0


def test_a_run_whose_lock_s_connection_failed_stops_at_its_next_transaction(
    runtime,
) -> None:
    # Arrange: a run holds its claim; the server ends its lock's session.
    message = events.Message(event_id="t1", time=START, payload={})
    with events.claim(runtime, "poll_mentions", message, claimed_at=START):
        ended = _in_another_thread(
            lambda: runtime.database.reads().scalar(END_RUN_SESSIONS)
        )

        # Act: the run goes on to its next transactions.
        failures = [_failure_of_a_transaction(runtime.database) for _ in range(3)]
    held = runtime.database.reads().scalar(COUNT_RUN_LOCKS)

    # Assert: each fails as a lost connection, so the run stops and Pub/Sub's
    # retry takes over; none goes on on another connection without the lock.
    assert ended == 1
    assert all("connection failed" in str(failure) for failure in failures)
    assert all("session lock" in str(failure) for failure in failures[1:])
    assert held == 0


def _failure_of_a_transaction(database) -> TransientError:
    with pytest.raises(TransientError) as raised:
        with database.transaction() as tx:
            tx.scalar("SELECT 1 AS work")
    return raised.value


SELECT_OWN_RUN_LOCKS = """
SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 7317
  AND pid = pg_backend_pid()
"""


def _in_a_nested_transaction(database) -> int:
    with database.transaction(), database.transaction() as inner:
        return inner.scalar(SELECT_OWN_RUN_LOCKS)


def _in_another_thread(work):
    answers: list = []
    thread = threading.Thread(target=lambda: answers.append(work()))
    thread.start()
    thread.join()
    return answers[0]


def _counting_database(runtime) -> tuple[db.Database, list]:
    options = db.parse_database_url(runtime.settings.database_url)
    opened: list = []

    def connect(**startup):
        opened.append(startup)
        return db._connect_pg8000({**options, **startup})

    return db.Database(connect, settings_at_connect=True), opened


def _runtime_on(runtime, database):
    """The runtime's settings and clock, with another database."""
    return types.SimpleNamespace(
        settings=runtime.settings, clock=runtime.clock, database=database
    )
