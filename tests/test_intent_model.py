"""The learned intent model: read lazily, reproducible, and what it adds to rules."""

from __future__ import annotations

import hashlib
import json
import marshal
import math
import subprocess
import sys
from pathlib import Path

from bench import train_intent_model
from cartcast import intent_model, sentiment
from cartcast.sentiment import score_mention

REPO = Path(__file__).resolve().parents[1]


def test_importing_the_scorer_reads_no_weights():
    # The functions' cold start imports sentiment.py; the weights wait for a mention.
    code = (
        "import sys; sys.path.insert(0, 'functions'); import cartcast.sentiment; "
        "print('cartcast.intent_model' in sys.modules)"
    )
    finished = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True
    )

    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.strip() == "False"


def test_the_shipped_weights_are_what_training_on_the_tuning_halves_gives(tmp_path):
    out = tmp_path / "model.json"

    train_intent_model.main(["--out", str(out)])

    assert json.loads(out.read_text()) == json.loads(
        intent_model.MODEL_PATH.read_text()
    )


def test_scoring_word_by_word_adds_up_to_the_features_the_model_was_trained_on():
    data = json.loads(intent_model.MODEL_PATH.read_text())
    text = "@shop my order #AB12345 was $40 and it's late late late?! my order"
    scores = list(data["bias"])
    for name in intent_model.features(text):
        for i, weight in enumerate(data["weights"].get(name, ())):
            scores[i] += weight
    exps = [math.exp(s - max(scores)) for s in scores]
    expected = {c: e / sum(exps) for c, e in zip(data["classes"], exps, strict=True)}

    found = intent_model.probabilities(text)

    for intent, probability in expected.items():
        assert math.isclose(found[intent], probability, abs_tol=1e-12)


def test_the_model_reads_an_order_problem_the_rules_have_no_words_for():
    score = score_mention(
        "@oakandreed eleven days since i paid and nothing has shipped"
    )

    assert score.intent == "order_issue"
    assert "model:order_issue" in score.reasons


def test_the_model_leaves_the_rules_order_issues_spam_and_plain_questions_alone():
    order = score_mention("@oakandreed my order #48213 never arrived")
    question = score_mention("@oakandreed do you ship to Canada?")
    spam = score_mention(
        "@oakandreed follow back!! 10k followers for $5 http://a.example"
    )

    assert order.intent == "order_issue" and question.intent == "question"
    assert spam.intent == "spam"
    assert not any(r.startswith("model:") for r in order.reasons + question.reasons)


def test_odd_texts_get_probabilities_that_add_up_to_one():
    for text in ("", "!!!", "\U0001f600" * 50, "\ud800 lone surrogate", "x" * 25_000):
        found = intent_model.probabilities(text)
        assert math.isclose(sum(found.values()), 1.0)


def test_a_model_given_to_the_scorer_stands_in_for_the_shipped_weights():
    # Sure of a complaint whatever the words: only its bias is set.
    classes = list(train_intent_model.CLASSES)
    bias = [9.0 if c == "complaint" else 0.0 for c in classes]
    sure = intent_model.load({"classes": classes, "bias": bias, "weights": {}})

    given = score_mention("@oakandreed is the oak table solid wood", model=sure)
    shipped = score_mention("@oakandreed is the oak table solid wood")

    assert given.intent == "complaint" and "model:complaint" in given.reasons
    assert shipped.intent == "question"
    assert intent_model.probabilities("anything", sure)["complaint"] > 0.99


def _order_model(probability: float) -> intent_model.Model:
    """A model that reads every text as an order issue with this probability."""
    classes = list(train_intent_model.CLASSES)
    # The other five classes share the rest equally.
    lift = math.log(probability * (len(classes) - 1) / (1 - probability))
    bias = [lift if c == "order_issue" else 0.0 for c in classes]
    return intent_model.load({"classes": classes, "bias": bias, "weights": {}})


def test_a_fairly_sure_model_does_not_overrule_praise_words():
    # "Love that you sent a note with my order": the order words are praised.
    fairly_sure = _order_model(sentiment.MODEL_ORDER_OVER_CHEER - 0.1)
    text = "@oakandreed love the note you sent, thank you"

    praised = score_mention(text, model=fairly_sure)
    plain = score_mention("@oakandreed nice, the box is here", model=fairly_sure)

    assert praised.intent == "praise" and "adjust:eager" in praised.reasons
    assert plain.sentiment == "positive" and plain.intent == "order_issue"


def test_a_model_all_but_sure_of_an_order_issue_is_taken_over_a_cheer():
    # "Please can my booking be moved? thank you" is a request (decision 0055).
    sure = _order_model(sentiment.MODEL_ORDER_OVER_CHEER + 0.05)

    cheered = score_mention("@oakandreed love the note you sent, thank you", model=sure)

    assert cheered.intent == "order_issue" and "model:order_issue" in cheered.reasons


def test_words_after_a_negation_are_marked_within_their_clause():
    text = "it never arrived at all. Arrived fine, didn't it, but ok"

    found = intent_model.words(text)

    # "never arrived" is not "arrived"; the mark ends after three words, at a
    # clause's end and before "but".
    assert found == [
        "it", "never", "!arrived", "!at", "!all",
        "arrived", "fine", "didn't", "!it", "but", "ok",
    ]  # fmt: skip
    assert "w:!arrived" in intent_model.features("never arrived")
    assert "b:never_!arrived" in intent_model.features("never arrived")


def test_a_marked_pair_is_read_back_as_the_same_pair():
    # Word pairs are keyed by splitting "b:a_b" at its first "_": a mark must
    # not hold one.
    model = intent_model.load(
        {
            "classes": ["order_issue", "praise"],
            "bias": [0.0, 0.0],
            "weights": {"b:never_!arrived": [3.0, 0.0]},
        }
    )

    found = intent_model.probabilities("never arrived", model)

    assert found["order_issue"] > 0.9


# --- The staged copy (intent_model.bin, written by infra.function_source) --------


def tuning_texts() -> list[str]:
    """The tuning halves' texts, every file the trainer knows; no reporting half."""
    paths = train_intent_model.TRAINED_ON + train_intent_model.NOT_TRAINED_ON
    return [m["text"] for m in train_intent_model.tuning_mentions(paths)]


def test_the_staged_model_is_the_shipped_one_weight_for_weight(tmp_path):
    shipped = intent_model.MODEL_PATH.read_bytes()
    staged_path = tmp_path / "intent_model.bin"
    staged_path.write_bytes(intent_model.staged_bytes(shipped))
    from_json = intent_model.load(json.loads(shipped))

    staged = intent_model.read_staged(staged_path, hashlib.sha256(shipped).hexdigest())

    # Float for float: the same weights, so the same probabilities for any text.
    assert staged == from_json
    for text in tuning_texts():
        by_staged = intent_model.probabilities(text, model=staged)
        assert by_staged == intent_model.probabilities(text, model=from_json)


def test_a_staged_model_made_from_other_weights_or_unreadable_is_ignored(tmp_path):
    shipped = intent_model.MODEL_PATH.read_bytes()
    digest = hashlib.sha256(shipped).hexdigest()
    data = json.loads(shipped)
    data["bias"] = [b + 1.0 for b in data["bias"]]
    other = tmp_path / "other.bin"
    other.write_bytes(intent_model.staged_bytes(json.dumps(data).encode()))
    broken = tmp_path / "broken.bin"
    broken.write_bytes(b"not marshal")

    assert intent_model.read_staged(other, digest) is None
    assert intent_model.read_staged(broken, digest) is None
    assert intent_model.read_staged(tmp_path / "missing.bin", digest) is None


def test_a_staged_tree_scores_from_its_staged_model_exactly_as_the_checkout(tmp_path):
    from infra import function_source

    tree = function_source.stage(REPO / "functions", tmp_path / "functions")
    code = (
        "import json, sys\n"
        "from cartcast import intent_model as m\n"
        "texts = json.load(sys.stdin)\n"
        "print(json.dumps({'bias': m._model()[1],\n"
        "    'probabilities': [m.probabilities(t) for t in texts]}))\n"
    )
    texts = tuning_texts()

    def run(path: Path) -> dict:
        done = subprocess.run(
            [sys.executable, "-c", code],
            input=json.dumps(texts),
            env={"PYTHONPATH": str(path), "PYTHONDONTWRITEBYTECODE": "1"},
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    from_tree, from_checkout = run(tree), run(REPO / "functions")

    assert (tree / "cartcast" / "data" / "intent_model.bin").is_file()
    assert from_tree == from_checkout

    # The tree's model is the staged copy: one marked by other weights under the
    # shipped digest is what it reads.
    staged = tree / "cartcast" / "data" / "intent_model.bin"
    digest, (classes, bias, weights, pairs) = marshal.loads(staged.read_bytes())
    marked = (digest, (classes, tuple(b + 1.0 for b in bias), weights, pairs))
    staged.write_bytes(marshal.dumps(marked, intent_model.MARSHAL_VERSION))

    assert run(tree)["bias"] == [b + 1.0 for b in from_checkout["bias"]]
