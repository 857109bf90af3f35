"""cartcast.post_text agrees with X's own twitter-text conformance cases."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cartcast.post_text import (
    fits_on_x,
    mentioned_accounts,
    mentioned_usernames,
    weighted_length,
)

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


# cartcast's own rule (decision 0005): every fully-qualified sequence of Unicode's
# emoji test data weighs 2, newer ones than twitter-text-parser knows included.

EMOJI_TEST_PATH = Path(__file__).parents[1] / "functions/cartcast/data/emoji-test.txt"
EMOJI_TEST_SHA256 = "1d8a944f88d7952f7ef7c5167fef3c67995bcae24543949710231b03a201acda"


def fully_qualified_lines() -> list[tuple[str, str]]:
    """Return (sequence, "code points: name") for each fully-qualified line."""
    lines = []
    for line in EMOJI_TEST_PATH.read_text(encoding="utf-8").splitlines():
        points, _, rest = line.partition(";")
        status, _, comment = rest.partition("#")
        if status.strip() == "fully-qualified":
            sequence = "".join(chr(int(point, 16)) for point in points.split())
            name = comment.split(maxsplit=2)[-1]
            lines.append((sequence, f"{' '.join(points.split())}: {name}"))
    return lines


def fully_qualified_params() -> list:
    return [
        pytest.param(sequence, id=label) for sequence, label in fully_qualified_lines()
    ]


def test_the_emoji_data_is_the_pinned_emoji_17_file() -> None:
    import hashlib

    data = EMOJI_TEST_PATH.read_bytes()

    assert hashlib.sha256(data).hexdigest() == EMOJI_TEST_SHA256
    assert b"\n# Version: 17.0\n" in data
    assert b"\n# fully-qualified : 3944\n" in data
    assert len(fully_qualified_lines()) == 3944


@pytest.mark.parametrize("sequence", fully_qualified_params())
def test_a_fully_qualified_emoji_weighs_2(sequence: str) -> None:
    assert weighted_length(sequence) == 2
    assert fits_on_x(sequence)


@pytest.mark.parametrize("sequence", fully_qualified_params())
def test_a_fully_qualified_emoji_weighs_2_inside_text(sequence: str) -> None:
    assert weighted_length(f"Hi {sequence} there") == len("Hi  there") + 2


def test_the_rule_corrects_what_twitter_text_counts_as_several_characters() -> None:
    from twitter_text import parse_tweet

    ballet_dancer = "\U0001f9d1\u200d\U0001fa70"  # Emoji 17.0
    sark = "\U0001f1e8\U0001f1f6"  # Emoji 16.0

    assert parse_tweet(ballet_dancer).weightedLength == 5
    assert parse_tweet(sark).weightedLength == 4
    assert weighted_length(f"{ballet_dancer} {sark}") == 5


def test_140_new_emoji_fit_in_a_post_and_141_do_not() -> None:
    ballet_dancer = "\U0001f9d1\u200d\U0001fa70"

    assert fits_on_x(ballet_dancer * 140)
    assert not fits_on_x(ballet_dancer * 141)


def test_a_new_emoji_inside_a_url_is_part_of_its_23() -> None:
    ballet_dancer = "\U0001f9d1\u200d\U0001fa70"

    assert weighted_length(f"https://{ballet_dancer}.com") == 23
    assert weighted_length(f"{ballet_dancer} https://shop.example.com/p") == 2 + 1 + 23


def test_a_new_emoji_glued_to_a_bare_domain_leaves_the_domain_linked() -> None:
    ballet_dancer = "\U0001f9d1\u200d\U0001fa70"

    assert weighted_length(f"{ballet_dancer}shop.com") == 2 + 23


def test_a_sequence_that_is_not_a_whole_grapheme_cluster_is_not_one_emoji() -> None:
    from twitter_text import parse_tweet

    # A regional indicator before Sark's pair pairs with its first letter instead.
    text = "\U0001f1e6\U0001f1e8\U0001f1f6"

    assert weighted_length(text) == parse_tweet(text).weightedLength


def test_every_fully_qualified_sequence_is_one_grapheme_cluster() -> None:
    import regex

    split = [s for s, _ in fully_qualified_lines() if len(regex.findall(r"\X", s)) != 1]

    assert split == []


def test_the_starters_are_the_first_code_points_of_what_the_library_miscounts() -> None:
    from twitter_text import parse_tweet

    from cartcast.post_text import NEWER_EMOJI_STARTERS

    miscounted = {
        sequence[0]
        for sequence, _ in fully_qualified_lines()
        if parse_tweet(sequence).weightedLength != 2
    }

    assert NEWER_EMOJI_STARTERS == miscounted, sorted(f"{ord(c):X}" for c in miscounted)


def test_the_shortcut_measures_no_emoji_sequence_itself() -> None:
    measured = [
        s for s, _ in fully_qualified_lines() if shortcut_measure(s) is not None
    ]

    assert measured == []


def test_some_conformance_cases_are_measured_through_the_emoji_rule() -> None:
    from cartcast.post_text import NEWER_EMOJI_STARTERS

    through_rule = [
        case
        for case in conformance_cases()
        if not NEWER_EMOJI_STARTERS.isdisjoint(case.values[0]["text"])
    ]

    # The conformance tests above then show the rule agrees with X on them.
    assert len(through_rule) == 3


def run_fresh(code: str) -> str:
    """Run `code` in a new interpreter with cartcast importable; return its output."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[1],
        env={"PYTHONPATH": "functions"},
    ).stdout.strip()


def test_plain_text_is_measured_and_shortened_without_library_regex_or_data() -> None:
    code = (
        "import sys\n"
        "from cartcast import post_text\n"
        "text = 'Soft linen shirt, cut loose. https://shop.example.com/p/1 #Linen'\n"
        "post_text.weighted_length(text), post_text.fits_on_x(text)\n"
        "post_text.shorten(text, 30)\n"
        "print(sorted({'twitter_text', 'regex'} & set(sys.modules)),\n"
        "      post_text._fully_qualified_sequences.cache_info().currsize)\n"
    )

    assert run_fresh(code) == "[] 0"


def test_emoji_twitter_text_knows_do_not_read_the_emoji_data() -> None:
    code = (
        "from cartcast import post_text\n"
        "post_text.weighted_length('Hi \\U0001f600 \\U0001f44d\\U0001f3fd \\u65e5')\n"
        "print(post_text._fully_qualified_sequences.cache_info().currsize)\n"
    )

    assert run_fresh(code) == "0"


@pytest.mark.parametrize(
    ("text", "mentioned"),
    [
        ("Mug @elonmusk edition", ["elonmusk"]),
        ("(@nike) and ＠Shop_1, @x.", ["nike", "Shop_1", "x"]),
        ("RT @jack RT@dorsey rt:@biz", ["jack", "dorsey", "biz"]),
        ("write to help@shop.com or a@b", []),
        ("x!@a #@b $@c &@d *@e @@f", []),
        ("@sixteen_letters_ is no account", []),
        ("@josé @a@b @c://d", []),
        ("@shop/new-in on a list", ["shop"]),
        ("see https://medium.com/@shop for more", []),
        ("no at sign at all", []),
    ],
)
def test_mentions_are_found_by_twitter_texts_rule(text: str, mentioned: list) -> None:
    assert mentioned_usernames(text) == mentioned


def test_a_list_is_no_mention_of_its_owners_account() -> None:
    text = "@shop/new-in, x.com/@shop and then @Shop"

    assert mentioned_usernames(text) == ["shop", "Shop"]
    assert mentioned_accounts(text) == ["Shop"]
