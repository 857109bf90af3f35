"""The connection pool hands out only connections that are in step with the server."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cartcast import db, errors
from cartcast.errors import TransientError
from cartcast.settings import Settings


def test_a_connection_that_failed_mid_message_is_never_reused(runtime) -> None:
    database = runtime.database
    with pytest.raises(UnicodeEncodeError):
        with database.transaction() as tx:
            tx.rows("SELECT CAST(:value AS text) AS value", value="P\ud800")

    answers = []
    for expected in ("first", "second", "third"):
        with database.transaction() as tx:
            answers.append(tx.scalar("SELECT CAST(:v AS text) AS v", v=expected))

    assert answers == ["first", "second", "third"]


# Advisory lock class 7321 is this test's own.
TAKE_TEST_LOCK = "SELECT true AS taken FROM pg_advisory_xact_lock(7321, 0)"


def test_a_transaction_left_idle_past_its_bound_is_ended_and_frees_its_locks(
    runtime,
) -> None:
    """What an instance lost in the middle of a caption request leaves: the
    server ends its session, so a wait on its lock ends too (decision 0106)."""
    database = runtime.database
    taken_after_it = None

    with pytest.raises(TransientError):
        with database.transaction() as left_idle:
            left_idle.scalar(TAKE_TEST_LOCK)
            left_idle.end_if_idle_longer_than(0.2)
            # Waits on the lock until the server ends the idle transaction.
            with database.transaction() as waiting:
                taken_after_it = waiting.scalar(TAKE_TEST_LOCK)
            left_idle.scalar("SELECT 1 AS one")

    assert taken_after_it is True
    with database.transaction() as tx:
        assert tx.scalar("SELECT 41 + 1 AS answer") == 42


def test_a_server_error_rolls_back_and_keeps_the_connection_usable(runtime) -> None:
    database = runtime.database
    with pytest.raises(Exception, match="division by zero"):
        with database.transaction() as tx:
            tx.execute("SELECT 1 / 0")

    with database.transaction() as tx:
        assert tx.scalar("SELECT 41 + 1 AS answer") == 42


def test_after_the_server_drops_connections_every_call_works(
    runtime,
) -> None:
    database = runtime.database
    with database.transaction() as first, database.transaction() as second:
        pids = [
            first.scalar("SELECT pg_backend_pid() AS pid"),
            second.scalar("SELECT pg_backend_pid() AS pid"),
        ]
    admin = db.connect_from_settings(runtime.settings)
    with admin.transaction() as tx:
        for pid in pids:
            # With a timeout, PostgreSQL waits until the backend has really gone.
            tx.scalar("SELECT pg_terminate_backend(:pid, 5000) AS done", pid=pid)
    admin.close()

    failures = 0
    for _ in range(3):
        try:
            with database.transaction() as tx:
                tx.scalar("SELECT 1 AS one")
        except TransientError:
            failures += 1

    assert failures == 0


def test_connections_dropped_while_pooled_are_replaced_unseen_however_fresh(
    runtime,
) -> None:
    """A proxy or failover can cut pooled connections a moment after their last
    use, before any idle check would run: BEGIN finds each dead, and the call goes
    on with a new connection instead of failing until the platform retries."""
    database = db.Database(
        lambda: db._connect_pg8000(
            db.parse_database_url(runtime.settings.database_url)
        ),
        idle_check_after_s=3600,
    )
    with database.transaction() as first, database.transaction() as second:
        pids = {
            first.scalar("SELECT pg_backend_pid() AS pid"),
            second.scalar("SELECT pg_backend_pid() AS pid"),
        }
    with runtime.database.transaction() as admin:
        for pid in pids:
            admin.scalar("SELECT pg_terminate_backend(:pid, 5000) AS done", pid=pid)

    answers = []
    for _ in range(3):
        with database.transaction() as tx:
            answers.append(tx.scalar("SELECT pg_backend_pid() AS pid"))

    assert not pids & set(answers)
    database.close()


def test_a_new_connection_that_cannot_begin_is_the_databases_failure(
    runtime,
) -> None:
    database = db.Database(
        lambda: db._connect_pg8000(db.parse_database_url(runtime.settings.database_url))
    )
    with database.transaction() as tx:
        pid = tx.scalar("SELECT pg_backend_pid() AS pid")
    doomed = db.Database(lambda: _terminated(runtime, pid, database))

    with pytest.raises(TransientError, match="database connection failed"):
        with doomed.transaction() as tx:
            tx.scalar("SELECT 1 AS one")


def _terminated(runtime, pid: int, database: db.Database):
    """Hand out the pooled connection of `pid` after its backend was terminated."""
    with runtime.database.transaction() as admin:
        admin.scalar("SELECT pg_terminate_backend(:pid, 5000) AS done", pid=pid)
    statements, _ = database._checkout()
    return statements.connection


def test_a_connection_idle_through_a_server_restart_is_replaced_unseen(runtime) -> None:
    database = db.Database(
        lambda: db._connect_pg8000(
            db.parse_database_url(runtime.settings.database_url)
        ),
        idle_check_after_s=0,
    )
    with database.transaction() as tx:
        pid = tx.scalar("SELECT pg_backend_pid() AS pid")
    with runtime.database.transaction() as admin:
        admin.scalar("SELECT pg_terminate_backend(:pid, 5000) AS done", pid=pid)

    with database.transaction() as tx:
        answer = tx.scalar("SELECT 42 AS answer")

    assert answer == 42
    database.close()


def test_a_database_without_the_schema_names_the_fix(database_url) -> None:
    from cartcast.errors import ConfigurationError
    from cartcast.settings import Settings
    from infra import pg

    empty = pg.create_database(database_url, "cartcast_test_empty")
    database = db.connect_from_settings(Settings(database_url=empty))
    try:
        with pytest.raises(ConfigurationError, match="make migrate"):
            with database.transaction() as tx:
                tx.rows("SELECT id FROM brands")
    finally:
        database.close()
        pg.drop_database(empty)


ACTOR = "SELECT current_setting('cartcast.actor', true) AS actor"


def test_the_actor_of_a_block_reaches_every_transaction_and_no_other(runtime) -> None:
    from cartcast import post_events

    with post_events.acting_as("system:drain_caption_jobs"):
        with runtime.database.transaction() as tx:
            inside = tx.scalar(ACTOR)
        with pytest.raises(errors.ConfigurationError):
            with runtime.database.transaction() as tx:
                raise errors.ConfigurationError("rolled back")
        with runtime.database.transaction() as tx:
            after_rollback = tx.scalar(ACTOR)
    with runtime.database.transaction() as tx:
        outside = tx.scalar(ACTOR)

    assert inside == after_rollback == "system:drain_caption_jobs"
    assert outside in ("", None)


def test_a_transaction_naming_its_own_actor_overrides_the_block(runtime) -> None:
    from cartcast import post_events

    with post_events.acting_as("system:publish_due_posts"):
        with runtime.database.transaction() as tx:
            post_events.act_as(tx, "admin")
            named = tx.scalar(ACTOR)
        with runtime.database.transaction() as tx:
            next_one = tx.scalar(ACTOR)

    assert (named, next_one) == ("admin", "system:publish_due_posts")


def one_connection(runtime) -> db.Database:
    """A pool of its own, so every transaction below runs on the same connection."""
    options = db.parse_database_url(runtime.settings.database_url)
    return db.Database(lambda: db._connect_pg8000(options), idle_max=1)


PREPARED_LIKE = """
SELECT count(*) AS prepared FROM pg_prepared_statements WHERE statement LIKE :pattern
"""


def test_a_statement_is_prepared_once_on_a_connection_then_run_by_name(
    runtime,
) -> None:
    database = one_connection(runtime)
    answers = []
    for value in range(3):
        with database.transaction() as tx:
            answers.append(
                tx.scalar("SELECT CAST(:v AS integer) + 1 AS probe", v=value)
            )
    with database.transaction() as tx:
        prepared = tx.scalar(PREPARED_LIKE, pattern="%AS probe%")
    database.close()

    assert answers == [1, 2, 3]
    assert prepared == 1


def test_a_prepared_statement_outlives_the_rollback_of_its_transaction(
    runtime,
) -> None:
    database = one_connection(runtime)
    divide = "SELECT 84 / CAST(:by AS integer) AS quotient"
    with database.transaction() as tx:
        tx.scalar(divide, by=1)
    with pytest.raises(Exception, match="division by zero"):
        with database.transaction() as tx:
            tx.scalar(divide, by=0)
    with database.transaction() as tx:
        quotient = tx.scalar(divide, by=2)
        prepared = tx.scalar(PREPARED_LIKE, pattern="%AS quotient%")
    database.close()

    assert (quotient, prepared) == (42, 1)


def test_a_statement_whose_table_changed_shape_fails_once_then_works(
    runtime,
) -> None:
    database = one_connection(runtime)
    read = "SELECT * FROM shape_probe WHERE a > :above"
    try:
        with runtime.database.transaction() as tx:
            tx.execute("CREATE TABLE shape_probe (a integer)")
            tx.execute("INSERT INTO shape_probe VALUES (1)")
        with database.transaction() as tx:
            before = tx.rows(read, above=0)
        with runtime.database.transaction() as tx:
            tx.execute("ALTER TABLE shape_probe ADD COLUMN b text")

        # PostgreSQL refuses a prepared statement whose result changed shape; the
        # connection forgets it, and the next transaction prepares it anew.
        with pytest.raises(Exception, match="cached plan must not change result type"):
            with database.transaction() as tx:
                tx.rows(read, above=0)
        with database.transaction() as tx:
            after = tx.rows(read, above=0)
    finally:
        database.close()
        with runtime.database.transaction() as tx:
            tx.execute("DROP TABLE IF EXISTS shape_probe")

    assert before == [{"a": 1}]
    assert after == [{"a": 1, "b": None}]


def test_a_connection_whose_statements_are_full_runs_the_rest_unnamed(runtime) -> None:
    options = db.parse_database_url(runtime.settings.database_url)
    statements = db.Statements(db._connect_pg8000(options), keep=1)
    statements.begin()
    answers = [
        statements.run(f"SELECT CAST(:v AS integer) + {extra} AS kept", {"v": 1}).rows
        for extra in range(3)
    ]
    prepared = statements.run(PREPARED_LIKE, {"pattern": "%AS kept%"}).rows
    statements.commit()
    statements.connection.close()

    assert answers == [[[1]], [[2]], [[3]]]
    assert prepared == [[1]]


def test_a_unix_socket_url_skips_tls_and_a_tcp_url_keeps_pg8000s_default() -> None:
    on_socket = db.parse_database_url("postgresql://app@/shop?host=/run/postgresql")
    on_tcp = db.parse_database_url("postgresql://app@db.internal:6432/shop")

    assert on_socket["unix_sock"] == "/run/postgresql/.s.PGSQL.5432"
    assert on_socket["ssl_context"] is False
    # None: ask for TLS, go on in the clear when the server refuses (pg8000's).
    assert "ssl_context" not in on_tcp


def test_a_unix_socket_connection_opens_with_the_startup_message(tmp_path) -> None:
    """PostgreSQL refuses TLS on a Unix socket, so no SSLRequest is sent first."""
    import socket
    import struct
    import threading

    path = tmp_path / ".s.PGSQL.5432"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    first: list[int] = []

    def accept_one() -> None:
        connection, _ = listener.accept()
        with connection:
            length, code = struct.unpack("!ii", connection.recv(8))
            first.append(code)

    server = threading.Thread(target=accept_one)
    server.start()
    options = db.parse_database_url(f"postgresql://app@/shop?host={tmp_path}")
    with pytest.raises(Exception):  # noqa: B017, PT011 (the listener hangs up)
        db._connect_pg8000(options)
    server.join(5)
    listener.close()

    # An SSLRequest would carry code 80877103; a StartupMessage, protocol 3.0.
    assert first == [196608]


def test_a_server_refusing_a_unix_socket_connection_is_named_not_a_network_error(
    tmp_path,
) -> None:
    """The server hangs up after its refusal; pg8000's goodbye then fails to send."""
    path = tmp_path / ".s.PGSQL.5432"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    refusal = b'SFATAL\0C3D000\0Mdatabase "shop" does not exist\0\0'

    def refuse_one() -> None:
        connection, _ = listener.accept()
        with connection:
            length = struct.unpack("!i", connection.recv(4))[0]
            connection.recv(length - 4)
            # Reading shut first, so the client's Terminate meets a closed pipe
            # every time, as it does when PostgreSQL exits ahead of it.
            connection.shutdown(socket.SHUT_RD)
            connection.sendall(b"E" + struct.pack("!i", 4 + len(refusal)) + refusal)

    server = threading.Thread(target=refuse_one)
    server.start()
    url = f"postgresql://app@/shop?host={tmp_path}"
    database = db.connect_from_settings(Settings(database_url=url))
    with pytest.raises(TransientError) as refused:
        with database.transaction():
            pass
    server.join(5)
    listener.close()
    database.close()

    assert 'database "shop" does not exist' in str(refused.value)


# --- scramp imported on first use (decision 0036) --------------------------------

FUNCTIONS = Path(__file__).resolve().parents[1] / "functions"


def run_fresh(code: str, *args: str) -> str:
    """Run `code` in a new interpreter (this one imported pg8000 long ago)."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        env={**os.environ, "PYTHONPATH": str(FUNCTIONS)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_connection_without_a_password_never_loads_scram(database_url) -> None:
    code = """
import sys
from cartcast import db

database = db.Database(lambda: db._connect_pg8000(db.parse_database_url(sys.argv[1])))
with database.transaction() as tx:
    assert tx.scalar("SELECT 41 + 1 AS answer") == 42
print(sorted(m for m in ("asn1crypto", "scramp.core") if m in sys.modules))
"""

    assert run_fresh(code, database_url) == "[]"


def test_threads_reaching_scram_at_once_all_get_the_whole_module() -> None:
    # What pg8000 reads when a server asks for SCRAM: the name it imported.
    code = """
import sys, threading
from cartcast import db
import pg8000.core

found, start = [], threading.Barrier(8)
def read():
    start.wait()
    found.append(pg8000.core.scramp.ScramClient)
threads = [threading.Thread(target=read) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
import scramp
print(len(found), len(set(found)), found[0] is scramp.ScramClient,
      scramp.ScramClient.__module__)
"""

    assert run_fresh(code) == "8 1 True scramp.core"


@pytest.fixture(scope="module")
def scram_server_url() -> Iterator[str]:
    """A private embedded server that asks role `scram_user` for SCRAM-SHA-256.

    Its own pg_hba.conf, in a temporary directory, reached through its Unix socket.
    """
    import shutil
    import tempfile
    import urllib.parse

    from infra import pg

    base = Path(tempfile.mkdtemp(prefix="cartcast-scram-"))
    base.chmod(0o755)  # run as root, pgserver starts PostgreSQL as another user
    server = pg.embedded_server(base / "data", keep_running=True)
    try:
        server.psql("CREATE ROLE scram_user LOGIN PASSWORD 'a secret';")
        hba = base / "data" / "pg_hba.conf"
        hba.write_text("local all scram_user scram-sha-256\n" + hba.read_text())
        server.psql("SELECT pg_reload_conf();")
        query = urllib.parse.urlsplit(server.get_uri()).query
        yield f"postgresql://scram_user:a%20secret@/postgres?{query}"
    finally:
        pg.stop_embedded(base / "data")
        shutil.rmtree(base, ignore_errors=True)


def test_a_server_asking_for_scram_gets_it_from_the_stand_in(scram_server_url) -> None:
    # Eight threads reach SCRAM at once in a process that has not loaded scramp;
    # the stand-in imports it once and each login completes. A wrong password
    # is still refused.
    code = """
import sys, threading
from cartcast import db

options = db.parse_database_url(sys.argv[1])
before = type(sys.modules["scramp"]).__name__
users, start = [], threading.Barrier(8)
def log_in():
    start.wait()
    database = db.Database(lambda: db._connect_pg8000(options))
    with database.transaction() as tx:
        users.append(tx.scalar("SELECT current_user AS name"))
    database.close()
threads = [threading.Thread(target=log_in) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
wrong = db.Database(lambda: db._connect_pg8000({**options, "password": "wrong"}))
try:
    with wrong.transaction():
        refused = False
except db.TransientError:
    refused = True
print(before, users.count("scram_user"), "scramp.core" in sys.modules, refused)
"""

    assert run_fresh(code, scram_server_url) == "_ImportedOnFirstUse 8 True True"


class RoundTrips:
    """A loopback proxy in front of the test server that counts round trips.

    It counts the server's ReadyForQuery messages: one ends the startup and one
    answers each simple query and each Sync, so one per wait of the client. Its
    connections skip the TLS request, whose one-byte answer is no message.
    """

    def __init__(self, database_url: str) -> None:
        self._options = db.parse_database_url(database_url)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._lock = threading.Lock()
        self.count = 0

    def __enter__(self) -> RoundTrips:
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._listener.close()

    def connect(self, **startup: Any) -> Any:
        options = {
            key: value
            for key, value in self._options.items()
            if key not in ("unix_sock", "host", "port")
        }
        port = self._listener.getsockname()[1]
        options.update(host="127.0.0.1", port=port, ssl_context=False, **startup)
        return db._connect_pg8000(options)

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self._listener.accept()
                server = self._upstream()
                threading.Thread(
                    target=self._pump, args=(client, server, False), daemon=True
                ).start()
                threading.Thread(
                    target=self._pump, args=(server, client, True), daemon=True
                ).start()

    def _upstream(self) -> socket.socket:
        if "unix_sock" in self._options:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(self._options["unix_sock"])
            return sock
        return socket.create_connection(
            (self._options["host"], self._options["port"]), 10
        )

    def _pump(self, source: socket.socket, sink: socket.socket, count: bool) -> None:
        pending = b""
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                pending += data
                # Counted before forwarding: the client never sees an answer that
                # is not counted yet.
                while count and len(pending) >= 5:
                    length = struct.unpack("!i", pending[1:5])[0]
                    if len(pending) < 1 + length:
                        break
                    if pending[:1] == b"Z":
                        with self._lock:
                            self.count += 1
                    pending = pending[1 + length :]
                sink.sendall(data)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def test_a_statements_first_run_on_a_connection_is_one_round_trip(runtime) -> None:
    with RoundTrips(runtime.settings.database_url) as trips:
        database = db.Database(trips.connect, idle_max=1)
        with database.transaction() as tx:
            before = trips.count
            first = tx.scalar("SELECT CAST(:v AS integer) + 1 AS probe", v=1)
            after_first = trips.count
            second = tx.scalar("SELECT CAST(:v AS integer) + 1 AS probe", v=2)
            after_second = trips.count
        database.close()

    assert (first, second) == (2, 3)
    assert (after_first - before, after_second - after_first) == (1, 1)


def test_a_first_run_that_fails_leaves_no_prepared_statement_behind(runtime) -> None:
    database = one_connection(runtime)
    divide = "SELECT 84 / CAST(:by AS integer) AS leftover_probe"
    with pytest.raises(Exception, match="division by zero"):
        with database.transaction() as tx:
            tx.scalar(divide, by=0)

    with database.transaction() as tx:
        left_behind = tx.scalar(PREPARED_LIKE, pattern="%AS leftover_probe%")
        quotient = tx.scalar(divide, by=2)
        kept = tx.scalar(PREPARED_LIKE, pattern="%AS leftover_probe%")
    database.close()

    assert (left_behind, quotient, kept) == (0, 42, 1)


def test_a_first_run_the_server_cannot_parse_leaves_the_connection_usable(
    runtime,
) -> None:
    database = one_connection(runtime)
    with pytest.raises(Exception, match="syntax error"):
        with database.transaction() as tx:
            tx.scalar("SELEC CAST(:v AS integer) AS broken", v=1)

    with database.transaction() as tx:
        answer = tx.scalar("SELECT CAST(:v AS integer) AS fine", v=42)
    database.close()

    assert answer == 42


def test_a_lone_read_is_one_round_trip(runtime) -> None:
    read = "SELECT CAST(:v AS integer) AS lone"
    with RoundTrips(runtime.settings.database_url) as trips:
        database = db.Database(trips.connect, idle_max=1)
        database.read(read, v=0)
        before = trips.count
        rows = database.reads().rows(read, v=7)
        used = trips.count - before
        database.close()

    assert rows == [{"lone": 7}]
    assert used == 1


def test_a_lone_read_on_a_pooled_connection_the_server_dropped_goes_again(
    runtime,
) -> None:
    database = db.Database(
        lambda: db._connect_pg8000(
            db.parse_database_url(runtime.settings.database_url)
        ),
        idle_check_after_s=3600,
    )
    pid = database.reads().scalar("SELECT pg_backend_pid() AS pid")
    with runtime.database.transaction() as admin:
        admin.scalar("SELECT pg_terminate_backend(:pid, 5000) AS done", pid=pid)

    again = database.reads().scalar("SELECT pg_backend_pid() AS pid")
    database.close()

    assert again not in (None, pid)


def test_a_server_error_in_a_lone_read_keeps_the_connection_usable(runtime) -> None:
    database = one_connection(runtime)
    with pytest.raises(Exception, match="division by zero"):
        database.read("SELECT 1 / CAST(:by AS integer) AS never", by=0)

    answer = database.reads().scalar("SELECT CAST(:v AS integer) AS fine", v=42)
    database.close()

    assert answer == 42


def test_a_connection_opened_for_an_actor_gets_it_in_its_startup_message(
    runtime,
) -> None:
    from cartcast import post_events

    with RoundTrips(runtime.settings.database_url) as trips:
        database = db.Database(trips.connect, settings_at_connect=True)
        with post_events.acting_as("system:poll_mentions"):
            with database.transaction() as tx:
                actor = tx.scalar(ACTOR)
        database.close()

    assert actor == "system:poll_mentions"
    # The startup, BEGIN, the read and COMMIT: no statement set the actor.
    assert trips.count == 4


def test_an_actor_too_long_for_the_startup_message_is_set_by_a_statement(
    runtime,
) -> None:
    from cartcast import post_events

    # PostgreSQL refuses a startup packet past 10,000 bytes; the statement that
    # sets an actor has no such limit.
    long_actor = "system:" + "a" * 20_000
    options = db.parse_database_url(runtime.settings.database_url)
    database = db.Database(
        lambda **startup: db._connect_pg8000({**options, **startup}),
        settings_at_connect=True,
    )
    with post_events.acting_as(long_actor):
        with database.transaction() as tx:
            actor = tx.scalar(ACTOR)
    database.close()

    assert actor == long_actor


def test_an_actor_with_a_nul_never_adds_startup_parameters_of_its_own(
    runtime,
) -> None:
    from cartcast import post_events

    # The startup message separates names and values with NUL bytes: a NUL in a
    # value would end it there and start another parameter.
    smuggling = "system:x\x00statement_timeout\x001"
    options = db.parse_database_url(runtime.settings.database_url)
    database = db.Database(
        lambda **startup: db._connect_pg8000({**options, **startup}),
        settings_at_connect=True,
    )
    with pytest.raises(Exception, match="0x00"):
        with post_events.acting_as(smuggling):
            with database.transaction() as tx:
                tx.scalar(ACTOR)
    timeout = database.reads().scalar("SHOW statement_timeout")
    database.close()

    assert timeout == "0"


def test_a_lone_read_that_times_out_is_not_sent_again(runtime) -> None:
    # A read blocked past the socket timeout (behind a migration's table lock,
    # say) meets a live, slow server, not a dead connection: a second copy would
    # only queue behind the first and double the wait.
    probe = "SELECT count(*) AS n FROM brands WHERE id <> CAST(:id AS uuid) -- probe"
    no_id = "00000000-0000-0000-0000-000000000000"
    options = {**db.parse_database_url(runtime.settings.database_url), "timeout": 1}
    database = db.Database(
        lambda: db._connect_pg8000(options), idle_check_after_s=3600, idle_max=1
    )
    database.read(probe, id=no_id)
    locker = db._connect_pg8000(db.parse_database_url(runtime.settings.database_url))
    # The DB-API cursor opens a transaction, which holds the lock until rollback.
    locker.cursor().execute("LOCK TABLE brands IN ACCESS EXCLUSIVE MODE")
    try:
        with pytest.raises(TransientError):
            database.read(probe, id=no_id)
        waiting = runtime.database.reads().scalar(
            "SELECT count(*) AS n FROM pg_stat_activity"
            " WHERE query = CAST(:probe AS text) AND wait_event_type = 'Lock'",
            probe=probe.replace(":id", "$1"),
        )
    finally:
        locker.rollback()
        locker.close()
        database.close()

    assert waiting == 1


# PostgreSQL reads an unquoted NULL in an array literal in any letter case, and
# pg8000 quotes only "NULL": a tag or banned word "null" came back as SQL NULL.
ARRAY_TEXTS = ["null", "Null", "NULL", "nULL", "", " ", 'say "hi"', "back\\slash"]


def test_every_string_of_a_list_comes_back_as_sent(runtime) -> None:
    texts = [*ARRAY_TEXTS, None, "{a,b}", "é ✓"]
    sql = "SELECT CAST(:texts AS text[]) AS texts, CAST(:ints AS int[]) AS ints"
    for _ in range(2):  # prepared by its first run, then run as prepared
        with runtime.database.transaction() as tx:
            row = tx.one(sql, texts=texts, ints=[1, None, -3])
        assert row == {"texts": texts, "ints": [1, None, -3]}


def test_a_nested_list_keeps_its_strings(runtime) -> None:
    with runtime.database.transaction() as tx:
        got = tx.scalar(
            "SELECT CAST(:grid AS text[])", grid=[["null", "a"], [None, "NULL"]]
        )
    assert got == [["null", "a"], [None, "NULL"]]


def test_each_advisory_lock_class_serves_one_purpose() -> None:
    # Two purposes under one class (its first key) would make unrelated work
    # wait on each other, and a comment saying a lock closes no cycle untrue.
    import re

    source = Path(db.__file__).parent
    classes: dict[str, list[str]] = {}
    for path in sorted(source.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(
            r"(\w+) = \"SELECT pg_(?:try_)?advisory_(?:xact_)?lock\((\d+),", text
        ):
            classes.setdefault(match.group(2), []).append(
                f"{path.name}:{match.group(1)}"
            )

    shared = {key: users for key, users in classes.items() if len(users) > 1}
    assert classes and not shared


TRY_TEST_LOCK = "SELECT pg_try_advisory_lock(7399, hashtext(:key))"
UNLOCK_TEST_LOCK = "SELECT pg_advisory_unlock(7399, hashtext(:key))"
TEST_LOCKS_HELD = """
SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 7399
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


def test_a_session_lock_keeps_its_connection_out_of_the_pool_until_given_back(
    runtime,
) -> None:
    database = runtime.database
    with database.session_lock(TRY_TEST_LOCK, UNLOCK_TEST_LOCK, key="a") as taken:
        # Another thread's calls get another session: none of them holds the lock.
        again = _in_another_thread(lambda: _try_in_a_transaction(database))
        lock = database.session_lock(TRY_TEST_LOCK, UNLOCK_TEST_LOCK, key="a")
        with lock as second:
            pass
        held_inside = database.reads().scalar(TEST_LOCKS_HELD)
    held_after = database.reads().scalar(TEST_LOCKS_HELD)

    assert taken is True
    assert again is False and second is False
    assert held_inside == 1
    assert held_after == 0


def test_a_session_lock_whose_connection_died_ends_quietly_and_is_free(
    runtime,
) -> None:
    database = runtime.database
    lock = database.session_lock(TRY_TEST_LOCK, UNLOCK_TEST_LOCK, key="a")
    with lock as taken:
        ended = _in_another_thread(
            lambda: database.reads().scalar(END_TEST_LOCK_SESSIONS)
        )
    lock = database.session_lock(TRY_TEST_LOCK, UNLOCK_TEST_LOCK, key="a")
    with lock as taken_again:
        pass

    assert taken is taken_again is True
    assert ended == 1
    assert database.reads().scalar(TEST_LOCKS_HELD) == 0


def _try_in_a_transaction(database: db.Database) -> bool:
    with database.transaction() as tx:
        return tx.scalar(TRY_TEST_LOCK, key="a")


def _in_another_thread(work: Any) -> Any:
    answers: list = []
    thread = threading.Thread(target=lambda: answers.append(work()))
    thread.start()
    thread.join()
    return answers[0]


END_TEST_LOCK_SESSIONS = """
SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_locks
WHERE locktype = 'advisory' AND classid = 7399
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


def test_a_deadlock_is_transient_so_the_caller_retries_rather_than_fails(
    runtime,
) -> None:
    """PostgreSQL ends one of two transactions waiting for each other (40P01);
    trying it again succeeds. Raised as it came, the api answered Flask's HTML
    500; transient, it is a JSON 503 and an event is delivered again."""
    import pg8000.dbapi

    first_key, second_key = 0x62726B01, 0x62726B02  # this test's own keys
    lock = "SELECT pg_advisory_xact_lock(CAST(:key AS bigint))"
    waiting = "SELECT count(*) AS n FROM pg_locks WHERE NOT granted"
    holding = threading.Barrier(2)
    outcomes: dict[str, BaseException | None] = {}

    def take(name: str, mine: int, theirs: int, wait_for_other: bool) -> None:
        try:
            with runtime.database.transaction() as tx:
                tx.scalar(lock, key=mine)
                holding.wait()
                while wait_for_other and not runtime.database.read(waiting)[0]["n"]:
                    threading.Event().wait(0.01)
                tx.scalar(lock, key=theirs)
            outcomes[name] = None
        except (TransientError, pg8000.dbapi.DatabaseError) as error:
            outcomes[name] = error

    threads = [
        threading.Thread(target=take, args=("a", first_key, second_key, False)),
        threading.Thread(target=take, args=("b", second_key, first_key, True)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    failed = [error for error in outcomes.values() if error is not None]
    assert len(failed) == 1, outcomes
    assert isinstance(failed[0], TransientError), repr(failed[0])
    assert "deadlock" in str(failed[0])
