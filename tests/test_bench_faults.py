"""`make faults` runs small: every fault run finishes, prints what it tried, and
loses or doubles nothing. Its times are printed, never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.helpers import bench_env

REPO = Path(__file__).resolve().parents[1]
RUN_TIMEOUT_S = 300
RUNS = ("kills", "db", "x", "gemini", "api")
NEGATIVE = {"mode": "negative"}


def test_a_quick_fault_run_of_each_kind_finishes_clean() -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "bench.faults", "--quick", "--seed", "7"],
        cwd=REPO,
        env=bench_env(),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    print(finished.stdout)

    assert finished.returncode == 0, finished.stdout + finished.stderr
    for run in RUNS:
        assert f"[faults] {run}: ok in " in finished.stdout
    assert "seed 7" in finished.stdout
    assert "5 of 5 runs clean" in finished.stdout
    assert "doubled 0" in finished.stdout and "lost 0" in finished.stdout
    assert "kinds_not_met none" in finished.stdout
    assert "'admin key': '0/" in finished.stdout
    assert "'hand-made body checks': '0/" in finished.stdout


def test_the_gemini_run_draws_every_fault_kind_whatever_the_seed() -> None:
    from bench.faults import common, geminimix

    for seed in range(50):
        drawn = geminimix.draw_modes(common.seeded(seed, "gemini"), rounds=12)

        assert len(drawn) == 12
        assert set(geminimix.FAULT_KINDS) <= set(drawn), seed


def test_the_api_run_counts_401s_of_generated_keyed_requests(tmp_path: Path) -> None:
    from bench.faults import apifuzz

    answers = {
        "a": ("GET", "/v1/posts?limit=1", 200),
        "b": ("PATCH", "/v1/brand", 401),
        "c": ("POST", "/v1/webhooks/orders/fuzz-goods", 401),
        "probe": ("GET", "/v1/posts", 401),
        "broken header": ("GET", "/v1/brand", 401),
    }
    event = {
        "ScenarioFinished": {
            "recorder": {
                "interactions": {
                    name: {
                        "request": {"method": method, "uri": f"http://h:1{path}"},
                        "response": {"status_code": status},
                    }
                    for name, (method, path, status) in answers.items()
                },
                "cases": {
                    # ignored_auth's copy of case "a" without the key.
                    "probe": {"parent_id": "a", "is_transition_applied": False},
                    "broken header": {
                        "value": {"meta": {"components": {"header": NEGATIVE}}}
                    },
                },
            }
        }
    }
    report = tmp_path / "events.ndjson"
    report.write_text(json.dumps(event) + "\n")

    counted = apifuzz.read_events(report, apifuzz.paths_without_key())

    assert counted["requests"] == 5
    assert (counted["keyed"], counted["keyed_401"]) == (2, 1)
