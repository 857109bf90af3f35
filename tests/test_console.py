"""The web console's pages and forms, through functions-framework's real app.

A brand with approvals on gets drafts through the JSON API; the console is then
used as a browser would: sign in with the key, follow the pages, post the forms with
the session cookie and the CSRF token each page carries.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import json
import re
import threading
import urllib.parse
import zoneinfo

import pytest

from cartcast import console_status, crisis, keys, publishing, web
from cartcast import runtime as runtime_module
from tests.conftest import OPERATOR_KEY, START, make_app
from tests.helpers import (
    CountingStream,
    auth,
    brand_body,
    catalog,
    post_json,
    rows_free_after_one_waits,
)
from tests.test_inbox import store_mention

NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
SECRET = "console-test-secret-0123456789abcdef"
HOUR = dt.timedelta(hours=1)
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
NEXT_PAGE = re.compile(r'<a href="(/console/inbox\?after=[^"]+)" rel="next"')
INBOX_PAGE = 100


@pytest.fixture
def client(function_env, monkeypatch):
    monkeypatch.setenv("CARTCAST_CONSOLE_SECRET", SECRET)
    runtime_module.reset()
    return make_app("api", "http").test_client()


def make_brand(client, slug: str = "test-goods", drafts: int = 2) -> dict:
    body = brand_body(slug=slug, name=slug.title(), approvals_required=True)
    created = post_json(client, "/v1/brands", body, OPERATOR_KEY).get_json()
    key = created["api_key"]
    post_json(client, "/v1/products", catalog(drafts), key)
    skus = [product["sku"] for product in catalog(drafts)]
    drafted = post_json(client, "/v1/captions", {"products": skus}, key).get_json()
    return {
        "key": key,
        "id": created["brand"]["id"],
        "posts": [post["id"] for post in drafted["posts"]],
    }


def add_key(brand_id: str, role: str) -> str:
    current = runtime_module.current()
    with current.database.transaction() as tx:
        return keys.create_key(
            tx, brand_id=brand_id, name=role, role=role, now=current.clock.now()
        )


def sign_in(client, key: str):
    return client.post("/console/signin", data={"key": key})


def csrf_of(client, path: str = "/console/approvals") -> str:
    page = client.get(path)
    assert page.status_code == 200, page.get_data(as_text=True)
    return CSRF.search(page.get_data(as_text=True)).group(1)


def approved_post(client, signed_in) -> tuple[str, str]:
    """Approve the signed-in brand's first post on the console; return its id and
    the page's CSRF token, for the step the test is about."""
    post_id = signed_in["posts"][0]
    token = csrf_of(client)
    client.post(f"/console/posts/{post_id}/approve", data={"csrf": token})
    return post_id, token


def text_of(answer) -> str:
    return html.unescape(answer.get_data(as_text=True))


def post_state(client, key: str, post_id: str) -> str:
    answer = client.get(f"/v1/posts/{post_id}", headers=auth(key))
    return answer.get_json()["post"]["state"]


@pytest.fixture
def brand(client):
    return make_brand(client)


@pytest.fixture
def signed_in(client, brand):
    answer = sign_in(client, brand["key"])
    assert answer.status_code == 303
    return brand


def test_signing_in_sets_a_strict_http_only_session_cookie(client, brand) -> None:
    answer = sign_in(client, brand["key"])

    cookie = answer.headers["Set-Cookie"]
    assert answer.headers["Location"] == "/console/approvals"
    assert cookie.startswith("cartcast_console=")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Max-Age=28800" in cookie and "Path=/console" in cookie
    # The test client's host is localhost: Secure is only set off loopback.
    assert "Secure" not in cookie
    assert brand["key"] not in cookie


def test_the_cookie_is_secure_on_any_other_host(client, brand) -> None:
    answer = client.post(
        "/console/signin",
        data={"key": brand["key"]},
        base_url="https://shop-console.example.test",
    )

    assert "; Secure" in answer.headers["Set-Cookie"]


def test_a_wrong_key_or_the_operator_key_is_refused_on_the_page(client) -> None:
    wrong = sign_in(client, "cc_not-a-key")
    operator = sign_in(client, OPERATOR_KEY)

    assert wrong.status_code == 401 and "Set-Cookie" not in wrong.headers
    assert "unknown or revoked API key" in wrong.get_data(as_text=True)
    assert operator.status_code == 401


def test_a_page_without_a_session_leads_to_the_sign_in(client) -> None:
    answer = client.get("/console/approvals")
    form = client.get("/console/signin")

    assert answer.status_code == 303
    assert answer.headers["Location"] == "/console/signin"
    assert form.status_code == 200
    assert "Sign in to the cartcast console" in form.get_data(as_text=True)


def test_an_expired_session_sends_a_page_to_the_sign_in_saying_so(
    client, signed_in, clock_file
) -> None:
    clock_file.set(clock_file.now() + dt.timedelta(hours=8, seconds=1))

    answer = client.get("/console/calendar")

    assert answer.status_code == 303
    assert answer.headers["Location"] == "/console/signin?notice=expired"
    assert "Max-Age=0" in answer.headers["Set-Cookie"]
    page = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "Your session ended" in page


def test_every_page_is_served_under_a_strict_policy(client, signed_in) -> None:
    for path in (
        "/console/approvals",
        "/console/calendar",
        "/console/calendar?view=month",
        "/console/inbox",
        "/console/kpis",
        "/console/status",
        f"/console/posts/{signed_in['posts'][0]}",
    ):
        answer = client.get(path)
        page = answer.get_data(as_text=True)

        assert answer.status_code == 200, (path, page)
        policy = answer.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "script-src" not in policy
        assert "<script" not in page and "http://" not in page, path
        assert 'lang="en"' in page and "<h1>" in page


def test_the_stylesheet_is_served_by_the_console(client) -> None:
    answer = client.get("/console/console.css")

    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/css")
    assert ".variants" in answer.get_data(as_text=True)


def test_the_approvals_show_each_draft_with_its_product_and_checks(
    client, signed_in
) -> None:
    page = client.get("/console/approvals").get_data(as_text=True)

    first = catalog(1)[0]
    assert first["title"] in page and first["sku"] in page
    assert "Weighted length" in page and "fits on x" in page
    assert page.count('action="/console/posts/') >= 4  # approve and reject each


def test_approving_from_the_page_moves_the_post(client, signed_in) -> None:
    post_id = signed_in["posts"][0]
    token = csrf_of(client)

    answer = client.post(f"/console/posts/{post_id}/approve", data={"csrf": token})

    assert answer.status_code == 303
    assert "notice=approved" in answer.headers["Location"]
    assert post_state(client, signed_in["key"], post_id) == "approved"


def test_a_forged_csrf_token_changes_nothing(client, signed_in) -> None:
    post_id = signed_in["posts"][0]

    forged = client.post(f"/console/posts/{post_id}/approve", data={"csrf": "x" * 64})
    missing = client.post(f"/console/posts/{post_id}/approve")

    assert forged.status_code == missing.status_code == 400
    assert "security token" in forged.get_data(as_text=True)
    assert post_state(client, signed_in["key"], post_id) == "needs_approval"


def test_a_head_request_is_answered_as_a_get_without_a_body(
    client, signed_in, clock_file
) -> None:
    # A HEAD with an expired session got the 401 a form gets, where a GET of
    # the same page goes to the sign-in.
    live = client.head("/console/calendar")
    clock_file.set(clock_file.now() + dt.timedelta(hours=8, seconds=1))

    expired = client.head("/console/calendar")
    client.delete_cookie("cartcast_console", path="/console")
    without = client.head("/console/calendar")

    assert live.status_code == 200 and live.get_data() == b""
    assert expired.status_code == 303
    assert expired.headers["Location"] == "/console/signin?notice=expired"
    assert "Max-Age=0" in expired.headers["Set-Cookie"]
    assert without.status_code == 303
    assert without.headers["Location"] == "/console/signin"
    assert expired.get_data() == b"" and without.get_data() == b""


def test_an_expired_session_changes_nothing_and_asks_to_sign_in_again(
    client, signed_in, clock_file
) -> None:
    post_id = signed_in["posts"][0]
    token = csrf_of(client)
    clock_file.set(clock_file.now() + dt.timedelta(hours=8, seconds=1))

    answer = client.post(f"/console/posts/{post_id}/approve", data={"csrf": token})

    assert answer.status_code == 401
    assert "your session expired" in answer.get_data(as_text=True)
    assert "Max-Age=0" in answer.headers["Set-Cookie"]
    assert post_state(client, signed_in["key"], post_id) == "needs_approval"


def test_a_tampered_cookie_is_no_session(client, signed_in) -> None:
    cookie = client.get_cookie("cartcast_console", path="/console")
    payload, _, signature = cookie.value.rpartition(".")
    later = payload.rsplit(".", 1)[0] + ".9999999999"
    client.set_cookie("cartcast_console", f"{later}.{signature}", path="/console")

    assert client.get("/console/approvals").status_code == 303


@pytest.mark.parametrize("how", ["tampered", "empty", "garbage"])
def test_a_cookie_that_fails_its_signature_is_not_called_an_expired_session(
    client, signed_in, how
) -> None:
    cookie = client.get_cookie("cartcast_console", path="/console").value
    payload, _, signature = cookie.rpartition(".")
    sent = {
        "tampered": payload.rsplit(".", 1)[0] + ".9999999999." + signature,
        "empty": "",
        "garbage": "not-a-session",
    }[how]
    client.set_cookie("cartcast_console", sent, path="/console")

    answer = client.get("/console/approvals")

    assert answer.status_code == 303
    assert answer.headers["Location"] == "/console/signin?notice=signin_again"
    assert "Max-Age=0" in answer.headers["Set-Cookie"]
    page = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "You are not signed in" in page
    assert "expired" not in page and "Your session ended" not in page


def test_another_brands_post_is_a_clear_404_and_is_not_touched(
    client, signed_in
) -> None:
    other = make_brand(client, slug="other-goods", drafts=1)
    theirs = other["posts"][0]
    token = csrf_of(client)

    page = client.get(f"/console/posts/{theirs}")
    approve = client.post(f"/console/posts/{theirs}/approve", data={"csrf": token})

    assert page.status_code == approve.status_code == 404
    assert "not one of your brand's posts" in text_of(approve)
    assert post_state(client, other["key"], theirs) == "needs_approval"


def test_rejecting_needs_a_reason_and_keeps_it(client, signed_in) -> None:
    post_id = signed_in["posts"][0]
    token = csrf_of(client)

    empty = client.post(f"/console/posts/{post_id}/reject", data={"csrf": token})
    given = client.post(
        f"/console/posts/{post_id}/reject",
        data={"csrf": token, "reason": "Wrong price season"},
    )

    assert empty.status_code == 400 and "reason" in empty.get_data(as_text=True)
    assert given.status_code == 303
    answer = client.get(f"/v1/posts/{post_id}", headers=auth(signed_in["key"]))
    assert answer.get_json()["post"]["rejection_reason"] == "Wrong price season"


@pytest.mark.parametrize("escaped", ["%FF", "%ED%A0%80", "Wrong%C3"])
def test_a_form_whose_escapes_are_not_utf8_is_a_400_with_nothing_changed(
    client, signed_in, escaped
) -> None:
    """Werkzeug reads such bytes as U+FFFD: a reason or reply would be stored, or
    sent to X, as replacement characters nobody typed."""
    post_id = signed_in["posts"][0]
    token = csrf_of(client)

    answer = client.post(
        f"/console/posts/{post_id}/reject",
        data=f"csrf={token}&reason={escaped}".encode(),
        content_type="application/x-www-form-urlencoded",
    )

    assert answer.status_code == 400
    assert "not UTF-8" in text_of(answer)
    assert post_state(client, signed_in["key"], post_id) == "needs_approval"


def test_bulk_approve_moves_every_chosen_draft_or_none(client, signed_in) -> None:
    first, second = signed_in["posts"]
    token = csrf_of(client)

    refused = client.post(
        "/console/approvals/bulk",
        data={"csrf": token, "post": [first, "not-a-post-id"]},
    )
    approved = client.post(
        "/console/approvals/bulk", data={"csrf": token, "post": [first, second]}
    )

    assert refused.status_code == 404
    assert approved.status_code == 303
    assert post_state(client, signed_in["key"], first) == "approved"
    assert post_state(client, signed_in["key"], second) == "approved"


def test_a_bulk_approval_refused_for_one_draft_names_it(client, signed_in) -> None:
    # Approved in another tab since the page was loaded: the whole selection is
    # refused, and the page said only "post is approved", not which, nor that the
    # other drafts were left as they were.
    first, second = signed_in["posts"]
    token = csrf_of(client)
    client.post(f"/console/posts/{first}/approve", data={"csrf": token})

    refused = client.post(
        "/console/approvals/bulk", data={"csrf": token, "post": [first, second]}
    )

    assert refused.status_code == 409
    assert f"draft {first}: post is approved" in text_of(refused)
    assert "none of the selection was approved" in text_of(refused)
    assert "<code>post</code>" in refused.get_data(as_text=True)
    assert post_state(client, signed_in["key"], second) == "needs_approval"


def test_bulk_approve_takes_a_draft_chosen_twice_once(client, signed_in) -> None:
    """A repeated id was approved twice, and the second time answered 409 "post is
    approved; it can become approved only from needs_approval", undoing both."""
    first, second = signed_in["posts"]
    token = csrf_of(client)

    answer = client.post(
        "/console/approvals/bulk",
        data={"csrf": token, "post": [first, second, first, first.upper()]},
    )

    assert answer.status_code == 303
    assert post_state(client, signed_in["key"], first) == "approved"
    assert post_state(client, signed_in["key"], second) == "approved"


def test_bulk_approve_takes_its_drafts_in_id_order_so_two_cannot_deadlock(
    client,
) -> None:
    """Two people approving the same drafts, listed in opposite orders, each held a
    post the other wanted next, and PostgreSQL failed one of them (a 500). In id
    order, the second waits for the first.

    Another transaction holds the middle draft; a bulk approval listing them
    last first then waits at it, holding the first and not the last."""
    brand = make_brand(client, drafts=3)
    sign_in(client, brand["key"])
    first, middle, last = sorted(brand["posts"])
    token = csrf_of(client)
    database = runtime_module.current().database
    middle_held, release_middle = threading.Event(), threading.Event()
    answers = []

    def hold_middle() -> None:
        with database.transaction() as tx:
            tx.rows("SELECT id FROM posts WHERE id = :id FOR UPDATE", id=middle)
            middle_held.set()
            release_middle.wait(timeout=60)

    def approve_all() -> None:
        chosen = {"csrf": token, "post": [last, middle, first]}
        answers.append(client.post("/console/approvals/bulk", data=chosen))

    holder = threading.Thread(target=hold_middle)
    holder.start()
    assert middle_held.wait(timeout=60)
    approver = threading.Thread(target=approve_all)
    approver.start()
    free = rows_free_after_one_waits(
        database,
        "SELECT CAST(id AS text) FROM posts WHERE id IN (:first, :last) "
        "FOR UPDATE SKIP LOCKED",
        first=first,
        last=last,
    )
    release_middle.set()
    holder.join()
    approver.join()

    assert free == [last]
    assert answers[0].status_code == 303
    assert post_state(client, brand["key"], last) == "approved"


def test_an_edit_reruns_the_checks_and_asks_for_approval_again(
    client, signed_in
) -> None:
    post_id, token = approved_post(client, signed_in)
    before = client.get(f"/v1/posts/{post_id}", headers=auth(signed_in["key"]))
    text = before.get_json()["post"]["text"]

    answer = client.post(
        f"/console/posts/{post_id}/edit",
        data={"csrf": token, "text": "Fresh words. " + text},
    )

    assert answer.status_code == 303, answer.get_data(as_text=True)
    after = client.get(f"/v1/posts/{post_id}", headers=auth(signed_in["key"]))
    assert after.get_json()["post"]["state"] == "needs_approval"
    assert after.get_json()["post"]["text"].startswith("Fresh words.")


def test_a_viewer_sees_no_approve_button_and_the_server_refuses_one(
    client, brand
) -> None:
    viewer = add_key(brand["id"], "viewer")
    sign_in(client, viewer)
    post_id = brand["posts"][0]
    page = client.get("/console/approvals").get_data(as_text=True)
    token = CSRF.search(page).group(1)

    answer = client.post(f"/console/posts/{post_id}/approve", data={"csrf": token})

    assert "Approve</button>" not in page
    assert answer.status_code == 403
    assert "viewer" in answer.get_data(as_text=True)
    assert post_state(client, brand["key"], post_id) == "needs_approval"


def test_scheduling_puts_the_post_on_the_calendar_in_the_brands_zone(
    client, signed_in
) -> None:
    post_id, token = approved_post(client, signed_in)

    answer = client.post(
        f"/console/posts/{post_id}/schedule",
        data={"csrf": token, "local_time": "2026-03-04T10:15"},
    )
    calendar = client.get("/console/calendar?start=2026-03-02").get_data(as_text=True)

    assert answer.status_code == 303, answer.get_data(as_text=True)
    assert "America/New_York" in calendar
    assert f"/console/posts/{post_id}" in calendar
    assert ">10:15</time>" in calendar
    assert "scheduled · " in calendar


def test_a_slot_and_a_typed_time_at_once_are_refused_with_nothing_scheduled(
    client, signed_in
) -> None:
    post_id, token = approved_post(client, signed_in)
    chosen = {"slot": "2026-03-03T09:30", "local_time": "2026-03-04T10:15"}

    answer = client.post(
        f"/console/posts/{post_id}/schedule", data={"csrf": token, **chosen}
    )

    assert answer.status_code == 400
    assert "not both" in text_of(answer)
    assert post_state(client, signed_in["key"], post_id) == "approved"


def test_a_slot_picked_beside_the_posts_own_time_moves_it_to_the_slot(
    client, signed_in
) -> None:
    post_id, token = approved_post(client, signed_in)
    client.post(
        f"/console/posts/{post_id}/schedule",
        data={"csrf": token, "local_time": "2026-03-04T10:15"},
    )

    # The time field comes filled with the post's time: left as it is, the slot
    # picked above it is the move.
    answer = client.post(
        f"/console/posts/{post_id}/schedule",
        data={
            "csrf": token,
            "slot": "2026-03-03T09:30",
            "local_time": "2026-03-04T10:15",
        },
    )
    post = client.get(f"/v1/posts/{post_id}", headers=auth(signed_in["key"]))

    assert answer.status_code == 303, text_of(answer)
    assert post.get_json()["post"]["scheduled_at"] == "2026-03-03T14:30:00+00:00"


FIRST_SLOT = re.compile(
    r'<select id="slot" name="slot">\s*<option value="">[^<]*</option>\s*'
    r'<option value="([^"]+)"'
)


def test_a_slot_that_passed_while_the_page_sat_open_is_refused_naming_the_slot(
    client, signed_in, clock_file
) -> None:
    post_id, token = approved_post(client, signed_in)
    page = text_of(client.get(f"/console/posts/{post_id}"))
    first_slot = FIRST_SLOT.search(page).group(1)
    slot_at = dt.datetime.fromisoformat(first_slot).replace(tzinfo=NEW_YORK)
    clock_file.set(slot_at + dt.timedelta(minutes=1))
    # The session may have ended meanwhile; a new one keeps the old page's slot.
    sign_in(client, signed_in["key"])
    token = csrf_of(client)

    answer = client.post(
        f"/console/posts/{post_id}/schedule",
        data={"csrf": token, "slot": first_slot, "local_time": ""},
    )

    assert answer.status_code == 400
    assert "Field: <code>slot</code>" in text_of(answer)
    assert f"the slot {first_slot} has passed" in text_of(answer)
    assert post_state(client, signed_in["key"], post_id) == "approved"


# Europe/London in 2026: 01:00-02:00 is skipped on 29 March and repeated on 25
# October. A wall time resolves to its first instant, or forward by the gap.
@pytest.mark.parametrize(
    ("now", "slot", "passed"),
    [
        # 01:10 GMT, in the repeated hour's second pass: 01:30 was at 00:30 UTC.
        pytest.param("2026-10-25T01:10Z", "2026-10-25T01:30", True, id="fall-back"),
        # 02:10 BST: 01:30 does not exist and becomes 02:30 BST, still ahead.
        pytest.param("2026-03-29T01:10Z", "2026-03-29T01:30", False, id="spring"),
    ],
)
def test_a_slot_has_passed_by_its_instant_not_its_wall_time(
    client, clock_file, now, slot, passed
) -> None:
    clock_file.set(dt.datetime.fromisoformat(now))
    key, post_id, token = approved_london_post(client)

    answer = client.post(
        f"/console/posts/{post_id}/schedule",
        data={"csrf": token, "slot": slot, "local_time": ""},
    )

    if passed:
        assert answer.status_code == 400
        assert f"the slot {slot} has passed" in text_of(answer)
        assert post_state(client, key, post_id) == "approved"
    else:
        assert answer.status_code == 303, text_of(answer)
        assert post_state(client, key, post_id) == "scheduled"


def test_a_slot_in_the_repeated_hour_is_offered_next_week_once_it_passed(
    client, clock_file
) -> None:
    # 01:10 GMT on 2026-10-25, the repeated hour's second pass: Sunday's 01:30
    # came at 00:30 UTC, so the next 01:30 to offer is a week later.
    clock_file.set(dt.datetime(2026, 10, 25, 1, 10, tzinfo=dt.UTC))
    sunday = [{"weekday": 6, "time": "01:30"}]
    _, post_id, _ = approved_london_post(client, posting_slots=sunday)

    page = text_of(client.get(f"/console/posts/{post_id}"))

    assert FIRST_SLOT.search(page).group(1) == "2026-11-01T01:30"


def approved_london_post(client, **fields) -> tuple[str, str, str]:
    """A Europe/London brand signed in with one approved post: its key, the post's
    id and a CSRF token."""
    body = brand_body(time_zone="Europe/London", approvals_required=True, **fields)
    key = post_json(client, "/v1/brands", body, OPERATOR_KEY).get_json()["api_key"]
    post_json(client, "/v1/products", catalog(1), key)
    sku = catalog(1)[0]["sku"]
    drafted = post_json(client, "/v1/captions", {"products": [sku]}, key).get_json()
    post_id = drafted["posts"][0]["id"]
    sign_in(client, key)
    token = csrf_of(client)
    client.post(f"/console/posts/{post_id}/approve", data={"csrf": token})
    return key, post_id, token


@pytest.mark.parametrize("slot", ["2027-03-02T09:30", "next tuesday"])
def test_a_slot_the_schedule_refuses_is_named_as_the_slot(
    client, signed_in, slot
) -> None:
    post_id, token = approved_post(client, signed_in)

    answer = client.post(
        f"/console/posts/{post_id}/schedule",
        data={"csrf": token, "slot": slot, "local_time": ""},
    )

    assert answer.status_code == 400
    assert "Field: <code>slot</code>" in text_of(answer)
    assert "'slot'" in text_of(answer) and "local_time" not in text_of(answer)
    assert post_state(client, signed_in["key"], post_id) == "approved"


@pytest.mark.parametrize("field", ["slot", "local_time"])
def test_a_time_another_post_took_is_a_409_naming_the_field_the_form_sent(
    client, signed_in, field
) -> None:
    first_id, token = approved_post(client, signed_in)
    second_id = signed_in["posts"][1]
    client.post(f"/console/posts/{second_id}/approve", data={"csrf": token})
    client.post(
        f"/console/posts/{first_id}/schedule",
        data={"csrf": token, "local_time": "2026-03-04T10:15"},
    )
    other = "local_time" if field == "slot" else "slot"

    answer = client.post(
        f"/console/posts/{second_id}/schedule",
        data={"csrf": token, field: "2026-03-04T10:15", other: ""},
    )

    assert answer.status_code == 409
    assert f"Field: <code>{field}</code>" in text_of(answer)
    assert f"'{field}' 2026-03-04T10:15 is taken" in text_of(answer)
    assert post_state(client, signed_in["key"], second_id) == "approved"


LOCAL_TIME_VALUE = re.compile(r'id="local_time" name="local_time"[^>]*value="([^"]*)"')


def test_a_held_post_whose_time_passed_is_rescheduled_by_the_form_as_it_comes(
    client, signed_in
) -> None:
    post_id, token = approved_post(client, signed_in)
    current = runtime_module.current()
    with current.database.transaction() as tx:
        tx.execute(
            "UPDATE posts SET state = 'held', scheduled_at = :at WHERE id = :id",
            at=current.clock.now() - 3 * HOUR,
            id=post_id,
        )

    page = text_of(client.get(f"/console/posts/{post_id}"))
    prefilled = LOCAL_TIME_VALUE.search(page).group(1)
    answer = client.post(
        f"/console/posts/{post_id}/schedule",
        data={"csrf": token, "local_time": prefilled},
    )

    assert answer.status_code == 303, answer.get_data(as_text=True)
    assert prefilled == ""
    assert "has passed" in page and "empty: the next free slot" in page
    assert post_state(client, signed_in["key"], post_id) == "scheduled"


def test_a_bad_calendar_view_or_day_is_a_clear_400(client, signed_in) -> None:
    assert client.get("/console/calendar?view=year").status_code == 400
    answer = client.get("/console/calendar?start=2026-13-01")
    assert answer.status_code == 400 and "start" in answer.get_data(as_text=True)


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/console/calendar?view=week&view=month", "view"),
        ("/console/calendar?start=2026-03-02&start=2026-04-06", "start"),
        ("/console/kpis?from=2026-02-24&from=2026-02-01&to=2026-03-02", "from"),
        ("/console/kpis.csv?from=2026-02-24&to=2026-03-02&to=2026-03-01", "to"),
        ("/console/approvals?notice=approved&notice=rejected", "notice"),
        ("/console/signin?notice=expired&notice=signed_out", "notice"),
    ],
)
def test_a_page_parameter_given_twice_is_a_400_naming_it(
    client, signed_in, path, name
) -> None:
    # The first alone would show a week or a range the reader did not ask for.
    answer = client.get(path)

    assert answer.status_code == 400
    assert f"Field: <code>{name}</code>" in answer.get_data(as_text=True)


def test_a_parameter_a_page_does_not_read_is_let_be(client, signed_in) -> None:
    # A link from a newsletter or a browser add-on carries its own (utm_source);
    # a page only shows, so nothing is done on the strength of one.
    answer = client.get("/console/calendar?utm_source=mail&utm_source=x")

    assert answer.status_code == 200


def test_the_kpi_page_has_its_range_and_a_csv_link(client, signed_in) -> None:
    page = client.get("/console/kpis?from=2026-02-24&to=2026-03-02")
    csv = client.get("/console/kpis.csv?from=2026-02-24&to=2026-03-02")
    bad = client.get("/console/kpis?from=2026-03-05&to=2026-03-01")

    assert page.status_code == 200
    assert "/console/kpis.csv?from=2026-02-24&amp;to=2026-03-02" in page.get_data(
        as_text=True
    )
    assert csv.status_code == 200 and csv.headers["Content-Type"].startswith("text/csv")
    assert bad.status_code == 400


def test_pausing_from_the_inbox_needs_an_allowed_role(client, brand) -> None:
    editor = add_key(brand["id"], "editor")
    sign_in(client, editor)
    token = csrf_of(client, "/console/inbox")
    refused = client.post("/console/pause", data={"csrf": token})
    sign_in(client, brand["key"])
    token = csrf_of(client, "/console/inbox")
    paused = client.post("/console/pause", data={"csrf": token, "reason": "storm"})

    assert refused.status_code == 403
    assert paused.status_code == 303
    state = client.get("/v1/brand/pause", headers=auth(brand["key"])).get_json()
    assert state["paused"] and state["reason"] == "storm"
    assert "Resume publishing" in client.get("/console/inbox").get_data(as_text=True)


def test_a_pause_and_resume_from_the_console_name_the_signed_in_key(
    client, brand
) -> None:
    sign_in(client, add_key(brand["id"], "approver"))
    token = csrf_of(client, "/console/inbox")
    client.post("/console/pause", data={"csrf": token, "reason": "storm"})
    client.post("/console/resume", data={"csrf": token})

    trail = client.get(
        "/v1/audit?subject=brand:publishing", headers=auth(brand["key"])
    ).get_json()["events"]
    assert [(e["action"], e["actor"]) for e in trail] == [
        ("brand.resumed", "approver"),
        ("brand.paused", "approver"),
    ]


def test_a_form_refused_for_the_keys_role_is_in_the_brands_trail(client, brand) -> None:
    sign_in(client, add_key(brand["id"], "viewer"))
    token = csrf_of(client)

    answer = client.post(f"/console/posts/{NOBODY}/approve", data={"csrf": token})

    assert answer.status_code == 403
    trail = client.get(
        "/v1/audit?action=access.refused", headers=auth(brand["key"])
    ).get_json()["events"]
    assert [(e["actor"], e["subject"]) for e in trail] == [
        ("viewer", "route:POST /console/posts/{post_id}/approve")
    ]
    assert trail[0]["after"]["role"] == "viewer"


def test_signing_in_with_a_revoked_key_is_in_the_brands_trail(client, brand) -> None:
    revoked = add_key(brand["id"], "editor")
    listed = client.get("/v1/keys", headers=auth(brand["key"])).get_json()["keys"]
    editor_id = next(k["id"] for k in listed if k["name"] == "editor")
    client.post(f"/v1/keys/{editor_id}/revoke", headers=auth(brand["key"]))

    answer = sign_in(client, revoked)

    assert answer.status_code == 401
    trail = client.get(
        "/v1/audit?action=access.revoked_key_used", headers=auth(brand["key"])
    ).get_json()["events"]
    assert [(e["actor"], e["subject"]) for e in trail] == [
        ("editor", "route:POST /console/signin")
    ]


def test_signing_out_ends_the_session(client, signed_in) -> None:
    token = csrf_of(client)

    answer = client.post("/console/signout", data={"csrf": token})

    assert answer.status_code == 303
    assert "Max-Age=0" in answer.headers["Set-Cookie"]
    assert client.get("/console/approvals").status_code == 303


def test_signing_in_again_ends_the_browsers_previous_session(client, signed_in) -> None:
    # The old cookie's session stayed good on the server for its 8 hours.
    old = client.get_cookie("cartcast_console", path="/console").value

    again = sign_in(client, signed_in["key"])
    new = client.get_cookie("cartcast_console", path="/console").value
    client.set_cookie("cartcast_console", old, path="/console")
    with_old = client.get("/console/approvals")
    client.set_cookie("cartcast_console", new, path="/console")
    with_new = client.get("/console/approvals")

    assert again.status_code == 303 and new != old
    assert with_old.status_code == 303
    assert with_old.headers["Location"] == "/console/signin?notice=expired"
    assert with_new.status_code == 200


def test_a_failed_sign_in_ends_no_session(client, signed_in) -> None:
    refused = sign_in(client, "cc_not-a-key")

    assert refused.status_code == 401
    assert client.get("/console/approvals").status_code == 200


def test_a_revoked_key_ends_its_sessions(client, signed_in) -> None:
    current = runtime_module.current()
    with current.database.transaction() as tx:
        tx.execute("UPDATE api_keys SET revoked_at = now()")

    token = CSRF.search(client.get("/console/signin").get_data(as_text=True))
    answer = client.post("/console/pause", data={"csrf": "any"})

    assert token is None
    assert answer.status_code == 401
    assert "revoked" in answer.get_data(as_text=True)
    assert client.get("/console/approvals").status_code == 303


def test_a_brand_past_its_offboarding_grace_period_has_no_console(
    client, brand, clock_file
) -> None:
    post_json(client, "/v1/brand/offboarding", {}, brand["key"])
    # Signed in an hour before the data is due to go, on an 8-hour session.
    clock_file.set(START + dt.timedelta(days=30, hours=-1))
    assert sign_in(client, brand["key"]).status_code == 303
    token = csrf_of(client)

    clock_file.set(START + dt.timedelta(days=30))
    page = client.get("/console/approvals")
    pause = client.post("/console/pause", data={"csrf": token})
    again = sign_in(client, brand["key"])

    # The keys answer 401 from `delete_at` (offboarding.py); so does the console.
    assert page.status_code == 303
    assert pause.status_code == 401
    assert again.status_code == 401 and "Set-Cookie" not in again.headers
    with runtime_module.current().database.transaction() as tx:
        paused = tx.scalar("SELECT publishing_paused_at FROM brands")
    assert paused is None


def test_without_a_secret_the_console_says_it_is_off(function_env) -> None:
    runtime_module.reset()
    client = make_app("api", "http").test_client()

    answer = client.get("/console/signin")

    assert answer.status_code == 503
    assert "CARTCAST_CONSOLE_SECRET" in answer.get_data(as_text=True)


SHOPIFY_COLUMNS = (
    "Handle,Title,Body (HTML),Vendor,Type,Tags,Option1 Name,Option1 Value,"
    "Variant SKU,Variant Price,Variant Compare At Price,Variant Inventory Qty,"
    "Image Src,Image Position,Image Alt Text"
)
BROKEN = {"mug-4": "no Title", "mug-9": "Variant Price", "mug-15": "Image Src"}


def shopify_csv() -> str:
    """20 products of 3 sizes and 2 images each; 3 broken, one way each."""
    lines = [SHOPIFY_COLUMNS]
    for number in range(1, 21):
        handle = f"mug-{number}"
        title = "" if handle == "mug-4" else f"Mug {number}"
        # A stray carriage return inside a quoted field, as spreadsheets leave them.
        body = f'"<p>Stoneware.\r\nHolds {number}00 ml.</p>"'
        image = f"https://cdn.example.com/{handle}"
        price = "12.00"
        lines.append(
            f'{handle},{title},{body},Clay Co,Mugs,"kitchen, gift",Size,Small,'
            f"{handle}-s,{price},15.00,5,{image}-a.jpg,1,{title} front"
        )
        broken_price = "twelve" if handle == "mug-9" else "13.00"
        lines.append(f"{handle},,,,,,,Medium,{handle}-m,{broken_price},,4,,,")
        second = "ftp://x" if handle == "mug-15" else f"{image}-b.jpg"
        lines.append(f"{handle},,,,,,,Large,{handle}-l,14.00,,3,{second},2,back")
    # An image row whose product never appears: an orphan, refused by its line.
    lines.append("ghost,,,,,,,,,,,,https://cdn.example.com/ghost.jpg,1,")
    lines.append(",,,,,,,Extra,,1.00,,,,,")
    return "\r\n".join(lines) + "\r\n"


def upload(client, token: str, content: bytes, filename: str):
    return client.post(
        "/console/catalog/import",
        data={"csrf": token, "file": (io.BytesIO(content), filename)},
        content_type="multipart/form-data",
    )


def test_a_shopify_csv_imports_its_complete_products_and_names_the_broken(
    client, signed_in
) -> None:
    token = csrf_of(client, "/console/catalog")

    answer = upload(client, token, shopify_csv().encode(), "products_export.csv")

    page = text_of(answer)
    assert answer.status_code == 200, page
    assert "Imported 17 of 21 product(s)" in page
    assert "with 51 variant(s) and 34 image(s)" in page
    for handle, problem in BROKEN.items():
        assert re.search(rf"<td>{handle}</td><td class=\"wrap\">[^<]*{problem}", page)
    assert "the row has no Handle" in page
    current = runtime_module.current()
    with current.database.transaction() as tx:
        stored = tx.rows(
            "SELECT p.sku, count(DISTINCT v.position) AS variants,"
            " count(DISTINCT i.position) AS images, min(p.description) AS body"
            " FROM products p LEFT JOIN product_variants v ON v.product_id = p.id"
            " LEFT JOIN product_images i ON i.product_id = p.id"
            " WHERE p.sku LIKE 'mug-%' GROUP BY p.sku"
        )
    assert len(stored) == 17
    assert {row["sku"] for row in stored}.isdisjoint(BROKEN)
    assert all(row["variants"] == 3 and row["images"] == 2 for row in stored)
    assert stored[0]["body"].startswith("Stoneware. Holds")


def test_a_json_feed_keeps_its_good_products_and_reports_the_bad(
    client, signed_in
) -> None:
    token = csrf_of(client, "/console/catalog")
    rows = catalog(5)
    rows[2] = {**rows[2], "price": -1}

    answer = upload(client, token, json.dumps(rows).encode(), "feed.json")

    page = text_of(answer)
    assert "Imported 4 of 5 product(s)" in page
    assert rows[2]["sku"] in page and "price" in page


def test_a_json_feed_product_giving_a_key_twice_is_reported_not_imported(
    client, signed_in
) -> None:
    # The API refuses a body giving a key twice (web._parse); an uploaded feed
    # is the same products, and last-wins would store a title nobody checked.
    token = csrf_of(client, "/console/catalog")
    rows = catalog(3)
    twice = json.dumps(rows[1])[:-1] + ', "title": "Another title"}'
    feed = f"[{json.dumps(rows[0])}, {twice}, {json.dumps(rows[2])}]"

    answer = upload(client, token, feed.encode(), "feed.json")

    page = text_of(answer)
    assert "Imported 2 of 3 product(s)" in page
    assert rows[1]["sku"] in page and "given twice" in page


def test_a_json_feed_giving_its_products_twice_is_refused_with_nothing_written(
    client, signed_in
) -> None:
    token = csrf_of(client, "/console/catalog")
    before = client.get("/v1/products", headers=auth(signed_in["key"])).get_json()
    rows = json.dumps(catalog(2))
    feed = f'{{"products": {rows}, "products": {rows}}}'

    answer = upload(client, token, feed.encode(), "feed.json")

    assert answer.status_code == 400
    assert "given twice" in text_of(answer)
    after = client.get("/v1/products", headers=auth(signed_in["key"])).get_json()
    assert after == before


@pytest.mark.parametrize(
    ("content", "filename", "problem"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00", "logo.png", "upload a Shopify product CSV"),
        (b"\x89PNG\r\n\x1a\n\xff\x00", "logo.csv", "not UTF-8"),
        (b"sku,name\nA,b\n", "other.csv", "not a Shopify product CSV"),
        # Without prices no product can be imported: each was refused in turn as
        # "'Variant Price' must be a number", a column the file does not have.
        (b"Handle,Title\nmug,Mug\n", "export.csv", "no Variant Price column"),
        (b"{not json", "feed.json", "not valid JSON"),
        (b"[" * 5000 + b"]" * 5000, "deep.json", "nests deeper than 64 levels"),
    ],
)
def test_a_file_that_is_not_a_catalog_is_refused_with_nothing_written(
    client, signed_in, content, filename, problem
) -> None:
    token = csrf_of(client, "/console/catalog")
    before = client.get("/v1/products", headers=auth(signed_in["key"])).get_json()

    answer = upload(client, token, content, filename)

    assert answer.status_code == 400
    assert problem in text_of(answer)
    after = client.get("/v1/products", headers=auth(signed_in["key"])).get_json()
    assert after == before


@pytest.mark.parametrize(
    "header", ["Handle,Handle,Title,Variant Price", "Handle,Title,Variant Price,Title"]
)
def test_a_csv_naming_a_column_it_reads_twice_is_refused_with_nothing_written(
    client, signed_in, header
) -> None:
    # csv keeps the last of two cells under one name: the other product, or title,
    # would be imported without a word.
    token = csrf_of(client, "/console/catalog")
    before = client.get("/v1/products", headers=auth(signed_in["key"])).get_json()
    content = f"{header}\r\nmug-1,mug-2,Mug,9.00\r\n".encode()

    answer = upload(client, token, content, "products_export.csv")

    assert answer.status_code == 400
    repeated = "Handle" if header.startswith("Handle,Handle") else "Title"
    assert f"names the column {repeated} twice" in text_of(answer)
    after = client.get("/v1/products", headers=auth(signed_in["key"])).get_json()
    assert after == before


def test_a_file_and_pasted_text_at_once_are_refused_with_nothing_written(
    client, signed_in
) -> None:
    token = csrf_of(client, "/console/catalog")
    pasted = json.dumps([{"sku": "PASTED-1", "title": "Pasted mug", "price": 9}])
    before = client.get("/v1/products", headers=auth(signed_in["key"])).get_json()

    answer = client.post(
        "/console/catalog/import",
        data={
            "csrf": token,
            "file": (io.BytesIO(shopify_csv().encode()), "products_export.csv"),
            "pasted": pasted,
        },
        content_type="multipart/form-data",
    )

    assert answer.status_code == 400
    assert "not both" in text_of(answer)
    assert "Field: <code>pasted</code>" in text_of(answer)
    after = client.get("/v1/products", headers=auth(signed_in["key"])).get_json()
    assert after == before


BOUNDARY = "cartcast-test-boundary"


def multipart_body(fields: dict[str, bytes]) -> bytes:
    """A multipart/form-data body of text fields holding these exact bytes, as a
    browser sends a form it read in another encoding (the test client encodes a
    str field as UTF-8, and so cannot send such bytes)."""
    parts = [
        f"--{BOUNDARY}\r\n".encode()
        + f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        + value
        + b"\r\n"
        for name, value in fields.items()
    ]
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


MUG = b'[{"sku": "MUG-1", "title": "Mug", "price": 9}]'


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        # "Café" in latin-1, as a page read in that encoding would paste it.
        ({"pasted": MUG.replace(b"Mug", b"Caf\xe9 mug")}, "pasted"),
        # A surrogate written in UTF-8's form, which UTF-8 forbids.
        ({"pasted": MUG.replace(b"Mug", b"Mug \xed\xa0\x80")}, "pasted"),
        # Any other text field of the form, beside a paste that would import.
        ({"pasted": MUG, "note": b"\xff"}, "note"),
    ],
)
def test_multipart_text_that_is_not_utf8_is_a_400_naming_it_with_nothing_stored(
    client, signed_in, fields, named
) -> None:
    """Werkzeug reads such bytes in a multipart field as U+FFFD, as it does in a
    urlencoded form: a title would be stored with characters nobody typed."""
    token = csrf_of(client, "/console/catalog")
    before = client.get("/v1/products", headers=auth(signed_in["key"])).get_json()

    answer = client.post(
        "/console/catalog/import",
        data=multipart_body({"csrf": token.encode(), **fields}),
        content_type=f"multipart/form-data; boundary={BOUNDARY}",
    )

    assert answer.status_code == 400, text_of(answer)
    assert "not UTF-8" in text_of(answer)
    assert f"Field: <code>{named}</code>" in text_of(answer)
    after = client.get("/v1/products", headers=auth(signed_in["key"])).get_json()
    assert after == before


@pytest.mark.parametrize("field", ["file", "pasted"])
def test_a_catalog_field_given_twice_is_refused_with_nothing_written(
    client, signed_in, field
) -> None:
    token = csrf_of(client, "/console/catalog")
    first = json.dumps([{"sku": "FIRST-1", "title": "First mug", "price": 9}])
    second = json.dumps([{"sku": "SECOND-1", "title": "Second mug", "price": 9}])
    twice = {
        "file": [
            (io.BytesIO(first.encode()), "first.json"),
            (io.BytesIO(second.encode()), "second.json"),
        ],
        "pasted": [first, second],
    }[field]
    before = client.get("/v1/products", headers=auth(signed_in["key"])).get_json()

    answer = client.post(
        "/console/catalog/import",
        data={"csrf": token, field: twice},
        content_type="multipart/form-data",
    )

    assert answer.status_code == 400
    assert f"Field: <code>{field}</code>" in text_of(answer)
    after = client.get("/v1/products", headers=auth(signed_in["key"])).get_json()
    assert after == before


def test_broken_pasted_json_is_refused_naming_the_pasted_text(
    client, signed_in
) -> None:
    token = csrf_of(client, "/console/catalog")

    answer = client.post(
        "/console/catalog/import", data={"csrf": token, "pasted": '{"sku": '}
    )

    assert answer.status_code == 400
    assert "the pasted text is not valid JSON" in text_of(answer)
    assert "Field: <code>pasted</code>" in text_of(answer)


def too_many_products() -> list[dict]:
    from cartcast import catalog_imports

    count = catalog_imports.PRODUCTS_MAX + 1
    return [{"sku": f"P{n}", "title": f"Product {n}", "price": 1} for n in range(count)]


def too_many_products_csv() -> str:
    from cartcast import catalog_imports

    rows = [f"p{n},Product {n},1.00" for n in range(catalog_imports.PRODUCTS_MAX + 1)]
    return "Handle,Title,Variant Price\r\n" + "\r\n".join(rows) + "\r\n"


@pytest.mark.parametrize(
    ("pasted", "problem"),
    [
        ('{"items": []}', "a JSON feed is a list of products"),
        ('{"products": [], "products": []}', "given twice"),
        (json.dumps(too_many_products()), "at most 1000 products"),
        ("sku,name\nA,b\n", "not a Shopify product CSV"),
        (too_many_products_csv(), "at most 1000 products"),
    ],
)
def test_pasted_text_that_is_no_catalog_is_refused_naming_the_pasted_text(
    client, signed_in, pasted, problem
) -> None:
    token = csrf_of(client, "/console/catalog")
    before = client.get("/v1/products", headers=auth(signed_in["key"])).get_json()

    answer = client.post(
        "/console/catalog/import", data={"csrf": token, "pasted": pasted}
    )

    assert answer.status_code == 400
    assert problem in text_of(answer)
    assert "Field: <code>pasted</code>" in text_of(answer)
    after = client.get("/v1/products", headers=auth(signed_in["key"])).get_json()
    assert after == before


def test_a_viewer_cannot_import(client, brand) -> None:
    sign_in(client, add_key(brand["id"], "viewer"))
    page = client.get("/console/catalog")
    token = CSRF.search(page.get_data(as_text=True)).group(1)

    answer = upload(client, token, shopify_csv().encode(), "products_export.csv")

    assert 'action="/console/catalog/import"' not in page.get_data(as_text=True)
    assert answer.status_code == 403


def test_captioning_a_selection_writes_drafts_to_approve(client, signed_in) -> None:
    token = csrf_of(client, "/console/catalog")
    upload(client, token, shopify_csv().encode(), "products_export.csv")

    answer = client.post(
        "/console/catalog/captions",
        data={"csrf": token, "sku": ["mug-1", "mug-2"]},
    )

    assert answer.status_code == 303
    page = client.get("/console/approvals").get_data(as_text=True)
    assert "Mug 1" in page and "Mug 2" in page


def test_the_inbox_offers_a_reply_only_to_a_mention_that_summoned_the_brand(
    client, signed_in
) -> None:
    current = runtime_module.current()
    summoned = store_mention(
        current,
        text="@testgoods where is my order?",
        priority=1,
        sentiment="negative",
        intent="order_issue",
        due=START + dt.timedelta(minutes=30),
    )
    aside = store_mention(current, text="testgoods mugs are nice", priority=4)

    page = text_of(client.get("/console/inbox"))

    assert page.index("where is my order?") < page.index("mugs are nice")
    assert f'action="/console/mentions/{summoned}/reply"' in page
    assert f'action="/console/mentions/{aside}/reply"' not in page
    assert "order issue" in page and "negative" in page and "30 min" in page


def test_the_inbox_offers_no_reply_to_an_at_handle_inside_a_link(
    client, signed_in
) -> None:
    # "x.com/@testgoods" is a link on X, not a mention: a reply box there sent a
    # reply X refused, and the mention came back reopened.
    current = runtime_module.current()
    linked = store_mention(current, text="look: x.com/@testgoods", priority=2)

    page = text_of(client.get("/console/inbox"))

    assert f'action="/console/mentions/{linked}/reply"' not in page
    assert "did not summon the brand" in page


def test_the_inbox_spells_a_long_wait_in_days_and_hours_not_minutes(
    client, signed_in
) -> None:
    current = runtime_module.current()
    store_mention(
        current,
        text="@testgoods still waiting",
        posted_at=START - dt.timedelta(days=7),
        priority=1,
        due=START - dt.timedelta(days=6, hours=18),
    )
    store_mention(
        current,
        text="@testgoods any news?",
        priority=2,
        due=START + dt.timedelta(hours=3, minutes=20),
    )

    page = text_of(client.get("/console/inbox"))

    assert "overdue by 6 d 18 h" in page
    assert "3 h 20 min" in page
    assert "9720 min" not in page and "200 min" not in page


def test_two_deadlines_in_the_hour_clocks_go_back_are_told_apart(
    client, signed_in
) -> None:
    # New York's clocks go back at 02:00 EDT on 2026-11-01: 01:30 comes twice.
    current = runtime_module.current()
    for due in ("2026-11-01T05:30:00+00:00", "2026-11-01T06:30:00+00:00"):
        store_mention(
            current,
            text="@testgoods where is my order?",
            priority=2,
            due=dt.datetime.fromisoformat(due),
        )

    page = text_of(client.get("/console/inbox"))

    assert "2026-11-01 01:30 EDT" in page and "2026-11-01 01:30 EST" in page


def test_the_inbox_offers_no_reply_to_a_mention_whose_author_was_removed(
    client, signed_in
) -> None:
    current = runtime_module.current()
    with current.database.transaction() as tx:
        user_id = tx.scalar("SELECT x_user_id FROM brands")
    answer = store_mention(
        current, text="is it back?", priority=2, in_reply_to_user_id=user_id
    )
    removed = post_json(
        client, "/v1/author-data-removals", {"x_user_id": "42"}, signed_in["key"]
    )
    assert removed.get_json()["removal"]["mentions"] == 1

    page = text_of(client.get("/console/inbox"))

    assert f'action="/console/mentions/{answer}/reply"' not in page
    assert "the author's data was removed" in page
    assert "An author whose data was removed" in page


def test_replying_and_marking_handled_from_the_inbox(client, signed_in) -> None:
    current = runtime_module.current()
    summoned = store_mention(current, text="@testgoods is it in stock?", priority=2)
    other = store_mention(current, text="@testgoods thanks!", priority=3)
    token = csrf_of(client, "/console/inbox")

    replied = client.post(
        f"/console/mentions/{summoned}/reply",
        data={"csrf": token, "text": "Yes, it ships today."},
    )
    handled = client.post(f"/console/mentions/{other}/handle", data={"csrf": token})

    assert replied.status_code == 303, text_of(replied)
    assert handled.status_code == 303, text_of(handled)
    page = text_of(client.get("/console/inbox"))
    assert "thanks!" not in page


def test_scheduling_twice_in_the_next_free_slot_keeps_the_first_slot(
    client, signed_in
) -> None:
    # A double click on "Schedule" sent the form twice: the second found the
    # post's own slot taken, by itself, and moved it to the slot after, and a
    # third moved it back.
    post_id, token = approved_post(client, signed_in)

    client.post(f"/console/posts/{post_id}/schedule", data={"csrf": token})
    first = client.get(f"/v1/posts/{post_id}", headers=auth(signed_in["key"]))
    again = client.post(f"/console/posts/{post_id}/schedule", data={"csrf": token})
    second = client.get(f"/v1/posts/{post_id}", headers=auth(signed_in["key"]))

    assert again.status_code == 303, text_of(again)
    at = first.get_json()["post"]["scheduled_at"]
    assert at is not None
    assert second.get_json()["post"]["scheduled_at"] == at


def test_the_inbox_pages_past_its_first_hundred_mentions(client, signed_in) -> None:
    # The least urgent of 101 open mentions was on no page: the inbox stopped at
    # 100 with no word of the rest.
    current = runtime_module.current()
    for number in range(INBOX_PAGE):
        store_mention(current, text=f"@testgoods urgent {number}", priority=1)
    last = store_mention(current, text="@testgoods the least urgent", priority=4)

    first = text_of(client.get("/console/inbox"))
    following = NEXT_PAGE.search(first)
    assert following, "the first page links no next page"
    second = text_of(client.get(following.group(1)))

    assert first.count('class="card mention"') == INBOX_PAGE
    assert "the least urgent" not in first
    assert second.count('class="card mention"') == 1
    assert f'action="/console/mentions/{last}/handle"' in second
    assert NEXT_PAGE.search(second) is None
    assert 'href="/console/inbox">Most urgent first</a>' in second


def test_answering_a_mention_on_the_second_inbox_page_goes_back_to_it(
    client, signed_in
) -> None:
    # Replying or marking handled on page 2 sent the person back to page 1.
    current = runtime_module.current()
    for number in range(INBOX_PAGE):
        store_mention(current, text=f"@testgoods urgent {number}", priority=1)
    last = store_mention(current, text="@testgoods later", priority=4)
    lastly = store_mention(current, text="@testgoods last", priority=4)
    second_page = NEXT_PAGE.search(text_of(client.get("/console/inbox"))).group(1)
    after = urllib.parse.parse_qs(urllib.parse.urlsplit(second_page).query)["after"]
    page = client.get(second_page).get_data(as_text=True)
    token = CSRF.search(page).group(1)

    handled = client.post(
        f"/console/mentions/{last}/handle", data={"csrf": token, "after": after[0]}
    )
    replied = client.post(
        f"/console/mentions/{lastly}/reply",
        data={"csrf": token, "after": after[0], "text": "On its way."},
    )

    for answer, notice in [(handled, "handled"), (replied, "replied")]:
        assert answer.status_code == 303, text_of(answer)
        location = urllib.parse.urlsplit(answer.headers["Location"])
        assert location.path == "/console/inbox"
        assert urllib.parse.parse_qs(location.query) == {
            "after": after,
            "notice": [notice],
        }
    assert page.count(f'name="after" value="{after[0]}"') == 4


@pytest.mark.parametrize("after", ["not-a-token", "x" * 500, "/console/evil"])
def test_a_broken_page_token_in_a_mention_form_changes_nothing(
    client, signed_in, after
) -> None:
    current = runtime_module.current()
    mention_id = store_mention(current, text="@testgoods hello", priority=2)
    token = csrf_of(client, "/console/inbox")

    answer = client.post(
        f"/console/mentions/{mention_id}/handle", data={"csrf": token, "after": after}
    )

    assert answer.status_code == 400
    assert "<code>after</code>" in answer.get_data(as_text=True)
    assert f'action="/console/mentions/{mention_id}/handle"' in text_of(
        client.get("/console/inbox")
    )


def test_a_broken_inbox_page_token_is_a_400_naming_after(client, signed_in) -> None:
    answer = client.get("/console/inbox?after=not-a-token")

    assert answer.status_code == 400
    assert "<code>after</code>" in answer.get_data(as_text=True)


def test_a_pause_reason_of_invisible_marks_alone_is_no_reason(
    client, signed_in
) -> None:
    # The API refuses such a reason as blank; the console stored it, and showed
    # "paused ... by admin: ." with the held posts' reasons as empty-looking.
    token = csrf_of(client, "/console/inbox")

    paused = client.post(
        "/console/pause", data={"csrf": token, "reason": " \u200b\u2060\u00ad "}
    )

    assert paused.status_code == 303, text_of(paused)
    state = client.get("/v1/brand/pause", headers=auth(signed_in["key"])).get_json()
    assert state["reason"] == crisis.DEFAULT_PAUSE_REASON


@pytest.mark.parametrize(
    "reason", ["recall\x07", "product\u2028recall", "recall\x85", "\u202erecall"]
)
def test_a_pause_reason_with_a_control_character_shows_the_forms_error(
    client, signed_in, reason
) -> None:
    # The API refuses these with a 400 naming `reason`; the console paused with them.
    token = csrf_of(client, "/console/inbox")

    refused = client.post("/console/pause", data={"csrf": token, "reason": reason})

    assert refused.status_code == 400, text_of(refused)
    page = refused.get_data(as_text=True)
    assert "Field: <code>reason</code>" in page
    assert "control character" in page
    state = client.get("/v1/brand/pause", headers=auth(signed_in["key"])).get_json()
    assert not state["paused"]


def test_a_pause_reason_is_measured_as_sent_as_the_api_measures_it(
    client, signed_in
) -> None:
    # The console measured the reason once trimmed, the API as sent: 300
    # characters and a space paused here and were refused there.
    token = csrf_of(client, "/console/inbox")

    refused = client.post(
        "/console/pause",
        data={"csrf": token, "reason": "x" * crisis.PAUSE_REASON_MAX + " "},
    )

    assert refused.status_code == 400, text_of(refused)
    assert "Field: <code>reason</code>" in refused.get_data(as_text=True)
    state = client.get("/v1/brand/pause", headers=auth(signed_in["key"])).get_json()
    assert not state["paused"]


def test_the_pause_reasons_field_takes_what_the_server_keeps(client, signed_in) -> None:
    page = client.get("/console/inbox").get_data(as_text=True)

    field = re.search(r'<input id="pause-reason"[^>]*>', page).group(0)
    assert f'maxlength="{crisis.PAUSE_REASON_MAX}"' in field


def test_an_authors_name_is_isolated_from_the_text_around_it(client, signed_in) -> None:
    # A name ending in a right-to-left override turned the ")" after it, and the
    # rest of the heading, around: each name sits in a <bdi> of its own.
    current = runtime_module.current()
    mention = store_mention(current, text="@testgoods hello", priority=2)
    with current.database.transaction() as tx:
        tx.execute(
            "UPDATE mentions SET author_name = :name WHERE id = CAST(:id AS uuid)",
            name="\u202eevil",
            id=mention,
        )

    page = client.get("/console/inbox").get_data(as_text=True)

    assert "@<bdi>fan</bdi> (<bdi>\u202eevil</bdi>)" in page
    assert '<p class="text" dir="auto">@testgoods hello</p>' in page


def test_each_inbox_control_names_the_mention_it_answers(client, signed_in) -> None:
    # A screen reader tabbing through the inbox heard "Mark handled, button" once
    # per mention, and never whose; the approvals' buttons name their draft.
    current = runtime_module.current()
    mentions = [
        store_mention(current, text=f"@testgoods question {number}", priority=2)
        for number in range(2)
    ]

    page = client.get("/console/inbox").get_data(as_text=True)

    for mention in mentions:
        described = f'aria-describedby="mention-{mention}"'
        assert f"{described}>Mark handled</button>" in page
        assert f"{described}>Send reply</button>" in page
        assert re.search(rf'<textarea id="reply-{mention}"[^>]*{described}', page)


def test_another_brands_mention_is_a_404_saying_it_is_not_the_brands(
    client, signed_in
) -> None:
    current = runtime_module.current()
    theirs = store_mention(current, text="@testgoods hi", priority=2)
    other = make_brand(client, slug="other-goods", drafts=1)
    sign_in(client, other["key"])
    token = csrf_of(client, "/console/inbox")

    handled = client.post(f"/console/mentions/{theirs}/handle", data={"csrf": token})
    replied = client.post(
        f"/console/mentions/{theirs}/reply", data={"csrf": token, "text": "hi"}
    )

    assert handled.status_code == replied.status_code == 404
    assert "not one of your brand's mentions" in text_of(handled)
    assert "not one of your brand's mentions" in text_of(replied)


def test_the_inbox_offers_no_reply_to_the_brands_own_post(client, signed_in) -> None:
    # The server refuses such a reply (409); the page offered the box anyway.
    current = runtime_module.current()
    with current.database.transaction() as tx:
        user_id = tx.scalar("SELECT x_user_id FROM brands WHERE slug = 'test-goods'")
    own = store_mention(
        current, text="@testgoods new mugs are in!", priority=3, author_id=user_id
    )

    page = client.get("/console/inbox").get_data(as_text=True)

    assert f'action="/console/mentions/{own}/reply"' not in page
    assert "this is the brand's own post" in page
    assert "did not summon the brand" not in page
    assert f'action="/console/mentions/{own}/handle"' in page


@pytest.mark.parametrize(
    ("pause", "said"),
    [
        (
            "INSERT INTO publishing_pause (paused_at, paused_by) VALUES (now(), 'op')",
            "held: the operator has paused publishing for the whole deployment",
        ),
        (
            "UPDATE brands SET x_disconnected_at = now()",
            "held: the brand's X account is disconnected",
        ),
        (
            "UPDATE brands SET x_posts_paused_until = "
            "CAST(:now AS timestamptz) + interval '1 hour'",
            "held: X's posting limit for this account is reached",
        ),
        (
            "UPDATE brands SET publishing_paused_at = :now, "
            "publishing_paused_by = 'admin'",
            "the crisis pause holds the brand's posts but not its replies",
        ),
        ("SELECT 1", "the publisher sends it at its next run"),
    ],
)
def test_a_reply_queued_while_a_pause_holds_it_says_so(
    client, signed_in, pause, said
) -> None:
    # The notice said "the publisher sends it at its next run" even while the
    # operator's pause held every reply.
    answer = reply_under(client, pause)

    assert answer.status_code == 303, text_of(answer)
    page = text_of(client.get(answer.headers["Location"]))
    assert said in page
    if "held" in said:
        assert "sends it at its next run" not in page


def reply_under(client, *statements: str):
    """Run `statements` (with :now, the clock's now), then answer a mention from
    the inbox; return the form's answer."""
    current = runtime_module.current()
    summoned = store_mention(current, text="@testgoods is it in stock?", priority=2)
    token = csrf_of(client, "/console/inbox")
    with current.database.transaction() as tx:
        for statement in statements:
            tx.execute(statement, now=current.clock.now())
    return client.post(
        f"/console/mentions/{summoned}/reply",
        data={"csrf": token, "text": "Yes, it ships today."},
    )


SHARED_APP_PAUSED = (
    "INSERT INTO x_app_pauses (app, posts_paused_until) "
    "VALUES ('shared', CAST(:now AS timestamptz) + interval '1 hour')"
)


@pytest.mark.parametrize(
    ("state", "hold"),
    [
        ("SELECT 1", None),
        (
            "INSERT INTO publishing_pause (paused_at, paused_by) VALUES (now(), 'op')",
            "deployment",
        ),
        ("UPDATE brands SET x_disconnected_at = now()", "disconnected"),
        (
            "UPDATE brands SET x_posts_paused_until = "
            "CAST(:now AS timestamptz) + interval '1 hour'",
            "x_limit",
        ),
        (
            "UPDATE brands SET x_posts_paused_until = "
            "CAST(:now AS timestamptz) - interval '1 second'",
            None,
        ),
        (SHARED_APP_PAUSED, "x_limit"),
        ((SHARED_APP_PAUSED, "UPDATE brands SET x_own_app = true"), None),
        (
            "UPDATE brands SET offboarding_requested_at = now(), "
            "offboarding_requested_by = 'op', "
            "offboarding_due_at = now() + interval '30 days'",
            "offboarding",
        ),
        (
            "UPDATE brands SET publishing_paused_at = :now, "
            "publishing_paused_by = 'admin'",
            "crisis",
        ),
    ],
)
def test_the_hold_a_reply_s_notice_names_is_the_one_the_publisher_applies(
    client, signed_in, state, hold
) -> None:
    # console_status.SELECT_REPLY_HOLDS restates publishing.CLAIM_DUE's brand
    # conditions; this pins the two together, so a pause added to one and not
    # the other fails here rather than misleading the person who replied.
    current = runtime_module.current()
    reply_under(client, *((state,) if isinstance(state, str) else state))
    with current.database.transaction() as tx:
        reply_id = tx.scalar("SELECT id FROM posts WHERE in_reply_to IS NOT NULL")
        named = console_status.reply_hold(
            tx, brand_id=signed_in["id"], now=current.clock.now()
        )

    claimed, _, _ = publishing._claim(current, current.clock.now())

    assert named == hold
    # A crisis pause is named, but it lets replies go.
    assert (reply_id in [row["id"] for row in claimed]) == (hold in (None, "crisis"))


def test_a_replys_page_says_an_empty_time_sends_it_at_the_next_publish_run(
    client, signed_in
) -> None:
    # A reply takes no slot: scheduled with no time, it is due at once.
    current = runtime_module.current()
    summoned = store_mention(current, text="@testgoods is it in stock?", priority=2)
    token = csrf_of(client, "/console/inbox")
    client.post(
        f"/console/mentions/{summoned}/reply",
        data={"csrf": token, "text": "Yes, it ships today."},
    )
    with current.database.transaction() as tx:
        reply_id = tx.scalar("SELECT id FROM posts WHERE in_reply_to IS NOT NULL")

    page = text_of(client.get(f"/console/posts/{reply_id}"))

    assert "(empty: the next publish run)" in page
    assert "next free slot" not in page
    assert 'id="slot"' not in page


def test_the_status_page_names_held_posts_and_the_months_x_spend(
    client, signed_in
) -> None:
    post_id = signed_in["posts"][0]
    current = runtime_module.current()
    with current.database.transaction() as tx:
        tx.execute(
            "UPDATE posts SET state = 'held', failure_reason = 'account disconnected'"
            " WHERE id = :id",
            id=post_id,
        )

    page = text_of(client.get("/console/status"))

    assert f"/console/posts/{post_id}" in page
    assert "<strong>held</strong>, account disconnected" in page
    assert "X spend in 2026-03" in page and "no budget set" in page
    assert "Not configured: captions use the template engine." in page


@pytest.mark.parametrize(
    ("environ", "problem"),
    [
        ({"CARTCAST_CONSOLE_SECRET": "too-short"}, "at least 32 characters"),
        ({"CARTCAST_CONSOLE_SESSION_MIN": "10081"}, "at most 10080 minutes"),
        ({"CARTCAST_CONSOLE_SESSION_MIN": "0"}, "positive"),
    ],
)
def test_the_console_settings_are_bounded(environ, problem) -> None:
    from cartcast import settings
    from cartcast.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match=problem):
        settings.load(environ)


@pytest.mark.parametrize(
    "back", ["https://evil.example/", "//evil.example/", "/console/\\evil", "/v1/x"]
)
def test_a_form_never_redirects_off_the_console(client, signed_in, back) -> None:
    post_id = signed_in["posts"][0]
    token = csrf_of(client)

    answer = client.post(
        f"/console/posts/{post_id}/approve", data={"csrf": token, "back": back}
    )

    assert answer.headers["Location"] == "/console/approvals?notice=approved"


def test_a_sign_in_posted_from_another_site_is_refused(client, brand) -> None:
    answer = client.post(
        "/console/signin",
        data={"key": brand["key"]},
        headers={"Origin": "https://evil.example"},
    )

    assert answer.status_code == 400
    assert "Set-Cookie" not in answer.headers


def test_a_brand_past_its_offboarding_grace_cannot_use_the_console(
    client, signed_in, clock_file
) -> None:
    # The API refuses the brand's keys once the grace period is over, swept or not
    # (offboarding.refuse_after_grace); the console must not be a way around it.
    requested = post_json(client, "/v1/brand/offboarding", {}, signed_in["key"])
    assert requested.status_code == 202, requested.get_json()
    current = runtime_module.current()
    with current.database.transaction() as tx:  # the grace is over, not yet swept
        tx.execute("UPDATE brands SET offboarding_due_at = :now", now=clock_file.now())
    fresh = make_app("api", "http").test_client()

    page = client.get("/console/inbox")
    again = sign_in(fresh, signed_in["key"])

    assert page.status_code == 303
    assert page.headers["Location"].startswith("/console/signin")
    assert again.status_code == 401
    assert "Set-Cookie" not in again.headers


def test_a_nul_character_in_a_form_is_a_400_naming_the_field(client, signed_in) -> None:
    # PostgreSQL text cannot hold NUL; the JSON API refuses it on reading the body,
    # and a form must too, instead of failing in the database with a 500.
    post_id = signed_in["posts"][0]
    mention = store_mention(runtime_module.current(), text="@testgoods in stock?")
    token = csrf_of(client, "/console/inbox")

    answers = [
        client.post(
            f"/console/posts/{post_id}/reject", data={"csrf": token, "reason": "a\0b"}
        ),
        client.post("/console/pause", data={"csrf": token, "reason": "\0"}),
        client.post(
            f"/console/mentions/{mention}/reply", data={"csrf": token, "text": "ok\0"}
        ),
    ]

    for field, answer in zip(("reason", "reason", "text"), answers, strict=True):
        assert answer.status_code == 400, (field, answer.status_code)
        assert f"Field: <code>{field}</code>" in answer.get_data(as_text=True)
    assert post_state(client, signed_in["key"], post_id) == "needs_approval"
    state = client.get("/v1/brand/pause", headers=auth(signed_in["key"])).get_json()
    assert not state["paused"]


@pytest.mark.parametrize(
    "query",
    [
        "start=0001-01-01",
        "view=month&start=0001-01-15",
        "start=9999-12-31",
        "view=month&start=9999-12-01",
    ],
)
def test_a_calendar_day_at_the_end_of_time_is_a_400(client, signed_in, query) -> None:
    # The page links the previous and the next week or month: around year 1 and
    # year 9999 those lie outside what dates can hold.
    answer = client.get(f"/console/calendar?{query}")

    assert answer.status_code == 400
    assert "Field: <code>start</code>" in answer.get_data(as_text=True)


def test_a_sign_in_posted_from_an_opaque_origin_elsewhere_is_refused(
    client, brand
) -> None:
    # A sandboxed frame or a data: page elsewhere posts with Origin "null", and so
    # does the console's own form under its no-referrer policy: what tells them
    # apart is the browser's Sec-Fetch-Site.
    forged = client.post(
        "/console/signin",
        data={"key": brand["key"]},
        headers={"Origin": "null", "Sec-Fetch-Site": "cross-site"},
    )
    own = client.post(
        "/console/signin",
        data={"key": brand["key"]},
        headers={"Origin": "null", "Sec-Fetch-Site": "same-origin"},
    )

    assert forged.status_code == 400
    assert "Set-Cookie" not in forged.headers
    assert own.status_code == 303


def test_a_refused_product_is_named_by_the_line_its_row_starts_on(
    client, signed_in
) -> None:
    # Shopify quotes a Body (HTML) with line breaks in it; the product's row starts
    # where its Handle is, which is the line to look at in the file.
    csv_text = (
        "Handle,Title,Body (HTML),Variant Price\r\n"
        'lamp,Lamp,"<p>Warm light.</p>\r\n<p>Brass.</p>\r\n",12.00\r\n'
        "\r\n"
        'vase,Vase,"<p>Tall.</p>\r\n<p>Glazed.</p>",not-a-price\r\n'
    )
    token = csrf_of(client, "/console/catalog")

    answer = upload(client, token, csv_text.encode(), "products_export.csv")

    page = text_of(answer)
    assert answer.status_code == 200, page
    assert re.search(r"<tr><td>6</td><td>vase</td>", page), page


def test_a_csv_of_one_product_too_many_is_refused_whole(client, signed_in) -> None:
    from cartcast import catalog_imports

    too_many = catalog_imports.PRODUCTS_MAX + 1
    rows = [f"p{number},Product {number},1.00" for number in range(too_many)]
    csv_text = "Handle,Title,Variant Price\r\n" + "\r\n".join(rows) + "\r\n"
    token = csrf_of(client, "/console/catalog")

    answer = upload(client, token, csv_text.encode(), "products_export.csv")

    assert answer.status_code == 400, text_of(answer)[:300]
    assert "at most 1000 products" in text_of(answer)


def test_the_status_page_names_only_an_x_pause_that_holds_the_brand_now(
    client, signed_in, clock_file
) -> None:
    # The shared app's pause row stays after its window ends, and a brand on its
    # own X app is not held by it; the brand's own X pause holds it too.
    now = clock_file.now()
    current = runtime_module.current()

    def app_limit() -> str:
        page = text_of(client.get("/console/status"))
        return re.search(r"<dt>X rate limit</dt><dd>([^<]*)", page).group(1)

    with current.database.transaction() as tx:
        tx.execute(
            "INSERT INTO x_app_pauses (app, posts_paused_until) VALUES ('shared', :at)",
            at=now - dt.timedelta(minutes=5),
        )
    ended = app_limit()
    with current.database.transaction() as tx:
        tx.execute("UPDATE brands SET x_posts_paused_until = :at", at=now + HOUR)
    own = app_limit()

    assert ended == "not limited"
    assert own.startswith("posting paused until")


def test_the_brands_export_holds_the_variants_and_images_of_its_products(
    client, signed_in
) -> None:
    # GET /v1/brand/export is the brand's data to take away (decision 0032); the
    # variants and images a Shopify import keeps (sql/035) are the brand's too.
    import zipfile

    csv_text = (
        "Handle,Title,Option1 Value,Variant SKU,Variant Price,Image Src\r\n"
        "lamp,Lamp,Small,LAMP-S,12.00,https://cdn.example.com/lamp.jpg\r\n"
        "lamp,,Large,LAMP-L,18.00,https://cdn.example.com/lamp-2.jpg\r\n"
    )
    token = csrf_of(client, "/console/catalog")
    assert upload(client, token, csv_text.encode(), "p.csv").status_code == 200

    answer = client.get("/v1/brand/export", headers=auth(signed_in["key"]))

    assert answer.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(answer.get_data()))
    manifest = json.loads(archive.read("manifest.json"))
    variants = [
        json.loads(line)
        for line in archive.read("product_variants.jsonl").decode().splitlines()
    ]
    assert [variant["sku"] for variant in variants] == ["LAMP-S", "LAMP-L"]
    assert manifest["files"]["product_images.jsonl"]["rows"] == 2
    # Read a row a page, the same rows.
    from cartcast import data_export

    current = runtime_module.current()
    chunks = data_export.stream_archive(
        current.database, brand_id=signed_in["id"], now=START, page_rows=1
    )
    paged = zipfile.ZipFile(io.BytesIO(b"".join(chunks)))
    for name in ("product_variants.jsonl", "product_images.jsonl"):
        assert paged.read(name) == archive.read(name), name


def test_an_approved_post_waits_on_the_approvals_page_for_its_time(
    client, signed_in
) -> None:
    # Approved from the list, a post leaves the drafts and is on no calendar day
    # until it has a time: the page must still lead to it, or it is lost.
    post_id, token = approved_post(client, signed_in)

    page = client.get("/console/approvals").get_data(as_text=True)

    waiting = page.split('id="approved-heading"', 1)[1]
    assert f'href="/console/posts/{post_id}"' in waiting
    assert signed_in["posts"][1] not in waiting


# The README's role table, form by form: what each role may post.
NOBODY = "00000000-0000-4000-8000-000000000000"
FORMS = {
    "approve": [f"/console/posts/{NOBODY}/approve", f"/console/posts/{NOBODY}/reject"],
    "edit": [f"/console/posts/{NOBODY}/edit", "/console/catalog/captions"],
    "schedule": [f"/console/posts/{NOBODY}/schedule"],
    "answer": [
        f"/console/mentions/{NOBODY}/reply",
        f"/console/mentions/{NOBODY}/handle",
    ],
    "pause": ["/console/pause", "/console/resume"],
    "import": ["/console/catalog/import"],
}
ALLOWED = {
    "admin": set(FORMS),
    # Each role may post what its key may call through the API: an approver
    # may import the catalog, as POST /v1/products lets it.
    "approver": {"approve", "edit", "schedule", "answer", "pause", "import"},
    "editor": {"edit", "schedule", "answer", "import"},
    "viewer": set(),
}


@pytest.mark.parametrize("role", sorted(ALLOWED))
def test_each_role_may_post_the_forms_its_row_of_the_readme_allows(
    client, brand, role
) -> None:
    sign_in(client, brand["key"] if role == "admin" else add_key(brand["id"], role))
    token = csrf_of(client)

    refused = {
        permission
        for permission, paths in FORMS.items()
        for path in paths
        if client.post(path, data={"csrf": token}).status_code == 403
    }

    assert refused == set(FORMS) - ALLOWED[role]


def test_a_form_past_the_body_limit_is_a_413_naming_it_with_nothing_changed(
    client, signed_in
) -> None:
    post_id = signed_in["posts"][0]
    token = csrf_of(client)
    three_mb = "x" * (3 * 1000 * 1000)

    answer = client.post(
        f"/console/posts/{post_id}/reject",
        data={"csrf": token, "reason": three_mb},
    )

    assert answer.status_code == 413, text_of(answer)
    assert "2 MiB" in text_of(answer)
    assert post_state(client, signed_in["key"], post_id) == "needs_approval"


@pytest.mark.parametrize(
    ("path", "limit"),
    [
        ("/console/posts/{post_id}/reject", 2 * 1024 * 1024),
        ("/console/catalog/import", 8 * 1024 * 1024),
    ],
)
@pytest.mark.parametrize("chunked", [False, True])
def test_a_form_past_its_limit_is_refused_before_it_is_read_whole(
    client, signed_in, path, limit, chunked
) -> None:
    """A declared length is refused with none of it kept; an endless chunked
    body is kept only up to the limit and read away no further than the cap."""
    stream = CountingStream()
    # As gunicorn hands a chunked body over: no length, the stream ends itself.
    sent_as = (
        {"HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input_terminated": True}
        if chunked
        else {"CONTENT_LENGTH": str(limit + 1)}
    )

    answer = client.post(
        path.format(post_id=signed_in["posts"][0]),
        content_type="application/x-www-form-urlencoded",
        environ_overrides={"wsgi.input": stream, **sent_as},
    )

    assert answer.status_code == 413, text_of(answer)
    assert f"{limit // (1024 * 1024)} MiB" in text_of(answer)
    assert stream.bytes_read <= limit + 1 + web.DISCARD_BYTES_MAX


def test_a_cut_short_upload_is_a_400_saying_so_not_a_missing_token(
    client, signed_in
) -> None:
    token = csrf_of(client, "/console/catalog")
    whole = multipart_body({"csrf": token.encode(), "pasted": MUG})
    before = client.get("/v1/products", headers=auth(signed_in["key"])).get_json()

    answer = client.post(
        "/console/catalog/import",
        data=whole[: len(whole) - 30],
        content_type=f"multipart/form-data; boundary={BOUNDARY}",
    )

    assert answer.status_code == 400, text_of(answer)
    assert "security token" not in text_of(answer)
    assert "cut short or malformed" in text_of(answer)
    after = client.get("/v1/products", headers=auth(signed_in["key"])).get_json()
    assert after == before
