"""`make faults` runs small: every fault run finishes, prints what it tried, and
loses or doubles nothing. Its times are printed, never asserted."""

from __future__ import annotations

import base64
import json
import socket
import struct
import subprocess
import sys
import threading
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


def _failed_case(operation: str, check: str, status: int, field: str | None) -> dict:
    body = {"error": {"code": "invalid_request", "message": "no", "field": field}}
    failure = {"failure": {"operation": operation, "message": "Valid data"}}
    return {
        "checks": [{"name": check, "status": "failure", "failure_info": failure}],
        "interaction": {
            "request": {"method": operation.split()[0], "uri": "http://h:1/v1/x"},
            "response": {
                "status_code": status,
                "content": {"$base64": base64.b64encode(json.dumps(body).encode())},
            },
        },
    }


def test_the_api_run_groups_findings_and_sets_apart_refusals_the_spec_lists(
    tmp_path: Path,
) -> None:
    from bench.faults import apifuzz

    positive = "positive_data_acceptance"
    cases = {
        "listed": _failed_case("GET /v1/audit", positive, 400, "after"),
        "listed item": _failed_case(
            "POST /v1/products", positive, 400, "products[3].sku"
        ),
        "not listed": _failed_case("GET /v1/audit", positive, 400, "action"),
        "other check": _failed_case(
            "GET /v1/audit", "negative_data_rejection", 200, None
        ),
        "listed, but a 409": _failed_case("GET /v1/audit", positive, 409, "after"),
    }
    recorder = {
        "checks": {name: case["checks"] for name, case in cases.items()},
        "interactions": {name: case["interaction"] for name, case in cases.items()},
        "cases": {},
    }
    for interaction in recorder["interactions"].values():
        content = interaction["response"]["content"]
        content["$base64"] = content["$base64"].decode()
    report = tmp_path / "events.ndjson"
    report.write_text(json.dumps({"ScenarioFinished": {"recorder": recorder}}) + "\n")
    listed = {"GET /v1/audit": {"after"}, "POST /v1/products": {"products[].sku"}}

    counted = apifuzz.read_events(report, apifuzz.paths_without_key(), listed)

    assert counted["failures"] == {
        ("GET /v1/audit", positive): 2,
        ("GET /v1/audit", "negative_data_rejection"): 1,
    }
    assert counted["excused"] == {
        ("GET /v1/audit", "after"): 1,
        ("POST /v1/products", "products[].sku"): 1,
    }


def test_every_operation_of_the_spec_that_lists_refusals_is_read() -> None:
    from bench.faults import apifuzz

    listed = apifuzz.refusals_beyond_schema()

    assert listed["GET /v1/x/callback"] == {"state", "code", "Authorization"}
    assert listed["POST /v1/products"] == {
        "products[].sku",
        "products[].handle",
        "products",
        "Authorization",
    }


def test_every_operation_may_refuse_authorization_given_twice() -> None:
    """Two Authorization headers reach the app joined by a comma, which a
    schema cannot tell from one (keys.REPEATED_CREDENTIALS): a 400 naming it is
    a refusal the spec's whole document lists, on every operation."""
    import yaml

    from bench.faults import apifuzz

    spec = yaml.safe_load(apifuzz.SPEC.read_text())
    operations = {
        f"{method.upper()} {path}"
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if isinstance(operation, dict)
    }

    listed = apifuzz.refusals_beyond_schema()

    assert set(listed) == operations
    assert all("Authorization" in fields for fields in listed.values())


def test_a_hand_made_request_with_no_answer_is_named_not_a_crash() -> None:
    """A server that resets the connection while the body is still being sent
    leaves the request unanswered; the run says which and why."""
    from bench.faults import apifuzz

    with socket.create_server(("127.0.0.1", 0)) as listener:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1/brands"

        def reset_after_the_headers() -> None:
            connection, _ = listener.accept()
            connection.recv(1024)
            # Linger 0: closing resets the connection rather than ending it.
            connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            connection.close()

        server = threading.Thread(target=reset_after_the_headers)
        server.start()
        status = apifuzz._status(url, "POST", None, b"x" * 16 * 1024 * 1024)
        server.join()

    assert isinstance(status, str)
    assert status.startswith("no answer (") and "Error" in status
