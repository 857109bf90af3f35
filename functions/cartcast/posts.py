"""Posts: drafts written from the catalog, approved, scheduled into slots.

States (docs/post-lifecycle.md draws every transition):

    needs_approval -> approved -> scheduled -> publishing -> published
                                                          -> failed | unconfirmed
    needs_approval -> rejected (with a reason)
    any state before publishing -> cancelled
    an edit (post_edits.py) of one before publishing -> needs_approval
    (a reply to a mention keeps its state: it skips approvals)

A trigger logs every change in post_events (post_events.py).

A brand with approvals turned off gets its drafts as `approved`.

A draft is of one kind (post_kinds.py: text, image, poll, thread) and carries its
product link or not, as the request and the brand's link policy decide
(link_policy.py). A thread's parts are rows of `post_parts`; its `text` is the parts
joined by a blank line.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from cartcast import (
    brands,
    catalog,
    costs,
    link_policy,
    links,
    page_cursors,
    post_events,
    post_kinds,
    slots,
    validation,
)
from cartcast.db import Transaction
from cartcast.errors import Conflict, InvalidRequest, NotFound
from cartcast.post_text import weighted_length
from cartcast.settings import (
    NEAR_DUPLICATE_DAYS,
    NEAR_DUPLICATE_THRESHOLD,
    X_PRICES_USD,
)

if TYPE_CHECKING:
    from cartcast.captions import BrandVoice, DraftRequest, ProductBrief

# captions and claims (the copy engines and their regular expressions) are imported
# by the functions that write or check copy: listing or scheduling posts runs none.

PRODUCTS_PER_REQUEST_MAX = 20
CAPTION_FIELDS = (
    "products",
    "variants",
    "campaign",
    "tone",
    "sponsored",
    "language",
    "link",
    "kind",
    "poll_options",
    "poll_duration_minutes",
)
VARIANTS_MAX = 3

INSERT_POST = """
INSERT INTO posts (id, brand_id, product_id, kind, text, link, link_note, campaign,
    sponsored, poll_options, poll_duration_minutes, image_alt_text, state, engine,
    model, fallback_reason, weighted_length, checks, created_by, created_at,
    updated_at)
VALUES (:id, :brand_id, :product_id, :kind, :text, :link, :link_note, :campaign,
    :sponsored, CAST(:poll_options AS text[]), :poll_duration_minutes,
    :image_alt_text, :state, :engine, :model, :fallback_reason, :weighted_length,
    CAST(:checks AS jsonb), :created_by, :now, :now)
"""
INSERT_PART = """
INSERT INTO post_parts (post_id, position, text, weighted_length, has_link)
VALUES (:post_id, :position, :text, :weighted_length, :has_link)
"""
# A thread's parts come along as one JSON array, in order; NULL for other kinds.
POST_FIELDS = """
SELECT id, product_id, kind, text, link, link_note, campaign, sponsored,
    poll_options, poll_duration_minutes, image_alt_text, state, engine, model,
    fallback_reason, weighted_length, checks, scheduled_at, published_at, x_post_id,
    failure_reason, rejection_reason, not_before, created_by, created_at, updated_at,
    in_reply_to, deleted_on_x_at, missing_on_x_at, last_metrics_at, metrics_due_at,
    (SELECT json_agg(json_build_object('position', pp.position, 'text', pp.text,
            'weighted_length', pp.weighted_length, 'has_link', pp.has_link,
            'x_post_id', pp.x_post_id) ORDER BY pp.position)
     FROM post_parts pp WHERE pp.post_id = posts.id) AS parts"""
POST_COLUMNS = POST_FIELDS + "\nFROM posts\n"
SELECT_POST = POST_COLUMNS + "WHERE brand_id = :brand_id AND id = :id"
# Oldest first, by the post's time (its slot, or when it was written), then in the
# order the posts were written, so one request's drafts, which share their time,
# are listed in the request's order (sql/057). The `after` cursor is the last row's
# (time, written_order), so a page goes on where the previous ended.
SELECT_POSTS = (
    POST_FIELDS
    + ",\n    written_order\nFROM posts\n"
    + """WHERE brand_id = :brand_id AND (CAST(:state AS text) IS NULL OR state = :state)
  AND (CAST(:after_at AS timestamptz) IS NULL
       OR (COALESCE(scheduled_at, created_at), written_order)
          > (CAST(:after_at AS timestamptz), CAST(:after_order AS bigint)))
ORDER BY COALESCE(scheduled_at, created_at), written_order
LIMIT :limit
"""
)
# A cursor issued before the list ordered by written_order holds the last row's id.
SELECT_WRITTEN_ORDER = """
SELECT written_order FROM posts WHERE brand_id = :brand_id AND id = :id
"""
# The brand's posts a new caption must not resemble: those of the window (created,
# published or scheduled since :since), cancelled and rejected ones aside. Replies
# to mentions are not on the brand's feed, so a caption may say what one said.
SELECT_RECENT_TEXTS = """
SELECT id, text FROM posts
WHERE brand_id = :brand_id AND state NOT IN ('cancelled', 'rejected')
  AND in_reply_to IS NULL
  AND (created_at >= :since OR published_at >= :since OR scheduled_at >= :since)
ORDER BY created_at, written_order
"""
SELECT_TAKEN_SLOTS = """
SELECT scheduled_at FROM posts
WHERE brand_id = :brand_id AND scheduled_at > :after
  AND state NOT IN ('cancelled', 'failed') AND in_reply_to IS NULL
"""
# A retired product's posts wait, approved, for it to be restored: a slot given
# to one would go unused, its post held when due (decision 0110).
SELECT_APPROVED_UNSCHEDULED = """
SELECT p.id, p.in_reply_to FROM posts p
WHERE p.brand_id = :brand_id AND p.state = 'approved' AND p.scheduled_at IS NULL
  AND NOT EXISTS (
      SELECT 1 FROM products pr
      WHERE pr.id = p.product_id AND pr.retired_at IS NOT NULL)
ORDER BY p.created_at, p.written_order LIMIT :limit
FOR UPDATE OF p
"""
SELECT_PRODUCT_RETIRED = "SELECT retired_at FROM products WHERE id = :product_id"
SELECT_RETIRED_AMONG = """
SELECT CAST(id AS text) AS id, retired_at FROM products
WHERE id = ANY(CAST(:ids AS uuid[])) AND retired_at IS NOT NULL
"""
UPDATE_STATE = """
UPDATE posts SET state = :to_state, updated_at = :now
WHERE brand_id = :brand_id AND id = :id AND state = ANY(CAST(:from_states AS text[]))
RETURNING id
"""
UPDATE_SCHEDULE = """
UPDATE posts SET state = 'scheduled', scheduled_at = :at, updated_at = :now,
    failure_reason = NULL
WHERE brand_id = :brand_id AND id = :id AND state IN ('approved', 'scheduled', 'held')
RETURNING id
"""
# NO KEY: an edit or approval of one of the brand's posts logs itself (post_events,
# by trigger) with a foreign key that takes KEY SHARE on the brand; FOR UPDATE
# refused it while this waited for that post, and PostgreSQL ended one as a
# deadlock. Schedulers still exclude each other.
LOCK_BRAND = "SELECT id FROM brands WHERE id = :brand_id FOR NO KEY UPDATE"
# One caption request per product at a time, so each reads the drafts of the one
# before (two-key advisory locks 7310-7315 are taken: audit.py, removed_mentions.py).
LOCK_PRODUCT_DRAFTS = "SELECT pg_advisory_xact_lock(7316, hashtext(:product_id))"
# ASCII digits only, matched whole; seconds are allowed, an offset is not.
LOCAL_TIME_PATTERN = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2})?"
)
SET_REJECTION_REASON = """
UPDATE posts SET rejection_reason = :reason WHERE brand_id = :brand_id AND id = :id
"""


def create_drafts(
    tx: Transaction,
    *,
    brand_id: str,
    body: Any,
    created_by: str,
    now: dt.datetime,
    gemini: Any = None,
    near_duplicate_threshold: float = NEAR_DUPLICATE_THRESHOLD,
    near_duplicate_days: int = NEAR_DUPLICATE_DAYS,
) -> dict[str, Any]:
    """Write captions for the requested products and store them as posts.

    Everything is checked before anything is written: a request refused with a 4xx
    (a bad field, a product without the image its kind needs, a link the brand's
    policy does not allow) stores nothing. No caption may be a near-duplicate (at
    `near_duplicate_threshold` or more) of another of the request or of the brand's
    posts of the last `near_duplicate_days`.
    """
    from cartcast.captions import write_drafts

    asked = _parse_caption_request(body)

    brand = brands.get_brand(tx, brand_id)
    language = asked.language or brand["language"]
    if language != "en" and gemini is None:
        raise InvalidRequest(
            f"captions in {language!r} need Gemini (GEMINI_API_KEY); the template "
            "engine writes English",
            field="language",
        )
    products = [
        catalog.find_product(tx, brand_id=brand_id, ref=ref) for ref in asked.refs
    ]
    _require_distinct(products)
    _require_on_sale(asked.refs, products)
    _require_what_the_kind_needs(asked.kind, products)
    choices = link_policy.choose_links(
        tx,
        brand,
        asked=asked.link,
        drafts=len(products) * asked.variants,
        now=now,
    )
    requests = _draft_requests(brand, products, asked, choices)
    since = now - dt.timedelta(days=near_duplicate_days)
    recent = _recent_texts(tx, brand_id=brand_id, since=since)

    # Gemini's call holds no lock: another request for these products may run
    # meanwhile, and is caught up with once it has committed (below).
    voice = brand_voice(brand, sponsored=asked.sponsored, language=language)
    drafts = write_drafts(
        [planned.request for planned in requests],
        voice,
        tone=asked.tone,
        campaign=asked.campaign,
        gemini=gemini,
        recent_posts=recent,
        near_duplicate_threshold=near_duplicate_threshold,
    )
    # One Gemini call wrote the whole batch, so its token usage is the batch's.
    usage = next((draft.usage for draft in drafts if draft.usage), None)

    # Two requests for one product at once would each miss the other's unsaved
    # draft and could both pass `distinct`: they take turns from here to the
    # commit, and each then checks its copy against the posts written while it
    # was being written (decision 0106). In id order, so two lists cannot
    # deadlock; before the brand's row lock, as every caption request takes them.
    # Known shortcoming: requests for different products of a brand still run side
    # by side, and may write near-duplicates of each other's copy.
    for product_id in sorted({str(product["id"]) for product in products}):
        tx.scalar(LOCK_PRODUCT_DRAFTS, product_id=product_id)
    _require_still_on_sale(tx, asked.refs, products)
    drafts, recent = _distinct_from_posts_written_meanwhile(
        tx,
        requests,
        drafts,
        voice,
        asked,
        brand_id=brand_id,
        since=since,
        recent_posts=recent,
        near_duplicate_threshold=near_duplicate_threshold,
    )

    # The brand's row lock is taken only now that the copy is written: the link
    # allowance counted above may have been spent meanwhile.
    confirmed = link_policy.confirm_links(tx, brand, choices, asked=asked.link, now=now)
    requests, drafts = _without_unaffordable_links(
        requests,
        drafts,
        confirmed,
        voice,
        asked,
        recent_posts=recent,
        near_duplicate_threshold=near_duplicate_threshold,
    )

    for planned, draft in zip(requests, drafts, strict=True):
        _require_a_publishable_draft(planned.request, draft)
    for planned, draft in zip(requests, drafts, strict=True):
        _store_draft(tx, brand, planned, draft, asked, created_by=created_by, now=now)
    return {
        "posts": [
            get_post(tx, brand_id=brand_id, post_id=planned.post_id)
            for planned in requests
        ],
        "gemini_usage": usage,
    }


@dataclass(frozen=True)
class CaptionRequest:
    """A caption request's fields, validated."""

    refs: list[str]
    variants: int
    campaign: str | None
    tone: str | None
    sponsored: bool
    language: str | None
    link: bool | None
    kind: post_kinds.KindRequest


@dataclass(frozen=True)
class _PlannedDraft:
    post_id: str
    request: DraftRequest
    link_note: str | None


def _recent_texts(tx: Transaction, *, brand_id: str, since: dt.datetime) -> dict:
    """Map each of the brand's posts a caption must differ from to its text."""
    return {
        str(row["id"]): row["text"]
        for row in tx.rows(SELECT_RECENT_TEXTS, brand_id=brand_id, since=since)
    }


def _distinct_from_posts_written_meanwhile(
    tx: Transaction,
    requests: list[_PlannedDraft],
    drafts: list[Any],
    voice: Any,
    asked: CaptionRequest,
    *,
    brand_id: str,
    since: dt.datetime,
    recent_posts: dict[str, str],
    near_duplicate_threshold: float,
) -> tuple[list[Any], dict[str, str]]:
    """Rewrite, with the template engine, each draft that resembles a post
    committed while the copy was written; return the recent posts read again.

    Runs under the products' turn, after Gemini's call: another request for the
    same products has committed by then, or waits for this one. The template
    engine, not Gemini, so no lock waits on a network call (decision 0106).
    """
    from cartcast.near_duplicates import CopyIndex

    now_recent = _recent_texts(tx, brand_id=brand_id, since=since)
    meanwhile = CopyIndex(near_duplicate_threshold)
    for post_id, text in now_recent.items():
        if post_id not in recent_posts:
            meanwhile.add(f"post {post_id}", text)
    reasons = {
        index: f"{draft.engine}: {resemblance}"
        for index, draft in enumerate(drafts)
        if (resemblance := meanwhile.resemblance(draft.text)) is not None
    }
    resembling = sorted(reasons)
    if not resembling:
        return drafts, now_recent

    redrafts = _template_drafts_in_place_of(
        resembling,
        [requests[index].request for index in resembling],
        requests,
        drafts,
        voice,
        asked,
        recent_posts=now_recent,
        near_duplicate_threshold=near_duplicate_threshold,
    )
    drafts = list(drafts)
    for index, draft in zip(resembling, redrafts, strict=True):
        # Gemini's call was made and billed: its usage stays on the draft.
        drafts[index] = dataclasses.replace(
            draft, fallback_reason=reasons[index], usage=drafts[index].usage
        )
    return drafts, now_recent


def _without_unaffordable_links(
    requests: list[_PlannedDraft],
    drafts: list[Any],
    confirmed: list[link_policy.LinkChoice],
    voice: Any,
    asked: CaptionRequest,
    *,
    recent_posts: dict[str, str],
    near_duplicate_threshold: float,
) -> tuple[list[_PlannedDraft], list[Any]]:
    """Rewrite link-free, with the template engine, each draft whose link was lost.

    The template engine, not Gemini: this runs under the brand's row lock. The
    rewritten drafts must not resemble the kept ones, which join the recent posts.
    """

    lost = [
        index
        for index, (planned, choice) in enumerate(zip(requests, confirmed, strict=True))
        if planned.request.link and not choice.has_link
    ]
    if not lost:
        return requests, drafts

    rewritten = [
        dataclasses.replace(
            requests[index],
            request=dataclasses.replace(requests[index].request, link=""),
            link_note=confirmed[index].note,
        )
        for index in lost
    ]
    redrafts = _template_drafts_in_place_of(
        lost,
        [planned.request for planned in rewritten],
        requests,
        drafts,
        voice,
        asked,
        recent_posts=recent_posts,
        near_duplicate_threshold=near_duplicate_threshold,
    )

    requests, drafts = list(requests), list(drafts)
    for index, planned, draft in zip(lost, rewritten, redrafts, strict=True):
        requests[index], drafts[index] = planned, draft
    return requests, drafts


def _template_drafts_in_place_of(
    replaced: list[int],
    new_requests: list[Any],
    requests: list[_PlannedDraft],
    drafts: list[Any],
    voice: Any,
    asked: CaptionRequest,
    *,
    recent_posts: dict[str, str],
    near_duplicate_threshold: float,
) -> list[Any]:
    """Template drafts for new_requests, to take the places `replaced` of drafts.

    The drafts kept join the recent posts, so no new draft resembles them.
    """
    from cartcast.captions import write_drafts

    kept = {
        planned.post_id: draft.text
        for index, (planned, draft) in enumerate(zip(requests, drafts, strict=True))
        if index not in replaced
    }
    return write_drafts(
        new_requests,
        voice,
        tone=asked.tone,
        campaign=asked.campaign,
        recent_posts={**recent_posts, **kept},
        near_duplicate_threshold=near_duplicate_threshold,
    )


def _require_distinct(products: list[dict[str, Any]]) -> None:
    # Two refs to one product (its id and its SKU, say) would write two posts
    # about it that the near-duplicate check then has to tell apart.
    first_index: dict[str, int] = {}
    for index, product in enumerate(products):
        first = first_index.setdefault(str(product["id"]), index)
        if first != index:
            raise InvalidRequest(
                f"names the same product as products[{first}]",
                field=f"products[{index}]",
            )


def _require_what_the_kind_needs(
    kind: post_kinds.KindRequest, products: list[dict[str, Any]]
) -> None:
    if kind.kind != "image":
        return
    for product in products:
        if not product["image_url"]:
            raise InvalidRequest(
                f"an image post needs the product's image, and {product['sku']!r} "
                "has none in the catalog",
                field="kind",
            )


def _require_a_publishable_draft(request: DraftRequest, draft: Any) -> None:
    if not draft.checks.get("fits_on_x", True):
        raise InvalidRequest(
            f"no post about {request.product.sku!r} fits X's 280-character limit "
            "with its link and the brand's required hashtags",
            field="products",
        )
    if request.kind == "thread" and len(draft.parts) < post_kinds.THREAD_PARTS_MIN:
        raise InvalidRequest(
            f"the copy about {request.product.sku!r} cannot be split into a thread",
            field="kind",
        )


def _store_draft(
    tx: Transaction,
    brand: dict[str, Any],
    planned: _PlannedDraft,
    draft: Any,
    asked: CaptionRequest,
    *,
    created_by: str,
    now: dt.datetime,
) -> None:
    """Insert one draft as a post, and a thread's parts."""
    request = planned.request
    # A brand with approvals off gets its drafts approved, unless a draft failed a
    # check (a second link from a product title, a banned word): a person decides.
    approved = not brand["approvals_required"] and all(draft.checks.values())
    tx.execute(
        INSERT_POST,
        id=planned.post_id,
        brand_id=str(brand["id"]),
        product_id=str(request.product.product_id),
        kind=request.kind,
        text=draft.text,
        link=request.link or None,
        link_note=planned.link_note,
        campaign=asked.campaign,
        sponsored=asked.sponsored,
        poll_options=list(draft.poll_options) if request.kind == "poll" else None,
        poll_duration_minutes=asked.kind.poll_duration_minutes
        if request.kind == "poll"
        else None,
        image_alt_text=post_kinds.alt_text(request.product.title)
        if request.kind == "image"
        else None,
        state="approved" if approved else "needs_approval",
        engine=draft.engine,
        model=draft.model,
        fallback_reason=draft.fallback_reason,
        weighted_length=draft.weighted_length,
        checks=json.dumps(draft.checks),
        created_by=created_by,
        now=now,
    )
    for position, part in enumerate(draft.parts):
        tx.execute(
            INSERT_PART,
            post_id=planned.post_id,
            position=position,
            text=part,
            weighted_length=weighted_length(part),
            has_link=links.standalone_link_count(part, request.link) > 0,
        )


def _require_on_sale(refs: list[str], products: list[dict[str, Any]]) -> None:
    """Refuse a retired product (decision 0110), naming where it was asked for."""
    for index, (ref, product) in enumerate(zip(refs, products, strict=True)):
        if product["retired_at"] is not None:
            raise Conflict(
                catalog.retired_refusal(ref.strip(validation.BLANK)),
                field=f"products[{index}]",
            )


def _require_still_on_sale(
    tx: Transaction, refs: list[str], products: list[dict[str, Any]]
) -> None:
    """Refuse a product retired while Gemini wrote its copy, as `_require_on_sale`
    refuses one retired before.

    Read again after the call, which may last a minute; a retirement committed
    between this read and the commit still leaves a draft, which no slot takes
    and the publisher's recheck holds if it is ever scheduled.
    """
    ids = [str(product["id"]) for product in products]
    retired = {
        row["id"]: row["retired_at"] for row in tx.rows(SELECT_RETIRED_AMONG, ids=ids)
    }
    _require_on_sale(
        refs,
        [
            {**product, "retired_at": retired.get(str(product["id"]))}
            for product in products
        ],
    )


def _parse_caption_request(body: Any) -> CaptionRequest:
    """Validate a caption request's body, naming the first bad field."""
    body = validation.require_object(body)
    validation.only_fields(body, CAPTION_FIELDS, what="a caption request")
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
    campaign = validation.text(
        body, "campaign", required=False, nullable=True, max_len=100
    )
    tone = validation.text(body, "tone", required=False, nullable=True, max_len=100)
    sponsored = validation.boolean(body, "sponsored", default=False)
    language = validation.language(body, default="") if "language" in body else None
    link = validation.boolean(body, "link", default=False) if "link" in body else None
    return CaptionRequest(
        refs=refs,
        variants=variants,
        campaign=campaign,
        tone=tone,
        sponsored=sponsored,
        language=language,
        link=link,
        kind=post_kinds.parse_kind(body),
    )


def _draft_requests(
    brand: dict[str, Any],
    products: list[dict[str, Any]],
    asked: CaptionRequest,
    choices: list[link_policy.LinkChoice],
) -> list[_PlannedDraft]:
    """Give each draft-to-be its post id, and the tracked link that carries it.

    A link-free draft gets "" for a link: its post is still the product's, but no
    order can be attributed to it.
    """
    from cartcast.captions import DraftRequest

    planned = []
    choice = iter(choices)
    for product in products:
        for variant in range(asked.variants):
            post_id = str(uuid.uuid4())
            link_choice = next(choice)
            link = ""
            if link_choice.has_link:
                link = links.product_link(
                    brand["store_base_url"],
                    product["handle"],
                    post_id=post_id,
                    campaign=asked.campaign,
                )
            request = DraftRequest(
                _brief(product, brand),
                link,
                variant,
                kind=asked.kind.kind,
                poll_options=asked.kind.poll_options,
            )
            planned.append(_PlannedDraft(post_id, request, link_choice.note))
    return planned


def check_caption_request(body: Any) -> None:
    """Refuse a caption request as create_drafts would, before anything is written.

    Caption jobs check their options with it when they are queued, days before
    their last chunk goes through create_drafts.
    """
    _parse_caption_request(body)


def get_post(
    tx: Transaction,
    *,
    brand_id: str,
    post_id: str,
    prices: Mapping[str, Decimal] | None = None,
) -> dict[str, Any]:
    post = tx.one(SELECT_POST, brand_id=brand_id, id=post_id)
    if post is None:
        raise NotFound("post not found")
    return with_price(post, prices)


def list_posts(
    tx: Transaction,
    *,
    brand_id: str,
    state: str | None,
    limit: int,
    prices: Mapping[str, Decimal] | None = None,
) -> list[dict]:
    """Return the brand's first `limit` posts, oldest first."""
    return page_of_posts(
        tx, brand_id=brand_id, state=state, limit=limit, prices=prices
    )["posts"]


def page_of_posts(
    tx: Transaction,
    *,
    brand_id: str,
    state: str | None,
    limit: int,
    after: str | None = None,
    prices: Mapping[str, Decimal] | None = None,
) -> dict[str, Any]:
    """Return one page of the brand's posts, oldest first, and the next cursor.

    `after` is the `next` a previous page answered. A post moved to another time
    while a reader pages may be listed twice or skipped; none is listed out of order.
    """
    after_at, after_order, after_id = page_cursors.place_after(
        after, "posts", _read_posts_key, (None, None, None)
    )
    if after_id is not None:
        # That row's place; 0 if it is gone: a page may repeat a post, never skip.
        earlier = tx.one(SELECT_WRITTEN_ORDER, brand_id=brand_id, id=after_id)
        after_order = earlier["written_order"] if earlier else 0
    rows = tx.rows(
        SELECT_POSTS,
        brand_id=brand_id,
        state=state,
        after_at=after_at,
        after_order=after_order,
        limit=limit + 1,
    )

    page, next_token = page_cursors.next_page(rows, limit, "posts", _posts_key)
    for post in page:
        del post["written_order"]
    return {
        "posts": [with_price(post, prices) for post in page],
        "next": next_token,
    }


def _posts_key(post: dict[str, Any]) -> list[Any]:
    at = post["scheduled_at"] or post["created_at"]
    return [at.isoformat(), post["written_order"]]


def _read_posts_key(key: list[Any]) -> tuple[dt.datetime, int | None, str | None]:
    """Read a cursor of this list: (time, written_order), or the (time, id) of
    one written before the list ordered by written_order."""
    at, place = key
    if isinstance(place, str):
        return page_cursors.instant(at), None, page_cursors.uuid_text(place)
    return page_cursors.instant(at), page_cursors.row_number(place), None


def with_price(
    post: dict[str, Any], prices: Mapping[str, Decimal] | None
) -> dict[str, Any]:
    """Add what X will charge to publish the post: per post created, a link more.

    A thread is one post per part, the part with the link at the link price.
    `prices` is the deployment's table (settings.x_prices_usd); the answers of the
    routes that pass none use X's published prices (README, Known limitations).
    """
    prices = X_PRICES_USD if prices is None else prices
    if post.get("in_reply_to"):
        return {**post, "x_price_usd": costs.price(prices, costs.REPLY_CLASS)}
    if post["parts"]:
        calls = [part["has_link"] for part in post["parts"]]
    else:
        calls = [bool(post["link"])]
    return {**post, "x_price_usd": costs.posts_price(prices, calls)}


# What each state-changing action does: the state it leads to, and from where.
ACTIONS = {
    "approve": ("approved", ("needs_approval",)),
    "reject": ("rejected", ("needs_approval",)),
    "cancel": ("cancelled", ("needs_approval", "approved", "scheduled", "held")),
}
REASON_FIELDS = ("reason",)
REASON_LENGTH_MAX = 500


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


def reject(
    tx: Transaction, *, brand_id: str, post_id: str, body: Any, now: dt.datetime
) -> dict[str, Any]:
    """Refuse a post waiting for approval, for good, with the reviewer's reason.

    A rejected post is never published and cannot be edited back; the reason is
    the post's `rejection_reason` and is in its events (GET /v1/posts/{id}/events).
    """
    return _move_with_reason(
        tx, brand_id=brand_id, post_id=post_id, body=body, action="reject", now=now
    )


def cancel(
    tx: Transaction, *, brand_id: str, post_id: str, body: Any, now: dt.datetime
) -> dict[str, Any]:
    """Withdraw a post that has not started publishing; a reason is optional."""
    return _move_with_reason(
        tx, brand_id=brand_id, post_id=post_id, body=body, action="cancel", now=now
    )


def _move_with_reason(
    tx: Transaction,
    *,
    brand_id: str,
    post_id: str,
    body: Any,
    action: str,
    now: dt.datetime,
) -> dict[str, Any]:
    """Apply `action` with the body's `reason` (required to reject) in its event."""
    body = validation.require_object(body)
    validation.only_fields(body, REASON_FIELDS, what=f"a request to {action}")
    reason = validation.text(
        body, "reason", required=action == "reject", max_len=REASON_LENGTH_MAX
    )
    post_events.give_reason(tx, reason)
    moved = apply_action(tx, brand_id=brand_id, post_id=post_id, action=action, now=now)
    post_events.give_reason(tx, None)
    if action == "reject":
        tx.execute(SET_REJECTION_REASON, brand_id=brand_id, id=post_id, reason=reason)
        moved = {**moved, "rejection_reason": reason}
    return moved


SCHEDULE_FIELDS = ("at", "local_time", "time_zone")
# A held post may be scheduled again: every reason to hold is checked again when it
# is due (the X account, the catalog's claims), so nothing unsafe goes out.
SCHEDULABLE_STATES = ("approved", "scheduled", "held")
SCHEDULE_HORIZON_DAYS = 365


def schedule(
    tx: Transaction,
    *,
    brand_id: str,
    post_id: str,
    body: Any,
    now: dt.datetime,
    horizon_days: int = SCHEDULE_HORIZON_DAYS,
    wall_time_field: str = "local_time",
) -> dict[str, Any]:
    """Schedule a post at an instant (`at`), a wall time in the brand's zone
    (`local_time`, `time_zone` optional), or the next free slot. A scheduled post
    may be moved the same way; a given time must lie within `horizon_days`
    (CARTCAST_SCHEDULE_HORIZON_DAYS) of now.

    Refusals name the field the caller sent: `at`, or `wall_time_field` for the
    wall time (the console's form sends it as `slot` or `local_time`).

    A reply to a mention takes no slot (migration 017): with no time it is due
    now, so the next publish run sends it, and a given time may be a feed post's.

    The answer's `schedule_note` says when a wall time fell into a skipped or a
    repeated hour and where it went (slots.resolve_wall_time); null otherwise.
    """
    body = validation.require_object(body or {})
    validation.only_fields(body, SCHEDULE_FIELDS, what="a request to schedule")
    validation.refuse_nulls(body, ("at", "local_time", "time_zone"))
    post = get_post(tx, brand_id=brand_id, post_id=post_id)
    if post["state"] not in SCHEDULABLE_STATES:
        raise Conflict(
            f"post is {post['state']}; only an approved or held post can be "
            "scheduled, or a scheduled one moved"
        )
    _require_product_on_sale(tx, post)
    tx.one(LOCK_BRAND, brand_id=brand_id)

    # The field the caller gave a time in, and that time as sent, for refusals.
    note, sent, given = None, None, None
    if body.get("at") is not None and body.get("local_time") is not None:
        raise InvalidRequest("give 'at' or 'local_time', not both", field="local_time")
    if body.get("at") is not None:
        sent, given = "at", body["at"]
        at = _requested_instant(body["at"], now=now, horizon_days=horizon_days)
    elif body.get("local_time") is not None:
        sent, given = wall_time_field, body["local_time"]
        at, note = _resolve_local_time(tx, brand_id=brand_id, body=body, field=sent)
        if at <= now:
            raise InvalidRequest(f"'{sent}' must be in the future", field=sent)
        if at > now + dt.timedelta(days=horizon_days):
            raise InvalidRequest(
                f"'{sent}' is more than {horizon_days} days ahead; a post may be "
                "scheduled at most that far (CARTCAST_SCHEDULE_HORIZON_DAYS)",
                field=sent,
            )
    elif body.get("time_zone") is not None:
        raise InvalidRequest("'time_zone' goes with 'local_time'", field="time_zone")
    elif post["in_reply_to"] is not None:
        # A customer waits on the mention's response deadline (triage.py), and
        # the brand's next slot may be a day away.
        at = now
    else:
        # The post's own slot is free to it: asked twice (a form sent twice), it
        # stays where the first put it instead of moving one slot on, and back.
        at = _free_slots(
            tx, brand_id=brand_id, after=now, count=1, own=post["scheduled_at"]
        )[0]

    if (
        post["in_reply_to"] is None
        and at in _taken(tx, brand_id=brand_id, after=now)
        and at != post["scheduled_at"]
    ):
        # Only a time the caller gave can clash: the next free slot skips taken ones.
        raise Conflict(
            f"'{sent}' {given} is taken: another post is scheduled at that time",
            field=sent,
        )

    moved = tx.scalar(UPDATE_SCHEDULE, brand_id=brand_id, id=post_id, at=at, now=now)
    if moved is None:
        # A cancel, an edit or publishing moved the post after it was read above.
        current = get_post(tx, brand_id=brand_id, post_id=post_id)
        raise Conflict(
            f"post changed state meanwhile and is now {current['state']}; "
            "it was not scheduled"
        )
    return {**get_post(tx, brand_id=brand_id, post_id=post_id), "schedule_note": note}


def _resolve_local_time(
    tx: Transaction, *, brand_id: str, body: dict[str, Any], field: str
) -> tuple[dt.datetime, str | None]:
    """Read `local_time` (YYYY-MM-DDTHH:MM, no offset) in `time_zone` or the
    brand's zone; return its instant and the note on a skipped or repeated hour.
    Refusals name `field`, the caller's name for the wall time."""
    raw = body["local_time"]
    if not isinstance(raw, str) or not LOCAL_TIME_PATTERN.fullmatch(raw):
        raise InvalidRequest(
            f"'{field}' must be a wall time without an offset, "
            "YYYY-MM-DDTHH:MM (e.g. 2027-03-14T09:30)",
            field=field,
        )
    try:
        wall = dt.datetime.fromisoformat(raw)
    except ValueError as error:
        raise InvalidRequest(
            f"'{field}' is not a date and time: {error}", field=field
        ) from error
    if wall.second:
        # Slots and notes are whole minutes; ":00" seconds are taken as written.
        raise InvalidRequest(
            f"'{field}' must be a whole minute (YYYY-MM-DDTHH:MM)", field=field
        )
    if body.get("time_zone") is not None:
        zone = validation.time_zone(body["time_zone"])
    else:
        zone = brands.get_brand(tx, brand_id)["time_zone"]
    try:
        return slots.resolve_wall_time(wall, zone)
    except OverflowError as error:
        # 9999-12-31T23:59 west of UTC lies past the last instant Python can hold.
        raise InvalidRequest(
            f"'{field}' {raw} in {zone} is past the last time that can be stored",
            field=field,
        ) from error


def _requested_instant(
    value: Any, *, now: dt.datetime, horizon_days: int
) -> dt.datetime:
    """Return the `at` of a schedule request: in the future, within the horizon."""
    at = validation.instant(value, "at")
    if at <= now:
        raise InvalidRequest("'at' must be in the future", field="at")
    if at > now + dt.timedelta(days=horizon_days):
        raise InvalidRequest(
            f"'at' is more than {horizon_days} days ahead; a post may be scheduled "
            "at most that far (CARTCAST_SCHEDULE_HORIZON_DAYS)",
            field="at",
        )
    return at


def _require_product_on_sale(tx: Transaction, post: dict[str, Any]) -> None:
    """Refuse to queue a post about a retired product (decision 0110)."""
    if post["product_id"] is None:
        return
    if tx.scalar(SELECT_PRODUCT_RETIRED, product_id=post["product_id"]) is not None:
        raise Conflict(
            "the post's product is retired from the catalog (archived or drafted "
            "in the store, or DELETE /v1/products): restore it with status active "
            "to schedule the post"
        )


def schedule_approved(
    tx: Transaction, *, brand_id: str, limit: int, now: dt.datetime
) -> list[dict[str, Any]]:
    """Put up to `limit` approved, unscheduled posts into the next free slots.

    Oldest first, and the drafts of one caption request in the request's order
    (sql/057: they share their created_at). A retired product's posts are passed
    over: they wait, approved, for it to be restored.

    A reply among them (one settled absent from X goes back to approved) takes no
    slot, as in schedule(): it is due now.
    """
    tx.one(LOCK_BRAND, brand_id=brand_id)
    rows = tx.rows(SELECT_APPROVED_UNSCHEDULED, brand_id=brand_id, limit=limit)
    feed_count = sum(1 for row in rows if row["in_reply_to"] is None)
    instants = iter(_free_slots(tx, brand_id=brand_id, after=now, count=feed_count))

    scheduled = []
    for row in rows:
        at = now if row["in_reply_to"] is not None else next(instants, None)
        if at is None:
            continue
        tx.scalar(UPDATE_SCHEDULE, brand_id=brand_id, id=row["id"], at=at, now=now)
        scheduled.append(get_post(tx, brand_id=brand_id, post_id=str(row["id"])))
    return scheduled


def _free_slots(
    tx: Transaction,
    *,
    brand_id: str,
    after: dt.datetime,
    count: int,
    own: dt.datetime | None = None,
) -> list[dt.datetime]:
    """Return the next `count` free slots; `own`, the post's own slot, is free."""
    if count == 0:
        return []
    brand = brands.get_brand(tx, brand_id)
    found = slots.next_free(
        brand["posting_slots"],
        brand["time_zone"],
        after,
        _taken(tx, brand_id=brand_id, after=after) - {own},
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
    from cartcast.claims import brief_from_catalog

    return brief_from_catalog(product, brand["currency"])


def brand_voice(
    brand: dict[str, Any], *, sponsored: bool = False, language: str | None = None
) -> BrandVoice:
    """Build the brand's voice; a sponsored post must also carry the disclosure."""
    from cartcast.captions import BrandVoice

    required = tuple(brand["required_hashtags"])
    if sponsored and brand["disclosure_tag"] not in required:
        required = (brand["disclosure_tag"], *required)
    return BrandVoice(
        name=brand["name"],
        voice=brand["voice"],
        banned_words=tuple(brand["banned_words"]),
        required_hashtags=required,
        language=language or brand["language"],
        x_username=brand["x_username"] or "",
    )
