"""A brand's export (GET /v1/brand/export) holds a page, not the brand, in memory.

A fresh migrated database gets one big brand, written with generate_series through
the product's own triggers: posts with metric snapshots, mentions and orders. A
child process streams the brand's whole archive into a counting sink, exactly as
the route's generator is read, and reports its peak resident set (VmHWM); another
child only imports the module and opens a connection, the baseline. Then the brand
is made twice as big and the export measured again. The figures are the peaks and
the ratio of the two exports' growth over the baseline: about 1 means the memory
does not follow the brand's size (the function has 256 MiB).

Last, the big brand is offboarded by the sweeper (offboarding.py) as the rollup
tick would, and the bench reports its batches and the longest one, which must stay
well inside the database socket's 10 s timeout.

    DATABASE_URL=postgresql://... .venv/bin/python -m bench.export_memory \
        [--snapshots 400000] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from infra import pg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "functions"))
MEMORY_TIER_MIB = 256
SNAPSHOTS_PER_POST = 20
LOAD_TIMEOUT_S = 1800
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

MAKE_DUE = """
UPDATE brands SET offboarding_requested_at = :start, offboarding_requested_by = 'b',
    offboarding_due_at = :start
WHERE id = CAST(:brand_id AS uuid)
"""
CREATE_BRAND = """
INSERT INTO brands (slug, name, time_zone, store_base_url, posting_slots,
    created_at)
VALUES ('big-brand', 'Big Brand', 'UTC', 'https://shop.example.com', '[]', :start)
RETURNING id
"""
# Each batch: posts, SNAPSHOTS_PER_POST snapshots of each, a mention of about 120
# characters and an order per five snapshots.
LOAD_POSTS = """
INSERT INTO posts (id, brand_id, text, state, engine, weighted_length, created_by,
    created_at, updated_at, published_at, x_post_id)
SELECT gen_random_uuid(), CAST(:brand_id AS uuid),
    'A mug for slow mornings, glazed by hand, number ' || n, 'published', 'manual',
    60, 'bench', t.at, t.at, t.at, CAST(CAST(:x_base AS bigint) + n AS text)
FROM generate_series(1, :posts) AS n,
    LATERAL (SELECT CAST(:start AS timestamptz) + n * interval '1 minute' AS at) t
"""
LOAD_SNAPSHOTS = """
INSERT INTO metric_snapshots (post_id, captured_at, impressions, likes, reposts,
    replies, quotes, bookmarks, link_clicks)
SELECT p.id, p.published_at + s * interval '1 hour', 100 * s, s, 0, 0, 0, 0, s
FROM posts p, generate_series(1, :per_post) AS s
WHERE p.brand_id = CAST(:brand_id AS uuid) AND p.x_post_id >= CAST(:x_base AS text)
"""
LOAD_MENTIONS = """
INSERT INTO mentions (brand_id, x_post_id, author_id, author_username, author_name,
    text, posted_at, received_at, sentiment, intent, priority, scored_at)
SELECT CAST(:brand_id AS uuid), CAST(CAST(:x_base AS bigint) + n AS text),
    CAST(n % 5000 AS text),
    'fan' || (n % 5000), 'A Fan',
    '@bigbrand my order ' || n || ' has not arrived yet and the tracking page '
        || 'says nothing since Tuesday, can you help?',
    t.at, t.at, 'negative', 'order_issue', 1, t.at
FROM generate_series(1, :mentions) AS n,
    LATERAL (SELECT CAST(:start AS timestamptz) + n * interval '1 minute' AS at) t
"""
LOAD_ORDERS = """
INSERT INTO orders (brand_id, external_id, ordered_at, currency, total_price,
    received_at, line_items)
SELECT CAST(:brand_id AS uuid), CAST(CAST(:x_base AS bigint) + n AS text), t.at,
    'USD', 42.50, t.at,
    '[{"sku": "MUG-1", "quantity": 1, "price": "42.50"}]'
FROM generate_series(1, :orders) AS n,
    LATERAL (SELECT CAST(:start AS timestamptz) + n * interval '1 minute' AS at) t
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshots", type=int, default=400_000)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", nargs=2, metavar=("URL", "BRAND_ID"))
    parser.add_argument("--baseline", metavar="URL")
    parser.add_argument("--offboard", metavar="URL")
    args = parser.parse_args(argv)
    if args.snapshots < 1:
        parser.error("--snapshots must be at least 1")
    if args.child:
        return _export_child(*args.child)
    if args.offboard:
        return _offboard_child(args.offboard)
    if args.baseline:
        return _baseline_child(args.baseline)

    import os

    server = os.environ.get("DATABASE_URL", "").strip() or pg.server_url()
    url = pg.create_database(server, "cartcast_bench_duties")
    try:
        pg.migrate(url)
        result = _measure(url, snapshots=args.snapshots)
    finally:
        pg.drop_database(url)
    _print(result)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0


def _measure(url: str, *, snapshots: int) -> dict[str, Any]:
    with _connection(url) as connection:
        brand_id = str(connection.run(CREATE_BRAND, start=START)[0][0])
    baseline = _run_child(["--baseline", url])["peak_mib"]
    sizes = []
    for batch in range(2):
        started = time.perf_counter()
        _load(url, brand_id, snapshots=snapshots, batch=batch)
        load_s = time.perf_counter() - started
        export = _run_child(["--child", url, brand_id])
        sizes.append({**export, "load_s": round(load_s, 1)})
    growth = [size["peak_mib"] - baseline for size in sizes]
    with _connection(url) as connection:
        connection.run(MAKE_DUE, brand_id=brand_id, start=START)
    offboard = _run_child(["--offboard", url])
    return {
        "offboarding": offboard,
        "baseline_peak_mib": baseline,
        "exports": sizes,
        "memory_tier_mib": MEMORY_TIER_MIB,
        "growth_ratio_2x_over_1x": round(growth[1] / growth[0], 2)
        if growth[0] > 0
        else None,
    }


def _load(url: str, brand_id: str, *, snapshots: int, batch: int) -> None:
    posts = max(1, snapshots // SNAPSHOTS_PER_POST)
    x_base = 10**15 * (batch + 1)
    common = {"brand_id": brand_id, "start": START, "x_base": x_base}
    with _connection(url) as connection:
        connection.run(LOAD_POSTS, posts=posts, **common)
        connection.run(LOAD_SNAPSHOTS, per_post=SNAPSHOTS_PER_POST, **common)
        connection.run(LOAD_MENTIONS, mentions=snapshots // 4, **common)
        connection.run(LOAD_ORDERS, orders=snapshots // 5, **common)


@contextlib.contextmanager
def _connection(url: str):
    import pg8000.native

    options = _options(url)
    connection = pg8000.native.Connection(**options)
    try:
        yield connection
    finally:
        connection.close()


def _options(url: str) -> dict[str, Any]:
    from cartcast.db import parse_database_url

    # Loading runs per-row triggers over hundreds of thousands of rows: far longer
    # than the product's socket timeout allows.
    return {**parse_database_url(url), "timeout": LOAD_TIMEOUT_S}


def _run_child(arguments: list[str]) -> dict[str, Any]:
    answer = subprocess.run(
        [sys.executable, "-m", "bench.export_memory", *arguments],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=1800,
    )
    return json.loads(answer.stdout.strip().splitlines()[-1])


def _open_database(url: str):
    from cartcast.db import connect_from_settings
    from cartcast.settings import Settings

    return connect_from_settings(Settings(database_url=url))


def _export_child(url: str, brand_id: str) -> int:
    from cartcast import data_export

    database = _open_database(url)
    started = time.perf_counter()
    size, chunks, largest = 0, 0, 0
    stream = data_export.stream_archive(
        database, brand_id=brand_id, now=dt.datetime.now(dt.UTC)
    )
    tail = b""
    for chunk in stream:
        size += len(chunk)
        chunks += 1
        largest = max(largest, len(chunk))
        tail = chunk
    seconds = time.perf_counter() - started
    # The manifest is the archive's last entry; its rows are counted from the tail.
    manifest_rows = tail.count(b'"rows"')
    database.close()
    print(
        json.dumps(
            {
                "archive_mib": round(size / 2**20, 1),
                "chunks": chunks,
                "largest_chunk_kib": round(largest / 1024),
                "files_in_manifest": manifest_rows,
                "export_s": round(seconds, 1),
                "peak_mib": _peak_mib(),
                "rows": _row_counts(url, brand_id),
            }
        )
    )
    return 0


def _offboard_child(url: str) -> int:
    from cartcast import offboarding
    from cartcast.runtime import Runtime
    from cartcast.settings import Settings

    runtime = Runtime(Settings(database_url=url))
    started = time.perf_counter()
    batches, longest_s, offboarded = 0, 0.0, 0
    while not offboarded:
        batch_started = time.perf_counter()
        counts = offboarding.sweep_due_offboardings(
            runtime, now=dt.datetime.now(dt.UTC), batches_max=1
        )
        longest_s = max(longest_s, time.perf_counter() - batch_started)
        batches += counts["offboarding_batches"]
        offboarded = counts["offboarded"]
        if not counts["offboarding_batches"]:
            raise RuntimeError("no brand was due")
    seconds = time.perf_counter() - started
    runtime.close()
    print(
        json.dumps(
            {
                "batches": batches,
                "seconds": round(seconds, 1),
                "longest_batch_s": round(longest_s, 2),
                "left": _row_counts(url, None),
            }
        )
    )
    return 0


def _baseline_child(url: str) -> int:
    from cartcast import data_export  # noqa: F401  (loaded, as the route loads it)

    database = _open_database(url)
    with database.transaction() as tx:
        tx.scalar("SELECT 1")
    database.close()
    print(json.dumps({"peak_mib": _peak_mib()}))
    return 0


def _row_counts(url: str, brand_id: str | None) -> dict[str, int]:
    with _connection(url) as connection:
        snapshots, mentions, orders = connection.run(
            "SELECT (SELECT count(*) FROM metric_snapshots), "
            "(SELECT count(*) FROM mentions), (SELECT count(*) FROM orders)"
        )[0]
    return {"metric_snapshots": snapshots, "mentions": mentions, "orders": orders}


def _peak_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError("no VmHWM in /proc/self/status")


def _print(result: dict[str, Any]) -> None:
    print(f"export memory (function tier {result['memory_tier_mib']} MiB)")
    print(f"  baseline (import + connect): {result['baseline_peak_mib']} MiB peak")
    for export in result["exports"]:
        print(
            f"  {export['rows']['metric_snapshots']:>9,} snapshots, "
            f"{export['rows']['mentions']:,} mentions, "
            f"{export['rows']['orders']:,} orders: archive "
            f"{export['archive_mib']} MiB in {export['export_s']} s, "
            f"peak {export['peak_mib']} MiB"
        )
    print(f"  growth over baseline, 2x brand / 1x: {result['growth_ratio_2x_over_1x']}")
    offboard = result["offboarding"]
    print(
        f"  offboarding the 2x brand: {offboard['batches']} batches in "
        f"{offboard['seconds']} s, the longest {offboard['longest_batch_s']} s; "
        f"rows left: {offboard['left']}"
    )


if __name__ == "__main__":
    sys.exit(main())
