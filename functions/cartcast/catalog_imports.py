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
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import json
import re
from decimal import Decimal
from typing import Any

from cartcast import catalog, validation
from cartcast.db import Transaction
from cartcast.errors import InvalidRequest

ROWS_MAX = 10_000
PRODUCTS_MAX = catalog.IMPORT_ROWS_MAX
ERRORS_SHOWN_MAX = 200
REQUIRED_COLUMNS = ("Handle", "Title")
TAG_MAX = 20
_TAGS = re.compile(r"<[^>]*>")

SELECT_PRODUCT_ID = "SELECT id FROM products WHERE brand_id = :brand_id AND sku = :sku"
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
    if "\x00" in text:
        raise InvalidRequest("this file holds NUL bytes: it is not text", field="file")
    if not text.strip():
        raise InvalidRequest("the file is empty", field="file")
    if name.endswith(".json"):
        try:
            return "json", json.loads(text)
        except ValueError as error:
            raise InvalidRequest(
                f"this file is not valid JSON: {error}", field="file"
            ) from error
    return "csv", text


def read_pasted(text: str) -> tuple[str, Any]:
    """Read a catalog pasted into the page: JSON if it opens with [ or {, else CSV."""
    name = "pasted.json" if text.lstrip()[:1] in ("[", "{") else "pasted.csv"
    return read_upload(text.encode("utf-8", "surrogateescape"), name)


def import_shopify_csv(
    tx: Transaction, *, brand_id: str, text: str, now: dt.datetime
) -> dict[str, Any]:
    """Import every complete product of a Shopify product CSV; report the rest."""
    groups, errors = _group_rows(text)
    report = _empty_report(rows=sum(len(rows) for _, rows in groups) + len(errors))
    report["errors"] = errors
    for handle, rows in groups:
        try:
            product, variants, images = _shopify_product(handle, rows)
        except RowError as error:
            report["errors"].append(
                {"row": error.row, "product": handle, "message": str(error)}
            )
            continue
        _store(tx, brand_id, product, variants, images, now, report)
    return _finish(report, len(groups))


def import_json_feed(
    tx: Transaction, *, brand_id: str, feed: Any, now: dt.datetime
) -> dict[str, Any]:
    """Import each product of a JSON feed (catalog.py's fields) that is valid."""
    if isinstance(feed, dict):
        feed = feed.get("products")
    if not isinstance(feed, list) or not feed:
        raise InvalidRequest(
            'a JSON feed is a list of products or {"products": [...]}', field="file"
        )
    if len(feed) > PRODUCTS_MAX:
        raise InvalidRequest(
            f"at most {PRODUCTS_MAX} products per import", field="file"
        )

    report = _empty_report(rows=len(feed))
    seen: set[str] = set()
    for index, row in enumerate(feed):
        try:
            product = catalog.parse_product(row)
            if product["sku"] in seen:
                raise InvalidRequest(f"SKU {product['sku']!r} is repeated", field="sku")
        except InvalidRequest as error:
            sku = row.get("sku") if isinstance(row, dict) else None
            report["errors"].append(
                {"row": index + 1, "product": _shown(sku), "message": str(error)}
            )
            continue
        seen.add(product["sku"])
        _store(tx, brand_id, product, [], [], now, report)
    return _finish(report, len(feed))


class RowError(InvalidRequest):
    """A refused product, with the CSV line it was refused at."""

    def __init__(self, message: str, *, row: int, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.row = row


def _group_rows(text: str) -> tuple[list[tuple[str, list]], list[dict[str, Any]]]:
    """Return the rows of each Handle in file order, and the rows with no product,
    each with the line it starts on.

    csv reads quoted fields across line breaks, stray carriage returns included,
    because the text is read with newline="" (Python's csv documentation).
    """
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        columns = next(reader, None)
        while columns == []:  # blank lines before the header, as csv.DictReader
            columns = next(reader, None)
    except csv.Error as error:
        raise InvalidRequest(
            f"the CSV's first line cannot be read: {error}", field="file"
        ) from error
    missing = [name for name in REQUIRED_COLUMNS if name not in (columns or [])]
    if missing:
        raise InvalidRequest(
            f"this is not a Shopify product CSV: it has no {', '.join(missing)} column",
            field="file",
        )
    groups: dict[str, list[tuple[int, dict[str, str]]]] = {}
    errors: list[dict[str, Any]] = []
    try:
        while True:
            # A quoted field may span lines: a row is named by the line it starts
            # on, where its Handle is, not the one it ends on.
            line = reader.line_num + 1
            cells = next(reader, None)
            if cells is None:
                break
            if not cells:
                continue
            row = dict(zip(columns or [], cells, strict=False))
            values = {key: (value or "").strip() for key, value in row.items() if key}
            handle = values.get("Handle", "")
            new_product = bool(handle) and handle not in groups
            if (new_product and len(groups) >= PRODUCTS_MAX) or line > ROWS_MAX:
                raise InvalidRequest(
                    f"at most {PRODUCTS_MAX} products and {ROWS_MAX} lines per import",
                    field="file",
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
            field="file",
        ) from error
    return list(groups.items()), errors


def _shopify_product(
    handle: str, rows: list[tuple[int, dict[str, str]]]
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """Build a product, its variants and its images from its rows, or refuse all."""
    first_line, first = rows[0]
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
    if first.get("Vendor"):
        feed_row["brand"] = first["Vendor"]
    if images:
        feed_row["thumbnail"] = images[0]["url"]
    compare = variants[0]["compare_at_price"]
    if compare and compare > variants[0]["price"]:
        discount = (compare - variants[0]["price"]) * 100 / compare
        feed_row["discountPercentage"] = str(discount.quantize(Decimal("0.01")))
    try:
        product = catalog.parse_product(feed_row)
    except InvalidRequest as error:
        raise RowError(str(error), row=first_line, field=error.field) from error
    return product, variants, images


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
        not url.lower().startswith(("https://", "http://"))
        or len(url) > catalog.IMAGE_URL_LENGTH_MAX
        or any(char.isspace() for char in url)
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


def _store(
    tx: Transaction,
    brand_id: str,
    product: dict[str, Any],
    variants: list[dict[str, Any]],
    images: list[dict[str, Any]],
    now: dt.datetime,
    report: dict[str, Any],
) -> None:
    """Upsert the product; replace its variants and images with the file's."""
    inserted = tx.scalar(catalog.UPSERT_PRODUCT, brand_id=brand_id, now=now, **product)
    report["inserted" if inserted else "updated"] += 1
    report["imported"].append(product["sku"])
    if not (variants or images):
        return
    product_id = tx.scalar(SELECT_PRODUCT_ID, brand_id=brand_id, sku=product["sku"])
    tx.execute(DELETE_VARIANTS, product_id=product_id)
    tx.execute(DELETE_IMAGES, product_id=product_id)
    for variant in variants:
        tx.execute(INSERT_VARIANT, product_id=product_id, **variant)
    for image in images:
        tx.execute(INSERT_IMAGE, product_id=product_id, **image)
    report["variants"] += len(variants)
    report["images"] += len(images)


def _empty_report(*, rows: int) -> dict[str, Any]:
    return {
        "rows": rows,
        "products": 0,
        "inserted": 0,
        "updated": 0,
        "variants": 0,
        "images": 0,
        "imported": [],
        "errors": [],
    }


def _finish(report: dict[str, Any], products: int) -> dict[str, Any]:
    report["products"] = products
    report["errors_shown"] = report["errors"][:ERRORS_SHOWN_MAX]
    return report


def _plain_text(body_html: str) -> str:
    """Shopify's Body (HTML) as text: tags dropped, entities read."""
    return re.sub(r"\s+", " ", html.unescape(_TAGS.sub(" ", body_html))).strip()


def _shown(value: Any) -> str:
    return value[:100] if isinstance(value, str) else ""
