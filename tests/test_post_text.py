"""cartcast.post_text agrees with X's own twitter-text conformance cases."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cartcast.post_text import fits_on_x, weighted_length

CASES_PATH = Path(__file__).parent / "data" / "twitter_text_v3.yml"
SECTIONS = (
    "WeightedTweetsWithDiscountedEmojiCounterTest",
    "UnicodeDirectionalMarkerCounterTest",
)


def conformance_cases() -> list:
    sections = yaml.safe_load(CASES_PATH.read_text(encoding="utf-8"))["tests"]
    return [
        pytest.param(case, id=f"{section}: {case['description']}")
        for section in SECTIONS
        for case in sections[section]
    ]


@pytest.mark.parametrize("case", conformance_cases())
def test_weighted_length_matches_conformance_case(case: dict) -> None:
    assert weighted_length(case["text"]) == case["expected"]["weightedLength"]


@pytest.mark.parametrize("case", conformance_cases())
def test_validity_matches_conformance_case(case: dict) -> None:
    assert fits_on_x(case["text"]) is case["expected"]["valid"]


def test_the_copied_sections_hold_every_case_of_the_source() -> None:
    assert len(conformance_cases()) == 24


def test_a_url_weighs_23_whatever_its_length() -> None:
    long_link = "https://shop.example.com/products/" + "x" * 200 + "?utm_source=x"

    assert weighted_length(f"Look {long_link}") == 5 + 23


def test_the_limit_is_280_inclusive() -> None:
    assert fits_on_x("a" * 280)
    assert not fits_on_x("a" * 281)


def test_an_empty_post_is_not_valid() -> None:
    assert not fits_on_x("")


def test_importing_the_module_does_not_load_twitter_text() -> None:
    code = "import sys, cartcast.post_text; print('twitter_text' in sys.modules)"

    loaded = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[1],
        env={"PYTHONPATH": "functions"},
    ).stdout.strip()

    assert loaded == "False"
