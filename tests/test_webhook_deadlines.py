"""A webhook server that drips its answer's head cannot hold a run.

pinned_http bounds the connection and each read by the timeout, not the answer:
a server sending one header byte every tenth of the timeout keeps every read short and
the whole request open for as long as it likes. delivery_budget.py counts on a
POST ending about one webhook timeout past its start. The server here drips
for four timeouts.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from cartcast import webhooks

TIMEOUT_S = 1.0
DRIPS = 40


class DrippingServer:
    """Answers one request on 127.0.0.1 with a 200 whose head arrives a byte
    every TIMEOUT_S / 10, DRIPS bytes in all."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._answer, daemon=True)
        self.thread.start()

    def _answer(self) -> None:
        connection, _ = self.listener.accept()
        with connection:
            _read_request(connection)
            connection.sendall(b"HTTP/1.1 200 OK\r\nX-Drip: ")
            for _ in range(DRIPS):
                time.sleep(TIMEOUT_S / 10)
                connection.sendall(b"a")
            connection.sendall(b"\r\nContent-Length: 0\r\n\r\n")

    def close(self) -> None:
        self.listener.close()
        self.thread.join(timeout=DRIPS * TIMEOUT_S)


def _read_request(connection: socket.socket) -> None:
    # All of it, body too: closing with bytes unread would reset the connection.
    received = b""
    while b"\r\n\r\n" not in received:
        received += connection.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.lower().split(b"\r\n")
        if line.startswith(b"content-length:")
    )
    while len(body) < length:
        body += connection.recv(65536)


@pytest.fixture
def dripping_server():
    server = DrippingServer()
    yield server
    server.close()


def test_a_webhook_whose_answer_drips_in_fails_instead_of_holding_the_run(
    runtime, dripping_server
) -> None:
    url = f"http://127.0.0.1:{dripping_server.port}/hook"

    problem = webhooks.post_webhook(
        runtime, url, b"{}", headers={}, timeout_s=TIMEOUT_S
    )

    assert problem is not None, problem
