"""The Gemini floor bench runs end to end; its ratios are reported, never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FLOORS = ["genai_import", "genai_client", "genai_call"]
RUN_TIMEOUT_S = 120


def test_one_run_reports_every_floor_against_the_bare_function(tmp_path: Path) -> None:
    report_path = tmp_path / "floor.json"
    command = [
        sys.executable,
        "-m",
        "bench.gemini_floor",
        "--runs",
        "1",
        "--json",
        str(report_path),
        "--work-dir",
        str(tmp_path / "work"),
    ]

    finished = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=RUN_TIMEOUT_S
    )

    assert finished.returncode == 0, (finished.stdout + finished.stderr)[-4000:]
    report = json.loads(report_path.read_text())
    assert [floor["target"] for floor in report["floors"]] == FLOORS
    assert report["bare_ms"] > 0
    assert all(floor["ratio"] > 0 for floor in report["floors"])
    assert "import google.genai" in finished.stdout
