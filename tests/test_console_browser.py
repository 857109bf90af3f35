"""The console end to end in headless Chromium, at a phone's width, by keyboard.

A marketer's week in one run: sign in with the brand's key, import the demo
catalog, draft a caption, approve it with the keyboard alone, schedule it and see it
on the calendar, let the publisher send it through the X sandbox, and read it in the
KPIs. Every view is checked the same way: its expected elements, zero console
errors, no serious or critical axe-core violation (axe-core from npm, installed by
`make install` into tests/browser/, injected over DevTools: no CDN), no horizontal
scroll at 375 px, and a screenshot in tests/artifacts/.

The browser machinery (no host resolved, pages answered over DevTools from the api
on loopback, strace watching Chromium's sockets) is tests/chromium.py's.
"""

from __future__ import annotations

import datetime as dt
import http.cookiejar
import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

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
from tests.conftest import OPERATOR_KEY
from tests.helpers import CATALOG_PATH, brand_body, catalog
from tests.test_event_functions import env, receiver, sandbox, tick  # noqa: F401

AXE = REPO / "tests" / "browser" / "node_modules" / "axe-core" / "axe.min.js"
SECRET = "console-browser-secret-0123456789abcdef"
KEYBOARD_STEPS_MAX = 200
RUN_AXE = """
axe.run(document, {resultTypes: ["violations"]}).then((result) => JSON.stringify(
  result.violations
    .filter((found) => ["serious", "critical"].includes(found.impact))
    .map((found) => ({id: found.id, impact: found.impact,
      nodes: found.nodes.map((node) => node.target.join(" ")).slice(0, 5)}))
))
"""
INSPECT = """
JSON.stringify({
  h1: (document.querySelector("h1") || {}).textContent || "",
  text: document.body.innerText,
  pageWidth: document.documentElement.scrollWidth,
  viewportWidth: window.innerWidth,
  scripts: document.scripts.length,
})
"""


@pytest.fixture
def axe_source() -> str:
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run make install (npm ci in tests/browser)")
    return AXE.read_text(encoding="utf-8")


@pytest.fixture
def console_env(env, monkeypatch):  # noqa: F811
    monkeypatch.setenv("CARTCAST_CONSOLE_SECRET", SECRET)
    return env


def call_api(base: str, method: str, path: str, key: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        base + path,
        method=method,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        data=None if body is None else json.dumps(body).encode(),
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)


class Console:
    """The page under test: go, act, inspect, audit."""

    def __init__(self, devtools: DevTools, base: str, axe_source: str) -> None:
        self.devtools = devtools
        self.base = base
        self.axe_source = axe_source
        self.checked: list[str] = []

    def go(self, path: str) -> None:
        self.loaded_after(
            lambda: self.devtools.call("Page.navigate", url=self.base + path)
        )

    def loaded_after(self, action) -> None:
        mark = len(self.devtools.events)
        action()
        self.devtools.wait_for("Page.loadEventFired", after=mark)

    def run(self, expression: str, *, awaited: bool = False) -> Any:
        answer = self.devtools.call(
            "Runtime.evaluate",
            expression=expression,
            returnByValue=True,
            awaitPromise=awaited,
        )
        assert "exceptionDetails" not in answer, answer
        return answer["result"].get("value")

    def submit(self, selector: str) -> None:
        """Submit the form of `selector` as its button would (a click)."""
        self.loaded_after(
            lambda: self.run(f"document.querySelector({json.dumps(selector)}).click()")
        )

    def press(self, key: str) -> None:
        codes = {"Tab": 9, "Enter": 13}
        event = {"key": key, "code": key, "windowsVirtualKeyCode": codes[key]}
        text = {"text": "\r"} if key == "Enter" else {}
        self.devtools.call("Input.dispatchKeyEvent", type="keyDown", **event, **text)
        self.devtools.call("Input.dispatchKeyEvent", type="keyUp", **event)

    def check_view(self, name: str, *expected: str, scripts: int = 0) -> dict[str, Any]:
        """Expected text, no console error, axe clean, no sideways scroll; a shot.
        A page runs no script of its own but the `scripts` it is known for."""
        found = json.loads(self.run(INSPECT))
        self.run(self.axe_source)
        violations = json.loads(self.run(RUN_AXE, awaited=True))
        save_screenshot(self.devtools, f"console-{name}-375px.png")
        self.checked.append(name)

        for text in expected:
            assert text in found["text"], (name, text, found["text"][:2000])
        assert violations == [], (name, violations)
        assert found["pageWidth"] <= found["viewportWidth"] == PHONE["width"], name
        assert found["scripts"] == scripts, name
        assert self.devtools.console_errors() == [], (
            name,
            self.devtools.requested_urls(),
        )
        return found


def test_a_marketer_runs_the_week_from_the_console_in_chromium(
    chromium,  # noqa: F811 (first: without a browser, skip before any database)
    browser,  # noqa: F811
    axe_source,
    console_env,
    api_url,  # noqa: F811
    clock_file,
) -> None:
    # Arrange: the operator makes the brand, with approvals, on the sandbox's account.
    created = call_api(
        api_url,
        "POST",
        "/v1/brands",
        OPERATOR_KEY,
        brand_body(approvals_required=True),
    )
    key = created["api_key"]
    for domain in ("Page", "Runtime", "Log", "Network"):
        browser.call(f"{domain}.enable")
    browser.call("Emulation.setDeviceMetricsOverride", **PHONE)
    serve_from_loopback(browser, api_url, cookies=http.cookiejar.CookieJar())
    console = Console(browser, api_url, axe_source)

    # Sign in.
    console.go("/console/signin")
    console.check_view("signin", "Sign in to the cartcast console")
    console.run(f"document.querySelector('#key').value = {json.dumps(key)}")
    console.submit("form button[type=submit]")
    console.check_view("approvals-empty", "No draft waits for approval.")

    # Import the demo catalog (a JSON feed), pasted: DevTools' Fetch hands over no
    # uploaded file's bytes, so the upload itself is tested in tests/test_console.py.
    console.go("/console/catalog")
    feed = CATALOG_PATH.read_text(encoding="utf-8")
    console.run(f"document.querySelector('#pasted').value = {json.dumps(feed)}")
    console.submit("form[action='/console/catalog/import'] button")
    products = len(json.loads(Path(CATALOG_PATH).read_text()))
    console.check_view("catalog", f"Imported {products} of {products} product(s)")

    # Draft one product's caption, then approve it by keyboard alone.
    console.run("document.querySelector('input[name=sku]').click()")
    console.submit("button[form=caption]")
    console.check_view("approvals", "1 draft(s) wait for approval", "Weighted length")
    post_id = console.run(
        "document.querySelector('form.inline').action.split('/').slice(-2)[0]"
    )
    console.run("document.activeElement && document.activeElement.blur()")
    for _ in range(KEYBOARD_STEPS_MAX):
        console.press("Tab")
        focused = console.run(
            "document.activeElement.tagName + ':' + document.activeElement.textContent"
        )
        if focused == "BUTTON:Approve":
            break
    assert focused == "BUTTON:Approve", "Tab never reached the Approve button"
    console.loaded_after(lambda: console.press("Enter"))
    console.check_view("approved", "Approved.", "No draft waits for approval.")
    post = call_api(api_url, "GET", f"/v1/posts/{post_id}", key)["post"]
    assert post["state"] == "approved"

    # Schedule it in the next free slot, and find it on the calendar.
    console.go(f"/console/posts/{post_id}")
    console.check_view("post", "Schedule", "America/New_York")
    console.submit("#schedule")
    post = call_api(api_url, "GET", f"/v1/posts/{post_id}", key)["post"]
    assert post["state"] == "scheduled"
    due = dt.datetime.fromisoformat(post["scheduled_at"])
    console.go(f"/console/calendar?start={due.date()}")
    calendar = console.check_view("calendar", "America/New_York", "scheduled")
    assert post["text"][:40] in calendar["text"]

    # The publisher sends it through the X sandbox when it is due.
    clock_file.set(due + dt.timedelta(minutes=1))
    assert tick("publish_due_posts", due + dt.timedelta(minutes=1)).status_code == 200
    post = call_api(api_url, "GET", f"/v1/posts/{post_id}", key)["post"]
    assert post["state"] == "published" and post["x_post_id"]
    console.go(f"/console/calendar?view=month&start={due.date()}")
    console.check_view("calendar-month", "published", "America/New_York")

    # The rollup counts it, and the KPIs show it.
    later = due + dt.timedelta(hours=6)
    clock_file.set(later)
    assert tick("rollup_kpis", later).status_code == 200
    # Sessions expire on the deployment's clock, which has moved on: sign in again.
    console.go("/console/approvals")
    console.check_view("expired", "Your session ended")
    console.run(f"document.querySelector('#key').value = {json.dumps(key)}")
    console.submit("form button[type=submit]")
    console.go(f"/console/kpis?from={due.date()}&to={later.date()}")
    kpis = console.check_view("kpis", "Posts published", "Download CSV")
    assert "Posts published\n1" in kpis["text"] or "Posts published\t1" in kpis["text"]

    # The other views hold up the same way.
    console.go("/console/inbox")
    console.check_view("inbox", "Crisis pause", "No open mention.")
    console.go("/console/status")
    console.check_view(
        "status", "Function runs", "Last publish attempt", "published", "X spend in"
    )
    assert len(console.checked) == 12


def test_a_long_unbroken_reason_keeps_the_post_page_at_a_phones_width(
    chromium,  # noqa: F811
    browser,  # noqa: F811
    axe_source,
    console_env,
    api_url,  # noqa: F811
) -> None:
    # A reviewer's reason is free text, and often a link: its history line must
    # wrap at 375 px like the rest of the page, not push it sideways.
    created = call_api(
        api_url, "POST", "/v1/brands", OPERATOR_KEY, brand_body(approvals_required=True)
    )
    key = created["api_key"]
    product = catalog(1)
    call_api(api_url, "POST", "/v1/products", key, product)
    drafted = call_api(
        api_url, "POST", "/v1/captions", key, {"products": [product[0]["sku"]]}
    )
    post_id = drafted["posts"][0]["id"]
    reason = "Wrong page, see https://shop.example.com/" + "x" * 120 + "?utm=1"
    call_api(api_url, "POST", f"/v1/posts/{post_id}/reject", key, {"reason": reason})
    for domain in ("Page", "Runtime", "Log", "Network"):
        browser.call(f"{domain}.enable")
    browser.call("Emulation.setDeviceMetricsOverride", **PHONE)
    serve_from_loopback(browser, api_url, cookies=http.cookiejar.CookieJar())
    console = Console(browser, api_url, axe_source)
    console.go("/console/signin")
    console.run(f"document.querySelector('#key').value = {json.dumps(key)}")
    console.submit("form button[type=submit]")

    console.go(f"/console/posts/{post_id}")

    console.check_view("post-long-reason", "Rejected because", "History")


def test_a_big_import_goes_on_by_itself_and_ends_on_its_report(
    chromium,  # noqa: F811
    browser,  # noqa: F811
    axe_source,
    console_env,
    monkeypatch,
    api_url,  # noqa: F811
) -> None:
    # The demo catalog (194 products) at 50 a chunk: the upload stores the first
    # chunk, and the progress page's own script posts its form for the other three.
    monkeypatch.setenv("CARTCAST_CONSOLE_IMPORT_CHUNK", "50")
    created = call_api(
        api_url, "POST", "/v1/brands", OPERATOR_KEY, brand_body(approvals_required=True)
    )
    for domain in ("Page", "Runtime", "Log", "Network"):
        browser.call(f"{domain}.enable")
    browser.call("Emulation.setDeviceMetricsOverride", **PHONE)
    serve_from_loopback(browser, api_url, cookies=http.cookiejar.CookieJar())
    console = Console(browser, api_url, axe_source)
    console.go("/console/signin")
    console.run(
        f"document.querySelector('#key').value = {json.dumps(created['api_key'])}"
    )
    console.submit("form button[type=submit]")
    # Hold the script's first request, to look at the page while it waits.
    serve = browser.handlers["Fetch.requestPaused"]
    held: list[dict[str, Any]] = []

    def holding(paused: dict[str, Any]) -> None:
        if paused["request"]["url"].endswith("/continue") and not held:
            held.append(paused)
            return
        serve(paused)

    browser.handlers["Fetch.requestPaused"] = holding

    console.go("/console/catalog")
    feed = CATALOG_PATH.read_text(encoding="utf-8")
    console.run(f"document.querySelector('#pasted').value = {json.dumps(feed)}")
    console.submit("form[action='/console/catalog/import'] button")
    while not held:
        browser.receive()
    progress = console.check_view("import-progress", "50 of 194 row(s) done", scripts=1)
    console.loaded_after(lambda: serve(held[0]))
    report = console.check_view("import-report", "Imported 194 of 194 product(s)")

    # The script presses the button itself, so the button is out of the way.
    assert "goes on by itself" in progress["text"]
    assert "Import the next rows" not in progress["text"]
    assert "0 refused" in report["text"]
    continued = [url for url in browser.requested_urls() if url.endswith("/continue")]
    assert len(continued) == 3


# Where the heading's ")" is drawn, against the author's name before it.
PAREN_AFTER_NAME = """
(() => {
  const heading = document.querySelector(%s);
  const name = heading.querySelectorAll("bdi")[1] || heading;
  const text = heading.lastChild;
  const paren = document.createRange();
  paren.setStart(text, text.length - 1);
  paren.setEnd(text, text.length);
  const named = document.createRange();
  named.selectNodeContents(name);
  return JSON.stringify({paren: paren.getBoundingClientRect().left,
    name: named.getBoundingClientRect().right});
})()
"""


def test_an_inbox_of_every_script_reads_at_a_phones_width_and_by_keyboard(
    chromium,  # noqa: F811
    browser,  # noqa: F811
    axe_source,
    console_env,
    api_url,  # noqa: F811
) -> None:
    # Arrange: mentions as X hands them over: Arabic, emoji sequences, a 4000-
    # character run with no space, and a display name ending in a right-to-left
    # override, which turned the heading's ")" around before it was isolated.
    from cartcast import runtime as runtime_module
    from tests.test_inbox import store_mention

    created = call_api(
        api_url, "POST", "/v1/brands", OPERATOR_KEY, brand_body(approvals_required=True)
    )
    current = runtime_module.current()
    store_mention(current, text="@testgoods وين طلبي؟ رقم الطلب 1234", priority=1)
    store_mention(current, text="@testgoods " + "👨‍👩‍👧‍👦🇵🇸" * 40, priority=2)
    store_mention(current, text="@testgoods " + "x" * 3989, priority=3)
    spoofed = store_mention(current, text="@testgoods hello", priority=4)
    with current.database.transaction() as tx:
        tx.execute(
            "UPDATE mentions SET author_name = :name WHERE id = CAST(:id AS uuid)",
            name="\u202eevil name",
            id=spoofed,
        )
    for domain in ("Page", "Runtime", "Log", "Network"):
        browser.call(f"{domain}.enable")
    browser.call("Emulation.setDeviceMetricsOverride", **PHONE)
    serve_from_loopback(browser, api_url, cookies=http.cookiejar.CookieJar())
    console = Console(browser, api_url, axe_source)
    console.go("/console/signin")
    console.run(
        f"document.querySelector('#key').value = {json.dumps(created['api_key'])}"
    )
    console.submit("form button[type=submit]")

    # Act: read the inbox, then reach the first reply box by keyboard alone.
    console.go("/console/inbox")
    inbox = console.check_view("inbox-scripts", "وين طلبي", "Send reply")
    drawn = json.loads(
        console.run(PAREN_AFTER_NAME % json.dumps(f"[id='mention-{spoofed}']"))
    )
    console.run("document.activeElement && document.activeElement.blur()")
    for _ in range(KEYBOARD_STEPS_MAX):
        console.press("Tab")
        focused = console.run("document.activeElement.tagName")
        if focused == "TEXTAREA":
            break

    # Assert
    assert drawn["paren"] >= drawn["name"], drawn
    assert focused == "TEXTAREA", "Tab never reached a reply box"
    assert console.run("document.activeElement.labels[0].textContent") == "Reply"
    assert inbox["text"].count("Mark handled") == 4
