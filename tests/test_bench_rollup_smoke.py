"""The rollup benchmark runs end to end at small sizes; its figures are reported, never
asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.helpers import bench_env

REPO = Path(__file__).resolve().parents[1]
ROWS = ("full rollup / bare GROUP BY", "one new day / full rollup")
RUN_TIMEOUT_S = 240


def test_small_rollup_benchmark_exits_zero_and_prints_every_row(
    tmp_path: Path,
) -> None:
    report_path = tmp_path / "rollup.json"
    command = [
        sys.executable,
        "-m",
        "bench.rollup",
        "--quick",
        "--snapshots",
        "2000",
        "--orders",
        "400",
        "--days",
        "10",
        "--brands",
        "3",
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

    output = finished.stdout + finished.stderr
    assert finished.returncode == 0, output[-4000:]
    for label in ROWS:
        assert any(line.strip().startswith(label) for line in output.splitlines()), (
            f"no row for {label}:\n{finished.stdout}"
        )
    report = json.loads(report_path.read_text())
    assert report["error"] is None
    assert report["rows_compared"] > 0
