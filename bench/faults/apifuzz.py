"""The HTTP API from docs/openapi.yaml, property-based, with schemathesis.

The `api` function is served by functions-framework on loopback, as Cloud Run
serves it, over a fresh database holding one brand. schemathesis (the CLI, pinned
in requirements-dev.txt) generates valid and invalid requests for every operation
of the spec and runs its checks on each answer, five times: with an admin key,
with no Authorization header, with a key that does not exist, with the operator
key (which opens only POST /v1/brands), and, on a second brand, with an admin key
on the key routes alone. Then hand-made requests the generator does not make: a
body over the size limit, bodies that are not JSON or not UTF-8, a JSON array or
scalar where an object belongs, and the wrong content type, to every route that
takes a body and to generate_caption.

A key may revoke itself once another admin key exists, and schemathesis, given
both routes, does just that; every later request with that key then meets the
401 before any field is read. So the brand's first key only mints the others:
one for the admin phase, which may not revoke (revokeKey is left out), one for
the hand-made requests; revoking is fuzzed on the second brand, whose keys no
other phase uses.

What must hold: zero 5xx; with the admin phase's key and the operator key, at
most MAX_UNAUTHORIZED_SHARE of the answers of routes that need a key are 401, and
no hand-made body request with a live key is.
Every other failed check (an answer the spec does not describe) is a mismatch,
printed grouped by operation and check with a count, beside the phases that met
it. One kind is counted apart: a schema-valid request refused with a 400 naming a
field the operation's `x-refusals-beyond-schema` lists, a rule the spec states in
words because JSON Schema cannot (a cursor the API issued, a date relative to
today, the brand's own currency). Any other 400 to valid data still counts.
"""

from __future__ import annotations

import base64
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
from urllib.parse import urlsplit

from bench.faults import common

SPEC = common.REPO / "docs" / "openapi.yaml"
OPERATOR_KEY = "faults-operator-key"
OVERSIZED_BYTES = 2 * 1024 * 1024
SERVER_ERROR_CHECK = "not_a_server_error"
POSITIVE_CHECK = "positive_data_acceptance"
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
# With a key that works, a 401 is a lost key, not a finding: 0 is expected, this
# leaves room for a stray one without letting a revoked key pass as a run.
MAX_UNAUTHORIZED_SHARE = 0.01
KEY_ROUTES = "^/v1/keys"


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
        first_key = create_brand(base, "fuzz-goods")
        admin_key = create_key(base, first_key, "fuzz admin phase")
        handmade_key = create_key(base, first_key, "fuzz hand-made")
        keys_key = create_brand(base, "fuzz-keys")
        open_paths = paths_without_key()
        beyond_schema = refusals_beyond_schema()

        # name: (headers, options, whether 401s are bounded)
        runs: dict[str, tuple[list[str], list[str], bool]] = {
            "admin key": (
                [f"Authorization: Bearer {admin_key}"],
                ["--exclude-operation-id", "revokeKey"],
                True,
            ),
            "no key": ([], [], False),
            "unknown key": (["Authorization: Bearer ck_not_a_key_at_all"], [], False),
            "operator key": ([f"Authorization: Bearer {OPERATOR_KEY}"], [], True),
            # It may revoke its own key, so 401s are counted, not bounded.
            "key routes": (
                [f"Authorization: Bearer {keys_key}"],
                ["--include-path-regex", KEY_ROUTES],
                False,
            ),
        }
        figures: dict[str, Any] = {}
        server_errors = unanswered = 0
        unauthorized: dict[str, str] = {}
        lost_key = False
        # (operation, check): count, and the phases that met it
        mismatches: Counter[tuple[str, str]] = Counter()
        met_in: dict[tuple[str, str], set[str]] = {}
        excused: Counter[tuple[str, str]] = Counter()
        for name, (headers, options, bounded) in runs.items():
            outcome = schemathesis(
                base,
                headers,
                work_dir / name.replace(" ", "_"),
                seed=seed,
                max_examples=max_examples,
                # The key routes are three operations: the short time is plenty.
                max_time_s=admin_time_s if name == "admin key" else auth_time_s,
                # Without a key, what matters is that nothing breaks: the valid
                # requests all meet the 401 before any field is read.
                mode="positive" if name in UNKEYED else "all",
                options=options,
                open_paths=open_paths,
                beyond_schema=beyond_schema,
            )
            figures[f"{name}: requests"] = outcome["requests"]
            keyed, refused = outcome["keyed"], outcome["keyed_401"]
            unauthorized[name] = f"{refused}/{keyed}"
            if bounded and refused > MAX_UNAUTHORIZED_SHARE * keyed:
                lost_key = True
                common.say(f"    {name}: {refused} of {keyed} keyed answers were 401")
            for (operation, check), found in outcome["failures"].items():
                if check == SERVER_ERROR_CHECK:
                    server_errors += found
                    continue
                mismatches[operation, check] += found
                met_in.setdefault((operation, check), set()).add(name)
            excused.update(outcome["excused"])
            for line in outcome["examples"]:
                if not line.startswith("positive_data_acceptance"):
                    common.say(f"    {name}: {line}")

        handmade = malformed_requests(
            base, functions["generate_caption"].url, handmade_key, open_paths
        )
        figures["hand-made requests"] = len(handmade)
        by_status = Counter(status for _, status, _ in handmade)
        figures["hand-made statuses"] = dict(sorted(by_status.items(), key=str))
        body_checks_401 = 0
        for what, status, checks_body in handmade:
            if isinstance(status, str):
                unanswered += 1
                common.say(f"    hand-made: {what} got {status}")
            elif status >= 500:
                server_errors += 1
                common.say(f"    hand-made: {what} answered {status}")
            elif checks_body and status == 401:
                body_checks_401 += 1
                common.say(f"    hand-made: {what} answered 401 with a live key")
        unauthorized["hand-made body checks"] = f"{body_checks_401}/" + str(
            sum(1 for _, _, checks_body in handmade if checks_body)
        )
    for line in summary_lines(mismatches, met_in, excused):
        common.say(line)
    by_check: Counter[str] = Counter()
    for (_, check), found in mismatches.items():
        by_check[check] += found
    return {
        **figures,
        "5xx": server_errors,
        "no answer": unanswered,
        "401_per_phase": unauthorized,
        "spec_mismatches": dict(sorted(by_check.items())) or "none",
        "refusals_beyond_schema": sum(excused.values()),
        "ok": server_errors == unanswered == 0
        and not lost_key
        and body_checks_401 == 0,
    }


UNKEYED = ("no key", "unknown key", "operator key")


def create_brand(base: str, slug: str) -> str:
    """Create a brand with the operator key; its first admin key."""
    from infra import local_cloud

    status, body = local_cloud.call_json(
        "POST",
        f"{base}/v1/brands",
        {
            "name": f"Fuzz {slug}",
            "slug": slug,
            "time_zone": "UTC",
            "store_base_url": "https://fuzz.example.com",
        },
        key=OPERATOR_KEY,
    )
    if status != 201:
        raise common.FaultRunError(f"could not create brand {slug}: {status} {body}")
    return body["api_key"]


def create_key(base: str, admin_key: str, name: str) -> str:
    """Mint another admin key of the brand whose admin key is given."""
    from infra import local_cloud

    status, body = local_cloud.call_json(
        "POST", f"{base}/v1/keys", {"name": name, "role": "admin"}, key=admin_key
    )
    if status != 201:
        raise common.FaultRunError(f"could not create key {name!r}: {status} {body}")
    return body["api_key"]


def paths_without_key() -> list[re.Pattern[str]]:
    """The spec's paths that take no API key (`security: []`), as patterns."""
    import yaml

    spec = yaml.safe_load(SPEC.read_text())
    return [
        re.compile("^" + re.sub(r"\\{\w+\\}", "[^/]+", re.escape(path)) + "$")
        for path, item in spec["paths"].items()
        for operation in item.values()
        if isinstance(operation, dict) and operation.get("security") == []
    ]


def needs_key(path: str, open_paths: list[re.Pattern[str]]) -> bool:
    return not any(pattern.match(path) for pattern in open_paths)


def refusals_beyond_schema() -> dict[str, set[str]]:
    """Each operation's `x-refusals-beyond-schema` fields, by "METHOD /path",
    with those the document lists for every operation."""
    import yaml

    spec = yaml.safe_load(SPEC.read_text())
    everywhere = set(spec.get("x-refusals-beyond-schema", {}))
    return {
        f"{method.upper()} {path}": everywhere
        | set(operation.get("x-refusals-beyond-schema", {}))
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if isinstance(operation, dict)
    }


def summary_lines(
    mismatches: Counter[tuple[str, str]],
    met_in: dict[tuple[str, str], set[str]],
    excused: Counter[tuple[str, str]],
) -> list[str]:
    """The findings as a table: operation x check, count, phases; then the excused."""
    lines = [f"    spec mismatches: {sum(mismatches.values()) or 'none'}"]
    width = max((len(operation) for operation, _ in mismatches), default=0)
    for (operation, check), found in sorted(mismatches.items()):
        phases = ", ".join(sorted(met_in[operation, check]))
        lines.append(f"      {operation:<{width}}  {check:<28} {found:>4}  ({phases})")
    if excused:
        lines.append(
            "    400s naming a field of x-refusals-beyond-schema (not counted): "
            + ", ".join(
                f"{operation} {field} {found}"
                for (operation, field), found in sorted(excused.items())
            )
        )
    return lines


def schemathesis(
    base: str,
    headers: list[str],
    work_dir: Path,
    *,
    seed: int,
    max_examples: int,
    max_time_s: int,
    mode: str,
    options: list[str],
    open_paths: list[re.Pattern[str]],
    beyond_schema: dict[str, set[str]],
) -> dict[str, Any]:
    """Run the schemathesis CLI once; count requests and failed checks."""
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
    command += options
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
    return read_events(events, open_paths, beyond_schema)


def read_events(
    path: Path,
    open_paths: list[re.Pattern[str]],
    beyond_schema: dict[str, set[str]] | None = None,
) -> dict[str, Any]:
    """Count what one run's ndjson report says: requests, 401s, failed checks.

    `keyed` and `keyed_401` count the answers of routes that need a key;
    `failures` the failed checks by (operation, check); `excused` the 400s to
    valid data naming a field of the operation's x-refusals-beyond-schema, by
    (operation, field), which are not in `failures`.
    """
    beyond_schema = beyond_schema or {}
    requests = keyed = keyed_401 = 0
    failures: Counter[tuple[str, str]] = Counter()
    excused: Counter[tuple[str, str]] = Counter()
    examples: list[str] = []
    for line in path.read_text().splitlines():
        text = line.strip()
        if not text:
            continue
        requests += len(re.findall(r'"response"\s*:\s*\{', text))
        event = json.loads(text)
        for method_path, status in _answers(event):
            if needs_key(method_path, open_paths):
                keyed += 1
                keyed_401 += status == 401
        for failure in _failures(event):
            operation, check = failure["operation"], failure["name"]
            field = _refused_field(failure)
            if check == POSITIVE_CHECK and field in beyond_schema.get(operation, ()):
                excused[operation, field] += 1
                continue
            failures[operation, check] += 1
            if failure["line"] not in examples:
                examples.append(failure["line"])
    return {
        "requests": requests,
        "keyed": keyed,
        "keyed_401": keyed_401,
        "failures": dict(failures),
        "excused": dict(excused),
        "examples": examples[:EXAMPLES_SHOWN],
    }


def _refused_field(failure: dict[str, Any]) -> str | None:
    """The `field` of a 400's error body, list indices as `[]`; else None."""
    response = failure.get("response") or {}
    if response.get("status_code") != 400:
        return None
    content = response.get("content") or {}
    try:
        body = json.loads(base64.b64decode(content.get("$base64", "")))
        field = body["error"]["field"]
    except (ValueError, TypeError, KeyError):
        return None
    return re.sub(r"\[[0-9]+\]", "[]", field) if isinstance(field, str) else None


def _answers(event: Any) -> list[tuple[str, int]]:
    """The path and status of each answer to a generated request of a scenario.

    Left out, as they are meant to meet a 401: the probes a check sends after a
    case (it has a `parent_id` and no transition applied), such as ignored_auth's
    copies without the key and with a made-up one; and negative cases whose
    headers the generator broke on purpose.
    """
    finished = event.get("ScenarioFinished") if isinstance(event, dict) else None
    recorder = (finished or {}).get("recorder") or {}
    cases = recorder.get("cases") or {}
    answers = []
    for case_id, item in (recorder.get("interactions") or {}).items():
        case = cases.get(case_id) or {}
        if case.get("parent_id") and not case.get("is_transition_applied"):
            continue
        components = ((case.get("value") or {}).get("meta") or {}).get("components")
        if ((components or {}).get("header") or {}).get("mode") == "negative":
            continue
        if item.get("response") and item.get("request"):
            path = urlsplit(item["request"]["uri"]).path
            answers.append((path, int(item["response"]["status_code"])))
    return answers


def _failures(event: Any) -> list[dict[str, Any]]:
    """Find failed checks anywhere in one event (the report's nesting varies).

    A check of a scenario's recorder comes with the response it judged, which the
    recorder keeps under the same case id.
    """
    found: list[dict[str, Any]] = []

    def failure(node: dict[str, Any], response: Any) -> None:
        info = (node.get("failure_info") or {}).get("failure") or {}
        message = str(info.get("message", "")).replace("\n", "; ")
        operation = str(info.get("operation"))
        found.append(
            {
                "name": node["name"],
                "operation": operation,
                "response": response,
                "line": f"{node['name']}: {operation}: {message}"[:300],
            }
        )

    def walk(node: Any, response: Any = None) -> None:
        if isinstance(node, dict):
            checks, interactions = node.get("checks"), node.get("interactions")
            if isinstance(checks, dict) and isinstance(interactions, dict):
                for case_id, judged in checks.items():
                    answer = (interactions.get(case_id) or {}).get("response")
                    walk(judged, answer)
                node = {k: v for k, v in node.items() if k != "checks"}
            elif node.get("status") in ("FAILURE", "failure") and "name" in node:
                failure(node, response)
            for value in node.values():
                walk(value, response)
        elif isinstance(node, list):
            for value in node:
                walk(value, response)

    walk(event)
    return found


def _quiet_env() -> dict[str, str]:
    from infra import local_cloud

    return {**local_cloud._base_env(), "SCHEMATHESIS_TELEMETRY": "false"}


def malformed_requests(
    base: str, caption_url: str, key: str, open_paths: list[re.Pattern[str]]
) -> list[tuple[str, int | str, bool]]:
    """Send bodies no client should send to every route that takes one.

    Each answer: what was sent, its status (or why none came, as `_status` says),
    and whether it was sent with a live key to a route that needs one (so it is
    meant for the body checks).
    """
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
            False,
        )
        for method, path in AUTH_TARGETS
        for shown, header in BAD_AUTHORIZATIONS.items()
    ]
    for method, url in targets:
        for what, (data, content_type) in bodies.items():
            status = _status(url, method, f"Bearer {key}", data, content_type)
            path = url.removeprefix(base)
            checks_body = url == caption_url or needs_key(path, open_paths)
            answers.append((f"{method} {path} with {what}", status, checks_body))
    return answers


def _status(
    url: str,
    method: str,
    authorization: str | None,
    data: bytes | None = None,
    content_type: str = "application/json",
) -> int | str:
    """Send one request; its HTTP status, or "no answer (...)" naming the error
    when none came (a connection reset while the body was still being sent)."""
    headers = {"Content-Type": content_type}
    if authorization is not None:
        headers["Authorization"] = authorization
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError as error:
        reason = getattr(error, "reason", error)
        return f"no answer ({type(reason).__name__}: {reason})"
