"""How X measures a post: the weighted length of twitter-text's v3 configuration.

X does not count characters. It counts weights: most Latin text weighs 1, CJK and
emoji weigh 2, and every URL weighs 23 whatever its length, because X rewrites it to a
t.co link. A post is valid when that weighted length is 1 to 280 and it holds no
forbidden characters (U+FFFE, U+FFFF, unpaired directional overrides...).

twitter-text-parser implements X's own conformance cases; it is imported on first use
so that modules which only import this one pay nothing until they count.
"""

from __future__ import annotations

import functools
from typing import Any

X_MAX_WEIGHTED_LENGTH = 280


def weighted_length(text: str) -> int:
    """Return the weighted length X assigns to `text` (URLs 23, emoji and CJK 2)."""
    return _parse(text).weightedLength


def fits_on_x(text: str) -> bool:
    """Return whether X accepts `text` as a post: weight 1 to 280, no bad characters."""
    return bool(_parse(text).valid)


def linked_urls(text: str) -> list[str]:
    """Return the URLs X would link in `text`, bare domains ("shop.com") included."""
    from twitter_text import extract_urls

    return extract_urls(text)


@functools.lru_cache(maxsize=1024)
def _parse(text: str) -> Any:
    # One parse costs about 2 ms, mostly the library's emoji scan (measured), and
    # callers measure the same draft several times (fit, check, record): cache it.
    # The package's default options are the v3 configuration (emoji discount on),
    # the one X applies to posts today.
    from twitter_text import parse_tweet

    return parse_tweet(text)
