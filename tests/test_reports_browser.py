"""The HTML KPI report in headless Chromium, served by the api on loopback.

Debian's `chromium` is driven over the DevTools protocol (a WebSocket on
127.0.0.1, spoken with the `websockets` library): the page is loaded with the
brand's key as a header, every chart is looked up in the DOM, the console must
stay free of errors (a style the policy refused would log one), and a screenshot
at phone width is kept as an artifact.

Chromium opens no network socket at all. Before it resolves any host, even the
IP literal 127.0.0.1, Chromium checks IPv6 reachability with a UDP connect() to
2001:4860:4860::8888, so it is given nothing to resolve: every host, loopback
included, maps to "no such name", and the test answers the page's request itself
over DevTools with the api's own answer from loopback (serve_from_loopback). Where
strace can trace, Chromium runs under it and the test fails on any address past
loopback in its connect() and send calls; without strace it warns and runs unchecked.
Outside CI a machine without chromium skips with a message; under CI=true that is
a failure, as for the Pub/Sub emulator (tests/test_pubsub.py).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import urllib.parse

import pytest

# The browser and the api on loopback (tests/chromium.py).
from tests.chromium import (  # noqa: F401
    PHONE,
    REPO,
    DevTools,
    api_url,
    browser,
    chromium,
    save_screenshot,
    serve_from_loopback,
    tracer,
)

# The fixture of three days, its brand and client, as the other report tests use.
from tests.test_reports import CHARTS, RANGE, SCRIPT, brand, client, fixture  # noqa: F401

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
    chromium,  # noqa: F811 (first: without a browser, skip before any database)
    browser,  # noqa: F811
    fixture,  # noqa: F811
    api_url,  # noqa: F811
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
    serve_from_loopback(browser, api_url)

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
    chromium,  # noqa: F811 (first: without a browser, skip before any database)
    browser,  # noqa: F811
    wide_fixture,
    api_url,  # noqa: F811
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
    serve_from_loopback(browser, api_url)

    navigation = browser.call("Page.navigate", url=url)
    browser.wait_for("Page.loadEventFired")
    inspected = browser.call(
        "Runtime.evaluate", expression=INSPECT_PAGE, returnByValue=True
    )
    found = json.loads(inspected["result"]["value"])
    save_screenshot(browser, name)

    assert "errorText" not in navigation, navigation
    assert browser.console_errors() == []
    assert found["outside"] == []
    assert found["pageWidth"] <= found["viewportWidth"] == screen["width"]
    if screen is DESKTOP:
        # The day table needs no sideways scroll, and the trend charts sit two
        # side by side rather than one 1,200 px column.
        assert found["tableOverflow"] == [0]
        assert len(set(found["chartLefts"])) == 2


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
