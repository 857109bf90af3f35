"""The template engine writes valid, distinct posts for every product of the catalog."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import re
import subprocess
import sys
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from cartcast.captions import (
    CHECK_NAMES,
    OPENINGS,
    BrandVoice,
    DraftRequest,
    ProductBrief,
    check_text,
    write_drafts,
)
from cartcast.claims import format_price, sale_price
from cartcast.links import product_link
from cartcast.near_duplicates import NEAR_DUPLICATE_THRESHOLD, copy_words, similarity
from cartcast.post_text import fits_on_x

REPO = Path(__file__).parents[1]
CATALOG_PATHS = (
    REPO / "infra" / "data" / "catalog" / "dummyjson_products.json",
    Path("/work/shared/data/catalog/dummyjson_products.json"),
)
STORE_URL = "https://shop.example.com"


@pytest.fixture(scope="module")
def catalog() -> list[dict]:
    for path in CATALOG_PATHS:
        if path.exists():
            return json.loads(path.read_text(encoding="utf-8"))
    pytest.skip("no catalog sample (infra/data/catalog or the shared data folder)")


@pytest.fixture
def voice() -> BrandVoice:
    return BrandVoice(
        name="Cartcast Demo",
        voice="warm, plain-spoken, a little witty",
        banned_words=("cure", "miracle", "guaranteed"),
        required_hashtags=("#CartcastDemo",),
    )


def brief_from_catalog(row: dict) -> ProductBrief:
    discount = row.get("discountPercentage")
    return ProductBrief(
        product_id=str(row["id"]),
        sku=row["sku"],
        title=row["title"],
        description=row["description"],
        price=Decimal(str(row["price"])),
        currency="USD",
        category=row["category"],
        tags=tuple(row.get("tags") or ()),
        brand=row.get("brand"),
        stock=int(row["stock"]),
        discount_percent=Decimal(str(discount)) if discount else None,
    )


def make_product(**changes: object) -> ProductBrief:
    values: dict = {
        "product_id": "p-1",
        "sku": "KIT-MUG-001",
        "title": "Stoneware Mug",
        "description": "A sturdy stoneware mug that keeps coffee hot. Dishwasher safe.",
        "price": Decimal("14.00"),
        "currency": "USD",
        "category": "kitchen-accessories",
        "tags": ("kitchen", "mugs"),
        "brand": None,
        "stock": 12,
        "discount_percent": None,
    }
    values.update(changes)
    return ProductBrief(**values)


def request_for(product: ProductBrief, variant: int = 0) -> DraftRequest:
    post_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{product.sku}/{variant}"))
    link = product_link(
        STORE_URL, product.sku.lower(), post_id=post_id, campaign="spring"
    )
    return DraftRequest(product=product, link=link, variant=variant)


def copy_without_link(text: str, link: str) -> str:
    return text.replace(link, "").casefold()


def copy_without_urls_and_hashtags(text: str) -> str:
    return " ".join(re.sub(r"https?://\S+|#\w+", " ", text).casefold().split())


def opening_of(text: str) -> int:
    """Return the index of the one opening a template text starts with."""
    found = []
    for index, opening in enumerate(OPENINGS):
        head = re.escape(opening.split("{hook}")[0].strip())
        head = head.replace(re.escape("{title}"), ".+?")
        head = head.replace(re.escape("{category}"), "[a-z' ]+?")
        # The bare title is the opening only when no other opening's words lead.
        if re.match(head, text, re.IGNORECASE):
            found.append(index)
    return max(found)


def caption_catalog(catalog: list[dict], voice: BrandVoice) -> list[str]:
    requests = [request_for(brief_from_catalog(row)) for row in catalog]
    return [draft.text for draft in write_drafts(requests, voice)]


# --- the whole catalog -------------------------------------------------------------


def test_every_catalog_product_gets_three_valid_distinct_template_drafts(
    catalog: list[dict], voice: BrandVoice
) -> None:
    requests = [
        request_for(brief_from_catalog(row), variant)
        for row in catalog
        for variant in range(3)
    ]

    drafts = write_drafts(requests, voice)

    assert len(catalog) == 194
    assert len(drafts) == len(requests)
    for request, draft in zip(requests, drafts, strict=True):
        assert draft.engine == "template"
        assert draft.fallback_reason is None
        assert draft.model is None and draft.usage is None
        assert fits_on_x(draft.text), draft.text
        assert draft.weighted_length <= 280
        assert draft.text.count(request.link) == 1
        assert "#CartcastDemo" in draft.text
        assert draft.checks == dict.fromkeys(CHECK_NAMES, True), draft.text
    copies = {
        copy_without_link(d.text, r.link) for r, d in zip(requests, drafts, strict=True)
    }
    assert len(copies) == len(drafts)


def test_the_whole_catalog_in_one_batch_gets_194_captions_no_two_alike(
    catalog: list[dict], voice: BrandVoice
) -> None:
    requests = [request_for(brief_from_catalog(row)) for row in catalog]

    drafts = write_drafts(requests, voice)

    texts = [draft.text for draft in drafts]
    assert len(texts) == len(catalog) == 194
    assert all(draft.checks == dict.fromkeys(CHECK_NAMES, True) for draft in drafts)
    assert all(fits_on_x(text) for text in texts)
    assert len({copy_without_urls_and_hashtags(text) for text in texts}) == 194
    words = [copy_words(text) for text in texts]
    closest = max(similarity(a, b) for a, b in itertools.combinations(words, 2))
    assert closest < NEAR_DUPLICATE_THRESHOLD


def test_no_opening_writes_more_than_a_quarter_of_the_catalog(
    catalog: list[dict], voice: BrandVoice
) -> None:
    texts = caption_catalog(catalog, voice)

    shares = Counter(opening_of(text) for text in texts)

    assert max(shares.values()) <= len(texts) / 4
    assert len(shares) == len(OPENINGS)


def test_two_products_with_one_title_are_told_apart_by_what_is_true_of_each(
    catalog: list[dict], voice: BrandVoice
) -> None:
    titles = Counter(row["title"] for row in catalog)
    twins = [index for index, row in enumerate(catalog) if titles[row["title"]] > 1]

    texts = caption_catalog(catalog, voice)

    # The demo catalog's two "Rolex Cellini Moonphase", a men's and a women's watch.
    assert len(twins) == 2
    first, second = (copy_words(texts[index]) for index in twins)
    assert similarity(first, second) < NEAR_DUPLICATE_THRESHOLD
    for index, own, other in ((twins[0], first, second), (twins[1], second, first)):
        row = catalog[index]
        facts = copy_words(row["description"]) | copy_words(
            row["category"].replace("-", " ")
        )
        assert (own - other) & facts, texts[index]


def test_the_catalog_is_captioned_alike_in_another_process(
    catalog: list[dict], voice: BrandVoice
) -> None:
    code = (
        "import hashlib, json\n"
        "from tests.test_captions import BrandVoice, caption_catalog\n"
        "from tests.helpers import catalog\n"
        f"voice = {voice!r}\n"
        "texts = caption_catalog(catalog(), voice)\n"
        "print(hashlib.sha256(json.dumps(texts).encode()).hexdigest())\n"
    )
    # Another hash seed: no set or dict order may change a caption.
    env = {"PYTHONPATH": f"functions:{REPO}", "PYTHONHASHSEED": "7"}

    elsewhere = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env=env,
    ).stdout.strip()

    here = caption_catalog(catalog, voice)
    assert elsewhere == hashlib.sha256(json.dumps(here).encode()).hexdigest()


def test_the_three_variants_of_a_product_are_phrased_differently_on_their_own(
    catalog: list[dict], voice: BrandVoice
) -> None:
    for row in catalog:
        product = brief_from_catalog(row)
        requests = [request_for(product, variant) for variant in range(3)]

        # One batch per variant: no collision avoidance helps them differ.
        texts = [write_drafts([request], voice)[0].text for request in requests]

        copies = {
            copy_without_link(t, r.link) for t, r in zip(texts, requests, strict=True)
        }
        assert len(copies) == 3, texts


# --- determinism and distinctness -----------------------------------------------


def test_the_same_request_gets_the_same_text_every_time(voice: BrandVoice) -> None:
    request = request_for(make_product(), variant=1)

    first = write_drafts([request], voice)[0].text
    second = write_drafts([request], voice)[0].text

    assert first == second


def test_a_repeated_request_in_one_batch_is_phrased_anew(voice: BrandVoice) -> None:
    request = request_for(make_product())

    drafts = write_drafts([request] * 30, voice)

    words = [copy_words(draft.text) for draft in drafts]
    assert all(
        similarity(a, b) < NEAR_DUPLICATE_THRESHOLD
        for a, b in itertools.combinations(words, 2)
    )
    assert all(all(draft.checks.values()) for draft in drafts)


def test_when_every_phrasing_is_taken_the_draft_is_kept_with_its_check_failed(
    voice: BrandVoice,
) -> None:
    request = request_for(make_product())

    drafts = write_drafts([request] * 80, voice)

    failed = [draft for draft in drafts if not draft.checks["distinct"]]
    assert 0 < len(failed) < 40
    assert all(fits_on_x(draft.text) for draft in failed)
    assert all(
        passed
        for draft in failed
        for name, passed in draft.checks.items()
        if name != "distinct"
    )


def test_a_one_word_edit_of_a_recent_post_is_not_written(voice: BrandVoice) -> None:
    request = request_for(make_product())
    earlier = write_drafts([request], voice)[0].text
    edited = earlier.replace("sturdy", "solid")

    draft = write_drafts([request], voice, recent_posts={"post-1": edited})[0]

    assert edited != earlier
    assert draft.checks["distinct"]
    assert similarity(copy_words(draft.text), copy_words(edited)) < 0.8


def test_a_recent_post_is_not_written_again(voice: BrandVoice) -> None:
    request = request_for(make_product())
    earlier = write_drafts([request], voice)[0].text
    # Posted before with another link and other capitals: still the same copy.
    posted = earlier.replace(request.link, "https://shop.example.com/x").upper()

    draft = write_drafts([request], voice, recent_posts={"post-1": posted})[0]

    assert copy_without_link(draft.text, request.link) != copy_without_link(
        earlier, request.link
    )
    assert draft.checks["distinct"]


def test_an_empty_batch_gives_no_drafts(voice: BrandVoice) -> None:
    assert write_drafts([], voice) == []


# --- brand rules ------------------------------------------------------------------


def test_catalog_text_with_a_banned_word_is_left_out(voice: BrandVoice) -> None:
    product = make_product(
        title="Miracle Mug",
        description="The cure for cold coffee. Keeps it hot.",
        tags=("miracle", "mugs"),
    )

    draft = write_drafts([request_for(product)], voice)[0]

    assert "miracle" not in draft.text.casefold()
    assert "cure" not in draft.text.casefold()
    assert draft.checks == dict.fromkeys(CHECK_NAMES, True)


@pytest.mark.parametrize(
    "hidden", ["cu\u200bre", "cu\u00adre", "c\u2060ure", "cu\ufeffre", "ｃｕｒｅ"]
)
def test_a_banned_word_split_by_an_invisible_character_is_still_banned(
    voice: BrandVoice, hidden: str
) -> None:
    # X shows a zero-width space, soft hyphen or word joiner as nothing, and a
    # full-width word as the word: readers see "cure" in each.
    product = make_product(description=f"The {hidden} for cold coffee.")
    request = request_for(product)
    text = f"A mug, the {hidden} for cold coffee. {request.link} #CartcastDemo"

    draft = write_drafts([request], voice)[0]

    assert not check_text(text, request, voice)["no_banned_words"]
    assert hidden not in draft.text
    assert draft.checks == dict.fromkeys(CHECK_NAMES, True)


def test_a_description_turned_around_by_a_bidi_control_is_left_out(
    voice: BrandVoice,
) -> None:
    # U+202E shows what follows it backwards: "eruc" reads "cure" on X, where no
    # check of the stored text would find it.
    product = make_product(description="Made for colds: \u202eeruc eht\u202c.")

    draft = write_drafts([request_for(product)], voice)[0]

    assert "\u202e" not in draft.text
    assert draft.checks == dict.fromkeys(CHECK_NAMES, True)


def test_banned_words_match_whole_words_in_any_case(voice: BrandVoice) -> None:
    request = request_for(make_product())
    text = f"A secure lid, a miraculous glaze. {request.link} #CartcastDemo"

    assert check_text(text, request, voice)["no_banned_words"]
    assert not check_text(text + " CURE", request, voice)["no_banned_words"]
    assert not check_text(text + " #cure", request, voice)["no_banned_words"]


def test_required_hashtags_are_added_with_or_without_their_hash(
    voice: BrandVoice,
) -> None:
    brand = BrandVoice(name="B", voice="v", required_hashtags=("ShopSmall", "#Mugs4U"))

    text = write_drafts([request_for(make_product())], brand)[0].text

    assert "#ShopSmall" in text and "#Mugs4U" in text


# Where "#Tokyo" ends as X links it, and where X links another hashtag instead:
# its middle dot, an underscore, a joiner or a combining accent runs on. A sign
# before it is no letter, so twitter-text's hashtagBoundary lets "##Tokyo" link
# "#Tokyo" (js/src/regexp/hashtagBoundary.js), and its hashSigns read the
# full-width "＃" as '#' (js/src/regexp/hashSigns.js).
ENDS_OF_A_HASHTAG = ["#Tokyo, then", "#Tokyo and more", "#Tokyo", "(#Tokyo)", "#tokyo"]
ENDS_OF_A_HASHTAG += ["##Tokyo", "＃Tokyo", "Mugs ＃tokyo."]
HASHTAGS_RUNNING_ON = ["#Tokyo・Cafe", "#Tokyo·Cafe", "#Tokyo_2", "#Tokyo\u200dx"]
HASHTAGS_RUNNING_ON += ["#Tokyo\u0301", "e\u0301#Tokyo", "x＃Tokyo", "#Tokyo＃Cafe"]
HASHTAGS_RUNNING_ON += ["#Tokyo://cafe"]


@pytest.mark.parametrize(
    ("written", "carried"),
    [(text, True) for text in ENDS_OF_A_HASHTAG]
    + [(text, False) for text in HASHTAGS_RUNNING_ON],
)
def test_a_required_hashtag_is_there_only_where_x_links_it_whole(
    written: str, carried: bool
) -> None:
    request = request_for(make_product())
    voice = BrandVoice(name="B", voice="v", required_hashtags=("#Tokyo",))

    checks = check_text(f"Mugs for cafes. {request.link} {written}", request, voice)

    assert checks["required_hashtags"] is carried


# review2: twitter-text links no hashtag ended by another sign ("#Tokyo#Cafe":
# endHashtagMatch), none after "&" (hashtagBoundary) and none inside a URL
# (removeOverlappingEntities): each of these carries no #Tokyo on X.
HASHTAGS_X_DOES_NOT_LINK = ["#Tokyo#Cafe", "Tea&#Tokyo", "shop.example.com/#Tokyo"]


@pytest.mark.parametrize("written", HASHTAGS_X_DOES_NOT_LINK)
def test_a_required_hashtag_x_does_not_link_is_missing(written: str) -> None:
    request = request_for(make_product())
    voice = BrandVoice(name="B", voice="v", required_hashtags=("#Tokyo",))

    checks = check_text(f"Mugs for cafes. {request.link} {written}", request, voice)

    assert checks["required_hashtags"] is False


def test_a_hashtag_that_starts_before_a_bare_domain_is_linked_and_the_domain_not() -> (
    None
):
    # removeOverlappingEntities keeps the entity that starts first: "#Tokyo・shop"
    # before the "shop.com" X would otherwise link (twitter-text,
    # js/src/extractHashtagsWithIndices.js).
    request = request_for(make_product())
    voice = BrandVoice(name="B", voice="v", required_hashtags=("#Tokyo・shop",))

    checks = check_text(f"Mugs. {request.link} #Tokyo・shop.com", request, voice)

    assert checks["required_hashtags"] is True


@pytest.mark.parametrize(
    ("category", "hashtag"),
    [("ของขวัญ", "#ของขวัญ"), ("हिन्दी किताबें", "#हिन्दीकिताबें")],
)
def test_a_category_written_with_vowel_marks_becomes_its_hashtag_whole(
    category: str, hashtag: str
) -> None:
    product = make_product(category=category, tags=())

    draft = write_drafts([request_for(product)], BrandVoice(name="B", voice="v"))[0]

    assert draft.text.endswith(" " + hashtag)


def test_a_long_product_is_trimmed_to_fit_keeping_link_and_required_hashtags(
    voice: BrandVoice,
) -> None:
    product = make_product(
        title="Hand-Thrown Speckled Stoneware Mug With Extra Wide Handle " * 3,
        description="Every mug is thrown by hand in our small studio " * 12 + ".",
        tags=("handmade pottery", "kitchen", "gifts for coffee lovers"),
    )
    request = request_for(product)

    draft = write_drafts([request], voice)[0]

    assert fits_on_x(draft.text)
    assert draft.text.count(request.link) == 1
    assert "#CartcastDemo" in draft.text
    assert draft.checks == dict.fromkeys(CHECK_NAMES, True)


def test_emoji_and_cjk_in_the_catalog_are_counted_double(voice: BrandVoice) -> None:
    product = make_product(
        title="陶器のマグカップ 😀" * 4,
        description="毎日のコーヒーに。" * 20,
    )
    request = request_for(product)

    draft = write_drafts([request], voice)[0]

    assert draft.checks == dict.fromkeys(CHECK_NAMES, True)
    assert draft.weighted_length <= 280


# --- prices -----------------------------------------------------------------------


def test_a_discount_shows_the_sale_price_and_the_catalog_price(
    voice: BrandVoice,
) -> None:
    product = make_product(price=Decimal("9.99"), discount_percent=Decimal("10.48"))

    texts = [write_drafts([request_for(product, v)], voice)[0].text for v in range(3)]

    assert sale_price(product) == Decimal("8.94")
    assert all("$8.94" in text and "$9.99" in text for text in texts)
    assert any("10% off" in text for text in texts)


def test_low_stock_is_told_without_a_count_that_sales_would_make_untrue(
    voice: BrandVoice,
) -> None:
    product = make_product(stock=3)

    texts = [write_drafts([request_for(product, v)], voice)[0].text for v in range(3)]

    assert all("only a few left" in text.lower() for text in texts)
    assert not any("3" in text.split("http")[0] for text in texts)


@pytest.mark.parametrize("stock", [0, 11, 500])
def test_stock_outside_1_to_10_is_never_counted_out_loud(
    voice: BrandVoice, stock: int
) -> None:
    product = make_product(stock=stock)

    texts = [draft.text for draft in write_drafts([request_for(product)] * 20, voice)]

    assert not any(" left" in text for text in texts)
    assert any("In stock" in text for text in texts) is (stock > 0)


def test_a_discount_under_one_percent_is_not_announced(voice: BrandVoice) -> None:
    product = make_product(price=Decimal("49.99"), discount_percent=Decimal("0.4"))

    text = write_drafts([request_for(product)], voice)[0].text

    assert "$49.99" in text and "% off" not in text


def test_prices_are_formatted_with_symbol_or_code() -> None:
    assert format_price(Decimal("36999.99"), "USD") == "$36,999.99"
    assert format_price(Decimal("9.5"), "eur") == "€9.50"
    assert format_price(Decimal("12.5"), "CHF") == "12.50 CHF"


@pytest.mark.parametrize(
    ("copy", "matches"),
    [
        ("Now $8.94, was $9.99.", True),
        ("Only 9.99 USD.", True),
        ("Only USD 8.94!", True),
        ("Just $10.", False),
        ("Only 7.99 today.", False),
        ("10% off, 12 colours, 2 sizes.", True),
        ("Was €9.99.", False),  # the catalog's prices are in USD
        ("Was $1,299.99.", False),
        ("Sizes 38,40 and 42.", True),
    ],
)
def test_price_figures_must_be_the_catalog_or_the_sale_price(
    voice: BrandVoice, copy: str, matches: bool
) -> None:
    product = make_product(price=Decimal("9.99"), discount_percent=Decimal("10.48"))
    request = request_for(product)

    checks = check_text(f"{copy} {request.link} #CartcastDemo", request, voice)

    assert checks["price_matches_catalog"] is matches


@pytest.mark.parametrize(
    ("copy", "matches"),
    [
        ("Jetzt 8,94 €, statt 9,99 €.", True),
        ("Nur 7,99 €!", False),
        ("EUR 9,99.", True),
        ("Ahora €8,94.", True),
        ("Était 1.299,99 €.", False),
        ("Now $9.99.", False),
    ],
)
def test_prices_in_euro_are_read_with_a_decimal_comma(
    voice: BrandVoice, copy: str, matches: bool
) -> None:
    product = make_product(
        price=Decimal("9.99"), discount_percent=Decimal("10.48"), currency="EUR"
    )
    request = request_for(product)

    checks = check_text(f"{copy} {request.link} #CartcastDemo", request, voice)

    assert checks["price_matches_catalog"] is matches


def test_figures_in_the_product_title_are_not_prices(voice: BrandVoice) -> None:
    product = make_product(title="Olive Oil 5.00L", price=Decimal("19.99"))
    request = request_for(product)

    checks = check_text(
        f"Olive Oil 5.00L for $19.99. {request.link} #CartcastDemo", request, voice
    )

    assert checks["price_matches_catalog"]


def test_a_mention_of_anyone_but_the_brand_fails_the_mention_check(
    voice: BrandVoice,
) -> None:
    request = request_for(make_product(title="Mug @elonmusk edition"))
    own = dataclasses.replace(voice, x_username="CartcastDemo")

    stranger = check_text(f"Mug @elonmusk edition. {request.link}", request, own)
    brand = check_text(f"Mug by @cartcastdemo. {request.link}", request, own)
    email = check_text(f"Ask mugs@shop.com. {request.link}", request, own)

    assert stranger["no_mentions"] is False
    assert brand["no_mentions"] is True
    assert email["no_mentions"] is True


def test_a_title_that_mentions_someone_gives_a_draft_that_waits_for_a_person(
    voice: BrandVoice,
) -> None:
    product = make_product(title="Mug @elonmusk edition")

    [draft] = write_drafts([request_for(product)], voice)

    assert "@elonmusk" in draft.text
    assert draft.checks == {**dict.fromkeys(CHECK_NAMES, True), "no_mentions": False}


# --- links ------------------------------------------------------------------------


def test_a_second_url_even_without_scheme_fails_the_link_check(
    voice: BrandVoice,
) -> None:
    request = request_for(make_product())

    twice = check_text(f"{request.link} {request.link}", request, voice)
    other = check_text(f"See shop.example.org too. {request.link}", request, voice)
    once = check_text(f"See it. {request.link}", request, voice)

    assert not twice["link_once"]
    assert not other["link_once"]
    assert once["link_once"]


# --- cold start -------------------------------------------------------------------


def test_the_template_path_never_imports_google_genai() -> None:
    code = (
        "import sys, uuid\n"
        "from decimal import Decimal\n"
        "from cartcast.captions import *\n"
        "p = ProductBrief('1', 'S-1', 'Mug', 'A mug.', Decimal('5'), 'USD', 'k', (),"
        " None, 1, None)\n"
        "link = 'https://shop.example.com/products/mug?utm_content=%s' % uuid.uuid4()\n"
        "write_drafts([DraftRequest(p, link)], BrandVoice('b', 'v'))\n"
        "print('google.genai' in sys.modules)\n"
    )

    loaded = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env={"PYTHONPATH": "functions"},
    ).stdout.strip()

    assert loaded == "False"


@pytest.mark.parametrize(
    "sentence",
    [
        "Only 3 left.",
        "Get 10% off.",
        "Back in stock.",
        "Great for summer with @friend.",
        "Great for #summer days.",
        "Great for #·summer days.",
        "Tap the link in bio.",
    ],
)
def test_the_template_engine_never_copies_claims_tags_or_link_talk_from_the_catalog(
    voice: BrandVoice, sentence: str
) -> None:
    product = make_product(description=f"{sentence} A sturdy mug for daily use.")

    texts = [write_drafts([request_for(product, v)], voice)[0].text for v in range(3)]

    assert not any(sentence in text for text in texts)
    assert any("A sturdy mug for daily use." in text for text in texts)


# A tag stored before brands refused it: "#\ufe0f" is the #️ emoji to X, which
# starts no hashtag there, so a draft carrying the text carries no hashtag.
@pytest.mark.parametrize("tag", ["#\ufe0fTokyo", "#\u20e3Tokyo"])
def test_a_required_tag_whose_sign_x_makes_an_emoji_is_never_carried(tag) -> None:
    request = request_for(make_product())
    voice = BrandVoice(name="B", voice="v", required_hashtags=(tag,))

    checks = check_text(f"Mugs for cafes. {request.link} {tag}", request, voice)

    assert checks["required_hashtags"] is False
