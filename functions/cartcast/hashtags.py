"""Which characters X links as part of a hashtag, and where X links one in a text.

A hashtag on X is '#' and a run of letters, combining marks, decimal digits and a
short list of other characters, at least one a letter; the first character outside
that set ends it. A brand's required hashtags and disclosure tag are checked
against it (brands.is_one_hashtag). Where a text links one is decided once, by
twitter-text's rules (`hashtag_runs`, `hashtag_spans`): post_text.contains_hashtag
(a draft carries a required tag), post_text.blank_hashtags (the near-duplicate
measure's words) and post_text.shorten (what a cut keeps whole) all read it.
"#Tokyo" is not carried by "#Tokyo・Cafe", which X links as another hashtag. This
module needs no URLs of its own: post_text, which finds them, passes them in.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator

# The few characters besides letters, marks and digits that X links inside a
# hashtag: '_', the joiners some scripts write inside a word (Persian's ZWNJ),
# and punctuation written inside words, such as Catalan's middle dot, Hebrew's
# geresh and gershayim, and Japanese's middle dot and sound marks. The list is
# twitter-text's HASHTAG_SPECIAL_CHARS (twitter/twitter-text,
# java/src/main/java/com/twitter/twittertext/Regex.java; the same list is
# js/src/regexp/hashtagSpecialChars.js). Any other punctuation ends the hashtag.
HASHTAG_SPECIAL_CHARACTERS = frozenset(
    "_\u200c\u200d"  # low line, zero width non-joiner and joiner
    "\ua67e"  # Cyrillic kavyka
    "\u05be\u05f3\u05f4"  # Hebrew maqaf, geresh, gershayim
    "\uff5e\u301c"  # fullwidth tilde, wave dash
    "\u309b\u309c\u30a0\u30fb\u3003"  # kana sound marks, double hyphen, dots
    "\u0f0b\u0f0c"  # Tibetan tsheg marks
    "\u00b7"  # middle dot
)
# Variation selectors are combining marks, yet twitter-text lets one stand right
# before the '#' (an emoji's presentation selector, "❤️#sale"): it does not join
# the emoji to the hashtag.
VARIATION_SELECTORS = frozenset("\ufe0e\ufe0f")
# '#' and its full-width form, which X reads alike.
HASHTAG_SIGILS = frozenset("#＃")
# Sorted: a set joins in hash order, a per-process string that would miss the
# pattern staged for the deploy (compiled_patterns) under another hash seed.
_SIGIL = re.compile("|".join(sorted(HASHTAG_SIGILS)))
# A sign followed by VS16 (U+FE0F, emoji presentation) or the combining enclosing
# keycap (U+20E3) is the hash or keycap emoji, and starts no hashtag: twitter-text's
# valid hashtag pattern refuses either right after the sign, `(?!\uFE0F|\u20E3)`
# (twitter/twitter-text, js/src/regexp/validHashtag.js). Both are marks, so without
# this rule they would continue a hashtag.
SIGN_TO_EMOJI = frozenset("\ufe0f\u20e3")


def is_hashtag_word_character(char: str) -> bool:
    """Whether `char` is a letter, a combining mark or a decimal digit: what a
    hashtag's words are made of, before the few joining characters. A regular
    expression's \\w would refuse the marks Devanagari and Thai write vowels with."""
    kind = unicodedata.category(char)
    return kind[0] in "LM" or kind == "Nd"


def continues_hashtag(char: str) -> bool:
    """Whether X links `char` as part of a hashtag it follows."""
    return is_hashtag_word_character(char) or char in HASHTAG_SPECIAL_CHARACTERS


def starts_hashtag(tag: str) -> bool:
    """Whether X could link a hashtag at `tag`: a sign not made an emoji by the
    character after it (SIGN_TO_EMOJI)."""
    return tag[:1] in HASHTAG_SIGILS and tag[1:2] not in SIGN_TO_EMOJI


def hashtag_spans(
    text: str, find_url_spans: Callable[[str], Iterable[tuple[int, int]]]
) -> list[tuple[int, int]]:
    """Return where X links a hashtag in `text`, sign included, as (start, end).

    `find_url_spans` returns where X links URLs in the text (post_text passes its
    own): twitter-text's extractHashtagsWithIndices drops a hashtag that starts
    inside a URL (removeOverlappingEntities, which keeps whichever of two
    overlapping entities starts first), and a URL a hashtag started before is no
    URL, so it ends no later hashtag either. A URL holds no space, so URLs are
    looked for only when a hashtag follows something else: uncached, finding them
    took about 200 µs a template caption, the rest about 10 (measured).
    """
    spans = [
        (start, end)
        for start, end, refused_after in hashtag_runs(text)
        if not refused_after
    ]
    if all(start == 0 or text[start - 1].isspace() for start, _ in spans):
        return spans

    entities = sorted(
        [(*span, True) for span in spans]
        + [(*span, False) for span in find_url_spans(text)]
    )
    linked, kept_end = [], 0
    for start, end, is_hashtag in entities:
        if start < kept_end:
            continue
        kept_end = end
        if is_hashtag:
            linked.append((start, end))
    return linked


def hashtag_runs(text: str) -> Iterator[tuple[int, int, int]]:
    """Yield (start, end, refused_after) for every sign X starts a hashtag at.

    twitter-text (js/src/regexp/validHashtag.js, hashtagBoundary.js) starts one at
    a sign not after '&' or a character that continues a hashtag (a variation
    selector or another sign may stand before it: "❤️#sale", "##sale"), not made an
    emoji by the character after it (SIGN_TO_EMOJI), over the longest run of
    characters that continue a hashtag, at least one a letter or mark ("#2024" is
    none). It then refuses the run when a sign or "://" follows it
    (endHashtagMatch.js); `refused_after` is the length of what refused it, 0 when
    X links the run. A cut right after a refused run would make X link it, so
    post_text.shorten keeps the run and what refused it whole.
    """
    for sign in _SIGIL.finditer(text):
        start = sign.start()
        before = text[start - 1] if start else ""
        if before and before not in VARIATION_SELECTORS:
            if before == "&" or continues_hashtag(before):
                continue
        if not starts_hashtag(text[start : start + 2]):
            continue
        end = start + 1
        while end < len(text) and continues_hashtag(text[end]):
            end += 1
        if not any(
            unicodedata.category(char)[0] in "LM" for char in text[start + 1 : end]
        ):
            continue
        after = text[end : end + 3]
        refused_after = 1 if after[:1] in HASHTAG_SIGILS else 3 if after == "://" else 0
        yield start, end, refused_after
