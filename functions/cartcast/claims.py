"""What copy may say about a product's price, discount and stock: what the catalog says.

`ProductBrief` is the slice of a catalog row that copy is written from and checked
against. The checks find the claims in a text and hold each against the brief:

    price_mismatch   a figure next to a currency ("$9.99", "9,99 €"), or with two
                     decimals, that is neither the catalog price nor the sale price
    claim_mismatch   "N% off" (N in figures or words, "twenty percent off"), "save
                     $N", "only N left", "last N in stock", "only a few left",
                     "in stock", "sold out" that the discount, prices or stock
                     contradict; the stock claims also as German, French,
                     Spanish and Japanese copy makes them ("nur noch 3 auf
                     Lager", "残りわずか")

Both return a sentence naming the claim and the catalog's value, or None. They run
when a draft is written and again just before it is published, since a catalog can
change in between.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any

from cartcast import compiled_patterns
from cartcast.validation import to_cents

CENT = Decimal("0.01")
CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}
# Codes recognised around a figure when looking for prices in copy: the common ones
# plus whatever the product's own currency is (added per check).
CURRENCY_CODES = (
    "USD EUR GBP CAD AUD NZD CHF JPY CNY INR BRL MXN SEK NOK DKK PLN CZK SGD HKD ZAR"
).split()

# What a currency sign or word next to a figure can mean. "$" is any dollar; "pounds"
# is left out, since copy weighs more things in pounds than it prices.
DOLLARS = frozenset("USD CAD AUD NZD SGD HKD MXN".split())
CURRENCY_MARKS = {
    "$": DOLLARS,
    "＄": DOLLARS,
    "dollar": DOLLARS,
    "dollars": DOLLARS,
    "bucks": DOLLARS,
    "€": frozenset({"EUR"}),
    "euro": frozenset({"EUR"}),
    "euros": frozenset({"EUR"}),
    "£": frozenset({"GBP"}),
    "quid": frozenset({"GBP"}),
    "¥": frozenset({"JPY", "CNY"}),
    "￥": frozenset({"JPY", "CNY"}),
    "₹": frozenset({"INR"}),
    # Signs written after the figure in the languages Gemini writes ("2,000円",
    # "20,000원", "1500 ₽"), and a few more that stand for one currency alone.
    "円": frozenset({"JPY"}),
    "元": frozenset({"CNY"}),
    "₩": frozenset({"KRW"}),
    "원": frozenset({"KRW"}),
    "₽": frozenset({"RUB"}),
    "₺": frozenset({"TRY"}),
    "₪": frozenset({"ILS"}),
    "฿": frozenset({"THB"}),
    "₴": frozenset({"UAH"}),
    "₫": frozenset({"VND"}),
    "₱": frozenset({"PHP"}),
}
_SIGNS = r"[$＄€£¥￥₹円元₩원₽₺₪฿₴₫₱]"
# A figure starts a price only where no letter, digit or decimal mark runs into it,
# but Chinese, Japanese, Korean and Thai set no space between words: "価格は2,000円"
# is a price after the letter は.
_UNSPACED_SCRIPTS = "\u0e00-\u0e7f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af"
# German copy writes a whole amount "15,- €" (or "15.–"): the dash is no cents.
_WHOLE_DASH = "(?:[.,](?:--|[-\u2013\u2014]))?"
_FIGURE_START = rf"(?<![^\W{_UNSPACED_SCRIPTS}])(?<![.,])"
_MONEY_WORDS = r"(?i:dollars?|euros?|bucks|quid)"
# "Only a few left" is true of 1 to LOW_STOCK_MAX in stock.
LOW_STOCK_MAX = 10

_URL = compiled_patterns.compile(r"https?://\S+", re.IGNORECASE)
# An amount as copy writes it: "1,299.99" and "1.299,99" (thousands grouped either
# way), "9.99" and "9,99" (a decimal point or comma). A comma or dot before exactly
# three digits groups thousands; before one or two, it is the decimal mark.
_FIGURE = (
    r"\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?"
    r"|\d{1,3}(?:\.\d{3})+(?:,\d{1,2})?"
    r"|\d+(?:[.,]\d{1,2})?"
)


@dataclass(frozen=True)
class ProductBrief:
    product_id: str
    sku: str
    title: str
    description: str
    price: Decimal
    currency: str
    category: str
    tags: tuple[str, ...]
    brand: str | None
    stock: int
    discount_percent: Decimal | None


def brief_from_catalog(product: dict[str, Any], currency: str) -> ProductBrief:
    """Build the brief of a `products` row, priced in the brand's `currency`."""
    discount = product["discount_percent"]
    return ProductBrief(
        product_id=str(product["id"]),
        sku=product["sku"],
        title=product["title"],
        description=product["description"],
        price=Decimal(product["price"]),
        currency=currency.strip(),
        category=product["category"],
        tags=tuple(product["tags"]),
        brand=product["vendor"],
        stock=product["stock"],
        discount_percent=Decimal(discount) if discount is not None else None,
    )


def sale_price(product: ProductBrief) -> Decimal | None:
    """Return the discounted price rounded to the cent, or None without a discount."""
    if not product.discount_percent or product.discount_percent <= 0:
        return None
    factor = (Decimal(100) - product.discount_percent) / Decimal(100)
    return to_cents(product.price * factor)


def discount_shown(product: ProductBrief) -> int | None:
    """Return the whole percentage copy may announce (rounded down), if at least 1."""
    if not product.discount_percent:
        return None
    percent = int(product.discount_percent.to_integral_value(rounding=ROUND_FLOOR))
    return percent if percent >= 1 else None


def format_price(amount: Decimal, currency: str) -> str:
    """Format an amount as copy shows it: "$1,299.00", "€9.99", "12.50 CHF"."""
    figure = f"{to_cents(amount):,}"
    symbol = CURRENCY_SYMBOLS.get(currency.upper())
    return f"{symbol}{figure}" if symbol else f"{figure} {currency.upper()}"


# Counts copy may spell out ("only three left"); past twenty, people write figures.
NUMBER_WORDS = {
    word: value
    for value, word in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen "
        "fourteen fifteen sixteen seventeen eighteen nineteen twenty".split()
    )
}
_COUNT = r"(\d+|" + "|".join(NUMBER_WORDS) + r")"
# Percentages copy may spell out, one to ninety-nine ("twenty-five percent off");
# a word past ninety-nine says no discount.
TENS_WORDS = {
    word: 10 * tens
    for tens, word in enumerate(
        "twenty thirty forty fifty sixty seventy eighty ninety".split(), start=2
    )
}
_UNIT_WORD = "one|two|three|four|five|six|seven|eight|nine"
_PERCENT_WORDS = (
    r"\b((?:" + "|".join(TENS_WORDS) + r")(?:[\s-](?:" + _UNIT_WORD + r"))?"
    r"|(?:" + "|".join(word for word, value in NUMBER_WORDS.items() if value) + r"))"
)
# A percentage, with a decimal part if it has one ("10.5%") or in words, in the
# languages copy is most often written in.
# The sign is also written full width ("20％", Japanese and Chinese copy), as the
# Arabic percent sign (U+066A) and the small form (U+FE6A).
_PERCENT = (
    r"(?:(?<![\d.,])(\d{1,3}(?:[.,]\d{1,2})?)|" + _PERCENT_WORDS + r")\s?"
    r"(?:[%％٪﹪]|pct\b|percent\b|per\s?cent\b|prozent\b|pour\s?cent\b"
    r"|por\s?ciento\b)"
)
# A percentage is a discount claim when it says so: "20% off", "20 percent
# discount", "a discount of 20%", "save 20%", "reduced by 20%", "-20%", "20 %
# Rabatt", "20 % de réduction"; "100% cotton" is not one.
_PERCENT_OFF = compiled_patterns.compile(
    _PERCENT + r"[\s-]*(?:off|discount(?:ed)?|reduction|markdown|sale|savings?|cheaper"
    r"|rabatt|(?:de\s+)?réduction|(?:de\s+)?remise|(?:de\s+)?descuento"
    r"|(?:di\s+)?sconto|korting)\b"
    # Japanese: "20%オフ", "20％割引", "20%引き"; no word boundary follows, as the
    # sentence runs on ("20%オフで").
    r"|" + _PERCENT + r"\s?(?:オフ|割引|引き)"
    r"|\b(?:discount|reduction|markdown|save|saving|savings|off"
    r"|(?:discounted|reduced|cut)\s+by)\s+(?:of\s+|up\s+to\s+)?"
    + _PERCENT
    + r"|(?<![\w.,])-\s?"
    + _PERCENT,
    re.IGNORECASE,
)
_HALF_PRICE = compiled_patterns.compile(
    # "½" is read as "1⁄2" (NFKC, as_read), with the fraction slash.
    r"(?:\bhalf|(?<![\d/⁄])1[/⁄]2)[\s-]?(?:price|off)\b",
    re.IGNORECASE,
)
# A sum of money: a figure with a currency sign, code or word on either side.
_MONEY = (
    rf"(?:{_SIGNS}|\b(?i:usd|eur|gbp|us\$))\s?({_FIGURE})"
    rf"|{_FIGURE_START}({_FIGURE}){_WHOLE_DASH}\s?"
    rf"(?:{_SIGNS}|(?i:usd|eur|gbp)\b|{_MONEY_WORDS}\b)"
)
# A saving in money: "save $5", "savings of 5 €", "$5 off".
_SAVE = compiled_patterns.compile(
    r"\b(?:save|saving|savings)\s+(?:of\s+)?(?:up\s+to\s+)?(?:" + _MONEY + r")"
    r"|(?:" + _MONEY + r")\s+off\b",
    re.IGNORECASE,
)
# Offers no catalog field can back: cartcast knows prices and one discount.
_OFFER = compiled_patterns.compile(
    r"\b(?:\d|one|two|three)[\s-]+for[\s-]+(?:the\s+price\s+of\s+)?(?:\d|one|two)\b"
    r"|\bbogo\b|\bbuy\s+(?:\d|one|two)\s*,?\s+get\s+(?:\d|one)\b"
    r"|\bfree\s+gift\b|\bprice\s+drop\b"
    # A code at checkout: the catalog holds none.
    r"|\b(?:promo|discount|coupon|voucher)\s+code\b|\buse\s+code\b"
    # Shipping and returns: the catalog knows nothing of either.
    r"|\bfree\s+(?:shipping|delivery|returns?)\b|\bships\s+free\b"
    r"|\bkostenlose[rn]?\s+(?:versand|lieferung)\b|\bversandkostenfrei\b"
    r"|\blivraison\s+(?:gratuite|offerte)\b|\benv(?:í|i)o\s+gratis\b|送料無料",
    re.IGNORECASE,
)
# A word between a count and "left" or "in stock" that makes the count a time:
# "only 3 days left", "the best of the last 5 years in stock".
_NOT_A_TIME = (
    r"(?!(?:seconds?|minutes?|hours?|days?|nights?|weeks?|weekends?|months?"
    r"|years?|decades?|seasons?)\b)"
)
# The same in French and Spanish: "il en reste 3 jours", "quedan 3 días".
_NOT_A_TIME_ELSEWHERE = (
    r"(?!\s+(?:jours?|heures?|semaines?|mois|minutes?|d(?:í|i)as?|horas?|semanas?"
    r"|meses|minutos?)\b)"
)
# "At last" is "finally": "At last 3 colours back in stock" counts nothing.
_ONLY_OR_LAST = r"\b(?:only|just|(?<!\bat\s)last)\s+"
_ONLY_LEFT = compiled_patterns.compile(
    _ONLY_OR_LAST + _COUNT + r"\s+(?:" + _NOT_A_TIME + r"[\w-]+\s+){0,3}?"
    r"(?:left|remaining|remains?)\b(?!-)"
    r"|" + _ONLY_OR_LAST + _COUNT + r"\s+(?:" + _NOT_A_TIME + r"[\w-]+\s+){0,3}?"
    r"in[\s-]stock\b"
    r"|(?<!\bat\s)\blast\s+" + _COUNT + r"\s+(?:units?|pieces?|items?|ones?|pairs?)\b"
    r"|(?<![\w.,/$€£])(?<!than\s)"
    + _COUNT
    + r"\s+(?:"
    + _NOT_A_TIME
    + r"[\w-]+\s+)?(?:left|remaining)\b(?!-)"
    r"|(?<![\w.,/$€£])(?<!than\s)" + _COUNT + r"\s+available\b"
    # "only 2 to go", "just 2 more available", "down to the last 2", "2 in stock".
    r"|" + _ONLY_OR_LAST + _COUNT + r"\s+(?:more\s+)?(?:to\s+go|available)\b"
    r"|\bdown\s+to\s+(?:the\s+|our\s+)?last\s+" + _COUNT + r"\b(?![.,]\d)"
    r"(?!\s+" + _NOT_A_TIME.removeprefix("(?!").removesuffix(")") + r")"
    r"|(?<![\w.,/$€£%])(?<!than\s)" + _COUNT + r"\s+in[\s-]stock\b"
    # The same counts in the other languages Gemini is most often asked for
    # (German, French, Spanish, Japanese): "nur noch 3 auf Lager", "plus que 3 en
    # stock", "solo quedan 3", "残り3点".
    r"|\bnur\s+noch\s+(\d+)\s+(?:st(?:ü|ue)ck|exemplare|auf\s+lager|verf(?:ü|ue)gbar)\b"
    r"|\b(?:plus\s+que|seulement)\s+(\d+)\s+(?:en\s+stock|exemplaires?|pi(?:è|e)ces?"
    r"|disponibles?)\b|\bil\s+(?:n'\s?)?en\s+reste\s+(?:(?:que|plus\s+que)\s+)?(\d+)\b"
    + _NOT_A_TIME_ELSEWHERE
    + r"|\b(?:s(?:ó|o)lo\s+)?quedan\s+(?:s(?:ó|o)lo\s+)?(\d+)\b"
    + _NOT_A_TIME_ELSEWHERE
    + r"|\b(?:ú|u)ltimas\s+(\d+)\b"
    + _NOT_A_TIME_ELSEWHERE
    + r"|残り\s?(\d+)(?!\s?(?:日|時間|週|か月|ヶ月|分))|(\d+)\s?(?:点|個|つ)限り",
    re.IGNORECASE,
)
_FEWER_THAN = compiled_patterns.compile(
    r"\b(?:fewer|less)\s+than\s+" + _COUNT + r"\s+(?:[\w-]+\s+)?(?:left|remaining)\b",
    re.IGNORECASE,
)
_IN_STOCK = compiled_patterns.compile(
    r"\b(?:back\s+)?in[\s-]stock\b|\bavailable\s+now\b|\bships\s+today\b"
    r"|\b(?:auf\s+lager|vorr(?:ä|ae)tig|en\s+stock)\b|在庫あり",
    re.IGNORECASE,
)
_SOLD_OUT = compiled_patterns.compile(
    r"(?<!almost\s)(?<!nearly\s)\b(?:sold[\s-]+out|out\s+of\s+stock)\b"
    r"|(?<!fast\s)\b(?:ausverkauft|(?:é|e)puis(?:é|e)e?s?|agotad[oa]s?)\b|売り切れ|完売",
    re.IGNORECASE,
)
_FEW_LEFT = compiled_patterns.compile(
    r"\b(?:only\s+)?(?:a\s+)?(?:few|couple|handful)\s+(?:\w+\s+)?left\b"
    r"|\blow\s+stock\b|\blimited\s+(?:stock|quantities|supply)\b"
    r"|\b(?:almost|nearly)\s+(?:gone|sold[\s-]+out)\b|\blast\s+one\b|\bselling\s+out\b"
    # German, French, Spanish, Japanese.
    r"|\bnur\s+noch\s+wenige\b|\bstock\s+limit(?:é|e)\b|\bderniers\s+exemplaires\b"
    r"|\b(?:ú|u)ltimas\s+unidades\b|\bpocas\s+unidades\b|残りわずか|在庫わずか|在庫限り",
    re.IGNORECASE,
)


def as_read(text: str) -> str:
    """Return text as a reader sees it, for the checks to scan.

    X shows invisible format characters (Unicode's Cf: zero-width space, soft
    hyphen, word joiner, bidi controls) as nothing, so "cu\u200bre" reads "cure"
    and "50% o\u00adff" reads "50% off"; NFKC then reads compatibility forms as
    their plain letters and figures ("ｃｕｒｅ", "５０"). Only for scanning: the
    post keeps what it was written with.
    """
    visible = "".join(c for c in text if unicodedata.category(c) != "Cf")
    return unicodedata.normalize("NFKC", visible)


def makes_claims(text: str) -> bool:
    """Say whether text claims a discount, saving or stock level, true or not."""
    patterns = (_PERCENT_OFF, _HALF_PRICE, _SAVE, _OFFER, _ONLY_LEFT, _FEWER_THAN)
    read = as_read(text)
    return any(p.search(read) for p in (*patterns, _FEW_LEFT, _IN_STOCK, _SOLD_OUT))


def _count(word: str) -> int:
    return int(word) if word.isdigit() else NUMBER_WORDS[word.lower()]


def _percentage(said: str) -> Decimal:
    """Read a percentage as matched by _PERCENT: "10,5" or "twenty-five"."""
    if said[0].isdigit():
        return amount(said)
    words = re.split(r"[\s-]+", said.lower())
    return Decimal(sum(TENS_WORDS.get(word) or NUMBER_WORDS[word] for word in words))


def claim_mismatch(text: str, product: ProductBrief, *, link: str = "") -> str | None:
    """Name the first discount, saving or stock claim the catalog contradicts.

    The answer says the claim and the catalog's value, e.g. "claims 20% off, the
    catalog says 10%"; None when every claim agrees (or there is none).
    """
    scanned = _without_links(as_read(text), link)
    shown = discount_shown(product)
    exact = product.discount_percent
    claimed = [
        _percentage(next(filter(None, m.groups())))
        for m in _PERCENT_OFF.finditer(scanned)
    ]
    claimed += [Decimal(50)] * len(_HALF_PRICE.findall(scanned))
    for percent in claimed:
        if shown is None or (percent != shown and percent != exact):
            return f"claims {percent}% off, the catalog says {shown or 0}%"
    offer = _OFFER.search(scanned)
    if offer is not None:
        return f"claims an offer ({offer.group(0)!r}) the catalog does not have"
    sale = sale_price(product)
    saving = to_cents(product.price - sale if sale is not None else Decimal(0))
    for match in _SAVE.finditer(scanned):
        saved = amount(next(filter(None, match.groups())))
        if abs(saved - saving) > CENT:
            return f"claims a saving of {saved}, the catalog says {saving}"
    return _stock_mismatch(scanned, product.stock)


def _stock_mismatch(scanned: str, stock: int) -> str | None:
    for match in _ONLY_LEFT.finditer(scanned):
        count = _count(next(filter(None, match.groups())))
        if count != stock:
            return f"claims only {count} left, the catalog has {stock}"
    for match in _FEWER_THAN.finditer(scanned):
        if not 0 < stock < _count(match.group(1)):
            return f"claims fewer than {match.group(1)} left, the catalog has {stock}"
    if _FEW_LEFT.search(scanned) and not 0 < stock <= LOW_STOCK_MAX:
        return f"claims only a few left, the catalog has {stock}"
    if _IN_STOCK.search(scanned) and stock <= 0:
        return "claims it is in stock, the catalog has 0"
    if _SOLD_OUT.search(scanned) and stock > 0:
        return f"claims it is sold out, the catalog has {stock}"
    return None


def price_mismatch(text: str, product: ProductBrief, *, link: str = "") -> str | None:
    """Name the first price that is not the catalog's: another figure or currency.

    E.g. "claims a price of $16.00, the catalog says $20.00, on sale at $18.00", or
    "claims a price in € (€ 20.00), the catalog's prices are in USD".
    """
    allowed = {to_cents(product.price)}
    sale = sale_price(product)
    if sale is not None:
        allowed.add(sale)
    catalog = format_price(product.price, product.currency)
    if sale is not None:
        catalog += f", on sale at {format_price(sale, product.currency)}"

    # Figures inside the link or the product's own title are not prices, and a
    # saving ("save $2") is a claim that claim_mismatch holds against the catalog.
    # A price is passed over only when all of it lies inside the title: blanking
    # the title out instead would cut "99" out of "$99.00" for a product named "99".
    scanned = _SAVE.sub(" ", _without_links(as_read(text), link))
    titles = _title_spans(scanned, as_read(product.title))
    currency = product.currency.upper()
    for figure, mark, span in _priced(scanned, extra_code=currency):
        if any(start <= span[0] and span[1] <= end for start, end in titles):
            continue
        if mark is not None and currency not in _currencies(mark):
            return (
                f"claims a price in {mark} ({mark} {figure}), the catalog's prices "
                f"are in {currency}"
            )
        if figure not in allowed:
            claimed = format_price(figure, product.currency)
            return f"claims a price of {claimed}, the catalog says {catalog}"
    return None


def _title_spans(text: str, title: str) -> list[tuple[int, int]]:
    """Return where the product's title appears in text, any case."""
    if not title.strip():
        return []
    return [m.span() for m in re.finditer(re.escape(title), text, re.IGNORECASE)]


def price_figures(text: str, *, extra_code: str = "") -> list[Decimal]:
    """Return every price-looking figure: next to a currency, or with two decimals."""
    read = as_read(text)
    return [figure for figure, _, _ in _priced(read, extra_code=extra_code.upper())]


def _priced(
    text: str, *, extra_code: str
) -> list[tuple[Decimal, str | None, tuple[int, int]]]:
    """Return each price-looking figure, the currency mark beside it, and its span."""
    found = []
    for match in _price_pattern(extra_code).finditer(text):
        raw = match.group("before") or match.group("after") or match.group("bare")
        mark = match.group("mark_before") or match.group("mark_after")
        try:
            found.append((to_cents(amount(raw)), mark, match.span()))
        except InvalidOperation:
            continue
    return found


def _currencies(mark: str) -> frozenset[str]:
    code = mark.strip()
    return CURRENCY_MARKS.get(code.lower(), frozenset({code.upper()}))


def amount(figure: str) -> Decimal:
    """Read a figure matched by _FIGURE: "1,299.99", "1.299,99", "9,99" -> Decimal."""
    marks = [char for char in figure if char in ".,"]
    if not marks:
        return Decimal(figure)
    last = figure.rfind(marks[-1])
    decimals = len(figure) - last - 1
    if decimals == 3:  # only grouping marks: "1,299", "1.299.000"
        return Decimal(figure.replace(",", "").replace(".", ""))
    whole = figure[:last].replace(",", "").replace(".", "")
    return Decimal(f"{whole}.{figure[last + 1 :]}")


@functools.cache
def _price_pattern(extra_code: str) -> re.Pattern[str]:
    codes = "|".join(sorted({*CURRENCY_CODES, extra_code} - {""}))
    return compiled_patterns.compile(
        rf"(?P<mark_before>{_SIGNS}|\b(?i:{codes}))\s?(?P<before>{_FIGURE})"
        rf"|{_FIGURE_START}(?P<after>{_FIGURE}){_WHOLE_DASH}\s?"
        rf"(?P<mark_after>{_SIGNS}|(?i:{codes})\b|{_MONEY_WORDS}\b)"
        rf"|{_FIGURE_START}(?P<bare>\d+\.\d{{2}})(?![\d%])(?!\s?%)"
    )


def _without_links(text: str, link: str) -> str:
    # Figures inside a link (the product's own, or any other) are not claims.
    if link:
        text = text.replace(link, " ")
    return _URL.sub(" ", text)
