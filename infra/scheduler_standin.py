"""A local server speaking the part of Cloud Scheduler's REST API cartcast uses.

The operator's pause (functions/cartcast/publish_schedule.py) calls it through
google-cloud-scheduler's real client on its REST transport, so what is tested is
what the cloud gets:

- `GET /v1/{job}`: the job, as Cloud Scheduler's `Job` JSON;
- `POST /v1/{job}:pause` and `POST /v1/{job}:resume`: set its state and answer the
  job. An unknown job answers 404 with Google's error body; a request that carries
  credentials answers 401, since every caller here is meant to be anonymous.

Jobs are registered with `add_job`; every call is kept in `calls`. A test may
`hold` the next pause or resume of a job: that call waits, unserved, until the
test releases it, so two of the operator's requests can be made to overlap. The
local
ticker (infra/local_cloud.py, `Ticker`) asks `is_paused` before each publish tick,
as Cloud Scheduler skips a paused job's runs.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

JOB_PATH = re.compile(
    r"/v1/(?P<name>projects/[^/:]+/locations/[^/:]+/jobs/[^/:]+)(?::(?P<verb>\w+))?"
)
STATES = {"pause": "PAUSED", "resume": "ENABLED"}
# The longest a held call waits for its release, so a failed test ends anyway.
HOLD_LIMIT_S = 30.0


@dataclass
class HeldCall:
    """A call made to wait: `arrived` once it came in, served once `release`d."""

    arrived: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        self.released.set()


class SchedulerStandIn:
    """Cloud Scheduler's jobs API on 127.0.0.1, in a daemon thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self.jobs: dict[str, str] = {}
        self.calls: list[tuple[str, str]] = []
        self._held: dict[tuple[str, str], HeldCall] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> SchedulerStandIn:
        self._server = ThreadingHTTPServer((self.host, self.port), _Handler)
        self._server.daemon_threads = True
        self._server.standin = self  # type: ignore[attr-defined]
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="scheduler-standin",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._lock:
            held, self._held = list(self._held.values()), {}
        for call in held:
            call.release()
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self._server = None

    def __enter__(self) -> SchedulerStandIn:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def add_job(self, name: str, state: str = "ENABLED") -> None:
        with self._lock:
            self.jobs[name] = state

    def is_paused(self, name: str) -> bool:
        with self._lock:
            return self.jobs.get(name) == "PAUSED"

    def hold(self, verb: str, name: str) -> HeldCall:
        """Make the next `verb` ("pause" or "resume") of job `name` wait, before it
        changes anything, until the returned call is released."""
        call = HeldCall()
        with self._lock:
            self._held[(verb, name)] = call
        return call

    def answer(
        self, method: str, path: str, authorization: str | None
    ) -> tuple[int, dict[str, Any]]:
        """Serve one request; return the status and the JSON body."""
        match = JOB_PATH.fullmatch(path)
        if match is not None:
            with self._lock:
                held = self._held.pop((match["verb"], match["name"]), None)
            if held is not None:
                held.arrived.set()
                held.released.wait(HOLD_LIMIT_S)
        with self._lock:
            self.calls.append((method, path))
            if authorization:
                return 401, _error(401, "UNAUTHENTICATED", "expected no credentials")
            if match is None:
                return 404, _error(404, "NOT_FOUND", f"no route {path}")
            name, verb = match["name"], match["verb"]
            if name not in self.jobs:
                return 404, _error(404, "NOT_FOUND", f"Job not found: {name}")
            if method == "POST" and verb in STATES:
                self.jobs[name] = STATES[verb]
            elif not (method == "GET" and verb is None):
                return 400, _error(400, "INVALID_ARGUMENT", f"{method} {path}")
            return 200, {"name": name, "state": self.jobs[name]}


def _error(code: int, status: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status}}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # An answer's head and body leave in two writes; with Nagle's algorithm the
    # body waited for the client's delayed ACK, about 40 ms on every call over a
    # kept-alive connection, which Cloud Scheduler's front end does not add (the Gemini
    # stand-in, decision 0035).
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._reply()

    def do_POST(self) -> None:
        self._reply()

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: `calls` records every request."""

    def _reply(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        standin: SchedulerStandIn = self.server.standin  # type: ignore[attr-defined]
        status, body = standin.answer(
            self.command, self.path.split("?", 1)[0], self.headers.get("authorization")
        )
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)
