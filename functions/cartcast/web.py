"""HTTP plumbing shared by the two HTTP functions: JSON in, JSON out, errors mapped.

Every failure a client can cause answers a 4xx with {"error": {"code", "message",
"field"}}; a request that fails writes nothing, because each request runs in one
transaction that commits only when the handler returns.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import math
import re
import sys
import uuid
from decimal import Decimal, InvalidOperation
from typing import Any

from werkzeug.exceptions import ClientDisconnected

from cartcast.errors import (
    BodyTimedOut,
    CartcastError,
    ConfigurationError,
    InvalidRequest,
    PayloadTooLarge,
    RateLimited,
    TransientError,
    Unauthorized,
    UnsupportedMediaType,
)

BODY_BYTES_MAX = 2 * 1024 * 1024
# Cloud Run functions (2nd gen) pass no HTTP request over 32 MB to a function
# (Google's published quotas), so every body a deployed function meets is read
# away before it answers, in pieces it keeps none of (decision 0076).
DISCARD_BYTES_MAX = 32 * 1024 * 1024
DISCARD_PIECE_BYTES = 64 * 1024
# What CARTCAST_BODY_WAIT_S defaults to, and the wait where settings do not load.
BODY_WAIT_S = 10.0
# Far beyond any store export; keeps json.dumps and jsonb well inside their limits.
JSON_DEPTH_MAX = 64
FIELD_LENGTH_MAX = 200
JSON_HEADERS = {"Content-Type": "application/json", "Cache-Control": "no-store"}
# NUL, which PostgreSQL text refuses, and the surrogates, which UTF-8 cannot encode.
UNSTORABLE_CHARACTER = re.compile("[\x00\ud800-\udfff]")

Response = tuple[str, int, dict[str, str]]
# A path to a value: None for the body itself, else (parent path, key or index).
_Path = tuple[Any, str | int] | None


def read_json(request: Any, *, optional: bool = False) -> Any:
    """Return the request's JSON body, or raise InvalidRequest saying what is wrong.

    With `optional`, an empty body reads as an empty object, and any other body must
    be an object. Every string, keys included, is checked to be storable.
    """
    return parse_json(request, read_body(request), optional=optional)


def read_csv(request: Any) -> str:
    """Return a text/csv body as text: UTF-8 (a leading BOM is dropped), no NUL.

    Another media type is a 415 naming text/csv, as a JSON route's names JSON; a
    zero-length body is a 400 whatever its type, as it is on a JSON route: there is
    no file to refuse the type of.
    """
    raw = read_body(request)
    if not raw:
        raise InvalidRequest("body is empty; send a CSV file as text/csv", field="body")
    if request.mimetype != "text/csv":
        raise _unsupported_media_type(request.mimetype, "text/csv")
    require_utf8(request)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidRequest(
            f"the CSV file is not UTF-8 (byte {error.start})", field="body"
        ) from error
    if "\x00" in text:
        raise InvalidRequest("the CSV file contains NUL characters", field="body")
    return text


def parse_json(request: Any, raw: bytes, *, optional: bool = False) -> Any:
    """Parse a body already read (`read_body`) as `read_json` would.

    Only a zero-length body is no body: whitespace alone is no JSON text (RFC 8259
    section 2), so it is parsed, and refused, like any other text.
    """
    if not raw:
        if optional:
            return {}
        raise InvalidRequest("body is empty; send a JSON object")
    require_json_media_type(request)
    require_utf8(request)

    body = parse_json_document(raw)

    if optional and not isinstance(body, dict):
        raise InvalidRequest("body must be a JSON object", field="body")
    return body


def read_json_if_any(request: Any) -> Any:
    """Return the request's JSON body, or None for a zero-length body or null."""
    raw = read_body(request)
    if not raw:
        return None
    require_json_media_type(request)
    require_utf8(request)

    return parse_json_document(raw)


def require_json_media_type(request: Any) -> None:
    """Refuse a body not typed application/json or application/<name>+json (415).

    The "+json" suffix says the body is JSON whatever the name before it (RFC 6839
    section 3.1); "application/jsonp" or "text/x-notjson" merely end in the letters.
    """
    media_type = request.mimetype or ""
    if JSON_MEDIA_TYPE.fullmatch(media_type):
        return
    raise _unsupported_media_type(media_type, "application/json")


def _unsupported_media_type(media_type: str, taken: str) -> UnsupportedMediaType:
    """The 415 of a body typed `media_type` where `taken` is read."""
    shown = repr(media_type[:FIELD_LENGTH_MAX]) if media_type else "missing"
    return UnsupportedMediaType(
        f"the body's media type is {shown}; send it as {taken}",
        field="Content-Type",
    )


# A `charset` parameter as the header writes it, counted after blanking quoted
# strings, so that `boundary="a; charset=x"` names none. Werkzeug's
# mimetype_params keeps the last of a repeated parameter and drops one with
# spaces around "=" (RFC 9110 allows none there) without a word.
QUOTED_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
CHARSET_PARAMETER = re.compile(r";\s*charset\*?\s*=", re.IGNORECASE)


# Charsets a UTF-8 reader reads as the sender meant: UTF-8 by its two common
# names, and ASCII, every byte of which UTF-8 reads the same.
UTF8_READS = frozenset({"utf-8", "utf8", "us-ascii"})
# application/json, or a name of RFC 6838's restricted-name characters (section
# 4.2: a letter or digit first) with the structured syntax suffix "+json" (RFC
# 6839). Werkzeug lower-cases the mimetype before it is matched.
JSON_MEDIA_TYPE = re.compile(r"application/(?:[a-z0-9][a-z0-9!#$&^_.+-]*\+)?json")


def require_utf8(request: Any) -> None:
    """Refuse a body whose Content-Type names a charset other than UTF-8 (415),
    or names one twice or unreadably.

    JSON on the wire is UTF-8 (RFC 8259 section 8.1) and so is every CSV cartcast
    reads; a body declared latin-1 and read as UTF-8 would be stored garbled, or
    refused as not JSON when the sender had said what it was.
    """
    header = QUOTED_STRING.sub('""', request.headers.get("Content-Type", ""))
    written = len(CHARSET_PARAMETER.findall(header))
    charset = request.mimetype_params.get("charset")
    if written > 1:
        raise UnsupportedMediaType(
            "the body's Content-Type gives charset more than once; give it once, "
            "as charset=utf-8, or not at all",
            field="Content-Type",
        )
    if written and not charset:
        raise UnsupportedMediaType(
            "the body's Content-Type has a charset that cannot be read (empty, or "
            "spaces around '='); send charset=utf-8, or no charset",
            field="Content-Type",
        )
    if charset is None or charset.lower() in UTF8_READS:
        return
    raise UnsupportedMediaType(
        f"the body's charset is {charset[:FIELD_LENGTH_MAX]!r}; send it as UTF-8 "
        "(charset=utf-8, or no charset)",
        field="Content-Type",
    )


def parse_json_document(raw: bytes) -> Any:
    """Parse JSON bytes from any source (a body, an uploaded file) and check that
    PostgreSQL can store every string and that it nests at most JSON_DEPTH_MAX."""
    body = _parse(raw)
    check_storable(body)
    return body


def query_value(request: Any, name: str) -> str | None:
    """Return query parameter `name`, None when absent; refuse it given twice.

    Every parameter cartcast reads is a single value: with `?view=week&view=month`
    the first alone would answer a page or filter the caller did not ask for.
    """
    values = request.args.getlist(name)
    if len(values) > 1:
        raise InvalidRequest(
            f"parameter {name[:100]!r} is given more than once; give it once",
            field=name[:100],
        )
    return values[0] if values else None


def read_body(request: Any) -> bytes:
    """Return the raw body, at most BODY_BYTES_MAX bytes, or refuse it (413).

    A signature is computed over these exact bytes, before any parsing.
    """
    raw = read_body_within(request, BODY_BYTES_MAX)
    if raw:
        require_no_content_coding(request)
    return raw


def read_body_within(request: Any, bytes_max: int) -> bytes:
    """Return the raw body if it is at most `bytes_max` bytes long.

    A longer declared length is refused before any of it is read; a chunked body
    is kept no further than one byte past the limit. Either way the rest is
    discarded (`discard_body`), not held.

    Raises:
        PayloadTooLarge: the body is longer than `bytes_max` (413 naming it).
        InvalidRequest: the body broke while it was read (400 naming it).
    """
    too_large = PayloadTooLarge(
        f"body is larger than {_mebibytes(bytes_max)} ({bytes_max} bytes), the "
        "most this route takes",
        field="body",
    )
    if request.content_length is not None and request.content_length > bytes_max:
        discard_body(request)
        raise too_large

    # A chunked body has no Content-Length (Werkzeug reports None), so the cap is
    # enforced on what is read. read(n) may return less than n before the end.
    chunks, size = [], 0
    while size <= bytes_max:
        try:
            chunk = request.stream.read(bytes_max + 1 - size)
        except TimeoutError as error:
            # Waiting for the rest again, to read it away, would hold the thread
            # as long once more: the server closes this connection instead.
            chunks.clear()
            request.stream = io.BytesIO()
            raise BodyTimedOut(
                f"the body stopped arriving: nothing came for {_wait_s(request):g} "
                "s before its end; send it again, whole",
                field="body",
            ) from error
        except _broken_body_errors() as error:
            chunks.clear()
            discard_body(request)
            raise InvalidRequest(
                "the body is cut off or its chunked framing is broken; send it again",
                field="body",
            ) from error
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > bytes_max:
        chunks.clear()
        discard_body(request)
        raise too_large
    return b"".join(chunks)


def bound_body_waits(request: Any, wait_s: float) -> None:
    """Make every read of the request's body wait at most `wait_s` for its next
    bytes; past that the read raises TimeoutError (a 408 in read_body_within).

    gunicorn, which functions-framework serves with, reads a body with no timeout
    of its own: a client that declares a body and stops sending it would hold one
    of the instance's threads (functions-framework starts 4 a core) until it
    hung up, and a few such clients would leave the instance answering nobody.
    Writing the answer is bounded the same way. Served otherwise (Werkzeug's
    test client), there is no socket, and nothing changes.
    """
    sock = request.environ.get("gunicorn.socket")
    if sock is not None:
        sock.settimeout(wait_s)


def _wait_s(request: Any) -> float:
    sock = request.environ.get("gunicorn.socket")
    return (sock.gettimeout() if sock is not None else None) or BODY_WAIT_S


def discard_body(request: Any) -> None:
    """Read away whatever is left of the request's body, keeping none of it.

    Called before every answer is sent. A server that closes a connection with
    body bytes still unread makes the kernel reset it, and a client still sending
    (most send the whole body before they read) then gets no answer at all, not
    the 413 or 401 meant for it. So the rest is read here in small pieces and
    dropped, up to DISCARD_BYTES_MAX; a declared length past that is not read.

    The stream is then left empty: functions-framework reads whatever is left of
    every body once the response is made (its read_request hook calls
    flask.request.get_data()) and would hold it all in memory.

    A body that breaks while it is read (`_broken_body_errors`) ends the reading and
    leaves the answer as it was: the answer is owed to the request, not to its
    body, and the server does not reuse a connection whose body it could not read
    (gunicorn's Body.failed).
    """
    declared = request.content_length
    if declared is None or declared <= DISCARD_BYTES_MAX:
        stream, left = request.stream, DISCARD_BYTES_MAX
        with contextlib.suppress(*_broken_body_errors()):
            while left > 0:
                piece = stream.read(min(DISCARD_PIECE_BYTES, left))
                if not piece:
                    break
                left -= len(piece)
    request.stream = io.BytesIO()


def _broken_body_errors() -> tuple[type[BaseException], ...]:
    """What the server raises when a body breaks while it is read.

    gunicorn (what functions-framework serves with) raises its own parse errors
    for a chunk size that is not hex or a chunk with no CRLF after it, and
    NoMoreData, an OSError, for a body cut off; Werkzeug's development server an
    OSError, or ClientDisconnected for a body shorter than its Content-Length.
    gunicorn's errors are looked up, not imported: a server that has not loaded
    them is not the one serving, and importing them costs a cold start ~10 ms.
    """
    gunicorn_errors = sys.modules.get("gunicorn.http.errors")
    parse_error = gunicorn_errors.ParseException if gunicorn_errors else OSError
    return (OSError, parse_error, ClientDisconnected)


def _mebibytes(size_bytes: int) -> str:
    return f"{size_bytes / (1024 * 1024):g} MiB"


def require_no_content_coding(request: Any) -> None:
    """Refuse a body sent compressed (415 naming Content-Encoding).

    Nothing here decompresses (RFC 9110 section 15.5.16 answers 415 for a coding
    the server does not read): a gzip body read as it is would be refused as
    "not valid JSON" at its second byte, blaming the sender's JSON.
    """
    coding = request.headers.get("Content-Encoding", "").strip()
    if coding and coding.lower() != "identity":
        raise UnsupportedMediaType(
            f"the body's Content-Encoding is {coding[:FIELD_LENGTH_MAX]!r}; send "
            "it uncompressed, with no Content-Encoding",
            field="Content-Encoding",
        )


def _parse(raw: bytes) -> Any:
    try:
        return json.loads(
            raw.decode("utf-8"),
            object_pairs_hook=mark_repeated_keys,
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
            parse_int=_whole_number,
        )
    except RecursionError as error:
        raise InvalidRequest(
            f"body nests deeper than {JSON_DEPTH_MAX} levels"
        ) from error
    except (UnicodeDecodeError, ValueError) as error:
        raise InvalidRequest(f"body is not valid JSON: {error}") from error


def _refuse_constant(name: str) -> Any:
    # Python's json reads NaN and Infinity, which are not JSON and which neither
    # numeric nor jsonb columns can hold.
    raise ValueError(f"{name} is not a JSON number")


class _RepeatedKey(dict):
    """An object that names `key` twice, marked here and refused by check_storable,
    whose walk knows the path the error names (the hook is called inside out)."""

    key: str


def mark_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Build an object for json.loads (`object_pairs_hook`), marked when it names
    a key twice; check_storable and repeated_key read the mark."""
    # json.loads keeps the last of a repeated key (RFC 8259 leaves it to the
    # reader); a proxy or log that keeps the first sees another request, and the
    # caller may have meant either. Counting costs one len() per object.
    value = dict(pairs)
    if len(value) == len(pairs):
        return value
    seen: set[str] = set()
    marked = _RepeatedKey(value)
    for key, _ in pairs:
        if key in seen:
            marked.key = key
            break
        seen.add(key)
    return marked


def repeated_key(value: Any) -> str | None:
    """Return the key an object read by mark_repeated_keys gives twice, or None."""
    return value.key if isinstance(value, _RepeatedKey) else None


def _whole_number(text: str) -> int:
    """A JSON number with neither fraction nor exponent, as an int.

    Python's int() reads at most sys.get_int_max_str_digits() digits (4,300) and
    says so with advice for the server's code; the caller is told the problem.
    """
    digits = len(text.lstrip("-"))
    limit = sys.get_int_max_str_digits()
    if limit and digits > limit:
        raise ValueError(
            f"number {text[:20]}... has {digits} digits; a number has at most {limit}"
        )
    return int(text)


def _finite_float(text: str) -> float | int:
    """A JSON number with a fraction or exponent; the int it equals when it has no
    fraction (3.0, 1e2, 1e20), as JSON Schema's `integer` reads it, so that every
    integer field takes it, and names its bounds when it is out of them."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} is out of range")
    # Read from the text, not the double: past 2**53 a double skips integers, and
    # 1e-400 rounds to 0.0. A finite double bounds it to 309 digits. Decimal holds
    # an exponent of at most 18 digits and raises InvalidOperation, no ValueError,
    # past it (1e-99999999999999999999, which the double reads as 0.0).
    try:
        exact = Decimal(text)
    except InvalidOperation as error:
        raise ValueError(f"number {text[:20]} is out of range") from error
    if exact == exact.to_integral_value():
        return int(exact)
    return value


def check_storable(body: Any) -> None:
    """Refuse nesting past JSON_DEPTH_MAX and strings PostgreSQL text cannot hold.

    Walks the body without recursion. Strings must be encodable as UTF-8 (a lone
    surrogate from a "\\ud800" escape is not; pg8000 would fail on it) and free of
    NUL, which PostgreSQL text refuses. An object the parser marked as naming a key
    twice is refused with the key's path. A path is built only for the error.
    """
    stack: list[tuple[Any, _Path, int]] = [(body, None, 1)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, str):
            _check_string(value, path)
            continue
        if isinstance(value, _RepeatedKey):
            raise InvalidRequest(
                f"the key {value.key[:FIELD_LENGTH_MAX]!r} is given twice in one "
                "object; send it once",
                field=_field((path, value.key)),
            )
        if isinstance(value, dict):
            items: Any = value.items()
        elif isinstance(value, list):
            items = enumerate(value)
        else:
            continue
        if depth > JSON_DEPTH_MAX:
            raise InvalidRequest(
                f"body nests deeper than {JSON_DEPTH_MAX} levels",
                field=_field(path),
            )
        for key, item in items:
            if isinstance(key, str):
                _check_string(key, path, is_key=True)
            if isinstance(item, (str, dict, list)):
                stack.append((item, (path, key), depth + 1))


def _check_string(value: str, path: _Path, *, is_key: bool = False) -> None:
    found = UNSTORABLE_CHARACTER.search(value)
    if found is None:
        return
    what = "a key" if is_key else "a string"
    if found.group() == "\x00":
        problem = f"{what} contains NUL (\\u0000), which cannot be stored"
    else:
        problem = f"{what} is not valid UTF-8 (a lone surrogate such as \\ud800)"
    raise InvalidRequest(problem, field=_field(path))


def _field(path: _Path) -> str:
    """Spell a path the way field names read: `line_items[0].name`."""
    parts: list[str] = []
    while path is not None:
        path, key = path
        parts.append(f"[{key}]" if isinstance(key, int) else f".{key}")
    spelled = "".join(reversed(parts)).removeprefix(".")
    return spelled[:FIELD_LENGTH_MAX] or "body"


def json_response(
    payload: Any, status: int = 200, headers: dict | None = None
) -> Response:
    return (
        json.dumps(payload, default=_encode),
        status,
        {**JSON_HEADERS, **(headers or {})},
    )


def error_response(error: CartcastError, log: Any, now: dt.datetime) -> Response:
    """Map a cartcast error to its HTTP answer."""
    if isinstance(error, InvalidRequest):
        code = type(error).__name__
        body = {"code": _snake(code), "message": str(error), "field": error.field}
        headers = {}
        if error.retry_after_s is not None:
            headers["Retry-After"] = str(error.retry_after_s)
        if isinstance(error, Unauthorized):
            headers["WWW-Authenticate"] = error.challenge
        return json_response({"error": body}, error.status, headers)
    if isinstance(error, TransientError):
        headers = {}
        if isinstance(error, RateLimited) and error.reset_at:
            wait_s = int((error.reset_at - now).total_seconds())
            headers["Retry-After"] = str(max(1, wait_s))
        log.warning("dependency unavailable", exc_info=error)
        message = "a dependency is unavailable; retry later"
        body = {
            "code": "unavailable",
            "message": str(error) if error.message_is_safe else message,
        }
        return json_response({"error": body}, 503, headers)
    if isinstance(error, ConfigurationError):
        log.error("misconfigured", exc_info=error)
    else:
        log.error("request failed", exc_info=error)
    return json_response(
        {"error": {"code": "internal", "message": "internal error"}}, 500
    )


def _encode(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def _snake(name: str) -> str:
    out = "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
    return out
