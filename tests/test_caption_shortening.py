"""The template engine shortens titles and hooks without breaking a character."""

from __future__ import annotations

import regex

from cartcast.captions import CHECK_NAMES, BrandVoice, write_drafts
from tests.test_captions import make_product, request_for

BALLET_DANCER = "\U0001f9d1\u200d\U0001fa70"  # Emoji 17.0
FLAG_JAPAN = "\U0001f1ef\U0001f1f5"
VOICE = BrandVoice(name="Shop", voice="plain", required_hashtags=("#Shop",))


def write_one(**product: object) -> str:
    draft = write_drafts([request_for(make_product(**product))], VOICE)[0]
    assert draft.checks == dict.fromkeys(CHECK_NAMES, True)
    assert draft.weighted_length <= 280
    return draft.text


def test_a_title_of_new_emoji_is_cut_between_whole_emoji() -> None:
    text = write_one(title=BALLET_DANCER * 200)

    pieces = [c for c in regex.findall(r"\X", text) if "\U0001f9d1" in c]
    assert pieces and set(pieces) == {BALLET_DANCER}
    assert BALLET_DANCER + "…" in text


def test_a_title_of_flags_is_cut_between_whole_flags() -> None:
    # Titles one character apart: the cut falls at every parity of the pairs.
    for lead in ("", "A", "AB"):
        text = write_one(title=lead + FLAG_JAPAN * 200)

        cut = text.split("…")[0]
        assert cut.endswith(FLAG_JAPAN), lead
        assert text.count("\U0001f1ef") == text.count("\U0001f1f5"), lead


def test_a_title_with_accents_keeps_each_accent_on_its_letter() -> None:
    # "x̃" has no precomposed form: two code points, two characters to X. No spaces,
    # and the leads move where the cut falls.
    for lead in ("", "A", "AB", "ABC"):
        text = write_one(title=lead + "x\u0303" * 150)

        cut = text.split("…")[0]
        assert cut.endswith("x\u0303"), lead


def test_a_cjk_description_gives_a_hook_cut_between_characters() -> None:
    sentence = (
        "毎日のコーヒーに使える丈夫で美しい陶器のマグカップは手作りです" * 4 + "。"
    )

    text = write_one(title="新作マグ", description=sentence)

    assert "毎日のコーヒーに使える" in text
    assert "…" in text
