"""docs/openapi.yaml describes exactly the routes the code serves."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from cartcast import (
    api,
    brands,
    catalog,
    keys,
    orders,
    post_kinds,
    posts,
    validation,
    web,
)
from cartcast.errors import InvalidRequest
from tests.conftest import OPERATOR_KEY, make_app
from tests.helpers import auth, brand_body, post_json

SPEC = Path(__file__).resolve().parents[1] / "docs" / "openapi.yaml"
METHODS = {"get", "post", "put", "patch", "delete"}


def test_the_spec_and_the_api_routes_agree() -> None:
    spec = yaml.safe_load(SPEC.read_text())
    described = {
        (path, method.upper())
        for path, item in spec["paths"].items()
        if "servers" not in item
        for method in item
        if method in METHODS
    }

    served = {
        (re.sub(r"<(\w+)>", r"{\1}", rule.rule), method)
        for rule in api.routes().iter_rules()
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }

    assert described == served


# A body of each kind a route may refuse: one past the size limit (413), one not
# typed JSON (415), and a JSON object with a field no route takes (400).
REFUSED_BODIES = {
    "413": {
        "data": b" " * (web.BODY_BYTES_MAX + 1),
        "content_type": "application/json",
    },
    "415": {
        "data": b"reason=late",
        "content_type": "application/x-www-form-urlencoded",
    },
    "400": {"data": b'{"unlisted": 1}', "content_type": "application/json"},
}


def _served_requests(brand_key: str):
    """Each route and method the api serves, as a path with made-up ids and the
    key its role needs (none for a signed route)."""
    for rule in api.routes().iter_rules():
        spec_path = re.sub(r"<(\w+)>", r"{\1}", rule.rule)
        path = re.sub(r"<brand_slug>", "test-goods", rule.rule)
        path = re.sub(r"<\w+>", str(uuid.uuid4()), path)
        role = api.ROUTE_ROLES[rule.endpoint]
        key = {api.OPERATOR: OPERATOR_KEY, api.SIGNED: None}.get(role, brand_key)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield spec_path, method, path, auth(key) if key else {}


def test_every_status_a_route_answers_a_refused_body_with_is_listed(
    function_env,
) -> None:
    """A bodiless route (approve, resume) refuses a body it would ignore: a 415
    for one not typed JSON, a 400 naming a JSON field. Each route that can answer
    either lists it, so a client generated from the spec knows the status."""
    spec = yaml.safe_load(SPEC.read_text())
    client = make_app("api", "http").test_client()
    created = post_json(client, "/v1/brands", brand_body(), OPERATOR_KEY)
    brand_key = created.get_json()["api_key"]
    answered, unlisted = set(), []

    for spec_path, method, path, headers in _served_requests(brand_key):
        listed = spec["paths"][spec_path][method.lower()]["responses"]
        for status, body in REFUSED_BODIES.items():
            answer = client.open(path, method=method, headers=headers, **body)
            answered.add(str(answer.status_code))
            if str(answer.status_code) == status and status not in listed:
                unlisted.append((method, spec_path, status))

    # The keys opened the routes: the refusals were met, not a 401 at the door.
    assert set(REFUSED_BODIES) <= answered
    assert unlisted == [], "\n".join(map(str, unlisted))


def test_every_route_that_refuses_a_query_parameter_lists_the_400(
    function_env,
) -> None:
    """A parameter the operation does not take (`GET /v1/brand?x=1`), or
    Authorization sent twice, is a 400 naming it on every route a key opens,
    those that take no body and no parameter too; each lists the 400."""
    spec = yaml.safe_load(SPEC.read_text())
    client = make_app("api", "http").test_client()
    created = post_json(client, "/v1/brands", brand_body(), OPERATOR_KEY)
    brand_key = created.get_json()["api_key"]
    unlisted = []

    for spec_path, method, path, headers in _served_requests(brand_key):
        listed = spec["paths"][spec_path][method.lower()]["responses"]
        answer = client.open(f"{path}?unlisted=1", method=method, headers=headers)
        if answer.status_code == 400 and "400" not in listed:
            unlisted.append((method, spec_path))

    assert unlisted == [], "\n".join(map(str, unlisted))


def test_every_operation_that_reads_a_body_lists_the_408() -> None:
    """Whatever reads a body (one it takes, or one it reads to refuse: a 413 or
    415 listed) may wait for it past CARTCAST_BODY_WAIT_S, a 408 (decision 0109)."""
    spec = yaml.safe_load(SPEC.read_text())

    unlisted = [
        (method, path)
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        if isinstance(operation, dict)
        and {"413", "415"} & set(operation.get("responses", {}))
        and "408" not in operation["responses"]
    ]

    assert unlisted == [], "\n".join(map(str, unlisted))


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice in one mapping.

    YAML 1.2 requires unique keys; PyYAML keeps the last silently, while stricter
    readers (Swagger Editor, openapi-generator) refuse the file.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"{key!r} given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def test_the_spec_gives_no_key_twice_in_one_object() -> None:
    yaml.load(SPEC.read_text(), Loader=_UniqueKeyLoader)


def test_the_caption_function_is_described_on_its_own_server() -> None:
    spec = yaml.safe_load(SPEC.read_text())

    caption = spec["paths"]["/"]

    assert caption["servers"][0]["url"] == "{generate_caption_url}"
    assert set(caption) - {"servers"} == {"post"}


def test_every_path_parameter_is_declared() -> None:
    spec = yaml.safe_load(SPEC.read_text())
    parameters = spec["components"]["parameters"]

    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            declared = set()
            for parameter in operation.get("parameters", []):
                parameter = (
                    parameters[parameter["$ref"].split("/")[-1]]
                    if "$ref" in parameter
                    else parameter
                )
                declared.add(parameter["name"])
            assert set(re.findall(r"{(\w+)}", path)) <= declared, (path, method)


def test_every_route_a_key_opens_documents_the_wrong_key_and_no_key() -> None:
    """A key of the wrong kind (the operator key on a brand's route, a viewer's key
    where an admin's is needed) is a 403, a missing or unknown key a 401: each
    operation that takes a key says both, so a client generated from the spec, or
    schemathesis in `make faults`, meets no undocumented status."""
    spec = yaml.safe_load(SPEC.read_text())
    # A signature, not a key; and X's OAuth callback, whose state is the credential.
    signed = {"/v1/webhooks/orders/{brand_slug}", "/v1/x/callback"}

    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method not in METHODS or path in signed:
                continue
            responses = set(operation["responses"])
            assert {"401", "403"} <= responses, (path, method)


# Objects of a request that take fields cartcast does not read, and why.
OPEN_REQUEST_OBJECTS = {
    # A catalog feed's product (DummyJSON's rating, images, reviews, ...).
    "#/components/schemas/ProductInput",
    # A Shopify order webhook's payload, hundreds of fields.
    "#/components/schemas/OrderInput",
    # DummyJSON's answer pasted whole: its total, skip and limit beside products.
    "POST /v1/products/oneOf/1",
    # An order's customer and line items, read in part, inside it.
    "#/components/schemas/OrderInput/properties/customer",
    "#/components/schemas/OrderInput/properties/line_items/items",
    # A Shopify refund webhook's payload and its transactions, read in part.
    "#/components/schemas/RefundInput",
    "#/components/schemas/RefundInput/properties/transactions/items",
    # A transaction's money in two currencies; the shop's is read.
    "#/components/schemas/RefundInput/properties/transactions/items/properties/"
    "amount_set",
    "#/components/schemas/RefundInput/properties/transactions/items/properties/"
    "amount_set/properties/shop_money",
}


def _resolve(spec: dict, ref: str) -> dict:
    node: object = spec
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]  # type: ignore[index]
    return node  # type: ignore[return-value]


def _request_objects(spec: dict, schema: dict, where: str, seen: set[str]):
    """Every object schema a request body can hold, with where it is written."""
    if "$ref" in schema:
        ref = schema["$ref"]
        if ref in seen:
            return
        seen.add(ref)
        yield from _request_objects(spec, _resolve(spec, ref), ref, seen)
        return
    types = schema.get("type")
    if types == "object" or (isinstance(types, list) and "object" in types):
        yield where, schema
    for name, child in schema.get("properties", {}).items():
        yield from _request_objects(spec, child, f"{where}/properties/{name}", seen)
    if isinstance(schema.get("items"), dict):
        yield from _request_objects(spec, schema["items"], f"{where}/items", seen)
    for keyword in ("oneOf", "anyOf", "allOf"):
        for index, child in enumerate(schema.get(keyword, [])):
            yield from _request_objects(spec, child, f"{where}/{keyword}/{index}", seen)


def _request_bodies(spec: dict):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            body = operation.get("requestBody", {}).get("content", {})
            for content in body.values():
                if "schema" in content:
                    yield f"{method.upper()} {path}", content["schema"]


def test_every_request_object_refuses_fields_it_does_not_list() -> None:
    """The API answers 400 naming a field it does not take (validation.only_fields):
    a request schema that forgets `additionalProperties: false` lets schemathesis,
    and a client generated from the spec, send valid-looking bodies the API refuses.
    Objects that do take other fields say `additionalProperties: true` and are
    listed above with their reason."""
    spec = yaml.safe_load(SPEC.read_text())
    wrong = []

    for operation, schema in _request_bodies(spec):
        for where, found in _request_objects(spec, schema, operation, set()):
            refuses_others = where not in OPEN_REQUEST_OBJECTS
            if found.get("additionalProperties") is not (not refuses_others):
                wrong.append(where)

    assert wrong == []


def test_the_open_request_objects_are_still_in_the_spec() -> None:
    spec = yaml.safe_load(SPEC.read_text())

    open_ones = {
        where
        for operation, schema in _request_bodies(spec)
        for where, found in _request_objects(spec, schema, operation, set())
        if found.get("additionalProperties") is True
    }

    assert open_ones == OPEN_REQUEST_OBJECTS


def test_the_spec_s_caption_languages_are_the_codes_the_api_takes() -> None:
    # YAML 1.1, which PyYAML and so schemathesis read, takes a bare `no` (Norwegian)
    # for false: the enum said false was a language and "no" was none.
    spec = yaml.safe_load(SPEC.read_text())

    enum = spec["components"]["schemas"]["CaptionLanguage"]["enum"]

    assert all(isinstance(code, str) for code in enum), enum
    assert sorted(enum) == sorted(validation.LANGUAGES)


def test_the_spec_and_the_code_call_the_same_characters_unprintable() -> None:
    """An order's ids and referring site refuse validation.UNPRINTABLE; the spec
    says so with a pattern, which must match exactly the other characters."""
    spec = yaml.safe_load(SPEC.read_text())
    order = spec["components"]["schemas"]["OrderInput"]["properties"]
    patterns = {
        order["id"]["pattern"],
        order["referring_site"]["pattern"],
        order["customer"]["properties"]["id"]["pattern"],
    }

    assert len(patterns) == 1
    printable = re.compile(patterns.pop())
    for code_point in range(0x110000):
        char = chr(code_point)
        if 0xD800 <= code_point <= 0xDFFF:
            continue  # lone surrogates: refused by the JSON reader first
        assert bool(printable.fullmatch(char)) is not validation.has_unprintable(
            char
        ), hex(code_point)


def _patterns(node, found):
    if isinstance(node, dict):
        if isinstance(node.get("pattern"), str):
            found.append(node["pattern"])
        for value in node.values():
            _patterns(value, found)
    elif isinstance(node, list):
        for value in node:
            _patterns(value, found)
    return found


def test_every_not_blank_pattern_is_the_one_the_code_checks() -> None:
    """`\\S` means one thing to ECMA-262 (no \\x1e, \\x85; yes U+FEFF) and another
    to Python's re, which schemathesis uses: the spec's not-blank pattern spells
    its class so both read it alike, and the code calls blank what it refuses."""
    patterns = _patterns(yaml.safe_load(SPEC.read_text()), [])

    assert "\\S" not in patterns
    assert patterns.count(validation.NOT_BLANK.pattern) >= 8
    not_blank = re.compile(validation.NOT_BLANK.pattern)
    for code_point in range(0x110000):
        if 0xD800 <= code_point <= 0xDFFF:
            continue
        char = chr(code_point)
        assert bool(not_blank.search(char)) is not validation.is_blank(char)


def test_a_text_of_only_invisible_format_characters_is_blank() -> None:
    """Unicode's Cf (zero-width, joiners, bidi marks, soft hyphen, and outside the
    BMP the tag characters and musical format marks) shows nothing: a text of
    those, spaces and controls alone is blank, to the code and the spec's pattern
    alike; one beside a visible character is kept."""
    not_blank = re.compile(validation.NOT_BLANK.pattern)
    for code_point in range(0x110000):
        char = chr(code_point)
        if unicodedata.category(char) in ("Cf", "Zs", "Cc"):
            assert validation.is_blank(char), hex(code_point)
            assert not not_blank.search(char), hex(code_point)
            assert not validation.is_blank(char + "a"), hex(code_point)


def test_texts_the_code_refuses_when_blank_say_so_with_the_pattern() -> None:
    """A feed's SKU and title and a brand's banned words are refused when blank
    (validation.is_blank); a schema of minLength 1 alone would call " " valid."""
    schemas = yaml.safe_load(SPEC.read_text())["components"]["schemas"]
    product, brand = schemas["ProductInput"], schemas["BrandInput"]
    texts = {
        "products[].sku": product["properties"]["sku"],
        "products[].title": product["properties"]["title"],
        "banned_words[]": brand["properties"]["banned_words"]["items"],
    }

    for name, schema in texts.items():
        assert schema.get("pattern") == validation.NOT_BLANK.pattern, name


def test_the_disclosure_tag_and_each_required_hashtag_are_one_hashtag_alike() -> None:
    """The hashtag rule is by Unicode category (brands.is_one_hashtag), which a
    pattern cannot state: both fields say only '#' in the schema, and the
    operation that takes them lists the rest as a refusal beyond it."""
    spec = yaml.safe_load(SPEC.read_text())
    brand = spec["components"]["schemas"]["BrandInput"]["properties"]

    assert brand["disclosure_tag"]["pattern"] == "^#"
    assert brand["required_hashtags"]["items"]["pattern"] == "^#"
    refusals = spec["paths"]["/v1/brands"]["post"]["x-refusals-beyond-schema"]
    assert "one hashtag" in refusals["disclosure_tag"]
    assert refusals["required_hashtags[]"] == "as disclosure_tag"


def test_a_word_list_entry_is_blank_as_the_pattern_says() -> None:
    with pytest.raises(InvalidRequest) as refused:
        brands._word_list({"banned_words": ["ok", "\ufeff"]}, "banned_words")

    assert refused.value.field == "banned_words[1]"


def test_a_reply_and_an_edited_polls_options_say_blank_as_the_code_does() -> None:
    """Both fields are in x-refusals-beyond-schema for X's own rules, so a 400
    for a blank one would be set aside by the fuzz run: the schema says it."""
    spec = yaml.safe_load(SPEC.read_text())
    reply = spec["paths"]["/v1/mentions/{mention_id}/reply"]["post"]
    edit = spec["paths"]["/v1/posts/{post_id}"]["patch"]

    def properties(operation):
        content = operation["requestBody"]["content"]["application/json"]
        return content["schema"]["properties"]

    assert properties(reply)["text"]["pattern"] == validation.NOT_BLANK.pattern
    options = properties(edit)["poll_options"]
    assert options["items"]["pattern"] == validation.NOT_BLANK.pattern
    assert options["uniqueItems"] is True


def test_the_caption_routes_list_the_poll_options_rule_beyond_the_schema() -> None:
    """uniqueItems takes "Yes" and "yes"; the code refuses them (case and
    surrounding spaces aside), a rule JSON Schema cannot state."""
    spec = yaml.safe_load(SPEC.read_text())
    for path in ("/v1/captions", "/v1/caption-jobs"):
        listed = spec["paths"][path]["post"]["x-refusals-beyond-schema"]
        assert "poll_options" in listed, path


def test_a_blank_reply_is_refused_as_the_pattern_says() -> None:
    from cartcast import inbox

    with pytest.raises(InvalidRequest) as refused:
        inbox.read_reply_text({"text": "\ufeff"})

    assert refused.value.field == "text"


def test_the_webhook_secret_pattern_is_the_one_the_code_checks() -> None:
    spec = yaml.safe_load(SPEC.read_text())
    body = spec["paths"]["/v1/brand"]["patch"]["requestBody"]["content"]
    secret = body["application/json"]["schema"]["properties"]["webhook_secret"]

    assert secret["pattern"] == f"^{brands.WEBHOOK_SECRET.pattern}$"


def test_every_refusal_beyond_the_schema_names_a_field_of_its_operation() -> None:
    """`x-refusals-beyond-schema` lets make faults count a 400 naming one of its
    fields as expected: a name no request carries would hide nothing, a typo
    would leave the rule undocumented."""
    spec = yaml.safe_load(SPEC.read_text())
    wrong = []

    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            names = {
                (_resolve(spec, p["$ref"]) if "$ref" in p else p)["name"]
                for p in operation.get("parameters", [])
            }
            for content in operation.get("requestBody", {}).get("content", {}).values():
                names.add("body")
                for _, found in _request_objects(spec, content["schema"], "", set()):
                    names.update(found.get("properties", {}))
            for field in operation.get("x-refusals-beyond-schema", {}):
                if re.split(r"[\[.]", field)[0] not in names:
                    wrong.append(f"{method.upper()} {path}: {field}")

    assert wrong == []


def test_each_route_takes_exactly_the_query_parameters_the_spec_lists() -> None:
    spec = yaml.safe_load(SPEC.read_text())
    parameters = spec["components"]["parameters"]
    endpoints = {
        (re.sub(r"<(\w+)>", r"{\1}", rule.rule), method): rule.endpoint
        for rule in api.routes().iter_rules()
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }

    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method not in METHODS or "servers" in item:
                continue
            listed = set()
            for parameter in operation.get("parameters", []):
                if "$ref" in parameter:
                    parameter = parameters[parameter["$ref"].split("/")[-1]]
                if parameter["in"] == "query":
                    listed.add(parameter["name"])
            endpoint = endpoints[(path, method.upper())]
            if api.ROUTE_ROLES[endpoint] == api.SIGNED:
                continue
            taken = set(api.QUERY_PARAMETERS.get(endpoint, ()))
            assert taken == listed, (method, path)


def test_no_pattern_says_whitespace_with_a_class_escape() -> None:
    """`\\s` and `\\S` differ between ECMA-262 and Python's re (\\x1c-\\x1f,
    U+0085, U+FEFF), so a pattern that uses them is judged by one reading and
    checked by the other: every spec pattern spells its whitespace out, but the
    not-blank one, whose class also names every character the readings differ on."""
    patterns = _patterns(yaml.safe_load(SPEC.read_text()), [])
    spelled_out = [p for p in patterns if p != validation.NOT_BLANK.pattern]

    assert [p for p in spelled_out if "\\s" in p or "\\S" in p] == []


def _probes() -> list[str]:
    """Strings around each BMP code point: alone, before, inside and after a URL."""
    probes = []
    for code_point in range(0x10000):
        if 0xD800 <= code_point <= 0xDFFF:
            continue
        char = chr(code_point)
        probes += [char, f"{char}https://a.b/c", f"https://a.b/c{char}d"]
        probes += [f"https://a.b/c{char}", f" 12{char}", f"{char}12 "]
    return probes


# ECMA-262's `\s` (WhiteSpace and LineTerminator) as a class body Python reads.
ECMA_SPACE = (
    "\\t\\n\\x0b\\x0c\\r \\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f"
    "\\u205f\\u3000\\ufeff"
)


def _readings(pattern: str) -> list[re.Pattern[str]]:
    """The pattern as Python's re reads it and as a JSON Schema validator does."""
    inside = re.sub(
        r"\[([^\]]*)\\s([^\]]*)\]",
        lambda match: f"[{match[1]}{ECMA_SPACE}{match[2]}]",
        pattern,
    )
    ecma = inside.replace("\\S", f"[^{ECMA_SPACE}]").replace("\\s", f"[{ECMA_SPACE}]")
    return [re.compile(pattern), re.compile(ecma)]


def _accepts(check: Any, value: str) -> bool:
    try:
        check(value)
    except InvalidRequest:
        return False
    return True


def test_a_thumbnail_is_refused_exactly_when_the_spec_pattern_refuses_it() -> None:
    schemas = yaml.safe_load(SPEC.read_text())["components"]["schemas"]
    pattern = schemas["ProductInput"]["properties"]["thumbnail"]["pattern"]

    def image(value: str) -> None:
        catalog._image_url({"thumbnail": value})

    _assert_code_reads_as_spec(pattern, image)


def _assert_code_reads_as_spec(pattern: str, check) -> None:
    """`check` accepts exactly the probes the pattern accepts, by either reading."""
    for reading in _readings(pattern):
        disagree = [
            value
            for value in _probes()
            if bool(reading.search(value)) is not _accepts(check, value)
        ]
        assert disagree == [], reading.pattern


def test_every_image_of_a_feed_product_is_checked_as_the_spec_says() -> None:
    schemas = yaml.safe_load(SPEC.read_text())["components"]["schemas"]
    images = schemas["ProductInput"]["properties"]["images"]
    thumbnail = schemas["ProductInput"]["properties"]["thumbnail"]

    assert images["items"]["pattern"] == thumbnail["pattern"]
    with pytest.raises(InvalidRequest) as refused:
        catalog._image_url({"images": ["https://a.b/c.png", "https://a.b/\x1c.png"]})
    assert refused.value.field == "images[1]"


@pytest.mark.parametrize(
    ("name", "shape"),
    [("x_user_id", brands.X_USER_ID), ("x_username", brands.X_USERNAME)],
)
def test_an_x_account_field_is_refused_exactly_when_the_spec_refuses_it(
    name, shape
) -> None:
    schemas = yaml.safe_load(SPEC.read_text())["components"]["schemas"]
    pattern = schemas["BrandInput"]["properties"][name]["pattern"]

    def field(value: str) -> None:
        brands._optional_match({name: value}, name, shape, "the shape")

    _assert_code_reads_as_spec(pattern, field)


@pytest.mark.parametrize(("name", "value"), [("x_user_id", "12"), ("x_username", "jo")])
def test_an_x_account_field_takes_as_many_blanks_around_it_as_the_spec(
    name, value
) -> None:
    """The spec bounds these by their pattern alone, which allows any run of
    blanks around the value: no maxLength for the code to measure as sent."""
    schemas = yaml.safe_load(SPEC.read_text())["components"]["schemas"]
    padded = " " * 300 + value + "\u3000" * 300
    shape = brands.X_USER_ID if name == "x_user_id" else brands.X_USERNAME

    assert "maxLength" not in schemas["BrandInput"]["properties"][name]
    assert brands._optional_match({name: padded}, name, shape, "the shape") == value


def test_a_webhook_url_s_max_length_is_the_one_the_code_checks() -> None:
    spec = yaml.safe_load(SPEC.read_text())
    patch = spec["paths"]["/v1/brand"]["patch"]["requestBody"]["content"]
    fields = patch["application/json"]["schema"]["properties"]
    alert = spec["components"]["schemas"]["AlertWebhookUrl"]

    assert alert["maxLength"] == brands.WEBHOOK_URL_LENGTH_MAX
    assert fields["escalation_webhook_url"]["maxLength"] == alert["maxLength"]


def _read_product(name: str, value: str) -> None:
    catalog.parse_product({"sku": "MUG-1", "title": "Mug", "price": "9", name: value})


def _read_brand(name: str, value: str) -> None:
    body = {"name": "Acme", "time_zone": "UTC"}
    body["store_base_url"] = "https://shop.example.com"
    brands.parse_brand({**body, name: value})


def _read_order(name: str, value: str) -> None:
    body = {"id": "1001", "created_at": "2026-03-01T09:00:00Z", "currency": "USD"}
    body["total_price"] = "9"
    if name == "customer":
        body["customer"] = {"id": value}
    else:
        body[name] = value
    orders.parse_order(body, now=dt.datetime(2026, 3, 2, tzinfo=dt.UTC))


def _read_caption_request(name: str, value: str) -> None:
    posts._parse_caption_request({"products": ["MUG-1"], name: value})


@pytest.mark.parametrize(
    ("schema", "path", "read", "field"),
    [
        ("ProductInput", ["sku"], _read_product, "sku"),
        ("ProductInput", ["title"], _read_product, "title"),
        ("ProductInput", ["category"], _read_product, "category"),
        ("ProductInput", ["brand"], _read_product, "brand"),
        ("ProductInput", ["handle"], _read_product, "handle"),
        ("BrandInput", ["name"], _read_brand, "name"),
        ("BrandInput", ["voice"], _read_brand, "voice"),
        ("BrandInput", ["store_base_url"], _read_brand, "store_base_url"),
        ("BrandInput", ["x_access_token"], _read_brand, "x_access_token"),
        ("OrderInput", ["id"], _read_order, "id"),
        ("OrderInput", ["customer", "id"], _read_order, "customer.id"),
        ("OrderInput", ["landing_site"], _read_order, "landing_site"),
        ("OrderInput", ["referring_site"], _read_order, "referring_site"),
        ("CaptionRequest", ["campaign"], _read_caption_request, "campaign"),
        ("CaptionRequest", ["tone"], _read_caption_request, "tone"),
    ],
)
def test_a_text_s_max_length_counts_the_blanks_sent_around_it(
    schema, path, read, field
) -> None:
    """JSON Schema's maxLength measures the string as sent: a value that fits
    only once the blanks around it are stripped is one the spec refuses."""
    properties = yaml.safe_load(SPEC.read_text())["components"]["schemas"][schema]
    for name in path:
        properties = properties["properties"][name]
    limit = properties["maxLength"]
    fits = "https://shop.example.com/" if field == "store_base_url" else ""
    fits += "a" * (limit - len(fits))

    read(path[0], fits)
    with pytest.raises(InvalidRequest) as refused:
        read(path[0], fits + " ")
    assert refused.value.field == field


def test_a_poll_option_s_max_length_counts_the_blanks_sent_around_it() -> None:
    """A caption request and a post's edit both give poll options; either way
    25 characters and a space is one the spec's maxLength refuses."""
    spec = yaml.safe_load(SPEC.read_text())
    asked = spec["components"]["schemas"]["CaptionRequest"]["properties"]
    patch = spec["paths"]["/v1/posts/{post_id}"]["patch"]["requestBody"]["content"]
    edited = patch["application/json"]["schema"]["properties"]
    limit = asked["poll_options"]["items"]["maxLength"]
    option = "a" * limit

    assert edited["poll_options"]["items"]["maxLength"] == limit
    assert post_kinds.poll_options_problem([option, "b"]) is None
    assert post_kinds.poll_options_problem([option + " ", "b"]) is not None


def test_a_feed_product_s_long_description_is_kept_cut_as_the_spec_says() -> None:
    """The spec sets no maxLength on a description, and keeps 5000 characters."""
    schemas = yaml.safe_load(SPEC.read_text())["components"]["schemas"]
    described = schemas["ProductInput"]["properties"]["description"]
    row = {"sku": "MUG-1", "title": "Mug", "price": "9", "description": "d" * 20_000}

    assert "maxLength" not in described
    assert "5000" in described["description"]
    assert catalog.parse_product(row)["description"] == "d" * 5000


def test_the_secret_an_escalation_webhook_needs_is_listed_beyond_the_schema() -> None:
    """A webhook sent or stored without a secret (or with one of 16 blanks, which
    the code strips to none) is a 400 naming escalation_secret: a rule on another
    field and on what is stored, which make faults met as a valid body refused."""
    spec = yaml.safe_load(SPEC.read_text())
    listed = spec["paths"]["/v1/brand"]["patch"]["x-refusals-beyond-schema"]

    assert "escalation_secret" in listed


# The spec's pattern allows blanks on both sides of an optional URL. Matched as it
# is, a value that fails after a long run of blanks is tried at every split of the
# run between the two sides: 2,000 blanks and an "x" took about 20 ms, and a feed
# of 1,000 such rows (2 MB, under BODY_BYTES_MAX) about 11 s of CPU, where the
# check before took a few milliseconds. The code strips the blanks and then
# matches only the URL, which the test above shows is the same verdict.
def test_an_image_url_is_matched_without_the_blanks_around_it() -> None:
    padded = " " * 2000 + "x"

    assert catalog.IMAGE_URL.fullmatch(" https://a.b/c") is None
    assert catalog.IMAGE_URL.fullmatch("https://a.b/c") is not None
    assert catalog._image_url({"thumbnail": "\u3000https://a.b/c \n"}) == (
        "https://a.b/c"
    )
    with pytest.raises(InvalidRequest) as refused:
        catalog._image_url({"images": [padded[1:]]})
    assert refused.value.field == "images[0]"


def test_every_operation_taking_an_alert_webhook_lists_its_refusals() -> None:
    """The code refuses what the URL pattern allows: an internal host, http to
    anything but loopback, and characters str.isprintable() refuses (controls,
    format, private-use and unassigned code points). POST /v1/brands checks the
    URL as PATCH /v1/brand does, so both must list it, or make faults counts each
    such 400 as a valid body refused."""
    spec = yaml.safe_load(SPEC.read_text())
    pattern = spec["components"]["schemas"]["AlertWebhookUrl"]["pattern"]
    allowed = ["https://a.b/c\x01", "https://a.b/c\ue000", "https://10.0.0.1/"]

    for url in allowed:
        assert re.search(pattern, url), url
        with pytest.raises(InvalidRequest) as refused:
            brands.alert_webhook_url({"alert_webhook_url": url}, environment="cloud")
        assert refused.value.field == "alert_webhook_url"
    for path, method in (("/v1/brands", "post"), ("/v1/brand", "patch")):
        listed = spec["paths"][path][method]["x-refusals-beyond-schema"]
        assert "isprintable" in listed.get("alert_webhook_url", ""), path


def _brand_currency(value: str) -> None:
    validation.currency({"currency": value}, "currency", default="USD")


def _brand_slug(value: str) -> None:
    brands._slug({"slug": value}, "Test Goods")


def _key_name(value: str) -> None:
    # A name the code takes goes on to the role, refused here before any query.
    body = {"name": value, "role": "no such role"}
    try:
        keys.add_key(
            None, brand_id="", body=body, actor="", now=dt.datetime.now(dt.UTC)
        )
    except InvalidRequest as error:
        if error.field == "name":
            raise


@pytest.mark.parametrize(
    ("where", "check", "good"),
    [
        (("BrandInput", "currency"), _brand_currency, "usd"),
        (("BrandInput", "slug"), _brand_slug, "test-goods"),
        (("/v1/keys", "name"), _key_name, "ops bot"),
    ],
)
def test_a_code_or_name_is_refused_exactly_when_the_spec_pattern_refuses_it(
    where, check, good
) -> None:
    """The code took " usd" and "ops " by stripping them, which the pattern refuses."""
    spec = yaml.safe_load(SPEC.read_text())
    owner, name = where
    if owner.startswith("/"):
        schema = spec["paths"][owner]["post"]["requestBody"]["content"]
        schema = schema["application/json"]["schema"]
    else:
        schema = spec["components"]["schemas"][owner]
    # As ECMA-262 reads `$`: at the very end only, not before a final newline too.
    pattern = re.compile(schema["properties"][name]["pattern"].replace("$", r"\Z"))
    probes = [good, good.upper(), good[:-1], good + good[-1]]
    for blank in (" ", "\t", "\n", "\xa0", "\u3000", "\ufeff"):
        probes += [blank + good, good + blank]

    disagree = [
        value
        for value in probes
        if bool(pattern.search(value)) is not _accepts(check, value)
    ]

    assert disagree == []


@pytest.mark.parametrize(
    "where", [("BrandInput", "language"), ("CaptionRequest", "language")]
)
def test_a_language_is_refused_exactly_when_the_spec_enum_refuses_it(where) -> None:
    """The code took " DE" by stripping and lower-casing it, which the enum refuses;
    a brand's language had no enum at all, so "xx" passed the spec only."""
    schemas = yaml.safe_load(SPEC.read_text())["components"]["schemas"]
    owner, name = where
    schema = schemas[owner]["properties"][name]
    if "$ref" in schema:
        schema = schemas[schema["$ref"].split("/")[-1]]
    probes = ["de", "DE", "De", "xx", "", "deu"]
    for blank in (" ", "\t", "\n", "\xa0", "\u3000", "\ufeff"):
        probes += [blank + "de", "de" + blank]

    def check(value: str) -> None:
        validation.language({name: value})

    disagree = [
        value
        for value in probes
        if (value in schema["enum"]) is not _accepts(check, value)
    ]

    assert disagree == []


@pytest.mark.parametrize("name", ["id", "customer.id"])
def test_an_integer_store_id_is_bounded_by_the_spec_as_the_code_bounds_it(
    name,
) -> None:
    """maxLength bounds a string id only: the code's 200 characters, read of an
    integer, are the schema's minimum and maximum."""
    order = yaml.safe_load(SPEC.read_text())["components"]["schemas"]["OrderInput"]
    schema = order["properties"]["id"]
    if name == "customer.id":
        schema = order["properties"]["customer"]["properties"]["id"]
    now = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)

    def order_of(store_id: int) -> None:
        body = {"created_at": "2026-03-01T10:00:00Z", "currency": "USD"}
        body |= {"total_price": "1.00", "id": "1"}
        if name == "id":
            body["id"] = store_id
        else:
            body["customer"] = {"id": store_id}
        orders.parse_order(body, now=now)

    for value in (schema["minimum"], schema["maximum"]):
        order_of(value)
    for value in (schema["minimum"] - 1, schema["maximum"] + 1):
        with pytest.raises(InvalidRequest) as refused:
            order_of(value)
        assert refused.value.field == name


@pytest.mark.parametrize(
    ("customer", "path"),
    [(None, ("customer",)), ({"id": None}, ("customer", "properties", "id"))],
)
def test_an_order_s_null_customer_the_code_takes_is_one_the_spec_allows(
    customer, path
) -> None:
    # A guest checkout has no customer (orders._customer_id): the code stores the
    # order with none, so the spec, where a null is refused unless its type lists
    # one, must list it.
    body = {"id": "1001", "created_at": "2026-03-01T09:00:00Z", "currency": "USD"}
    body |= {"total_price": "9", "customer": customer}
    order = orders.parse_order(body, now=dt.datetime(2026, 3, 2, tzinfo=dt.UTC))

    schema = yaml.safe_load(SPEC.read_text())["components"]["schemas"]["OrderInput"]
    for step in ("properties", *path):
        schema = schema[step]
    assert order["customer_id"] is None
    assert "null" in schema["type"], schema["type"]
