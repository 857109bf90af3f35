"""A server that drips its answer's head cannot hold a run, webhook or image.

pinned_http bounded the connection and each read by the timeout, not the answer:
a server sending one header byte every tenth of the timeout keeps every read short
and the whole request open for as long as it likes. delivery_budget.py counts on a
POST ending about one webhook timeout past its start, and publishing on an image
read ending within three. The server here drips for four times the bound, and
stops only once the client has hung up, so a client that gave up in time always
fails and one that waited always succeeds: nothing is timed by the test.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from cartcast import images, pinned_http, webhooks
from cartcast.errors import TransientError
from tests.test_post_kinds import tiny_png

TIMEOUT_S = 1.0
DRIPS = 40


class DrippingServer:
    """Answers one request on 127.0.0.1 with a 200 whose head arrives a byte
    every `drip_s`, DRIPS bytes in all, then `rest`; it stops dripping when the
    client has gone."""

    def __init__(self, *, drip_s: float, rest: bytes) -> None:
        self.drip_s = drip_s
        self.rest = rest
        self.answered_in_full = False
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._answer, daemon=True)
        self.thread.start()

    def _answer(self) -> None:
        connection, _ = self.listener.accept()
        with connection:
            _read_request(connection)
            try:
                connection.sendall(b"HTTP/1.1 200 OK\r\nX-Drip: ")
                for _ in range(DRIPS):
                    time.sleep(self.drip_s)
                    connection.sendall(b"a")
                connection.sendall(b"\r\n" + self.rest)
                self.answered_in_full = True
            except (BrokenPipeError, ConnectionResetError):
                return  # The client gave up.

    def close(self) -> None:
        self.listener.close()
        self.thread.join(timeout=DRIPS * self.drip_s * 2)


def _read_request(connection: socket.socket) -> None:
    # All of it, body too: closing with bytes unread would reset the connection.
    received = b""
    while b"\r\n\r\n" not in received:
        received += connection.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.lower().split(b"\r\n")
            if line.startswith(b"content-length:")
        ),
        0,
    )
    while len(body) < length:
        body += connection.recv(65536)


@pytest.fixture
def dripping_server():
    server = DrippingServer(drip_s=TIMEOUT_S / 10, rest=b"Content-Length: 0\r\n\r\n")
    yield server
    server.close()


@pytest.fixture
def dripping_image_server():
    # Three timeouts bound an image read: drip for four times that.
    png = tiny_png()
    rest = b"Content-Type: image/png\r\nContent-Length: %d\r\n\r\n%b" % (len(png), png)
    server = DrippingServer(drip_s=TIMEOUT_S * 3 / 10, rest=rest)
    yield server
    server.close()


def test_a_webhook_whose_answer_drips_in_fails_instead_of_holding_the_run(
    runtime, dripping_server
) -> None:
    url = f"http://127.0.0.1:{dripping_server.port}/hook"

    problem = webhooks.post_webhook(
        runtime, url, b"{}", headers={}, timeout_s=TIMEOUT_S
    )

    # Counted as any timeout is: a failed delivery, retried after its back-off.
    assert problem == "webhook unreachable: ReadTimeoutError"
    dripping_server.close()
    assert not dripping_server.answered_in_full


def test_an_image_whose_answer_drips_in_is_left_for_the_next_run(
    dripping_image_server,
) -> None:
    url = f"http://127.0.0.1:{dripping_image_server.port}/mug.png"

    with pytest.raises(TransientError, match="by its deadline|too slowly"):
        images.fetch_image(url, timeout_s=TIMEOUT_S, loopback_only=True)

    # Given up on while the head was still dripping, not refused after it.
    dripping_image_server.close()
    assert not dripping_image_server.answered_in_full


# pytest-socket's --allow-hosts names 127.0.0.1 alone of the loopback block.
@pytest.mark.allow_hosts(["127.0.0.1", "127.0.0.2"])
def test_the_next_address_is_not_tried_once_the_deadline_has_passed() -> None:
    # Nothing listens on 127.0.0.2 at the listener's port, so the first address
    # refuses at once; the second would take the connection, but the deadline
    # (already past) leaves no time to try it.
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    with listener:
        with pytest.raises(TransientError, match="could not be read"):
            with pinned_http.pinned_request(
                "POST",
                f"http://localhost:{port}/hook",
                ["127.0.0.2", "127.0.0.1"],
                headers={},
                body=b"{}",
                timeout_s=TIMEOUT_S,
                deadline=time.monotonic() - 1,
                what="the webhook",
            ):
                pass

        # The kernel queues a connection the listener has not accepted: none came.
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()
