"""A local server speaking the part of the X API v2 that cartcast uses.

The sandbox answers the way X does on the wire, so cartcast's adapter is exercised
through the real tweepy client: JSON bodies, `x-rate-limit-*` headers per endpoint and
token on 15-minute windows, X's problem bodies for errors, snowflake-like string ids.
Time comes from a `Clock`, so under a simulated clock mentions appear when their
`created_at` passes and metrics grow as posts age.

Use it in-process (`with XSandbox(clock=...) as sandbox: sandbox.base_url`) or as a
process, with `functions` on PYTHONPATH so `cartcast.clock` imports:

    PYTHONPATH=functions:. python -m infra.x_sandbox --port 0 --clock-file var/clock \
        --state-file var/x-state.json

Tests and the demo steer it through a control API that X does not have, under
`/_sandbox/` and without auth: register accounts (each with its bearer token), inject
mentions, delete posts, queue faults (an answer can be held until the test releases
it), change rate limits, delay the timeline's indexing, read or clear the whole state.

Facts about X that shaped the answers, with where they come from:
- Problem bodies: `{"title","detail","type":"about:blank","status"}` for 401, 403, 429
  and 5xx; a 400 is `invalid-request` with `errors: [{"parameters", "message"}]` and no
  `status` member (bodies quoted in public client issues and test fixtures).
- A 401 comes from X's auth layer as `application/problem+json` and carries no
  rate-limit headers; every authenticated answer carries them.
- Duplicate text: 403, detail "You are not allowed to create a Tweet with duplicate
  content." (iembot issue 163, 2026; sferik/x-ruby issue 24).
- Over 280 weighted characters: X has answered both 400 `invalid-request` ("Your Tweet
  text is too long. For more information ...", tweepy users in 2023) and, in later
  reports, 403 Forbidden with detail "Your Tweet text is too long."; the sandbox sends
  the later 403. Both are permanent for a caller.
- Private metrics on a post that is not the caller's, or older than 30 days: the post
  is left out of `data` and each private field gets an `errors` entry of type
  `not-authorized-for-field`, with HTTP 200 (docs.x.com metrics overview; fixtures).
- Unknown ids, and posts deleted since (`delete_post`, POST /_sandbox/deletions
  `{"post_id"}`): HTTP 200, the id left out of `data` and given an `errors` entry
  `{"value", "detail": "Could not find tweet with ids: [<id>].", "title": "Not
  Found Error", "resource_type": "tweet", "parameter": "ids", "resource_id",
  "type": ".../2/problems/resource-not-found"}`, as in public client fixtures of
  X's answers; with every id unknown, the body has `errors` and no `data`.
- Links in a post's text come back wrapped as 23-character `https://t.co/...` links,
  so the text X returns differs from the text sent when it holds a URL.
- Default limits per user and 15 minutes are X's published user-context limits
  (docs.x.com/x-api/fundamentals/rate-limits); the sandbox lets a test lower them.
  The media endpoints' 500 is the sandbox's own figure: X's pages name none to copy.
- Media upload (v2): POST /2/media/upload with a JSON body carrying the file
  base64-encoded in `media` and a `media_category`; the answer's `data` has the
  media `id`, `media_key`, `size` and `expires_after_secs` (86400). An image may be
  5 MB (docs.x.com/x-api/media). Alt text: POST /2/media/metadata with
  `{"id", "metadata": {"alt_text": {"text"}}}`, at most 1000 characters. Unknown
  or expired media ids on POST /2/tweets: 400 "Your media IDs are invalid." The
  sandbox takes the JSON form only (the one cartcast sends), not multipart.
- Polls: `poll.options` 2 to 4 options of 1 to 25 characters, `duration_minutes`
  5 to 10080, and never together with media. X refuses these with invalid-request
  400s; the wording of those messages is the sandbox's own.
- Replies: `reply.in_reply_to_tweet_id` must name a visible post (403 otherwise);
  the reply joins that post's conversation, which is how a thread is chained.
  A reply to another author's post starts with "@their_username ", as on X.
- Summoned replies only (X's reply policy for API apps, 2025): a reply to someone
  else's post is refused with 403 "Reply to this conversation is not allowed
  because you have not been mentioned or otherwise engaged by the author of the
  post you are replying to." unless that post mentions the caller or replies to
  one of the caller's posts; replying to one's own post (a thread) is allowed.
  The text is the one public X clients quote when they handle this refusal.
- Credentials: a revoked token is a 401 (register the account again with a new
  token to revoke the old one); a 403 about credentials carries a problem `type`
  such as `.../problems/unsupported-authentication` or `.../oauth1-permissions`
  (bodies quoted in public client issues), which a fault can carry with
  `problem_type`, and a fault's `detail` can carry any of X's exact messages.
- Indexing lag: a post X has created is not at once in the author's timeline
  (GET /2/users/:id/tweets); X names no figure. The sandbox shows it there only
  `index_lag_s` seconds of its clock after `created_at` (0 unless a test sets it
  with `set_index_lag` or POST /_sandbox/index_lag); lookups by id see it at once.
- Mentions are indexed late too: a mention added with `index_lag_s` is in the
  mentions timeline only that long after its `created_at`, with its own early id,
  so a reader whose since_id already passed it never sees it again.
- A page token (`next_token`) belongs to the query that issued it: sent with
  another since_id or until_id it is refused with a 400 `invalid-request` naming
  `pagination_token`. X ties tokens to their query but documents no answer to a
  mismatch; the refusal, and its wording, are the sandbox's own.
- A since_id older than SINCE_ID_WINDOW (seven days, what X's search index keeps)
  is refused with a 400 `invalid-request` naming the parameter, the shape of X's
  answer in rooteco/tweetscape issue 421; the message's wording is the sandbox's.
- A post longer than 280 characters comes back cut to 280 in `text`, whole in
  `note_tweet.text` when `tweet.fields` asks for note_tweet (X's long posts; X
  also appends a link to the cut text, which the sandbox does not).
- Bad mentions a test can add: an author X leaves out of `includes` (a suspended
  account, `author={"suspended": True, ...}`), a post listed twice in one page
  (`listed_twice`), a photo (`photo`, rendered under `includes.media`).
- OAuth 2.0 with PKCE (docs.x.com, "OAuth 2.0 Authorization Code Flow with
  PKCE"): GET /i/oauth2/authorize (on x.com at X) takes response_type=code,
  client_id, redirect_uri, scope, state, code_challenge and code_challenge_method;
  the sandbox approves at once as the account a test named (`approve_as`, POST
  /_sandbox/oauth/approver) and redirects (302) to redirect_uri with state and code,
  or with error=access_denied when none is named. POST /2/oauth2/token takes a
  form: grant_type authorization_code (code, redirect_uri, code_verifier) or
  refresh_token (refresh_token); a confidential client authenticates with HTTP
  Basic, a public one sends client_id in the form. The answer is {token_type:
  "bearer", expires_in, access_token, scope, refresh_token}, the refresh token only
  with offline.access. Access tokens live two hours (X's figure; a test may change
  it); refresh tokens rotate: a used one is void, and using it again is a 400
  {"error": "invalid_request", "error_description": "Value passed for the token was
  invalid."}, the body X sends. POST /2/oauth2/revoke (form `token`) answers
  {"revoked": true}. Codes live 30 seconds (X names no figure). An access token
  issued here carries its scopes, and the endpoints cartcast writes with refuse a
  token without theirs with a 403 (docs.x.com's authentication mapping: posting
  needs tweet.write, the v2 media upload and its metadata media.write); a token
  registered by hand (`register_account`) has every scope.
- Latency: X answers a post in tens to hundreds of milliseconds; the sandbox answers
  at once unless a benchmark sets a per-call latency (`set_latency` or POST
  /_sandbox/latency). The request takes effect first, then the answer waits, outside
  the lock, so concurrent callers overlap their waits as they would against X.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import copy
import datetime as dt
import hashlib
import json
import math
import re
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

from twitter_text import extract_urls_with_indices, parse_tweet

from cartcast.clock import Clock, FileClock, SystemClock, as_utc, parse_instant

JSON = "application/json; charset=utf-8"
PROBLEM_JSON = "application/problem+json"
PROBLEMS = "https://api.x.com/2/problems/"
AUTHORIZE_PATH = "/i/oauth2/authorize"
TOKEN_PATH = "/2/oauth2/token"
REVOKE_PATH = "/2/oauth2/revoke"
OAUTH_PATHS = (AUTHORIZE_PATH, TOKEN_PATH, REVOKE_PATH)

# Twitter's snowflake epoch; an id is (ms since it) << 22 | sequence, 19 digits today.
SNOWFLAKE_EPOCH_MS = 1288834974657
RATE_WINDOW = dt.timedelta(minutes=15)
PRIVATE_METRICS_WINDOW = dt.timedelta(days=30)
# twitter-text v3: every URL counts as 23 characters, whatever its length.
URL_WEIGHT = 23
MAX_WEIGHTED_LENGTH = 280
# How far back a since_id may reach on the mentions timeline.
SINCE_ID_WINDOW = dt.timedelta(days=7)
# Characters of a long post shown in `text`; the rest is in note_tweet.
NOTE_CUT = 280

DEFAULT_LIMITS = {
    "POST /2/tweets": 100,
    "GET /2/tweets": 900,
    "GET /2/users/me": 75,
    "GET /2/users/:id": 900,
    "GET /2/users/:id/mentions": 300,
    "GET /2/users/:id/tweets": 900,
    "POST /2/media/upload": 500,
    "POST /2/media/metadata": 500,
}
MEDIA_EXPIRES_AFTER_S = 86400
# A latency longer than any client timeout would only turn every call into a timeout.
LATENCY_MAX_S = 60.0
IMAGE_BYTES_MAX = 5 * 1024 * 1024
# A held answer leaves after this even unreleased, so a forgetful test cannot hang.
HOLD_MAX_S = 60
ALT_TEXT_MAX = 1000
MEDIA_CATEGORIES = frozenset(
    "tweet_image tweet_gif tweet_video dm_image dm_gif dm_video subtitles".split()
)
# The first bytes of each image format X takes as tweet_image.
IMAGE_SIGNATURES = {
    b"\xff\xd8\xff": "image/jpeg",
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"GIF87a": "image/gif",
    b"GIF89a": "image/gif",
}
POLL_OPTIONS_RANGE = (2, 4)
POLL_OPTION_LENGTH_MAX = 25
POLL_DURATION_RANGE = (5, 10080)

# The values X accepts; anything else is a 400. The sandbox renders only the fields
# cartcast reads and silently leaves out the others, as X does for absent data.
TWEET_FIELDS = frozenset(
    "article attachments author_id card_uri community_id context_annotations "
    "conversation_id created_at display_text_range edit_controls "
    "edit_history_tweet_ids entities geo id in_reply_to_user_id lang media_metadata "
    "non_public_metrics note_tweet organic_metrics possibly_sensitive "
    "promoted_metrics public_metrics referenced_tweets reply_settings scopes source "
    "text withheld".split()
)
USER_FIELDS = frozenset(
    "affiliation connection_status created_at description entities id "
    "is_identity_verified location most_recent_tweet_id name parody pinned_tweet_id "
    "profile_banner_url profile_image_url protected public_metrics receives_your_dm "
    "subscription subscription_type url username verified verified_followers_count "
    "verified_type withheld".split()
)
EXPANSIONS = frozenset(
    "attachments.media_keys attachments.media_source_tweet attachments.poll_ids "
    "author_id edit_history_tweet_ids entities.mentions.username "
    "entities.note.mentions.username geo.place_id in_reply_to_user_id "
    "referenced_tweets.id referenced_tweets.id.attachments.media_keys "
    "referenced_tweets.id.author_id".split()
)
MEDIA_KEY_PREFIXES = {"photo": 3, "video": 7, "animated_gif": 16}
PUBLIC_METRIC_NAMES = (
    "retweet_count",
    "reply_count",
    "like_count",
    "quote_count",
    "bookmark_count",
    "impression_count",
)
PRIVATE_METRIC_NAMES = ("impression_count", "url_link_clicks", "user_profile_clicks")

DUPLICATE_DETAIL = "You are not allowed to create a Tweet with duplicate content."
TOO_LONG_DETAIL = "Your Tweet text is too long."
REPLY_TARGET_DETAIL = (
    "You attempted to reply to a Tweet that is deleted or not visible to you."
)
REFUSED_REPLY_DETAIL = (
    "Reply to this conversation is not allowed because you have not been "
    "mentioned or otherwise engaged by the author of the post you are replying to."
)
INVALID_MEDIA_MESSAGE = "Your media IDs are invalid."
OAUTH_SCOPES = frozenset(
    "tweet.read tweet.write tweet.moderate.write users.read follows.read "
    "follows.write offline.access space.read mute.read mute.write like.read "
    "like.write list.read list.write block.read block.write bookmark.read "
    "bookmark.write media.write".split()
)
# The scope each write route needs of an OAuth 2.0 user token (docs.x.com).
ROUTE_SCOPES = {
    "POST /2/tweets": "tweet.write",
    "POST /2/media/upload": "media.write",
    "POST /2/media/metadata": "media.write",
}
ACCESS_TOKEN_TTL_S = 7200
OAUTH_CODE_TTL = dt.timedelta(seconds=30)
INVALID_TOKEN_DESCRIPTION = "Value passed for the token was invalid."
FORM = "application/x-www-form-urlencoded"


@dataclass
class Reply:
    """One HTTP answer: status, JSON body and extra headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = JSON
    dropped: bool = False
    truncated: bool = False


class Refusal(Exception):
    """Raised inside an endpoint to answer with an error body instead."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    token: str | None
    authorization: str | None = None


@dataclass
class User:
    id: str
    username: str
    name: str
    followers_count: int = 0
    token: str | None = None
    # X leaves a suspended author out of a timeline's `includes`.
    suspended: bool = False


@dataclass
class Tweet:
    id: str
    text: str
    author_id: str
    created_at: dt.datetime
    conversation_id: str
    submitted_text: str
    in_reply_to_tweet_id: str | None = None
    in_reply_to_user_id: str | None = None
    mentioned_user_id: str | None = None
    media_ids: list[str] = field(default_factory=list)
    poll_options: list[str] | None = None
    poll_duration_minutes: int | None = None
    # When the post reaches the mentions timeline; None is at `created_at`.
    indexed_at: dt.datetime | None = None
    listed_twice: bool = False


@dataclass
class Media:
    id: str
    owner_id: str
    size: int
    media_type: str
    category: str
    created_at: dt.datetime
    alt_text: str | None = None
    # X's media object `type`: photo, video or animated_gif.
    kind: str = "photo"

    @property
    def media_key(self) -> str:
        # X's media keys are "<type>_<id>": 3 a photo, 7 a video, 16 a GIF.
        return f"{MEDIA_KEY_PREFIXES[self.kind]}_{self.id}"


@dataclass
class Fault:
    method: str
    path_prefix: str
    status: int | None
    count: int
    reset_in_s: int
    delay_s: float
    drop: bool
    truncate: bool = False
    hold: bool = False
    detail: str | None = None
    problem_type: str | None = None
    unserved: bool = False


@dataclass
class Window:
    started_at: dt.datetime
    used: int = 0


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    key: str
    serve: Callable[..., tuple[int, dict[str, Any]]]


class XSandbox:
    """An X API v2 stand-in on a loopback port, with a control API for tests."""

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        state_file: Path | None = None,
        limits: dict[str, int] | None = None,
    ) -> None:
        self.clock = clock or SystemClock()
        self.host = host
        self.port = port
        self.state_file = Path(state_file) if state_file else None
        self._default_limits = {**DEFAULT_LIMITS, **(limits or {})}
        self._lock = threading.Lock()
        self._answers_released = threading.Event()
        self._answers_released.set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._routes = [
            Route("POST", re.compile(r"/2/tweets"), "POST /2/tweets", self._create),
            Route("GET", re.compile(r"/2/tweets"), "GET /2/tweets", self._lookup),
            Route("GET", re.compile(r"/2/users/me"), "GET /2/users/me", self._me),
            Route(
                "GET",
                re.compile(r"/2/users/(?P<user_id>\d+)"),
                "GET /2/users/:id",
                self._user,
            ),
            Route(
                "GET",
                re.compile(r"/2/users/(?P<user_id>\d+)/mentions"),
                "GET /2/users/:id/mentions",
                self._mentions,
            ),
            Route(
                "GET",
                re.compile(r"/2/users/(?P<user_id>\d+)/tweets"),
                "GET /2/users/:id/tweets",
                self._own_tweets,
            ),
            Route(
                "POST",
                re.compile(r"/2/media/upload"),
                "POST /2/media/upload",
                self._upload_media,
            ),
            Route(
                "POST",
                re.compile(r"/2/media/metadata"),
                "POST /2/media/metadata",
                self._media_metadata,
            ),
        ]
        self._clear()

    # Lifecycle

    def start(self) -> XSandbox:
        """Listen on the configured address and serve from a daemon thread."""
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        # A short poll interval makes stop() quick: shutdown waits for the next poll.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="x-sandbox",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is None:
            return
        self.release_answers()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self._server = None

    def __enter__(self) -> XSandbox:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # Control: what the /_sandbox/ endpoints call, and what in-process tests may call

    def register_account(
        self,
        *,
        user_id: str,
        username: str,
        name: str,
        token: str,
        followers_count: int = 0,
    ) -> None:
        """Add (or replace) an account whose bearer token the API will accept."""
        if not user_id.isdigit():
            raise ValueError("user_id must be a decimal string")
        with self._lock:
            self._users[user_id] = User(user_id, username, name, followers_count, token)
            self._tokens = {t: u for t, u in self._tokens.items() if u != user_id}
            self._tokens[token] = user_id
            self._save()

    def add_mention(
        self,
        *,
        to_user_id: str,
        text: str,
        author: dict[str, Any],
        created_at: dt.datetime | None = None,
        in_reply_to_tweet_id: str | None = None,
        index_lag_s: float = 0.0,
        photo: bool = False,
        listed_twice: bool = False,
        media_types: list[str] | None = None,
    ) -> str:
        """Store a post by `author` that mentions `to_user_id`; return its id.

        With `index_lag_s`, the mentions timeline shows it only that long after its
        `created_at`; `listed_twice` makes every page that holds it list it twice.
        `media_types` attaches one medium of each type given ("photo", "video",
        "animated_gif"), as if the author had uploaded them; `photo` is
        `media_types=["photo"]`.
        """
        with self._lock:
            tweet = self._store_mention(
                to_user_id, text, author, created_at, in_reply_to_tweet_id
            )
            if index_lag_s:
                tweet.indexed_at = tweet.created_at + dt.timedelta(seconds=index_lag_s)
            tweet.listed_twice = listed_twice
            for kind in list(media_types or ()) + (["photo"] if photo else []):
                if kind not in MEDIA_KEY_PREFIXES:
                    raise ValueError(f"media type {kind!r} is not one X has")
                media = Media(
                    id=self._next_id(tweet.created_at),
                    owner_id=tweet.author_id,
                    size=0,
                    media_type="",
                    category="tweet_image" if kind == "photo" else "tweet_video",
                    created_at=tweet.created_at,
                    kind=kind,
                )
                self._media[media.id] = media
                tweet.media_ids.append(media.id)
            self._save()
        return tweet.id

    def delete_post(self, tweet_id: str) -> None:
        """Delete a post as its author would on X: lookups answer it not found.

        X answers a lookup of a deleted post's id with HTTP 200 and an `errors`
        entry of type resource-not-found, the same as for an id that never
        existed; the author may post the same text again.
        """
        with self._lock:
            tweet = self._tweets.pop(str(tweet_id), None)
            if tweet is None:
                raise ValueError(f"no post {tweet_id}")
            self._texts_by_author.discard((tweet.author_id, tweet.submitted_text))
            self._save()

    def add_fault(
        self,
        *,
        method: str,
        path_prefix: str,
        status: int | None = None,
        count: int = 1,
        reset_in_s: int = 900,
        delay_s: float = 0.0,
        drop: bool = False,
        truncate: bool = False,
        hold: bool = False,
        detail: str | None = None,
        problem_type: str | None = None,
        unserved: bool = False,
    ) -> None:
        """Make the next `count` matching requests misbehave.

        Each answers `status` in X's format or, without a status, is served as
        usual; either way the answer leaves `delay_s` late. With `drop`, the answer
        is thrown away and the connection closed; with `truncate`, the answer breaks
        off halfway through its body; with `hold`, the answer waits until
        `release_answers()` (at most HOLD_MAX_S), so a test can act between X's
        acting and its caller hearing of it. A served request has taken effect
        before a slow, held, lost or broken answer, as when X acts but its answer
        never arrives.
        `detail` and `problem_type` replace the problem body's `detail` and `type`
        (X's exact message for a refusal, say).
        With `unserved` (only with `drop`), the connection is closed before X acts
        on the request: the caller cannot tell it from a dropped answer, but X has
        nothing, and only a later timeline read can show it.
        """
        if status is not None and not 400 <= status <= 599:
            raise ValueError("status must be an HTTP error status")
        if unserved and not drop:
            raise ValueError("unserved applies to a dropped connection (drop=True)")
        if count < 1:
            raise ValueError("count must be at least 1")
        fault = Fault(
            method.upper(),
            path_prefix,
            status,
            count,
            reset_in_s,
            delay_s,
            drop,
            truncate,
            hold,
            detail,
            problem_type,
            unserved,
        )
        with self._lock:
            if hold:
                self._answers_released.clear()
            self._faults.append(fault)
            self._save()

    def release_answers(self) -> None:
        """Let every answer held by a `hold` fault leave, now and from now on."""
        self._answers_released.set()

    def clear_faults(self) -> None:
        """Forget every pending fault and let held answers go (a run's next phase)."""
        with self._lock:
            self._faults = []
            self._answers_released.set()
            self._save()

    def set_limit(self, endpoint: str, limit: int) -> None:
        """Change how many requests per 15 minutes one token may make to `endpoint`."""
        if endpoint not in DEFAULT_LIMITS:
            raise ValueError(f"unknown endpoint {endpoint!r}; one of {DEFAULT_LIMITS}")
        with self._lock:
            self._limits[endpoint] = limit
            self._save()

    def set_index_lag(self, seconds: float) -> None:
        """Show each new post in its author's timeline only `seconds` after it."""
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        with self._lock:
            self._index_lag = dt.timedelta(seconds=seconds)
            self._save()

    def set_latency(self, seconds: float) -> None:
        """Answer every X API call (not the control API) `seconds` late."""
        if not 0 <= seconds <= LATENCY_MAX_S:
            raise ValueError(f"seconds must be 0 to {LATENCY_MAX_S}")
        with self._lock:
            self._latency_s = seconds
            self._save()

    def configure_oauth(
        self,
        *,
        client_id: str,
        client_secret: str | None = None,
        access_token_ttl_s: int = ACCESS_TOKEN_TTL_S,
    ) -> None:
        """Set the OAuth 2.0 client X knows: confidential with a secret, else public."""
        if access_token_ttl_s <= 0:
            raise ValueError("access_token_ttl_s must be positive")
        with self._lock:
            self._oauth_client = {
                "client_id": client_id,
                "client_secret": client_secret,
                "access_token_ttl_s": access_token_ttl_s,
            }
            self._save()

    def approve_as(self, user_id: str | None) -> None:
        """Name the registered account that approves every authorization (None:
        every authorization is denied)."""
        with self._lock:
            if user_id is not None and str(user_id) not in self._users:
                raise ValueError(f"no account {user_id}: register it first")
            self._approver = None if user_id is None else str(user_id)
            self._save()

    def revoke_all(self, user_id: str) -> None:
        """Revoke every token of an account, as its owner removing the app on X does."""
        with self._lock:
            self._tokens = {t: u for t, u in self._tokens.items() if u != user_id}
            for grant in self._refresh_tokens.values():
                if grant["user_id"] == user_id:
                    grant["used"] = True
            self._save()

    def reset(self) -> None:
        """Forget every account, post, mention, fault, count and changed limit."""
        with self._lock:
            self._clear()
            self._save()

    def snapshot(self) -> dict[str, Any]:
        """Return a copy of everything received and served (no tokens).

        A deep copy: callers compare snapshots taken at different times, which
        would always look equal if they shared the sandbox's live counters.
        """
        with self._lock:
            return copy.deepcopy(self._snapshot())

    # Serving

    def handle(self, request: Request) -> Reply:
        """Answer one request, whether for the X API or the control API."""
        if request.path.startswith("/_sandbox/"):
            return self._control(request)
        if request.path in OAUTH_PATHS:
            with self._lock:
                fault = self._take_fault(request)
                if fault is not None and fault.status is not None:
                    reply = self._fault_reply(fault, request.path, self.clock.now())
                else:
                    reply = self._oauth(request)
                self._count(f"{request.method} {request.path}", reply.status)
                self._save()
            if fault is not None and fault.delay_s:
                time.sleep(fault.delay_s)  # outside the lock, as for the API
            if fault is not None and fault.hold:
                # The grant is served (a code spent, a refresh token voided); only
                # the answer waits, as for the API.
                self._answers_released.wait(HOLD_MAX_S)
            return reply

        route, params = self._route(request)
        if route is None:
            return Reply(404, _problem(404))

        with self._lock:
            fault = self._take_fault(request)
            if fault is not None and fault.unserved:
                # Closed before X read it: nothing served, nothing counted as served.
                self._count(route.key, 0)
                self._save()
                return Reply(0, None, dropped=True)
            reply = self._serve(route, params, request, fault)
            reply.dropped = fault is not None and fault.drop
            reply.truncated = fault is not None and fault.truncate
            self._count(route.key, reply.status)
            self._save()
            delay_s = self._latency_s + (fault.delay_s if fault is not None else 0.0)

        if delay_s:
            # Outside the lock: a slow answer must not hold up other clients.
            time.sleep(delay_s)
        if fault is not None and fault.hold:
            self._answers_released.wait(HOLD_MAX_S)
        return reply

    def _serve(
        self,
        route: Route,
        params: dict[str, str],
        request: Request,
        fault: Fault | None,
    ) -> Reply:
        now = self.clock.now()
        if fault is not None and fault.status is not None:
            return self._fault_reply(fault, route.key, now)

        caller = self._users.get(self._tokens.get(request.token or "", ""))
        expires_at = self._token_expiry.get(request.token or "")
        if expires_at is not None and expires_at <= now:
            caller = None  # an OAuth access token past its two hours
        if caller is None:
            return Reply(401, _problem(401, "Unauthorized"), content_type=PROBLEM_JSON)
        scopes = self._token_scopes.get(request.token or "")
        needed = ROUTE_SCOPES.get(route.key)
        if scopes is not None and needed is not None and needed not in scopes:
            detail = f"the token was not granted the {needed} scope"
            return Reply(403, _problem(403, detail), content_type=PROBLEM_JSON)

        headers, spent = self._spend(route.key, request.token, now)
        if spent:
            return Reply(429, _problem(429), headers)

        try:
            status, body = route.serve(request, caller, now, **params)
        except Refusal as refusal:
            status, body = refusal.status, refusal.body
        return Reply(status, body, headers)

    def _route(self, request: Request) -> tuple[Route | None, dict[str, str]]:
        for route in self._routes:
            match = route.pattern.fullmatch(request.path)
            if route.method == request.method and match:
                return route, match.groupdict()
        return None, {}

    def _take_fault(self, request: Request) -> Fault | None:
        """Use up one pending fault that matches the request, if any."""
        for fault in self._faults:
            if fault.method == request.method and request.path.startswith(
                fault.path_prefix
            ):
                fault.count -= 1
                if fault.count == 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _count(self, key: str, status: int) -> None:
        counts = self._requests.setdefault(key, {"count": 0, "statuses": {}})
        counts["count"] += 1
        statuses = counts["statuses"]
        statuses[str(status)] = statuses.get(str(status), 0) + 1

    def _fault_reply(self, fault: Fault, key: str, now: dt.datetime) -> Reply:
        if fault.status != 429:
            body = _problem(fault.status, fault.detail, fault.problem_type)
            return Reply(fault.status, body)
        reset_at = now + dt.timedelta(seconds=fault.reset_in_s)
        headers = _rate_headers(self._limits[key], 0, reset_at)
        return Reply(429, _problem(429), headers)

    def _spend(
        self, key: str, token: str, now: dt.datetime
    ) -> tuple[dict[str, str], bool]:
        """Count one request against the token's window; say if the window is spent."""
        window = self._windows.get((key, token))
        # A clock moved back (a reset demo) also starts a new window.
        if window is None or not 0 <= (now - window.started_at) / RATE_WINDOW < 1:
            window = self._windows[(key, token)] = Window(started_at=now)
        window.used += 1

        limit = self._limits[key]
        remaining = max(0, limit - window.used)
        headers = _rate_headers(limit, remaining, window.started_at + RATE_WINDOW)
        return headers, window.used > limit

    # X endpoints: each returns (status, body) or raises Refusal

    def _create(
        self, request: Request, caller: User, now: dt.datetime
    ) -> tuple[int, dict[str, Any]]:
        body = request.body if isinstance(request.body, dict) else {}
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            raise Refusal(400, _invalid("text", text, "Tweet text must not be empty."))
        if weighted_length(text) > MAX_WEIGHTED_LENGTH:
            raise Refusal(403, _problem(403, TOO_LONG_DETAIL))
        if (caller.id, text) in self._texts_by_author:
            # X does not document how long it remembers a text; the sandbox never
            # forgets, which is the stricter behaviour for a caller to handle.
            raise Refusal(403, _problem(403, DUPLICATE_DETAIL))

        media_ids = self._attached_media(body.get("media"), caller, now)
        options, duration = _poll(body.get("poll"))
        if options is not None and media_ids:
            message = "A Tweet with a poll cannot also carry media."
            raise Refusal(400, _invalid("poll", body.get("poll"), message))

        target = None
        reply = body.get("reply")
        if isinstance(reply, dict):
            target = self._visible(str(reply.get("in_reply_to_tweet_id")), now)
            if target is None:
                raise Refusal(403, _problem(403, REPLY_TARGET_DETAIL))
            if not self._summoned(target, caller):
                raise Refusal(403, _problem(403, REFUSED_REPLY_DETAIL))

        tweet = self._new_tweet(text, caller.id, now, target)
        tweet.media_ids = media_ids
        tweet.poll_options, tweet.poll_duration_minutes = options, duration
        data = {
            "id": tweet.id,
            "text": tweet.text,
            "edit_history_tweet_ids": [tweet.id],
        }
        return 201, {"data": data}

    def _summoned(self, target: Tweet, caller: User) -> bool:
        """Say if X lets `caller` reply to `target`: its own post, or one that
        mentions it or answers one of its posts."""
        return caller.id in (
            target.author_id,
            target.mentioned_user_id,
            target.in_reply_to_user_id,
        )

    def _attached_media(self, media: Any, caller: User, now: dt.datetime) -> list[str]:
        """Return the media ids of a create request, refusing any X would refuse."""
        if media is None:
            return []
        ids = media.get("media_ids") if isinstance(media, dict) else None
        if not isinstance(ids, list) or not 1 <= len(ids) <= 4:
            message = "media.media_ids must list 1 to 4 media ids"
            raise Refusal(400, _invalid("media.media_ids", ids, message))
        for media_id in ids:
            found = self._media.get(str(media_id))
            expired = found is not None and (now - found.created_at) > dt.timedelta(
                seconds=MEDIA_EXPIRES_AFTER_S
            )
            if found is None or found.owner_id != caller.id or expired:
                raise Refusal(
                    400, _invalid("media.media_ids", media_id, INVALID_MEDIA_MESSAGE)
                )
        return [str(media_id) for media_id in ids]

    def _upload_media(
        self, request: Request, caller: User, now: dt.datetime
    ) -> tuple[int, dict[str, Any]]:
        body = request.body if isinstance(request.body, dict) else {}
        category = body.get("media_category")
        if category not in MEDIA_CATEGORIES:
            message = f"media_category must be one of {sorted(MEDIA_CATEGORIES)}"
            raise Refusal(400, _invalid("media_category", category, message))
        try:
            data = base64.b64decode(str(body.get("media") or ""), validate=True)
        except (binascii.Error, ValueError):
            data = b""
        if not data:
            message = "media must be the file's content, base64-encoded"
            raise Refusal(400, _invalid("media", None, message))
        media_type = next(
            (kind for sig, kind in IMAGE_SIGNATURES.items() if data.startswith(sig)),
            "image/webp" if data[:4] == b"RIFF" and data[8:12] == b"WEBP" else None,
        )
        if category == "tweet_image" and media_type is None:
            message = "media is not a JPEG, PNG, GIF or WEBP image"
            raise Refusal(400, _invalid("media", None, message))
        if category == "tweet_image" and len(data) > IMAGE_BYTES_MAX:
            message = f"media is {len(data)} bytes; an image may be {IMAGE_BYTES_MAX}"
            raise Refusal(400, _invalid("media", None, message))

        media = Media(
            id=self._next_id(now),
            owner_id=caller.id,
            size=len(data),
            media_type=media_type or str(body.get("media_type") or ""),
            category=category,
            created_at=now,
        )
        self._media[media.id] = media
        data_out = {
            "id": media.id,
            "media_key": media.media_key,
            "size": media.size,
            "expires_after_secs": MEDIA_EXPIRES_AFTER_S,
        }
        return 200, {"data": data_out}

    def _media_metadata(
        self, request: Request, caller: User, now: dt.datetime
    ) -> tuple[int, dict[str, Any]]:
        body = request.body if isinstance(request.body, dict) else {}
        media = self._media.get(str(body.get("id")))
        if media is None or media.owner_id != caller.id:
            raise Refusal(400, _invalid("id", body.get("id"), INVALID_MEDIA_MESSAGE))
        metadata = (
            body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
        )
        alt = (metadata.get("alt_text") or {}).get("text")
        if not isinstance(alt, str) or not 1 <= len(alt) <= ALT_TEXT_MAX:
            message = f"alt_text.text must be 1 to {ALT_TEXT_MAX} characters"
            raise Refusal(400, _invalid("metadata.alt_text.text", alt, message))
        media.alt_text = alt
        return 200, {"data": {"id": media.id, "associated_metadata": metadata}}

    def _lookup(
        self, request: Request, caller: User, now: dt.datetime
    ) -> tuple[int, dict[str, Any]]:
        ids = _id_list(request.query.get("ids"))
        fields = _enum_set(request.query, "tweet.fields", TWEET_FIELDS)
        expansions = _enum_set(request.query, "expansions", EXPANSIONS)
        user_fields = _enum_set(request.query, "user.fields", USER_FIELDS)

        found, errors = [], []
        for tweet_id in ids:
            tweet = self._visible(tweet_id, now)
            if tweet is None:
                errors.append(_not_found("tweet", "ids", tweet_id))
            elif "non_public_metrics" in fields and not _private_allowed(
                tweet, caller, now
            ):
                errors.extend(_field_refusals(tweet_id))
            else:
                found.append(tweet)

        body = self._tweets_body(found, fields, expansions, user_fields, now)
        if errors:
            body["errors"] = errors
        return 200, body

    def _me(
        self, request: Request, caller: User, now: dt.datetime
    ) -> tuple[int, dict[str, Any]]:
        user_fields = _enum_set(request.query, "user.fields", USER_FIELDS)
        return 200, {"data": self._render_user(caller, user_fields)}

    def _user(
        self, request: Request, caller: User, now: dt.datetime, user_id: str
    ) -> tuple[int, dict[str, Any]]:
        user_fields = _enum_set(request.query, "user.fields", USER_FIELDS)
        user = self._users.get(user_id)
        if user is None:
            return 200, {"errors": [_not_found("user", "id", user_id)]}
        return 200, {"data": self._render_user(user, user_fields)}

    def _mentions(
        self, request: Request, caller: User, now: dt.datetime, user_id: str
    ) -> tuple[int, dict[str, Any]]:
        if user_id not in self._users:
            return 200, {"errors": [_not_found("user", "id", user_id)]}
        _check_since_id_window(request.query, now)
        mentions = [
            t
            for t in self._tweets.values()
            if t.mentioned_user_id == user_id and (t.indexed_at or t.created_at) <= now
        ]
        return 200, self._timeline(request, caller, now, mentions)

    def _own_tweets(
        self, request: Request, caller: User, now: dt.datetime, user_id: str
    ) -> tuple[int, dict[str, Any]]:
        if user_id not in self._users:
            return 200, {"errors": [_not_found("user", "id", user_id)]}
        posts = [
            t
            for t in self._tweets.values()
            if t.author_id == user_id and t.created_at + self._index_lag <= now
        ]
        return 200, self._timeline(request, caller, now, posts)

    def _timeline(
        self, request: Request, caller: User, now: dt.datetime, tweets: list[Tweet]
    ) -> dict[str, Any]:
        """Answer a reverse-chronological timeline page, as the v2 timelines do."""
        query = request.query
        page_size = _max_results(query)
        since_id, until_id = _id_param(query, "since_id"), _id_param(query, "until_id")
        start, end = _time_param(query, "start_time"), _time_param(query, "end_time")
        before_id = _page_token_position(query, since_id, until_id)
        fields = _enum_set(query, "tweet.fields", TWEET_FIELDS)
        expansions = _enum_set(query, "expansions", EXPANSIONS)
        user_fields = _enum_set(query, "user.fields", USER_FIELDS)

        # since_id and until_id are exclusive, start_time and end_time inclusive.
        # Asking for private metrics narrows a timeline to posts that may show them.
        selected = sorted(
            (
                t
                for t in tweets
                if t.created_at <= now
                and (since_id is None or int(t.id) > since_id)
                and (until_id is None or int(t.id) < until_id)
                and (before_id is None or int(t.id) < before_id)
                and (start is None or t.created_at >= start)
                and (end is None or t.created_at <= end)
                and (
                    "non_public_metrics" not in fields
                    or _private_allowed(t, caller, now)
                )
            ),
            key=lambda t: int(t.id),
            reverse=True,
        )
        page = selected[:page_size]
        if not page:
            return {"meta": {"result_count": 0}}

        body = self._tweets_body(page, fields, expansions, user_fields, now)
        twice = [t for t in page if t.listed_twice]
        if twice:
            body["data"] += [self._render_tweet(t, fields, now) for t in twice]
        meta = {
            "result_count": len(page),
            "newest_id": page[0].id,
            "oldest_id": page[-1].id,
        }
        if len(selected) > page_size:
            meta["next_token"] = _encode_page_token(
                int(page[-1].id), since_id, until_id
            )
        body["meta"] = meta
        return body

    # Rendering

    def _tweets_body(
        self,
        tweets: list[Tweet],
        fields: set[str],
        expansions: set[str],
        user_fields: set[str],
        now: dt.datetime,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if tweets:
            body["data"] = [self._render_tweet(t, fields, now) for t in tweets]
        if tweets and "author_id" in expansions:
            author_ids = dict.fromkeys(t.author_id for t in tweets)
            users = [
                self._users[i]
                for i in author_ids
                if i in self._users and not self._users[i].suspended
            ]
            body["includes"] = {
                "users": [self._render_user(u, user_fields) for u in users]
            }
        if tweets and "attachments.media_keys" in expansions:
            media = [
                {"media_key": self._media[i].media_key, "type": self._media[i].kind}
                for t in tweets
                for i in t.media_ids
                if i in self._media
            ]
            if media:
                body.setdefault("includes", {})["media"] = media
        return body

    def _render_tweet(
        self, tweet: Tweet, fields: set[str], now: dt.datetime
    ) -> dict[str, Any]:
        # Only a long post (its author's own text over NOTE_CUT characters) is cut:
        # the @username X puts before a reply does not count, so a full-length
        # reply shows whole.
        long = len(tweet.submitted_text or tweet.text) > NOTE_CUT
        rendered: dict[str, Any] = {
            "id": tweet.id,
            "text": tweet.text[:NOTE_CUT] if long else tweet.text,
            "edit_history_tweet_ids": [tweet.id],
        }
        if "note_tweet" in fields and long:
            rendered["note_tweet"] = {"text": tweet.text}
        if "lang" in fields:
            rendered["lang"] = "en"
        if "author_id" in fields:
            rendered["author_id"] = tweet.author_id
        if "created_at" in fields:
            rendered["created_at"] = _format_instant(tweet.created_at)
        if "conversation_id" in fields:
            rendered["conversation_id"] = tweet.conversation_id
        if "in_reply_to_user_id" in fields and tweet.in_reply_to_user_id:
            rendered["in_reply_to_user_id"] = tweet.in_reply_to_user_id
        if "attachments" in fields and (tweet.media_ids or tweet.poll_options):
            attachments: dict[str, list[str]] = {}
            if tweet.media_ids:
                attachments["media_keys"] = [
                    self._media[i].media_key if i in self._media else f"3_{i}"
                    for i in tweet.media_ids
                ]
            if tweet.poll_options:
                attachments["poll_ids"] = [tweet.id]
            rendered["attachments"] = attachments
        if "referenced_tweets" in fields and tweet.in_reply_to_tweet_id:
            rendered["referenced_tweets"] = [
                {"type": "replied_to", "id": tweet.in_reply_to_tweet_id}
            ]
        if "public_metrics" in fields or "non_public_metrics" in fields:
            public, private = engagement(tweet, now)
            if "public_metrics" in fields:
                rendered["public_metrics"] = public
            if "non_public_metrics" in fields:
                rendered["non_public_metrics"] = private
        return rendered

    def _render_user(self, user: User, user_fields: set[str]) -> dict[str, Any]:
        rendered: dict[str, Any] = {
            "id": user.id,
            "name": user.name,
            "username": user.username,
        }
        if "public_metrics" in user_fields:
            tweet_count = sum(t.author_id == user.id for t in self._tweets.values())
            rendered["public_metrics"] = {
                "followers_count": user.followers_count,
                "following_count": 0,
                "tweet_count": tweet_count,
                "listed_count": 0,
            }
        return rendered

    # State

    # OAuth 2.0: authorize, token, revoke

    def _oauth(self, request: Request) -> Reply:
        if request.path == AUTHORIZE_PATH and request.method == "GET":
            return self._authorize(request.query)
        if request.method != "POST":
            return Reply(405, _problem(405, "Method Not Allowed"))
        form = request.body if isinstance(request.body, dict) else {}
        refusal = self._client_refusal(request, form)
        if refusal is not None:
            return refusal
        if request.path == REVOKE_PATH:
            return self._revoke(form)
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            return self._grant_code(form)
        if grant_type == "refresh_token":
            return self._grant_refresh(form)
        return _oauth_error("unsupported_grant_type", f"grant_type {grant_type!r}")

    def _authorize(self, query: dict[str, str]) -> Reply:
        missing = [
            name
            for name in (
                "response_type",
                "client_id",
                "redirect_uri",
                "scope",
                "state",
                "code_challenge",
                "code_challenge_method",
            )
            if not query.get(name)
        ]
        if missing:
            return _oauth_error("invalid_request", f"missing {', '.join(missing)}")
        if query["client_id"] != self._oauth_client["client_id"]:
            return _oauth_error("invalid_client", "unknown client_id")
        scopes = query["scope"].split(" ")
        if query["response_type"] != "code" or not set(scopes) <= OAUTH_SCOPES:
            return _oauth_error("invalid_scope", "unknown response_type or scope")
        if query["code_challenge_method"] not in ("S256", "plain"):
            return _oauth_error("invalid_request", "code_challenge_method")

        answer = {"state": query["state"]}
        if self._approver is None:
            answer["error"] = "access_denied"
        else:
            code = _random_token()
            self._codes[code] = {
                "redirect_uri": query["redirect_uri"],
                "challenge": query["code_challenge"],
                "method": query["code_challenge_method"],
                "scopes": scopes,
                "user_id": self._approver,
                "expires_at": self.clock.now() + OAUTH_CODE_TTL,
            }
            answer["code"] = code
        separator = "&" if "?" in query["redirect_uri"] else "?"
        location = query["redirect_uri"] + separator + urlencode(answer)
        return Reply(302, None, {"location": location})

    def _client_refusal(self, request: Request, form: dict[str, str]) -> Reply | None:
        client = self._oauth_client
        if client["client_secret"] is None:
            if form.get("client_id") != client["client_id"]:
                return _oauth_error("invalid_request", "Missing valid client_id", 400)
            return None
        pair = f"{client['client_id']}:{client['client_secret']}".encode()
        if request.authorization != "Basic " + base64.b64encode(pair).decode():
            return _oauth_error(
                "unauthorized_client", "Missing valid authorization header", 401
            )
        return None

    def _grant_code(self, form: dict[str, str]) -> Reply:
        grant = self._codes.pop(form.get("code", ""), None)
        now = self.clock.now()
        if grant is None or grant["expires_at"] <= now:
            return _oauth_error("invalid_request", INVALID_TOKEN_DESCRIPTION)
        verifier = form.get("code_verifier", "")
        challenge = verifier
        if grant["method"] == "S256":
            digest = hashlib.sha256(verifier.encode()).digest()
            challenge = base64.urlsafe_b64encode(digest).decode().rstrip("=")
        if challenge != grant["challenge"] or not verifier:
            return _oauth_error("invalid_request", "code_verifier does not match")
        if form.get("redirect_uri") != grant["redirect_uri"]:
            return _oauth_error("invalid_request", "redirect_uri does not match")
        self._grants["authorization_code"] += 1
        return self._issue(grant["user_id"], grant["scopes"], now)

    def _grant_refresh(self, form: dict[str, str]) -> Reply:
        grant = self._refresh_tokens.get(form.get("refresh_token", ""))
        if grant is None or grant["used"]:
            return _oauth_error("invalid_request", INVALID_TOKEN_DESCRIPTION)
        grant["used"] = True  # rotation: this refresh token is void from now on
        self._grants["refresh_token"] += 1
        return self._issue(grant["user_id"], grant["scopes"], self.clock.now())

    def _issue(self, user_id: str, scopes: list[str], now: dt.datetime) -> Reply:
        access_token = _random_token()
        ttl_s = self._oauth_client["access_token_ttl_s"]
        self._tokens[access_token] = user_id
        self._token_expiry[access_token] = _expiry_after(now, ttl_s)
        self._token_scopes[access_token] = list(scopes)
        body = {
            "token_type": "bearer",
            "expires_in": ttl_s,
            "access_token": access_token,
            "scope": " ".join(scopes),
        }
        if "offline.access" in scopes:
            refresh_token = _random_token()
            self._refresh_tokens[refresh_token] = {
                "user_id": user_id,
                "scopes": scopes,
                "used": False,
            }
            body["refresh_token"] = refresh_token
        return Reply(200, body)

    def _revoke(self, form: dict[str, str]) -> Reply:
        token = form.get("token", "")
        self._tokens.pop(token, None)
        if token in self._refresh_tokens:
            self._refresh_tokens[token]["used"] = True
        self._grants["revoked"] += 1
        return Reply(200, {"revoked": True})

    def _clear(self) -> None:
        self._users: dict[str, User] = {}
        self._tokens: dict[str, str] = {}
        self._tweets: dict[str, Tweet] = {}
        # (author id, text as submitted): the duplicate check, without a scan of
        # every post (the publishing bench sends 5,000).
        self._texts_by_author: set[tuple[str, str]] = set()
        self._media: dict[str, Media] = {}
        self._faults: list[Fault] = []
        self._windows: dict[tuple[str, str], Window] = {}
        self._requests: dict[str, dict[str, Any]] = {}
        self._limits = dict(self._default_limits)
        self._index_lag = dt.timedelta(0)
        self._latency_s = 0.0
        self._sequence_by_ms: dict[int, int] = {}
        self._oauth_client: dict[str, Any] = {
            "client_id": "sandbox-client",
            "client_secret": None,
            "access_token_ttl_s": ACCESS_TOKEN_TTL_S,
        }
        self._approver: str | None = None
        self._codes: dict[str, dict[str, Any]] = {}
        self._token_expiry: dict[str, dt.datetime] = {}
        self._token_scopes: dict[str, list[str]] = {}
        self._refresh_tokens: dict[str, dict[str, Any]] = {}
        self._grants = {"authorization_code": 0, "refresh_token": 0, "revoked": 0}

    def _next_id(self, instant: dt.datetime) -> str:
        """Issue a unique snowflake-like id that sorts with `instant`."""
        ms = int(instant.timestamp() * 1000) - SNOWFLAKE_EPOCH_MS
        sequence = self._sequence_by_ms.get(ms, 0)
        self._sequence_by_ms[ms] = sequence + 1
        return str((ms << 22) | sequence)

    def _new_tweet(
        self, text: str, author_id: str, created_at: dt.datetime, target: Tweet | None
    ) -> Tweet:
        tweet_id = self._next_id(created_at)
        shown = text
        if target is not None and target.author_id != author_id:
            # X starts a reply to someone else with their @username; a thread's
            # reply to its own post carries none.
            answered = self._users.get(target.author_id)
            prefix = f"@{answered.username} " if answered else ""
            if not text.lower().startswith(prefix.lower()):
                shown = prefix + text
        tweet = Tweet(
            id=tweet_id,
            text=_wrap_links(shown, tweet_id),
            author_id=author_id,
            created_at=created_at,
            conversation_id=target.conversation_id if target else tweet_id,
            submitted_text=text,
            in_reply_to_tweet_id=target.id if target else None,
            in_reply_to_user_id=target.author_id if target else None,
        )
        self._tweets[tweet_id] = tweet
        self._texts_by_author.add((author_id, text))
        return tweet

    def _store_mention(
        self,
        to_user_id: str,
        text: str,
        author: dict[str, Any],
        created_at: dt.datetime | None,
        in_reply_to_tweet_id: str | None,
    ) -> Tweet:
        if to_user_id not in self._users:
            raise ValueError(f"no account {to_user_id}; register it first")
        if not str(author.get("id", "")).isdigit() or not author.get("username"):
            raise ValueError("author needs a decimal id and a username")
        target = None
        if in_reply_to_tweet_id is not None:
            target = self._tweets.get(in_reply_to_tweet_id)
            if target is None:
                raise ValueError(f"no post {in_reply_to_tweet_id} to reply to")

        author_id = str(author["id"])
        if author_id not in self._users:
            self._users[author_id] = User(
                author_id,
                author["username"],
                author.get("name", author["username"]),
                int(author.get("followers_count", 0)),
                suspended=bool(author.get("suspended", False)),
            )
        when = as_utc(created_at) if created_at else self.clock.now()
        tweet = self._new_tweet(text, author_id, when, target)
        tweet.mentioned_user_id = to_user_id
        return tweet

    def _visible(self, tweet_id: str, now: dt.datetime) -> Tweet | None:
        tweet = self._tweets.get(tweet_id)
        return tweet if tweet is not None and tweet.created_at <= now else None

    def _snapshot(self) -> dict[str, Any]:
        tweets = list(self._tweets.values())
        return {
            "now": _format_instant(self.clock.now()),
            "accounts": [
                {
                    "user_id": u.id,
                    "username": u.username,
                    "name": u.name,
                    "followers_count": u.followers_count,
                }
                for u in self._users.values()
                if u.token is not None
            ],
            "posts": [
                {
                    "id": t.id,
                    "user_id": t.author_id,
                    "username": self._users[t.author_id].username,
                    "created_at": _format_instant(t.created_at),
                    "text": t.text,
                    "submitted_text": t.submitted_text,
                    "in_reply_to_tweet_id": t.in_reply_to_tweet_id,
                    "conversation_id": t.conversation_id,
                    "media_ids": list(t.media_ids),
                    "poll": None
                    if t.poll_options is None
                    else {
                        "options": list(t.poll_options),
                        "duration_minutes": t.poll_duration_minutes,
                    },
                }
                for t in tweets
                if t.mentioned_user_id is None
            ],
            "media": [
                {
                    "id": m.id,
                    "user_id": m.owner_id,
                    "size": m.size,
                    "media_type": m.media_type,
                    "media_category": m.category,
                    "alt_text": m.alt_text,
                }
                for m in self._media.values()
            ],
            "mentions": [
                {
                    "id": t.id,
                    "to_user_id": t.mentioned_user_id,
                    "author_id": t.author_id,
                    "author_username": self._users[t.author_id].username,
                    "created_at": _format_instant(t.created_at),
                    "text": t.text,
                    "in_reply_to_tweet_id": t.in_reply_to_tweet_id,
                    "media_ids": list(t.media_ids),
                }
                for t in tweets
                if t.mentioned_user_id is not None
            ],
            "requests": self._requests,
            "limits": self._limits,
            "index_lag_s": self._index_lag.total_seconds(),
            "latency_s": self._latency_s,
            "faults": [vars(f) for f in self._faults],
            "oauth": {
                "client_id": self._oauth_client["client_id"],
                "confidential": self._oauth_client["client_secret"] is not None,
                "approver": self._approver,
                "grants": dict(self._grants),
                "live_refresh_tokens": sum(
                    not r["used"] for r in self._refresh_tokens.values()
                ),
            },
        }

    def _save(self) -> None:
        """Write the whole state to the state file, if any; called under the lock."""
        if self.state_file is None:
            return
        # Write then rename, so a reader never sees a half-written file.
        scratch = self.state_file.with_suffix(".tmp")
        scratch.write_text(json.dumps(self._snapshot(), indent=2) + "\n")
        scratch.replace(self.state_file)

    # Control API over HTTP

    def _control(self, request: Request) -> Reply:
        action = (request.method, request.path.removeprefix("/_sandbox/"))
        body = request.body if isinstance(request.body, dict) else {}
        try:
            if action == ("GET", "state"):
                return Reply(200, self.snapshot())
            if action == ("POST", "accounts"):
                self.register_account(
                    user_id=str(body["user_id"]),
                    username=body["username"],
                    name=body.get("name", body["username"]),
                    token=body["token"],
                    followers_count=int(body.get("followers_count", 0)),
                )
                return Reply(201, {"data": {"user_id": str(body["user_id"])}})
            if action == ("POST", "deletions"):
                self.delete_post(str(body["post_id"]))
                return Reply(200, {"data": {"deleted": True}})
            if action == ("POST", "mentions"):
                return Reply(201, {"data": self._add_mentions(body)})
            if action == ("POST", "faults"):
                self.add_fault(
                    method=body["method"],
                    path_prefix=body["path_prefix"],
                    status=body.get("status"),
                    count=int(body.get("count", 1)),
                    reset_in_s=int(body.get("reset_in_s", 900)),
                    delay_s=float(body.get("delay_s", 0.0)),
                    drop=bool(body.get("drop", False)),
                    truncate=bool(body.get("truncate", False)),
                    hold=bool(body.get("hold", False)),
                    detail=body.get("detail"),
                    problem_type=body.get("problem_type"),
                    unserved=bool(body.get("unserved", False)),
                )
                return Reply(201, {"data": self.snapshot()["faults"]})
            if action == ("POST", "release_answers"):
                self.release_answers()
                return Reply(200, {"data": {"released": True}})
            if action == ("POST", "limits"):
                self.set_limit(body["endpoint"], int(body["limit"]))
                return Reply(200, {"data": self.snapshot()["limits"]})
            if action == ("POST", "index_lag"):
                self.set_index_lag(float(body["seconds"]))
                return Reply(200, {"data": {"index_lag_s": float(body["seconds"])}})
            if action == ("POST", "latency"):
                self.set_latency(float(body["seconds"]))
                return Reply(200, {"data": {"latency_s": float(body["seconds"])}})
            if action == ("POST", "oauth"):
                self.configure_oauth(
                    client_id=body["client_id"],
                    client_secret=body.get("client_secret"),
                    access_token_ttl_s=int(
                        body.get("access_token_ttl_s", ACCESS_TOKEN_TTL_S)
                    ),
                )
                return Reply(200, {"data": self.snapshot()["oauth"]})
            if action == ("POST", "oauth/approver"):
                self.approve_as(body.get("user_id"))
                return Reply(200, {"data": self.snapshot()["oauth"]})
            if action == ("POST", "reset"):
                self.reset()
                return Reply(200, {"data": {}})
        except (KeyError, TypeError, ValueError) as exc:
            return Reply(400, {"error": f"{type(exc).__name__}: {exc}"})
        return Reply(
            404, {"error": f"no control endpoint {request.method} {request.path}"}
        )

    def _add_mentions(self, body: dict[str, Any]) -> list[dict[str, str]]:
        """Store a batch of mentions in order; return their ids and times."""
        with self._lock:
            stored = []
            for mention in body["mentions"]:
                created_at = mention.get("created_at")
                stored.append(
                    self._store_mention(
                        str(body["to_user_id"]),
                        mention["text"],
                        mention["author"],
                        parse_instant(created_at) if created_at else None,
                        mention.get("in_reply_to_tweet_id"),
                    )
                )
            self._save()
        return [
            {"id": t.id, "created_at": _format_instant(t.created_at)} for t in stored
        ]


def engagement(tweet: Tweet, now: dt.datetime) -> tuple[dict[str, int], dict[str, int]]:
    """Return a post's public and private metrics at `now`.

    A function of the post's id and age only: the same instant always gives the same
    numbers, and they never decrease. Most of the growth comes in the first day, a
    tail over the following week; link clicks only when the text holds a link.
    """
    age_h = max(0.0, (now - tweet.created_at).total_seconds() / 3600)
    share = 0.8 * (1 - math.exp(-age_h / 6)) + 0.2 * (1 - math.exp(-age_h / 72))
    digest = hashlib.sha256(tweet.id.encode()).digest()
    draw = [byte / 255 for byte in digest[:8]]

    reach = 200 + int(draw[0] * 4800)
    has_link = bool(extract_urls_with_indices(tweet.text))
    final = {
        "retweet_count": reach * (0.001 + 0.006 * draw[1]),
        "reply_count": reach * (0.001 + 0.004 * draw[2]),
        "like_count": reach * (0.005 + 0.035 * draw[3]),
        "quote_count": reach * 0.002 * draw[4],
        "bookmark_count": reach * 0.01 * draw[5],
        "impression_count": reach,
        "url_link_clicks": reach * (0.01 + 0.03 * draw[6]) if has_link else 0,
        "user_profile_clicks": reach * (0.002 + 0.01 * draw[7]),
    }
    grown = {name: math.floor(value * share) for name, value in final.items()}

    public = {name: grown[name] for name in PUBLIC_METRIC_NAMES}
    private = {name: grown[name] for name in PRIVATE_METRIC_NAMES}
    return public, private


def _private_allowed(tweet: Tweet, caller: User, now: dt.datetime) -> bool:
    """Say if X shows private metrics: the caller's own post, under 30 days old."""
    age = now - tweet.created_at
    return tweet.author_id == caller.id and age < PRIVATE_METRICS_WINDOW


def _wrap_links(text: str, tweet_id: str) -> str:
    """Replace each link with a 23-character t.co link, as X stores post text."""
    for found in reversed(extract_urls_with_indices(text)):
        start, end = found["indices"]
        digest = hashlib.sha256(f"{tweet_id}:{found['url']}".encode()).hexdigest()
        text = f"{text[:start]}https://t.co/{digest[:10]}{text[end:]}"
    return text


# Errors in X's formats


def _problem(
    status: int, detail: str | None = None, problem_type: str | None = None
) -> dict[str, Any]:
    phrase = HTTPStatus(status).phrase
    return {
        "title": phrase,
        "detail": detail or phrase,
        "type": problem_type or "about:blank",
        "status": status,
    }


def _invalid(parameter: str, value: Any, message: str) -> dict[str, Any]:
    return {
        "errors": [{"parameters": {parameter: [value]}, "message": message}],
        "title": "Invalid Request",
        "detail": "One or more parameters to your request was invalid.",
        "type": PROBLEMS + "invalid-request",
    }


def _poll(poll: Any) -> tuple[list[str] | None, int | None]:
    """Return a create request's poll options and duration, refusing bad ones."""
    if poll is None:
        return None, None
    options = poll.get("options") if isinstance(poll, dict) else None
    low, high = POLL_OPTIONS_RANGE
    if (
        not isinstance(options, list)
        or not low <= len(options) <= high
        or not all(
            isinstance(o, str) and 1 <= len(o) <= POLL_OPTION_LENGTH_MAX
            for o in options
        )
    ):
        message = (
            f"poll.options must be {low} to {high} options of 1 to "
            f"{POLL_OPTION_LENGTH_MAX} characters"
        )
        raise Refusal(400, _invalid("poll.options", options, message))
    duration = poll.get("duration_minutes")
    shortest, longest = POLL_DURATION_RANGE
    if (
        isinstance(duration, bool)
        or not isinstance(duration, int)
        or not (shortest <= duration <= longest)
    ):
        message = f"poll.duration_minutes must be {shortest} to {longest}"
        raise Refusal(400, _invalid("poll.duration_minutes", duration, message))
    return list(options), duration


def _oauth_error(error: str, description: str, status: int = 400) -> Reply:
    return Reply(status, {"error": error, "error_description": description})


def _expiry_after(now: dt.datetime, ttl_s: int) -> dt.datetime:
    """Return when a token issued now for ttl_s expires; a life past the calendar's
    end (a test's huge ttl) never ends."""
    try:
        return now + dt.timedelta(seconds=ttl_s)
    except OverflowError:
        return dt.datetime.max.replace(tzinfo=dt.UTC)


def _random_token() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(48)).decode().rstrip("=")


def _not_found(resource_type: str, parameter: str, value: str) -> dict[str, str]:
    noun = "tweet with ids" if resource_type == "tweet" else f"{resource_type} with id"
    return {
        "value": value,
        "detail": f"Could not find {noun}: [{value}].",
        "title": "Not Found Error",
        "resource_type": resource_type,
        "parameter": parameter,
        "resource_id": value,
        "type": PROBLEMS + "resource-not-found",
    }


def _field_refusals(tweet_id: str) -> list[dict[str, str]]:
    return [
        {
            "resource_type": "tweet",
            "field": f"non_public_metrics.{name}",
            "parameter": "id",
            "resource_id": tweet_id,
            "title": "Field Authorization Error",
            "section": "data",
            "detail": (
                f"Sorry, you are not authorized to access 'non_public_metrics.{name}' "
                f"on the Tweet with id : [{tweet_id}]."
            ),
            "value": tweet_id,
            "type": PROBLEMS + "not-authorized-for-field",
        }
        for name in PRIVATE_METRIC_NAMES
    ]


def _rate_headers(limit: int, remaining: int, reset_at: dt.datetime) -> dict[str, str]:
    return {
        "x-rate-limit-limit": str(limit),
        "x-rate-limit-remaining": str(remaining),
        "x-rate-limit-reset": str(math.ceil(reset_at.timestamp())),
    }


# Query parameters, validated as X does: anything out of range is a 400


def _enum_set(query: dict[str, str], name: str, allowed: frozenset[str]) -> set[str]:
    values = {v for v in query.get(name, "").split(",") if v}
    unknown = sorted(values - allowed)
    if unknown:
        message = (
            f"The `{name}` query parameter value [{unknown[0]}] is not one of "
            f"[{','.join(sorted(allowed))}]"
        )
        raise Refusal(400, _invalid(name, unknown[0], message))
    return values


def _id_list(raw: str | None) -> list[str]:
    ids = [i for i in (raw or "").split(",") if i]
    if not 1 <= len(ids) <= 100:
        message = f"The `ids` query parameter list has {len(ids)} values, not 1 to 100"
        raise Refusal(400, _invalid("ids", raw, message))
    for tweet_id in ids:
        if not tweet_id.isdigit():
            message = f"The `ids` query parameter value [{tweet_id}] is not valid"
            raise Refusal(400, _invalid("ids", tweet_id, message))
    return ids


def _id_param(query: dict[str, str], name: str) -> int | None:
    raw = query.get(name)
    if raw is None:
        return None
    if not raw.isdigit():
        message = f"The `{name}` query parameter value [{raw}] is not valid"
        raise Refusal(400, _invalid(name, raw, message))
    return int(raw)


def _check_since_id_window(query: dict[str, str], now: dt.datetime) -> None:
    """Refuse a since_id older than the window X keeps, as X does."""
    since_id = _id_param(query, "since_id")
    if since_id is None:
        return
    ms = (since_id >> 22) + SNOWFLAKE_EPOCH_MS
    earliest = now - SINCE_ID_WINDOW
    if dt.datetime.fromtimestamp(ms / 1000, dt.UTC) < earliest:
        message = (
            f"Invalid 'since_id':'{since_id}'. 'since_id' must be a post id created "
            f"after {_format_instant(earliest)}"
        )
        raise Refusal(400, _invalid("since_id", str(since_id), message))


def _time_param(query: dict[str, str], name: str) -> dt.datetime | None:
    raw = query.get(name)
    if raw is None:
        return None
    try:
        return parse_instant(raw)
    except ValueError:
        message = f"Invalid '{name}':'{raw}'. '{name}' must be a YYYY-MM-DDTHH:mm:ssZ"
        raise Refusal(400, _invalid(name, raw, message)) from None


def _max_results(query: dict[str, str]) -> int:
    raw = query.get("max_results", "10")
    if not raw.isdigit() or not 5 <= int(raw) <= 100:
        message = (
            f"The `max_results` query parameter value [{raw}] is not between 5 and 100"
        )
        raise Refusal(400, _invalid("max_results", raw, message))
    return int(raw)


def _encode_page_token(
    before_id: int, since_id: int | None, until_id: int | None
) -> str:
    """Make an opaque next_token that resumes below `before_id`, for the query
    with this since_id and until_id only."""
    bounds = [before_id, since_id, until_id]
    plain = ":".join("" if bound is None else f"{bound:x}" for bound in bounds)
    return base64.b32encode(plain.encode()).decode().rstrip("=").lower()


def _page_token_position(
    query: dict[str, str], since_id: int | None, until_id: int | None
) -> int | None:
    """Return the id a page token resumes below; refuse a token that is not one,
    or that was issued for a query with another since_id or until_id."""
    token = query.get("pagination_token")
    if token is None:
        return None
    try:
        padded = token.upper() + "=" * (-len(token) % 8)
        before, since, until = base64.b32decode(padded).decode().split(":")
        position = int(before, 16)
        issued_for = [int(b, 16) if b else None for b in (since, until)]
    except (binascii.Error, ValueError, UnicodeDecodeError):
        message = f"The `pagination_token` query parameter value [{token}] is not valid"
        raise Refusal(400, _invalid("pagination_token", token, message)) from None

    if issued_for != [since_id, until_id]:
        message = (
            f"The `pagination_token` query parameter value [{token}] does not "
            "belong to this query's since_id and until_id"
        )
        raise Refusal(400, _invalid("pagination_token", token, message))
    return position


def _format_instant(instant: dt.datetime) -> str:
    """Format as X does: UTC, milliseconds, a trailing Z."""
    instant = as_utc(instant)
    return (
        instant.strftime("%Y-%m-%dT%H:%M:%S.") + f"{instant.microsecond // 1000:03d}Z"
    )


# HTTP plumbing


def weighted_length(text: str) -> int:
    """X's weighted length of a post's text, as twitter-text counts it.

    In twitter-text's v3 configuration every ASCII character weighs 1 and a URL 23,
    and ASCII holds no emoji: for ASCII text that is the whole count, without
    parse_tweet's emoji scan (about 1.5 ms a post, most of the sandbox's CPU in the
    publishing bench). Any other text goes through parse_tweet. A test compares
    the two on the conformance cases and on generated text.
    """
    if not text.isascii():
        return parse_tweet(text).weightedLength
    text = re.sub(r"\r\n|\r|\n", "\n", text)
    urls = extract_urls_with_indices(text)
    return len(text) + sum(
        URL_WEIGHT - (url["indices"][1] - url["indices"][0]) for url in urls
    )


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], sandbox: XSandbox) -> None:
        super().__init__(address, _Handler)
        self.sandbox = sandbox

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up on a delayed answer has closed its socket: expected.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # An answer's head and body leave in two writes; with Nagle's algorithm the
    # body waited for the client's delayed ACK, about 40 ms on every call over a
    # kept-alive connection, which X's front end does not add (the Gemini
    # stand-in, decision 0035).
    disable_nagle_algorithm = True
    # Headers and body leave in two writes; with Nagle on, each answer on a kept-alive
    # connection would wait for the client's delayed ACK (about 40 ms).
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: the state records every request."""

    def _answer(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        content_type = self.headers.get("content-type", "").split(";")[0].strip()
        try:
            if content_type == FORM:
                body = dict(parse_qsl(raw.decode(), keep_blank_values=True))
            else:
                body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        authorization = self.headers.get("authorization", "")
        token = authorization[7:] if authorization.startswith("Bearer ") else None
        query = {
            k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()
        }

        reply = self.server.sandbox.handle(
            Request(self.command, url.path, query, body, token, authorization or None)
        )
        if reply.dropped:
            self.close_connection = True
            return

        payload = b"" if reply.body is None else json.dumps(reply.body).encode()
        self.send_response(reply.status)
        self.send_header("content-type", reply.content_type)
        self.send_header("content-length", str(len(payload)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if reply.truncated:
            # Promise the whole body, send half, hang up: a broken answer.
            self.wfile.write(payload[: len(payload) // 2])
            self.close_connection = True
            return
        self.wfile.write(payload)


def main(argv: list[str] | None = None) -> int:
    """Run the sandbox until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m infra.x_sandbox")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--clock-file", type=Path, help="FileClock path; else system")
    parser.add_argument("--state-file", type=Path, help="write the state here as JSON")
    args = parser.parse_args(argv)

    clock = FileClock(args.clock_file) if args.clock_file else SystemClock()
    sandbox = XSandbox(
        clock=clock, host=args.host, port=args.port, state_file=args.state_file
    )
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())

    sandbox.start()
    print(f"x-sandbox listening on {sandbox.base_url}", flush=True)
    while not stopping.wait(timeout=0.5):
        pass
    sandbox.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
