"""How X measures a post: the weighted length of twitter-text's v3 configuration.

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
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import Any

X_MAX_WEIGHTED_LENGTH = 280
URL_WEIGHT = 23

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


def weighted_length(text: str) -> int:
    """Return the weighted length X assigns to `text` (URLs 23, emoji and CJK 2)."""
    plain = _plain_measure(text)
    if plain is not None:
        return plain[0]
    return _parse(text).weightedLength


def fits_on_x(text: str) -> bool:
    """Return whether X accepts `text` as a post: weight 1 to 280, no bad characters."""
    plain = _plain_measure(text)
    if plain is not None:
        return plain[0] <= X_MAX_WEIGHTED_LENGTH
    return bool(_parse(text).valid)


def linked_urls(text: str) -> list[str]:
    """Return the URLs X would link in `text`, bare domains ("shop.com") included."""
    plain = _plain_measure(text)
    if plain is not None:
        return plain[1]
    from twitter_text import extract_urls

    return extract_urls(text)


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
def _parse(text: str) -> Any:
    # One parse costs about 2 ms, mostly the library's emoji scan (measured), and
    # callers measure the same draft several times (fit, check, record): cache it.
    # The package's default options are the v3 configuration (emoji discount on),
    # the one X applies to posts today.
    from twitter_text import parse_tweet

    return parse_tweet(text)
