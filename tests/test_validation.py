"""Field checks refuse what PostgreSQL cannot store, and name the field."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cartcast import brands, catalog, clock, post_kinds, validation
from cartcast.errors import InvalidRequest


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("19.98", Decimal("19.98")),
        (19.98, Decimal("19.98")),
        (7, Decimal("7.00")),
        ("0", Decimal("0.00")),
        ("0.004", Decimal("0.00")),
        ("9999999999.99", Decimal("9999999999.99")),
        ("9999999999.994", Decimal("9999999999.99")),
    ],
)
def test_amounts_that_fit_numeric_12_2_are_rounded_to_cents(given, stored) -> None:
    assert validation.money(given, "price") == stored


@pytest.mark.parametrize(
    ("given", "cents"),
    [
        # Half to even would give 0.12, 2.66 and 10.00.
        ("0.125", "0.13"),
        ("2.665", "2.67"),
        ("10.005", "10.01"),
        ("0.135", "0.14"),
        ("7.004", "7.00"),
    ],
)
def test_to_cents_rounds_half_up_the_one_rule_for_amounts(given, cents) -> None:
    # claims.py holds copy against the catalog with it: the sale price, the saving
    # and every figure read from a text are rounded this way.
    assert validation.to_cents(Decimal(given)) == Decimal(cents)


@pytest.mark.parametrize("given", ["-3", "-19.99", -5, -0.5])
def test_a_negative_amount_is_refused_with_a_message_that_says_negative(given) -> None:
    with pytest.raises(InvalidRequest) as raised:
        validation.money(given, "total_price")

    assert raised.value.field == "total_price"
    assert "is negative" in str(raised.value)


@pytest.mark.parametrize(
    "given",
    [
        "9999999999.995",
        "10000000000",
        1e10,
        "1e30",
        "-3",
        "-0.001",
        "5_000",
        "1e3",
        " 5",
        "+5",
        "5.",
        ".5",
        "٥",
        "NaN",
        "Infinity",
        "",
        True,
        None,
        [1],
    ],
)
def test_amounts_that_are_not_plain_storable_decimals_are_refused(given) -> None:
    with pytest.raises(InvalidRequest) as raised:
        validation.money(given, "price")

    assert raised.value.field == "price"


@pytest.mark.parametrize(
    "name",
    [
        "right/UTC",
        "posix/America/New_York",
        "posixrules",
        "localtime",
        "Factory",
        "America",
        "../etc/passwd",
        "/etc/localtime",
        "Z" * 300,
        "",
        7,
    ],
)
def test_time_zones_outside_the_shared_iana_names_are_refused(name) -> None:
    with pytest.raises(InvalidRequest) as raised:
        validation.time_zone(name)

    assert raised.value.field == "time_zone"


def test_an_iana_time_zone_is_accepted() -> None:
    assert validation.time_zone("Europe/Berlin") == "Europe/Berlin"


@pytest.mark.parametrize(
    ("given", "code"), [("usd", "USD"), ("EUR", "EUR"), (None, "USD")]
)
def test_currencies_are_three_ascii_letters(given, code) -> None:
    body = {} if given is None else {"currency": given}

    assert validation.currency(body, "currency", default="USD") == code


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        (" usd", "spaces around it"),
        ("USD\u3000", "spaces around it"),
        ("\ufeffUSD", "spaces around it"),
        ("   ", "blank"),
        ("dollars", "3-letter ISO 4217 code"),
    ],
)
def test_a_refused_currency_is_told_what_is_wrong(given, problem) -> None:
    with pytest.raises(InvalidRequest) as raised:
        validation.currency({"currency": given}, "currency")

    assert raised.value.field == "currency"
    assert problem in str(raised.value)
    assert "longer than" not in str(raised.value)


@pytest.mark.parametrize("given", [" de", "de\n", "\ufeffde", "DE", "De"])
def test_a_language_is_a_lower_case_code_alone(given) -> None:
    with pytest.raises(InvalidRequest) as raised:
        validation.language({"language": given})

    assert raised.value.field == "language"


@pytest.mark.parametrize(
    "given",
    [" 2026-03-02T10:00:00Z", "2026-03-02T10:00:00Z\n", "\u30002026-03-02T10:00Z"],
)
def test_an_instant_with_spaces_around_it_is_refused_saying_so(given) -> None:
    # docs/openapi.yaml's `format: date-time` is RFC 3339's, which has no spaces.
    with pytest.raises(InvalidRequest) as raised:
        validation.instant(given, "at")

    assert raised.value.field == "at"
    assert "spaces around it" in str(raised.value)


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("0001-01-01T00:00:00+23:59", "before the first instant"),
        ("9999-12-31T23:59:59-23:59", "past the last instant"),
    ],
)
def test_an_instant_out_of_range_says_at_which_end(given, says) -> None:
    with pytest.raises(InvalidRequest) as raised:
        validation.instant(given, "at")

    assert raised.value.field == "at"
    assert says in str(raised.value)


@pytest.mark.parametrize("given", ["ÉÜÖ", "ßA", "ﬀa", "US", "USDX", "U$D", 840, None])
def test_other_currencies_are_refused(given) -> None:
    # A null is no currency: only a body leaving the key out takes the default.
    with pytest.raises(InvalidRequest) as raised:
        validation.currency({"currency": given}, "currency", default="USD")

    assert raised.value.field == "currency"


@pytest.mark.parametrize(
    ("title", "sku", "handle"),
    [
        ("Ünïcødé Ωmega", "U-1", "unicøde-ωmega"),
        ("!!!", "SKU 2", "sku-2"),
        ("!!!", "???", "???"),
        ("Crème Brûlée – 2 Pack", "C-3", "creme-brulee-2-pack"),
        ("Tiếng Việt", "V-1", "tieng-viet"),
        ("Καλή χρονιά", "G-1", "καλή-χρονιά"),
        ("हिन्दी किताब", "H-1", "हिन्दी-किताब"),
        ("ﬁne ½ price", "F-1", "fine-1-2-price"),
        ("Plain Mug", "M-1", "plain-mug"),
    ],
)
def test_product_handles_drop_latin_accents_and_keep_other_letters(
    title, sku, handle
) -> None:
    product = catalog.parse_product({"sku": sku, "title": title, "price": 1})

    assert product["handle"] == handle


def test_a_given_handle_is_kept() -> None:
    row = {"sku": "A", "title": "T", "price": 1, "handle": "my-handle"}

    assert catalog.parse_product(row)["handle"] == "my-handle"


@pytest.mark.parametrize("discount", [100.01, "150", -1])
def test_a_discount_outside_0_to_100_percent_is_refused(discount) -> None:
    row = {"sku": "A", "title": "T", "price": 1, "discountPercentage": discount}

    with pytest.raises(InvalidRequest) as raised:
        catalog.parse_product(row)

    assert raised.value.field == "discountPercentage"


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Café Noir", "cafe-noir"),
        ("Ünïcørn Straße Æsir", "unicorn-strasse-aesir"),
        ("Brand!", "brand"),
    ],
)
def test_a_brand_slug_is_derived_from_its_name_in_ascii(name, slug) -> None:
    body = {"name": name, "time_zone": "UTC", "store_base_url": "https://a.example.com"}

    assert brands.parse_brand(body)["slug"] == slug


def test_a_name_with_no_ascii_letters_needs_a_slug() -> None:
    body = {
        "name": "Ωμέγα",
        "time_zone": "UTC",
        "store_base_url": "https://a.example.com",
    }

    with pytest.raises(InvalidRequest) as raised:
        brands.parse_brand(body)

    assert raised.value.field == "slug"
    assert "send a 'slug'" in raised.value.args[0]


@pytest.mark.parametrize("blank", [" ", "\u3000\t", "\ufeff\n"])
def test_a_required_text_blank_by_json_schemas_whitespace_is_refused(blank) -> None:
    with pytest.raises(InvalidRequest) as refused:
        validation.text({"reason": blank}, "reason")

    assert refused.value.field == "reason"


@pytest.mark.parametrize("blank", ["\x85", " \x1e ", "\x00\x1f", "\ufeff\x9f"])
def test_a_required_text_of_only_controls_and_spaces_is_refused(blank) -> None:
    """U+0085 is Unicode whitespace and \x1c-\x1f Python's: a name or reason
    of them shows as nothing, like one of spaces."""
    with pytest.raises(InvalidRequest) as refused:
        validation.text({"reason": blank}, "reason")

    assert refused.value.field == "reason"


@pytest.mark.parametrize(
    ("value", "blank"),
    [
        ("\x85", True),
        ("\u3000\x1e\ufeff", True),
        ("a\x1e", False),
        ("\u200b\u200d", True),
        ("\u200fa\u200b", False),
    ],
)
def test_blank_is_what_the_specs_not_blank_pattern_does_not_match(value, blank) -> None:
    assert validation.is_blank(value) is blank


@pytest.mark.parametrize(
    "blank",
    [
        # A flag's tag sequence with no base: black flag omitted, tags alone.
        "\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f",
        "\U000e0001 \U0001d173",
        "\u200b\U000e0020",
    ],
)
def test_a_text_of_astral_format_characters_is_blank(blank) -> None:
    with pytest.raises(InvalidRequest) as raised:
        validation.text({"name": blank}, "name")

    assert raised.value.field == "name"
    assert not validation.is_blank("\U0001f3f4" + blank)


def test_a_text_over_its_length_is_refused_whatever_it_strips_to() -> None:
    with pytest.raises(InvalidRequest):
        validation.text({"reason": "\x1e" * 301}, "reason", max_len=300)


@pytest.mark.parametrize("name", ["banned_words", "required_hashtags"])
def test_a_brand_word_is_stripped_of_the_blanks_text_strips(name) -> None:
    """A word kept with a byte-order mark or ideographic space around it would
    never match a caption's word."""
    words = brands._word_list({name: ["\ufeffsale ", "cure\u3000", "#ad\u2028"]}, name)

    assert words == ["sale", "cure", "#ad"]


@pytest.mark.parametrize("blank", ["\ufeff", "\x01 ", "\u3000\x85"])
def test_a_blank_brand_word_is_refused_naming_its_index(blank) -> None:
    with pytest.raises(InvalidRequest) as refused:
        brands._word_list({"banned_words": ["ok", blank]}, "banned_words")

    assert refused.value.field == "banned_words[1]"


def test_poll_options_are_stripped_and_compared_by_the_shared_blank_rule() -> None:
    """An option sent with a byte-order mark around it shows as the one without,
    so two such are the same option, and neither is kept with the mark."""
    same = ["Yes", "\ufeffYes", "No"]
    asked = {"kind": "poll", "poll_options": ["\ufeffYes\u3000", "No\x1e"]}

    assert post_kinds.poll_options_problem(same) == "must differ from one another"
    assert post_kinds.parse_kind(asked).poll_options == ("Yes", "No\x1e")


def test_a_feed_product_drops_the_tags_blank_by_the_shared_rule() -> None:
    row = {"sku": "MUG-1", "title": "Mug", "price": "9"}
    row["tags"] = ["\ufeff", "\x01", " mugs\ufeff", "\u3000gifts", "\x1e\x85"]

    assert catalog.parse_product(row)["tags"] == ["mugs", "gifts"]


@pytest.mark.parametrize(
    "value",
    [
        "A\u202eB",
        "a\x85b",
        "a\u200bb",
        "a\x00",
        "A\u061cB",  # ARABIC LETTER MARK, a bidirectional control like U+200F
        "a\xadb",  # invisible: soft hyphen, Mongolian vowel separator, annotations
        "a\u180eb",
        "a\ufff9b\ufffbc",
        # Astral format characters, which is_blank counts as blank: an id of a
        # tag space alone would otherwise be stored, blank to read and print.
        "\U000e0020",
        "a\U0001d173b",
        "\U00013430x",
        "a\U0001bca0",
    ],
)
def test_controls_and_invisible_marks_are_unprintable(value) -> None:
    assert validation.has_unprintable(value)


@pytest.mark.parametrize("value", ["#1001 ö", "caf\u00e9", "\ue000", "日本"])
def test_other_characters_are_printable(value) -> None:
    assert not validation.has_unprintable(value)


@pytest.mark.parametrize(
    ("secret", "taken"),
    [
        ("0123456789abcdef", True),
        ("a secret with spaces", True),
        (" 0123456789abcdef", False),
        ("0123456789abcdéf", False),
        ("0123456789abcdef\x7f", False),
    ],
)
def test_a_webhook_secret_is_printable_ascii_without_surrounding_spaces(
    secret, taken
) -> None:
    assert bool(brands.WEBHOOK_SECRET.fullmatch(secret)) is taken


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        # RFC 3339 (JSON Schema's date-time) allows a lower-case "t" and "z".
        ("2026-03-02t10:00:00z", "2026-03-02T10:00:00+00:00"),
        ("2026-03-02T10:00:00.25z", "2026-03-02T10:00:00.250000+00:00"),
        ("2026-03-02T10:00:00.123456789Z", "2026-03-02T10:00:00.123456+00:00"),
        ("2026-03-02T10:00:00-00:00", "2026-03-02T10:00:00+00:00"),
        ("2026-03-02T10:00:00+05:45", "2026-03-02T04:15:00+00:00"),
        # and a leap second, read as PostgreSQL reads it: the next minute.
        ("2016-12-31T23:59:60Z", "2017-01-01T00:00:00+00:00"),
        ("2016-12-31T18:59:60.5-05:00", "2017-01-01T00:00:00.500000+00:00"),
    ],
)
def test_an_instant_the_spec_calls_a_date_time_is_read(given, expected) -> None:
    assert validation.instant(given, "at").isoformat() == expected


@pytest.mark.parametrize(
    "given",
    [
        "2026-03-02T10:00:61Z",
        # Second 60 is a leap second's, which falls at 23:59:60 UTC on a month's
        # last day alone: at 09:30 it is no time at all, not 09:31.
        "2026-03-02T09:30:60Z",
        "2016-12-31T23:59:60+01:00",
        "2016-12-30T23:59:60Z",
        "2026-03-02T10:00:00x",
        # RFC 3339's time-minute is 00-59 in an offset too; fromisoformat reads
        # "+01:60" as +02:00 and "+01:99" as +02:39.
        "2026-03-02T10:00:00+01:60",
        "2026-03-02T10:00:00-00:99",
    ],
)
def test_an_instant_no_reading_allows_is_still_refused(given) -> None:
    with pytest.raises(InvalidRequest) as refused:
        validation.instant(given, "at")

    assert refused.value.field == "at"


@pytest.mark.parametrize(
    "given",
    [
        "2026-03-02T10Z",
        "2026-03-02T10:00Z",
        "2026-03-02T10:00+01:00",
        "2026-W10-1T10:00:00Z",
        "2026-061T10:00:00Z",
        "20260302T100000Z",
        "2026-03-02T100000Z",
        "2026-03-02T10:00:00+0100",
        "2026-03-02T10:00:00+01",
        "2026-03-02T10:00:00,5Z",
        "2026-03-02T10:00:00.Z",
        "2026-03-02 10:00:00Z",
        "2026-03-02_10:00:00Z",
        "+2026-03-02T10:00:00Z",
        "２０２６-03-02T10:00:00Z",
    ],
)
def test_an_iso_8601_form_rfc_3339_does_not_allow_is_refused(given) -> None:
    # docs/openapi.yaml's `format: date-time` is RFC 3339 section 5.6's date-time:
    # a full date, "T", hours, minutes and seconds, and Z or a +hh:mm offset.
    with pytest.raises(InvalidRequest) as refused:
        validation.instant(given, "at")

    assert refused.value.field == "at"
    assert "RFC 3339" in str(refused.value)


def test_a_leap_second_past_the_last_storable_instant_is_a_400() -> None:
    with pytest.raises(InvalidRequest) as refused:
        validation.instant("9999-12-31T23:59:60Z", "at")

    assert refused.value.field == "at"


def test_a_null_text_is_refused_unless_the_field_takes_null() -> None:
    with pytest.raises(InvalidRequest) as refused:
        validation.text({"voice": None}, "voice", required=False, default="")

    assert refused.value.field == "voice" and "null" in str(refused.value)
    assert validation.text({}, "voice", required=False, default="") == ""
    assert (
        validation.text({"tone": None}, "tone", required=False, nullable=True) is None
    )


def test_an_unknown_field_is_named_cut_short_however_long_its_name() -> None:
    # The body may hold a key of up to 2 MiB; echoed whole, in the message and
    # the field, with repr() spelling each control as 4 characters, the 400
    # would be several times the request. Other refusals cut a name at 200.
    name = "\x01" * 100_000

    with pytest.raises(InvalidRequest) as refused:
        validation.only_fields({name: 1}, ("voice",), what="a new brand")

    assert refused.value.field == name[:200]
    assert len(str(refused.value)) < 1_000


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2016-12-31T23:59:60Z", "2017-01-01T00:00:00+00:00"),
        ("2015-06-30T19:59:60.25-04:00", "2015-07-01T00:00:00.250000+00:00"),
        ("2026-03-02T09:30:60Z", None),
        ("2016-12-30T23:59:60+00:00", None),
    ],
)
def test_the_clock_reads_a_second_60_by_the_rule_requests_are_read_by(
    given, expected
) -> None:
    """Pub/Sub's event times and X's post times go through clock.parse_instant."""
    if expected is None:
        with pytest.raises(ValueError):
            clock.parse_instant(given)
        with pytest.raises(InvalidRequest, match="leap second"):
            validation.instant(given, "at")
    else:
        assert clock.parse_instant(given).isoformat() == expected
        assert validation.instant(given, "at").isoformat() == expected


@pytest.mark.parametrize(
    ("given", "end"),
    [
        ("9999-12-31T23:59:60Z", "past the last"),
        ("9999-12-31T23:00:00-05:00", "past the last"),
        ("0001-01-01T00:00:00+14:00", "before the first"),
    ],
)
def test_an_instant_past_what_a_datetime_holds_is_a_value_error(given, end) -> None:
    # An OverflowError escaped every reader that refuses a ValueError (the X
    # adapter's mentions); a request still hears which end it fell off.
    with pytest.raises(clock.OutOfRange):
        clock.parse_instant(given)
    with pytest.raises(InvalidRequest, match=f"{end} instant cartcast can store"):
        validation.instant(given, "at")
