"""Small builders the tests share: a brand, a catalog slice, request helpers."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import ssl
import subprocess
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CATALOG_PATH = REPO / "infra" / "data" / "catalog" / "dummyjson_products.json"


def catalog(count: int | None = None) -> list[dict[str, Any]]:
    products = json.loads(CATALOG_PATH.read_text())
    return products if count is None else products[:count]


def brand_body(*, omit: tuple[str, ...] = (), **overrides: Any) -> dict[str, Any]:
    """A brand's creation body with `overrides`, and without the fields in `omit`
    (a null is no way of leaving out a field the spec types string alone)."""
    body = {
        "name": "Test Goods",
        "slug": "test-goods",
        "time_zone": "America/New_York",
        "store_base_url": "https://shop.example.com",
        "approvals_required": False,
        "x_user_id": "1500000000000000001",
        "x_username": "testgoods",
        "x_access_token": "token-test-goods",
    }
    body.update(overrides)
    if "x_user_id" not in overrides and body["slug"] != "test-goods":
        # An X account belongs to one brand: each other slug gets an account of its own.
        body["x_user_id"] = str(1500000000000000000 + zlib.crc32(body["slug"].encode()))
    for name in omit:
        body.pop(name, None)
    return body


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def post_json(client: Any, path: str, body: Any, key: str | None = None) -> Any:
    headers = auth(key) if key else {}
    return client.post(
        path, data=json.dumps(body), headers=headers, content_type="application/json"
    )


ALPHA = {"user_id": "1500000000000000001", "username": "alpha", "name": "Alpha"}
BETA = {"user_id": "1500000000000000002", "username": "beta", "name": "Beta"}


def make_brand(
    runtime: Any,
    slug: str,
    account: dict | None,
    products: int = 2,
    *,
    rows: list[dict[str, Any]] | None = None,
    **caption_fields: Any,
) -> str:
    """Create a brand with products drafted and scheduled; return its id.

    The products are the catalog's first `products`, or `rows`; `caption_fields`
    go into the caption request beside them (kind, link, ...).
    """
    from cartcast import brands, posts
    from cartcast import catalog as catalog_module

    x = (
        {"x_user_id": account["user_id"], "x_access_token": f"token-{slug}"}
        if account
        else {"x_user_id": None, "omit": ("x_access_token",)}
    )
    now = runtime.clock.now()
    rows = catalog(products) if rows is None else rows
    with runtime.database.transaction() as tx:
        created = brands.create_brand(
            tx, brand_body(slug=slug, name=slug, **x), now=now
        )
        brand_id = str(created["brand"]["id"])
        catalog_module.import_products(tx, brand_id=brand_id, feed=rows, now=now)
        body = {"products": [row["sku"] for row in rows], **caption_fields}
        posts.create_drafts(
            tx, brand_id=brand_id, body=body, created_by="test", now=now
        )
        posts.schedule_approved(tx, brand_id=brand_id, limit=10, now=now)
    return brand_id


def printed_by_a_fresh_functions_interpreter(code: str) -> str:
    """Run `code` in a new interpreter started in functions/, as a cold start is.

    This interpreter has long imported everything, so only a fresh one can show what
    importing an entry point really loads; returns what `code` printed.
    """
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO / "functions",
        env={"PYTHONPATH": ".", "PATH": os.environ.get("PATH", "")},
    ).stdout.strip()


def states(runtime: Any, brand_id: str) -> list[str]:
    """Return the states of a brand's posts, sorted."""
    from cartcast import posts

    with runtime.database.transaction() as tx:
        found = posts.list_posts(tx, brand_id=brand_id, state=None, limit=50)
    return sorted(post["state"] for post in found)


def bench_env() -> dict[str, str]:
    """The environment a benchmark runs in under the tests: the tests' server."""
    env = dict(os.environ)
    server = env.get("TEST_DATABASE_URL", "").strip()
    if server:
        env["DATABASE_URL"] = server
    return env


def gemini_bench_env(standin: Any, database_url: str) -> dict[str, str]:
    """The settings a bench's live mode (--gemini) reads, aimed at the Gemini
    stand-in: quota enough for a test's few requests, two mentions a request."""
    return {
        "DATABASE_URL": database_url,
        "GEMINI_API_KEY": standin.api_key,
        "GEMINI_BASE_URL": standin.base_url,
        "GEMINI_REQUESTS_PER_MINUTE": "100",
        "GEMINI_REQUESTS_PER_DAY": "100",
        "CARTCAST_SENTIMENT_BATCH_SIZE": "2",
    }


def tweets_sent(sandbox: Any) -> int:
    """Count the requests to create a post the X sandbox received, refused ones too:
    the sandbox refuses a repeated text, so a blind second send shows only here."""
    return sandbox.snapshot()["requests"].get("POST /2/tweets", {}).get("count", 0)


# Sockets bound and never listening, kept for the whole run: see dead_loopback_port.
_HELD_DEAD_PORTS: list[Any] = []


def dead_loopback_port() -> int:
    """Return a loopback port that refuses every connection for the rest of the run.

    A socket is bound to a port the system picks and never listens, so no server,
    of this run or of another process, can take the same port, as one could take a
    port merely found free.
    """
    import socket

    held = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    held.bind(("127.0.0.1", 0))
    _HELD_DEAD_PORTS.append(held)
    return held.getsockname()[1]


def labelled_mentions_file(
    path: Path, rows: list[tuple[str, str, str]], *, followers: int = 120
) -> Path:
    """Write (text, expected intent, half) rows as a triage mention file."""
    path.write_text(
        json.dumps(
            [
                {
                    "text": text,
                    "expected_intent": intent,
                    "expected_sentiment": "neutral",
                    "author_followers": followers,
                    "media_types": [],
                    "half": half,
                }
                for text, intent, half in rows
            ]
        )
    )
    return path


WAITING_ON_A_LOCK = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock'
"""


def rows_free_after_one_waits(
    database: Any, locked_query: str, checks: int = 600, **params: Any
) -> list[str]:
    """Once a transaction of the test's database waits on a row lock, return the
    first column of `locked_query` (a SELECT ... FOR UPDATE SKIP LOCKED): the
    rows no transaction holds. Each check is a query; none measures time."""
    for _ in range(checks):
        with database.transaction() as tx:
            if tx.scalar(WAITING_ON_A_LOCK):
                break
    else:
        raise AssertionError("no transaction came to wait on a lock")
    with database.transaction() as tx:
        return [next(iter(row.values())) for row in tx.rows(locked_query, **params)]


IDLE_IN_TRANSACTION = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND state LIKE 'idle in transaction%'
"""


def until_no_transaction_is_left_idle(database: Any, checks: int = 300) -> bool:
    """Check (a query every 0.1 s, `checks` times at most) until no session of the
    test's database sits idle in a transaction; say whether that came."""
    for _ in range(checks):
        with database.transaction() as tx:
            if not tx.scalar(IDLE_IN_TRANSACTION):
                return True
        time.sleep(0.1)
    return False


class CountingStream(io.RawIOBase):
    """A body of "a=" and letters, endless or `size` bytes long, that counts the
    bytes read from it."""

    def __init__(self, size: int | None = None) -> None:
        self.bytes_read = 0
        self.size = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        wanted = len(buffer)
        if self.size is not None:
            wanted = min(wanted, self.size - self.bytes_read)
        filler = (b"a=" + b"x" * wanted)[:wanted]
        buffer[: len(filler)] = filler
        self.bytes_read += len(filler)
        return len(filler)


def admin_updates_brand(tx: Any, brand_id: str, body: dict[str, Any], now: Any) -> Any:
    """Change the brand's settings as PATCH /v1/brand does with an admin key."""
    from cartcast import brands

    return brands.update_brand(
        tx, brand_id, body, role="admin", environment="local", now=now
    )


def write_authority(directory: Path, name: str) -> tuple[Path, Any, Any]:
    """Write a self-signed CA certificate; return its file, certificate and key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
        .not_valid_after(dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = directory / f"{name}.pem"
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return path, certificate, key


def write_localhost_certificate(directory: Path, issuer: Any, issuer_key: Any) -> Path:
    """Write a key and certificate for "localhost" signed by `issuer`; return it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
        .not_valid_after(dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False
        )
        .sign(issuer_key, hashes.SHA256())
    )
    path = directory / "localhost.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        + certificate.public_bytes(serialization.Encoding.PEM)
    )
    return path


def serve_in_thread(
    address: str,
    port: int,
    handler: type[BaseHTTPRequestHandler],
    tls: ssl.SSLContext | None = None,
) -> ThreadingHTTPServer:
    """Serve `handler` on `address`:`port` (0: one the system picks) from a daemon
    thread, over TLS when `tls` is given; the caller shuts the server down."""
    server = ThreadingHTTPServer((address, port), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class ChangingResolver:
    """A host lookup that answers each call with the next list of addresses, and
    the last list from then on, as a DNS name being rebound would."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.asked: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append((host, port))
        return self.answers[min(len(self.asked), len(self.answers)) - 1]
