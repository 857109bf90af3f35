"""Publishing on X at most once, per account, through the sandbox."""

from __future__ import annotations

import datetime as dt

from cartcast import accounts, posts, publishing
from tests.helpers import ALPHA, BETA, make_brand, states


def test_a_rate_limit_pauses_only_the_account_that_got_it(
    x_runtime, clock, x_sandbox
) -> None:
    alpha = make_brand(x_runtime, "alpha", ALPHA)
    beta = make_brand(x_runtime, "beta", BETA)
    clock.advance(dt.timedelta(days=7))
    x_sandbox.add_fault(
        method="POST", path_prefix="/2/tweets", status=429, count=1, reset_in_s=600
    )

    first = publishing.publish_due(x_runtime, as_of=clock.now())
    sent_after_first = x_sandbox.snapshot()["requests"]["POST /2/tweets"]["count"]
    publishing.publish_due(x_runtime, as_of=clock.now())
    sent_after_second = x_sandbox.snapshot()["requests"]["POST /2/tweets"]["count"]

    limited, other = (
        (alpha, beta) if states(x_runtime, alpha).count("scheduled") else (beta, alpha)
    )
    assert first["published"] == 2 and first["deferred"] == 2
    assert states(x_runtime, other) == ["published", "published"]
    assert states(x_runtime, limited) == ["scheduled", "scheduled"]
    assert sent_after_second == sent_after_first  # nobody knocks while paused

    clock.advance(dt.timedelta(minutes=11))
    publishing.publish_due(x_runtime, as_of=clock.now())

    assert states(x_runtime, limited) == ["published", "published"]


def test_a_post_claimed_but_never_sent_is_retried_after_its_lease(
    x_runtime, clock, x_sandbox
) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)
    clock.advance(dt.timedelta(days=7))
    publishing._claim(x_runtime, clock.now())  # the publisher dies right after claiming

    clock.advance(dt.timedelta(seconds=x_runtime.settings.publish_lease_s + 1))
    publishing.publish_due(x_runtime, as_of=clock.now())

    assert states(x_runtime, brand_id) == ["published"]
    assert len(x_sandbox.snapshot()["posts"]) == 1


def test_a_post_sent_without_an_answer_becomes_unconfirmed_and_is_not_resent(
    x_runtime, clock, x_sandbox
) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)
    clock.advance(dt.timedelta(days=7))
    claimed, attempts, _ = publishing._claim(x_runtime, clock.now())
    with x_runtime.database.transaction() as tx:  # the intent was written, then death
        tx.execute(
            publishing.MARK_SENT, attempt_id=attempts[claimed[0]["id"]], now=clock.now()
        )

    clock.advance(dt.timedelta(seconds=x_runtime.settings.publish_lease_s + 1))
    publishing.publish_due(x_runtime, as_of=clock.now())

    assert states(x_runtime, brand_id) == ["unconfirmed"]
    assert x_sandbox.snapshot()["posts"] == []


def test_due_posts_of_a_brand_without_x_are_held_with_the_reason(
    x_runtime, clock
) -> None:
    brand_id = make_brand(x_runtime, "offline", None, products=1)
    clock.advance(dt.timedelta(days=7))

    outcome = publishing.publish_due(x_runtime, as_of=clock.now())

    with x_runtime.database.transaction() as tx:
        held = posts.list_posts(tx, brand_id=brand_id, state="held", limit=5)
    assert outcome["held"] == 1
    assert held[0]["failure_reason"] == "the brand has no X account connected"


def test_x_refusing_a_post_fails_it_with_x_reason(x_runtime, clock, x_sandbox) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)
    clock.advance(dt.timedelta(days=7))
    x_sandbox.add_fault(method="POST", path_prefix="/2/tweets", status=403, count=1)

    publishing.publish_due(x_runtime, as_of=clock.now())

    with x_runtime.database.transaction() as tx:
        failed = posts.list_posts(tx, brand_id=brand_id, state="failed", limit=5)
    assert len(failed) == 1 and failed[0]["failure_reason"]


def test_a_publisher_that_outlived_its_lease_sends_nothing_more(
    x_runtime, clock, x_sandbox
) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)
    clock.advance(dt.timedelta(days=7))
    slow_claim, slow_attempts, _ = publishing._claim(x_runtime, clock.now())
    clock.advance(dt.timedelta(seconds=x_runtime.settings.publish_lease_s + 1))
    publishing.publish_due(x_runtime, as_of=clock.now())  # another run takes over

    post = slow_claim[0]
    late = publishing._publish_one(x_runtime, post, slow_attempts[post["id"]])

    assert late == "lost"
    assert states(x_runtime, brand_id) == ["published"]
    assert len(x_sandbox.snapshot()["posts"]) == 1


def test_a_pause_recorded_by_another_run_stops_the_next_send(
    x_runtime, clock, x_sandbox
) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)
    clock.advance(dt.timedelta(days=7))
    claimed, attempts, _ = publishing._claim(x_runtime, clock.now())
    with x_runtime.database.transaction() as tx:
        accounts.pause_x(
            tx, brand_id=brand_id, family="posts", reset_at=None, now=clock.now()
        )

    outcome = publishing._publish_one(x_runtime, claimed[0], attempts[claimed[0]["id"]])

    assert outcome == "lost"
    assert states(x_runtime, brand_id) == ["scheduled"]
    assert x_sandbox.snapshot()["posts"] == []


def test_x_calling_a_post_a_duplicate_leaves_it_unconfirmed_not_failed(
    x_runtime, clock, x_sandbox
) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)
    clock.advance(dt.timedelta(days=7))
    with x_runtime.database.transaction() as tx:
        text = posts.list_posts(tx, brand_id=brand_id, state=None, limit=1)[0]["text"]
    x_runtime.x_client("token-alpha").create_post(text)  # already on X

    publishing.publish_due(x_runtime, as_of=clock.now())

    assert states(x_runtime, brand_id) == ["unconfirmed"]


def test_a_post_whose_answer_broke_off_is_unconfirmed_and_never_resent(
    x_runtime, clock, x_sandbox
) -> None:
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)
    clock.advance(dt.timedelta(days=7))
    x_sandbox.add_fault(method="POST", path_prefix="/2/tweets", truncate=True)

    publishing.publish_due(x_runtime, as_of=clock.now())
    clock.advance(dt.timedelta(hours=1))
    publishing.publish_due(x_runtime, as_of=clock.now())

    assert states(x_runtime, brand_id) == ["unconfirmed"]
    assert x_sandbox.snapshot()["requests"]["POST /2/tweets"]["count"] == 1
