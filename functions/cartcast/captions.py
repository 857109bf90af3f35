"""Post copy for products: a template engine that never fails, Gemini when given one.

`write_drafts` turns a batch of products (each with its tracked link) into one draft
post per request. Every draft, whichever engine wrote it, is held to the same checks,
recorded in `Draft.checks`:

    link_once              the request's link appears exactly once, and no other URL
    no_link                (link-free posts, in place of link_once) no URL at all,
                           and no words pointing at one ("see the link")
    fits_on_x              X's weighted length (URLs 23, emoji 2) is at most 280
    required_hashtags      every hashtag the brand requires is there
    no_banned_words        no banned word of the brand, as a whole word, any case
    no_mentions            no @mention X would make of an account other than the
                           brand's own (post_text.mentioned_usernames): X's
                           automation rules forbid unsolicited automated mentions,
                           so a person approves one ("Mug @elonmusk edition")
    distinct               the copy is not a near-duplicate (cartcast.near_duplicates:
                           the same words, links, hashtags, mentions and numbers
                           aside, 0.8 similar or more by default) of another draft
                           of the batch or of the brand's recent posts
    price_matches_catalog  each price-looking figure is the catalog or sale price
    claims_match_catalog   "N% off", "save $N", "only N left", "only a few left", "in
                           stock" agree with
                           the catalog's discount, prices and stock

With a Gemini captioner, the whole batch goes to the model in one call. The link and
any missing required hashtag are appended to the model's copy here, never trusted to
the model, and a draft that fails a check falls back to the template engine with
`fallback_reason` saying why ("gemini: too long", "gemini: banned word 'cure'",
"gemini: near-duplicate of post 8c0f… (similarity 0.91)").

When the call itself fails, every draft of the batch falls back, and nothing is
raised: a quota answer gives "gemini: quota exhausted" with the service's reset time on
each draft (`quota_reset_at`), so the caller can park Gemini until then; a server error
or timeout after the adapter's retry gives "gemini: unavailable". Template copy is
English whatever `BrandVoice.language` says; only Gemini writes other languages, and
a draft in another language than the one asked for fails the extra check
`in_requested_language`, so a person decides: a template draft for a language other
than English, and a Gemini draft whose own label (the answer's `language`) names
another language, or, for a language of its own script (Greek, Cyrillic, Arabic,
Japanese...), that holds not one letter of it. Such a Gemini draft is kept, not
replaced: the template engine would not write the language asked for either.
Known shortcoming: a Gemini draft in another language of the same script, labelled
as the one asked for, passes; telling them apart would need a language detector.

A request's `kind` shapes the draft (post_kinds.py): a poll gets its options and
opens with a question, a thread is split into parts; the checks then cover all of
its copy, options and parts alike, and `fits_on_x` every part.

Template drafts pass every check unless the brand's settings contradict themselves (a
required hashtag that is also a banned word), or a batch asks for the same product so
many times that every phrasing is taken: the engine then returns its first text with
the failed check recorded (and the post it resembles logged). How the engine varies
its phrasing, and what a "pattern" is: the section "Template engine" below.

Known shortcoming: X links, and weighs 23, only URLs whose top-level domain is in
twitter-text's list; a store URL outside it (".example", ".test", a TLD newer than the
library) is counted at full length and not linked. Removing it needs a twitter-text
release with a current TLD list.

google-genai is never imported here: the template path must not pay its import time on
a cold start, so the Gemini captioner is built and passed in by the caller.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import re
import zlib
from collections import Counter
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cartcast import errors
from cartcast.claims import (
    LOW_STOCK_MAX,
    ProductBrief,
    as_read,
    claim_mismatch,
    discount_shown,
    format_price,
    makes_claims,
    price_figures,
    price_mismatch,
    sale_price,
)
from cartcast.hashtags import is_hashtag_word_character
from cartcast.links import standalone_link_count, without_standalone_link
from cartcast.logs import fields, get_logger
from cartcast.near_duplicates import NEAR_DUPLICATE_THRESHOLD, CopyIndex
from cartcast.post_kinds import (
    DEFAULT_POLL_OPTIONS,
    THREAD_PARTS_MAX,
    THREAD_PARTS_MIN,
    poll_options_problem,
    poll_text,
    split_thread,
)
from cartcast.post_text import (
    X_MAX_WEIGHTED_LENGTH,
    blank_hashtags,
    contains_hashtag,
    end_with_ellipsis,
    fits_on_x,
    linked_urls,
    mentioned_usernames,
    shorten,
    weighted_length,
)
from cartcast.validation import BIDI_CONTROLS

if TYPE_CHECKING:
    from cartcast.gemini import GeminiCaptioner

log = get_logger(__name__)

CHECK_NAMES = (
    "link_once",
    "fits_on_x",
    "required_hashtags",
    "no_banned_words",
    "no_mentions",
    "distinct",
    "price_matches_catalog",
    "claims_match_catalog",
)
# A link-free post is checked for having no link where a linked one has it once.
LINK_FREE_CHECK_NAMES = ("no_link", *CHECK_NAMES[1:])
# The letters of the languages written in a script of their own (Serbian, written
# in two, is left out): Gemini copy asked for in one of them holds at least one.
SCRIPT_LETTERS = {
    "ar": "\u0600-\u06ff\u0750-\u077f\ufb50-\ufdff\ufe70-\ufefc",
    "bg": "\u0400-\u04ff",
    "bn": "\u0980-\u09ff",
    "el": "\u0370-\u03ff\u1f00-\u1fff",
    "fa": "\u0600-\u06ff\u0750-\u077f\ufb50-\ufdff\ufe70-\ufefc",
    "he": "\u0590-\u05ff",
    "hi": "\u0900-\u097f",
    "ja": "\u3040-\u30ff\u4e00-\u9fff",
    "ko": "\u1100-\u11ff\u3130-\u318f\uac00-\ud7af",
    "ru": "\u0400-\u04ff",
    "th": "\u0e00-\u0e7f",
    "uk": "\u0400-\u04ff",
    "zh": "\u3400-\u4dbf\u4e00-\u9fff",
}
# Language codes that name the same language as another, so a label written with
# either passes. The withdrawn codes are those the IANA Language Subtag Registry
# marks "Deprecated" with a "Preferred-Value" (in, iw, ji, jw, mo); "no" is the ISO
# 639 macrolanguage Norwegian, whose individual languages are nb and nn.
SAME_LANGUAGE = {
    "in": "id",
    "iw": "he",
    "ji": "yi",
    "jw": "jv",
    "mo": "ro",
    "nb": "no",
    "nn": "no",
}
HOOK_WEIGHT_MAX = 140
OPTIONAL_HASHTAGS_MAX = 2


@dataclass(frozen=True)
class BrandVoice:
    name: str
    voice: str
    banned_words: tuple[str, ...] = ()
    required_hashtags: tuple[str, ...] = ()
    language: str = "en"
    # The brand's own X username, which its posts may mention; "" when unknown.
    x_username: str = ""


@dataclass(frozen=True)
class DraftRequest:
    """One draft to write: `link` is "" for a link-free post.

    `kind` is one of post_kinds.KINDS; `poll_options` are the request's own, used
    instead of the engine's.
    """

    product: ProductBrief
    link: str
    variant: int = 0
    kind: str = "text"
    poll_options: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Draft:
    """One draft post, written by engine "template" or "gemini".

    `usage` is the token count of the whole Gemini call, shared by every draft of the
    batch: count it once per batch. `quota_reset_at` is set when Gemini refused for
    quota, so the caller can leave Gemini alone until then. A thread's `parts` are
    its posts, `text` those parts joined by a blank line and `weighted_length` the
    longest part's; a poll has its `poll_options`.
    """

    text: str
    engine: str
    model: str | None
    weighted_length: int
    checks: dict[str, bool]
    fallback_reason: str | None
    usage: dict | None
    quota_reset_at: dt.datetime | None = None
    parts: tuple[str, ...] = ()
    poll_options: tuple[str, ...] = ()


@dataclass
class _Batch:
    """What a batch has written so far, held against each new draft.

    `earlier` knows the brand's recent posts and every draft of the batch; `openings`
    counts the template drafts per opening, none of which may write more than a
    quarter of the batch (`opening_cap`, at least 1).
    """

    earlier: CopyIndex
    opening_cap: int
    openings: Counter[int] = dataclasses.field(default_factory=Counter)

    def full_openings(self) -> set[int]:
        return {
            index for index, used in self.openings.items() if used >= self.opening_cap
        }


@dataclass(frozen=True)
class _GeminiOutcome:
    texts: list[str | None] | None
    usage: dict | None
    model: str | None
    failure: str | None = None
    quota_reset_at: dt.datetime | None = None
    poll_options: list[tuple[str, ...] | None] = dataclasses.field(default_factory=list)
    languages: list[str | None] = dataclasses.field(default_factory=list)


def write_drafts(
    requests: list[DraftRequest],
    voice: BrandVoice,
    *,
    tone: str | None = None,
    campaign: str | None = None,
    gemini: GeminiCaptioner | None = None,
    recent_posts: Mapping[str, str] | None = None,
    near_duplicate_threshold: float = NEAR_DUPLICATE_THRESHOLD,
) -> list[Draft]:
    """Write one draft per request, in order; Gemini's copy where it passes the checks.

    `recent_posts` maps the id of each of the brand's recent posts to its text: no
    draft may be a near-duplicate of one of them, nor of another draft of the batch.
    Never raises for a Gemini failure: the template engine covers every draft the
    model could not (see the module docstring for the reasons recorded).
    """
    if not requests:
        return []

    batch = _Batch(CopyIndex(near_duplicate_threshold), max(1, len(requests) // 4))
    for post_id, text in (recent_posts or {}).items():
        batch.earlier.add(f"post {post_id}", text)
    outcome = _ask_gemini(gemini, requests, voice, tone, campaign) if gemini else None

    drafts = []
    for index, request in enumerate(requests):
        draft, reason = None, None
        if outcome is not None:
            draft, reason = _gemini_draft(outcome, index, request, voice, batch)
        if draft is None:
            draft = _template_draft(
                request, voice, batch, fallback_reason=reason, outcome=outcome
            )
        batch.earlier.add(f"draft {index + 1} of this batch", draft.text)
        drafts.append(draft)

    _log_batch(drafts, outcome)
    return drafts


def check_text(
    text: str,
    request: DraftRequest,
    voice: BrandVoice,
    *,
    earlier: CopyIndex | None = None,
) -> dict[str, bool]:
    """Run every check on a finished post; `earlier` holds the texts to differ from."""
    link_check = (
        {"link_once": _has_link_once(text, request.link)}
        if request.link
        else {"no_link": _has_no_link(text)}
    )
    return {
        **link_check,
        "fits_on_x": fits_on_x(text),
        "required_hashtags": all(
            contains_hashtag(text, tag) for tag in _required_hashtags(voice)
        ),
        # The link is the store's own URL, not copy: a banned word in a product's
        # handle is the store's naming, and no rewording could remove it.
        "no_banned_words": _first_banned_word(_without(text, request.link), voice)
        is None,
        "no_mentions": _first_stranger_mentioned(text, voice) is None,
        "distinct": earlier is None or earlier.resemblance(text) is None,
        "price_matches_catalog": price_mismatch(
            text, request.product, link=request.link
        )
        is None,
        "claims_match_catalog": claim_mismatch(text, request.product, link=request.link)
        is None,
    }


# --- Gemini -----------------------------------------------------------------------


def _ask_gemini(
    gemini: GeminiCaptioner,
    requests: list[DraftRequest],
    voice: BrandVoice,
    tone: str | None,
    campaign: str | None,
) -> _GeminiOutcome:
    # One call for the batch. Failures of the call are translated by the adapter into
    # cartcast errors; each becomes a reason every draft of the batch falls back with.
    try:
        result = gemini.write_copy(requests, voice, tone=tone, campaign=campaign)
    # A failure after a billed attempt (bad JSON, then the quota refusing the retry)
    # still spent that attempt's tokens: they are the batch's usage.
    except errors.RateLimited as error:
        return _GeminiOutcome(
            None,
            _batch_usage(error.usage, requests),
            None,
            "gemini: quota exhausted",
            quota_reset_at=error.reset_at,
        )
    except errors.TransientError as error:
        return _GeminiOutcome(
            None, _batch_usage(error.usage, requests), None, "gemini: unavailable"
        )
    except errors.PermanentError as error:
        reason = getattr(error, "reason", None) or "failed"
        return _GeminiOutcome(
            None, getattr(error, "usage", None) or None, None, f"gemini: {reason}"
        )

    return _GeminiOutcome(
        list(result.texts),
        _batch_usage(result.usage, requests),
        result.model_version or gemini.model,
        poll_options=list(result.poll_options),
        languages=list(result.languages),
    )


def _batch_usage(
    usage: dict[str, int], requests: list[DraftRequest]
) -> dict[str, int] | None:
    return dict(usage, batch_size=len(requests)) if usage else None


def _gemini_draft(
    outcome: _GeminiOutcome,
    index: int,
    request: DraftRequest,
    voice: BrandVoice,
    batch: _Batch,
) -> tuple[Draft | None, str | None]:
    """Return the model's draft for one request, or None and why it cannot be used."""
    if outcome.failure is not None or outcome.texts is None:
        return None, outcome.failure or "gemini: failed"
    copy = outcome.texts[index] if index < len(outcome.texts) else None
    if copy is None or not copy.strip():
        return None, "gemini: no caption for this product"

    posts, options, problem = _gemini_shape(outcome, index, copy, request, voice)
    if problem is not None:
        return None, problem
    text, checks = check_copy(posts, options, request, voice, batch.earlier)
    reason = _gemini_failure_reason(text, checks, request, voice, batch.earlier)
    if reason is not None:
        return None, reason
    label = outcome.languages[index] if index < len(outcome.languages) else None
    if not in_language(copy, label, voice.language):
        checks = {**checks, "in_requested_language": False}

    draft = Draft(
        text=text,
        engine="gemini",
        model=outcome.model,
        weighted_length=max(weighted_length(post) for post in posts),
        checks=checks,
        fallback_reason=None,
        usage=outcome.usage,
        parts=tuple(posts) if request.kind == "thread" else (),
        poll_options=options,
    )
    return draft, None


def _gemini_shape(
    outcome: _GeminiOutcome,
    index: int,
    copy: str,
    request: DraftRequest,
    voice: BrandVoice,
) -> tuple[list[str], tuple[str, ...], str | None]:
    """Return the model's posts and poll options, or why they cannot be used."""
    options: tuple[str, ...] = ()
    if request.kind == "poll":
        given = (
            outcome.poll_options[index] if index < len(outcome.poll_options) else None
        )
        options = request.poll_options or tuple(given or ())
        if poll_options_problem(list(options)) is not None:
            return [], (), "gemini: unusable poll options"

    if request.kind != "thread":
        return [_attach_link_and_hashtags(copy, request.link, voice)], options, None
    # The adapter gives a thread's parts joined by a blank line.
    parts = [" ".join(part.split()) for part in copy.split("\n\n") if part.strip()]
    if not THREAD_PARTS_MIN <= len(parts) <= THREAD_PARTS_MAX:
        return [], (), f"gemini: a thread of {len(parts)} parts"
    parts[-1] = _attach_link_and_hashtags(parts[-1], request.link, voice)
    return parts, options, None


def in_language(copy: str, label: str | None, language: str) -> bool:
    """Say whether Gemini's copy is in the language asked for (an ISO 639-1 code).

    The model's own label must name it, and copy in a language of its own script
    must hold a letter of that script (SCRIPT_LETTERS), whatever the label says.
    A label with a region or script as well ("de-DE", "zh_Hans") names the
    language by its first part, as a BCP 47 tag does; a withdrawn code or one of
    Norwegian's two written forms names its language (SAME_LANGUAGE).
    """
    if label is None or _canonical(_primary_language(label)) != _canonical(language):
        return False
    letters = SCRIPT_LETTERS.get(language)
    return letters is None or re.search(f"[{letters}]", copy) is not None


def _primary_language(label: str) -> str:
    """Return a language label's first part, lower case: "pt-BR" gives "pt"."""
    return re.split(r"[-_]", label.strip(), maxsplit=1)[0].lower()


def _canonical(language: str) -> str:
    return SAME_LANGUAGE.get(language, language)


def _attach_link_and_hashtags(copy: str, link: str, voice: BrandVoice) -> str:
    copy = " ".join(copy.split())
    missing = [
        tag for tag in _required_hashtags(voice) if not contains_hashtag(copy, tag)
    ]
    return " ".join([copy, *([link] if link else []), *missing])


def check_copy(
    posts: list[str],
    options: tuple[str, ...],
    request: DraftRequest,
    voice: BrandVoice,
    earlier: CopyIndex,
) -> tuple[str, dict[str, bool]]:
    """Check a draft of one or more posts (a thread) and a poll's options.

    Returns the draft's text (the posts joined by a blank line) and its checks:
    `fits_on_x` holds for every post; the words of the options answer to the
    banned-word and catalog checks like the text.
    """
    text = "\n\n".join(posts)
    checks = check_text(text, request, voice, earlier=earlier)
    checks["fits_on_x"] = all(fits_on_x(post) for post in posts)
    if options:
        said = " / ".join(options)
        checks["no_banned_words"] &= _first_banned_word(said, voice) is None
        checks["price_matches_catalog"] &= price_mismatch(said, request.product) is None
        checks["claims_match_catalog"] &= claim_mismatch(said, request.product) is None
    return text, checks


def _gemini_failure_reason(
    text: str,
    checks: dict[str, bool],
    request: DraftRequest,
    voice: BrandVoice,
    earlier: CopyIndex,
) -> str | None:
    if not checks.get("link_once", True) or not checks.get("no_link", True):
        return "gemini: extra link"
    if _REORDERING.search(text):
        return "gemini: bidirectional control character"
    if not checks["fits_on_x"]:
        if weighted_length(text) > X_MAX_WEIGHTED_LENGTH:
            return "gemini: too long"
        return "gemini: invalid characters"
    banned = _first_banned_word(text, voice)
    if banned is not None:
        return f"gemini: banned word '{banned}'"
    stranger = _first_stranger_mentioned(text, voice)
    if stranger is not None:
        return f"gemini: mentions @{stranger}"
    mismatch = price_mismatch(text, request.product, link=request.link)
    if mismatch is not None:
        return f"gemini: {mismatch}"
    claim = claim_mismatch(text, request.product, link=request.link)
    if claim is not None:
        return f"gemini: {claim}"
    if not checks["distinct"]:
        return f"gemini: {earlier.resemblance(text)}"
    if not checks["required_hashtags"]:
        return "gemini: missing hashtag"
    return None


# --- Template engine --------------------------------------------------------------
#
# A template caption is built from parts, each with several phrasings: an opening
# that names the product (its "pattern"), a benefit (a sentence of the description),
# the price or sale, the stock when it is low, and a closing line. Step k of a
# product's walk takes the k-th phrasing of every part, each part from its own
# starting point set by the SKU, so consecutive steps differ in every part and two
# products rarely start alike; variant v starts v steps in. The first step that
# passes every check is the draft: the walk goes on past near-duplicates of the
# batch and the brand's recent posts, and past openings that have written a quarter
# of the batch already. What a pattern is and why: decision 0006.

# Openings name the product; "{hook}" is the benefit, "{category}" the category.
OPENINGS = (
    "{title}. {hook}",
    "Meet the {title}. {hook}",
    "Take a look at the {title}. {hook}",
    "Spotlight on the {title}. {hook}",
    "Our pick: the {title}. {hook}",
    "Say hello to the {title}. {hook}",
    "Have you seen the {title}? {hook}",
    "A closer look at the {title}. {hook}",
    "From our {category} range: the {title}. {hook}",
    "Here's the {title}. {hook}",
    "Worth knowing: the {title}. {hook}",
)
PRICE_PHRASES = (
    "{price}.",
    "Yours for {price}.",
    "Price: {price}.",
    "Just {price}.",
    "Priced at {price}.",
)
SALE_PHRASES = (
    "Now {sale}, {percent}% off the usual {price}.",
    "{percent}% off: {sale} instead of {price}.",
    "Down to {sale} from {price}.",
    "Was {price}, now {sale}.",
    "On sale at {sale}, {percent}% off its regular {price}.",
)
# Said only of a product with 1 to LOW_STOCK_MAX in stock, and never with the count:
# a draft waits days for its slot, the count falls with every sale, and a post whose
# count is no longer true is held at publish time (claims.py).
STOCK_PHRASES = ("Only a few left.", "Almost gone: only a few left.")
# A description that opens by repeating the title ("The Red Tongs are ...") is made
# to follow it; other verbs or nouns after the title leave the sentence as it is.
LEAD_VERBS = {
    "is": "It's",
    "has": "It has",
    "are": "They're",
    "have": "They have",
    **{verb: f"It {verb}" for verb in ("offers", "features", "provides", "combines")},
    **{verb: f"They {verb}" for verb in ("offer", "feature", "provide", "combine")},
}
# Closing lines claim nothing the catalog could contradict; "In stock now." is
# offered only with stock above LOW_STOCK_MAX, "{category}" only with a category.
CLOSINGS = (
    "",
    "Details at the link.",
    "Worth a look.",
    "Filed under {category}.",
    "More at the link.",
    "In stock now.",
    "Have a look.",
)
# Category words as copy says them: "mens-watches" is "men's watches".
CATEGORY_WORDS = {"mens": "men's", "womens": "women's"}
# Benefit sentences read from a description, and steps walked before giving up.
BENEFITS_MAX = 3
STEPS_MAX = 60


def _template_draft(
    request: DraftRequest,
    voice: BrandVoice,
    batch: _Batch,
    *,
    fallback_reason: str | None,
    outcome: _GeminiOutcome | None,
) -> Draft:
    # The shortest post the engine can write: if even that is over X's limit (the
    # brand's required hashtags and the link take it all), no phrasing can fit, so
    # say so at once instead of trying every one.
    floor = _Parts(OPENINGS[0], "…", "", "", "", "").build(
        request.link, _required_hashtags(voice)
    )
    if not fits_on_x(floor):
        candidates: Iterator[tuple[int, str]] = iter([(0, floor)])
    else:
        candidates = _template_candidates(request, voice, batch.full_openings())

    # Each candidate is shaped into its kind before it is checked, so a poll's
    # question and a thread's split count in the comparison with earlier drafts.
    options = (
        (request.poll_options or DEFAULT_POLL_OPTIONS) if request.kind == "poll" else ()
    )
    best: tuple[int, list[str], str, dict[str, bool]] | None = None
    for opening, candidate in candidates:
        posts = _template_posts(candidate, request)
        text, checks = check_copy(posts, options, request, voice, batch.earlier)
        if best is None or all(checks.values()):
            best = (opening, posts, text, checks)
        if all(checks.values()):
            break
    assert best is not None, "the walk yields at least one candidate"
    opening, posts, text, checks = best
    batch.openings[opening] += 1
    if voice.language != "en":
        # The engine writes English: a person decides whether that will do.
        checks = {**checks, "in_requested_language": False}
    if not checks["distinct"]:
        log.warning(
            "template draft is a near-duplicate",
            extra=fields(
                sku=request.product.sku, of=str(batch.earlier.resemblance(text))
            ),
        )

    return Draft(
        text=text,
        engine="template",
        model=None,
        weighted_length=max(weighted_length(post) for post in posts),
        checks=checks,
        fallback_reason=fallback_reason,
        usage=outcome.usage if outcome and fallback_reason else None,
        quota_reset_at=outcome.quota_reset_at if outcome else None,
        parts=tuple(posts) if request.kind == "thread" else (),
        poll_options=options,
    )


def _template_posts(text: str, request: DraftRequest) -> list[str]:
    """Shape a template caption into its kind: a thread's parts, a poll's question."""
    if request.kind == "thread":
        return split_thread(text, request.link)
    if request.kind == "poll":
        return [poll_text(text)]
    return [text]


def _template_candidates(
    request: DraftRequest, voice: BrandVoice, full_openings: Collection[int]
) -> Iterator[tuple[int, str]]:
    """Yield (opening index, text) for each step of the product's walk, in order."""
    product = request.product
    category = _category_name(product, voice)
    openings = [
        (index, opening.format(title="{title}", hook="{hook}", category=category))
        for index, opening in enumerate(OPENINGS)
        if category or "{category}" not in opening
    ]
    benefits = _benefits(product, voice) or [""]
    prices = _price_phrases(product)
    stocks = _stock_phrases(product)
    closings = _closings(product, category)
    title = _safe_title(product, voice)
    required = _required_hashtags(voice)
    hashtags = _hashtags(product, voice, required)

    def seed(part: str) -> int:
        return zlib.crc32(f"{product.sku}/{part}".encode())

    starts = {part: seed(part) for part in ("opening", "price", "stock", "closing")}
    for step in range(request.variant, request.variant + STEPS_MAX):
        index, opening = openings[(starts["opening"] + step) % len(openings)]
        if index in full_openings:
            continue
        parts = _Parts(
            opening=opening,
            title=title,
            hook=benefits[step % len(benefits)],
            price_phrase=prices[(starts["price"] + step) % len(prices)],
            stock=stocks[(starts["stock"] + step) % len(stocks)],
            closing=closings[(starts["closing"] + step) % len(closings)],
        )
        yield index, _fit(parts, hashtags, required, request.link)


@dataclass(frozen=True)
class _Parts:
    opening: str
    title: str
    hook: str
    price_phrase: str
    stock: str
    closing: str

    def build(self, link: str, hashtags: list[str], **changes: str) -> str:
        parts = dataclasses.replace(self, **changes)
        body = parts.opening.format(title=parts.title, hook=parts.hook).strip()
        # Capitalised, unless the first word has capitals of its own ("iPhone 12").
        if body.split(" ", 1)[0].islower():
            body = body[:1].upper() + body[1:]
        sentences = (body, parts.price_phrase, parts.stock, parts.closing)
        copy = " ".join(s for s in sentences if s)
        # A link-free post ("" for a link) ends on its copy and hashtags alone.
        return " ".join(s for s in (copy, link, *hashtags) if s)


def _fit(parts: _Parts, hashtags: list[str], required: list[str], link: str) -> str:
    # Trim what matters least first: the closing line, the hook (word by word), the
    # optional hashtags, the stock line, then the title. The link, the price and the
    # required hashtags always stay.
    text = parts.build(link, hashtags)
    if weighted_length(text) <= X_MAX_WEIGHTED_LENGTH:
        return text
    parts = dataclasses.replace(parts, closing="")
    text = parts.build(link, hashtags)
    if weighted_length(text) <= X_MAX_WEIGHTED_LENGTH:
        return text

    words = parts.hook.split()
    for keep in range(len(words) - 1, 0, -1):
        text = parts.build(link, hashtags, hook=_ellipsis(words[:keep]))
        if weighted_length(text) <= X_MAX_WEIGHTED_LENGTH:
            return text

    for tags in (hashtags, required):
        text = parts.build(link, tags, hook="")
        if weighted_length(text) <= X_MAX_WEIGHTED_LENGTH:
            return text

    parts = dataclasses.replace(parts, stock="")
    title_words = parts.title.split()
    for keep in range(len(title_words) - 1, 0, -1):
        text = parts.build(link, required, hook="", title=_ellipsis(title_words[:keep]))
        if weighted_length(text) <= X_MAX_WEIGHTED_LENGTH:
            return text

    # A title in a script without spaces (CJK), or one very long word: cut it by
    # characters, keeping as much as fits (found by bisection, since each measure of
    # such text goes through twitter-text), and then, if need be, the price too.
    for price_phrase in (parts.price_phrase, ""):
        text = _longest_fitting_title(parts, link, required, price_phrase)
        if weighted_length(text) <= X_MAX_WEIGHTED_LENGTH:
            return text
    # Only the link and the required hashtags are left, and they do not fit: the
    # draft fails `fits_on_x` and the caller refuses it (the brand's hashtags are
    # too long for any post).
    return text


def _longest_fitting_title(
    parts: _Parts, link: str, required: list[str], price_phrase: str
) -> str:
    """Shorten the title to what the rest of the post leaves, between grapheme
    clusters (never inside an emoji or a letter with its accents)."""

    def build(title: str) -> str:
        return parts.build(
            link, required, hook="", title=title, price_phrase=price_phrase
        )

    # A post weighs the sum of its parts but where a join changes the count (a URL or
    # an emoji meeting the title): then the title gets one less and is cut again.
    budget = X_MAX_WEIGHTED_LENGTH - weighted_length(build(""))
    while True:
        text = build(shorten(parts.title, budget) or "…")
        if budget <= 0 or weighted_length(text) <= X_MAX_WEIGHTED_LENGTH:
            return text
        budget -= 1


def _ellipsis(words: list[str]) -> str:
    return end_with_ellipsis(" ".join(words))


def _safe_title(product: ProductBrief, voice: BrandVoice) -> str:
    title = " ".join(product.title.split())
    if title and _first_banned_word(title, voice) is None:
        return title
    category = " ".join(product.category.replace("-", " ").split()) or "product"
    if _first_banned_word(category, voice) is None:
        return f"{category} pick"
    return "pick"


def _hook(product: ProductBrief, voice: BrandVoice) -> str | None:
    # The first sentence of the description, made to follow the title: a lead that
    # repeats the title ("The Lash Princess is ...", "... offers ...") becomes "It".
    description = " ".join(product.description.split())
    first = re.split(r"(?<=[.!?])\s+", description, maxsplit=1)[0].strip()
    if not first:
        return None
    lead = re.match(
        r"(?:the |this |our )?" + re.escape(product.title) + r" ([a-z]+)\b",
        first,
        re.IGNORECASE,
    )
    verb = lead.group(1).lower() if lead else ""
    if verb in LEAD_VERBS:
        first = LEAD_VERBS[verb] + first[lead.end() :]
    if first[-1] not in ".!?":
        first += "."

    # Outside URLs no character weighs more than 2: a short sentence needs no count.
    # A longer one is cut after its last word that fits, or between two characters
    # when not even its first word does (CJK text has no spaces).
    if len(first) * 2 > HOOK_WEIGHT_MAX:
        first = shorten(first, HOOK_WEIGHT_MAX)
        if not first.removesuffix("…"):
            return None

    # Catalog text that breaks a rule is left out rather than rewritten, and so is
    # any claim (the engine states price and stock itself, from the catalog's
    # fields, which the publish-time check reads again), any mention or hashtag
    # (the post would tag whoever the catalog names), and any talk of a link.
    if _first_banned_word(first, voice) is not None or price_figures(first):
        return None
    if makes_claims(first) or _MENTION_OR_LINK_TALK.search(first) or linked_urls(first):
        return None
    if _REORDERING.search(first):
        return None
    if blank_hashtags(first) != first:  # a hashtag, as far as X links one
        return None
    return first


_MENTION_OR_LINK_TALK = re.compile(r"[@＠]\w|\blink\b", re.IGNORECASE)
# Bidirectional embeddings, overrides and isolates (UAX #9): each turns the text
# after it around as shown, so "\u202eeruc" shows "cure" and no check reads it.
# Catalog titles refuse the same set; copy is kept free of them.
_REORDERING = re.compile("[" + "".join(sorted(BIDI_CONTROLS)) + "]")


def _benefits(product: ProductBrief, voice: BrandVoice) -> list[str]:
    # The first sentences of the description that can follow the title, each made
    # into a hook: `_hook` reads a description's first sentence, so it is given
    # each sentence on its own.
    description = " ".join(product.description.split())
    sentences = re.split(r"(?<=[.!?])\s+", description)[:BENEFITS_MAX]
    benefits: list[str] = []
    for sentence in sentences:
        hook = _hook(dataclasses.replace(product, description=sentence), voice)
        if hook and hook not in benefits:
            benefits.append(hook)
    return benefits


def _category_name(product: ProductBrief, voice: BrandVoice) -> str:
    # "mens-watches" reads "men's watches"; only letters are kept, so the name can
    # go into a phrasing's format string. Empty when there is none, or it is banned.
    words = re.findall(r"[^\W\d_]+", product.category.casefold())
    name = " ".join(CATEGORY_WORDS.get(word, word) for word in words)
    return "" if _first_banned_word(name, voice) else name


def _price_phrases(product: ProductBrief) -> tuple[str, ...]:
    price = format_price(product.price, product.currency)
    sale = sale_price(product)
    percent = discount_shown(product)
    if sale is None or percent is None or sale >= product.price:
        return tuple(phrase.format(price=price) for phrase in PRICE_PHRASES)
    sale_text = format_price(sale, product.currency)
    return tuple(
        phrase.format(price=price, sale=sale_text, percent=percent)
        for phrase in SALE_PHRASES
    )


def _stock_phrases(product: ProductBrief) -> tuple[str, ...]:
    if not 0 < product.stock <= LOW_STOCK_MAX:
        return ("",)
    return STOCK_PHRASES


def _closings(product: ProductBrief, category: str) -> tuple[str, ...]:
    closings = []
    for closing in CLOSINGS:
        if "{category}" in closing and not category:
            continue
        if closing == "In stock now." and product.stock <= LOW_STOCK_MAX:
            continue
        closings.append(closing.format(category=category))
    return tuple(closings)


def _hashtags(
    product: ProductBrief, voice: BrandVoice, required: list[str]
) -> list[str]:
    # Required hashtags always; then up to two from the tags and the category.
    taken = {tag.casefold() for tag in required}
    optional = []
    for source in (*product.tags, product.category):
        tag = _hashtag(source)
        if tag is None or tag.casefold() in taken:
            continue
        if _first_banned_word(tag, voice) is not None:
            continue
        taken.add(tag.casefold())
        optional.append(tag)
    return required + optional[:OPTIONAL_HASHTAGS_MAX]


def _hashtag(source: str) -> str | None:
    # The source's words (runs of letters, combining marks and digits, as X links
    # them: Thai and Devanagari write vowels as marks, which \w leaves out) joined
    # into one capitalised hashtag, which X links only with a letter in it.
    runs = itertools.groupby(source.replace("'", ""), is_hashtag_word_character)
    words = ["".join(run) for is_word, run in runs if is_word]
    tag = "".join(word[:1].upper() + word[1:] for word in words)
    if not any(char.isalpha() for char in tag):
        return None
    return "#" + tag


def _required_hashtags(voice: BrandVoice) -> list[str]:
    tags = []
    for tag in voice.required_hashtags:
        tag = tag.strip()
        if tag:
            tags.append(tag if tag.startswith("#") else "#" + tag)
    return tags


# --- Checks -----------------------------------------------------------------------


def _has_link_once(text: str, link: str) -> bool:
    # Whole, as X would link it: "<link>zzz" would post another utm_content. Any
    # other URL, bare domains included, would become a second link on X.
    return standalone_link_count(text, link) == 1 and not linked_urls(
        without_standalone_link(text, link)
    )


# Words that send the reader to a link a link-free post does not have.
_POINTS_AT_LINK = re.compile(
    r"\b(?:the|this|our)\s+link\b|\blink\s+(?:below|above|in\s+(?:the\s+)?bio)\b",
    re.IGNORECASE,
)


def _has_no_link(text: str) -> bool:
    return not linked_urls(text) and _POINTS_AT_LINK.search(text) is None


def _without(text: str, link: str) -> str:
    """Blank out the post's own link, the store's URL rather than copy."""
    return text.replace(link, " ") if link else text


def _first_banned_word(text: str, voice: BrandVoice) -> str | None:
    # Read as X shows it: "cu\u200bre" is "cure" to a reader (claims.as_read).
    text = as_read(text)
    for word in voice.banned_words:
        word = word.strip()
        if not word:
            continue
        pattern = r"(?<!\w)" + re.escape(word) + r"(?!\w)"
        if re.search(pattern, text, re.IGNORECASE):
            return word
    return None


def _first_stranger_mentioned(text: str, voice: BrandVoice) -> str | None:
    # X usernames are matched without regard to case: @Shop is @shop.
    own = voice.x_username.casefold()
    for name in mentioned_usernames(text):
        if name.casefold() != own:
            return name
    return None


def _log_batch(drafts: list[Draft], outcome: _GeminiOutcome | None) -> None:
    engines = Counter(draft.engine for draft in drafts)
    reasons = Counter(d.fallback_reason for d in drafts if d.fallback_reason)
    message = "drafts written"
    values = fields(
        drafts=len(drafts),
        gemini_drafts=engines["gemini"],
        template_drafts=engines["template"],
        fallback_reasons=dict(reasons),
        failed_checks=sum(1 for d in drafts if not all(d.checks.values())),
    )
    if reasons:
        log.warning(message + " with fallbacks", extra=values)
    else:
        log.info(message, extra=values)
