"""Compare plain VADER with cartcast's mention scorer on labelled tweets.

Usage:
    .venv/bin/python -m bench.sentiment_eval [--data-dir DIR] [--lines odd|even|all]
        [--json PATH] [--gemini] [--gemini-tweets N]

The labelled tweets (val_text.txt, val_labels.txt, one per line; labels 0 negative,
1 neutral, 2 positive) are read where they lie, from --data-dir, else from
CARTCAST_SENTIMENT_DATA, else from shared/data/sentiment beside the repository or
beside the folder holding it (a git worktree). They stay under X's terms and are
never copied into the repository. When they are absent the tweet part is skipped and
the script still exits 0, so CI without them passes.

Lines are numbered from 1, as an editor numbers them. The even-numbered lines are
the tuning half: every threshold and phrase of the scorer was chosen on them. The
odd-numbered lines are the reporting half and the default; the goal is checked on
them: macro-recall at least GOAL_MACRO_RECALL_GAIN above plain VADER's, at no less
than GOAL_SPEED_RATIO of VADER's throughput. Throughput is timed in one run, the two
labellers taking turns over SPEED_ROUNDS rounds, each keeping its best round.

With --gemini (live mode, never the default), the first --gemini-tweets lines are
also labelled by Gemini through GeminiMentionClassifier, with the deployment's
settings (GEMINI_API_KEY, GEMINI_BASE_URL, CARTCAST_SENTIMENT_BATCH_SIZE) and the
same quota governor as captions, so DATABASE_URL must name the database that holds
its budget. The run stops before its first request when the governor has fewer
left today than the run needs (GEMINI_REQUESTS_PER_DAY), waits for the minute
window (GEMINI_REQUESTS_PER_MINUTE) rather than go on without Gemini, and stops,
writing nothing, should the quota still refuse a batch (a 429 from Gemini, or
another caller spending the day's budget meanwhile): the Gemini figure never holds
offline labels for want of quota. A line whose answer gave no usable label (an id
left out, bad JSON, an outage) gets the offline one and is counted.

The team's own mentions in infra/data/team_mentions.json are always scored.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "functions"))

from cartcast import sentiment  # noqa: E402

DATA_DIRS = (
    REPO.parent / "shared" / "data" / "sentiment",
    REPO.parent.parent / "shared" / "data" / "sentiment",
)
TEAM_MENTIONS = REPO / "infra" / "data" / "team_mentions.json"
CLASSES = ("negative", "neutral", "positive")

# VADER's documented thresholds for calling a compound score positive or negative.
VADER_THRESHOLD = 0.05
GOAL_MACRO_RECALL_GAIN = 0.02
GOAL_SPEED_RATIO = 0.25
SPEED_ROUNDS = 5
LINE_CHOICES = ("odd", "even", "all")


def main(argv: Sequence[str] | None = None) -> int:
    """Score the tweets both ways, print the figures and optionally write them."""
    args = _parse_args(argv)
    data_dir = _data_dir(args.data_dir)

    figures: dict[str, object] = {"scorer_version": sentiment.SCORER_VERSION}
    figures["vader_cost"] = _measure_vader_cost()
    plain_vader = _plain_vader_labeller()

    texts_path, labels_path = data_dir / "val_text.txt", data_dir / "val_labels.txt"
    if texts_path.is_file() and labels_path.is_file():
        texts, gold = _read_tweets(texts_path, labels_path)
        texts, gold = _lines_of(texts, args.lines), _lines_of(gold, args.lines)
        # Gemini first: a run its quota refuses stops before any figure is shown.
        count = min(args.gemini_tweets, len(texts))
        if args.gemini:
            figures["gemini"] = _evaluate_gemini(texts[:count], gold[:count])
        figures["tweets"] = _evaluate_tweets(texts, gold, plain_vader)
        figures["tweets"]["data_dir"] = str(data_dir)
        figures["tweets"]["lines"] = args.lines
        _print_tweets(figures["tweets"])
        if args.gemini:
            _print_gemini(figures["gemini"], plain_vader, texts[:count], gold[:count])
    else:
        reason = f"no val_text.txt and val_labels.txt in {data_dir}"
        figures["tweets"] = {"skipped": reason}
        print(f"skipped tweets: {reason} (set --data-dir or CARTCAST_SENTIMENT_DATA)")

    figures["team_mentions"] = _evaluate_team_mentions(plain_vader)
    _print_team(figures["team_mentions"], figures["vader_cost"])

    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
        print(f"figures written to {args.json}")
    return 0


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="folder with val_text.txt, val_labels.txt")
    parser.add_argument(
        "--lines",
        choices=LINE_CHOICES,
        default="odd",
        help="odd: the reporting half (default); even: the tuning half",
    )
    parser.add_argument("--json", help="write every figure to this JSON file")
    parser.add_argument(
        "--gemini",
        action="store_true",
        help="live mode: also label tweets with Gemini (costs quota; see above)",
    )
    parser.add_argument(
        "--gemini-tweets",
        type=int,
        default=250,
        help="how many of the chosen lines Gemini labels (default 250)",
    )
    args = parser.parse_args(argv)
    if args.gemini_tweets < 1:
        parser.error("--gemini-tweets must be at least 1")
    return args


def _data_dir(given: str | None) -> Path:
    """Return the folder named, else the first of the usual places that exists."""
    named = given or os.environ.get("CARTCAST_SENTIMENT_DATA")
    if named:
        return Path(named)
    return next((path for path in DATA_DIRS if path.is_dir()), DATA_DIRS[0])


def _lines_of(items: list, lines: str) -> list:
    """Keep the odd- or even-numbered lines (numbered from 1), or all of them."""
    if lines == "odd":
        return items[0::2]
    if lines == "even":
        return items[1::2]
    return list(items)


def _measure_vader_cost() -> dict[str, float | bool]:
    """Time vaderSentiment's import and one analyser build in this fresh process."""
    already_imported = "vaderSentiment.vaderSentiment" in sys.modules
    # VADER imports `inspect` (about 5 ms alone); most processes have it already.
    inspect_loaded = "inspect" in sys.modules
    started = time.perf_counter()
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    imported = time.perf_counter()
    SentimentIntensityAnalyzer()
    built = time.perf_counter()
    return {
        "import_ms": round((imported - started) * 1000, 1),
        "analyser_build_ms": round((built - imported) * 1000, 1),
        "import_was_cached": already_imported,
        "inspect_already_loaded": inspect_loaded,
    }


def _plain_vader_labeller() -> Callable[[str], str]:
    """Label text with VADER alone, as its README suggests: +-0.05 on compound."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyser = SentimentIntensityAnalyzer()

    def label(text: str) -> str:
        compound = analyser.polarity_scores(text)["compound"]
        if compound >= VADER_THRESHOLD:
            return "positive"
        if compound <= -VADER_THRESHOLD:
            return "negative"
        return "neutral"

    return label


def _read_tweets(texts_path: Path, labels_path: Path) -> tuple[list[str], list[str]]:
    """Read one tweet and one numeric label per line, in step."""
    # Each tweet line ends with one space the export added; it carries nothing.
    texts = [line.rstrip("\n").rstrip(" ") for line in _lines(texts_path)]
    labels = [CLASSES[int(line)] for line in _lines(labels_path) if line.strip()]
    if len(texts) != len(labels):
        raise SystemExit(f"{len(texts)} tweets but {len(labels)} labels")
    return texts, labels


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def _evaluate_tweets(
    texts: list[str], gold: list[str], plain_vader: Callable[[str], str]
) -> dict:
    """Score every tweet with both labellers and gather the figures for each."""
    sentiment.score_mention("warm up the analyser before timing")
    labellers = {
        "plain_vader": plain_vader,
        "score_mention": lambda text: sentiment.score_mention(text).sentiment,
    }

    results: dict = {"tweets": len(texts)}
    best_s = dict.fromkeys(labellers, float("inf"))
    predicted: dict[str, list[str]] = {}
    for _ in range(SPEED_ROUNDS):
        for name, labeller in labellers.items():
            started = time.perf_counter()
            predicted[name] = [labeller(text) for text in texts]
            best_s[name] = min(best_s[name], time.perf_counter() - started)
    for name in labellers:
        results[name] = _classification_figures(gold, predicted[name])
        results[name]["tweets_per_s"] = round(len(texts) / best_s[name])

    gain = (
        results["score_mention"]["macro_recall"]
        - results["plain_vader"]["macro_recall"]
    )
    ratio = best_s["plain_vader"] / best_s["score_mention"]
    results["goal"] = {
        "macro_recall_gain": round(gain, 4),
        "speed_ratio": round(ratio, 3),
        "met": gain >= GOAL_MACRO_RECALL_GAIN and ratio >= GOAL_SPEED_RATIO,
    }
    return results


def _classification_figures(gold: list[str], predicted: list[str]) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix."""
    confusion = {g: {p: 0 for p in CLASSES} for g in CLASSES}
    for g, p in zip(gold, predicted, strict=True):
        confusion[g][p] += 1

    per_class = {}
    for cls in CLASSES:
        hits = confusion[cls][cls]
        predicted_as = sum(confusion[g][cls] for g in CLASSES)
        actual = sum(confusion[cls].values())
        precision = hits / predicted_as if predicted_as else 0.0
        recall = hits / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
        per_class[cls] = {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
            "support": actual,
        }

    correct = sum(confusion[cls][cls] for cls in CLASSES)
    return {
        "accuracy": round(correct / len(gold), 4),
        "macro_f1": round(sum(c["f1"] for c in per_class.values()) / len(CLASSES), 4),
        "macro_recall": round(
            sum(c["recall"] for c in per_class.values()) / len(CLASSES), 4
        ),
        "per_class": per_class,
        "confusion": confusion,
    }


def _evaluate_team_mentions(plain_vader: Callable[[str], str]) -> dict:
    """Score the team's hand-written mentions against their expected labels."""
    mentions = json.loads(TEAM_MENTIONS.read_text(encoding="utf-8"))
    scores = [sentiment.score_mention(m["text"]) for m in mentions]

    intent_hits = sum(
        s.intent == m["expected_intent"] for s, m in zip(scores, mentions, strict=True)
    )
    sentiment_hits = sum(
        s.sentiment == m["expected_sentiment"]
        for s, m in zip(scores, mentions, strict=True)
    )
    vader_hits = sum(
        plain_vader(m["text"]) == m["expected_sentiment"] for m in mentions
    )
    misses = [
        {
            "text": m["text"],
            "expected": [m["expected_intent"], m["expected_sentiment"]],
            "scored": [s.intent, s.sentiment],
        }
        for s, m in zip(scores, mentions, strict=True)
        if (s.intent, s.sentiment) != (m["expected_intent"], m["expected_sentiment"])
    ]
    return {
        "mentions": len(mentions),
        "intent_accuracy": round(intent_hits / len(mentions), 4),
        "sentiment_accuracy": round(sentiment_hits / len(mentions), 4),
        "plain_vader_sentiment_accuracy": round(vader_hits / len(mentions), 4),
        "misses": misses,
    }


def _evaluate_gemini(texts: list[str], gold: list[str]) -> dict:
    """Label the tweets through Gemini in the deployment's batches; offline only
    where Gemini's answer gave no usable label, never for want of quota."""
    from bench import gemini_budget
    from cartcast import runtime as runtime_module

    deployed = gemini_budget.deployed_settings()

    batch = deployed.sentiment_batch_size
    current = runtime_module.Runtime(deployed)
    try:
        classifier = current.gemini_classifier()
        governor = current.gemini().governor
        gemini_budget.check_day_budget(governor, math.ceil(len(texts) / batch), batch)
        predicted, fallbacks, model = [], 0, classifier.model
        for start in range(0, len(texts), batch):
            gemini_budget.wait_for_the_minute_window(governor, current.clock)
            pairs = [
                (f"t{i}", texts[i])
                for i in range(start, min(start + batch, len(texts)))
            ]
            result = classifier.classify(pairs)
            if result.quota_refused:
                gemini_budget.stop_for_the_quota(
                    next(iter(result.rejected.values())),
                    governor,
                    labelled=start,
                    of=f"{len(texts)} tweets",
                    smaller_run=", or with fewer --gemini-tweets",
                )
            model = result.model
            for pair_id, text in pairs:
                label = result.labels.get(pair_id)
                if label is None:
                    fallbacks += 1
                    predicted.append(sentiment.score_mention(text).sentiment)
                else:
                    predicted.append(label.sentiment)
    finally:
        current.close()
    figures = _classification_figures(gold, predicted)
    figures.update({"tweets": len(texts), "fallbacks": fallbacks, "model": model})
    return figures


def _print_gemini(
    figures: dict, plain_vader: Callable[[str], str], texts: list[str], gold: list[str]
) -> None:
    vader = _classification_figures(gold, [plain_vader(text) for text in texts])
    print(
        f"Gemini ({figures['model']}) on the first {figures['tweets']} of these "
        f"lines; {figures['fallbacks']} fell back to the offline scorer"
    )
    print(f"{'':28}{'plain VADER':>14}{'Gemini':>16}")
    _row("accuracy", vader["accuracy"], figures["accuracy"])
    _row("macro-F1", vader["macro_f1"], figures["macro_f1"])
    _row("macro-recall", vader["macro_recall"], figures["macro_recall"])
    print()


def _print_tweets(figures: dict) -> None:
    vader, ours = figures["plain_vader"], figures["score_mention"]
    print(
        f"Sentiment on {figures['tweets']:,} labelled tweets ({figures['lines']} "
        f"lines) in {figures['data_dir']}"
    )
    print(f"{'':28}{'plain VADER':>14}{'score_mention':>16}")
    _row("accuracy", vader["accuracy"], ours["accuracy"])
    _row("macro-F1", vader["macro_f1"], ours["macro_f1"])
    _row("macro-recall", vader["macro_recall"], ours["macro_recall"])
    for cls in CLASSES:
        for measure in ("precision", "recall", "f1"):
            _row(
                f"{cls} {measure}",
                vader["per_class"][cls][measure],
                ours["per_class"][cls][measure],
            )
    speeds = f"{vader['tweets_per_s']:>14,}{ours['tweets_per_s']:>16,}"
    print(f"{'tweets per second':28}{speeds}")
    goal = figures["goal"]
    print(
        f"goal (VADER +-{VADER_THRESHOLD} as the baseline): macro-recall "
        f"{goal['macro_recall_gain']:+.4f} (needs +{GOAL_MACRO_RECALL_GAIN}), "
        f"throughput {goal['speed_ratio']:.3f} x VADER's (needs "
        f"{GOAL_SPEED_RATIO}): {'met' if goal['met'] else 'NOT met'}"
    )

    print("\nConfusion (rows: gold; columns: predicted negative, neutral, positive)")
    print(f"{'':12}{'plain VADER':>20}{'score_mention':>24}")
    for gold in CLASSES:
        left = "".join(f"{vader['confusion'][gold][p]:>7}" for p in CLASSES)
        right = "".join(f"{ours['confusion'][gold][p]:>8}" for p in CLASSES)
        print(f"{gold:12}{left:>20}{right:>24}")
    print()


def _row(name: str, vader_value: float, our_value: float) -> None:
    print(f"{name:28}{vader_value:>14.4f}{our_value:>16.4f}")


def _print_team(figures: dict, cost: dict) -> None:
    print(f"Team mentions ({figures['mentions']}, infra/data/team_mentions.json)")
    print(f"  intent accuracy (score_mention)    {figures['intent_accuracy']:.4f}")
    print(f"  sentiment accuracy (score_mention) {figures['sentiment_accuracy']:.4f}")
    vader_accuracy = figures["plain_vader_sentiment_accuracy"]
    print(f"  sentiment accuracy (plain VADER)   {vader_accuracy:.4f}")
    for miss in figures["misses"]:
        expected, scored = "/".join(miss["expected"]), "/".join(miss["scored"])
        print(f"  miss: expected {expected}, scored {scored}: {miss['text'][:60]}")
    inspect_note = (
        " with inspect already loaded" if cost["inspect_already_loaded"] else ""
    )
    print(
        f"\nvaderSentiment import {cost['import_ms']} ms{inspect_note}, "
        f"analyser build {cost['analyser_build_ms']} ms"
    )


if __name__ == "__main__":
    sys.exit(main())
