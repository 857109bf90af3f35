"""Seal every X token stored in plaintext, once, with the configured key.

Tokens stored before sealing existed (sql/001 kept them as given) still work, but
sit readable in the database and its backups until sealed. Run after the first
deploy that configures CARTCAST_TOKEN_KEY_FILE or CARTCAST_TOKEN_KEY_SECRET, with
the same environment as the functions:

    PYTHONPATH=functions:. python -m infra.seal_tokens

Safe to run again: sealed tokens are left alone (decision 0030).
"""

from __future__ import annotations

import argparse
import sys

from cartcast import runtime as runtime_module
from cartcast import x_oauth
from cartcast.errors import ConfigurationError


def main(argv: list[str] | None = None) -> int:
    # It takes no options; parsing them still answers --help without sealing.
    argparse.ArgumentParser(
        prog="python -m infra.seal_tokens",
        description=__doc__.split("\n\n")[0],
    ).parse_args(argv)

    try:
        runtime = runtime_module.current()
        vault = runtime.token_vault()
    except ConfigurationError as error:
        print(f"seal_tokens: {error}", file=sys.stderr)
        return 2

    sealed = x_oauth.seal_plaintext_tokens(runtime.database, vault)
    print(f"sealed the X tokens of {sealed} brand(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
