"""`make faults` runs small: every fault run finishes, prints what it tried, and
loses or doubles nothing. Its times are printed, never asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import bench_env

REPO = Path(__file__).resolve().parents[1]
RUN_TIMEOUT_S = 300
RUNS = ("kills", "db", "x", "gemini", "api")


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


def test_the_gemini_run_draws_every_fault_kind_whatever_the_seed() -> None:
    from bench.faults import common, geminimix

    for seed in range(50):
        drawn = geminimix.draw_modes(common.seeded(seed, "gemini"), rounds=12)

        assert len(drawn) == 12
        assert set(geminimix.FAULT_KINDS) <= set(drawn), seed
