"""The embedded PostgreSQL that stands in for Cloud SQL on one machine.

With DATABASE_URL set, that server is used as it is. Otherwise pgserver (PostgreSQL
binaries shipped in a PyPI wheel) runs a private server in `var/pg` of the checkout,
reachable only through a Unix socket: no root, no system service, no TCP port. Run as
root, pgserver itself starts the server as an unprivileged `pgserver` user.

    python -m infra.pg url       start if needed, print the URL
    python -m infra.pg url --database NAME
                                 the same URL naming database NAME instead
    python -m infra.pg migrate   start if needed, apply sql/
    python -m infra.pg stop      stop the embedded server
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.parse
import uuid
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PGDATA = REPO / "var" / "pg"


def embedded_server(pgdata: Path = DEFAULT_PGDATA, *, keep_running: bool = False):
    """Start (or join) the embedded server; it stops when its last user exits."""
    # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, root shells); harmless.
    warnings.filterwarnings("ignore", module="platformdirs")
    import pgserver

    pgdata.mkdir(parents=True, exist_ok=True)
    # A server that was already running (`make db-url`, `make migrate`) belongs to
    # whoever started it: joining it must not stop it on the way out.
    already_running = (pgdata / "postmaster.pid").exists()
    keep = keep_running or already_running
    return pgserver.get_server(pgdata, cleanup_mode=None if keep else "stop")


def stop_embedded(pgdata: Path = DEFAULT_PGDATA) -> None:
    """Stop the embedded server if it runs (`make db-stop`)."""
    if not (pgdata / "postmaster.pid").exists():
        print("embedded PostgreSQL is not running")
        return
    warnings.filterwarnings("ignore", module="platformdirs")
    from pgserver._commands import pg_ctl

    user = "pgserver" if os.geteuid() == 0 else None
    pg_ctl(["-w", "stop"], pgdata=pgdata, user=user)
    print("embedded PostgreSQL stopped")


def server_url(*, keep_running: bool = False) -> str:
    """Return DATABASE_URL when set, else the embedded server's URL."""
    given = os.environ.get("DATABASE_URL", "").strip()
    if given:
        return given
    return embedded_server(keep_running=keep_running).get_uri()


def with_database(url: str, name: str) -> str:
    """Return `url` pointing at database `name` instead."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


def create_database(url: str, prefix: str) -> str:
    """Create a fresh, uniquely named database on `url`'s server; return its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    # CREATE DATABASE takes no parameters; every name here is built by cartcast.
    _on_server(url, f'CREATE DATABASE "{name}"')
    return with_database(url, name)


def recreate_database(server_url: str, name: str) -> str:
    """Drop database `name` if it exists and create it empty; return its URL."""
    url = with_database(server_url, name)
    drop_database(url)
    _on_server(server_url, f'CREATE DATABASE "{name}"')
    return url


def drop_database(url: str) -> None:
    """Drop the database named in `url` (used for per-run databases)."""
    name = urllib.parse.urlsplit(url).path.lstrip("/")
    _on_server(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _on_server(url: str, statement: str) -> None:
    """Run one statement outside a transaction, connected to the server's postgres."""
    from cartcast import db

    admin = db.Database(lambda: _autocommit(db, with_database(url, "postgres")))
    try:
        with admin.transaction() as tx:
            tx.execute(statement)
    finally:
        admin.close()


# CREATE and DROP DATABASE wait for a checkpoint, which a busy server can take far
# longer than the functions' socket timeout to finish.
SERVER_STATEMENT_TIMEOUT_S = 300


def _autocommit(db_module, url: str):
    options = db_module.parse_database_url(url)
    options["timeout"] = SERVER_STATEMENT_TIMEOUT_S
    connection = db_module._connect_pg8000(options)
    connection.autocommit = True
    return connection


def migrate(url: str, **lock_wait: float) -> list[str]:
    """Apply sql/ to `url`; `lock_wait` is apply_migrations' lock_timeout_s and
    attempts (its defaults when left out, as for the tests' databases)."""
    from cartcast import db, migrate

    database = db.Database(lambda: db._connect_pg8000(db.parse_database_url(url)))
    try:
        return migrate.apply_migrations(database, REPO / "sql", **lock_wait)
    finally:
        database.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="embedded PostgreSQL for cartcast")
    parser.add_argument("command", choices=["url", "migrate", "stop"])
    parser.add_argument(
        "--database", help="with url: print the URL of this database on the server"
    )
    args = parser.parse_args(argv)
    if args.database and args.command != "url":
        parser.error("--database goes with url")

    if args.command == "stop":
        stop_embedded()
        return 0
    url = server_url(keep_running=True)
    if args.command == "migrate":
        from cartcast import settings
        from cartcast.errors import ConfigurationError, TransientError

        try:
            # The lock wait as CARTCAST_MIGRATE_LOCK_* set it, as the job's.
            loaded = settings.load({**os.environ, "DATABASE_URL": url})
            applied = migrate(
                url,
                lock_timeout_s=loaded.migrate_lock_timeout_s,
                attempts=loaded.migrate_lock_attempts,
            )
        except ConfigurationError as error:
            print(f"migrate: {error}", file=sys.stderr)
            return 2
        except TransientError as error:
            # A server that refuses us (a database not created yet, a wrong
            # password) is the reader's to fix: one line, not a traceback.
            print(f"migrate: {error}", file=sys.stderr)
            return 1
        print(
            f"applied {len(applied)} migration(s): {', '.join(applied) or 'none new'}"
        )
    if args.database:
        url = with_database(url, args.database)
    print(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
