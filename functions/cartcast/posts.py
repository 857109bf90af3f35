"""Posts: drafts written from the catalog, approved, scheduled into slots.

States (the publishing issue draws the full diagram in docs/):

    needs_approval -> approved -> scheduled -> publishing -> published
                                                          -> failed | unconfirmed
    any state before publishing -> cancelled

A brand with approvals turned off gets its drafts as `approved`.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from typing import Any

from cartcast import brands, catalog, costs, links, slots, validation
from cartcast.captions import BrandVoice, DraftRequest, ProductBrief, write_drafts
from cartcast.db import Transaction
from cartcast.errors import Conflict, InvalidRequest, NotFound

PRODUCTS_PER_REQUEST_MAX = 20
VARIANTS_MAX = 3

INSERT_POST = """
INSERT INTO posts (id, brand_id, product_id, kind, text, link, campaign, sponsored,
    state, engine, model, fallback_reason, weighted_length, checks, created_by,
    created_at, updated_at)
VALUES (:id, :brand_id, :product_id, 'text', :text, :link, :campaign, :sponsored,
    :state, :engine, :model, :fallback_reason, :weighted_length,
    CAST(:checks AS jsonb), :created_by, :now, :now)
"""
SELECT_POST = """
SELECT id, product_id, kind, text, link, campaign, sponsored, state, engine, model,
    fallback_reason, weighted_length, checks, scheduled_at, published_at, x_post_id,
    failure_reason, created_by, created_at, updated_at
FROM posts WHERE brand_id = :brand_id AND id = :id
"""
SELECT_POSTS = """
SELECT id, product_id, kind, text, link, campaign, sponsored, state, engine, model,
    fallback_reason, weighted_length, checks, scheduled_at, published_at, x_post_id,
    failure_reason, created_by, created_at, updated_at
FROM posts
WHERE brand_id = :brand_id AND (CAST(:state AS text) IS NULL OR state = :state)
ORDER BY COALESCE(scheduled_at, created_at), id
LIMIT :limit
"""
SELECT_BRAND_TEXTS = (
    "SELECT text FROM posts WHERE brand_id = :brand_id AND state <> 'cancelled'"
)
SELECT_TAKEN_SLOTS = """
SELECT scheduled_at FROM posts
WHERE brand_id = :brand_id AND scheduled_at > :after
  AND state NOT IN ('cancelled', 'failed')
"""
SELECT_APPROVED_UNSCHEDULED = """
SELECT id FROM posts
WHERE brand_id = :brand_id AND state = 'approved' AND scheduled_at IS NULL
ORDER BY created_at, id LIMIT :limit
FOR UPDATE
"""
UPDATE_STATE = """
UPDATE posts SET state = :to_state, updated_at = :now
WHERE brand_id = :brand_id AND id = :id AND state = ANY(CAST(:from_states AS text[]))
RETURNING id
"""
UPDATE_SCHEDULE = """
UPDATE posts SET state = 'scheduled', scheduled_at = :at, updated_at = :now
WHERE brand_id = :brand_id AND id = :id AND state IN ('approved', 'scheduled')
RETURNING id
"""
LOCK_BRAND = "SELECT id FROM brands WHERE id = :brand_id FOR UPDATE"


def create_drafts(
    tx: Transaction,
    *,
    brand_id: str,
    body: Any,
    created_by: str,
    now: dt.datetime,
    gemini: Any = None,
) -> dict[str, Any]:
    """Write captions for the requested products and store them as posts."""
    refs, variants, campaign, tone, sponsored, language = _parse_caption_request(body)

    brand = brands.get_brand(tx, brand_id)
    language = language or brand["language"]
    if language != "en" and gemini is None:
        raise InvalidRequest(
            f"captions in {language!r} need Gemini (GEMINI_API_KEY); the template "
            "engine writes English",
            field="language",
        )
    products = [catalog.find_product(tx, brand_id=brand_id, ref=ref) for ref in refs]
    requests = _draft_requests(brand, products, variants, campaign)
    existing = frozenset(
        row["text"] for row in tx.rows(SELECT_BRAND_TEXTS, brand_id=brand_id)
    )

    drafts = write_drafts(
        [request for _, request in requests],
        _voice(brand, sponsored=sponsored, language=language),
        tone=tone,
        campaign=campaign,
        gemini=gemini,
        avoid_texts=existing,
    )

    for (_, request), draft in zip(requests, drafts, strict=True):
        if not draft.checks.get("fits_on_x", True):
            raise InvalidRequest(
                f"no post about {request.product.sku!r} fits X's 280-character limit "
                "with its link and the brand's required hashtags",
                field="products",
            )
    # A brand with approvals off gets its drafts approved, unless a draft failed a
    # check (a second link from a product title, a banned word): a person decides.
    for (post_id, request), draft in zip(requests, drafts, strict=True):
        approved = not brand["approvals_required"] and all(draft.checks.values())
        tx.execute(
            INSERT_POST,
            id=post_id,
            brand_id=brand_id,
            product_id=str(request.product.product_id),
            text=draft.text,
            link=request.link,
            campaign=campaign,
            sponsored=sponsored,
            state="approved" if approved else "needs_approval",
            engine=draft.engine,
            model=draft.model,
            fallback_reason=draft.fallback_reason,
            weighted_length=draft.weighted_length,
            checks=json.dumps(draft.checks),
            created_by=created_by,
            now=now,
        )
    # One Gemini call wrote the whole batch, so its token usage is the batch's.
    usage = next((draft.usage for draft in drafts if draft.usage), None)
    return {
        "posts": [get_post(tx, brand_id=brand_id, post_id=pid) for pid, _ in requests],
        "gemini_usage": usage,
    }


def _parse_caption_request(
    body: Any,
) -> tuple[list[str], int, str | None, str | None, bool, str | None]:
    """Return the refs, variants, campaign, tone, sponsorship and language asked."""
    body = validation.require_object(body)
    refs = body.get("products")
    if (
        not isinstance(refs, list)
        or not refs
        or not all(isinstance(ref, str) for ref in refs)
    ):
        raise InvalidRequest(
            "'products' must be a non-empty list of ids or SKUs", field="products"
        )
    if len(refs) > PRODUCTS_PER_REQUEST_MAX:
        raise InvalidRequest(
            f"at most {PRODUCTS_PER_REQUEST_MAX} products per request", field="products"
        )
    variants = validation.integer(
        body, "variants", default=1, minimum=1, maximum=VARIANTS_MAX
    )
    campaign = validation.text(body, "campaign", required=False, max_len=100)
    tone = validation.text(body, "tone", required=False, max_len=100)
    sponsored = validation.boolean(body, "sponsored", default=False)
    language = validation.language(body, default="") if "language" in body else None
    return refs, variants, campaign, tone, sponsored, language


def _draft_requests(
    brand: dict[str, Any],
    products: list[dict[str, Any]],
    variants: int,
    campaign: str | None,
) -> list[tuple[str, DraftRequest]]:
    """Give each draft-to-be its post id, and the tracked link that carries it."""
    requests = []
    for product in products:
        for variant in range(variants):
            post_id = str(uuid.uuid4())
            link = links.product_link(
                brand["store_base_url"],
                product["handle"],
                post_id=post_id,
                campaign=campaign,
            )
            requests.append(
                (post_id, DraftRequest(_brief(product, brand), link, variant))
            )
    return requests


def check_caption_request(body: Any) -> None:
    """Refuse a caption request as create_drafts would, before anything is written.

    Caption jobs check their options with it when they are queued, days before
    their last chunk goes through create_drafts.
    """
    _parse_caption_request(body)


def get_post(tx: Transaction, *, brand_id: str, post_id: str) -> dict[str, Any]:
    post = tx.one(SELECT_POST, brand_id=brand_id, id=post_id)
    if post is None:
        raise NotFound("post not found")
    return _with_price(post)


def list_posts(
    tx: Transaction, *, brand_id: str, state: str | None, limit: int
) -> list[dict]:
    found = tx.rows(SELECT_POSTS, brand_id=brand_id, state=state, limit=limit)
    return [_with_price(post) for post in found]


def _with_price(post: dict[str, Any]) -> dict[str, Any]:
    """Add what X will charge to publish the post (a link costs more)."""
    return {**post, "x_price_usd": costs.post_price(bool(post["link"]))}


# What each state-changing action does: the state it leads to, and from where.
ACTIONS = {
    "approve": ("approved", ("needs_approval",)),
    "cancel": ("cancelled", ("needs_approval", "approved", "scheduled", "held")),
}


def apply_action(
    tx: Transaction, *, brand_id: str, post_id: str, action: str, now: dt.datetime
) -> dict[str, Any]:
    """Apply one of ACTIONS to a post, or explain why it cannot move (409)."""
    to_state, from_states = ACTIONS[action]
    moved = tx.scalar(
        UPDATE_STATE,
        brand_id=brand_id,
        id=post_id,
        to_state=to_state,
        from_states=list(from_states),
        now=now,
    )
    if moved is None:
        post = get_post(tx, brand_id=brand_id, post_id=post_id)
        raise Conflict(
            f"post is {post['state']}; it can become {to_state} only from "
            + " or ".join(from_states)
        )
    return get_post(tx, brand_id=brand_id, post_id=post_id)


def schedule(
    tx: Transaction, *, brand_id: str, post_id: str, body: Any, now: dt.datetime
) -> dict[str, Any]:
    """Schedule an approved post at a given time, or in the next free slot."""
    body = validation.require_object(body or {})
    post = get_post(tx, brand_id=brand_id, post_id=post_id)
    if post["state"] not in ("approved", "scheduled"):
        raise Conflict(f"post is {post['state']}; only approved posts can be scheduled")
    tx.one(LOCK_BRAND, brand_id=brand_id)
    if body.get("at") is not None:
        at = validation.instant(body["at"], "at")
        if at <= now:
            raise InvalidRequest("'at' must be in the future", field="at")
    else:
        at = _free_slots(tx, brand_id=brand_id, after=now, count=1)[0]
    if at in _taken(tx, brand_id=brand_id, after=now) and at != post["scheduled_at"]:
        raise Conflict("another post is scheduled at that time", field="at")
    tx.scalar(UPDATE_SCHEDULE, brand_id=brand_id, id=post_id, at=at, now=now)
    return get_post(tx, brand_id=brand_id, post_id=post_id)


def schedule_approved(
    tx: Transaction, *, brand_id: str, limit: int, now: dt.datetime
) -> list[dict[str, Any]]:
    """Put approved, unscheduled posts into the next free slots, oldest first."""
    tx.one(LOCK_BRAND, brand_id=brand_id)
    waiting = [
        row["id"]
        for row in tx.rows(SELECT_APPROVED_UNSCHEDULED, brand_id=brand_id, limit=limit)
    ]
    instants = _free_slots(tx, brand_id=brand_id, after=now, count=len(waiting))
    for post_id, at in zip(waiting, instants, strict=False):
        tx.scalar(UPDATE_SCHEDULE, brand_id=brand_id, id=post_id, at=at, now=now)
    return [
        get_post(tx, brand_id=brand_id, post_id=str(pid))
        for pid in waiting[: len(instants)]
    ]


def _free_slots(
    tx: Transaction, *, brand_id: str, after: dt.datetime, count: int
) -> list[dt.datetime]:
    if count == 0:
        return []
    brand = brands.get_brand(tx, brand_id)
    found = slots.next_free(
        brand["posting_slots"],
        brand["time_zone"],
        after,
        _taken(tx, brand_id=brand_id, after=after),
        count,
    )
    if not found:
        raise Conflict("no free posting slot in the next year")
    return found


def _taken(tx: Transaction, *, brand_id: str, after: dt.datetime) -> set[dt.datetime]:
    return {
        row["scheduled_at"]
        for row in tx.rows(SELECT_TAKEN_SLOTS, brand_id=brand_id, after=after)
    }


def _brief(product: dict[str, Any], brand: dict[str, Any]) -> ProductBrief:
    discount = product["discount_percent"]
    return ProductBrief(
        product_id=str(product["id"]),
        sku=product["sku"],
        title=product["title"],
        description=product["description"],
        price=Decimal(product["price"]),
        currency=brand["currency"].strip(),
        category=product["category"],
        tags=tuple(product["tags"]),
        brand=product["vendor"],
        stock=product["stock"],
        discount_percent=Decimal(discount) if discount is not None else None,
    )


def _voice(
    brand: dict[str, Any], *, sponsored: bool = False, language: str | None = None
) -> BrandVoice:
    """Build the brand's voice; a sponsored post must also carry the disclosure."""
    required = tuple(brand["required_hashtags"])
    if sponsored and brand["disclosure_tag"] not in required:
        required = (brand["disclosure_tag"], *required)
    return BrandVoice(
        name=brand["name"],
        voice=brand["voice"],
        banned_words=tuple(brand["banned_words"]),
        required_hashtags=required,
        language=language or brand["language"],
    )
