"""Apply the numbered SQL migrations in `sql/`, once each, in order.

Run as a command (`make migrate` locally, a job in the cloud), never on a cold start.
Each file is applied in its own transaction, under a transaction-level advisory lock,
together with its row in `schema_migrations`: concurrent runners take turns, and a
failed file leaves nothing behind. A file's statements wait at most
CARTCAST_MIGRATE_LOCK_TIMEOUT_S for a table's lock: an ALTER waiting behind a long
transaction holds its place in the lock queue, and every query after it would wait
as long. Past it the file gives way (rolled back), the runner pauses as long, and
tries again, CARTCAST_MIGRATE_LOCK_ATTEMPTS times in all before it stops.

Applied files are append-only: a file whose text changed after it was applied stops
the run, and so does an unapplied file numbered below the highest applied one: a live
database would run it after that version and a fresh one before it, so the two would
drift apart. New files take the next number up.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

from cartcast import db, settings
from cartcast.errors import ConfigurationError, LockNotGranted, TransientError

# Any 64-bit number unique to this purpose; pg_advisory_lock takes a bigint.
MIGRATION_LOCK_ID = 7_310_262_020_001
FILE_PATTERN = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")

CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
SELECT_APPLIED = "SELECT checksum FROM schema_migrations WHERE version = :version"
SELECT_HIGHEST_APPLIED = "SELECT max(version) FROM schema_migrations"
RECORD_APPLIED = (
    "INSERT INTO schema_migrations (version, name, checksum) "
    "VALUES (:version, :name, :checksum)"
)
# For the rest of the transaction: the advisory lock before it waits unbounded, as
# a second runner waits for the first, and no query queues behind that lock.
SET_LOCK_TIMEOUT = "SELECT set_config('lock_timeout', :timeout, true)"


def find_migrations(sql_dir: Path) -> list[Path]:
    """List migration files in order; refuse names that break the numbering."""
    files = sorted(p for p in sql_dir.iterdir() if p.suffix == ".sql")
    versions = []
    for path in files:
        match = FILE_PATTERN.match(path.name)
        if not match:
            raise ConfigurationError(f"migration {path.name} is not named NNN_name.sql")
        versions.append(match.group(1))
    if len(set(versions)) != len(versions):
        raise ConfigurationError("two migrations share a number")
    return files


def apply_migrations(
    database: db.Database,
    sql_dir: Path,
    *,
    lock_timeout_s: float = settings.Settings.migrate_lock_timeout_s,
    attempts: int = settings.Settings.migrate_lock_attempts,
    pause: Callable[[float], None] = time.sleep,
) -> list[str]:
    """Apply every migration not yet recorded; return the names applied.

    Args:
        lock_timeout_s: how long each try of a file waits for a lock; `pause`
            (time.sleep; tests end a blocking transaction in theirs) then waits
            as long before the next of its `attempts` tries.

    Raises:
        LockNotGranted: a file's last try gave way too; the files before it
            stay applied, and a later run starts at it.
    """
    applied_now = []
    for path in find_migrations(sql_dir):
        for attempt in range(1, attempts + 1):
            try:
                applied = _apply(database, path, lock_timeout_s=lock_timeout_s)
                break
            except LockNotGranted as error:
                if attempt == attempts:
                    raise LockNotGranted(
                        f"{path.name} waited {lock_timeout_s:g} s for a lock at each "
                        f"of {attempts} tries ({error}); a long transaction holds a "
                        "table it changes: end it, or run again later"
                    ) from error
                pause(lock_timeout_s)
        if applied:
            applied_now.append(path.name)
    return applied_now


def _apply(database: db.Database, path: Path, *, lock_timeout_s: float) -> bool:
    """Apply one file unless it is recorded; return whether it was applied."""
    version = path.name[:3]
    checksum = hashlib.sha256(path.read_bytes()).hexdigest()
    with database.transaction() as tx:
        # The lock lives as long as this transaction, so a second runner waits
        # here and then sees this file recorded.
        tx.execute("SELECT pg_advisory_xact_lock(:lock_id)", lock_id=MIGRATION_LOCK_ID)
        # 0 would mean no timeout at all: a wait under a millisecond is one.
        timeout_ms = max(round(lock_timeout_s * 1000), 1)
        tx.execute(SET_LOCK_TIMEOUT, timeout=f"{timeout_ms}ms")
        tx.execute(CREATE_LEDGER)
        recorded = tx.one(SELECT_APPLIED, version=version)
        if recorded is not None:
            if recorded["checksum"] != checksum:
                raise ConfigurationError(
                    f"{path.name} changed after it was applied; add a new file"
                )
            return False
        _refuse_out_of_order(tx, path.name, version)
        tx.execute(path.read_text())
        tx.execute(RECORD_APPLIED, version=version, name=path.name, checksum=checksum)
    return True


def _refuse_out_of_order(tx: db.Transaction, name: str, version: str) -> None:
    """Stop before applying a file that fills a gap below the highest applied one.

    Files are applied in order, so the first unapplied file is the one that trips
    this, and nothing of the run has been applied when it does.
    """
    highest = tx.scalar(SELECT_HIGHEST_APPLIED)
    if highest is not None and version < highest:
        raise ConfigurationError(
            f"{name} is not applied but the highest applied is {highest}: it would run "
            f"after {highest} here and before it on a fresh database; "
            f"renumber it above {highest}"
        )


def default_sql_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "sql"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sql-dir", type=Path, default=default_sql_dir())
    args = parser.parse_args(argv)

    # A deployment mistake is a message for the operator, not a traceback.
    try:
        applied = _migrate(args.sql_dir)
    except ConfigurationError as error:
        print(f"cannot migrate: {error}", file=sys.stderr)
        return 2
    except TransientError as error:
        print(f"cannot migrate now: {error}", file=sys.stderr)
        return 1
    print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none new'}")
    return 0


def _migrate(sql_dir: Path) -> list[str]:
    loaded = settings.load()
    database = db.connect_from_settings(loaded)
    try:
        return apply_migrations(
            database,
            sql_dir,
            lock_timeout_s=loaded.migrate_lock_timeout_s,
            attempts=loaded.migrate_lock_attempts,
        )
    finally:
        database.close()


if __name__ == "__main__":
    sys.exit(main())
