"""The migration runner applies sql/ once, in order, and refuses edited history."""

from __future__ import annotations

import contextlib
import datetime as dt
from pathlib import Path

import pytest

from cartcast import db, migrate, order_refunds, settings
from cartcast.errors import ConfigurationError, TransientError
from infra import pg


@pytest.fixture
def scratch_url(database_url: str):
    url = pg.create_database(database_url, "cartcast_migrate")
    yield url
    pg.drop_database(url)


def test_applying_twice_applies_nothing_the_second_time(scratch_url: str) -> None:
    database = db.connect_from_settings(_settings(scratch_url))

    first = migrate.apply_migrations(database, migrate.default_sql_dir())
    second = migrate.apply_migrations(database, migrate.default_sql_dir())

    assert first == sorted(p.name for p in migrate.default_sql_dir().glob("*.sql"))
    assert second == []
    database.close()


def test_an_applied_file_that_changed_stops_the_run(
    scratch_url: str, tmp_path: Path
) -> None:
    database = db.connect_from_settings(_settings(scratch_url))
    (tmp_path / "001_first.sql").write_text("CREATE TABLE a (id int);")
    migrate.apply_migrations(database, tmp_path)

    (tmp_path / "001_first.sql").write_text("CREATE TABLE a (id bigint);")

    with pytest.raises(ConfigurationError, match="changed after it was applied"):
        migrate.apply_migrations(database, tmp_path)
    database.close()


def test_a_file_numbered_below_the_highest_applied_is_refused_before_any_applies(
    scratch_url: str, tmp_path: Path
) -> None:
    # A live database that has 001 and 003 would run a later 002 after 003, while a
    # fresh one runs it before: the two would end up with different schemas.
    database = db.connect_from_settings(_settings(scratch_url))
    (tmp_path / "001_first.sql").write_text("CREATE TABLE a (id int);")
    (tmp_path / "003_third.sql").write_text("CREATE TABLE c (id int);")
    migrate.apply_migrations(database, tmp_path)
    (tmp_path / "002_in_the_gap.sql").write_text("CREATE TABLE b (id int);")
    (tmp_path / "004_next.sql").write_text("CREATE TABLE d (id int);")

    with pytest.raises(ConfigurationError) as refused:
        migrate.apply_migrations(database, tmp_path)

    assert "002_in_the_gap.sql" in str(refused.value)
    assert "highest applied is 003" in str(refused.value)
    with database.transaction() as tx:
        assert tx.scalar("SELECT to_regclass('b')") is None
        assert tx.scalar("SELECT to_regclass('d')") is None
        assert tx.scalar("SELECT count(*) FROM schema_migrations") == 2
    database.close()


def test_a_new_file_above_the_highest_applied_is_applied(
    scratch_url: str, tmp_path: Path
) -> None:
    database = db.connect_from_settings(_settings(scratch_url))
    (tmp_path / "001_first.sql").write_text("CREATE TABLE a (id int);")
    (tmp_path / "003_third.sql").write_text("CREATE TABLE c (id int);")
    migrate.apply_migrations(database, tmp_path)
    (tmp_path / "004_next.sql").write_text("CREATE TABLE d (id int);")

    applied = migrate.apply_migrations(database, tmp_path)

    assert applied == ["004_next.sql"]
    database.close()


def test_a_failing_file_leaves_nothing_behind(scratch_url: str, tmp_path: Path) -> None:
    database = db.connect_from_settings(_settings(scratch_url))
    (tmp_path / "001_broken.sql").write_text("CREATE TABLE b (id int); SELECT nope;")

    with pytest.raises(Exception, match="nope"):
        migrate.apply_migrations(database, tmp_path)

    with database.transaction() as tx:
        assert tx.scalar("SELECT to_regclass('b')") is None
        # The ledger was created in the same transaction, so it is gone too.
        assert tx.scalar("SELECT to_regclass('schema_migrations')") is None
    database.close()


def test_badly_named_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "1_first.sql").write_text("SELECT 1;")

    with pytest.raises(ConfigurationError, match="NNN_name.sql"):
        migrate.find_migrations(tmp_path)


# How long each try of a blocked migration waits for its lock in these tests: short,
# as each test ends the wait by a lock, never by the time it took.
LOCK_TIMEOUT_S = 0.2


@pytest.fixture
def orders_table(scratch_url: str, tmp_path: Path):
    """A database whose orders table 001 made, and 002 to alter it, not applied."""
    database = db.connect_from_settings(_settings(scratch_url))
    (tmp_path / "001_orders.sql").write_text("CREATE TABLE orders (id int);")
    migrate.apply_migrations(database, tmp_path)
    (tmp_path / "002_orders_total.sql").write_text(
        "ALTER TABLE orders ADD COLUMN total int;"
    )
    yield database
    database.close()


@contextlib.contextmanager
def reading_orders_in_a_long_transaction(url: str):
    """Hold the orders table as a long report would: a read in an open
    transaction, its lock kept until the block ends or the stack yielded is
    closed first."""
    reader = db.connect_from_settings(_settings(url))
    with contextlib.ExitStack() as stack:
        stack.callback(reader.close)
        report = stack.enter_context(reader.transaction())
        report.rows("SELECT * FROM orders")
        yield stack


def test_a_migration_blocked_by_a_long_transaction_gives_way_and_tries_again(
    scratch_url: str, orders_table, tmp_path: Path
) -> None:
    # Arrange: the report ends while the runner pauses after its first try.
    pauses = []

    def pause(seconds: float) -> None:
        pauses.append(seconds)
        report.close()

    # Act
    with reading_orders_in_a_long_transaction(scratch_url) as report:
        applied = migrate.apply_migrations(
            orders_table,
            tmp_path,
            lock_timeout_s=LOCK_TIMEOUT_S,
            attempts=3,
            pause=pause,
        )

    # Assert: the first try gave way at lock_timeout, the second applied.
    assert applied == ["002_orders_total.sql"]
    assert pauses == [LOCK_TIMEOUT_S]
    with orders_table.transaction() as tx:
        assert tx.rows("SELECT id, total FROM orders") == []


def test_the_longest_lock_wait_the_settings_allow_gives_way_before_a_read_times_out(
    scratch_url: str, orders_table, tmp_path: Path
) -> None:
    """Every read of a connection times out after db.CONNECT_TIMEOUT_S: a lock
    wait set longer ends as a lost connection instead, no try given way, and
    the server keeps the ALTER queued, every query on the table behind it."""
    longest_s = settings.MIGRATE_LOCK_TIMEOUT_MAX_S

    def pause(seconds: float) -> None:
        report.close()

    with reading_orders_in_a_long_transaction(scratch_url) as report:
        applied = migrate.apply_migrations(
            orders_table, tmp_path, lock_timeout_s=longest_s, attempts=2, pause=pause
        )

    assert applied == ["002_orders_total.sql"]


def test_a_migration_blocked_at_every_try_stops_naming_its_file_with_nothing_applied(
    scratch_url: str, orders_table, tmp_path: Path
) -> None:
    pauses = []

    with reading_orders_in_a_long_transaction(scratch_url):
        with pytest.raises(TransientError) as raised:
            migrate.apply_migrations(
                orders_table,
                tmp_path,
                lock_timeout_s=LOCK_TIMEOUT_S,
                attempts=3,
                pause=pauses.append,
            )

    assert "002_orders_total.sql" in str(raised.value)
    assert "3 tries" in str(raised.value)
    assert pauses == [LOCK_TIMEOUT_S] * 2
    with orders_table.transaction() as tx:
        assert tx.scalar("SELECT max(version) FROM schema_migrations") == "001"


def test_the_migrate_command_bounds_its_lock_wait_as_its_settings_say(
    scratch_url: str, orders_table, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("DATABASE_URL", scratch_url)
    monkeypatch.setenv("CARTCAST_MIGRATE_LOCK_TIMEOUT_S", str(LOCK_TIMEOUT_S))
    monkeypatch.setenv("CARTCAST_MIGRATE_LOCK_ATTEMPTS", "1")

    with reading_orders_in_a_long_transaction(scratch_url):
        status = migrate.main(["--sql-dir", str(tmp_path)])

    printed = capsys.readouterr()
    assert status == 1
    assert printed.err.startswith("cannot migrate now: 002_orders_total.sql")
    assert "Traceback" not in printed.err


def test_make_migrate_reads_the_lock_wait_settings_and_names_a_bad_one(
    scratch_url: str, capsys
) -> None:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DATABASE_URL", scratch_url)
        env.setenv("CARTCAST_MIGRATE_LOCK_ATTEMPTS", "0")
        status = pg.main(["migrate"])

    printed = capsys.readouterr()
    assert status == 2
    assert printed.err.startswith("migrate: ")
    assert "CARTCAST_MIGRATE_LOCK_ATTEMPTS" in printed.err


def _settings(url: str):
    from cartcast.settings import Settings

    return Settings(database_url=url)


def test_running_without_settings_names_them_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("DATABASE_URL", "CLOUD_SQL_INSTANCE"):
        monkeypatch.delenv(name, raising=False)

    status = migrate.main([])

    captured = capsys.readouterr()
    assert status == 2
    assert "DATABASE_URL or CLOUD_SQL_INSTANCE" in captured.err
    assert "Traceback" not in captured.err
    assert captured.out == ""


def test_migrate_into_a_database_that_does_not_exist_says_so_in_one_line(
    database_url: str, capsys
) -> None:
    # make migrate with DATABASE_URL naming a database not yet created.
    missing = pg.with_database(database_url, "cartcast_never_created")

    with pytest.MonkeyPatch.context() as env:
        env.setenv("DATABASE_URL", missing)
        status = pg.main(["migrate"])

    printed = capsys.readouterr()
    assert status == 1
    assert printed.out == ""
    assert printed.err.count("\n") == 1
    assert 'database "cartcast_never_created" does not exist' in printed.err


def test_060_names_the_orders_a_backfill_keyed_by_name_stored_before_it(
    scratch_url: str, tmp_path: Path
) -> None:
    # A file without an Id column keyed its orders by Name ("#1001"); 060 gives
    # those, and only those, their name, so a webhook for one finds it.
    database = db.connect_from_settings(_settings(scratch_url))
    name_file = "060_orders_keep_their_name_and_refunds.sql"
    for path in migrate.default_sql_dir().glob("*.sql"):
        if path.name < name_file:
            (tmp_path / path.name).symlink_to(path)
    migrate.apply_migrations(database, tmp_path)
    with database.transaction() as tx:
        brand_id = tx.scalar(
            "INSERT INTO brands (slug, name, time_zone, store_base_url, "
            "posting_slots, created_at) VALUES ('old-goods', 'Old Goods', 'UTC', "
            "'https://old-goods.example', '[]', now()) RETURNING id"
        )
        for external_id, webhook_id in (
            ("#1001", None),
            ("820982911946154508", "delivery-1"),
            ("A-7", None),
        ):
            tx.execute(
                "INSERT INTO orders (brand_id, external_id, ordered_at, currency, "
                "total_price, received_at, webhook_id) VALUES (:brand_id, "
                ":external_id, now(), 'USD', 5, now(), :webhook_id)",
                brand_id=brand_id,
                external_id=external_id,
                webhook_id=webhook_id,
            )
    (tmp_path / name_file).symlink_to(migrate.default_sql_dir() / name_file)

    applied = migrate.apply_migrations(database, tmp_path)

    assert applied == [name_file]
    with database.transaction() as tx:
        rows = tx.rows("SELECT external_id, name FROM orders ORDER BY external_id")
    assert {row["external_id"]: row["name"] for row in rows} == {
        "#1001": "#1001",
        "820982911946154508": None,
        "A-7": None,
    }
    database.close()


def test_061_leaves_orders_stored_before_it_taking_refunds_whole(
    scratch_url: str, tmp_path: Path
) -> None:
    # A live database: an order, with a refund already taken off, before 061.
    database = db.connect_from_settings(_settings(scratch_url))
    refunds_file = "061_refunds_wait_for_their_order_and_files_keep_their_refunds.sql"
    for path in migrate.default_sql_dir().glob("*.sql"):
        if path.name < refunds_file:
            (tmp_path / path.name).symlink_to(path)
    migrate.apply_migrations(database, tmp_path)
    with database.transaction() as tx:
        brand_id = str(
            tx.scalar(
                "INSERT INTO brands (slug, name, time_zone, store_base_url, "
                "posting_slots, created_at) VALUES ('old-goods', 'Old Goods', "
                "'UTC', 'https://old-goods.example', '[]', now()) RETURNING id"
            )
        )
        tx.execute(
            "INSERT INTO orders (brand_id, external_id, ordered_at, currency, "
            "total_price, received_at, refunds) VALUES (:brand_id, '5001', "
            "'2026-03-01T10:00:00Z', 'USD', 80, '2026-03-01T11:00:00Z', "
            "CAST(:refunds AS jsonb))",
            brand_id=brand_id,
            refunds='{"1": "20.00"}',
        )
    (tmp_path / refunds_file).symlink_to(migrate.default_sql_dir() / refunds_file)

    applied = migrate.apply_migrations(database, tmp_path)
    with database.transaction() as tx:
        again = _refund_of_5001(tx, brand_id, refund_id=1)
        later = _refund_of_5001(tx, brand_id, refund_id=2)
        total = tx.scalar("SELECT total_price FROM orders")

    assert applied == [refunds_file]
    assert (again["duplicate"], later["duplicate"]) == (True, False)
    # No file's amount to match: made before the order was stored, it is whole.
    assert str(total) == "60.00"
    database.close()


def _refund_of_5001(tx, brand_id: str, *, refund_id: int) -> dict:
    """Deliver a 20.00 refund of order 5001, made before the order was stored."""
    body = {
        "id": refund_id,
        "order_id": 5001,
        "created_at": "2026-03-01T10:30:00Z",
        "transactions": [{"kind": "refund", "status": "success", "amount": "20.00"}],
    }
    now = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
    return order_refunds.receive_refund(tx, brand_id=brand_id, body=body, now=now)
