"""The brand's product catalog, imported from a JSON feed and upserted by SKU.

The feed is a list of products (or {"products": [...]}) with the fields of common
store exports: sku, title, description, category, tags, brand, price,
discountPercentage, stock, thumbnail/images, status. An import is all or nothing:
every row is checked first, and one bad row answers 400 naming it, with nothing
written.

A product is never erased: one the store stopped selling is retired (a `status`
of draft or archived, or DELETE /v1/products/{id}) and kept for the posts and
reports that name it, but no longer promoted (decision 0110).
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from decimal import Decimal
from typing import Any

from cartcast import holds, validation
from cartcast.db import Transaction
from cartcast.errors import InvalidRequest, NotFound
from cartcast.web import BODY_BYTES_MAX

IMPORT_ROWS_MAX = 1000
HANDLE_LENGTH_MAX = 200
ERRORS_SHOWN_MAX = 20
IMAGE_URL_LENGTH_MAX = 2000
DESCRIPTION_LENGTH_KEPT = 5000
# docs/openapi.yaml's thumbnail and images[] pattern is blanks (what text()
# strips) around this: an http(s) URL that holds no whitespace by either
# ECMA-262's or Python's `\s`, which the spec therefore does not use, and (its
# class says, _checked_image checks) no validation.UNPRINTABLE either. The blanks
# are stripped before it is matched: matched with the pattern, a long run of
# blanks before a bad character backtracks quadratically (20 ms for 2,000).
IMAGE_URL = re.compile(f"([Hh][Tt][Tt][Pp][Ss]?://[^{validation.SPACE_CLASS}]*)?")

# A row's `status` (the store's: active, draft, archived) retires or restores the
# product; a row without one leaves it as it was, so a feed that carries no status
# never undoes a DELETE /v1/products/{id} (decision 0110).
UPSERT_PRODUCT = """
INSERT INTO products (brand_id, sku, handle, title, description, category, tags,
    vendor, price, discount_percent, stock, stock_tracked, image_url, retired_at,
    created_at, updated_at)
VALUES (:brand_id, :sku, :handle, :title, :description, :category,
    CAST(:tags AS text[]), :vendor, :price, :discount_percent, :stock,
    :stock_tracked, :image_url,
    CASE WHEN CAST(:status AS text) IN ('draft', 'archived')
         THEN CAST(:now AS timestamptz) END,
    :now, :now)
ON CONFLICT (brand_id, sku) DO UPDATE SET
    handle = EXCLUDED.handle, title = EXCLUDED.title,
    description = EXCLUDED.description, category = EXCLUDED.category,
    tags = EXCLUDED.tags, vendor = EXCLUDED.vendor, price = EXCLUDED.price,
    discount_percent = EXCLUDED.discount_percent, stock = EXCLUDED.stock,
    stock_tracked = EXCLUDED.stock_tracked, image_url = EXCLUDED.image_url,
    retired_at = CASE
        WHEN CAST(:status AS text) IS NULL THEN products.retired_at
        WHEN CAST(:status AS text) = 'active' THEN NULL
        ELSE coalesce(products.retired_at, EXCLUDED.retired_at) END,
    updated_at = EXCLUDED.updated_at
RETURNING CAST(id AS text) AS id, (xmax = 0) AS inserted
"""
SELECT_PRODUCTS = """
SELECT id, sku, handle, title, description, category, tags, vendor, price,
    discount_percent, stock, stock_tracked, image_url, updated_at, retired_at
FROM products
WHERE brand_id = :brand_id AND (CAST(:after_sku AS text) IS NULL OR sku > :after_sku)
  AND (:retired = 'include' OR (retired_at IS NOT NULL) = (:retired = 'only'))
ORDER BY sku LIMIT :limit
"""
SELECT_PRODUCT_BY_ID = """
SELECT id, sku, handle, title, description, category, tags, vendor, price,
    discount_percent, stock, stock_tracked, image_url, updated_at, retired_at
FROM products WHERE brand_id = :brand_id AND id = :id
"""
SELECT_PRODUCT_BY_SKU = """
SELECT id, sku, handle, title, description, category, tags, vendor, price,
    discount_percent, stock, stock_tracked, image_url, updated_at, retired_at
FROM products WHERE brand_id = :brand_id AND sku = :sku
"""
RETIRE_PRODUCT = """
UPDATE products SET retired_at = :now, updated_at = :now
WHERE brand_id = :brand_id AND id = :id AND retired_at IS NULL
"""
# The store's product statuses (Shopify's Status column: active, draft, archived).
# A draft is no more on sale than an archived product: its page is not live.
PRODUCT_STATUSES = ("active", "draft", "archived")
# Shopify's ProductStatus UNLISTED (Admin API 2025-10 on): active, its page opened
# by a direct link only, as a post's link opens it; taken as active.
UNLISTED = "unlisted"
# The prefix of the reason a post of a retired product is held with (holds.py):
# restoring the product releases only the posts held for it.
RETIRED_PREFIX = "retired: "
RETIRED_REASON = (
    RETIRED_PREFIX + "the product is retired from the catalog (archived or drafted "
    "in the store, or DELETE /v1/products); restoring it (status active) queues "
    "this post again"
)
# Two-key advisory lock class 7322 is the catalog's: a brand's imports hand out
# handles one at a time, so two concurrent imports cannot both give one page to
# two SKUs.
LOCK_HANDLES = "SELECT pg_advisory_xact_lock(7322, hashtext(:brand_id))"
SELECT_HANDLES = "SELECT sku, handle FROM products WHERE brand_id = :brand_id"


def import_products(
    tx: Transaction, *, brand_id: str, feed: Any, now: dt.datetime
) -> dict[str, int]:
    """Check every row of a feed, then upsert them all; return inserted/updated."""
    rows = _feed_rows(feed)
    products, errors = [], []
    for index, row in enumerate(rows):
        try:
            products.append(parse_product(row))
        except InvalidRequest as error:
            errors.append(f"products[{index}]: {error}")
    if errors:
        shown = "; ".join(errors[:ERRORS_SHOWN_MAX])
        more = len(errors) - ERRORS_SHOWN_MAX
        raise InvalidRequest(
            f"{len(errors)} invalid product(s), nothing imported: {shown}"
            + (f" (and {more} more)" if more > 0 else ""),
            field="products",
        )
    first_index: dict[str, int] = {}
    for index, product in enumerate(products):
        earlier = first_index.setdefault(product["sku"], index)
        if earlier != index:
            # Named by its own field: docs/openapi.yaml lists products[].sku as a
            # rule JSON Schema cannot state (uniqueItems compares whole items).
            raise InvalidRequest(
                f"the feed repeats SKU {product['sku']!r} (products[{earlier}] and "
                f"products[{index}]); nothing imported",
                field=f"products[{index}].sku",
            )
    refused = claim_handles(tx, brand_id=brand_id, products=products)
    if refused:
        index, message = min(refused.items())
        raise InvalidRequest(
            f"products[{index}]: {message}; nothing imported",
            field=f"products[{index}].handle",
        )

    # Each upsert locks its row until commit: two imports of the same SKUs in
    # different orders would each wait for the other, and PostgreSQL fails one
    # (deadlock detected). In one order, the second waits for the first.
    inserted = 0
    for product in sorted(products, key=lambda product: product["sku"]):
        inserted += store_product(tx, brand_id=brand_id, product=product, now=now)[
            "inserted"
        ]
    return {"inserted": inserted, "updated": len(products) - inserted}


def store_product(
    tx: Transaction, *, brand_id: str, product: dict[str, Any], now: dt.datetime
) -> dict[str, Any]:
    """Upsert a parsed product; hold or release its posts when its status says.

    Returns:
        {"id": the product's id, "inserted": whether it is new}.
    """
    stored = tx.one(UPSERT_PRODUCT, brand_id=brand_id, now=now, **columns(product))
    status = product.get("status")
    if status == "active":
        holds.release_product_held(
            tx, product_id=stored["id"], prefix=RETIRED_PREFIX, now=now
        )
    elif status is not None:
        holds.hold_product_queued(
            tx, product_id=stored["id"], reason=RETIRED_REASON, now=now
        )
    return stored


def retire_product(
    tx: Transaction, *, brand_id: str, ref: str, now: dt.datetime
) -> dict[str, Any]:
    """Take a product out of what cartcast promotes, keeping its row; hold its
    scheduled posts. Retiring a retired product changes nothing.

    Raises:
        NotFound: naming `product_id`.
    """
    product = find_product(tx, brand_id=brand_id, ref=ref, field="product_id")
    tx.execute(RETIRE_PRODUCT, brand_id=brand_id, id=product["id"], now=now)
    holds.hold_product_queued(
        tx, product_id=str(product["id"]), reason=RETIRED_REASON, now=now
    )
    return tx.one(SELECT_PRODUCT_BY_ID, brand_id=brand_id, id=product["id"])


def retired_refusal(ref: str) -> str:
    """Why a product named for captions is refused: it is retired."""
    return (
        f"product {ref!r} is retired from the catalog (archived or drafted in the "
        "store, or DELETE /v1/products): restore it with status active to caption it"
    )


def parse_product(row: Any) -> dict[str, Any]:
    """Validate one feed row and return the product's column values."""
    row = validation.require_object(row, "product")
    sku = validation.sku(validation.text(row, "sku", max_len=100))
    title = validation.display_name(validation.text(row, "title", max_len=300), "title")
    tags = row.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise InvalidRequest("'tags' must be a list of strings", field="tags")
    discount = row.get("discountPercentage")
    stock = row.get("stock", 0)
    if isinstance(stock, bool) or not isinstance(stock, int) or not 0 <= stock < 2**31:
        raise InvalidRequest("'stock' must be a non-negative integer", field="stock")
    image = _image_url(row)
    handle = validation.text(row, "handle", required=False, nullable=True, max_len=200)
    status = _status(row)
    return {
        "sku": sku,
        "handle": handle or _handle(title, sku),
        # A handle made up from the title may be made up otherwise when another
        # product holds it (claim_handles); a given one is the store's own.
        "handle_given": bool(handle),
        "title": title,
        # Kept cut, not refused: the spec sets no maxLength on a description.
        "description": validation.text(
            row,
            "description",
            required=False,
            nullable=True,
            default="",
            max_len=BODY_BYTES_MAX,
        )[:DESCRIPTION_LENGTH_KEPT],
        "category": validation.text(
            row, "category", required=False, nullable=True, default="", max_len=100
        ),
        "tags": [
            tag.strip(validation.BLANK) for tag in tags if not validation.is_blank(tag)
        ][:20],
        "vendor": validation.text(
            row, "brand", required=False, nullable=True, max_len=200
        ),
        "price": validation.money(row.get("price"), "price")
        if "price" in row
        else _missing("price"),
        "discount_percent": None if discount is None else _percent(discount),
        "stock": stock,
        # A feed without `stock` stores 0 for a store that does not count it; a
        # job for "all" passes over a product sold out only where it is counted.
        "stock_tracked": "stock" in row,
        "image_url": image if isinstance(image, str) else None,
        "status": status,
    }


def columns(product: dict[str, Any]) -> dict[str, Any]:
    """The product's UPSERT_PRODUCT parameters (parse_product's, less its notes).

    A console import's payload stored before decision 0110 has no status and no
    stock_tracked: it leaves the product's retirement as it was, stock untracked.
    """
    values = {name: value for name, value in product.items() if name != "handle_given"}
    return {"status": None, "stock_tracked": False, **values}


def claim_handles(
    tx: Transaction, *, brand_id: str, products: list[dict[str, Any]]
) -> dict[int, str]:
    """Give each product about to be stored a handle no other SKU of the brand holds.

    A handle is the product's page in the store: two products sharing one would
    send the second's posts to the first's page, at its price. A handle made up
    from the title that another SKU holds becomes `<title words>-<sku words>`
    (rewritten in `products`); a given handle another SKU holds, or gives
    earlier in `products`, in any letter case, is refused. The products' own
    stored handles are free to take, so a feed may move a handle from one of its
    products to another, unless that product is refused and so keeps it. Locks
    the brand's handles until the transaction ends.

    Returns:
        {index in products: why its given handle is refused}, empty when none is.
    """
    if not products:
        return {}
    tx.execute(LOCK_HANDLES, brand_id=brand_id)
    stored = tx.rows(SELECT_HANDLES, brand_id=brand_id)

    # A refused product is not stored and keeps its handle, which another of
    # these may have taken: that one is refused too, and so on until none is.
    # Each round refuses at least one more, so there are at most len(products).
    refused: dict[int, str] = {}
    while True:
        moving = {
            product["sku"]
            for index, product in enumerate(products)
            if index not in refused
        }
        holders = _holders_of(stored, moving)
        found = _refused_handles(products, holders)
        if found.keys() == refused.keys():
            break
        refused = found

    # In SKU order, so a feed sent again in another order makes up the same ones.
    made_up = [product for product in products if not product.get("handle_given", True)]
    for product in sorted(made_up, key=lambda product: product["sku"]):
        product["handle"] = _free_handle(product, holders)
        holders[_page(product["handle"])] = product["sku"]
    return refused


def _page(handle: str) -> str:
    """The store page a handle names: Shopify saves a handle in lower case."""
    return handle.lower()


def _holders_of(stored: list[dict[str, Any]], moving: set[str]) -> dict[str, str]:
    """{page: SKU holding it} of the stored products, less those moving."""
    holders: dict[str, str] = {}
    for row in stored:
        if row["sku"] not in moving:
            holders.setdefault(_page(row["handle"]), row["sku"])
    return holders


def _refused_handles(
    products: list[dict[str, Any]], holders: dict[str, str]
) -> dict[int, str]:
    """Claim each product's given handle in `holders`; return those refused."""
    refused = {}
    for index, product in enumerate(products):
        if product.get("handle_given", True):
            holder = holders.setdefault(_page(product["handle"]), product["sku"])
            if holder != product["sku"]:
                refused[index] = (
                    f"handle {product['handle']!r} is the page of product "
                    f"{holder!r}; give each product a handle of its own"
                )
    return refused


def _free_handle(product: dict[str, Any], holders: dict[str, str]) -> str:
    """The product's made-up handle, or that with its SKU's words, or a number."""
    handle, sku = product["handle"], product["sku"]
    suffix = _slug_words(sku) or sku
    candidates = [handle, f"{handle[: HANDLE_LENGTH_MAX - len(suffix) - 1]}-{suffix}"]
    for candidate in candidates:
        if holders.get(_page(candidate), sku) == sku:
            return candidate
    number = 2
    while holders.get(_page(f"{candidates[1]}-{number}"), sku) != sku:
        number += 1
    return f"{candidates[1]}-{number}"


def list_products(
    tx: Transaction,
    *,
    brand_id: str,
    after_sku: str | None,
    limit: int,
    retired: str = "exclude",
) -> list[dict[str, Any]]:
    """One page of the brand's products by SKU; `retired` is "exclude" (those on
    sale), "include" (every one) or "only" (the retired ones)."""
    return tx.rows(
        SELECT_PRODUCTS,
        brand_id=brand_id,
        after_sku=after_sku,
        limit=limit,
        retired=retired,
    )


def find_product(
    tx: Transaction, *, brand_id: str, ref: str, field: str = "products"
) -> dict[str, Any]:
    """Find a product by id or SKU; another brand's product is simply not found.

    Raises:
        NotFound: naming `field`, where the caller took `ref` from.
    """
    # Stripped as a stored SKU was (validation.text), so " P" finds "P".
    ref = ref.strip(validation.BLANK)
    product = None
    if _looks_like_uuid(ref):
        product = tx.one(SELECT_PRODUCT_BY_ID, brand_id=brand_id, id=ref)
    if product is None:
        product = tx.one(SELECT_PRODUCT_BY_SKU, brand_id=brand_id, sku=ref)
    if product is None:
        raise NotFound(f"product {ref!r} not found", field=field)
    return product


def _image_url(row: dict[str, Any]) -> str | None:
    """Return the row's image (thumbnail, else first of images), an http(s) URL."""
    images = row.get("images")
    if images is None:
        images = []
    if not isinstance(images, list):
        raise InvalidRequest(
            "'images' must be a list of http(s) URLs, or left out", field="images"
        )
    firsts = [
        _checked_image(url, f"images[{index}]") for index, url in enumerate(images)
    ]

    thumbnail = row.get("thumbnail")
    if thumbnail is not None:
        thumbnail = _checked_image(thumbnail, "thumbnail")
    return thumbnail or (firsts[0] if firsts else None)


def image_url_refused(url: str) -> bool:
    """Whether an image URL, its blanks stripped, is not one the spec's takes.

    The feed's and the API's images and a CSV's Image Src all go by it.
    """
    return not IMAGE_URL.fullmatch(url) or validation.has_unprintable(url)


def _checked_image(value: Any, field: str) -> str | None:
    """Return an image URL without the blanks around it, None for a blank one."""
    # {} or false would otherwise read as "no image", silently.
    url = value.strip(validation.BLANK) if isinstance(value, str) else None
    if url is None or len(value) > IMAGE_URL_LENGTH_MAX or image_url_refused(url):
        raise InvalidRequest(
            f"'{field}' must be an http(s) URL of at most {IMAGE_URL_LENGTH_MAX} "
            "characters, or left out",
            field=field,
        )
    return url or None


def _feed_rows(feed: Any) -> list[Any]:
    if isinstance(feed, dict):
        feed = feed.get("products")
    if not isinstance(feed, list):
        raise InvalidRequest(
            'body must be a list of products or {"products": [...]}', field="products"
        )
    if not feed:
        raise InvalidRequest("the feed has no products", field="products")
    if len(feed) > IMPORT_ROWS_MAX:
        raise InvalidRequest(
            f"at most {IMPORT_ROWS_MAX} products per import", field="products"
        )
    return feed


def _handle(title: str, sku: str) -> str:
    """Derive a URL handle from the title, else the SKU ("Brûlée" -> "brulee").

    Accents on Latin letters are dropped (NFKD, then the marks that follow an ASCII
    letter); other scripts keep their letters and marks, since a path may hold any
    Unicode and links.product_link percent-encodes it.
    """
    return _slug_words(title) or _slug_words(sku) or sku


def _slug_words(text: str) -> str:
    kept: list[str] = []
    for char in unicodedata.normalize("NFKD", text.lower()):
        category = unicodedata.category(char)
        if category.startswith("M") and kept and kept[-1].isascii():
            continue
        kept.append(char if category[0] in "LNM" else "-")
    words = re.sub(r"-+", "-", "".join(kept)).strip("-")
    return unicodedata.normalize("NFC", words)[:HANDLE_LENGTH_MAX].strip("-")


def _status(row: dict[str, Any]) -> str | None:
    """The row's store status, lower-cased ("Active" is Shopify's way too), or None."""
    value = row.get("status")
    if value is None or (isinstance(value, str) and validation.is_blank(value)):
        return None
    status = value.strip(validation.BLANK).lower() if isinstance(value, str) else None
    if status == UNLISTED:
        return "active"
    if status not in PRODUCT_STATUSES:
        raise InvalidRequest(
            "'status' must be active, unlisted, draft or archived (the store's "
            "status of the product: draft and archived retire it), or left out",
            field="status",
        )
    return status


def _percent(value: Any) -> Decimal:
    percent = validation.money(value, "discountPercentage")
    if percent > 100:
        raise InvalidRequest(
            "'discountPercentage' must be 0 to 100", field="discountPercentage"
        )
    return percent


def _missing(name: str) -> Decimal:
    raise InvalidRequest(f"'{name}' is required", field=name)


def _looks_like_uuid(value: str) -> bool:
    return bool(re.fullmatch(r"[0-9a-fA-F-]{36}", value))
