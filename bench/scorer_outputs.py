"""Write every output of the offline scorer on a fixed set of texts, to compare trees.

Usage (this tree, then another checkout's code with this script, then compare):
    .venv/bin/python -m bench.scorer_outputs /tmp/outputs-mine.json
    PYTHONPATH=OTHER:OTHER/functions .venv/bin/python bench/scorer_outputs.py \
        /tmp/outputs-other.json
    cmp /tmp/outputs-other.json /tmp/outputs-mine.json

The texts are the even (tuning) lines of val_text.txt, read where they lie
(bench/sentiment_eval.py finds them; skipped when absent), every text of
tests/data/triage_mentions*.json and a few edge cases. Each line holds the text,
the MentionScore with every float as repr() and the intent model's probabilities,
so a speed-up that changes any label, score, intent, reason or probability, to
the last bit, shows as a difference. The odd lines are never read here.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from bench.sentiment_eval import REPO, _data_dir
from cartcast import intent_model, sentiment

EDGE_CASES = (
    "",
    " ",
    "!!!",
    "?",
    "#123 $5",
    "order 12345 www.example.com @a",
    "\U0001f642" * 50,
    "x" * 30_000,
    "Good Friday ORDER #AB-1234 where?!",
)


def texts() -> list[str]:
    found = []
    tweets = _data_dir(None) / "val_text.txt"
    if tweets.is_file():
        found += tweets.read_text(encoding="utf-8").split("\n")[1::2]
    for path in sorted((REPO / "tests" / "data").glob("triage_mentions*.json")):
        found += [m["text"] for m in json.loads(path.read_text(encoding="utf-8"))]
    return found + list(EDGE_CASES)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__)
        return 2
    rows = []
    for text in texts():
        score = dataclasses.astuple(sentiment.score_mention(text))
        model = intent_model.probabilities(text)
        rows.append([text, repr(score), {k: repr(v) for k, v in model.items()}])
    Path(argv[0]).write_text(json.dumps(rows) + "\n", encoding="utf-8")
    print(f"{len(rows)} texts scored, outputs written to {argv[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
