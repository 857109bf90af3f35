"""Each brand's X tokens sealed with envelope encryption, and the key that wraps them.

A sealed value is `xtk1.<key id>.<wrapped data key>.<nonce>.<ciphertext>` (each
part base64url without padding):

1. a fresh 256-bit data key is drawn for every value sealed;
2. the token is encrypted with it under AES-256-GCM (a 96-bit random nonce), the
   ciphertext carrying GCM's tag;
3. the data key is itself encrypted (wrapped) under the key-encryption key (KEK)
   with AES-256-GCM, its own nonce leading the wrapped part;
4. the key id is the first 8 hex digits of the KEK's SHA-256, so a value sealed
   under another key is refused by name instead of failing as tampering.

Only the KEK can open a value, and it never reaches the database: locally it is a
key file (CARTCAST_TOKEN_KEY_FILE, mode 0600, created by the demo), in the cloud a
Secret Manager secret version (CARTCAST_TOKEN_KEY_SECRET) read once per instance
through google-cloud-secret-manager on its REST transport. This module is imported
only when a token is sealed or opened, so a publish run of brands whose tokens need
no decrypting never loads `cryptography` or the Secret Manager client; `is_sealed`
imports neither, so callers can tell a sealed value from a plaintext one cheaply.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from pathlib import Path
from typing import Any

from cartcast.errors import ConfigurationError, TransientError

SEALED_PREFIX = "xtk1."
KEY_BYTES = 32
NONCE_BYTES = 12
# Associated data: a wrapped data key cannot be passed off as a token, nor back.
TOKEN_AAD = b"cartcast x token v1"
DATA_KEY_AAD = b"cartcast data key v1"


class Vault:
    """Seal and open tokens under one key-encryption key."""

    def __init__(self, key_encryption_key: bytes) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if len(key_encryption_key) != KEY_BYTES:
            raise ConfigurationError(
                f"the token key must be {KEY_BYTES} bytes (256 bits), "
                f"got {len(key_encryption_key)}"
            )
        self._kek = AESGCM(key_encryption_key)
        self.key_id = hashlib.sha256(key_encryption_key).hexdigest()[:8]

    def seal(self, plaintext: str) -> str:
        """Encrypt `plaintext` under a fresh data key; return the sealed text."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        data_key = AESGCM.generate_key(bit_length=256)
        nonce = secrets.token_bytes(NONCE_BYTES)
        ciphertext = AESGCM(data_key).encrypt(nonce, plaintext.encode(), TOKEN_AAD)

        wrap_nonce = secrets.token_bytes(NONCE_BYTES)
        wrapped = wrap_nonce + self._kek.encrypt(wrap_nonce, data_key, DATA_KEY_AAD)
        parts = (wrapped, nonce, ciphertext)
        return SEALED_PREFIX + ".".join([self.key_id, *map(_b64, parts)])

    def open(self, sealed: str) -> str:
        """Decrypt a sealed value; ConfigurationError when this key cannot."""
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        try:
            key_id, *encoded = sealed.removeprefix(SEALED_PREFIX).split(".")
            wrapped, nonce, ciphertext = (_unb64(part) for part in encoded)
        except ValueError as error:
            raise ConfigurationError("a stored X token is not sealed") from error
        if key_id != self.key_id:
            raise ConfigurationError(
                f"a stored X token was sealed under key {key_id}, not the configured "
                f"key {self.key_id}: configure that key (CARTCAST_TOKEN_KEY_FILE or "
                "CARTCAST_TOKEN_KEY_SECRET)"
            )
        try:
            data_key = self._kek.decrypt(
                wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], DATA_KEY_AAD
            )
            plaintext = AESGCM(data_key).decrypt(nonce, ciphertext, TOKEN_AAD)
        except InvalidTag as error:
            raise ConfigurationError(
                "a stored X token does not open under the configured key: it was "
                "altered, or sealed under another key with the same id"
            ) from error
        return plaintext.decode()


def is_sealed(value: str | None) -> bool:
    return bool(value) and value.startswith(SEALED_PREFIX)


def create_key_file(path: Path) -> bool:
    """Write a new random key to `path` (mode 0600) unless one is there.

    Returns whether a key was written. The file is created with its mode in one
    call (O_EXCL), so no moment exists when another user could read it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(descriptor, "w") as key_file:
        key_file.write(_b64(secrets.token_bytes(KEY_BYTES)) + "\n")
    return True


def read_key_file(path: Path) -> bytes:
    """Read a key file; refuse one that other users may read."""
    try:
        mode = path.stat().st_mode & 0o777
        raw = path.read_text().strip()
    except OSError as error:
        raise ConfigurationError(
            f"CARTCAST_TOKEN_KEY_FILE {path} cannot be read: {error.strerror}"
        ) from error
    if mode & 0o077:
        raise ConfigurationError(
            f"CARTCAST_TOKEN_KEY_FILE {path} is readable by others (mode "
            f"{mode:o}); chmod 600 it"
        )
    return _key_from_text(raw, f"CARTCAST_TOKEN_KEY_FILE {path}")


def read_secret_key(
    name: str, *, endpoint: str | None, credentials: Any = None, timeout_s: float
) -> bytes:
    """Read the key from a Secret Manager secret version (`projects/.../versions/N`).

    With `endpoint` (a test's stub) the client uses anonymous credentials and that
    endpoint, never asking Google for credentials; without it, Google's endpoint
    and the function's service account, which the cloud deployment asks for.
    """
    from google.api_core import exceptions as google_exceptions
    from google.api_core.client_options import ClientOptions
    from google.cloud import secretmanager

    if endpoint is None:
        client = secretmanager.SecretManagerServiceClient(transport="rest")
    else:
        from google.auth.credentials import AnonymousCredentials

        client = secretmanager.SecretManagerServiceClient(
            transport="rest",
            credentials=credentials or AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=endpoint),
        )
    try:
        answer = client.access_secret_version(name=name, timeout=timeout_s)
    except (google_exceptions.NotFound, google_exceptions.PermissionDenied) as error:
        raise ConfigurationError(
            f"CARTCAST_TOKEN_KEY_SECRET {name}: {error.message}"
        ) from error
    except google_exceptions.GoogleAPICallError as error:
        raise TransientError(f"Secret Manager did not answer: {error}") from error
    finally:
        client.transport.close()
    return _key_from_text(
        answer.payload.data.decode("ascii", "replace").strip(),
        f"CARTCAST_TOKEN_KEY_SECRET {name}",
    )


def _key_from_text(raw: str, where: str) -> bytes:
    try:
        key = _unb64(raw)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise ConfigurationError(
            f"{where} must hold a {KEY_BYTES}-byte key in base64 (make one with "
            "`python -c 'import base64,os; print(base64.urlsafe_b64encode("
            "os.urandom(32)).decode())'`)"
        )
    return key


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as error:
        raise ValueError("not base64") from error
