"""The Gemini floor bench runs end to end; its ratios are reported, never asserted."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.functions import process_tree
from infra.local_cloud import kill_process_tree

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


def test_a_run_stopped_by_sigterm_leaves_no_stand_in_or_function_behind(
    tmp_path: Path,
) -> None:
    # What a CI timeout or `kill` does: bench.functions turns it into SystemExit
    # so its ExitStack stops every process it started; this bench must as well.
    command = [
        sys.executable,
        "-m",
        "bench.gemini_floor",
        "--runs",
        "50",
        "--work-dir",
        str(tmp_path / "work"),
    ]
    bench = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        started = wait_for_a_function_under(bench)
        bench.send_signal(signal.SIGTERM)
        bench.wait(RUN_TIMEOUT_S)
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()

    left_behind = wait_until_gone(started)
    for pid in left_behind:  # not to leave them running after a failure
        kill_process_tree(pid)
    assert bench.returncode != 0
    assert left_behind == []


def wait_for_a_function_under(bench: subprocess.Popen) -> list[int]:
    """Wait until the bench has the stand-in and a function running; return the
    pids of everything it started then."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        assert bench.poll() is None, "the bench ended before it was stopped"
        started = [pid for pid in process_tree(bench.pid) if pid != bench.pid]
        commands = [command_line(pid) for pid in started]
        if any("gemini_standin" in c for c in commands) and any(
            "functions-framework" in c for c in commands
        ):
            return started
        time.sleep(0.05)
    raise AssertionError("the bench never started a function")


def wait_until_gone(pids: list[int]) -> list[int]:
    """Return the pids still alive (not zombies) once they had time to exit."""
    deadline = time.monotonic() + 15
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if is_running(pid)]
        time.sleep(0.1)
    return alive


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def is_running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
