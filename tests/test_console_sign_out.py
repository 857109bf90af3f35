"""Signing out of the console ends that session on the server (decision 0089).

A browser's cookie is copied before it signs out, as a tester did: the copy must be
refused afterwards, the way an expired one is, while another sign-in with the same
key goes on working. Each test client is one browser with its own cookie jar.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac

from cartcast import runtime as runtime_module
from tests.conftest import START
from tests.helpers import auth, post_json
from tests.test_console import SECRET, csrf_of, post_state, sign_in, text_of
from tests.test_console import brand as brand  # noqa: F401 (fixture)
from tests.test_console import client as client  # noqa: F401 (fixture)
from tests.test_console import signed_in as signed_in  # noqa: F401 (fixture)

COOKIE = "cartcast_console"
ENDED_ROWS = "SELECT count(*) FROM console_sessions_ended"


def cookie_of(browser) -> str:
    return browser.get_cookie(COOKIE, path="/console").value


def send_cookie(browser, value: str) -> None:
    browser.set_cookie(COOKIE, value, path="/console")


def sign_out(browser):
    return browser.post("/console/signout", data={"csrf": csrf_of(browser)})


def ended_rows() -> int:
    with runtime_module.current().database.transaction() as tx:
        return tx.scalar(ENDED_ROWS)


def test_a_cookie_copied_before_signing_out_is_refused_after_it(
    client,  # noqa: F811
    signed_in,  # noqa: F811
) -> None:
    copied = cookie_of(client)
    signed_out = sign_out(client)
    send_cookie(client, copied)

    page = client.get("/console/approvals")

    assert signed_out.status_code == 303
    assert signed_out.headers["Location"] == "/console/signin?notice=signed_out"
    # The same answer as an expired session's: to the sign-in, saying so.
    assert page.status_code == 303
    assert page.headers["Location"] == "/console/signin?notice=expired"
    assert "Max-Age=0" in page.headers["Set-Cookie"]
    notice = text_of(client.get(page.headers["Location"]))
    assert "Your session ended" in notice and "signed out" in notice


def test_a_form_sent_with_a_signed_out_cookie_changes_nothing(
    client,  # noqa: F811
    signed_in,  # noqa: F811
) -> None:
    post_id = signed_in["posts"][0]
    copied, token = cookie_of(client), csrf_of(client)
    sign_out(client)
    send_cookie(client, copied)

    answer = client.post(f"/console/posts/{post_id}/approve", data={"csrf": token})

    assert answer.status_code == 401
    assert "signed out" in text_of(answer)
    assert "Max-Age=0" in answer.headers["Set-Cookie"]
    assert post_state(client, signed_in["key"], post_id) == "needs_approval"


def test_another_sign_in_with_the_same_key_goes_on_after_one_signs_out(
    client,  # noqa: F811
    brand,  # noqa: F811
) -> None:
    laptop, phone = client, client.application.test_client()
    sign_in(laptop, brand["key"])
    sign_in(phone, brand["key"])

    sign_out(laptop)

    post_id = brand["posts"][0]
    approved = phone.post(
        f"/console/posts/{post_id}/approve", data={"csrf": csrf_of(phone)}
    )
    assert laptop.get("/console/approvals").status_code == 303
    assert phone.get("/console/approvals").status_code == 200
    assert approved.status_code == 303
    assert post_state(client, brand["key"], post_id) == "approved"


def test_signing_in_again_after_signing_out_is_a_new_session(
    client,  # noqa: F811
    signed_in,  # noqa: F811
) -> None:
    old = cookie_of(client)
    sign_out(client)

    again = sign_in(client, signed_in["key"])

    assert again.status_code == 303
    assert cookie_of(client) != old
    assert client.get("/console/approvals").status_code == 200


def test_a_sign_out_without_its_token_is_refused_and_ends_nothing(
    client,  # noqa: F811
    signed_in,  # noqa: F811
) -> None:
    missing = client.post("/console/signout")
    forged = client.post("/console/signout", data={"csrf": "x" * 64})

    assert missing.status_code == forged.status_code == 400
    assert "security token" in text_of(forged)
    assert "Set-Cookie" not in forged.headers
    assert client.get("/console/approvals").status_code == 200
    assert ended_rows() == 0


def test_a_cookie_issued_before_sessions_could_end_is_signed_out_like_any(
    client,  # noqa: F811
    brand,  # noqa: F811
) -> None:
    # Made as the console made every cookie before sql/056: the key's hash, a
    # random nonce and the expiry, signed. The nonce is the session's id.
    key_hash = hashlib.sha256(brand["key"].encode()).hexdigest()
    expires = int((START + dt.timedelta(hours=8)).timestamp())
    payload = f"{key_hash}.earlier-nonce-0123456789.{expires}"
    mac = hmac.new(SECRET.encode(), payload.encode(), hashlib.sha256).digest()
    issued_before = f"{payload}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"
    send_cookie(client, issued_before)
    assert client.get("/console/approvals").status_code == 200

    sign_out(client)
    send_cookie(client, issued_before)

    assert client.get("/console/approvals").headers["Location"] == (
        "/console/signin?notice=expired"
    )


def test_revoking_the_key_through_the_api_ends_a_copied_cookies_session(
    client,  # noqa: F811
    brand,  # noqa: F811
) -> None:
    made = post_json(
        client, "/v1/keys", {"name": "temp", "role": "editor"}, brand["key"]
    ).get_json()
    sign_in(client, made["api_key"])
    copied = cookie_of(client)

    revoked = client.post(
        f"/v1/keys/{made['key']['id']}/revoke", headers=auth(brand["key"])
    )
    send_cookie(client, copied)
    page = client.get("/console/approvals")

    assert revoked.status_code == 200
    assert page.status_code == 303
    assert page.headers["Location"] == "/console/signin?notice=expired"


def test_a_sign_out_is_kept_until_its_session_would_have_expired(
    client,  # noqa: F811
    signed_in,  # noqa: F811
    clock_file,
) -> None:
    from tests.test_data_duties import tick

    copied = cookie_of(client)
    sign_out(client)
    send_cookie(client, copied)
    # An hour before the session's 8 hours are up the copy is still refused, and
    # the hourly rollup keeps what refuses it.
    clock_file.set(START + dt.timedelta(hours=7))
    assert tick("rollup_kpis", clock_file.now()).status_code == 200
    kept = ended_rows()
    assert client.get("/console/approvals").status_code == 303

    clock_file.set(START + dt.timedelta(hours=8))
    rolled = tick("rollup_kpis", clock_file.now())

    assert kept == 1
    assert rolled.status_code == 200
    assert ended_rows() == 0


def test_the_next_sign_out_prunes_sign_outs_past_their_expiry(
    client,  # noqa: F811
    signed_in,  # noqa: F811
    clock_file,
) -> None:
    sign_out(client)
    clock_file.set(START + dt.timedelta(hours=9))
    sign_in(client, signed_in["key"])

    sign_out(client)

    assert ended_rows() == 1
