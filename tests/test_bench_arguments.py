"""Every bench that takes a count refuses one it cannot run with, as a one-line
argparse error (exit 2), before it sets anything up."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest


@pytest.mark.parametrize(
    ("bench", "arguments", "said"),
    [
        ("gemini_floor", ["--runs", "0"], "--runs must be at least 1"),
        ("gemini_floor", ["--runs", "-2"], "--runs must be at least 1"),
        ("caption_quota", ["--products", "0"], "--products must be 1 to 1164"),
        ("caption_quota", ["--products", "1165"], "--products must be 1 to 1164"),
        ("caption_quota", ["--per-request", "0"], "--per-request must be 1 to 20"),
        ("caption_quota", ["--per-request", "21"], "--per-request must be 1 to 20"),
        ("caption_quota", ["--per-minute", "0"], "--per-minute and --per-day"),
        ("caption_quota", ["--per-day", "-1"], "--per-minute and --per-day"),
        ("export_memory", ["--snapshots", "0"], "--snapshots must be at least 1"),
        ("export_memory", ["--snapshots", "-5"], "--snapshots must be at least 1"),
        ("functions", ["--runs", "0"], "--runs must be 1 to 30"),
        ("functions", ["--warm-calls", "0"], "--warm-calls must be 1 to"),
        ("mention_store", ["--mentions", "0"], "--mentions must be at least 1"),
        ("mention_store", ["--runs", "0"], "--runs 1 to 20"),
        ("rollup", ["--runs", "0"], "sizes out of range"),
        ("rollup", ["--brands", "0"], "sizes out of range"),
        ("sentiment_eval", ["--gemini-tweets", "0"], "--gemini-tweets must be"),
    ],
)
def test_a_count_the_bench_cannot_run_with_is_refused_in_one_line(
    bench: str, arguments: list[str], said: str, capsys, tmp_path: Path
) -> None:
    module = importlib.import_module(f"bench.{bench}")
    json_path = tmp_path / "figures.json"

    with pytest.raises(SystemExit) as exited:
        module.main([*arguments, "--json", str(json_path)])

    errors = capsys.readouterr().err.strip().splitlines()
    assert exited.value.code == 2
    assert ": error: " in errors[-1] and said in errors[-1]
    assert not json_path.exists()
