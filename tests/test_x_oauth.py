"""Connecting a brand's X account with OAuth 2.0 and PKCE, through the X sandbox.

The flow runs against infra/x_sandbox.py over HTTP: the authorize redirect is read
from the sandbox's 302 (the redirect URI is a closed loopback port nobody calls),
the code is exchanged at its token endpoint, and posts go out with the issued token.
Tokens are sealed under a key file made for each test; the cloud key path reads the
key through google-cloud-secret-manager's REST client from a loopback stub.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from cartcast import connections, publishing, token_vault, x_oauth
from cartcast import runtime as runtime_module
from cartcast.errors import ConfigurationError, Forbidden, InvalidRequest
from tests.conftest import REPO
from tests.helpers import (
    ALPHA,
    BETA,
    dead_loopback_port,
    make_brand,
    printed_by_a_fresh_functions_interpreter,
    states,
)

CLIENT_ID = "cartcast-test-client"
CLIENT_SECRET = "cartcast-test-secret"
# A hold on X's answer, a lock wait to appear, a thread to end: each is bounded, so
# a regression fails the test instead of hanging the run.
WAIT_S = 20.0


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "token.key"
    token_vault.create_key_file(path)
    return path


@pytest.fixture
def oauth_runtime(x_runtime, x_sandbox, key_file):
    """The test runtime wired to the sandbox's OAuth endpoints, tokens sealed."""
    x_sandbox.configure_oauth(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    x_sandbox.approve_as(ALPHA["user_id"])
    x_runtime.settings = dataclasses.replace(
        x_runtime.settings,
        x_client_id=CLIENT_ID,
        x_client_secret=CLIENT_SECRET,
        x_oauth_redirect_uri=f"http://127.0.0.1:{dead_loopback_port()}/cb",
        x_authorize_url=x_sandbox.base_url + "/i/oauth2/authorize",
        token_key_file=str(key_file),
    )
    return x_runtime


def approve(authorize_url: str) -> dict[str, str]:
    """Open X's authorize URL as the person's browser would; return what X sends
    back to the redirect URI (state and code)."""
    answer = requests.get(authorize_url, allow_redirects=False, timeout=5)
    assert answer.status_code == 302
    return dict(parse_qsl(urlsplit(answer.headers["location"]).query))


def connect(runtime, brand_id: str) -> dict:
    with runtime.database.transaction() as tx:
        started = x_oauth.start_authorization(
            tx, runtime, brand_id=brand_id, now=runtime.clock.now()
        )
    callback = approve(started["authorize_url"])
    with runtime.database.transaction() as tx:
        return x_oauth.finish_authorization(
            tx, runtime, callback, now=runtime.clock.now()
        )


def brand_row(runtime, brand_id: str) -> dict:
    with runtime.database.transaction() as tx:
        return tx.one(
            "SELECT x_access_token, x_refresh_token, x_token_expires_at, x_user_id, "
            "x_username, x_disconnected_at FROM brands WHERE id = :id",
            id=brand_id,
        )


def grants(sandbox) -> dict[str, int]:
    return sandbox.snapshot()["oauth"]["grants"]


# --- the flow ---------------------------------------------------------------------


def test_the_authorize_url_asks_for_the_scopes_with_an_s256_challenge(
    oauth_runtime,
) -> None:
    brand_id = make_brand(oauth_runtime, "alpha", None, products=1)

    with oauth_runtime.database.transaction() as tx:
        started = x_oauth.start_authorization(
            tx, oauth_runtime, brand_id=brand_id, now=oauth_runtime.clock.now()
        )

    query = dict(parse_qsl(urlsplit(started["authorize_url"]).query))
    assert query["scope"] == (
        "tweet.read tweet.write users.read media.write offline.access"
    )
    assert query["code_challenge_method"] == "S256"
    assert query["response_type"] == "code"
    assert query["client_id"] == CLIENT_ID
    assert len(query["state"]) >= 40 and len(query["code_challenge"]) == 43


def test_the_flow_connects_the_account_and_posts_go_out_with_the_issued_token(
    oauth_runtime, x_sandbox, capfd, caplog
) -> None:
    brand_id = make_brand(oauth_runtime, "alpha", None, products=1)

    connected = connect(oauth_runtime, brand_id)
    counts = publishing.publish_due(
        oauth_runtime, as_of=oauth_runtime.clock.now() + dt.timedelta(days=7)
    )

    assert connected["connected"] and connected["x_user_id"] == ALPHA["user_id"]
    assert "offline.access" in connected["scopes"]
    assert counts["published"] == 1
    assert [p["user_id"] for p in x_sandbox.snapshot()["posts"]] == [ALPHA["user_id"]]
    row = brand_row(oauth_runtime, brand_id)
    assert row["x_username"] == ALPHA["username"]
    assert row["x_token_expires_at"] == oauth_runtime.clock.now() + dt.timedelta(
        hours=2
    )
    # Never logged: neither token appears in any log line or output.
    logged = "".join(capfd.readouterr()) + caplog.text
    for stored in (row["x_access_token"], row["x_refresh_token"]):
        assert oauth_runtime.open_token(stored) not in logged


def test_a_public_client_sends_its_id_instead_of_a_secret(
    oauth_runtime, x_sandbox
) -> None:
    x_sandbox.configure_oauth(client_id=CLIENT_ID)
    oauth_runtime.settings = dataclasses.replace(
        oauth_runtime.settings, x_client_secret=None
    )
    brand_id = make_brand(oauth_runtime, "alpha", None, products=1)

    assert connect(oauth_runtime, brand_id)["connected"]


def test_a_forged_expired_reused_or_other_brands_state_changes_nothing(
    oauth_runtime,
) -> None:
    alpha = make_brand(oauth_runtime, "alpha", None, products=1)
    beta = make_brand(oauth_runtime, "beta", None, products=1)
    with oauth_runtime.database.transaction() as tx:
        started = x_oauth.start_authorization(
            tx, oauth_runtime, brand_id=alpha, now=oauth_runtime.clock.now()
        )
    callback = approve(started["authorize_url"])

    def finish(params, **kwargs):
        with oauth_runtime.database.transaction() as tx:
            return x_oauth.finish_authorization(
                tx, oauth_runtime, params, now=oauth_runtime.clock.now(), **kwargs
            )

    with pytest.raises(x_oauth.CallbackRefused, match="unknown") as forged:
        finish({**callback, "state": "forged-state"})
    with pytest.raises(x_oauth.CallbackRefused, match="another brand") as other:
        finish(callback, brand_id=beta)
    oauth_runtime.clock.advance(dt.timedelta(minutes=11))
    with pytest.raises(x_oauth.CallbackRefused, match="expired") as expired:
        finish(callback)

    refusals = [forged.value, other.value, expired.value]
    assert [r.error.field for r in refusals] == ["state"] * 3
    assert [type(r.error) for r in refusals] == [InvalidRequest, Forbidden] + [
        InvalidRequest
    ]
    # The state names the brand it was issued for; a forged one names none.
    assert [r.brand_id for r in refusals] == [None, alpha, alpha]
    assert [r.reason for r in refusals] == ["unknown", "another_brand", "expired"]
    assert brand_row(oauth_runtime, alpha)["x_access_token"] is None
    assert brand_row(oauth_runtime, beta)["x_access_token"] is None

    oauth_runtime.clock.advance(dt.timedelta(minutes=-11))
    assert finish(callback, brand_id=alpha)["connected"]
    with pytest.raises(x_oauth.CallbackRefused, match="already used") as used:
        finish(callback)
    assert used.value.reason == "used"


def test_a_missing_code_is_a_400_naming_it(oauth_runtime) -> None:
    brand_id = make_brand(oauth_runtime, "alpha", None, products=1)
    with oauth_runtime.database.transaction() as tx:
        started = x_oauth.start_authorization(
            tx, oauth_runtime, brand_id=brand_id, now=oauth_runtime.clock.now()
        )
    state = approve(started["authorize_url"])["state"]

    with pytest.raises(InvalidRequest) as missing:
        with oauth_runtime.database.transaction() as tx:
            x_oauth.finish_authorization(
                tx, oauth_runtime, {"state": state}, now=oauth_runtime.clock.now()
            )

    assert missing.value.field == "code"


def test_an_account_connected_to_another_brand_is_a_409(oauth_runtime) -> None:
    alpha = make_brand(oauth_runtime, "alpha", None, products=1)
    beta = make_brand(oauth_runtime, "beta", None, products=1)
    connect(oauth_runtime, alpha)

    with pytest.raises(InvalidRequest) as taken:
        connect(oauth_runtime, beta)

    assert taken.value.status == 409 and taken.value.field == "x_user_id"
    # Beta's admin learns the account is taken, not which of the deployment's
    # other brands holds it.
    assert "alpha" not in str(taken.value)
    assert brand_row(oauth_runtime, beta)["x_access_token"] is None


# --- sealed at rest ---------------------------------------------------------------


def test_tokens_are_unreadable_in_the_database_without_the_key(
    oauth_runtime, tmp_path
) -> None:
    brand_id = make_brand(oauth_runtime, "alpha", None, products=1)
    connect(oauth_runtime, brand_id)

    row = brand_row(oauth_runtime, brand_id)
    access = oauth_runtime.open_token(row["x_access_token"])
    refresh = oauth_runtime.open_token(row["x_refresh_token"])
    other_key = tmp_path / "other.key"
    token_vault.create_key_file(other_key)
    stranger = token_vault.Vault(token_vault.read_key_file(other_key))

    for stored, plain in (
        (row["x_access_token"], access),
        (row["x_refresh_token"], refresh),
    ):
        assert stored.startswith("xtk1.") and plain not in stored
        with pytest.raises(ConfigurationError):
            stranger.open(stored)
    tampered = (
        row["x_access_token"][:-2]
        + ("A" if row["x_access_token"][-2] != "A" else "B")
        + row["x_access_token"][-1]
    )
    with pytest.raises(ConfigurationError, match="does not open"):
        oauth_runtime.token_vault().open(tampered)


def test_the_demo_key_file_is_made_private_and_never_replaced(tmp_path) -> None:
    path = tmp_path / "var" / "token.key"

    made = token_vault.create_key_file(path)
    first = path.read_text()
    again = token_vault.create_key_file(path)

    assert made and not again and path.read_text() == first
    assert path.stat().st_mode & 0o777 == 0o600
    path.chmod(0o644)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        token_vault.read_key_file(path)


def run_seal_tokens(*arguments: str) -> subprocess.CompletedProcess:
    """Run `python -m infra.seal_tokens` from the repository with no settings."""
    return subprocess.run(
        [sys.executable, "-m", "infra.seal_tokens", *arguments],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"PATH": os.environ.get("PATH", "")},
    )


def test_seal_tokens_help_says_what_it_does_and_seals_nothing() -> None:
    # No database is set: a run would fail, so a 0 says nothing ran.
    helped = run_seal_tokens("--help")

    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith("usage:") and "Seal every X token" in helped.stdout


def test_seal_tokens_without_settings_names_them_in_one_line() -> None:
    refused = run_seal_tokens()

    assert refused.returncode == 2
    assert "Traceback" not in refused.stderr
    assert "DATABASE_URL or CLOUD_SQL_INSTANCE is required" in refused.stderr


def test_plaintext_tokens_from_before_are_sealed_and_still_work(
    oauth_runtime, x_sandbox
) -> None:
    # Stored before sealing existed: a hand-set token, in plaintext.
    brand_id = make_brand(oauth_runtime, "alpha", ALPHA, products=1)
    with oauth_runtime.database.transaction() as tx:
        tx.execute(
            "UPDATE brands SET x_access_token = 'token-alpha' WHERE id = :id",
            id=brand_id,
        )

    sealed = x_oauth.seal_plaintext_tokens(
        oauth_runtime.database, oauth_runtime.token_vault()
    )
    again = x_oauth.seal_plaintext_tokens(
        oauth_runtime.database, oauth_runtime.token_vault()
    )
    counts = publishing.publish_due(
        oauth_runtime, as_of=oauth_runtime.clock.now() + dt.timedelta(days=7)
    )

    stored = brand_row(oauth_runtime, brand_id)["x_access_token"]
    assert (sealed, again) == (1, 0)
    assert stored.startswith("xtk1.") and "token-alpha" not in stored
    assert counts["published"] == 1


def test_a_token_set_through_patch_is_sealed_when_a_key_is_configured(
    oauth_runtime,
) -> None:
    from cartcast import brands

    brand_id = make_brand(oauth_runtime, "alpha", None, products=1)
    with oauth_runtime.database.transaction() as tx:
        brands.update_brand(
            tx,
            brand_id,
            {"x_access_token": "token-alpha", "x_user_id": ALPHA["user_id"]},
            role="admin",
            environment="local",
            now=oauth_runtime.clock.now(),
            seal=oauth_runtime.seal_token,
        )

    row = brand_row(oauth_runtime, brand_id)
    assert row["x_access_token"].startswith("xtk1.")
    assert row["x_token_expires_at"] is None and row["x_refresh_token"] is None
    assert oauth_runtime.open_token(row["x_access_token"]) == "token-alpha"


# --- refreshing -------------------------------------------------------------------


def test_a_token_near_expiry_is_refreshed_before_posting_and_the_old_one_is_void(
    oauth_runtime, x_sandbox
) -> None:
    brand_id = make_brand(oauth_runtime, "alpha", None, products=1)
    connect(oauth_runtime, brand_id)
    before = brand_row(oauth_runtime, brand_id)
    old_refresh = oauth_runtime.open_token(before["x_refresh_token"])

    oauth_runtime.clock.advance(dt.timedelta(hours=2) - dt.timedelta(seconds=60))
    counts = publishing.publish_due(
        oauth_runtime, as_of=oauth_runtime.clock.now() + dt.timedelta(days=7)
    )

    after = brand_row(oauth_runtime, brand_id)
    assert counts["published"] == 1
    assert grants(x_sandbox)["refresh_token"] == 1
    assert after["x_access_token"] != before["x_access_token"]
    assert after["x_token_expires_at"] > before["x_token_expires_at"]
    with pytest.raises(x_oauth.TokenRefused):
        x_oauth.request_tokens(
            oauth_runtime.settings,
            {"grant_type": "refresh_token", "refresh_token": old_refresh},
        )


def test_eight_publishers_crossing_the_expiry_refresh_once_and_all_post(
    oauth_runtime, x_sandbox
) -> None:
    # Arrange: eight due posts, one per publisher (batch of one), and a token
    # endpoint slow enough that every publisher arrives while the refresh is out.
    oauth_runtime.settings = dataclasses.replace(
        oauth_runtime.settings, publish_batch_size=1, publish_workers=1
    )
    brand_id = make_brand(oauth_runtime, "alpha", None, products=8)
    connect(oauth_runtime, brand_id)
    oauth_runtime.clock.advance(dt.timedelta(hours=2) - dt.timedelta(seconds=60))
    x_sandbox.add_fault(method="POST", path_prefix="/2/oauth2/token", delay_s=0.3)
    due = oauth_runtime.clock.now() + dt.timedelta(days=7)
    # Bounded waits: a publisher stuck on a lock fails the test, never hangs it.
    start = threading.Barrier(8, timeout=WAIT_S)
    results: list[dict] = []
    errors: list[BaseException] = []

    def publisher() -> None:
        try:
            start.wait()
            results.append(publishing.publish_due(oauth_runtime, as_of=due))
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    # Act
    threads = [threading.Thread(target=publisher, daemon=True) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S)

    # Assert
    assert [thread for thread in threads if thread.is_alive()] == []
    assert errors == []
    assert grants(x_sandbox)["refresh_token"] == 1
    assert sum(r["published"] for r in results) == 8
    assert brand_row(oauth_runtime, brand_id)["x_disconnected_at"] is None
    assert states(oauth_runtime, brand_id) == ["published"] * 8


# What the foreign key check of a row naming the brand takes on it: a post's
# change logs itself (post_events) with one.
KEY_SHARE_NOWAIT = "SELECT id FROM brands WHERE id = :brand_id FOR KEY SHARE NOWAIT"


def test_a_refresh_waiting_on_x_leaves_the_brand_to_rows_that_name_it(
    oauth_runtime, x_sandbox
) -> None:
    # Arrange: X holds its answer to the refresh, so the refresh keeps the brand's
    # tokens locked while a post's change arrives.
    brand_id = make_brand(oauth_runtime, "alpha", None, products=1)
    connect(oauth_runtime, brand_id)
    oauth_runtime.clock.advance(dt.timedelta(hours=2) - dt.timedelta(seconds=60))
    x_sandbox.add_fault(method="POST", path_prefix="/2/oauth2/token", hold=True)
    refreshed: list[str | None] = []
    failures: list[BaseException] = []

    def refresh() -> None:
        try:
            refreshed.append(x_oauth.refresh_tokens(oauth_runtime, brand_id=brand_id))
        except BaseException as error:  # noqa: BLE001 - asserted below
            failures.append(error)

    def refresh_asked() -> bool:
        asked = x_sandbox.snapshot()["requests"].get("POST /2/oauth2/token", {})
        return asked.get("count", 0) == 2  # the connection's exchange, the refresh

    refresher = threading.Thread(target=refresh, daemon=True)
    try:
        refresher.start()
        wait_until(refresh_asked, "the refresh to reach X")

        # Act: meanwhile, a change of one of the brand's posts logs itself.
        with oauth_runtime.database.transaction() as edit:
            logged = edit.scalar(KEY_SHARE_NOWAIT, brand_id=brand_id)
    finally:
        x_sandbox.release_answers()
        refresher.join(WAIT_S)

    # Assert: it did not wait for X's answer, and the refresh still went through.
    assert str(logged) == brand_id
    assert not refresher.is_alive() and failures == []
    assert grants(x_sandbox)["refresh_token"] == 1
    assert refreshed == [brand_row(oauth_runtime, brand_id)["x_access_token"]]


def test_disconnecting_leaves_the_brand_to_rows_that_name_it(oauth_runtime) -> None:
    # Arrange: the disconnection holds the brand's tokens to its commit.
    brand_id = make_brand(oauth_runtime, "alpha", None, products=1)
    connect(oauth_runtime, brand_id)
    with oauth_runtime.database.transaction() as disconnecting:
        x_oauth.disconnect_account(
            disconnecting,
            oauth_runtime,
            brand_id=brand_id,
            now=oauth_runtime.clock.now(),
        )

        # Act: meanwhile, a change of one of the brand's posts logs itself.
        with oauth_runtime.database.transaction() as edit:
            logged = edit.scalar(KEY_SHARE_NOWAIT, brand_id=brand_id)

    # Assert: it did not wait for the disconnection.
    assert str(logged) == brand_id


def test_x_refusing_the_token_leaves_the_brand_to_rows_that_name_it(
    oauth_runtime,
) -> None:
    # Arrange: X's refusal of the token disconnects the account, holding the
    # brand's token to the refused post's commit.
    brand_id = make_brand(oauth_runtime, "alpha", None, products=1)
    connect(oauth_runtime, brand_id)
    refused_token = brand_row(oauth_runtime, brand_id)["x_access_token"]
    with oauth_runtime.database.transaction() as disconnecting:
        held_reason = connections.disconnect(
            disconnecting,
            brand_id=brand_id,
            status=401,
            detail="Unauthorized",
            token=refused_token,
            now=oauth_runtime.clock.now(),
        )

        # Act: meanwhile, a change of one of the brand's posts logs itself.
        with oauth_runtime.database.transaction() as edit:
            logged = edit.scalar(KEY_SHARE_NOWAIT, brand_id=brand_id)

    # Assert: it did not wait for the disconnection, which still took place.
    assert str(logged) == brand_id
    assert held_reason is not None
    assert brand_row(oauth_runtime, brand_id)["x_disconnected_at"] is not None


def test_a_refused_refresh_disconnects_holds_and_alerts_once_and_reconnecting_resumes(
    oauth_runtime, x_sandbox
) -> None:
    brand_id = make_brand(oauth_runtime, "alpha", None, products=3)
    connect(oauth_runtime, brand_id)
    x_sandbox.revoke_all(ALPHA["user_id"])  # the person removed the app on X
    oauth_runtime.clock.advance(dt.timedelta(hours=2) - dt.timedelta(seconds=60))
    due = oauth_runtime.clock.now() + dt.timedelta(days=7)

    first = publishing.publish_due(oauth_runtime, as_of=due)
    second = publishing.publish_due(oauth_runtime, as_of=due)

    with oauth_runtime.database.transaction() as tx:
        alerts = tx.rows(
            "SELECT kind FROM alert_outbox WHERE brand_id = :id", id=brand_id
        )
        reasons = tx.rows(
            "SELECT failure_reason FROM posts WHERE brand_id = :id", id=brand_id
        )
    assert first["published"] == second["published"] == 0
    assert brand_row(oauth_runtime, brand_id)["x_disconnected_at"] is not None
    assert states(oauth_runtime, brand_id) == ["held"] * 3
    assert all("account disconnected" in r["failure_reason"] for r in reasons)
    assert all("refreshing the token" in r["failure_reason"] for r in reasons)
    assert [a["kind"] for a in alerts] == ["x_disconnected"]
    assert x_sandbox.snapshot()["posts"] == []

    connected = connect(oauth_runtime, brand_id)
    resumed = publishing.publish_due(oauth_runtime, as_of=due)

    assert connected["resumed_posts"] == 3
    assert resumed["published"] == 3
    assert brand_row(oauth_runtime, brand_id)["x_disconnected_at"] is None


def test_disconnecting_revokes_both_tokens_with_x_and_forgets_them(
    oauth_runtime, x_sandbox
) -> None:
    brand_id = make_brand(oauth_runtime, "alpha", None, products=1)
    connect(oauth_runtime, brand_id)
    access = oauth_runtime.open_token(
        brand_row(oauth_runtime, brand_id)["x_access_token"]
    )

    with oauth_runtime.database.transaction() as tx:
        result = x_oauth.disconnect_account(
            tx, oauth_runtime, brand_id=brand_id, now=oauth_runtime.clock.now()
        )

    me = requests.get(
        x_sandbox.base_url + "/2/users/me",
        headers={"Authorization": f"Bearer {access}"},
        timeout=5,
    )
    assert result == {"connected": False, "revoked_with_x": True}
    assert grants(x_sandbox)["revoked"] == 2
    assert me.status_code == 401
    row = brand_row(oauth_runtime, brand_id)
    assert row["x_access_token"] is None and row["x_refresh_token"] is None
    with pytest.raises(InvalidRequest) as again:
        with oauth_runtime.database.transaction() as tx:
            x_oauth.disconnect_account(
                tx, oauth_runtime, brand_id=brand_id, now=oauth_runtime.clock.now()
            )
    assert again.value.status == 409


# --- the cloud key path -----------------------------------------------------------


class _SecretManagerStub(BaseHTTPRequestHandler):
    """Secret Manager's REST answer to versions:access, on a loopback port."""

    payload = b""
    seen: list[tuple[str, str | None]] = []

    def do_GET(self) -> None:  # noqa: N802 - the http.server hook's name
        self.seen.append((self.path, self.headers.get("authorization")))
        name = self.path.split("?")[0].removeprefix("/v1/").removesuffix(":access")
        body = json.dumps(
            {"name": name, "payload": {"data": base64.b64encode(self.payload).decode()}}
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        """Quiet."""


def test_the_cloud_key_is_read_from_secret_manager_with_anonymous_credentials(
    settings, clock, key_file
) -> None:
    _SecretManagerStub.payload = key_file.read_bytes()
    _SecretManagerStub.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SecretManagerStub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    name = "projects/cartcast-test/secrets/cartcast-token-key/versions/3"
    try:
        cloud = runtime_module.Runtime(
            dataclasses.replace(
                settings,
                token_key_secret=name,
                secret_manager_endpoint=f"http://127.0.0.1:{server.server_port}",
            ),
            clock=clock,
        )
        local = token_vault.Vault(token_vault.read_key_file(key_file))

        sealed = cloud.seal_token("token-alpha")
        cloud.seal_token("token-beta")  # the key is read once per instance
    finally:
        server.shutdown()
        server.server_close()

    assert local.open(sealed) == "token-alpha"
    assert [path.split("?")[0] for path, _ in _SecretManagerStub.seen] == [
        f"/v1/{name}:access"
    ]
    assert _SecretManagerStub.seen[0][1] is None  # no credentials were asked for


def test_publishing_plain_tokens_imports_neither_cryptography_nor_secrets() -> None:
    code = (
        "import sys\n"
        "import main\n"
        "from cartcast import publishing, accounts, mentions, metrics, reconciling\n"
        "heavy = {'cryptography', 'google.cloud.secretmanager'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )

    loaded = printed_by_a_fresh_functions_interpreter(code)

    assert loaded == "[]"


# --- settings ---------------------------------------------------------------------


def test_the_token_key_settings_are_checked_together() -> None:
    from cartcast import settings as settings_module

    with pytest.raises(ConfigurationError) as refused:
        settings_module.load(
            {
                "CARTCAST_ENV": "cloud",
                "CARTCAST_PUBSUB": "google",
                "GOOGLE_CLOUD_PROJECT": "p",
                "CARTCAST_TOKEN_KEY_FILE": "/tmp/key",
                "CARTCAST_TOKEN_KEY_SECRET": "projects/p/secrets/s",
                "CARTCAST_X_TOKEN_REFRESH_MARGIN_S": "7200",
            }
        )
    loaded = settings_module.load(
        {
            "DATABASE_URL": "postgresql://127.0.0.1/cartcast",
            "CARTCAST_TOKEN_KEY_SECRET": "projects/p/secrets/k/versions/latest",
            "CARTCAST_X_REDIRECT_URI": "https://api.example/v1/x/callback",
        }
    )

    message = str(refused.value)
    assert "CARTCAST_TOKEN_KEY_SECRET must be a secret version" in message
    assert "CARTCAST_TOKEN_KEY_FILE is for local runs" in message
    assert "CARTCAST_X_TOKEN_REFRESH_MARGIN_S must be at most 3600" in message
    assert loaded.token_key_secret == "projects/p/secrets/k/versions/latest"
    assert loaded.x_authorize_url == "https://x.com/i/oauth2/authorize"


@contextlib.contextmanager
def api_ready_to_connect(monkeypatch, clock_file, key_file):
    """The api function configured for X's OAuth against a sandbox that approves as
    ALPHA, and a brand with no X account yet; yield its test client, admin key and
    the sandbox."""
    from infra.x_sandbox import XSandbox
    from tests.conftest import OPERATOR_KEY, make_app
    from tests.helpers import brand_body, post_json

    with XSandbox(clock=clock_file) as sandbox:
        sandbox.register_account(**ALPHA, token="token-alpha")
        sandbox.configure_oauth(client_id=CLIENT_ID)
        sandbox.approve_as(ALPHA["user_id"])
        for name, value in {
            "X_API_BASE_URL": sandbox.base_url,
            "CARTCAST_X_CLIENT_ID": CLIENT_ID,
            "CARTCAST_X_REDIRECT_URI": f"http://127.0.0.1:{dead_loopback_port()}/cb",
            "CARTCAST_X_AUTHORIZE_URL": sandbox.base_url + "/i/oauth2/authorize",
            "CARTCAST_TOKEN_KEY_FILE": str(key_file),
        }.items():
            monkeypatch.setenv(name, value)
        runtime_module.reset()
        client = make_app("api", "http").test_client()
        created = post_json(
            client,
            "/v1/brands",
            brand_body(x_user_id=None, x_username=None, omit=("x_access_token",)),
            OPERATOR_KEY,
        ).get_json()
        yield client, created["api_key"], sandbox


def other_brand_admin(client) -> str:
    """Create a second brand, "other-goods", with no X account; return its admin key."""
    from tests.conftest import OPERATOR_KEY
    from tests.helpers import brand_body, post_json

    return post_json(
        client,
        "/v1/brands",
        brand_body(slug="other-goods", omit=("x_access_token",)),
        OPERATOR_KEY,
    ).get_json()["api_key"]


# --- the routes -------------------------------------------------------------------


def test_the_routes_connect_through_the_callback_and_disconnect(
    function_env, monkeypatch, clock_file, key_file
) -> None:
    from tests.helpers import auth, post_json

    with api_ready_to_connect(monkeypatch, clock_file, key_file) as (
        client,
        admin,
        _,
    ):
        other = other_brand_admin(client)

        started = client.post("/v1/brand/x/connect", headers=auth(admin))
        callback = approve(started.get_json()["authorize_url"])
        stolen = post_json(client, "/v1/brand/x/callback", callback, other)
        finished = client.get("/v1/x/callback", query_string=callback)
        reused = client.get("/v1/x/callback", query_string=callback)
        brand = client.get("/v1/brand", headers=auth(admin)).get_json()["brand"]
        gone = client.post("/v1/brand/x/disconnect", headers=auth(admin))
        trail = client.get(
            "/v1/audit?subject=brand:x_account", headers=auth(admin)
        ).get_json()["events"]

    assert started.status_code == 201
    assert stolen.status_code == 403
    assert stolen.get_json()["error"]["field"] == "state"
    assert finished.status_code == 200, finished.get_json()
    assert finished.get_json()["x_account"]["x_username"] == ALPHA["username"]
    assert reused.status_code == 400
    assert reused.get_json()["error"]["field"] == "state"
    assert brand["x_user_id"] == ALPHA["user_id"]
    assert "x_access_token" not in brand and "x_refresh_token" not in brand
    assert gone.status_code == 200
    assert gone.get_json()["x_account"]["revoked_with_x"] is True
    assert [(e["action"], e["actor"]) for e in trail] == [
        ("x_account.disconnected", "admin"),
        ("x_account.connected", "system:x_oauth_callback"),
    ]
    assert trail[1]["after"]["x_username"] == ALPHA["username"]


def test_only_an_admin_key_may_connect_or_disconnect(function_env) -> None:
    from cartcast import keys
    from tests.conftest import OPERATOR_KEY, make_app
    from tests.helpers import auth, brand_body, post_json

    client = make_app("api", "http").test_client()
    created = post_json(client, "/v1/brands", brand_body(), OPERATOR_KEY).get_json()
    current = runtime_module.current()
    with current.database.transaction() as tx:
        editor = keys.create_key(
            tx,
            brand_id=created["brand"]["id"],
            name="editor",
            role="editor",
            now=current.clock.now(),
        )

    answers = [
        client.post(path, headers=auth(editor))
        for path in ("/v1/brand/x/connect", "/v1/brand/x/disconnect")
    ]

    assert [a.status_code for a in answers] == [403, 403]


def test_a_deployment_without_an_x_app_says_what_to_set(oauth_runtime) -> None:
    oauth_runtime.settings = dataclasses.replace(
        oauth_runtime.settings, x_client_id=None
    )
    brand_id = make_brand(oauth_runtime, "beta", None, products=1)

    with pytest.raises(ConfigurationError, match="CARTCAST_X_CLIENT_ID"):
        with oauth_runtime.database.transaction() as tx:
            x_oauth.start_authorization(
                tx, oauth_runtime, brand_id=brand_id, now=oauth_runtime.clock.now()
            )
    assert BETA  # the other account stays unconnected


def test_a_revoked_access_token_disconnects_and_the_flow_resumes_the_posts(
    oauth_runtime, x_sandbox
) -> None:
    brand_id = make_brand(oauth_runtime, "alpha", None, products=2)
    connect(oauth_runtime, brand_id)
    x_sandbox.revoke_all(ALPHA["user_id"])
    due = oauth_runtime.clock.now() + dt.timedelta(days=7)

    refused = publishing.publish_due(oauth_runtime, as_of=due)
    held = states(oauth_runtime, brand_id)
    connected = connect(oauth_runtime, brand_id)
    resumed = publishing.publish_due(oauth_runtime, as_of=due)

    assert refused["published"] == 0 and held == ["held", "held"]
    assert grants(x_sandbox)["refresh_token"] == 0  # far from expiry: no refresh
    assert connected["resumed_posts"] == 2
    assert resumed["published"] == 2


def test_a_leaving_brand_has_its_tokens_revoked_with_x_before_its_rows_go(
    oauth_runtime, x_sandbox
) -> None:
    from cartcast import offboarding

    brand_id = make_brand(oauth_runtime, "alpha", None, products=1)
    connect(oauth_runtime, brand_id)

    with oauth_runtime.database.transaction() as tx:
        offboarding.revoke_x_tokens(tx, oauth_runtime, brand_id=brand_id)
    with oauth_runtime.database.transaction() as tx:
        offboarding.revoke_x_tokens(tx, oauth_runtime, brand_id=brand_id)  # again

    row = brand_row(oauth_runtime, brand_id)
    assert grants(x_sandbox)["revoked"] == 2
    assert row["x_access_token"] is None and row["x_refresh_token"] is None


def expired_beside_a_hand_set_account(runtime, sandbox) -> tuple[str, str]:
    """Alpha connected through the flow and past its token's expiry while X's token
    endpoint is down; beta with a token set by hand, which never needs a refresh."""
    alpha = make_brand(runtime, "alpha", None, products=1)
    connect(runtime, alpha)
    sandbox.register_account(**BETA, token="token-beta")
    beta = make_brand(runtime, "beta", BETA, products=1)
    runtime.clock.advance(dt.timedelta(hours=2, minutes=1))
    sandbox.add_fault(
        method="POST", path_prefix="/2/oauth2/token", status=503, count=50
    )
    return alpha, beta


def test_x_token_endpoint_down_for_one_account_holds_up_no_other_brands_posts(
    oauth_runtime, x_sandbox
) -> None:
    alpha, beta = expired_beside_a_hand_set_account(oauth_runtime, x_sandbox)
    due = oauth_runtime.clock.now() + dt.timedelta(days=7)

    counts = publishing.publish_due(oauth_runtime, as_of=due)

    assert counts["published"] == 1 and counts["deferred"] == 1
    assert states(oauth_runtime, beta) == ["published"]
    assert states(oauth_runtime, alpha) == ["scheduled"]  # retried, not disconnected
    assert brand_row(oauth_runtime, alpha)["x_disconnected_at"] is None

    x_sandbox.clear_faults()
    oauth_runtime.clock.advance(dt.timedelta(hours=1))
    later = publishing.publish_due(oauth_runtime, as_of=due + dt.timedelta(hours=1))
    assert later["published"] == 1 and grants(x_sandbox)["refresh_token"] == 1


def test_x_token_endpoint_down_for_one_account_still_reads_the_other_brands(
    oauth_runtime, x_sandbox
) -> None:
    from cartcast import mentions

    alpha, beta = expired_beside_a_hand_set_account(oauth_runtime, x_sandbox)

    polled = mentions.poll_mentions(oauth_runtime, as_of=oauth_runtime.clock.now())

    # Beta is read (no mentions yet); alpha waits for X's token endpoint.
    assert polled["brands"] == 1 and polled["skipped"] == 1
    assert brand_row(oauth_runtime, alpha)["x_disconnected_at"] is None


def test_an_image_post_goes_out_with_a_connected_accounts_token(
    oauth_runtime, x_sandbox
) -> None:
    """X's v2 media upload takes an OAuth 2.0 token only with media.write."""
    from tests.helpers import catalog
    from tests.test_post_kinds import ImageServer, tiny_png

    images = ImageServer()
    try:
        url = images.serve("/mug.png", 200, "image/png", tiny_png())
        rows = [{**catalog(1)[0], "thumbnail": url}]
        brand_id = make_brand(oauth_runtime, "alpha", None, rows=rows, kind="image")
        connect(oauth_runtime, brand_id)

        counts = publishing.publish_due(
            oauth_runtime, as_of=oauth_runtime.clock.now() + dt.timedelta(days=7)
        )
    finally:
        images.server.shutdown()

    assert counts["published"] == 1, states(oauth_runtime, brand_id)
    (sent,) = x_sandbox.snapshot()["posts"]
    assert len(sent["media_ids"]) == 1


def test_a_wrong_client_secret_disconnects_no_account_and_fixing_it_resumes(
    oauth_runtime, x_sandbox
) -> None:
    """X's 401 on a refresh refuses cartcast's client, not the account: one
    mistyped or rotated secret must not make every brand connect again on X."""
    brand_id = make_brand(oauth_runtime, "alpha", None, products=1)
    connect(oauth_runtime, brand_id)
    right = oauth_runtime.settings
    oauth_runtime.settings = dataclasses.replace(right, x_client_secret="rotated")
    oauth_runtime.clock.advance(dt.timedelta(hours=2, minutes=1))
    due = oauth_runtime.clock.now() + dt.timedelta(days=7)

    refused = publishing.publish_due(oauth_runtime, as_of=due)

    with oauth_runtime.database.transaction() as tx:
        alerts = tx.scalar(
            "SELECT count(*) FROM alert_outbox WHERE brand_id = :id", id=brand_id
        )
    assert refused["published"] == 0 and refused["deferred"] == 1
    assert brand_row(oauth_runtime, brand_id)["x_disconnected_at"] is None
    assert states(oauth_runtime, brand_id) == ["scheduled"] and alerts == 0

    oauth_runtime.settings = right
    oauth_runtime.clock.advance(dt.timedelta(hours=1))
    resumed = publishing.publish_due(oauth_runtime, as_of=due + dt.timedelta(hours=1))

    assert resumed["published"] == 1 and grants(x_sandbox)["refresh_token"] == 1


def test_a_rotated_token_key_is_a_clear_409_on_every_x_route_and_changes_nothing(
    function_env, monkeypatch, clock_file, key_file
) -> None:
    from tests.conftest import make_app
    from tests.helpers import auth, post_json

    with api_ready_to_connect(monkeypatch, clock_file, key_file) as (
        client,
        admin,
        _,
    ):
        started = client.post("/v1/brand/x/connect", headers=auth(admin)).get_json()
        callback = approve(started["authorize_url"])

        # The operator replaces the key file: what was sealed no longer opens.
        key_file.unlink()
        token_vault.create_key_file(key_file)
        runtime_module.reset()
        client = make_app("api", "http").test_client()
        answers = {
            "callback": client.get("/v1/x/callback", query_string=callback),
            "keyed callback": post_json(
                client, "/v1/brand/x/callback", callback, admin
            ),
        }
        key_file.chmod(0o644)  # and then makes it readable by others
        runtime_module.reset()
        client = make_app("api", "http").test_client()
        answers["patch"] = client.patch(
            "/v1/brand",
            json={"x_access_token": "hand-set", "x_user_id": ALPHA["user_id"]},
            headers=auth(admin),
        )
        brand = client.get("/v1/brand", headers=auth(admin)).get_json()["brand"]

    for what, answer in answers.items():
        assert answer.status_code == 409, (what, answer.get_json())
        assert "CARTCAST_TOKEN_KEY_FILE" in answer.get_json()["error"]["message"]
    assert brand["has_x_token"] is False and brand["x_user_id"] is None


def test_posts_held_after_the_brand_disconnects_go_out_once_it_connects_again(
    oauth_runtime, x_sandbox
) -> None:
    """The README: "the brand's queued posts are held until it connects again"."""
    brand_id = make_brand(oauth_runtime, "alpha", None, products=2)
    connect(oauth_runtime, brand_id)
    with oauth_runtime.database.transaction() as tx:
        x_oauth.disconnect_account(
            tx, oauth_runtime, brand_id=brand_id, now=oauth_runtime.clock.now()
        )
    due = oauth_runtime.clock.now() + dt.timedelta(days=7)

    while_away = publishing.publish_due(oauth_runtime, as_of=due)
    held = states(oauth_runtime, brand_id)
    connected = connect(oauth_runtime, brand_id)
    back = publishing.publish_due(oauth_runtime, as_of=due)

    assert while_away["published"] == 0 and held == ["held", "held"]
    assert connected["resumed_posts"] == 2
    assert back["published"] == 2


def test_a_token_set_by_hand_over_a_connection_shows_no_scopes_x_granted_before(
    oauth_runtime,
) -> None:
    from cartcast import brands

    brand_id = make_brand(oauth_runtime, "alpha", None, products=1)
    connect(oauth_runtime, brand_id)
    with oauth_runtime.database.transaction() as tx:
        brand = brands.update_brand(
            tx,
            brand_id,
            {"x_access_token": "token-alpha"},
            role="admin",
            environment="local",
            now=oauth_runtime.clock.now(),
            seal=oauth_runtime.seal_token,
        )

    assert brand["has_x_token"] is True
    assert brand["x_token_expires_at"] is None and brand["x_token_scopes"] is None


def test_publishers_a_poll_and_a_metrics_read_crossing_the_expiry_refresh_once(
    oauth_runtime, x_sandbox
) -> None:
    from cartcast import accounts, mentions, metrics

    oauth_runtime.settings = dataclasses.replace(
        oauth_runtime.settings, publish_batch_size=1, publish_workers=1
    )
    brand_id = make_brand(oauth_runtime, "alpha", None, products=6)
    connect(oauth_runtime, brand_id)
    oauth_runtime.clock.advance(dt.timedelta(hours=2) - dt.timedelta(seconds=60))
    x_sandbox.add_fault(method="POST", path_prefix="/2/oauth2/token", delay_s=0.3)
    due = oauth_runtime.clock.now() + dt.timedelta(days=7)
    with oauth_runtime.database.transaction() as tx:
        (brand,) = accounts.connected_brands(tx)
    now = oauth_runtime.clock.now()
    jobs = [lambda: publishing.publish_due(oauth_runtime, as_of=due)] * 6 + [
        lambda: mentions.poll_mentions(oauth_runtime, as_of=now),
        lambda: metrics.snapshot_brand(oauth_runtime, brand, now),
    ]
    start = threading.Barrier(len(jobs))
    results: list = []
    errors: list[BaseException] = []

    def run(job) -> None:
        start.wait()
        try:
            results.append(job())
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert grants(x_sandbox)["refresh_token"] == 1
    assert brand_row(oauth_runtime, brand_id)["x_disconnected_at"] is None
    assert states(oauth_runtime, brand_id) == ["published"] * 6


def test_a_leaving_brands_tokens_the_key_cannot_open_are_forgotten_all_the_same(
    oauth_runtime, x_sandbox, key_file, tmp_path
) -> None:
    """Offboarding is a data duty: a token key that no longer opens the tokens
    (replaced, say) must not stop the brand's data from going."""
    from cartcast import offboarding

    brand_id = make_brand(oauth_runtime, "alpha", None, products=1)
    connect(oauth_runtime, brand_id)
    other_key = tmp_path / "other.key"
    token_vault.create_key_file(other_key)
    # A new instance, started with the replaced key.
    replaced = runtime_module.Runtime(
        dataclasses.replace(oauth_runtime.settings, token_key_file=str(other_key)),
        clock=oauth_runtime.clock,
    )
    try:
        with replaced.database.transaction() as tx:
            offboarding.revoke_x_tokens(tx, replaced, brand_id=brand_id)
    finally:
        replaced.close()

    row = brand_row(oauth_runtime, brand_id)
    assert row["x_access_token"] is None and row["x_refresh_token"] is None
    assert grants(x_sandbox)["revoked"] == 0


def test_a_publisher_that_cannot_open_the_token_leaves_no_send_it_did_not_make(
    oauth_runtime, clock
) -> None:
    """A publish function started without the token key claims the due post but
    cannot open its sealed token: the attempt must not say it was sent, or the
    post waits out the lease and the reconciler's delay for a request never made."""
    brand_id = make_brand(oauth_runtime, "alpha", None, products=1)
    clock.advance(dt.timedelta(days=7))
    connect(oauth_runtime, brand_id)  # a fresh token: no refresh before the send
    keyless = runtime_module.Runtime(
        dataclasses.replace(oauth_runtime.settings, token_key_file=None),
        clock=oauth_runtime.clock,
    )

    try:
        with pytest.raises(ConfigurationError):
            publishing.publish_due(keyless, as_of=clock.now())
    finally:
        keyless.close()

    with oauth_runtime.database.transaction() as tx:
        attempts = tx.rows(
            "SELECT a.sent_at FROM publish_attempts a JOIN posts p ON p.id = a.post_id"
            " WHERE p.brand_id = :brand_id",
            brand_id=brand_id,
        )
    assert attempts and [row["sent_at"] for row in attempts] == [None]


# --- refused callbacks, and two at once -------------------------------------------


def connection_rows() -> list[dict]:
    """Every row a callback could change: the brands' X columns and the states."""
    with runtime_module.current().database.transaction() as tx:
        return tx.rows(
            "SELECT b.slug, b.x_access_token, b.x_refresh_token, b.x_user_id, "
            "b.x_token_expires_at, b.x_disconnected_at, s.state_hash, s.used_at "
            "FROM brands b LEFT JOIN x_oauth_states s ON s.brand_id = b.id "
            "ORDER BY b.slug, s.state_hash"
        )


def refused_callbacks(client, key: str) -> list[tuple[str, str, str]]:
    """The brand's recorded callback refusals, newest first: (reason, actor, route)."""
    from tests.helpers import auth

    trail = client.get(
        "/v1/audit?action=access.x_callback_refused", headers=auth(key)
    ).get_json()["events"]
    return [(e["after"]["reason"], e["actor"], e["after"]["route"]) for e in trail]


def wait_until(condition, what: str) -> None:
    """Poll `condition` until it holds; fail the test after WAIT_S."""
    import time

    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {WAIT_S:g} s waiting for {what}")
        time.sleep(0.01)


def test_refused_callbacks_are_4xx_change_nothing_and_reach_the_trails_concerned(
    function_env, monkeypatch, clock_file, key_file
) -> None:
    from tests.conftest import START
    from tests.helpers import auth, post_json

    with api_ready_to_connect(monkeypatch, clock_file, key_file) as (
        client,
        alpha_admin,
        sandbox,
    ):
        beta_admin = other_brand_admin(client)
        started = client.post("/v1/brand/x/connect", headers=auth(alpha_admin))
        callback = approve(started.get_json()["authorize_url"])
        before = connection_rows()

        answers = {
            "forged": client.get(
                "/v1/x/callback", query_string={**callback, "state": "forged"}
            ),
            "forged, keyed": post_json(
                client,
                "/v1/brand/x/callback",
                {**callback, "state": "forged"},
                alpha_admin,
            ),
            "another brand's": post_json(
                client, "/v1/brand/x/callback", callback, beta_admin
            ),
            "code X refuses": client.get(
                "/v1/x/callback", query_string={**callback, "code": "not-issued"}
            ),
        }
        clock_file.set(START + dt.timedelta(minutes=11))
        answers["expired"] = client.get("/v1/x/callback", query_string=callback)
        after_refusals = connection_rows()

        clock_file.set(START)
        connected = client.get("/v1/x/callback", query_string=callback)
        after_connecting = connection_rows()
        answers["used"] = client.get("/v1/x/callback", query_string=callback)
        after_reuse = connection_rows()

        alpha_trail = refused_callbacks(client, alpha_admin)
        beta_trail = refused_callbacks(client, beta_admin)
        exchanges = sandbox.snapshot()["oauth"]["grants"]["authorization_code"]
        with runtime_module.current().database.transaction() as tx:
            unknown_recorded = tx.scalar(
                "SELECT count(*) FROM audit_events WHERE after->>'reason' = 'unknown'"
            )

    # A clear 4xx naming the problem, for each.
    expected = {
        "forged": (400, "state", "unknown"),
        "forged, keyed": (400, "state", "unknown"),
        "another brand's": (403, "state", "another brand"),
        "code X refuses": (400, "code", "X refused the authorization code"),
        "expired": (400, "state", "expired"),
        "used": (400, "state", "already used"),
    }
    for what, (status, field, words) in expected.items():
        error = answers[what].get_json()["error"]
        assert answers[what].status_code == status, (what, error)
        assert (error["field"], words in error["message"]) == (field, True), what
    # Nothing changed: no token, no state spent, by any refusal.
    assert after_refusals == before
    assert connected.status_code == 200, connected.get_json()
    assert after_reuse == after_connecting
    assert exchanges == 1
    # In the trail of each brand concerned. The state's brand (alpha) for its
    # expired, used and refused-code state, and for the state beta's key presented,
    # named without beta's key; beta for presenting it. A forged state names no
    # brand: only a brand's key presenting one puts it in that brand's trail.
    # Newest first by the clock: the expired state was tried 11 minutes ahead.
    assert alpha_trail == [
        ("expired", "system:x_oauth_callback", "GET /v1/x/callback"),
        ("used", "system:x_oauth_callback", "GET /v1/x/callback"),
        ("code_refused", "system:x_oauth_callback", "GET /v1/x/callback"),
        ("another_brand", "other_brand:key", "POST /v1/brand/x/callback"),
        ("unknown", "admin", "POST /v1/brand/x/callback"),
    ]
    assert beta_trail == [("another_brand", "admin", "POST /v1/brand/x/callback")]
    assert unknown_recorded == 1  # the keyed one; the unkeyed forged state nowhere


def test_another_brands_key_learns_nothing_of_a_state_it_was_not_issued(
    function_env, monkeypatch, clock_file, key_file
) -> None:
    # Arrange: alpha connects; beta's admin holds alpha's callback, used now.
    from tests.helpers import auth, post_json

    with api_ready_to_connect(monkeypatch, clock_file, key_file) as (
        client,
        alpha_admin,
        _sandbox,
    ):
        beta_admin = other_brand_admin(client)
        started = client.post("/v1/brand/x/connect", headers=auth(alpha_admin))
        callback = approve(started.get_json()["authorize_url"])
        connected = client.get("/v1/x/callback", query_string=callback)
        assert connected.status_code == 200, connected.get_json()

        # Act
        answer = post_json(client, "/v1/brand/x/callback", callback, beta_admin)
        alpha_trail = refused_callbacks(client, alpha_admin)
        beta_trail = refused_callbacks(client, beta_admin)

    # Assert: the same 403 as for a live state of alpha's: beta is not told that
    # alpha used it, and alpha's trail says another brand's key presented it.
    error = answer.get_json()["error"]
    assert (answer.status_code, error["field"]) == (403, "state"), error
    assert "used" not in error["message"]
    assert alpha_trail == [
        ("another_brand", "other_brand:key", "POST /v1/brand/x/callback")
    ]
    assert beta_trail == [("another_brand", "admin", "POST /v1/brand/x/callback")]


def test_replaying_an_old_callback_cannot_silence_a_later_refusal_of_a_key(
    function_env, monkeypatch, clock_file, key_file
) -> None:
    # Arrange: a cap of two an hour; the brand connected, and someone without a key
    # holds its callback URL (a browser's history, a proxy's log).
    from tests.helpers import auth, post_json

    monkeypatch.setenv("CARTCAST_AUDIT_REFUSALS_PER_HOUR", "2")
    with api_ready_to_connect(monkeypatch, clock_file, key_file) as (
        client,
        admin,
        _sandbox,
    ):
        viewer = post_json(
            client, "/v1/keys", {"name": "reader", "role": "viewer"}, admin
        ).get_json()["api_key"]
        started = client.post("/v1/brand/x/connect", headers=auth(admin))
        callback = approve(started.get_json()["authorize_url"])
        assert client.get("/v1/x/callback", query_string=callback).status_code == 200

        # Act: the URL replayed past the cap, then the viewer key tries an
        # admin's route.
        replays = [
            client.get("/v1/x/callback", query_string=callback).status_code
            for _ in range(5)
        ]
        refused = client.get("/v1/keys", headers=auth(viewer))
        trail = client.get("/v1/audit", headers=auth(admin)).get_json()["events"]

    # Assert: the replays use up their own hour, not the brand's: the key's
    # refusal is in the trail.
    assert replays == [400] * 5
    assert refused.status_code == 403
    access = [(e["action"], e["actor"]) for e in trail if e["action"] != "key.created"]
    assert access[0] == ("access.refused", "reader")
    assert access.count(("access.refusals_capped", "system:x_oauth_callback")) == 1


def test_two_callbacks_with_one_state_at_once_exchange_the_code_once(
    function_env, monkeypatch, clock_file, key_file
) -> None:
    # Arrange: X holds its answer to the first exchange, so the first callback
    # keeps the state's row locked while the second arrives and waits on it.
    from tests.helpers import auth

    with api_ready_to_connect(monkeypatch, clock_file, key_file) as (
        client,
        admin,
        sandbox,
    ):
        started = client.post("/v1/brand/x/connect", headers=auth(admin))
        callback = approve(started.get_json()["authorize_url"])
        sandbox.add_fault(method="POST", path_prefix="/2/oauth2/token", hold=True)
        answers: dict[str, tuple[int, dict]] = {}
        failures: list[BaseException] = []

        def call_back(name: str) -> None:
            try:
                with client.application.test_client() as own:
                    answer = own.get("/v1/x/callback", query_string=callback)
                    answers[name] = (answer.status_code, answer.get_json())
            except BaseException as error:  # noqa: BLE001 - asserted below
                failures.append(error)

        def exchanges_asked() -> int:
            asked = sandbox.snapshot()["requests"].get("POST /2/oauth2/token", {})
            return asked.get("count", 0)

        def second_waits_on_the_state() -> bool:
            with runtime_module.current().database.transaction() as tx:
                return bool(
                    tx.scalar(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() "
                        "AND wait_event_type = 'Lock' "
                        "AND query LIKE '%x_oauth_states%'"
                    )
                )

        first = threading.Thread(target=call_back, args=("first",), daemon=True)
        second = threading.Thread(target=call_back, args=("second",), daemon=True)
        try:
            # Act
            first.start()
            wait_until(lambda: exchanges_asked() == 1, "the first code exchange")
            second.start()
            wait_until(second_waits_on_the_state, "the second callback to wait")
            sandbox.release_answers()
            first.join(WAIT_S)
            second.join(WAIT_S)
        finally:
            sandbox.release_answers()
            for thread in (first, second):
                if thread.is_alive() or thread.ident is not None:
                    thread.join(WAIT_S)
        alive = [t.name for t in (first, second) if t.is_alive()]
        exchanged = exchanges_asked()
        brand = client.get("/v1/brand", headers=auth(admin)).get_json()["brand"]
        trail = client.get("/v1/audit", headers=auth(admin)).get_json()["events"]

    # Assert
    assert alive == [] and failures == []
    assert answers["first"][0] == 200, answers["first"]
    assert answers["first"][1]["x_account"]["x_user_id"] == ALPHA["user_id"]
    status, body = answers["second"]
    assert (status, body["error"]["field"]) == (400, "state")
    assert "already used" in body["error"]["message"]
    assert exchanged == 1
    assert brand["x_user_id"] == ALPHA["user_id"]
    actions = [e["action"] for e in trail if not e["action"].startswith("key.")]
    assert actions == ["access.x_callback_refused", "x_account.connected"]


def test_an_expiry_too_far_to_compute_is_kept_as_two_hours_and_logged(
    oauth_runtime, x_sandbox, caplog
) -> None:
    # X says its access tokens live two hours; an expires_in past the calendar's
    # end must not crash the connect (an OverflowError was a 500).
    x_sandbox.configure_oauth(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, access_token_ttl_s=10**30
    )
    brand_id = make_brand(oauth_runtime, "alpha", None, products=1)

    connected = connect(oauth_runtime, brand_id)

    assert connected["connected"]
    row = brand_row(oauth_runtime, brand_id)
    assert row["x_token_expires_at"] == oauth_runtime.clock.now() + dt.timedelta(
        hours=2
    )
    warned = [r for r in caplog.records if r.getMessage().startswith("X's token")]
    assert warned and warned[-1].fields["expires_in"] == str(10**30)[:40]


@pytest.mark.parametrize("code", ["c" * 2001, 5, ["c"]])
def test_a_code_too_long_or_not_text_is_refused_as_malformed_not_missing(
    code,
) -> None:
    from cartcast import x_oauth
    from cartcast.errors import InvalidRequest

    with pytest.raises(InvalidRequest) as refused:
        x_oauth._callback_params({"state": "s", "code": code})

    assert refused.value.field == "code"
    assert "malformed" in str(refused.value)
    assert "missing" not in str(refused.value)
