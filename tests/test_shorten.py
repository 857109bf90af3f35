"""post_text.shorten cuts text to a weight between grapheme clusters only."""

from __future__ import annotations

import random

import pytest
import regex

from cartcast.post_text import shorten, weighted_length

FLAG_JAPAN = "\U0001f1ef\U0001f1f5"
THUMBS_UP_MEDIUM = "\U0001f44d\U0001f3fd"
FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"
BALLET_DANCER = "\U0001f9d1\u200d\U0001fa70"  # Emoji 17.0, newer than twitter-text
E_ACUTE_DECOMPOSED = "e\u0301"


def clusters(text: str) -> list[str]:
    return regex.findall(r"\X", text)


def test_text_that_fits_is_returned_unchanged() -> None:
    assert shorten("Soft linen shirt", 16) == "Soft linen shirt"


def test_the_cut_falls_after_the_last_word_that_fits() -> None:
    assert shorten("Soft linen shirt, cut loose", 19) == "Soft linen shirt…"


def test_dangling_punctuation_goes_before_the_ellipsis() -> None:
    assert shorten("Soft, warm; light - and cheap", 14) == "Soft, warm…"


def test_one_long_word_is_cut_between_characters() -> None:
    assert shorten("Supercalifragilistic", 10) == "Supercal…"


@pytest.mark.parametrize(
    ("unit", "name"),
    [
        (FLAG_JAPAN, "flag"),
        (THUMBS_UP_MEDIUM, "skin tone"),
        (FAMILY, "ZWJ family"),
        (BALLET_DANCER, "new ZWJ sequence"),
    ],
)
def test_an_emoji_is_never_split(unit: str, name: str) -> None:
    text = unit * 5

    for max_weight in range(2, 10):
        shortened = shorten(text, max_weight)

        kept = shortened.removesuffix("…")
        assert kept == unit * (len(kept) // len(unit)), name
        assert weighted_length(shortened) <= max_weight


def test_emoji_are_cut_to_as_many_as_fit() -> None:
    assert shorten(FAMILY * 5, 7) == FAMILY * 2 + "…"


def test_a_combining_accent_stays_with_its_letter() -> None:
    text = E_ACUTE_DECOMPOSED * 10

    shortened = shorten(text, 5)

    assert shortened == E_ACUTE_DECOMPOSED * 3 + "…"


def test_cjk_text_is_cut_between_characters() -> None:
    assert shorten("日本語のテキスト", 9) == "日本語…"


def test_cjk_text_is_cut_after_a_full_stop_when_one_fits() -> None:
    text = "毎日のコーヒーに。毎日のお茶にも使えます"

    assert shorten(text, 24) == "毎日のコーヒーに…"


def test_a_hashtag_at_the_cut_is_dropped_whole() -> None:
    assert shorten("Pottery:#HandmadeStonewareMugs", 20) == "Pottery…"


def test_a_hashtag_that_fits_is_kept_whole() -> None:
    assert shorten("New in #Mugs and more to come", 14) == "New in #Mugs…"


def test_a_cjk_hashtag_at_the_cut_is_dropped_whole() -> None:
    assert shorten("新作のマグです。#陶器大好き", 22) == "新作のマグです…"


@pytest.mark.parametrize("weight", [16, 18, 20])
def test_a_hashtag_with_punctuation_x_links_inside_is_dropped_whole(weight) -> None:
    # X links "#Tokyo・Cafe" whole: "#Tokyo…" or "#Tokyo・…" would tag another.
    assert shorten("Pottery:#Tokyo・Cafe and more", weight) == "Pottery…"


def test_a_cut_does_not_turn_text_x_links_no_hashtag_in_into_one() -> None:
    # X links no hashtag in "#Tokyo#Cafe" (endHashtagMatch); "#Tokyo…" it would.
    assert shorten("Pottery:#Tokyo#Cafe and more", 16) == "Pottery…"


def test_a_sign_x_starts_no_hashtag_at_is_cut_like_text() -> None:
    # After '&' X starts no hashtag (hashtagBoundary), so no start of it tags one.
    assert shorten("Pottery&#Tokyo and more", 12) == "Pottery&#T…"


def test_a_mention_at_the_cut_is_dropped_whole() -> None:
    assert shorten("Thanks:@northwindgoods_official", 20) == "Thanks…"


def test_a_url_that_does_not_fit_is_dropped_whole() -> None:
    text = "Shop now https://shop.example.com/p/linen-shirt?utm_source=x"

    assert shorten(text, 20) == "Shop now…"


def test_a_url_glued_to_text_is_not_cut_either() -> None:
    assert shorten("Shop:https://shop.example.com/p/linen", 20) == "Shop…"


def test_a_url_that_fits_is_kept_and_the_ellipsis_stands_apart() -> None:
    text = "See https://shop.example.com/p/a. And more words here"

    assert shorten(text, 30) == "See https://shop.example.com/p/a …"


def test_a_link_x_does_not_recognise_is_still_not_cut() -> None:
    text = "Shop:https://shop.example.test/p/linen-shirt"

    assert shorten(text, 30) == "Shop…"


def test_when_nothing_fits_the_ellipsis_stands_alone() -> None:
    assert shorten("#Supercalifragilistic", 5) == "…"


def test_when_not_even_the_ellipsis_fits_the_result_is_empty() -> None:
    assert shorten("Supercalifragilistic", 1) == ""


def test_another_ellipsis_can_be_asked_for() -> None:
    assert shorten("Soft linen shirt, cut loose", 18, ellipsis="...") == "Soft linen..."


def test_random_text_is_cut_on_a_grapheme_boundary_outside_urls_and_hashtags() -> None:
    rng = random.Random(51)
    pieces = [
        "a",
        "Z",
        " ",
        ",",
        ".",
        "#tag",
        "#",
        "@shop",
        "日本",
        "。",
        E_ACUTE_DECOMPOSED,
        FLAG_JAPAN,
        "\U0001f1e6",
        THUMBS_UP_MEDIUM,
        FAMILY,
        BALLET_DANCER,
        "\u200d",
        "\ufe0f",
        " https://shop.example.com/p/a ",
        "x.com",
    ]
    checked = 0
    for _ in range(400):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 14)))
        boundaries = {match.end() for match in regex.finditer(r"\X", text)} | {0}
        whole = [m.span() for m in regex.finditer(r"(?<!\w)#\w+|https://\S+", text)]
        for max_weight in (2, 5, 11, 20):
            shortened = shorten(text, max_weight)
            if shortened == text:
                continue
            checked += 1

            kept = shortened.removesuffix("…").rstrip()
            assert weighted_length(shortened) <= max_weight, (text, max_weight)
            assert text.startswith(kept), (text, shortened)
            assert len(kept) in boundaries, (text, shortened)
            assert not any(start < len(kept) < end for start, end in whole), (
                text,
                shortened,
            )

    assert checked > 500
