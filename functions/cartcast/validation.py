"""Small checks for request bodies, each raising InvalidRequest naming the field.

Every HTTP route validates its whole input before it writes anything, so bad input
answers 400 with the field's name and leaves the database as it was.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
import uuid
import zoneinfo
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from cartcast import clock, web
from cartcast.errors import InvalidRequest

# numeric(12, 2), the type of every amount column (sql/001_schema.sql).
AMOUNT_LIMIT = Decimal("1e10")
CENT = Decimal("0.01")
# Decimal() alone would also take "5_000", "1e3", " 5", "+5" and non-ASCII digits.
PLAIN_DECIMAL = re.compile(r"[0-9]{1,30}(?:\.[0-9]{1,30})?")
SIGNED_ZERO = re.compile(r"-0{1,30}(?:\.0{1,30})?")
CURRENCY_CODE = re.compile(r"[A-Za-z]{3}")
TIME_ZONE_LENGTH_MAX = 64
# Files zoneinfo can load that are not places: the leap-second ("right/") and
# duplicate ("posix/") trees, the host's "localtime", the "posixrules" template and
# "Factory", tzdata's placeholder for "zone not set" (abbreviation "-00").
TIME_ZONE_PREFIXES_REFUSED = ("posix/", "right/")
TIME_ZONE_NAMES_REFUSED = frozenset({"posixrules", "localtime", "Factory"})
# RFC 3339 section 5.6's date-time, what docs/openapi.yaml's `format: date-time`
# means: a full date, "T", hours, minutes and seconds with an optional fraction,
# and "Z" or a "+hh:mm" offset, "T" and "Z" in either case (section 5.6's note).
# ISO 8601's other forms (week and ordinal dates, the basic format, a time without
# seconds, an offset without its colon, a comma before the fraction) are not
# RFC 3339's, and datetime.fromisoformat would take most of them; ranges (month 13,
# hour 25, an offset of 24 hours) are left to fromisoformat, but for the offset's
# minutes, which it carries over ("+01:60" is +02:00 to it, "+01:99" +02:39).
DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
    r"(?:[Zz]|[+-][0-9]{2}:[0-5][0-9])"
)
# The same without its offset: a local time, refused saying the offset is missing.
LOCAL_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
)
# What JSON Schema's `\s` matches (ECMA-262 WhiteSpace and LineTerminator), so a
# `pattern: "\\S"` in docs/openapi.yaml and the code agree on a blank string:
# str.strip() alone would also drop \x1c-\x1f and \x85, which `\S` matches.
BLANK = (
    "\t\n\v\f\r \xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
# BLANK as a regex class body, and SPACE with what Python's `\s` adds (\x1c-\x1f,
# U+0085): ECMA-262 and Python's re read these escapes alike, where `\s` is a
# different set to each. docs/openapi.yaml's URL and X account patterns allow
# BLANK around a value (what text() strips) and no SPACE inside one.
BLANK_CLASS = (
    "\\t\\n\\x0b\\x0c\\r \\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f"
    "\\u205f\\u3000\\ufeff"
)
SPACE_CLASS = BLANK_CLASS + "\\x1c-\\x1f\\x85"
# A character that makes a text not blank: neither whitespace, by JSON Schema's
# `\s` or Python's str.isspace() (every Zs among them), nor a C0 or C1 control
# (Cc), nor an invisible format character (Cf: zero-width space and joiners, bidi
# marks, soft hyphen, U+FEFF, tag characters...), so that a text shows something;
# such marks inside a text stay. `\S` alone means different things to the two
# (ECMA-262 matches \x1e and \x85 and not U+FEFF), and schemathesis reads the
# spec's patterns with Python's re; this class reads alike in both, and
# docs/openapi.yaml uses it as the not-blank pattern. Cf is spelled out as of
# Unicode 14 (Python 3.11). No escape writes an astral character alike for
# ECMA-262 and Python's re, so those (Kaithi number signs, Egyptian hieroglyph
# joiners, shorthand format controls, musical format marks, tag characters) stand
# in the class as the characters themselves, one code point each to Python's re
# and to ECMA-262 read with its `u` flag; one search either way, however long.
NOT_BLANK = re.compile(
    r"[^\s\x00-\x1f\x7f-\x9f\xad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891"
    r"\u08e2\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff"
    r"\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U00013438\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f]"
)
# Characters no store or person writes into an id or a URL, which would be stored
# as they came and printed into reports and logs: C0 and C1 controls, line and
# paragraph separators, zero-width and bidirectional marks (U+061C among them),
# and the other invisible format characters (soft hyphen, Mongolian vowel
# separator, interlinear annotation; astral ones as NOT_BLANK lists them, but for
# the Kaithi signs, which like U+0600 show). The spec states the same class as a
# pattern (the order's ids there, tests/test_openapi.py).
# The bidirectional embedding and override controls (LRE, RLE, PDF, LRO, RLO) and
# the isolates (LRI, RLI, FSI, PDI), Unicode's UAX #9: each reorders the text after
# it, where the marks U+200E, U+200F and U+061C only weigh on their neighbours.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
UNPRINTABLE = re.compile(
    "[\x00-\x1f\x7f-\x9f\xad\u061c\u180e\u2028\u2029\u200b-\u200f"
    "\u202a-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb"
    "\U00013430-\U00013438\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001"
    "\U000e0020-\U000e007f]"
)


def sku(value: str, name: str = "sku") -> str:
    """Refuse a SKU (already stripped, `text`) holding an invisible format character.

    A zero-width space or joiner, a bidi mark or a soft hyphen (Unicode category
    Cf) would make "P" and "P\u200b" two products that look alike everywhere
    they are shown; refused, the store's export is fixed once instead.
    """
    return _refuse_characters(
        value,
        name,
        lambda character: unicodedata.category(character) == "Cf",
        what="an invisible format character",
        fix="write the SKU in visible characters",
    )


def display_name(value: str, name: str) -> str:
    """Refuse a name the console shows (already stripped, `text`) holding a bidi
    override, embedding or isolate control (BIDI_CONTROLS).

    "Test \u202esdooG" shows as "Test Goods": the control turns what follows it
    around wherever the name is printed. Other format characters stay: a name
    needs its joiners (emoji, Persian), and marks such as U+200F only nudge.
    """
    return _refuse_characters(
        value,
        name,
        BIDI_CONTROLS.__contains__,
        what="a bidirectional control character",
        fix="it would turn the name around where it is shown; leave it out",
    )


def without_controls(value: str, name: str) -> str:
    """Refuse a one-line text (already stripped of the blanks around it) holding a
    control character: C0 or C1 (NUL, tab and line feed among them), a line or
    paragraph separator, or a bidi embedding or override (U+202A to U+202E).

    Such a text is printed into pages and other rows (a pause's reason into each
    held post's): a control breaks its line or, like "Test \u202esdooG" showing as
    "Test Goods", turns what follows around. The isolates (U+2066 to U+2069) and
    marks stay: they wrap a right-to-left name inside the text and end with it.
    """
    return _refuse_characters(
        value,
        name,
        lambda character: (
            unicodedata.category(character) == "Cc"
            or character in "\u2028\u2029\u202a\u202b\u202c\u202d\u202e"
        ),
        what="a control character",
        fix="write it on one line, in characters that show",
    )


def _refuse_characters(
    value: str, name: str, refused: Callable[[str], bool], *, what: str, fix: str
) -> str:
    """Return `value`, or raise naming the first character `refused` takes."""
    for character in value:
        if refused(character):
            raise InvalidRequest(
                f"'{name}' holds {what} (U+{ord(character):04X}); {fix}", field=name
            )
    return value


def require_object(body: Any, where: str = "body") -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidRequest(f"{where} must be a JSON object", field=where)
    return body


def only_fields(body: dict[str, Any], allowed: tuple[str, ...], *, what: str) -> None:
    """Refuse a field the route does not know: a typo would otherwise be ignored.

    The name is shown cut to web.FIELD_LENGTH_MAX characters: a body may hold a
    key of megabytes, and the answer should not echo it back, twice.
    """
    for name in body:
        if name not in allowed:
            shown = name[: web.FIELD_LENGTH_MAX]
            raise InvalidRequest(
                f"{what} has no field {shown!r}; it takes "
                f"{', '.join(allowed) if allowed else 'none'}",
                field=shown,
            )


def refuse_nulls(body: dict[str, Any], names: tuple[str, ...]) -> None:
    """Refuse a null in any field of `names`, which docs/openapi.yaml types
    without null: read as the field left out, it would hide the client's mistake."""
    for name in names:
        if name in body and body[name] is None:
            raise InvalidRequest(
                f"'{name}' is null; send a value, or leave the field out", field=name
            )


def text(
    body: dict,
    name: str,
    *,
    required: bool = True,
    max_len: int = 10_000,
    default: str | None = None,
    nullable: bool = False,
) -> str | None:
    """Return the body's text `name`, stripped of the blanks around it.

    A field left out gives `default`; a null gives it too only when `nullable`
    (docs/openapi.yaml types the field [string, "null"]), and is refused otherwise:
    a null where the spec takes a string is no way of leaving the field out.
    """
    value = body.get(name)
    if value is None and name in body and not nullable:
        raise InvalidRequest(
            f"'{name}' is null; send a string"
            + ("" if required else ", or leave the field out"),
            field=name,
        )
    if value is None:
        if required:
            raise InvalidRequest(f"'{name}' is required", field=name)
        return default
    if not isinstance(value, str):
        raise InvalidRequest(f"'{name}' must be a string", field=name)
    # Measured as sent, as docs/openapi.yaml's maxLength is: measured once the
    # blanks around it are stripped, 100 characters and a space passed the code
    # and failed the schema.
    if len(value) > max_len:
        raise InvalidRequest(
            f"'{name}' is longer than {max_len} characters", field=name
        )
    value = value.strip(BLANK)
    if required and is_blank(value):
        raise InvalidRequest(f"'{name}' must not be empty", field=name)
    return value


def is_blank(value: str) -> bool:
    """Whether `value` holds no NOT_BLANK character (only spaces, controls and
    invisible format characters)."""
    return NOT_BLANK.search(value) is None


def has_unprintable(value: str) -> bool:
    """Whether `value` holds a character of UNPRINTABLE."""
    return UNPRINTABLE.search(value) is not None


def integer(body: dict, name: str, *, default: int, minimum: int, maximum: int) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(
            f"'{name}' must be an integer between {minimum} and {maximum}", field=name
        )
    if not minimum <= value <= maximum:
        raise InvalidRequest(
            f"'{name}' must be between {minimum} and {maximum}", field=name
        )
    return value


def boolean(body: dict, name: str, *, default: bool) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise InvalidRequest(f"'{name}' must be true or false", field=name)
    return value


def money(value: Any, name: str) -> Decimal:
    """Parse a non-negative amount that fits numeric(12, 2), rounded to cents half
    up, as stores and tills round (Decimal's own default rounds half to even).

    A JSON number, or a string in plain decimal notation ("19.98"); the limit is
    checked after rounding, so 9999999999.995 is refused rather than overflowing.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InvalidRequest(f"'{name}' must be a number", field=name)
    if isinstance(value, str) and value.startswith("-"):
        if SIGNED_ZERO.fullmatch(value):
            # "-0" and "-0.00" are zero, as stores and spreadsheets write one.
            value = value[1:]
        elif PLAIN_DECIMAL.fullmatch(value[1:]):
            raise InvalidRequest(
                f"'{name}' is negative ({value}); it must be 0 or more", field=name
            )
    if isinstance(value, str) and not PLAIN_DECIMAL.fullmatch(value):
        raise InvalidRequest(
            f"'{name}' must be a plain decimal number such as 19.98", field=name
        )
    try:
        amount = Decimal(str(value))
    except InvalidOperation as error:
        raise InvalidRequest(f"'{name}' must be a number", field=name) from error
    if not amount.is_finite():
        raise InvalidRequest(f"'{name}' must be a finite number", field=name)
    if amount < 0:
        raise InvalidRequest(
            f"'{name}' is negative ({value}); it must be 0 or more", field=name
        )
    # Refuse huge values before quantize, which raises past 28 digits of precision.
    if amount >= AMOUNT_LIMIT or to_cents(amount) >= AMOUNT_LIMIT:
        raise InvalidRequest(
            f"'{name}' must be less than {AMOUNT_LIMIT:f} after rounding to cents",
            field=name,
        )
    # A JSON -0.0 parses to Decimal("-0.0"): stored the same, but shown as "-0.00".
    return to_cents(abs(amount) if amount.is_zero() else amount)


def to_cents(amount: Decimal) -> Decimal:
    """Round to the cent half up (10.005 is 10.01), as stores round: the one rule
    for every amount cartcast stores, shows or holds copy against."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def currency(body: dict, name: str, *, default: str | None = None) -> str:
    """Return an ISO 4217-shaped code: three ASCII letters, upper-cased.

    Taken as sent, as docs/openapi.yaml's pattern `^[A-Za-z]{3}$` takes it: " usd"
    is refused, saying what is wrong, rather than stripped. Only a body leaving
    the key out takes `default`: a null is no currency, and the spec's type is
    string alone.
    """
    if name not in body:
        if default is not None:
            return default
        raise InvalidRequest(f"'{name}' is required", field=name)
    value = body[name]
    if value is None:
        left_out = f", or leave it out for {default}" if default is not None else ""
        raise InvalidRequest(
            f"'{name}' is null; send a code such as USD{left_out}", field=name
        )
    if not isinstance(value, str):
        raise InvalidRequest(f"'{name}' must be a string", field=name)
    example = "a 3-letter ISO 4217 code such as USD"
    if is_blank(value):
        raise InvalidRequest(f"'{name}' is blank; send {example}", field=name)
    if has_blanks_around(value):
        raise InvalidRequest(
            f"'{name}' has spaces around it; send {example} alone", field=name
        )
    # Checked before upper(): "ß".upper() is "SS", so "ßA" would pass afterwards.
    if not CURRENCY_CODE.fullmatch(value):
        raise InvalidRequest(f"'{name}' must be {example}", field=name)
    return value.upper()


def has_blanks_around(value: str) -> bool:
    """Whether `value` starts or ends with whitespace (Python's or BLANK's)."""
    ends = value[:1] + value[-1:]
    return any(character.isspace() or character in BLANK for character in ends)


def instant(value: Any, name: str) -> dt.datetime:
    """Return an RFC 3339 date-time (DATE_TIME) as a UTC datetime.

    Any offset from -23:59 to +23:59 is taken (datetime holds offsets strictly
    inside ±24:00), "Z" too; a time without one is refused rather than guessed, and
    so is one that has no UTC equivalent a datetime can hold
    (9999-12-31T23:00:00-14:00 is in year 10000). A space for the "T", which RFC
    3339 leaves to agreement, is refused: the spec's examples all write "T".
    """
    example = "e.g. 2026-03-01T09:00:00+01:00"
    if not isinstance(value, str):
        raise InvalidRequest(
            f"'{name}' must be an RFC 3339 date-time string, {example}", field=name
        )
    # RFC 3339, which docs/openapi.yaml's `format: date-time` means, allows a
    # lower-case "t" and "z" and a leap second; fromisoformat takes neither. It has
    # no spaces around a time, and fromisoformat refuses them with a vaguer message.
    if has_blanks_around(value):
        raise InvalidRequest(
            f"'{name}' has spaces around it; send the time alone, {example}",
            field=name,
        )
    if LOCAL_DATE_TIME.fullmatch(value):
        raise InvalidRequest(
            f"'{name}' has no offset; add one (Z for UTC), {example}", field=name
        )
    if not DATE_TIME.fullmatch(value):
        raise InvalidRequest(
            f"'{name}' must be an RFC 3339 date-time: date, T, hours, minutes and "
            f"seconds, and Z or an offset, {example}",
            field=name,
        )

    # One rule for every time cartcast reads (clock.parse_instant): a leap second
    # is the next minute's first instant, and second 60 anywhere else is refused.
    text = value[:10] + value[10:].upper()
    try:
        return clock.parse_instant(text)
    except clock.NotALeapSecond as error:
        raise InvalidRequest(
            f"'{name}' has second 60, which is a leap second's alone, and leap "
            f"seconds fall at 23:59:60 UTC on a month's last day, {example}",
            field=name,
        ) from error
    except clock.OutOfRange as error:
        # Only year 1 with an offset east of UTC falls below datetime's range.
        end = "before the first" if text.startswith("0001-") else "past the last"
        raise InvalidRequest(
            f"'{name}' is {end} instant cartcast can store", field=name
        ) from error
    except ValueError as error:
        raise InvalidRequest(
            f"'{name}' is no date and time that exists, {example} (an offset runs "
            "from -23:59 to +23:59)",
            field=name,
        ) from error


def time_zone(value: Any, name: str = "time_zone") -> str:
    """Return an IANA zone name that zoneinfo can load (PostgreSQL is asked apart)."""
    if (
        not isinstance(value, str)
        or not value
        or len(value) > TIME_ZONE_LENGTH_MAX
        or value.startswith(TIME_ZONE_PREFIXES_REFUSED)
        or value in TIME_ZONE_NAMES_REFUSED
    ):
        raise InvalidRequest(
            f"'{name}' must be an IANA time zone name such as Europe/Berlin",
            field=name,
        )
    try:
        zoneinfo.ZoneInfo(value)
    # A directory ("America") or an over-long name surfaces as an OSError.
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as error:
        raise InvalidRequest(f"unknown time zone {value!r}", field=name) from error
    return value


def identifier(value: Any, name: str) -> str:
    """Return a UUID string; anything else cannot name a row, so it is 404-shaped."""
    try:
        return str(uuid.UUID(str(value)))
    except ValueError as error:
        raise InvalidRequest(f"'{name}' must be a UUID", field=name) from error


# Languages captions can be asked for: ISO 639-1 codes of languages Gemini writes
# (Google's list of supported languages). The template engine writes English only.
LANGUAGES = frozenset(
    "ar bg bn cs da de el en es et fa fi fr he hi hr hu id it ja ko lt lv nl no pl "
    "pt ro ru sk sl sr sv sw th tr uk vi zh".split()
)


def language(body: dict, name: str = "language", *, default: str = "en") -> str:
    """Return a supported ISO 639-1 language code from the body.

    Taken as sent, lower case and alone, as docs/openapi.yaml's CaptionLanguage
    enum takes it.
    """
    value = body.get(name, default)
    if not isinstance(value, str) or value not in LANGUAGES:
        raise InvalidRequest(
            f"'{name}' must be a supported ISO 639-1 code, in lower case and without "
            "spaces, such as en, de or ja",
            field=name,
        )
    return value
