"""A TCP proxy on 127.0.0.1 in front of the database, that a run can cut.

`cut()` closes every connection through it at once (both ends see the socket
close, as when a Cloud SQL instance fails over or a NAT forgets a flow) and closes
each new one as soon as it is accepted, until `restore()`. The server behind it is
never touched: the proxy only forwards to the address DATABASE_URL names (TCP or
the embedded server's Unix socket).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import urllib.parse
from typing import Any

CHUNK = 65536


class CuttableProxy:
    def __init__(self, database_url: str) -> None:
        from cartcast.db import parse_database_url

        self.database_url = database_url
        self._upstream = parse_database_url(database_url)
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._cut = False
        self.cuts = 0
        self.refused = 0
        self.accepted = 0

    @property
    def port(self) -> int:
        assert self._listener is not None
        return self._listener.getsockname()[1]

    @property
    def url(self) -> str:
        """DATABASE_URL through the proxy: same user and database, its address."""
        parts = urllib.parse.urlsplit(self.database_url)
        user = parts.username or "postgres"
        password = f":{parts.password}" if parts.password else ""
        netloc = f"{user}{password}@127.0.0.1:{self.port}"
        return urllib.parse.urlunsplit(("postgresql", netloc, parts.path, "", ""))

    def start(self) -> CuttableProxy:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
        self._close_all()

    def __enter__(self) -> CuttableProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def cut(self) -> None:
        with self._lock:
            self._cut = True
            self.cuts += 1
        self._close_all()

    def restore(self) -> None:
        with self._lock:
            self._cut = False

    def _close_all(self) -> None:
        with self._lock:
            doomed, self._open = self._open, set()
        for sock in doomed:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                cut = self._cut
            if cut:
                self.refused += 1
                with contextlib.suppress(OSError):
                    client.close()
                continue
            try:
                server = self._connect_upstream()
            except OSError:
                client.close()
                continue
            self.accepted += 1
            with self._lock:
                self._open.update((client, server))
            for source, sink in ((client, server), (server, client)):
                threading.Thread(
                    target=self._pump, args=(source, sink), daemon=True
                ).start()

    def _connect_upstream(self) -> socket.socket:
        options: dict[str, Any] = self._upstream
        if "unix_sock" in options:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(options["unix_sock"])
            return sock
        return socket.create_connection((options["host"], options["port"]), 10)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(CHUNK)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
