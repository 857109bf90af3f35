"""Near-duplicates: the same words, whatever links, hashtags, mentions and numbers."""

from __future__ import annotations

import pytest

from cartcast.near_duplicates import CopyIndex, copy_words, similarity

POST = (
    "Meet the Red Lipstick. It's a classic and bold choice for adding a pop of "
    "color to your lips. Now $11.41, 12% off the usual $12.99. "
    "https://shop.example.com/products/red-lipstick?utm_content=1 #Beauty @glossy"
)


def test_links_hashtags_mentions_and_numbers_are_not_words() -> None:
    words = copy_words(
        "Now $8.94, 10% off! https://x.com/a?b=1 www.shop.com #Sale @shop"
    )

    assert words == {"now", "off"}


def test_a_hashtag_is_not_words_through_the_marks_and_punctuation_x_links_in_it() -> (
    None
):
    words = copy_words("Fresh #Tokyo・Cafe mugs #col·lecció #विज्ञापन")

    assert words == {"fresh", "mugs"}


def test_a_sign_x_links_no_hashtag_at_leaves_its_words_in() -> None:
    # twitter-text: no hashtag after a letter or '&', none followed by a sign.
    words = copy_words("Mugs#Tokyo and Tea&#Cafe, #Kyoto#Nara")

    assert words == {"mugs", "tokyo", "and", "tea", "cafe", "kyoto", "nara"}


def test_words_are_casefolded_and_keep_their_apostrophes() -> None:
    assert copy_words("It's BOLD, it’s bold.") == {"it's", "bold"}


def test_each_character_of_a_script_without_spaces_is_a_word() -> None:
    assert copy_words("毎日のコーヒー") == {"毎", "日", "の", "コ", "ー", "ヒ"}


def test_a_one_word_edit_is_a_near_duplicate() -> None:
    edited = POST.replace("bold", "daring")

    score = similarity(copy_words(POST), copy_words(edited))

    assert 0.8 <= score < 1


def test_the_same_sentence_about_another_product_is_not() -> None:
    other = (
        "Meet the Blue Eyeliner. It's a precise and smudge-proof pick for drawing a "
        "sharp line. Now $6.99, 30% off the usual $9.99."
    )

    assert similarity(copy_words(POST), copy_words(other)) < 0.5


def test_new_prices_links_and_hashtags_do_not_make_a_post_new() -> None:
    reposted = (
        POST.replace("$11.41", "$9.99").replace("utm_content=1", "utm_content=2")
        + " #Sale"
    )

    assert similarity(copy_words(POST), copy_words(reposted)) == 1.0


def test_the_resemblance_names_a_post_by_its_id_only_and_a_draft_by_its_opening() -> (
    None
):
    index = CopyIndex()
    index.add("post 6c1f", "Meet the Stoneware Mug. Keeps coffee hot.")
    index.add("post 0a2b", POST)

    found = index.resemblance(POST.replace("bold", "daring"))

    assert found is not None and found.label == "post 0a2b"
    # A post's words would outlive its deletion on X in the reason that quotes it.
    assert str(found) == f"near-duplicate of post 0a2b (similarity {found.score:.2f})"
    assert index.resemblance("Meet the Stoneware Teapot. Pours well.") is None

    drafts = CopyIndex()
    drafts.add("draft 1 of this batch", POST)
    same = drafts.resemblance(POST)
    assert str(same) == (
        'near-duplicate of draft 1 of this batch ("Meet the Red Lipstick. It\'s a…", '
        "similarity 1.00)"
    )


def test_the_threshold_decides_what_is_near() -> None:
    strict, loose = CopyIndex(1.0), CopyIndex(0.5)
    for index in (strict, loose):
        index.add("post 1", "one two three four")

    assert strict.resemblance("one two three five") is None
    assert loose.resemblance("one two three five") is not None
    assert strict.resemblance("Four three two one!") is not None


@pytest.mark.parametrize("threshold", [0, -0.5, 1.01])
def test_a_threshold_outside_0_to_1_is_refused(threshold: float) -> None:
    with pytest.raises(ValueError, match="in \\(0, 1\\]"):
        CopyIndex(threshold)
