"""Failed console sign-ins, bounded per client address and window (signin_limits.py).

The limit is made 3 failures a 15-minute window here. The test client's address is
127.0.0.1; with CARTCAST_CONSOLE_PROXY_HOPS=1, as in the cloud, the address is the
last X-Forwarded-For entry, the one Google's front end appends.
"""

from __future__ import annotations

import datetime as dt

import pytest

from cartcast import runtime as runtime_module
from cartcast import signin_limits
from tests.helpers import auth
from tests.test_console import client as client  # noqa: F401 (fixture)
from tests.test_console import make_brand, sign_in, text_of

FAILURES = 3
WINDOW = dt.timedelta(minutes=15)


@pytest.fixture
def limited(monkeypatch, client):  # noqa: F811
    monkeypatch.setenv("CARTCAST_CONSOLE_SIGNIN_FAILURES", str(FAILURES))
    monkeypatch.setenv("CARTCAST_CONSOLE_SIGNIN_WINDOW_MIN", "15")
    runtime_module.reset()
    return client


def sign_in_from(client, key: str, forwarded_for: str):
    return client.post(
        "/console/signin", data={"key": key}, headers={"X-Forwarded-For": forwarded_for}
    )


def limited_sign_ins(client, brand_key: str) -> list[dict]:
    return client.get(
        "/v1/audit?action=access.signin_limited", headers=auth(brand_key)
    ).get_json()["events"]


def test_past_the_failures_of_a_window_even_the_right_key_gets_a_429(
    limited, clock_file
) -> None:
    brand = make_brand(limited)
    # The window the pinned clock falls in: 08:00 to 08:15 UTC.
    clock_file.set(clock_file.now() + dt.timedelta(minutes=5))

    wrong = [sign_in(limited, f"cc_guess-{n}").status_code for n in range(FAILURES)]
    refused = sign_in(limited, brand["key"])

    assert wrong == [401] * FAILURES
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == str(10 * 60)
    assert "Set-Cookie" not in refused.headers
    assert "too many failed sign-ins from your address" in text_of(refused)
    assert "try again in 10 minute(s)" in text_of(refused)
    # The key was a brand's: its trail says someone holding it was held off.
    trail = limited_sign_ins(limited, brand["key"])
    assert [(e["actor"], e["subject"]) for e in trail] == [
        ("admin", "route:POST /console/signin")
    ]


def test_a_wrong_key_refused_by_the_limit_names_no_brand(limited) -> None:
    brand = make_brand(limited)
    for n in range(FAILURES):
        sign_in(limited, f"cc_guess-{n}")

    refused = sign_in(limited, "cc_another-guess")

    assert refused.status_code == 429
    assert limited_sign_ins(limited, brand["key"]) == []


def test_the_next_window_lets_the_address_sign_in_again(limited, clock_file) -> None:
    brand = make_brand(limited)
    for n in range(FAILURES):
        sign_in(limited, f"cc_guess-{n}")
    clock_file.set(clock_file.now() + WINDOW)

    answer = sign_in(limited, brand["key"])

    assert answer.status_code == 303
    assert answer.headers["Location"] == "/console/approvals"


def test_a_right_key_does_not_count_and_a_bad_form_does_not_either(limited) -> None:
    brand = make_brand(limited)

    for _ in range(FAILURES + 2):
        assert sign_in(limited, brand["key"]).status_code == 303
    blanks = [sign_in(limited, "  ").status_code for _ in range(FAILURES)]
    last = sign_in(limited, brand["key"])

    # An empty key is a form to fill in, not a guess.
    assert blanks == [400] * FAILURES
    assert last.status_code == 303


def test_behind_googles_front_end_each_caller_is_counted_apart(
    limited, monkeypatch
) -> None:
    monkeypatch.setenv("CARTCAST_CONSOLE_PROXY_HOPS", "1")
    runtime_module.reset()
    brand = make_brand(limited)
    # The caller writes what it likes on the left; the front end appends its address.
    for n in range(FAILURES):
        sign_in_from(limited, f"cc_guess-{n}", f"10.9.9.{n}, 203.0.113.7")

    guesser = sign_in_from(limited, brand["key"], "198.51.100.1, 203.0.113.7")
    someone_else = sign_in_from(limited, brand["key"], "203.0.113.8")

    assert guesser.status_code == 429
    assert someone_else.status_code == 303


@pytest.mark.parametrize(
    ("remote", "forwarded", "hops", "client"),
    [
        ("127.0.0.1", "", 0, "127.0.0.1"),
        ("127.0.0.1", "203.0.113.7", 0, "127.0.0.1"),
        ("169.254.1.1", "1.2.3.4, 203.0.113.7", 1, "203.0.113.7"),
        ("169.254.1.1", "203.0.113.7, 35.191.0.1", 2, "203.0.113.7"),
        # One host's IPv6 addresses share its /64.
        ("::1", "2001:db8:1:2:aaaa::1", 1, "2001:db8:1:2::/64"),
        ("::1", "2001:db8:1:2:bbbb::9", 1, "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "", 0, "203.0.113.7"),
        # Fewer entries than hops, or no address at all: one shared count.
        ("169.254.1.1", "", 1, "unknown"),
        ("169.254.1.1", "not-an-address", 1, "unknown"),
    ],
)
def test_the_client_address_counted(remote, forwarded, hops, client) -> None:  # noqa: F811
    assert signin_limits.client_address(remote, forwarded, hops) == client


@pytest.mark.parametrize(
    ("environ", "problem"),
    [
        ({"CARTCAST_CONSOLE_SIGNIN_FAILURES": "0"}, "positive"),
        ({"CARTCAST_CONSOLE_SIGNIN_FAILURES": "1001"}, "at most 1000"),
        ({"CARTCAST_CONSOLE_SIGNIN_WINDOW_MIN": "1441"}, "at most 1440 minutes"),
        ({"CARTCAST_CONSOLE_PROXY_HOPS": "6"}, "from 0 to 5"),
        ({"CARTCAST_CONSOLE_PROXY_HOPS": "-1"}, "from 0 to 5"),
        ({"CARTCAST_CONSOLE_IMPORT_CHUNK": "1001"}, "at most 1000"),
    ],
)
def test_the_sign_in_limit_settings_are_bounded(environ, problem) -> None:
    from cartcast import settings
    from cartcast.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match=problem):
        settings.load(environ)


def test_the_cloud_counts_the_address_googles_front_end_appends() -> None:
    from cartcast import settings

    cloud = {
        "CARTCAST_ENV": "cloud",
        "CLOUD_SQL_INSTANCE": "p:r:i",
        "DB_USER": "fn",
        "CARTCAST_PUBSUB": "google",
        "GOOGLE_CLOUD_PROJECT": "p",
    }

    assert (
        settings.load({"DATABASE_URL": "postgresql://x@127.0.0.1/y"}).console_proxy_hops
        == 0
    )
    assert settings.load(cloud).console_proxy_hops == 1
    assert (
        settings.load({**cloud, "CARTCAST_CONSOLE_PROXY_HOPS": "2"}).console_proxy_hops
        == 2
    )


def test_guesses_racing_from_one_address_take_turns_at_the_count(limited) -> None:
    import threading

    from cartcast.errors import TooManyRequests

    current = runtime_module.current()
    now, client = current.clock.now(), "203.0.113.9"
    limit = {"failures_max": FAILURES, "window_min": 15}
    with current.database.transaction() as tx:
        for _ in range(FAILURES - 1):
            signin_limits.record_failure(tx, client=client, now=now, window_min=15)
    outcome: list[str] = []

    def second_guess() -> None:
        with current.database.transaction() as tx:
            try:
                signin_limits.check(tx, client=client, now=now, **limit)
            except TooManyRequests:
                outcome.append("refused")
            else:
                outcome.append("let through")

    # The last allowed guess is being checked when a second one arrives: the second
    # must wait for the first to be counted, not read the count before it.
    with current.database.transaction() as first:
        signin_limits.check(first, client=client, now=now, **limit)
        racer = threading.Thread(target=second_guess)
        racer.start()
        while racer.is_alive() and not waiting_for_a_lock(current):
            racer.join(0.01)
        signin_limits.record_failure(first, client=client, now=now, window_min=15)
    racer.join()

    assert outcome == ["refused"]


def waiting_for_a_lock(current) -> bool:
    with current.database.transaction() as tx:
        return tx.scalar(WAITING_HERE) > 0


# Other tests may share the server: only this database's waits count.
WAITING_HERE = """
SELECT count(*) FROM pg_locks WHERE NOT granted
    AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


def test_the_daily_rollup_forgets_the_addresses_of_past_windows(
    limited, clock_file
) -> None:
    from tests.test_data_duties import tick

    current = runtime_module.current()
    with current.database.transaction() as tx:
        signin_limits.record_failure(
            tx, client="203.0.113.7", now=current.clock.now(), window_min=15
        )
    # No failure comes after it to clear it; the next day's rollup must.
    next_day = current.clock.now() + dt.timedelta(days=1)
    clock_file.set(next_day)

    rolled = tick("rollup_kpis", next_day)

    assert rolled.status_code == 200
    with current.database.transaction() as tx:
        assert tx.scalar("SELECT count(*) FROM console_signin_failures") == 0
