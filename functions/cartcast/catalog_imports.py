"""Catalog imports from the console: a Shopify product CSV or a JSON feed, row by row.

Unlike POST /v1/products (all or nothing, catalog.py), an import here keeps every
good product and reports each refused one: a broken product never stops the rest.

A Shopify product CSV (the columns of Shopify's export: Handle, Title, Body (HTML),
Vendor, Type, Tags, Option1 Name/Value ..., Variant SKU, Variant Price, Variant
Compare At Price, Variant Inventory Qty, Image Src, Image Position, Image Alt Text)
spreads one product over several rows sharing its Handle: the first carries the
Title, the rows after it add a variant, an image, or both. A product is taken whole
or refused whole, so no variant or image row is ever stored without its product.
The product's SKU in cartcast is its Handle, the key Shopify itself uses; each
variant keeps its own SKU in product_variants (decision 0033).

An import is a job (sql/037; decision 0038): prepare_* checks the whole file in the
upload's request, create_import keeps one item per product or refused row, and
run_chunk stores the next products, a chunk per request, each marked done in the
transaction that stores it, so re-running a chunk never stores anything twice.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import html
import io
import json
import re
import uuid
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from cartcast import catalog, validation, web
from cartcast.db import Transaction
from cartcast.errors import InvalidRequest, NotFound

ROWS_MAX = 10_000
PRODUCTS_MAX = catalog.IMPORT_ROWS_MAX
ERRORS_SHOWN_MAX = 200
# Without Variant Price no product could be imported (each needs a variant with a
# price), so a file lacking it is refused whole, naming it.
REQUIRED_COLUMNS = ("Handle", "Title", "Variant Price")
TAG_MAX = 20
_TAGS = re.compile(r"<[^>]*>")
_LONE_RETURN = re.compile(r"\r(?!\n)")
# Python's csv refuses a field past 128 KiB (csv.field_size_limit), which would
# refuse the whole file for one description holding an inline image. No field can
# be longer than the upload itself, which the console caps at 8 MiB.
FIELD_CHARS_MAX = 8 * 1024 * 1024
# Shopify's one-line columns: a line break in one of them means a quote opened there
# was never closed, and csv read the next lines, other products, into the field.
ONE_LINE_COLUMNS = (
    "Handle", "Title", "Vendor", "Type", "Tags", "Option1 Name", "Option1 Value",
    "Option2 Name", "Option2 Value", "Option3 Name", "Option3 Value", "Variant SKU",
    "Variant Price", "Variant Compare At Price", "Variant Inventory Qty",
    "Image Src", "Image Position", "Status", "Variant Inventory Tracker",
    "Variant Inventory Policy",
)  # fmt: skip
# Every column a product is read from; csv keeps the last cell of a name given
# twice, so a header repeating one of these is refused.
READ_COLUMNS = (*ONE_LINE_COLUMNS, "Body (HTML)", "Image Alt Text")
# Where a row read alone keeps why its product is refused; no column has this name,
# since a file holding NUL is refused.
_UNREADABLE = "\x00unreadable"

DELETE_VARIANTS = "DELETE FROM product_variants WHERE product_id = :product_id"
DELETE_IMAGES = "DELETE FROM product_images WHERE product_id = :product_id"
INSERT_VARIANT = """
INSERT INTO product_variants (product_id, position, sku, options, price,
    compare_at_price, stock)
VALUES (:product_id, :position, :sku, CAST(:options AS text[]), :price,
    :compare_at_price, :stock)
"""
INSERT_IMAGE = """
INSERT INTO product_images (product_id, position, url, alt_text)
VALUES (:product_id, :position, :url, :alt_text)
"""
# The money a stored payload holds as text, read back as Decimal.
MONEY_FIELDS = ("price", "discount_percent")
VARIANT_MONEY_FIELDS = ("price", "compare_at_price")
ITEMS_PER_INSERT = 500

INSERT_IMPORT = """
INSERT INTO catalog_imports (id, brand_id, created_by, kind, rows_total,
    products_total, created_at)
VALUES (:id, :brand_id, :created_by, :kind, :rows_total, :products_total, :now)
"""
INSERT_ITEMS = """
INSERT INTO catalog_import_items (import_id, position, line, file_rows, product,
    payload, outcome, message, done_at)
SELECT :import_id, i.position, i.line, i.file_rows, i.product, i.payload, i.outcome,
    i.message, CASE WHEN i.outcome IS NOT NULL THEN CAST(:now AS timestamptz) END
FROM jsonb_to_recordset(CAST(:items AS jsonb)) AS i (position integer,
    line integer, file_rows integer, product text, payload jsonb, outcome text,
    message text)
"""
FINISH_IMPORT = """
UPDATE catalog_imports SET finished_at = :now WHERE id = :id AND finished_at IS NULL
"""
LOCK_IMPORT = """
SELECT id, finished_at FROM catalog_imports
WHERE id = :id AND brand_id = :brand_id FOR UPDATE
"""
SELECT_PENDING_ITEMS = """
SELECT position, payload FROM catalog_import_items
WHERE import_id = :id AND done_at IS NULL
ORDER BY position LIMIT :limit
"""
ANY_PENDING = """
SELECT EXISTS (SELECT 1 FROM catalog_import_items
               WHERE import_id = :id AND done_at IS NULL)
"""
MARK_ITEM_DONE = """
UPDATE catalog_import_items
SET outcome = :outcome, variants = :variants, images = :images, payload = NULL,
    done_at = :now
WHERE import_id = :import_id AND position = :position
"""
# A product found, when its chunk is stored, to give a handle another holds.
MARK_ITEM_REFUSED = """
UPDATE catalog_import_items
SET outcome = 'refused', message = :message, payload = NULL, done_at = :now
WHERE import_id = :import_id AND position = :position
"""
SELECT_PROGRESS = """
SELECT c.kind, c.rows_total, c.products_total, c.finished_at,
    coalesce(sum(i.file_rows) FILTER (WHERE i.done_at IS NOT NULL), 0) AS rows_done,
    count(*) FILTER (WHERE i.outcome = 'inserted') AS inserted,
    count(*) FILTER (WHERE i.outcome = 'updated') AS updated,
    count(*) FILTER (WHERE i.outcome = 'refused') AS refused,
    coalesce(sum(i.variants), 0) AS variants,
    coalesce(sum(i.images), 0) AS images
FROM catalog_imports c
LEFT JOIN catalog_import_items i ON i.import_id = c.id
WHERE c.id = :id AND c.brand_id = :brand_id
GROUP BY c.id
"""
SELECT_UNFINISHED = """
SELECT c.id, c.kind, c.rows_total, c.created_at, c.created_by,
    coalesce(sum(i.file_rows) FILTER (WHERE i.done_at IS NOT NULL), 0) AS rows_done
FROM catalog_imports c
LEFT JOIN catalog_import_items i ON i.import_id = c.id
WHERE c.brand_id = :brand_id AND c.finished_at IS NULL
GROUP BY c.id ORDER BY c.created_at DESC, c.id LIMIT :limit
"""
SELECT_REFUSED = """
SELECT line AS row, product, message FROM catalog_import_items
WHERE import_id = :id AND outcome = 'refused'
ORDER BY line, position LIMIT :limit
"""


def read_upload(raw: bytes, filename: str) -> tuple[str, Any]:
    """Return ("csv", text) or ("json", feed) for an uploaded file, or refuse it."""
    name = (filename or "").lower()
    if not name.endswith((".csv", ".json")):
        raise InvalidRequest(
            "upload a Shopify product CSV (.csv) or a JSON feed (.json)", field="file"
        )
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        raise InvalidRequest(
            f"this file is not UTF-8 text (byte {error.start}); is it really a "
            f"{'CSV' if name.endswith('.csv') else 'JSON'} file?",
            field="file",
        ) from error
    json_feed = name.endswith(".json")
    return _read_text(text, json_feed=json_feed, what="this file", field="file")


def read_pasted(text: str) -> tuple[str, Any]:
    """Read a catalog pasted into the page: JSON if it opens with [ or {, else CSV."""
    text = text.removeprefix("\ufeff")
    json_feed = text.lstrip()[:1] in ("[", "{")
    return _read_text(text, json_feed=json_feed, what="the pasted text", field="pasted")


def _read_text(text: str, *, json_feed: bool, what: str, field: str) -> tuple[str, Any]:
    """Refuse text that is no catalog, naming `what` (the file or the pasted text)
    and its form `field`; parse a JSON feed."""
    if "\x00" in text:
        raise InvalidRequest(f"{what} holds NUL bytes: it is not text", field=field)
    if not text.strip():
        raise InvalidRequest(f"{what} is empty", field=field)
    if not json_feed:
        return "csv", text
    try:
        # A product giving a key twice is refused, as the API refuses it
        # (web.mark_repeated_keys): last-wins would store what nobody checked.
        return "json", json.loads(text, object_pairs_hook=web.mark_repeated_keys)
    except RecursionError as error:
        # A few kB of "[" go deeper than json's recursive reader.
        raise InvalidRequest(
            f"{what} nests deeper than {web.JSON_DEPTH_MAX} levels of JSON",
            field=field,
        ) from error
    except ValueError as error:
        raise InvalidRequest(
            f"{what} is not valid JSON: {error}", field=field
        ) from error


def prepare_shopify_csv(text: str, *, field: str) -> Prepared:
    """Check every product of a Shopify product CSV; nothing is stored yet.

    Raises:
        InvalidRequest: the text as a whole is no Shopify product CSV, or too big,
            naming `field`, the form field it came in ("file" or "pasted").
    """
    groups, errors = _group_rows(text, field=field)
    items = [
        _refused(error["row"], 1, error["product"], error["message"])
        for error in errors
    ]
    for handle, rows in groups:
        try:
            product, variants, images = _shopify_product(handle, rows)
        except RowError as error:
            items.append(_refused(error.row, len(rows), handle, str(error)))
            continue
        items.append(_checked(rows[0][0], len(rows), product, variants, images))
    items.sort(key=lambda item: item["line"])
    rows_total = sum(len(rows) for _, rows in groups) + len(errors)
    return Prepared("csv", items, rows_total=rows_total, products_total=len(groups))


def prepare_json_feed(feed: Any, *, field: str) -> Prepared:
    """Check each product of a JSON feed (catalog.py's fields); nothing is stored.

    A feed that as a whole is no product list, or too long, is refused naming
    `field`, the form field it came in ("file" or "pasted").
    """
    if isinstance(feed, dict):
        twice = web.repeated_key(feed)
        if twice is not None:
            raise InvalidRequest(
                f"the key {twice[:100]!r} is given twice in the feed; send it once",
                field=field,
            )
        feed = feed.get("products")
    if not isinstance(feed, list) or not feed:
        raise InvalidRequest(
            'a JSON feed is a list of products or {"products": [...]}', field=field
        )
    if len(feed) > PRODUCTS_MAX:
        raise InvalidRequest(f"at most {PRODUCTS_MAX} products per import", field=field)

    items = []
    seen: set[str] = set()
    for index, row in enumerate(feed):
        try:
            # A "\u0000" or "\ud800" escape decodes to what PostgreSQL text
            # cannot hold; refused here, it would fail the whole upload.
            _check_storable(row)
            product = catalog.parse_product(row)
            if product["sku"] in seen:
                raise InvalidRequest(f"SKU {product['sku']!r} is repeated", field="sku")
        except InvalidRequest as error:
            sku = row.get("sku") if isinstance(row, dict) else None
            items.append(_refused(index + 1, 1, _shown(sku), str(error)))
            continue
        seen.add(product["sku"])
        items.append(_checked(index + 1, 1, product, [], []))
    return Prepared("json", items, rows_total=len(feed), products_total=len(feed))


def create_import(
    tx: Transaction,
    *,
    brand_id: str,
    prepared: Prepared,
    created_by: str,
    now: dt.datetime,
) -> str:
    """Store a checked upload as an import job with its items; return its id.

    Refused rows are done at once; products wait for run_chunk.
    """
    import_id = str(uuid.uuid4())
    tx.execute(
        INSERT_IMPORT,
        id=import_id,
        brand_id=brand_id,
        created_by=created_by,
        kind=prepared.kind,
        rows_total=prepared.rows_total,
        products_total=prepared.products_total,
        now=now,
    )
    items = [
        {**item, "position": position} for position, item in enumerate(prepared.items)
    ]
    # One statement for every item: an upload of a thousand products is one round
    # trip, not a thousand.
    for start in range(0, len(items), ITEMS_PER_INSERT):
        batch = items[start : start + ITEMS_PER_INSERT]
        tx.execute(
            INSERT_ITEMS,
            import_id=import_id,
            items=json.dumps(batch, default=_json_value),
            now=now,
        )
    if not any(item["payload"] is not None for item in items):
        tx.execute(FINISH_IMPORT, id=import_id, now=now)
    return import_id


def run_chunk(
    tx: Transaction, *, brand_id: str, import_id: str, limit: int, now: dt.datetime
) -> dict[str, Any]:
    """Store the next `limit` products of an import; return its progress.

    Idempotent: each item is marked done in the transaction that stores it, and
    storing is an upsert by SKU that replaces the product's variants and images, so
    a chunk re-run after a crash writes the same rows again, never more. The job's
    row is locked first, so two requests for one import take turns.
    """
    job = tx.one(LOCK_IMPORT, id=import_id, brand_id=brand_id)
    if job is None:
        raise NotFound("this import is not one of your brand's (or it does not exist)")
    if job["finished_at"] is None:
        pending = tx.rows(SELECT_PENDING_ITEMS, id=import_id, limit=limit)
        # In SKU order, as catalog.import_products upserts (decision 0066): in file
        # order, two imports of one catalog, by file or API, could each hold a
        # product the other waits for, and PostgreSQL fails one (deadlock).
        items = [_with_payload(item) for item in sorted(pending, key=_sku_of)]
        # Only this chunk's products move their handles: two swapping handles in
        # different chunks are both refused (README, Known limitations).
        refused = catalog.claim_handles(
            tx,
            brand_id=brand_id,
            products=[item["payload"]["product"] for item in items],
        )
        for index, item in enumerate(items):
            if index in refused:
                tx.execute(
                    MARK_ITEM_REFUSED,
                    import_id=import_id,
                    position=item["position"],
                    message=refused[index],
                    now=now,
                )
            else:
                _store_item(tx, brand_id, import_id, item, now)
        if len(pending) < limit or not tx.scalar(ANY_PENDING, id=import_id):
            tx.execute(FINISH_IMPORT, id=import_id, now=now)
    return progress(tx, brand_id=brand_id, import_id=import_id)


def progress(tx: Transaction, *, brand_id: str, import_id: str) -> dict[str, Any]:
    """Return an import's progress and, counted so far, its report."""
    found = tx.one(SELECT_PROGRESS, id=import_id, brand_id=brand_id)
    if found is None:
        raise NotFound("this import is not one of your brand's (or it does not exist)")
    errors_shown = tx.rows(SELECT_REFUSED, id=import_id, limit=ERRORS_SHOWN_MAX)
    return {
        "id": import_id,
        "kind": found["kind"],
        "done": found["finished_at"] is not None,
        "rows_done": found["rows_done"],
        "rows": found["rows_total"],
        "products": found["products_total"],
        "inserted": found["inserted"],
        "updated": found["updated"],
        "imported": found["inserted"] + found["updated"],
        "variants": found["variants"],
        "images": found["images"],
        "refused": found["refused"],
        "errors_shown": errors_shown,
    }


def unfinished(tx: Transaction, *, brand_id: str, limit: int) -> list[dict[str, Any]]:
    """The brand's imports not done yet (a page closed mid-way), newest first."""
    return tx.rows(SELECT_UNFINISHED, brand_id=brand_id, limit=limit)


@dataclasses.dataclass(frozen=True)
class Prepared:
    """A checked upload: its kind, and one item per product or refused row."""

    kind: str
    items: list[dict[str, Any]]
    rows_total: int
    products_total: int


class RowError(InvalidRequest):
    """A refused product, with the CSV line it was refused at."""

    def __init__(self, message: str, *, row: int, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.row = row


def _group_rows(
    text: str, *, field: str
) -> tuple[list[tuple[str, list]], list[dict[str, Any]]]:
    """Return the rows of each Handle in file order, and the rows with no product,
    each with the line it starts on.

    csv reads quoted fields across line breaks, stray carriage returns included,
    because the text is read with newline="" (Python's csv documentation).
    """
    # The limit is the csv module's, for the whole process; it is only raised.
    if csv.field_size_limit() < FIELD_CHARS_MAX:
        csv.field_size_limit(FIELD_CHARS_MAX)
    lines = list(io.StringIO(_without_stray_returns(text), newline=""))
    reader = csv.reader(lines)
    # Lines read by readers before the current one (see _read_alone).
    offset = 0
    try:
        columns = next(reader, None)
        while columns == []:  # blank lines before the header, as csv.DictReader
            columns = next(reader, None)
    except csv.Error as error:
        raise InvalidRequest(
            f"the CSV's first line cannot be read: {error}", field=field
        ) from error
    missing = [name for name in REQUIRED_COLUMNS if name not in (columns or [])]
    if missing and _separated_by_semicolons(columns or []):
        raise InvalidRequest(
            "this CSV looks semicolon-separated (its header holds "
            f"{', '.join(REQUIRED_COLUMNS)} between semicolons), as a spreadsheet "
            "set to a European locale saves it; a Shopify product CSV is "
            "comma-separated: save or export it again with a comma as the "
            "separator",
            field=field,
        )
    if missing:
        raise InvalidRequest(
            f"this is not a Shopify product CSV: it has no {', '.join(missing)} column",
            field=field,
        )
    repeated = [name for name in READ_COLUMNS if (columns or []).count(name) > 1]
    if repeated:
        raise InvalidRequest(
            f"the CSV's header names the column {repeated[0]} twice; keep one",
            field=field,
        )
    groups: dict[str, list[tuple[int, dict[str, str]]]] = {}
    errors: list[dict[str, Any]] = []
    try:
        while True:
            # A quoted field may span lines: a row is named by the line it starts
            # on, where its Handle is, not the one it ends on.
            line = offset + reader.line_num + 1
            cells = next(reader, None)
            if cells is None:
                break
            if not cells:
                continue
            row = dict(zip(columns or [], cells, strict=False))
            unclosed = [name for name in ONE_LINE_COLUMNS if _spans_lines(row, name)]
            if unclosed:
                row = _read_alone(lines[line - 1], columns or [])
                row[_UNREADABLE] = (
                    f"line {line}: a quote opened in '{unclosed[0]}' is not closed "
                    "on its line"
                )
                offset, reader = line, csv.reader(_from(lines, line))
            values = {key: (value or "").strip() for key, value in row.items() if key}
            handle = values.get("Handle", "")
            new_product = bool(handle) and handle not in groups
            if (new_product and len(groups) >= PRODUCTS_MAX) or line > ROWS_MAX:
                raise InvalidRequest(
                    f"at most {PRODUCTS_MAX} products and {ROWS_MAX} lines per import",
                    field=field,
                )
            if not any(values.values()):
                continue
            if not handle:
                errors.append(
                    {"row": line, "product": "", "message": "the row has no Handle"}
                )
                continue
            groups.setdefault(handle, []).append((line, values))
    except csv.Error as error:
        raise InvalidRequest(
            f"the CSV cannot be read past line {reader.line_num}: {error}",
            field=field,
        ) from error
    return list(groups.items()), errors


def _separated_by_semicolons(columns: list[str]) -> bool:
    """Whether a header read as one comma-separated line holds the required
    columns between semicolons, as a spreadsheet set to a European locale
    writes it."""
    names = {name.strip() for cell in columns for name in cell.split(";")}
    return any(";" in cell for cell in columns) and set(REQUIRED_COLUMNS) <= names


def _spans_lines(row: dict[str, str], name: str) -> bool:
    value = row.get(name) or ""
    return "\n" in value or "\r" in value


def _from(lines: list[str], start: int) -> Iterator[str]:
    """The lines from index `start` on, without copying them."""
    return (lines[index] for index in range(start, len(lines)))


def _read_alone(line: str, columns: list[str]) -> dict[str, str]:
    """Read one line with its quotes taken as plain characters: the row whose quote
    is never closed, so its Handle is known and the lines after it are read anew."""
    cells = next(csv.reader([line], quoting=csv.QUOTE_NONE), [])
    return dict(zip(columns, cells, strict=False))


def _without_stray_returns(text: str) -> str:
    """Turn each carriage return that ends no line into a space.

    csv ends a row at a lone \\r outside quotes, so one left inside a cell by a
    spreadsheet would split its product in two and make a phantom of the rest. A
    file whose lines end in \\n or \\r\\n has no lone \\r that ends a line; a file
    with old Mac line ends (\\r alone) has more of them than \\n and is left as is.
    """
    lone = len(_LONE_RETURN.findall(text))
    if not lone or lone >= text.count("\n"):
        return text
    return _LONE_RETURN.sub(" ", text)


def _shopify_product(
    handle: str, rows: list[tuple[int, dict[str, str]]]
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """Build a product, its variants and its images from its rows, or refuse all."""
    first_line, first = rows[0]
    for line, values in rows:
        if values.get(_UNREADABLE):
            raise RowError(values[_UNREADABLE], row=line)
    if not first.get("Title"):
        raise RowError(
            "the product's first row has no Title (a variant or image row without "
            "its product)",
            row=first_line,
            field="Title",
        )
    variants, images = [], []
    for line, values in rows:
        if _has_variant(values, is_first=line == first_line):
            variants.append(_variant(values, line, len(variants) + 1))
        if values.get("Image Src"):
            images.append(_image(values, line, len(images) + 1))
    if not variants:
        raise RowError("the product has no variant with a price", row=first_line)

    feed_row = {
        "sku": handle,
        "handle": handle,
        "title": first["Title"],
        "description": _plain_text(first.get("Body (HTML)", "")),
        "category": first.get("Type", "")[:100],
        "tags": [tag.strip() for tag in first.get("Tags", "").split(",")][:TAG_MAX],
        "price": str(variants[0]["price"]),
        "stock": sum(variant["stock"] for variant in variants),
    }
    if first.get("Status"):
        # Shopify's product status: draft and archived retire it (decision 0110).
        feed_row["status"] = first["Status"]
    if first.get("Vendor"):
        feed_row["brand"] = first["Vendor"]
    if images:
        feed_row["thumbnail"] = images[0]["url"]
    compare = variants[0]["compare_at_price"]
    if compare and compare > variants[0]["price"]:
        # Half up, as validation.money rounds a JSON feed's discountPercentage.
        discount = (compare - variants[0]["price"]) * 100 / compare
        feed_row["discountPercentage"] = str(
            discount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        )
    try:
        product = catalog.parse_product(feed_row)
    except InvalidRequest as error:
        shown = str(error).replace("'status'", "'Status'")
        field = "Status" if error.field == "status" else error.field
        raise RowError(shown, row=first_line, field=field) from error
    # The summed stock is what the copy's stock claims are checked against; whether
    # 0 means sold out is the variants' to say.
    product["stock_tracked"] = _stock_tracked(rows)
    return product, variants, images


def _stock_tracked(rows: list[tuple[int, dict[str, str]]]) -> bool:
    """Whether the store counts the stock of every variant of the product.

    Shopify's export names who tracks each variant's inventory in Variant
    Inventory Tracker ("shopify", or empty when nobody does); a file without that
    column counts a variant's stock where it gives a Variant Inventory Qty. A
    variant nobody tracks is sold whatever its quantity (exported as 0), as is
    one whose Variant Inventory Policy is "continue" (sold when out of stock), so
    one such variant keeps the product on sale, its summed stock of 0 not sold out.
    """
    first_line = rows[0][0]
    variants = [
        values
        for line, values in rows
        if _has_variant(values, is_first=line == first_line)
    ]
    column = (
        "Variant Inventory Tracker"
        if any("Variant Inventory Tracker" in values for values in variants)
        else "Variant Inventory Qty"
    )
    return all(
        values.get(column)
        and values.get("Variant Inventory Policy", "").strip().lower() != "continue"
        for values in variants
    )


def _has_variant(values: dict[str, str], *, is_first: bool) -> bool:
    """A row adds a variant when it has a price, an option value or a SKU; the
    first row always does (Shopify writes the first variant on it)."""
    fields = ("Variant Price", "Option1 Value", "Variant SKU")
    return is_first or any(values.get(name) for name in fields)


def _variant(values: dict[str, str], line: int, position: int) -> dict[str, Any]:
    try:
        price = validation.money(values.get("Variant Price") or None, "Variant Price")
        compare = values.get("Variant Compare At Price")
        compare_at = (
            validation.money(compare, "Variant Compare At Price") if compare else None
        )
        stock_text = values.get("Variant Inventory Qty") or "0"
        if not re.fullmatch(r"-?[0-9]{1,9}", stock_text):
            raise InvalidRequest(
                "'Variant Inventory Qty' must be a whole number",
                field="Variant Inventory Qty",
            )
    except InvalidRequest as error:
        raise RowError(f"line {line}: {error}", row=line, field=error.field) from error
    options = [
        values[f"Option{number} Value"]
        for number in (1, 2, 3)
        if values.get(f"Option{number} Value")
    ]
    return {
        "position": position,
        "sku": values.get("Variant SKU") or None,
        "options": options,
        "price": price,
        "compare_at_price": compare_at,
        # Shopify exports oversold stock as negative; none is left to sell.
        "stock": max(0, int(stock_text)),
    }


def _image(values: dict[str, str], line: int, position: int) -> dict[str, Any]:
    url = values["Image Src"]
    if (
        not url
        or len(url) > catalog.IMAGE_URL_LENGTH_MAX
        or catalog.image_url_refused(url)
    ):
        raise RowError(
            f"line {line}: 'Image Src' must be an http(s) URL",
            row=line,
            field="Image Src",
        )
    return {
        "position": position,
        "url": url,
        "alt_text": values.get("Image Alt Text") or None,
    }


def _refused(line: int, rows: int, product: str, message: str) -> dict[str, Any]:
    return {
        "line": line,
        "file_rows": rows,
        "product": product,
        "payload": None,
        "outcome": "refused",
        "message": message,
    }


def _checked(
    line: int,
    rows: int,
    product: dict[str, Any],
    variants: list[dict[str, Any]],
    images: list[dict[str, Any]],
) -> dict[str, Any]:
    payload = {"product": product, "variants": variants, "images": images}
    return {
        "line": line,
        "file_rows": rows,
        "product": product["sku"],
        "payload": payload,
        "outcome": None,
        "message": None,
    }


def _json_value(value: Any) -> str:
    """Money goes into JSON as its exact text (Decimal), and comes back a Decimal."""
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _with_payload(item: dict[str, Any]) -> dict[str, Any]:
    """The pending item with its payload read from JSON."""
    payload = item["payload"]
    if isinstance(payload, str):
        payload = json.loads(payload)
    return {**item, "payload": payload}


def _sku_of(item: dict[str, Any]) -> str:
    payload = item["payload"]
    if isinstance(payload, str):
        payload = json.loads(payload)
    return payload["product"]["sku"] if payload else ""


def _store_item(
    tx: Transaction,
    brand_id: str,
    import_id: str,
    item: dict[str, Any],
    now: dt.datetime,
) -> None:
    """Upsert the item's product, replace its variants and images, mark it done."""
    payload = item["payload"]
    product = _with_decimals(catalog.columns(payload["product"]), MONEY_FIELDS)
    variants = [_with_decimals(v, VARIANT_MONEY_FIELDS) for v in payload["variants"]]
    images = payload["images"]

    stored = catalog.store_product(tx, brand_id=brand_id, product=product, now=now)
    inserted = stored["inserted"]
    if variants or images:
        product_id = stored["id"]
        tx.execute(DELETE_VARIANTS, product_id=product_id)
        tx.execute(DELETE_IMAGES, product_id=product_id)
        for variant in variants:
            tx.execute(INSERT_VARIANT, product_id=product_id, **variant)
        for image in images:
            tx.execute(INSERT_IMAGE, product_id=product_id, **image)

    tx.execute(
        MARK_ITEM_DONE,
        import_id=import_id,
        position=item["position"],
        outcome="inserted" if inserted else "updated",
        variants=len(variants),
        images=len(images),
        now=now,
    )


def _with_decimals(values: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {
        name: Decimal(value) if name in names and value is not None else value
        for name, value in values.items()
    }


def _plain_text(body_html: str) -> str:
    """Shopify's Body (HTML) as text: tags dropped, entities read."""
    return re.sub(r"\s+", " ", html.unescape(_TAGS.sub(" ", body_html))).strip()


def _check_storable(row: Any) -> None:
    """Refuse a feed row holding a string PostgreSQL text cannot hold, naming it."""
    try:
        web.check_storable(row)
    except InvalidRequest as error:
        raise InvalidRequest(f"'{error.field}': {error}", field=error.field) from error


def _shown(value: Any) -> str:
    if not isinstance(value, str):
        return ""
    return web.UNSTORABLE_CHARACTER.sub("", value)[:100]
