"""A local stand-in for the Gemini API's generateContent, over real HTTP on loopback.

It speaks the REST format google-genai sends and reads, so tests and the demo run the
real client against it:

    POST /{v1beta|v1}/models/{model}:generateContent    key in x-goog-api-key or ?key=
    POST /_standin/faults      {"mode": ..., "count": n, ...options}: the next n calls
    GET  /_standin/faults      the fault in force, if any
    GET  /_standin/requests    every API request received (path, headers, body)
    POST /_standin/reset       forget faults and requests

In-process, hold_answers() holds every answer until an event is set, and
wait_for_requests(n) waits for the n-th request: a test makes calls overlap.

Requests are read like the real service reads them: an unknown field is a 400
"Invalid JSON payload received. Unknown name ...". On /v1/ the known fields are those
of google.ai.generativelanguage.v1 (GenerateContentRequest: model, contents,
safetySettings, generationConfig; GenerationConfig without responseMimeType,
responseSchema, responseJsonSchema, thinkingConfig or seed), which is why
systemInstruction and JSON mode work on v1beta only.

When the user turn holds mentions as JSON ({"mentions": [{"id", "text"}]}), the
answer labels each ({"results": [{"id", "sentiment", "score", "intent"}]}) by a few
fixed keywords, a deterministic stand-in for the model's judgement; the faults
missing_ref, duplicate_ref, unknown_ref, wrong_types and invalid_json apply to it.
Otherwise the answer is a caption per product found as JSON ({"products":
[{"ref", "title", "description", "price_text", ...}]}) in the user turn, built
deterministically from those facts, without links; JSON ({"captions": [{"ref",
"text"}]}) when the request asks for application/json, each caption also labelled
with its `language` when the response schema asks for one. A product of kind "poll"
gets a question and `poll_options`, one of kind "thread" two `parts` instead of a
text. The caption is in the language the system instruction asks for ("Write in
this language: de.") when the stand-in has phrases for it (PHRASES: en, de, es, fr,
ja), and in English, labelled "en", otherwise; in a language other than English it
leaves out the description, which it cannot translate. Fault modes
(FAULT_MODES) reproduce the answers the real service gives when things go wrong,
each shaped as the real one.

Given `requests_per_minute` and `requests_per_day`, it enforces a quota as the free
tier does: a call over either answers 429 RESOURCE_EXHAUSTED with the RetryInfo
delay until a call frees (a call counts for the 60 seconds after it, and for its day
in Pacific time), on the `clock` it is given, and `quota_refusals` counts them. The
quota bench (bench/caption_quota.py) runs against it.

    python -m infra.gemini_standin --port 8086 [--api-key KEY]
        [--requests-per-minute N] [--requests-per-day N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import math
import re
import threading
import time
import zoneinfo
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

DEFAULT_API_KEY = "standin-gemini-key"
HOST = "127.0.0.1"
# How long a held answer waits for its release at most (hold_answers).
HOLD_S_MAX = 30

FAULT_MODES = frozenset(
    {
        "invalid_json",  # STOP, but the text is prose, not JSON
        "truncated",  # MAX_TOKENS with the JSON cut halfway
        "empty_thinking",  # MAX_TOKENS, no text: thinking spent the budget
        "empty_text",  # STOP with one empty text part: an answer of nothing
        "safety",  # finishReason SAFETY, no content
        "prompt_blocked",  # promptFeedback.blockReason, no candidates
        # 429 RESOURCE_EXHAUSTED with RetryInfo (option retry_delay_s); option
        # per_day names the per-day quota in the QuotaFailure, with the short
        # retryDelay Google still gives then (googleapis/python-genai#2044: "47s").
        "quota",
        "server_error",  # 500 INTERNAL, or 503 UNAVAILABLE (option status)
        "wrong_types",  # refs as numbers, texts as lists
        "missing_ref",  # the last product (or mention) gets no caption (or label)
        "duplicate_ref",  # the first mention is labelled twice
        "unknown_ref",  # a label for a mention id that was never sent
        "too_long",  # the first caption runs past 280 characters
        "banned_word",  # the first caption uses a word (option word, "cure")
        # The first caption is in another language than asked (option language:
        # English, or German when English was asked), labelled as written, or
        # with option labelled.
        "wrong_language",
        "slow",  # answer after delay_s seconds (option delay_s, 5)
    }
)

# Field names per API version, as protobuf JSON accepts them (camelCase; snake_case
# is accepted too and normalised before the check).
REQUEST_FIELDS = {
    "v1": {"model", "contents", "safetySettings", "generationConfig"},
    "v1beta": {
        "model",
        "contents",
        "systemInstruction",
        "safetySettings",
        "generationConfig",
        "tools",
        "toolConfig",
        "cachedContent",
    },
}
GENERATION_CONFIG_FIELDS = {
    "v1": {
        "candidateCount",
        "stopSequences",
        "maxOutputTokens",
        "temperature",
        "topP",
        "topK",
        "presencePenalty",
        "frequencyPenalty",
        "responseLogprobs",
        "logprobs",
        "enableEnhancedCivicAnswers",
    },
}
GENERATION_CONFIG_FIELDS["v1beta"] = GENERATION_CONFIG_FIELDS["v1"] | {
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "responseModalities",
    "seed",
    "speechConfig",
    "thinkingConfig",
    "imageConfig",
    "mediaResolution",
}
# Thought tokens a 2.5 model spends per product before answering; they count against
# maxOutputTokens as on the real service.
THOUGHT_TOKENS_PER_PRODUCT = 24

PACIFIC = zoneinfo.ZoneInfo("America/Los_Angeles")
QUOTA_WINDOW = dt.timedelta(seconds=60)

_ROUTE = re.compile(r"/(?P<version>v1|v1beta)/models/(?P<model>[^/:]+):generateContent")


class GeminiStandIn:
    """The stand-in server, run in a thread of the calling process."""

    def __init__(
        self,
        *,
        port: int = 0,
        api_key: str = DEFAULT_API_KEY,
        requests_per_minute: int | None = None,
        requests_per_day: int | None = None,
        clock: Any = None,
    ) -> None:
        self.api_key = api_key
        self.requests_per_minute = requests_per_minute
        self.requests_per_day = requests_per_day
        self.quota_refusals = 0
        self._clock = clock
        self._calls: list[dt.datetime] = []
        self._lock = threading.Lock()
        self._fault: dict[str, Any] | None = None
        self._requests: list[dict[str, Any]] = []
        self._served = 0
        self._release: threading.Event | None = None
        self._arrived = threading.Condition(self._lock)
        self._server = ThreadingHTTPServer((HOST, port), _Handler)
        self._server.daemon_threads = True
        self._server.standin = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> GeminiStandIn:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="gemini-standin", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> GeminiStandIn:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def set_fault(self, mode: str | None, count: int = 1, **options: Any) -> None:
        """Make the next `count` generateContent calls fail as `mode` (None clears)."""
        if mode is not None and mode not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {mode!r}")
        with self._lock:
            self._fault = (
                None if mode is None else {"mode": mode, "count": count, **options}
            )

    def hold_answers(self) -> threading.Event:
        """Hold each generateContent answer, once its request is recorded, until the
        returned event is set (HOLD_S_MAX at most): a test makes calls overlap."""
        with self._lock:
            self._release = threading.Event()
            return self._release

    def wait_for_requests(self, count: int, timeout_s: float = HOLD_S_MAX) -> bool:
        """Wait until `count` API requests came in (at most `timeout_s`); say if so."""
        with self._arrived:
            return self._arrived.wait_for(
                lambda: len(self._requests) >= count, timeout_s
            )

    def requests(self) -> list[dict[str, Any]]:
        """Return the API requests received so far, oldest first."""
        with self._lock:
            return json.loads(json.dumps(self._requests))

    def reset(self) -> None:
        with self._lock:
            self._fault = None
            self._requests.clear()

    # --- called by the handler ----------------------------------------------------

    def _take_fault(self) -> dict[str, Any] | None:
        with self._lock:
            fault = self._fault
            if fault is None:
                return None
            fault["count"] -= 1
            if fault["count"] <= 0:
                self._fault = None
            return dict(fault)

    def _record(self, entry: dict[str, Any]) -> None:
        with self._arrived:
            self._requests.append(entry)
            self._arrived.notify_all()

    def _take_quota(self) -> tuple[float, bool] | None:
        """Count a call against the quota; if over it, return the retry delay (s)
        and whether the day's quota is the one spent."""
        if self.requests_per_minute is None and self.requests_per_day is None:
            return None
        now = self._clock.now() if self._clock else dt.datetime.now(dt.UTC)
        day = now.astimezone(PACIFIC).date()
        with self._lock:
            recent = [t for t in self._calls if t > now - QUOTA_WINDOW]
            today = [t for t in self._calls if t.astimezone(PACIFIC).date() == day]
            if (
                self.requests_per_day is not None
                and len(today) >= self.requests_per_day
            ):
                midnight = dt.datetime.combine(
                    day + dt.timedelta(days=1), dt.time(), tzinfo=PACIFIC
                )
                delay, per_day = midnight - now, True
            elif (
                self.requests_per_minute is not None
                and len(recent) >= self.requests_per_minute
            ):
                delay, per_day = min(recent) + QUOTA_WINDOW - now, False
            else:
                self._calls.append(now)
                return None
            self.quota_refusals += 1
        # Whole seconds, as the service gives them ("17s").
        return float(max(math.ceil(delay.total_seconds()), 1)), per_day

    def _next_response_id(self) -> str:
        with self._lock:
            self._served += 1
            served = self._served
        return hashlib.sha256(f"standin-{served}".encode()).hexdigest()[:22]

    def _fault_state(self) -> dict[str, Any] | None:
        with self._lock:
            return dict(self._fault) if self._fault else None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "GeminiStandIn"
    # The head and the body of an answer leave in two writes (end_headers, then
    # the payload). With Nagle's algorithm the second waited for the client's
    # delayed ACK of the first: about 40 ms on every call over a kept-alive
    # connection (44 ms a call measured, 7 ms for the first), where Google's
    # front end answers without such a pause. TCP_NODELAY sends both at once.
    disable_nagle_algorithm = True

    @property
    def standin(self) -> GeminiStandIn:
        return self.server.standin  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        # Quiet: request lines would carry ?key= when a client uses it.
        return

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/_standin/requests":
            self._send(200, {"requests": self.standin.requests()})
        elif path == "/_standin/faults":
            self._send(200, {"fault": self.standin._fault_state()})
        else:
            self._send(404, _error(404, "NOT_FOUND", f"No route for GET {path}."))

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))

        if parts.path == "/_standin/faults":
            self._control_faults(raw)
        elif parts.path == "/_standin/reset":
            self.standin.reset()
            self._send(200, {})
        elif (route := _ROUTE.fullmatch(parts.path)) is not None:
            self._generate_content(route, parts.query, raw)
        else:
            message = f"Method not found: POST {parts.path}."
            self._send(404, _error(404, "NOT_FOUND", message))

    def _control_faults(self, raw: bytes) -> None:
        try:
            order = json.loads(raw or b"{}")
            options = {k: v for k, v in order.items() if k not in ("mode", "count")}
            self.standin.set_fault(
                order.get("mode"), int(order.get("count", 1)), **options
            )
        except (ValueError, TypeError, AttributeError) as problem:
            self._send(400, _error(400, "INVALID_ARGUMENT", str(problem)))
            return
        self._send(200, {"fault": self.standin._fault_state()})

    def _generate_content(self, route: re.Match[str], query: str, raw: bytes) -> None:
        version, model = route.group("version"), route.group("model")
        status, body = self._answer(version, model, query, raw)
        release = self.standin._release
        if release is not None:
            release.wait(HOLD_S_MAX)
        self._send(status, body)

    def _answer(
        self, version: str, model: str, query: str, raw: bytes
    ) -> tuple[int, dict[str, Any]]:
        key = self.headers.get("x-goog-api-key") or parse_qs(query).get("key", [""])[0]
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        self._record(version, model, key, body if body is not None else raw)

        # Checked in this order: key, body, fields, model. The real service's order
        # is not documented; each answer's shape is what matters to the client.
        if not key:
            return 403, _missing_key_error()
        if key != self.standin.api_key:
            return 400, _invalid_key_error()
        if not isinstance(body, dict):
            return 400, _error(
                400, "INVALID_ARGUMENT", "Invalid JSON payload received."
            )
        unknown = _unknown_fields(version, body)
        if unknown:
            return 400, _unknown_fields_error(unknown)
        if not body.get("contents"):
            message = "* GenerateContentRequest.contents: contents is not specified\n"
            return 400, _error(400, "INVALID_ARGUMENT", message)
        if not model.startswith(("gemini-", "gemma-")):
            message = (
                f"models/{model} is not found for API version {version}, or is not "
                "supported for generateContent. Call ListModels to see the list of "
                "available models and their supported methods."
            )
            return 404, _error(404, "NOT_FOUND", message)

        over_quota = self.standin._take_quota()
        if over_quota is not None:
            retry_delay_s, per_day = over_quota
            return 429, _quota_error(model, retry_delay_s, per_day=per_day)
        fault = self.standin._take_fault()
        if fault and fault["mode"] == "slow":
            time.sleep(float(fault.get("delay_s", 5)))
            fault = None
        return _model_answer(body, model, fault, self.standin._next_response_id())

    def _record(self, version: str, model: str, key: str, body: Any) -> None:
        # Every header but the key, so tests can assert what the client sent.
        headers = {
            name.lower(): value
            for name, value in self.headers.items()
            if name.lower() not in ("x-goog-api-key", "authorization")
        }
        if isinstance(body, bytes):
            body = body.decode("utf-8", "replace")
        self.standin._record(
            {
                "path": urlsplit(self.path).path,
                "api_version": version,
                "model": model,
                "headers": headers,
                "key_sent": bool(key),
                "body": body,
            }
        )

    def _send(self, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (a timeout test): nothing left to answer.
            self.close_connection = True


# --- the model ------------------------------------------------------------------


def _model_answer(
    body: dict[str, Any], model: str, fault: dict[str, Any] | None, response_id: str
) -> tuple[int, dict[str, Any]]:
    mode = fault["mode"] if fault else None
    if mode == "quota":
        return 429, _quota_error(
            model,
            fault.get("retry_delay_s", 17),
            per_day=bool(fault.get("per_day", False)),
        )
    if mode == "server_error":
        return _server_error(int(fault.get("status", 500)))

    config = body.get("generationConfig") or body.get("generation_config") or {}
    mime_type = config.get("responseMimeType") or config.get("response_mime_type")
    wants_json = mime_type == "application/json"
    max_tokens = config.get("maxOutputTokens") or config.get("max_output_tokens")
    products = _products_in(body.get("contents") or [])
    language = _language_asked(body)
    labelled = _schema_asks_language(config)
    prompt_tokens = _tokens(json.dumps(body))
    thoughts = THOUGHT_TOKENS_PER_PRODUCT * max(len(products), 1)
    envelope = {"modelVersion": model, "responseId": response_id}

    if mode == "prompt_blocked":
        feedback = {
            "blockReason": fault.get("block_reason", "SAFETY"),
            "safetyRatings": _safety_ratings(blocked=True),
        }
        usage = {"promptTokenCount": prompt_tokens, "totalTokenCount": prompt_tokens}
        return 200, {"promptFeedback": feedback, "usageMetadata": usage, **envelope}

    if mode == "safety":
        candidate = {
            "finishReason": "SAFETY",
            "index": 0,
            "safetyRatings": _safety_ratings(blocked=True),
        }
        usage = _usage(prompt_tokens, 0, thoughts)
        return 200, {"candidates": [candidate], "usageMetadata": usage, **envelope}

    if mode == "empty_thinking" or (max_tokens and thoughts >= max_tokens):
        spent = int(max_tokens or 8192)
        candidate = {
            "content": {"role": "model"},
            "finishReason": "MAX_TOKENS",
            "index": 0,
        }
        usage = _usage(prompt_tokens, 0, spent)
        return 200, {"candidates": [candidate], "usageMetadata": usage, **envelope}

    mentions = _mentions_in(body.get("contents") or [])
    if mentions and not products:
        text = _labels_text(mentions, wants_json, fault)
    else:
        text = _answer_text(products, wants_json, fault, language, labelled=labelled)
    finish = "STOP"
    if mode == "empty_text":
        text = ""
    answer_tokens = _tokens(text)
    if mode == "truncated":
        text, finish = text[: max(len(text) // 2, 1)], "MAX_TOKENS"
    elif max_tokens and thoughts + answer_tokens > max_tokens:
        kept = max((int(max_tokens) - thoughts) * 4, 1)
        text, finish = text[:kept], "MAX_TOKENS"

    candidate = {
        "content": {"parts": [{"text": text}], "role": "model"},
        "finishReason": finish,
        "index": 0,
    }
    usage = _usage(prompt_tokens, _tokens(text), thoughts)
    return 200, {"candidates": [candidate], "usageMetadata": usage, **envelope}


def _answer_text(
    products: list[dict[str, Any]],
    wants_json: bool,
    fault: dict[str, Any] | None,
    language: str,
    *,
    labelled: bool,
) -> str:
    mode = fault["mode"] if fault else None
    written = language if language in PHRASES else "en"
    languages = [written] * len(products)
    labels = list(languages)
    if mode == "wrong_language" and products:
        other = fault.get("language") or ("de" if written == "en" else "en")
        languages[0] = other
        labels[0] = fault.get("labelled") or other
    captions = [
        _caption(product, written_in)
        for product, written_in in zip(products, languages, strict=True)
    ]

    if mode == "too_long" and captions:
        filler = " So much to love, from morning to night, every single day."
        while len(captions[0]) <= 300:
            captions[0] += filler
    if mode == "banned_word" and captions:
        captions[0] += f" A real {fault.get('word', 'cure')} for dull days."

    refs = [str(product.get("ref", index)) for index, product in enumerate(products)]
    if mode == "missing_ref" and refs:
        refs, captions = refs[:-1], captions[:-1]
    if mode == "wrong_types":
        items = [
            {"ref": index, "text": [caption]} for index, caption in enumerate(captions)
        ]
        return json.dumps({"captions": items}, ensure_ascii=False)
    if mode == "invalid_json" or not wants_json:
        lines = [
            f"{ref}: {caption}" for ref, caption in zip(refs, captions, strict=True)
        ]
        return "Here are your posts!\n" + "\n".join(lines)

    items = []
    # Not strict: missing_ref has dropped the last ref and caption.
    for ref, caption, product, written_in, label in zip(
        refs, captions, products, languages, labels, strict=False
    ):
        item = _shaped({"ref": ref, "text": caption}, product, written_in)
        items.append({**item, "language": label} if labelled else item)
    return json.dumps({"captions": items}, ensure_ascii=False)


# The stand-in's whole "judgement" of a mention: the first rule whose word appears.
LABEL_RULES = (
    (("follow back", "airdrop", "presale"), "spam", "neutral", 0.0),
    (
        ("never arrived", "where is my", "wrong size", "refund", "broken"),
        "order_issue",
        "negative",
        -0.7,
    ),
    (("worst", "terrible", "rude", "overpriced"), "complaint", "negative", -0.6),
    (("love", "great", "thank"), "praise", "positive", 0.8),
    (("?",), "question", "neutral", 0.0),
)


def _labels_text(
    mentions: list[dict[str, Any]], wants_json: bool, fault: dict[str, Any] | None
) -> str:
    mode = fault["mode"] if fault else None
    items = [_label(mention) for mention in mentions]
    if mode == "missing_ref" and items:
        items = items[:-1]
    if mode == "duplicate_ref" and items:
        items.append(dict(items[0]))
    if mode == "unknown_ref":
        items.append({**_label({"id": "m-unknown", "text": ""})})
    if mode == "wrong_types":
        items = [{**item, "score": str(item["score"])} for item in items]
    if mode == "invalid_json" or not wants_json:
        return "Labels: " + ", ".join(f"{i['id']}={i['intent']}" for i in items)
    return json.dumps({"results": items}, ensure_ascii=False)


def _label(mention: dict[str, Any]) -> dict[str, Any]:
    text = str(mention.get("text") or "").lower()
    intent, sentiment, score = "other", "neutral", 0.0
    for words, *label in LABEL_RULES:
        if any(word in text for word in words):
            intent, sentiment, score = label
            break
    return {
        "id": str(mention.get("id")),
        "sentiment": sentiment,
        "score": score,
        "intent": intent,
    }


# The stand-in's few fixed phrases per language it writes: openers, an offer at
# the price or the sale price, a poll's question and options, a thread's closing.
PHRASES: dict[str, dict[str, Any]] = {
    "en": {
        "openers": ("Say hi to {title}.", "Meet {title}.", "{title}, just for you."),
        "price": "Only {price}.",
        "sale": "Now {sale} ({percent}% off).",
        "question": "Would you try it?",
        "options": ("Love it", "Maybe", "Not for me"),
        "closing": "Have a look.",
    },
    "de": {
        "openers": ("Entdecke {title}.", "Hallo, {title}.", "{title}, nur für dich."),
        "price": "Nur {price}.",
        "sale": "Jetzt {sale}.",
        "question": "Würdest du es probieren?",
        "options": ("Klar", "Vielleicht", "Eher nicht"),
        "closing": "Schau es dir an.",
    },
    "es": {
        "openers": ("Descubre {title}.", "Hola, {title}.", "{title}, para ti."),
        "price": "Solo {price}.",
        "sale": "Ahora {sale}.",
        "question": "¿Lo probarías?",
        "options": ("Sí", "Quizás", "No"),
        "closing": "Échale un vistazo.",
    },
    "fr": {
        "openers": ("Découvrez {title}.", "Voici {title}.", "{title}, pour vous."),
        "price": "Seulement {price}.",
        "sale": "Maintenant {sale}.",
        "question": "Vous l'essaieriez ?",
        "options": ("Oui", "Peut-être", "Non"),
        "closing": "Jetez-y un œil.",
    },
    "ja": {
        "openers": ("{title}をご紹介。", "{title}はいかが？", "{title}、あなたに。"),
        "price": "{price}でお届け。",
        "sale": "今なら{sale}。",
        "question": "試してみますか？",
        "options": ("ほしい", "たぶん", "いらない"),
        "closing": "ぜひご覧ください。",
    },
}


def _shaped(
    item: dict[str, Any], product: dict[str, Any], language: str
) -> dict[str, Any]:
    # What a model following the schema of a poll or a thread gives back.
    phrases = PHRASES[language]
    kind = product.get("kind")
    if kind == "poll":
        return {
            **item,
            "text": f"{phrases['question']} {item['text']}",
            "poll_options": list(phrases["options"]),
        }
    if kind == "thread":
        head, *rest = re.split(r"(?<=[.!?。？])\s*", item["text"], maxsplit=1)
        tail = rest[0] if rest and rest[0] else phrases["closing"]
        return {"ref": item["ref"], "parts": [head, tail]}
    return item


def _caption(product: dict[str, Any], language: str = "en") -> str:
    # Short, on-brand-ish, built from the facts in the prompt only; a hashtag from
    # the first tag, as models like to add one; never a link. The description is
    # English catalog text: only an English caption quotes it.
    phrases = PHRASES[language]
    title = str(product.get("title") or "our latest find")
    variant = int(product.get("variant") or 0)
    digest = int(hashlib.sha256(f"{title}/{variant}".encode()).hexdigest(), 16)
    openers = phrases["openers"]
    opener = openers[(digest + variant) % len(openers)].format(title=title)

    hook = ""
    if language == "en":
        description = " ".join(str(product.get("description") or "").split())
        hook = re.split(r"(?<=[.!?])\s+", description, maxsplit=1)[0]
        if len(hook) > 90:
            hook = hook[:90].rsplit(" ", 1)[0].rstrip(",;:") + "…"

    sale, price = product.get("sale_price_text"), product.get("price_text")
    if sale:
        percent = product.get("discount_percent")
        offer = phrases["sale"].format(sale=sale, percent=percent)
    elif price:
        offer = phrases["price"].format(price=price)
    else:
        offer = ""
    tags = [t for t in product.get("tags") or [] if isinstance(t, str) and t.isalpha()]
    hashtag = f"#{tags[0].capitalize()}" if tags else ""
    return " ".join(part for part in (opener, hook, offer, hashtag) if part)


def _language_asked(body: dict[str, Any]) -> str:
    # Read as a model would: "Write in this language: de." in the system
    # instruction; English when none is named.
    instruction = body.get("systemInstruction") or body.get("system_instruction")
    for part in (instruction or {}).get("parts") or []:
        found = re.search(r"Write in this language: ([a-z]{2})\.", part.get("text", ""))
        if found:
            return found.group(1)
    return "en"


def _schema_asks_language(config: dict[str, Any]) -> bool:
    # A model following the response schema labels each caption only if asked to.
    schema = config.get("responseSchema") or config.get("response_schema") or {}
    captions = (schema.get("properties") or {}).get("captions") or {}
    item = captions.get("items") or {}
    return "language" in (item.get("properties") or {})


def _products_in(contents: list[Any]) -> list[dict[str, Any]]:
    # The products are JSON somewhere in the user's text: take the first object with
    # a "products" list, as a model reading the prompt would.
    decoder = json.JSONDecoder()
    for content in contents:
        for part in (content or {}).get("parts") or []:
            text = part.get("text") or ""
            for start in [match.start() for match in re.finditer(r"\{", text)]:
                try:
                    value, _ = decoder.raw_decode(text, start)
                except ValueError:
                    continue
                if isinstance(value, dict) and isinstance(value.get("products"), list):
                    return [p for p in value["products"] if isinstance(p, dict)]
    return []


def _mentions_in(contents: list[Any]) -> list[dict[str, Any]]:
    # Mentions to label are a JSON object with a "mentions" list in the user turn.
    for content in contents:
        for part in (content or {}).get("parts") or []:
            try:
                value = json.loads(part.get("text") or "")
            except ValueError:
                continue
            if isinstance(value, dict) and isinstance(value.get("mentions"), list):
                return [m for m in value["mentions"] if isinstance(m, dict)]
    return []


def _tokens(text: str) -> int:
    # About four characters a token, as Google's guidance puts it for English.
    return max(1, (len(text) + 3) // 4)


def _usage(prompt: int, candidates: int, thoughts: int) -> dict[str, int]:
    usage = {"promptTokenCount": prompt}
    if candidates:
        usage["candidatesTokenCount"] = candidates
    usage["totalTokenCount"] = prompt + candidates + thoughts
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    return usage


def _safety_ratings(*, blocked: bool) -> list[dict[str, Any]]:
    ratings = [
        {"category": category, "probability": "NEGLIGIBLE"}
        for category in (
            "HARM_CATEGORY_HATE_SPEECH",
            "HARM_CATEGORY_HARASSMENT",
            "HARM_CATEGORY_SEXUALLY_EXPLICIT",
        )
    ]
    dangerous = {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}
    if blocked:
        dangerous["blocked"] = True
    return [dangerous, *ratings]


# --- Google's error bodies --------------------------------------------------------


def _error(
    code: int, status: str, message: str, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return {"error": error}


def _invalid_key_error() -> dict[str, Any]:
    message = "API key not valid. Please pass a valid API key."
    return _error(
        400,
        "INVALID_ARGUMENT",
        message,
        [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            },
            {
                "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                "locale": "en-US",
                "message": message,
            },
        ],
    )


def _missing_key_error() -> dict[str, Any]:
    message = (
        "Method doesn't allow unregistered callers (callers without established "
        "identity). Please use API Key or other form of API consumer identity to "
        "call this API."
    )
    return _error(403, "PERMISSION_DENIED", message)


def _unknown_fields(version: str, body: dict[str, Any]) -> list[tuple[str, str | None]]:
    unknown: list[tuple[str, str | None]] = []
    for name in body:
        if _camel(name) not in REQUEST_FIELDS[version]:
            unknown.append((name, None))
    config = body.get("generationConfig") or body.get("generation_config") or {}
    if isinstance(config, dict):
        for name in config:
            if _camel(name) not in GENERATION_CONFIG_FIELDS[version]:
                unknown.append((name, "generation_config"))
    return unknown


def _unknown_fields_error(unknown: list[tuple[str, str | None]]) -> dict[str, Any]:
    violations = []
    for name, parent in unknown:
        where = f" at '{parent}'" if parent else ""
        description = (
            f'Invalid JSON payload received. Unknown name "{name}"{where}: '
            "Cannot find field."
        )
        violation = {"description": description}
        if parent:
            violation = {"field": parent, **violation}
        violations.append(violation)
    message = "\n".join(v["description"] for v in violations)
    details = [
        {
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": violations,
        }
    ]
    return _error(400, "INVALID_ARGUMENT", message, details)


def _quota_error(
    model: str, retry_delay_s: float, *, per_day: bool = False
) -> dict[str, Any]:
    delay = f"{retry_delay_s:g}s"
    window = "PerDay" if per_day else "PerMinute"
    message = (
        "You exceeded your current quota, please check your plan and billing details. "
        "For more information on this error, head to: "
        "https://ai.google.dev/gemini-api/docs/rate-limits. "
        f"Please retry in {retry_delay_s:g}s."
    )
    return _error(
        429,
        "RESOURCE_EXHAUSTED",
        message,
        [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": "generativelanguage.googleapis.com/"
                        "generate_content_free_tier_requests",
                        "quotaId": (
                            f"GenerateRequests{window}PerProjectPerModel-FreeTier"
                        ),
                        "quotaDimensions": {"location": "global", "model": model},
                        "quotaValue": "10",
                    }
                ],
            },
            {
                "@type": "type.googleapis.com/google.rpc.Help",
                "links": [
                    {
                        "description": "Learn more about Gemini API quotas",
                        "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                    }
                ],
            },
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay},
        ],
    )


def _server_error(status: int) -> tuple[int, dict[str, Any]]:
    if status == 503:
        message = "The model is overloaded. Please try again later."
        return 503, _error(503, "UNAVAILABLE", message)
    message = (
        "An internal error has occurred. Please retry or report in "
        "https://developers.generativeai.google/guide/troubleshooting"
    )
    return status, _error(status, "INTERNAL", message)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def main() -> None:
    """Run the stand-in in the foreground until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    parser.add_argument("--requests-per-minute", type=int, help="enforce a quota")
    parser.add_argument("--requests-per-day", type=int, help="enforce a quota")
    arguments = parser.parse_args()

    standin = GeminiStandIn(
        port=arguments.port,
        api_key=arguments.api_key,
        requests_per_minute=arguments.requests_per_minute,
        requests_per_day=arguments.requests_per_day,
    )
    print(f"Gemini stand-in listening on {standin.base_url}", flush=True)
    try:
        standin._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        standin._server.server_close()


if __name__ == "__main__":
    main()
