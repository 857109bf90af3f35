"""The per-process objects every function shares, built lazily and reused warm.

Nothing here connects or imports a client library until a path asks for it: the
database on the first query, tweepy on the first X call, google-genai only when a
Gemini key is configured, the Cloud SQL connector only when CLOUD_SQL_INSTANCE is,
`cryptography` and the token key (a key file, or Secret Manager) only when a sealed
X token is opened or a token is sealed.
"""

from __future__ import annotations

import logging
import random as random_module
import threading
from typing import Any

from cartcast import settings as settings_module
from cartcast.clock import Clock, clock_from_setting
from cartcast.logs import fields, get_logger


class Runtime:
    def __init__(
        self,
        settings: settings_module.Settings,
        clock: Clock | None = None,
        random: random_module.Random | None = None,
        resolve: Any = None,
        ca_file: str | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock or clock_from_setting(settings.clock_file)
        # Draws the jitter of retry delays; tests pass a seeded one (or a stub
        # returning the bounds) instead of patching the module.
        self.random = random or random_module.Random()
        # How a brand's webhook or image host is looked up (pinned_http.Resolver;
        # getaddrinfo when None) and which certificate authorities its TLS is
        # checked against (certifi's when None): tests answer both themselves.
        self.resolve = resolve
        self.ca_file = ca_file
        self.log: logging.Logger = get_logger("cartcast", settings.log_level)
        if settings.proxy_variable:
            # Said once per instance, at INFO: most functions fetch no image and
            # send no webhook, so nothing of theirs goes around the proxy; one
            # that does says so at WARNING when it first does (warn_of_direct_egress).
            from cartcast import webhooks

            self.log.info(webhooks.proxy_notice(settings))
        self._direct_egress_warned: set[str] = set()
        self._database: Any = None
        self._publisher: Any = None
        self._x_clients: dict[str, Any] = {}
        self._gemini: Any = None
        self._token_vault: Any = None
        self._dead_letter_subscriber: Any = None
        self._lock = threading.Lock()
        # Its own lock: building the captioner opens the database under _lock.
        self._gemini_lock = threading.Lock()

    def warn_of_direct_egress(self, requests: str) -> None:
        """Say at WARNING, the first time in this instance, that `requests` (as
        the log names them) connect directly though the environment names an
        egress proxy: a deployment whose egress needs it sees what went around.
        """
        proxy_variable = self.settings.proxy_variable
        if not proxy_variable or requests in self._direct_egress_warned:
            return
        self._direct_egress_warned.add(requests)
        self.log.warning(
            "requests go around the egress proxy (README, Known limitations)",
            extra=fields(proxy_variable=proxy_variable, requests=requests),
        )

    @property
    def database(self):
        if self._database is None:
            from cartcast import db

            with self._lock:
                if self._database is None:
                    self._database = db.connect_from_settings(self.settings)
        return self._database

    @property
    def publisher(self):
        if self._publisher is None:
            from cartcast import pubsub

            self._publisher = pubsub.publisher_from_settings(self.settings, self.clock)
        return self._publisher

    def x_client(self, access_token: str):
        """Return the X client for one account's token, reused while warm.

        `access_token` is the token as stored: a sealed one is opened first.
        """
        client = self._x_clients.get(access_token)
        if client is None:
            from cartcast.x import XClient

            client = XClient(
                access_token=self.open_token(access_token),
                base_url=self.settings.x_api_base_url,
                timeout_s=self.settings.x_timeout_s,
            )
            self._x_clients[access_token] = client
        return client

    def open_token(self, stored: str) -> str:
        """Return a stored X token in the clear (a sealed one is decrypted)."""
        from cartcast import token_vault

        if not token_vault.is_sealed(stored):
            return stored  # set before tokens were sealed, or with no key configured
        return self.token_vault().open(stored)

    def seal_token(self, token: str) -> str:
        """Seal a token to store, or return it as given when no key is configured
        (a local run without CARTCAST_TOKEN_KEY_FILE; the README says so)."""
        if not (self.settings.token_key_file or self.settings.token_key_secret):
            return token
        return self.token_vault().seal(token)

    def token_vault(self):
        """Return the vault that seals X tokens, reading its key once."""
        if self._token_vault is None:
            from pathlib import Path

            from cartcast import token_vault
            from cartcast.errors import ConfigurationError

            settings = self.settings
            if settings.token_key_secret:
                key = token_vault.read_secret_key(
                    settings.token_key_secret,
                    endpoint=settings.secret_manager_endpoint,
                    timeout_s=settings.x_timeout_s,
                )
            elif settings.token_key_file:
                key = token_vault.read_key_file(Path(settings.token_key_file))
            else:
                raise ConfigurationError(
                    "X tokens are sealed with a key: set CARTCAST_TOKEN_KEY_FILE "
                    "(local) or CARTCAST_TOKEN_KEY_SECRET (cloud)"
                )
            self._token_vault = token_vault.Vault(key)
        return self._token_vault

    def gemini(self):
        """Return the Gemini captioner, or None when no key is configured."""
        if not self.settings.gemini_api_key:
            return None
        if self._gemini is None:
            with self._gemini_lock:
                if self._gemini is None:
                    self._gemini = self._build_gemini()
        return self._gemini

    def _build_gemini(self):
        """Build the one captioner whose client the classifier (the scorer) shares."""
        from cartcast.gemini import GeminiCaptioner
        from cartcast.quota import QuotaGovernor

        return GeminiCaptioner(
            api_key=self.settings.gemini_api_key,
            model=self.settings.gemini_model,
            base_url=self.settings.gemini_base_url,
            api_version=self.settings.gemini_api_version,
            timeout_s=self.settings.gemini_timeout_s,
            clock=self.clock,
            governor=QuotaGovernor(
                self.database,
                self.clock,
                per_minute=self.settings.gemini_requests_per_minute,
                per_day=self.settings.gemini_requests_per_day,
            ),
        )

    def gemini_classifier(self):
        """Return the Gemini mention classifier (sharing the captioner's client and
        quota governor), or None when no key is configured."""
        captioner = self.gemini()
        if captioner is None:
            return None
        from cartcast.gemini import GeminiMentionClassifier

        return GeminiMentionClassifier(captioner)

    def dead_letter_subscriber(self):
        """Return a Pub/Sub subscriber for the dead letters, or None when no
        subscription is named or no client may be built (dead_letters.configured)."""
        from cartcast import dead_letters

        if not dead_letters.configured(self.settings):
            return None
        if self._dead_letter_subscriber is None:
            from google.cloud import pubsub_v1

            with self._lock:
                if self._dead_letter_subscriber is None:
                    self._dead_letter_subscriber = pubsub_v1.SubscriberClient()
        return self._dead_letter_subscriber

    def close(self) -> None:
        if self._database is not None:
            self._database.close()
        if self._dead_letter_subscriber is not None:
            self._dead_letter_subscriber.close()


_current: Runtime | None = None
_current_lock = threading.Lock()


def current() -> Runtime:
    """Return this process's Runtime, building it from the environment once."""
    global _current
    if _current is None:
        with _current_lock:
            if _current is None:
                _current = Runtime(settings_module.load())
    return _current


def reset() -> None:
    """Forget the process's Runtime (tests change the environment between apps)."""
    global _current
    if _current is not None:
        _current.close()
    _current = None
