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


# The plain-text shortcut (decision 0004) must answer exactly as twitter-text does
# wherever it answers at all; these compare the two directly.


def library_measure(text: str) -> tuple[int, bool, list[str]]:
    from twitter_text import extract_urls, parse_tweet

    parsed = parse_tweet(text)
    return parsed.weightedLength, bool(parsed.valid), extract_urls(text)


def shortcut_measure(text: str) -> tuple[int, bool, list[str]] | None:
    from cartcast.post_text import X_MAX_WEIGHTED_LENGTH, _plain_measure

    plain = _plain_measure(text)
    if plain is None:
        return None
    return plain[0], plain[0] <= X_MAX_WEIGHTED_LENGTH, plain[1]


@pytest.mark.parametrize("case", conformance_cases())
def test_the_shortcut_agrees_with_twitter_text_on_every_case_it_measures(
    case: dict,
) -> None:
    shortcut = shortcut_measure(case["text"])

    if shortcut is not None:
        assert shortcut == library_measure(case["text"])


def test_the_shortcut_agrees_with_twitter_text_on_random_text() -> None:
    import random

    rng = random.Random(280)
    pieces = [
        "a",
        "Z",
        "7",
        " ",
        ".",
        ",",
        "!",
        "?",
        "$",
        "#",
        "@",
        ":",
        "/",
        "-",
        "'",
        "(",
        ")",
        "é",
        "ß",
        "\u00a9",
        "\u2019",
        "\u2026",
        "日",
        "\U0001f600",
        "\n",
        "e.g.",
        "3.5",
        "shop.com",
        "www.example.org",
        "a@b.com",
        "x://y",
        "https://shop.example.com/p/linen?utm_source=x&utm_content=abc",
        "https://shop.example.com/p/linen.",
        "https://shop.example.test/p",
        "https://a-.com/x",
        "http://t.co/abc",
        "https://" + "l" * 70 + ".com/x",
        "https://shop.example.com/p/(x)",
        "https://SHOP.Example.COM/Q?A=B",
    ]
    measured = 0
    for _ in range(6000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 12)))
        for candidate in (text, " ".join(text.split())):
            shortcut = shortcut_measure(candidate)
            if shortcut is not None:
                measured += 1
                assert shortcut == library_measure(candidate), candidate

    assert measured > 1000  # the comparison really exercised the shortcut


def test_the_shortcut_measures_most_catalog_captions() -> None:
    import json
    import uuid

    from cartcast.captions import BrandVoice, DraftRequest, write_drafts
    from cartcast.links import product_link
    from tests.test_captions import brief_from_catalog

    products = json.loads(
        (
            Path(__file__).parents[1] / "infra/data/catalog/dummyjson_products.json"
        ).read_text()
    )
    requests = [
        DraftRequest(
            brief_from_catalog(row),
            product_link(
                "https://shop.example.com",
                f"p{row['id']}",
                post_id=str(uuid.uuid4()),
                campaign="c",
            ),
            variant,
        )
        for row in products[:60]
        for variant in range(2)
    ]
    drafts = write_drafts(requests, BrandVoice(name="Shop", voice=""))

    measured = [shortcut_measure(draft.text) for draft in drafts]
    assert sum(m is not None for m in measured) >= 0.8 * len(drafts)
    for draft, shortcut in zip(drafts, measured, strict=True):
        if shortcut is not None:
            assert shortcut == library_measure(draft.text)
