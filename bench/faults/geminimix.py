"""Gemini's failures in a random mix, against the caption path's promise.

Each round asks for drafts of a few new products through `posts.create_drafts`
(what the api's caption routes run), with the Gemini stand-in answering its next
call or two with one of its faults, in a seeded random order: 429 with RetryInfo,
SAFETY, a blocked prompt, JSON cut at MAX_TOKENS, wrong types, an empty text, a
hang past the client's timeout, a 503, prose instead of JSON, a missing caption,
a caption over 280 characters. Every kind is drawn at least once a run (the
rounds left over are drawn at random, a fault-free answer among them), and a kind
counts as met only when Gemini was asked while it was in force. Every requested
caption must end as a stored draft from one engine or the other, within X's
length, and every kind must have been met.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import random
from collections import Counter
from typing import Any

from bench.faults import common

FAULT_KINDS = (
    "quota",
    "safety",
    "prompt_blocked",
    "truncated",
    "wrong_types",
    "empty_text",
    "slow",
    "server_error",
    "invalid_json",
    "missing_ref",
    "too_long",
)
MODES = (None, *FAULT_KINDS)
GEMINI_TIMEOUT_S = 2.0
HANG_S = 5.0
PRODUCTS_PER_REQUEST = 3


def run(*, seed: int, rounds: int = 24) -> dict[str, Any]:
    from cartcast import posts
    from cartcast import settings as settings_module
    from cartcast.clock import FileClock
    from cartcast.post_text import fits_on_x
    from cartcast.runtime import Runtime
    from infra import local_cloud
    from infra.gemini_standin import DEFAULT_API_KEY, GeminiStandIn

    rng = common.seeded(seed, "gemini")
    work_dir = common.WORK_DIR / "gemini"
    work_dir.mkdir(parents=True, exist_ok=True)
    catalog = common.products()
    tried: Counter[str] = Counter()
    met: Counter[str] = Counter({kind: 0 for kind in FAULT_KINDS})
    engines: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    asked = written = over_length = missing = 0
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(common.fresh_database("cartcast_bench_faults"))
        clock = FileClock(work_dir / "clock")
        clock.set(common.START)
        standin = stack.enter_context(GeminiStandIn())
        env = {
            **local_cloud._base_env(),
            "DATABASE_URL": url,
            "GEMINI_API_KEY": DEFAULT_API_KEY,
            "GEMINI_BASE_URL": standin.base_url,
            "GEMINI_TIMEOUT_S": str(GEMINI_TIMEOUT_S),
            "GEMINI_REQUESTS_PER_MINUTE": "1000",
            "GEMINI_REQUESTS_PER_DAY": "100000",
        }
        runtime = Runtime(settings_module.load(env), clock=clock)
        stack.callback(runtime.close)
        brand_id, _ = common.create_brand(runtime, 0, prefix="gemini")
        for round_index, mode in enumerate(draw_modes(rng, rounds)):
            first = (round_index * PRODUCTS_PER_REQUEST) % len(catalog)
            rows = catalog[first : first + PRODUCTS_PER_REQUEST]
            # One bad answer (the adapter retries once) or more than its retry.
            count = rng.choice((1, 3))
            standin.reset()
            if mode is not None:
                options = {"delay_s": HANG_S} if mode == "slow" else {}
                standin.set_fault(mode, count=count, **options)
            tried[f"{mode or 'none'} x{count}" if mode else "none"] += 1
            with runtime.database.transaction() as tx:
                from cartcast import catalog as catalog_module

                catalog_module.import_products(
                    tx, brand_id=brand_id, feed=rows, now=clock.now()
                )
                created = posts.create_drafts(
                    tx,
                    brand_id=brand_id,
                    body={"products": [row["sku"] for row in rows]},
                    created_by="faults",
                    now=clock.now(),
                    gemini=runtime.gemini(),
                    near_duplicate_threshold=runtime.settings.near_duplicate_threshold,
                    near_duplicate_days=runtime.settings.near_duplicate_days,
                )["posts"]
            # The stand-in records every generateContent call; with a fault set
            # before the round, the first of them met it.
            if mode is not None and standin.requests():
                met[mode] += 1
            asked += len(rows)
            written += len(created)
            missing += max(0, len(rows) - len(created))
            for post in created:
                engines[post["engine"]] += 1
                if post.get("fallback_reason"):
                    reasons[post["fallback_reason"]] += 1
                if not fits_on_x(post["text"]):
                    over_length += 1
            # A 429's RetryInfo pauses Gemini for the brand's app; move past it.
            clock.set(clock.now() + dt.timedelta(seconds=61))
    unknown_engines = sum(
        n for engine, n in engines.items() if engine not in ("gemini", "template")
    )
    unmet = sorted(kind for kind, n in met.items() if n == 0)
    return {
        "rounds": rounds,
        "faults": dict(sorted(tried.items())),
        "met_per_kind": dict(sorted(met.items())),
        "kinds_not_met": unmet or "none",
        "captions_asked": asked,
        "drafts": written,
        "by_engine": dict(sorted(engines.items())),
        "fallback_reasons": dict(sorted(reasons.items())),
        "missing": missing,
        "over_280": over_length,
        "ok": missing == 0
        and written == asked
        and over_length == 0
        and unknown_engines == 0
        and not unmet,
    }


def draw_modes(rng: random.Random, rounds: int) -> list[str | None]:
    """Each fault kind once, the other rounds at random; in a seeded random order.

    With fewer rounds than kinds some kind is left out, and the run then fails on
    `kinds_not_met` rather than passing without it.
    """
    kinds = list(FAULT_KINDS)
    rng.shuffle(kinds)
    drawn: list[str | None] = [*kinds[:rounds]]
    drawn += [rng.choice(MODES) for _ in range(rounds - len(drawn))]
    rng.shuffle(drawn)
    return drawn
