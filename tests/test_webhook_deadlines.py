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


# Each phase of one request, bounded by the deadline rather than the per-operation
# timeout: pinned_http counts on urllib3 (2.8.0) reading `conn.timeout` before it
# connects, sends and waits for the head, and on http.client reading the whole
# answer through the connection's `response_class`. The timeout here is far past
# the server's patience and the deadline well short of it, so a client that kept
# to the deadline has hung up before the server gives in and answers in full, and
# one that waited out its timeout gets that answer: an upgrade of urllib3 that
# stops reading either makes these requests succeed. Nothing is timed.
DEADLINE_S = 0.5
PATIENCE_S = DEADLINE_S * 8
PER_OPERATION_TIMEOUT_S = PATIENCE_S * 10
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
# More than loopback's socket buffers hold, so the send waits on the server.
SENT_BODY_BYTES = 64 * 1024 * 1024


class StallingServer:
    """Takes one connection on 127.0.0.1 and stalls it at one phase, until the
    client hangs up or PATIENCE_S has passed; then it answers in full."""

    def __init__(self, phase: str) -> None:
        self.phase = phase
        self.client_gave_up = False
        self.answered_in_full = False
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._stall, daemon=True)
        self.thread.start()

    def _stall(self) -> None:
        connection, _ = self.listener.accept()
        with connection:
            try:
                getattr(self, f"_stall_{self.phase}")(connection)
            except (BrokenPipeError, ConnectionResetError):
                self.client_gave_up = True

    def _stall_head(self, connection: socket.socket) -> None:
        # Reads the request, sends nothing, and waits for the client to hang up.
        _read_request(connection)
        connection.settimeout(PATIENCE_S)
        try:
            self.client_gave_up = connection.recv(1) == b""
        except TimeoutError:
            connection.sendall(ANSWER)
            self.answered_in_full = True

    def _stall_body(self, connection: socket.socket) -> None:
        # The head at once, then the body a byte at a time past the deadline.
        _read_request(connection)
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % DRIPS)
        for _ in range(DRIPS):
            time.sleep(PATIENCE_S / DRIPS)
            connection.sendall(b"a")
        self.answered_in_full = True

    def _stall_send(self, connection: socket.socket) -> None:
        # Reads none of the request for a while, so the client's send blocks once
        # the kernel's buffers are full; then reads what came, to the request's
        # end (and answers) or to the client hanging up.
        time.sleep(PATIENCE_S)
        connection.settimeout(PATIENCE_S)
        received = 0
        while received < SENT_BODY_BYTES:
            chunk = connection.recv(1 << 20)
            if not chunk:
                self.client_gave_up = True
                return
            received += len(chunk)
        connection.sendall(ANSWER)
        self.answered_in_full = True

    def close(self) -> None:
        self.listener.close()
        self.thread.join(timeout=PATIENCE_S * 3)


def _request_by_deadline(port: int, *, body: bytes = b"{}") -> None:
    with pinned_http.pinned_request(
        "POST",
        f"http://127.0.0.1:{port}/hook",
        ["127.0.0.1"],
        headers={},
        body=body,
        timeout_s=PER_OPERATION_TIMEOUT_S,
        deadline=time.monotonic() + DEADLINE_S,
        what="the webhook",
    ) as response:
        response.read()


def _read_timeout_of(failure: BaseException) -> BaseException | None:
    # The head's wait fails inside pinned_request, a TransientError caused by
    # urllib3's ReadTimeoutError; the body's, in the caller's read, as that error.
    import urllib3

    for error in (failure, failure.__cause__):
        if isinstance(error, urllib3.exceptions.ReadTimeoutError):
            return error
    return None


@pytest.mark.parametrize("phase", ["head", "body"])
def test_an_answer_stalled_past_the_deadline_fails_by_it(phase: str) -> None:
    import urllib3

    server = StallingServer(phase)

    with pytest.raises((TransientError, urllib3.exceptions.HTTPError)) as failed:
        _request_by_deadline(server.port)

    assert _read_timeout_of(failed.value) is not None
    server.close()
    assert server.client_gave_up and not server.answered_in_full


def test_a_request_the_server_does_not_read_fails_by_the_deadline() -> None:
    server = StallingServer("send")

    with pytest.raises(TransientError, match="by its deadline"):
        _request_by_deadline(server.port, body=b"x" * SENT_BODY_BYTES)

    server.close()
    assert server.client_gave_up and not server.answered_in_full


def test_a_connection_the_server_does_not_take_fails_by_the_deadline() -> None:
    import urllib3

    # A listener with no room in its queue: the one waiting connection fills it,
    # and the kernel drops the client's handshake until the queue empties.
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    port = listener.getsockname()[1]
    queued = socket.create_connection(("127.0.0.1", port))
    client_done = threading.Event()
    answered = []

    def take_connections_once_patience_runs_out() -> None:
        if client_done.wait(PATIENCE_S):
            return
        listener.accept()[0].close()  # The one queued: room for the client's.
        listener.settimeout(PATIENCE_S * 4)
        connection, _ = listener.accept()
        with connection:
            _read_request(connection)
            connection.sendall(ANSWER)
            answered.append(True)

    server = threading.Thread(target=take_connections_once_patience_runs_out)
    server.start()

    with listener, queued:
        with pytest.raises(TransientError, match="could not be read") as failed:
            _request_by_deadline(port)
        client_done.set()
        server.join()

    assert isinstance(failed.value.__cause__, urllib3.exceptions.ConnectTimeoutError)
    assert not answered
