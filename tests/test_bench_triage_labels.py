"""The triage bench scores labels recorded elsewhere (a person's second reading, a
model's answers kept from another run) against the goal, triaged as a Gemini label
is, and counts every mention the file gave no label."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import triage_eval
from tests.helpers import labelled_mentions_file

# Written for these tests. The offline scorer reads the kettle as a complaint, so
# where "other" shows for it, the recorded label was the one used.
REPORTING = [
    ("The kettle leaks everywhere and the handle snapped off, awful", "complaint"),
    ("My parcel never arrived, order 5512", "order_issue"),
    ("Love the mugs, thank you", "praise"),
]


@pytest.fixture
def mentions_file(tmp_path: Path) -> Path:
    rows = [(text, intent, "reporting") for text, intent in REPORTING]
    return labelled_mentions_file(tmp_path / "mentions.json", rows)


def labels_file(tmp_path: Path, labels: list[dict]) -> Path:
    path = tmp_path / "labels.json"
    path.write_text(json.dumps({"labeller": "second reader", "labels": labels}))
    return path


def label(text: str, intent: str, sentiment: str = "neutral", score=0.0) -> dict:
    return {"text": text, "intent": intent, "sentiment": sentiment, "score": score}


def run_bench(mentions: Path, labels: Path, tmp_path: Path) -> dict:
    figures_path = tmp_path / "figures.json"
    argv = ["--files", str(mentions), "--labels", str(labels)]
    assert triage_eval.main([*argv, "--json", str(figures_path)]) == 0
    return json.loads(figures_path.read_text())


def test_recorded_labels_are_the_ones_triaged_and_counted(mentions_file, tmp_path):
    labels = labels_file(
        tmp_path,
        [
            label(REPORTING[0][0], "other"),
            label(REPORTING[1][0], "order_issue", "negative", -0.8),
            label(REPORTING[2][0], "praise", "positive", 0.9),
            # A label for a text of another half is not a mention of this one.
            label("Do you ship to Oslo?", "question"),
        ],
    )
    figures = run_bench(mentions_file, labels, tmp_path)
    combined = figures["combined"]
    assert combined["confusion"]["complaint"]["other"] == 1
    assert combined["recall"]["order_issue"] == 1.0
    assert combined["labeller"] == "recorded labels"
    assert combined["model"] == "second reader"
    assert figures["recorded"]["fallbacks"] == 0


def test_a_mention_with_no_recorded_label_keeps_the_offline_one_and_is_counted(
    mentions_file, tmp_path, capsys
):
    labels = labels_file(tmp_path, [label(REPORTING[0][0], "other")])
    figures = run_bench(mentions_file, labels, tmp_path)
    assert figures["recorded"]["fallbacks"] == 2
    assert figures["recorded"]["fallback_reasons"] == {"no recorded label": 2}
    assert figures["combined"]["fallbacks"] == 2
    assert "2 had none and kept the offline label" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        ({"intent": "refund"}, "intent must be one of"),
        ({"sentiment": "angry"}, "sentiment must be one of"),
        ({"score": "0.5"}, "score must be a number"),
        ({"score": True}, "score must be a number"),
        ({"score": 3}, "score must be between -1 and 1"),
        ({"text": None}, "no text"),
    ],
)
def test_an_unusable_label_stops_the_bench_naming_it(
    mentions_file, tmp_path, bad, named
):
    labels = labels_file(
        tmp_path,
        [
            label(REPORTING[1][0], "order_issue"),
            {**label(REPORTING[0][0], "other"), **bad},
        ],
    )
    with pytest.raises(SystemExit, match=f"label 1: {named}"):
        triage_eval.main(["--files", str(mentions_file), "--labels", str(labels)])


def test_a_text_labelled_twice_stops_the_bench(mentions_file, tmp_path):
    twice = [label(REPORTING[0][0], "other"), label(REPORTING[0][0], "complaint")]
    with pytest.raises(SystemExit, match="label 1: a text labelled twice"):
        triage_eval.main(
            [
                "--files",
                str(mentions_file),
                "--labels",
                str(labels_file(tmp_path, twice)),
            ]
        )


@pytest.mark.parametrize(
    "content", ["[]", '{"labels": []}', '{"labeller": "x", "labels": 5}', "not json"]
)
def test_a_file_that_is_not_a_labels_file_stops_the_bench(
    mentions_file, tmp_path, content
):
    path = tmp_path / "labels.json"
    path.write_text(content)
    with pytest.raises(SystemExit, match="not a labels file"):
        triage_eval.main(["--files", str(mentions_file), "--labels", str(path)])


def test_labels_and_gemini_together_are_refused(mentions_file, tmp_path, capsys):
    labels = labels_file(tmp_path, [])
    argv = ["--files", str(mentions_file), "--labels", str(labels), "--gemini"]
    with pytest.raises(SystemExit):
        triage_eval.main(argv)
    assert "either recorded labels or --gemini" in capsys.readouterr().err


def test_the_pooled_ranking_is_printed_beside_each_store_s_own(tmp_path, capsys):
    # Store a's praise is read as an order issue and tops the pooled list, above
    # store b's order issue; in b's own inbox no praise is above it.
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    praise = [("Thank you for the lovely lamp", "praise", "reporting")]
    labelled_mentions_file(a, praise)
    order = [("My parcel never arrived, order 5512", "order_issue", "reporting")]
    labelled_mentions_file(b, order)
    labels = labels_file(
        tmp_path,
        [
            label("Thank you for the lovely lamp", "order_issue", "negative", -0.5),
            label("My parcel never arrived, order 5512", "order_issue"),
        ],
    )
    figures_path = tmp_path / "figures.json"
    argv = ["--files", str(a), str(b), "--labels", str(labels)]
    assert triage_eval.main([*argv, "--json", str(figures_path)]) == 0
    combined = json.loads(figures_path.read_text())["combined"]
    assert combined["order_issues_ranked_below_praise"] == 1
    assert combined["order_issues_below_praise_store_by_store"] == 0
    assert "(each store's inbox ranked on its own: 0 in all)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "path", sorted(triage_eval.REPO.glob("bench/labels/*.json")), ids=lambda p: p.name
)
def test_each_kept_labels_file_labels_every_mention_of_its_half_and_no_other(path):
    # The figures the README and decisions 0060 and 0061 quote are reproduced
    # with `bench.triage_eval --labels` on these files.
    half = path.name.split("_")[0]
    _, labels = triage_eval.recorded_labels(path)
    assert set(labels) == {m["text"] for m in triage_eval.load_mentions(half)}
