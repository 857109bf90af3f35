"""What stands in for Google Cloud on one machine, and the demo; never deployed.

Every module here drives the `cartcast` package in functions/, so importing infra
puts that folder on the import path, for `python -m infra....` as for tests.
"""

import sys
from pathlib import Path

_FUNCTIONS = str(Path(__file__).resolve().parents[1] / "functions")
if _FUNCTIONS not in sys.path:
    sys.path.insert(0, _FUNCTIONS)
