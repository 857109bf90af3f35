"""Webhook deliveries go to the address their host's lookup was checked for.

The brand's webhook host is a name the brand controls. Each delivery looks it up
through the runtime's `resolve` (the tests answer as a rebinding DNS would),
refuses an address `addresses.is_refused` refuses, and connects to the address
checked. The receivers listen on 127.0.0.1 and 127.0.0.2 at one port, so a
delivery that looked the name up again would be seen at the other one.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import select
import socket
import ssl
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from cartcast import alerts, escalations
from tests.helpers import (
    ChangingResolver,
    admin_updates_brand,
    brand_body,
    printed_by_a_fresh_functions_interpreter,
    serve_in_thread,
    write_authority,
    write_localhost_certificate,
)

SECRET = "a-crm-secret-of-some-length"
SET_URLS = """
UPDATE brands SET alert_webhook_url = :url, escalation_webhook_url = :url,
    escalation_secret = :secret
WHERE id = :brand_id
"""
INSERT_ESCALATION = """
INSERT INTO escalation_outbox (brand_id, mention_id, body, created_at, next_attempt_at)
VALUES (:brand_id, :mention_id, :body, :now, :now)
"""
INSERT_MENTION = """
INSERT INTO mentions (brand_id, x_post_id, author_id, text, posted_at, received_at)
VALUES (:brand_id, '1900000000000000001', '42', '@shop where is my order', :now,
    :now)
RETURNING id
"""
BODY = '{"type":"mention.escalated"}'
ABANDON_AS_UNREACHABLE = """
WITH alert AS (
    UPDATE alert_outbox SET abandoned_at = created_at, attempts = 9,
        last_error = 'webhook unreachable: NewConnectionError'
    WHERE brand_id = :brand_id
)
UPDATE escalation_outbox SET abandoned_at = created_at, attempts = 9,
    last_error = 'webhook unreachable: NewConnectionError'
WHERE brand_id = :brand_id
"""


class Receiver:
    """A webhook receiver on `address`; records each POST's Host header, body and
    whether its escalation signature verifies against SECRET at `now_s`."""

    def __init__(
        self,
        address: str,
        port: int,
        now_s: int,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                signature = self.headers.get(escalations.SIGNATURE_HEADER)
                received.append(
                    {
                        "host": self.headers.get("Host"),
                        "body": json.loads(body),
                        "verified": signature is not None
                        and escalations.verify(SECRET, body, signature, now_s=now_s),
                    }
                )
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = serve_in_thread(address, port, Handler, tls)
        self.port = self.server.server_port

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def brand_id(runtime) -> str:
    from cartcast import brands

    with runtime.database.transaction() as tx:
        created = brands.create_brand(
            tx, brand_body(slug="shop"), now=runtime.clock.now()
        )
    return str(created["brand"]["id"])


@pytest.fixture
def receivers(runtime):
    """Receivers on 127.0.0.1 and 127.0.0.2 at the same port: (first, second)."""
    now_s = int(runtime.clock.now().timestamp())
    first = Receiver("127.0.0.1", 0, now_s)
    second = Receiver("127.0.0.2", first.port, now_s)
    yield first, second
    first.close()
    second.close()


def queue_both(runtime, brand_id: str, url: str) -> None:
    """Point both webhooks at `url` (as stored, whatever PATCH once allowed) and
    queue one alert and one escalation."""
    now = runtime.clock.now()
    with runtime.database.transaction() as tx:
        tx.execute(SET_URLS, url=url, secret=SECRET, brand_id=brand_id)
        alerts.raise_alert(
            tx, brand_id=brand_id, kind="crisis", episode="1", text="crisis", now=now
        )
        mention_id = tx.scalar(INSERT_MENTION, brand_id=brand_id, now=now)
        tx.execute(
            INSERT_ESCALATION,
            brand_id=brand_id,
            mention_id=mention_id,
            body=BODY,
            now=now,
        )


def outboxes(runtime, brand_id: str) -> tuple[dict, dict]:
    with runtime.database.transaction() as tx:
        (alert,) = alerts.list_alerts(tx, brand_id=brand_id)
        (escalation,) = escalations.list_escalations(tx, brand_id=brand_id)
    return alert, escalation


# pytest-socket's --allow-hosts names 127.0.0.1 alone of the loopback block.
@pytest.mark.allow_hosts(["127.0.0.1", "127.0.0.2"])
def test_a_webhook_is_posted_to_the_address_its_check_approved(
    runtime, brand_id, receivers
) -> None:
    # Arrange: the brand's DNS answers 127.0.0.2 when the address is checked and
    # 127.0.0.1 afterwards.
    first, second = receivers
    url = f"http://localhost:{first.port}/hook"
    with runtime.database.transaction() as tx:
        admin_updates_brand(
            tx,
            brand_id,
            {
                "alert_webhook_url": url,
                "escalation_webhook_url": url,
                "escalation_secret": SECRET,
            },
            runtime.clock.now(),
        )
    queue_both(runtime, brand_id, url)
    runtime.resolve = ChangingResolver(["127.0.0.2"], ["127.0.0.1"])

    # Act
    sent_alerts = alerts.deliver_pending(runtime)
    runtime.resolve = ChangingResolver(["127.0.0.2"], ["127.0.0.1"])
    sent_escalations = escalations.deliver_pending(runtime)

    # Assert: both went to the checked address, for the URL's host, and the
    # escalation's signature verifies.
    assert sent_alerts["alerts_sent"] == 1
    assert sent_escalations["escalations_sent"] == 1
    assert first.received == []
    alert, escalation = second.received
    assert alert["host"] == escalation["host"] == f"localhost:{first.port}"
    assert alert["body"] == {"text": "crisis"}
    assert escalation["body"] == json.loads(BODY) and escalation["verified"] is True
    assert runtime.resolve.asked == [("localhost", first.port)]


@pytest.mark.parametrize("internal", ["100.64.0.1", "169.254.169.254", "10.0.0.7"])
def test_a_webhook_name_resolving_to_an_internal_address_is_refused_unsent(
    runtime, brand_id, receivers, internal, caplog
) -> None:
    # "localhost" is answered by the test's resolver alone after the fix; a
    # delivery that looked it up itself would reach `first` on loopback, never a
    # non-loopback address. pytest-socket refuses any connect() off 127.0.0.1,
    # which would raise out of the delivery.
    first, second = receivers
    runtime.settings = dataclasses.replace(runtime.settings, environment="cloud")
    queue_both(runtime, brand_id, f"https://localhost:{first.port}/hook")
    runtime.resolve = ChangingResolver([internal])

    sent_alerts = alerts.deliver_pending(runtime)
    sent_escalations = escalations.deliver_pending(runtime)
    again = alerts.deliver_pending(runtime), escalations.deliver_pending(runtime)

    assert first.received == [] and second.received == []
    assert sent_alerts["alerts_failed"] == 1
    assert sent_escalations["escalations_failed"] == 1
    assert again[0]["alerts_failed"] == again[1]["escalations_failed"] == 0
    for row in outboxes(runtime, brand_id):
        assert row["abandoned_at"] is not None and row["delivered_at"] is None
        assert row["last_error"].startswith("webhook refused: ")
        # The brand reads last_error: it names the host, not what DNS answered.
        assert "localhost resolves to an internal address" in row["last_error"]
        assert internal not in row["last_error"]
    refused = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == 2 and all(r.levelname == "ERROR" for r in refused)


def test_a_webhook_on_loopback_is_refused_in_the_cloud(
    runtime, brand_id, receivers
) -> None:
    first, _ = receivers
    runtime.settings = dataclasses.replace(runtime.settings, environment="cloud")
    queue_both(runtime, brand_id, f"http://127.0.0.1:{first.port}/hook")

    alerts.deliver_pending(runtime)
    escalations.deliver_pending(runtime)

    assert first.received == []
    for row in outboxes(runtime, brand_id):
        assert row["abandoned_at"] is not None
        assert "127.0.0.1" in row["last_error"]


def test_a_webhook_name_that_does_not_resolve_is_tried_again_later(
    runtime, brand_id, receivers
) -> None:
    first, _ = receivers

    def no_such_name(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    queue_both(runtime, brand_id, f"http://localhost:{first.port}/hook")
    runtime.resolve = no_such_name

    failed = alerts.deliver_pending(runtime)

    assert failed["alerts_failed"] == 1 and first.received == []
    alert, _ = outboxes(runtime, brand_id)
    assert alert["abandoned_at"] is None and alert["attempts"] == 1
    assert alert["next_attempt_at"] > runtime.clock.now()


def refuse_both(runtime, brand_id: str, port: int) -> None:
    """Queue an alert and an escalation for a webhook name the brand's DNS points
    inside, and deliver them: both are abandoned as refused."""
    queue_both(runtime, brand_id, f"http://localhost:{port}/hook")
    runtime.resolve = ChangingResolver(["10.0.0.7"])
    alerts.deliver_pending(runtime)
    escalations.deliver_pending(runtime)
    for row in outboxes(runtime, brand_id):
        assert row["last_error"].startswith("webhook refused: ")


def set_webhook(runtime, brand_id: str, body: dict) -> None:
    with runtime.database.transaction() as tx:
        admin_updates_brand(tx, brand_id, body, runtime.clock.now())


def test_setting_a_webhook_url_again_revives_its_refused_rows(
    runtime, brand_id, receivers
) -> None:
    # Arrange: the brand's DNS pointed inside, and both rows were abandoned; the
    # owner fixes the DNS and sets each URL again.
    first, _ = receivers
    refuse_both(runtime, brand_id, first.port)
    runtime.resolve = ChangingResolver(["127.0.0.1"])
    url = f"http://localhost:{first.port}/hook"

    # Act: the alert webhook first, then the CRM's.
    set_webhook(runtime, brand_id, {"alert_webhook_url": url})
    after_alert_url = outboxes(runtime, brand_id)
    set_webhook(
        runtime,
        brand_id,
        {"escalation_webhook_url": url, "escalation_secret": SECRET},
    )
    sent = alerts.deliver_pending(runtime), escalations.deliver_pending(runtime)

    # Assert: each URL revived its own outbox's row, and both were then sent.
    alert, escalation = after_alert_url
    assert alert["abandoned_at"] is None
    assert alert["next_attempt_at"] == runtime.clock.now()
    assert escalation["abandoned_at"] is not None
    assert sent[0]["alerts_sent"] == 1 and sent[1]["escalations_sent"] == 1
    assert [each["body"] for each in first.received] == [
        {"text": "crisis"},
        json.loads(BODY),
    ]
    for row in outboxes(runtime, brand_id):
        assert row["delivered_at"] is not None and row["attempts"] == 1


def test_a_new_escalation_secret_alone_revives_no_refused_row(
    runtime, brand_id, receivers
) -> None:
    # The refusal was about the URL's host; a secret says nothing of it.
    first, _ = receivers
    refuse_both(runtime, brand_id, first.port)

    set_webhook(runtime, brand_id, {"escalation_secret": "another-secret-of-length"})

    _, escalation = outboxes(runtime, brand_id)
    assert escalation["abandoned_at"] is not None


def test_a_refused_row_past_its_useful_life_stays_abandoned(
    runtime, brand_id, receivers
) -> None:
    first, _ = receivers
    refuse_both(runtime, brand_id, first.port)
    runtime.clock.advance(dt.timedelta(seconds=runtime.settings.alert_max_age_s + 1))
    url = f"http://localhost:{first.port}/hook"

    set_webhook(
        runtime,
        brand_id,
        {
            "alert_webhook_url": url,
            "escalation_webhook_url": url,
            "escalation_secret": SECRET,
        },
    )

    for row in outboxes(runtime, brand_id):
        assert row["abandoned_at"] is not None and row["delivered_at"] is None


def test_a_row_abandoned_for_its_age_is_not_revived(
    runtime, brand_id, receivers
) -> None:
    # Abandoned by the age check with the last failure's reason, not a refusal.
    first, _ = receivers
    queue_both(runtime, brand_id, f"http://localhost:{first.port}/hook")
    with runtime.database.transaction() as tx:
        tx.execute(ABANDON_AS_UNREACHABLE, brand_id=brand_id)
    url = f"http://localhost:{first.port}/hook"

    set_webhook(
        runtime,
        brand_id,
        {
            "alert_webhook_url": url,
            "escalation_webhook_url": url,
            "escalation_secret": SECRET,
        },
    )

    for row in outboxes(runtime, brand_id):
        assert row["abandoned_at"] is not None


@pytest.fixture
def tls_receiver(runtime, tmp_path):
    """An https receiver on 127.0.0.2 whose certificate names "localhost" only,
    and the file of the authority that signed it."""
    authority, certificate, key = write_authority(tmp_path, "webhook-ca")
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(write_localhost_certificate(tmp_path, certificate, key))
    now_s = int(runtime.clock.now().timestamp())
    running = Receiver("127.0.0.2", 0, now_s, tls=server_tls)
    yield running, str(authority)
    running.close()


@pytest.mark.allow_hosts(["127.0.0.1", "127.0.0.2"])
def test_an_https_webhook_on_the_checked_address_is_verified_for_its_own_name(
    runtime, brand_id, tls_receiver
) -> None:
    # The certificate names localhost, not 127.0.0.2: the handshake succeeds only
    # when the name sent (SNI) and checked is the URL's host.
    server, authority = tls_receiver
    queue_both(runtime, brand_id, f"https://localhost:{server.port}/hook")
    runtime.resolve = ChangingResolver(["127.0.0.2"])
    runtime.ca_file = authority

    sent_alerts = alerts.deliver_pending(runtime)
    sent_escalations = escalations.deliver_pending(runtime)

    assert sent_alerts["alerts_sent"] == 1
    assert sent_escalations["escalations_sent"] == 1
    assert [each["host"] for each in server.received] == [
        f"localhost:{server.port}"
    ] * 2
    assert server.received[1]["verified"] is True


@pytest.mark.allow_hosts(["127.0.0.1", "127.0.0.2"])
def test_an_https_webhook_whose_certificate_does_not_name_its_host_is_not_sent(
    runtime, brand_id, tls_receiver
) -> None:
    server, authority = tls_receiver
    queue_both(runtime, brand_id, f"https://127.0.0.2:{server.port}/hook")
    runtime.ca_file = authority

    failed = alerts.deliver_pending(runtime)

    assert failed["alerts_failed"] == 1 and server.received == []
    alert, _ = outboxes(runtime, brand_id)
    assert alert["abandoned_at"] is None


def with_private_ca(runtime, ca_file: str) -> None:
    """Trust `ca_file` besides the usual authorities, as CARTCAST_WEBHOOK_CA_FILE
    makes a deployment do."""
    runtime.settings = dataclasses.replace(runtime.settings, webhook_ca_file=ca_file)


@pytest.mark.allow_hosts(["127.0.0.1", "127.0.0.2"])
def test_a_crm_whose_certificate_a_private_ca_signed_is_sent_to_with_the_ca_file(
    runtime, brand_id, tls_receiver
) -> None:
    # Arrange: the runtime trusts certifi's authorities (ca_file None), which never
    # signed the receiver's certificate; the deployment names its private CA.
    server, authority = tls_receiver
    queue_both(runtime, brand_id, f"https://localhost:{server.port}/hook")
    runtime.resolve = ChangingResolver(["127.0.0.2"])
    with_private_ca(runtime, authority)

    # Act
    sent_alerts = alerts.deliver_pending(runtime)
    sent_escalations = escalations.deliver_pending(runtime)

    # Assert
    assert sent_alerts["alerts_sent"] == 1
    assert sent_escalations["escalations_sent"] == 1
    assert server.received[1]["verified"] is True


@pytest.mark.allow_hosts(["127.0.0.1", "127.0.0.2"])
def test_without_the_ca_file_a_private_ca_s_certificate_is_not_trusted(
    runtime, brand_id, tls_receiver
) -> None:
    server, _ = tls_receiver
    queue_both(runtime, brand_id, f"https://localhost:{server.port}/hook")
    runtime.resolve = ChangingResolver(["127.0.0.2"])

    failed = alerts.deliver_pending(runtime)

    assert failed["alerts_failed"] == 1 and server.received == []
    alert, _ = outboxes(runtime, brand_id)
    assert alert["last_error"] == "webhook unreachable: SSLError"


@pytest.mark.allow_hosts(["127.0.0.1", "127.0.0.2"])
def test_the_ca_file_adds_to_the_trusted_authorities_and_replaces_none(
    runtime, brand_id, tls_receiver, tmp_path
) -> None:
    # The runtime's own authorities (certifi's in a deployment; here the one that
    # signed the receiver) still count when the file names another.
    server, authority = tls_receiver
    unrelated, _, _ = write_authority(tmp_path, "unrelated-ca")
    queue_both(runtime, brand_id, f"https://localhost:{server.port}/hook")
    runtime.resolve = ChangingResolver(["127.0.0.2"])
    runtime.ca_file = authority
    with_private_ca(runtime, str(unrelated))

    sent = alerts.deliver_pending(runtime)

    assert sent["alerts_sent"] == 1


@pytest.mark.allow_hosts(["127.0.0.1", "127.0.0.2"])
def test_a_ca_file_whose_comments_are_not_ascii_is_loaded_as_the_cold_start_did(
    runtime, brand_id, tls_receiver, tmp_path
) -> None:
    # Arrange: a bundle whose comment names its issuer in UTF-8, as `openssl x509
    # -text` and distributions' bundles write them; TLS loads it, so the cold
    # start's check accepted it.
    from cartcast import settings

    server, authority = tls_receiver
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(
        "# Issuer: O=Soci\u00e9t\u00e9 Exemple\n".encode()
        + Path(authority).read_bytes()
    )
    settings.load(
        {"DATABASE_URL": "postgresql://x", "CARTCAST_WEBHOOK_CA_FILE": str(bundle)}
    )
    queue_both(runtime, brand_id, f"https://localhost:{server.port}/hook")
    runtime.resolve = ChangingResolver(["127.0.0.2"])
    with_private_ca(runtime, str(bundle))

    # Act
    sent = alerts.deliver_pending(runtime)

    # Assert
    assert sent["alerts_sent"] == 1


@pytest.mark.allow_hosts(["127.0.0.1", "127.0.0.2"])
def test_a_ca_file_emptied_since_the_cold_start_is_a_configuration_error(
    runtime, brand_id, tls_receiver, tmp_path
) -> None:
    # Arrange: the file the cold start checked now holds no PEM block at all.
    from cartcast.errors import ConfigurationError

    server, _ = tls_receiver
    emptied = tmp_path / "emptied.pem"
    emptied.write_text("# the bundle was truncated by a bad deploy\n")
    queue_both(runtime, brand_id, f"https://localhost:{server.port}/hook")
    runtime.resolve = ChangingResolver(["127.0.0.2"])
    with_private_ca(runtime, str(emptied))

    # Act / Assert: named as the deployment's to fix, as an unreadable file is.
    with pytest.raises(ConfigurationError, match="holds no PEM certificate"):
        alerts.deliver_pending(runtime)
    assert server.received == []


@pytest.mark.allow_hosts(["127.0.0.1", "127.0.0.2"])
def test_the_ca_file_is_read_once_and_its_certificates_serve_later_deliveries(
    runtime, brand_id, tls_receiver, tmp_path
) -> None:
    # Arrange: a first delivery reads the deployment's CA file; a later deploy
    # step then removes it.
    server, authority = tls_receiver
    ca_file = tmp_path / "private-ca.pem"
    ca_file.write_bytes(Path(authority).read_bytes())
    runtime.resolve = ChangingResolver(["127.0.0.2"])
    with_private_ca(runtime, str(ca_file))
    queue_both(runtime, brand_id, f"https://localhost:{server.port}/hook")
    first = escalations.deliver_pending(runtime)
    ca_file.unlink()

    # Act: the alert queued beside it goes out now.
    second = alerts.deliver_pending(runtime)

    # Assert: the TLS context built for the first served the second; the file
    # is not read again at each delivery.
    assert first["escalations_sent"] == 1
    assert second["alerts_sent"] == 1


class ConnectProxy:
    """An egress proxy on 127.0.0.1 that takes CONNECT alone, records each one's
    target and Proxy-Authorization, and pipes the bytes both ways."""

    def __init__(self) -> None:
        connects = self.connects = []

        class Handler(BaseHTTPRequestHandler):
            def do_CONNECT(self) -> None:
                connects.append((self.path, self.headers.get("Proxy-Authorization")))
                host, _, port = self.path.rpartition(":")
                with socket.create_connection((host, int(port))) as upstream:
                    self.send_response(200, "Connection established")
                    self.end_headers()
                    pipe(self.connection, upstream)
                self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self.server = serve_in_thread("127.0.0.1", 0, Handler)
        self.url = f"http://cartcast:s%40cret@127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def pipe(client: socket.socket, upstream: socket.socket) -> None:
    """Copy bytes between the two sockets until either side closes."""
    while True:
        readable, _, _ = select.select([client, upstream], [], [])
        for each in readable:
            data = each.recv(65536)
            if not data:
                return
            (upstream if each is client else client).sendall(data)


@pytest.fixture
def proxy():
    running = ConnectProxy()
    yield running
    running.close()


@pytest.mark.allow_hosts(["127.0.0.1", "127.0.0.2"])
def test_an_https_webhook_is_tunnelled_through_the_proxy_to_the_checked_address(
    runtime, brand_id, tls_receiver, proxy
) -> None:
    # Arrange: HTTPS_PROXY names the proxy; the brand's name resolves to
    # 127.0.0.2, where the receiver is, with a certificate for "localhost" alone.
    server, authority = tls_receiver
    queue_both(runtime, brand_id, f"https://localhost:{server.port}/hook")
    runtime.resolve = ChangingResolver(["127.0.0.2"])
    runtime.ca_file = authority
    runtime.settings = dataclasses.replace(
        runtime.settings, webhook_proxy_url=proxy.url
    )

    # Act
    sent = alerts.deliver_pending(runtime), escalations.deliver_pending(runtime)

    # Assert: each CONNECT named the checked address, so the proxy resolved
    # nothing, and TLS inside the tunnel was checked for the URL's host.
    assert sent[0]["alerts_sent"] == 1 and sent[1]["escalations_sent"] == 1
    credentials = base64.b64encode(b"cartcast:s@cret").decode("ascii")
    assert proxy.connects == [(f"127.0.0.2:{server.port}", f"Basic {credentials}")] * 2
    assert [each["host"] for each in server.received] == [
        f"localhost:{server.port}"
    ] * 2


def queue_both_for_the_tls_receiver(
    runtime, brand_id: str, tls_receiver, **settings: str
) -> Any:
    """Queue both deliveries to the receiver's "localhost", which resolves to
    127.0.0.2 and is trusted, with `settings` replaced; return the receiver."""
    server, authority = tls_receiver
    queue_both(runtime, brand_id, f"https://localhost:{server.port}/hook")
    runtime.resolve = ChangingResolver(["127.0.0.2"])
    runtime.ca_file = authority
    runtime.settings = dataclasses.replace(runtime.settings, **settings)
    return server


def proxy_warnings(caplog) -> list[tuple[str, str]]:
    """The level and the requests named of each line about the egress proxy."""
    return [
        (record.levelname, record.fields["requests"])
        for record in caplog.records
        if "egress proxy" in record.getMessage()
    ]


@pytest.mark.allow_hosts(["127.0.0.1", "127.0.0.2"])
def test_webhooks_sent_around_the_egress_proxy_are_warned_of_once_an_instance(
    runtime, brand_id, tls_receiver, caplog
) -> None:
    # Arrange: HTTP_PROXY alone is set, which no https webhook is tunnelled through.
    queue_both_for_the_tls_receiver(
        runtime, brand_id, tls_receiver, proxy_variable="HTTP_PROXY"
    )

    # Act
    sent = alerts.deliver_pending(runtime), escalations.deliver_pending(runtime)

    # Assert
    assert sent[0]["alerts_sent"] == 1 and sent[1]["escalations_sent"] == 1
    assert proxy_warnings(caplog) == [("WARNING", "webhook deliveries")]


@pytest.mark.allow_hosts(["127.0.0.1", "127.0.0.2"])
def test_webhooks_tunnelled_through_the_proxy_are_no_warning(
    runtime, brand_id, tls_receiver, proxy, caplog
) -> None:
    queue_both_for_the_tls_receiver(
        runtime,
        brand_id,
        tls_receiver,
        proxy_variable="HTTPS_PROXY",
        webhook_proxy_url=proxy.url,
    )

    sent = alerts.deliver_pending(runtime)

    assert sent["alerts_sent"] == 1 and len(proxy.connects) == 1
    assert proxy_warnings(caplog) == []


@pytest.mark.allow_hosts(["127.0.0.1", "127.0.0.2"])
def test_a_webhook_host_no_proxy_names_goes_direct(
    runtime, brand_id, tls_receiver, proxy
) -> None:
    server, authority = tls_receiver
    queue_both(runtime, brand_id, f"https://localhost:{server.port}/hook")
    runtime.resolve = ChangingResolver(["127.0.0.2"])
    runtime.ca_file = authority
    runtime.settings = dataclasses.replace(
        runtime.settings, webhook_proxy_url=proxy.url, no_proxy="example.org,localhost"
    )

    sent = alerts.deliver_pending(runtime)

    assert sent["alerts_sent"] == 1
    assert proxy.connects == []


def test_a_refused_webhook_host_is_looked_up_once_a_run_for_all_its_rows(
    runtime, brand_id
) -> None:
    # Two alerts and two escalations wait for one URL whose host is internal: the
    # first row's lookup refuses it, and the others are refused on that answer.
    url = "https://crm.example.test/hook"
    runtime.settings = dataclasses.replace(runtime.settings, environment="cloud")
    queue_both(runtime, brand_id, url)
    now = runtime.clock.now()
    with runtime.database.transaction() as tx:
        alerts.raise_alert(
            tx, brand_id=brand_id, kind="crisis", episode="2", text="again", now=now
        )
        mention_id = tx.scalar(
            INSERT_MENTION.replace("1900000000000000001", "1900000000000000002"),
            brand_id=brand_id,
            now=now,
        )
        tx.execute(
            INSERT_ESCALATION,
            brand_id=brand_id,
            mention_id=mention_id,
            body=BODY,
            now=now,
        )

    runtime.resolve = ChangingResolver(["10.0.0.7"])
    sent_alerts = alerts.deliver_pending(runtime)
    alert_lookups = list(runtime.resolve.asked)
    runtime.resolve = ChangingResolver(["10.0.0.7"])
    sent_escalations = escalations.deliver_pending(runtime)

    assert sent_alerts["alerts_failed"] == 2
    assert sent_escalations["escalations_failed"] == 2
    assert alert_lookups == runtime.resolve.asked == [("crm.example.test", 443)]
    with runtime.database.transaction() as tx:
        rows = alerts.list_alerts(tx, brand_id=brand_id) + (
            escalations.list_escalations(tx, brand_id=brand_id)
        )
    assert len(rows) == 4
    for row in rows:
        assert row["abandoned_at"] is not None
        assert row["last_error"].startswith("webhook refused: ")
        assert "crm.example.test resolves to an internal address" in row["last_error"]
        assert "10.0.0.7" not in row["last_error"]


def test_the_functions_that_deliver_webhooks_load_the_pinned_client_on_a_delivery():
    # publish_due_posts, poll_mentions and score_sentiment import alerts and
    # escalations on their cold start; most of their runs deliver no webhook.
    code = (
        "import sys\n"
        "import main\n"
        "from cartcast import alerts, escalations, publishing, scoring, webhooks\n"
        "print(sorted({'cartcast.pinned_http', 'urllib3'} & set(sys.modules)))\n"
    )

    assert printed_by_a_fresh_functions_interpreter(code) == "[]"


class RepairedDuringTheLookup:
    """The brand's DNS for the old URL answers an internal address; while it is
    being asked, the owner sets `field` to a new URL (a PATCH of its own, which
    commits), as an owner who fixes the refused webhook may during a run."""

    def __init__(self, runtime, brand_id: str, field: str, url: str) -> None:
        self.runtime, self.brand_id = runtime, brand_id
        self.field, self.url = field, url
        self.asked: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append((host, port))
        if len(self.asked) == 1:
            body = {self.field: self.url}
            with self.runtime.database.transaction() as tx:
                admin_updates_brand(tx, self.brand_id, body, self.runtime.clock.now())
        return ["10.0.0.7"]


@pytest.mark.parametrize(
    "set_url",
    # A new URL, or the same one again once its DNS is repaired.
    ["https://hooks.new.example/hook", "https://hooks.old.example/hook"],
)
@pytest.mark.parametrize(
    ("outbox", "field"),
    [(alerts, "alert_webhook_url"), (escalations, "escalation_webhook_url")],
)
def test_a_row_refused_while_its_url_is_being_repaired_is_not_lost(
    runtime, brand_id, outbox, field, set_url
) -> None:
    # Arrange: the row was read with the old URL before the PATCH committed.
    runtime.settings = dataclasses.replace(runtime.settings, environment="cloud")
    queue_both(runtime, brand_id, "https://hooks.old.example/hook")
    runtime.resolve = RepairedDuringTheLookup(runtime, brand_id, field, set_url)

    # Act
    outbox.deliver_pending(runtime)

    # Assert: the row waits for the next run, which sends it to the new URL.
    assert runtime.resolve.asked == [("hooks.old.example", 443)]
    alert, escalation = outboxes(runtime, brand_id)
    row = alert if outbox is alerts else escalation
    assert row["abandoned_at"] is None, row["last_error"]


def test_a_proxy_named_without_a_port_is_the_one_on_port_80(runtime) -> None:
    from urllib.parse import urlsplit

    from cartcast import webhooks

    runtime.settings = dataclasses.replace(
        runtime.settings, webhook_proxy_url="http://cartcast:s%40cret@proxy.internal"
    )

    proxy = webhooks.tunnel_proxy(
        runtime.settings, urlsplit("https://hooks.shop.example/hook")
    )

    assert proxy == "http://cartcast:s%40cret@proxy.internal:80"


def test_a_no_proxy_entry_with_a_port_names_that_port_alone(runtime) -> None:
    from urllib.parse import urlsplit

    from cartcast import webhooks

    runtime.settings = dataclasses.replace(
        runtime.settings,
        webhook_proxy_url="http://proxy.internal:3128",
        no_proxy="hooks.shop.example:8443",
    )

    def proxy_for(url: str) -> str | None:
        return webhooks.tunnel_proxy(runtime.settings, urlsplit(url))

    assert proxy_for("https://hooks.shop.example:8443/hook") is None
    assert proxy_for("https://hooks.shop.example/hook") == "http://proxy.internal:3128"


@pytest.mark.allow_hosts(["127.0.0.1", "127.0.0.2"])
def test_a_refusal_learned_before_the_url_was_set_again_refuses_no_later_row(
    runtime, brand_id, tls_receiver
) -> None:
    # Arrange: two alerts wait for https://localhost; its DNS answers inside while
    # the owner sets the same URL again (DNS repaired), then the receiver's address.
    server, authority = tls_receiver
    url = f"https://localhost:{server.port}/hook"
    queue_both(runtime, brand_id, url)
    with runtime.database.transaction() as tx:
        alerts.raise_alert(
            tx,
            brand_id=brand_id,
            kind="crisis",
            episode="2",
            text="again",
            now=runtime.clock.now(),
        )
    repaired = RepairedDuringTheLookup(runtime, brand_id, "alert_webhook_url", url)
    answers = ChangingResolver(["10.0.0.7"], ["127.0.0.2"])
    runtime.resolve = lambda host, port: (repaired(host, port), answers(host, port))[1]
    runtime.ca_file = authority

    # Act
    alerts.deliver_pending(runtime)

    # Assert: the first waits for the next run; the second, read after the PATCH,
    # was not refused on the answer the first got before it.
    with runtime.database.transaction() as tx:
        first, second = alerts.list_alerts(tx, brand_id=brand_id)
    assert first["abandoned_at"] is None and first["delivered_at"] is None
    assert second["abandoned_at"] is None, second["last_error"]
    assert second["delivered_to"] == "webhook"
