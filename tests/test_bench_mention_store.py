"""The mention store bench runs small and prints its row; the ratio is reported,
never asserted, but a store that is not idempotent is a failure at any size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.helpers import bench_env

REPO = Path(__file__).resolve().parents[1]
RUN_TIMEOUT_S = 120


def test_a_small_mention_store_bench_prints_its_ratio_and_stores_nothing_twice(
    tmp_path: Path,
) -> None:
    report_path = tmp_path / "mention_store.json"
    command = [
        sys.executable,
        "-m",
        "bench.mention_store",
        "--mentions",
        "1500",
        "--runs",
        "2",
        "--json",
        str(report_path),
    ]

    finished = subprocess.run(
        command,
        cwd=REPO,
        env=bench_env(),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )

    assert finished.returncode == 0, (finished.stdout + finished.stderr)[-4000:]
    assert any(
        line.strip().startswith("upsert / COPY")
        for line in finished.stdout.splitlines()
    )
    report = json.loads(report_path.read_text())
    assert report["error"] is None and report["stored_again"] == 0
    assert report["ratio"] > 0 and len(report["upsert_runs_s"]) == 2
