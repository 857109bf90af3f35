"""What `make demo` prints for the reader to type next works as printed."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import os
import subprocess
from pathlib import Path

import pytest

from infra import demo

REPO = Path(__file__).resolve().parents[1]


def printed_database_url(database: str, server_url: str) -> str:
    """Run the demo's `export DATABASE_URL=...` line as a reader would, return it."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        demo.print_api_access("cc_not_a_real_key", database)
    export = next(
        line.strip()
        for line in printed.getvalue().splitlines()
        if line.strip().startswith("export DATABASE_URL=")
    )

    # The reader's shell: DATABASE_URL names the server the demo ran on.
    shell = subprocess.run(
        ["bash", "-c", f'{export} && printf %s "$DATABASE_URL"'],
        cwd=REPO,
        env={**os.environ, "DATABASE_URL": server_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return shell.stdout


@pytest.mark.parametrize(
    ("server_url", "demo_url"),
    [
        (
            "postgresql://postgres@127.0.0.1:5432/postgres",
            "postgresql://postgres@127.0.0.1:5432/cartcast_demo",
        ),
        (
            "postgresql://app:secret@127.0.0.1:5432/newuser_db",
            "postgresql://app:secret@127.0.0.1:5432/cartcast_demo",
        ),
        (
            "postgresql://postgres:@/postgres?host=/tmp/var/pg",
            "postgresql://postgres:@/cartcast_demo?host=/tmp/var/pg",
        ),
    ],
)
def test_the_api_hint_points_at_the_demo_database_whatever_the_server(
    server_url: str, demo_url: str
) -> None:
    url = printed_database_url("cartcast_demo", server_url)

    assert url == demo_url


def printed_hints(database: str) -> str:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        demo.print_api_access("cc_not_a_real_key", database)
    return printed.getvalue()


def test_the_console_hint_is_make_serve_for_the_default_database() -> None:
    hints = printed_hints("cartcast_demo")

    assert "run: make serve" in hints


def test_the_console_hint_keeps_a_database_named_on_the_command_line() -> None:
    # make serve would drop and recreate cartcast_demo, not the one this run used.
    hints = printed_hints("newuser_demo")

    assert "make serve" not in hints
    assert ".venv/bin/python -m infra.demo --serve --database newuser_demo" in hints


def test_a_database_name_the_shell_would_split_is_quoted_in_the_hints() -> None:
    # Pasted as printed, `--database a;b` would run a command named b.
    hints = printed_hints("demo;rm -rf x")

    assert "--database 'demo;rm -rf x')" in hints
    assert "--serve --database 'demo;rm -rf x'\n" in hints


@pytest.mark.parametrize("posts", ["0", "-1", "18"])
def test_a_post_count_the_week_cannot_hold_is_refused_before_anything_starts(
    posts, capsys
) -> None:
    with pytest.raises(SystemExit) as refused:
        demo.main(["--posts", posts])

    assert refused.value.code == 2
    assert "--posts" in capsys.readouterr().err


class _StubCloud:
    def url(self, function: str) -> str:
        return f"http://127.0.0.1:9/{function}/"


def test_make_serve_lets_the_clock_run_on_from_the_end_of_the_week(tmp_path) -> None:
    """Stood still, the clock would never end a sign-in lockout's window (its
    Retry-After would say 900 s for ever) nor a session's 8 hours."""
    from cartcast.clock import FileClock, parse_instant

    clock = FileClock(tmp_path / "clock")
    week_end = parse_instant("2026-03-09T09:00:00Z")
    clock.set(week_end)
    seen: list = []
    readings = iter([100.0, 130.0, 1000.0])

    def sleep(_seconds: float) -> None:
        seen.append(clock.now())
        if len(seen) == 3:
            raise KeyboardInterrupt  # Ctrl-C

    with contextlib.redirect_stdout(io.StringIO()):
        demo.serve_console(
            _StubCloud(),
            "cc_not_a_real_key",
            clock=clock,
            sleep=sleep,
            monotonic=lambda: next(readings),
        )

    # Started at 100 s of real time; 30 s and 900 s on, the clock is as far on.
    assert [instant - week_end for instant in seen] == [
        dt.timedelta(0),
        dt.timedelta(seconds=30),
        dt.timedelta(seconds=900),
    ]
