"""The publishing bench runs small and prints every figure; its timings are reported,
never asserted, but a duplicate or a lost post is a failure at any size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.helpers import bench_env

REPO = Path(__file__).resolve().parents[1]
ROWS = ("time / ideal", "time / bare", "duplicates", "lost")
RUN_TIMEOUT_S = 180


def test_a_small_publishing_bench_prints_every_row_and_loses_or_doubles_nothing(
    tmp_path: Path,
) -> None:
    report_path = tmp_path / "publish_load.json"
    # 60 posts over 3 brands, 2 invocations: a few ticks each; then 12 profiled.
    command = [
        sys.executable,
        "-m",
        "bench.publish_load",
        "--posts",
        "60",
        "--brands",
        "3",
        "--invocations",
        "2",
        "--latency-ms",
        "5",
        "--profile-posts",
        "12",
        "--json",
        str(report_path),
        "--work-dir",
        str(tmp_path / "work"),
    ]

    finished = subprocess.run(
        command,
        cwd=REPO,
        env=bench_env(),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )

    print(finished.stdout)
    assert finished.returncode == 0, (finished.stdout + finished.stderr)[-4000:]
    lines = finished.stdout.splitlines()
    for label in ROWS:
        assert any(line.strip().startswith(label) for line in lines), label
    assert any("one invocation alone, 12 posts" in line for line in lines)
    report = json.loads(report_path.read_text())
    assert report["posts"] == report["published"] == 60
    assert report["duplicates"] == report["lost"] == 0
    assert report["published_but_not_on_x"] == 0
    assert report["ideal_s"] == 60 * 0.005 / 2
    assert report["error"] is None
    assert report["bare_wall_s"] > 0
    profile = report["profile"]
    assert profile["x_calls"] == 12
    assert profile["tally"]["published"] == 12
    assert profile["slowest_statements"]
