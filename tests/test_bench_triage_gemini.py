"""The triage bench's live mode labels mentions through Gemini (here the stand-in,
reached by google-genai on loopback) in the deployment's batches, under the quota
governor, and counts every mention that fell back to the offline scorer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import triage_eval
from infra.gemini_standin import GeminiStandIn
from tests.helpers import gemini_bench_env, labelled_mentions_file

# Written for these tests; the stand-in labels by keywords (infra/gemini_standin.py).
# The offline scorer calls the kettle a complaint; the stand-in finds no keyword in
# it and says "other", so where that miss shows, Gemini's label was the one used.
REPORTING = [
    ("The kettle leaks everywhere and the handle snapped off, awful", "complaint"),
    ("My parcel never arrived, order 5512", "order_issue"),
    ("Worst service ever, the courier was rude", "complaint"),
    ("Love the mugs, thank you", "praise"),
]
TUNING = [("Do you ship to Oslo?", "question")]


@pytest.fixture(scope="module")
def standin():
    with GeminiStandIn() as running:
        yield running


@pytest.fixture
def mentions_file(tmp_path: Path) -> Path:
    labelled = [(text, intent, "reporting") for text, intent in REPORTING]
    labelled += [(text, intent, "tuning") for text, intent in TUNING]
    return labelled_mentions_file(tmp_path / "triage_mentions_test.json", labelled)


@pytest.fixture
def live_env(runtime, standin, database_url, monkeypatch):
    """Point the deployment's settings at the stand-in, two mentions a request."""
    standin.reset()
    for name, value in gemini_bench_env(standin, database_url).items():
        monkeypatch.setenv(name, value)
    return standin


def run_bench(mentions_file: Path, tmp_path: Path, *extra: str) -> dict:
    figures_path = tmp_path / "figures.json"
    argv = ["--files", str(mentions_file), "--json", str(figures_path), *extra]
    assert triage_eval.main(argv) == 0
    return json.loads(figures_path.read_text())


def sent_texts(standin: GeminiStandIn) -> list[str]:
    texts = []
    for request in standin.requests():
        turn = request["body"]["contents"][0]["parts"][0]["text"]
        texts += [mention["text"] for mention in json.loads(turn)["mentions"]]
    return texts


def test_the_live_mode_triages_gemini_s_labels_in_the_deployment_s_batches(
    live_env, mentions_file, tmp_path, capsys
):
    figures = run_bench(mentions_file, tmp_path, "--gemini")

    output = capsys.readouterr().out
    assert len(live_env.requests()) == 2
    assert sent_texts(live_env) == [text for text, _ in REPORTING]
    assert figures["gemini"]["requests"] == 2
    assert figures["gemini"]["fallbacks"] == 0
    combined = figures["combined"]
    assert combined["model"] == "gemini-2.5-flash"
    assert combined["confusion"]["complaint"]["other"] == 1
    assert combined["recall"]["order_issue"] == 1.0
    assert combined["recall"]["complaint"] == 0.5
    assert combined["order_issues_ranked_below_praise"] == 0
    assert "Gemini (gemini-2.5-flash) labelled 4 mentions in 2 requests" in output
    assert "labelled by Gemini (gemini-2.5-flash); 0 fell back" in output
    assert "goal (recall >= 0.9 for order_issue 1.000, complaint 0.500" in output


def test_the_offline_run_sends_nothing_to_gemini_even_with_a_key(
    live_env, mentions_file, tmp_path, capsys
):
    figures = run_bench(mentions_file, tmp_path)

    output = capsys.readouterr().out
    assert live_env.requests() == []
    assert "gemini" not in figures
    assert "model" not in figures["combined"]
    assert figures["combined"]["recall"]["complaint"] == 1.0
    assert "Gemini" not in output


@pytest.mark.parametrize(
    ("fault", "fallbacks", "reason"),
    [
        ("missing_ref", 1, "gemini: no result for this id"),
        ("invalid_json", 2, "gemini: invalid JSON"),
    ],
)
def test_mentions_gemini_gave_no_label_keep_the_offline_one_and_are_counted(
    live_env, mentions_file, tmp_path, capsys, fault, fallbacks, reason
):
    # The fault spoils the first request only: the kettle and the parcel, the
    # parcel alone (the last of the batch) when an id is left out.
    live_env.set_fault(fault, count=1)

    figures = run_bench(mentions_file, tmp_path, "--gemini")

    output = capsys.readouterr().out
    assert figures["gemini"]["fallbacks"] == fallbacks
    assert figures["gemini"]["fallback_reasons"] == {reason: fallbacks}
    assert figures["combined"]["fallbacks"] == fallbacks
    assert f"{fallbacks} fell back to the offline scorer" in output
    assert f"fallback: {fallbacks} x {reason}" in output
    # The kettle is Gemini's "other" only when Gemini's label of it was kept.
    kettle_missed = figures["combined"]["confusion"]["complaint"]["other"]
    assert kettle_missed == (1 if fault == "missing_ref" else 0)


def test_a_run_the_quota_stops_midway_writes_no_figure_mixed_with_offline_labels(
    live_env, mentions_file, tmp_path
):
    # Gemini answers the first request 429: the governor pauses every caller, so
    # no later batch may be labelled by Gemini either, and the offline labels
    # filling in would pass for Gemini's figure.
    live_env.set_fault("quota", count=1, retry_delay_s=600)
    figures_path = tmp_path / "figures.json"
    argv = ["--files", str(mentions_file), "--json", str(figures_path), "--gemini"]

    with pytest.raises(SystemExit, match="stopped after 0 of 4 mentions"):
        triage_eval.main(argv)

    assert len(live_env.requests()) == 1
    assert not figures_path.exists()


def test_the_live_mode_prints_and_writes_no_reporting_text_unless_asked(
    live_env, mentions_file, tmp_path, capsys
):
    live_env.set_fault("missing_ref", count=1)

    figures = run_bench(mentions_file, tmp_path, "--gemini")
    hidden = capsys.readouterr().out + json.dumps(figures)
    shown = run_bench(mentions_file, tmp_path, "--gemini", "--show-texts")
    listed = capsys.readouterr().out

    assert not any(text in hidden for text, _ in REPORTING)
    assert "1 misses; their texts: --show-texts" in hidden
    assert "miss: complaint scored other: The kettle leaks" in listed
    assert shown["combined"]["misses"][0]["scored"] == "other"


def test_the_live_mode_without_a_key_stops_with_a_clear_message(
    live_env, mentions_file, monkeypatch
):
    monkeypatch.delenv("GEMINI_API_KEY")

    with pytest.raises(SystemExit, match="--gemini needs GEMINI_API_KEY"):
        triage_eval.main(["--files", str(mentions_file), "--gemini"])

    assert live_env.requests() == []


def test_the_live_mode_spends_nothing_when_today_s_budget_is_too_small(
    live_env, mentions_file, monkeypatch
):
    monkeypatch.setenv("GEMINI_REQUESTS_PER_DAY", "1")

    with pytest.raises(SystemExit, match="needs 2 requests .* has 1 of"):
        triage_eval.main(["--files", str(mentions_file), "--gemini"])

    assert live_env.requests() == []


def test_a_mention_file_that_is_not_there_is_refused_in_one_line(tmp_path, capsys):
    absent = tmp_path / "absent.json"

    with pytest.raises(SystemExit) as exited:
        triage_eval.main(["--files", str(absent), "--gemini"])

    assert exited.value.code == 2
    assert f"--files: no such file: {absent}" in capsys.readouterr().err


def test_a_mention_file_given_twice_is_refused_rather_than_counted_twice(
    mentions_file, capsys
):
    # Read twice, every mention of the file would count twice in its figures.
    again = mentions_file.parent / ".." / mentions_file.parent.name / mentions_file.name

    with pytest.raises(SystemExit) as exited:
        triage_eval.main(["--files", str(mentions_file), str(again)])

    assert exited.value.code == 2
    assert f"--files: given twice: {mentions_file}" in capsys.readouterr().err
