"""The regular expressions compiled when the deploy is staged (decision 0036)."""

from __future__ import annotations

import json
import marshal
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cartcast import compiled_patterns

REPO = Path(__file__).resolve().parents[1]
TABLE = Path("cartcast") / "data" / "compiled_patterns.bin"

# Run in a child from a tree: score every team mention and check a few copies, then
# say what the scorer used of the table.
SCORE_AND_REPORT = """
import json, sys
from decimal import Decimal
from cartcast import claims, compiled_patterns, sentiment

mentions = json.load(open(sys.argv[1], encoding="utf-8"))
scores = [list(map(str, sentiment.score_mention(m["text"]).__dict__.values()))
          for m in mentions]
brief = claims.ProductBrief("p", "S", "Mug", "", Decimal("20"), "USD", "home", (),
                            None, 3, Decimal("10"))
copies = ["Only 2 left, 20% off!", "Now $18.00, save $2", "Sold out. 12.50 CHF",
          "back in stock: 10 percent discount"]
checks = [[claims.claim_mismatch(c, brief), claims.price_mismatch(c, brief)]
          for c in copies]
table = compiled_patterns._loaded()
print(json.dumps({
    "scores": scores,
    "checks": checks,
    "in_table": len(table["patterns"]),
    "derived_in_table": len(table["derived"]),
    "compiled_outside": [p for p in compiled_patterns._asked
                         if p not in table["patterns"]],
    "worked_out_outside": [k for k in compiled_patterns._derived
                           if k not in table["derived"]],
}))
"""


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from infra import function_source

    dest = tmp_path_factory.mktemp("staged") / "functions"
    return function_source.stage(REPO / "functions", dest)


def run_in(tree: Path) -> dict:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            SCORE_AND_REPORT,
            str(REPO / "infra" / "data" / "team_mentions.json"),
        ],
        env={**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_staged_tree_scores_and_checks_copy_exactly_as_the_source_does(
    staged: Path,
) -> None:
    from_table = run_in(staged)
    from_source = run_in(REPO / "functions")

    assert from_table["scores"] == from_source["scores"]
    assert from_table["checks"] == from_source["checks"]
    # The staged scorer compiled nothing itself, nor read any pattern's parse tree
    # for the words it needs, whichever cue groups the mentions reached; the
    # checkout has no table.
    assert from_table["in_table"] > 90 and from_table["derived_in_table"] > 10
    assert from_table["compiled_outside"] == []
    assert from_table["worked_out_outside"] == []
    assert from_source["in_table"] == 0


def test_every_pattern_of_the_table_is_the_one_re_compiles(staged: Path) -> None:
    table = compiled_patterns.read_table(staged / TABLE)

    assert table["patterns"] and table["libraries"]
    for (pattern, flags), entry in [
        *table["patterns"].items(),
        *table["libraries"].items(),
    ]:
        loaded = compiled_patterns._from_entry(pattern, entry)
        compiled = re.compile(pattern, flags)
        # Pattern equality compares the flags and the engine's opcodes.
        assert loaded == compiled
        assert loaded.groupindex == compiled.groupindex
        assert loaded.groups == compiled.groups


def test_a_table_written_by_another_interpreter_is_ignored(
    staged: Path, tmp_path: Path
) -> None:
    stored = marshal.loads((staged / TABLE).read_bytes())
    stored["writer"] = {**stored["writer"], "magic": stored["writer"]["magic"] + 1}
    other = tmp_path / "compiled_patterns.bin"
    other.write_bytes(marshal.dumps(stored, compiled_patterns.MARSHAL_VERSION))

    empty = {"patterns": {}, "derived": {}, "libraries": {}}
    assert compiled_patterns.read_table(other) == empty
    assert compiled_patterns.read_table(tmp_path / "missing.bin")["patterns"] == {}


def test_a_pattern_missing_from_the_table_is_compiled_as_usual() -> None:
    # The checkout has no table: everything is compiled by re.
    pattern = compiled_patterns.compile(r"\bcold (?P<what>start)s?\b", re.IGNORECASE)

    assert pattern.search("Cold Starts").group("what") == "Start"
    assert pattern == re.compile(r"\bcold (?P<what>start)s?\b", re.IGNORECASE)


def test_the_table_is_the_same_bytes_from_any_checkout(
    staged: Path, tmp_path: Path
) -> None:
    # The archive is named by its content (decision 0028).
    from infra import function_source

    again = function_source.stage(REPO / "functions", tmp_path / "deep" / "functions")

    assert (again / TABLE).read_bytes() == (staged / TABLE).read_bytes()


def test_the_entry_points_hand_the_libraries_patterns_to_re_before_loading_them(
    staged: Path,
) -> None:
    # What main.py's import leaves in re's cache, then what tweepy and pg8000 find.
    code = """
import re
import functions_framework
import main
from cartcast import compiled_patterns
libraries = compiled_patterns._loaded()["libraries"]
primed = {key: re._cache.get((str, *key)) for key in libraries}
import pg8000.dbapi, tweepy
print(len(libraries), sum(p is not None for p in primed.values()),
      sum(re.compile(*key) is pattern for key, pattern in primed.items()))
"""
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(staged), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    libraries, primed, reused = map(int, done.stdout.split())
    assert libraries > 50 and primed == libraries and reused == libraries


# cartcast's modules the event functions import on their first request, as the
# benchmark's import-time pass lists them (bench/functions.py, profile_imports).
EVENT_PATH_MODULES = (
    "cartcast.reconciling",
    "cartcast.sweeping",
    "cartcast.alerts",
    "cartcast.publishing",
    "cartcast.token_vault",
    "cartcast.mentions",
    "cartcast.pubsub",
    "cartcast.scoring",
    "cartcast.delivery_budget",
    "cartcast.kpis",
    "cartcast.offboarding",
    "cartcast.retention",
    "cartcast.signin_limits",
    "cartcast.console_signouts",
    "cartcast.caption_drain",
    "cartcast.captions",
    "cartcast.near_duplicates",
)


def test_the_event_functions_modules_find_their_patterns_compiled(staged: Path):
    # A module imported inside a function that the builder does not import
    # compiles its own patterns with re on a cold instance's first request.
    code = f"""
import re
import functions_framework
import main
preloaded = set(re._cache)
for module in {EVENT_PATH_MODULES!r}:
    __import__(module)
print(sorted(key[1] for key in set(re._cache) - preloaded if key[0] is str))
"""
    # Under several hash seeds: the builder runs with PYTHONHASHSEED=0, an
    # instance with a random one, and a pattern joined from a set's members in
    # iteration order is another string, so another cache key, under another seed.
    for seed in range(6):
        done = subprocess.run(
            [sys.executable, "-c", code],
            env={
                **os.environ,
                "PYTHONPATH": str(staged),
                "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONHASHSEED": str(seed),
            },
            capture_output=True,
            text=True,
            check=False,
        )

        assert done.returncode == 0, done.stderr
        assert (seed, done.stdout.strip()) == (seed, "[]")


def test_a_table_left_in_the_source_changes_nothing_in_the_staged_one(
    staged: Path, tmp_path: Path
) -> None:
    # A table written into the checkout (the builder's usage line invites it) is
    # copied with the sources; the builder must build from them, not from it.
    import shutil

    from infra import function_source

    source = tmp_path / "source"
    shutil.copytree(
        REPO / "functions", source, ignore=shutil.ignore_patterns("__pycache__")
    )
    (source / TABLE).write_bytes((staged / TABLE).read_bytes())

    again = function_source.stage(source, tmp_path / "again" / "functions")

    assert (again / TABLE).read_bytes() == (staged / TABLE).read_bytes()
