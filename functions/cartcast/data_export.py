"""A brand's data as one archive it can take away: a zip of JSON Lines files.

GET /v1/brand/export (admin keys) answers `cartcast-<slug>-export.zip`, holding one
`<table>.jsonl` file per kind of data (one JSON object per line, the table's own
columns) and, last, `manifest.json`: the archive's format version, the database's
schema version, when it was made, and each file's row count and columns. An
archive without its manifest was cut short and is incomplete.

The archive is streamed. Rows are read EXPORT_PAGE_ROWS at a time in key order
(keyset pages, never OFFSET), or for POSTS_PER_BATCH of the brand's posts at a time,
and compressed as they are written, so the function holds one page and the deflate
window, whatever the brand's size (decision 0032).
Each row is turned into JSON by PostgreSQL (`to_jsonb`), so numbers, times and ids
come out exactly as stored.

What is left out, and why:

- secrets and what grants access: the X token, the escalation and order webhook
  secrets and URLs (a Slack URL is its own secret), API key hashes;
- deployment-wide tables (handled events, Gemini quota, X app pauses) and the
  rollup's own bookkeeping (`kpi_marks`), which say nothing about the brand.

Metric snapshots are included: they are the brand's own figures from X, and daily
KPIs cannot be recomputed without them. They are the largest file by far.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import zipfile
from collections.abc import Iterator
from typing import Any

ARCHIVE_FORMAT = "cartcast-export/1"
EXPORT_PAGE_ROWS = 2000
# Bytes gathered before a chunk goes to the client.
CHUNK_BYTES = 256 * 1024

SELECT_SCHEMA_VERSION = "SELECT max(version) FROM schema_migrations"
# The brand's columns the archive holds, named one by one: a column added later (an
# OAuth refresh token, say) stays out until it is put here or in BRAND_WITHHELD,
# and a test refuses a column of `brands` in neither.
BRAND_COLUMNS = (
    "id", "slug", "name", "time_zone", "voice", "language", "banned_words",
    "required_hashtags", "store_base_url", "currency", "approvals_required",
    "posting_slots", "x_user_id", "x_username", "mentions_since_id", "created_at",
    "x_posts_paused_until", "x_reads_paused_until", "mentions_pending_newest_id",
    "disclosure_tag", "link_policy", "link_posts_per_month", "x_own_app",
    "monthly_x_budget_usd", "x_disconnected_at", "x_disconnected_reason",
    "mentions_poll_interval_s", "mentions_next_poll_at", "order_issue_due_min",
    "complaint_due_min", "question_due_min", "publishing_paused_at",
    "publishing_paused_by", "publishing_paused_reason", "offboarding_requested_at",
    "offboarding_requested_by", "offboarding_due_at", "offboarding_keeps_kpis",
    "offboarded_at", "mention_text_retention_days", "x_token_expires_at",
    "x_token_scopes", "mentions_resume_started_at", "mentions_resume_since_id",
)  # fmt: skip
# Secrets, and what grants access (a webhook URL is its own secret).
BRAND_WITHHELD = (
    "x_access_token", "x_refresh_token", "mentions_resume_token", "alert_webhook_url",
    "escalation_webhook_url", "escalation_secret", "order_webhook_secret",
)  # fmt: skip
API_KEY_COLUMNS = (
    "id", "brand_id", "name", "role", "key_prefix", "created_at", "revoked_at",
    "last_used_at",
)  # fmt: skip
API_KEY_WITHHELD = ("key_hash",)
SELECT_BRAND_ROW = """
SELECT CAST((SELECT jsonb_object_agg(c.key, c.value) FROM jsonb_each(to_jsonb(b)) c
    WHERE c.key = ANY(CAST(:columns AS text[]))) AS text) AS line
FROM brands b WHERE b.id = :brand_id
"""

# A brand-keyed file is read in pages after the last key of the page before
# (`:after`, and `:after_id` for a two-column key), each along an index that starts
# with brand_id, so a page costs its own rows whatever the other brands hold; the
# first page starts below every real key. A post-keyed file is read for a batch of
# the brand's post ids at a time (`:post_ids`), along the post_id index.
NIL_UUID = "00000000-0000-0000-0000-000000000000"
# Posts per batch of a post-keyed file: a post has a few parts, events and
# attempts, and its metric snapshots (about 20 over its first month, decision 0022).
POSTS_PER_BATCH = 100

SELECT_POST_IDS = """
SELECT id, id AS after FROM posts
WHERE brand_id = :brand_id AND id > CAST(:after AS uuid)
ORDER BY id LIMIT :limit
"""
# A product's variants and images (sql/035) are read for a batch of the brand's
# products at a time, along their primary keys, which start with product_id.
SELECT_PRODUCT_IDS = """
SELECT id, sku AS after FROM products
WHERE brand_id = :brand_id AND sku > :after
ORDER BY sku LIMIT :limit
"""
# Per parent of a batched file: the ids' query, the key below every real one, and
# the parameter the file's query takes the batch in.
PARENTS = {
    "posts": (SELECT_POST_IDS, NIL_UUID, "post_ids"),
    "products": (SELECT_PRODUCT_IDS, "", "product_ids"),
}


@dataclasses.dataclass(frozen=True)
class ExportFile:
    """One file of the archive: its query and, for a brand-keyed file, how the
    next page's key is read from the last row (`key_of`; empty: read for batches
    of the brand's `parent` rows, posts or products)."""

    name: str
    sql: str
    first_key: dict[str, Any] = dataclasses.field(default_factory=dict)
    key_of: tuple[str, ...] = ()
    # Parameters every page's query takes besides the key (the columns it keeps).
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    parent: str = "posts"


def _by_brand(
    name: str, sql: str, first: Any, *extra: str, columns: tuple[str, ...] = ()
) -> ExportFile:
    params = {"columns": list(columns)} if columns else {}
    return ExportFile(name, sql, {"after": first}, ("after", *extra), params)


FILES = (
    # A day of caption requests' keys and the answers they replay (sql/059).
    _by_brand(
        "caption_idempotency_keys.jsonl",
        """
        SELECT CAST(to_jsonb(t) AS text) AS line, t.key AS after
        FROM caption_idempotency_keys t
        WHERE t.brand_id = :brand_id AND t.key > :after
        ORDER BY t.key LIMIT :limit
        """,
        "",
    ),
    _by_brand(
        "products.jsonl",
        """
        SELECT CAST(to_jsonb(t) AS text) AS line, t.sku AS after FROM products t
        WHERE t.brand_id = :brand_id AND t.sku > :after
        ORDER BY t.sku LIMIT :limit
        """,
        "",
    ),
    ExportFile(
        "product_variants.jsonl",
        """
        SELECT CAST(to_jsonb(t) AS text) AS line FROM product_variants t
        WHERE t.product_id = ANY(CAST(:product_ids AS uuid[]))
        ORDER BY t.product_id, t.position
        """,
        parent="products",
    ),
    ExportFile(
        "product_images.jsonl",
        """
        SELECT CAST(to_jsonb(t) AS text) AS line FROM product_images t
        WHERE t.product_id = ANY(CAST(:product_ids AS uuid[]))
        ORDER BY t.product_id, t.position
        """,
        parent="products",
    ),
    _by_brand(
        "posts.jsonl",
        """
        SELECT CAST(to_jsonb(t) AS text) AS line, t.id AS after FROM posts t
        WHERE t.brand_id = :brand_id AND t.id > CAST(:after AS uuid)
        ORDER BY t.id LIMIT :limit
        """,
        NIL_UUID,
    ),
    ExportFile(
        "post_parts.jsonl",
        """
        SELECT CAST(to_jsonb(t) AS text) AS line FROM post_parts t
        WHERE t.post_id = ANY(CAST(:post_ids AS uuid[]))
        ORDER BY t.post_id, t.position
        """,
    ),
    ExportFile(
        "post_events.jsonl",
        """
        SELECT CAST(to_jsonb(t) AS text) AS line FROM post_events t
        WHERE t.post_id = ANY(CAST(:post_ids AS uuid[]))
        ORDER BY t.post_id, t.at, t.id
        """,
    ),
    ExportFile(
        "publish_attempts.jsonl",
        """
        SELECT CAST(to_jsonb(t) AS text) AS line FROM publish_attempts t
        WHERE t.post_id = ANY(CAST(:post_ids AS uuid[]))
        ORDER BY t.post_id, t.id
        """,
    ),
    ExportFile(
        "metric_snapshots.jsonl",
        """
        SELECT CAST(to_jsonb(t) AS text) AS line FROM metric_snapshots t
        WHERE t.post_id = ANY(CAST(:post_ids AS uuid[]))
        ORDER BY t.post_id, t.captured_at
        """,
    ),
    _by_brand(
        "mentions.jsonl",
        """
        SELECT CAST(to_jsonb(t) AS text) AS line, t.x_post_id AS after
        FROM mentions t
        WHERE t.brand_id = :brand_id AND t.x_post_id > :after
        ORDER BY t.x_post_id LIMIT :limit
        """,
        "",
    ),
    _by_brand(
        "orders.jsonl",
        """
        SELECT CAST(to_jsonb(t) AS text) AS line, t.external_id AS after
        FROM orders t
        WHERE t.brand_id = :brand_id AND t.external_id > :after
        ORDER BY t.external_id LIMIT :limit
        """,
        "",
    ),
    _by_brand(
        "daily_kpis.jsonl",
        """
        SELECT CAST(to_jsonb(t) AS text) AS line, t.day AS after FROM daily_kpis t
        WHERE t.brand_id = :brand_id AND t.day > CAST(:after AS date)
        ORDER BY t.day LIMIT :limit
        """,
        "-infinity",
    ),
    _by_brand(
        "account_snapshots.jsonl",
        """
        SELECT CAST(to_jsonb(t) AS text) AS line, t.local_day AS after
        FROM account_snapshots t
        WHERE t.brand_id = :brand_id AND t.local_day > CAST(:after AS date)
        ORDER BY t.local_day LIMIT :limit
        """,
        "-infinity",
    ),
    ExportFile(
        "cost_ledger.jsonl",
        """
        SELECT CAST(to_jsonb(t) AS text) AS line, t.occurred_at AS after,
            t.id AS after_id
        FROM cost_ledger t
        WHERE t.brand_id = :brand_id
          AND (t.occurred_at, t.id) > (CAST(:after AS timestamptz), :after_id)
        ORDER BY t.occurred_at, t.id LIMIT :limit
        """,
        {"after": "-infinity", "after_id": 0},
        ("after", "after_id"),
    ),
    _by_brand(
        "crises.jsonl",
        """
        SELECT CAST(to_jsonb(t) AS text) AS line, t.id AS after FROM crises t
        WHERE t.brand_id = :brand_id AND t.id > :after
        ORDER BY t.id LIMIT :limit
        """,
        0,
    ),
    # Who did what: the audit trail's own records (post changes are in
    # post_events.jsonl).
    _by_brand(
        "audit_events.jsonl",
        """
        SELECT CAST(to_jsonb(t) AS text) AS line, t.id AS after FROM audit_events t
        WHERE t.brand_id = :brand_id AND t.id > :after
        ORDER BY t.id LIMIT :limit
        """,
        0,
    ),
    _by_brand(
        "api_keys.jsonl",
        """
        SELECT CAST((SELECT jsonb_object_agg(c.key, c.value)
                FROM jsonb_each(to_jsonb(t)) c
                WHERE c.key = ANY(CAST(:columns AS text[]))) AS text) AS line,
            t.name AS after
        FROM api_keys t
        WHERE t.brand_id = :brand_id AND t.name > :after
        ORDER BY t.name LIMIT :limit
        """,
        "",
        columns=API_KEY_COLUMNS,
    ),
)


def archive_name(slug: str) -> str:
    return f"cartcast-{slug}-export.zip"


def stream_archive(
    database: Any,
    *,
    brand_id: str,
    now: dt.datetime,
    page_rows: int = EXPORT_PAGE_ROWS,
    posts_per_batch: int = POSTS_PER_BATCH,
) -> Iterator[bytes]:
    """Yield the brand's archive as zip bytes, a chunk at a time.

    Reads in a transaction of its own, opened when the first chunk is asked for:
    the request's transaction has ended by then. Pages are read one after another
    (READ COMMITTED), so a row that changes during the export appears as one of
    its pages saw it; the manifest counts what was written.
    """
    pipe = _Pipe()
    manifest: dict[str, Any] = {"format": ARCHIVE_FORMAT, "generated_at": now}
    files: dict[str, Any] = {}

    with (
        database.transaction() as tx,
        zipfile.ZipFile(pipe, "w", compression=zipfile.ZIP_DEFLATED) as archive,
    ):
        manifest["schema_version"] = tx.scalar(SELECT_SCHEMA_VERSION)
        brand_line = tx.scalar(
            SELECT_BRAND_ROW, brand_id=brand_id, columns=list(BRAND_COLUMNS)
        )
        brand = json.loads(brand_line)
        manifest["brand"] = {"id": brand["id"], "slug": brand["slug"]}
        archive.writestr("brand.json", brand_line + "\n")
        files["brand.json"] = {"rows": 1, "columns": sorted(brand)}

        for export in FILES:
            rows, columns = 0, set()
            with archive.open(export.name, "w", force_zip64=True) as entry:
                pages = _pages(
                    tx,
                    export,
                    brand_id=brand_id,
                    limit=page_rows,
                    posts_per_batch=posts_per_batch,
                )
                for page in pages:
                    for row in page:
                        entry.write(row["line"].encode() + b"\n")
                    rows += len(page)
                    columns.update(json.loads(page[0]["line"]))
                    if pipe.size >= CHUNK_BYTES:
                        yield pipe.take()
            files[export.name] = {"rows": rows, "columns": sorted(columns)}

        manifest["files"] = files
        text = json.dumps(manifest, default=_encode, indent=2, sort_keys=True)
        archive.writestr("manifest.json", text)
    yield pipe.take()


def _pages(
    tx: Any,
    export: ExportFile,
    *,
    brand_id: str,
    limit: int,
    posts_per_batch: int,
) -> Iterator[list[dict[str, Any]]]:
    """Yield the file's rows a page at a time: after the last key, or for the next
    batch of the brand's posts."""
    if not export.key_of:
        select_ids, first, param = PARENTS[export.parent]
        for ids in _id_batches(
            tx, select_ids, first, brand_id=brand_id, limit=posts_per_batch
        ):
            page = tx.rows(export.sql, **{param: ids})
            if page:
                yield page
        return
    key = dict(export.first_key)
    while True:
        page = tx.rows(
            export.sql, brand_id=brand_id, limit=limit, **key, **export.params
        )
        if not page:
            return
        yield page
        last = page[-1]
        key = {name: _key_value(last[name]) for name in export.key_of}
        if len(page) < limit:
            return


def _id_batches(
    tx: Any, select_ids: str, first: str, *, brand_id: str, limit: int
) -> Iterator[list[str]]:
    after = first
    while True:
        rows = tx.rows(select_ids, brand_id=brand_id, after=after, limit=limit)
        if not rows:
            return
        yield [str(row["id"]) for row in rows]
        after = str(rows[-1]["after"])


def _key_value(value: Any) -> Any:
    # uuids and times travel back as text and are cast in the query.
    if isinstance(value, int):
        return value
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return str(value)


def _encode(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__}")


class _Pipe:
    """A write-only file for ZipFile: it gathers bytes until they are taken.

    Without seek or tell, ZipFile writes each entry's sizes after its data (a data
    descriptor), so nothing written needs to be gone back to.
    """

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self.size = 0

    def write(self, data: bytes) -> int:
        self._chunks.append(bytes(data))
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        return None

    def take(self) -> bytes:
        taken = b"".join(self._chunks)
        self._chunks, self.size = [], 0
        return taken
