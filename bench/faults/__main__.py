"""`make faults`: scripted, bounded fault-injection runs that count outcomes.

    python -m bench.faults [--seed N] [--only kills,db,x,gemini,api] [--quick]

Each run prints what it tried and what was lost or doubled; the seed is printed so
a run can be repeated. Exit status 1 when any run lost or doubled something, or
failed to finish.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUNS = ("kills", "db", "x", "gemini", "api")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.faults")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--only", default=",".join(RUNS))
    parser.add_argument(
        "--quick", action="store_true", help="small sizes: a smoke run for the tests"
    )
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(RUNS))
    if unknown:
        parser.error(f"unknown run {unknown[0]!r}; choose from {', '.join(RUNS)}")
    sys.path.insert(0, str(REPO / "functions"))
    os.environ.setdefault("PYTHONPATH", f"{REPO / 'functions'}{os.pathsep}{REPO}")
    seed = (
        args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    )

    from bench.faults import common

    common.say(
        f"[faults] seed {seed}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
        f"; {platform.node()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}"
    )
    # The product's own log lines (JSON, one per post) go to a file, not the report.
    from cartcast import logs

    common.WORK_DIR.mkdir(parents=True, exist_ok=True)
    product_log = (common.WORK_DIR / "product.log").open("w")
    logs.get_logger("cartcast").handlers[0].setStream(product_log)
    common.say(f"[faults] the product's log lines go to {product_log.name}")
    began = time.monotonic()
    bad = 0
    for name in chosen:
        started = time.monotonic()
        common.say(f"[faults] {name}: {DESCRIPTIONS[name]}")
        try:
            figures = RUNNERS[name](seed=seed, quick=args.quick)
        except Exception:  # noqa: BLE001 - a run that breaks is reported, then the next
            common.say(f"[faults] {name}: FAILED to finish")
            traceback.print_exc()
            bad += 1
            continue
        verdict = "ok" if figures.pop("ok") else "DEFECT"
        bad += verdict != "ok"
        shown = ", ".join(f"{key} {value}" for key, value in figures.items())
        common.say(
            f"[faults] {name}: {verdict} in {time.monotonic() - started:.0f} s: {shown}"
        )
    common.say(
        f"[faults] {len(chosen) - bad} of {len(chosen)} runs clean; seed {seed}; "
        f"elapsed {time.monotonic() - began:.0f} s"
    )
    return 1 if bad else 0


def _kills(*, seed: int, quick: bool) -> dict:
    from bench.faults import kills

    figures = kills.run(
        seed=seed, rounds=1 if quick else 7, invocations=4 if quick else 8
    )
    figures["ok"] = (
        figures["doubled"] == 0 and figures["lost"] == 0 and not figures["wrong_x_id"]
    )
    return figures


def _db(*, seed: int, quick: bool) -> dict:
    from bench.faults import dbcut

    return dbcut.run(seed=seed, brands=4 if quick else 8)


def _x(*, seed: int, quick: bool) -> dict:
    from bench.faults import xmix

    if quick:
        return xmix.run(seed=seed, brands=3, posts_per_brand=3, faults=7)
    return xmix.run(seed=seed)


def _gemini(*, seed: int, quick: bool) -> dict:
    from bench.faults import geminimix

    # Quick still meets every fault kind once: one round each.
    rounds = len(geminimix.FAULT_KINDS) if quick else 24
    return geminimix.run(seed=seed, rounds=rounds)


def _api(*, seed: int, quick: bool) -> dict:
    from bench.faults import apifuzz

    if quick:
        return apifuzz.run(seed=seed, max_examples=2, admin_time_s=10, auth_time_s=3)
    return apifuzz.run(seed=seed)


DESCRIPTIONS = {
    "api": "schemathesis on docs/openapi.yaml, every auth failure, malformed bodies",
    "gemini": "Gemini's failures in a random mix while drafts are written",
    "x": "X's failures in a random mix on POST /2/tweets, a lagging timeline",
    "db": "the database cut through a loopback proxy before and during publish runs",
    "kills": "publishers, each message delivered 3 times, SIGKILLed around X's answer",
}
RUNNERS = {
    "kills": _kills,
    "db": _db,
    "x": _x,
    "gemini": _gemini,
    "api": _api,
}


if __name__ == "__main__":
    sys.exit(main())
