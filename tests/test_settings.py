"""Settings come from the environment once, and name every problem at once."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from cartcast import settings
from cartcast.errors import ConfigurationError


def test_every_problem_is_named_in_one_error() -> None:
    with pytest.raises(ConfigurationError) as raised:
        settings.load({"X_TIMEOUT_S": "soon", "CARTCAST_PUBSUB": "carrier-pigeon"})

    message = str(raised.value)
    assert "X_TIMEOUT_S" in message
    assert "CARTCAST_PUBSUB" in message
    assert "DATABASE_URL or CLOUD_SQL_INSTANCE" in message


def test_the_cloud_refuses_a_simulated_clock_and_local_pushes() -> None:
    with pytest.raises(ConfigurationError) as raised:
        settings.load(
            {
                "CARTCAST_ENV": "cloud",
                "CLOUD_SQL_INSTANCE": "p:r:i",
                "DB_USER": "fn",
                "CARTCAST_CLOCK": "/tmp/clock",
            }
        )

    assert "CARTCAST_CLOCK" in str(raised.value)
    assert "CARTCAST_PUBSUB must be google" in str(raised.value)


def test_a_complete_cloud_configuration_loads() -> None:
    loaded = settings.load(
        {
            "CARTCAST_ENV": "cloud",
            "CLOUD_SQL_INSTANCE": "p:r:i",
            "DB_USER": "fn",
            "CARTCAST_PUBSUB": "google",
            "GOOGLE_CLOUD_PROJECT": "p",
        }
    )

    assert loaded.cloud_sql_instance == "p:r:i"
    assert loaded.clock_file is None


def test_local_push_endpoints_are_parsed() -> None:
    loaded = settings.load(
        {
            "DATABASE_URL": "postgresql://x@/db?host=/tmp",
            "CARTCAST_PUBSUB_PUSH": "a=http://127.0.0.1:1/, b=http://127.0.0.1:2/",
        }
    )

    assert loaded.pubsub_push_endpoints == {
        "a": "http://127.0.0.1:1/",
        "b": "http://127.0.0.1:2/",
    }


BASE = {"DATABASE_URL": "postgresql://x@/db?host=/tmp"}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LOG_LEVEL", "verbose"),
        ("X_TIMEOUT_S", "nan"),
        ("X_TIMEOUT_S", "inf"),
        ("GEMINI_TIMEOUT_S", "1e309"),
        ("DB_IAM_AUTH", "ture"),
        ("DB_IAM_AUTH", "on"),
        ("CARTCAST_NEAR_DUPLICATE_THRESHOLD", "0"),
        ("CARTCAST_NEAR_DUPLICATE_THRESHOLD", "-0.5"),
        ("CARTCAST_NEAR_DUPLICATE_THRESHOLD", "1.01"),
        ("CARTCAST_NEAR_DUPLICATE_THRESHOLD", "80%"),
        ("CARTCAST_NEAR_DUPLICATE_THRESHOLD", "nan"),
        ("CARTCAST_NEAR_DUPLICATE_DAYS", "0"),
        ("CARTCAST_NEAR_DUPLICATE_DAYS", "a month"),
    ],
)
def test_a_malformed_value_is_named(name, value) -> None:
    with pytest.raises(ConfigurationError) as raised:
        settings.load({**BASE, name: value})

    assert name in str(raised.value)
    assert value in str(raised.value)


def test_all_malformed_values_are_named_together() -> None:
    with pytest.raises(ConfigurationError) as raised:
        settings.load({"LOG_LEVEL": "verbose", "DB_IAM_AUTH": "ture"})

    message = str(raised.value)
    assert "LOG_LEVEL" in message
    assert "DB_IAM_AUTH" in message
    assert "DATABASE_URL or CLOUD_SQL_INSTANCE" in message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("yes", True),
        ("false", False),
        ("0", False),
        ("No", False),
        ("", True),
    ],
)
def test_db_iam_auth_reads_the_usual_spellings(value, expected) -> None:
    loaded = settings.load({**BASE, "DB_IAM_AUTH": value})

    assert loaded.db_iam_auth is expected


@pytest.mark.parametrize("level", ["debug", "INFO", "Warning", "ERROR", "critical"])
def test_log_levels_are_read_in_any_case(level) -> None:
    assert settings.load({**BASE, "LOG_LEVEL": level}).log_level == level.upper()


def test_near_duplicates_are_80_percent_alike_within_30_days_by_default() -> None:
    loaded = settings.load(BASE)

    assert loaded.near_duplicate_threshold == 0.8
    assert loaded.near_duplicate_days == 30


@pytest.mark.parametrize(("value", "expected"), [("1", 1.0), ("0.65", 0.65)])
def test_a_near_duplicate_threshold_up_to_1_is_read(value, expected) -> None:
    loaded = settings.load({**BASE, "CARTCAST_NEAR_DUPLICATE_THRESHOLD": value})

    assert loaded.near_duplicate_threshold == expected


def test_an_unconfirmed_post_is_called_absent_5_minutes_after_sending_by_default():
    assert settings.load(BASE).reconcile_delay_s == 300


@pytest.mark.parametrize("value", ["10", "90000"])
def test_a_reconcile_delay_outside_half_a_minute_to_a_day_is_refused(value) -> None:
    with pytest.raises(ConfigurationError) as raised:
        settings.load({**BASE, "CARTCAST_RECONCILE_DELAY_S": value})

    assert "CARTCAST_RECONCILE_DELAY_S must be between 30 and 86400" in str(
        raised.value
    )


def test_the_sweeper_calls_a_post_missed_after_15_minutes_and_too_late_after_6_hours():
    loaded = settings.load(BASE)

    assert loaded.missed_after_s == 900
    assert loaded.missed_max_late_s == 21600
    assert loaded.reconcile_pages_max == 5


def test_a_late_bound_not_past_the_missed_threshold_is_refused() -> None:
    with pytest.raises(ConfigurationError) as raised:
        settings.load(
            {
                **BASE,
                "CARTCAST_MISSED_AFTER_S": "3600",
                "CARTCAST_MISSED_MAX_LATE_S": "3600",
            }
        )

    assert "CARTCAST_MISSED_MAX_LATE_S must be more than CARTCAST_MISSED_AFTER_S" in (
        str(raised.value)
    )


@pytest.mark.parametrize(
    "name",
    [
        "CARTCAST_MISSED_AFTER_S",
        "CARTCAST_MISSED_MAX_LATE_S",
        "CARTCAST_RECONCILE_PAGES_MAX",
    ],
)
def test_the_sweeper_and_reconciler_settings_must_be_positive(name) -> None:
    with pytest.raises(ConfigurationError) as raised:
        settings.load({**BASE, name: "0"})

    assert f"{name} must be a positive number" in str(raised.value)


def test_x_prices_are_read_from_one_setting_per_class() -> None:
    loaded = settings.load(
        {
            "DATABASE_URL": "postgresql://localhost/x",
            "CARTCAST_X_PRICE_POST_USD": "0.02",
            "CARTCAST_X_PRICE_OWNED_READ_USD": "0",
        }
    )

    assert loaded.x_prices_usd["post"] == Decimal("0.02")
    assert loaded.x_prices_usd["owned_read"] == Decimal("0")
    assert loaded.x_prices_usd["post_with_url"] == Decimal("0.20")


@pytest.mark.parametrize(
    "price",
    [
        *("free", "-0.01", "0.00005", "2", "NaN", "1e400"),
        *("\u0661", "0.1_0", "-0", "0. 2", "1e-3", "+0.1", ".5", "0.2\u0662"),
    ],
)
def test_a_price_that_is_not_a_small_amount_of_dollars_is_refused(price) -> None:
    with pytest.raises(ConfigurationError) as raised:
        settings.load(
            {
                "DATABASE_URL": "postgresql://localhost/x",
                "CARTCAST_X_PRICE_USER_READ_USD": price,
            }
        )

    assert "CARTCAST_X_PRICE_USER_READ_USD must be a price in dollars" in str(
        raised.value
    )


def test_x_post_limits_default_to_x_s_published_figures_and_must_be_positive() -> None:
    loaded = settings.load({"DATABASE_URL": "postgresql://localhost/x"})
    with pytest.raises(ConfigurationError) as raised:
        settings.load(
            {
                "DATABASE_URL": "postgresql://localhost/x",
                "CARTCAST_X_POSTS_PER_15MIN_PER_USER": "0",
                "CARTCAST_X_POSTS_PER_24H_PER_APP": "many",
            }
        )

    assert (
        loaded.x_posts_per_15min_per_user,
        loaded.x_posts_per_3h_per_user,
        loaded.x_posts_per_24h_per_app,
    ) == (100, 300, 10_000)
    assert "CARTCAST_X_POSTS_PER_15MIN_PER_USER" in str(raised.value)
    assert "CARTCAST_X_POSTS_PER_24H_PER_APP" in str(raised.value)


def test_publishing_retries_5_times_from_a_minute_up_to_half_an_hour_by_default():
    loaded = settings.load({"DATABASE_URL": "postgresql://x/y"})

    assert loaded.publish_retries == 5
    assert (loaded.publish_retry_base_s, loaded.publish_retry_max_s) == (60, 1800)


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"CARTCAST_PUBLISH_RETRIES": "0"}, "CARTCAST_PUBLISH_RETRIES"),
        ({"CARTCAST_PUBLISH_RETRIES": "21"}, "CARTCAST_PUBLISH_RETRIES"),
        ({"CARTCAST_PUBLISH_RETRIES": "many"}, "CARTCAST_PUBLISH_RETRIES"),
        ({"CARTCAST_PUBLISH_RETRY_BASE_S": "-1"}, "CARTCAST_PUBLISH_RETRY_BASE_S"),
        (
            {
                "CARTCAST_PUBLISH_RETRY_BASE_S": "600",
                "CARTCAST_PUBLISH_RETRY_MAX_S": "60",
            },
            "must not exceed CARTCAST_PUBLISH_RETRY_MAX_S",
        ),
        ({"CARTCAST_PUBLISH_RETRY_MAX_S": "90000"}, "CARTCAST_PUBLISH_RETRY_MAX_S"),
        ({"CARTCAST_ALERT_TIMEOUT_S": "60"}, "CARTCAST_ALERT_TIMEOUT_S"),
        ({"CARTCAST_ALERT_MAX_AGE_S": "nan"}, "CARTCAST_ALERT_MAX_AGE_S"),
    ],
)
def test_retry_and_alert_settings_out_of_range_are_named(environ, named) -> None:
    with pytest.raises(ConfigurationError) as raised:
        settings.load({"DATABASE_URL": "postgresql://x/y", **environ})

    assert named in str(raised.value)


def test_a_lease_too_short_for_the_x_timeout_names_both_and_the_value_to_set() -> None:
    env = {"DATABASE_URL": "postgresql://x", "X_TIMEOUT_S": "100"}

    with pytest.raises(ConfigurationError) as raised:
        settings.load(env)

    message = str(raised.value)
    assert "CARTCAST_PUBLISH_LEASE_S must be at least 3 × X_TIMEOUT_S + 30" in message
    assert "with X_TIMEOUT_S=100, set CARTCAST_PUBLISH_LEASE_S=330 or more" in message


def test_a_lease_of_exactly_three_timeouts_and_thirty_seconds_loads() -> None:
    env = {
        "DATABASE_URL": "postgresql://x",
        "X_TIMEOUT_S": "100",
        "CARTCAST_PUBLISH_LEASE_S": "330",
    }

    assert settings.load(env).publish_lease_s == 330


def test_posts_may_be_scheduled_a_year_ahead_by_default() -> None:
    assert (
        settings.load({"DATABASE_URL": "postgresql://x"}).schedule_horizon_days == 365
    )


@pytest.mark.parametrize("value", ["0", "-1", "x", "3661"])
def test_a_schedule_horizon_outside_1_to_3660_days_is_refused(value) -> None:
    env = {"DATABASE_URL": "postgresql://x", "CARTCAST_SCHEDULE_HORIZON_DAYS": value}

    with pytest.raises(ConfigurationError, match="CARTCAST_SCHEDULE_HORIZON_DAYS"):
        settings.load(env)


def test_a_15_minute_post_limit_above_the_3_hour_one_is_refused() -> None:
    with pytest.raises(ConfigurationError) as raised:
        settings.load(
            {
                "DATABASE_URL": "postgresql://x",
                "CARTCAST_X_POSTS_PER_15MIN_PER_USER": "400",
                "CARTCAST_X_POSTS_PER_3H_PER_USER": "300",
            }
        )

    assert "CARTCAST_X_POSTS_PER_15MIN_PER_USER must not exceed" in str(raised.value)


@pytest.mark.parametrize(
    ("name", "too_large", "largest"),
    [
        ("X_TIMEOUT_S", "541", "90"),
        ("GEMINI_TIMEOUT_S", "541", "540"),
        ("GEMINI_REQUESTS_PER_MINUTE", "100001", "100000"),
        ("GEMINI_REQUESTS_PER_DAY", "100000001", "100000000"),
        ("CARTCAST_MAX_EVENT_AGE_S", "315360001", "315360000"),
        ("CARTCAST_PUBLISH_BATCH", "1001", "1000"),
        ("CARTCAST_PUBLISH_LEASE_S", "86401", "86400"),
        ("CARTCAST_RECONCILE_PAGES_MAX", "101", "100"),
        ("CARTCAST_MISSED_AFTER_S", "315360001", "900"),
        ("CARTCAST_MISSED_MAX_LATE_S", "100000000000", "315360000"),
        ("CARTCAST_PUBLISH_RETRY_BASE_S", "86401", "60"),
        ("CARTCAST_ALERT_MAX_AGE_S", "315360001", "315360000"),
        ("CARTCAST_MENTION_PAGES_MAX", "101", "100"),
        ("CARTCAST_ATTRIBUTION_WINDOW_DAYS", "3661", "3660"),
        ("CARTCAST_NEAR_DUPLICATE_DAYS", "999999", "3660"),
        ("CARTCAST_CAPTION_PRODUCTS_PER_REQUEST", "21", "20"),
        ("CARTCAST_CAPTION_DRAIN_BUDGET_S", "541", "540"),
        ("CARTCAST_WEBHOOK_BUDGET_S", "541", "540"),
        ("CARTCAST_WEBHOOK_LOOKUP_TIMEOUT_S", "11", "10"),
        ("CARTCAST_CAPTION_IDLE_MAX_S", "3601", "3600"),
        ("CARTCAST_FUNCTION_TIMEOUT_S", "541", "540"),
        ("CARTCAST_BODY_WAIT_S", "541", "540"),
        ("CARTCAST_X_POSTS_PER_15MIN_PER_USER", "10000001", "100"),
        ("CARTCAST_X_POSTS_PER_3H_PER_USER", "10000001", "10000000"),
        ("CARTCAST_X_POSTS_PER_24H_PER_APP", "10000001", "10000000"),
    ],
)
def test_a_duration_or_count_past_its_documented_maximum_is_named(
    name, too_large, largest
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        settings.load({**BASE, name: too_large})

    assert f"{name} must be at most" in str(raised.value)
    assert too_large in str(raised.value)
    settings.load({**BASE, name: largest})


def test_every_setting_past_its_maximum_is_named_in_the_one_error() -> None:
    environ = {
        **BASE,
        "CARTCAST_MISSED_MAX_LATE_S": "100000000000",
        "CARTCAST_NEAR_DUPLICATE_DAYS": "999999",
        "CARTCAST_ATTRIBUTION_WINDOW_DAYS": "99999999",
    }

    with pytest.raises(ConfigurationError) as raised:
        settings.load(environ)

    for name in environ.keys() - BASE.keys():
        assert f"{name} must be at most" in str(raised.value)


def test_a_price_with_spaces_around_it_is_read_as_the_plain_decimal() -> None:
    loaded = settings.load({**BASE, "CARTCAST_X_PRICE_POST_USD": " 0.2 "})

    assert loaded.x_prices_usd["post"] == Decimal("0.2")


@pytest.mark.parametrize("value", ["1_000", "\u0661\u0662", "\uff19\uff10"])
def test_a_number_setting_is_read_only_from_plain_ascii_digits(value) -> None:
    with pytest.raises(ConfigurationError) as raised:
        settings.load({**BASE, "CARTCAST_PUBLISH_BATCH": value})

    assert f"CARTCAST_PUBLISH_BATCH must be a whole number, got {value!r}" in str(
        raised.value
    )


def test_the_webhook_ca_file_must_hold_certificates_tls_can_load(tmp_path) -> None:
    # A wrong path fails the cold start, not every delivery to a private CA.
    not_pem = tmp_path / "notes.txt"
    not_pem.write_text("a CA goes here\n")
    for path in (tmp_path / "missing.pem", not_pem):
        with pytest.raises(ConfigurationError) as raised:
            settings.load(
                {
                    "DATABASE_URL": "postgresql://x",
                    "CARTCAST_WEBHOOK_CA_FILE": str(path),
                }
            )
        assert "CARTCAST_WEBHOOK_CA_FILE" in str(raised.value)
        assert str(path) in str(raised.value)


def test_a_webhook_ca_file_of_certificates_is_read(tmp_path) -> None:
    from tests.helpers import write_authority

    authority, _, _ = write_authority(tmp_path, "private-ca")

    loaded = settings.load(
        {"DATABASE_URL": "postgresql://x", "CARTCAST_WEBHOOK_CA_FILE": str(authority)}
    )

    assert loaded.webhook_ca_file == str(authority)
    assert settings.load({"DATABASE_URL": "postgresql://x"}).webhook_ca_file == ""


def test_a_migration_waits_for_a_lock_as_long_and_as_often_as_set() -> None:
    loaded = settings.load(
        {
            "DATABASE_URL": "postgresql://x",
            "CARTCAST_MIGRATE_LOCK_TIMEOUT_S": "2.5",
            "CARTCAST_MIGRATE_LOCK_ATTEMPTS": "4",
        }
    )
    default = settings.load({"DATABASE_URL": "postgresql://x"})

    assert (loaded.migrate_lock_timeout_s, loaded.migrate_lock_attempts) == (2.5, 4)
    assert (default.migrate_lock_timeout_s, default.migrate_lock_attempts) == (5, 12)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CARTCAST_MIGRATE_LOCK_TIMEOUT_S", "0"),
        ("CARTCAST_MIGRATE_LOCK_TIMEOUT_S", "9"),
        ("CARTCAST_MIGRATE_LOCK_ATTEMPTS", "1.5"),
        ("CARTCAST_MIGRATE_LOCK_ATTEMPTS", "41"),
    ],
)
def test_a_migration_lock_wait_out_of_range_is_named(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        settings.load({"DATABASE_URL": "postgresql://x", name: value})


class Lines(logging.Handler):
    """The records the cartcast logger writes while it is attached."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def warnings_of_a_new_runtime(
    loaded: settings.Settings, level: int = logging.WARNING
) -> list[str]:
    """Build a runtime from `loaded` (its cold start); return its lines at `level`."""
    from cartcast.runtime import Runtime

    lines = Lines()
    logger = logging.getLogger("cartcast")
    logger.addHandler(lines)
    try:
        Runtime(loaded)
    finally:
        logger.removeHandler(lines)
    return [r.getMessage() for r in lines.records if r.levelno == level]


def test_a_proxy_in_the_environment_is_named_at_the_cold_start() -> None:
    # Webhook deliveries and image fetches go straight to the address they
    # checked; a deployment that needs its egress proxy learns so from the log,
    # at INFO: most functions send neither, and the first that goes around the
    # proxy says so at WARNING then (test_webhook_addresses, test_post_kinds).
    loaded = settings.load(
        {"DATABASE_URL": "postgresql://x", "https_proxy": "http://127.0.0.1:9"}
    )

    infos = warnings_of_a_new_runtime(loaded, logging.INFO)

    assert loaded.proxy_variable == "https_proxy"
    assert not [each for each in warnings_of_a_new_runtime(loaded) if "proxy" in each]
    (line,) = [each for each in infos if "proxy" in each]
    assert line.startswith("https_proxy is set")
    assert "127.0.0.1" not in line  # a proxy URL may hold a password


def test_no_proxy_no_warning() -> None:
    loaded = settings.load({"DATABASE_URL": "postgresql://x"})

    assert not [each for each in warnings_of_a_new_runtime(loaded) if "proxy" in each]


def test_webhooks_tunnel_through_an_http_https_proxy_alone() -> None:
    tunnelled = settings.load(
        {
            "DATABASE_URL": "postgresql://x",
            "HTTPS_PROXY": "http://127.0.0.1:9",
            "no_proxy": "crm.internal",
        }
    )
    around = settings.load(
        {"DATABASE_URL": "postgresql://x", "HTTP_PROXY": "http://127.0.0.1:9"}
    )

    assert (tunnelled.webhook_proxy_url, tunnelled.no_proxy) == (
        "http://127.0.0.1:9",
        "crm.internal",
    )
    (said,) = warnings_of_a_new_runtime(tunnelled, logging.INFO)
    assert "webhook deliveries are tunnelled through HTTPS_PROXY" in said
    assert around.webhook_proxy_url == ""
    (said,) = warnings_of_a_new_runtime(around, logging.INFO)
    assert said.startswith("HTTP_PROXY is set")
    assert "and so do webhook deliveries" in said


def test_the_caption_idle_bound_follows_the_gemini_timeout_unless_set() -> None:
    derived = settings.load({**BASE, "GEMINI_TIMEOUT_S": "100"})

    assert derived.caption_idle_max_s == 220
    assert settings.load(BASE).caption_idle_max_s == 60


def test_a_caption_idle_bound_too_short_for_two_gemini_calls_names_the_value() -> None:
    env = {**BASE, "GEMINI_TIMEOUT_S": "30", "CARTCAST_CAPTION_IDLE_MAX_S": "61"}

    with pytest.raises(ConfigurationError) as raised:
        settings.load(env)

    message = str(raised.value)
    assert "CARTCAST_CAPTION_IDLE_MAX_S must be at least 2 × GEMINI_TIMEOUT_S" in (
        message
    )
    assert "set CARTCAST_CAPTION_IDLE_MAX_S=62 or more" in message
