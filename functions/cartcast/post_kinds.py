"""Post kinds: what a caption request may ask of each, and how copy takes its shape.

    text     one post
    image    one post with the product's first image attached, its alt text the
             product's title; the image is read from the catalog when the post is
             sent, so it is the catalog's image of that moment
    poll     one post with 2 to 4 options of at most 25 characters, open for
             5 minutes to 7 days (X's bounds for `poll.options` and
             `poll.duration_minutes` on POST /2/tweets)
    thread   2 to 4 posts published as a reply chain; the link, when the post has
             one, and the brand's hashtags close the last part, so the chain opens
             with the product and ends where the reader can buy it

X bills each post created (costs.py): a thread of three parts costs three posts,
the part that carries the URL at the link price.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from cartcast import validation
from cartcast.errors import InvalidRequest
from cartcast.post_text import X_MAX_WEIGHTED_LENGTH, weighted_length

KINDS = ("text", "image", "poll", "thread")
POLL_OPTIONS_MIN = 2
POLL_OPTIONS_MAX = 4
POLL_OPTION_LENGTH_MAX = 25
POLL_DURATION_MIN_MINUTES = 5
POLL_DURATION_MAX_MINUTES = 7 * 24 * 60
POLL_DURATION_DEFAULT_MINUTES = 24 * 60
# What the template engine asks, when the request names no options of its own.
POLL_QUESTION = "Would you pick this one?"
DEFAULT_POLL_OPTIONS = ("Yes, I want one", "Maybe later", "Not for me")
THREAD_PARTS_MIN = 2
THREAD_PARTS_MAX = 4
# X's limit for an image's alt text (POST /2/media/metadata, alt_text.text).
ALT_TEXT_LENGTH_MAX = 1000

_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")


@dataclass(frozen=True)
class KindRequest:
    """The kind a caption request asked for, with a poll's own options if given."""

    kind: str = "text"
    poll_options: tuple[str, ...] | None = None
    poll_duration_minutes: int = POLL_DURATION_DEFAULT_MINUTES


def parse_kind(body: dict[str, Any]) -> KindRequest:
    """Read `kind`, `poll_options` and `poll_duration_minutes` from a request body."""
    kind = body.get("kind", "text")
    if kind not in KINDS:
        raise InvalidRequest(f"'kind' must be one of {', '.join(KINDS)}", field="kind")

    if kind != "poll":
        for name in ("poll_options", "poll_duration_minutes"):
            if name in body:
                raise InvalidRequest(f"'{name}' goes with kind 'poll' only", field=name)
        return KindRequest(kind)

    options = None
    if body.get("poll_options") is not None:
        problem = poll_options_problem(body["poll_options"])
        if problem:
            raise InvalidRequest(f"'poll_options' {problem}", field="poll_options")
        options = tuple(
            option.strip(validation.BLANK) for option in body["poll_options"]
        )
    duration = validation.integer(
        body,
        "poll_duration_minutes",
        default=POLL_DURATION_DEFAULT_MINUTES,
        minimum=POLL_DURATION_MIN_MINUTES,
        maximum=POLL_DURATION_MAX_MINUTES,
    )
    return KindRequest(kind, options, duration)


def poll_options_problem(options: Any) -> str | None:
    """Say what makes `options` unusable as a poll's options on X, or None."""
    if not isinstance(options, (list, tuple)) or not (
        POLL_OPTIONS_MIN <= len(options) <= POLL_OPTIONS_MAX
    ):
        return f"must be a list of {POLL_OPTIONS_MIN} to {POLL_OPTIONS_MAX} options"
    for option in options:
        if not isinstance(option, str) or validation.is_blank(option):
            return "must be non-empty strings"
        # As sent, as the spec's maxLength counts it; the options the model
        # writes reach here stripped already (gemini.py).
        if len(option) > POLL_OPTION_LENGTH_MAX:
            return (
                f"must each be at most {POLL_OPTION_LENGTH_MAX} characters: "
                f"{option!r} has {len(option)}"
            )
    distinct = {option.strip(validation.BLANK).casefold() for option in options}
    if len(distinct) != len(options):
        return "must differ from one another"
    return None


def poll_text(text: str) -> str:
    """Open a finished caption with the poll's question, when it still fits on X."""
    asked = f"{POLL_QUESTION} {text}"
    return asked if weighted_length(asked) <= X_MAX_WEIGHTED_LENGTH else text


def split_thread(text: str, link: str) -> list[str]:
    """Split a finished caption into thread parts on sentence boundaries.

    The trailing link and hashtags stay together at the end of the last part; the
    sentences before the last one open the thread. A caption of one sentence
    becomes that sentence and its link and hashtags; one without either is cut
    between words. Every part of a caption that fitted on X fits too.
    """
    words = text.split()
    tail_start = len(words)
    while tail_start and (
        words[tail_start - 1] == link or words[tail_start - 1].startswith("#")
    ):
        tail_start -= 1
    body, tail = " ".join(words[:tail_start]), " ".join(words[tail_start:])

    sentences = [sentence for sentence in _SENTENCE_END.split(body) if sentence]
    if len(sentences) >= 2:
        return [" ".join(sentences[:-1]), f"{sentences[-1]} {tail}".strip()]
    if body and tail:
        return [body, tail]
    if len(words) >= 2:
        middle = len(words) // 2
        return [" ".join(words[:middle]), " ".join(words[middle:])]
    return [text]


def alt_text(title: str) -> str:
    """Describe a product image by the product's title, within X's limit."""
    return " ".join(title.split())[:ALT_TEXT_LENGTH_MAX]
