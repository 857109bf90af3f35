"""Leave one store out: the triage figures of the tuning halves, each store blind.

Usage:
    .venv/bin/python -m bench.triage_loso [--json PATH] [--quiet]

For each store file of `triage_eval.MENTION_FILES`, the intent model is fitted on
every other file the shipped model trains on (the other stores' tuning halves and
the tuning-only files), and that store's tuning half is scored with it. The three
folds are then pooled and ranked together, as `triage_eval` ranks the reporting
halves. This is how rules, thresholds and model settings are chosen: it reads no
reporting half, and the model never scores a store it saw. The misses' texts are
printed (they are tuning texts) unless --quiet.

Fitted weights are kept in a cache under the system's temporary directory, keyed
by what they were fitted on and how, so a change to the rules alone runs in
seconds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "functions"))

from bench import train_intent_model, triage_eval  # noqa: E402
from cartcast import intent_model  # noqa: E402

CACHE = Path(tempfile.gettempdir()) / "cartcast-triage-loso"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write every figure to this JSON file")
    parser.add_argument("--quiet", action="store_true", help="print no texts")
    args = parser.parse_args(argv)

    mentions = triage_eval.load_mentions("tuning")
    models = {}
    for store in triage_eval.MENTION_FILES:
        name = str(store.relative_to(REPO))
        models[name] = intent_model.load(fold_weights(store))

    per_file = {}
    for name in models:
        figures = triage_eval.evaluate(
            [m for m in mentions if m["file"] == name], models
        )
        figures.update(half="tuning, model blind to it", source=name)
        triage_eval._print(figures, show_texts=not args.quiet)
        per_file[name] = figures
        print()
    pooled = triage_eval.evaluate(mentions, models)
    pooled.update(half="tuning, each store's model blind to it", source="all stores")
    triage_eval._print(pooled, show_texts=False, listed_above=not args.quiet)
    print(
        f"praise recall {pooled['recall']['praise']:.3f}; "
        f"praise read as order issue {pooled['confusion']['praise']['order_issue']}, "
        f"as complaint {pooled['confusion']['praise']['complaint']}"
    )
    if args.json:
        figures = {"combined": pooled, "files": per_file}
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


def fold_weights(left_out: Path) -> dict:
    """Fit (or read from the cache) the model trained on all but one store."""
    mentions = train_intent_model.tuning_mentions(fold_paths(left_out))
    texts = [m["text"] for m in mentions]
    labels = [m["expected_intent"] for m in mentions]
    files = [m["file"] for m in mentions]
    key = hashlib.sha256(
        json.dumps(
            [texts, labels, files, train_intent_model.settings_key()],
            sort_keys=True,
        ).encode()
        + Path(intent_model.__file__).read_bytes()
        + Path(train_intent_model.__file__).read_bytes()
    ).hexdigest()[:16]
    cached = CACHE / f"{key}.json"
    if cached.exists():
        return json.loads(cached.read_text(encoding="utf-8"))
    weights = train_intent_model.train(texts, labels, files=files)
    CACHE.mkdir(exist_ok=True)
    cached.write_text(json.dumps(weights), encoding="utf-8")
    return weights


def fold_paths(left_out: Path) -> list[Path]:
    """Return the files a fold trains on: all the shipped model's but one store."""
    return [p for p in train_intent_model.TRAINED_ON if p != left_out]


if __name__ == "__main__":
    sys.exit(main())
