"""Settings, read once from the environment into one frozen object.

Every name, default and meaning is listed in the README's configuration table. A
deployment that lacks something required fails with one ConfigurationError naming
every missing or malformed variable, instead of one at a time.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping
from decimal import Decimal

from cartcast.errors import ConfigurationError

ENVIRONMENTS = ("local", "cloud")
# Where X sends a person to approve the app (docs.x.com, OAuth 2.0 Authorization
# Code Flow with PKCE).
X_AUTHORIZE_URL = "https://x.com/i/oauth2/authorize"
# An authorization a person has not finished within an hour is abandoned; a token
# refreshed more than an hour early would be refreshed on every run (X's access
# tokens live two hours).
X_OAUTH_STATE_TTL_MAX_S = 3600
X_TOKEN_REFRESH_MARGIN_MAX_S = 3600
SECRET_VERSION = re.compile(
    r"projects/[a-z0-9-]{1,63}/secrets/[A-Za-z0-9_-]{1,255}/versions/(latest|[1-9][0-9]*)"
)
PUBSUB_MODES = ("push", "google")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# posts.PRODUCTS_PER_REQUEST_MAX, repeated so settings import nothing of the domain:
# one Gemini request writes a chunk, so POST /v1/captions's own limit bounds it.
CAPTION_PRODUCTS_PER_REQUEST_MAX = 20
# Alerts go out after the run's posts, but a slow webhook still holds the run open
# for this long per alert.
ALERT_TIMEOUT_MAX_S = 30
# How long after sending a post may be called absent from the account's timeline.
RECONCILE_DELAY_RANGE_S = (30, 86400)
# X's pay-per-use prices by call class (X developer documentation, pricing, 2026);
# each is CARTCAST_X_PRICE_<CLASS>_USD. An owned read (the account's own timeline
# or mentions) costs the owned price only with the brand's own X app; a metric
# lookup by post id is a post read on any app (decision 0022).
X_PRICES_USD = {
    "post": Decimal("0.015"),
    "post_with_url": Decimal("0.20"),
    "summoned_reply": Decimal("0.010"),
    "post_read": Decimal("0.005"),
    "user_read": Decimal("0.010"),
    "owned_read": Decimal("0.001"),
}
# The cost ledger keeps four decimals; a price over a dollar a call is a typo.
X_PRICE_MAX_USD = Decimal("1")
# Dollars with at most four decimals, in ASCII digits.
PLAIN_PRICE = re.compile(r"[0-9]+(\.[0-9]{1,4})?")
# A post waits at most a day between two tries after X failed; at most 20 tries.
PUBLISH_RETRY_MAX_S_LIMIT = 86400
PUBLISH_RETRIES_LIMIT = 20
# How far ahead a post may be scheduled, at most; ten years is past any campaign
# and still catches a mistyped year.
SCHEDULE_HORIZON_DAYS_MAX = 3660
# A console session lasts at most a week; the secret that signs it is 32+ characters.
CONSOLE_SESSION_MAX_MIN = 7 * 24 * 60
CONSOLE_SECRET_MIN_LENGTH = 32
# Products stored per console import request: the largest import (1,000 products)
# fits one request at most, which is what the chunks are there to avoid needing.
CONSOLE_IMPORT_CHUNK_MAX = 1000
# Failed console sign-ins: a window longer than a day locks out a shared address
# for a day; more than 1,000 failures a window is no limit against guessing.
CONSOLE_SIGNIN_WINDOW_MAX_MIN = 1440
CONSOLE_SIGNIN_FAILURES_MAX = 1000
# Proxies in front of the function that each append an address to
# X-Forwarded-For; past a handful, a setting is a typo.
CONSOLE_PROXY_HOPS_MAX = 5
# A Pub/Sub subscription id (Pub/Sub resource names: 3 to 255 characters, a letter
# first, then letters, digits and - _ . ~ + %), or its full path.
PUBSUB_SUBSCRIPTION = re.compile(
    r"(projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/subscriptions/)?"
    r"[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}"
)
# Upper bounds of the other durations and counts. Without them a value that parses
# (a day count of 999999) loads, then every run fails on date arithmetic outside
# the years 1 to 9999; each bound is far past any useful value, and in the README.
DAYS_MAX = 3660
AGE_MAX_S = 315_360_000  # ten years
# A migration's lock wait and tries at most; the defaults (5 s, 12 tries, each but
# the last followed by a pause as long) give way within two minutes, well inside
# the migrations job's 900 s (terraform/migrations.tf), and so do the most they
# allow (40 tries of 8 s and their pauses, 640 s). The wait stays under the
# 10 s every database read waits (db.CONNECT_TIMEOUT_S): a longer one would end
# as a lost connection, not a try given way, its ALTER left queued on the server.
MIGRATE_LOCK_TIMEOUT_MAX_S = 8
MIGRATE_LOCK_ATTEMPTS_MAX = 40
LEASE_MAX_S = 86_400
# An event-triggered Cloud Function runs at most 540 s (Cloud Functions quotas,
# "Time limits"); a wait or budget longer than the run itself is a typo.
RUN_WAIT_MAX_S = 540
PUBLISH_BATCH_MAX = 1000
# A brand's mentions are polled at least once a day, and an overlap longer than a
# day would re-read (and pay for) a day of mentions on every poll.
MENTION_POLL_MAX_S_LIMIT = 86_400
# The longest timeout Cloud Run functions give an event-triggered function.
EVENT_FUNCTION_TIMEOUT_MAX_S = 540
MENTION_OVERLAP_MAX_S = 86_400
# Threads sending one publish run's batch; each holds a database connection while
# it writes, so more than this is more connections than a small instance takes.
PUBLISH_WORKERS_MAX = 32
PAGES_MAX = 100
# Near-duplicate copy (near_duplicates.py, which takes these defaults from here):
# kept here so that reading settings, which every function does at start, does not
# import the copy comparison, which only the functions that write copy run.
NEAR_DUPLICATE_THRESHOLD = 0.8
NEAR_DUPLICATE_DAYS = 30
GEMINI_REQUESTS_PER_MINUTE_MAX = 100_000
GEMINI_REQUESTS_PER_DAY_MAX = 100_000_000
X_POSTS_LIMIT_MAX = 10_000_000
SENTIMENT_ENGINES = ("offline", "gemini")
# Mentions per Gemini classification call: the answer must fit its token budget.
SENTIMENT_BATCH_MAX = 100
# More followers than any account on X has (about 230 million in 2026).
FOLLOWERS_MAX = 1_000_000_000
# A webhook's back-off (alerts, escalations) doubles up to an hour from its base.
WEBHOOK_RETRY_BASE_MAX_S = 3600
# A caption request's transaction idle longer is ended by the database; no
# request of api or generate_caption runs longer than this (terraform's bound).
CAPTION_IDLE_MAX_S_LIMIT = 3600
# Unset, the bound is two Gemini calls and this margin, what terraform's caption
# functions are given at least; set, it may leave no less than the least margin:
# Gemini's pause between its attempts (gemini.py, 1 s) and the request's own work.
CAPTION_IDLE_MARGIN_S = 20
CAPTION_IDLE_LEAST_MARGIN_S = 2
# Setting a webhook URL waits this long at most for its host's lookup, inside the
# request's transaction (decision 0106); a database read waits 10 s.
WEBHOOK_LOOKUP_TIMEOUT_MAX_S = 10
# A brand that asked to leave is gone within a year at most: a longer grace period
# keeps data the brand asked to have deleted.
OFFBOARDING_GRACE_MAX_DAYS = 365
# Crisis detection (crisis.py): a window past a day is no longer "now", a
# baseline past a quarter is another season, a factor past 100 never fires.
CRISIS_WINDOW_MAX_MIN = 1440
AUDIT_REFUSALS_MAX_PER_HOUR = 100_000
CRISIS_BASELINE_MAX_DAYS = 90
CRISIS_MENTIONS_MAX = 1_000_000
CRISIS_FACTOR_MAX = 100
# A Cloud Scheduler job's full name, as the API takes it.
SCHEDULER_JOB = re.compile(r"projects/[^/\s]+/locations/[^/\s]+/jobs/[^/\s]+")
FLAG_VALUES = {
    "true": True,
    "1": True,
    "yes": True,
    "false": False,
    "0": False,
    "no": False,
}


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every setting of a deployment, as `load` read it from the environment."""

    # The docstring is also what spares dataclass from building one out of the
    # signature of eighty fields (inspect.signature) at every cold start.
    environment: str = "local"
    database_url: str | None = None
    cloud_sql_instance: str | None = None
    db_user: str | None = None
    db_name: str = "cartcast"
    db_iam_auth: bool = True
    clock_file: str | None = None
    operator_key: str | None = None
    x_api_base_url: str | None = None
    x_timeout_s: float = 10.0
    gemini_api_key: str | None = None
    gemini_model: str = "gemini-2.5-flash"
    gemini_base_url: str | None = None
    gemini_api_version: str = "v1beta"
    gemini_timeout_s: float = 20.0
    gemini_requests_per_minute: int = 5
    gemini_requests_per_day: int = 20
    pubsub_mode: str = "push"
    pubsub_push_endpoints: Mapping[str, str] = dataclasses.field(default_factory=dict)
    google_cloud_project: str | None = None
    mentions_topic: str = "cartcast-mentions"
    max_event_age_s: int = 900
    publish_batch_size: int = 50
    publish_workers: int = 4
    publish_lease_s: int = 300
    schedule_horizon_days: int = 365
    console_secret: str | None = None
    console_session_min: int = 480
    console_import_chunk: int = 200
    console_signin_failures: int = 10
    console_signin_window_min: int = 15
    # Unset: 0 locally (the peer's address), 1 in the cloud (decision 0038).
    console_proxy_hops: int = 0
    # The dead-letter subscription the status page reads; "" reads none.
    dead_letter_subscription: str = ""
    reconcile_delay_s: int = 300
    reconcile_pages_max: int = 5
    missed_after_s: int = 900
    missed_max_late_s: int = 21600
    publish_retries: int = 5
    publish_retry_base_s: float = 60.0
    publish_retry_max_s: float = 1800.0
    alert_timeout_s: float = 5.0
    alert_retry_base_s: float = 60.0
    alert_max_age_s: int = 86400
    sentiment_engine: str = "offline"
    sentiment_batch_size: int = 50
    reach_followers_min: int = 10_000
    escalation_timeout_s: float = 5.0
    escalation_retry_base_s: float = 60.0
    escalation_max_age_s: int = 86400
    # More certificate authorities webhook deliveries trust, besides certifi's.
    webhook_ca_file: str = ""
    # How long each try of a migration waits for a lock, and how many tries
    # (migrate.py): waiting gives way, so queries queued behind it go on.
    migrate_lock_timeout_s: float = 5.0
    migrate_lock_attempts: int = 12
    # The proxy variable set in the environment (HTTPS_PROXY and its kin): image
    # fetches use none, webhook deliveries an http:// HTTPS_PROXY alone, tunnelled
    # to the address checked, and not for hosts NO_PROXY names (decision 0099).
    proxy_variable: str = ""
    webhook_proxy_url: str = ""
    no_proxy: str = ""
    webhook_budget_s: float = 30.0
    # How long a caption request's transaction may sit idle, waiting for Gemini,
    # before the database ends it and frees its Idempotency-Key (decision 0106);
    # load() derives it from gemini_timeout_s when unset.
    caption_idle_max_s: float = 60.0
    # How long setting a webhook URL waits for its host's lookup (decision 0106).
    webhook_lookup_timeout_s: float = 2.0
    mention_pages_max: int = 10
    mention_poll_min_s: int = 60
    mention_poll_max_s: int = 900
    mention_poll_lease_s: int = 300
    function_timeout_s: int = 300
    mention_overlap_s: int = 300
    attribution_window_days: int = 7
    near_duplicate_threshold: float = NEAR_DUPLICATE_THRESHOLD
    near_duplicate_days: int = NEAR_DUPLICATE_DAYS
    caption_products_per_request: int = 10
    caption_drain_budget_s: float = 120.0
    # X's published limits for POST /2/tweets (decision 0010).
    x_posts_per_15min_per_user: int = 100
    x_posts_per_3h_per_user: int = 300
    x_posts_per_24h_per_app: int = 10_000
    x_prices_usd: Mapping[str, Decimal] = dataclasses.field(
        default_factory=lambda: dict(X_PRICES_USD)
    )
    crisis_window_min: int = 60
    crisis_baseline_days: int = 14
    crisis_min_mentions: int = 20
    crisis_factor: float = 2.0
    crisis_rise_pct: int = 20
    audit_refusals_per_hour: int = 100
    scheduler_job: str | None = None
    sweep_scheduler_job: str | None = None
    scheduler_endpoint: str | None = None
    scheduler_timeout_s: float = 10.0
    # How long the HTTP functions wait for the next bytes of a request's body.
    body_wait_s: float = 10.0
    # Connecting brands' X accounts with OAuth 2.0 (x_oauth.py, decision 0030).
    x_client_id: str | None = None
    x_client_secret: str | None = None
    x_oauth_redirect_uri: str | None = None
    x_authorize_url: str = X_AUTHORIZE_URL
    x_oauth_state_ttl_s: int = 600
    x_token_refresh_margin_s: int = 300
    # The key that wraps each brand's token keys (token_vault.py).
    token_key_file: str | None = None
    token_key_secret: str | None = None
    secret_manager_endpoint: str | None = None
    log_level: str = "INFO"
    # Data duties (offboarding.py, retention.py; decision 0032).
    offboarding_grace_days: int = 30
    mention_text_retention_days: int = 365
    mention_text_retention_max_days: int = 730


def load(environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from environment variables, naming every problem at once."""
    env = os.environ if environ is None else environ
    problems: list[str] = []

    def text(name: str, default: str | None = None) -> str | None:
        value = env.get(name, "").strip()
        return value or default

    def number(
        name: str, default: float, kind: type = int, *, at_most: float, unit: str = ""
    ) -> float:
        raw = text(name)
        if raw is None:
            return default
        try:
            # int() and float() also read "1_000" and non-ASCII digits ("١٢").
            if not raw.isascii() or "_" in raw:
                raise ValueError(raw)
            value = kind(raw)
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            problems.append(f"{name} must be {what}, got {raw!r}")
            return default
        # float() reads "nan" and "inf"; neither is a usable timeout.
        if not math.isfinite(value) or value <= 0:
            problems.append(f"{name} must be a positive number, got {raw!r}")
        elif value > at_most:
            problems.append(f"{name} must be at most {at_most}{unit}, got {raw!r}")
        return value

    def fraction(name: str, default: float) -> float:
        # Over 1 no two texts, not even identical ones, would ever be alike.
        value = number(name, default, float, at_most=math.inf)
        if value > 1:
            problems.append(f"{name} must be at most 1, got {text(name)!r}")
        return value

    def flag(name: str, default: bool) -> bool:
        raw = text(name)
        if raw is None:
            return default
        if raw.lower() not in FLAG_VALUES:
            problems.append(
                f"{name} must be true or false (or 1/0, yes/no), got {raw!r}"
            )
            return default
        return FLAG_VALUES[raw.lower()]

    def hops(name: str) -> int:
        # Google's front end appends the caller's address to X-Forwarded-For;
        # locally the peer is the caller.
        default = 1 if text("CARTCAST_ENV") == "cloud" else 0
        raw = text(name)
        if raw is None:
            return default
        if not (raw.isascii() and raw.isdigit()) or int(raw) > CONSOLE_PROXY_HOPS_MAX:
            problems.append(
                f"{name} must be a whole number from 0 to {CONSOLE_PROXY_HOPS_MAX}, "
                f"got {raw!r}"
            )
            return default
        return int(raw)

    def subscription(name: str) -> str:
        raw = text(name, "") or ""
        if raw and not PUBSUB_SUBSCRIPTION.fullmatch(raw):
            problems.append(
                f"{name} must be a Pub/Sub subscription id or "
                f"projects/<project>/subscriptions/<id>, got {raw!r}"
            )
            return ""
        return raw

    def choice(
        name: str, default: str, allowed: tuple[str, ...], *, upper: bool = False
    ) -> str:
        raw = text(name, default)
        value = raw.upper() if upper else raw
        if value not in allowed:
            problems.append(f"{name} must be one of {', '.join(allowed)}, got {raw!r}")
            return default
        return value

    environment = choice("CARTCAST_ENV", "local", ENVIRONMENTS)
    settings = Settings(
        environment=environment,
        database_url=text("DATABASE_URL"),
        cloud_sql_instance=text("CLOUD_SQL_INSTANCE"),
        db_user=text("DB_USER"),
        db_name=text("DB_NAME", "cartcast"),
        db_iam_auth=flag("DB_IAM_AUTH", True),
        clock_file=text("CARTCAST_CLOCK"),
        operator_key=text("CARTCAST_OPERATOR_KEY"),
        x_api_base_url=text("X_API_BASE_URL"),
        x_timeout_s=number(
            "X_TIMEOUT_S", 10.0, float, at_most=RUN_WAIT_MAX_S, unit=" seconds"
        ),
        gemini_api_key=text("GEMINI_API_KEY"),
        gemini_model=text("GEMINI_MODEL", "gemini-2.5-flash"),
        gemini_base_url=text("GEMINI_BASE_URL"),
        gemini_api_version=text("GEMINI_API_VERSION", "v1beta"),
        gemini_timeout_s=number(
            "GEMINI_TIMEOUT_S", 20.0, float, at_most=RUN_WAIT_MAX_S, unit=" seconds"
        ),
        gemini_requests_per_minute=number(
            "GEMINI_REQUESTS_PER_MINUTE", 5, at_most=GEMINI_REQUESTS_PER_MINUTE_MAX
        ),
        gemini_requests_per_day=number(
            "GEMINI_REQUESTS_PER_DAY", 20, at_most=GEMINI_REQUESTS_PER_DAY_MAX
        ),
        pubsub_mode=choice("CARTCAST_PUBSUB", "push", PUBSUB_MODES),
        pubsub_push_endpoints=_parse_endpoints(
            text("CARTCAST_PUBSUB_PUSH", ""), problems
        ),
        google_cloud_project=text("GOOGLE_CLOUD_PROJECT"),
        mentions_topic=text("CARTCAST_MENTIONS_TOPIC", "cartcast-mentions"),
        max_event_age_s=number(
            "CARTCAST_MAX_EVENT_AGE_S", 900, at_most=AGE_MAX_S, unit=" seconds"
        ),
        publish_batch_size=number(
            "CARTCAST_PUBLISH_BATCH", 50, at_most=PUBLISH_BATCH_MAX
        ),
        publish_workers=number(
            "CARTCAST_PUBLISH_WORKERS", 4, at_most=PUBLISH_WORKERS_MAX
        ),
        publish_lease_s=number(
            "CARTCAST_PUBLISH_LEASE_S", 300, at_most=LEASE_MAX_S, unit=" seconds"
        ),
        schedule_horizon_days=number(
            "CARTCAST_SCHEDULE_HORIZON_DAYS",
            365,
            at_most=SCHEDULE_HORIZON_DAYS_MAX,
            unit=" days (ten years)",
        ),
        console_secret=text("CARTCAST_CONSOLE_SECRET"),
        console_session_min=number(
            "CARTCAST_CONSOLE_SESSION_MIN",
            480,
            at_most=CONSOLE_SESSION_MAX_MIN,
            unit=" minutes (a week)",
        ),
        console_import_chunk=number(
            "CARTCAST_CONSOLE_IMPORT_CHUNK", 200, at_most=CONSOLE_IMPORT_CHUNK_MAX
        ),
        console_signin_failures=number(
            "CARTCAST_CONSOLE_SIGNIN_FAILURES", 10, at_most=CONSOLE_SIGNIN_FAILURES_MAX
        ),
        console_signin_window_min=number(
            "CARTCAST_CONSOLE_SIGNIN_WINDOW_MIN",
            15,
            at_most=CONSOLE_SIGNIN_WINDOW_MAX_MIN,
            unit=" minutes (a day)",
        ),
        console_proxy_hops=hops("CARTCAST_CONSOLE_PROXY_HOPS"),
        dead_letter_subscription=subscription("CARTCAST_DEAD_LETTER_SUBSCRIPTION"),
        # Its range, 30 seconds to a day, is checked with the other settings below.
        reconcile_delay_s=number("CARTCAST_RECONCILE_DELAY_S", 300, at_most=math.inf),
        reconcile_pages_max=number(
            "CARTCAST_RECONCILE_PAGES_MAX", 5, at_most=PAGES_MAX
        ),
        missed_after_s=number(
            "CARTCAST_MISSED_AFTER_S", 900, at_most=AGE_MAX_S, unit=" seconds"
        ),
        missed_max_late_s=number(
            "CARTCAST_MISSED_MAX_LATE_S", 21600, at_most=AGE_MAX_S, unit=" seconds"
        ),
        publish_retries=number(
            "CARTCAST_PUBLISH_RETRIES", 5, at_most=PUBLISH_RETRIES_LIMIT
        ),
        publish_retry_base_s=number(
            "CARTCAST_PUBLISH_RETRY_BASE_S",
            60.0,
            float,
            at_most=PUBLISH_RETRY_MAX_S_LIMIT,
            unit=" seconds (a day)",
        ),
        publish_retry_max_s=number(
            "CARTCAST_PUBLISH_RETRY_MAX_S",
            1800.0,
            float,
            at_most=PUBLISH_RETRY_MAX_S_LIMIT,
            unit=" seconds (a day)",
        ),
        alert_timeout_s=number(
            "CARTCAST_ALERT_TIMEOUT_S",
            5.0,
            float,
            at_most=ALERT_TIMEOUT_MAX_S,
            unit=" seconds",
        ),
        alert_retry_base_s=number(
            "CARTCAST_ALERT_RETRY_BASE_S",
            60.0,
            float,
            at_most=WEBHOOK_RETRY_BASE_MAX_S,
            unit=" seconds",
        ),
        alert_max_age_s=number(
            "CARTCAST_ALERT_MAX_AGE_S", 86400, at_most=AGE_MAX_S, unit=" seconds"
        ),
        sentiment_engine=choice(
            "CARTCAST_SENTIMENT_ENGINE", "offline", SENTIMENT_ENGINES
        ),
        sentiment_batch_size=number(
            "CARTCAST_SENTIMENT_BATCH_SIZE", 50, at_most=SENTIMENT_BATCH_MAX
        ),
        reach_followers_min=number(
            "CARTCAST_REACH_FOLLOWERS_MIN", 10_000, at_most=FOLLOWERS_MAX
        ),
        escalation_timeout_s=number(
            "CARTCAST_ESCALATION_TIMEOUT_S",
            5.0,
            float,
            at_most=ALERT_TIMEOUT_MAX_S,
            unit=" seconds",
        ),
        escalation_retry_base_s=number(
            "CARTCAST_ESCALATION_RETRY_BASE_S",
            60.0,
            float,
            at_most=WEBHOOK_RETRY_BASE_MAX_S,
            unit=" seconds",
        ),
        escalation_max_age_s=number(
            "CARTCAST_ESCALATION_MAX_AGE_S", 86400, at_most=AGE_MAX_S, unit=" seconds"
        ),
        webhook_budget_s=number(
            "CARTCAST_WEBHOOK_BUDGET_S",
            30.0,
            float,
            at_most=EVENT_FUNCTION_TIMEOUT_MAX_S,
            unit=" seconds (an event-triggered function's longest run)",
        ),
        # Unset: derived from GEMINI_TIMEOUT_S below.
        caption_idle_max_s=number(
            "CARTCAST_CAPTION_IDLE_MAX_S",
            0.0,
            float,
            at_most=CAPTION_IDLE_MAX_S_LIMIT,
            unit=" seconds (api's longest timeout)",
        ),
        webhook_lookup_timeout_s=number(
            "CARTCAST_WEBHOOK_LOOKUP_TIMEOUT_S",
            2.0,
            float,
            at_most=WEBHOOK_LOOKUP_TIMEOUT_MAX_S,
            unit=" seconds",
        ),
        mention_pages_max=number("CARTCAST_MENTION_PAGES_MAX", 10, at_most=PAGES_MAX),
        mention_poll_min_s=number(
            "CARTCAST_MENTION_POLL_MIN_S",
            60,
            at_most=MENTION_POLL_MAX_S_LIMIT,
            unit=" seconds (a day)",
        ),
        mention_poll_max_s=number(
            "CARTCAST_MENTION_POLL_MAX_S",
            900,
            at_most=MENTION_POLL_MAX_S_LIMIT,
            unit=" seconds (a day)",
        ),
        mention_poll_lease_s=number(
            "CARTCAST_MENTION_POLL_LEASE_S",
            300,
            at_most=EVENT_FUNCTION_TIMEOUT_MAX_S,
            unit=" seconds (an event-triggered function's longest run)",
        ),
        function_timeout_s=number(
            "CARTCAST_FUNCTION_TIMEOUT_S",
            300,
            at_most=EVENT_FUNCTION_TIMEOUT_MAX_S,
            unit=" seconds (an event-triggered function's longest run)",
        ),
        mention_overlap_s=number(
            "CARTCAST_MENTION_OVERLAP_S",
            300,
            at_most=MENTION_OVERLAP_MAX_S,
            unit=" seconds (a day)",
        ),
        attribution_window_days=number(
            "CARTCAST_ATTRIBUTION_WINDOW_DAYS", 7, at_most=DAYS_MAX, unit=" days"
        ),
        near_duplicate_threshold=fraction(
            "CARTCAST_NEAR_DUPLICATE_THRESHOLD", NEAR_DUPLICATE_THRESHOLD
        ),
        near_duplicate_days=number(
            "CARTCAST_NEAR_DUPLICATE_DAYS",
            NEAR_DUPLICATE_DAYS,
            at_most=DAYS_MAX,
            unit=" days",
        ),
        caption_products_per_request=number(
            "CARTCAST_CAPTION_PRODUCTS_PER_REQUEST",
            10,
            at_most=CAPTION_PRODUCTS_PER_REQUEST_MAX,
        ),
        caption_drain_budget_s=number(
            "CARTCAST_CAPTION_DRAIN_BUDGET_S",
            120.0,
            float,
            at_most=RUN_WAIT_MAX_S,
            unit=" seconds",
        ),
        x_posts_per_15min_per_user=number(
            "CARTCAST_X_POSTS_PER_15MIN_PER_USER", 100, at_most=X_POSTS_LIMIT_MAX
        ),
        x_posts_per_3h_per_user=number(
            "CARTCAST_X_POSTS_PER_3H_PER_USER", 300, at_most=X_POSTS_LIMIT_MAX
        ),
        x_posts_per_24h_per_app=number(
            "CARTCAST_X_POSTS_PER_24H_PER_APP", 10_000, at_most=X_POSTS_LIMIT_MAX
        ),
        x_prices_usd=_parse_prices(env, problems),
        crisis_window_min=number(
            "CARTCAST_CRISIS_WINDOW_MIN",
            60,
            at_most=CRISIS_WINDOW_MAX_MIN,
            unit=" minutes",
        ),
        crisis_baseline_days=number(
            "CARTCAST_CRISIS_BASELINE_DAYS",
            14,
            at_most=CRISIS_BASELINE_MAX_DAYS,
            unit=" days",
        ),
        crisis_min_mentions=number(
            "CARTCAST_CRISIS_MIN_MENTIONS", 20, at_most=CRISIS_MENTIONS_MAX
        ),
        crisis_factor=number(
            "CARTCAST_CRISIS_FACTOR", 2.0, float, at_most=CRISIS_FACTOR_MAX
        ),
        crisis_rise_pct=number(
            "CARTCAST_CRISIS_RISE_PCT", 20, at_most=100, unit=" percentage points"
        ),
        audit_refusals_per_hour=number(
            "CARTCAST_AUDIT_REFUSALS_PER_HOUR", 100, at_most=AUDIT_REFUSALS_MAX_PER_HOUR
        ),
        scheduler_job=_scheduler_job(
            "CARTCAST_SCHEDULER_JOB", text("CARTCAST_SCHEDULER_JOB"), problems
        ),
        sweep_scheduler_job=_scheduler_job(
            "CARTCAST_SWEEP_SCHEDULER_JOB",
            text("CARTCAST_SWEEP_SCHEDULER_JOB"),
            problems,
        ),
        scheduler_endpoint=_endpoint_url(
            "CARTCAST_SCHEDULER_ENDPOINT", text("CARTCAST_SCHEDULER_ENDPOINT"), problems
        ),
        scheduler_timeout_s=number(
            "CARTCAST_SCHEDULER_TIMEOUT_S",
            10.0,
            float,
            at_most=RUN_WAIT_MAX_S,
            unit=" seconds",
        ),
        body_wait_s=number(
            "CARTCAST_BODY_WAIT_S", 10.0, float, at_most=RUN_WAIT_MAX_S, unit=" seconds"
        ),
        x_client_id=text("CARTCAST_X_CLIENT_ID"),
        x_client_secret=text("CARTCAST_X_CLIENT_SECRET"),
        x_oauth_redirect_uri=_endpoint_url(
            "CARTCAST_X_REDIRECT_URI", text("CARTCAST_X_REDIRECT_URI"), problems
        ),
        x_authorize_url=_endpoint_url(
            "CARTCAST_X_AUTHORIZE_URL",
            text("CARTCAST_X_AUTHORIZE_URL", X_AUTHORIZE_URL),
            problems,
        )
        or X_AUTHORIZE_URL,
        x_oauth_state_ttl_s=number(
            "CARTCAST_X_OAUTH_STATE_TTL_S",
            600,
            at_most=X_OAUTH_STATE_TTL_MAX_S,
            unit=" seconds",
        ),
        x_token_refresh_margin_s=number(
            "CARTCAST_X_TOKEN_REFRESH_MARGIN_S",
            300,
            at_most=X_TOKEN_REFRESH_MARGIN_MAX_S,
            unit=" seconds",
        ),
        webhook_ca_file=text("CARTCAST_WEBHOOK_CA_FILE", "") or "",
        migrate_lock_timeout_s=number(
            "CARTCAST_MIGRATE_LOCK_TIMEOUT_S",
            5.0,
            float,
            at_most=MIGRATE_LOCK_TIMEOUT_MAX_S,
            unit=" seconds",
        ),
        migrate_lock_attempts=number(
            "CARTCAST_MIGRATE_LOCK_ATTEMPTS", 12, at_most=MIGRATE_LOCK_ATTEMPTS_MAX
        ),
        # The variables requests and urllib honour for an egress proxy, in order.
        proxy_variable=next(
            (
                name
                for name in (
                    "HTTPS_PROXY",
                    "https_proxy",
                    "HTTP_PROXY",
                    "http_proxy",
                    "ALL_PROXY",
                    "all_proxy",
                )
                if text(name)
            ),
            "",
        ),
        webhook_proxy_url=text("HTTPS_PROXY") or text("https_proxy") or "",
        no_proxy=text("NO_PROXY") or text("no_proxy") or "",
        token_key_file=text("CARTCAST_TOKEN_KEY_FILE"),
        token_key_secret=_secret_version(text("CARTCAST_TOKEN_KEY_SECRET"), problems),
        secret_manager_endpoint=_endpoint_url(
            "CARTCAST_SECRET_MANAGER_ENDPOINT",
            text("CARTCAST_SECRET_MANAGER_ENDPOINT"),
            problems,
        ),
        log_level=choice("LOG_LEVEL", "INFO", LOG_LEVELS, upper=True),
        offboarding_grace_days=number(
            "CARTCAST_OFFBOARDING_GRACE_DAYS",
            30,
            at_most=OFFBOARDING_GRACE_MAX_DAYS,
            unit=" days",
        ),
        mention_text_retention_days=number(
            "CARTCAST_MENTION_TEXT_RETENTION_DAYS", 365, at_most=DAYS_MAX, unit=" days"
        ),
        mention_text_retention_max_days=number(
            "CARTCAST_MENTION_TEXT_RETENTION_MAX_DAYS",
            730,
            at_most=DAYS_MAX,
            unit=" days",
        ),
    )
    if text("CARTCAST_CAPTION_IDLE_MAX_S") is None:
        settings = dataclasses.replace(
            settings,
            caption_idle_max_s=2 * settings.gemini_timeout_s + CAPTION_IDLE_MARGIN_S,
        )
    problems.extend(_check_consistency(settings))
    if problems:
        raise ConfigurationError("invalid settings: " + "; ".join(problems))
    return settings


def _parse_endpoints(raw: str, problems: list[str]) -> dict[str, str]:
    """Parse `topic=url,topic=url` into a mapping (the local push wiring)."""
    endpoints = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        topic, sep, url = item.partition("=")
        if not sep or not topic or not url.startswith(("http://", "https://")):
            problems.append(f"CARTCAST_PUBSUB_PUSH entry {item!r} is not topic=url")
            continue
        endpoints[topic] = url
    return endpoints


def _secret_version(raw: str | None, problems: list[str]) -> str | None:
    if raw is not None and not SECRET_VERSION.fullmatch(raw):
        problems.append(
            "CARTCAST_TOKEN_KEY_SECRET must be a secret version's full name, "
            f"projects/PROJECT/secrets/SECRET/versions/VERSION, got {raw[:200]!r}"
        )
        return None
    return raw


def _scheduler_job(name: str, raw: str | None, problems: list[str]) -> str | None:
    if raw is not None and not SCHEDULER_JOB.fullmatch(raw):
        problems.append(
            f"{name} must be a job's full name, "
            f"projects/PROJECT/locations/LOCATION/jobs/JOB, got {raw[:200]!r}"
        )
        return None
    return raw


def _endpoint_url(name: str, raw: str | None, problems: list[str]) -> str | None:
    """Read an API endpoint override: an http(s) URL with a host, or nothing."""
    if raw is None:
        return None
    scheme, sep, rest = raw.partition("://")
    host = rest.split("/", 1)[0]
    if not sep or scheme not in ("http", "https") or not host or " " in raw:
        problems.append(f"{name} must be an http:// or https:// URL, got {raw[:200]!r}")
        return None
    return raw.rstrip("/")


def _parse_prices(env: Mapping[str, str], problems: list[str]) -> dict[str, Decimal]:
    """Read X's price table, one CARTCAST_X_PRICE_<CLASS>_USD per call class."""
    prices = {}
    for price_class, default in X_PRICES_USD.items():
        name = f"CARTCAST_X_PRICE_{price_class.upper()}_USD"
        raw = env.get(name, "").strip()
        if not raw:
            prices[price_class] = default
            continue
        # Decimal() also reads "1e-3", "-0", "0.1_0" and non-ASCII digits; a price
        # is written as a plain decimal, so nothing else is taken for one.
        price = Decimal(raw) if PLAIN_PRICE.fullmatch(raw) else None
        if price is None or price > X_PRICE_MAX_USD:
            problems.append(
                f"{name} must be a price in dollars between 0 and {X_PRICE_MAX_USD} "
                f"with at most 4 decimals, got {raw!r}"
            )
            price = default
        prices[price_class] = price
    return prices


def _check_consistency(settings: Settings) -> list[str]:
    problems = []
    if settings.sentiment_engine == "gemini" and not settings.gemini_api_key:
        problems.append("CARTCAST_SENTIMENT_ENGINE=gemini needs GEMINI_API_KEY")
    if settings.x_posts_per_15min_per_user > settings.x_posts_per_3h_per_user:
        # A quarter hour is inside three hours: the smaller window cannot allow more.
        problems.append(
            "CARTCAST_X_POSTS_PER_15MIN_PER_USER must not exceed "
            "CARTCAST_X_POSTS_PER_3H_PER_USER"
        )
    if math.isfinite(settings.crisis_factor) and 0 < settings.crisis_factor <= 1:
        # A factor of 1 or less asks for no rise over the baseline: a brand whose
        # usual share of negative mentions holds steady would be "in crisis".
        problems.append(
            "CARTCAST_CRISIS_FACTOR must be more than 1 (the window's negative share "
            f"as a multiple of the baseline's), got {settings.crisis_factor:g}"
        )
    if not settings.database_url and not settings.cloud_sql_instance:
        problems.append("DATABASE_URL or CLOUD_SQL_INSTANCE is required")
    idle_min_s = 2 * settings.gemini_timeout_s + CAPTION_IDLE_LEAST_MARGIN_S
    if math.isfinite(idle_min_s) and settings.caption_idle_max_s < idle_min_s:
        # A caption request waits for up to two Gemini calls and a pause between
        # them, idle in its transaction; the database must not end it meanwhile.
        problems.append(
            "CARTCAST_CAPTION_IDLE_MAX_S must be at least 2 × GEMINI_TIMEOUT_S + "
            f"{CAPTION_IDLE_LEAST_MARGIN_S} seconds: with GEMINI_TIMEOUT_S="
            f"{settings.gemini_timeout_s:g}, set CARTCAST_CAPTION_IDLE_MAX_S="
            f"{math.ceil(idle_min_s)} or more (it is {settings.caption_idle_max_s:g}), "
            "or lower GEMINI_TIMEOUT_S"
        )
    lease_min_s = 3 * settings.x_timeout_s + 30
    # A NaN or infinite timeout is reported on its own (load's number()).
    if math.isfinite(lease_min_s) and settings.publish_lease_s < lease_min_s:
        # One X call (connect, then read) must end well inside a lease, or another
        # run could claim the post while this one is still waiting on X.
        problems.append(
            "CARTCAST_PUBLISH_LEASE_S must be at least 3 × X_TIMEOUT_S + 30 seconds: "
            f"with X_TIMEOUT_S={settings.x_timeout_s:g}, set "
            f"CARTCAST_PUBLISH_LEASE_S={math.ceil(lease_min_s)} or more (it is "
            f"{settings.publish_lease_s}), or lower X_TIMEOUT_S"
        )
    if (
        not RECONCILE_DELAY_RANGE_S[0]
        <= settings.reconcile_delay_s
        <= (RECONCILE_DELAY_RANGE_S[1])
    ):
        # Under half a minute, X's indexing lag could make a post it accepted look
        # absent, and it would be sent twice; over a day, a post waits for nothing.
        problems.append(
            "CARTCAST_RECONCILE_DELAY_S must be between "
            f"{RECONCILE_DELAY_RANGE_S[0]} and {RECONCILE_DELAY_RANGE_S[1]} seconds"
        )
    if settings.missed_max_late_s <= settings.missed_after_s:
        # Otherwise every post the sweeper finds missed would already be too late.
        problems.append(
            "CARTCAST_MISSED_MAX_LATE_S must be more than CARTCAST_MISSED_AFTER_S"
        )
    problems.extend(_check_retries(settings))
    if settings.mention_text_retention_days > settings.mention_text_retention_max_days:
        problems.append(
            "CARTCAST_MENTION_TEXT_RETENTION_DAYS must not exceed "
            "CARTCAST_MENTION_TEXT_RETENTION_MAX_DAYS"
        )
    secret = settings.console_secret
    if secret is not None and len(secret) < CONSOLE_SECRET_MIN_LENGTH:
        problems.append(
            f"CARTCAST_CONSOLE_SECRET must be at least {CONSOLE_SECRET_MIN_LENGTH} "
            "characters (make one with: python3 -c 'import secrets; "
            "print(secrets.token_urlsafe(32))')"
        )
    if settings.mention_poll_min_s > settings.mention_poll_max_s:
        problems.append(
            "CARTCAST_MENTION_POLL_MIN_S must not exceed CARTCAST_MENTION_POLL_MAX_S"
        )
    if settings.webhook_ca_file:
        problems.extend(_check_ca_file(settings.webhook_ca_file))
    if settings.cloud_sql_instance and not settings.db_user:
        problems.append("DB_USER is required with CLOUD_SQL_INSTANCE")
    if settings.token_key_file and settings.token_key_secret:
        problems.append(
            "set one of CARTCAST_TOKEN_KEY_FILE and CARTCAST_TOKEN_KEY_SECRET, not both"
        )
    if settings.environment == "cloud":
        # A key file would ship inside the function's source, beside the code.
        if settings.token_key_file:
            problems.append(
                "CARTCAST_TOKEN_KEY_FILE is for local runs; in the cloud the key is "
                "CARTCAST_TOKEN_KEY_SECRET"
            )
        # A simulated clock in production would publish at the wrong times.
        if settings.clock_file:
            problems.append("CARTCAST_CLOCK is for local runs and refused in the cloud")
        if settings.pubsub_mode != "google":
            problems.append("CARTCAST_PUBSUB must be google in the cloud")
        if not settings.google_cloud_project:
            problems.append("GOOGLE_CLOUD_PROJECT is required in the cloud")
    if settings.dead_letter_subscription and not settings.google_cloud_project:
        if "GOOGLE_CLOUD_PROJECT is required in the cloud" not in problems:
            problems.append(
                "GOOGLE_CLOUD_PROJECT is required with "
                "CARTCAST_DEAD_LETTER_SUBSCRIPTION"
            )
    if settings.pubsub_mode == "google" and not settings.google_cloud_project:
        if "GOOGLE_CLOUD_PROJECT is required in the cloud" not in problems:
            problems.append(
                "GOOGLE_CLOUD_PROJECT is required with CARTCAST_PUBSUB=google"
            )
    return problems


def _check_ca_file(path: str) -> list[str]:
    """Check CARTCAST_WEBHOOK_CA_FILE holds certificates TLS can load, so a wrong
    path fails the cold start rather than every delivery to a private CA."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(cafile=path)
    except (OSError, ssl.SSLError) as error:
        return [
            "CARTCAST_WEBHOOK_CA_FILE must name a readable file of PEM "
            f"certificates, got {path!r}: {error}"
        ]
    if not context.get_ca_certs():
        return [f"CARTCAST_WEBHOOK_CA_FILE holds no CA certificate: {path!r}"]
    return []


def _check_retries(settings: Settings) -> list[str]:
    """Check the backoff after X failed: base <= max (each at most a day)."""
    problems = []
    if settings.publish_retry_base_s > settings.publish_retry_max_s:
        problems.append(
            "CARTCAST_PUBLISH_RETRY_BASE_S must not exceed CARTCAST_PUBLISH_RETRY_MAX_S"
        )
    return problems
