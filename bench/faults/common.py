"""What every fault run shares: a fresh database, brands with due posts, a tally.

A run owns everything it starts (a database on the configured server, the X
sandbox, function processes, a proxy) and stops it on the way out. Every figure a
run prints comes from the database and the sandbox's own record, never from what
the product said it did.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CATALOG = REPO / "infra" / "data" / "catalog" / "dummyjson_products.json"
WORK_DIR = REPO / "var" / "faults"
START = dt.datetime(2026, 3, 2, 13, 0, tzinfo=dt.UTC)
FIRST_USER_ID = 1_600_000_000_000_000_000
# The clock jumps past slots days apart: the late bound would hold those posts.
LATE_BOUND_S = 60 * 86400
SLOTS = [
    {"weekday": day, "time": f"{hour:02d}:00"}
    for day in range(7)
    for hour in range(9, 19)
]
SELECT_POSTS = """
SELECT p.id, p.brand_id, p.state, p.text, p.x_post_id, b.x_user_id
FROM posts p JOIN brands b ON b.id = p.brand_id
WHERE p.state <> 'needs_approval' ORDER BY p.id
"""
# cartcast's own X governor, set so it never binds: the runs count faults, not limits.
UNBOUND_LIMITS = {
    "CARTCAST_X_POSTS_PER_15MIN_PER_USER": "100000",
    "CARTCAST_X_POSTS_PER_3H_PER_USER": "100000",
    "CARTCAST_X_POSTS_PER_24H_PER_APP": "10000000",
}
LAST_SLOT = "SELECT max(scheduled_at) FROM posts WHERE state = 'scheduled'"


DROP_ATTEMPTS = 3


class FaultRunError(Exception):
    """A run could not be set up or finished (not a finding about the product)."""


def say(line: str) -> None:
    print(line, flush=True)


@contextlib.contextmanager
def fresh_database(prefix: str) -> Iterator[str]:
    """A new database with sql/ applied on the configured server, dropped after."""
    from infra import pg

    url = pg.create_database(pg.server_url(), prefix)
    try:
        pg.migrate(url)
        yield url
    finally:
        drop_database(url)


def drop_database(url: str) -> None:
    """Drop a run's database; on a busy shared server, try again before giving up.

    DROP ... WITH (FORCE) waits for the backends it terminates, which a loaded
    machine can stretch past the connection's 10 s timeout: that is cleanup, not a
    finding, so the run's figures stand and the name left behind is printed.
    """
    from infra import pg

    for attempt in range(DROP_ATTEMPTS):
        try:
            pg.drop_database(url)
            return
        except Exception as error:  # noqa: BLE001 - reported, and tried again
            problem = error
            time.sleep(1 + attempt)
    say(f"  could not drop {url.rsplit('/', 1)[-1]}: {problem!r}; drop it by hand")


def products() -> list[dict[str, Any]]:
    return json.loads(CATALOG.read_text())


@dataclasses.dataclass
class Account:
    user_id: str
    username: str
    token: str

    def as_sandbox(self) -> dict[str, str]:
        return {
            "user_id": self.user_id,
            "username": self.username,
            "name": self.username,
            "token": self.token,
        }


def create_brand(
    runtime: Any, index: int, *, prefix: str = "faults"
) -> tuple[str, Account]:
    """A brand with an X account of its own and no posts yet; return (id, account)."""
    from cartcast import brands

    slug = f"{prefix}-{index:03d}"
    account = Account(
        user_id=str(FIRST_USER_ID + index),
        username=f"{prefix}{index:03d}",
        token=f"token-{slug}",
    )
    with runtime.database.transaction() as tx:
        brand = brands.create_brand(
            tx,
            {
                "name": slug,
                "slug": slug,
                "time_zone": "UTC",
                "store_base_url": f"https://{slug}.example.com",
                "approvals_required": False,
                "posting_slots": SLOTS,
                "x_user_id": account.user_id,
                "x_username": account.username,
                "x_access_token": account.token,
            },
            now=runtime.clock.now(),
        )["brand"]
    return str(brand["id"]), account


def schedule_products(
    runtime: Any, brand_id: str, rows: list[dict[str, Any]], **fields: Any
) -> list[str]:
    """Import `rows`, write one template draft each and schedule them; return ids."""
    from cartcast import catalog, posts

    now = runtime.clock.now()
    with runtime.database.transaction() as tx:
        catalog.import_products(tx, brand_id=brand_id, feed=rows, now=now)
        created = posts.create_drafts(
            tx,
            brand_id=brand_id,
            body={"products": [row["sku"] for row in rows], **fields},
            created_by="faults",
            now=now,
        )
        scheduled = posts.schedule_approved(
            tx, brand_id=brand_id, limit=len(rows), now=now
        )
    if len(scheduled) != len(rows):
        raise FaultRunError(f"scheduled {len(scheduled)} of {len(rows)} posts")
    return [str(post["id"]) for post in created["posts"]]


def make_all_due(runtime: Any) -> dt.datetime:
    """Move the (file) clock a minute past the last scheduled post; return it."""
    with runtime.database.transaction() as tx:
        last = tx.scalar(LAST_SLOT)
    if last is None:
        return runtime.clock.now()
    due_at = max(last, runtime.clock.now()) + dt.timedelta(minutes=1)
    runtime.clock.set(due_at)
    return due_at


def tally(runtime: Any, sandbox_posts: list[dict[str, Any]]) -> dict[str, Any]:
    """Count, per scheduled post, how many posts X holds with its text.

    `doubled`: extra copies on X; `lost`: a post X never got, or one the database
    does not show as published; `states`: the final state of every post.
    """
    with runtime.database.transaction() as tx:
        rows = tx.rows(SELECT_POSTS)
    on_x = Counter(
        (str(post["user_id"]), post["submitted_text"]) for post in sandbox_posts
    )
    ids_on_x = {str(post["id"]) for post in sandbox_posts}
    doubled = lost = wrong_id = 0
    for row in rows:
        copies = on_x[(str(row["x_user_id"]), row["text"])]
        doubled += max(0, copies - 1)
        if copies == 0 or row["state"] != "published":
            lost += 1
        elif str(row["x_post_id"]) not in ids_on_x:
            wrong_id += 1
    return {
        "posts": len(rows),
        "on_x": len(sandbox_posts),
        "doubled": doubled,
        "lost": lost,
        "wrong_x_id": wrong_id,
        "states": dict(Counter(row["state"] for row in rows)),
    }


def seeded(seed: int, name: str) -> random.Random:
    """One random source per run, derived from the printed seed and the run."""
    return random.Random(f"{seed}:{name}")
