"""Regular expressions compiled when the deploy archive is staged, not at each start.

The offline scorer and the copy checks compile about 140 patterns (sentiment.py,
claims.py); Python's `re` compiles each in pure Python, 50 to 100
ms of every cold start of score_sentiment and a tenth of that for publish_due_posts.
`infra.function_source` runs this module's builder over the staged tree: it loads
those modules, scores a few texts so the patterns built on first use are asked for
too, and writes what `re` compiled for each pattern (its opcode list, flags and
groups) to TABLE. `compile` hands an entry of that table straight to the regex
engine (`_sre.compile`, the call `re` itself ends with), which takes about 1 ms for
all of them; a pattern the table lacks is compiled by `re` as usual. Without a table
(a checkout, the tests) everything is compiled by `re`.

The opcodes are an interpreter's own format, so the table records who wrote it: the
bytecode tag, the engine's MAGIC and code size, the Unicode version, and a digest
of `re`'s compiler sources. A process whose interpreter differs in any of them
ignores the table and compiles (decision 0036): slower, never different.
`tests/test_compiled_patterns.py` checks that each loaded pattern equals what `re`
compiles.
"""

from __future__ import annotations

import array
import hashlib
import marshal
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

TABLE = Path(__file__).resolve().parent / "data" / "compiled_patterns.bin"
# marshal version 2 has no back-references, whose use depends on reference counts:
# the same patterns give the same bytes, so the staged archive stays reproducible.
MARSHAL_VERSION = 2
# What the staged table needs of its readers (see the module docstring).
COMPILER_SOURCES = ("_compiler.py", "_parser.py", "_constants.py", "_casefix.py")
# The modules whose patterns go through `compile`.
MODULES = ("cartcast.claims", "cartcast.sentiment")
# The modules the event functions import on their first request (main.py's lazy
# imports, and the libraries under them: tweepy, requests, urllib3, oauthlib,
# pg8000, dateutil). What they compile with `re` themselves, at import, goes into
# the table's "libraries" part, which `preload` hands to `re`'s own cache.
LIBRARY_MODULES = (
    "main",
    "cartcast.db",
    "cartcast.x",
    "cartcast.reconciling",
    "cartcast.sweeping",
    "cartcast.alerts",
    "cartcast.scoring",
    "cartcast.triage",
    "cartcast.intent_model",
    "cartcast.escalations",
    "cartcast.mentions",
    "cartcast.kpis",
    "cartcast.offboarding",
    "cartcast.retention",
    "cartcast.caption_drain",
    # What those import inside functions, on the way to the first request.
    "cartcast.captions",
    "cartcast.near_duplicates",
    "cartcast.token_vault",
    "cartcast.pubsub",
    "cartcast.console_signouts",
    "cartcast.signin_limits",
    "pg8000.dbapi",
    "tweepy",
)

_Entry = tuple[int, bytes, int, dict[str, int]]
_table: dict[str, dict] | None = None
# The (pattern, flags) pairs asked for in this process, and the values worked out
# through `derived`, for the builder.
_asked: dict[tuple[str, int], None] = {}
_derived: dict[tuple[str, Any], Any] = {}
T = TypeVar("T")


def compile(pattern: str, flags: int = 0) -> re.Pattern[str]:  # noqa: A001
    """Return `re.compile(pattern, flags)`, from the staged table when it has it."""
    key = (pattern, int(flags))
    _asked[key] = None
    entry = _loaded()["patterns"].get(key)
    if entry is None:
        return re.compile(pattern, flags)
    return _from_entry(pattern, entry)


def _from_entry(pattern: str, entry: _Entry) -> re.Pattern[str]:
    import _sre

    final_flags, code, groups, group_index = entry
    index_group: list[str | None] = [None] * (groups + 1)
    for name, index in group_index.items():
        index_group[index] = name
    opcodes = array.array("I", code).tolist()
    return _sre.compile(
        pattern, final_flags, opcodes, groups, group_index, tuple(index_group)
    )


def preload() -> int:
    """Put the libraries' staged patterns into `re`'s cache; return how many.

    tweepy, requests, urllib3, oauthlib and pg8000 compile sixty patterns with
    `re.compile` at import; `re` looks each up in its cache (`re._cache`, keyed by
    type, pattern and flags) before compiling. Called before they are imported,
    this makes their own `re.compile` calls find the compiled pattern.
    """
    cache = getattr(re, "_cache", None)
    if not isinstance(cache, dict):
        return 0  # another re than the one whose writer() matched; never expected
    count = 0
    for (pattern, flags), entry in _loaded()["libraries"].items():
        key = (str, pattern, flags)
        if key not in cache:
            cache[key] = _from_entry(pattern, entry)
            count += 1
    return count


def derived(kind: str, key: Any, work_out: Callable[[], T]) -> T:
    """Return what `work_out` gives for `key`, from the staged table when it has it.

    For values worked out from patterns' parse trees or sources, as costly as
    compiling them and as fixed: `key` must say everything the value depends on,
    and both must be plain data (str, int, tuples; marshal's types).
    """
    stored = _loaded()["derived"]
    if (kind, key) in stored:
        return stored[(kind, key)]
    value = _derived[(kind, key)] = work_out()
    return value


def _loaded() -> dict[str, dict]:
    global _table
    if _table is None:
        _table = read_table(TABLE)
    return _table


def read_table(path: Path) -> dict[str, dict]:
    """Return the table at `path`: empty if there is none or another Python wrote it."""
    empty: dict[str, dict] = {"patterns": {}, "derived": {}, "libraries": {}}
    try:
        stored = marshal.loads(path.read_bytes())
    except (OSError, EOFError, ValueError, TypeError):
        return empty
    if not isinstance(stored, dict) or stored.get("writer") != writer():
        return empty
    return {key: stored[key] for key in empty}


def writer() -> dict[str, Any]:
    """Describe this interpreter's regex compiler: a table is read only by its own."""
    import _sre
    import unicodedata

    digest = hashlib.sha256()
    compiler_dir = Path(re.__file__).parent
    for name in COMPILER_SOURCES:
        try:
            digest.update((compiler_dir / name).read_bytes())
        except OSError:
            digest.update(b"missing " + name.encode())
    return {
        "cache_tag": sys.implementation.cache_tag,
        "magic": _sre.MAGIC,
        "codesize": _sre.CODESIZE,
        "maxunicode": sys.maxunicode,
        "unicode": unicodedata.unidata_version,
        "compiler": digest.hexdigest(),
    }


def entry_for(pattern: str, flags: int) -> _Entry | None:
    """Compile a pattern as `re` does and return its table entry (None for bytes or
    DEBUG patterns, which the table leaves to `re`)."""
    from re import _compiler, _parser

    if not isinstance(pattern, str) or flags & re.DEBUG:
        return None
    parsed = _parser.parse(pattern, flags)
    code = array.array("I", [int(op) for op in _compiler._code(parsed, flags)])
    state = parsed.state
    return (
        int(flags | state.flags),
        code.tobytes(),
        state.groups - 1,
        dict(state.groupdict),
    )


def build_table() -> bytes:
    """Load MODULES and LIBRARY_MODULES, run the scorer's first-use paths, and
    return the table of every pattern they compiled, in the order compiled."""
    import importlib

    import functions_framework  # noqa: F401 (what every function has loaded first)

    # A table already in the tree (copied from a checkout) is not read: its derived
    # values would not be worked out, so not written, and its library patterns
    # would be handed to re by main.py's preload and written again, forever.
    global _table
    _table = {"patterns": {}, "derived": {}, "libraries": {}}
    cache = getattr(re, "_cache", {})
    loaded_first = set(cache)
    for module in (*MODULES, *LIBRARY_MODULES):
        importlib.import_module(module)
    _warm_up()
    patterns = _entries(_asked)
    libraries = _entries(
        (pattern, flags)
        for kind, pattern, flags in cache
        if kind is str and (kind, pattern, flags) not in loaded_first
    )
    table = {
        "writer": writer(),
        "patterns": patterns,
        "derived": dict(_derived),
        "libraries": {k: v for k, v in libraries.items() if k not in patterns},
    }
    return marshal.dumps(table, MARSHAL_VERSION)


def _entries(keys: Iterable[tuple[str, int]]) -> dict[tuple[str, int], _Entry]:
    entries = {}
    for pattern, flags in keys:
        entry = entry_for(pattern, flags)
        if entry is not None:
            entries[(pattern, flags)] = entry
    return entries


def _warm_up() -> None:
    """Ask for the patterns built on first use: the scorer's gates, the price
    pattern of each currency code; and work out the words each cue group needs."""
    from cartcast import claims, sentiment

    sentiment.score_mention("where is my order #1234? it never arrived, help")
    sentiment.work_out_needed_words()
    for code in ("", *claims.CURRENCY_CODES):
        claims.price_figures("$1.00", extra_code=code)


def main(argv: list[str] | None = None) -> int:
    """Write the table to the path given (infra.function_source runs this)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m cartcast.compiled_patterns TABLE", file=sys.stderr)
        return 2
    # Run as __main__, this file is not the cartcast.compiled_patterns the scorer
    # compiles through: ask that one, which saw the patterns.
    from cartcast import compiled_patterns

    target = Path(args[0])
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(compiled_patterns.build_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
