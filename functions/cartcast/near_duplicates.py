"""Near-duplicate copy: two posts that say the same thing in nearly the same words.

The words of a post are what is left once URLs, hashtags, @mentions and numbers are
taken out, casefolded: "Meet the Red Lipstick. Now $8.94! https://… #Beauty" has the
words {meet, the, red, lipstick, now}. Two posts are near-duplicates when the Jaccard
similarity of their word sets (shared words over all words) is at least the threshold,
0.8 unless CARTCAST_NEAR_DUPLICATE_THRESHOLD says otherwise. A one-word edit of a
twenty-word post scores about 0.9; the same sentence about another product, with its
own name and price, stays well under 0.8. Why this measure, and what it misses:
docs/decisions/0006-near-duplicate-copy-and-template-patterns.md.

Scripts written without spaces (Chinese, Japanese, Thai) have no words to split on:
each of their characters counts as a word, so a Japanese caption is compared
character by character rather than as one long word.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

from cartcast.post_text import blank_hashtags
from cartcast.settings import NEAR_DUPLICATE_THRESHOLD

OPENING_WORDS = 6

_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
# X's mentions: an @ (or its full-width form) and word characters. Hashtags run on
# through more (post_text.blank_hashtags).
_MENTION = re.compile(r"[@＠]\w+")
# A word: a run of letters that may hold an apostrophe ("it's" is one word). Digits
# are not letters: numbers drop out.
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")
# Thai, kana, CJK ideographs: each character is a word. Checked by code point, since
# a character class of these ranges takes milliseconds to compile on a cold start.
_SPACELESS = (
    (0x0E00, 0x0E7F),
    (0x3040, 0x30FF),
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xF900, 0xFAFF),
)
_SPACELESS_FROM = chr(0x0E00)


def copy_words(text: str) -> frozenset[str]:
    """Return a post's casefolded words: no URLs, hashtags, mentions or numbers."""
    text = _URL.sub(" ", text)
    text = _MENTION.sub(" ", blank_hashtags(text)).casefold().replace("’", "'")
    words = _WORD.findall(text)
    if not text or max(text) < _SPACELESS_FROM:
        return frozenset(words)
    return frozenset(piece for word in words for piece in _split_spaceless(word))


def _split_spaceless(word: str) -> list[str]:
    """Split a word at each character of a script without spaces: "mug日本" is 3."""
    if max(word) < _SPACELESS_FROM:
        return [word]
    pieces, run = [], ""
    for char in word:
        if any(low <= ord(char) <= high for low, high in _SPACELESS):
            pieces.extend(filter(None, (run, char)))
            run = ""
        else:
            run += char
    return [*pieces, run] if run else pieces


def similarity(first: frozenset[str], second: frozenset[str]) -> float:
    """Return the Jaccard similarity of two word sets, 1.0 for two empty ones."""
    if not first and not second:
        return 1.0
    shared = len(first & second)
    return shared / (len(first) + len(second) - shared)


@dataclass(frozen=True)
class Resemblance:
    """The earlier text a new one is a near-duplicate of, and how similar they are."""

    label: str
    opening: str
    score: float

    def __str__(self) -> str:
        # A post is named by its id alone: its words would outlive it in other
        # posts' reasons and in logs once X deletes it (decision 0022). A draft
        # of the same batch has no id yet, so its opening says which it is.
        if self.label.startswith("post "):
            return f"near-duplicate of {self.label} (similarity {self.score:.2f})"
        return (
            f'near-duplicate of {self.label} ("{self.opening}", '
            f"similarity {self.score:.2f})"
        )


class _Known(NamedTuple):
    label: str
    opening: str
    words: frozenset[str]
    size: int


class CopyIndex:
    """Texts already written or posted, each under a label ("post <id>", "draft 2").

    Finding a resemblance compares the new text with every known one, so it costs
    time in proportion to what is known: keep it to a batch and the brand's recent
    posts, never a whole history.
    """

    def __init__(self, threshold: float = NEAR_DUPLICATE_THRESHOLD) -> None:
        if not 0 < threshold <= 1:
            raise ValueError(f"a similarity threshold is in (0, 1], got {threshold}")
        self.threshold = threshold
        self._known: list[_Known] = []

    def add(self, label: str, text: str) -> None:
        first_words = _URL.sub(" ", text).split()
        opening = " ".join(first_words[:OPENING_WORDS])
        if len(first_words) > OPENING_WORDS:
            opening += "…"
        words = copy_words(text)
        self._known.append(_Known(label, opening, words, len(words)))

    def resemblance(self, text: str) -> Resemblance | None:
        """Return the most similar known text at or over the threshold, or None."""
        words = copy_words(text)
        # Jaccard similarity is at most the ratio of the two set sizes: a text much
        # shorter or longer is ruled out by its size alone (with a margin for
        # rounding; the pairs at the edge are measured exactly).
        fewest = len(words) * self.threshold - 1e-9
        most = len(words) / self.threshold + 1e-9
        best: Resemblance | None = None
        for known in self._known:
            if not fewest <= known.size <= most:
                continue
            score = similarity(words, known.words)
            if score >= self.threshold and (best is None or score > best.score):
                best = Resemblance(known.label, known.opening, score)
        return best
