"""`make bench`'s mention store row: the idempotent upsert against a plain COPY.

Storing what a poll read is the one step of poll_mentions whose cost grows with a
brand's volume. The bench stores 50,000 parsed mentions of one brand through
`mentions.store_mentions` (the upsert that poll_mentions runs: unique X id per
brand, ON CONFLICT DO NOTHING, the new ids returned) and, for scale, loads the same
rows with COPY into an empty table made with `CREATE TABLE ... (LIKE mentions
INCLUDING ALL)`, so it has the same indexes and constraints and is logged too. The
figure is the ratio of the two (goal <= 2); each side is timed from the parsed
mentions in memory (the COPY side writes its CSV in the timing) to its commit.

Each side runs `--runs` times, alternating, into emptied tables; the medians are
compared. A last upsert of the same rows again must store none (the idempotency the
poll relies on); a store that does is reported as an error.

    .venv/bin/python -m bench.mention_store [--mentions 50000] [--runs 3] [--json PATH]

Everything runs on a fresh migrated database on the embedded server (or
DATABASE_URL's), dropped at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import io
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from infra import pg

REPO = Path(__file__).resolve().parents[1]
GOAL_RATIO = 2.0
ISSUE_CASE = {"mentions": 50_000, "runs": 3}
QUICK_CASE = {"mentions": 5_000, "runs": 1}
START = dt.datetime(2026, 3, 2, 13, 0, tzinfo=dt.UTC)
# Texts of the lengths and kinds mentions have: short, emoji, long, questions.
TEXTS = (
    "@shop where is my order #{n}? it was due on Monday",
    "@shop love it!! 😍😍",
    "@shop the mug arrived broken, what now? " + "Really disappointed. " * 6,
    "@shop do you ship to Canada? asking for order {n}",
    "@shop 👍",
)
COLUMNS = (
    "brand_id, x_post_id, author_id, author_username, author_name, text, "
    "conversation_id, in_reply_to_user_id, posted_at, received_at, "
    "author_followers, photo_count, lang"
)
INSERT_BRAND = """
INSERT INTO brands (slug, name, time_zone, store_base_url, posting_slots, created_at)
VALUES ('bench-mentions', 'Bench', 'UTC', 'https://shop.example.com', '[]', :now)
RETURNING id
"""
# The comparison table: the same columns, defaults, indexes and constraints.
CREATE_COPY_TABLE = "CREATE TABLE mentions_copy (LIKE mentions INCLUDING ALL)"
COPY_ROWS = f"COPY mentions_copy ({COLUMNS}) FROM STDIN WITH (FORMAT csv)"
# CASCADE: the tables that reference mentions (escalations, replies) are empty
# here, and naming each would break with the next one a migration adds.
EMPTY_TABLES = "TRUNCATE mentions, mentions_copy CASCADE"


class BenchError(Exception):
    """The bench could not measure what it set out to."""


def say(message: str) -> None:
    print(f"[bench] mention store: {message}", flush=True)


def describe(case: dict[str, Any]) -> str:
    return (
        f"{case['mentions']:,} parsed mentions stored by the idempotent upsert, "
        f"against COPY into a LIKE mentions INCLUDING ALL table, {case['runs']} run(s)"
    )


def parsed_mentions(count: int) -> list[Any]:
    """Build `count` mentions as the X adapter parses them, newest first."""
    from cartcast.x import Mention, id_at

    first = int(id_at(START))
    mentions = []
    for n in range(count):
        author = str(10_000 + n % 997)
        post_id = str(first + (count - n) * 4_194_304)  # a millisecond apart
        mentions.append(
            Mention(
                id=post_id,
                text=TEXTS[n % len(TEXTS)].format(n=n),
                author_id=author,
                author_username=f"fan{author}",
                author_name=f"Fan {author}",
                created_at=START - dt.timedelta(milliseconds=count - n),
                conversation_id=post_id,
                in_reply_to_user_id=None,
                author_followers=n % 5_000,
                photo_count=n % 2,
                lang="en",
            )
        )
    return mentions


def upsert(database: Any, brand_id: str, mentions: list[Any]) -> tuple[float, int]:
    """Store through the product's upsert; return seconds and how many were new."""
    from cartcast.mentions import store_mentions

    started = time.perf_counter()
    with database.transaction() as tx:
        new_ids = store_mentions(
            tx, brand_id=brand_id, mentions=mentions, received_at=START
        )
    return time.perf_counter() - started, len(new_ids)


def copy_rows(connection: Any, brand_id: str, mentions: list[Any]) -> float:
    """COPY the same rows into the comparison table; return seconds."""
    started = time.perf_counter()
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for m in mentions:
        writer.writerow(
            (
                brand_id,
                m.id,
                m.author_id,
                m.author_username,
                m.author_name,
                m.text,
                m.conversation_id,
                m.in_reply_to_user_id or "",
                m.created_at.isoformat(),
                START.isoformat(),
                m.author_followers,
                m.photo_count,
                m.lang,
            )
        )
    buffer.seek(0)
    cursor = connection.cursor()
    cursor.execute(COPY_ROWS, stream=buffer)
    connection.commit()
    return time.perf_counter() - started


def measure(database: Any, connection: Any, mentions: list[Any], runs: int) -> dict:
    """Time both sides `runs` times, alternating; check the upsert's idempotency."""
    with database.transaction() as tx:
        brand_id = str(tx.scalar(INSERT_BRAND, now=START))
        tx.execute(CREATE_COPY_TABLE)

    upserts, copies = [], []
    for run in range(1, runs + 1):
        with database.transaction() as tx:
            tx.execute(EMPTY_TABLES)
        seconds, new = upsert(database, brand_id, mentions)
        if new != len(mentions):
            raise BenchError(f"the upsert stored {new} of {len(mentions)} mentions")
        upserts.append(seconds)
        copies.append(copy_rows(connection, brand_id, mentions))
        say(f"run {run}/{runs}: upsert {upserts[-1]:.2f} s, COPY {copies[-1]:.2f} s")

    again_s, stored_again = upsert(database, brand_id, mentions)
    if stored_again:
        raise BenchError(f"storing the same mentions again stored {stored_again}")
    upsert_s, copy_s = statistics.median(upserts), statistics.median(copies)
    return {
        "upsert_s": round(upsert_s, 3),
        "copy_s": round(copy_s, 3),
        "ratio": round(upsert_s / copy_s, 2),
        "again_s": round(again_s, 3),
        "stored_again": stored_again,
        "upsert_runs_s": [round(s, 3) for s in upserts],
        "copy_runs_s": [round(s, 3) for s in copies],
    }


def run(*, mentions: int, runs: int) -> dict[str, Any]:
    """Set up a fresh database, measure, drop it; return the summary."""
    from cartcast import db

    summary: dict[str, Any] = {
        "mentions": mentions,
        "runs": runs,
        "ratio_goal": GOAL_RATIO,
        "error": None,
    }
    with contextlib.ExitStack() as stack:
        url = pg.create_database(pg.server_url(), "cartcast_bench_mentions")
        stack.callback(pg.drop_database, url)
        pg.migrate(url)
        database = db.Database(lambda: db._connect_pg8000(db.parse_database_url(url)))
        stack.callback(database.close)
        connection = db._connect_pg8000(db.parse_database_url(url))
        stack.callback(connection.close)

        parsed = parsed_mentions(mentions)
        try:
            summary.update(measure(database, connection, parsed, runs))
        except BenchError as error:
            summary["error"] = str(error)
    return summary


def print_summary(summary: dict[str, Any]) -> None:
    print(f"\nmention store: {describe(summary)}")
    if summary["error"]:
        print(f"  ERROR: {summary['error']}")
        return
    print(f"  {'figure':<26}{'measured':>10}  {'goal':<8}")
    print(f"  {'upsert / COPY':<26}{summary['ratio']:>10.2f}  <= {GOAL_RATIO:g}")
    print(
        f"  upsert {summary['upsert_s']:.2f} s, COPY {summary['copy_s']:.2f} s "
        f"(medians); the same mentions stored again: {summary['stored_again']} new "
        f"in {summary['again_s']:.2f} s"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mentions", type=int, default=ISSUE_CASE["mentions"])
    parser.add_argument("--runs", type=int, default=ISSUE_CASE["runs"])
    parser.add_argument("--json", type=Path, help="also write the summary here")
    args = parser.parse_args(argv)
    if args.mentions < 1 or not 1 <= args.runs <= 20:
        parser.error("--mentions must be at least 1 and --runs 1 to 20")
    sys.path.insert(0, str(REPO / "functions"))

    say(describe(vars(args)))
    summary = run(mentions=args.mentions, runs=args.runs)
    print_summary(summary)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 1 if summary["error"] else 0


if __name__ == "__main__":
    sys.exit(main())
