"""What stands in for Google Cloud's wiring on one machine.

- `FunctionProcess`: one Cloud Function, served by the functions-framework CLI on a
  loopback port, as Cloud Run would serve it.
- `LocalCloud`: the seven functions plus the X sandbox, started together with the
  environment each needs; `score_sentiment` is subscribed to the mentions topic
  through a direct push (CARTCAST_PUBSUB_PUSH), as a push subscription would be.
- `send_tick`: what Cloud Scheduler does through Pub/Sub: a messagePublished
  CloudEvent whose `time` is the instant the tick stands for;
- `send_sweep`: the missed-post sweeper's own Scheduler job, a tick to
  `publish_due_posts` whose message is `{"sweep": true}` (decision 0012);
- the publish tick's job and the sweep's live in a Cloud Scheduler stand-in
  (infra/scheduler_standin.py) that the functions reach through
  CARTCAST_SCHEDULER_ENDPOINT, so the operator's pause (POST /v1/publishing/pause)
  works locally as in the cloud; `LocalCloud.tick` and `LocalCloud.sweep` send
  nothing while their job is paused, as Cloud Scheduler runs no paused job.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from infra.scheduler_standin import SchedulerStandIn

REPO = Path(__file__).resolve().parents[1]
FUNCTIONS = {
    "api": "http",
    "generate_caption": "http",
    "publish_due_posts": "cloudevent",
    "poll_mentions": "cloudevent",
    "score_sentiment": "cloudevent",
    "rollup_kpis": "cloudevent",
    "drain_caption_jobs": "cloudevent",
}
MENTIONS_TOPIC = "cartcast-mentions"
SWEEP_TOPIC = "cartcast-sweep_missed_posts"
SWEEP_PAYLOAD = {"sweep": True}
PUBLISH_JOB = "projects/local/locations/local/jobs/cartcast-publish_due_posts"
SWEEP_JOB = "projects/local/locations/local/jobs/cartcast-sweep_missed_posts"
# Seven functions and the sandbox import at once: on a loaded 2-core machine
# (CI beside other work) that has taken close to a minute, and a demo that gives
# up is worse than one that waits.
START_TIMEOUT_S = 180


def free_port() -> int:
    """Return a loopback port the system picked and released just now.

    For a server in a child process, which must be given its port before it
    listens (functions-framework's --port, the sandbox's; the api's port is also
    in the X redirect URI every function reads). Another process could take the
    port before the child binds it; the child then fails to start, loudly. A
    server in this process binds port 0 itself instead.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(
    port: int, process: subprocess.Popen, timeout_s: float, what: str
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode}")
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), 0.2),
        ):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout_s} s")


class FunctionProcess:
    """One function under `functions-framework` on 127.0.0.1."""

    def __init__(
        self, target: str, env: dict[str, str], log_dir: Path, port: int | None = None
    ) -> None:
        self.target = target
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = log_dir / f"{target}.log"
        self._env = env
        self.process: subprocess.Popen | None = None

    def start(self) -> FunctionProcess:
        command = [
            str(Path(sys.executable).parent / "functions-framework"),
            "--target",
            self.target,
            "--signature-type",
            FUNCTIONS[self.target],
            "--source",
            str(REPO / "functions" / "main.py"),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        log = self.log_path.open("w")
        self.process = subprocess.Popen(
            command,
            env=self._env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO / "functions",
        )
        return self

    def wait_ready(self) -> None:
        assert self.process is not None
        wait_for_port(
            self.port, self.process, START_TIMEOUT_S, f"function {self.target}"
        )

    def kill(self) -> None:
        """SIGKILL the function at once, as a crashed or preempted instance dies.

        functions-framework serves through gunicorn, whose worker, not the arbiter,
        runs the function; the arbiter goes first, so it cannot start a new worker.
        """
        assert self.process is not None
        kill_process_tree(self.process.pid)
        self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class LocalCloud:
    """The X sandbox and all seven functions, wired together on loopback.

    `clock_file=None` runs on the system clock; `sandbox=False` leaves X_API_BASE_URL
    unset, so tweepy talks to X itself (the demo's live mode only).
    """

    def __init__(
        self,
        *,
        database_url: str,
        clock_file: Path | None,
        work_dir: Path,
        operator_key: str,
        sandbox: bool = True,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.work_dir = work_dir
        self.clock_file = clock_file
        self.sandbox_port = free_port() if sandbox else None
        self.sandbox_url = f"http://127.0.0.1:{self.sandbox_port}" if sandbox else None
        self.sandbox_state = work_dir / "x-sandbox-state.json"
        # Known before the api starts: X's redirect URI names it.
        self.api_port = free_port()
        self.functions: dict[str, FunctionProcess] = {}
        self._sandbox: subprocess.Popen | None = None
        # In this process: it takes a port the system picks when it starts, and
        # the functions, started after it, are told that port.
        self.scheduler = SchedulerStandIn()
        self.scheduler.add_job(PUBLISH_JOB)
        self.scheduler.add_job(SWEEP_JOB)
        self._env = {
            **_base_env(),
            "DATABASE_URL": database_url,
            "CARTCAST_OPERATOR_KEY": operator_key,
            "CARTCAST_SCHEDULER_JOB": PUBLISH_JOB,
            "CARTCAST_SWEEP_SCHEDULER_JOB": SWEEP_JOB,
            **(extra_env or {}),
        }
        if clock_file is not None:
            self._env["CARTCAST_CLOCK"] = str(clock_file)
        # The key that seals the brands' X tokens (token_vault.py): made once per
        # work directory, readable by its owner only, never replaced.
        self.token_key_file = work_dir / "token.key"
        self._env.setdefault("CARTCAST_TOKEN_KEY_FILE", str(self.token_key_file))
        if sandbox:
            self._env["X_API_BASE_URL"] = self.sandbox_url
            # The sandbox's own OAuth 2.0 client (a public one) and its authorize
            # page; X sends the person back to the local api function.
            self._env.setdefault("CARTCAST_X_CLIENT_ID", "sandbox-client")
            self._env.setdefault(
                "CARTCAST_X_AUTHORIZE_URL", self.sandbox_url + "/i/oauth2/authorize"
            )
            self._env.setdefault(
                "CARTCAST_X_REDIRECT_URI",
                f"http://127.0.0.1:{self.api_port}/v1/x/callback",
            )

    def start(self) -> LocalCloud:
        from cartcast import token_vault

        self.work_dir.mkdir(parents=True, exist_ok=True)
        token_vault.create_key_file(Path(self._env["CARTCAST_TOKEN_KEY_FILE"]))
        self.scheduler.start()
        self._env["CARTCAST_SCHEDULER_ENDPOINT"] = self.scheduler.endpoint
        if self.sandbox_port is not None:
            self._start_sandbox()
        score = FunctionProcess("score_sentiment", self._env, self.work_dir)
        push = {"CARTCAST_PUBSUB_PUSH": f"{MENTIONS_TOPIC}={score.url}"}
        self.functions["score_sentiment"] = score
        for target in FUNCTIONS:
            if target != "score_sentiment":
                self.functions[target] = FunctionProcess(
                    target,
                    {**self._env, **push},
                    self.work_dir,
                    port=self.api_port if target == "api" else None,
                )
        for function in self.functions.values():
            function.start()
        if self._sandbox is not None:
            wait_for_port(
                self.sandbox_port, self._sandbox, START_TIMEOUT_S, "X sandbox"
            )
        for function in self.functions.values():
            function.wait_ready()
        return self

    def _start_sandbox(self) -> None:
        command = [
            sys.executable,
            "-m",
            "infra.x_sandbox",
            "--port",
            str(self.sandbox_port),
        ]
        if self.clock_file is not None:
            command += ["--clock-file", str(self.clock_file)]
        command += ["--state-file", str(self.sandbox_state)]
        self._sandbox = subprocess.Popen(
            command,
            cwd=REPO,
            env=self._env,
            stdout=(self.work_dir / "x-sandbox.log").open("w"),
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> None:
        for function in self.functions.values():
            function.stop()
        if self._sandbox and self._sandbox.poll() is None:
            self._sandbox.terminate()
            try:
                self._sandbox.wait(10)
            except subprocess.TimeoutExpired:
                self._sandbox.kill()
        self.scheduler.stop()

    def __enter__(self) -> LocalCloud:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def url(self, target: str) -> str:
        return self.functions[target].url

    def tick(self, target: str, *, time: dt.datetime) -> int | None:
        """Send the scheduled tick of `target`; return its HTTP status, or None when
        the publish schedule is paused and Cloud Scheduler would send nothing."""
        if target == "publish_due_posts" and self.scheduler.is_paused(PUBLISH_JOB):
            return None
        return send_tick(self.url(target), topic=f"cartcast-{target}", time=time)

    def sweep(self, *, time: dt.datetime) -> int | None:
        """Send the missed-post sweep's tick; None while its job is paused."""
        if self.scheduler.is_paused(SWEEP_JOB):
            return None
        return send_sweep(self.url("publish_due_posts"), time=time)


def kill_process_tree(pid: int) -> None:
    """SIGKILL a process and its descendants, the parent first."""
    doomed = [pid]
    for parent in doomed:
        for task in Path(f"/proc/{parent}/task").glob("*"):
            with contextlib.suppress(OSError):
                children = (task / "children").read_text().split()
                doomed.extend(int(child) for child in children)
    for victim in doomed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)


def _base_env() -> dict[str, str]:
    """The parent's environment minus anything that could point a client elsewhere."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("GOOGLE_", "CLOUDSDK_", "GEMINI_", "X_API_"))
    }
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "functions"), str(REPO)])
    env["PYTHONUNBUFFERED"] = "1"
    # The demo machine has two cores; a thread pool per function is plenty.
    env.setdefault("THREADS", "4")
    return env


def send_tick(
    url: str,
    *,
    topic: str,
    time: dt.datetime,
    payload: dict | None = None,
    message_id: str | None = None,
) -> int:
    """Deliver one Scheduler tick as a Pub/Sub CloudEvent; return the HTTP status.

    A redelivery of the same message carries the same `message_id`."""
    from cartcast import events

    headers, body = events.envelope(
        topic=topic,
        project="local",
        payload=payload or {"tick": topic},
        message_id=message_id or uuid.uuid4().hex,
        time=time,
    )
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def send_sweep(url: str, *, time: dt.datetime) -> int:
    """Deliver one tick of the sweeper's job to `publish_due_posts`' URL."""
    return send_tick(url, topic=SWEEP_TOPIC, time=time, payload=SWEEP_PAYLOAD)


def call_json(
    method: str, url: str, body: Any = None, key: str | None = None
) -> tuple[int, Any]:
    """Make one JSON HTTP call on loopback; return (status, decoded body)."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        raw = error.read()
        try:
            return error.code, json.loads(raw)
        except ValueError:
            return error.code, raw.decode(errors="replace")
