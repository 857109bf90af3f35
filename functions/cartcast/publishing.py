"""Publishing due posts on X, each at most once.

X takes no idempotency key, so the order of writes is what prevents doubles
(decision 0003):

1. claim: due posts move from `scheduled` to `publishing` with a lease, under
   `FOR UPDATE SKIP LOCKED`, and an attempt is recorded, in one commit; an
   overlapping run or a redelivered tick finds nothing left to claim;
2. intent: just before the request leaves, the attempt's `sent_at` is committed;
3. call X once;
4. record the answer: `published` with X's id, `failed` with the reason, back to
   `scheduled` when X said "not now" (rate limit, outage), or `unconfirmed` when the
   request may have reached X but no answer came.

X failing before it could have taken the post (a 5xx, no connection) sends it back
to `scheduled` with a not-before time drawn by retries.py (exponential backoff with
full jitter); past CARTCAST_PUBLISH_RETRIES retries it fails. X refusing the
account's credentials (a 401, a credentials 403) disconnects the account
(connections.py): the brand's queued posts are held, one alert goes out, and a new
token puts them back. A reply X did not let the app make fails for good.

Before claiming, a `scheduled` post due more than CARTCAST_MISSED_MAX_LATE_S before
the tick is held with the sweeper's reason (sweeping.py), whichever job reaches it
first: a tick that comes back after an outage, or after an account is reconnected,
does not send posts many hours late.

A post whose lease expired in `publishing` goes back to `scheduled` if its attempt
never reached step 2 (it was never sent), and becomes `unconfirmed` otherwise:
sending it again could post it twice. `reconciling.py` settles unconfirmed posts
from the account's own timeline before each run claims: it adopts X's id when the
post is there, and re-queues it only when a read taken CARTCAST_RECONCILE_DELAY_S
after sending does not show it.

A 429 pauses only the account that got it, until the reset X announced; the other
brands' posts go on, and every run checks the pause again before each send. Before
each send the attempt also renews its lease, and a run that finds its lease taken
(it outlived it) sends nothing more. Due posts of a brand with no X account are
held, with the reason, instead of waiting silently.

Just before sending, the product is read from the catalog again and the copy
checked against it (publish_checks.py): a claim the catalog no longer supports, or
a product gone from it, holds the post with the reason and nothing reaches X.

Kinds (post_kinds.py): an image post first fetches the product's image (images.py)
and uploads it with its alt text, which creates nothing on X and may be repeated,
once the turn's conditions still hold (a pause recorded since the claim sends it
back without a fetch or an upload); a
poll is one call with its options. A thread is one X call per part, each a reply to
the one before, and each part has its own intent and X id (`post_parts`): a retry
resumes after the last confirmed part and never sends one twice, and a lease that
runs out with a part in flight makes the post `unconfirmed` (decision 0008).
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import datetime as dt
import threading
from decimal import Decimal
from typing import Any

from cartcast import (
    accounts,
    attempts,
    connections,
    costs,
    crisis,
    offboarding,
    post_limits,
    publish_checks,
)
from cartcast.errors import CartcastError, PermanentError, RateLimited, TransientError
from cartcast.logs import fields

# A post whose lease ran out was never sent when its attempt wrote no intent; a
# thread, when no part is in flight (intent written, no X id): its confirmed parts
# stay, and the next run resumes after them.
EXPIRE_LEASES = """
WITH expired AS (
    SELECT p.id, a.id IS NOT NULL AND (a.sent_at IS NULL OR (p.kind = 'thread'
        AND NOT EXISTS (SELECT 1 FROM post_parts pp WHERE pp.post_id = p.id
            AND pp.sent_at IS NOT NULL AND pp.x_post_id IS NULL))) AS unsent
    FROM posts p
    LEFT JOIN publish_attempts a ON a.id = p.lease_attempt_id
    WHERE p.state = 'publishing' AND p.lease_until < :now
)
UPDATE posts p SET
    state = CASE WHEN e.unsent THEN 'scheduled' ELSE 'unconfirmed' END,
    failure_reason = CASE WHEN e.unsent THEN NULL
        ELSE 'publisher stopped after sending to X; check the timeline' END,
    lease_until = NULL, updated_at = :now
FROM expired e
WHERE p.id = e.id AND p.state = 'publishing' AND p.lease_until < :now
RETURNING p.id, p.state
"""
HOLD_UNCONNECTED = """
UPDATE posts p SET state = 'held', updated_at = :now, failure_reason = :reason
FROM brands b
WHERE b.id = p.brand_id AND p.state = 'scheduled' AND p.scheduled_at <= :as_of
  AND (b.x_access_token IS NULL OR b.x_user_id IS NULL)
RETURNING p.id
"""
# A post held by the brand's monthly X budget goes back to its queue once its price
# fits again: the budget was raised, or removed, or a new month began in the
# brand's time zone. A thread's price is that of its parts not yet on X, as the
# publisher's own check (_why_not_now) counts it; that check decides again under
# the lock.
RELEASE_BUDGET_HOLDS = """
UPDATE posts p SET state = 'scheduled', failure_reason = NULL, updated_at = :now
FROM brands b
WHERE b.id = p.brand_id AND p.state = 'held'
  AND p.failure_reason LIKE :budget_reason_pattern
  AND (b.monthly_x_budget_usd IS NULL OR b.monthly_x_budget_usd - (
      SELECT COALESCE(sum(c.usd), 0) FROM cost_ledger c
      WHERE c.brand_id = b.id AND c.service = 'x'
        AND c.occurred_at >= (date_trunc('month', :now AT TIME ZONE b.time_zone)
            AT TIME ZONE b.time_zone))
    >= CASE WHEN p.kind = 'thread' THEN (
            SELECT COALESCE(sum(CASE WHEN pp.has_link
                THEN CAST(:post_with_url_usd AS numeric)
                ELSE CAST(:post_usd AS numeric) END), 0)
            FROM post_parts pp WHERE pp.post_id = p.id AND pp.x_post_id IS NULL)
        WHEN p.in_reply_to IS NOT NULL THEN CAST(:reply_usd AS numeric)
        WHEN p.link IS NULL THEN CAST(:post_usd AS numeric)
        ELSE CAST(:post_with_url_usd AS numeric) END)
RETURNING p.id
"""
# Its brand conditions are what console_status.SELECT_REPLY_HOLDS names to a
# person who queues a reply; tests/test_console.py pins the two together.
CLAIM_DUE = """
WITH due AS (
    SELECT p.id FROM posts p
    JOIN brands b ON b.id = p.brand_id
    WHERE p.state = 'scheduled' AND p.scheduled_at <= :as_of
      AND b.x_access_token IS NOT NULL AND b.x_user_id IS NOT NULL
      AND (b.x_posts_paused_until IS NULL OR b.x_posts_paused_until <= :now)
      AND (b.x_own_app OR NOT EXISTS (SELECT 1 FROM x_app_pauses ap
          WHERE ap.app = 'shared' AND ap.posts_paused_until > :now))
      AND (p.not_before IS NULL OR p.not_before <= :now)
      AND b.x_disconnected_at IS NULL AND b.offboarding_requested_at IS NULL
      AND (b.publishing_paused_at IS NULL OR p.in_reply_to IS NOT NULL)
      AND NOT EXISTS (SELECT 1 FROM publishing_pause)
    ORDER BY p.scheduled_at, p.id
    LIMIT :batch_size
    FOR UPDATE OF p SKIP LOCKED
)
UPDATE posts p SET state = 'publishing', lease_until = :lease_until,
    failure_reason = NULL, updated_at = :now
FROM due, brands b
WHERE p.id = due.id AND b.id = p.brand_id
RETURNING p.id, p.brand_id, p.product_id, p.kind, p.engine, p.text, p.link,
    p.poll_options, p.poll_duration_minutes, p.image_alt_text, p.scheduled_at,
    p.in_reply_to, b.x_access_token, b.x_token_expires_at, b.currency
"""
# One attempt per claimed post, each holding its post's lease: one statement for
# the whole batch, not two per post (the publishing bench counts round trips).
START_ATTEMPTS = """
WITH started AS (
    INSERT INTO publish_attempts (post_id, started_at)
    SELECT post_id, :now FROM unnest(CAST(:post_ids AS uuid[])) AS post_id
    RETURNING id, post_id
)
UPDATE posts p SET lease_attempt_id = started.id
FROM started
WHERE p.id = started.post_id
RETURNING p.id, started.id AS attempt_id
"""
# Just before sending: the attempt must still hold a live lease, the account must
# not be paused (another run may have met a 429 meanwhile, or a person paused the
# brand's publishing: crisis.py; replies still go), nor the deployment (the
# operator's pause, publish_schedule.py: replies too), nor disconnected nor leaving
# (offboarding.py), nor the post a reply whose mention's author had their data
# removed meanwhile (author_data.py: it comes back and sql/041 cancels it), and
# the brand's token must still be the one this run read (a reconnection replaces
# it). The lease is renewed, so a long batch never loses the posts it has not
# reached yet, and the attempt's intent (`sent_at`) is written in the same
# statement: both or neither. The shared app's pause (x_app_pauses) is not read
# here, on purpose: it is only ever the governor's own note that the app's
# 24-hour window is full (post_limits.py), and the turn counts that window itself,
# under the app's lock, before its commit (_commit_intent). A turn the pause
# refused would stop a thread half-way (and name a lost lease) when the window
# has room for its remaining parts, which the thread's first part made sure of.
TAKE_TURN = """
WITH turn AS (
    UPDATE posts p SET lease_until = :lease_until, updated_at = :now
    FROM brands b
    WHERE p.id = :post_id AND p.lease_attempt_id = :attempt_id
      AND p.state = 'publishing' AND p.lease_until > :now AND b.id = p.brand_id
      AND p.cancel_if_unsent IS NULL
      AND (b.x_posts_paused_until IS NULL OR b.x_posts_paused_until <= :now)
      AND b.x_access_token = :token AND b.x_disconnected_at IS NULL
      AND b.offboarding_requested_at IS NULL
      AND (b.publishing_paused_at IS NULL OR p.in_reply_to IS NOT NULL)
      AND NOT EXISTS (SELECT 1 FROM publishing_pause)
    RETURNING p.id
)
UPDATE publish_attempts a SET sent_at = :now
FROM turn
WHERE a.id = :attempt_id
RETURNING turn.id
"""
# TAKE_TURN's conditions, read alone (tests/test_post_kinds.py pins the two
# together): an image post checks them before it fetches the product's image and
# uploads it to X, so a pause another send of the run recorded (a 429, a refused
# token) or the operator's keeps it from calling X at all.
TURN_LOOKS_CLEAR = """
SELECT p.id FROM posts p, brands b
    WHERE p.id = :post_id AND p.lease_attempt_id = :attempt_id
      AND p.state = 'publishing' AND p.lease_until > :now AND b.id = p.brand_id
      AND p.cancel_if_unsent IS NULL
      AND (b.x_posts_paused_until IS NULL OR b.x_posts_paused_until <= :now)
      AND b.x_access_token = :token AND b.x_disconnected_at IS NULL
      AND b.offboarding_requested_at IS NULL
      AND (b.publishing_paused_at IS NULL OR p.in_reply_to IS NOT NULL)
      AND NOT EXISTS (SELECT 1 FROM publishing_pause)
"""
# The operator's pause of the whole deployment (publish_schedule.py, sql/050).
SELECT_DEPLOYMENT_PAUSE = "SELECT paused_at, paused_by FROM publishing_pause"
# The intent alone: what a publisher that died right after writing it leaves.
MARK_SENT = "UPDATE publish_attempts SET sent_at = :now WHERE id = :attempt_id"
SELECT_PARTS = """
SELECT position, text, has_link, sent_at, x_post_id FROM post_parts
WHERE post_id = :post_id ORDER BY position
"""
# A thread's parts not yet on X from `position` on: the budget and X's windows
# must have room for all of them before the first goes.
REST_OF_THREAD = """
SELECT position, has_link FROM post_parts
WHERE post_id = :post_id AND position >= :position AND x_post_id IS NULL
ORDER BY position
"""
MARK_PART_SENT = """
UPDATE post_parts SET sent_at = :now
WHERE post_id = :post_id AND position = :position AND x_post_id IS NULL
"""
# X said "not now" (429, 5xx): the part was not created, and may be sent again.
CLEAR_PART_SENT = """
UPDATE post_parts SET sent_at = NULL
WHERE post_id = :post_id AND position = :position AND x_post_id IS NULL
"""
# A thread is known on X by its first part.
FIRST_PART_ID = (
    "SELECT x_post_id FROM post_parts WHERE post_id = :post_id AND position = 0"
)
MARK_PART_PUBLISHED = """
UPDATE post_parts SET x_post_id = :x_post_id
WHERE post_id = :post_id AND position = :position
"""
FINISH_ATTEMPT = """
UPDATE publish_attempts SET finished_at = :now, outcome = :outcome,
    x_post_id = :x_post_id, error = :error, x_status = :x_status,
    error_class = :error_class
WHERE id = :attempt_id
"""
MARK_DUPLICATE = (
    "UPDATE publish_attempts SET refused_as_duplicate = true WHERE id = :attempt_id"
)
MARK_PUBLISHED = """
UPDATE posts SET state = 'published', x_post_id = :x_post_id, published_at = :now,
    lease_until = NULL, failure_reason = NULL, updated_at = :now
WHERE id = :post_id AND lease_attempt_id = :attempt_id
  AND state IN ('publishing', 'unconfirmed')
"""
# A post X created, in one statement: the post published, its attempt finished and
# its reserved price confirmed in the ledger (the upsert of costs.INSERT_COST, which
# turns the reservation into the charge). Data-modifying CTEs run whether or not
# the final statement reads them.
RECORD_PUBLISHED = """
WITH published AS (
    UPDATE posts SET state = 'published', x_post_id = :x_post_id,
        published_at = :now, lease_until = NULL, failure_reason = NULL,
        updated_at = :now
    WHERE id = :post_id AND lease_attempt_id = :attempt_id
      AND state IN ('publishing', 'unconfirmed')
), finished AS (
    UPDATE publish_attempts SET finished_at = :now, outcome = 'published',
        x_post_id = :x_post_id, error = NULL, x_status = :x_status,
        error_class = NULL
    WHERE id = :attempt_id
)
INSERT INTO cost_ledger (brand_id, occurred_at, service, operation, units, usd, ref,
    reserved)
VALUES (:brand_id, :now, 'x', :operation, 1, :usd, :ref, false)
ON CONFLICT (service, operation, ref) DO UPDATE SET reserved = false
WHERE cost_ledger.reserved
"""
# The result's commit need not wait for the disk (decision 0015): a result lost in a
# database crash leaves the post `publishing` with its intent written, which turns
# `unconfirmed` when the lease ends and is adopted from the timeline. The intent's
# commit, before X is called, stays synchronous.
RESULT_WITHOUT_FLUSH = "SET LOCAL synchronous_commit = off"
MARK_OUTCOME = """
UPDATE posts SET state = :state, failure_reason = :reason, lease_until = NULL,
    not_before = :not_before, updated_at = :now
WHERE id = :post_id AND lease_attempt_id = :attempt_id AND state = 'publishing'
"""
# One more failure of X for a post this attempt still holds.
# What a person reading an unconfirmed post's reason should know (decision 0003).
UNCONFIRMED_NEXT = (
    "X may have it: each publish run looks for it on the account's timeline and "
    "never sends it again before that; to settle it by hand, "
    "POST /v1/posts/{post_id}/settle"
)
RESET_TRANSIENT_FAILURES = "UPDATE posts SET transient_failures = 0 WHERE id = :post_id"
COUNT_TRANSIENT_FAILURE = """
UPDATE posts SET transient_failures = transient_failures + 1
WHERE id = :post_id AND lease_attempt_id = :attempt_id AND state = 'publishing'
RETURNING transient_failures
"""


def deployment_pause(runtime: Any) -> dict[str, Any] | None:
    """Return the operator's pause of the whole deployment, or None.

    One lone read, taken before a run does anything: while it stands, a tick
    publishes nothing and its posts stay due (decision 0077). The claim and each
    send's turn read it again, for a pause that lands during the run.
    """
    return runtime.database.reads().one(SELECT_DEPLOYMENT_PAUSE)


def publish_due(runtime: Any, *, as_of: dt.datetime) -> dict[str, int]:
    """Publish every post due at `as_of`; return counts by outcome.

    A claimed batch is sent by up to CARTCAST_PUBLISH_WORKERS threads, one account
    at a time per thread and the batch's posts of an account in their order
    (decision 0016): most of a post's time is spent waiting for X, and one
    account's sends should keep their order and see its own 429 before its next
    post. Every step of a post (turn, intent, call, result) is the same as when
    sent alone. Two overlapping runs may each claim some of one account's due
    posts and send them side by side; each still goes once.
    """
    claimed, attempts, counts = _claim(runtime, as_of)
    refused, unavailable = _use_fresh_tokens(runtime, claimed)
    for post in refused:
        # X refused to refresh the account's token: the post is held already.
        _finish(
            runtime,
            post,
            attempts[post["id"]],
            "held",
            "held",
            "X refused to refresh the account's token",
            error_class="credentials",
        )
        counts["held"] += 1
        claimed.remove(post)
    for post, error in unavailable:
        # The token expired and X's token endpoint did not answer: nothing was
        # sent, so the post waits a backoff; the other accounts' posts go on.
        reason = f"refreshing the account's token: {error}"
        counts[
            _retry_later(runtime, post, attempts[post["id"]], reason, error=error)
        ] += 1
        claimed.remove(post)

    queues: dict[Any, list[dict[str, Any]]] = {}
    for post in sorted(claimed, key=lambda row: (row["scheduled_at"], str(row["id"]))):
        queues.setdefault(post["brand_id"], []).append(post)
    for outcome in _send_queues(runtime, list(queues.values()), attempts):
        counts[outcome] += 1
    counts["deferred"] += counts.pop("paused") + counts.pop("lost")
    return counts


def _use_fresh_tokens(
    runtime: Any, claimed: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], TransientError]]]:
    """Refresh the tokens of the claimed posts' accounts that expire soon, one
    refresher per account across every run (x_oauth.refresh_tokens), and give the
    posts the token to send with.

    Returns the posts of accounts X refused the refresh for (the account is
    disconnected and those posts were held with it, connections.py), and the
    posts of accounts whose token expired while X's token endpoint was
    unavailable, each with that error. Nothing is imported for a batch whose
    tokens are far from expiry or set by hand.
    """
    margin = dt.timedelta(seconds=runtime.settings.x_token_refresh_margin_s)
    due = runtime.clock.now() + margin
    expiring = {
        post["brand_id"]: post
        for post in claimed
        if post["x_token_expires_at"] is not None and post["x_token_expires_at"] <= due
    }
    if not expiring:
        return [], []
    from cartcast import x_oauth

    tokens: dict[Any, str | None | TransientError] = {}
    for brand_id in expiring:
        try:
            tokens[brand_id] = x_oauth.refresh_tokens(runtime, brand_id=str(brand_id))
        except TransientError as error:
            tokens[brand_id] = error
    refused, unavailable = [], []
    for post in claimed:
        if post["brand_id"] not in tokens:
            continue
        token = tokens[post["brand_id"]]
        if token is None:
            refused.append(post)
        elif isinstance(token, TransientError):
            unavailable.append((post, token))
        else:
            post["x_access_token"] = token
    return refused, unavailable


def _send_queues(
    runtime: Any, queues: list[list[dict[str, Any]]], attempts: dict
) -> list[str]:
    """Send each account's queue in order, several accounts at once; return every
    post's outcome. The first error stops every worker before its next post and is
    raised: the posts not reached keep their claim, unsent, and go back to
    `scheduled` when their lease ends, as a run that died would leave them."""
    workers = min(runtime.settings.publish_workers, len(queues))
    if workers <= 1:
        return [
            _publish_one(runtime, post, attempts[post["id"]])
            for queue in queues
            for post in queue
        ]

    stop = threading.Event()

    def send(queue: list[dict[str, Any]]) -> list[str]:
        outcomes = []
        for post in queue:
            if stop.is_set():
                break
            try:
                outcomes.append(_publish_one(runtime, post, attempts[post["id"]]))
            except BaseException:
                stop.set()
                raise
        return outcomes

    # Each task runs in a copy of this context: the actor that post events record
    # (post_events.acting_as) is a context variable.
    with concurrent.futures.ThreadPoolExecutor(
        max_workers=workers, thread_name_prefix="cartcast-publish"
    ) as pool:
        futures = [
            pool.submit(contextvars.copy_context().run, send, queue) for queue in queues
        ]
    outcomes = []
    for future in futures:
        outcomes.extend(future.result())
    return outcomes


def _claim(runtime: Any, as_of: dt.datetime) -> tuple[list[dict], dict, dict[str, int]]:
    from cartcast import sweeping

    settings, now = runtime.settings, runtime.clock.now()
    late_before = as_of - dt.timedelta(seconds=settings.missed_max_late_s)
    counts = dict.fromkeys(
        ("published", "failed", "unconfirmed", "deferred", "paused", "held", "lost"),
        0,
    )
    with runtime.database.transaction() as tx:
        expired = tx.rows(EXPIRE_LEASES, now=now)
        counts["unconfirmed"] += sum(row["state"] == "unconfirmed" for row in expired)
        released = tx.rows(
            RELEASE_BUDGET_HOLDS,
            budget_reason_pattern=costs.BUDGET_REASON_START + "%",
            post_usd=settings.x_prices_usd["post"],
            post_with_url_usd=settings.x_prices_usd["post_with_url"],
            reply_usd=settings.x_prices_usd["summoned_reply"],
            now=now,
        )
        # After the budget's release, so a post it frees weeks late is held too.
        too_late = sweeping.hold_too_late(tx, late_before=late_before, now=as_of)
        counts["held"] = too_late
        counts["held"] += len(
            tx.rows(
                HOLD_UNCONNECTED,
                as_of=as_of,
                now=now,
                reason=connections.NO_ACCOUNT_REASON,
            )
        )
        # Posts scheduled since their brand was paused, disconnected by X or
        # asked to leave wait with the others the cause held.
        counts["held"] += crisis.hold_while_paused(tx, now=now)
        counts["held"] += connections.hold_while_disconnected(tx, now=now)
        counts["held"] += offboarding.hold_while_offboarding(tx, now=now)
        claimed = tx.rows(
            CLAIM_DUE,
            as_of=as_of,
            batch_size=settings.publish_batch_size,
            lease_until=now + dt.timedelta(seconds=settings.publish_lease_s),
            now=now,
        )
        attempts = {}
        if claimed:
            started = tx.rows(
                START_ATTEMPTS, post_ids=[row["id"] for row in claimed], now=now
            )
            attempts = {row["id"]: row["attempt_id"] for row in started}
    if expired or counts["held"] or released:
        runtime.log.warning(
            "posts recovered, held or released from a budget hold",
            extra=fields(
                expired=len(expired),
                held=counts["held"],
                too_late=too_late,
                released=len(released),
            ),
        )
    return claimed, attempts, counts


def _publish_one(runtime: Any, post: dict[str, Any], attempt_id: int) -> str:
    """Send one claimed post of any kind; return the outcome counted by publish_due."""
    if post["kind"] == "thread":
        return _publish_thread(runtime, post, attempt_id)

    media_ids = None
    if post["kind"] == "image":
        # The image comes from the product the catalog has now, uploaded before the
        # intent: this post kind reads the catalog in a transaction of its own.
        with runtime.database.transaction() as tx:
            verdict = publish_checks.recheck(tx, post)
        if verdict.hold_reason is not None:
            return _hold(runtime, post, attempt_id, verdict.hold_reason, "held_claims")
        refused = _turn_refused_before_upload(runtime, post, attempt_id)
        if refused is not None:
            return refused
        media_ids, outcome = _upload_image(runtime, post, attempt_id, verdict.product)
        if outcome is not None:
            return outcome

    # The token is opened before the intent: a function that cannot open it (no
    # token key) fails with nothing recorded as sent, and the post goes back to
    # `scheduled` when its lease ends instead of waiting for the reconciler.
    client = runtime.x_client(post["x_access_token"])

    # Commit the intent first: if this write fails, nothing was sent, and the post
    # goes back to `scheduled` when its lease ends. A text or poll post's catalog
    # check runs in the same transaction.
    refused = _take_turn(runtime, post, attempt_id, recheck=post["kind"] != "image")
    if refused is not None:
        return refused

    try:
        created = client.create_post(
            post["text"],
            has_link=bool(post["link"]),
            media_ids=media_ids,
            poll_options=post["poll_options"],
            poll_duration_minutes=post["poll_duration_minutes"],
            in_reply_to=post["in_reply_to"],
        )
    except (TransientError, PermanentError) as error:
        return _settle_refusal(runtime, post, attempt_id, error)

    # Logged before the write, so X's id survives a database failure in the logs.
    runtime.log.info(
        "X accepted a post", extra=fields(post_id=str(post["id"]), x_post_id=created.id)
    )
    price_class, usd, ref = _cost_of(runtime, post, None)
    now = runtime.clock.now()
    with runtime.database.transaction() as tx:
        tx.execute(RESULT_WITHOUT_FLUSH)
        tx.execute(
            RECORD_PUBLISHED,
            post_id=post["id"],
            attempt_id=attempt_id,
            x_post_id=created.id,
            x_status=created.status,
            now=now,
            brand_id=post["brand_id"],
            operation=price_class,
            usd=usd,
            ref=ref,
        )
    return "published"


def _publish_thread(runtime: Any, post: dict[str, Any], attempt_id: int) -> str:
    """Send a thread's parts in order, each a reply to the last, resuming after any
    part already on X; each part writes its own intent before it leaves."""
    with runtime.database.transaction() as tx:
        verdict = publish_checks.recheck(tx, post)
        parts = tx.rows(SELECT_PARTS, post_id=post["id"])
    if verdict.hold_reason is not None:
        return _hold(runtime, post, attempt_id, verdict.hold_reason, "held_claims")
    client = runtime.x_client(post["x_access_token"])

    on_x: list[str] = []
    last: Any = None
    for part in parts:
        if part["x_post_id"] is not None:
            on_x.append(part["x_post_id"])
            continue
        if part["sent_at"] is not None:
            # Sent before without an answer recorded: X may have it. Never again.
            reason = f"part {part['position'] + 1} may be on X already"
            _finish(
                runtime,
                post,
                attempt_id,
                "unconfirmed",
                "unknown",
                reason,
                error_class="part_in_doubt",
            )
            return "unconfirmed"
        refused = _take_turn(runtime, post, attempt_id, part=part["position"])
        if refused is not None:
            return refused
        try:
            created = client.create_post(
                part["text"],
                has_link=part["has_link"],
                in_reply_to=on_x[-1] if on_x else None,
            )
        except (TransientError, PermanentError) as error:
            return _settle_refusal(
                runtime, post, attempt_id, error, part=part, of=parts
            )
        _record_part(runtime, post, part, created.id)
        on_x.append(created.id)
        last = created

    # The thread is known on X by its first part; the attempt keeps the status of
    # the last part it sent (None when every part was already on X).
    status = last.status if last is not None else None
    with runtime.database.transaction() as tx:
        _record_published(
            tx, post, attempt_id, on_x[0], runtime.clock.now(), x_status=status
        )
    return "published"


def _record_part(
    runtime: Any, post: dict[str, Any], part: dict[str, Any], x_post_id: str
) -> None:
    """Keep a thread part's X id and what it cost, in one commit."""
    runtime.log.info(
        "X accepted a thread part",
        extra=fields(
            post_id=str(post["id"]), part=part["position"], x_post_id=x_post_id
        ),
    )
    now = runtime.clock.now()
    with runtime.database.transaction() as tx:
        tx.execute(RESULT_WITHOUT_FLUSH)
        tx.execute(
            MARK_PART_PUBLISHED,
            post_id=post["id"],
            position=part["position"],
            x_post_id=x_post_id,
        )
        _record_post_cost(runtime, tx, post, part, now)


def _cost_of(
    runtime: Any, post: dict[str, Any], part: dict[str, Any] | None
) -> tuple[str, Any, str]:
    """Return the price class, price and ledger ref of one post or thread part."""
    has_link = part["has_link"] if part is not None else bool(post["link"])
    price_class = costs.post_class(has_link)
    if part is None and post.get("in_reply_to"):
        # A reply to a mention that summoned the brand (inbox.py); it has no link.
        price_class = costs.REPLY_CLASS
    usd = costs.price(runtime.settings.x_prices_usd, price_class)
    ref = str(post["id"]) if part is None else f"{post['id']}/{part['position']}"
    return price_class, usd, ref


def _record_post_cost(
    runtime: Any, tx: Any, post: dict[str, Any], part: dict[str, Any] | None, now: Any
) -> None:
    """Confirm what X charged for a post it created (its reservation, if any)."""
    price_class, usd, ref = _cost_of(runtime, post, part)
    costs.record(
        tx,
        brand_id=post["brand_id"],
        occurred_at=now,
        operation=price_class,
        units=1,
        usd=usd,
        ref=ref,
    )


def _record_published(
    tx: Any,
    post: dict[str, Any],
    attempt_id: int,
    x_post_id: str,
    now: Any,
    *,
    x_status: int | None,
) -> None:
    """Mark a thread published with its first part's X id."""
    tx.execute(
        MARK_PUBLISHED,
        post_id=post["id"],
        attempt_id=attempt_id,
        x_post_id=x_post_id,
        now=now,
    )
    tx.execute(
        FINISH_ATTEMPT,
        attempt_id=attempt_id,
        now=now,
        outcome="published",
        x_post_id=x_post_id,
        error=None,
        x_status=x_status,
        error_class=None,
    )


def _upload_image(
    runtime: Any,
    post: dict[str, Any],
    attempt_id: int,
    product: dict[str, Any] | None,
) -> tuple[list[str] | None, str | None]:
    """Fetch the product's image and upload it; return the media ids, or the outcome
    that ends this attempt. Nothing is on X yet, so every failure may be retried."""
    from cartcast import images

    settings = runtime.settings
    runtime.warn_of_direct_egress("product image fetches")
    try:
        image = images.fetch_image(
            product["image_url"],
            timeout_s=settings.x_timeout_s,
            loopback_only=settings.environment == "local",
            resolve=runtime.resolve,
            ca_file=runtime.ca_file,
        )
        client = runtime.x_client(post["x_access_token"])
        media_id = client.upload_image(
            image.data, media_type=image.media_type, alt_text=post["image_alt_text"]
        )
    except images.ImageUnavailable as error:
        return None, _hold(runtime, post, attempt_id, str(error), "held_image")
    except RateLimited as error:
        _pause_brand(runtime, post, attempt_id, error)
        return None, "paused"
    except TransientError as error:
        # No post exists yet, so even an upload whose answer was lost is retried.
        return None, _retry_later(runtime, post, attempt_id, str(error), error=error)
    except PermanentError as error:
        return None, _settle_refusal(runtime, post, attempt_id, error)
    return [media_id], None


def _settle_refusal(
    runtime: Any,
    post: dict[str, Any],
    attempt_id: int,
    error: CartcastError,
    *,
    part: dict[str, Any] | None = None,
    of: list[dict[str, Any]] | None = None,
) -> str:
    """Record what X's refusal, or silence, means for the post; return the outcome.

    For a thread's part, a "not now" (429, 5xx) or a refused token also withdraws
    the part's intent, since X created nothing, and a refusal names the part and
    what is already on X.
    """
    from cartcast.x import XRejected, XTimeout

    answer = {"error_class": attempts.error_class_of(error), "x_status": error.status}
    maybe_on_x = isinstance(error, XTimeout) or (
        isinstance(error, XRejected) and error.reason == "duplicate"
    )
    if not maybe_on_x:
        # X created nothing: the price reserved with the intent goes back.
        with runtime.database.transaction() as tx:
            costs.release(tx, ref=_cost_of(runtime, post, part)[2])
    disconnects = isinstance(error, XRejected) and error.disconnects
    if part is not None and type(error) is not XTimeout:
        if isinstance(error, TransientError) or disconnects:
            with runtime.database.transaction() as tx:
                tx.execute(
                    CLEAR_PART_SENT, post_id=post["id"], position=part["position"]
                )
    reason = str(error)
    if part is not None:
        sent = part["position"]
        reason = f"part {sent + 1} of {len(of)} ({sent} already on X): {reason}"

    if isinstance(error, XTimeout):
        _finish(runtime, post, attempt_id, "unconfirmed", "unknown", reason, **answer)
        return "unconfirmed"
    if isinstance(error, RateLimited):
        _pause_brand(runtime, post, attempt_id, error)
        return "paused"
    if isinstance(error, TransientError):
        on_x = part["position"] if part is not None else 0
        return _retry_later(
            runtime, post, attempt_id, reason, error=error, parts_on_x=on_x
        )
    if disconnects:
        return _disconnect(runtime, post, attempt_id, error, reason)
    if isinstance(error, XRejected) and error.reason == "duplicate":
        # X refuses a text the account already posted: most likely this very
        # post, by a run whose answer was lost. Settle it from the timeline, which
        # fails it if that post is not there (reconciling.py).
        _finish(runtime, post, attempt_id, "unconfirmed", "unknown", reason, **answer)
        with runtime.database.transaction() as tx:
            tx.execute(MARK_DUPLICATE, attempt_id=attempt_id)
        return "unconfirmed"
    _finish(runtime, post, attempt_id, "failed", "failed", reason, **answer)
    runtime.log.error(
        "X refused a post", extra=fields(post_id=str(post["id"]), reason=reason)
    )
    return "failed"


def _hold(
    runtime: Any, post: dict[str, Any], attempt_id: int, reason: str, error_class: str
) -> str:
    """Hold a claimed post, unsent, with the reason a person must act on."""
    _finish(runtime, post, attempt_id, "held", "held", reason, error_class=error_class)
    runtime.log.warning(
        "post held before sending", extra=fields(post_id=str(post["id"]), reason=reason)
    )
    return "held"


def _take_turn(
    runtime: Any,
    post: dict[str, Any],
    attempt_id: int,
    *,
    part: int | None = None,
    recheck: bool = False,
) -> str | None:
    """Renew the lease and commit the intent to send; None means send now.

    Otherwise return the outcome that ends this attempt, nothing sent:
    - "held": with `recheck`, the catalog no longer supports the copy
      (publish_checks.py), read in this same transaction;
    - "lost": the lease went to another run (this one outlived it), another run
      recorded a pause meanwhile, or the operator paused the deployment (error
      class `deployment_paused`); the post goes back to `scheduled`;
    - "held": the post's price would take the brand past its monthly X budget;
    - "paused": one of X's post windows is full (post_limits.py); the post goes
      back to `scheduled`, the brand or app waits until the window frees.

    Under the brand's row lock, in one commit: the budget check and the price's
    reservation in the ledger, the windows' check and the intent's row, and the
    intent itself (the attempt's `sent_at`, and the thread part's at `part`). The
    checks come before the turn, so a refusal writes no intent to take back.
    """
    now = runtime.clock.now()
    lease_until = now + dt.timedelta(seconds=runtime.settings.publish_lease_s)
    try:
        with runtime.database.transaction() as tx:
            refusal = _catalog_refusal(tx, post) if recheck else None
            if refusal is None:
                brand = post_limits.lock_brand(tx, post["brand_id"])
                rest = None
                if part is not None:
                    # This part comes first: it is not on X yet.
                    rest = [
                        _cost_of(runtime, post, row)
                        for row in tx.rows(
                            REST_OF_THREAD, post_id=post["id"], position=part
                        )
                    ]
                cost = rest[0] if rest else _cost_of(runtime, post, None)
                refusal = _why_not_now(runtime, tx, brand, cost, now, rest=rest)
            if refusal is None:
                turn = tx.scalar(
                    TAKE_TURN,
                    post_id=post["id"],
                    attempt_id=attempt_id,
                    lease_until=lease_until,
                    token=post["x_access_token"],
                    now=now,
                )
                if turn is not None:
                    _commit_intent(runtime, tx, post, brand, part, cost, now, rest)
                    return None
                # The turn refuses for many reasons; the operator's pause is the
                # one a person asks about, so it is told apart (decision 0080).
                refusal = ("lost", tx.one(SELECT_DEPLOYMENT_PAUSE))
    except _SharedAppFull as full:
        # Everything the turn wrote is rolled back; the pause is written on its own.
        with runtime.database.transaction() as tx:
            post_limits.pause(tx, full.brand, full.wait, now=now)
        refusal = ("paused", full.wait)

    outcome, why = refusal
    if outcome == "held_claims":
        return _hold(runtime, post, attempt_id, why, "held_claims")
    if outcome == "held":
        return _hold(runtime, post, attempt_id, why, "held_budget")
    if outcome == "paused":
        _finish(
            runtime,
            post,
            attempt_id,
            "scheduled",
            "rate_limited",
            why.reason,
            error_class="post_limit",
        )
        runtime.log.warning(
            "X post limit reached; the posts wait",
            extra=fields(
                brand_id=str(post["brand_id"]),
                shared_app=why.shared_app,
                until=why.until,
            ),
        )
        return "paused"
    return _lose_turn(runtime, post, attempt_id, why)


def _turn_refused_before_upload(
    runtime: Any, post: dict[str, Any], attempt_id: int
) -> str | None:
    """Return "lost", as the turn would, when the turn's conditions fail already;
    None when the image may be fetched and uploaded. The turn checks them again.

    The budget and X's windows are not read here: a post the turn holds or sends
    back for them has uploaded its image for nothing (README, Known limitations).
    """
    now = runtime.clock.now()
    with runtime.database.transaction() as tx:
        clear = tx.scalar(
            TURN_LOOKS_CLEAR,
            post_id=post["id"],
            attempt_id=attempt_id,
            token=post["x_access_token"],
            now=now,
        )
        pause = None if clear is not None else tx.one(SELECT_DEPLOYMENT_PAUSE)
    if clear is not None:
        return None
    return _lose_turn(runtime, post, attempt_id, pause)


def _lose_turn(
    runtime: Any, post: dict[str, Any], attempt_id: int, pause: dict | None
) -> str:
    """End an attempt whose turn was refused: the post goes back to `scheduled`,
    its reason naming the operator's pause when it stands (decision 0080)."""
    if pause is not None:
        _finish(
            runtime,
            post,
            attempt_id,
            "scheduled",
            "retry",
            f"the operator paused publishing for the deployment at "
            f"{pause['paused_at'].isoformat()}; nothing was sent, and it goes at the "
            f"first run after the resume",
            error_class="deployment_paused",
        )
        return "lost"
    _finish(
        runtime,
        post,
        attempt_id,
        "scheduled",
        "retry",
        "another run paused the account (X's rate limit, a disconnection, a new "
        "token or a crisis pause) or took this post over; it goes at a later run",
        error_class="lease_lost",
    )
    return "lost"


def _catalog_refusal(tx: Any, post: dict[str, Any]) -> tuple[str, str] | None:
    """Return ("held_claims", reason) when the catalog no longer supports the post."""
    verdict = publish_checks.recheck(tx, post)
    if verdict.hold_reason is None:
        return None
    return "held_claims", verdict.hold_reason


def _why_not_now(
    runtime: Any,
    tx: Any,
    brand: dict[str, Any],
    cost: tuple,
    now: dt.datetime,
    *,
    rest: list[tuple] | None = None,
) -> tuple[str, Any] | None:
    """Return ("held", reason) when the budget cannot pay for the post, ("paused",
    wait) when the account's windows or the brand's own app's are full (recording
    the pause), else None; the shared app's window is checked last, when the
    intent is recorded (_commit_intent).

    The budget comes first: a post that cannot be paid for should not wait for a
    window. A price already reserved for this post (a resend) is not added twice.
    For a thread, `rest` is the cost of every part not yet on X, this one first:
    the budget and the windows must have room for all of them before this part
    goes, so a thread never stops half-way for want of either.
    """
    unpaid = [
        (price_class, usd, ref)
        for price_class, usd, ref in (rest or [cost])
        if not costs.is_reserved(tx, operation=price_class, ref=ref)
    ]
    if unpaid:
        total = sum((usd for _, usd, _ in unpaid), Decimal(0))
        reason = costs.budget_refusal(tx, brand, cost_usd=total, now=now)
        if reason is not None:
            if rest is not None and len(rest) > 1:
                reason = f"{reason} (the {len(rest)} parts still to send cost ${total})"
            return "held", reason

    wait = post_limits.wait_for_window(
        tx, runtime.settings, brand, now=now, needed=len(rest or [cost])
    )
    if wait is None:
        return None
    post_limits.pause(tx, brand, wait, now=now)
    return "paused", wait


class _SharedAppFull(CartcastError):
    """The shared app's window had no room when the intent was recorded: the
    turn's transaction rolls back, and the app is paused until `wait.until`."""

    def __init__(self, brand: dict[str, Any], wait: post_limits.Wait) -> None:
        super().__init__(wait.reason)
        self.brand = brand
        self.wait = wait


def _commit_intent(
    runtime: Any,
    tx: Any,
    post: dict[str, Any],
    brand: dict[str, Any],
    part: int | None,
    cost: tuple,
    now: dt.datetime,
    rest: list[tuple] | None,
) -> None:
    """Write the intent's reserved price, a thread part's own intent (the
    attempt's was written with the turn) and, last, its row in X's windows: on the
    shared app that takes the app's lock, held until the commit that follows."""
    price_class, usd, ref = cost
    costs.record(
        tx,
        brand_id=post["brand_id"],
        occurred_at=now,
        operation=price_class,
        units=1,
        usd=usd,
        ref=ref,
        reserved=True,
    )
    if part is not None:
        tx.execute(MARK_PART_SENT, post_id=post["id"], position=part, now=now)
    wait = post_limits.record_intent(
        tx,
        runtime.settings,
        brand,
        post_id=post["id"],
        part=part,
        now=now,
        needed=len(rest or [cost]),
    )
    if wait is not None:
        raise _SharedAppFull(brand, wait)


def _pause_brand(
    runtime: Any, post: dict[str, Any], attempt_id: int, error: RateLimited
) -> None:
    with runtime.database.transaction() as tx:
        until = accounts.pause_x(
            tx,
            brand_id=post["brand_id"],
            family="posts",
            reset_at=error.reset_at,
            now=runtime.clock.now(),
        )
    _finish(
        runtime,
        post,
        attempt_id,
        "scheduled",
        "rate_limited",
        f"{error}; the account's posts wait until {_utc(until)}",
        error_class="rate_limited",
        x_status=error.status,
    )
    runtime.log.warning(
        "X rate limit; the brand's posts wait",
        extra=fields(brand_id=str(post["brand_id"]), until=until),
    )


def _retry_later(
    runtime: Any,
    post: dict[str, Any],
    attempt_id: int,
    reason: str,
    *,
    error: CartcastError,
    parts_on_x: int = 0,
) -> str:
    """X failed before it could have taken the post: wait a backoff, or give up.

    The post goes back to `scheduled` with a not-before time and the reason
    "will retry at <time> (attempt n of N): ..."; the failure past the limit
    fails it, with what to do. A thread with parts already on X is held instead:
    failing it would leave them there with no way to send the rest, and
    scheduling it again resumes after them with a fresh count of retries.
    """
    from cartcast import retries

    now = runtime.clock.now()
    with runtime.database.transaction() as tx:
        failures = tx.scalar(
            COUNT_TRANSIENT_FAILURE, post_id=post["id"], attempt_id=attempt_id
        )
        plan = retries.plan(
            failures or 1, settings=runtime.settings, random=runtime.random, now=now
        )
        state = "failed" if plan.gives_up else "scheduled"
        explained = plan.explain(reason)
        if plan.gives_up and parts_on_x:
            state = "held"
            explained = _thread_gave_up(plan.failures, parts_on_x, reason, post["id"])
            tx.execute(RESET_TRANSIENT_FAILURES, post_id=post["id"])
        _write_outcome(
            tx,
            post,
            attempt_id,
            state=state,
            outcome={"failed": "failed", "held": "held"}.get(state, "retry"),
            reason=explained,
            error=reason,
            error_class=attempts.error_class_of(error),
            x_status=getattr(error, "status", None),
            not_before=plan.at,
            now=now,
        )
    if state == "held":
        runtime.log.error(
            "X kept failing mid-thread; post held",
            extra=fields(post_id=str(post["id"]), failures=failures, reason=reason),
        )
        return "held"
    if plan.gives_up:
        runtime.log.error(
            "X kept failing; post failed",
            extra=fields(post_id=str(post["id"]), failures=failures, reason=reason),
        )
        return "failed"
    return "deferred"


def _disconnect(
    runtime: Any, post: dict[str, Any], attempt_id: int, error: Any, reason: str
) -> str:
    """X refused the account's token: hold this post and the brand's queue, and
    raise the brand's alert, in one commit."""
    from cartcast import connections

    now = runtime.clock.now()
    with runtime.database.transaction() as tx:
        held_reason = connections.disconnect(
            tx,
            brand_id=post["brand_id"],
            status=error.status,
            detail=error.detail or str(error),
            token=post["x_access_token"],
            now=now,
        )
        if held_reason is None:
            # The brand was reconnected while this request was out: the token X
            # refused is gone, and the post goes out with the new one.
            _write_outcome(
                tx,
                post,
                attempt_id,
                state="scheduled",
                outcome="retry",
                reason="will retry: X refused a token the brand has since replaced",
                error=reason,
                error_class=error.reason,
                x_status=error.status,
                not_before=None,
                now=now,
            )
            return "deferred"
        _write_outcome(
            tx,
            post,
            attempt_id,
            state="held",
            outcome="held",
            reason=held_reason,
            error=reason,
            error_class=error.reason,
            x_status=error.status,
            not_before=None,
            now=now,
        )
    runtime.log.error(
        "X refused the account's token; its posts are held",
        extra=fields(brand_id=str(post["brand_id"]), reason=reason),
    )
    return "held"


def _finish(
    runtime: Any,
    post: dict[str, Any],
    attempt_id: int,
    state: str,
    outcome: str,
    reason: str,
    *,
    error_class: str,
    x_status: int | None = None,
) -> None:
    now = runtime.clock.now()
    with runtime.database.transaction() as tx:
        _write_outcome(
            tx,
            post,
            attempt_id,
            state=state,
            outcome=outcome,
            # A post going back to its queue for a retry says why, until it is
            # published ("will retry: X rate limit reached"); an unconfirmed one
            # says what happens to it next.
            reason={
                "scheduled": f"will retry: {reason}",
                "unconfirmed": f"{reason}. "
                + UNCONFIRMED_NEXT.format(post_id=post["id"]),
            }.get(state, reason),
            error=reason,
            error_class=error_class,
            x_status=x_status,
            not_before=None,
            now=now,
        )


def _write_outcome(
    tx: Any,
    post: dict[str, Any],
    attempt_id: int,
    *,
    state: str,
    outcome: str,
    reason: str,
    error: str,
    error_class: str,
    x_status: int | None,
    not_before: dt.datetime | None,
    now: dt.datetime,
) -> None:
    tx.execute(
        MARK_OUTCOME,
        post_id=post["id"],
        attempt_id=attempt_id,
        state=state,
        reason=reason,
        not_before=not_before,
        now=now,
    )
    tx.execute(
        FINISH_ATTEMPT,
        attempt_id=attempt_id,
        now=now,
        outcome=outcome,
        x_post_id=None,
        error=error,
        x_status=x_status,
        error_class=error_class,
    )


def _thread_gave_up(failures: int, on_x: int, reason: str, post_id: Any) -> str:
    """Say why a thread with parts on X is held after X kept failing, and what to do."""
    sent = "part 1 is" if on_x == 1 else f"parts 1 to {on_x} are"
    return (
        f"X failed {failures} times, the last: {reason}. {sent} on X already; the "
        f"rest was not sent. Schedule the post again (POST /v1/posts/{post_id}"
        "/schedule) to send the rest once X answers, or cancel it (what is on X "
        "stays there)."
    )


def _utc(instant: dt.datetime) -> str:
    return instant.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
