"""Headless Chromium for the page tests, driven over the DevTools protocol.

Debian's `chromium` is driven over a WebSocket on 127.0.0.1, spoken with the
`websockets` library. Chromium opens no network socket at all. Before it resolves
any host, even the IP literal 127.0.0.1, Chromium checks IPv6 reachability with a
UDP connect() to 2001:4860:4860::8888, so it is given nothing to resolve: every
host, loopback included, maps to "no such name", and the test answers the page's
requests itself over DevTools with the api's own answers from loopback
(serve_from_loopback). Where strace can trace, Chromium runs under it and the test
fails on any address past loopback in its connect() and send calls; without strace
it warns and runs unchecked. Outside CI a machine without chromium skips with a
message; under CI=true that is a failure, as for the Pub/Sub emulator.

The fixtures (api_url, chromium, tracer, browser) are imported by the test modules
that use them: tests/test_reports_browser.py and tests/test_console_browser.py.
"""

from __future__ import annotations

import base64
import contextlib
import http.cookiejar
import ipaddress
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_app

REPO = Path(__file__).resolve().parents[1]
# Debian's /usr/bin/chromium is a shell wrapper that adds flags of its own from
# /etc/chromium.d (remote extensions among them); the binary behind it takes ours.
CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "chromium")
START_TIMEOUT_S = 30
# How long one DevTools call, or the page's load, may take before the test fails.
PROTOCOL_TIMEOUT_S = 30
PHONE = {"width": 375, "height": 812, "deviceScaleFactor": 2, "mobile": True}
ARTIFACTS = Path(
    os.environ.get("CARTCAST_TEST_ARTIFACTS") or REPO / "tests" / "artifacts"
)


def unavailable(reason: str) -> None:
    """Skip, or fail under CI=true: CI must never pass without the browser test."""
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"{reason}; CI=true requires it")
    pytest.skip(f"{reason}; install Debian's chromium (make chromium)")


def chromium_binary() -> str:
    given = os.environ.get("CARTCAST_CHROMIUM", "").strip()
    for candidate in (given,) if given else CHROMIUM_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    unavailable(f"chromium is not installed (looked for {given or 'chromium'})")
    raise AssertionError("unreachable")


def chromium_command(binary: str, profile: Path) -> list[str]:
    command = [
        binary,
        "--headless",
        "--disable-background-networking",
        "--no-first-run",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--no-default-browser-check",
        f"--user-data-dir={profile}",
        "--disable-extensions",
        "--disable-domain-reliability",
        "--disable-client-side-phishing-detection",
        "--disable-breakpad",
        "--no-pings",
        "--metrics-recording-only",
        "--disable-features=Translate,MediaRouter,OptimizationHints,AutofillServerCommunication",
        "--password-store=basic",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        # Every host fails before Chromium's resolver runs, so it never probes IPv6
        # reachability (a UDP connect() to 2001:4860:4860::8888) and opens no
        # socket; the page comes over DevTools (serve_from_loopback). "^NOTFOUND"
        # is the rule's "no such name" in current Chromium: "~NOTFOUND", its old
        # spelling, is now read as a host name and looked up like any other.
        "--host-resolver-rules=MAP * ^NOTFOUND",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        "about:blank",
    ]
    if os.geteuid() == 0:
        # Chromium refuses to start its sandbox as root (CI and these machines run
        # as root); the page it loads is cartcast's own, from loopback.
        command.insert(1, "--no-sandbox")
    return command


class DevTools:
    """A small DevTools protocol client: send a command, keep the events.

    A handler registered for an event runs as the event arrives, and may call
    commands itself: answers are kept by id, so a call made inside another call's
    wait still finds its own.
    """

    def __init__(self, connection: Any) -> None:
        self.socket = connection
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []
        self.answers: dict[int, dict[str, Any]] = {}
        self.handlers: dict[str, Callable[[dict[str, Any]], None]] = {}

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self.ids)
        self.socket.send(
            json.dumps({"id": call_id, "method": method, "params": params})
        )
        while call_id not in self.answers:
            self.receive()
        answer = self.answers.pop(call_id)
        if "error" in answer:
            raise AssertionError(f"{method}: {answer['error']}")
        return answer["result"]

    def wait_for(self, method: str, *, after: int = 0) -> dict[str, Any]:
        """Return the first `method` event past the first `after` events kept."""
        seen = after
        while True:
            for event in self.events[seen:]:
                if event.get("method") == method:
                    return event
            seen = len(self.events)
            self.receive()

    def receive(self) -> None:
        message = json.loads(self.socket.recv(timeout=PROTOCOL_TIMEOUT_S))
        if "id" in message:
            self.answers[message["id"]] = message
            return
        self.events.append(message)
        handler = self.handlers.get(message.get("method", ""))
        if handler:
            handler(message["params"])

    def console_errors(self) -> list[str]:
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append(params["entry"]["text"])
            elif method == "Runtime.consoleAPICalled" and params["type"] == "error":
                found.append(json.dumps(params["args"]))
            elif method == "Runtime.exceptionThrown":
                found.append(params["exceptionDetails"]["text"])
        return found

    def requested_urls(self) -> list[str]:
        return [
            event["params"]["request"]["url"]
            for event in self.events
            if event.get("method") == "Network.requestWillBeSent"
        ]


@pytest.fixture
def api_url(function_env):
    """The api function on functions-framework, served on an ephemeral loopback
    port, as a deployed function is reached over HTTP."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, make_app("api", "http"), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture(scope="session")
def chromium() -> str:
    """The browser's binary, looked up before any database is made for the test."""
    return chromium_binary()


@pytest.fixture(scope="session")
def tracer() -> str | None:
    """strace, if it is installed and may trace here; else None, with a warning."""
    found = shutil.which("strace")
    if found:
        probe = subprocess.run(
            [found, "-o", os.devnull, "true"], capture_output=True, timeout=30
        )
        if probe.returncode == 0:
            return found
    reason = "strace is not installed" if not found else f"{found} cannot trace here"
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"{reason}; CI=true requires it to check Chromium's network")
    warnings.warn(
        f"{reason}: Chromium runs without its connections checked", stacklevel=2
    )
    return None


@pytest.fixture
def browser(chromium, tracer, tmp_path):
    """Headless Chromium with its DevTools endpoint on loopback; the page target.

    Under strace, its connections are checked once it has ended: an address past
    loopback fails the test (at teardown, where the whole trace is written).
    """
    from websockets.sync.client import connect

    binary = chromium
    profile = tmp_path / "profile"
    write_preferences(profile)
    trace = tmp_path / "chromium.strace"
    command = chromium_command(binary, profile)
    if tracer:
        traced = [tracer, "-f", "--seccomp-bpf", "-qq", f"-etrace={TRACED_CALLS}"]
        traced += ["-o", str(trace)]
        command = traced + command
    log = (tmp_path / "chromium.log").open("wb")
    # A session of its own, so the renderers it forks are ended with it.
    process = subprocess.Popen(
        command,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        port = wait_for_devtools_port(profile, process)
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/json/list", timeout=PROTOCOL_TIMEOUT_S
        ) as answer:
            targets = json.load(answer)
        page = next(target for target in targets if target["type"] == "page")
        with connect(
            page["webSocketDebuggerUrl"],
            max_size=None,
            open_timeout=PROTOCOL_TIMEOUT_S,
        ) as devtools_socket:
            yield DevTools(devtools_socket)
    finally:
        # The whole session: under strace, Chromium is strace's child, not ours.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        log.close()
    if tracer:
        traced = trace.read_text(errors="replace")
        assert TRACED_LINE.search(traced), f"strace recorded no call in {trace}"
        reached = addresses_past_loopback(traced)
        assert reached == [], f"chromium reached past loopback: {reached}"


# The calls that name where a socket's packets go; strace prints their address.
TRACED_CALLS = "connect,sendto,sendmsg,sendmmsg"
TRACED_LINE = re.compile(r"^\d+ +(?:connect|sendto|sendmsg|sendmmsg)\(", re.MULTILINE)
TRACED_ADDRESS = re.compile(r'inet_addr\("([^"]*)"\)|inet_pton\(AF_INET6?, "([^"]*)"')


def addresses_past_loopback(trace: str) -> list[str]:
    """Return every IPv4 or IPv6 address in an strace log that is not loopback.

    A line naming an IP family whose address cannot be read is returned whole, so
    a format this does not know fails the test rather than passing it.
    """
    reached = []
    for line in trace.splitlines():
        if "sa_family=AF_INET" not in line:
            continue
        found = [v4 or v6 for v4, v6 in TRACED_ADDRESS.findall(line)]
        if not found:
            reached.append(line)
        reached += [address for address in found if not is_loopback(address)]
    return reached


def is_loopback(address: str) -> bool:
    parsed = ipaddress.ip_address(address)
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped:
        parsed = parsed.ipv4_mapped
    return parsed.is_loopback


def write_preferences(profile: Path) -> None:
    """Turn off the DNS probe of Chromium's error pages before its first start.

    A page that fails with "name not resolved" makes Chromium look names up
    through 8.8.8.8 and the machine's resolver to word its error page; the
    "alternate error pages" preference is what allows that probe.
    """
    preferences = {"alternate_error_pages": {"enabled": False}}
    (profile / "Default").mkdir(parents=True)
    (profile / "Default" / "Preferences").write_text(json.dumps(preferences))


def serve_from_loopback(
    browser: DevTools, origin: str, *, cookies: http.cookiejar.CookieJar | None = None
) -> None:
    """Answer the page's requests to `origin` from here, over DevTools.

    Chromium resolves no host, so it cannot fetch the page itself: each request
    it would send is paused, sent to the api from this process as Chromium wrote
    it (the key header included), and the api's status, headers (its
    Content-Security-Policy too) and body are handed back as the response. Any
    other request fails as blocked. A redirect is handed back as it is, for
    Chromium to follow; with `cookies`, the cookies the api sets are kept here and
    sent back, since a request paused by Fetch does not show the browser's own.
    """
    opener = urllib.request.build_opener(
        _KeepRedirects(),
        *([urllib.request.HTTPCookieProcessor(cookies)] if cookies is not None else []),
    )

    def answer(paused: dict[str, Any]) -> None:
        request, request_id = paused["request"], paused["requestId"]
        if not request["url"].startswith(f"{origin}/"):
            browser.call(
                "Fetch.failRequest", requestId=request_id, errorReason="BlockedByClient"
            )
            return
        status, headers, body = fetch_from_loopback(request, opener)
        browser.call(
            "Fetch.fulfillRequest",
            requestId=request_id,
            responseCode=status,
            responseHeaders=[{"name": name, "value": value} for name, value in headers],
            body=base64.b64encode(body).decode(),
        )

    browser.handlers["Fetch.requestPaused"] = answer
    browser.call("Fetch.enable", patterns=[{"urlPattern": "*"}])


class _KeepRedirects(urllib.request.HTTPRedirectHandler):
    """Hand a redirect to the browser instead of following it here."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


# Headers about the connection the api answered on, not about the answer.
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding"}


def fetch_from_loopback(
    request: dict[str, Any], opener: urllib.request.OpenerDirector | None = None
) -> tuple[int, list, bytes]:
    """Send a request Chromium paused to the api; return status, headers, body.

    A body comes as postDataEntries (bytes, base64) when Chromium has them, which
    a file upload needs; else as the postData text.
    """
    data = None
    if request.get("postDataEntries"):
        data = b"".join(
            base64.b64decode(entry.get("bytes", ""))
            for entry in request["postDataEntries"]
        )
    elif "postData" in request:
        data = request["postData"].encode()
    forwarded = urllib.request.Request(
        request["url"], method=request["method"], headers=request["headers"], data=data
    )
    opener = opener or urllib.request.build_opener(_KeepRedirects())
    try:
        with opener.open(forwarded, timeout=PROTOCOL_TIMEOUT_S) as answer:
            status, headers, body = answer.status, answer.headers, answer.read()
    except urllib.error.HTTPError as refused:
        status, headers, body = refused.code, refused.headers, refused.read()
    kept = [
        (name, value)
        for name, value in headers.items()
        if name.lower() not in HOP_BY_HOP
    ]
    return status, kept, body


def wait_for_devtools_port(profile: Path, process: subprocess.Popen) -> int:
    """Read the port Chromium chose from the file it writes in its profile."""
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"chromium exited with {process.returncode} at start")
        with contextlib.suppress(FileNotFoundError, ValueError, IndexError):
            return int(port_file.read_text().splitlines()[0])
        time.sleep(0.1)
    pytest.fail("chromium did not open its DevTools port")
    raise AssertionError("unreachable")


def save_screenshot(browser: DevTools, name: str) -> Path:
    """Capture the whole page, keep it under ARTIFACTS and print where."""
    metrics = browser.call("Page.getLayoutMetrics")["cssContentSize"]
    shot = browser.call(
        "Page.captureScreenshot",
        format="png",
        captureBeyondViewport=True,
        clip={
            "x": 0,
            "y": 0,
            "width": metrics["width"],
            "height": metrics["height"],
            "scale": 1,
        },
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    path.write_bytes(base64.b64decode(shot["data"]))
    print(f"screenshot: {path}")
    return path
