"""`make bench`'s publishing row: 5,000 due posts, 4 concurrent invocations, X at 20 ms.

The issue's case: 5,000 posts due at once, spread over 100 brands (50 each, one X
account each), published by 4 concurrent invocations of publish_due_posts while the
X sandbox answers every call 20 ms late. Three figures, with the issue's goals:

    time / ideal   wall time from the first tick to the last invocation's end,
                   over posts x latency / invocations (<= 1.2)
    duplicates     scheduled posts with more than one copy on X, plus every
                   403 "duplicate content" the sandbox answered (0)
    lost           scheduled posts not `published` at the end (0)

The invocations are real: 4 functions-framework processes serve publish_due_posts on
loopback, as Cloud Run would, each driven by its own thread that delivers Pub/Sub
CloudEvent ticks (infra.local_cloud.send_tick, what a push subscription does), one
after the other, until the database shows no scheduled post due. Each tick reconciles,
then claims and sends one batch (CARTCAST_PUBLISH_BATCH). The processes answer one
warm-up tick, before anything is due, so the timed run pays no cold start.

Side by side, just before, the same number of bare invocations (bench/bare/main.py
`bare_publish`: functions-framework, the same ticks, the same X client and texts,
on accounts of their own, and no database) send the same posts one after another:
`time / bare` compares cartcast with a function of the same signature on this
machine, whose load and 2 cores also slow the X sandbox. The issue's ideal, like the
bare invocations, has one send at a time per invocation; cartcast's workers send
several (CARTCAST_PUBLISH_WORKERS), so the bench also prints the time over the
ideal of invocations x workers sends at once, which no run can beat.

Where the time goes is measured in a second, smaller pass: one invocation in this
process (reconcile_then_publish, as each tick runs it, without the HTTP around it)
publishes `--profile-posts` more posts, through a database whose connections count
and time every statement and commit, and an X client whose calls are timed. Per post
it reports the wall time, the time waiting for X, in the database, and the rest
(Python), with statements and transactions. Those seams are injected (a Runtime
subclass), nothing is patched.

    .venv/bin/python -m bench.publish_load [--posts 5000] [--brands 100]
        [--invocations 4] [--latency-ms 20] [--profile-posts 200] [--json PATH]

Everything runs on loopback and on a pinned FileClock shared with the sandbox: a
fresh migrated database on the embedded server (or DATABASE_URL's), brands created
and drafted through cartcast's own domain functions (template captions, scheduled
into the brands' slots), then the clock is set past the last slot. The governor's
limits are set in the functions' environment so they never bind (UNBOUND_LIMITS),
and each brand has a monthly X budget (BUDGET_USD) well above what its posts cost,
so every send is counted in the windows and checked against the cap, and none is
held by either.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import math
import os
import secrets
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CATALOG = REPO / "infra" / "data" / "catalog" / "dummyjson_products.json"
WORK_DIR = REPO / "var" / "bench" / "publish_load"
DEFAULT_JSON = REPO / "var" / "bench" / "publish_load.json"

RATIO_GOAL = 1.2
ISSUE_CASE = {"posts": 5000, "brands": 100, "invocations": 4, "latency_ms": 20.0}
# What `make bench` runs, to fit its five minutes: the issue's shape (50 posts a
# brand, 4 invocations, X at 20 ms) at a fifth of the size. Measured on 2026-12-05
# on 2 shared cores: 5,000 posts 1.93 x ideal and 1.44 x bare (load 5 to 8, 125 s
# in all); 1,000 posts 1.76 and 1.38 (load 3) and 1.67 and 0.95 (load 7); 3,000
# posts 1.53 and 0.97 (load 7). The load moves the ratios more than the size, and
# the goal is missed or met alike. Where a post's time goes is an average over 100
# posts instead of 200. This module alone still runs the issue's case.
BENCH_CASE = {
    "posts": 1000,
    "brands": 20,
    "invocations": 4,
    "latency_ms": 20.0,
    "profile_posts": 100,
}
# What `make bench`'s smoke test runs: every figure, in seconds.
QUICK_CASE = {
    "posts": 100,
    "brands": 5,
    "invocations": 4,
    "latency_ms": 20.0,
    "profile_posts": 20,
}
PROFILE_POSTS = 200
PROFILE_BRANDS = 4
# A Monday, 08:00 in New York, before every brand's first slot.
START = dt.datetime(2026, 3, 2, 13, 0, tzinfo=dt.UTC)
TIME_ZONE = "America/New_York"
FIRST_USER_ID = 1_500_000_000_000_000_000
# Ten slots a day, every day: 50 posts fill five days.
SLOTS = [
    {"weekday": day, "time": f"{hour:02d}:00"}
    for day in range(7)
    for hour in range(9, 19)
]
# The governor's limits, set so they never bind; X's own limits stay as the sandbox
# serves them: 100 posts per account and 15 minutes, twice what one brand publishes
# here.
UNBOUND_LIMITS = {
    "CARTCAST_X_POSTS_PER_15MIN_PER_USER": "100000",
    "CARTCAST_X_POSTS_PER_3H_PER_USER": "100000",
    "CARTCAST_X_POSTS_PER_24H_PER_APP": "10000000",
}
# More than the days the posts' slots span (see the environment in `run`).
LATE_BOUND_S = 60 * 86400
# Dollars a brand may spend this month: 50 posts with a link would cost $10.
BUDGET_USD = "50"
# Ticks per invocation before the driver gives up: a stuck post must end the run.
TICKS_SPARE = 20
STATEMENT_NAME_WORDS = 8
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
STATEMENTS_SHOWN = 8
COUNT_DUE = """
SELECT count(*) FROM posts WHERE state = 'scheduled' AND scheduled_at <= :as_of
"""
SELECT_SCHEDULED = """
SELECT p.id, p.text, p.state, p.x_post_id, b.x_user_id
FROM posts p JOIN brands b ON b.id = p.brand_id
WHERE p.brand_id = ANY(CAST(:brand_ids AS uuid[]))
"""
LAST_SLOT = "SELECT max(scheduled_at) FROM posts WHERE state = 'scheduled'"
SELECT_DUE_IN_ORDER = """
SELECT text, link, brand_id FROM posts WHERE state = 'scheduled'
ORDER BY scheduled_at, id
"""
PUBLISH_TOPIC = "cartcast-publish_due_posts"
# The bare invocations post the same texts as other accounts of the same brands.
BARE_USER_ID_OFFSET = 100_000


class BenchError(Exception):
    """The run could not be measured: set-up failed or an invocation broke."""


# --- The world ------------------------------------------------------------------


def create_brands(
    runtime: Any, sandbox_url: str, *, first: int, brands: int, posts: int
) -> dict[str, str]:
    """Create `brands` brands with `posts` scheduled posts between them.

    Each brand gets an X account in the sandbox, the demo catalog's first products
    and one template draft per product, scheduled into its slots; and a second
    account, for the bare invocations. Returns each brand's id with the token of
    its bare account.
    """
    from cartcast import brands as brands_module
    from cartcast import catalog
    from cartcast import posts as posts_module
    from infra.local_cloud import call_json

    products = json.loads(CATALOG.read_text())
    now = runtime.clock.now()
    created = {}
    for index in range(first, first + brands):
        count = posts // brands + (1 if index - first < posts % brands else 0)
        if count > len(products):
            raise BenchError(f"at most {len(products)} posts per brand")
        slug = f"bench-{index:03d}"
        account = {
            "user_id": str(FIRST_USER_ID + index),
            "username": f"bench{index:03d}",
            "name": f"Bench Goods {index}",
            "token": secrets.token_urlsafe(16),
        }
        bare = {
            **account,
            "user_id": str(FIRST_USER_ID + BARE_USER_ID_OFFSET + index),
            "username": f"bare{index:03d}",
            "token": secrets.token_urlsafe(16),
        }
        for each in (account, bare):
            status, body = call_json("POST", f"{sandbox_url}/_sandbox/accounts", each)
            if status != 201:
                raise BenchError(f"sandbox refused account {slug}: {status} {body}")

        with runtime.database.transaction() as tx:
            brand = brands_module.create_brand(
                tx,
                {
                    "name": account["name"],
                    "slug": slug,
                    "time_zone": TIME_ZONE,
                    "store_base_url": f"https://{slug}.example.com",
                    "approvals_required": False,
                    "posting_slots": SLOTS,
                    "x_user_id": account["user_id"],
                    "x_username": account["username"],
                    "x_access_token": account["token"],
                    "monthly_x_budget_usd": BUDGET_USD,
                },
                now=now,
            )["brand"]
            feed = products[:count]
            catalog.import_products(tx, brand_id=brand["id"], feed=feed, now=now)
            skus = [row["sku"] for row in feed]
            per_request = posts_module.PRODUCTS_PER_REQUEST_MAX
            for first_sku in range(0, count, per_request):
                chunk = skus[first_sku : first_sku + per_request]
                posts_module.create_drafts(
                    tx,
                    brand_id=brand["id"],
                    body={"products": chunk, "campaign": "bench"},
                    created_by="bench",
                    now=now,
                )
            scheduled = posts_module.schedule_approved(
                tx, brand_id=brand["id"], limit=count, now=now
            )
        if len(scheduled) != count:
            raise BenchError(f"{slug}: scheduled {len(scheduled)} of {count} posts")
        created[str(brand["id"])] = bare["token"]
    return created


def bare_queue_of(runtime: Any, bare_tokens: dict[str, str]) -> list[dict[str, Any]]:
    """The due posts in claiming order, as the bare invocations send them."""
    with runtime.database.transaction() as tx:
        rows = tx.rows(SELECT_DUE_IN_ORDER)
    return [
        {
            "token": bare_tokens[str(row["brand_id"])],
            "text": row["text"],
            "has_link": bool(row["link"]),
        }
        for row in rows
    ]


def make_all_due(runtime: Any) -> dt.datetime:
    """Move the shared clock a minute past the last scheduled post; return it."""
    with runtime.database.transaction() as tx:
        last = tx.scalar(LAST_SLOT)
    due_at = last + dt.timedelta(minutes=1)
    runtime.clock.set(due_at)
    return due_at


def sandbox_state(sandbox_url: str) -> dict[str, Any]:
    from infra.local_cloud import call_json

    status, state = call_json("GET", f"{sandbox_url}/_sandbox/state")
    if status != 200:
        raise BenchError(f"sandbox state answered {status}")
    return state


def refusals(state: dict[str, Any]) -> int:
    """Count X's 403 answers to POST /2/tweets so far. The sandbox refuses an
    account's repeated text as X does, so a second send of a post shows here as a
    403 "duplicate content", never as a second copy."""
    statuses = state["requests"].get("POST /2/tweets", {}).get("statuses", {})
    return int(statuses.get("403", 0))


def tally(
    runtime: Any, sandbox_url: str, brand_ids: list[str], *, refused_before: int = 0
) -> dict[str, Any]:
    """Compare the posts of `brand_ids` with what the sandbox holds; a duplicate is
    a 403 answered since `refused_before` was counted."""
    state = sandbox_state(sandbox_url)
    x_ids = {p["id"] for p in state["posts"]}
    statuses = state["requests"].get("POST /2/tweets", {}).get("statuses", {})

    with runtime.database.transaction() as tx:
        rows = tx.rows(SELECT_SCHEDULED, brand_ids=brand_ids)
    lost = [row for row in rows if row["state"] != "published"]
    unseen = [row for row in rows if row["x_post_id"] and row["x_post_id"] not in x_ids]
    return {
        "posts": len(rows),
        "published": len(rows) - len(lost),
        "duplicates": refusals(state) - refused_before,
        "lost": len(lost),
        "lost_states": dict(Counter(row["state"] for row in lost)),
        "published_but_not_on_x": len(unseen),
        "x_answers": statuses,
    }


# --- The timed runs -------------------------------------------------------------


@dataclasses.dataclass
class Driver:
    """One invocation: a function process and the thread that ticks it."""

    function: Any
    ticks: int = 0
    error: str | None = None
    finished_s: float = 0.0


@dataclasses.dataclass(frozen=True)
class Work:
    """What a run's ticks carry (None: nothing left to send) and when it is done."""

    next_payload: Callable[[], dict[str, Any] | None]
    done: Callable[[], bool]


def drive(
    driver: Driver,
    work: Work,
    *,
    as_of: dt.datetime,
    max_ticks: int,
    start: threading.Barrier,
    started: list[float],
) -> None:
    """Deliver ticks one after another until the work is done, as Pub/Sub would."""
    from infra.local_cloud import send_tick

    start.wait()
    try:
        while driver.ticks < max_ticks:
            payload = work.next_payload()
            if payload is None:
                return
            status = send_tick(
                driver.function.url, topic=PUBLISH_TOPIC, time=as_of, payload=payload
            )
            driver.ticks += 1
            if status >= 300:
                driver.error = f"tick answered {status}; see {driver.function.log_path}"
                return
            if work.done():
                return
        driver.error = f"work left after {max_ticks} ticks"
    except Exception as error:  # noqa: BLE001 - reported as the row's error
        driver.error = f"{type(error).__name__}: {error}"
    finally:
        driver.finished_s = time.perf_counter() - started[0]


def start_drivers(
    stack: contextlib.ExitStack,
    functions: list[Any],
    *,
    warm_payload: dict[str, Any],
    warm_at: dt.datetime,
) -> list[Driver]:
    """Start the processes and have each answer one tick that does no work."""
    from infra.local_cloud import send_tick

    for function in functions:
        stack.callback(function.stop)
        function.start()
    for function in functions:
        function.wait_ready()
        status = send_tick(
            function.url, topic=PUBLISH_TOPIC, time=warm_at, payload=warm_payload
        )
        if status >= 300:
            raise BenchError(f"warm-up tick answered {status}; see {function.log_path}")
    return [Driver(function) for function in functions]


def time_drivers(
    drivers: list[Driver], work: Work, *, as_of: dt.datetime, max_ticks: int
) -> dict[str, Any]:
    """Start every driver at once; return the wall time until the last one ends."""
    start = threading.Barrier(len(drivers) + 1)
    started = [0.0]
    threads = [
        threading.Thread(
            target=drive,
            args=(driver, work),
            kwargs={
                "as_of": as_of,
                "max_ticks": max_ticks,
                "start": start,
                "started": started,
            },
        )
        for driver in drivers
    ]
    for thread in threads:
        thread.start()
    started[0] = time.perf_counter()
    start.wait()
    for thread in threads:
        thread.join()

    errors = [driver.error for driver in drivers if driver.error]
    return {
        "wall_s": round(max(driver.finished_s for driver in drivers), 2),
        "ticks": [driver.ticks for driver in drivers],
        "finished_s": [round(driver.finished_s, 2) for driver in drivers],
        "error": "; ".join(errors) or None,
    }


def timed_runs(
    runtime: Any,
    env: dict[str, str],
    work_dir: Path,
    *,
    bare_queue: list[dict[str, Any]],
    invocations: int,
    posts: int,
    batch: int,
    sandbox_pid: int,
) -> dict[str, Any]:
    """Time the bare invocations, then publish_due_posts', on the same posts."""
    from bench.functions import bare_function
    from infra.local_cloud import FunctionProcess

    log_dir = work_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    warm_at = runtime.clock.now()
    max_ticks = posts // batch + TICKS_SPARE
    with contextlib.ExitStack() as stack:
        real = []
        bare = []
        for index in range(1, invocations + 1):
            function = FunctionProcess("publish_due_posts", env, log_dir)
            function.log_path = log_dir / f"publish_due_posts-{index}.log"
            real.append(function)
            function = bare_function("cloudevent", env, log_dir)
            function.target = "bare_publish"
            function.log_path = log_dir / f"bare_publish-{index}.log"
            bare.append(function)
        # Nothing is due yet: the warm-up ticks only pay each process's cold start.
        real_drivers = start_drivers(
            stack, real, warm_payload={"tick": PUBLISH_TOPIC}, warm_at=warm_at
        )
        bare_drivers = start_drivers(
            stack, bare, warm_payload={"posts": []}, warm_at=warm_at
        )
        as_of = make_all_due(runtime)

        say(f"{invocations} bare invocations sending {len(bare_queue)} posts")
        floor = time_drivers(
            bare_drivers, bare_work(bare_queue, batch), as_of=as_of, max_ticks=max_ticks
        )

        say(f"{invocations} invocations of publish_due_posts")
        roots = {
            "functions": [driver.function.process.pid for driver in real_drivers],
            "x_sandbox": [sandbox_pid],
        }
        cpu_before = cpu_by_part(runtime, roots)
        timed = time_drivers(
            real_drivers,
            Work(
                next_payload=lambda: {"tick": PUBLISH_TOPIC},
                done=lambda: count_due(runtime, as_of) == 0,
            ),
            as_of=as_of,
            max_ticks=max_ticks,
        )
        cpu_after = cpu_by_part(runtime, roots)

    errors = [floor["error"] and f"bare: {floor['error']}", timed["error"]]
    return {
        **timed,
        "bare_wall_s": floor["wall_s"],
        "bare_ticks": floor["ticks"],
        "cpu_s": {
            part: round(cpu_after[part] - cpu_before.get(part, 0.0), 1)
            for part in cpu_after
        },
        "cpus": os.cpu_count(),
        "error": "; ".join(error for error in errors if error) or None,
    }


def bare_work(queue: list[dict[str, Any]], batch: int) -> Work:
    """Hand out the queued posts a batch per tick, until none is left."""
    lock = threading.Lock()

    def next_payload() -> dict[str, Any] | None:
        with lock:
            chunk = queue[:batch]
            del queue[:batch]
        return {"posts": chunk} if chunk else None

    return Work(next_payload=next_payload, done=lambda: not queue)


def count_due(runtime: Any, as_of: dt.datetime) -> int:
    with runtime.database.transaction() as tx:
        return tx.scalar(COUNT_DUE, as_of=as_of)


# --- Where the time goes --------------------------------------------------------


def cpu_by_part(runtime: Any, roots: dict[str, list[int]]) -> dict[str, float]:
    """Return the CPU seconds used so far by each part: the process trees in
    `roots`, this process (the drivers), and the database's server processes that
    serve this database (read from /proc; they run on this machine)."""
    from bench.functions import process_tree

    with runtime.database.transaction() as tx:
        backends = [
            row["pid"]
            for row in tx.rows(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            )
        ]
    used = {
        part: sum(cpu_s(pid) for root in pids for pid in process_tree(root))
        for part, pids in roots.items()
    }
    used["postgres"] = sum(cpu_s(pid) for pid in backends)
    used["drivers"] = time.process_time()
    return used


def cpu_s(pid: int) -> float:
    """Return a process's user and system CPU seconds, or 0 once it has gone."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        after_name = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        # Fields 14 and 15 of stat (utime, stime), counted after the name's ")".
        return (int(after_name[11]) + int(after_name[12])) / CLOCK_TICKS
    return 0.0


@dataclasses.dataclass
class Spent:
    """Time and counts gathered by the counting seams, shared by every thread."""

    statements: int = 0
    transactions: int = 0
    database_s: float = 0.0
    x_calls: int = 0
    x_s: float = 0.0
    # Seconds and count per statement, named by the SQL's first words.
    by_statement: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def add(self, **amounts: float) -> None:
        with self.lock:
            for name, amount in amounts.items():
                setattr(self, name, getattr(self, name) + amount)

    def add_statement(self, sql: str, seconds: float) -> None:
        name = " ".join(sql.split()[:STATEMENT_NAME_WORDS])
        with self.lock:
            self.statements += 1
            self.database_s += seconds
            tally = self.by_statement.setdefault(name, [0, 0.0])
            tally[0] += 1
            tally[1] += seconds


class CountingConnection:
    """A pg8000 connection whose statements and commits are counted and timed, at
    the calls cartcast's db.Statements makes (a statement prepared once, then run
    by name; BEGIN, COMMIT and statements without parameters as simple queries)."""

    def __init__(self, connection: Any, spent: Spent) -> None:
        self._connection = connection
        self._spent = spent

    def execute_simple(self, sql: str) -> Any:
        began = time.perf_counter()
        try:
            return self._connection.execute_simple(sql)
        finally:
            seconds = time.perf_counter() - began
            if sql == "COMMIT":
                self._spent.add(transactions=1, database_s=seconds)
            elif sql == "BEGIN":
                self._spent.add(database_s=seconds)
            else:
                self._spent.add_statement(sql, seconds)

    def prepare_statement(self, *args: Any) -> Any:
        began = time.perf_counter()
        try:
            return self._connection.prepare_statement(*args)
        finally:
            self._spent.add(database_s=time.perf_counter() - began)

    def execute_named(self, *args: Any) -> Any:
        began = time.perf_counter()
        try:
            return self._connection.execute_named(*args)
        finally:
            # The last argument is the statement's SQL, with $n placeholders.
            self._spent.add_statement(args[-1], time.perf_counter() - began)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


class TimedXClient:
    """An XClient whose post creations are counted and timed."""

    def __init__(self, client: Any, spent: Spent) -> None:
        self._client = client
        self._spent = spent

    def create_post(self, *args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return self._client.create_post(*args, **kwargs)
        finally:
            self._spent.add(x_calls=1, x_s=time.perf_counter() - began)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def counting_runtime(settings: Any, clock: Any, spent: Spent) -> Any:
    """Build a Runtime whose database and X clients report to `spent`."""
    from cartcast import db
    from cartcast.runtime import Runtime

    class CountingRuntime(Runtime):
        def __init__(self) -> None:
            super().__init__(settings, clock=clock)
            options = db.parse_database_url(settings.database_url)
            self._counted = db.Database(
                lambda: CountingConnection(db._connect_pg8000(options), spent)
            )

        @property
        def database(self) -> Any:
            return self._counted

        def x_client(self, access_token: str) -> Any:
            return TimedXClient(super().x_client(access_token), spent)

    return CountingRuntime()


def profile_one_invocation(
    settings: Any, clock: Any, brand_ids: list[str], *, posts: int
) -> dict[str, Any]:
    """Publish the due posts with one in-process invocation; say where time went."""
    from cartcast import reconciling

    spent = Spent()
    # Quiet: one INFO line per post would print thousands of lines here. One
    # worker: each post's database, X and Python times then add up to its wall
    # time, which threads overlapping would not.
    quiet = dataclasses.replace(settings, log_level="WARNING", publish_workers=1)
    runtime = counting_runtime(quiet, clock, spent)
    as_of = clock.now()
    ticks = 0
    began = time.perf_counter()
    try:
        while True:
            reconciling.reconcile_then_publish(runtime, as_of=as_of)
            ticks += 1
            if count_due(runtime, as_of) == 0:
                break
            if ticks > posts // settings.publish_batch_size + TICKS_SPARE:
                raise BenchError("the profiled invocation left posts due")
        wall_s = time.perf_counter() - began
    finally:
        runtime.close()

    per_post = max(spent.x_calls, 1)
    rest_s = wall_s - spent.x_s - spent.database_s
    return {
        "posts": posts,
        "x_calls": spent.x_calls,
        "ticks": ticks,
        "wall_ms_per_post": round(wall_s * 1000 / per_post, 2),
        "x_ms_per_post": round(spent.x_s * 1000 / per_post, 2),
        "database_ms_per_post": round(spent.database_s * 1000 / per_post, 2),
        "python_ms_per_post": round(rest_s * 1000 / per_post, 2),
        "statements_per_post": round(spent.statements / per_post, 2),
        "transactions_per_post": round(spent.transactions / per_post, 2),
        "slowest_statements": [
            {
                "sql": name,
                "per_post": round(count / per_post, 2),
                "ms_each": round(seconds * 1000 / count, 3),
                "ms_per_post": round(seconds * 1000 / per_post, 2),
            }
            for name, (count, seconds) in sorted(
                spent.by_statement.items(), key=lambda item: -item[1][1]
            )[:STATEMENTS_SHOWN]
        ],
    }


# --- The run --------------------------------------------------------------------


def run(
    *,
    posts: int,
    brands: int,
    invocations: int,
    latency_ms: float,
    profile_posts: int = PROFILE_POSTS,
    work_dir: Path = WORK_DIR,
) -> dict[str, Any]:
    """Set up, time the publishing, tally and profile; return the figures."""
    from cartcast import settings as settings_module
    from cartcast.clock import FileClock
    from cartcast.runtime import Runtime
    from infra import local_cloud, pg

    work_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        database_url = pg.create_database(pg.server_url(), "cartcast_bench_publish")
        stack.callback(pg.drop_database, database_url)
        pg.migrate(database_url)

        clock = FileClock(work_dir / "clock")
        clock.set(START)
        sandbox_url, sandbox = start_sandbox(stack, work_dir, clock.path, latency_ms)
        env = {
            **local_cloud._base_env(),
            **UNBOUND_LIMITS,
            # The clock jumps past the last slot, days after the first: the late
            # bound, which every claim applies, would hold nearly every post.
            "CARTCAST_MISSED_MAX_LATE_S": str(LATE_BOUND_S),
            "DATABASE_URL": database_url,
            "CARTCAST_CLOCK": str(clock.path),
            "X_API_BASE_URL": sandbox_url,
        }
        settings = settings_module.load(env)
        # Set-up would log a line per caption request; only problems are shown.
        runtime = Runtime(
            dataclasses.replace(settings, log_level="WARNING"), clock=clock
        )
        stack.callback(runtime.close)

        began = time.perf_counter()
        brand_ids = create_brands(
            runtime, sandbox_url, first=0, brands=brands, posts=posts
        )
        setup_s = time.perf_counter() - began
        timed = timed_runs(
            runtime,
            env,
            work_dir,
            bare_queue=bare_queue_of(runtime, brand_ids),
            invocations=invocations,
            posts=posts,
            batch=settings.publish_batch_size,
            sandbox_pid=sandbox.pid,
        )
        counted = tally(runtime, sandbox_url, list(brand_ids))

        profile: dict[str, Any] = {}
        if profile_posts:
            profiled = create_brands(
                runtime,
                sandbox_url,
                first=brands,
                brands=min(PROFILE_BRANDS, profile_posts),
                posts=profile_posts,
            )
            make_all_due(runtime)
            refused_before = refusals(sandbox_state(sandbox_url))
            profile = profile_one_invocation(
                settings, clock, profiled, posts=profile_posts
            )
            profile["tally"] = tally(
                runtime, sandbox_url, list(profiled), refused_before=refused_before
            )

    ideal_s = posts * latency_ms / 1000 / invocations
    # The issue's ideal counts one send at a time per invocation; with workers an
    # invocation has up to CARTCAST_PUBLISH_WORKERS sends waiting for X at once.
    senders = invocations * settings.publish_workers
    senders_ideal_s = posts * latency_ms / 1000 / senders
    return {
        "posts": posts,
        "brands": brands,
        "invocations": invocations,
        "latency_ms": latency_ms,
        "batch": settings.publish_batch_size,
        "limits_env": UNBOUND_LIMITS,
        "setup_s": round(setup_s, 1),
        "ideal_s": round(ideal_s, 2),
        **timed,
        "ratio": round(timed["wall_s"] / ideal_s, 3),
        "senders": senders,
        "ratio_to_senders": round(timed["wall_s"] / senders_ideal_s, 3),
        "bare_ratio": round(timed["bare_wall_s"] / ideal_s, 3),
        "ratio_to_bare": round(timed["wall_s"] / timed["bare_wall_s"], 3),
        "ratio_goal": RATIO_GOAL,
        **counted,
        "profile": profile,
    }


def start_sandbox(
    stack: contextlib.ExitStack, work_dir: Path, clock_path: Path, latency_ms: float
) -> tuple[str, subprocess.Popen]:
    """Start the X sandbox as a process on the shared clock, with the latency set."""
    from infra.local_cloud import _base_env, call_json, free_port, wait_for_port

    port = free_port()
    with (work_dir / "x-sandbox.log").open("w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "infra.x_sandbox",
                "--port",
                str(port),
                "--clock-file",
                str(clock_path),
            ],
            cwd=REPO,
            env=_base_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    stack.callback(stop_process, process)
    wait_for_port(port, process, 60, "X sandbox")
    url = f"http://127.0.0.1:{port}"
    status, _ = call_json(
        "POST", f"{url}/_sandbox/latency", {"seconds": latency_ms / 1000}
    )
    if status != 200:
        raise BenchError(f"the sandbox refused a latency of {latency_ms} ms")
    return url, process


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- Reporting ------------------------------------------------------------------


def say(message: str) -> None:
    print(f"[bench] publishing: {message}", flush=True)


def describe(case: dict[str, Any]) -> str:
    return (
        f"{case['posts']} due posts over {case['brands']} brands, "
        f"{case['invocations']} concurrent invocations, X answering after "
        f"{case['latency_ms']:g} ms"
    )


def print_summary(summary: dict[str, Any]) -> None:
    goal = f"<= {summary['ratio_goal']}"
    rows = [
        ("time / ideal", f"{summary['ratio']:.2f}", goal),
        ("time / bare", f"{summary['ratio_to_bare']:.2f}", ""),
        (
            f"time / ideal at {summary['senders']} sends",
            f"{summary['ratio_to_senders']:.2f}",
            "",
        ),
        ("duplicates", summary["duplicates"], 0),
        ("lost", summary["lost"], 0),
    ]
    print(f"\npublishing: {describe(summary)}, batches of {summary['batch']}")
    print(f"  {'figure':<26}{'measured':>10}  {'goal':<8}")
    for label, measured, expected in rows:
        print(f"  {label:<26}{measured!s:>10}  {expected!s:<8}")
    print(
        f"  {summary['wall_s']:.1f} s against an ideal of {summary['ideal_s']:.1f} s "
        f"and {summary['bare_wall_s']:.1f} s for bare invocations (X calls only, "
        f"{summary['bare_ratio']:.2f} x ideal), run just before"
    )
    print(f"  ticks per invocation {summary['ticks']}; set-up {summary['setup_s']} s")
    cpu = ", ".join(f"{part} {seconds} s" for part, seconds in summary["cpu_s"].items())
    print(f"  CPU while publishing, on {summary['cpus']} cores: {cpu}")
    if summary["lost"]:
        print(f"  not published: {summary['lost_states']}")
    if summary["error"]:
        print(f"  ERROR: {summary['error']}")
    profile = summary["profile"]
    if profile:
        print(
            f"  one invocation alone, {profile['tally']['published']} posts "
            f"published, per post: "
            f"{profile['wall_ms_per_post']} ms = X {profile['x_ms_per_post']} + "
            f"database {profile['database_ms_per_post']} + Python "
            f"{profile['python_ms_per_post']}; {profile['statements_per_post']} "
            f"statements in {profile['transactions_per_post']} transactions"
        )
        print(f"  {'ms/post':>9}{'ms each':>9}{'per post':>9}  statement")
        for statement in profile["slowest_statements"]:
            print(
                f"  {statement['ms_per_post']:>9.2f}{statement['ms_each']:>9.3f}"
                f"{statement['per_post']:>9.2f}  {statement['sql']}"
            )


def latency_ms_max() -> float:
    """The longest delay the X sandbox accepts, in ms: its own limit, not a copy."""
    from infra.x_sandbox import LATENCY_MAX_S

    return LATENCY_MAX_S * 1000


def build_parser() -> argparse.ArgumentParser:
    """Describe every option, with its default, for --help."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--posts",
        type=int,
        default=ISSUE_CASE["posts"],
        help="scheduled posts the invocations publish, at least 1",
    )
    parser.add_argument(
        "--brands",
        type=int,
        default=ISSUE_CASE["brands"],
        help="brands the posts are spread over, one X account each; 1 to --posts, "
        "and at most as many posts per brand as the demo catalog has products",
    )
    parser.add_argument(
        "--invocations",
        type=int,
        default=ISSUE_CASE["invocations"],
        help="concurrent publish_due_posts processes, at least 1",
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=ISSUE_CASE["latency_ms"],
        help="delay the X sandbox adds to every answer, ms (over 0, at most "
        f"{latency_ms_max():.0f})",
    )
    parser.add_argument(
        "--profile-posts",
        type=int,
        default=PROFILE_POSTS,
        help=f"posts published in the profiled pass over {PROFILE_BRANDS} brands; "
        "0 skips it",
    )
    parser.add_argument(
        "--json", type=Path, default=DEFAULT_JSON, help="where the figures are written"
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=WORK_DIR,
        help="scratch directory for the database, clock and logs",
    )
    return parser


def check_arguments(args: argparse.Namespace) -> str | None:
    """Say what is wrong with the arguments, before anything is set up."""
    if args.posts < 1:
        return "--posts must be at least 1"
    if not 1 <= args.brands <= args.posts:
        return "--brands must be 1 to --posts"
    if args.invocations < 1:
        return "--invocations must be at least 1"
    # float() reads "inf" and "nan" too; the sandbox cannot wait forever.
    if not (math.isfinite(args.latency_ms) and args.latency_ms > 0):
        return "--latency-ms must be a finite number over 0"
    # The sandbox refuses more, but only once the whole stack is up.
    if args.latency_ms > latency_ms_max():
        return f"--latency-ms must be at most {latency_ms_max():.0f}"
    if args.profile_posts < 0:
        return "--profile-posts must be 0 or more"

    # create_brands gives each brand one draft per catalog product.
    products = len(json.loads(CATALOG.read_text()))
    if math.ceil(args.posts / args.brands) > products:
        return (
            f"at most {products} posts per brand: with --posts {args.posts}, "
            f"use --brands {math.ceil(args.posts / products)} or more"
        )
    if math.ceil(args.profile_posts / PROFILE_BRANDS) > products:
        return f"--profile-posts must be at most {products * PROFILE_BRANDS}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    problem = check_arguments(args)
    if problem:
        parser.error(problem)
    sys.path.insert(0, str(REPO / "functions"))
    os.environ.setdefault("PYTHONPATH", str(REPO / "functions"))

    try:
        summary = run(
            posts=args.posts,
            brands=args.brands,
            invocations=args.invocations,
            latency_ms=args.latency_ms,
            profile_posts=args.profile_posts,
            work_dir=args.work_dir,
        )
    except (BenchError, OSError, RuntimeError, ValueError) as error:
        print(f"[bench] publishing: FAILED: {error}", flush=True)
        return 1
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print_summary(summary)
    print(f"\nwritten to {args.json}")
    return 1 if summary["error"] else 0


if __name__ == "__main__":
    sys.exit(main())
