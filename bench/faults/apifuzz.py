"""The HTTP API from docs/openapi.yaml, property-based, with schemathesis.

The `api` function is served by functions-framework on loopback, as Cloud Run
serves it, over a fresh database holding one brand. schemathesis (the CLI, pinned
in requirements-dev.txt) generates valid and invalid requests for every operation
of the spec and runs its checks on each answer, four times: with the brand's
admin key, with no Authorization header, with a key that does not exist, and with
the operator key (which opens only POST /v1/brands). Then hand-made requests the
generator does not make: a body over the size limit, bodies that are not JSON or
not UTF-8, a JSON array or scalar where an object belongs, and the wrong content
type, to every route that takes a body and to generate_caption.

What must hold: zero 5xx. Every other failed check (an answer the spec does not
describe) is printed as a mismatch.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from bench.faults import common

SPEC = common.REPO / "docs" / "openapi.yaml"
OPERATOR_KEY = "faults-operator-key"
OVERSIZED_BYTES = 2 * 1024 * 1024
SERVER_ERROR_CHECK = "not_a_server_error"
EXAMPLES_SHOWN = 12
# Authorization headers no key makes, each to a read, a write and the operator's route.
BAD_AUTHORIZATIONS = {
    "empty": "",
    "'Bearer'": "Bearer",
    "'Bearer ' and nothing": "Bearer ",
    "Basic": "Basic dXNlcjpwYXNz",
    "lower-case bearer": "bearer ck_not_a_key",
    "a 16 KiB token": "Bearer " + "k" * 16384,
    "Latin-1 bytes": "Bearer cl\u00e9",
    "two tokens": "Bearer one two",
}
AUTH_TARGETS = (("GET", "/v1/posts"), ("PATCH", "/v1/brand"), ("POST", "/v1/brands"))


def run(
    *, seed: int, max_examples: int = 10, admin_time_s: int = 60, auth_time_s: int = 12
) -> dict[str, Any]:
    from infra import local_cloud

    work_dir = common.WORK_DIR / "api"
    work_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(common.fresh_database("cartcast_bench_faults"))
        env = {
            **local_cloud._base_env(),
            "DATABASE_URL": url,
            "CARTCAST_OPERATOR_KEY": OPERATOR_KEY,
        }
        functions = {
            target: local_cloud.FunctionProcess(target, env, work_dir).start()
            for target in ("api", "generate_caption")
        }
        for function in functions.values():
            stack.callback(function.stop)
        for function in functions.values():
            function.wait_ready()
        base = functions["api"].url.rstrip("/")
        status, body = local_cloud.call_json(
            "POST",
            f"{base}/v1/brands",
            {
                "name": "Fuzz Goods",
                "slug": "fuzz-goods",
                "time_zone": "UTC",
                "store_base_url": "https://fuzz.example.com",
            },
            key=OPERATOR_KEY,
        )
        if status != 201:
            raise common.FaultRunError(f"could not create the brand: {status} {body}")
        admin_key = body["api_key"]

        runs = {
            "admin key": [f"Authorization: Bearer {admin_key}"],
            "no key": [],
            "unknown key": ["Authorization: Bearer ck_not_a_key_at_all"],
            "operator key": [f"Authorization: Bearer {OPERATOR_KEY}"],
        }
        figures: dict[str, Any] = {}
        server_errors = 0
        mismatches: Counter[str] = Counter()
        for name, headers in runs.items():
            outcome = schemathesis(
                base,
                headers,
                work_dir / name.replace(" ", "_"),
                seed=seed,
                max_examples=max_examples,
                max_time_s=admin_time_s if name == "admin key" else auth_time_s,
                # Without a key, what matters is that nothing breaks: the valid
                # requests all meet the 401 before any field is read.
                mode="all" if name == "admin key" else "positive",
            )
            figures[f"{name}: requests"] = outcome["requests"]
            server_errors += outcome["failures"].get(SERVER_ERROR_CHECK, 0)
            for check, found in outcome["failures"].items():
                if check != SERVER_ERROR_CHECK:
                    mismatches[f"{check} ({name})"] += found
            for line in outcome["examples"]:
                common.say(f"    {name}: {line}")

        handmade = malformed_requests(
            base, functions["generate_caption"].url, admin_key
        )
        figures["hand-made requests"] = len(handmade)
        by_status = Counter(status for _, status in handmade)
        figures["hand-made statuses"] = dict(sorted(by_status.items()))
        for what, status in handmade:
            if status is None or status >= 500:
                server_errors += 1
                common.say(f"    hand-made: {what} answered {status}")
    return {
        **figures,
        "5xx": server_errors,
        "spec_mismatches": dict(mismatches) or "none",
        "ok": server_errors == 0,
    }


def schemathesis(
    base: str,
    headers: list[str],
    work_dir: Path,
    *,
    seed: int,
    max_examples: int,
    max_time_s: int,
    mode: str,
) -> dict[str, Any]:
    """Run the schemathesis CLI once; count requests and failed checks by name."""
    work_dir.mkdir(parents=True, exist_ok=True)
    events = work_dir / "events.ndjson"
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        str(SPEC),
        "--url",
        base,
        "--checks",
        "all",
        "--mode",
        mode,
        "--max-examples",
        str(max_examples),
        "--max-time",
        str(max_time_s),
        "--seed",
        str(seed),
        "--workers",
        "2",
        "--request-timeout",
        "30",
        "--generation-database",
        "none",
        # The spec's info says no string may hold NUL (PostgreSQL text cannot);
        # JSON Schema has no way to say it of every string and key, so it is
        # said here: a NUL is not "valid data" the API should take.
        "--generation-allow-x00",
        "false",
        "--exclude-path",
        "/",
        "--continue-on-failure",
        "--no-color",
        "--report",
        "ndjson",
        "--report-ndjson-path",
        str(events),
    ]
    for header in headers:
        command += ["--header", header]
    finished = subprocess.run(
        command,
        cwd=work_dir,
        capture_output=True,
        text=True,
        timeout=max_time_s * 3 + 60,
        env={**_quiet_env(), "NO_COLOR": "1"},
    )
    (work_dir / "output.txt").write_text(finished.stdout + finished.stderr)
    if not events.exists():
        raise common.FaultRunError(
            f"schemathesis wrote no report (exit {finished.returncode}): "
            f"{(finished.stdout + finished.stderr)[-2000:]}"
        )
    return read_events(events)


def read_events(path: Path) -> dict[str, Any]:
    """Count what one run's ndjson report says: requests and failed checks."""
    requests = 0
    failures: Counter[str] = Counter()
    examples: list[str] = []
    for line in path.read_text().splitlines():
        text = line.strip()
        if not text:
            continue
        requests += len(re.findall(r'"response"\s*:\s*\{', text))
        for failure in _failures(json.loads(text)):
            failures[failure["name"]] += 1
            if failure["line"] not in examples:
                examples.append(failure["line"])
    return {
        "requests": requests,
        "failures": dict(failures),
        "examples": examples[:EXAMPLES_SHOWN],
    }


def _failures(event: Any) -> list[dict[str, str]]:
    """Find failed checks anywhere in one event (the report's nesting varies)."""
    found: list[dict[str, str]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("status") in ("FAILURE", "failure") and "name" in node:
                info = (node.get("failure_info") or {}).get("failure") or {}
                message = str(info.get("message", "")).replace("\n", "; ")
                line = f"{node['name']}: {info.get('operation')}: {message}"
                found.append({"name": node["name"], "line": line[:300]})
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(event)
    return found


def _quiet_env() -> dict[str, str]:
    from infra import local_cloud

    return {**local_cloud._base_env(), "SCHEMATHESIS_TELEMETRY": "false"}


def malformed_requests(
    base: str, caption_url: str, key: str
) -> list[tuple[str, int | None]]:
    """Send bodies no client should send to every route that takes one."""
    import yaml

    spec = yaml.safe_load(SPEC.read_text())
    targets = [
        (
            method.upper(),
            base + re.sub(r"{\w+}", "00000000-0000-0000-0000-000000000000", path),
        )
        for path, item in spec["paths"].items()
        if path != "/"
        for method in item
        if method in ("post", "patch", "put")
    ]
    targets.append(("POST", caption_url))
    bodies = {
        "oversized JSON": (
            b'{"text": "' + b"x" * OVERSIZED_BYTES + b'"}',
            "application/json",
        ),
        "not JSON": (b"{not json", "application/json"),
        "not UTF-8": (b'{"name": "\xff\xfe"}', "application/json"),
        "a JSON array": (b"[1, 2, 3]", "application/json"),
        "a JSON string": (b'"text"', "application/json"),
        "deeply nested": (b"[" * 5000 + b"]" * 5000, "application/json"),
        "form encoded": (b"name=x&slug=y", "application/x-www-form-urlencoded"),
    }
    answers = [
        (
            f"{method} {path} with Authorization {shown}",
            _status(base + path, method, header),
        )
        for method, path in AUTH_TARGETS
        for shown, header in BAD_AUTHORIZATIONS.items()
    ]
    for method, url in targets:
        for what, (data, content_type) in bodies.items():
            status = _status(url, method, f"Bearer {key}", data, content_type)
            answers.append((f"{method} {url.removeprefix(base)} with {what}", status))
    return answers


def _status(
    url: str,
    method: str,
    authorization: str | None,
    data: bytes | None = None,
    content_type: str = "application/json",
) -> int | None:
    """Send one request; its HTTP status, or None when no answer came."""
    headers = {"Content-Type": content_type}
    if authorization is not None:
        headers["Authorization"] = authorization
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None
