"""The governor under X's post limits, through tweepy and the X sandbox."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading

from cartcast import posts, publishing
from cartcast import runtime as runtime_module
from tests.helpers import ALPHA, BETA, admin_updates_brand, make_brand, states

# A publisher stops once a run finds nothing to do; this bounds a runaway loop.
RUNS_MAX = 20
GAMMA = {"user_id": "1500000000000000003", "username": "gamma", "name": "Gamma"}


def limited(runtime, **limits: int):
    """The runtime with X's post limits replaced by `limits` (settings fields)."""
    runtime.settings = dataclasses.replace(runtime.settings, **limits)
    return runtime


def posts_on_x(sandbox, user_id: str | None = None) -> list[dict]:
    found = sandbox.snapshot()["posts"]
    return [p for p in found if user_id is None or p["user_id"] == user_id]


def posts_of(runtime, brand_id: str, state: str) -> list[dict]:
    with runtime.database.transaction() as tx:
        return posts.list_posts(tx, brand_id=brand_id, state=state, limit=50)


def test_a_brand_over_its_15_minute_limit_waits_until_the_window_frees(
    x_runtime, clock, x_sandbox
) -> None:
    runtime = limited(x_runtime, x_posts_per_15min_per_user=2)
    brand_id = make_brand(runtime, "alpha", ALPHA, products=3, link=False)
    clock.advance(dt.timedelta(days=7))
    frees_at = clock.now() + dt.timedelta(minutes=15)

    first = publishing.publish_due(runtime, as_of=clock.now())
    clock.advance(dt.timedelta(minutes=14))
    second = publishing.publish_due(runtime, as_of=clock.now())
    sent_while_waiting = len(posts_on_x(x_sandbox))

    (waiting,) = posts_of(runtime, brand_id, "scheduled")
    assert first["published"] == 2 and first["deferred"] == 1
    assert second["published"] == 0 and sent_while_waiting == 2
    assert waiting["failure_reason"] == (
        "will retry: X allows 2 posts per 15 minutes for this X account; "
        f"waiting until {frees_at.isoformat()}"
    )

    clock.advance(dt.timedelta(minutes=1))
    publishing.publish_due(runtime, as_of=clock.now())

    assert states(runtime, brand_id) == ["published"] * 3


def test_the_3_hour_window_counts_posts_sent_hours_before(
    x_runtime, clock, x_sandbox
) -> None:
    runtime = limited(x_runtime, x_posts_per_3h_per_user=2, publish_batch_size=1)
    brand_id = make_brand(runtime, "alpha", ALPHA, products=3, link=False)
    clock.advance(dt.timedelta(days=7))
    publishing.publish_due(runtime, as_of=clock.now())  # one post, two hours ago
    frees_at = clock.now() + dt.timedelta(hours=3)
    clock.advance(dt.timedelta(hours=2))
    runtime = limited(runtime, publish_batch_size=20)

    outcome = publishing.publish_due(runtime, as_of=clock.now())

    (waiting,) = posts_of(runtime, brand_id, "scheduled")
    assert outcome["published"] == 1 and outcome["deferred"] == 1
    assert waiting["failure_reason"].endswith(
        f"2 posts per 3 hours for this X account; waiting until {frees_at.isoformat()}"
    )
    assert len(posts_on_x(x_sandbox)) == 2


def test_each_part_of_a_thread_counts_as_a_post_and_the_thread_resumes(
    x_runtime, clock, x_sandbox
) -> None:
    runtime = limited(x_runtime, x_posts_per_15min_per_user=1)
    brand_id = make_brand(runtime, "alpha", ALPHA, products=1, kind="thread")
    clock.advance(dt.timedelta(days=7))

    first = publishing.publish_due(runtime, as_of=clock.now())
    (waiting,) = posts_of(runtime, brand_id, "scheduled")
    clock.advance(dt.timedelta(minutes=15))
    publishing.publish_due(runtime, as_of=clock.now())

    head, reply = sorted(posts_on_x(x_sandbox), key=lambda p: int(p["id"]))
    assert first["deferred"] == 1
    assert waiting["parts"][0]["x_post_id"] == head["id"]
    assert waiting["parts"][1]["x_post_id"] is None
    assert reply["in_reply_to_tweet_id"] == head["id"]
    assert states(runtime, brand_id) == ["published"]


def test_a_full_shared_app_window_pauses_every_brand_on_it_but_not_one_with_its_own_app(
    x_runtime, clock, x_sandbox
) -> None:
    x_sandbox.register_account(**GAMMA, token="token-gamma")
    runtime = limited(x_runtime, x_posts_per_24h_per_app=1)
    alpha = make_brand(runtime, "alpha", ALPHA, products=1, link=False)
    gamma = make_brand(runtime, "gamma", GAMMA, products=1, link=False)
    beta = make_brand(runtime, "beta", BETA, products=1, link=False)
    with runtime.database.transaction() as tx:
        admin_updates_brand(tx, beta, {"x_own_app": True}, runtime.clock.now())
    clock.advance(dt.timedelta(days=7))

    outcome = publishing.publish_due(runtime, as_of=clock.now())
    on_shared_app = states(runtime, alpha) + states(runtime, gamma)
    (waiting,) = posts_of(runtime, alpha, "scheduled") + posts_of(
        runtime, gamma, "scheduled"
    )

    assert outcome["published"] == 2 and outcome["deferred"] == 1
    assert sorted(on_shared_app) == ["published", "scheduled"]
    assert states(runtime, beta) == ["published"]
    assert (
        "X allows 1 posts per 24 hours for the shared X app"
        in (waiting["failure_reason"])
    )

    clock.advance(dt.timedelta(hours=23))
    publishing.publish_due(runtime, as_of=clock.now())
    still_waiting = sorted(states(runtime, alpha) + states(runtime, gamma))
    clock.advance(dt.timedelta(hours=1))
    publishing.publish_due(runtime, as_of=clock.now())

    assert still_waiting == ["published", "scheduled"]
    assert states(runtime, alpha) + states(runtime, gamma) == ["published"] * 2
    assert len(posts_on_x(x_sandbox)) == 3


def test_concurrent_publishers_never_send_past_a_limit(
    x_runtime, clock, x_sandbox
) -> None:
    settings = dataclasses.replace(
        x_runtime.settings,
        x_posts_per_15min_per_user=3,
        x_posts_per_24h_per_app=5,
        publish_batch_size=2,
    )
    x_runtime.settings = settings
    alpha = make_brand(x_runtime, "alpha", ALPHA, products=6, link=False)
    beta = make_brand(x_runtime, "beta", BETA, products=6, link=False)
    clock.advance(dt.timedelta(days=7))
    # Slow answers keep every publisher's sends in flight together.
    x_sandbox.add_fault(method="POST", path_prefix="/2/tweets", delay_s=0.05, count=12)

    run_together(settings, clock, invocations=4)

    published = posts_of(x_runtime, alpha, "published") + posts_of(
        x_runtime, beta, "published"
    )
    assert len(posts_on_x(x_sandbox)) == len(published) == 5
    assert len(posts_on_x(x_sandbox, ALPHA["user_id"])) <= 3
    assert len(posts_on_x(x_sandbox, BETA["user_id"])) <= 3


def run_together(settings, clock, *, invocations: int) -> None:
    """Run `invocations` publishers at once, each with its own runtime and
    connections, as overlapping function instances would; each runs until it
    finds nothing left to claim."""
    start = threading.Barrier(invocations)
    errors: list[BaseException] = []

    def invoke() -> None:
        runtime = runtime_module.Runtime(settings, clock=clock)
        try:
            start.wait()
            for _ in range(RUNS_MAX):
                outcome = publishing.publish_due(runtime, as_of=clock.now())
                if not sum(outcome.values()):
                    break
        except BaseException as error:  # noqa: BLE001 - reported by the test below
            errors.append(error)
        finally:
            runtime.close()

    threads = [threading.Thread(target=invoke) for _ in range(invocations)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_a_thread_waits_until_the_window_has_room_for_all_its_parts(
    x_runtime, clock, x_sandbox
) -> None:
    runtime = limited(x_runtime, x_posts_per_15min_per_user=3)
    brand_id = make_brand(runtime, "alpha", ALPHA, products=2, kind="thread")
    clock.advance(dt.timedelta(days=7))

    first = publishing.publish_due(runtime, as_of=clock.now())
    (waiting,) = posts_of(runtime, brand_id, "scheduled")
    clock.advance(dt.timedelta(minutes=15))
    publishing.publish_due(runtime, as_of=clock.now())

    assert first["published"] == 1 and first["deferred"] == 1
    assert all(part["x_post_id"] is None for part in waiting["parts"])
    assert "X allows 3 posts per 15 minutes" in waiting["failure_reason"]
    assert len(posts_on_x(x_sandbox)) == 4
    assert states(runtime, brand_id) == ["published", "published"]


def test_a_thread_under_way_sends_its_next_part_while_a_longer_one_pauses_the_app(
    x_runtime, clock, x_sandbox
) -> None:
    # The turn counts the shared app's window itself and does not read its pause
    # (decision 0112): the pause a longer thread's wait writes must not stop a
    # thread half-way when the window has room for the rest of it.
    x_sandbox.register_account(**GAMMA, token="token-gamma")
    # One worker: gamma's thread, due first, writes the pause before alpha's turn.
    runtime = limited(x_runtime, x_posts_per_24h_per_app=3, publish_workers=1)
    alpha = make_brand(runtime, "alpha", ALPHA, products=1, kind="thread")
    clock.advance(dt.timedelta(days=7))
    x_sandbox.add_fault(method="POST", path_prefix="/2/tweets")  # served as usual
    x_sandbox.add_fault(method="POST", path_prefix="/2/tweets", status=503)
    publishing.publish_due(runtime, as_of=clock.now())  # part 1 out, part 2 a 503
    gamma = make_brand(runtime, "gamma", GAMMA, products=1, kind="thread")
    with runtime.database.transaction() as tx:
        tx.execute(
            "UPDATE posts SET scheduled_at = (SELECT scheduled_at - interval '1 s'"
            " FROM posts WHERE brand_id = :alpha) WHERE brand_id = :gamma",
            alpha=alpha,
            gamma=gamma,
        )
    clock.advance(dt.timedelta(seconds=runtime.settings.publish_retry_base_s))

    outcome = publishing.publish_due(runtime, as_of=clock.now())

    (waiting,) = posts_of(runtime, gamma, "scheduled")
    assert outcome["published"] == 1 and outcome["deferred"] == 1
    assert states(runtime, alpha) == ["published"]
    assert "for the shared X app" in waiting["failure_reason"]
    assert len(posts_on_x(x_sandbox, ALPHA["user_id"])) == 2
    assert posts_on_x(x_sandbox, GAMMA["user_id"]) == []
