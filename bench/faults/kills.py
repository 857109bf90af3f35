"""Publishers SIGKILLed between X's answer and their commit, at random points.

Each round starts `invocations` publish_due_posts processes (functions-framework on
loopback, as Cloud Run serves them), makes a batch of posts due and delivers each
of `invocations` Pub/Sub messages three times, every delivery to another process,
all at once. The X sandbox holds its answers to POST /2/tweets until the run
releases them, so every process is mid-send; then each process is SIGKILLed a
random 0 to KILL_SPREAD_MS after the release: before its answer arrived, between
the answer and the commit, or after the commit while sending the next post. The
platform's part after a crash is the next ticks: an in-process run, past the
lease and past the reconcile delay, as tests/test_publish_kill.py does, until no
post is left in flight. Then every scheduled post must be on X exactly once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import threading
import time
import uuid
from typing import Any

from bench.faults import common

KILL_SPREAD_MS = 15
PILE_UP_S = 0.05
WAIT_LIMIT_S = 60
RECOVERY_ROUNDS_MAX = 12
PUBLISH_TOPIC = "cartcast-publish_due_posts"
IN_FLIGHT = """
SELECT count(*) FROM publish_attempts
WHERE sent_at IS NOT NULL AND finished_at IS NULL
"""
UNSETTLED = """
SELECT count(*) FROM posts WHERE state IN ('scheduled', 'publishing', 'unconfirmed')
"""


def deliver(url: str, message_id: str, at: dt.datetime) -> int | None:
    """One Pub/Sub push delivery of a publish tick; None when the process died."""
    from infra import local_cloud

    try:
        return local_cloud.send_tick(
            url, topic=PUBLISH_TOPIC, time=at, message_id=message_id
        )
    except OSError:
        return None


def _deliver_into(
    statuses: list[int | None], url: str, message_id: str, at: dt.datetime
) -> None:
    statuses.append(deliver(url, message_id, at))


def wait_until(condition: Any, what: str) -> Any:
    deadline = time.monotonic() + WAIT_LIMIT_S
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.01)
    raise common.FaultRunError(f"gave up waiting for {what}")


def settle(runtime: Any, settings: Any) -> int:
    """Run what the next ticks would run until nothing is in flight; return runs."""
    from cartcast import reconciling

    clock = runtime.clock
    for done in range(1, RECOVERY_ROUNDS_MAX + 1):
        step = settings.publish_lease_s if done == 1 else settings.reconcile_delay_s
        clock.set(clock.now() + dt.timedelta(seconds=step + 1))
        reconciling.reconcile_then_publish(runtime, as_of=clock.now())
        with runtime.database.transaction() as tx:
            if not tx.scalar(UNSETTLED):
                return done
    raise common.FaultRunError(
        f"posts still in flight after {RECOVERY_ROUNDS_MAX} runs after the kills"
    )


def run(
    *, seed: int, rounds: int = 7, invocations: int = 8, posts_per_brand: int = 4
) -> dict[str, Any]:
    from cartcast import settings as settings_module
    from cartcast.clock import FileClock
    from cartcast.runtime import Runtime
    from infra import local_cloud
    from infra.x_sandbox import XSandbox

    rng = common.seeded(seed, "kills")
    work_dir = common.WORK_DIR / "kills"
    work_dir.mkdir(parents=True, exist_ok=True)
    catalog = common.products()
    brands = invocations
    totals = {"kills": 0, "in_window": 0, "deliveries": 0, "died_under": 0}
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(common.fresh_database("cartcast_bench_faults"))
        clock = FileClock(work_dir / "clock")
        clock.set(common.START)
        sandbox = stack.enter_context(XSandbox(clock=clock))
        env = {
            **local_cloud._base_env(),
            **common.UNBOUND_LIMITS,
            "DATABASE_URL": url,
            "CARTCAST_CLOCK": str(clock.path),
            "CARTCAST_MISSED_MAX_LATE_S": str(common.LATE_BOUND_S),
            "X_API_BASE_URL": sandbox.base_url,
            # Small batches, so every delivery claims posts of its own.
            "CARTCAST_PUBLISH_BATCH": "2",
            "CARTCAST_PUBLISH_WORKERS": "2",
        }
        settings = settings_module.load(env)
        # The runs after the kills claim whole batches, as a default instance would.
        runtime = Runtime(
            dataclasses.replace(settings, publish_batch_size=50, publish_workers=4),
            clock=clock,
        )
        stack.callback(runtime.close)
        ids = []
        for index in range(brands):
            brand_id, account = common.create_brand(runtime, index, prefix="kill")
            sandbox.register_account(**account.as_sandbox())
            ids.append(brand_id)

        for round_index in range(rounds):
            first = round_index * posts_per_brand
            rows = catalog[first : first + posts_per_brand]
            for brand_id in ids:
                common.schedule_products(runtime, brand_id, rows)
            processes = [
                local_cloud.FunctionProcess("publish_due_posts", env, work_dir).start()
                for _ in range(invocations)
            ]
            try:
                for process in processes:
                    process.wait_ready()
                due_at = common.make_all_due(runtime)
                posts_before = len(sandbox.snapshot()["posts"])
                sandbox.add_fault(
                    method="POST", path_prefix="/2/tweets", hold=True, count=10_000
                )
                statuses: list[int | None] = []
                senders = []
                for message in range(invocations):
                    message_id = uuid.uuid4().hex
                    for copy in range(3):
                        target = processes[(message + copy) % invocations]
                        sender = threading.Thread(
                            target=_deliver_into,
                            args=(statuses, target.url, message_id, due_at),
                            daemon=True,
                        )
                        sender.start()
                        senders.append(sender)
                wait_until(
                    lambda before=posts_before: (
                        len(sandbox.snapshot()["posts"]) > before
                    ),
                    "X to create a post",
                )
                time.sleep(PILE_UP_S)
                sandbox.release_answers()
                order = list(processes)
                rng.shuffle(order)
                for process in order:
                    time.sleep(rng.uniform(0, KILL_SPREAD_MS / 1000))
                    process.kill()
                for sender in senders:
                    sender.join(WAIT_LIMIT_S)
            finally:
                for process in processes:
                    process.stop()
            with runtime.database.transaction() as tx:
                in_window = tx.scalar(IN_FLIGHT)
            # The recovery's sends must not wait: drop what is left of the hold.
            sandbox.clear_faults()
            runs = settle(runtime, settings)
            totals["kills"] += invocations
            totals["in_window"] += in_window
            totals["deliveries"] += len(statuses)
            totals["died_under"] += sum(1 for status in statuses if status is None)
            common.say(
                f"  round {round_index + 1}: {invocations} kills, {in_window} posts "
                f"sent with no answer recorded, settled in {runs} runs"
            )
        snapshot = sandbox.snapshot()
        counted = common.tally(runtime, snapshot["posts"])
        sends = snapshot["requests"].get("POST /2/tweets", {})
    return {
        **totals,
        **counted,
        "sends": sends.get("count", 0),
        "refused_duplicates": sends.get("statuses", {}).get("403", 0),
    }
