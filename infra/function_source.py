"""The functions' source tree as it is deployed: functions/ with its bytecode.

`make deploy` stages functions/ into terraform/.build/functions, compiles every module
there for the runtime's Python (python311: `__pycache__/*.cpython-311.pyc`) with
unchecked-hash invalidation, writes the table of compiled regular expressions
(cartcast/compiled_patterns.py, decision 0036) and the intent model as marshal
reads it (cartcast/intent_model.py, decision 0098), and writes the sources' digest
beside it; terraform/functions.tf zips that directory and refuses to plan when the
digest is missing or no longer matches functions/ (decision 0028). The benchmark
prepares the trees it starts with the same function, so it measures what deploys.

Unchecked-hash because the archive is unzipped on Google's side: extraction sets new
mtimes, so a timestamp pyc would be stale and recompiled at every cold start, and a
checked-hash one would re-read and hash its source at every import.

    .venv/bin/python -m infra.function_source [--source functions]
        [--dest terraform/.build/functions]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FUNCTIONS = REPO / "functions"
BUILD = REPO / "terraform" / ".build"
DEPLOY_DEST = BUILD / "functions"
# The runtime terraform/functions.tf deploys, and the bytecode tag its Python reads.
RUNTIME = "python311"
RUNTIME_CACHE_TAG = "cpython-311"
# Where Google's Python runtime serves the function's source from.
RUNTIME_ROOT = "/workspace"
SKIPPED_DIRS = {"__pycache__"}
SKIPPED_SUFFIXES = {".pyc"}


class SourceError(Exception):
    """The tree cannot be staged as the runtime would read it."""


def source_files(source: Path) -> list[Path]:
    """Return the files of `source` that deploy, relative, in code-point order."""
    files = [
        path.relative_to(source)
        for path in source.rglob("*")
        if path.is_file()
        and not SKIPPED_DIRS.intersection(path.relative_to(source).parts)
        and path.suffix not in SKIPPED_SUFFIXES
    ]
    return sorted(files, key=lambda path: path.as_posix())


def sources_digest(source: Path) -> str:
    """SHA-256 over "<path> <sha256>" lines, as terraform/functions.tf computes it."""
    lines = [
        f"{path.as_posix()} {hashlib.sha256((source / path).read_bytes()).hexdigest()}"
        for path in source_files(source)
    ]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def digest_file(dest: Path) -> Path:
    """Where the digest of `dest`'s sources is kept: beside it, outside the archive.

    terraform/functions.tf compares this file with the digest it computes itself.
    """
    return dest.with_name(dest.name + ".sources.sha256")


def stage(source: Path, dest: Path, *, compiled: bool = True) -> Path:
    """Copy `source`'s deployable files into a fresh `dest` and compile them there.

    With `compiled` false the copy holds no bytecode: the benchmark's tree started
    from source. Returns `dest`.
    """
    if dest.exists():
        shutil.rmtree(dest)
    for path in source_files(source):
        (dest / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / path, dest / path)
    if compiled:
        write_pattern_table(dest)
        write_staged_model(dest)
        compile_tree(dest)
    return dest


def write_pattern_table(tree: Path) -> None:
    """Write the regular expressions' compiled table into the staged tree.

    Built by the staged code itself in a child (cartcast.compiled_patterns), so the
    table matches the patterns that deploy, before any bytecode is written there.
    """
    table = tree / "cartcast" / "data" / "compiled_patterns.bin"
    _build_in_tree(tree, "cartcast.compiled_patterns", table, "the pattern table")


def write_staged_model(tree: Path) -> None:
    """Write the intent model as marshal reads it into the staged tree, from the
    weights that deploy (cartcast.intent_model)."""
    staged = tree / "cartcast" / "data" / "intent_model.bin"
    _build_in_tree(tree, "cartcast.intent_model", staged, "the staged intent model")


def _build_in_tree(tree: Path, module: str, target: Path, what: str) -> None:
    """Run `python -m <module> <target>` in a child from `tree`'s own code."""
    if not (tree / Path(*module.split("."))).with_suffix(".py").is_file():
        return  # not cartcast's tree (the benchmark stages its bare function too)
    command = [sys.executable, "-m", module, str(target)]
    env = {
        **os.environ,
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": str(tree),
    }
    built = subprocess.run(
        command, cwd=tree, env=env, capture_output=True, text=True, check=False
    )
    if built.returncode != 0:
        raise SourceError(f"{tree}: {what} was not built:\n{built.stderr}")


def compile_tree(tree: Path) -> None:
    """Compile every module of `tree` in place, the same bytes on every run.

    Bytecode records its source's path: compiled as under RUNTIME_ROOT, where the
    runtime unpacks the archive, it is the same from any checkout (Python puts the
    real path in tracebacks either way). And in a child with a fixed
    PYTHONHASHSEED, since a set of strings in the code (`x in {"a", "b"}`) is
    marshalled in hash order. Otherwise every staging would be a new archive, and
    seven rebuilds for unchanged code.
    """
    command = [
        sys.executable,
        "-m",
        "compileall",
        "-q",
        "--invalidation-mode",
        "unchecked-hash",
        "-s",
        str(tree),
        "-p",
        RUNTIME_ROOT,
        str(tree),
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    compiled = subprocess.run(
        command, env=env, capture_output=True, text=True, check=False
    )
    if compiled.returncode != 0:
        raise SourceError(f"{tree} does not compile:\n{compiled.stdout}")


def stage_for_deploy(
    source: Path = FUNCTIONS,
    dest: Path = DEPLOY_DEST,
    cache_tag: str | None = sys.implementation.cache_tag,
) -> str:
    """Stage the deployed tree with the runtime's bytecode; return its digest.

    Raises SourceError when this Python (`cache_tag`) would write bytecode the
    runtime's Python ignores.
    """
    tag = cache_tag
    if tag != RUNTIME_CACHE_TAG:
        raise SourceError(
            f"the functions run {RUNTIME}, whose Python reads {RUNTIME_CACHE_TAG} "
            f"bytecode, but {sys.executable} writes {tag}: run this with Python 3.11 "
            f"(make deploy uses .venv's)"
        )
    stage(source, dest)
    digest = sources_digest(source)
    digest_file(dest).write_text(digest + "\n")
    return digest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=FUNCTIONS)
    parser.add_argument("--dest", type=Path, default=DEPLOY_DEST)
    args = parser.parse_args(argv)
    try:
        digest = stage_for_deploy(args.source, args.dest)
    except SourceError as error:
        print(f"function source: {error}", file=sys.stderr)
        return 1
    modules = len(list(args.dest.rglob("*.pyc")))
    print(f"function source: {args.dest} ({modules} modules compiled), {digest[:12]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
