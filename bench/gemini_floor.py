"""The Gemini caption path's floor: what google-genai alone adds to a cold start.

Issue 9 asks the Gemini caption path to start within 3.5 bare starts. This bench
shows how much of that budget the SDK takes before cartcast runs any code of its
own: bare functions (bench/gemini_floor/main.py) that on their first request only
import google-genai; import it and build a client as cartcast.gemini does; or
also make one JSON-schema call to the Gemini stand-in. Each is started the way
bench/functions.py starts every function (the functions-framework CLI, from a
tree compiled as `make deploy` compiles one) and timed from spawn to the end of
its first answer, interleaved with the bare HTTP function (bench/bare/main.py),
and divided by the bare function's median in the same run. The ratio, not the
time, is the figure: the machine is shared.

    .venv/bin/python -m bench.gemini_floor [--runs 7] [--json PATH] [--work-dir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from bench.functions import (
    BARE_DIR,
    GEMINI_API_KEY,
    REPO,
    SourceFunctionProcess,
    cold_start,
    start_helper,
    stop_process,
    stopping_on_sigterm,
)
from infra import function_source, local_cloud
from infra.local_cloud import call_json, free_port

FLOOR_DIR = REPO / "bench" / "gemini_floor"
WORK_DIR = REPO / "var" / "bench" / "gemini_floor"
RUNS = 7
# (target, what it does on its first request), cheapest first.
FLOORS = (
    ("genai_import", "import google.genai"),
    ("genai_client", "import + client"),
    ("genai_call", "import + client + one call"),
)


def measure(runs: int, work_dir: Path) -> dict[str, Any]:
    """Start the bare function and each floor `runs` times, interleaved."""
    trees = work_dir / "trees"
    bare_tree = function_source.stage(BARE_DIR, trees / "bare")
    floor_tree = function_source.stage(FLOOR_DIR, trees / "gemini_floor")
    logs = work_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)

    # A SIGTERM (a CI timeout, `kill`) must stop the stand-in and the function too.
    with stopping_on_sigterm(), contextlib.ExitStack() as stack:
        port = free_port()
        # bench/functions.py's environment for every function it starts.
        env = {**local_cloud._base_env(), "PYTHONDONTWRITEBYTECODE": "1"}
        standin = start_helper(
            "infra.gemini_standin",
            ["--api-key", GEMINI_API_KEY],
            port,
            env,
            logs / "gemini.log",
        )
        stack.callback(stop_process, standin)
        env |= {
            "GEMINI_API_KEY": GEMINI_API_KEY,
            "GEMINI_BASE_URL": f"http://127.0.0.1:{port}",
        }

        def start(target: str, tree: Path) -> SourceFunctionProcess:
            return SourceFunctionProcess(
                target, "http", tree / "main.py", env, logs, target
            )

        def send(url: str) -> tuple[int, Any]:
            return call_json("POST", url, {})

        times: dict[str, list[float]] = {"bare_http": []}
        cpu: dict[str, list[float]] = {"bare_http": []}
        for target, _ in FLOORS:
            times[target], cpu[target] = [], []
        for run in range(runs):
            for target, tree in [("bare_http", bare_tree)] + [
                (target, floor_tree) for target, _ in FLOORS
            ]:
                sample, (status, _) = cold_start(start(target, tree), send)
                if status != 200:
                    raise SystemExit(f"{target} answered {status}; see {logs}")
                times[target].append(sample.elapsed_ms)
                cpu[target].append(sample.cpu_ms)
            print(
                f"run {run + 1}/{runs}: "
                + ", ".join(f"{t} {times[t][-1]:.0f} ms" for t in times),
                file=sys.stderr,
            )

    bare_ms = statistics.median(times["bare_http"])
    bare_cpu = statistics.median(cpu["bare_http"])
    return {
        "runs": runs,
        "bare_ms": round(bare_ms, 1),
        "bare_cpu_ms": round(bare_cpu, 1),
        "floors": [
            {
                "target": target,
                "does": does,
                "median_ms": round(statistics.median(times[target]), 1),
                "ratio": round(statistics.median(times[target]) / bare_ms, 2),
                "cpu_ratio": round(statistics.median(cpu[target]) / bare_cpu, 2),
            }
            for target, does in FLOORS
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--work-dir", type=Path, default=WORK_DIR)
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    result = measure(args.runs, args.work_dir)
    print(
        "The Gemini caption path's floor: bare HTTP functions that only use "
        "google-genai, over the bare function in the same run (the path's target "
        f"is 3.5); bare {result['bare_ms']:.0f} ms, median of {args.runs}"
    )
    print(f"{'first request does':30} {'median ms':>9} {'ratio':>6} {'CPU ratio':>9}")
    for floor in result["floors"]:
        print(
            f"{floor['does']:30} {floor['median_ms']:9.0f} {floor['ratio']:6.2f} "
            f"{floor['cpu_ratio']:9.2f}"
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
