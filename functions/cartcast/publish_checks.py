"""The catalog, read again just before a post is sent: is what it says still true?

A draft's price, discount and stock claims were checked when it was written
(claims.py), but a post may wait days for its slot while the catalog changes. Just
before sending, the publisher re-reads the product and checks the copy still to be
sent (every part of a thread not yet on X, and a poll's options) once more. What
holds a post, with the reason stored as its `failure_reason`:

    the product was deleted          "the product is no longer in the catalog"
    the product was retired          "retired: the product is retired from the
                                     catalog ..." (released if it is restored)
    a claim the catalog contradicts  "claims 20% off, the catalog says 10%"
    a price that is not the catalog  "claims a price of $24.00, the catalog says
                                     $19.99"
    an image post's image is gone    "the product has no image in the catalog
                                     any more"

A post written by hand (engine "manual") with no product has nothing to check,
unless it is an image post, whose image is the product's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cartcast import catalog, claims
from cartcast.db import Transaction

SELECT_PRODUCT = """
SELECT id, sku, handle, title, description, category, tags, vendor, price,
    discount_percent, stock, image_url, retired_at
FROM products WHERE id = :product_id AND brand_id = :brand_id
"""
SELECT_UNSENT_PARTS = """
SELECT text FROM post_parts
WHERE post_id = :post_id AND x_post_id IS NULL ORDER BY position
"""


@dataclass(frozen=True)
class Verdict:
    """The product as the catalog has it now, and why the post must wait, if so."""

    product: dict[str, Any] | None
    hold_reason: str | None


def recheck(tx: Transaction, post: dict[str, Any]) -> Verdict:
    """Check a claimed post's copy against the catalog of this moment."""
    if post["product_id"] is None:
        if post["engine"] == "manual" and post["kind"] != "image":
            return Verdict(None, None)
        return Verdict(None, "the product is no longer in the catalog")
    product = tx.one(
        SELECT_PRODUCT, product_id=post["product_id"], brand_id=post["brand_id"]
    )
    if product is None:
        return Verdict(None, "the product is no longer in the catalog")
    if product["retired_at"] is not None:
        return Verdict(product, catalog.RETIRED_REASON)
    if post["kind"] == "image" and not product["image_url"]:
        return Verdict(product, "the product has no image in the catalog any more")

    brief = claims.brief_from_catalog(product, post["currency"])
    copy = _copy_to_send(tx, post)
    link = post["link"] or ""
    problem = claims.claim_mismatch(copy, brief, link=link) or claims.price_mismatch(
        copy, brief, link=link
    )
    return Verdict(product, problem)


def _copy_to_send(tx: Transaction, post: dict[str, Any]) -> str:
    """Return the words still to go out: unsent thread parts, a poll's options."""
    if post["kind"] == "thread":
        rows = tx.rows(SELECT_UNSENT_PARTS, post_id=post["id"])
        texts = [row["text"] for row in rows]
    else:
        texts = [post["text"]]
    return "\n\n".join([*texts, *(post["poll_options"] or [])])
