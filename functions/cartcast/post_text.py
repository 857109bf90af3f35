"""How X measures a post, and how to shorten text to fit without breaking a character.

X does not count characters. It counts weights: most Latin text weighs 1, CJK and
emoji weigh 2, and every URL weighs 23 whatever its length, because X rewrites it to a
t.co link. A post is valid when that weighted length is 1 to 280 and it holds no
forbidden characters (U+FFFE, U+FFFF, unpaired directional overrides...).

twitter-text-parser implements X's own conformance cases; it is imported on first use
so that modules which only import this one pay nothing until they count.

Importing it costs about 190 ms (pkg_resources, then its emoji and URL expressions),
more than a bare function's whole cold start. Most captions cartcast writes are plain
Latin text plus its own product link, where X's rules reduce to "one per character,
23 per URL", so `_plain_measure` answers those without the library, and only when it
can prove the library would answer the same; any doubt falls through to the library.
Tests compare both on X's conformance cases, the catalog's captions and random text
(decision 0004).

One rule is cartcast's own (decision 0005): the library knows the emoji of Unicode's
Emoji 12.0 and counts a newer sequence (a new ZWJ sequence or flag, a skin tone on a
new hand) as several characters. Every fully-qualified sequence of Unicode's emoji test
data (`data/emoji-test.txt`, Emoji 17.0), found as one whole grapheme cluster outside a
URL, weighs 2 here. The file is read only when a text holds a code point that starts a
sequence the library gets wrong (`NEWER_EMOJI_STARTERS`); every other text is measured
exactly as before.

`mentioned_usernames` finds the accounts a post would @mention, by twitter-text's
rule; `mentioned_accounts` leaves out lists ("@shop/new-in"), as X's own mention
entities do.

`shorten` cuts text to a weight on grapheme-cluster boundaries (UAX #29, the `regex`
package's `\\X`), preferring word boundaries and keeping URLs, hashtags and mentions
whole.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import os
import re
import unicodedata
from typing import Any

from cartcast import hashtags

X_MAX_WEIGHTED_LENGTH = 280
URL_WEIGHT = 23
EMOJI_WEIGHT = 2
# What a miscounted sequence is measured as: a sequence on twitter-text-parser's own
# list (thumbs up, light skin tone), which it weighs 2. Like the sequences it stands
# in for it has more than one code point, and so the library finds the same URLs
# around it as around them, even one glued to it ("...x.com"; checked on random text).
STAND_IN_EMOJI = "\U0001f44d\U0001f3fb"

# Code points twitter-text's v3 configuration weighs 1; every other one weighs 2.
LIGHT_RANGES = ((0x0000, 0x10FF), (0x2000, 0x200D), (0x2010, 0x201F), (0x2032, 0x2037))
# Light code points that can also start an emoji (which then weighs 2 as a whole).
EMOJI_STARTERS = frozenset("\u00a9\u00ae")
# Heavy code points that are no part of any emoji: each simply weighs 2. The
# ellipsis is the one the template engine writes when it shortens a hook or title.
PLAIN_HEAVY = frozenset("\u2026")
# Top-level domains certainly on twitter-text's list; a link on any other TLD is
# measured by the library, which alone knows whether X would link it.
SURE_TLDS = frozenset(
    "com net org edu gov info biz io co app dev shop store online site xyz "
    "us uk ca au nz ie de fr es it nl be ch at se no dk fi pl pt br mx jp in eu".split()
)
# A link the shortcut can vouch for: scheme, a host of valid labels (1 to 63
# letters, digits or inner hyphens), then only
# characters X keeps inside a URL, ending on one X keeps at a URL's end.
PLAIN_URL = re.compile(
    r"https?://(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?P<tld>[a-z]{2,6})"
    r"(?P<path>/[a-z0-9/._~%+-]*)?(?:\?(?P<query>[a-z0-9._~%&=+-]*))?",
    re.IGNORECASE,
)
# Anything else that might be a URL to X: a scheme, or a dot before a letter (a bare
# domain such as "shop.com"). Its presence sends the text to the library.
MAYBE_URL = re.compile(r"://|\.[a-z]", re.IGNORECASE)

# Unicode's emoji test data, Emoji 17.0 (origin, license and update steps in
# data/SOURCE.md).
# (os.path rather than pathlib: importing pathlib costs about 5 ms of cold start.)
EMOJI_TEST_PATH = os.path.join(os.path.dirname(__file__), "data", "emoji-test.txt")
# The first code points of the fully-qualified sequences of EMOJI_TEST_PATH that
# twitter-text-parser 3.0.0 does not weigh 2 on their own. A text without any of them
# holds no such sequence, so the library's count stands; a test recomputes this set
# from the file and the library.
NEWER_EMOJI_STARTERS = frozenset(
    chr(point)
    for point in (
        0x26A7, 0x26D3, 0x2764, 0x1F1E8, 0x1F344, 0x1F34B, 0x1F3C3, 0x1F3F3, 0x1F408,
        0x1F426, 0x1F43B, 0x1F468, 0x1F469, 0x1F46F, 0x1F470, 0x1F48F, 0x1F491,
        0x1F62E, 0x1F635, 0x1F636, 0x1F642, 0x1F6B6, 0x1F90C, 0x1F91D, 0x1F935,
        0x1F93C, 0x1F977, 0x1F9CE, 0x1F9D1, 0x1F9D4, 0x1FAC3, 0x1FAC4, 0x1FAC5,
        0x1FAF0, 0x1FAF1, 0x1FAF2, 0x1FAF3, 0x1FAF4, 0x1FAF5, 0x1FAF6, 0x1FAF7,
        0x1FAF8,
    )
)  # fmt: skip

# Punctuation left dangling before an ellipsis ("soft, warm, …"): dropped with it.
DANGLING_PUNCTUATION = frozenset(",;:.-–—，、。；：")
# A cut after these is as good as one between words: CJK text has no spaces.
CJK_CLAUSE_ENDS = frozenset("，、。；：！？")
# Mentions: a cut inside one would mention someone else.
MENTION_SIGILS = frozenset("@＠")
# A token with a scheme is a URL to a reader even where X would not link it; the
# punctuation that ends a sentence after it is not part of it.
SCHEME_TOKEN = re.compile(
    r"[a-z][a-z0-9+.-]*://\S*?(?=[.,;:!?)\]'\"]*(?:\s|$))", re.IGNORECASE
)

# X's mention rule, as twitter-text extracts one (validMentionOrList, endMentionMatch):
# an @ (or a full-width one) after the start, or a character that is no letter,
# digit, _ or one of !#$%&*@ (so an e-mail address "a@b.com" mentions no one), or
# after "RT" or "RT:" standing alone; then the username, 1 to 15 letters, digits or _
# (X's limit: a longer run names no account), and perhaps a list ("/name"). An @, an
# accented Latin letter or "://" right after it makes it no mention at all. The list
# is atomic: twitter-text takes it whole and then rejects, never a shorter one.
# A list ("@shop/new-in") links the list, not the account: twitter-text's
# extractMentionedScreenNames leaves it out (`mentioned_accounts`).
MENTION = re.compile(
    r"(?:^|[^A-Za-z0-9_!#$%&*@＠]|(?:^|[^A-Za-z0-9_+~.-])[Rr][Tt]:?)"
    r"[@＠](?P<name>[A-Za-z0-9_]{1,15})(?![A-Za-z0-9_])"
    r"(?>(?P<list>/[A-Za-z][A-Za-z0-9_-]{0,24})?)"
    r"(?![@＠\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u0253\u0254\u0256\u0257"
    r"\u0259\u025b\u0263\u0268\u026f\u0272\u0289\u028b\u02bb\u0300-\u036f"
    r"\u1e00-\u1eff]|://)"
)


def weighted_length(text: str) -> int:
    """Return the weighted length X assigns to `text` (URLs 23, emoji and CJK 2)."""
    plain = _plain_measure(text)
    if plain is not None:
        return plain[0]
    return _measure(text)[0]


def fits_on_x(text: str) -> bool:
    """Return whether X accepts `text` as a post: weight 1 to 280, no bad characters."""
    plain = _plain_measure(text)
    if plain is not None:
        return plain[0] <= X_MAX_WEIGHTED_LENGTH
    return _measure(text)[1]


def linked_urls(text: str) -> list[str]:
    """Return the URLs X would link in `text`, bare domains ("shop.com") included."""
    plain = _plain_measure(text)
    if plain is not None:
        return plain[1]
    from twitter_text import extract_urls

    return extract_urls(text)


def mentioned_usernames(text: str) -> list[str]:
    """Return the usernames X would mention in `text`, in order, URLs aside.

    A list's owner ("@shop/new-in") is among them: a caption naming one is held
    to the same rule as one naming the account.
    """
    return [match["name"] for match in _mention_matches(text)]


def mentioned_accounts(text: str) -> list[str]:
    """Return the usernames `text` mentions as accounts on X, lists and URLs aside.

    What X counts as the post mentioning someone: its `entities.mentions`, and
    what its reply policy reads (inbox.py).
    """
    return [match["name"] for match in _mention_matches(text) if not match["list"]]


def _mention_matches(text: str) -> list[re.Match[str]]:
    if "@" not in text and "＠" not in text:
        return []
    # X links a URL before a mention inside it ("medium.com/@shop" mentions no one).
    for url in linked_urls(text):
        text = text.replace(url, " " * len(url))
    return list(MENTION.finditer(text))


def hashtag_spans(text: str) -> list[tuple[int, int]]:
    """Return where X links a hashtag in `text` (hashtags.hashtag_spans), URLs
    aside."""
    if "#" not in text and "＃" not in text:
        return []
    return hashtags.hashtag_spans(text, _linked_url_spans)


def contains_hashtag(text: str, tag: str) -> bool:
    """Whether `text` holds `tag` ("#Tokyo") as a hashtag X links, in any case.

    X must link a hashtag there (hashtag_spans) that is `tag` whole: "#Tokyo, "
    and "#Tokyo" at the end count; "#Tokyo・Cafe", "#Tokyo_2", "x#Tokyo",
    "#Tokyo#Cafe" and "shop.example.com/#Tokyo" do not. Case is compared without
    regard to it, as X compares hashtags, and either sign opens it ("＃Tokyo"). A
    tag X would not start a hashtag at ('#', U+FE0F, "ad") is never held.
    """
    if not hashtags.starts_hashtag(tag):
        return False
    wanted = tag[1:].lower()
    return any(
        text[start + 1 : end].lower() == wanted for start, end in hashtag_spans(text)
    )


def blank_hashtags(text: str) -> str:
    """Return `text` with a space for every hashtag X links in it (hashtag_spans)."""
    pieces, kept_from = [], 0
    for start, end in hashtag_spans(text):
        pieces += [text[kept_from:start], " "]
        kept_from = end
    return "".join(pieces) + text[kept_from:] if pieces else text


def shorten(text: str, max_weight: int, *, ellipsis: str = "…") -> str:
    """Return `text` if it weighs at most `max_weight`, else its longest start that does
    with `ellipsis` appended.

    The cut falls only between grapheme clusters: never inside an emoji, a flag, a
    skin-tone or ZWJ sequence, nor between a letter and its combining marks. It falls
    between words when any word boundary fits (after a CJK comma or full stop counts
    as one), and between two clusters otherwise (CJK text, one very long word). A URL,
    a hashtag or a mention is kept whole or dropped whole. Trailing spaces and
    dangling punctuation are dropped before the ellipsis. When no start of the text
    fits, the result is the ellipsis alone, or "" when even that does not fit.
    """
    if weighted_length(text) <= max_weight:
        return text
    if weighted_length(ellipsis) > max_weight:
        return ""

    boundaries = _cluster_boundaries(text)
    urls = _url_spans(text)
    cuts = _allowed_cuts(text, boundaries, urls + _entity_spans(text, boundaries))
    word_cuts = [
        cut
        for cut in cuts
        if (text[cut].isspace() and not text[cut - 1].isspace())
        or text[cut - 1] in CJK_CLAUSE_ENDS
    ]

    # An ellipsis glued to a URL would read as part of it: a space keeps them apart.
    url_ends = {end for _, end in urls}
    for candidates in (word_cuts, cuts):
        shortened = _longest_fitting_cut(
            text, candidates, max_weight, ellipsis, url_ends
        )
        if shortened is not None:
            return shortened
    return ellipsis


def end_with_ellipsis(text: str, ellipsis: str = "…") -> str:
    """Return `text` less its trailing spaces and dangling punctuation, + `ellipsis`."""
    return _trim_end(text) + ellipsis


# --- Measuring ------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def _plain_measure(text: str) -> tuple[int, list[str]] | None:
    """Measure text of light characters and plain links, or None when unsure."""
    if not text.strip() or "\r" in text or unicodedata.normalize("NFC", text) != text:
        return None
    if any(_needs_library(char) for char in text):
        return None
    urls = []
    for token in text.split():
        match = PLAIN_URL.fullmatch(token)
        if match and _sure_link(match):
            urls.append(token)
        elif MAYBE_URL.search(token):
            return None
    length = len(text) - sum(len(url) for url in urls) + URL_WEIGHT * len(urls)
    length += sum(char in PLAIN_HEAVY for char in text)
    return length, urls


def _sure_link(match: re.Match[str]) -> bool:
    """Say whether twitter-text certainly links this whole token as one URL."""
    path, query = match["path"], match["query"]
    # X stops a path before a trailing dot or comma and a query before a trailing
    # "&"; and t.co links follow a rule of their own. Such links go to the library.
    return (
        match["tld"].lower() in SURE_TLDS
        and "//t.co" not in match[0].lower()
        and (not path or path[-1].isalnum() or path[-1] == "/")
        and (
            query is None or (query != "" and (query[-1].isalnum() or query[-1] == "="))
        )
    )


def _needs_library(char: str) -> bool:
    point = ord(char)
    if char in PLAIN_HEAVY:
        return False
    light = any(start <= point <= end for start, end in LIGHT_RANGES)
    return not light or char in EMOJI_STARTERS


@functools.lru_cache(maxsize=1024)
def _measure(text: str) -> tuple[int, bool]:
    """Return the weight and validity of `text`: the library's, with the emoji rule."""
    if NEWER_EMOJI_STARTERS.isdisjoint(text):
        parsed = _parse(text)
        return parsed.weightedLength, bool(parsed.valid)

    # The library measures the text with each sequence it would get wrong replaced by
    # a sequence it knows: that one weighs 2, and the text around it (URLs, flags,
    # invalid characters) is judged as before. The text is normalised as the library
    # normalises it, so that positions agree.
    from twitter_text import extract_urls_with_indices

    normalized = re.sub(r"\r\n|\r", "\n", unicodedata.normalize("NFC", text))
    urls = [found["indices"] for found in extract_urls_with_indices(normalized)]
    pieces, start = [], 0
    for cluster_start, cluster_end in _newer_emoji_spans(normalized, urls):
        pieces += [normalized[start:cluster_start], STAND_IN_EMOJI]
        start = cluster_end
    parsed = _parse("".join(pieces) + normalized[start:])
    return parsed.weightedLength, bool(parsed.valid)


def _newer_emoji_spans(text: str, urls: list[list[int]]) -> list[tuple[int, int]]:
    """Find the grapheme clusters outside URLs that are sequences the library
    miscounts: fully-qualified in the emoji test data, not weighed 2 on their own."""
    sequences = _fully_qualified_sequences()
    spans = []
    for match in _grapheme_cluster().finditer(text):
        cluster = match[0]
        if len(cluster) < 2 or cluster not in sequences:
            continue
        start, end = match.span()
        if any(start < url_end and url_start < end for url_start, url_end in urls):
            continue
        if _parse(cluster).weightedLength != EMOJI_WEIGHT:
            spans.append((start, end))
    return spans


@functools.cache
def _fully_qualified_sequences() -> frozenset[str]:
    """Read the fully-qualified sequences of the emoji test data (about 10 ms)."""
    sequences = set()
    with open(EMOJI_TEST_PATH, encoding="utf-8") as lines:
        # A data line: "1F9D1 200D 1FA70  ; fully-qualified  # ... E17.0 ballet dancer".
        for line in lines:
            points, _, rest = line.partition(";")
            if rest.lstrip().startswith("fully-qualified"):
                sequences.add("".join(chr(int(point, 16)) for point in points.split()))
    return frozenset(sequences)


@functools.lru_cache(maxsize=1024)
def _parse(text: str) -> Any:
    # One parse costs about 2 ms, mostly the library's emoji scan (measured), and
    # callers measure the same draft several times (fit, check, record): cache it.
    # The package's default options are the v3 configuration (emoji discount on),
    # the one X applies to posts today.
    from twitter_text import parse_tweet

    return parse_tweet(text)


# --- Shortening -----------------------------------------------------------------


def _allowed_cuts(
    text: str, boundaries: list[int], whole: list[tuple[int, int]]
) -> list[int]:
    """Return the cluster boundaries a cut may fall on: none inside a span to keep
    whole, and none before the text's first word (the ellipsis would stand alone)."""
    inside_whole = [False] * (len(text) + 1)
    for start, end in whole:
        inside_whole[start + 1 : end] = [True] * max(end - start - 1, 0)
    first_content = len(text) - len(_trim_start(text))
    return [
        cut for cut in boundaries[1:-1] if cut > first_content and not inside_whole[cut]
    ]


def _longest_fitting_cut(
    text: str, cuts: list[int], max_weight: int, ellipsis: str, url_ends: set[int]
) -> str | None:
    # Bisection: a longer start weighs at least as much, and every answer is measured.
    best = None
    low, high = 0, len(cuts) - 1
    while low <= high:
        middle = (low + high) // 2
        start = text[: cuts[middle]].rstrip()
        if len(start) not in url_ends:  # a URL's last character is no punctuation
            start = _trim_end(start)
        candidate = start + (" " if len(start) in url_ends else "") + ellipsis
        if weighted_length(candidate) <= max_weight:
            best, low = candidate, middle + 1
        else:
            high = middle - 1
    return best


def _trim_start(text: str) -> str:
    trimmed = text.lstrip()
    while trimmed and trimmed[0] in DANGLING_PUNCTUATION:
        trimmed = trimmed[1:].lstrip()
    return trimmed


def _trim_end(text: str) -> str:
    trimmed = text.rstrip()
    while trimmed and trimmed[-1] in DANGLING_PUNCTUATION:
        trimmed = trimmed[:-1].rstrip()
    return trimmed


def _cluster_boundaries(text: str) -> list[int]:
    """Return every position of `text` between two grapheme clusters, 0 and the end
    included."""
    # Below U+0300 and in General Punctuation every code point but CR is a cluster of
    # its own (UAX #29), so plain text needs no segmentation and no `regex` import.
    if "\r" not in text and all(
        ord(char) < 0x300 or 0x2010 <= ord(char) <= 0x205E for char in text
    ):
        return list(range(len(text) + 1))
    return [0] + [match.end() for match in _grapheme_cluster().finditer(text)]


@functools.cache
def _grapheme_cluster() -> Any:
    import regex

    return regex.compile(r"\X")


def _linked_url_spans(text: str) -> list[tuple[int, int]]:
    """Return where X links the URLs of `text` (linked_urls), as (start, end)."""
    plain = _plain_measure(text)
    if plain is None:
        from twitter_text import extract_urls_with_indices

        found = extract_urls_with_indices(text)
        return [(url["indices"][0], url["indices"][1]) for url in found]

    # The shortcut's URLs are whole tokens, in order, and no other token holds one.
    spans, searched_to = [], 0
    for url in plain[1]:
        start = text.index(url, searched_to)
        searched_to = start + len(url)
        spans.append((start, searched_to))
    return spans


def _url_spans(text: str) -> list[tuple[int, int]]:
    """Return where the URLs of `text` are: any token with a scheme, and whatever
    else X links."""
    spans = [match.span() for match in SCHEME_TOKEN.finditer(text)]
    # Text the shortcut measures has no URL without a scheme; in other text the
    # library finds the bare domains ("shop.com") X links too.
    if _plain_measure(text) is None:
        from twitter_text import extract_urls_with_indices

        found = extract_urls_with_indices(text)
        spans += [(url["indices"][0], url["indices"][1]) for url in found]
    return spans


def _entity_spans(text: str, boundaries: list[int]) -> list[tuple[int, int]]:
    """Return where the hashtags and mentions of `text` are, in whole clusters.

    A hashtag counts wherever X starts one (hashtags.hashtag_runs), with the sign
    or "://" that makes X refuse it: a cut inside or right after it would leave a
    start X links as a hashtag ("#Tokyo#Cafe" cut to "#Tokyo…")."""
    spans = [
        (start, end + refused_after)
        for start, end, refused_after in hashtags.hashtag_runs(text)
    ]
    clusters = list(itertools.pairwise(boundaries))
    index = 0
    while index < len(clusters):
        start, sigil_end = clusters[index]
        # A mention runs on through letters, digits and '_'.
        follows_word = index > 0 and _starts_word(text[clusters[index - 1][0]])
        index += 1
        if text[start:sigil_end] not in MENTION_SIGILS or follows_word:  # "a@b": none
            continue
        end = sigil_end
        while index < len(clusters) and _starts_word(text[clusters[index][0]]):
            end = clusters[index][1]
            index += 1
        if end > sigil_end:
            spans.append((start, end))
    return [_whole_clusters(span, boundaries) for span in spans]


def _whole_clusters(span: tuple[int, int], boundaries: list[int]) -> tuple[int, int]:
    """Widen `span` to the grapheme clusters it touches."""
    start, end = span
    return (
        boundaries[bisect.bisect_right(boundaries, start) - 1],
        boundaries[bisect.bisect_left(boundaries, end)],
    )


def _starts_word(char: str) -> bool:
    return char.isalnum() or char == "_"
