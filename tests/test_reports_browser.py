"""The HTML KPI report in headless Chromium, served by the api on loopback.

Debian's `chromium` is driven over the DevTools protocol (a WebSocket on
127.0.0.1, spoken with the `websockets` library): the page is loaded with the
brand's key as a header, every chart is looked up in the DOM, the console must
stay free of errors (a style the policy refused would log one), and a screenshot
at phone width is kept as an artifact.

Chromium must reach nothing but loopback. Besides the flags that turn its
background services off, every name resolves to nothing but 127.0.0.1, and every
request that is not to loopback goes through a proxy on a closed loopback port.
Outside CI a machine without chromium skips with a message; under CI=true that is
a failure, as for the Pub/Sub emulator (tests/test_pubsub.py).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_app

# The fixture of three days, its brand and client, as the other report tests use.
from tests.test_reports import CHARTS, RANGE, SCRIPT, brand, client, fixture  # noqa: F401

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


def closed_loopback_port() -> int:
    """Return a loopback port nothing listens on: a proxy there refuses at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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
        # Names resolve to nothing, and anything not on loopback meets a dead proxy.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--proxy-server=http://127.0.0.1:{closed_loopback_port()}",
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
    """A small DevTools protocol client: send a command, keep the events."""

    def __init__(self, connection: Any) -> None:
        self.socket = connection
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self.ids)
        self.socket.send(
            json.dumps({"id": call_id, "method": method, "params": params})
        )
        while True:
            message = json.loads(self.socket.recv(timeout=PROTOCOL_TIMEOUT_S))
            if message.get("id") == call_id:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return message["result"]
            self.events.append(message)

    def wait_for(self, method: str) -> dict[str, Any]:
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            message = json.loads(self.socket.recv(timeout=PROTOCOL_TIMEOUT_S))
            self.events.append(message)
            if message.get("method") == method:
                return message

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


@pytest.fixture
def browser(chromium, tmp_path):
    """Headless Chromium with its DevTools endpoint on loopback; the page target."""
    from websockets.sync.client import connect

    binary = chromium
    profile = tmp_path / "profile"
    log = (tmp_path / "chromium.log").open("wb")
    # A session of its own, so the renderers it forks are ended with it.
    process = subprocess.Popen(
        chromium_command(binary, profile),
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
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


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


# What the test reads from the page once it has loaded.
INSPECT_PAGE = """
JSON.stringify({
  title: document.title,
  h1: document.querySelector("h1") && document.querySelector("h1").textContent,
  charts: Array.from(document.querySelectorAll("svg.chart")).map((svg) => ({
    id: svg.id,
    title: (svg.querySelector(":scope > title") || {}).textContent || "",
    desc: (svg.querySelector(":scope > desc") || {}).textContent || "",
    shapes: svg.querySelectorAll("path, rect, circle").length,
    width: svg.getBoundingClientRect().width,
  })),
  scripts: document.scripts.length,
  pageWidth: document.documentElement.scrollWidth,
  viewportWidth: window.innerWidth,
  labels: Array.from(document.querySelectorAll("#chart-top-engagement text"))
    .map((text) => text.textContent),
  // Every text drawn past its chart's viewBox, which the browser would clip.
  outside: Array.from(document.querySelectorAll("svg.chart")).flatMap((svg) => {
    const view = svg.viewBox.baseVal;
    return Array.from(svg.querySelectorAll("text"))
      .filter((text) => {
        const box = text.getBBox();
        return box.x < view.x - 0.5 || box.y < view.y - 0.5
          || box.x + box.width > view.x + view.width + 0.5
          || box.y + box.height > view.y + view.height + 0.5;
      })
      .map((text) => `${svg.id}: ${text.textContent}`);
  }),
  tableOverflow: Array.from(document.querySelectorAll(".scroll"))
    .map((box) => box.scrollWidth - box.clientWidth),
  chartLefts: Array.from(document.querySelectorAll("#trend-heading ~ .charts svg"))
    .map((svg) => Math.round(svg.getBoundingClientRect().left)),
})
"""
DESKTOP = {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}
# A post whose label is all wide letters and emoji, and a five-figure sale.
WIDE_POST = "🎉🎉 WOW MEGA SALE 👩🏽‍💻 " * 6
BIG_SALE = "11999.97"


def test_the_report_draws_every_chart_in_chromium_without_a_console_error(
    chromium,  # first: without a browser, skip before any database is made
    browser,
    fixture,  # noqa: F811
    api_url,
) -> None:
    query = urllib.parse.urlencode({"format": "html", **RANGE})
    url = f"{api_url}/v1/reports/daily?{query}"
    for domain in ("Page", "Runtime", "Log", "Network"):
        browser.call(f"{domain}.enable")
    browser.call(
        "Network.setExtraHTTPHeaders",
        headers={"Authorization": f"Bearer {fixture['key']}"},
    )
    browser.call("Emulation.setDeviceMetricsOverride", **PHONE)

    navigation = browser.call("Page.navigate", url=url)
    browser.wait_for("Page.loadEventFired")
    inspected = browser.call(
        "Runtime.evaluate", expression=INSPECT_PAGE, returnByValue=True
    )
    found = json.loads(inspected["result"]["value"])
    shot = save_screenshot(browser, "kpi-report-375px.png")

    assert "errorText" not in navigation, navigation
    assert browser.console_errors() == []
    assert browser.requested_urls() == [url]
    assert found["title"].startswith("KPI report: Test Goods")
    assert found["h1"] == "KPIs for Test Goods"
    assert [chart["id"] for chart in found["charts"]] == list(CHARTS)
    for chart in found["charts"]:
        assert chart["title"] and chart["desc"], chart
        assert chart["shapes"] > 0, chart
        assert 0 < chart["width"] <= PHONE["width"], chart
    # Readable at 375 px: nothing makes the page wider than the phone.
    assert found["pageWidth"] <= found["viewportWidth"] == PHONE["width"]
    # The post text holding a <script> tag is a label, and no script ran.
    assert found["scripts"] == 0
    assert SCRIPT in found["labels"]
    assert found["outside"] == []
    assert shot.stat().st_size > 0


@pytest.fixture
def wide_fixture(fixture):  # noqa: F811
    """The three days, plus a post with a wide label that sold for 11,999.97."""
    from decimal import Decimal

    from cartcast import runtime as runtime_module
    from tests.test_reports import add_order, add_post

    posted = dt.datetime(2026, 3, 2, 17, 30, tzinfo=dt.UTC)
    with runtime_module.current().database.transaction() as tx:
        post_id = add_post(tx, fixture["id"], WIDE_POST, posted, 90000, likes=4000)
        add_order(tx, fixture["id"], "big", Decimal(BIG_SALE), post_id, posted)
    return fixture


@pytest.mark.parametrize(
    ("screen", "name"),
    [(PHONE, "kpi-report-wide-375px.png"), (DESKTOP, "kpi-report-wide-1280px.png")],
)
def test_every_label_stays_inside_its_chart_and_the_page_uses_a_wide_screen(
    chromium,  # first: without a browser, skip before any database is made
    browser,
    wide_fixture,
    api_url,
    screen,
    name,
) -> None:
    query = urllib.parse.urlencode({"format": "html", **RANGE})
    url = f"{api_url}/v1/reports/daily?{query}"
    for domain in ("Page", "Runtime", "Log", "Network"):
        browser.call(f"{domain}.enable")
    browser.call(
        "Network.setExtraHTTPHeaders",
        headers={"Authorization": f"Bearer {wide_fixture['key']}"},
    )
    browser.call("Emulation.setDeviceMetricsOverride", **screen)

    browser.call("Page.navigate", url=url)
    browser.wait_for("Page.loadEventFired")
    inspected = browser.call(
        "Runtime.evaluate", expression=INSPECT_PAGE, returnByValue=True
    )
    found = json.loads(inspected["result"]["value"])
    save_screenshot(browser, name)

    assert browser.console_errors() == []
    assert found["outside"] == []
    assert found["pageWidth"] <= found["viewportWidth"] == screen["width"]
    if screen is DESKTOP:
        # The day table needs no sideways scroll, and the trend charts sit two
        # side by side rather than one 1,200 px column.
        assert found["tableOverflow"] == [0]
        assert len(set(found["chartLefts"])) == 2


def save_screenshot(browser: DevTools, name: str) -> Path:
    """Capture the whole page, keep it under ARTIFACTS and print where."""
    import base64

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


def test_a_missing_chromium_skips_outside_ci_and_fails_under_ci(tmp_path) -> None:
    def run(ci: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "CI": ci, "CARTCAST_CHROMIUM": str(tmp_path / "none")}
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "-rs",
                f"{__file__}::"
                "test_the_report_draws_every_chart_in_chromium_without_a_console_error",
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    outside, under = run("false"), run("true")

    assert outside.returncode == 0, outside.stdout[-2000:]
    assert "1 skipped" in outside.stdout and "not installed" in outside.stdout
    assert under.returncode == 1, under.stdout[-2000:]
    assert "CI=true requires it" in under.stdout
