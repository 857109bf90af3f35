"""PostgreSQL access: pg8000 locally, the Cloud SQL Python Connector in the cloud.

Connections are opened lazily, kept in a small per-process pool and reused across
warm invocations. Queries are named constants with `:name` parameters; nothing here
builds SQL from values. Connection failures become TransientError so an event
function raises and the platform retries.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import importlib
import math
import sys
import threading
import time
import types
import urllib.parse
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from cartcast.errors import (
    CartcastError,
    ConfigurationError,
    LockNotGranted,
    TransientError,
)
from cartcast.settings import Settings

CONNECT_TIMEOUT_S = 10
POOL_SIZE_MAX = 4
# A connection idle this long is checked with one round trip before it is reused:
# a warm instance may sit idle through a database restart or failover. Within one
# request transactions follow each other faster than this, so only the first
# transaction of a request pays the round trip.
IDLE_CHECK_AFTER_S = 1.0
# Statements one connection keeps prepared; cartcast has a few hundred constants,
# so this bound only matters if one day SQL were built per call.
PREPARED_MAX = 1000
# The session settings a startup message carries, at most: a quarter of the 10,000
# bytes PostgreSQL accepts, the rest left to the user, database and what a
# connector adds. Longer ones are set by a statement instead.
STARTUP_SETTINGS_BYTES_MAX = 2500


class _ImportedOnFirstUse(types.ModuleType):
    """Stands in sys.modules for a module until one of its attributes is read.

    pg8000 imports scramp (SCRAM-SHA-256 authentication, which imports asn1crypto
    for channel binding) at its own import, 15 to 20 ms of every cold start, and
    uses it only when a server asks for SCRAM. A password-less connection (trust,
    peer, or a Unix socket locally) and a cleartext one never read it. The real
    module is imported, once and under a lock, by the first read of an attribute:
    two threads connecting at once both get it whole (decision 0036).
    """

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._lock = threading.Lock()
        self._module: types.ModuleType | None = None

    def __getattr__(self, attribute: str) -> Any:
        # Called only for attributes this stand-in lacks: every one of the module's.
        if attribute.startswith("__") or attribute in ("_lock", "_module"):
            raise AttributeError(attribute)
        with self._lock:
            if self._module is None:
                if sys.modules.get(self.__name__) is self:
                    del sys.modules[self.__name__]
                self._module = importlib.import_module(self.__name__)
        return getattr(self._module, attribute)


def _defer_import(name: str) -> None:
    """Let `name` be imported on first use, unless something imported it already."""
    sys.modules.setdefault(name, _ImportedOnFirstUse(name))


# Before anything imports pg8000: cartcast reaches pg8000 only through this module.
_defer_import("scramp")


UNDEFINED_TABLE = "42P01"
# PostgreSQL ended the transaction so that another could go on; run again, it
# succeeds (PostgreSQL's documentation, "Serialization Failure Handling").
TRY_AGAIN = {
    "40P01": "deadlock detected",
    "40001": "serialization failure",
    # The server ended a transaction left idle past its bound
    # (Transaction.end_if_idle_longer_than); run again, it starts afresh.
    "25P03": "the transaction sat idle too long and was ended",
}
FEATURE_NOT_SUPPORTED = "0A000"
LOCK_NOT_AVAILABLE = "55P03"
# Transaction-local; the first returns the setting it replaces.
SET_LOCK_TIMEOUT = """
SELECT current_setting('lock_timeout') AS was,
    set_config('lock_timeout', :timeout, true)
"""
RESTORE_LOCK_TIMEOUT = "SELECT set_config('lock_timeout', :timeout, true)"
# Transaction-local too: the server ends the session of a transaction left idle
# longer, which rolls it back and frees what it held (decision 0106).
SET_IDLE_TIMEOUT = (
    "SELECT set_config('idle_in_transaction_session_timeout', :timeout, true)"
)
SET_SESSION_CONFIG = "SELECT set_config(:name, :value, false)"

# Settings every transaction of the current context runs with
# (post_events.acting_as names who the system acts as). A context variable: each
# thread and each request sees only what it set itself. They are session settings
# of the connection, written only when a checkout needs other values than the
# connection holds: a function's instance sets its actor once per connection, not
# once per transaction (a round trip each, about 0.3 ms on loopback). A connection
# opened inside the block gets them as startup parameters, so even that round trip
# goes (decision 0046). A transaction that sets its own with set_config(..., true),
# as the API does, overrides them.
_transaction_settings: contextvars.ContextVar[tuple[tuple[str, str], ...]] = (
    contextvars.ContextVar("cartcast_transaction_settings", default=())
)
# Every name ever set, so a connection that held one is reset when it is reused
# outside the block; "" reads as unset (NULLIF(current_setting(...), '')).
_setting_names: set[str] = set()


@contextlib.contextmanager
def settings_for_transactions(values: dict[str, str]) -> Iterator[None]:
    """Run every transaction opened inside the block with these settings."""
    _setting_names.update(values)
    token = _transaction_settings.set(tuple(sorted(values.items())))
    try:
        yield
    finally:
        _transaction_settings.reset(token)


def _sqlstate(error: Exception) -> str | None:
    # pg8000 puts the server's error fields in a dict: "C" is the SQLSTATE code.
    fields = error.args[0] if error.args else None
    return fields.get("C") if isinstance(fields, dict) else None


def _message(error: Exception) -> str:
    fields = error.args[0] if error.args else None
    return fields.get("M", str(error)) if isinstance(fields, dict) else str(error)


class Reads:
    """Statements that only read; every method takes SQL and named parameters.

    What a helper that only reads takes: an open Transaction, or
    Database.reads(), which sends each statement on its own.
    """

    def rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        raise NotImplementedError

    def one(self, sql: str, **params: Any) -> dict[str, Any] | None:
        found = self.rows(sql, **params)
        return found[0] if found else None

    def scalar(self, sql: str, **params: Any) -> Any:
        row = self.one(sql, **params)
        return None if row is None else next(iter(row.values()))


class Transaction(Reads):
    """One open transaction."""

    def __init__(self, statements: Statements) -> None:
        self._statements = statements

    def rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        return _as_dicts(self._statements.run(sql, params))

    def execute(self, sql: str, **params: Any) -> int:
        return self._statements.run(sql, params).row_count

    def end_if_idle_longer_than(self, idle_max_s: float) -> None:
        """Have the server end this transaction's session if it sits idle (between
        two statements) longer than `idle_max_s`: its locks then end with it.

        What a transaction that waits on a network call between statements sets:
        an instance that stops mid-call without closing its connection (frozen,
        or cut off) would otherwise hold them until TCP keepalive gives the
        connection up, about 2 h 11 min with Linux's defaults, or, while its
        host still answers keepalives, for good. Until the commit only; the
        statement that follows such a wait then fails as a lost connection.
        """
        self.scalar(SET_IDLE_TIMEOUT, timeout=f"{math.ceil(idle_max_s * 1000)}ms")

    def scalar_waiting_at_most(
        self, sql: str, *, wait_ms: int, refusal: CartcastError, **params: Any
    ) -> Any:
        """Run `sql` waiting at most `wait_ms` for a lock; raise `refusal` past it.

        Every read of a connection times out after CONNECT_TIMEOUT_S, and a read
        that waits longer on a row another transaction holds (a caption request's
        Idempotency-Key, held across Gemini's call) loses its connection and
        escapes as a 500. The wait is bounded by the server instead (lock_timeout,
        SQLSTATE 55P03). The transaction is aborted then, so `refusal` must end it.
        """
        import pg8000.dbapi

        was = self.scalar(SET_LOCK_TIMEOUT, timeout=f"{wait_ms}ms")
        try:
            value = self.scalar(sql, **params)
        except pg8000.dbapi.DatabaseError as error:
            if _sqlstate(error) == LOCK_NOT_AVAILABLE:
                raise refusal from error
            raise
        self.scalar(RESTORE_LOCK_TIMEOUT, timeout=was)
        return value


class LoneReads(Reads):
    """Reads each sent on its own, outside any transaction (Database.read)."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        return self._database.read(sql, **params)


def _array_literal(values: list) -> str:
    """Write a list as a PostgreSQL array literal, every element but None quoted.

    pg8000 leaves an element unquoted unless it must, and quotes only "NULL":
    PostgreSQL reads an unquoted NULL in any letter case, so a tag or a banned
    word "null" was stored as SQL NULL. Quoted, every element is read as the
    text it is; the server converts it to the array's element type as before.
    """
    from pg8000.converters import PY_TYPES, make_param

    items = []
    for value in values:
        if value is None:
            items.append("NULL")
        elif isinstance(value, list):
            items.append(_array_literal(value))
        else:
            text = value if isinstance(value, str) else make_param(PY_TYPES, value)
            escaped = str(text).replace("\\", "\\\\").replace('"', '\\"')
            items.append(f'"{escaped}"')
    return "{" + ",".join(items) + "}"


def _raise_if_no_schema(error: Exception) -> None:
    """Raise a ConfigurationError for a statement that met no cartcast table."""
    if _sqlstate(error) == UNDEFINED_TABLE:
        raise ConfigurationError(
            f"the database has no cartcast schema ({_message(error)}); "
            "apply sql/ first: make migrate, or the migration job"
        ) from error


def _as_dicts(context: Any) -> list[dict[str, Any]]:
    if context.columns is None or context.rows is None:
        return []
    names = [column["name"] for column in context.columns]
    return [dict(zip(names, row, strict=True)) for row in context.rows]


class Statements:
    """Runs statements on one pg8000 connection, each prepared once by SQL text.

    pg8000's DB-API cursor sends every statement afresh (parse, describe, then bind
    and execute: three round trips, and the server plans it every time), and scans
    the SQL for placeholders on every call. cartcast's statements are constants, so
    each is prepared on the connection the first time it runs there and then costs
    one round trip. The first run costs one too: the Parse and Describe that prepare
    it travel in the same write as the Bind and Execute that run it (decision 0046).
    Protocol-level prepared statements outlive transactions, error or not, and end
    with the connection. A statement with no parameters runs with the simple
    protocol, as the cursor would run it.
    """

    def __init__(self, connection: Any, *, keep: int = PREPARED_MAX) -> None:
        self.connection = connection
        connection.register_out_adapter(list, _array_literal)
        self._keep = keep
        self._prepared: dict[str, tuple] = {}
        self._named = 0
        # Statements whose first run failed: the error does not say whether the
        # Parse before it succeeded, so each may or may not exist on the server.
        self._unsure: list[str] = []

    def begin(self) -> None:
        # A connection in autocommit (what infra/pg.py opens to create databases)
        # runs each statement on its own, as the DB-API cursor would.
        if not self.connection.autocommit:
            self.connection.execute_simple("BEGIN")

    def commit(self) -> None:
        if not self.connection.autocommit:
            self.connection.execute_simple("COMMIT")

    def run(self, sql: str, params: dict[str, Any]) -> Any:
        if not params:
            return self.connection.execute_simple(sql)
        prepared = self._prepared.get(sql)
        if prepared is None:
            from pg8000.native import to_statement

            statement, make_values = to_statement(sql)
            if len(self._prepared) >= self._keep:
                # Full: run it unnamed, as the cursor would, leaving nothing behind.
                return self.connection.execute_unnamed(
                    statement, vals=make_values(params)
                )
            return self._prepare_and_run(sql, statement, make_values, params)
        name, columns, input_funcs, make_values, statement = prepared
        import pg8000.dbapi
        from pg8000.converters import make_params

        values = make_params(self.connection.py_types, make_values(params))
        try:
            return self.connection.execute_named(
                name, values, columns, input_funcs, statement
            )
        except pg8000.dbapi.DatabaseError as error:
            if _sqlstate(error) == FEATURE_NOT_SUPPORTED:
                # "cached plan must not change result type": a migration changed a
                # table under the statement. Forget it, so the next run prepares it
                # anew; the server's copy goes with the connection.
                self._prepared.pop(sql, None)
            raise

    def deallocate_unsure(self) -> None:
        """Drop what failed first runs may have prepared; call outside a transaction.

        A failure is the exception, so this round trip per statement is paid only
        after an error, never on the way to a commit.
        """
        import pg8000.dbapi

        unsure, self._unsure = self._unsure, []
        for name in unsure:
            # Only a name cartcast made (cartcast_<n>) is ever spliced in here.
            with contextlib.suppress(pg8000.dbapi.DatabaseError):
                self.connection.execute_simple(f"DEALLOCATE {name}")

    def _prepare_and_run(
        self, sql: str, statement: str, make_values: Callable, params: dict[str, Any]
    ) -> Any:
        """Prepare a statement and run it in one round trip; keep it for next time.

        pg8000's send_PARSE and send_DESCRIBE_STATEMENT only fill its write buffer;
        execute_named then adds Bind, Execute and Sync, flushes once and reads every
        answer up to the one ReadyForQuery. The RowDescription that Describe brings
        arrives before the rows and sets the columns the rows are read with, as
        prepare_statement's own round trip would have. Results are requested as
        text, so the Bind needs nothing the Describe answers.
        """
        import pg8000.dbapi
        from pg8000.converters import make_params

        connection = self.connection
        # Encoded before anything is written: a value pg8000 cannot encode fails
        # with nothing half sent.
        values = make_params(connection.py_types, make_values(params))
        self._named += 1
        name = f"cartcast_{self._named}"
        name_bin = name.encode("ascii") + b"\x00"
        # No parameter types given: the server infers them from the SQL, as it does
        # for the cursor's unnamed statements.
        connection.send_PARSE(name_bin, statement, ())
        connection.send_DESCRIBE_STATEMENT(name_bin)
        try:
            context = connection.execute_named(name_bin, values, None, [], statement)
        except pg8000.dbapi.DatabaseError:
            self._unsure.append(name)
            raise
        prepared = (name_bin, context.columns, context.input_funcs, make_values)
        self._prepared[sql] = (*prepared, statement)
        return context


class Database:
    """A lazily connected pool of connections made by `connect`."""

    def __init__(
        self,
        connect: Callable[..., Any],
        *,
        idle_check_after_s: float = IDLE_CHECK_AFTER_S,
        idle_max: int = POOL_SIZE_MAX,
        settings_at_connect: bool = False,
    ) -> None:
        """`connect` opens a pg8000 connection; with `settings_at_connect` it takes
        `startup_params` (pg8000's keyword), which carry the context's session
        settings in the startup message instead of a statement after it."""
        self._connect = connect
        self._settings_at_connect = settings_at_connect
        self._idle_max = idle_max
        self._idle_check_after_s = idle_check_after_s
        self._idle: list[tuple[Statements, float]] = []
        self._lock = threading.Lock()
        # Per thread, the connections of the session locks it holds, innermost last
        # (see session_lock).
        self._held = threading.local()
        # The session settings each pooled connection holds (see
        # settings_for_transactions); a connection not listed holds none.
        self._session_settings: weakref.WeakKeyDictionary[Any, tuple] = (
            weakref.WeakKeyDictionary()
        )

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """Run a block in one transaction: commit on success, roll back on error.

        A connection goes back to the pool only when it is known to be in step with
        the server: after a commit, or after a clean rollback of an error the server
        reported or cartcast raised between statements. Anything else raised inside
        pg8000 (a value it could not encode, say) may have left a message half sent,
        and a reused connection would hand the next caller someone else's rows; such
        a connection is closed.
        """
        import pg8000.dbapi

        statements = self._begin()
        connection = statements.connection
        reusable = False
        try:
            wanted = self._apply_session_settings(statements)
            yield Transaction(statements)
            statements.commit()
            self._session_settings[connection] = wanted
            reusable = True
        except pg8000.dbapi.InterfaceError as error:
            # The server went away (pg8000 reports socket errors as InterfaceError);
            # the other idle connections went with it.
            self._discard_idle()
            raise TransientError(f"database connection failed: {error}") from error
        except OSError as error:
            # pg8000 lets a read's reset or timeout through as the OSError it is
            # (a session the server ended, decision 0106); one raised by the block
            # itself leaves the connection able to roll back. Closed either way,
            # as anything else raised mid-statement.
            if _rollback(statements):
                raise
            self._discard_idle()
            raise TransientError(f"database connection failed: {error}") from error
        except pg8000.dbapi.DatabaseError as error:
            reusable = _rollback(statements)
            _raise_if_no_schema(error)
            if _sqlstate(error) in TRY_AGAIN:
                raise TransientError(
                    f"database: {TRY_AGAIN[_sqlstate(error)]}; try again"
                ) from error
            if _sqlstate(error) == LOCK_NOT_AVAILABLE:
                raise LockNotGranted(f"database: {_message(error)}") from error
            raise
        except CartcastError:
            reusable = _rollback(statements)
            raise
        finally:
            self._checkin(statements, reusable)

    def read(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        """Run one statement that only reads, on its own: no BEGIN, no COMMIT.

        PostgreSQL runs a statement sent outside a transaction block in a
        transaction of its own, so a lone SELECT reads what it would have read
        between BEGIN and COMMIT, in one round trip instead of three (decision
        0046). Only for a statement that writes nothing and locks no rows (no FOR
        UPDATE): those end with the statement here. The context's session settings
        are not applied, since only writes (the post_events triggers) read them.
        A pooled connection that fails it is replaced and the read sent again, as
        a BEGIN would be: a read has nothing to undo. One that times out is not:
        the server is there and slow, and a second copy would wait behind the
        first.
        """
        import pg8000.dbapi

        try:
            statements, context = self._first_round_trip(
                lambda live: live.run(sql, params)
            )
        except pg8000.dbapi.DatabaseError as error:
            _raise_if_no_schema(error)
            raise
        self._checkin(statements, True)
        return _as_dicts(context)

    def reads(self) -> LoneReads:
        """Return a Reads whose every statement runs as `read` runs one."""
        return LoneReads(self)

    @contextlib.contextmanager
    def session_lock(self, take: str, give_back: str, **params: Any) -> Iterator[bool]:
        """Try a session-level lock for the block; yield whether it was taken.

        `take` is one statement that tries the lock and answers true or false
        (pg_try_advisory_lock), `give_back` the one that releases it, both with
        `params`. A taken lock lives as long as its connection, so that connection
        stays out of the pool for the block, and the lock ends with it if the
        process dies. The block's own transactions and reads, in this thread, run
        on it whenever it is free; another thread, or a use nested in one already
        on it, gets a pooled one (decision 0084). A connection that fails under
        them has ended the lock: every later checkout in the block raises a
        TransientError, so the block stops rather than go on without its lock.
        The lock is given back when the block ends, raised or not; a connection
        that cannot give it back (the server is gone, say) is closed rather than
        pooled, which ends the lock on the server too. A lock not taken leaves its
        connection in the pool.
        """
        # Never on a held lock's connection: a session takes its own lock again.
        statements, context = self._first_round_trip(
            lambda live: live.run(take, params), lend=False
        )
        taken = bool(context.rows and context.rows[0][0])
        if not taken:
            self._checkin(statements, True)
            yield False
            return
        held = _HeldLock(statements)
        # This thread's list, even if the block were left from another thread.
        held_here = self._held_locks()
        held_here.append(held)
        try:
            yield True
        finally:
            held_here.remove(held)
            if not held.lost:
                self._checkin(statements, _give_back(statements, give_back, params))

    def close(self) -> None:
        self._discard_idle()

    def _apply_session_settings(self, statements: Statements) -> tuple:
        """Give the connection the context's session settings, if it lacks them.

        They take effect with the transaction's commit; a rollback undoes them, so
        the connection is recorded as holding them only after a commit.
        """
        wanted = _transaction_settings.get()
        held = self._session_settings.pop(statements.connection, None)
        if held == wanted or (held is None and not wanted and not _setting_names):
            return wanted
        values = dict(wanted)
        for name in sorted(_setting_names):
            statements.run(
                SET_SESSION_CONFIG, {"name": name, "value": values.get(name, "")}
            )
        return wanted

    def _discard_idle(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for statements, _ in idle:
            with contextlib.suppress(Exception):
                statements.connection.close()

    def _begin(self) -> Statements:
        """Check out a connection and begin a transaction on it.

        BEGIN is the transaction's first round trip and changes nothing, so a pooled
        connection that fails it (the server restarted, or a proxy or failover cut
        it, since it was last checked) is replaced by a new one at once instead of
        failing the call: the caller never sees a connection that died while idle.
        Only a new connection failing is the database's failure.
        """
        statements, _ = self._first_round_trip(lambda live: live.begin())
        return statements

    def _first_round_trip(
        self, send: Callable[[Statements], Any], *, lend: bool = True
    ) -> tuple:
        """Check out a connection and `send` its first round trip; return both.

        `send` must change nothing that outlives a lost connection (BEGIN, a lone
        read): a pooled connection that fails it is replaced and `send` run again.
        A held lock's connection is not: the lock went with it. A server error
        checks the connection back in and is raised.
        """
        import pg8000.dbapi

        statements, pooled = self._checkout(lend=lend)
        while True:
            try:
                return statements, send(statements)
            except (pg8000.dbapi.InterfaceError, OSError) as error:
                self._close(statements)
                # A timeout is a live server that has not answered yet (a read
                # queued behind a table lock, say), not a connection that died
                # while idle: sent again, it would queue behind itself.
                if not pooled or _timed_out(error):
                    raise TransientError(
                        f"database connection failed: {error}"
                    ) from error
            except pg8000.dbapi.DatabaseError:
                self._checkin(statements, _deallocate_unsure(statements))
                raise
            except BaseException:
                # Raised inside pg8000 with a message perhaps half sent.
                self._close(statements)
                raise
            # It died with the others that sat beside it in the pool.
            self._discard_idle()
            statements, pooled = self._connect_new(), False

    def _checkout(self, *, lend: bool = True) -> tuple[Statements, bool]:
        """Return a connection, and whether it came from the pool."""
        held = self._held_locks()[-1] if lend and self._held_locks() else None
        if held is not None and held.lost:
            raise TransientError(
                "database connection failed: it held a session lock, which ended "
                "with it"
            )
        if held is not None and not held.in_use:
            held.in_use = True
            return held.statements, False
        with self._lock:
            idle = self._idle.pop() if self._idle else None
        if idle is not None:
            statements, idle_since = idle
            fresh = time.monotonic() - idle_since < self._idle_check_after_s
            if fresh or _alive(statements.connection):
                return statements, True
            # The server restarted or dropped it while idle; so it did the others.
            self._discard_idle()
        return self._connect_new(), False

    def _connect_new(self) -> Statements:
        import pg8000.dbapi

        wanted = _transaction_settings.get()
        at_connect = self._settings_at_connect and _fit_startup_message(wanted)
        try:
            if at_connect and wanted:
                connection = self._connect(startup_params=dict(wanted))
            else:
                connection = self._connect()
        except (pg8000.dbapi.Error, OSError) as error:
            refusal = _server_refusal(error)
            raise TransientError(
                f"cannot connect to the database: {refusal}"
            ) from error
        # A new connection holds what its startup message set and nothing else, and
        # a setting never set reads as one set to "". Settings that did not go in
        # the startup message are set by the first transaction, as before 0046.
        held = wanted if at_connect else ()
        self._session_settings[connection] = held
        return Statements(connection)

    def _checkin(self, statements: Statements, reusable: bool) -> None:
        held = self._held_lock_on(statements)
        if held is not None:
            held.in_use = False
            if not reusable:
                self._close(statements)
            return
        with self._lock:
            if reusable and len(self._idle) < self._idle_max:
                self._idle.append((statements, time.monotonic()))
                return
        self._close(statements)

    def _close(self, statements: Statements) -> None:
        held = self._held_lock_on(statements)
        if held is not None:
            held.lost = True
        with contextlib.suppress(Exception):
            statements.connection.close()

    def _held_locks(self) -> list[_HeldLock]:
        """Return the session locks this thread holds, innermost last."""
        if not hasattr(self._held, "locks"):
            self._held.locks = []
        return self._held.locks

    def _held_lock_on(self, statements: Statements) -> _HeldLock | None:
        for held in self._held_locks():
            if held.statements is statements:
                return held
        return None


@dataclasses.dataclass
class _HeldLock:
    """A session lock's connection, lent to its block's thread while free."""

    statements: Statements
    in_use: bool = False
    lost: bool = False


def _server_refusal(error: BaseException) -> BaseException:
    """Return the server's own refusal behind a failed connect, else `error`.

    After a refusal (a database that does not exist, a wrong password) pg8000 says
    goodbye before raising it. On a Unix socket the server has often hung up by
    then, so the goodbye fails and pg8000's InterfaceError("network error") hides
    the refusal, which it still carries in its exception chain.
    """
    import pg8000.dbapi

    seen = error
    while seen is not None:
        if isinstance(seen, pg8000.dbapi.DatabaseError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return error


def _timed_out(error: BaseException) -> bool:
    # pg8000 lets a read's socket timeout through and wraps a write's in its
    # InterfaceError("network error").
    return isinstance(error, TimeoutError) or isinstance(error.__cause__, TimeoutError)


def _fit_startup_message(settings: tuple[tuple[str, str], ...]) -> bool:
    """Whether these settings can travel in a startup message as they are.

    Its names and values end at NUL bytes, so a value holding one would end early
    and start a parameter of its own choosing; and PostgreSQL refuses a startup
    packet longer than 10,000 bytes (MAX_STARTUP_PACKET_LENGTH, pqcomm.h), with a
    closed socket that pg8000 reports as a network error. A statement's parameter
    has neither limit: the value fails there as a server error, or is set whole.
    """
    size = sum(len(name) + len(value.encode()) + 2 for name, value in settings)
    return size <= STARTUP_SETTINGS_BYTES_MAX and not any(
        "\x00" in name or "\x00" in value for name, value in settings
    )


def _alive(connection: Any) -> bool:
    """Ask the server for one round trip; a dead connection says so at once."""
    import pg8000.dbapi

    try:
        # One simple query outside any transaction. Through a DB-API cursor it was
        # five round trips: BEGIN, the query, and pg8000's unnamed ROLLBACK (parse,
        # describe and bind, execute).
        connection.execute_simple("SELECT 1")
        return True
    except (pg8000.dbapi.Error, OSError, AttributeError):
        return False


def _give_back(statements: Statements, sql: str, params: dict[str, Any]) -> bool:
    """Release a session lock; report whether the connection may be pooled.

    Only a connection that says it held the lock and gave it back is: a pooled
    connection still holding one would keep its run marked alive for as long as
    the pool keeps the connection.
    """
    import pg8000.dbapi

    try:
        context = statements.run(sql, params)
    except (pg8000.dbapi.Error, OSError, AttributeError):
        return False
    return bool(context.rows and context.rows[0][0])


def _rollback(statements: Statements) -> bool:
    """Roll back after an error; report whether the connection is still usable."""
    import pg8000.dbapi

    try:
        statements.connection.rollback()
    except (pg8000.dbapi.Error, OSError, AttributeError):
        return False
    return _deallocate_unsure(statements)


def _deallocate_unsure(statements: Statements) -> bool:
    """Deallocate what failed first runs left; report whether the connection is
    still usable. Outside a transaction only."""
    import pg8000.dbapi

    try:
        statements.deallocate_unsure()
        return True
    except (pg8000.dbapi.Error, OSError, AttributeError):
        return False


def connect_from_settings(settings: Settings) -> Database:
    """Build the Database the settings describe, without connecting yet."""
    # A publish run's workers each hold a connection while they write; keeping as
    # many idle spares one connect per worker and run.
    idle_max = max(POOL_SIZE_MAX, settings.publish_workers)
    if settings.cloud_sql_instance:
        # The actor goes in the startup message (decision 0046). A pooler in front
        # of Cloud SQL (PgBouncer, which Managed Connection Pooling is built on)
        # refuses startup parameters it does not know; none is configured, and one
        # would need settings_at_connect=False here.
        return Database(
            lambda **startup: _connect_cloud_sql(settings, **startup),
            idle_max=idle_max,
            settings_at_connect=True,
        )
    if not settings.database_url:
        raise ConfigurationError("DATABASE_URL or CLOUD_SQL_INSTANCE is required")
    options = parse_database_url(settings.database_url)
    return Database(
        lambda **startup: _connect_pg8000({**options, **startup}),
        idle_max=idle_max,
        settings_at_connect=True,
    )


def parse_database_url(url: str) -> dict[str, Any]:
    """Turn a libpq-style URL into pg8000 arguments (`?host=/dir` is a Unix socket)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigurationError(f"DATABASE_URL must start with postgresql://: {url!r}")
    query = urllib.parse.parse_qs(parts.query)
    port = parts.port or 5432
    options: dict[str, Any] = {
        "user": urllib.parse.unquote(parts.username or "postgres"),
        "password": urllib.parse.unquote(parts.password) if parts.password else None,
        "database": urllib.parse.unquote(parts.path.lstrip("/")) or "postgres",
        "timeout": CONNECT_TIMEOUT_S,
    }
    socket_dir = query.get("host", [None])[0]
    if socket_dir and socket_dir.startswith("/"):
        options["unix_sock"] = f"{socket_dir}/.s.PGSQL.{port}"
        # PostgreSQL answers every SSLRequest on a Unix socket with "N", and libpq
        # never sends one there ("sslmode is ignored for Unix domain socket
        # communication", libpq's documentation). pg8000 sends it anyway, after
        # building a TLS context that loads the system CA store: 23 ms of CPU per
        # connection measured here, and a round trip, for a refusal.
        options["ssl_context"] = False
    else:
        options["host"] = socket_dir or parts.hostname or "127.0.0.1"
        options["port"] = port
    return options


def _connect_pg8000(options: dict[str, Any]) -> Any:
    import pg8000.dbapi

    # Placeholders (:name) are turned into $n by Statements, not by the DB-API
    # cursor, so pg8000's module-wide paramstyle is left as it is.
    return pg8000.dbapi.connect(**options)


def _connect_cloud_sql(settings: Settings, **startup: Any) -> Any:
    # Imported only when the configuration selects Cloud SQL: the connector pulls in
    # google-auth and aiohttp, which a local run must not pay for or probe with.
    from google.cloud.sql.connector import Connector

    global _connector
    if _connector is None:
        _connector = Connector(refresh_strategy="lazy")
    return _connector.connect(
        settings.cloud_sql_instance,
        "pg8000",
        user=settings.db_user,
        db=settings.db_name,
        enable_iam_auth=settings.db_iam_auth,
        # Passed through to pg8000.dbapi.connect, as every keyword it does not use.
        **startup,
    )


_connector: Any = None
