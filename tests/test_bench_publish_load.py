"""The publishing bench runs small and prints every figure; its timings are reported,
never asserted, but a duplicate or a lost post is a failure at any size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

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
    assert any("one invocation alone, 12 posts published" in line for line in lines)
    report = json.loads(report_path.read_text())
    assert report["posts"] == report["published"] == 60
    assert report["duplicates"] == report["lost"] == 0
    assert report["published_but_not_on_x"] == 0
    assert report["error"] is None
    assert report["bare_wall_s"] > 0
    profile = report["profile"]
    assert profile["x_calls"] == 12
    assert profile["tally"]["published"] == 12
    assert profile["slowest_statements"]


def test_the_bench_s_help_describes_every_option_with_its_default(capsys) -> None:
    from bench import publish_load

    with pytest.raises(SystemExit) as exited:
        publish_load.main(["--help"])

    shown = " ".join(capsys.readouterr().out.split())
    assert exited.value.code == 0
    for option, default in [
        ("--posts", "5000"),
        ("--brands", "100"),
        ("--invocations", "4"),
        ("--latency-ms", "20.0"),
        ("--profile-posts", "200"),
        ("--json", "publish_load.json"),
        ("--work-dir", "publish_load"),
    ]:
        assert option in shown
        assert f"(default: {REPO}" in shown or f"(default: {default})" in shown
    assert shown.count("(default:") == 7


def test_the_help_gives_the_x_sandboxs_own_latency_limit(capsys) -> None:
    from bench import publish_load
    from infra.x_sandbox import LATENCY_MAX_S

    with pytest.raises(SystemExit):
        publish_load.main(["--help"])

    shown = " ".join(capsys.readouterr().out.split())
    assert f"at most {LATENCY_MAX_S * 1000:.0f})" in shown


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        (["--posts", "0"], "--posts must be at least 1"),
        (["--posts", "-3", "--brands", "1"], "--posts must be at least 1"),
        (["--posts", "10", "--brands", "11"], "--brands must be 1 to --posts"),
        (["--posts", "300", "--brands", "1"], "at most 194 posts per brand"),
        (["--posts", "300", "--brands", "1"], "use --brands 2 or more"),
        (["--invocations", "0"], "--invocations must be at least 1"),
        (["--latency-ms", "nan"], "--latency-ms must be a finite number over 0"),
        (["--latency-ms", "inf"], "--latency-ms must be a finite number over 0"),
        (["--latency-ms", "-5"], "--latency-ms must be a finite number over 0"),
        (["--latency-ms", "60001"], "--latency-ms must be at most 60000"),
        (["--profile-posts", "-1"], "--profile-posts must be 0 or more"),
        (["--profile-posts", "777"], "--profile-posts must be at most 776"),
    ],
)
def test_bad_bench_arguments_are_refused_before_anything_is_set_up(
    arguments, said, capsys, tmp_path: Path
) -> None:
    from bench import publish_load

    work_dir = tmp_path / "work"

    with pytest.raises(SystemExit) as exited:
        publish_load.main([*arguments, "--work-dir", str(work_dir)])

    assert exited.value.code == 2
    assert said in capsys.readouterr().err
    assert not work_dir.exists()
