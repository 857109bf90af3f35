"""Which characters X links as part of a hashtag, and whether a text carries one.

A hashtag on X is '#' and a run of letters, combining marks, decimal digits and a
short list of other characters, at least one a letter; the first character outside
that set ends it. A brand's required hashtags and disclosure tag are checked
against it (brands.is_one_hashtag), and so is a draft that must carry them
(`contains_hashtag`): "#Tokyo" is not carried by "#Tokyo・Cafe", which X links as
another hashtag. The template's own hashtags are made of the same word characters
(`is_hashtag_word_character`), and `post_text.shorten` keeps a hashtag whole up to
the first character that does not continue it; the near-duplicate measure takes
hashtags out of a post's words by the same rule (`blank_hashtags`).
"""

from __future__ import annotations

import re
import unicodedata

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
_SIGIL = re.compile("|".join(HASHTAG_SIGILS))
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


def contains_hashtag(text: str, tag: str) -> bool:
    """Whether `text` holds `tag` ("#Tokyo") as a hashtag X links, in any case.

    The tag must not follow a character that would make it part of a word, nor
    run on into one: "#Tokyo, " and "#Tokyo" at the end count; "#Tokyo・Cafe",
    "#Tokyo_2" and "x#Tokyo" do not. Case is compared as X compares hashtags,
    without regard to it (a regular expression's IGNORECASE), and either sign
    opens it ("＃Tokyo").

    twitter-text (js/src/extractHashtagsWithIndices.js and the regexp/ files it
    names) links no hashtag after '&' (hashtagBoundary), none followed by another
    sign or "://" ("#Tokyo#Cafe": endHashtagMatch) and none inside a URL
    (removeOverlappingEntities); a sign before it is no word, so "##Tokyo" links
    "#Tokyo". A tag X would not start a hashtag at ('#', U+FE0F, "ad": an emoji and
    a word) is never held.
    """
    if not starts_hashtag(tag):
        return False
    if tag[:1] in HASHTAG_SIGILS:
        tag = tag[1:]
    from cartcast.post_text import linked_urls  # post_text imports this module

    for url in linked_urls(text):
        text = text.replace(url, " " * len(url))
    pattern = f"(?=[{''.join(sorted(HASHTAG_SIGILS))}]{re.escape(tag)})"
    for found in re.finditer(pattern, text, re.IGNORECASE):
        start, end = found.start(), found.start() + 1 + len(tag)
        before = text[start - 1] if start else ""
        if before and before not in VARIATION_SELECTORS:
            if before == "&" or continues_hashtag(before):
                continue
        if end < len(text) and continues_hashtag(text[end]):
            continue
        if _ends_no_hashtag(text[end:]):
            continue
        return True
    return False


def _ends_no_hashtag(after: str) -> bool:
    """Whether what follows a hashtag makes X link none there (endHashtagMatch)."""
    return after[:1] in HASHTAG_SIGILS or after.startswith("://")


def blank_hashtags(text: str) -> str:
    """Return `text` with a space for every sigil and the run of characters that
    continue a hashtag after it ("#Tokyo・Cafe", "#2024" alike)."""
    pieces, kept_from = [], 0
    for sigil in _SIGIL.finditer(text):
        start = end = sigil.end()
        if text[start : start + 1] in SIGN_TO_EMOJI:
            continue
        while end < len(text) and continues_hashtag(text[end]):
            end += 1
        if end > start:
            pieces += [text[kept_from : sigil.start()], " "]
            kept_from = end
    return "".join(pieces) + text[kept_from:] if pieces else text
