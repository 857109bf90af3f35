"""`make demo LIVE=1`: a few real posts on a real X account, on purpose only.

Nothing here runs unless all of these are set, and the tests never run it:

    CARTCAST_LIVE_X_TOKEN     an OAuth 2.0 user access token (tweet.read, tweet.write,
                              users.read) of the account to post as
    CARTCAST_LIVE_X_USER_ID   that account's numeric id
    CARTCAST_LIVE_POST_CAP    how many posts, 1 to 3 (each costs $0.20 with its link)
    CARTCAST_LIVE_STORE_URL   the store whose product pages the links point at

GEMINI_API_KEY, when set, makes Gemini write the captions. The run uses the system
clock, schedules the posts a few minutes ahead, publishes them through the real
publish function, reads mentions once (one page) and rolls up once.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import time
from pathlib import Path

from infra import local_cloud, pg
from infra.local_cloud import call_json, send_tick

REPO = Path(__file__).resolve().parents[1]
REQUIRED = (
    "CARTCAST_LIVE_X_TOKEN",
    "CARTCAST_LIVE_X_USER_ID",
    "CARTCAST_LIVE_POST_CAP",
    "CARTCAST_LIVE_STORE_URL",
)
POST_CAP_MAX = 3
PUBLISH_WAIT_S = 600


def main(*, work_dir: Path) -> int:
    missing = [name for name in REQUIRED if not os.environ.get(name)]
    if missing:
        print("live mode posts on X for real; it needs: " + ", ".join(missing))
        return 2
    cap = os.environ["CARTCAST_LIVE_POST_CAP"]
    if cap not in {str(n) for n in range(1, POST_CAP_MAX + 1)}:
        print(f"CARTCAST_LIVE_POST_CAP must be 1 to {POST_CAP_MAX}")
        return 2

    server = pg.server_url()
    url = pg.recreate_database(server, "cartcast_live")
    pg.migrate(url)
    operator_key = secrets.token_urlsafe(24)
    extra = {"CARTCAST_MENTION_PAGES_MAX": "1"}
    if os.environ.get("GEMINI_API_KEY"):
        extra["GEMINI_API_KEY"] = os.environ["GEMINI_API_KEY"]
    cloud = local_cloud.LocalCloud(
        database_url=url,
        clock_file=None,
        work_dir=work_dir / "live",
        operator_key=operator_key,
        sandbox=False,
        extra_env=extra,
    )
    with cloud:
        return _run(cloud, operator_key, int(cap))


def _run(cloud: local_cloud.LocalCloud, operator_key: str, cap: int) -> int:
    api = cloud.url("api").rstrip("/")
    status, created = call_json(
        "POST",
        f"{api}/v1/brands",
        {
            "name": "cartcast live run",
            "slug": "live-run",
            "time_zone": "UTC",
            "store_base_url": os.environ["CARTCAST_LIVE_STORE_URL"],
            "approvals_required": False,
            "x_user_id": os.environ["CARTCAST_LIVE_X_USER_ID"],
            "x_access_token": os.environ["CARTCAST_LIVE_X_TOKEN"],
        },
        operator_key,
    )
    if status != 201:
        print(f"could not create the brand: {created}")
        return 1
    key = created["api_key"]
    catalog = json.loads(
        (REPO / "infra/data/catalog/dummyjson_products.json").read_text()
    )
    call_json("POST", f"{api}/v1/products", catalog[:cap], key)
    status, drafted = call_json(
        "POST",
        cloud.url("generate_caption"),
        {"products": [p["sku"] for p in catalog[:cap]]},
        key,
    )
    if status != 201:
        print(f"could not write captions: {drafted}")
        return 1

    start = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(minutes=2)
    for index, post in enumerate(drafted["posts"]):
        at = (start + dt.timedelta(minutes=index)).isoformat()
        call_json("POST", f"{api}/v1/posts/{post['id']}/schedule", {"at": at}, key)
        print(f"scheduled for {at}: {post['text']}")

    deadline = time.monotonic() + PUBLISH_WAIT_S
    while time.monotonic() < deadline:
        send_tick(
            cloud.url("publish_due_posts"),
            topic="publish",
            time=dt.datetime.now(dt.UTC),
        )
        _, listing = call_json("GET", f"{api}/v1/posts?limit=10", None, key)
        if all(
            p["state"] in ("published", "failed", "unconfirmed")
            for p in listing["posts"]
        ):
            break
        time.sleep(20)
    now = dt.datetime.now(dt.UTC)
    send_tick(cloud.url("poll_mentions"), topic="poll", time=now)
    send_tick(cloud.url("rollup_kpis"), topic="rollup", time=now)

    _, listing = call_json("GET", f"{api}/v1/posts?limit=10", None, key)
    for post in listing["posts"]:
        reason = post["failure_reason"] or ""
        print(f"{post['state']:<12} x id {post['x_post_id']}  {reason}")
    return 0
