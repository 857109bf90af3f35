"""The function benchmark runs end to end; its timings are reported, never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.helpers import bench_env

REPO = Path(__file__).resolve().parents[1]
ROWS = (
    "publish_due_posts",
    "generate_caption (template)",
    "generate_caption (Gemini stand-in)",
    "score_sentiment",
    "poll_mentions",
    "rollup_kpis",
    "drain_caption_jobs (template)",
    "api (GET /v1/posts)",
)
# Each row now also starts the function with the cloud imports and sends 20 warm
# requests to it and to the bare one; a loaded 2-core machine took 315 s.
RUN_TIMEOUT_S = 480


def test_quick_benchmark_exits_zero_and_reports_every_row(tmp_path: Path) -> None:
    env = bench_env()
    report_path = tmp_path / "functions.json"
    command = [
        sys.executable,
        "-m",
        "bench.functions",
        "--quick",
        "--json",
        str(report_path),
        "--work-dir",
        str(tmp_path / "work"),
    ]

    finished = subprocess.run(
        command,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )

    output = finished.stdout + finished.stderr
    assert finished.returncode == 0, output[-4000:]
    table = [line for line in finished.stdout.splitlines() if line.startswith(ROWS)]
    for label in ROWS:
        row = next((line for line in table if line.startswith(label + " ")), None)
        assert row is not None, f"no table row for {label}:\n{finished.stdout}"
        assert "ERROR" not in row
    report = json.loads(report_path.read_text())
    assert [row["function"] for row in report["rows"]] == list(ROWS)
    assert all(row["runs"] == 1 and row["error"] is None for row in report["rows"])
    # Every row also has its start with the cloud imports, and warm requests.
    assert all(len(row["cloud_imports_ms"]) == 1 for row in report["rows"])
    assert all(row["warm"]["error"] is None for row in report["rows"])
    assert all(row["warm"]["calls"] == 20 for row in report["rows"])
    assert all("real_p95_ms" in row["warm"] for row in report["rows"])
    # The api row also started from source, beside its start as deployed.
    api = report["rows"][-1]["from_source"]
    assert api["runs"] == 1 and api["real_cpu_median_ms"] > 0
    assert "bytecode: api (GET /v1/posts)" in finished.stdout
    # The functions started from trees prepared as `make deploy` prepares them.
    trees = tmp_path / "work" / "trees"
    assert (trees / "deploy" / "functions" / "__pycache__").is_dir()
    assert (trees / "deploy" / "bare" / "__pycache__").is_dir()
    assert not list((trees / "source").rglob("*.pyc"))
    assert report["machine"]["cpus"] >= 1
    assert set(report["imports"]) == set(ROWS)
    assert "time / ideal" in finished.stdout
    assert report["publishing"]["error"] is None
    assert report["publishing"]["duplicates"] == report["publishing"]["lost"] == 0
    assert report["mention_store"]["error"] is None
    assert report["mention_store"]["stored_again"] == 0
    assert "upsert / COPY" in finished.stdout
