"""Request bodies past the limit, and bodies no route reads, through the real app.

A body past its route's limit is a 413 naming the limit; a body sent where none
is read (a GET, a HEAD, a 405, a refused key) gets its route's answer. Either way
the body is read away before the answer and none of it is held: a client still
sending when the server closes would get no answer at all, and
functions-framework would hold whatever is left after the response (its
read_request hook). Each test counts the bytes read from a body stream it hands
over itself and the memory the request took; the last one sends real requests to
functions served as Cloud Run serves them.
"""

from __future__ import annotations

import http.client
import tracemalloc
from urllib.parse import urlsplit

import pytest
from gunicorn.http.errors import InvalidChunkSize

from cartcast import runtime, web
from infra.local_cloud import FunctionProcess, _base_env
from tests.conftest import OPERATOR_KEY, make_app
from tests.helpers import CountingStream, auth

LIMIT = web.BODY_BYTES_MAX
DISCARDED_MAX = web.DISCARD_BYTES_MAX
# Sent past the limit yet within what is read away: eight times the limit, so
# that holding it would show far above what a request takes otherwise (a chunked
# body's first limit's worth is kept to be parsed, and the test's stream copies
# each read).
BIG_BODY = 8 * LIMIT
HELD_MAX = BIG_BODY // 2


@pytest.fixture
def client(function_env, monkeypatch):
    """The api function's app (conftest's), with the secret the console's pages
    need to answer."""
    monkeypatch.setenv("CARTCAST_CONSOLE_SECRET", "s" * 32)
    runtime.reset()
    return make_app("api", "http").test_client()


@pytest.fixture
def caption_function(function_env):
    return make_app("generate_caption", "http").test_client()


def sent_as(stream: CountingStream, *, chunked: bool, length: int) -> dict:
    """The WSGI environ of a body declared `length` bytes long, or chunked as
    gunicorn hands one over: no length, the stream ends itself."""
    if chunked:
        framing = {"HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input_terminated": True}
    else:
        framing = {"CONTENT_LENGTH": str(length)}
    return {"wsgi.input": stream, **framing}


# Each route that takes a body: the app, the path, the media type and the key.
BODY_ROUTES = {
    "create a brand": ("client", "/v1/brands", "application/json", "operator"),
    "import orders": ("client", "/v1/orders/import", "text/csv", "brand"),
    "signed order": (
        "client",
        "/v1/webhooks/orders/test-goods",
        "application/json",
        None,
    ),
    "caption": ("caption_function", "/", "application/json", "brand"),
}


def client_and_headers(request, brand_key: str, app: str, key: str | None):
    client = request.getfixturevalue(app)
    keys = {"operator": OPERATOR_KEY, "brand": brand_key}
    return client, auth(keys[key]) if key else {}


def send_measured(client, method: str, path: str, **options) -> tuple[object, int]:
    """The answer to one request and the most memory it held at once."""
    tracemalloc.start()
    try:
        answer = client.open(path, method=method, **options)
        return answer, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("route", sorted(BODY_ROUTES))
@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_past_the_limit_is_a_413_naming_it_read_away_and_not_held(
    request, brand_key, route, chunked
) -> None:
    app, path, media_type, key = BODY_ROUTES[route]
    client, headers = client_and_headers(request, brand_key, app, key)
    stream = CountingStream(size=BIG_BODY)

    answer, held = send_measured(
        client,
        "POST",
        path,
        headers=headers,
        content_type=media_type,
        environ_overrides=sent_as(stream, chunked=chunked, length=BIG_BODY),
    )

    assert answer.status_code == 413, answer.get_data(as_text=True)
    error = answer.get_json()["error"]
    assert "2 MiB" in error["message"]
    assert error["field"] == "body"
    assert stream.bytes_read == BIG_BODY
    assert held < HELD_MAX


@pytest.mark.parametrize("route", sorted(BODY_ROUTES))
def test_a_body_longer_than_any_platform_passes_is_refused_unread(
    request, brand_key, route
) -> None:
    app, path, media_type, key = BODY_ROUTES[route]
    client, headers = client_and_headers(request, brand_key, app, key)
    stream = CountingStream()

    answer = client.post(
        path,
        headers=headers,
        content_type=media_type,
        environ_overrides=sent_as(stream, chunked=False, length=DISCARDED_MAX + 1),
    )

    assert answer.status_code == 413, answer.get_data(as_text=True)
    assert stream.bytes_read == 0


def test_an_endless_chunked_body_is_read_no_further_than_the_discard_cap(
    client,
) -> None:
    stream = CountingStream()

    answer = client.post(
        "/v1/brands",
        headers=auth(OPERATOR_KEY),
        content_type="application/json",
        environ_overrides=sent_as(stream, chunked=True, length=0),
    )

    assert answer.status_code == 413, answer.get_data(as_text=True)
    assert stream.bytes_read <= LIMIT + 1 + DISCARDED_MAX


# Requests whose body no route reads: the method, the app, the path and the key.
UNREAD_BODIES = {
    "a GET": ("GET", "client", "/v1/posts", "brand"),
    "a HEAD": ("HEAD", "client", "/v1/posts", "brand"),
    "a 405": ("PUT", "client", "/v1/brands", "operator"),
    "a 404": ("POST", "client", "/v1/nowhere", "operator"),
    "a path functions-framework does not route": ("POST", "client", "/v1/a%0Ab", None),
    "no key": ("POST", "client", "/v1/brands", None),
    "a caption GET": ("GET", "caption_function", "/", "brand"),
    "a console page": ("GET", "client", "/console/signin", None),
    "a console 405": ("GET", "client", "/console/pause", None),
    "a console GET past the limit": ("GET", "client", "/console/approvals", None),
}


@pytest.mark.parametrize("case", sorted(UNREAD_BODIES))
@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_no_route_reads_is_read_away_and_not_held(
    request, brand_key, case, chunked
) -> None:
    method, app, path, key = UNREAD_BODIES[case]
    client, headers = client_and_headers(request, brand_key, app, key)
    stream = CountingStream(size=BIG_BODY)

    answer, held = send_measured(
        client,
        method,
        path,
        headers=headers,
        content_type="application/json",
        environ_overrides=sent_as(stream, chunked=chunked, length=BIG_BODY),
    )

    assert answer.status_code < 500, answer.get_data(as_text=True)
    assert stream.bytes_read == BIG_BODY
    assert held < HELD_MAX


# Served by functions-framework under gunicorn, as Cloud Run serves the functions:
# a client that sends its whole body before reading (urllib, http.client, most
# SDKs) must still get the answer to a body past the limit. 4 MiB is more than
# loopback's socket buffers take while the client is still sending.
SENT_PAST_THE_LIMIT = 4 * 1024 * 1024
SERVED_CASES = {
    "a declared body past the limit": ("api", "POST", "/v1/brands", "operator", 413),
    "a chunked body past the limit": ("api", "POST", "/v1/brands", "chunked", 413),
    "a body to a 405": ("api", "PUT", "/v1/brands", "operator", 405),
    "a body with no key": ("api", "POST", "/v1/brands", None, 401),
    "a body to a 404": ("api", "POST", "/v1/nowhere", "operator", 404),
    "a caption body past the limit": ("generate_caption", "POST", "/", "brand", 413),
    "a caption body with no key": ("generate_caption", "POST", "/", None, 401),
}


def answer_to(
    url: str, method: str, path: str, how: str | None, brand_key: str
) -> int | str:
    """The status of one request with a body past the limit, or why none came."""
    body = b'{"name": "' + b"x" * SENT_PAST_THE_LIMIT + b'"}'
    headers = {"Content-Type": "application/json", "Connection": "close"}
    if how in ("operator", "chunked", "brand"):
        headers.update(auth(brand_key if how == "brand" else OPERATOR_KEY))
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        if how == "chunked":
            pieces = (body[i : i + 65536] for i in range(0, len(body), 65536))
            connection.request(method, path, pieces, headers, encode_chunked=True)
        else:
            connection.request(method, path, body, headers)
        return connection.getresponse().status
    except OSError as error:
        return f"no answer ({type(error).__name__})"
    finally:
        connection.close()


def test_a_served_function_answers_a_body_it_does_not_take(
    function_env, brand_key, tmp_path
) -> None:
    env = {**_base_env(), **function_env}
    served = {
        target: FunctionProcess(target, env, tmp_path).start()
        for target in ("api", "generate_caption")
    }
    try:
        for process in served.values():
            process.wait_ready()
        answers = {
            case: answer_to(served[target].url, method, path, how, brand_key)
            for case, (target, method, path, how, _) in SERVED_CASES.items()
        }
    finally:
        for process in served.values():
            process.stop()

    assert answers == {case: spec[-1] for case, spec in SERVED_CASES.items()}


class BrokenChunkStream(CountingStream):
    """A chunked body whose framing breaks after `good` bytes, as gunicorn reports
    an invalid chunk size line: its own parse error, not an OSError. (Imported
    above, as the server serving a function has imported it.)"""

    def __init__(self, good: int) -> None:
        super().__init__(size=None)
        self.good = good

    def readinto(self, buffer):
        if self.bytes_read >= self.good:
            raise InvalidChunkSize(b"zz")
        return super().readinto(buffer[: self.good - self.bytes_read])


# Each request whose chunked body breaks: the method, the app, the path, the key
# and the answer it gets: a route that reads the body refuses it (400), one that
# does not gives its own answer.
BROKEN_BODIES = {
    "a route that reads the body": ("POST", "client", "/v1/brands", "operator", 400),
    "a caption request": ("POST", "caption_function", "/", "brand", 400),
    "a console form": ("POST", "client", "/console/signin", None, 400),
    "a 404": ("POST", "client", "/v1/nowhere", "operator", 404),
    "a GET": ("GET", "client", "/v1/posts", "brand", 200),
    "no key": ("POST", "client", "/v1/brands", None, 401),
    "a path functions-framework does not route": (
        "POST",
        "client",
        "/v1/a%0Ab",
        None,
        404,
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN_BODIES))
def test_a_chunked_body_whose_framing_breaks_is_never_a_500(
    request, brand_key, case
) -> None:
    method, app, path, key, status = BROKEN_BODIES[case]
    client, headers = client_and_headers(request, brand_key, app, key)
    stream = BrokenChunkStream(good=1000)

    answer = client.open(
        path,
        method=method,
        headers=headers,
        content_type="application/json",
        environ_overrides=sent_as(stream, chunked=True, length=0),
    )

    assert answer.status_code == status, answer.get_data(as_text=True)
    if status == 400 and "console" not in path:
        assert answer.get_json()["error"]["field"] == "body"


def answer_to_raw(url: str, request_bytes: bytes) -> bytes:
    """The status line a served function answers to bytes sent as they are."""
    import socket

    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=60) as sock:
        sock.sendall(request_bytes)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while b"\r\n" not in answer:
            piece = sock.recv(4096)
            if not piece:
                break
            answer += piece
    return answer.split(b"\r\n", 1)[0]


# Chunked bodies gunicorn cannot read: a size that is not hex, a chunk with no
# CRLF after it, and a body cut off before its last chunk.
MALFORMED_CHUNKS = {
    "a size not in hex": b"zz\r\nabc\r\n0\r\n\r\n",
    "no CRLF after a chunk": b"3\r\nabcXX0\r\n\r\n",
    "cut off": b"5\r\nab",
}
SERVED_BROKEN = {
    "a route that reads the body": ("POST", "/v1/brands", True, b"400"),
    "a 404": ("POST", "/v1/nowhere", True, b"404"),
    "no key": ("POST", "/v1/brands", False, b"401"),
    "a path functions-framework does not route": ("POST", "/v1/a%0Ab", False, b"404"),
}


def test_a_served_function_answers_a_malformed_chunked_body_without_a_500(
    function_env, tmp_path
) -> None:
    process = FunctionProcess("api", {**_base_env(), **function_env}, tmp_path)
    process.start()
    try:
        process.wait_ready()
        answers = {}
        for case, (method, path, keyed, _) in SERVED_BROKEN.items():
            head = (
                f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n"
                "Connection: close\r\n"
            )
            if keyed:
                head += f"Authorization: Bearer {OPERATOR_KEY}\r\n"
            for framing, body in MALFORMED_CHUNKS.items():
                status = answer_to_raw(process.url, head.encode() + b"\r\n" + body)
                answers[case, framing] = status.split(b" ")[1:2]
    finally:
        process.stop()

    assert answers == {
        (case, framing): [spec[-1]]
        for case, spec in SERVED_BROKEN.items()
        for framing in MALFORMED_CHUNKS
    }


@pytest.mark.parametrize("target", ["api", "generate_caption"])
@pytest.mark.parametrize("chunked", [False, True])
def test_a_function_whose_settings_do_not_load_reads_its_body_away_unheld(
    function_env, monkeypatch, target, chunked
) -> None:
    monkeypatch.setenv("CARTCAST_FUNCTION_TIMEOUT_S", "soon")
    runtime.reset()
    client = make_app(target, "http").test_client()
    stream = CountingStream(size=BIG_BODY)

    try:
        answer, held = send_measured(
            client,
            "POST",
            "/",
            content_type="application/json",
            environ_overrides=sent_as(stream, chunked=chunked, length=BIG_BODY),
        )
    finally:
        # function_env's own teardown loads the settings again.
        monkeypatch.delenv("CARTCAST_FUNCTION_TIMEOUT_S")
        runtime.reset()

    assert answer.status_code == 500
    assert answer.get_json()["error"]["code"] == "internal"
    assert stream.bytes_read == BIG_BODY
    assert held < HELD_MAX


# Requests whose body stops arriving, sent to functions served under gunicorn with
# two threads: the target, the head, and what of the body is sent before the
# client goes quiet (it keeps the connection open). The caption request is sent
# with a brand's key, the others with the operator's.
STALLED_BODIES = {
    "a declared length": (
        "api",
        "POST /v1/brands HTTP/1.1\r\nContent-Type: application/json\r\n"
        "Content-Length: 100\r\n",
        b'{"name": ',
    ),
    "a chunked body": (
        "api",
        "POST /v1/brands HTTP/1.1\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n",
        b"40\r\n{",
    ),
    "a caption request": (
        "generate_caption",
        "POST / HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n",
        b"",
    ),
    "a signed order": (
        "api",
        "POST /v1/webhooks/orders/test-goods HTTP/1.1\r\n"
        "Content-Type: application/json\r\nContent-Length: 100\r\n",
        b"{",
    ),
    "a console form": (
        "api",
        "POST /console/signin HTTP/1.1\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n",
        b"key=",
    ),
    "a path no route takes": (
        "api",
        "POST /v1/nowhere HTTP/1.1\r\nContent-Length: 100\r\n",
        b"",
    ),
}
STALLED_THREADS = 2


def status_of(connection) -> bytes:
    answer = b""
    while b"\r\n" not in answer:
        piece = connection.recv(4096)
        if not piece:
            break
        answer += piece
    return answer.split(b"\r\n", 1)[0].split(b" ")[1:2][0] if answer else b""


def test_a_body_that_stops_arriving_is_a_408_and_frees_its_thread(
    function_env, brand_key, tmp_path
) -> None:
    import socket

    env = {
        **_base_env(),
        **function_env,
        "THREADS": str(STALLED_THREADS),
        "CARTCAST_BODY_WAIT_S": "1",
        "CARTCAST_CONSOLE_SECRET": "s" * 32,
    }
    served = {
        target: FunctionProcess(target, env, tmp_path).start()
        for target in ("api", "generate_caption")
    }
    stalled, answers = {}, {}
    try:
        for process in served.values():
            process.wait_ready()
        # More quiet clients than the function has threads: each holds one.
        for case, (target, head, sent) in STALLED_BODIES.items():
            parts = urlsplit(served[target].url)
            connection = socket.create_connection((parts.hostname, parts.port), 60)
            key = brand_key if target == "generate_caption" else OPERATOR_KEY
            authorization = f"Authorization: Bearer {key}\r\n"
            connection.sendall(
                f"{head}Host: 127.0.0.1\r\n{authorization}\r\n".encode() + sent
            )
            stalled[case] = connection
        after = answer_to_raw(
            served["api"].url,
            b"GET /v1/nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        )
        answers = {case: status_of(connection) for case, connection in stalled.items()}
    except TimeoutError:
        after = b"no answer: every thread is held by a quiet client"
    finally:
        for connection in stalled.values():
            connection.close()
        for process in served.values():
            process.stop()

    assert after.split(b" ")[1:2] == [b"404"], after
    assert answers == {
        "a declared length": b"408",
        "a chunked body": b"408",
        "a caption request": b"408",
        "a signed order": b"408",
        "a console form": b"408",
        # No route reads it: the answer was owed before the body, and is given.
        "a path no route takes": b"404",
    }
