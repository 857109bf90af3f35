"""Draining caption jobs: a chunk of products at a time, each chunk one transaction.

`drain` is what the scheduled function drain_caption_jobs runs (decision 0007), and
what the command in cartcast.caption_jobs runs for its one job. Each chunk:

1. claims up to CARTCAST_CAPTION_PRODUCTS_PER_REQUEST pending items of the open job
   served least recently, FOR UPDATE SKIP LOCKED, so overlapping runs split the work;
2. writes their drafts with posts.create_drafts, the code path of POST /v1/captions:
   one Gemini request for the chunk, through the shared quota governor;
3. marks the items done with their posts, engine and fallback reason, and the job
   done when no item is left, and commits.

Drafts and the items that point at them commit together. A crash or a timeout
mid-chunk rolls both back and the items are claimed again later; a redelivered tick
finds them done. What a crash costs is that chunk's Gemini request.

Before each chunk the quota decides what the job's next chunk uses
(caption_jobs.next_engine). A drain never sleeps through a quota: when every open
job waits, it returns the moment the quota frees (`waiting_until`), unless the
caller passes `wait`, which may wait (the command, the bench on a simulated clock).
If Gemini refuses a chunk anyway (another instance took the last call, or a 429),
the chunk is rolled back when its job would wait, and kept, as template drafts
saying "gemini: quota exhausted", when its job goes on with the template engine.

A chunk that create_drafts refuses as a whole (no post about one product fits on
X) is tried product by product with the template engine, keeping nothing: the
products refused alone are marked failed with the reason, the others go back to the
queue. A Gemini outage ("gemini: unavailable") is not waited for: those drafts are
the template engine's, as on POST /v1/captions.

An item whose product was retired after the job was queued (decision 0110) is
marked skipped, with why, before the chunk is written: the job still finishes,
counting it apart from the failed.

The jobs of a brand that asked to leave (offboarding.py) are passed over until it
cancels: their Gemini calls would record costs on the brand, marking KPI days while
the sweep deletes its rows (caption_jobs.with_outlook says so to the client).
"""

from __future__ import annotations

import collections
import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from cartcast import caption_jobs, posts
from cartcast.clock import Clock, SystemClock
from cartcast.db import Transaction
from cartcast.errors import InvalidRequest
from cartcast.logs import fields, get_logger

log = get_logger(__name__)

# Open jobs looked at per chunk, least recently served first.
CANDIDATE_JOBS_MAX = 20
QUOTA_REFUSED = "gemini: quota exhausted"

SELECT_CANDIDATE_JOBS = """
SELECT CAST(j.id AS text) AS id, CAST(j.brand_id AS text) AS brand_id,
    j.requested_by, j.options, j.when_quota_spent
FROM caption_jobs j JOIN brands b ON b.id = j.brand_id
WHERE j.state IN ('queued', 'running') AND b.offboarding_requested_at IS NULL
  AND j.when_quota_spent = ANY(CAST(:policies AS text[]))
  AND (CAST(:job_id AS uuid) IS NULL OR j.id = CAST(:job_id AS uuid))
  AND EXISTS (
      SELECT 1 FROM caption_job_items i
      WHERE i.job_id = j.id AND i.state = 'pending')
ORDER BY j.updated_at, j.id
LIMIT :limit
"""
CLAIM_ITEMS = """
SELECT position, CAST(product_id AS text) AS product_id
FROM caption_job_items
WHERE job_id = :job_id AND state = 'pending'
ORDER BY position
LIMIT :limit
FOR UPDATE SKIP LOCKED
"""
MARK_DONE = """
UPDATE caption_job_items
SET state = 'done', engine = :engine, post_ids = CAST(:post_ids AS uuid[]),
    fallback_reason = :fallback_reason, updated_at = :now
WHERE job_id = :job_id AND position = :position
"""
MARK_SKIPPED = """
UPDATE caption_job_items SET state = 'skipped', error = :reason, updated_at = :now
WHERE job_id = :job_id AND position = ANY(CAST(:positions AS integer[]))
"""
# A claimed item whose product was retired after the job was queued.
SELECT_RETIRED = """
SELECT CAST(id AS text) AS id FROM products
WHERE id = ANY(CAST(:ids AS uuid[])) AND retired_at IS NOT NULL
"""
SKIPPED_RETIRED = (
    "the product was retired from the catalog after the job was queued (archived "
    "or drafted in the store, or DELETE /v1/products); no post is written about it"
)
MARK_FAILED = """
UPDATE caption_job_items SET state = 'failed', error = :error, updated_at = :now
WHERE job_id = :job_id AND position = :position
"""
# Taken before counting: a chunk that commits meanwhile is then counted, so the
# last of two overlapping chunks always sees the job finished.
LOCK_JOB = "SELECT state FROM caption_jobs WHERE id = :id FOR UPDATE"
COUNT_ITEMS = """
SELECT count(*) FILTER (WHERE state = 'pending') AS pending,
    count(*) FILTER (WHERE state IN ('done', 'skipped')) AS done
FROM caption_job_items WHERE job_id = :id
"""
UPDATE_JOB = """
UPDATE caption_jobs SET state = :state, updated_at = :now, finished_at = :finished_at
WHERE id = :id
"""
SELECT_WAITING = """
SELECT EXISTS (
    SELECT 1 FROM caption_jobs j JOIN brands b ON b.id = j.brand_id
    WHERE j.state IN ('queued', 'running') AND b.offboarding_requested_at IS NULL
      AND j.when_quota_spent = ANY(CAST(:policies AS text[]))
      AND (CAST(:job_id AS uuid) IS NULL OR j.id = CAST(:job_id AS uuid))
      AND EXISTS (
          SELECT 1 FROM caption_job_items i
          WHERE i.job_id = j.id AND i.state = 'pending'))
"""

Wait = Callable[[dt.datetime], bool]


def drain(
    runtime: Any,
    *,
    budget_s: float,
    job_id: str | None = None,
    wait: Wait | None = None,
    on_chunk: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Write chunks of open jobs until none is left, every job waits, or time is up.

    Args:
        budget_s: no chunk starts after this many seconds (one always may); a chunk
            lasts at most two Gemini calls (2 × GEMINI_TIMEOUT_S, plus a pause).
        job_id: drain this job only (the command).
        wait: called with the instant the quota frees when every job waits; True
            when it waited, False to stop. Without it the drain stops.
    """
    deadline = time.monotonic() + budget_s
    tally: collections.Counter[str] = collections.Counter()
    waiting_until = None
    while tally["chunks"] == 0 or time.monotonic() < deadline:
        quota = caption_jobs.quota_state(runtime)
        now = runtime.clock.now()
        engines = {
            policy: caption_jobs.next_engine(policy, quota, now)
            for policy in caption_jobs.QUOTA_POLICIES
        }
        running = [
            policy for policy, (engine, _) in engines.items() if engine != "wait"
        ]

        chunk = (
            _write_next_chunk(runtime, engines, running, job_id) if running else None
        )
        if chunk is not None:
            waiting_until = None
            _count(tally, chunk)
            if on_chunk is not None and not chunk["deferred"]:
                on_chunk(chunk)
            continue

        waiting_until = _waiting_until(runtime, engines, job_id)
        if waiting_until is None or wait is None or not wait(waiting_until):
            break

    return {
        "chunks": tally["chunks"],
        "products": tally["products"],
        "gemini": tally["gemini"],
        "template": tally["template"],
        "mixed": tally["mixed"],
        "failed": tally["failed"],
        "skipped": tally["skipped"],
        "deferred": tally["deferred"],
        "waiting_until": waiting_until,
    }


def drain_for_tick(runtime: Any, *, as_of: dt.datetime) -> dict[str, Any]:
    """Drain for one scheduler tick, within CARTCAST_CAPTION_DRAIN_BUDGET_S.

    The tick's instant does not matter: every chunk is stamped with the clock's
    time, since a drain outlasts the tick it was started by.
    """
    return drain(runtime, budget_s=runtime.settings.caption_drain_budget_s)


def short_waits_only(clock: Clock) -> Wait:
    """Wait out refusals that end within caption_jobs.SHORT_WAIT, and no longer.

    The system clock is slept on (the command is no billed function); a simulated
    clock is moved to the instant instead.
    """

    def wait(until: dt.datetime) -> bool:
        delay = until - clock.now()
        if delay > caption_jobs.SHORT_WAIT:
            return False
        if isinstance(clock, SystemClock):
            time.sleep(max(delay.total_seconds(), 0.0))
        else:
            clock.set(until)
        return True

    return wait


def _write_next_chunk(
    runtime: Any,
    engines: dict[str, tuple[str, dt.datetime | None]],
    running: list[str],
    job_id: str | None,
) -> dict[str, Any] | None:
    """Claim and write one chunk of the first open job with work; None if none."""
    with runtime.database.transaction() as tx:
        # The chunk's items stay claimed through Gemini's call: a drain lost
        # meanwhile must not keep them from the next (decision 0106).
        tx.end_if_idle_longer_than(runtime.settings.caption_idle_max_s)
        claimed = _claim(tx, running, job_id, runtime.settings)
        if claimed is None:
            return None
        job, items = claimed
        engine = engines[job["when_quota_spent"]][0]
        now = runtime.clock.now()

        chunk = _write(tx, runtime, job, items, engine, now)
        if not chunk["deferred"]:
            _settle_job(tx, job["id"], now)

    message = "caption chunk deferred" if chunk["deferred"] else "caption chunk written"
    log.info(message, extra=fields(**chunk))
    return chunk


def _claim(
    tx: Transaction, policies: list[str], job_id: str | None, settings: Any
) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    jobs = tx.rows(
        SELECT_CANDIDATE_JOBS,
        policies=policies,
        job_id=job_id,
        limit=CANDIDATE_JOBS_MAX,
    )
    for job in jobs:
        items = tx.rows(
            CLAIM_ITEMS, job_id=job["id"], limit=settings.caption_products_per_request
        )
        if items:
            return job, items
    return None


def _write(
    tx: Transaction,
    runtime: Any,
    job: dict[str, Any],
    items: list[dict[str, Any]],
    engine: str,
    now: dt.datetime,
) -> dict[str, Any]:
    """Write the chunk's drafts and mark its items; roll back a deferred chunk."""
    chunk = {"job_id": job["id"], "engine": engine, "products": 0, "failed": 0}
    items, skipped = _without_retired(tx, job["id"], items, now)
    chunk["skipped"] = skipped
    if not items:
        return {**chunk, "deferred": False}
    tx.execute("SAVEPOINT chunk")
    try:
        created = posts.create_drafts(
            tx,
            brand_id=job["brand_id"],
            body=_request(job, items),
            created_by=job["requested_by"],
            now=now,
            gemini=runtime.gemini() if engine == "gemini" else None,
            near_duplicate_threshold=runtime.settings.near_duplicate_threshold,
            near_duplicate_days=runtime.settings.near_duplicate_days,
        )
    except InvalidRequest as error:
        tx.execute("ROLLBACK TO SAVEPOINT chunk")
        refusals = _refusals(tx, job, items, error, now)
        for item in items:
            if item["position"] in refusals:
                tx.execute(
                    MARK_FAILED,
                    job_id=job["id"],
                    position=item["position"],
                    error=refusals[item["position"]],
                    now=now,
                )
        return {**chunk, "failed": len(refusals), "deferred": False}

    made = created["posts"]
    if engine == "gemini" and _should_wait(runtime, job, made):
        tx.execute("ROLLBACK TO SAVEPOINT chunk")
        return {**chunk, "deferred": True}

    engines = _mark_done(tx, job["id"], items, made, now)
    return {**chunk, "products": len(items), "by_engine": engines, "deferred": False}


def _without_retired(
    tx: Transaction, job_id: str, items: list[dict[str, Any]], now: dt.datetime
) -> tuple[list[dict[str, Any]], int]:
    """Mark skipped the claimed items whose product is retired; return the others
    and how many were skipped (decision 0110)."""
    ids = [item["product_id"] for item in items]
    retired = {row["id"] for row in tx.rows(SELECT_RETIRED, ids=ids)}
    if not retired:
        return items, 0
    skipped = [item["position"] for item in items if item["product_id"] in retired]
    tx.execute(
        MARK_SKIPPED,
        job_id=job_id,
        positions=skipped,
        reason=SKIPPED_RETIRED,
        now=now,
    )
    kept = [item for item in items if item["product_id"] not in retired]
    return kept, len(skipped)


def _request(job: dict[str, Any], items: list[dict[str, Any]]) -> dict[str, Any]:
    """Build the POST /v1/captions body of a chunk: the job's options, its products."""
    return {**job["options"], "products": [item["product_id"] for item in items]}


def _should_wait(runtime: Any, job: dict[str, Any], made: list[dict]) -> bool:
    """Whether Gemini refused the chunk for quota and the job would rather wait."""
    if not any(post["fallback_reason"] == QUOTA_REFUSED for post in made):
        return False
    quota = caption_jobs.quota_state(runtime)
    engine, _ = caption_jobs.next_engine(
        job["when_quota_spent"], quota, runtime.clock.now()
    )
    return engine == "wait"


def _mark_done(
    tx: Transaction,
    job_id: str,
    items: list[dict[str, Any]],
    made: list[dict[str, Any]],
    now: dt.datetime,
) -> dict[str, int]:
    """Record each item's posts and engine; return how many products each engine."""
    by_product = collections.defaultdict(list)
    for post in made:
        by_product[str(post["product_id"])].append(post)

    engines: collections.Counter[str] = collections.Counter()
    for item in items:
        drafts = by_product[item["product_id"]]
        used = {draft["engine"] for draft in drafts}
        engine = used.pop() if len(used) == 1 else "mixed"
        reason = next(
            (d["fallback_reason"] for d in drafts if d["fallback_reason"]), None
        )
        tx.execute(
            MARK_DONE,
            job_id=job_id,
            position=item["position"],
            engine=engine,
            post_ids=[str(draft["id"]) for draft in drafts],
            fallback_reason=reason,
            now=now,
        )
        engines[engine] += 1
    return dict(engines)


def _refusals(
    tx: Transaction,
    job: dict[str, Any],
    items: list[dict[str, Any]],
    error: InvalidRequest,
    now: dt.datetime,
) -> dict[int, str]:
    """Find which items create_drafts refuses; every one when none is alone."""
    everyone = {item["position"]: str(error) for item in items}
    if not _names_a_product(error) or len(items) == 1:
        return everyone
    alone = {}
    for item in items:
        problem = _refusal_alone(tx, job, item, now)
        if problem is not None:
            alone[item["position"]] = problem
    return alone or everyone


def _refusal_alone(
    tx: Transaction, job: dict[str, Any], item: dict[str, Any], now: dt.datetime
) -> str | None:
    """Try one product alone with the template engine, keeping nothing written."""
    tx.execute("SAVEPOINT alone")
    try:
        posts.create_drafts(
            tx,
            brand_id=job["brand_id"],
            body=_request(job, [item]),
            created_by=job["requested_by"],
            now=now,
        )
    except InvalidRequest as error:
        return str(error) if _names_a_product(error) else None
    finally:
        tx.execute("ROLLBACK TO SAVEPOINT alone")
    return None


def _names_a_product(error: InvalidRequest) -> bool:
    """Whether create_drafts refused one product ("products", or "products[i]":
    one retired since the chunk was claimed) rather than the request."""
    return (error.field or "").split("[")[0] == "products"


def _settle_job(tx: Transaction, job_id: str, now: dt.datetime) -> None:
    """Mark the job running, or finished when no item is pending any more."""
    state = tx.scalar(LOCK_JOB, id=job_id)
    if state == "cancelled":
        return
    counts = tx.one(COUNT_ITEMS, id=job_id)
    finished = None
    if counts["pending"]:
        state = "running"
    else:
        state, finished = ("done" if counts["done"] else "failed"), now
    tx.execute(UPDATE_JOB, id=job_id, state=state, now=now, finished_at=finished)


def _waiting_until(
    runtime: Any,
    engines: dict[str, tuple[str, dt.datetime | None]],
    job_id: str | None,
) -> dt.datetime | None:
    """Return when the quota frees, if some open job waits for it; else None."""
    waiting = {
        policy: until for policy, (engine, until) in engines.items() if engine == "wait"
    }
    if not waiting:
        return None
    with runtime.database.transaction() as tx:
        exists = tx.scalar(SELECT_WAITING, policies=list(waiting), job_id=job_id)
    return min(waiting.values()) if exists else None


def _count(tally: collections.Counter[str], chunk: dict[str, Any]) -> None:
    if chunk["deferred"]:
        tally["deferred"] += 1
        return
    tally["chunks"] += 1
    tally["products"] += chunk["products"]
    tally["failed"] += chunk["failed"]
    tally["skipped"] += chunk.get("skipped", 0)
    tally.update(chunk.get("by_engine", {}))
