"""A brand's data as one archive it can take away: a zip of JSON Lines files.

GET /v1/brand/export (admin keys) answers `cartcast-<slug>-export.zip`, holding one
`<table>.jsonl` file per kind of data (one JSON object per line, the table's own
columns) and, last, `manifest.json`: the archive's format version, the database's
schema version, when it was made, and each file's row count and columns. An
archive without its manifest was cut short and is incomplete.

The archive is streamed. Rows are read EXPORT_PAGE_ROWS at a time in key order
(keyset pages, never OFFSET) and compressed as they are written, so the function
holds one page and the deflate window, whatever the brand's size (decision 0032).
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
SELECT_BRAND_ROW = """
SELECT CAST(to_jsonb(b) - 'x_access_token' - 'escalation_secret'
    - 'escalation_webhook_url' - 'alert_webhook_url' - 'order_webhook_secret'
    - 'mentions_resume_token' AS text) AS line
FROM brands b WHERE b.id = :brand_id
"""

# Every page query takes the brand and the last key of the page before (`:after`,
# and `:after_at` or `:after_position` for a two-column key); the first page
# starts from a key below every real one.
NIL_UUID = "00000000-0000-0000-0000-000000000000"


@dataclasses.dataclass(frozen=True)
class ExportFile:
    """One file of the archive: the page query and how to read its last key."""

    name: str
    sql: str
    first_key: dict[str, Any]
    key_of: tuple[str, ...]


FILES = (
    ExportFile(
        "products.jsonl",
        """
        SELECT CAST(to_jsonb(t) AS text) AS line, t.id AS after FROM products t
        WHERE t.brand_id = :brand_id AND t.id > CAST(:after AS uuid)
        ORDER BY t.id LIMIT :limit
        """,
        {"after": NIL_UUID},
        ("after",),
    ),
    ExportFile(
        "posts.jsonl",
        """
        SELECT CAST(to_jsonb(t) AS text) AS line, t.id AS after FROM posts t
        WHERE t.brand_id = :brand_id AND t.id > CAST(:after AS uuid)
        ORDER BY t.id LIMIT :limit
        """,
        {"after": NIL_UUID},
        ("after",),
    ),
    ExportFile(
        "post_parts.jsonl",
        """
        SELECT CAST(to_jsonb(t) AS text) AS line, t.post_id AS after,
            t.position AS after_position
        FROM post_parts t JOIN posts p ON p.id = t.post_id
        WHERE p.brand_id = :brand_id
          AND (t.post_id, t.position) > (CAST(:after AS uuid), :after_position)
        ORDER BY t.post_id, t.position LIMIT :limit
        """,
        {"after": NIL_UUID, "after_position": -1},
        ("after", "after_position"),
    ),
    ExportFile(
        "post_events.jsonl",
        """
        SELECT CAST(to_jsonb(t) AS text) AS line, t.id AS after FROM post_events t
        WHERE t.brand_id = :brand_id AND t.id > :after
        ORDER BY t.id LIMIT :limit
        """,
        {"after": 0},
        ("after",),
    ),
    ExportFile(
        "publish_attempts.jsonl",
        """
        SELECT CAST(to_jsonb(t) AS text) AS line, t.id AS after
        FROM publish_attempts t JOIN posts p ON p.id = t.post_id
        WHERE p.brand_id = :brand_id AND t.id > :after
        ORDER BY t.id LIMIT :limit
        """,
        {"after": 0},
        ("after",),
    ),
    ExportFile(
        "metric_snapshots.jsonl",
        """
        SELECT CAST(to_jsonb(t) AS text) AS line, t.post_id AS after,
            t.captured_at AS after_at
        FROM metric_snapshots t JOIN posts p ON p.id = t.post_id
        WHERE p.brand_id = :brand_id
          AND (t.post_id, t.captured_at)
              > (CAST(:after AS uuid), CAST(:after_at AS timestamptz))
        ORDER BY t.post_id, t.captured_at LIMIT :limit
        """,
        {"after": NIL_UUID, "after_at": "-infinity"},
        ("after", "after_at"),
    ),
    ExportFile(
        "mentions.jsonl",
        """
        SELECT CAST(to_jsonb(t) AS text) AS line, t.id AS after FROM mentions t
        WHERE t.brand_id = :brand_id AND t.id > CAST(:after AS uuid)
        ORDER BY t.id LIMIT :limit
        """,
        {"after": NIL_UUID},
        ("after",),
    ),
    ExportFile(
        "orders.jsonl",
        """
        SELECT CAST(to_jsonb(t) AS text) AS line, t.id AS after FROM orders t
        WHERE t.brand_id = :brand_id AND t.id > CAST(:after AS uuid)
        ORDER BY t.id LIMIT :limit
        """,
        {"after": NIL_UUID},
        ("after",),
    ),
    ExportFile(
        "daily_kpis.jsonl",
        """
        SELECT CAST(to_jsonb(t) AS text) AS line, t.day AS after FROM daily_kpis t
        WHERE t.brand_id = :brand_id AND t.day > CAST(:after AS date)
        ORDER BY t.day LIMIT :limit
        """,
        {"after": "-infinity"},
        ("after",),
    ),
    ExportFile(
        "account_snapshots.jsonl",
        """
        SELECT CAST(to_jsonb(t) AS text) AS line, t.local_day AS after
        FROM account_snapshots t
        WHERE t.brand_id = :brand_id AND t.local_day > CAST(:after AS date)
        ORDER BY t.local_day LIMIT :limit
        """,
        {"after": "-infinity"},
        ("after",),
    ),
    ExportFile(
        "cost_ledger.jsonl",
        """
        SELECT CAST(to_jsonb(t) AS text) AS line, t.id AS after FROM cost_ledger t
        WHERE t.brand_id = :brand_id AND t.id > :after
        ORDER BY t.id LIMIT :limit
        """,
        {"after": 0},
        ("after",),
    ),
    ExportFile(
        "crises.jsonl",
        """
        SELECT CAST(to_jsonb(t) AS text) AS line, t.id AS after FROM crises t
        WHERE t.brand_id = :brand_id AND t.id > :after
        ORDER BY t.id LIMIT :limit
        """,
        {"after": 0},
        ("after",),
    ),
    ExportFile(
        "api_keys.jsonl",
        """
        SELECT CAST(to_jsonb(t) - 'key_hash' AS text) AS line, t.id AS after
        FROM api_keys t
        WHERE t.brand_id = :brand_id AND t.id > CAST(:after AS uuid)
        ORDER BY t.id LIMIT :limit
        """,
        {"after": NIL_UUID},
        ("after",),
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
        brand_line = tx.scalar(SELECT_BRAND_ROW, brand_id=brand_id)
        brand = json.loads(brand_line)
        manifest["brand"] = {"id": brand["id"], "slug": brand["slug"]}
        archive.writestr("brand.json", brand_line + "\n")
        files["brand.json"] = {"rows": 1, "columns": sorted(brand)}

        for export in FILES:
            rows, columns = 0, set()
            with archive.open(export.name, "w", force_zip64=True) as entry:
                for page in _pages(tx, export, brand_id=brand_id, limit=page_rows):
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
    tx: Any, export: ExportFile, *, brand_id: str, limit: int
) -> Iterator[list[dict[str, Any]]]:
    """Yield the file's rows a page at a time, each page after the last key."""
    key = dict(export.first_key)
    while True:
        page = tx.rows(export.sql, brand_id=brand_id, limit=limit, **key)
        if not page:
            return
        yield page
        last = page[-1]
        key = {name: _key_value(last[name]) for name in export.key_of}
        if len(page) < limit:
            return


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
