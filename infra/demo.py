"""`make demo`: the whole loop on real data, on one machine, in a simulated week.

It starts PostgreSQL (embedded unless DATABASE_URL is set), the X sandbox and the seven
functions on loopback, then drives them only through their own interfaces: HTTP for
the API and captions, Pub/Sub-shaped CloudEvents for the scheduled functions. Every
figure it prints is read back through the API from the database the functions wrote.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import random
import secrets
import shlex
import signal
import sys
import time
import urllib.parse
import urllib.request
import zlib
import zoneinfo
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infra import local_cloud, pg
from infra.local_cloud import call_json

REPO = Path(__file__).resolve().parents[1]
CATALOG = REPO / "infra" / "data" / "catalog" / "dummyjson_products.json"
TEAM_MENTIONS = REPO / "infra" / "data" / "team_mentions.json"
TIME_ZONE = "America/New_York"
# How often make serve moves the shared clock on (it runs at real speed).
SERVE_CLOCK_STEP_S = 1.0
# make demo and make serve (re)create this database; --database names another.
DEFAULT_DATABASE = "cartcast_demo"
# The demo brand's posting slots in a week (3 a weekday, 1 a weekend day), each
# filled with a product of another category.
WEEK_POSTS_MAX = 17
# Monday 2026-03-02, 05:00 in New York. The week crosses the spring-forward night
# of 2026-03-08, so the demo also shows slots resolved across a DST change.
WEEK_START = dt.datetime(2026, 3, 2, 5, 0, tzinfo=zoneinfo.ZoneInfo(TIME_ZONE))
STEP = dt.timedelta(minutes=15)
POLL_EVERY = dt.timedelta(hours=1)
ROLLUP_EVERY = dt.timedelta(hours=3)
SEED = 20260302


@dataclasses.dataclass(order=True)
class Happening:
    """Something the simulated world does at a given instant (a mention, an order)."""

    at: dt.datetime
    kind: str = dataclasses.field(compare=False)
    body: dict = dataclasses.field(compare=False)


def say(step: str, message: str) -> None:
    print(f"[{step}] {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database", default=DEFAULT_DATABASE, help="database name to (re)create"
    )
    parser.add_argument("--work-dir", type=Path, default=REPO / "var" / "demo")
    parser.add_argument(
        "--posts",
        type=_post_count,
        default=WEEK_POSTS_MAX,
        help=f"posts to write, 1 to {WEEK_POSTS_MAX} (a week's slots)",
    )
    parser.add_argument(
        "--live", action="store_true", help="post on X for real (capped; see README)"
    )
    parser.add_argument(
        "--serve",
        action="store_true",
        help="after the week, keep everything up with the web console until Ctrl-C",
    )
    args = parser.parse_args(argv)
    if args.live:
        from infra import live

        return live.main(work_dir=args.work_dir)

    # `kill` (SIGTERM) stops a run as cleanly as Ctrl-C, the week or the console:
    # the sandbox and the functions it starts are ended with it. Set before they
    # start, so no SIGTERM can find the run with them up and this not yet set.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    started = time.monotonic()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    say("1/9", "starting PostgreSQL")
    server = pg.server_url()
    url = pg.recreate_database(server, args.database)
    say(
        "1/9",
        f"applied {len(pg.migrate(url))} migration(s) to database {args.database}",
    )

    from cartcast.clock import FileClock

    clock = FileClock(args.work_dir / "clock")
    clock.set(WEEK_START)
    operator_key = secrets.token_urlsafe(24)
    say("2/9", "starting the X sandbox and the seven functions on 127.0.0.1")
    # The console's session secret lives as long as this run.
    console = {"CARTCAST_CONSOLE_SECRET": secrets.token_urlsafe(32)}
    cloud = local_cloud.LocalCloud(
        database_url=url,
        clock_file=clock.path,
        work_dir=args.work_dir,
        operator_key=operator_key,
        extra_env=console,
    )
    with cloud:
        summary = run_week(cloud, clock, operator_key, args.posts)
        # The brand's key goes to the terminal only, never into a file under var/.
        api_key = summary.pop("api_key")
        page = summary.pop("report_page")
        # make serve numbers the same nine steps: the report, then the console.
        print_report(summary)
        if args.serve:
            return serve_console(cloud, api_key, clock=clock)
    summary["run_seconds"] = round(time.monotonic() - started, 1)
    summary["database"] = args.database

    (args.work_dir / "summary.json").write_text(
        json.dumps(summary, indent=2, default=str)
    )
    (args.work_dir / "report.html").write_text(page)
    say(
        "9/9",
        f"report: {args.work_dir / 'report.html'}; everything stopped; "
        f"run took {summary['run_seconds']} s",
    )
    print_api_access(api_key, args.database)
    return 0


def serve_console(
    cloud: local_cloud.LocalCloud,
    api_key: str,
    *,
    clock: Any,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> int:
    """Keep the stand-ins, the functions and the week's data up until Ctrl-C.

    The shared clock runs on from the end of the week at the speed of real time:
    stood still, a sign-in lockout's window, a session's hours and a schedule's
    "in the future" would never move for the person clicking through.
    """
    console = cloud.url("api").rstrip("/") + "/console"
    say("9/9", f"serving the web console: {console}")
    print(
        f"Sign in with the demo brand's API key (admin, shown here only): {api_key}\n"
        "Everything runs on 127.0.0.1 until you press Ctrl-C.",
        flush=True,
    )
    week_end, started = clock.now(), monotonic()
    try:
        while True:
            sleep(SERVE_CLOCK_STEP_S)
            clock.set(week_end + dt.timedelta(seconds=monotonic() - started))
    except KeyboardInterrupt:
        print("\nstopping", flush=True)
    return 0


def _post_count(text: str) -> int:
    """Read --posts, refused by argparse before any server starts."""
    count = int(text)
    if not 1 <= count <= WEEK_POSTS_MAX:
        raise argparse.ArgumentTypeError(
            f"{text} posts: the week holds 1 to {WEEK_POSTS_MAX}"
        )
    return count


def print_api_access(api_key: str, database: str) -> None:
    """Say how to read the demo brand's reports after the run: API, then console."""
    first_day, last_day = WEEK_START.date(), (WEEK_START + dt.timedelta(days=7)).date()
    print(
        "\nThe demo brand's API key (admin, shown here only): "
        f"{api_key}\n"
        "To read its reports, start the api on the demo database and ask for them:\n"
        # The server's URL with the database swapped, whether DATABASE_URL named
        # the server or the embedded one runs: a sed on the URL fitted only one.
        '  export DATABASE_URL="$(.venv/bin/python -m infra.pg url '
        f'--database {shlex.quote(database)})"\n'
        "  export CARTCAST_OPERATOR_KEY=local-operator-key\n"
        "  .venv/bin/functions-framework --source functions/main.py --target api \\\n"
        "    --host 127.0.0.1 --port 8080 &\n"
        f"  curl -s 'http://127.0.0.1:8080/v1/reports/daily?from={first_day}"
        f"&to={last_day}&format=html' \\\n"
        f"    -H 'Authorization: Bearer {api_key}' -o report.html",
        flush=True,
    )
    # make serve recreates the default database; a run given another name keeps it.
    serve = "make serve"
    if database != DEFAULT_DATABASE:
        serve = (
            f".venv/bin/python -m infra.demo --serve --database {shlex.quote(database)}"
        )
    print(f"\nTo click through the same week in the web console, run: {serve}")


def run_week(
    cloud: local_cloud.LocalCloud, clock: Any, operator_key: str, post_count: int
) -> dict:
    api = cloud.url("api").rstrip("/")
    account = {
        "user_id": "1500000000000000001",
        "username": "northwindgoods",
        "name": "Northwind Goods",
        "token": secrets.token_urlsafe(24),
        "followers_count": 4200,
    }
    _expect(
        call_json("POST", f"{cloud.sandbox_url}/_sandbox/accounts", account), 200, 201
    )

    say("3/9", "creating the demo brand (approvals off) through the API")
    status, created = call_json(
        "POST",
        f"{api}/v1/brands",
        {
            "name": "Northwind Goods",
            "slug": "northwind-goods",
            "time_zone": TIME_ZONE,
            "store_base_url": "https://northwind.example.com",
            "currency": "USD",
            "voice": "warm, plain-spoken, no hype",
            "approvals_required": False,
            "banned_words": ["guaranteed", "cure"],
            "required_hashtags": [],
            "x_user_id": account["user_id"],
            "x_username": account["username"],
            "x_access_token": account["token"],
        },
        operator_key,
    )
    _expect((status, created), 201)
    key = created["api_key"]

    catalog = json.loads(CATALOG.read_text())
    say("4/9", f"importing the catalog: {len(catalog)} products")
    status, imported = call_json(
        "POST", f"{api}/v1/products", {"products": catalog}, key
    )
    _expect((status, imported), 200)
    say("4/9", f"catalog: {imported['inserted']} new, {imported['updated']} updated")

    chosen = _pick_products(catalog, post_count)
    say("5/9", f"writing captions for {len(chosen)} products through generate_caption")
    status, drafted = call_json(
        "POST",
        cloud.url("generate_caption"),
        {"products": [p["sku"] for p in chosen], "campaign": "spring-week"},
        key,
    )
    _expect((status, drafted), 201)
    drafts = drafted["posts"]
    engines = sorted({d["engine"] for d in drafts})
    say(
        "5/9",
        f"{len(drafts)} drafts by {', '.join(engines)}; longest "
        f"{max(d['weighted_length'] for d in drafts)}/280 weighted; "
        f"{len({d['text'] for d in drafts})} distinct texts",
    )

    status, scheduled = call_json(
        "POST", f"{api}/v1/schedule", {"limit": len(drafts)}, key
    )
    _expect((status, scheduled), 200)
    say(
        "6/9",
        f"scheduled {len(scheduled['posts'])} posts into the brand's slots "
        f"({TIME_ZONE}), first {_local(scheduled['posts'][0]['scheduled_at'])}",
    )

    world = _mentions_timeline(chosen, account)
    say(
        "6/9",
        f"driving the simulated week in {STEP.seconds // 60}-minute ticks: "
        f"publish every tick, sweep for missed posts and poll mentions hourly, "
        f"roll up KPIs every 3 hours",
    )
    ticks = _drive(cloud, clock, key, world, catalog)
    return _collect(api, key, ticks, cloud)


def _drive(cloud, clock, key, world, catalog) -> dict[str, int]:
    api = cloud.url("api").rstrip("/")
    rng = random.Random(SEED)
    prices = {p["id"]: p["price"] for p in catalog}
    end = WEEK_START + dt.timedelta(days=7)
    counts = {
        "publish": 0,
        "sweep": 0,
        "poll": 0,
        "rollup": 0,
        "mentions_sent": 0,
        "orders_sent": 0,
    }
    ordered_posts: set[str] = set()
    now = WEEK_START.astimezone(dt.UTC)
    day_shown = None
    while now <= end:
        clock.set(now)
        for happening in [h for h in world if h.at <= now]:
            world.remove(happening)
            _happen(cloud, api, key, happening)
            counts[f"{happening.kind}s_sent"] += 1

        _tick(cloud, "publish_due_posts", now)
        counts["publish"] += 1
        if (now - WEEK_START) % POLL_EVERY == dt.timedelta(0):
            # The sweeper's own job: with publishing every tick it finds nothing
            # missed; it is here so the demo runs every job the cloud runs.
            _sweep(cloud, now)
            counts["sweep"] += 1
            _tick(cloud, "poll_mentions", now)
            counts["poll"] += 1
            world.extend(
                _orders_for_new_posts(api, key, now, rng, prices, ordered_posts)
            )
        if (now - WEEK_START) % ROLLUP_EVERY == dt.timedelta(0) or now + STEP > end:
            _tick(cloud, "rollup_kpis", now)
            counts["rollup"] += 1
        local_day = now.astimezone(zoneinfo.ZoneInfo(TIME_ZONE)).date()
        if local_day != day_shown:
            day_shown = local_day
            say("7/9", f"simulated {local_day:%a %d %b}")
        now += STEP
    return counts


def _tick(cloud, target: str, now: dt.datetime) -> None:
    status = cloud.tick(target, time=now)
    if status is not None and status >= 300:
        raise RuntimeError(
            f"{target} answered {status} at {now}; see {cloud.work_dir}/{target}.log"
        )


def _sweep(cloud, now: dt.datetime) -> None:
    status = cloud.sweep(time=now)
    if status is not None and status >= 300:
        raise RuntimeError(
            f"the sweep answered {status} at {now}; "
            f"see {cloud.work_dir}/publish_due_posts.log"
        )


def _happen(cloud, api: str, key: str, happening: Happening) -> None:
    if happening.kind == "mention":
        _expect(
            call_json("POST", f"{cloud.sandbox_url}/_sandbox/mentions", happening.body),
            200,
            201,
        )
    else:
        _expect(call_json("POST", f"{api}/v1/orders", happening.body, key), 200, 201)


def _pick_products(catalog: list[dict], count: int) -> list[dict]:
    """One product from each category, in catalog order, up to `count`."""
    chosen, seen = [], set()
    for product in catalog:
        if product["category"] not in seen:
            seen.add(product["category"])
            chosen.append(product)
    return chosen[:count]


def _mentions_timeline(chosen: list[dict], account: dict) -> list[Happening]:
    """Product reviews and the team's mentions, spread over the week's daytime hours."""
    rng = random.Random(SEED)
    texts = []
    for product in chosen:
        for review in product.get("reviews", []):
            name = review["reviewerName"]
            texts.append(
                (
                    f"@{account['username']} {review['comment']} ({product['title']})",
                    name,
                    name.lower().replace(" ", "_"),
                )
            )
    for mention in json.loads(TEAM_MENTIONS.read_text()):
        author = mention["author"]
        texts.append((mention["text"], author["name"], author["username"]))
    rng.shuffle(texts)
    timeline = []
    for index, (text, name, username) in enumerate(texts):
        day = index % 7
        at = WEEK_START + dt.timedelta(
            days=day, hours=3 + rng.randrange(0, 14), minutes=rng.randrange(0, 60)
        )
        # A stable id per author: str hash() changes between processes.
        author_id = str(1_600_000_000_000_000_000 + zlib.crc32(username.encode()))
        timeline.append(
            Happening(
                at.astimezone(dt.UTC),
                "mention",
                {
                    "to_user_id": account["user_id"],
                    "mentions": [
                        {
                            "text": text,
                            "author": {
                                "id": author_id,
                                "username": username,
                                "name": name,
                            },
                        }
                    ],
                },
            )
        )
    return sorted(timeline)


def _orders_for_new_posts(api, key, now, rng, prices, ordered_posts) -> list[Happening]:
    """Shoppers who follow a post's link and buy, hours later (about half the posts)."""
    status, listing = call_json(
        "GET", f"{api}/v1/posts?state=published&limit=500", None, key
    )
    _expect((status, listing), 200)
    orders = []
    for post in listing["posts"]:
        if post["id"] in ordered_posts:
            continue
        ordered_posts.add(post["id"])
        if rng.random() < 0.25:
            # A shopper who came from elsewhere: the report must show it unattributed.
            at = now + dt.timedelta(hours=rng.randrange(1, 12))
            orders.append(_order(at, None, 1, "/", "https://search.example.com/"))
        if rng.random() < 0.45:
            continue
        status, found = call_json(
            "GET", f"{api}/v1/products/{post['product_id']}", None, key
        )
        _expect((status, found), 200)
        link = urllib.parse.urlsplit(post["link"])
        for _ in range(rng.choice([1, 1, 2, 3])):
            quantity = rng.choice([1, 1, 2])
            at = now + dt.timedelta(
                hours=rng.randrange(1, 30), minutes=rng.randrange(60)
            )
            landing = f"{link.path}?{link.query}"
            orders.append(
                _order(at, found["product"], quantity, landing, "https://t.co/")
            )
    return orders


def _order(at, product, quantity, landing_site, referrer) -> Happening:
    number = 1000 + random.Random(at.isoformat()).randrange(10**6)
    price = float(product["price"]) if product else 25.0
    return Happening(
        at,
        "order",
        {
            "id": number,
            "created_at": at.isoformat(),
            "currency": "USD",
            "total_price": f"{price * quantity:.2f}",
            "landing_site": landing_site,
            "referring_site": referrer,
            "customer": {"id": 7000 + number % 500},
            "line_items": [
                {
                    "sku": product["sku"] if product else "GIFT-CARD",
                    "quantity": quantity,
                    "price": f"{price:.2f}",
                }
            ],
        },
    )


def _collect(api: str, key: str, ticks: dict, cloud) -> dict:
    """Read every figure back through the API."""
    last_day = (WEEK_START + dt.timedelta(days=7)).date()
    first_day = WEEK_START.date()
    daily = _get(api, f"/v1/reports/daily?from={first_day}&to={last_day}", key)["days"]
    # The page format=html serves, byte for byte, kept as var/demo/report.html.
    page = _get_page(
        api, f"/v1/reports/daily?from={first_day}&to={last_day}&format=html", key
    )
    posts = _get(api, "/v1/reports/posts?limit=500", key)["posts"]
    mentions = _get(api, "/v1/reports/mentions", key)["mentions"]
    published = _get(api, "/v1/posts?state=published&limit=500", key)["posts"]
    sandbox = (
        json.loads(cloud.sandbox_state.read_text())
        if cloud.sandbox_state.exists()
        else {}
    )
    return {
        "ticks": ticks,
        "daily": daily,
        "posts": posts,
        "mentions": mentions,
        "published": len(published),
        "sandbox_posts": len(sandbox.get("posts", [])),
        "time_zone": TIME_ZONE,
        "report_page": page,
        "api_key": key,
    }


def _get_page(api: str, path: str, key: str) -> str:
    request = urllib.request.Request(
        api + path, headers={"Authorization": f"Bearer {key}"}
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return response.read().decode("utf-8")


def _get(api: str, path: str, key: str) -> Any:
    status, body = call_json("GET", api + path, None, key)
    _expect((status, body), 200)
    return body


def _expect(result: tuple[int, Any], *statuses: int) -> None:
    status, body = result
    if status not in statuses:
        raise RuntimeError(f"unexpected answer {status}: {body}")


def _local(instant: str) -> str:
    parsed = dt.datetime.fromisoformat(instant).astimezone(zoneinfo.ZoneInfo(TIME_ZONE))
    return parsed.strftime("%a %d %b %H:%M %Z")


def totals(summary: dict) -> dict[str, Any]:
    days = summary["daily"]
    revenue = sum(float(d["revenue"]) for d in days)
    return {
        "posts_published": sum(d["posts_published"] for d in days),
        "impressions": sum(d["impressions"] for d in days),
        "engagements": sum(d["engagements"] for d in days),
        "link_clicks": sum(d["link_clicks"] for d in days),
        "attributed_orders": sum(d["attributed_orders"] for d in days),
        "unattributed_orders": sum(d["unattributed_orders"] for d in days),
        "revenue": f"{revenue:.2f}",
        "api_spend_usd": f"{sum(float(d['api_spend_usd']) for d in days):.3f}",
        "mentions": sum(m["mentions"] for m in summary["mentions"]),
    }


def print_report(summary: dict) -> None:
    say("8/9", "report (read back through the API from the database)")
    total = totals(summary)
    print(
        f"  posts published: {total['posts_published']}   "
        f"(X sandbox received {summary['sandbox_posts']})"
    )
    print(
        f"  impressions {total['impressions']}, engagements {total['engagements']}, "
        f"link clicks {total['link_clicks']}"
    )
    print(
        f"  orders attributed {total['attributed_orders']}, unattributed "
        f"{total['unattributed_orders']}, attributed revenue ${total['revenue']}, "
        f"X spend ${total['api_spend_usd']}"
    )
    print(f"  mentions: {total['mentions']}")
    for row in summary["mentions"]:
        print(
            f"    {row['sentiment']:<9} {row['intent']:<12} {row['mentions']:>4}"
            f"  escalated {row['escalated']}"
        )
    print("  KPIs per day (" + summary["time_zone"] + "):")
    print("    day         posts  impr.  eng.  clicks  orders  revenue  spend")
    for d in summary["daily"]:
        print(
            f"    {d['day']}  {d['posts_published']:>5} {d['impressions']:>6} "
            f"{d['engagements']:>5} {d['link_clicks']:>7} {d['attributed_orders']:>7} "
            f"{float(d['revenue']):>8.2f} {float(d['api_spend_usd']):>6.3f}"
        )
    print("  revenue per post (top 5):")
    for post in summary["posts"][:5]:
        print(
            f"    ${float(post['revenue']):>8.2f}  {post['orders']} order(s)  "
            f"{post['text'][:60]!r}"
        )


if __name__ == "__main__":
    sys.exit(main())
