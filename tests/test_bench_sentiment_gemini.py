"""The sentiment bench's live mode labels tweets through Gemini (here the stand-in,
reached by google-genai on loopback) under the quota governor, and its Gemini
figure is Gemini's: a run the budget cannot carry to the end stops, never filling
the gap with the offline scorer's labels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import sentiment_eval
from infra.gemini_standin import GeminiStandIn
from tests.helpers import gemini_bench_env

# Written for these tests, with their labels (0 negative, 1 neutral, 2 positive).
TWEETS = [
    ("love it", 2),
    ("worst day", 0),
    ("meh", 1),
    ("thank you all", 2),
    ("broken again", 0),
    ("ok", 1),
]


@pytest.fixture(scope="module")
def standin():
    with GeminiStandIn() as running:
        yield running


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    # Each tweet line ends with one space, as the labelled export's do.
    (tmp_path / "val_text.txt").write_text("".join(f"{t} \n" for t, _ in TWEETS))
    (tmp_path / "val_labels.txt").write_text("".join(f"{g}\n" for _, g in TWEETS))
    return tmp_path


@pytest.fixture
def live_env(runtime, standin, database_url, monkeypatch):
    """Point the deployment's settings at the stand-in, two tweets a request."""
    standin.reset()
    for name, value in gemini_bench_env(standin, database_url).items():
        monkeypatch.setenv(name, value)
    return standin


def argv(data_dir: Path, *extra: str) -> list[str]:
    return ["--data-dir", str(data_dir), "--lines", "all", *extra]


def live_mode(figures_path: Path) -> tuple[str, ...]:
    """Gemini on the first four tweets (two requests), figures to a file."""
    return ("--gemini", "--gemini-tweets", "4", "--json", str(figures_path))


def test_the_bench_labels_tweets_through_gemini_only_when_asked(
    live_env, data_dir, tmp_path, capsys
):
    figures_path = tmp_path / "figures.json"

    sentiment_eval.main(argv(data_dir))
    assert live_env.requests() == []
    sentiment_eval.main(argv(data_dir, *live_mode(figures_path)))

    output = capsys.readouterr().out
    figures = json.loads(figures_path.read_text())
    assert "Gemini (gemini-2.5-flash) on the first 4 of these lines" in output
    assert len(live_env.requests()) == 2
    assert (figures["gemini"]["tweets"], figures["gemini"]["fallbacks"]) == (4, 0)


def test_the_live_mode_spends_nothing_when_today_s_budget_is_too_small(
    live_env, data_dir, monkeypatch, tmp_path
):
    # Four tweets at two a request need two requests; one is left today.
    monkeypatch.setenv("GEMINI_REQUESTS_PER_DAY", "1")
    figures_path = tmp_path / "figures.json"

    with pytest.raises(SystemExit, match="needs 2 requests .* has 1 of"):
        sentiment_eval.main(argv(data_dir, *live_mode(figures_path)))

    assert live_env.requests() == []
    assert not figures_path.exists()


def test_a_run_the_quota_stops_midway_writes_no_figure_mixed_with_offline_labels(
    live_env, data_dir, tmp_path
):
    # Gemini answers the first request 429: the governor pauses every caller, so
    # no later batch may be labelled by Gemini either.
    live_env.set_fault("quota", count=1, retry_delay_s=600)
    figures_path = tmp_path / "figures.json"

    with pytest.raises(SystemExit, match="stopped after 0 of 4 tweets"):
        sentiment_eval.main(argv(data_dir, *live_mode(figures_path)))

    assert len(live_env.requests()) == 1
    assert not figures_path.exists()


def test_the_live_mode_without_a_key_stops_with_a_clear_message(
    live_env, data_dir, monkeypatch
):
    monkeypatch.delenv("GEMINI_API_KEY")

    with pytest.raises(SystemExit, match="--gemini needs GEMINI_API_KEY"):
        sentiment_eval.main(argv(data_dir, "--gemini"))

    assert live_env.requests() == []
