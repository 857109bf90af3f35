"""The quota bench: a caption job for a catalog against Gemini's free-tier quota.

One job captions a test brand's whole catalog (500 products by default) in chunks of
10 products per Gemini request, with the quota at 10 requests a minute and 20 a day,
and `when_quota_spent: "template"`. Gemini is the stand-in (infra/gemini_standin.py),
reached through google-genai, enforcing the same quota itself: every request over it
would be answered 429. Time is a FixedClock: the drain waits for the quota by moving
it to the instant the governor names, so the run takes seconds and its elapsed time
is exact.

The fastest any client can go is set by the quota alone: the day's requests, 10 a
minute, the last minute's batch starting 60 seconds after the first for 20 requests.
The bench reports the elapsed simulated time as a ratio to that minimum (target
1.05), the requests Gemini received (20), the products it wrote (200), the template
drafts (300) and the 429 answers provoked (0), all read from the stand-in's log and
the database. Like the cold-start bench it reports and never fails on a figure: it
exits 1 only when it could not run.

    .venv/bin/python -m bench.caption_quota [--products 500] [--per-request 10]
        [--per-minute 10] [--per-day 20] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CATALOG = REPO / "infra" / "data" / "catalog" / "dummyjson_products.json"
DEFAULT_JSON = REPO / "var" / "bench" / "caption_quota.json"
# 10:00 in Los Angeles: the whole run falls in one of Gemini's quota days.
START = dt.datetime(2026, 3, 2, 18, 0, tzinfo=dt.UTC)
RATIO_TARGET = 1.05
# Catalog rows are repeated as new editions to reach any size. An edition keeps its
# row's title (plus the edition's name) but takes the description of a row far away:
# with its own row's description too, its copy would be a near-duplicate of its
# row's, and the captions' `distinct` check would rightly refuse it.
EDITIONS = ("", " Classic", " Plus", " Studio", " Travel", " Max")
DESCRIPTION_STRIDE = 97
# Template drafts are of two kinds: those the quota left to the template engine, and
# those whose Gemini copy cartcast's checks refused (fallback_reason says which).
COUNT_DRAFTS = """
SELECT count(*) FILTER (WHERE engine = 'gemini') AS gemini,
    count(*) FILTER (WHERE engine = 'template' AND (fallback_reason IS NULL
        OR fallback_reason LIKE 'gemini: quota%')) AS template_quota,
    count(*) FILTER (WHERE engine = 'template' AND fallback_reason LIKE 'gemini:%'
        AND fallback_reason NOT LIKE 'gemini: quota%') AS template_refused
FROM posts WHERE brand_id = :brand_id
"""
COUNT_GOVERNED_CALLS = "SELECT count(*) FROM gemini_calls"


# The issue's case: 500 products, 10 per request, 10 requests a minute, 20 a day.
ISSUE_CASE = {"products": 500, "per_request": 10, "per_minute": 10, "per_day": 20}


def run(
    *, products: int, per_request: int, per_minute: int, per_day: int
) -> dict[str, Any]:
    """Caption `products` products as one job; return the figures measured."""
    from cartcast import caption_drain, caption_jobs
    from cartcast.clock import FixedClock
    from cartcast.runtime import Runtime
    from cartcast.settings import Settings
    from infra import pg
    from infra.gemini_standin import GeminiStandIn

    clock = FixedClock(START)
    with contextlib.ExitStack() as stack:
        url = pg.create_database(pg.server_url(), "cartcast_bench_quota")
        stack.callback(pg.drop_database, url)
        pg.migrate(url)
        standin = stack.enter_context(
            GeminiStandIn(
                requests_per_minute=per_minute, requests_per_day=per_day, clock=clock
            )
        )
        settings = Settings(
            database_url=url,
            gemini_api_key=standin.api_key,
            gemini_base_url=standin.base_url,
            gemini_requests_per_minute=per_minute,
            gemini_requests_per_day=per_day,
            caption_products_per_request=per_request,
            log_level="WARNING",
        )
        runtime = Runtime(settings, clock=clock)
        stack.callback(runtime.close)

        brand_id, job_id = _queue_job(runtime, products)
        started = time.monotonic()
        outcome = caption_drain.drain(
            runtime, budget_s=math.inf, job_id=job_id, wait=_moving(clock)
        )
        wall_s = time.monotonic() - started

        with runtime.database.transaction() as tx:
            job = caption_jobs.get_job(tx, brand_id=brand_id, job_id=job_id)
            drafts = tx.one(COUNT_DRAFTS, brand_id=brand_id)
            governed = tx.scalar(COUNT_GOVERNED_CALLS)

    elapsed_s = (clock.now() - START).total_seconds()
    minimum_s = minimum_elapsed_s(products, per_request, per_minute, per_day)
    received = len(standin.requests())
    return {
        "products": products,
        "products_per_request": per_request,
        "requests_per_minute": per_minute,
        "requests_per_day": per_day,
        "job_state": job["state"],
        "gemini_requests": received - standin.quota_refusals,
        "governed_calls": governed,
        "products_by_gemini": job["progress"]["by_engine"]["gemini"],
        "gemini_drafts": drafts["gemini"],
        "products_sent_to_gemini": drafts["gemini"] + drafts["template_refused"],
        "gemini_copy_refused": drafts["template_refused"],
        "template_drafts": drafts["template_quota"] + drafts["template_refused"],
        "template_drafts_for_quota": drafts["template_quota"],
        "failed_products": job["progress"]["failed"],
        "answers_429": standin.quota_refusals,
        "chunks": outcome["chunks"],
        "elapsed_s": elapsed_s,
        "minimum_s": minimum_s,
        "ratio": elapsed_ratio(elapsed_s, minimum_s),
        "ratio_target": RATIO_TARGET,
        "wall_s": round(wall_s, 1),
    }


def minimum_elapsed_s(
    products: int, per_request: int, per_minute: int, per_day: int
) -> float:
    """Return the least time the quota allows for the day's Gemini requests.

    Requests go out a minute's worth at a time: the last minute's batch starts
    (minutes - 1) × 60 s after the first. The template drafts take no quota time.
    """
    requests = min(math.ceil(products / per_request), per_day)
    minutes = math.ceil(requests / per_minute)
    return max(minutes - 1, 0) * 60.0


def elapsed_ratio(elapsed_s: float, minimum_s: float) -> float:
    if minimum_s == 0:
        return 1.0 if elapsed_s == 0 else math.inf
    return round(elapsed_s / minimum_s, 3)


def _queue_job(runtime: Any, products: int) -> tuple[str, str]:
    """Create the test brand with `products` products and queue the job."""
    from cartcast import brands, caption_jobs, catalog

    now = runtime.clock.now()
    with runtime.database.transaction() as tx:
        created = brands.create_brand(
            tx,
            {
                "name": "Quota Bench Goods",
                "time_zone": "America/New_York",
                "store_base_url": "https://bench.example.com",
                "approvals_required": False,
            },
            now=now,
        )
        brand_id = str(created["brand"]["id"])
        feed = catalog_of(products)
        catalog.import_products(tx, brand_id=brand_id, feed=feed, now=now)
        # Listed in catalog order ("all" is SKU order, which puts each row's
        # editions beside it), so Gemini's day goes to the original rows first.
        job = caption_jobs.enqueue(
            tx,
            brand_id=brand_id,
            body={
                "products": [row["sku"] for row in feed],
                "when_quota_spent": "template",
            },
            requested_by="bench",
            now=now,
            gemini_configured=True,
        )
    return brand_id, str(job["id"])


def catalog_of(count: int) -> list[dict[str, Any]]:
    """Return `count` products: the demo catalog, then again in other editions."""
    rows = json.loads(CATALOG.read_text())
    if count > len(rows) * len(EDITIONS):
        raise ValueError(f"at most {len(rows) * len(EDITIONS)} products")
    products = []
    for index in range(count):
        edition, row = divmod(index, len(rows))
        product = dict(rows[row])
        if edition:
            product["sku"] = f"{product['sku']}-{edition}"
            product["title"] = product["title"] + EDITIONS[edition]
            other = rows[(row + DESCRIPTION_STRIDE * edition) % len(rows)]
            product["description"] = other["description"]
        products.append(product)
    return products


def _moving(clock: Any):
    """Wait for the quota by moving the simulated clock to the instant it frees."""

    def wait(until: dt.datetime) -> bool:
        clock.set(until)
        return True

    return wait


def print_summary(summary: dict[str, Any]) -> None:
    rows = [
        ("Gemini requests", summary["gemini_requests"], 20),
        ("products sent to Gemini", summary["products_sent_to_gemini"], 200),
        ("  written by Gemini", summary["gemini_drafts"], ""),
        ("  refused by the checks", summary["gemini_copy_refused"], ""),
        ("template drafts (quota)", summary["template_drafts_for_quota"], 300),
        ("429 answers provoked", summary["answers_429"], 0),
        ("elapsed / quota minimum", summary["ratio"], f"<= {RATIO_TARGET}"),
    ]
    print(
        f"\ncaption job quota: {summary['products']} products, "
        f"{summary['products_per_request']} per request, "
        f"{summary['requests_per_minute']} requests a minute and "
        f"{summary['requests_per_day']} a day (simulated clock)"
    )
    print(f"  {'figure':<26}{'measured':>10}  {'issue':<8}")
    for label, measured, expected in rows:
        print(f"  {label:<26}{measured!s:>10}  {expected!s:<8}")
    print(
        f"  elapsed {summary['elapsed_s']:.0f} s simulated against a minimum of "
        f"{summary['minimum_s']:.0f} s; job {summary['job_state']}; "
        f"{summary['wall_s']} s of wall time"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=ISSUE_CASE["products"])
    parser.add_argument("--per-request", type=int, default=ISSUE_CASE["per_request"])
    parser.add_argument("--per-minute", type=int, default=ISSUE_CASE["per_minute"])
    parser.add_argument("--per-day", type=int, default=ISSUE_CASE["per_day"])
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="write here")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO / "functions"))
    from cartcast.settings import CAPTION_PRODUCTS_PER_REQUEST_MAX

    products_max = len(json.loads(CATALOG.read_text())) * len(EDITIONS)
    if not 1 <= args.products <= products_max:
        parser.error(f"--products must be 1 to {products_max}")
    if not 1 <= args.per_request <= CAPTION_PRODUCTS_PER_REQUEST_MAX:
        parser.error(f"--per-request must be 1 to {CAPTION_PRODUCTS_PER_REQUEST_MAX}")
    if args.per_minute < 1 or args.per_day < 1:
        parser.error("--per-minute and --per-day must be at least 1")

    try:
        summary = run(
            products=args.products,
            per_request=args.per_request,
            per_minute=args.per_minute,
            per_day=args.per_day,
        )
    except (OSError, RuntimeError, ValueError) as error:
        print(f"[bench] caption quota: FAILED: {error}", flush=True)
        return 1
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=2) + "\n")
    print_summary(summary)
    print(f"\nwritten to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
