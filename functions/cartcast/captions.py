"""Post copy for products: a template engine that never fails, Gemini when given one.

`write_drafts` turns a batch of products (each with its tracked link) into one draft
post per request. Every draft, whichever engine wrote it, is held to the same checks,
recorded in `Draft.checks`:

    link_once              the request's link appears exactly once, and no other URL
    fits_on_x              X's weighted length (URLs 23, emoji 2) is at most 280
    required_hashtags      every hashtag the brand requires is there
    no_banned_words        no banned word of the brand, as a whole word, any case
    distinct               the copy (links aside, any case) differs from every other
                           draft of the batch and from `avoid_texts`
    price_matches_catalog  each price-looking figure is the catalog or sale price
    claims_match_catalog   "N% off", "save $N", "only N left", "in stock" agree with
                           the catalog's discount, prices and stock

With a Gemini captioner, the whole batch goes to the model in one call. The link and
any missing required hashtag are appended to the model's copy here, never trusted to
the model, and a draft that fails a check falls back to the template engine with
`fallback_reason` saying why ("gemini: too long", "gemini: banned word 'cure'").

When the call itself fails, every draft of the batch falls back, and nothing is
raised: a quota answer gives "gemini: quota exhausted" with the service's reset time on
each draft (`quota_reset_at`), so the caller can park Gemini until then; a server error
or timeout after the adapter's retry gives "gemini: unavailable". Template copy is
English whatever `BrandVoice.language` says; only Gemini writes other languages.

Template drafts pass every check unless the brand's settings contradict themselves (a
required hashtag that is also a banned word): the engine then returns its best text
with the failed check recorded. Known shortcoming: X links, and weighs 23, only URLs
whose top-level domain is in twitter-text's list; a store URL outside it (".example",
".test", a TLD newer than the library) is counted at full length and not linked.
Removing it needs a twitter-text release with a current TLD list.

google-genai is never imported here: the template path must not pay its import time on
a cold start, so the Gemini captioner is built and passed in by the caller.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cartcast import errors
from cartcast.claims import (
    ProductBrief,
    claim_mismatch,
    discount_shown,
    format_price,
    price_figures,
    price_mismatch,
    sale_price,
)
from cartcast.logs import fields, get_logger
from cartcast.post_text import (
    X_MAX_WEIGHTED_LENGTH,
    end_with_ellipsis,
    fits_on_x,
    linked_urls,
    shorten,
    weighted_length,
)

if TYPE_CHECKING:
    from cartcast.gemini import GeminiCaptioner

log = get_logger(__name__)

CHECK_NAMES = (
    "link_once",
    "fits_on_x",
    "required_hashtags",
    "no_banned_words",
    "distinct",
    "price_matches_catalog",
    "claims_match_catalog",
)
HOOK_WEIGHT_MAX = 140
OPTIONAL_HASHTAGS_MAX = 2


@dataclass(frozen=True)
class BrandVoice:
    name: str
    voice: str
    banned_words: tuple[str, ...] = ()
    required_hashtags: tuple[str, ...] = ()
    language: str = "en"


@dataclass(frozen=True)
class DraftRequest:
    product: ProductBrief
    link: str
    variant: int = 0


@dataclass(frozen=True)
class Draft:
    """One draft post, written by engine "template" or "gemini".

    `usage` is the token count of the whole Gemini call, shared by every draft of the
    batch: count it once per batch. `quota_reset_at` is set when Gemini refused for
    quota, so the caller can leave Gemini alone until then.
    """

    text: str
    engine: str
    model: str | None
    weighted_length: int
    checks: dict[str, bool]
    fallback_reason: str | None
    usage: dict | None
    quota_reset_at: dt.datetime | None = None


@dataclass(frozen=True)
class _GeminiOutcome:
    texts: list[str | None] | None
    usage: dict | None
    model: str | None
    failure: str | None = None
    quota_reset_at: dt.datetime | None = None


def write_drafts(
    requests: list[DraftRequest],
    voice: BrandVoice,
    *,
    tone: str | None = None,
    campaign: str | None = None,
    gemini: GeminiCaptioner | None = None,
    avoid_texts: frozenset[str] = frozenset(),
) -> list[Draft]:
    """Write one draft per request, in order; Gemini's copy where it passes the checks.

    Never raises for a Gemini failure: the template engine covers every draft the
    model could not (see the module docstring for the reasons recorded).
    """
    if not requests:
        return []

    seen = {_copy_key(text) for text in avoid_texts}
    outcome = _ask_gemini(gemini, requests, voice, tone, campaign) if gemini else None

    drafts = []
    for index, request in enumerate(requests):
        draft, reason = None, None
        if outcome is not None:
            draft, reason = _gemini_draft(outcome, index, request, voice, seen)
        if draft is None:
            draft = _template_draft(
                request, voice, seen, fallback_reason=reason, outcome=outcome
            )
        seen.add(_copy_key(draft.text))
        drafts.append(draft)

    _log_batch(drafts, outcome)
    return drafts


def check_text(
    text: str,
    request: DraftRequest,
    voice: BrandVoice,
    *,
    taken: set[str] | frozenset[str] = frozenset(),
) -> dict[str, bool]:
    """Run every check on a finished post; `taken` holds copy keys already used."""
    return {
        "link_once": _has_link_once(text, request.link),
        "fits_on_x": fits_on_x(text),
        "required_hashtags": all(
            _contains_hashtag(text, tag) for tag in _required_hashtags(voice)
        ),
        # The link is the store's own URL, not copy: a banned word in a product's
        # handle is the store's naming, and no rewording could remove it.
        "no_banned_words": _first_banned_word(text.replace(request.link, " "), voice)
        is None,
        "distinct": _copy_key(text) not in taken,
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
    except errors.RateLimited as error:
        return _GeminiOutcome(
            None, None, None, "gemini: quota exhausted", quota_reset_at=error.reset_at
        )
    except errors.TransientError:
        return _GeminiOutcome(None, None, None, "gemini: unavailable")
    except errors.PermanentError as error:
        reason = getattr(error, "reason", None) or "failed"
        return _GeminiOutcome(
            None, getattr(error, "usage", None) or None, None, f"gemini: {reason}"
        )

    usage = dict(result.usage, batch_size=len(requests)) if result.usage else None
    return _GeminiOutcome(
        list(result.texts), usage, result.model_version or gemini.model
    )


def _gemini_draft(
    outcome: _GeminiOutcome,
    index: int,
    request: DraftRequest,
    voice: BrandVoice,
    seen: set[str],
) -> tuple[Draft | None, str | None]:
    """Return the model's draft for one request, or None and why it cannot be used."""
    if outcome.failure is not None or outcome.texts is None:
        return None, outcome.failure or "gemini: failed"
    copy = outcome.texts[index] if index < len(outcome.texts) else None
    if copy is None or not copy.strip():
        return None, "gemini: no caption for this product"

    text = _attach_link_and_hashtags(copy, request.link, voice)
    checks = check_text(text, request, voice, taken=seen)
    reason = _gemini_failure_reason(text, checks, request, voice)
    if reason is not None:
        return None, reason

    draft = Draft(
        text=text,
        engine="gemini",
        model=outcome.model,
        weighted_length=weighted_length(text),
        checks=checks,
        fallback_reason=None,
        usage=outcome.usage,
    )
    return draft, None


def _attach_link_and_hashtags(copy: str, link: str, voice: BrandVoice) -> str:
    copy = " ".join(copy.split())
    missing = [
        tag for tag in _required_hashtags(voice) if not _contains_hashtag(copy, tag)
    ]
    return " ".join([copy, link, *missing])


def _gemini_failure_reason(
    text: str, checks: dict[str, bool], request: DraftRequest, voice: BrandVoice
) -> str | None:
    if not checks["link_once"]:
        return "gemini: extra link"
    if not checks["fits_on_x"]:
        if weighted_length(text) > X_MAX_WEIGHTED_LENGTH:
            return "gemini: too long"
        return "gemini: invalid characters"
    banned = _first_banned_word(text, voice)
    if banned is not None:
        return f"gemini: banned word '{banned}'"
    mismatch = price_mismatch(text, request.product, link=request.link)
    if mismatch is not None:
        return f"gemini: price mismatch ({mismatch})"
    claim = claim_mismatch(text, request.product, link=request.link)
    if claim is not None:
        return f"gemini: {claim}"
    if not checks["distinct"]:
        return "gemini: duplicate copy"
    if not checks["required_hashtags"]:
        return "gemini: missing hashtag"
    return None


# --- Template engine --------------------------------------------------------------

# Openings name the product; "{hook}" is the first sentence of its description.
OPENINGS = (
    "{title}. {hook}",
    "Meet the {title}. {hook}",
    "Take a look at the {title}. {hook}",
    "Spotlight on the {title}. {hook}",
    "Our pick: the {title}. {hook}",
    "Say hello to the {title}. {hook}",
)
PRICE_PHRASES = ("{price}.", "Yours for {price}.", "Price: {price}.", "Just {price}.")
SALE_PHRASES = (
    "Now {sale}, {percent}% off the usual {price}.",
    "{percent}% off: {sale} instead of {price}.",
    "Down to {sale} from {price}.",
)
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
# Last resort when every phrasing is taken: a neutral closing that adds no claim.
CLOSINGS = ("", "Details at the link.", "Worth a look.", "See it at the link.")


def _template_draft(
    request: DraftRequest,
    voice: BrandVoice,
    seen: set[str],
    *,
    fallback_reason: str | None,
    outcome: _GeminiOutcome | None,
) -> Draft:
    # The shortest post the engine can write: if even that is over X's limit (the
    # brand's required hashtags and the link take it all), no phrasing can fit, so
    # say so at once instead of trying every one.
    floor = _Parts(OPENINGS[0], "…", "", "", "").build(
        request.link, _required_hashtags(voice)
    )
    if not fits_on_x(floor):
        candidates: Iterator[str] = iter([floor])
    else:
        candidates = _template_candidates(request, voice)

    best_text, best_checks = "", {}
    for text in candidates:
        checks = check_text(text, request, voice, taken=seen)
        if all(checks.values()):
            best_text, best_checks = text, checks
            break
        if not best_text:
            best_text, best_checks = text, checks

    return Draft(
        text=best_text,
        engine="template",
        model=None,
        weighted_length=weighted_length(best_text),
        checks=best_checks,
        fallback_reason=fallback_reason,
        usage=outcome.usage if outcome and fallback_reason else None,
        quota_reset_at=outcome.quota_reset_at if outcome else None,
    )


def _template_candidates(request: DraftRequest, voice: BrandVoice) -> Iterator[str]:
    # Deterministic: the starting phrasing comes from (sku, variant); on a collision
    # the other openings come first, then other hashtags, no hook, a closing line.
    product = request.product
    seed = zlib.crc32(product.sku.encode("utf-8"))
    title = _safe_title(product, voice)
    hook = _hook(product, voice)
    hooks = [hook, ""] if hook else [""]
    price_phrases = _price_phrases(product)
    required = _required_hashtags(voice)
    hashtag_sets = _hashtag_sets(product, voice, required)

    for closing in CLOSINGS:
        for hook_text in hooks:
            for hashtags in hashtag_sets:
                for step in range(len(OPENINGS)):
                    shift = seed + request.variant + step
                    opening = OPENINGS[shift % len(OPENINGS)]
                    price_phrase = price_phrases[
                        (seed // len(OPENINGS) + request.variant + step)
                        % len(price_phrases)
                    ]
                    parts = _Parts(opening, title, hook_text, price_phrase, closing)
                    yield _fit(parts, hashtags, required, request.link)

    # Every phrasing is taken: number the copy. Never reached on the catalog
    # (measured); it is here so that the engine cannot fail.
    for number in range(2, 1000):
        parts = _Parts(OPENINGS[0], title, "", price_phrases[0], f"({number})")
        yield _fit(parts, required, required, request.link)


@dataclass(frozen=True)
class _Parts:
    opening: str
    title: str
    hook: str
    price_phrase: str
    closing: str

    def build(self, link: str, hashtags: list[str], **changes: str) -> str:
        parts = dataclasses.replace(self, **changes)
        body = parts.opening.format(title=parts.title, hook=parts.hook).strip()
        body = body[:1].upper() + body[1:]
        copy = " ".join(s for s in (body, parts.price_phrase, parts.closing) if s)
        return " ".join([copy, link, *hashtags])


def _fit(parts: _Parts, hashtags: list[str], required: list[str], link: str) -> str:
    # Trim what matters least first: the hook (word by word), the optional hashtags,
    # then the title. The link and the required hashtags always stay.
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

    # Catalog text that breaks a rule is left out rather than rewritten.
    if _first_banned_word(first, voice) is not None or price_figures(first):
        return None
    if linked_urls(first):
        return None
    return first


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


def _hashtag_sets(
    product: ProductBrief, voice: BrandVoice, required: list[str]
) -> list[list[str]]:
    # Required hashtags always; then up to two from the tags and category, with the
    # alternatives (the next two, none) tried when a text collides.
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

    first = optional[:OPTIONAL_HASHTAGS_MAX]
    rest = optional[OPTIONAL_HASHTAGS_MAX : OPTIONAL_HASHTAGS_MAX * 2]
    sets = [required + first]
    if rest:
        sets.append(required + rest)
    if first:
        sets.append(list(required))
    return sets


def _hashtag(source: str) -> str | None:
    # X hashtags are letters, digits and underscores, not all digits.
    words = re.findall(r"[^\W_]+", source.replace("'", ""))
    tag = "".join(word[:1].upper() + word[1:] for word in words)
    if not tag or tag.isdigit():
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

_URL = re.compile(r"https?://\S+", re.IGNORECASE)


def _has_link_once(text: str, link: str) -> bool:
    # Any other URL, bare domains included, would become a second link on X.
    return text.count(link) == 1 and not linked_urls(text.replace(link, " "))


def _contains_hashtag(text: str, tag: str) -> bool:
    pattern = r"(?<![\w#])" + re.escape(tag) + r"(?!\w)"
    return re.search(pattern, text, re.IGNORECASE) is not None


def _first_banned_word(text: str, voice: BrandVoice) -> str | None:
    for word in voice.banned_words:
        word = word.strip()
        if not word:
            continue
        pattern = r"(?<!\w)" + re.escape(word) + r"(?!\w)"
        if re.search(pattern, text, re.IGNORECASE):
            return word
    return None


def _copy_key(text: str) -> str:
    # What "the same post" means: the words, without links, case or spacing.
    return " ".join(_URL.sub(" ", text).casefold().split())


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
