"""The database cut under running publishers, through a loopback proxy.

Two publish_due_posts processes reach PostgreSQL only through `CuttableProxy`.
Each has answered a tick first, so its pool holds connections. Then:

0. cut and restored at once while the pools sit idle: the next ticks must
   answer 2xx (a pooled connection found dead is replaced, not reported);
1. cut before the ticks: every delivery must answer 5xx (Pub/Sub retries it),
   soon, not after the function's deadline;
2. cut mid-run, once X has taken a few posts: the runs in flight answer 5xx or
   finish; posts X took before their commit was lost stay in flight;
3. restored: each delivery that answered 5xx is delivered again at once, and
   must answer 2xx the first time: connections that died in the pool are
   replaced, not reused;
4. the ticks after the lease and the reconcile delay settle what was in flight.

Then every post must be on X exactly once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
import uuid
from typing import Any

from bench.faults import common
from bench.faults.kills import UNSETTLED, deliver, wait_until
from bench.faults.proxy import CuttableProxy

SETTLE_TICKS_MAX = 12
X_LATENCY_S = 0.03


def deliver_all(
    urls: list[str], at: dt.datetime
) -> list[tuple[str, str, int | None, float]]:
    """Deliver one new message to each URL at once; (url, id, status, seconds)."""
    answers: list[tuple[str, str, int | None, float]] = []

    def one(url: str) -> None:
        message_id = uuid.uuid4().hex
        began = time.monotonic()
        status = deliver(url, message_id, at)
        answers.append((url, message_id, status, time.monotonic() - began))

    threads = [threading.Thread(target=one, args=(url,)) for url in urls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def run(*, seed: int, brands: int = 8, posts_per_brand: int = 4) -> dict[str, Any]:
    from cartcast import settings as settings_module
    from cartcast.clock import FileClock
    from cartcast.runtime import Runtime
    from infra import local_cloud
    from infra.x_sandbox import XSandbox

    work_dir = common.WORK_DIR / "dbcut"
    work_dir.mkdir(parents=True, exist_ok=True)
    catalog = common.products()
    figures: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(common.fresh_database("cartcast_bench_faults"))
        proxy = stack.enter_context(CuttableProxy(url))
        clock = FileClock(work_dir / "clock")
        clock.set(common.START)
        sandbox = stack.enter_context(XSandbox(clock=clock))
        sandbox.set_latency(X_LATENCY_S)
        env = {
            **local_cloud._base_env(),
            **common.UNBOUND_LIMITS,
            "DATABASE_URL": proxy.url,
            "CARTCAST_CLOCK": str(clock.path),
            "CARTCAST_MISSED_MAX_LATE_S": str(common.LATE_BOUND_S),
            "X_API_BASE_URL": sandbox.base_url,
            "CARTCAST_PUBLISH_BATCH": "4",
            "CARTCAST_PUBLISH_WORKERS": "2",
        }
        settings = settings_module.load({**env, "DATABASE_URL": url})
        runtime = Runtime(settings, clock=clock)
        stack.callback(runtime.close)
        for index in range(brands):
            brand_id, account = common.create_brand(runtime, index, prefix="cut")
            sandbox.register_account(**account.as_sandbox())
            common.schedule_products(
                runtime, brand_id, catalog[index : index + posts_per_brand]
            )
        processes = [
            local_cloud.FunctionProcess("publish_due_posts", env, work_dir).start()
            for _ in range(2)
        ]
        for process in processes:
            stack.callback(process.stop)
        for process in processes:
            process.wait_ready()
        urls = [process.url for process in processes]
        warm = deliver_all(urls, clock.now())  # nothing due yet: fills the pools
        if any(status is None or status >= 300 for _, _, status, _ in warm):
            raise common.FaultRunError(f"warm-up ticks failed: {warm}")

        # A blip while the pools sit idle, a moment after their last use (before
        # any idle check would look at them): the next tick must not notice.
        warm = deliver_all(urls, clock.now())
        proxy.cut()
        proxy.restore()
        blip = deliver_all(urls, clock.now())
        figures["after_idle_blip_2xx"] = (
            f"{sum(1 for _, _, s, _ in blip if s is not None and s < 300)}/{len(blip)}"
        )

        due_at = common.make_all_due(runtime)
        proxy.cut()
        before = deliver_all(urls * 2, due_at)
        proxy.restore()
        figures["cut_before_5xx"] = f"{_count_5xx(before)}/{len(before)}"

        on_x_before = len(sandbox.snapshot()["posts"])
        answers: list = []
        senders = threading.Thread(
            target=lambda: answers.extend(deliver_all(urls * 2, due_at))
        )
        senders.start()
        wait_until(
            lambda: len(sandbox.snapshot()["posts"]) >= on_x_before + 3,
            "X to take three posts",
        )
        proxy.cut()
        senders.join()
        proxy.restore()
        figures["cut_mid_run_5xx"] = f"{_count_5xx(answers)}/{len(answers)}"
        slowest = max(seconds for *_, seconds in before + answers)
        figures["slowest_answer_while_cut_s"] = round(slowest, 1)

        # Pub/Sub delivers each refused message again; the pools still hold what
        # died in them (connections checked in just before the cut).
        retried = []
        for url_, message_id, status, _ in before + answers:
            if status is None or status >= 500:
                retried.append(deliver(url_, message_id, due_at))
        figures["redelivered_2xx_first_time"] = (
            f"{sum(1 for s in retried if s is not None and s < 300)}/{len(retried)}"
        )

        ticks = 0
        for ticks in range(1, SETTLE_TICKS_MAX + 1):
            with runtime.database.transaction() as tx:
                if not tx.scalar(UNSETTLED):
                    break
            step = (
                settings.publish_lease_s if ticks == 1 else settings.reconcile_delay_s
            )
            clock.set(clock.now() + dt.timedelta(seconds=step + 1))
            deliver_all(urls, clock.now())
        figures["ticks_to_settle"] = ticks
        snapshot = sandbox.snapshot()
        counted = common.tally(runtime, snapshot["posts"])
        figures["cuts"] = proxy.cuts
        figures["connections_refused_while_cut"] = proxy.refused
    cut_before_ok = (
        figures["cut_before_5xx"].split("/")[0]
        == figures["cut_before_5xx"].split("/")[1]
    )
    redelivered_ok = len(set(figures["redelivered_2xx_first_time"].split("/"))) == 1
    blip_ok = len(set(figures["after_idle_blip_2xx"].split("/"))) == 1
    return {
        **figures,
        **counted,
        "ok": cut_before_ok
        and blip_ok
        and redelivered_ok
        and counted["doubled"] == 0
        and counted["lost"] == 0
        and not counted["wrong_x_id"]
        and slowest < settings.x_timeout_s + 30,
    }


def _count_5xx(answers: list) -> int:
    return sum(1 for _, _, status, _ in answers if status is not None and status >= 500)
