"""A cold instance's claimed tick: the connections it opens, and how long its claim,
one transaction and its finish take.

Each run is a fresh process, as a cold instance is: it imports cartcast's database
code and pg8000 first (not timed: the same either way), then claims a tick on an
empty pool the way a tick's run does (`events.claim` inside
`post_events.acting_as`), runs one transaction, finishes the claim and gives its
lock back. The Database's `connect` is wrapped to count what it opens: decision
0084 makes that one, where decision 0078 opened two.

    DATABASE_URL=postgresql://... .venv/bin/python -m bench.cold_claim [--runs 20]

Without DATABASE_URL the embedded server is used. A fresh migrated database is
made for the run and dropped after it. Figures are medians over the runs; the
machine is shared, so compare them only with runs made beside them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
import types
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COUNT_CLAIMS = "SELECT count(*) AS claims FROM handled_events WHERE function = :f"


def claim_once(database_url: str) -> dict[str, float]:
    """Time one cold claimed tick in this process; return its ms and connects."""
    import pg8000.dbapi  # noqa: F401 - imported before the clock starts, as db's own

    from cartcast import db, events, post_events
    from cartcast.clock import SystemClock

    options = db.parse_database_url(database_url)
    opened: list[dict] = []

    def connect(**startup: str) -> object:
        opened.append(startup)
        return db._connect_pg8000({**options, **startup})

    database = db.Database(connect, settings_at_connect=True)
    clock = SystemClock()
    current = types.SimpleNamespace(
        database=database,
        clock=clock,
        settings=types.SimpleNamespace(function_timeout_s=300),
    )
    now = clock.now()
    message = events.Message(event_id=str(uuid.uuid4()), time=now, payload={})

    started = time.perf_counter()
    with post_events.acting_as("system:poll_mentions"):
        with events.claim(current, "poll_mentions", message, claimed_at=now) as found:
            with database.transaction() as tx:
                tx.scalar(COUNT_CLAIMS, f="poll_mentions")
            events.finish(current, "poll_mentions", message, claimed_at=now)
    elapsed_ms = (time.perf_counter() - started) * 1000
    database.close()

    if found is not events.Claim.CLAIMED:
        raise RuntimeError(f"the tick was not claimed: {found}")
    return {"ms": elapsed_ms, "connects": len(opened)}


def run(runs: int) -> dict[str, object]:
    from infra import pg

    database_url = pg.create_database(pg.server_url(), "cartcast_cold_claim")
    try:
        pg.migrate(database_url)
        figures = [_in_a_fresh_process(database_url) for _ in range(runs)]
    finally:
        pg.drop_database(database_url)
    times = sorted(figure["ms"] for figure in figures)
    quartiles = statistics.quantiles(times, n=4) if runs > 1 else times * 3
    return {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(),
        "runs": runs,
        "connects_per_tick": sorted({int(figure["connects"]) for figure in figures}),
        "median_ms": round(statistics.median(times), 1),
        "p25_ms": round(quartiles[0], 1),
        "p75_ms": round(quartiles[-1], 1),
        "min_ms": round(times[0], 1),
        "max_ms": round(times[-1], 1),
        "load_average": [round(load, 2) for load in os.getloadavg()],
    }


def _in_a_fresh_process(database_url: str) -> dict[str, float]:
    answer = subprocess.run(
        [sys.executable, "-m", "bench.cold_claim", "--child", database_url],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(answer.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="fresh processes")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--child", metavar="DATABASE_URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO / "functions"))
    if args.child:
        print(json.dumps(claim_once(args.child)))
        return 0
    if not 1 <= args.runs <= 200:
        parser.error("--runs must be 1 to 200")

    report = run(args.runs)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"cold claimed tick: {report['connects_per_tick']} connection(s) opened; "
        f"claim, one transaction and finish median {report['median_ms']} ms "
        f"(p25 {report['p25_ms']}, p75 {report['p75_ms']}, min {report['min_ms']}, "
        f"max {report['max_ms']}) over {args.runs} fresh processes; load average "
        f"{' '.join(str(load) for load in report['load_average'])}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
