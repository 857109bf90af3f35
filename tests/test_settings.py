"""Settings come from the environment once, and name every problem at once."""

from __future__ import annotations

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
