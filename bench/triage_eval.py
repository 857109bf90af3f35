"""Triage the labelled e-commerce mentions and print the confusion matrices.

Usage:
    .venv/bin/python -m bench.triage_eval [--half reporting|tuning|all] [--json PATH]

Every file tests/data/triage_mentions*.json is read (one store each; see
TRIAGE_MENTIONS.md beside them). Each was split once into a tuning half and a
reporting half; rules were changed looking at the tuning halves only, and the
figures are printed for the reporting halves by default: for each file, then for
all files together. Each mention is scored offline (sentiment.py) and triaged
(triage.py) with the default deadlines and reach threshold, then ranked as the
inbox ranks: priority, order issues first, then the earliest due, then the newest.

Goal, checked on all files together: recall at least GOAL_RECALL for order issues
and for complaints, and no order issue ranked below any praise.

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

DATA = REPO / "tests" / "data"
MENTION_FILES = tuple(sorted(DATA.glob("triage_mentions*.json")))
INTENTS = ("order_issue", "complaint", "question", "praise", "spam", "other")
GOAL_RECALL = 0.9
GOAL_INTENTS = ("order_issue", "complaint")
# Every mention is posted at the same instant, so ranking is by priority and due.
POSTED_AT = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


def main(argv: Sequence[str] | None = None) -> int:
    """Triage one half of every file, print each file's figures and all together."""
    args = _parse_args(argv)
    show_texts = args.show_texts or args.half == "tuning"
    mentions = load_mentions(args.half)

    per_file = {}
    for path in MENTION_FILES:
        name = str(path.relative_to(REPO))
        figures = evaluate([m for m in mentions if m["file"] == name])
        figures.update(half=args.half, source=name)
        _print(figures, show_texts=show_texts)
        per_file[name] = figures
        print()

    combined = evaluate(mentions)
    combined.update(half=args.half, source=f"all {len(MENTION_FILES)} files")
    # Each file's misses were listed above; the pooled figures are what count.
    _print(combined, show_texts=False, listed_above=show_texts)
    if args.json:
        figures = {"combined": combined, "files": per_file}
        if not show_texts:
            figures = {
                "combined": _without_texts(combined),
                "files": {name: _without_texts(f) for name, f in per_file.items()},
            }
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


def _without_texts(figures: dict) -> dict:
    """Return the figures with their lists of texts replaced by how many there are.

    A file of figures is read later, by people and scripts; the reporting half's
    texts must not come with it unless --show-texts asked for them.
    """
    texts = ("misses", "order_issues_ranked_below_praise")
    return {k: len(v) if k in texts else v for k, v in figures.items()}


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--half", choices=("reporting", "tuning", "all"), default="reporting"
    )
    parser.add_argument(
        "--json",
        help="write every figure to this JSON file (misses as counts, unless "
        "--show-texts or the tuning half)",
    )
    parser.add_argument(
        "--show-texts",
        action="store_true",
        help="print the misses' texts for the reporting half too (not while tuning)",
    )
    return parser.parse_args(argv)


def load_mentions(half: str, paths: Sequence[Path] = MENTION_FILES) -> list[dict]:
    """Return the labelled mentions of one half of every file, or all of them.

    Each mention gains `file`, the path it came from, relative to the repository.
    """
    mentions = []
    for path in paths:
        name = str(path.relative_to(REPO))
        for mention in json.loads(path.read_text(encoding="utf-8")):
            if half == "all" or mention["half"] == half:
                mentions.append({**mention, "file": name})
    return mentions


def evaluate(mentions: list[dict], models: dict | None = None) -> dict:
    """Triage every mention; return the confusion matrix, recalls and ranking.

    `models` maps a mention's `file` to the intent model that scores it in place
    of the shipped one (`bench/triage_loso.py`); a file not in it gets the shipped.
    """
    defaults = Settings()
    models = models or {}
    triaged = []
    for mention in mentions:
        score = sentiment.score_mention(
            mention["text"], model=models.get(mention["file"])
        )
        decided = triage.triage_mention(
            intent=score.intent,
            sentiment=score.sentiment,
            crisis=bool(score.crisis),
            posted_at=POSTED_AT,
            author_followers=mention["author_followers"],
            media_types=tuple(mention["media_types"]),
            deadlines=triage.ResponseDeadlines(),
            reach_followers_min=defaults.reach_followers_min,
            guessed=triage.guessed_complaint(
                score.intent, score.sentiment, score.reasons
            ),
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
            item[2].priority, item[2].response_due_at, POSTED_AT, item[1].intent
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


def _print(figures: dict, *, show_texts: bool, listed_above: bool = False) -> None:
    print(
        f"Triage on {figures['mentions']} team-written mentions ({figures['half']} "
        f"half of {figures['source']})"
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
    if listed_above and figures["misses"]:
        print(f"  {len(figures['misses'])} misses, listed by file above")
    elif not show_texts and figures["misses"]:
        print(f"  {len(figures['misses'])} misses; their texts: --show-texts")
    recalls = ", ".join(f"{i} {figures['recall'][i] or 0:.3f}" for i in GOAL_INTENTS)
    print(
        f"goal (recall >= {GOAL_RECALL} for {recalls}; no order issue below praise): "
        f"{'met' if figures['goal_met'] else 'NOT met'}"
    )


if __name__ == "__main__":
    sys.exit(main())
