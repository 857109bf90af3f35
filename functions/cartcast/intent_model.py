"""A small learned reading of a mention's intent, to back the hand-written rules.

The rules in `sentiment.py` read what they were written from; on a store nobody
tuned them for they miss order problems put in words they never saw. This is a
linear model over word, word-pair and in-word character features, the words after
a negation marked as negated, trained on the tuning halves of the team's labelled
mentions and on mentions written for tuning only (`bench/train_intent_model.py`),
and kept as plain weights in `data/intent_model.json` (539 KB, 10,312 features):
no numpy, nothing read until the first mention is scored, so the functions' cold
start does not pay for it. `sentiment.score_mention` asks it only when the rules
found no order issue.

Parsing that JSON and keying its word pairs costs a cold score_sentiment 10 to 12
ms on its first mention. The deploy archive therefore also holds the loaded model
in marshal's format (`data/intent_model.bin`, written when infra.function_source
stages the tree by this module's `main`), which reads in about 3 ms. It is keyed by
the SHA-256 of the JSON it was made from: a copy made from other weights is
ignored and the JSON read as before, so the staged copy can be slower to miss,
never different.
"""

from __future__ import annotations

import functools
import hashlib
import json
import marshal
import math
import re
import sys
from pathlib import Path

MODEL_PATH = Path(__file__).resolve().parent / "data" / "intent_model.json"
STAGED_PATH = MODEL_PATH.with_suffix(".bin")
# Version 2 has no back-references, whose use depends on reference counts: the same
# weights give the same bytes, so the staged archive stays reproducible.
MARSHAL_VERSION = 2

WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# Order references in any shape ("#FW20937", "order 55102", "ref: 51870") and
# amounts become one token each, so a number a store never used still counts.
ORDER_NUMBER = re.compile(r"#\s?[a-z]{0,4}-?\d{3,}|\b[a-z]{1,4}-?\d{4,}\b")
NUMBER = re.compile(r"\d+")
DIGIT = re.compile(r"\d")
THREE_DIGITS = re.compile(r"\d{3}")
# Looked for with `in`, several times faster than one regex search for them all.
CURRENCY_MARKS = ("$", "€", "£", "usd", "eur", "gbp")
MONEY = re.compile(r"[$€£]\s?\d+(?:[.,]\d+)?|\d+(?:[.,]\d+)?\s?(?:usd|eur|gbp)\b")
URL = re.compile(r"https?://\S+|www\.\S+")
HANDLE = re.compile(r"@\w{1,15}")
CHAR_GRAMS = (4,)
# The words after a negation carry a mark ("never arrived" -> "never !arrived"),
# up to NEGATION_SCOPE of them and only within a clause: a mark holds no "_",
# which word pairs are split at, and no letter, so it is no word of its own.
NEGATORS = frozenset({"not", "no", "never", "nothing", "without", "nobody"})
NEGATION = re.compile(rf"\b(?:{'|'.join(sorted(NEGATORS))})\b|n't\b")
NEGATION_SCOPE = 3
NEGATED = "!"
CLAUSE_END = re.compile(r"[.!?,;:]+|(?=\bbut\b)")
# Words seen before are scored from a cache: on X the same words come back.
WORD_CACHE_SIZE = 20_000


def words(text: str) -> list[str]:
    """Return the words of a text, with links, amounts and order numbers as tokens."""
    lowered = text.lower().replace("\u2019", "'")
    # Each search is skipped when its telling character is absent: this runs on
    # every mention the rules found no order issue in, tweets included.
    if "://" in lowered or "www." in lowered:
        lowered = URL.sub(" urltoken ", lowered)
    if "@" in lowered:
        lowered = HANDLE.sub(" ", lowered)
    if DIGIT.search(lowered):
        # An amount needs a currency sign or code, an order number three digits.
        if any(map(lowered.__contains__, CURRENCY_MARKS)):
            lowered = MONEY.sub(" moneytoken ", lowered)
        if THREE_DIGITS.search(lowered):
            lowered = ORDER_NUMBER.sub(" ordernumtoken ", lowered)
        lowered = NUMBER.sub("0", lowered)
    if not NEGATION.search(lowered):
        return WORD.findall(lowered)
    found = []
    for clause in CLAUSE_END.split(lowered):
        scope = 0
        for word in WORD.findall(clause):
            found.append(NEGATED + word if scope else word)
            scope = max(scope - 1, 0)
            if word in NEGATORS or word.endswith("n't"):
                scope = NEGATION_SCOPE
    return found


def word_features(word: str) -> list[str]:
    """Return one word's own features: the word and its character 4-grams."""
    padded = f"<{word}>"
    found = [f"w:{word}"]
    for n in CHAR_GRAMS:
        found.extend(f"c:{padded[i : i + n]}" for i in range(len(padded) - n + 1))
    return found


def features(text: str) -> list[str]:
    """Return the features of one text: each distinct word's own, word pairs, marks.

    A character 4-gram shared by two different words counts twice, as it does
    when the model scores a text word by word (`probabilities`).
    """
    found_words = words(text)
    found = [f for word in dict.fromkeys(found_words) for f in word_features(word)]
    pairs = zip(found_words, found_words[1:], strict=False)
    found.extend(dict.fromkeys(f"b:{a}_{b}" for a, b in pairs))
    if "?" in text:
        found.append("p:question_mark")
    if "!" in text:
        found.append("p:exclamation")
    return found


Model = tuple[
    tuple[str, ...],
    tuple[float, ...],
    dict[str, tuple[float, ...]],
    dict[tuple[str, str], tuple[float, ...]],
]


def load(data: dict) -> Model:
    """Return a model from its weights as `bench/train_intent_model.py` writes them.

    Word pairs are keyed apart, by their two words.
    """
    classes = tuple(data["classes"])
    weights = {name: tuple(row) for name, row in data["weights"].items()}
    # Words hold no "_", so "b:a_b" splits back into its pair unambiguously.
    pairs = {
        tuple(name[2:].split("_", 1)): row
        for name, row in weights.items()
        if name.startswith("b:")
    }
    return classes, tuple(data["bias"]), weights, pairs


@functools.cache
def _model() -> Model:
    """Read the shipped weights once per process, on first use: the staged copy
    when it was made from them, else the JSON."""
    shipped = MODEL_PATH.read_bytes()
    staged = read_staged(STAGED_PATH, hashlib.sha256(shipped).hexdigest())
    if staged is not None:
        return staged
    return load(json.loads(shipped.decode("utf-8")))


def read_staged(path: Path, digest: str) -> Model | None:
    """Return the model staged at `path` if it was made from weights of `digest`."""
    try:
        stored = marshal.loads(path.read_bytes())
    except (OSError, EOFError, ValueError, TypeError):
        return None
    if not isinstance(stored, tuple) or len(stored) != 2 or stored[0] != digest:
        return None
    return stored[1]


def staged_bytes(weights: bytes) -> bytes:
    """Return the staged copy of the model whose JSON is `weights`."""
    model = load(json.loads(weights.decode("utf-8")))
    digest = hashlib.sha256(weights).hexdigest()
    return marshal.dumps((digest, model), MARSHAL_VERSION)


@functools.lru_cache(maxsize=WORD_CACHE_SIZE)
def _word_scores(word: str) -> tuple[float, ...] | None:
    """Sum one word's feature weights in the shipped model, cached by word."""
    return _word_scores_in(_model(), word)


def _word_scores_in(model: Model, word: str) -> tuple[float, ...] | None:
    """Sum one word's feature weights; None when the model knows none of them."""
    _, _, weights, _ = model
    rows = [row for name in word_features(word) if (row := weights.get(name))]
    return tuple(map(sum, zip(*rows, strict=True))) if rows else None


def probabilities(text: str, model: Model | None = None) -> dict[str, float]:
    """Return the model's probability of each intent for one text.

    `model` (from `load`) stands in for the shipped weights, as the
    leave-one-store-out bench does; its words are not cached.
    """
    if model is None:
        model, word_scores = _model(), _word_scores
    else:
        word_scores = functools.partial(_word_scores_in, model)
    classes, bias, weights, pair_weights = model
    found_words = words(text)
    rows = [bias]
    rows += filter(None, map(word_scores, dict.fromkeys(found_words)))
    pairs = dict.fromkeys(zip(found_words, found_words[1:], strict=False))
    rows += filter(None, map(pair_weights.get, pairs))
    marks = (
        "p:question_mark" if "?" in text else "",
        "p:exclamation" if "!" in text else "",
    )
    rows += filter(None, map(weights.get, marks))
    # Summing columns in one pass of zip is several times faster than a loop.
    scores = list(map(sum, zip(*rows, strict=True)))
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]
    total = sum(exps)
    return {intent: e / total for intent, e in zip(classes, exps, strict=True)}


def main(argv: list[str] | None = None) -> int:
    """Write the staged copy of the shipped model to the path given
    (infra.function_source runs this in the staged tree)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m cartcast.intent_model STAGED", file=sys.stderr)
        return 2
    target = Path(args[0])
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(staged_bytes(MODEL_PATH.read_bytes()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
