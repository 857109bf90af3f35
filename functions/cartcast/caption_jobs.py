"""Caption jobs: a whole catalog, or a list of products, captioned in the background.

A job is queued by `POST /v1/caption-jobs` (or the command below) with the caption
options `POST /v1/captions` takes, one item per product. The scheduled function
`drain_caption_jobs` writes it a chunk at a time through posts.create_drafts, the
code path of `POST /v1/captions` (cartcast.caption_drain; decision 0007). Progress
is one query over the items: products done, failed, skipped and remaining, by
engine. "all" is the products on sale when the job is queued; one retired after
that is skipped, with why, when its chunk comes (decision 0110).

    queued -> running -> done        every product written, or failed or skipped
                                     alone
                      -> failed      not one product could be written or skipped
    queued | running  -> cancelled   by the caller; a chunk being written is kept

A brand that asked to leave (cartcast.offboarding) queues no job, nor has a one-off
POST /v1/captions request written (its Gemini cost would land on the leaving brand
all the same), and its open jobs are passed over by the drain, not cancelled: they
stay queued or running, their `next_chunk` saying why, and go on if the brand
cancels its offboarding, as its held posts go back to the queue. Past the grace
period they go with the brand.

What the next chunk uses depends on Gemini's shared quota (cartcast.quota):

    Gemini not configured               the template engine, at once
    quota available                     Gemini
    refused for up to SHORT_WAIT        every job waits (a minute window, a 429's
                                        retry delay): template copy now would
                                        waste Gemini copy a minute later
    refused for longer (the day's       `when_quota_spent`: "wait" (the default)
    calls are spent)                    resumes when the quota frees, "template"
                                        goes on with the template engine

The command queues a job for a brand and drains it, printing its progress:

    PYTHONPATH=functions python -m cartcast.caption_jobs --brand SLUG [--products all]
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
import uuid
from typing import TYPE_CHECKING, Any

from cartcast import brands, catalog, page_cursors, posts, validation
from cartcast.db import Transaction
from cartcast.errors import Conflict, InvalidRequest, NotFound

if TYPE_CHECKING:
    import argparse

JOB_PRODUCTS_MAX = 10_000
JOB_STATES = ("queued", "running", "done", "failed", "cancelled")
ACTIVE_STATES = ("queued", "running")
QUOTA_POLICIES = ("wait", "template")
DEFAULT_QUOTA_POLICY = "wait"
# Refusals that end sooner than this are waited for by every job (see above).
SHORT_WAIT = dt.timedelta(minutes=5)
FAILURES_SHOWN_MAX = 20
# Fields of a job request that are the job's own; every other one is a caption
# option, handed to create_drafts as POST /v1/captions would get it.
JOB_FIELDS = ("products", "when_quota_spent")
UUID_PATTERN = re.compile(r"[0-9a-fA-F-]{36}")

# "all" is what the store sells: no retired product, none sold out where the
# store counts its stock (decision 0110).
SELECT_ALL_PRODUCTS = """
SELECT id FROM products
WHERE brand_id = :brand_id AND retired_at IS NULL AND NOT (stock_tracked AND stock = 0)
ORDER BY sku LIMIT :limit
"""
COUNT_PASSED_OVER = """
SELECT count(*) FILTER (WHERE retired_at IS NOT NULL) AS retired,
    count(*) FILTER (WHERE retired_at IS NULL) AS sold_out
FROM products WHERE brand_id = :brand_id
"""
SELECT_PRODUCTS_BY_REF = """
SELECT CAST(id AS text) AS id, sku, retired_at FROM products
WHERE brand_id = :brand_id
  AND (sku = ANY(CAST(:refs AS text[]))
       OR CAST(id AS text) = ANY(CAST(:refs AS text[])))
"""
INSERT_JOB = """
INSERT INTO caption_jobs (id, brand_id, requested_by, options, when_quota_spent,
    state, products_total, created_at, updated_at)
VALUES (:id, :brand_id, :requested_by, CAST(:options AS jsonb), :when_quota_spent,
    'queued', :products_total, :now, :now)
"""
INSERT_ITEMS = """
INSERT INTO caption_job_items (job_id, position, product_id)
SELECT :job_id, listed.position - 1, listed.product_id
FROM unnest(CAST(:product_ids AS uuid[])) WITH ORDINALITY
    AS listed (product_id, position)
"""
# Progress is counted from the items, never kept in step by hand.
SELECT_JOBS = """
SELECT j.id, j.state, j.requested_by, j.options, j.when_quota_spent,
    j.products_total, j.created_at, j.updated_at, j.finished_at,
    counted.done, counted.failed, counted.skipped, counted.remaining, counted.gemini,
    counted.template, counted.mixed, counted.drafts
FROM caption_jobs j
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE i.state = 'done') AS done,
        count(*) FILTER (WHERE i.state = 'failed') AS failed,
        count(*) FILTER (WHERE i.state = 'skipped') AS skipped,
        count(*) FILTER (WHERE i.state = 'pending') AS remaining,
        count(*) FILTER (WHERE i.engine = 'gemini') AS gemini,
        count(*) FILTER (WHERE i.engine = 'template') AS template,
        count(*) FILTER (WHERE i.engine = 'mixed') AS mixed,
        COALESCE(sum(cardinality(i.post_ids)), 0) AS drafts
    FROM caption_job_items i WHERE i.job_id = j.id
) AS counted
WHERE j.brand_id = :brand_id
"""
SELECT_JOB = SELECT_JOBS + " AND j.id = :id"
SELECT_LISTED_JOBS = (
    SELECT_JOBS
    + """ AND (CAST(:state AS text) IS NULL OR j.state = :state)
  AND (CAST(:after_at AS timestamptz) IS NULL
       OR (j.created_at, j.id)
          < (CAST(:after_at AS timestamptz), CAST(:after_id AS uuid)))
ORDER BY j.created_at DESC, j.id DESC LIMIT :limit"""
)
SELECT_FAILURES = """
SELECT CAST(i.product_id AS text) AS product_id, p.sku, i.error
FROM caption_job_items i JOIN products p ON p.id = i.product_id
WHERE i.job_id = :job_id AND i.state = 'failed'
ORDER BY i.position LIMIT :limit
"""
SELECT_SKIPPED = """
SELECT CAST(i.product_id AS text) AS product_id, p.sku, i.error AS reason
FROM caption_job_items i JOIN products p ON p.id = i.product_id
WHERE i.job_id = :job_id AND i.state = 'skipped'
ORDER BY i.position LIMIT :limit
"""
CANCEL_JOB = """
UPDATE caption_jobs SET state = 'cancelled', updated_at = :now, finished_at = :now
WHERE brand_id = :brand_id AND id = :id AND state IN ('queued', 'running')
RETURNING id
"""
SELECT_BRAND_BY_SLUG = "SELECT id FROM brands WHERE slug = :slug"
# Read here, not through cartcast.offboarding: drain_caption_jobs imports this
# module, and offboarding's revocation at X would make it need the X app's settings.
SELECT_OFFBOARDING_DUE = "SELECT offboarding_due_at FROM brands WHERE id = :brand_id"
# The prefix of every reason the offboarding gives (offboarding.HELD_PREFIX).
OFFBOARDING_PREFIX = "offboarding: "
SELECT_FIRST_WITHOUT_IMAGE = """
SELECT sku FROM products
WHERE id = ANY(CAST(:ids AS uuid[])) AND COALESCE(image_url, '') = ''
ORDER BY sku LIMIT 1
"""


def enqueue(
    tx: Transaction,
    *,
    brand_id: str,
    body: Any,
    requested_by: str,
    now: dt.datetime,
    gemini_configured: bool,
) -> dict[str, Any]:
    """Check a job request and queue it, one item per product; nothing on refusal."""
    body = validation.require_object(body)
    when_quota_spent = _quota_policy(body)
    options = {name: value for name, value in body.items() if name not in JOB_FIELDS}

    brand = brands.get_brand(tx, brand_id)
    refuse_while_offboarding(tx, brand_id=brand_id)
    product_ids = _product_ids(tx, brand_id, body.get("products"))
    # The options are checked as create_drafts will check them, chunk after chunk.
    posts.check_caption_request({**options, "products": product_ids[:1]})
    _check_language(options, brand, gemini_configured, when_quota_spent)
    if options.get("kind") == "image":
        _check_images(tx, product_ids)

    job_id = str(uuid.uuid4())
    tx.execute(
        INSERT_JOB,
        id=job_id,
        brand_id=brand_id,
        requested_by=requested_by,
        options=json.dumps(options),
        when_quota_spent=when_quota_spent,
        products_total=len(product_ids),
        now=now,
    )
    tx.execute(INSERT_ITEMS, job_id=job_id, product_ids=product_ids)
    return get_job(tx, brand_id=brand_id, job_id=job_id)


def get_job(tx: Transaction, *, brand_id: str, job_id: str) -> dict[str, Any]:
    """Return a job with its progress and its first failed and skipped products."""
    row = tx.one(SELECT_JOB, brand_id=brand_id, id=job_id)
    if row is None:
        raise NotFound("caption job not found")
    job = _with_progress(row)
    job["failures"] = tx.rows(SELECT_FAILURES, job_id=job_id, limit=FAILURES_SHOWN_MAX)
    job["skipped"] = tx.rows(SELECT_SKIPPED, job_id=job_id, limit=FAILURES_SHOWN_MAX)
    return job


def list_jobs(
    tx: Transaction,
    *,
    brand_id: str,
    state: str | None,
    limit: int,
    after: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Return one page of a brand's jobs, newest first, each with its progress,
    and the `next` token; `after` is the `next` of a previous page (400 if not)."""
    after_at, after_id = page_cursors.place_after(
        after, "caption_jobs", page_cursors.instant_and_uuid, (None, None)
    )
    rows = tx.rows(
        SELECT_LISTED_JOBS,
        brand_id=brand_id,
        state=state,
        after_at=after_at,
        after_id=after_id,
        limit=limit + 1,
    )

    page, next_token = page_cursors.next_page(rows, limit, "caption_jobs", _key)
    return [_with_progress(row) for row in page], next_token


def _key(job: dict[str, Any]) -> list[Any]:
    return [job["created_at"].isoformat(), str(job["id"])]


def cancel(
    tx: Transaction, *, brand_id: str, job_id: str, now: dt.datetime
) -> dict[str, Any]:
    """Stop a queued or running job; its remaining products stay unwritten."""
    if tx.scalar(CANCEL_JOB, brand_id=brand_id, id=job_id, now=now) is None:
        job = get_job(tx, brand_id=brand_id, job_id=job_id)
        raise Conflict(
            f"caption job is {job['state']}; only queued or running jobs can be "
            "cancelled"
        )
    return get_job(tx, brand_id=brand_id, job_id=job_id)


def refuse_while_offboarding(
    tx: Transaction, *, brand_id: str, refused: str = "no caption job is started"
) -> None:
    """Refuse captions for a brand that asked to leave (409): nothing of it is kept.

    Args:
        refused: what the answer says is not done, e.g. "no caption job is
            started"; POST /v1/captions refuses its one-off request here too.
    """
    leaving_at = offboarding_due_at(tx, brand_id=brand_id)
    if leaving_at is not None:
        raise Conflict(
            "the brand asked to leave cartcast (offboarding) and its data is deleted "
            f"at {leaving_at.isoformat()}, so {refused}; "
            "POST /v1/brand/offboarding/cancel keeps the brand"
        )


def offboarding_due_at(tx: Transaction, *, brand_id: str) -> dt.datetime | None:
    """Return when a brand that asked to leave is deleted; None for one staying."""
    return tx.scalar(SELECT_OFFBOARDING_DUE, brand_id=brand_id)


def quota_state(runtime: Any) -> dict[str, Any] | None:
    """Return the Gemini quota's state, or None when Gemini is not configured."""
    gemini = runtime.gemini()
    if gemini is None or gemini.governor is None:
        return None
    return gemini.governor.state()


def next_engine(
    when_quota_spent: str, quota: dict[str, Any] | None, now: dt.datetime
) -> tuple[str, dt.datetime | None]:
    """Say what a job's next chunk uses: "gemini", "template", or "wait" until when."""
    if quota is None:
        return "template", None
    if quota["available"]:
        return "gemini", None
    until = quota["available_at"]
    if until - now <= SHORT_WAIT or when_quota_spent == "wait":
        return "wait", until
    return "template", None


def with_outlook(
    job: dict[str, Any],
    quota: dict[str, Any] | None,
    now: dt.datetime,
    *,
    leaving_at: dt.datetime | None = None,
) -> dict[str, Any]:
    """Add what the job's next chunk will use, and why it waits if it does.

    `leaving_at` is when the brand, having asked to leave, is deleted: the drain
    writes none of its jobs meanwhile (offboarding_due_at).
    """
    if job["state"] not in ACTIVE_STATES or not job["progress"]["remaining"]:
        return {**job, "next_chunk": None}
    if leaving_at is not None:
        reason = (
            f"{OFFBOARDING_PREFIX}the brand asked to leave cartcast; its data "
            f"is deleted at {leaving_at.isoformat()}; POST /v1/brand/offboarding/"
            "cancel keeps the brand and this job goes on"
        )
        return {**job, "next_chunk": {"engine": None, "reason": reason}}
    engine, until = next_engine(job["when_quota_spent"], quota, now)
    next_chunk = {"engine": None if engine == "wait" else engine}
    if engine == "wait":
        next_chunk |= {
            "waiting_until": until,
            "reason": f"Gemini quota: {quota['unavailable_reason']}",
        }
    elif engine == "template" and quota is not None:
        next_chunk["reason"] = (
            f"Gemini quota: {quota['unavailable_reason']}; the job allows the "
            "template engine"
        )
    return {**job, "next_chunk": next_chunk}


def _with_progress(row: dict[str, Any]) -> dict[str, Any]:
    counts = (
        "done",
        "failed",
        "skipped",
        "remaining",
        "gemini",
        "template",
        "mixed",
        "drafts",
    )
    job = {name: value for name, value in row.items() if name not in counts}
    job["progress"] = {
        "products_total": row["products_total"],
        "done": row["done"],
        "failed": row["failed"],
        "skipped": row["skipped"],
        "remaining": row["remaining"],
        "by_engine": {name: row[name] for name in ("gemini", "template", "mixed")},
        "drafts": row["drafts"],
    }
    return job


def _quota_policy(body: dict[str, Any]) -> str:
    value = body.get("when_quota_spent", DEFAULT_QUOTA_POLICY)
    if value not in QUOTA_POLICIES:
        raise InvalidRequest(
            "'when_quota_spent' must be \"wait\" (resume when Gemini's quota frees) "
            'or "template" (go on with the template engine)',
            field="when_quota_spent",
        )
    return value


def _product_ids(tx: Transaction, brand_id: str, refs: Any) -> list[str]:
    """Resolve "all" or a list of ids and SKUs to product ids, in order."""
    if refs == "all":
        found = tx.rows(
            SELECT_ALL_PRODUCTS, brand_id=brand_id, limit=JOB_PRODUCTS_MAX + 1
        )
        if not found:
            raise Conflict(_nothing_on_sale(tx, brand_id), field="products")
        if len(found) > JOB_PRODUCTS_MAX:
            raise InvalidRequest(
                f"the catalog has more than {JOB_PRODUCTS_MAX} products; list them "
                "in several jobs",
                field="products",
            )
        return [str(row["id"]) for row in found]

    if not isinstance(refs, list) or not refs:
        raise InvalidRequest(
            "'products' must be \"all\" or a non-empty list of ids or SKUs",
            field="products",
        )
    if len(refs) > JOB_PRODUCTS_MAX:
        raise InvalidRequest(
            f"at most {JOB_PRODUCTS_MAX} products per job", field="products"
        )
    for index, ref in enumerate(refs):
        # Blank as the spec's not-blank pattern means it (validation.NOT_BLANK).
        if not isinstance(ref, str) or validation.is_blank(ref):
            raise InvalidRequest(
                "each product must be an id or a SKU", field=f"products[{index}]"
            )
    # Stripped as a stored SKU was (validation.text), so " P" finds "P".
    return _resolve(tx, brand_id, [ref.strip(validation.BLANK) for ref in refs])


def _resolve(tx: Transaction, brand_id: str, refs: list[str]) -> list[str]:
    # One query for the whole list; an id-shaped ref is an id first, as in
    # catalog.find_product, then a SKU.
    ids = {ref: ref.lower() for ref in refs if UUID_PATTERN.fullmatch(ref)}
    rows = tx.rows(
        SELECT_PRODUCTS_BY_REF, brand_id=brand_id, refs=[*refs, *ids.values()]
    )
    by_id = {row["id"]: row["id"] for row in rows}
    by_sku = {row["sku"]: row["id"] for row in rows}
    retired = {row["id"]: row["retired_at"] is not None for row in rows}

    product_ids: list[str] = []
    first_index: dict[str, int] = {}
    for index, ref in enumerate(refs):
        product_id = by_id.get(ids.get(ref, "")) or by_sku.get(ref)
        if product_id is None:
            raise NotFound(f"product {ref!r} not found", field=f"products[{index}]")
        if retired[product_id]:
            raise Conflict(catalog.retired_refusal(ref), field=f"products[{index}]")
        if product_id in first_index:
            raise InvalidRequest(
                f"names the same product as products[{first_index[product_id]}]",
                field=f"products[{index}]",
            )
        first_index[product_id] = index
        product_ids.append(product_id)
    return product_ids


def _nothing_on_sale(tx: Transaction, brand_id: str) -> str:
    """Why "all" found no product: an empty catalog, or every one passed over."""
    passed_over = tx.one(COUNT_PASSED_OVER, brand_id=brand_id)
    if not passed_over["retired"] and not passed_over["sold_out"]:
        return (
            "the brand's catalog has no products; import them with "
            "POST /v1/products first"
        )
    return (
        f"the brand's catalog has no product on sale: {passed_over['retired']} "
        f"retired, {passed_over['sold_out']} sold out (stock 0, counted by the "
        "store); list a product to caption it anyway, unless it is retired"
    )


def _check_images(tx: Transaction, product_ids: list[str]) -> None:
    """Refuse an image job now for a product without an image, as captions do."""
    missing = tx.one(SELECT_FIRST_WITHOUT_IMAGE, ids=product_ids)
    if missing is not None:
        raise InvalidRequest(
            f"an image post needs the product's image, and {missing['sku']!r} has "
            "none in the catalog",
            field="kind",
        )


def _check_language(
    options: dict[str, Any],
    brand: dict[str, Any],
    gemini_configured: bool,
    when_quota_spent: str,
) -> None:
    """Refuse a job no engine could finish: only Gemini writes other languages."""
    language = validation.language(options, default=brand["language"])
    if language == "en":
        return
    if not gemini_configured:
        raise InvalidRequest(
            f"captions in {language!r} need Gemini (GEMINI_API_KEY); the template "
            "engine writes English",
            field="language",
        )
    if when_quota_spent == "template":
        raise InvalidRequest(
            f"the template engine writes English only: a job in {language!r} must "
            'wait for Gemini\'s quota ("when_quota_spent": "wait")',
            field="when_quota_spent",
        )


# --- The command ----------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Queue a caption job for a brand (or take up one) and drain it, with progress."""
    from cartcast import caption_drain, runtime
    from cartcast.errors import CartcastError, ConfigurationError

    arguments = _parse_arguments(argv)
    try:
        current = runtime.current()
    except ConfigurationError as error:
        print(f"refused: {error}", file=sys.stderr)
        return 2

    try:
        with current.database.transaction() as tx:
            brand_id = tx.scalar(SELECT_BRAND_BY_SLUG, slug=arguments.brand)
            if brand_id is None:
                print(f"no brand with the slug {arguments.brand!r}", file=sys.stderr)
                return 2
            brand_id = str(brand_id)
            if arguments.job:
                job_id = validation.identifier(arguments.job, "--job")
                job = get_job(tx, brand_id=brand_id, job_id=job_id)
                refuse_while_offboarding(tx, brand_id=brand_id)
            else:
                job = enqueue(
                    tx,
                    brand_id=brand_id,
                    body=_request_body(arguments),
                    requested_by="cli",
                    now=current.clock.now(),
                    gemini_configured=current.gemini() is not None,
                )
        print(f"caption job {job['id']}: {_progress_line(job)}", flush=True)

        outcome = caption_drain.drain(
            current,
            budget_s=float("inf"),
            job_id=str(job["id"]),
            wait=caption_drain.short_waits_only(current.clock),
            on_chunk=lambda chunk: _print_chunk(current, brand_id, chunk),
        )
        with current.database.transaction() as tx:
            job = get_job(tx, brand_id=brand_id, job_id=str(job["id"]))
    except CartcastError as error:
        field = getattr(error, "field", None)
        print(f"refused: {error}" + (f" ({field})" if field else ""), file=sys.stderr)
        return 2
    finally:
        current.close()

    print(f"caption job {job['id']} is {job['state']}: {_progress_line(job)}")
    if job["state"] in ACTIVE_STATES and outcome["waiting_until"] is not None:
        print(
            f"Gemini's quota frees at {outcome['waiting_until'].isoformat()}; the "
            "scheduled drain_caption_jobs takes the job up then, or run again with "
            f"--brand {arguments.brand} --job {job['id']}"
        )
    return 0


def _parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    # Imported here: the api function imports this module, and pays no argparse.
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m cartcast.caption_jobs", description=main.__doc__
    )
    parser.add_argument("--brand", required=True, help="the brand's slug")
    parser.add_argument(
        "--products", default="all", help='"all", or SKUs or ids separated by commas'
    )
    parser.add_argument("--campaign")
    parser.add_argument("--tone")
    parser.add_argument("--variants", type=int)
    parser.add_argument("--language")
    parser.add_argument(
        "--when-quota-spent", choices=QUOTA_POLICIES, default=DEFAULT_QUOTA_POLICY
    )
    parser.add_argument("--job", help="drain this job of the brand instead")
    return parser.parse_args(argv)


def _request_body(arguments: argparse.Namespace) -> dict[str, Any]:
    products: Any = arguments.products
    if products != "all":
        products = [ref.strip() for ref in products.split(",")]
    body = {"products": products, "when_quota_spent": arguments.when_quota_spent}
    for name in ("campaign", "tone", "variants", "language"):
        if getattr(arguments, name) is not None:
            body[name] = getattr(arguments, name)
    return body


def _print_chunk(current: Any, brand_id: str, chunk: dict[str, Any]) -> None:
    with current.database.transaction() as tx:
        job = get_job(tx, brand_id=brand_id, job_id=chunk["job_id"])
    engines = ", ".join(f"{name} {n}" for name, n in chunk.get("by_engine", {}).items())
    written = f"+{chunk['products']}" + (f" ({engines})" if engines else "")
    if chunk["failed"]:
        written += f", {chunk['failed']} failed"
    print(f"  {written}: {_progress_line(job)}", flush=True)


def _progress_line(job: dict[str, Any]) -> str:
    progress = job["progress"]
    engines = ", ".join(
        f"{name} {count}" for name, count in progress["by_engine"].items() if count
    )
    return (
        f"{progress['done']}/{progress['products_total']} done, "
        f"{progress['remaining']} remaining, {progress['failed']} failed"
        + (f", {progress['skipped']} skipped" if progress["skipped"] else "")
        + (f" ({engines})" if engines else "")
    )


if __name__ == "__main__":
    sys.exit(main())
