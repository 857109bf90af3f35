"""functions/requirements.txt pins all a deploy installs, at the tested versions."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

RUNTIME = Path(__file__).resolve().parents[1] / "functions" / "requirements.txt"


def _pins() -> dict[str, Requirement]:
    pins = {}
    for line in RUNTIME.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            pins[canonicalize_name(requirement.name)] = requirement
    return pins


def test_every_runtime_requirement_is_pinned_to_one_version() -> None:
    loose = [
        str(req)
        for req in _pins().values()
        if len(req.specifier) != 1 or next(iter(req.specifier)).operator != "=="
    ]
    assert loose == []


def test_the_pins_hold_every_package_they_pull_in_at_the_installed_version() -> None:
    """The closure of the pinned packages, as this environment installed it."""
    pins = _pins()
    missing, different = [], []
    for name, requirement in pins.items():
        distribution = importlib.metadata.distribution(name)
        if not requirement.specifier.contains(distribution.version, prereleases=True):
            different.append(f"{name} {distribution.version} against {requirement}")
        for declared in distribution.requires or []:
            needed = Requirement(declared)
            if needed.marker and not needed.marker.evaluate({"extra": ""}):
                continue
            if canonicalize_name(needed.name) not in pins:
                missing.append(f"{needed.name} (needed by {name})")
    assert sorted(set(missing)) == []
    assert different == []
