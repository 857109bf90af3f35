"""The data duties: a brand's export, an author's data removed, offboarding, and
how long mention texts are kept.

The API runs on the shared file clock at START; the sweepers are called with the
instant they act as of. Nothing here reaches X: the brands' posts are never sent.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import re
import threading
import time
import uuid
import zipfile
from decimal import Decimal

import pytest

from cartcast import (
    accounts,
    author_data,
    costs,
    data_export,
    keys,
    kpis,
    offboarding,
    publishing,
    reconciling,
    removed_mentions,
    retention,
)
from cartcast import (
    settings as settings_module,
)
from cartcast.errors import ConfigurationError
from tests.conftest import OPERATOR_KEY, REPO, START, make_app
from tests.helpers import (
    ALPHA,
    WAITING_ON_A_LOCK,
    auth,
    brand_body,
    catalog,
    make_brand,
    post_json,
    tweets_sent,
)

DAY = dt.timedelta(days=1)
FAN = {"id": "4242424242", "username": "Fan_One", "name": "A Fan"}
OTHER = {"id": "5151515151", "username": "someone", "name": "Someone Else"}
# Tables that hold nothing of any one brand: deployment-wide state and bookkeeping.
DEPLOYMENT_WIDE = {
    "schema_migrations",
    "handled_events",
    "gemini_calls",
    "gemini_pause",
    "x_app_pauses",
    # The operator's pause of every brand's publishing (sql/050).
    "publishing_pause",
    # Its last resume, for the missed-post check (sql/052).
    "publishing_resume",
    # Failed console sign-ins by client address: no brand is known for a wrong key.
    "console_signin_failures",
    # Signed-out console sessions by a hash of their id: no brand is named (sql/056).
    "console_sessions_ended",
}
# Names a brand without a foreign key; offboarding deletes its rows by name.
BRAND_WITHOUT_FOREIGN_KEY = {"kpi_marks"}

STORE_MENTION = """
INSERT INTO mentions (brand_id, x_post_id, author_id, author_username, author_name,
    author_followers, text, conversation_id, posted_at, received_at, sentiment,
    intent, priority, scored_at)
VALUES (:brand_id, :x_post_id, :author_id, :author_username, :author_name, 10,
    :text, :x_post_id, :posted_at, :posted_at, 'negative', 'complaint', 2,
    :posted_at)
RETURNING id
"""
QUEUE_ESCALATION = """
INSERT INTO escalation_outbox (brand_id, mention_id, body, created_at,
    next_attempt_at)
VALUES (:brand_id, :mention_id, :body, :now, :now)
"""
# Every base table, named as it is and as a quoted identifier. Taken from
# information_schema, so a table added later is searched too.
BASE_TABLES = """
SELECT c.table_name AS name, format('%I.%I', c.table_schema, c.table_name) AS quoted
FROM information_schema.tables c
WHERE c.table_schema = 'public' AND c.table_type = 'BASE TABLE'
ORDER BY c.table_name
"""
# Each table with its foreign keys: (column, referenced table, on delete).
FOREIGN_KEYS = """
SELECT t.table_name AS name, k.column_name AS column_name,
    u.table_name AS refers_to, r.delete_rule
FROM information_schema.tables t
LEFT JOIN information_schema.table_constraints c
    ON c.table_schema = t.table_schema AND c.table_name = t.table_name
    AND c.constraint_type = 'FOREIGN KEY'
LEFT JOIN information_schema.key_column_usage k
    ON k.constraint_schema = c.constraint_schema
    AND k.constraint_name = c.constraint_name
LEFT JOIN information_schema.referential_constraints r
    ON r.constraint_schema = c.constraint_schema
    AND r.constraint_name = c.constraint_name
LEFT JOIN information_schema.constraint_column_usage u
    ON u.constraint_schema = c.constraint_schema
    AND u.constraint_name = c.constraint_name
WHERE t.table_schema = 'public' AND t.table_type = 'BASE TABLE'
"""
# Tables only: a view (audit_trail, sql/032) holds no rows of its own.
COLUMNS = """
SELECT c.table_name AS name, c.column_name
FROM information_schema.columns c
JOIN information_schema.tables t
    ON t.table_schema = c.table_schema AND t.table_name = c.table_name
WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
"""


@pytest.fixture
def client(function_env):
    return make_app("api", "http").test_client()


@pytest.fixture
def shop(client) -> dict[str, str]:
    """A brand created through the API, with its admin key and a viewer key."""
    body = brand_body(
        slug="leaving-goods", name="Leaving Goods", x_access_token="secret-x-token"
    )
    response = post_json(client, "/v1/brands", body, OPERATOR_KEY)
    assert response.status_code == 201, response.get_json()
    created = response.get_json()
    return {
        "id": str(created["brand"]["id"]),
        "admin": created["api_key"],
        "viewer": _key(client, created["brand"]["id"], "viewer"),
    }


def _key(client, brand_id, role: str, *, name: str | None = None) -> str:
    from cartcast import runtime as runtime_module

    current = runtime_module.current()
    with current.database.transaction() as tx:
        return keys.create_key(
            tx, brand_id=str(brand_id), name=name or role, role=role, now=START
        )


def _database(client):
    from cartcast import runtime as runtime_module

    return runtime_module.current().database


def store_mention(
    database,
    brand_id: str,
    author: dict[str, str],
    *,
    text: str = "@leaving my parcel never came",
    posted_at: dt.datetime = START,
    escalated: bool = False,
) -> str:
    with database.transaction() as tx:
        mention_id = str(
            tx.scalar(
                STORE_MENTION,
                brand_id=brand_id,
                x_post_id=str(uuid.uuid4().int % 10**18),
                author_id=author["id"],
                author_username=author["username"],
                author_name=author["name"],
                text=text,
                posted_at=posted_at,
            )
        )
        if escalated:
            body = json.dumps({"author_username": author["username"], "text": text})
            tx.execute(
                QUEUE_ESCALATION,
                brand_id=brand_id,
                mention_id=mention_id,
                body=body,
                now=posted_at,
            )
    return mention_id


def fill_brand(database, brand_id: str) -> dict[str, int]:
    """Write a row of the brand in every table a running brand fills."""
    rows = {}
    with database.transaction() as tx:
        product_id = str(
            tx.scalar(
                "INSERT INTO products (brand_id, sku, handle, title, price, "
                "created_at, updated_at) VALUES (:brand_id, 'SKU-1', 'mug', 'Mug', "
                "12.50, :now, :now) RETURNING id",
                brand_id=brand_id,
                now=START,
            )
        )
        tx.execute(
            "INSERT INTO product_variants (product_id, position, sku, options, "
            "price) VALUES (:product_id, 1, 'SKU-1-L', '{Large}', 12.50)",
            product_id=product_id,
        )
        tx.execute(
            "INSERT INTO product_images (product_id, position, url) VALUES "
            "(:product_id, 1, 'https://shop.example/mug.jpg')",
            product_id=product_id,
        )
        post_id = str(uuid.uuid4())
        tx.execute(
            "INSERT INTO posts (id, brand_id, product_id, text, state, engine, "
            "weighted_length, created_by, created_at, updated_at, scheduled_at, "
            "published_at, x_post_id) VALUES (:id, :brand_id, :product_id, "
            "'A mug for mornings', 'published', 'manual', 18, 'test', :now, :now, "
            ":now, :now, :x_post_id)",
            id=post_id,
            brand_id=brand_id,
            product_id=product_id,
            now=START,
            x_post_id=str(uuid.uuid4().int % 10**18),
        )
        tx.execute(
            "INSERT INTO post_parts (post_id, position, text, weighted_length, "
            "has_link) VALUES (:post_id, 0, 'A mug for mornings', 18, false)",
            post_id=post_id,
        )
        attempt = tx.scalar(
            "INSERT INTO publish_attempts (post_id, started_at, finished_at, "
            "outcome) VALUES (:post_id, :now, :now, 'published') RETURNING id",
            post_id=post_id,
            now=START,
        )
        tx.execute(
            "INSERT INTO x_post_intents (brand_id, post_id, own_app, sent_at) "
            "VALUES (:brand_id, :post_id, false, :now)",
            brand_id=brand_id,
            post_id=post_id,
            now=START,
        )
        for hours in (1, 2):
            tx.execute(
                "INSERT INTO metric_snapshots (post_id, captured_at, impressions, "
                "likes, reposts, replies, quotes, bookmarks) VALUES (:post_id, :at, "
                ":impressions, 1, 0, 0, 0, 0)",
                post_id=post_id,
                at=START + dt.timedelta(hours=hours),
                impressions=100 * hours,
            )
        tx.execute(
            "INSERT INTO orders (brand_id, external_id, ordered_at, currency, "
            "total_price, post_id, received_at, customer_id) VALUES (:brand_id, "
            "'1001', :now, 'USD', 42.50, :post_id, :now, 'customer-7')",
            brand_id=brand_id,
            post_id=post_id,
            now=START,
        )
        tx.execute(
            "INSERT INTO account_snapshots (brand_id, local_day, captured_at, "
            "followers) VALUES (:brand_id, :day, :now, 990)",
            brand_id=brand_id,
            day=START.date(),
            now=START,
        )
        tx.execute(
            "INSERT INTO cost_ledger (brand_id, occurred_at, service, operation, "
            "units, usd, ref) VALUES (:brand_id, :now, 'x', 'post', 1, 0.015, :ref)",
            brand_id=brand_id,
            now=START,
            ref=f"attempt-{attempt}",
        )
        for day, revenue in ((START.date() - DAY, "10.10"), (START.date(), "42.50")):
            tx.execute(
                "INSERT INTO daily_kpis (brand_id, day, posts_published, "
                "impressions, engagements, link_clicks, attributed_orders, revenue, "
                "unattributed_orders, mentions, negative_mentions, api_spend_usd, "
                "computed_at) VALUES (:brand_id, :day, 1, 200, 2, 0, 1, "
                "CAST(:revenue AS numeric), 0, 1, 1, 0.015, :now)",
                brand_id=brand_id,
                day=day,
                revenue=revenue,
                now=START,
            )
        job_id = str(uuid.uuid4())
        tx.execute(
            "INSERT INTO caption_jobs (id, brand_id, requested_by, when_quota_spent, "
            "state, products_total, created_at, updated_at) VALUES (:id, "
            ":brand_id, 'admin', 'wait', 'queued', 1, :now, :now)",
            id=job_id,
            brand_id=brand_id,
            now=START,
        )
        tx.execute(
            "INSERT INTO caption_job_items (job_id, position, product_id) "
            "VALUES (:job_id, 0, :product_id)",
            job_id=job_id,
            product_id=product_id,
        )
        tx.execute(
            "INSERT INTO alert_outbox (brand_id, kind, episode, text, created_at, "
            "next_attempt_at) "
            "VALUES (:brand_id, 'crisis', 'one', 'negative mentions rose', :now, :now)",
            brand_id=brand_id,
            now=START,
        )
        tx.execute(
            "INSERT INTO crises (brand_id, started_at, last_seen_at, "
            "window_mentions, window_negative, baseline_share) VALUES (:brand_id, "
            ":now, :now, 20, 12, 0.1)",
            brand_id=brand_id,
            now=START,
        )
        # An OAuth connection started and never finished, and a refused request.
        tx.execute(
            "INSERT INTO x_oauth_states (state_hash, brand_id, code_verifier, "
            "created_at, expires_at) VALUES ('state-of-' || :slug, "
            ":brand_id, 'xtk1.sealed', :now, :later)",
            brand_id=brand_id,
            slug=brand_id[:8],
            now=START,
            later=START + dt.timedelta(minutes=10),
        )
        tx.execute(
            "INSERT INTO audit_events (brand_id, at, actor, action, subject, after) "
            "VALUES (:brand_id, :now, 'viewer', 'access.refused', "
            "'route:GET /v1/keys', '{}')",
            brand_id=brand_id,
            now=START,
        )
        # A removed author's mention's X id, kept while a poll could read it again.
        tx.execute(
            "INSERT INTO removed_mention_ids (brand_id, x_post_id, forget_after) "
            "VALUES (:brand_id, '1600000000000000001', :later)",
            brand_id=brand_id,
            later=START + 8 * DAY,
        )
    store_mention(database, brand_id, FAN, escalated=True)
    with database.transaction() as tx:
        author_data.remove_author_data(
            tx,
            brand_id=brand_id,
            body={"x_user_id": OTHER["id"]},
            actor="admin",
            now=START,
            reread_reach=DAY,
        )
        for row in rows_holding(tx, brand_id):
            rows[row["name"]] = row["n"]
    return rows


def rows_holding(tx, pattern: str) -> list[dict]:
    """Count, for every base table, the rows holding `pattern` in their text form."""
    counts = []
    for table in tx.rows(BASE_TABLES):
        # One query per table, as a table name cannot be a bound parameter; the
        # server quoted it (format's %I). Not query_to_xml in one query: that needs
        # a server built with libxml, which the embedded one (pgserver) is not.
        count_rows = (
            "SELECT count(*) FROM " + table["quoted"] + " t "
            "WHERE CAST(t AS text) ~ CAST(:pattern AS text)"
        )
        counts.append(
            {"name": table["name"], "n": tx.scalar(count_rows, pattern=pattern)}
        )
    return counts


def wait_until(condition, what: str) -> object:
    """Wait for another thread's step, with a deadline (no timing is asserted)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"gave up waiting for {what}")


def read_archive(response) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(response.get_data()))


def jsonl(archive: zipfile.ZipFile, name: str) -> list[dict]:
    return [json.loads(line) for line in archive.read(name).decode().splitlines()]


# Export


def test_an_admin_downloads_the_brands_data_as_a_zip_with_a_manifest(client, shop):
    database = _database(client)
    fill_brand(database, shop["id"])
    other = post_json(client, "/v1/brands", brand_body(slug="staying"), OPERATOR_KEY)
    fill_brand(database, str(other.get_json()["brand"]["id"]))

    response = client.get("/v1/brand/export", headers=auth(shop["admin"]))

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/zip"
    assert (
        "cartcast-leaving-goods-export.zip" in response.headers["Content-Disposition"]
    )
    archive = read_archive(response)
    assert archive.testzip() is None
    names = archive.namelist()
    assert names[-1] == "manifest.json"
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["format"] == data_export.ARCHIVE_FORMAT
    newest = max(path.name[:3] for path in (REPO / "sql").glob("[0-9][0-9][0-9]_*.sql"))
    assert manifest["schema_version"] == newest
    assert manifest["brand"] == {"id": shop["id"], "slug": "leaving-goods"}
    for name, entry in manifest["files"].items():
        assert len(archive.read(name).decode().splitlines()) == entry["rows"], name
    expected = {
        "products.jsonl": 1,
        "product_variants.jsonl": 1,
        "product_images.jsonl": 1,
        "posts.jsonl": 1,
        "post_parts.jsonl": 1,
        "publish_attempts.jsonl": 1,
        "metric_snapshots.jsonl": 2,
        "mentions.jsonl": 1,
        "orders.jsonl": 1,
        "daily_kpis.jsonl": 2,
        "account_snapshots.jsonl": 1,
        "cost_ledger.jsonl": 1,
        "crises.jsonl": 1,
        "api_keys.jsonl": 2,
    }
    assert {name: manifest["files"][name]["rows"] for name in expected} == expected
    assert manifest["files"]["post_events.jsonl"]["rows"] >= 1
    # Only this brand's rows, with numbers exactly as stored.
    for name in names:
        if name.endswith(".jsonl") and name != "api_keys.jsonl":
            for row in jsonl(archive, name):
                assert row.get("brand_id", shop["id"]) == shop["id"]
    revenues = sorted(row["revenue"] for row in jsonl(archive, "daily_kpis.jsonl"))
    assert revenues == [10.10, 42.50]


def test_the_export_holds_no_secret_and_no_key_hash(client, shop):
    database = _database(client)
    with database.transaction() as tx:
        tx.execute(
            "UPDATE brands SET escalation_webhook_url = 'https://crm.example/hook', "
            "escalation_secret = 'escalation-secret', "
            "order_webhook_secret = 'order-secret' WHERE id = :id",
            id=shop["id"],
        )

    archive = read_archive(client.get("/v1/brand/export", headers=auth(shop["admin"])))

    everything = b"".join(archive.read(name) for name in archive.namelist())
    for secret in (b"secret-x-token", b"escalation-secret", b"order-secret", b"crm."):
        assert secret not in everything
    assert shop["admin"].encode() not in everything
    assert all("key_hash" not in row for row in jsonl(archive, "api_keys.jsonl"))
    assert json.loads(archive.read("brand.json"))["slug"] == "leaving-goods"


def test_a_secret_column_added_later_stays_out_of_the_export(client, shop):
    database = _database(client)
    with database.transaction() as tx:
        tx.execute("ALTER TABLE brands ADD COLUMN shop_api_secret text")
        tx.execute("ALTER TABLE api_keys ADD COLUMN key_salt text")
        tx.execute("UPDATE brands SET shop_api_secret = 'refresh-secret'")
        tx.execute("UPDATE api_keys SET key_salt = 'salt-secret'")
    try:
        response = client.get("/v1/brand/export", headers=auth(shop["admin"]))
        archive = read_archive(response)
        everything = b"".join(archive.read(name) for name in archive.namelist())
    finally:
        with database.transaction() as tx:
            tx.execute("ALTER TABLE brands DROP COLUMN shop_api_secret")
            tx.execute("ALTER TABLE api_keys DROP COLUMN key_salt")

    assert b"refresh-secret" not in everything
    assert b"salt-secret" not in everything
    assert json.loads(archive.read("brand.json"))["slug"] == "leaving-goods"


def test_every_column_of_brands_and_keys_is_exported_or_withheld(runtime):
    """A new column must be put in the export or named withheld (data_export.py)."""
    with runtime.database.transaction() as tx:
        columns = tx.rows(COLUMNS)
    for table, exported, withheld in (
        ("brands", data_export.BRAND_COLUMNS, data_export.BRAND_WITHHELD),
        ("api_keys", data_export.API_KEY_COLUMNS, data_export.API_KEY_WITHHELD),
    ):
        named = {row["column_name"] for row in columns if row["name"] == table}
        assert not set(exported) & set(withheld), table
        assert named == set(exported) | set(withheld), table


def test_the_export_reads_page_after_page_and_misses_no_row(runtime):
    brand_id = make_brand(runtime, "paged", None, products=7)
    with runtime.database.transaction() as tx:
        for hours in range(5):
            for post in tx.rows("SELECT id FROM posts WHERE brand_id = :b", b=brand_id):
                tx.execute(
                    "INSERT INTO metric_snapshots (post_id, captured_at, impressions, "
                    "likes, reposts, replies, quotes, bookmarks) VALUES (:p, :at, 1, "
                    "0, 0, 0, 0, 0)",
                    p=post["id"],
                    at=START + dt.timedelta(hours=hours),
                )
        posts = tx.scalar("SELECT count(*) FROM posts WHERE brand_id = :b", b=brand_id)

    chunks = data_export.stream_archive(
        runtime.database, brand_id=brand_id, now=START, page_rows=2, posts_per_batch=3
    )
    archive = zipfile.ZipFile(io.BytesIO(b"".join(chunks)))

    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["files"]["products.jsonl"]["rows"] == 7
    assert manifest["files"]["posts.jsonl"]["rows"] == posts
    snapshots = jsonl(archive, "metric_snapshots.jsonl")
    assert len(snapshots) == 5 * posts
    assert len({(row["post_id"], row["captured_at"]) for row in snapshots}) == len(
        snapshots
    )


def test_only_an_admin_key_may_export(client, shop):
    response = client.get("/v1/brand/export", headers=auth(shop["viewer"]))

    assert response.status_code == 403
    assert "admin" in response.get_json()["error"]["message"]
    assert client.get("/v1/brand/export?since=2026").status_code == 401
    answer = client.get("/v1/brand/export?since=2026", headers=auth(shop["admin"]))
    assert answer.status_code == 400
    assert answer.get_json()["error"]["field"] == "since"
    assert answer.get_json()["error"]["message"].endswith("it takes none")


# An author's data


def test_an_authors_data_is_removed_by_id_and_the_triage_figures_stay(client, shop):
    database = _database(client)
    first = store_mention(database, shop["id"], FAN, escalated=True)
    store_mention(database, shop["id"], FAN, posted_at=START - DAY)
    kept = store_mention(database, shop["id"], OTHER, escalated=True)

    response = post_json(
        client, "/v1/author-data-removals", {"x_user_id": FAN["id"]}, shop["admin"]
    )

    assert response.status_code == 200, response.get_json()
    removal = response.get_json()["removal"]
    assert (removal["mentions"], removal["escalations"]) == (2, 1)
    assert removal["matched_by"] == "x_user_id"
    assert removal["requested_by"] == "admin"
    with database.transaction() as tx:
        mention = tx.one("SELECT * FROM mentions WHERE id = :id", id=first)
        escalations = tx.rows("SELECT mention_id FROM escalation_outbox")
        record = tx.one("SELECT CAST(r AS text) AS t FROM author_data_removals r")
    assert mention["text"] == "" and mention["author_id"] == ""
    assert mention["author_username"] is None and mention["author_name"] is None
    assert mention["author_followers"] is None and mention["conversation_id"] is None
    assert mention["x_post_id"] == f"removed:{first}"
    assert (mention["sentiment"], mention["intent"], mention["priority"]) == (
        "negative",
        "complaint",
        2,
    )
    assert [str(row["mention_id"]) for row in escalations] == [kept]
    assert FAN["id"] not in record["t"] and FAN["username"] not in record["t"]


def test_the_removed_authors_id_goes_from_the_mentions_that_answer_them(client, shop):
    database = _database(client)
    store_mention(database, shop["id"], FAN)
    answer = store_mention(database, shop["id"], OTHER, text="@Fan_One agreed")
    to_brand = store_mention(database, shop["id"], OTHER, text="@leaving hi")
    with database.transaction() as tx:
        tx.execute(
            "UPDATE mentions SET in_reply_to_user_id = :to WHERE id = :id",
            to=FAN["id"],
            id=answer,
        )
        tx.execute(
            "UPDATE mentions SET in_reply_to_user_id = '1500' WHERE id = :id",
            id=to_brand,
        )

    post_json(
        client, "/v1/author-data-removals", {"username": "fan_one"}, shop["admin"]
    )

    with database.transaction() as tx:
        holding = rows_holding(tx, FAN["id"])
        replying = tx.scalar(
            "SELECT in_reply_to_user_id FROM mentions WHERE id = :id", id=to_brand
        )
    # Named by handle, the person's X id is found on their mentions and goes too.
    assert {row["name"]: row["n"] for row in holding if row["n"]} == {}
    assert replying == "1500"


def test_a_removal_keeps_only_the_x_ids_a_poll_could_still_read_and_not_for_ever(
    client, shop
):
    database = _database(client)
    recent = store_mention(database, shop["id"], FAN, posted_at=START - DAY)
    store_mention(database, shop["id"], FAN, posted_at=START - 30 * DAY)
    store_mention(database, shop["id"], OTHER, posted_at=START - DAY)
    with database.transaction() as tx:
        recent_x_id = tx.scalar(
            "SELECT x_post_id FROM mentions WHERE id = :id", id=recent
        )

    removal = post_json(
        client, "/v1/author-data-removals", {"username": "@fan_one"}, shop["admin"]
    )

    assert removal.get_json()["removal"]["mentions"] == 2
    with database.transaction() as tx:
        kept = tx.rows("SELECT x_post_id, forget_after FROM removed_mention_ids")
    # Only the mention a poll could read again; kept as long as a read reaches it.
    reach = removed_mentions.reread_reach(_runtime().settings)
    assert kept == [{"x_post_id": recent_x_id, "forget_after": START - DAY + reach}]

    just_before = START - DAY + reach - dt.timedelta(seconds=1)
    early = retention.sweep_removed_mention_ids(_runtime(), now=just_before)
    due = retention.sweep_removed_mention_ids(_runtime(), now=START - DAY + reach)

    assert early == {"removed_mention_ids_forgotten": 0}
    assert due == {"removed_mention_ids_forgotten": 1}
    with database.transaction() as tx:
        assert tx.scalar("SELECT count(*) FROM removed_mention_ids") == 0


def _runtime():
    from cartcast import runtime as runtime_module

    return runtime_module.current()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"x_user_id": "1800000000000000001"}, "x_user_id"),
        ({"username": "@Leaving"}, "username"),
    ],
)
def test_the_brands_own_account_is_no_author_to_remove(client, shop, body, field):
    database = _database(client)
    with database.transaction() as tx:
        tx.execute(
            "UPDATE brands SET x_user_id = '1800000000000000001', "
            "x_username = 'leaving' WHERE id = :id",
            id=shop["id"],
        )
    answer = store_mention(database, shop["id"], OTHER, text="hi")
    with database.transaction() as tx:
        tx.execute("UPDATE mentions SET in_reply_to_user_id = '1800000000000000001'")

    response = post_json(client, "/v1/author-data-removals", body, shop["admin"])

    # Its replies would stop counting as summoned, and its own posts would go.
    assert response.status_code == 409
    assert response.get_json()["error"]["field"] == field
    with database.transaction() as tx:
        replying = tx.scalar(
            "SELECT in_reply_to_user_id FROM mentions WHERE id = :id", id=answer
        )
        assert tx.scalar("SELECT count(*) FROM author_data_removals") == 0
    assert replying == "1800000000000000001"


def test_removing_an_author_again_finds_nothing_and_says_so(client, shop):
    database = _database(client)
    store_mention(database, shop["id"], FAN)
    body = {"username": "@fan_one"}

    first = post_json(client, "/v1/author-data-removals", body, shop["admin"])
    again = post_json(client, "/v1/author-data-removals", body, shop["admin"])

    assert first.get_json()["removal"]["mentions"] == 1
    assert first.get_json()["removal"]["matched_by"] == "username"
    assert again.status_code == 200
    assert again.get_json()["removal"]["mentions"] == 0
    listed = client.get("/v1/author-data-removals", headers=auth(shop["admin"]))
    assert [row["mentions"] for row in listed.get_json()["removals"]] == [0, 1]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "x_user_id"),
        ({"x_user_id": FAN["id"], "username": "fan"}, "username"),
        ({"x_user_id": 4242}, "x_user_id"),
        ({"x_user_id": None}, "x_user_id"),
        ({"x_user_id": None, "username": "fan_one"}, "username"),
        ({"x_user_id": "12a"}, "x_user_id"),
        # X writes its ids without leading zeros: "0" + the id matches nobody.
        ({"x_user_id": "0" + FAN["id"]}, "x_user_id"),
        ({"username": "not a handle"}, "username"),
        ({"username": "@" + "a" * 16}, "username"),
        ({"handle": "fan"}, "handle"),
    ],
)
def test_a_removal_that_names_no_author_plainly_is_refused(client, shop, body, field):
    database = _database(client)
    store_mention(database, shop["id"], FAN)

    response = post_json(client, "/v1/author-data-removals", body, shop["admin"])

    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == field
    with database.transaction() as tx:
        assert tx.scalar("SELECT count(*) FROM author_data_removals") == 0
        assert tx.scalar("SELECT count(*) FROM mentions WHERE text = ''") == 0


def test_only_an_admin_key_removes_an_authors_data(client, shop):
    body = {"x_user_id": FAN["id"]}

    response = post_json(client, "/v1/author-data-removals", body, shop["viewer"])

    assert response.status_code == 403


def test_an_authors_removal_cancels_the_replies_to_them_x_has_not_been_handed(
    client, shop
):
    # Arrange: the brand answered three of the person's mentions and one of
    # someone else's; one reply to the person is held, one is being published.
    database = _database(client)
    with database.transaction() as tx:
        tx.execute(
            "UPDATE brands SET x_username = 'leaving' WHERE id = :id", id=shop["id"]
        )
    mentions = [store_mention(database, shop["id"], FAN) for _ in range(3)]
    mentions.append(store_mention(database, shop["id"], OTHER))
    replies = []
    for mention_id in mentions:
        answer = post_json(
            client,
            f"/v1/mentions/{mention_id}/reply",
            {"text": "Sorry to hear that, we are on it"},
            shop["admin"],
        )
        assert answer.status_code == 202, answer.get_json()
        replies.append(answer.get_json()["post"]["id"])
    queued, held, publishing, others = replies
    with database.transaction() as tx:
        tx.execute("UPDATE posts SET state = 'held' WHERE id = :id", id=held)
        tx.execute(
            "UPDATE posts SET state = 'publishing' WHERE id = :id", id=publishing
        )

    # Act
    response = post_json(
        client, "/v1/author-data-removals", {"x_user_id": FAN["id"]}, shop["admin"]
    )
    again = post_json(
        client, "/v1/author-data-removals", {"x_user_id": FAN["id"]}, shop["admin"]
    )

    # Assert: the two not handed to X are cancelled with the reason, by the key.
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["removal"]["replies_cancelled"] == 2
    assert again.get_json()["removal"]["replies_cancelled"] == 0
    with database.transaction() as tx:
        found = {
            str(row["id"]): row
            for row in tx.rows("SELECT id, state, failure_reason FROM posts")
        }
    assert [found[post]["state"] for post in replies] == [
        "cancelled",
        "cancelled",
        "publishing",  # X may have it already: left to finish
        "scheduled",  # someone else's mention
    ]
    assert found[queued]["failure_reason"] == author_data.REPLY_CANCEL_REASON
    events = client.get(
        f"/v1/posts/{queued}/events", headers=auth(shop["admin"])
    ).get_json()["events"]
    assert (events[-1]["to_state"], events[-1]["actor"], events[-1]["reason"]) == (
        "cancelled",
        "admin",
        author_data.REPLY_CANCEL_REASON,
    )
    listed = client.get("/v1/author-data-removals", headers=auth(shop["admin"]))
    assert [r["replies_cancelled"] for r in listed.get_json()["removals"]] == [0, 2]


def queue_reply(runtime, sandbox, brand_id: str, author: dict[str, str]) -> str:
    """Queue the brand's reply to a new mention of ALPHA by `author` on the X
    sandbox, due now; return the reply's id."""
    from cartcast import inbox

    mention_id = store_mention(runtime.database, brand_id, author)
    on_x = sandbox.add_mention(
        to_user_id=ALPHA["user_id"], text="@alpha my parcel never came", author=author
    )
    now = runtime.clock.now()
    with runtime.database.transaction() as tx:
        tx.execute(
            "UPDATE mentions SET x_post_id = :x, conversation_id = :x WHERE id = :id",
            x=on_x,
            id=mention_id,
        )
        mention = tx.one("SELECT x_post_id FROM mentions WHERE id = :id", id=mention_id)
        post_id = str(
            tx.scalar(
                inbox.INSERT_REPLY,
                id=str(uuid.uuid4()),
                brand_id=brand_id,
                text="Sorry to hear that, we are on it",
                weighted_length=32,
                now=now,
                in_reply_to=mention["x_post_id"],
                conversation_id=mention["x_post_id"],
                actor="admin",
            )
        )
        tx.execute(
            inbox.MARK_REPLIED, id=mention_id, post_id=post_id, now=now, actor="admin"
        )
    return post_id


def test_a_reply_out_when_its_author_asks_for_removal_is_never_sent_once_it_is_back(
    x_runtime, x_sandbox
):
    # Arrange: the brand's only due post is a reply to the person; X holds, then
    # refuses with a 503, the publisher's request for it.
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)
    with x_runtime.database.transaction() as tx:
        tx.execute(
            "UPDATE posts SET scheduled_at = :later", later=START.replace(year=2099)
        )
    reply = queue_reply(x_runtime, x_sandbox, brand_id, FAN)
    x_sandbox.add_fault(method="POST", path_prefix="/2/tweets", status=503, hold=True)
    running = threading.Thread(
        target=lambda: publishing.publish_due(x_runtime, as_of=x_runtime.clock.now())
    )

    # Act: the person asks while the reply is out; X's answer then says it did not
    # take it, and later runs come, past any retry's wait.
    running.start()
    try:
        wait_until(lambda: tweets_sent(x_sandbox), "the reply to reach X")
        with x_runtime.database.transaction() as tx:
            removal = author_data.remove_author_data(
                tx,
                brand_id=brand_id,
                body={"x_user_id": FAN["id"]},
                actor="admin",
                now=x_runtime.clock.now(),
                reread_reach=removed_mentions.reread_reach(x_runtime.settings),
            )
    finally:
        x_sandbox.release_answers()
        running.join(60)
    for _ in range(3):
        x_runtime.clock.advance(dt.timedelta(hours=1))
        publishing.publish_due(x_runtime, as_of=x_runtime.clock.now())

    # Assert: X was asked once, and the reply is cancelled with the removal's
    # reason instead of going out to the person later.
    assert removal["replies_cancelled"] == 0  # it was out when the request came
    assert tweets_sent(x_sandbox) == 1
    with x_runtime.database.transaction() as tx:
        post = tx.one(
            "SELECT state, failure_reason FROM posts WHERE id = :id", id=reply
        )
    assert (post["state"], post["failure_reason"]) == (
        "cancelled",
        author_data.REPLY_CANCEL_REASON,
    )


def test_a_reply_on_x_when_its_author_asks_for_removal_stays_published_once(
    x_runtime, x_sandbox
):
    # Arrange: X takes the reply but holds its answer.
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1)
    with x_runtime.database.transaction() as tx:
        tx.execute(
            "UPDATE posts SET scheduled_at = :later", later=START.replace(year=2099)
        )
    reply = queue_reply(x_runtime, x_sandbox, brand_id, FAN)
    x_sandbox.add_fault(method="POST", path_prefix="/2/tweets", hold=True)
    running = threading.Thread(
        target=lambda: publishing.publish_due(x_runtime, as_of=x_runtime.clock.now())
    )

    # Act
    running.start()
    try:
        wait_until(lambda: tweets_sent(x_sandbox), "the reply to reach X")
        with x_runtime.database.transaction() as tx:
            author_data.remove_author_data(
                tx,
                brand_id=brand_id,
                body={"x_user_id": FAN["id"]},
                actor="admin",
                now=x_runtime.clock.now(),
                reread_reach=removed_mentions.reread_reach(x_runtime.settings),
            )
    finally:
        x_sandbox.release_answers()
        running.join(60)
    x_runtime.clock.advance(dt.timedelta(hours=1))
    reconciling.reconcile_then_publish(x_runtime, as_of=x_runtime.clock.now())

    # Assert: what X has is recorded, once; nothing is taken back or sent again.
    assert tweets_sent(x_sandbox) == 1
    with x_runtime.database.transaction() as tx:
        state = tx.scalar("SELECT state FROM posts WHERE id = :id", id=reply)
    assert state == "published"


# Offboarding


def test_offboarding_stops_publishing_and_polling_at_once(client, shop, runtime):
    database = _database(client)
    brand_id = make_brand(runtime, "queued", {"user_id": "1700000000000000001"})
    admin = _key(client, brand_id, "admin", name="owner")
    with database.transaction() as tx:
        assert brand_id in {str(b["id"]) for b in accounts.connected_brands(tx)}

    response = post_json(
        client, "/v1/brand/offboarding", {"keep_daily_kpis": True}, admin
    )

    assert response.status_code == 202, response.get_json()
    state = response.get_json()
    assert state["offboarding"] is True and state["keep_daily_kpis"] is True
    assert state["posts_held"] == 2
    assert state["delete_at"] == (START + 30 * DAY).isoformat()
    with database.transaction() as tx:
        assert brand_id not in {str(b["id"]) for b in accounts.connected_brands(tx)}
        reasons = tx.rows(
            "SELECT state, failure_reason FROM posts WHERE brand_id = :b", b=brand_id
        )
    assert {row["state"] for row in reasons} == {"held"}
    assert all(row["failure_reason"].startswith("offboarding: ") for row in reasons)


def test_a_thread_half_on_x_sends_no_further_part_once_the_brand_asks_to_leave(
    x_runtime, x_sandbox
):
    brand_id = make_brand(x_runtime, "alpha", ALPHA, products=1, kind="thread")
    with x_runtime.database.transaction() as tx:
        parts = tx.scalar("SELECT count(*) FROM post_parts")
        due = tx.scalar("SELECT max(scheduled_at) FROM posts")
    assert parts >= 2
    # X holds its answer to the first part while the brand asks to leave.
    x_sandbox.add_fault(method="POST", path_prefix="/2/tweets", hold=True)
    running = threading.Thread(
        target=lambda: publishing.publish_due(x_runtime, as_of=due)
    )
    running.start()
    try:
        wait_until(lambda: tweets_sent(x_sandbox), "X to take the first part")
        with x_runtime.database.transaction() as tx:
            offboarding.request_offboarding(
                tx,
                brand_id=brand_id,
                actor="admin",
                keep_daily_kpis=False,
                grace_days=30,
                now=x_runtime.clock.now(),
            )
    finally:
        x_sandbox.release_answers()
        running.join(60)

    assert tweets_sent(x_sandbox) == 1


@pytest.mark.parametrize("call", ["offboarding", "offboarding/cancel"])
def test_offboarding_lets_a_post_change_log_itself_while_it_waits_on_the_post(
    client, runtime, call
):
    """Offboarding (and its cancel) locks the brand, then holds (releases) its
    queued posts. An approval or edit takes its post's row first, then logs it
    (post_events, by trigger), whose foreign key takes KEY SHARE on the brand: a
    FOR UPDATE brand lock refused that share while it waited on that very post,
    and PostgreSQL ended one of the two as a deadlock (posts.py and crisis.py
    met the same)."""
    brand_id = make_brand(runtime, "racing", {"user_id": "1700000000000000002"})
    admin = _key(client, brand_id, "admin", name="owner")
    if call == "offboarding/cancel":
        assert post_json(client, "/v1/brand/offboarding", {}, admin).status_code == 202
    answers = []
    offboard = threading.Thread(
        target=lambda: answers.append(post_json(client, f"/v1/brand/{call}", {}, admin))
    )

    # The post change, by hand: its row lock, then its log's foreign-key check.
    with runtime.database.transaction() as tx:
        tx.one(
            "SELECT id FROM posts WHERE brand_id = :b ORDER BY id LIMIT 1 FOR UPDATE",
            b=brand_id,
        )
        offboard.start()
        wait_until(
            lambda: _someone_waits_on_a_lock(runtime), "offboarding to wait on the post"
        )
        tx.one("SELECT 1 FROM brands WHERE id = :b FOR KEY SHARE", b=brand_id)
    offboard.join(timeout=60)

    (answer,) = answers
    assert answer.status_code in (200, 202), answer.get_data(as_text=True)


def _someone_waits_on_a_lock(runtime) -> bool:
    with runtime.database.transaction() as tx:
        return bool(tx.scalar(WAITING_ON_A_LOCK))


def test_a_post_scheduled_during_the_grace_period_is_held_and_cancel_queues_all(
    client, runtime
):
    database = _database(client)
    brand_id = make_brand(runtime, "changes-mind", None)
    admin = _key(client, brand_id, "admin", name="owner")
    post_json(client, "/v1/brand/offboarding", {}, admin)
    with database.transaction() as tx:
        tx.execute(
            "UPDATE posts SET state = 'scheduled', failure_reason = NULL "
            "WHERE id = (SELECT id FROM posts WHERE brand_id = :b LIMIT 1)",
            b=brand_id,
        )

    with database.transaction() as tx:
        held = offboarding.hold_while_offboarding(tx, now=runtime.clock.now())
    cancelled = client.post("/v1/brand/offboarding/cancel", headers=auth(admin))

    assert held == 1
    assert cancelled.status_code == 200
    assert cancelled.get_json()["posts_released"] == 2
    assert cancelled.get_json()["offboarding"] is False
    with database.transaction() as tx:
        states = tx.rows("SELECT state FROM posts WHERE brand_id = :b", b=brand_id)
    assert {row["state"] for row in states} == {"scheduled"}
    again = client.post("/v1/brand/offboarding/cancel", headers=auth(admin))
    assert again.status_code == 409


def test_asking_twice_or_with_a_bad_body_or_role_is_refused(client, shop):
    path = "/v1/brand/offboarding"

    bad = post_json(client, path, {"keep_daily_kpis": "yes"}, shop["admin"])
    unknown = post_json(client, path, {"keep": True}, shop["admin"])
    viewer = post_json(client, path, {}, shop["viewer"])
    first = post_json(client, path, {}, shop["admin"])
    second = post_json(client, path, {}, shop["admin"])

    assert bad.status_code == 400
    assert bad.get_json()["error"]["field"] == "keep_daily_kpis"
    assert unknown.status_code == 400
    assert viewer.status_code == 403
    assert first.status_code == 202
    assert second.status_code == 409
    state = client.get(path, headers=auth(shop["viewer"])).get_json()
    assert state["requested_by"] == "admin" and state["keep_daily_kpis"] is False


def test_keys_stop_working_once_the_grace_period_is_over(client, shop, clock_file):
    post_json(client, "/v1/brand/offboarding", {}, shop["admin"])
    clock_file.set(START + 30 * DAY - dt.timedelta(seconds=1))
    during = client.get("/v1/brand", headers=auth(shop["viewer"]))

    clock_file.set(START + 30 * DAY)
    after = client.get("/v1/brand", headers=auth(shop["admin"]))

    assert during.status_code == 200
    assert after.status_code == 401


@pytest.mark.parametrize("keep_daily_kpis", [False, True])
def test_an_offboarding_run_leaves_no_row_of_the_brand_but_what_it_kept(
    client, shop, runtime, keep_daily_kpis
):
    database = _database(client)
    filled = fill_brand(database, shop["id"])
    staying = post_json(client, "/v1/brands", brand_body(slug="staying"), OPERATOR_KEY)
    staying_id = str(staying.get_json()["brand"]["id"])
    staying_rows = fill_brand(database, staying_id)
    with database.transaction() as tx:
        needles = [shop["id"], "leaving-goods", "secret-x-token"]
        for query in (
            "SELECT id FROM posts WHERE brand_id = :b",
            "SELECT id FROM products WHERE brand_id = :b",
            "SELECT id FROM mentions WHERE brand_id = :b",
            "SELECT id FROM orders WHERE brand_id = :b",
            "SELECT id FROM caption_jobs WHERE brand_id = :b",
            "SELECT id FROM api_keys WHERE brand_id = :b",
        ):
            needles += [str(row["id"]) for row in tx.rows(query, b=shop["id"])]
    pattern = "|".join(re.escape(needle) for needle in needles)
    written = {name for name, count in filled.items() if count}
    assert written >= {
        "brands", "api_keys", "products", "posts", "post_events", "mentions",
        "escalation_outbox", "orders", "daily_kpis", "account_snapshots",
        "cost_ledger", "x_post_intents", "caption_jobs", "alert_outbox", "crises",
        "author_data_removals", "kpi_marks", "x_oauth_states", "audit_events",
        "removed_mention_ids",
    }  # fmt: skip
    post_json(
        client,
        "/v1/brand/offboarding",
        {"keep_daily_kpis": keep_daily_kpis},
        shop["admin"],
    )

    early = offboarding.sweep_due_offboardings(runtime, now=START + 29 * DAY)
    swept = offboarding.sweep_due_offboardings(runtime, now=START + 30 * DAY)
    again = offboarding.sweep_due_offboardings(runtime, now=START + 31 * DAY)

    assert (early["offboarded"], swept["offboarded"], again["offboarded"]) == (0, 1, 0)
    assert swept["offboarding_batches"] > 1
    with database.transaction() as tx:
        left = {row["name"]: row["n"] for row in rows_holding(tx, pattern)}
        after_staying = {row["name"]: row["n"] for row in rows_holding(tx, staying_id)}
        kept_brand = tx.one("SELECT * FROM brands WHERE id = :id", id=shop["id"])
        revenue = tx.rows(
            "SELECT CAST(revenue AS text) AS r FROM daily_kpis WHERE brand_id = :b "
            "ORDER BY day",
            b=shop["id"],
        )
    expected = {"brands": 1, "daily_kpis": 2} if keep_daily_kpis else {}
    assert {name: n for name, n in left.items() if n} == expected
    assert after_staying == staying_rows
    if keep_daily_kpis:
        assert [row["r"] for row in revenue] == ["10.10", "42.50"]
        assert kept_brand["slug"] == offboarding.stripped_slug(shop["id"])
        assert kept_brand["x_user_id"] is None and kept_brand["x_access_token"] is None
        assert kept_brand["offboarded_at"] == START + 30 * DAY
        # The brand's slug is free for a new sign-up.
        back = post_json(client, "/v1/brands", brand_body(slug="leaving-goods"),
                         OPERATOR_KEY)  # fmt: skip
        assert back.status_code == 201, back.get_json()
    else:
        assert kept_brand is None


@pytest.mark.parametrize(
    "body",
    [{"slug": "offboarded-{hex}"}, {"name": "Offboarded {hex}", "slug": None}],
    ids=["slug", "name"],
)
def test_no_new_brand_takes_the_slug_a_kept_brand_row_is_written_back_with(
    client, shop, runtime, body
):
    # The sweeper writes a brand that keeps its KPIs back as `offboarded-<id>`; a
    # brand that held that slug first made the write-back fail at every tick, and
    # the leaving brand's data stayed.
    hex_id = shop["id"].replace("-", "")
    taking = brand_body(x_user_id=None, x_username=None)
    for field, value in body.items():
        if value is None:
            taking.pop(field)
        else:
            taking[field] = value.format(hex=hex_id)
    post_json(client, "/v1/brand/offboarding", {"keep_daily_kpis": True}, shop["admin"])

    refused = post_json(client, "/v1/brands", taking, OPERATOR_KEY)
    swept = offboarding.sweep_due_offboardings(runtime, now=START + 30 * DAY)

    assert refused.status_code == 400, refused.get_json()
    assert refused.get_json()["error"]["field"] == "slug"
    assert "offboarded-" in refused.get_json()["error"]["message"]
    assert (swept["offboarded"], swept["offboarding_failed"]) == (1, 0)


def test_a_brand_whose_deletion_fails_holds_up_no_other_brand(client, shop, runtime):
    database = _database(client)
    fill_brand(database, shop["id"])
    other = make_brand(runtime, "also-leaving", None)
    with database.transaction() as tx:
        for brand_id in (shop["id"], other):
            offboarding.request_offboarding(
                tx,
                brand_id=brand_id,
                actor="admin",
                keep_daily_kpis=False,
                grace_days=30,
                now=START,
            )
        # The first brand due cannot be deleted (as a statement past the socket's
        # timeout, or a foreign key added without a cascade, would make it).
        tx.execute(
            "CREATE FUNCTION refuse_delete() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'cannot delete this order'; END $$"
        )
        tx.execute(
            "CREATE TRIGGER refuse_delete BEFORE DELETE ON orders "
            "FOR EACH ROW EXECUTE FUNCTION refuse_delete()"
        )
        tx.execute(
            "UPDATE brands SET offboarding_due_at = offboarding_due_at - "
            "interval '1 second' WHERE id = :id",
            id=shop["id"],
        )
    try:
        swept = offboarding.sweep_due_offboardings(runtime, now=START + 30 * DAY)
    finally:
        with database.transaction() as tx:
            tx.execute("DROP TRIGGER refuse_delete ON orders")
            tx.execute("DROP FUNCTION refuse_delete()")

    assert (swept["offboarded"], swept["offboarding_failed"]) == (1, 1)
    with database.transaction() as tx:
        left = {str(row["id"]) for row in tx.rows("SELECT id FROM brands")}
    assert left == {shop["id"]}
    again = offboarding.sweep_due_offboardings(runtime, now=START + 30 * DAY)
    assert (again["offboarded"], again["offboarding_failed"]) == (1, 0)


def test_a_write_landing_after_the_offboarding_never_rewrites_a_kept_day(
    client, shop, runtime
):
    database = _database(client)
    fill_brand(database, shop["id"])
    post_json(client, "/v1/brand/offboarding", {"keep_daily_kpis": True}, shop["admin"])
    swept = offboarding.sweep_due_offboardings(runtime, now=START + 30 * DAY)
    assert swept["offboarded"] == 1
    with database.transaction() as tx:
        # A caption job's Gemini call that was out during the sweep records its
        # cost on the brand's id, which the kept row still holds.
        costs.record(
            tx,
            brand_id=shop["id"],
            occurred_at=START,
            operation="caption",
            units=1,
            usd=Decimal("0.002"),
            ref="late-call",
            service="gemini",
        )

    kpis.recompute_in_chunks(database, now=START + 30 * DAY)

    with database.transaction() as tx:
        revenue = tx.rows(
            "SELECT CAST(revenue AS text) AS r FROM daily_kpis WHERE brand_id = :b "
            "ORDER BY day",
            b=shop["id"],
        )
        marks = tx.scalar("SELECT count(*) FROM kpi_marks")
    assert [row["r"] for row in revenue] == ["10.10", "42.50"]
    assert marks == 0


def test_every_table_goes_with_its_brand_or_holds_no_brand(runtime):
    """A new table must cascade from brands, or be named here as deployment-wide."""
    with runtime.database.transaction() as tx:
        foreign_keys = tx.rows(FOREIGN_KEYS)
        columns = tx.rows(COLUMNS)
    refers: dict[str, set[tuple[str, str]]] = {}
    for row in foreign_keys:
        refers.setdefault(row["name"], set())
        if row["refers_to"] is not None:
            refers[row["name"]].add((row["refers_to"], row["delete_rule"]))
    with_brand_column = {
        row["name"] for row in columns if row["column_name"] == "brand_id"
    }

    def goes_with_brand(table: str, seen: frozenset = frozenset()) -> bool:
        if table == "brands":
            return True
        return any(
            rule == "CASCADE" and parent not in seen
            and goes_with_brand(parent, seen | {table})
            for parent, rule in refers.get(table, ())
        )  # fmt: skip

    problems = [
        table
        for table in refers
        if table not in DEPLOYMENT_WIDE | BRAND_WITHOUT_FOREIGN_KEY
        and not goes_with_brand(table)
    ]
    assert problems == []
    assert (
        with_brand_column - {"brands"}
        <= {table for table in refers if goes_with_brand(table)}
        | BRAND_WITHOUT_FOREIGN_KEY
    )
    assert not any(goes_with_brand(table) for table in DEPLOYMENT_WIDE)


# What a brand holds that its archive leaves out, and why (data_export.py).
NOT_EXPORTED = {
    "kpi_marks": "the rollup's bookkeeping",
    "x_post_intents": "the post windows' bookkeeping; the attempts are exported",
    "caption_jobs": "work in progress; its drafts are the posts",
    "caption_job_items": "work in progress; its drafts are the posts",
    "catalog_imports": "work in progress; what it stored are the products",
    "catalog_import_items": "work in progress; what it stored are the products",
    "escalation_outbox": "copies of mentions queued for the brand's CRM",
    "alert_outbox": "copies of alerts queued for the brand's webhook",
    "author_data_removals": "a log of requests, not the brand's content",
    "removed_mention_ids": "removed authors' X ids, kept only so no poll stores "
    "them anew",
    "x_oauth_states": "a connection's one-time secrets",
    "cancelled_orders": "the store's ids and names of cancelled orders, kept only "
    "so no late creation stores them anew",
    "pending_refunds": "refunds waiting for an order not stored; the store keeps "
    "them, and once taken off an order they are in its refunds",
}


def test_every_table_of_a_brand_is_exported_or_named_left_out(runtime):
    """A new table of a brand's data must get a file, or a reason it has none."""
    with runtime.database.transaction() as tx:
        foreign_keys = tx.rows(FOREIGN_KEYS)
    refers: dict[str, set[str]] = {}
    for row in foreign_keys:
        if row["refers_to"] is not None and row["delete_rule"] == "CASCADE":
            refers.setdefault(row["name"], set()).add(row["refers_to"])

    def of_a_brand(table: str, seen: frozenset = frozenset()) -> bool:
        parents = refers.get(table, set()) - seen
        return "brands" in parents or any(
            of_a_brand(parent, seen | {table}) for parent in parents
        )

    tables = {name for name in refers if of_a_brand(name)} | {"kpi_marks"}
    exported = {export.name.removesuffix(".jsonl") for export in data_export.FILES}
    assert tables - exported - set(NOT_EXPORTED) == set()
    assert not exported & set(NOT_EXPORTED)


# Retention


def test_a_brand_sets_how_long_it_keeps_mention_texts_within_the_maximum(client, shop):
    path = "/v1/brand/retention"

    default = client.get(path, headers=auth(shop["viewer"])).get_json()
    changed = client.patch(
        path,
        json={"mention_text_days": 90},
        headers=auth(shop["admin"]),
    )
    too_long = client.patch(
        path, json={"mention_text_days": 731}, headers=auth(shop["admin"])
    )
    as_viewer = client.patch(
        path, json={"mention_text_days": 30}, headers=auth(shop["viewer"])
    )
    back = client.patch(
        path, json={"mention_text_days": None}, headers=auth(shop["admin"])
    )

    assert default["mention_text_days"] is None
    assert default["effective_mention_text_days"] == 365
    assert changed.status_code == 200
    assert changed.get_json()["effective_mention_text_days"] == 90
    assert too_long.status_code == 400
    assert too_long.get_json()["error"]["field"] == "mention_text_days"
    assert as_viewer.status_code == 403
    assert back.get_json()["effective_mention_text_days"] == 365


@pytest.mark.parametrize("days", [0, -1, 1.5, True, "30"])
def test_a_retention_that_is_no_whole_number_of_days_is_refused(client, shop, days):
    response = client.patch(
        "/v1/brand/retention",
        json={"mention_text_days": days},
        headers=auth(shop["admin"]),
    )

    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "mention_text_days"


def test_the_sweeper_removes_old_texts_and_keeps_the_triage(runtime):
    brand_id = make_brand(runtime, "keeper", None, products=1)
    with runtime.database.transaction() as tx:
        tx.execute(
            "UPDATE brands SET mention_text_retention_days = 30 WHERE id = :b",
            b=brand_id,
        )
    old = store_mention(
        runtime.database, brand_id, FAN, posted_at=START - 31 * DAY, escalated=True
    )
    recent = store_mention(runtime.database, brand_id, FAN, posted_at=START - 29 * DAY)

    swept = retention.sweep_old_mention_texts(runtime, now=START)
    again = retention.sweep_old_mention_texts(runtime, now=START)

    assert swept == {"texts_removed": 1, "escalations_removed": 1}
    assert again == {"texts_removed": 0, "escalations_removed": 0}
    with runtime.database.transaction() as tx:
        rows = {
            str(row["id"]): row
            for row in tx.rows("SELECT * FROM mentions WHERE brand_id = :b", b=brand_id)
        }
    assert rows[old]["text"] == "" and rows[old]["text_removed_at"] == START
    assert rows[old]["sentiment"] == "negative" and rows[old]["priority"] == 2
    assert rows[old]["author_username"] == FAN["username"]
    assert rows[recent]["text"] != ""


def test_the_sweeper_clears_from_the_first_second_past_each_brands_window(runtime):
    # The sweep reads only the brands holding a text past their window: a brand
    # with none is passed over, and one second past the window is enough.
    quiet = make_brand(runtime, "quiet", None, products=1)
    due = make_brand(runtime, "due", None, products=1)
    with runtime.database.transaction() as tx:
        tx.execute(
            "UPDATE brands SET mention_text_retention_days = 30 WHERE id = :b",
            b=due,
        )
    default_days = runtime.settings.mention_text_retention_days
    at_edge = store_mention(
        runtime.database, quiet, FAN, posted_at=START - default_days * DAY
    )
    past = store_mention(
        runtime.database, due, FAN, posted_at=START - 30 * DAY - dt.timedelta(seconds=1)
    )
    on_edge = store_mention(runtime.database, due, FAN, posted_at=START - 30 * DAY)

    swept = retention.sweep_old_mention_texts(runtime, now=START)

    assert swept == {"texts_removed": 1, "escalations_removed": 0}
    with runtime.database.transaction() as tx:
        kept = {
            str(row["id"]): row["text"] != ""
            for row in tx.rows("SELECT id, text FROM mentions")
        }
    assert kept == {at_edge: True, past: False, on_edge: True}


def test_the_deployment_maximum_bounds_a_brands_longer_choice(runtime):
    brand_id = make_brand(runtime, "long-keeper", None, products=1)
    with runtime.database.transaction() as tx:
        tx.execute(
            "UPDATE brands SET mention_text_retention_days = 700 WHERE id = :b",
            b=brand_id,
        )
    store_mention(runtime.database, brand_id, FAN, posted_at=START - 101 * DAY)
    runtime.settings = dataclasses.replace(
        runtime.settings,
        mention_text_retention_days=30,
        mention_text_retention_max_days=100,
    )

    swept = retention.sweep_old_mention_texts(runtime, now=START)

    assert swept["texts_removed"] == 1


def test_the_retention_settings_are_bounded_and_consistent():
    base = {"DATABASE_URL": "postgresql://u@127.0.0.1/db"}
    loaded = settings_module.load(base)
    assert (loaded.offboarding_grace_days, loaded.mention_text_retention_days) == (
        30,
        365,
    )

    for extra, named in (
        ({"CARTCAST_OFFBOARDING_GRACE_DAYS": "0"}, "CARTCAST_OFFBOARDING_GRACE_DAYS"),
        ({"CARTCAST_OFFBOARDING_GRACE_DAYS": "366"}, "CARTCAST_OFFBOARDING_GRACE_DAYS"),
        (
            {"CARTCAST_MENTION_TEXT_RETENTION_DAYS": "800"},
            "CARTCAST_MENTION_TEXT_RETENTION_DAYS must not exceed",
        ),
        (
            {"CARTCAST_MENTION_TEXT_RETENTION_MAX_DAYS": "x"},
            "CARTCAST_MENTION_TEXT_RETENTION_MAX_DAYS",
        ),
    ):
        with pytest.raises(ConfigurationError, match=named):
            settings_module.load({**base, **extra})


# Through the functions


@pytest.fixture
def on_sandbox(function_env, monkeypatch, x_sandbox):
    monkeypatch.setenv("X_API_BASE_URL", x_sandbox.base_url)
    return x_sandbox


def tick(target: str, at: dt.datetime):
    from cartcast import events

    headers, body = events.envelope(
        topic=target, project="test", payload={}, message_id=uuid.uuid4().hex, time=at
    )
    client = make_app(target, "cloudevent").test_client()
    return client.post("/", headers=headers, data=json.dumps(body))


def test_a_leaving_brand_publishes_nothing_and_the_rollup_tick_deletes_it(
    client, on_sandbox, clock_file
):
    body = brand_body(
        slug="on-x", x_user_id=ALPHA["user_id"], x_username="alpha",
        x_access_token="token-alpha",
    )  # fmt: skip
    key = post_json(client, "/v1/brands", body, OPERATOR_KEY).get_json()["api_key"]
    post_json(client, "/v1/products", catalog(2), key)
    post_json(client, "/v1/captions", {"products": [p["sku"] for p in catalog(2)]}, key)
    post_json(client, "/v1/schedule", {}, key)
    assert post_json(client, "/v1/brand/offboarding", {}, key).status_code == 202
    database = _database(client)
    with database.transaction() as tx:
        # A post put back in the queue behind the offboarding's back.
        tx.execute("UPDATE posts SET state = 'scheduled' WHERE state = 'held'")

    week_later = START + 7 * DAY
    clock_file.set(week_later)
    published = tick("publish_due_posts", week_later)
    polled = tick("poll_mentions", week_later)
    with database.transaction() as tx:
        states = {row["state"] for row in tx.rows("SELECT state FROM posts")}
    past_grace = START + 30 * DAY
    clock_file.set(past_grace)
    rolled = tick("rollup_kpis", past_grace)

    assert (published.status_code, polled.status_code) == (200, 200)
    assert tweets_sent(on_sandbox) == 0
    assert states == {"held"}
    assert rolled.status_code == 200
    with database.transaction() as tx:
        assert tx.scalar("SELECT count(*) FROM brands") == 0
        assert tx.scalar("SELECT count(*) FROM posts") == 0


def test_an_offboarding_cut_into_batches_resumes_and_marks_no_kept_day(
    client, shop, runtime
):
    database = _database(client)
    fill_brand(database, shop["id"])
    post_json(client, "/v1/brand/offboarding", {"keep_daily_kpis": True}, shop["admin"])

    runs = []
    while not runs or not runs[-1]["offboarded"]:
        runs.append(
            offboarding.sweep_due_offboardings(
                runtime, now=START + 30 * DAY, batches_max=1
            )
        )
        with database.transaction() as tx:
            marks = tx.scalar(
                "SELECT count(*) FROM kpi_marks WHERE brand_id = :b", b=shop["id"]
            )
        assert marks == 0
        assert len(runs) < 10

    assert len(runs) >= 4  # posts, mentions, orders and ledger, then the brand
    with database.transaction() as tx:
        revenue = tx.rows(
            "SELECT CAST(revenue AS text) AS r FROM daily_kpis WHERE brand_id = :b "
            "ORDER BY day",
            b=shop["id"],
        )
        assert tx.scalar("SELECT count(*) FROM posts") == 0
    assert [row["r"] for row in revenue] == ["10.10", "42.50"]
