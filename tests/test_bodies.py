"""Request bodies past the limit, and bodies no route reads, through the real app.

A body past its route's limit is a 413 naming the limit, refused unread when its
length is declared and read one byte past the limit when it is chunked. A body
sent where none is read (a GET, a HEAD, a 405, a refused key) is not read at all:
functions-framework reads whatever is left of every body after the response
(its read_request hook), and would otherwise hold it whole in memory. Each test
counts the bytes read from a body stream it hands over itself.
"""

from __future__ import annotations

import pytest

from cartcast import runtime, web
from tests.conftest import OPERATOR_KEY, make_app
from tests.helpers import CountingStream, auth

LIMIT = web.BODY_BYTES_MAX
# What one read of a chunked body may take past the limit before it stops.
READ_SLACK = 64 * 1024


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


@pytest.mark.parametrize("route", sorted(BODY_ROUTES))
@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_past_the_limit_is_a_413_naming_it_and_not_read_whole(
    request, brand_key, route, chunked
) -> None:
    app, path, media_type, key = BODY_ROUTES[route]
    client, headers = client_and_headers(request, brand_key, app, key)
    stream = CountingStream()

    answer = client.post(
        path,
        headers=headers,
        content_type=media_type,
        environ_overrides=sent_as(stream, chunked=chunked, length=LIMIT + 1),
    )

    assert answer.status_code == 413, answer.get_data(as_text=True)
    error = answer.get_json()["error"]
    assert "2 MiB" in error["message"]
    assert error["field"] == "body"
    if chunked:
        assert stream.bytes_read <= LIMIT + READ_SLACK
    else:
        assert stream.bytes_read == 0


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
def test_a_body_no_route_reads_is_left_unread(
    request, brand_key, case, chunked
) -> None:
    method, app, path, key = UNREAD_BODIES[case]
    client, headers = client_and_headers(request, brand_key, app, key)
    # Finite, so that a drain reading it to its end shows as bytes read.
    stream = CountingStream(size=2 * LIMIT)

    answer = client.open(
        path,
        method=method,
        headers=headers,
        content_type="application/json",
        environ_overrides=sent_as(stream, chunked=chunked, length=2 * LIMIT),
    )

    assert answer.status_code < 500, answer.get_data(as_text=True)
    assert stream.bytes_read == 0
