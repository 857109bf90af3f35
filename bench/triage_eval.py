"""Triage the labelled e-commerce mentions and print the confusion matrices.

Usage:
    .venv/bin/python -m bench.triage_eval [--half reporting|tuning|all] [--json PATH]
        [--gemini] [--files PATH ...]

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

With --gemini (live mode, never the default), intent and sentiment come from Gemini
instead, through GeminiMentionClassifier as the scoring function uses it: the
deployment's settings (GEMINI_API_KEY, GEMINI_BASE_URL, GEMINI_MODEL,
CARTCAST_SENTIMENT_BATCH_SIZE, CARTCAST_REACH_FOLLOWERS_MIN) and the quota
governor captions share, so DATABASE_URL must name the database that holds its
budget. Every mention is labelled once, one request per batch, and triaged as
scoring.py triages a Gemini label (crisis words still from the offline scorer). A
mention Gemini gave no usable label (an id left out, bad JSON) keeps the offline
label and is counted as a fallback; a batch the quota refuses (a 429, or another
caller spending the budget meanwhile) stops the run, writing no figure, as the
rest labelled offline would pass for Gemini's. At the default batch of 50 the
reporting halves (over 1,600 mentions) take more than 30 requests. The run stops
before the first when the governor has fewer left today (GEMINI_REQUESTS_PER_DAY, 20 by
default), and waits for its minute window (GEMINI_REQUESTS_PER_MINUTE, 5) rather
than fall back.

With --labels PATH, intent and sentiment come from labels recorded elsewhere: a
person's second reading of the texts, or a model's answers kept from another run.
PATH is a JSON object {"labeller": "who or what labelled", "labels": [{"text",
"intent", "sentiment", "score"}, ...]}; a label is matched to a mention by its whole
text, and triaged as a Gemini label is. A mention the file holds no label for keeps
the offline label and is counted as a fallback. This measures how far a labeller other
than the offline scorer would take the goal, without spending any quota.

--files replaces the labelled files read (the tests pass a few mentions of their own).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import math
import sys
import types
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "functions"))

from bench import gemini_budget  # noqa: E402
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
    paths = [Path(path).resolve() for path in args.files] if args.files else None
    mentions = load_mentions(args.half, paths or MENTION_FILES)

    # Each mention is labelled once: Gemini's quota is spent on the pooled run only.
    labeller: dict[str, Any] = {}
    if args.gemini:
        triaged, labeller = triage_with_gemini(mentions)
        _print_labeller(labeller)
    elif args.labels:
        triaged, labeller = triage_with_recorded_labels(
            mentions, recorded_labels(Path(args.labels))
        )
        _print_labeller(labeller)
    else:
        triaged = triage_offline(mentions)

    per_file = {}
    for path in paths or MENTION_FILES:
        name = _file_name(path)
        figures = figures_of([t for t in triaged if t[0]["file"] == name])
        figures.update(half=args.half, source=name, **_labelled_by(labeller, name))
        _print(figures, show_texts=show_texts)
        per_file[name] = figures
        print()

    combined = figures_of(triaged)
    source = f"all {len(paths or MENTION_FILES)} files"
    combined.update(half=args.half, source=source, **_labelled_by(labeller))
    # Each brand's inbox ranks its own mentions only; the goal pools every file.
    combined["order_issues_below_praise_store_by_store"] = sum(
        len(f["order_issues_ranked_below_praise"]) for f in per_file.values()
    )
    # Each file's misses were listed above; the pooled figures are what count.
    _print(combined, show_texts=False, listed_above=show_texts)
    if args.json:
        figures = {"combined": combined, "files": per_file}
        if labeller:
            figures[labeller["engine"]] = labeller
        if not show_texts:
            figures = {
                **figures,
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
    parser.add_argument(
        "--gemini",
        action="store_true",
        help="live mode: intent and sentiment from Gemini (costs quota; see above)",
    )
    parser.add_argument(
        "--labels",
        metavar="PATH",
        help="intent and sentiment recorded elsewhere, from this JSON file (see above)",
    )
    parser.add_argument(
        "--files",
        nargs="+",
        metavar="PATH",
        help="labelled mention files to read instead of tests/data/triage_mentions*",
    )
    args = parser.parse_args(argv)
    if args.gemini and args.labels:
        parser.error("--labels: give either recorded labels or --gemini, not both")
    if args.labels and not Path(args.labels).is_file():
        parser.error(f"--labels: no such file: {args.labels}")
    missing = [path for path in args.files or () if not Path(path).is_file()]
    if missing:
        parser.error(f"--files: no such file: {', '.join(missing)}")
    # A file read twice would count each of its mentions twice in every figure.
    resolved = [Path(path).resolve() for path in args.files or ()]
    twice = sorted({str(path) for path in resolved if resolved.count(path) > 1})
    if twice:
        parser.error(f"--files: given twice: {', '.join(twice)}")
    return args


def _file_name(path: Path) -> str:
    """Name a file by its path in the repository, or as given when outside it."""
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def load_mentions(half: str, paths: Sequence[Path] = MENTION_FILES) -> list[dict]:
    """Return the labelled mentions of one half of every file, or all of them.

    Each mention gains `file`, the path it came from, relative to the repository.
    """
    mentions = []
    for path in paths:
        name = _file_name(path)
        for mention in json.loads(path.read_text(encoding="utf-8")):
            if half == "all" or mention["half"] == half:
                mentions.append({**mention, "file": name})
    return mentions


def evaluate(mentions: list[dict], models: dict | None = None) -> dict:
    """Triage every mention; return the confusion matrix, recalls and ranking.

    `models` maps a mention's `file` to the intent model that scores it in place
    of the shipped one (`bench/triage_loso.py`); a file not in it gets the shipped.
    """
    return figures_of(triage_offline(mentions, models))


def triage_offline(
    mentions: list[dict], models: dict | None = None
) -> list[tuple[dict, str, triage.Triage]]:
    """Score each mention offline and triage it; return (mention, intent, triage)."""
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
        triaged.append((mention, score.intent, decided))
    return triaged


def triage_with_gemini(
    mentions: list[dict],
) -> tuple[list[tuple[dict, str, triage.Triage]], dict[str, Any]]:
    """Label the mentions through Gemini as scoring.py does, and triage them.

    Returns (mention, intent, triage) for each, and what labelled them: the model,
    requests, batch size, and each mention that fell back to the offline label.
    """
    from cartcast import runtime as runtime_module
    from cartcast import scoring

    deployed = gemini_budget.deployed_settings()

    # The scoring function labels with Gemini only when this engine is chosen.
    chosen = dataclasses.replace(deployed, sentiment_engine="gemini")
    batch = chosen.sentiment_batch_size
    current = runtime_module.Runtime(chosen)
    try:
        governor = current.gemini().governor
        gemini_budget.check_day_budget(
            governor, math.ceil(len(mentions) / batch), batch
        )
        rows = [_mention_row(f"m{i}", m) for i, m in enumerate(mentions)]
        offline = {row["id"]: sentiment.score_mention(row["text"]) for row in rows}
        labels = {}
        for start in range(0, len(rows), batch):
            # A longer refusal (a pause after a 429, another caller spending the
            # day) is not waited out: the run stops there.
            gemini_budget.wait_for_the_minute_window(governor, current.clock)
            # One batch's rows and scores: label_mentions labels every score given.
            some = rows[start : start + batch]
            scores = {row["id"]: offline[row["id"]] for row in some}
            labelled = scoring.label_mentions(current, some, scores)
            refused = [label for label in labelled.values() if label.quota_refused]
            if refused:
                gemini_budget.stop_for_the_quota(
                    refused[0].fallback_reason or "the quota refused the batch",
                    governor,
                    labelled=start,
                    of=f"{len(rows)} mentions",
                )
            labels.update(labelled)
        decided = [
            scoring.triage_label(current, row, labels[row["id"]], offline)[0]
            for row in rows
        ]
    finally:
        current.close()

    triaged = []
    reasons: Counter[str] = Counter()
    by_file: Counter[str] = Counter()
    models: Counter[str] = Counter()
    for mention, row, decision in zip(mentions, rows, decided, strict=True):
        label = labels[row["id"]]
        triaged.append((mention, label.intent, decision))
        if label.fallback_reason is not None:
            reasons[label.fallback_reason] += 1
            by_file[mention["file"]] += 1
        else:
            models[label.model] += 1
    labeller = {
        "engine": "gemini",
        "model": models.most_common(1)[0][0] if models else chosen.gemini_model,
        "mentions": len(mentions),
        "batch_size": batch,
        "requests": math.ceil(len(mentions) / batch),
        "fallbacks": reasons.total(),
        "fallback_reasons": dict(reasons.most_common()),
        "fallbacks_by_file": dict(by_file),
    }
    return triaged, labeller


SENTIMENTS = ("negative", "neutral", "positive")


def recorded_labels(path: Path) -> tuple[str, dict[str, dict[str, Any]]]:
    """Read a file of recorded labels; return who labelled and each text's label.

    Raises SystemExit naming the first label that is not usable: a figure from a
    file read only in part would pass for the labeller's.
    """
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
        labeller = recorded["labeller"]
        items = recorded["labels"]
    except (ValueError, KeyError, TypeError) as exc:
        raise SystemExit(f"--labels: {path}: not a labels file ({exc})") from exc
    if not isinstance(items, list):
        raise SystemExit(f"--labels: {path}: not a labels file (labels is no list)")
    labels: dict[str, dict[str, Any]] = {}
    for n, item in enumerate(items):
        problem = _label_problem(item)
        if problem is None and item["text"] in labels:
            problem = "a text labelled twice"
        if problem is not None:
            raise SystemExit(f"--labels: {path}: label {n}: {problem}")
        labels[item["text"]] = item
    return str(labeller), labels


def _label_problem(item: Any) -> str | None:
    if not isinstance(item, dict) or not isinstance(item.get("text"), str):
        return "no text"
    if item.get("intent") not in INTENTS:
        return f"intent must be one of {', '.join(INTENTS)}"
    if item.get("sentiment") not in SENTIMENTS:
        return f"sentiment must be one of {', '.join(SENTIMENTS)}"
    score = item.get("score")
    if isinstance(score, bool) or not isinstance(score, int | float):
        return "score must be a number"
    if not -1 <= score <= 1:
        return "score must be between -1 and 1"
    return None


def triage_with_recorded_labels(
    mentions: list[dict], recorded: tuple[str, dict[str, dict[str, Any]]]
) -> tuple[list[tuple[dict, str, triage.Triage]], dict[str, Any]]:
    """Triage each mention with its recorded label, as scoring.py triages Gemini's.

    Returns (mention, intent, triage) for each, and who labelled them with the
    mentions that had no recorded label and kept the offline one.
    """
    from cartcast import scoring

    name, labels = recorded
    # triage_label reads only the settings from the runtime it is given.
    current = types.SimpleNamespace(settings=Settings())
    triaged = []
    by_file: Counter[str] = Counter()
    for i, mention in enumerate(mentions):
        row = _mention_row(f"m{i}", mention)
        offline = sentiment.score_mention(mention["text"])
        given = labels.get(mention["text"])
        if given is None:
            by_file[mention["file"]] += 1
            label = scoring.offline_label(offline)
        else:
            crisis = tuple(f"crisis:{word}" for word in offline.crisis)
            label = scoring.Label(
                sentiment=given["sentiment"],
                score=float(given["score"]),
                intent=given["intent"],
                engine="recorded",
                model=name,
                reasons=(*crisis, f"intent:{given['intent']}"),
            )
        decided, _ = scoring.triage_label(current, row, label, {row["id"]: offline})
        triaged.append((mention, label.intent, decided))
    missing = by_file.total()
    labeller = {
        "engine": "recorded",
        "model": name,
        "mentions": len(mentions),
        "fallbacks": missing,
        "fallback_reasons": {"no recorded label": missing} if missing else {},
        "fallbacks_by_file": dict(by_file),
    }
    return triaged, labeller


def _mention_row(mention_id: str, mention: dict) -> dict[str, Any]:
    """Shape a labelled mention as scoring.py reads a stored one, default deadlines."""
    deadlines = triage.ResponseDeadlines()
    return {
        "id": mention_id,
        "text": mention["text"],
        "posted_at": POSTED_AT,
        "author_followers": mention["author_followers"],
        "media_types": list(mention["media_types"]),
        "order_issue_due_min": deadlines.order_issue_min,
        "complaint_due_min": deadlines.complaint_min,
        "question_due_min": deadlines.question_min,
    }


def _labelled_by(labeller: dict[str, Any], name: str | None = None) -> dict:
    """Return the model and fallback count a file's (or all) figures carry."""
    if not labeller:
        return {}
    engine = "Gemini" if labeller["engine"] == "gemini" else "recorded labels"
    if name is None:
        fallbacks = labeller["fallbacks"]
    else:
        fallbacks = labeller["fallbacks_by_file"].get(name, 0)
    return {"labeller": engine, "model": labeller["model"], "fallbacks": fallbacks}


def figures_of(triaged: list[tuple[dict, str, triage.Triage]]) -> dict:
    """Return the confusion matrix, recalls and ranking of triaged mentions."""
    confusion = {g: dict.fromkeys(INTENTS, 0) for g in INTENTS}
    for mention, intent, _ in triaged:
        confusion[mention["expected_intent"]][intent] += 1
    recall = {
        intent: round(row[intent] / sum(row.values()), 4) if sum(row.values()) else None
        for intent, row in confusion.items()
    }

    ranked = sorted(
        triaged,
        key=lambda item: triage.rank_key(
            item[2].priority, item[2].response_due_at, POSTED_AT, item[1]
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
        {"text": m["text"], "expected": m["expected_intent"], "scored": intent}
        for m, intent, _ in triaged
        if intent != m["expected_intent"]
    ]
    met = (
        all((recall[i] or 0) >= GOAL_RECALL for i in GOAL_INTENTS)
        and last_order_issue < first_praise
    )
    return {
        "mentions": len(triaged),
        "confusion": confusion,
        "recall": recall,
        "order_issues_ranked_below_praise": below_praise,
        "misses": misses,
        "goal_met": met,
    }


def _print_labeller(labeller: dict[str, Any]) -> None:
    if labeller["engine"] == "recorded":
        print(
            f"Recorded labels ({labeller['model']}) for {labeller['mentions']} "
            f"mentions; {labeller['fallbacks']} had none and kept the offline label"
        )
        print()
        return
    print(
        f"Gemini ({labeller['model']}) labelled {labeller['mentions']} mentions in "
        f"{labeller['requests']} requests of up to {labeller['batch_size']}; "
        f"{labeller['fallbacks']} fell back to the offline scorer"
    )
    for reason, count in labeller["fallback_reasons"].items():
        print(f"  fallback: {count} x {reason[:100]}")
    print()


def _print(figures: dict, *, show_texts: bool, listed_above: bool = False) -> None:
    print(
        f"Triage on {figures['mentions']} team-written mentions ({figures['half']} "
        f"half of {figures['source']})"
    )
    if "model" in figures:
        print(
            f"labelled by {figures['labeller']} ({figures['model']}); "
            f"{figures['fallbacks']} fell back to the offline scorer"
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
    if "order_issues_below_praise_store_by_store" in figures:
        print(
            "  (each store's inbox ranked on its own: "
            f"{figures['order_issues_below_praise_store_by_store']} in all)"
        )
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
