"""A small learned reading of a mention's intent, to back the hand-written rules.

The rules in `sentiment.py` read what they were written from; on a store nobody
tuned them for they miss order problems put in words they never saw. This is a
linear model over word, word-pair and in-word character features, trained on the
tuning halves of the team's labelled mentions (`bench/train_intent_model.py`)
and kept as plain weights in `data/intent_model.json`: no numpy, nothing read
until the first mention is scored, so the functions' cold start does not pay for
it. `sentiment.score_mention` asks it only when the rules found no order issue.
"""

from __future__ import annotations

import functools
import json
import math
import re
from pathlib import Path

MODEL_PATH = Path(__file__).resolve().parent / "data" / "intent_model.json"

WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# Order references in any shape ("#FW20937", "order 55102", "ref: 51870") and
# amounts become one token each, so a number a store never used still counts.
ORDER_NUMBER = re.compile(r"#\s?[a-z]{0,4}-?\d{3,}|\b[a-z]{1,4}-?\d{4,}\b")
NUMBER = re.compile(r"\d+")
MONEY = re.compile(r"[$€£]\s?\d+(?:[.,]\d+)?|\d+(?:[.,]\d+)?\s?(?:usd|eur|gbp)\b")
URL = re.compile(r"https?://\S+|www\.\S+")
HANDLE = re.compile(r"@\w{1,15}")
CHAR_GRAMS = (4,)


def features(text: str) -> set[str]:
    """Return the features of one text: words, word pairs and character 4-grams."""
    lowered = text.lower().replace("\u2019", "'")
    lowered = URL.sub(" urltoken ", lowered)
    lowered = HANDLE.sub(" ", lowered)
    lowered = MONEY.sub(" moneytoken ", lowered)
    lowered = ORDER_NUMBER.sub(" ordernumtoken ", lowered)
    lowered = NUMBER.sub("0", lowered)
    words = WORD.findall(lowered)
    found = {f"w:{w}" for w in words}
    found.update(f"b:{a}_{b}" for a, b in zip(words, words[1:], strict=False))
    for word in words:
        padded = f"<{word}>"
        for n in CHAR_GRAMS:
            found.update(f"c:{padded[i : i + n]}" for i in range(len(padded) - n + 1))
    if "?" in text:
        found.add("p:question_mark")
    if "!" in text:
        found.add("p:exclamation")
    return found


@functools.cache
def _model() -> tuple[tuple[str, ...], tuple[float, ...], dict[str, tuple[float, ...]]]:
    """Read the weights once per process, on first use."""
    data = json.loads(MODEL_PATH.read_text(encoding="utf-8"))
    classes = tuple(data["classes"])
    weights = {name: tuple(row) for name, row in data["weights"].items()}
    return classes, tuple(data["bias"]), weights


def probabilities(text: str) -> dict[str, float]:
    """Return the model's probability of each intent for one text."""
    classes, bias, weights = _model()
    scores = list(bias)
    for name in features(text):
        row = weights.get(name)
        if row is not None:
            for i, weight in enumerate(row):
                scores[i] += weight
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]
    total = sum(exps)
    return {intent: e / total for intent, e in zip(classes, exps, strict=True)}
