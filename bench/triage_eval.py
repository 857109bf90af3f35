"""Triage the team's labelled e-commerce mentions and print the confusion matrix.

Usage:
    .venv/bin/python -m bench.triage_eval [--half reporting|tuning|all] [--json PATH]

The mentions (tests/data/triage_mentions.json, see TRIAGE_MENTIONS.md beside it)
were split once into a tuning half and a reporting half; rules were changed
looking at the tuning half only, and the figures are printed for the reporting half
by default. Each mention is scored offline (sentiment.py) and triaged (triage.py)
with the default deadlines and reach threshold, then ranked as the inbox ranks:
priority, then the earliest due, then the newest.

Goal: recall at least GOAL_RECALL for order issues and for complaints, and no order
issue ranked below any praise.

The texts of the misses are printed for the tuning half only, unless --show-texts is
given: reading the reporting half's misses is how rules end up fitted to it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "functions"))

from cartcast import sentiment, triage  # noqa: E402
from cartcast.settings import Settings  # noqa: E402

MENTIONS = REPO / "tests" / "data" / "triage_mentions.json"
INTENTS = ("order_issue", "complaint", "question", "praise", "spam", "other")
GOAL_RECALL = 0.9
GOAL_INTENTS = ("order_issue", "complaint")
# Every mention is posted at the same instant, so ranking is by priority and due.
POSTED_AT = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


def main(argv: Sequence[str] | None = None) -> int:
    """Triage one half, print the matrix, recalls and ranking check; exit 0."""
    args = _parse_args(argv)
    mentions = load_mentions(args.half)
    figures = evaluate(mentions)
    figures["half"] = args.half
    _print(figures, show_texts=args.show_texts or args.half == "tuning")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--half", choices=("reporting", "tuning", "all"), default="reporting"
    )
    parser.add_argument("--json", help="write every figure to this JSON file")
    parser.add_argument(
        "--show-texts",
        action="store_true",
        help="print the misses' texts for the reporting half too (not while tuning)",
    )
    return parser.parse_args(argv)


def load_mentions(half: str) -> list[dict]:
    """Return the labelled mentions of one half, or all of them."""
    mentions = json.loads(MENTIONS.read_text(encoding="utf-8"))
    return [m for m in mentions if half == "all" or m["half"] == half]


def evaluate(mentions: list[dict]) -> dict:
    """Triage every mention; return the confusion matrix, recalls and ranking."""
    defaults = Settings()
    triaged = []
    for mention in mentions:
        score = sentiment.score_mention(mention["text"])
        decided = triage.triage_mention(
            intent=score.intent,
            sentiment=score.sentiment,
            crisis=bool(score.crisis),
            posted_at=POSTED_AT,
            author_followers=mention["author_followers"],
            media_types=tuple(mention["media_types"]),
            deadlines=triage.ResponseDeadlines(),
            reach_followers_min=defaults.reach_followers_min,
        )
        triaged.append((mention, score, decided))

    confusion = {g: dict.fromkeys(INTENTS, 0) for g in INTENTS}
    for mention, score, _ in triaged:
        confusion[mention["expected_intent"]][score.intent] += 1
    recall = {
        intent: round(row[intent] / sum(row.values()), 4) if sum(row.values()) else None
        for intent, row in confusion.items()
    }

    ranked = sorted(
        triaged,
        key=lambda item: triage.rank_key(
            item[2].priority, item[2].response_due_at, POSTED_AT
        ),
    )
    positions = [m["expected_intent"] for m, _, _ in ranked]
    last_order_issue = max(
        (i for i, intent in enumerate(positions) if intent == "order_issue"),
        default=-1,
    )
    first_praise = min(
        (i for i, intent in enumerate(positions) if intent == "praise"),
        default=len(positions),
    )
    below_praise = [
        m["text"]
        for i, (m, _, _) in enumerate(ranked)
        if m["expected_intent"] == "order_issue" and i > first_praise
    ]
    misses = [
        {"text": m["text"], "expected": m["expected_intent"], "scored": s.intent}
        for m, s, _ in triaged
        if s.intent != m["expected_intent"]
    ]
    met = (
        all((recall[i] or 0) >= GOAL_RECALL for i in GOAL_INTENTS)
        and last_order_issue < first_praise
    )
    return {
        "mentions": len(mentions),
        "confusion": confusion,
        "recall": recall,
        "order_issues_ranked_below_praise": below_praise,
        "misses": misses,
        "goal_met": met,
    }


def _print(figures: dict, *, show_texts: bool) -> None:
    print(
        f"Triage on {figures['mentions']} team-written mentions ({figures['half']} "
        f"half of {MENTIONS.relative_to(REPO)})"
    )
    print("Confusion (rows: labelled intent; columns: scored intent)")
    short = {
        i: i.replace("order_issue", "order").replace("complaint", "compl.")[:8]
        for i in INTENTS
    }
    print(f"{'':14}" + "".join(f"{short[i]:>9}" for i in INTENTS) + f"{'recall':>9}")
    for gold in INTENTS:
        row = figures["confusion"][gold]
        recall = figures["recall"][gold]
        shown = "-" if recall is None else f"{recall:.3f}"
        print(f"{gold:14}" + "".join(f"{row[p]:>9}" for p in INTENTS) + f"{shown:>9}")
    below = figures["order_issues_ranked_below_praise"]
    print(f"order issues ranked below a praise: {len(below)}")
    for text in below if show_texts else ():
        print(f"  below praise: {text[:70]}")
    for miss in figures["misses"] if show_texts else ():
        print(
            f"  miss: {miss['expected']} scored {miss['scored']}: {miss['text'][:60]}"
        )
    if not show_texts and figures["misses"]:
        print(f"  {len(figures['misses'])} misses; their texts: --show-texts")
    recalls = ", ".join(f"{i} {figures['recall'][i]:.3f}" for i in GOAL_INTENTS)
    print(
        f"goal (recall >= {GOAL_RECALL} for {recalls}; no order issue below praise): "
        f"{'met' if figures['goal_met'] else 'NOT met'}"
    )


if __name__ == "__main__":
    sys.exit(main())
