"""Gemini copy through the real google-genai client, against the local stand-in."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import ssl
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from cartcast.captions import (
    CHECK_NAMES,
    BrandVoice,
    DraftRequest,
    ProductBrief,
    in_language,
    write_drafts,
)
from cartcast.clock import FixedClock
from cartcast.errors import ConfigurationError, RateLimited, TransientError
from cartcast.gemini import CopyFailed, GeminiCaptioner, http_options
from cartcast.links import product_link
from cartcast.quota import QuotaGovernor
from infra.gemini_standin import DEFAULT_API_KEY, GeminiStandIn
from tests.helpers import write_authority, write_localhost_certificate

REPO = Path(__file__).parents[1]
NOW = dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.UTC)
ALL_CHECKS_PASS = dict.fromkeys(CHECK_NAMES, True)


@pytest.fixture(scope="module")
def standin() -> GeminiStandIn:
    with GeminiStandIn() as server:
        yield server


@pytest.fixture(autouse=True)
def fresh_standin(standin: GeminiStandIn) -> None:
    standin.reset()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def captioner(standin: GeminiStandIn, clock: FixedClock) -> GeminiCaptioner:
    return GeminiCaptioner(
        api_key=DEFAULT_API_KEY,
        base_url=standin.base_url,
        clock=clock,
        retry_pause_s=0,
    )


@pytest.fixture
def voice() -> BrandVoice:
    return BrandVoice(
        name="Cartcast Demo",
        voice="warm, plain-spoken, a little witty",
        banned_words=("cure", "miracle"),
        required_hashtags=("#CartcastDemo",),
    )


@pytest.fixture
def requests() -> list[DraftRequest]:
    products = [
        ProductBrief(
            product_id="1",
            sku="BEA-ESS-ESS-001",
            title="Essence Mascara Lash Princess",
            description="A popular mascara known for volume and length. Cruelty-free.",
            price=Decimal("9.99"),
            currency="USD",
            category="beauty",
            tags=("beauty", "mascara"),
            brand="Essence",
            stock=99,
            discount_percent=Decimal("10.48"),
        ),
        ProductBrief(
            product_id="2",
            sku="KIT-MUG-002",
            title="Stoneware Mug",
            description="A sturdy mug that keeps coffee hot. Dishwasher safe.",
            price=Decimal("14.00"),
            currency="USD",
            category="kitchen-accessories",
            tags=("kitchen",),
            brand=None,
            stock=12,
            discount_percent=None,
        ),
        ProductBrief(
            product_id="3",
            sku="SPO-BAL-003",
            title="Tennis Ball",
            description="A standard ball used in the sport of tennis.",
            price=Decimal("6.99"),
            currency="USD",
            category="sports-accessories",
            tags=("sports", "tennis"),
            brand=None,
            stock=0,
            discount_percent=None,
        ),
    ]
    return [request_for(product) for product in products]


def request_for(product: ProductBrief, variant: int = 0) -> DraftRequest:
    link = product_link(
        "https://shop.example.com",
        product.sku.lower(),
        post_id=str(uuid.uuid4()),
        campaign="spring",
    )
    return DraftRequest(product=product, link=link, variant=variant)


def post_json(url: str, body: dict, headers: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def calls(standin: GeminiStandIn) -> list[dict]:
    return [r for r in standin.requests() if r["path"].endswith(":generateContent")]


def set_fault(standin: GeminiStandIn, mode: str, count: int, **options: object) -> None:
    # Through the control endpoint, as the demo does from another process.
    status, _ = post_json(
        f"{standin.base_url}/_standin/faults",
        {"mode": mode, "count": count, **options},
    )
    assert status == 200


def assert_valid_template_draft(draft, request: DraftRequest) -> None:
    assert draft.engine == "template"
    assert draft.checks == ALL_CHECKS_PASS, draft.text
    assert draft.text.count(request.link) == 1


class CaptionerBuildingInStep(GeminiCaptioner):
    """A captioner whose client build waits at a barrier for a second caller, so
    two threads that both find no client build it at the same time. A caller
    kept out of the build (the fix) breaks the barrier; the first then goes on."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.builds = 0
        self.barrier = threading.Barrier(2)

    def _build_client(self) -> Any:
        self.builds += 1
        with contextlib.suppress(threading.BrokenBarrierError):
            self.barrier.wait(timeout=2)
        return super()._build_client()


# --- the happy path ---------------------------------------------------------------


def test_a_batch_is_written_by_gemini_in_one_call(
    standin: GeminiStandIn,
    captioner: GeminiCaptioner,
    voice: BrandVoice,
    requests: list[DraftRequest],
) -> None:
    drafts = write_drafts(requests, voice, gemini=captioner, tone="cheerful")

    assert len(calls(standin)) == 1
    for request, draft in zip(requests, drafts, strict=True):
        assert draft.engine == "gemini"
        assert draft.model == "gemini-2.5-flash"
        assert draft.fallback_reason is None
        assert draft.checks == ALL_CHECKS_PASS, draft.text
        assert draft.text.count(request.link) == 1
        assert draft.text.endswith("#CartcastDemo")
        assert draft.usage["total_tokens"] > 0
        assert draft.usage["batch_size"] == 3


def test_the_request_carries_brand_schema_and_products(
    standin: GeminiStandIn,
    captioner: GeminiCaptioner,
    voice: BrandVoice,
    requests: list[DraftRequest],
) -> None:
    captioner.write_copy(requests, voice, tone="cheerful", campaign="spring")

    (call,) = calls(standin)
    body = call["body"]
    system = body["systemInstruction"]["parts"][0]["text"]
    config = body["generationConfig"]
    user_text = body["contents"][0]["parts"][0]["text"]
    assert call["path"] == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert "Cartcast Demo" in system and "cheerful" in system
    assert "cure, miracle" in system
    assert config["responseMimeType"] == "application/json"
    assert "captions" in config["responseSchema"]["properties"]
    assert config["maxOutputTokens"] >= 2048
    assert '"ref": "p0"' in user_text and '"price_text": "$9.99"' in user_text
    assert '"sale_price_text": "$8.94"' in user_text
    assert "shop.example.com" not in json.dumps(body)


def test_the_key_goes_in_a_header_and_the_timeout_in_milliseconds(
    standin: GeminiStandIn, voice: BrandVoice, requests: list[DraftRequest]
) -> None:
    captioner = GeminiCaptioner(
        api_key=DEFAULT_API_KEY, base_url=standin.base_url, timeout_s=20.0
    )

    captioner.write_copy(requests, voice)

    (call,) = calls(standin)
    assert call["key_sent"]
    assert "x-goog-api-key" not in call["headers"]  # the stand-in never records it
    # google-genai turns HttpOptions.timeout (ms) into seconds for this header: 20 s
    # shows up as "20"; seconds passed by mistake would show "1".
    assert call["headers"]["x-server-timeout"] == "20"


def test_every_transport_of_the_client_shares_one_verifying_tls_context() -> None:
    options = http_options("https://generativelanguage.googleapis.com", "v1beta", 20.0)

    tls = options.client_args["verify"]
    assert isinstance(tls, ssl.SSLContext)
    assert options.async_client_args["verify"] is tls  # httpx2, async
    assert options.async_client_args["ssl"] is tls  # aiohttp and websockets
    assert tls.verify_mode == ssl.CERT_REQUIRED
    assert tls.check_hostname
    assert options.timeout == 20_000


def test_write_copy_returns_texts_aligned_with_the_requests(
    captioner: GeminiCaptioner, voice: BrandVoice, requests: list[DraftRequest]
) -> None:
    result = captioner.write_copy(requests, voice)

    assert len(result.texts) == 3
    assert "Essence Mascara Lash Princess" in result.texts[0]
    assert "Stoneware Mug" in result.texts[1]
    assert "Tennis Ball" in result.texts[2]
    assert not any("http" in text for text in result.texts)
    assert result.model_version == "gemini-2.5-flash"
    assert result.usage["calls"] == 1
    assert result.usage["prompt_tokens"] > 0
    assert result.usage["candidate_tokens"] > 0
    assert result.usage["total_tokens"] >= (
        result.usage["prompt_tokens"] + result.usage["candidate_tokens"]
    )


# --- the language asked for -------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "phrase"), [("de", "Nur $6.99."), ("ja", "$6.99でお届け。")]
)
def test_copy_asked_for_in_another_language_comes_in_it_and_passes(
    standin: GeminiStandIn,
    captioner: GeminiCaptioner,
    voice: BrandVoice,
    requests: list[DraftRequest],
    language: str,
    phrase: str,
) -> None:
    asked = dataclasses.replace(voice, language=language)

    drafts = write_drafts(requests, asked, gemini=captioner)

    assert [draft.engine for draft in drafts] == ["gemini"] * 3
    assert all(draft.checks == ALL_CHECKS_PASS for draft in drafts), drafts
    assert phrase in drafts[2].text


@pytest.mark.parametrize(("asked", "answered"), [("de", "en"), ("en", "de")])
def test_copy_answered_in_another_language_fails_in_requested_language(
    standin: GeminiStandIn,
    captioner: GeminiCaptioner,
    voice: BrandVoice,
    requests: list[DraftRequest],
    asked: str,
    answered: str,
) -> None:
    set_fault(standin, "wrong_language", count=1, language=answered)

    drafts = write_drafts(
        requests, dataclasses.replace(voice, language=asked), gemini=captioner
    )

    # Kept, for a person to decide, as a template draft in place of another
    # language is: the template engine would not write the language asked for.
    assert drafts[0].engine == "gemini" and drafts[0].fallback_reason is None
    assert drafts[0].checks == {**ALL_CHECKS_PASS, "in_requested_language": False}
    assert [draft.checks for draft in drafts[1:]] == [ALL_CHECKS_PASS] * 2


@pytest.mark.parametrize(
    ("asked", "label"), [("de", "de-DE"), ("de", "DE-at"), ("ja", "ja-JP")]
)
def test_copy_labelled_with_a_region_as_well_is_in_the_language_asked(
    standin: GeminiStandIn,
    captioner: GeminiCaptioner,
    voice: BrandVoice,
    requests: list[DraftRequest],
    asked: str,
    label: str,
) -> None:
    # A model often labels German "de-DE": the language is the tag's first part
    # (BCP 47), and such copy must not wait for a person as if it were English.
    set_fault(standin, "wrong_language", count=1, language=asked, labelled=label)

    drafts = write_drafts(
        requests, dataclasses.replace(voice, language=asked), gemini=captioner
    )

    assert [draft.checks for draft in drafts] == [ALL_CHECKS_PASS] * 3


@pytest.mark.parametrize(
    ("asked", "label", "copy"),
    [
        ("no", "nb", "Nytt i butikken"),
        ("no", "nn-NO", "Nytt i butikken"),
        ("he", "iw", "\u05d7\u05d3\u05e9 \u05d1\u05d7\u05e0\u05d5\u05ea"),
        ("id", "in", "Baru di toko"),
        ("id", "in-ID", "Baru di toko"),
        (
            "yi",
            "ji",
            "\u05e0\u05f2\u05b7 \u05d0\u05d9\u05df \u05e7\u05e8\u05d0\u05b8\u05dd",
        ),
    ],
)
def test_a_label_with_an_old_or_an_individual_code_names_the_language_asked(
    asked: str, label: str, copy: str
) -> None:
    # Models still write the codes ISO 639 withdrew (iw, in) and Norwegian's two
    # written forms (nb, nn) for the "no" a brand asks for.
    assert in_language(copy, label, asked)


@pytest.mark.parametrize(
    ("asked", "label"), [("no", "da"), ("no", "sv"), ("no", "se"), ("id", "ms")]
)
def test_a_label_naming_a_neighbouring_language_still_fails(
    asked: str, label: str
) -> None:
    assert not in_language("Nytt i butikken", label, asked)


def test_copy_labelled_as_asked_but_in_another_script_fails_the_check(
    standin: GeminiStandIn,
    captioner: GeminiCaptioner,
    voice: BrandVoice,
    requests: list[DraftRequest],
) -> None:
    # The model's own label is not taken on trust where the script can tell.
    set_fault(standin, "wrong_language", count=1, language="en", labelled="ja")

    drafts = write_drafts(
        requests, dataclasses.replace(voice, language="ja"), gemini=captioner
    )

    assert drafts[0].checks["in_requested_language"] is False
    assert "in_requested_language" not in drafts[1].checks


# --- faults that defeat the retry ------------------------------------------------

FAULTS = [
    ("invalid_json", "gemini: invalid JSON", 2),
    ("truncated", "gemini: truncated JSON (MAX_TOKENS)", 2),
    ("empty_thinking", "gemini: empty response (MAX_TOKENS)", 2),
    ("empty_text", "gemini: empty response", 2),
    ("safety", "gemini: blocked (SAFETY)", 2),
    ("wrong_types", "gemini: wrong types", 2),
    ("prompt_blocked", "gemini: prompt blocked (SAFETY)", 1),
    ("quota", "gemini: quota exhausted", 1),
    ("server_error", "gemini: unavailable", 2),
]


@pytest.mark.parametrize(("mode", "reason", "calls_made"), FAULTS)
def test_a_failed_call_falls_back_to_valid_template_drafts(
    standin: GeminiStandIn,
    captioner: GeminiCaptioner,
    voice: BrandVoice,
    requests: list[DraftRequest],
    mode: str,
    reason: str,
    calls_made: int,
) -> None:
    set_fault(standin, mode, count=5)

    drafts = write_drafts(requests, voice, gemini=captioner)

    assert len(calls(standin)) == calls_made
    for request, draft in zip(requests, drafts, strict=True):
        assert_valid_template_draft(draft, request)
        assert draft.fallback_reason == reason


@pytest.mark.parametrize(
    "mode",
    [
        "invalid_json",
        "truncated",
        "empty_thinking",
        "empty_text",
        "safety",
        "wrong_types",
    ],
)
def test_one_retry_recovers_from_a_bad_answer(
    standin: GeminiStandIn,
    captioner: GeminiCaptioner,
    voice: BrandVoice,
    requests: list[DraftRequest],
    mode: str,
) -> None:
    set_fault(standin, mode, count=1)

    drafts = write_drafts(requests, voice, gemini=captioner)

    assert len(calls(standin)) == 2
    assert [draft.engine for draft in drafts] == ["gemini"] * 3
    assert drafts[0].usage["calls"] == 2


def test_a_retry_after_max_tokens_doubles_the_budget(
    standin: GeminiStandIn,
    captioner: GeminiCaptioner,
    voice: BrandVoice,
    requests: list[DraftRequest],
) -> None:
    set_fault(standin, "empty_thinking", count=1)

    captioner.write_copy(requests, voice)

    first, second = (c["body"]["generationConfig"] for c in calls(standin))
    assert second["maxOutputTokens"] == 2 * first["maxOutputTokens"]


def test_a_blocked_prompt_is_not_retried(
    standin: GeminiStandIn, captioner: GeminiCaptioner, voice: BrandVoice, requests
) -> None:
    set_fault(standin, "prompt_blocked", count=1, block_reason="PROHIBITED_CONTENT")

    with pytest.raises(CopyFailed) as failure:
        captioner.write_copy(requests, voice)

    assert failure.value.reason == "prompt blocked (PROHIBITED_CONTENT)"
    assert failure.value.usage["prompt_tokens"] > 0
    assert len(calls(standin)) == 1


def test_tokens_spent_on_a_failed_batch_stay_on_its_drafts(
    standin: GeminiStandIn, captioner: GeminiCaptioner, voice: BrandVoice, requests
) -> None:
    set_fault(standin, "invalid_json", count=2)

    drafts = write_drafts(requests, voice, gemini=captioner)

    assert drafts[0].usage["calls"] == 2
    assert drafts[0].usage["total_tokens"] > 0


def test_a_first_attempts_tokens_count_when_the_quota_refuses_the_retry(
    standin: GeminiStandIn, runtime, clock: FixedClock, voice: BrandVoice, requests
) -> None:
    # One call a minute: the bad answer takes it, and the retry is refused.
    governed = GeminiCaptioner(
        api_key=DEFAULT_API_KEY,
        base_url=standin.base_url,
        clock=clock,
        retry_pause_s=0,
        governor=QuotaGovernor(runtime.database, clock, per_minute=1, per_day=10),
    )
    set_fault(standin, "invalid_json", count=1)

    drafts = write_drafts(requests, voice, gemini=governed)

    assert len(calls(standin)) == 1
    assert [draft.engine for draft in drafts] == ["template"] * 3
    assert drafts[0].fallback_reason == "gemini: quota exhausted"
    assert drafts[0].usage["calls"] == 1
    assert drafts[0].usage["total_tokens"] > 0
    assert drafts[0].usage["batch_size"] == 3


# --- faults in one caption --------------------------------------------------------


def test_a_caption_too_long_falls_back_alone(
    standin: GeminiStandIn, captioner: GeminiCaptioner, voice: BrandVoice, requests
) -> None:
    set_fault(standin, "too_long", count=1)

    drafts = write_drafts(requests, voice, gemini=captioner)

    assert drafts[0].fallback_reason == "gemini: too long"
    assert_valid_template_draft(drafts[0], requests[0])
    assert [draft.engine for draft in drafts[1:]] == ["gemini", "gemini"]


def test_a_caption_with_a_banned_word_falls_back_alone(
    standin: GeminiStandIn, captioner: GeminiCaptioner, voice: BrandVoice, requests
) -> None:
    set_fault(standin, "banned_word", count=1, word="Cure")

    drafts = write_drafts(requests, voice, gemini=captioner)

    assert drafts[0].fallback_reason == "gemini: banned word 'cure'"
    assert_valid_template_draft(drafts[0], requests[0])
    assert [draft.engine for draft in drafts[1:]] == ["gemini", "gemini"]


def test_a_missing_ref_falls_back_alone_without_a_retry(
    standin: GeminiStandIn, captioner: GeminiCaptioner, voice: BrandVoice, requests
) -> None:
    set_fault(standin, "missing_ref", count=1)

    drafts = write_drafts(requests, voice, gemini=captioner)

    assert len(calls(standin)) == 1
    assert [draft.engine for draft in drafts] == ["gemini", "gemini", "template"]
    assert drafts[2].fallback_reason == "gemini: no caption for this product"


def test_gemini_copy_already_used_falls_back(
    captioner: GeminiCaptioner, voice: BrandVoice, requests: list[DraftRequest]
) -> None:
    # The stand-in writes the same copy for the same product and variant.
    same_product_twice = [requests[1], request_for(requests[1].product)]

    drafts = write_drafts(same_product_twice, voice, gemini=captioner)

    assert drafts[0].engine == "gemini"
    assert drafts[1].fallback_reason.startswith(
        'gemini: near-duplicate of draft 1 of this batch ("'
    )
    assert drafts[1].fallback_reason.endswith("similarity 1.00)")
    assert_valid_template_draft(drafts[1], same_product_twice[1])


def test_a_required_hashtag_the_model_wrote_is_not_added_again(
    captioner: GeminiCaptioner, requests: list[DraftRequest]
) -> None:
    # The stand-in ends its copy with a hashtag of the first tag ("#Kitchen").
    voice = BrandVoice(name="B", voice="v", required_hashtags=("#KITCHEN", "Mugs"))

    draft = write_drafts(requests[1:2], voice, gemini=captioner)[0]

    assert draft.engine == "gemini"
    assert draft.text.casefold().count("#kitchen") == 1
    assert draft.text.endswith("#Mugs")
    assert draft.checks == ALL_CHECKS_PASS


def test_a_required_hashtag_the_model_ran_on_into_another_is_added(
    captioner: GeminiCaptioner, requests: list[DraftRequest]
) -> None:
    # The stand-in quotes the description's first sentence, where X links
    # "#Tokyo・Cafe", a hashtag other than the brand's "#Tokyo".
    product = dataclasses.replace(
        requests[1].product,
        description="Poured daily at #Tokyo・Cafe. Dishwasher safe.",
    )
    request = dataclasses.replace(requests[1], product=product)
    voice = BrandVoice(name="B", voice="v", required_hashtags=("#Tokyo",))

    draft = write_drafts([request], voice, gemini=captioner)[0]

    assert draft.engine == "gemini", draft.fallback_reason
    assert "#Tokyo・Cafe" in draft.text
    assert draft.text.endswith(" #Tokyo")
    assert draft.checks == ALL_CHECKS_PASS


def test_copy_turned_around_by_a_bidi_control_falls_back(
    captioner: GeminiCaptioner, requests: list[DraftRequest]
) -> None:
    # The stand-in quotes the description's first sentence, as a model may.
    product = dataclasses.replace(
        requests[1].product, description="Made for colds: \u202eeruc eht\u202c."
    )
    request = dataclasses.replace(requests[1], product=product)
    voice = BrandVoice(name="B", voice="v", banned_words=("cure",))

    draft = write_drafts([request], voice, gemini=captioner)[0]

    assert draft.engine == "template"
    assert draft.fallback_reason == "gemini: bidirectional control character"
    assert "\u202e" not in draft.text


# --- HTTP errors ------------------------------------------------------------------


def test_quota_raises_rate_limited_with_the_retry_delay(
    standin: GeminiStandIn, captioner: GeminiCaptioner, voice: BrandVoice, requests
) -> None:
    set_fault(standin, "quota", count=1, retry_delay_s=17)

    with pytest.raises(RateLimited) as limited:
        captioner.write_copy(requests, voice)

    assert limited.value.reset_at == NOW + dt.timedelta(seconds=17)
    assert type(limited.value.__cause__).__module__ == "google.genai.errors"
    assert len(calls(standin)) == 1


def test_a_spent_daily_quota_waits_for_midnight_pacific_not_the_retry_delay(
    standin: GeminiStandIn, captioner: GeminiCaptioner, voice: BrandVoice, requests
) -> None:
    # Google gives a retryDelay of seconds even when the per-day quota is spent;
    # calling again then would only earn another 429 until the day turns.
    set_fault(standin, "quota", count=1, retry_delay_s=47, per_day=True)

    with pytest.raises(RateLimited) as limited:
        captioner.write_copy(requests, voice)

    # 09:30 UTC on 2 March is 01:30 PST; the Pacific day ends at 08:00 UTC on 3 March.
    assert limited.value.reset_at == dt.datetime(2026, 3, 3, 8, 0, tzinfo=dt.UTC)
    assert len(calls(standin)) == 1


def test_quota_fallback_keeps_the_reset_time_on_every_draft(
    standin: GeminiStandIn, captioner: GeminiCaptioner, voice: BrandVoice, requests
) -> None:
    set_fault(standin, "quota", count=1, retry_delay_s=2.5)

    drafts = write_drafts(requests, voice, gemini=captioner)

    reset_at = NOW + dt.timedelta(seconds=2.5)
    assert [draft.quota_reset_at for draft in drafts] == [reset_at] * 3
    assert {draft.fallback_reason for draft in drafts} == {"gemini: quota exhausted"}


def test_server_errors_twice_raise_transient(
    standin: GeminiStandIn, captioner: GeminiCaptioner, voice: BrandVoice, requests
) -> None:
    set_fault(standin, "server_error", count=2, status=503)

    with pytest.raises(TransientError) as failure:
        captioner.write_copy(requests, voice)

    assert "503 UNAVAILABLE" in str(failure.value)
    assert type(failure.value.__cause__).__name__ == "ServerError"
    assert len(calls(standin)) == 2


def test_one_server_error_is_retried(
    standin: GeminiStandIn, captioner: GeminiCaptioner, voice: BrandVoice, requests
) -> None:
    set_fault(standin, "server_error", count=1)

    result = captioner.write_copy(requests, voice)

    assert all(result.texts)
    assert len(calls(standin)) == 2


def test_a_timeout_twice_raises_transient(
    standin: GeminiStandIn, voice: BrandVoice, requests: list[DraftRequest]
) -> None:
    captioner = GeminiCaptioner(
        api_key=DEFAULT_API_KEY,
        base_url=standin.base_url,
        timeout_s=0.3,
        retry_pause_s=0,
    )
    set_fault(standin, "slow", count=2, delay_s=1.0)

    with pytest.raises(TransientError, match="unreachable"):
        captioner.write_copy(requests, voice)

    assert len(calls(standin)) == 2


def test_v1_rejects_the_fields_json_mode_needs(
    standin: GeminiStandIn, clock: FixedClock, voice: BrandVoice, requests
) -> None:
    captioner = GeminiCaptioner(
        api_key=DEFAULT_API_KEY,
        base_url=standin.base_url,
        api_version="v1",
        clock=clock,
    )

    with pytest.raises(CopyFailed) as failure:
        captioner.write_copy(requests, voice)
    drafts = write_drafts(requests, voice, gemini=captioner)

    assert failure.value.reason == "rejected (400 INVALID_ARGUMENT)"
    assert type(failure.value.__cause__).__name__ == "ClientError"
    assert "Unknown name" in failure.value.__cause__.message
    assert calls(standin)[0]["path"] == "/v1/models/gemini-2.5-flash:generateContent"
    assert len(calls(standin)) == 2  # no retry: one call per batch
    assert {d.fallback_reason for d in drafts} == {
        "gemini: rejected (400 INVALID_ARGUMENT)"
    }


def test_a_wrong_key_is_rejected_without_a_retry(
    standin: GeminiStandIn, voice: BrandVoice, requests: list[DraftRequest]
) -> None:
    captioner = GeminiCaptioner(api_key="not-the-key", base_url=standin.base_url)

    with pytest.raises(CopyFailed, match=r"rejected \(400 INVALID_ARGUMENT\)"):
        captioner.write_copy(requests, voice)

    assert len(calls(standin)) == 1


def test_an_empty_key_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        GeminiCaptioner(api_key="")


def test_the_key_stays_out_of_the_repr() -> None:
    captioner = GeminiCaptioner(api_key="secret-key-123", base_url="http://127.0.0.1:9")

    assert "secret-key-123" not in repr(captioner)


# --- the stand-in on the wire -----------------------------------------------------


def test_the_standin_speaks_google_errors_for_keys(standin: GeminiStandIn) -> None:
    url = f"{standin.base_url}/v1beta/models/gemini-2.5-flash:generateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}

    no_key = post_json(url, body)
    bad_key = post_json(url, body, {"x-goog-api-key": "wrong"})
    query_key = post_json(f"{url}?key={DEFAULT_API_KEY}", body)

    assert no_key[0] == 403
    assert no_key[1]["error"]["status"] == "PERMISSION_DENIED"
    assert bad_key[0] == 400
    assert bad_key[1]["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    assert query_key[0] == 200
    assert query_key[1]["candidates"][0]["finishReason"] == "STOP"


def test_v1_names_every_unknown_field_as_google_does(standin: GeminiStandIn) -> None:
    url = f"{standin.base_url}/v1/models/gemini-2.5-flash:generateContent"
    body = {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "systemInstruction": {"parts": [{"text": "be brief"}]},
        "generationConfig": {"responseMimeType": "application/json", "topK": 3},
    }

    status, answer = post_json(url, body, {"x-goog-api-key": DEFAULT_API_KEY})

    error = answer["error"]
    assert status == 400 and error["status"] == "INVALID_ARGUMENT"
    assert error["message"] == (
        'Invalid JSON payload received. Unknown name "systemInstruction": '
        "Cannot find field.\n"
        'Invalid JSON payload received. Unknown name "responseMimeType" at '
        "'generation_config': Cannot find field."
    )
    violations = error["details"][0]["fieldViolations"]
    assert violations[1]["field"] == "generation_config"


def test_v1beta_also_rejects_fields_it_does_not_know(standin: GeminiStandIn) -> None:
    url = f"{standin.base_url}/v1beta/models/gemini-2.5-flash:generateContent"
    body = {"contents": [{"parts": [{"text": "hi"}]}], "systemInstructions": {}}

    status, answer = post_json(url, body, {"x-goog-api-key": DEFAULT_API_KEY})

    assert status == 400
    assert 'Unknown name "systemInstructions"' in answer["error"]["message"]


def test_the_standin_refuses_an_unknown_fault_mode(standin: GeminiStandIn) -> None:
    status, answer = post_json(
        f"{standin.base_url}/_standin/faults", {"mode": "gremlins"}
    )

    assert status == 400
    assert "gremlins" in answer["error"]["message"]


def test_the_standin_runs_as_a_module() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "infra.gemini_standin", "--port", "0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        base_url = line.rsplit(" ", 1)[-1].strip()
        status, answer = post_json(
            f"{base_url}/v1beta/models/gemini-2.5-flash:generateContent",
            {"contents": [{"parts": [{"text": '{"products": [{"ref": "a"}]}'}]}]},
            {"x-goog-api-key": DEFAULT_API_KEY},
        )
    finally:
        process.terminate()
        process.wait(timeout=5)

    assert base_url.startswith("http://127.0.0.1:")
    assert status == 200 and answer["modelVersion"] == "gemini-2.5-flash"


# --- cold start -------------------------------------------------------------------


def test_importing_the_adapter_does_not_import_google_genai() -> None:
    code = "import sys, cartcast.gemini; print('google.genai' in sys.modules)"

    loaded = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env={"PYTHONPATH": "functions"},
    ).stdout.strip()

    assert loaded == "False"


# --- the shared TLS context and the SSL_CERT_* variables -------------------------


def handshake_succeeds(tls: ssl.SSLContext, server_chain: Path) -> bool:
    """Shake hands as "localhost" with a TLS server on 127.0.0.1 serving the chain."""
    import socket
    import threading

    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(server_chain)
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def serve() -> None:
            connection, _ = listener.accept()
            with contextlib.suppress(ssl.SSLError, OSError):
                with server_tls.wrap_socket(connection, server_side=True):
                    pass
            connection.close()

        server = threading.Thread(target=serve)
        server.start()
        try:
            with socket.create_connection(listener.getsockname(), timeout=10) as raw:
                with tls.wrap_socket(raw, server_hostname="localhost"):
                    return True
        except ssl.SSLCertVerificationError:
            return False
        finally:
            server.join(timeout=10)


def test_the_tls_context_trusts_both_ssl_cert_file_and_ssl_cert_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # google-genai loads both when both are set (_api_client.py,
    # _ensure_httpx_ssl_ctx): a CA kept in the directory must still be trusted.
    in_file, _, _ = write_authority(tmp_path, "file-ca")
    in_dir, dir_ca, dir_ca_key = write_authority(tmp_path, "dir-ca")
    ca_dir = tmp_path / "certs"
    ca_dir.mkdir()
    subject_hash = subprocess.run(
        ["openssl", "x509", "-subject_hash", "-noout", "-in", str(in_dir)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (ca_dir / f"{subject_hash}.0").write_bytes(in_dir.read_bytes())
    served = write_localhost_certificate(tmp_path, dir_ca, dir_ca_key)
    monkeypatch.setenv("SSL_CERT_FILE", str(in_file))
    monkeypatch.setenv("SSL_CERT_DIR", str(ca_dir))

    tls = http_options(None, "v1beta", 20.0).client_args["verify"]

    assert handshake_succeeds(tls, served)


def test_the_tls_context_still_refuses_a_server_ssl_cert_file_does_not_vouch_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trusted, _, _ = write_authority(tmp_path, "trusted-ca")
    _, other_ca, other_key = write_authority(tmp_path, "other-ca")
    served = write_localhost_certificate(tmp_path, other_ca, other_key)
    monkeypatch.setenv("SSL_CERT_FILE", str(trusted))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)

    tls = http_options(None, "v1beta", 20.0).client_args["verify"]

    assert not handshake_succeeds(tls, served)


def test_two_threads_asking_at_once_share_one_client_and_both_get_copy(
    standin: GeminiStandIn,
    clock: FixedClock,
    voice: BrandVoice,
    requests: list[DraftRequest],
) -> None:
    # Arrange: a client dropped by a racing thread is closed when it is collected,
    # under the other thread's call ("client has been closed").
    captioner = CaptionerBuildingInStep(
        api_key=DEFAULT_API_KEY,
        base_url=standin.base_url,
        clock=clock,
        retry_pause_s=0,
    )

    # Act
    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = [pool.submit(captioner.write_copy, requests, voice) for _ in range(2)]
        results = [answer.result() for answer in answers]

    # Assert
    assert captioner.builds == 1
    assert all(None not in result.texts for result in results)
    assert len(calls(standin)) == 2
