"""The X API v2, through tweepy, in cartcast's types and errors.

One `XClient` acts for one X account with that account's OAuth 2.0 user-context access
token. It returns frozen dataclasses with string ids and aware UTC datetimes, and turns
every tweepy or requests failure into a cartcast error at this boundary:

    429                                  errors.RateLimited (reset_at from the header)
    5xx, refused connection              errors.TransientError
    read timeout, connection dropped     XTimeout: the request may have reached X
    400, 401, 403, 404, other 4xx        XRejected(PermanentError) with a `reason`

Each carries `status`, the HTTP status X answered, or None when no answer came (a
refused, timed-out or dropped connection); an XTimeout's `lost` says which way the
answer was lost ("timeout", "dropped", "unreadable").

Among refusals, `XRejected.disconnects` marks those about the account's credentials
(a 401, or a 403 whose problem type or detail is about authentication): no post of
that account can go out until it is reconnected. A 403 saying the reply was not
summoned is `refused_reply`: X lets an app reply only where it was mentioned or
engaged by the author.

A retry after `XTimeout` may publish twice: the caller decides, e.g. by looking for the
post with `own_posts` first. Media uploads (`upload_image`) create no post and may be
retried freely. The client never sleeps through a rate limit (tweepy's
`wait_on_rate_limit` stays off); it raises with the reset time and the caller returns.

Importing this module is cheap: tweepy and requests load when a client is built.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cartcast import errors
from cartcast.clock import UTC, parse_instant

if TYPE_CHECKING:
    import requests
    import tweepy

X_API_URL = "https://api.x.com"

# tweepy 4.17 writes this host into every URL (BaseClient.request) and passes no
# timeout; the session below swaps the host and adds the timeout.
TWEEPY_HOST = "https://api.twitter.com"

# Kinds of request, for metering cost: X bills a post, more for a post with a link,
# and a little for each read of the account's own data (all cartcast's reads).
POST = "post"
POST_WITH_URL = "post_with_url"
OWNED_READ = "owned_read"
MEDIA = "media"
# X's v2 media upload (POST /2/media/upload) takes a JSON body with the file
# base64-encoded in `media`; tweepy 4.17 has no method for it (only v1.1's, which
# needs OAuth 1.0a), so the request goes through tweepy.Client.request.
MEDIA_UPLOAD_ROUTE = "/2/media/upload"
MEDIA_METADATA_ROUTE = "/2/media/metadata"

# How far back a mentions read's since_id may reach: X refuses an older one (the
# sandbox's SINCE_ID_WINDOW), as its recent index keeps seven days.
SINCE_ID_WINDOW = dt.timedelta(days=7)

# GET /2/users/:id/tweets serves at most the 3,200 newest posts, 100 a page.
OWN_POSTS_MAX_PAGES = 32
METRICS_BATCH_SIZE = 100
# A lookup answers 200 and lists what it could not return under `errors`, each
# with a problem `type`: ".../2/problems/resource-not-found" for an id X does not
# have (a deleted post; its `detail` "Could not find tweet with ids: [<id>].")
# and ".../not-authorized-for-field" for private metrics X withholds. Older
# answers name the api.twitter.com host, so only the path's end is compared.
NOT_FOUND_PROBLEM = "/problems/resource-not-found"
FIELD_REFUSED_PROBLEM = "/problems/not-authorized-for-field"
# What triage reads of a mention: its thread, language and photos, and the
# author's reach. A long post's `text` is cut at 280 characters; the whole of it
# comes in `note_tweet.text` (X API v2, "Tweet object", note_tweet).
MENTION_FIELDS = [
    "created_at",
    "conversation_id",
    "author_id",
    "in_reply_to_user_id",
    "attachments",
    "lang",
    "note_tweet",
    "referenced_tweets",
]
MENTION_EXPANSIONS = ["author_id", "attachments.media_keys"]
MENTION_USER_FIELDS = ["username", "name", "public_metrics"]
MENTION_MEDIA_FIELDS = ["type"]
# X ids are snowflakes: milliseconds since this epoch, shifted left 22 bits.
SNOWFLAKE_EPOCH_MS = 1288834974657

DISCONNECTING_REASONS = frozenset({"unauthorized", "credentials"})
# X's 403 for a reply the author did not summon, since its 2025 reply policy, reads
# "Reply to this conversation is not allowed because you have not been mentioned
# or otherwise engaged by the author of the post you are replying to." (quoted in
# several public X clients' handling of it); its middle is matched, so a reworded
# end ("Tweet" for "post") still reads as the same refusal.
REFUSED_REPLY_MARK = "not been mentioned or otherwise engaged"
# 403 problem types about the credentials rather than the request, as X sent
# them in public client issues: an app without write permission for the token
# ("oauth1-permissions"), a token kind the endpoint refuses
# ("unsupported-authentication"), an app outside a project or access level
# ("client-forbidden", reason "client-not-enrolled").
CREDENTIAL_PROBLEM_TYPES = (
    "/problems/oauth1-permissions",
    "/problems/unsupported-authentication",
    "/problems/client-forbidden",
)
CREDENTIAL_DETAILS = (
    "oauth1 app permissions",
    "authenticating with oauth",
    "must use keys and tokens",
    # The account itself, not one request: every queued post would meet the same
    # 403, so these disconnect it too, and its owner gets the one alert.
    "account is suspended",
    "account is temporarily locked",
    "account has been locked",
)


class XTimeout(errors.TransientError):
    """No answer came back, yet X may have received and acted on the request.

    `lost` is "timeout" (no answer in time), "dropped" (X closed the connection
    after the request went out) or "unreadable" (the answer broke off or did not
    parse); `status` stays None, since no whole answer arrived.
    """

    def __init__(self, message: str, *, lost: str = "timeout") -> None:
        super().__init__(message, status=None)
        self.lost = lost


class XRejected(errors.PermanentError):
    """X refused the request for a reason a retry cannot change.

    `reason` is one of "duplicate", "too_long", "unauthorized", "credentials",
    "refused_reply", "stale_since_id", "refused_page_token", "forbidden",
    "invalid_request", "not_found" or "refused";
    `detail` is X's own message (a refused page token's quotes the token).
    """

    def __init__(
        self, message: str, *, reason: str, status: int | None, detail: str = ""
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status
        self.detail = detail

    @property
    def disconnects(self) -> bool:
        """Say if X refused the account's credentials, not this one request."""
        return self.reason in DISCONNECTING_REASONS


@dataclass(frozen=True)
class XUser:
    id: str
    username: str
    name: str


@dataclass(frozen=True)
class CreatedPost:
    """A post of the account. `text` is X's copy, with links as t.co links."""

    id: str
    text: str
    created_at: dt.datetime | None = None
    # The HTTP status of X's answer when the post was just created (201), else None.
    status: int | None = field(default=None, compare=False)
    # The post it answers, from a timeline read: X's `referenced_tweets` entry of
    # type "replied_to" (Tweet object, X API v2); None for a post that answers none.
    in_reply_to: str | None = None


@dataclass(frozen=True)
class Mention:
    """A post mentioning the account; the author fields are None when X left the
    author out of `includes` (a suspended or protected account, say)."""

    id: str
    text: str
    author_id: str
    author_username: str | None
    author_name: str | None
    created_at: dt.datetime
    conversation_id: str
    in_reply_to_user_id: str | None
    author_followers: int | None = None
    photo_count: int = 0
    lang: str | None = None
    # The `type` of each attached medium ("photo", "video", "animated_gif"), for
    # triage's user-generated-content mark.
    media_types: tuple[str, ...] = ()


@dataclass(frozen=True)
class MentionBatch:
    """Mentions newest first, each id once; `complete` is False when pages were
    left unread, from `next_token` on.

    `failure` is the error that stopped a read after at least one page: what came
    before it is here to store, and the read resumes from `next_token`. `skipped`
    counts posts X sent without an id, author or time, which cannot be stored;
    `returned` every post X sent, repeats and unusable ones too (X bills each).
    """

    mentions: list[Mention]
    newest_id: str | None
    pages_read: int
    complete: bool
    next_token: str | None = None
    failure: errors.CartcastError | None = None
    # The since_id the read sent: X ties `next_token` to its query, so a read that
    # continues from it sends this one again.
    since_id: str | None = None
    skipped: int = 0
    returned: int = 0


@dataclass(frozen=True)
class PostMetrics:
    """Totals for one post; the click counts are None past X's 30-day window."""

    impressions: int
    likes: int
    reposts: int
    replies: int
    quotes: int
    bookmarks: int
    link_clicks: int | None
    profile_clicks: int | None


@dataclass(frozen=True)
class MetricsRead:
    """What one lookup of at most 100 posts gave.

    `metrics` holds the posts X returned, which are what X bills (per post
    returned); `missing` the ids X answered resource-not-found for, which it does
    not bill; an id in neither was withheld for another reason (a post X hides
    from this account, say) and says nothing about whether the post exists.
    """

    metrics: dict[str, PostMetrics]
    missing: frozenset[str]
    requests: int
    # Set when the second request (the public read of refused posts) failed: what
    # the first returned is still here, and X billed it.
    failure: errors.CartcastError | None = None


@dataclass(frozen=True)
class RateLimitInfo:
    limit: int
    remaining: int
    reset_at: dt.datetime


class XClient:
    """Act on X for the account that owns `access_token`."""

    def __init__(
        self, *, access_token: str, base_url: str | None = None, timeout_s: float = 10.0
    ) -> None:
        import tweepy

        # tweepy's DEBUG lines print request headers, Authorization included.
        logging.getLogger("tweepy.client").setLevel(logging.INFO)

        # return_type=dict: the JSON as X sent it, which this module maps itself.
        client = tweepy.Client(bearer_token=access_token, return_type=dict)
        client.session.close()
        client.session = _routed_session(base_url or X_API_URL, timeout_s)
        self._client = client
        self._requests_made: Counter[str] = Counter()

    @property
    def requests_made(self) -> dict[str, int]:
        """Count requests sent, by kind: an upper bound on what X bills."""
        return dict(self._requests_made)

    @property
    def last_rate_limit(self) -> RateLimitInfo | None:
        """Return the rate-limit headers of the last answer, if it had them."""
        return _rate_limit_from(self._client.session.last_headers)

    def me(self) -> XUser:
        """Return the account the token acts for."""
        answer = self._call(OWNED_READ, self._client.get_me)
        user = answer["data"]
        return XUser(id=user["id"], username=user["username"], name=user["name"])

    def create_post(
        self,
        text: str,
        *,
        has_link: bool = False,
        in_reply_to: str | None = None,
        media_ids: list[str] | None = None,
        poll_options: list[str] | None = None,
        poll_duration_minutes: int | None = None,
    ) -> CreatedPost:
        """Publish `text` as a new post; `has_link` says it is billed as one with a URL.

        The caller says whether the text carries a link (cartcast adds its own product
        links), so publishing never loads twitter-text's URL rules on a cold start.
        `in_reply_to` makes it a reply (a thread's next part), `media_ids` attach
        uploaded media, `poll_options` and `poll_duration_minutes` make it a poll.

        Raises:
            XTimeout: the outcome is unknown; the post may exist.
            XRejected: reason "duplicate" when the account already posted this text.
        """
        kind = POST_WITH_URL if has_link else POST
        answer = self._call(
            kind,
            self._client.create_tweet,
            text=text,
            in_reply_to_tweet_id=in_reply_to,
            media_ids=media_ids,
            poll_options=poll_options,
            poll_duration_minutes=poll_duration_minutes,
        )
        post = answer["data"]
        return CreatedPost(
            id=post["id"], text=post["text"], status=self._client.session.last_status
        )

    def upload_image(
        self, data: bytes, *, media_type: str, alt_text: str | None = None
    ) -> str:
        """Upload an image for a post and give it alt text; return the media id.

        Uploading creates no post, so a retry after any failure is safe; X keeps an
        unused upload for a day (`expires_after_secs`), then drops it.
        """
        import base64

        body = {
            "media": base64.b64encode(data).decode("ascii"),
            "media_category": "tweet_image",
            "media_type": media_type,
        }
        answer = self._call(MEDIA, self._post_json, route=MEDIA_UPLOAD_ROUTE, body=body)
        media_id = str(answer["data"]["id"])
        if alt_text:
            metadata = {"id": media_id, "metadata": {"alt_text": {"text": alt_text}}}
            self._call(
                MEDIA, self._post_json, route=MEDIA_METADATA_ROUTE, body=metadata
            )
        return media_id

    def mentions(
        self,
        user_id: str,
        *,
        since_id: str | None,
        start_time: dt.datetime | None = None,
        page_size: int = 100,
        max_pages: int = 10,
        pagination_token: str | None = None,
    ) -> MentionBatch:
        """Read the mentions of `user_id` newer than `since_id`, page by page.

        Args:
            page_size: 5 to 100, X's bounds for max_results.
            max_pages: stop after this many requests; `complete` then says False and
                the older mentions past the last page are still unread, from
                `next_token` on.
            pagination_token: continue an earlier incomplete read from its
                `next_token`, with the same `since_id` (the batch's): X ties a
                token to its query.

        Raises:
            CartcastError: the first page failed. A later page's failure is
                returned in the batch's `failure` with the pages read before it.
            XRejected: reason "stale_since_id" when X keeps no index that old,
                "refused_page_token" when X will not go on from
                `pagination_token`.
        """
        if not 5 <= page_size <= 100:
            raise ValueError("page_size must be between 5 and 100")

        mentions: dict[str, Mention] = {}
        newest_id = None
        next_token = pagination_token
        pages_read = skipped = returned = 0
        failure = None
        while pages_read < max_pages:
            try:
                page = self._call(
                    OWNED_READ,
                    self._client.get_users_mentions,
                    id=user_id,
                    since_id=since_id,
                    start_time=start_time,
                    max_results=page_size,
                    pagination_token=next_token,
                    expansions=MENTION_EXPANSIONS,
                    tweet_fields=MENTION_FIELDS,
                    user_fields=MENTION_USER_FIELDS,
                    media_fields=MENTION_MEDIA_FIELDS,
                )
            except errors.CartcastError as error:
                if pages_read == 0:
                    raise
                # The pages read so far were paid for: hand them back with the
                # token of the page that failed, so nothing is read twice.
                failure = error
                break
            pages_read += 1

            meta = page.get("meta", {})
            newest_id = newest_id or meta.get("newest_id")
            parsed, unusable = _mentions_from(page)
            skipped += unusable
            returned += len(page.get("data", []))
            for mention in parsed:
                # X may list a post twice, in one page or across two; keep one.
                mentions.setdefault(mention.id, mention)
            next_token = meta.get("next_token")
            if next_token is None:
                break

        return MentionBatch(
            mentions=list(mentions.values()),
            newest_id=newest_id,
            pages_read=pages_read,
            complete=next_token is None and failure is None,
            next_token=next_token,
            failure=failure,
            since_id=since_id,
            skipped=skipped,
            returned=returned,
        )

    def post_metrics(
        self, post_ids: list[str], *, private: bool = True
    ) -> dict[str, PostMetrics]:
        """Return metrics by post id, 100 ids a request; unknown ids are left out."""
        metrics: dict[str, PostMetrics] = {}
        for start in range(0, len(post_ids), METRICS_BATCH_SIZE):
            batch = post_ids[start : start + METRICS_BATCH_SIZE]
            answer = self.read_metrics(batch, private=private)
            if answer.failure is not None:
                raise answer.failure
            metrics.update(answer.metrics)
        return metrics

    def read_metrics(self, post_ids: list[str], *, private: bool) -> MetricsRead:
        """Look up 1 to 100 posts' metrics in one request (two, see below).

        With `private`, X shows clicks and exact impressions only for the account's
        own posts younger than 30 days; a post X refuses them for is read again
        with its public fields, in a second request.

        Raises:
            ValueError: no ids, or more than X's 100 a request.
        """
        if not 1 <= len(post_ids) <= METRICS_BATCH_SIZE:
            raise ValueError(f"1 to {METRICS_BATCH_SIZE} post ids a lookup")

        fields = ["public_metrics"] + (["non_public_metrics"] if private else [])
        answer = self._call(
            OWNED_READ, self._client.get_tweets, ids=post_ids, tweet_fields=fields
        )
        metrics = _metrics_from(answer)
        missing = _missing_posts(answer)
        requests = 1

        # X leaves such a post out of `data` and lists its private fields under
        # `errors` as not-authorized-for-field, with HTTP 200.
        refused = _private_refusals(answer) - set(metrics) - missing
        failure = None
        if refused:
            requests += 1
            try:
                answer = self._call(
                    OWNED_READ,
                    self._client.get_tweets,
                    ids=sorted(refused),
                    tweet_fields=["public_metrics"],
                )
            except errors.CartcastError as error:
                # The first request's posts were returned and billed: the caller
                # stores them, then stops as after any failed lookup.
                failure = error
            else:
                metrics.update(_metrics_from(answer))
                missing |= _missing_posts(answer)

        asked = set(post_ids)
        return MetricsRead(
            metrics={k: v for k, v in metrics.items() if k in asked},
            missing=frozenset((missing & asked) - set(metrics)),
            requests=requests,
            failure=failure,
        )

    def followers_count(self, user_id: str) -> int:
        """Return how many followers `user_id` has now."""
        answer = self._call(
            OWNED_READ,
            self._client.get_user,
            id=user_id,
            user_fields=["public_metrics"],
        )
        if "data" not in answer:
            raise XRejected(f"X has no user {user_id}", reason="not_found", status=None)
        return answer["data"]["public_metrics"]["followers_count"]

    def own_posts(
        self,
        user_id: str,
        *,
        start_time: dt.datetime | None,
        max_pages: int = OWN_POSTS_MAX_PAGES,
    ) -> list[CreatedPost]:
        """Return the account's posts since `start_time`, newest first.

        Reads at most `max_pages` pages of 100; a full last page may mean that older
        posts since `start_time` were left unread.
        """
        posts: list[CreatedPost] = []
        for page, _more in self.own_post_pages(
            user_id, start_time=start_time, max_pages=max_pages
        ):
            posts.extend(page)
        return posts

    def own_post_pages(
        self,
        user_id: str,
        *,
        start_time: dt.datetime | None,
        max_pages: int = OWN_POSTS_MAX_PAGES,
    ) -> Iterator[tuple[list[CreatedPost], bool]]:
        """Yield the account's posts since `start_time` a page of 100 at a time,
        newest first, each with whether X holds more; stop after `max_pages`.

        A caller that meters or stops page by page reads through this one.
        """
        next_token = None
        for _ in range(max_pages):
            page = self._call(
                OWNED_READ,
                self._client.get_users_tweets,
                id=user_id,
                start_time=start_time,
                max_results=100,
                pagination_token=next_token,
                tweet_fields=["created_at", "referenced_tweets"],
            )
            next_token = page.get("meta", {}).get("next_token")
            yield _own_posts_from(page), next_token is not None
            if next_token is None:
                return

    def _post_json(self, *, route: str, body: dict[str, Any], user_auth: bool) -> Any:
        """POST a JSON body to an X route tweepy has no method for; return the JSON."""
        return self._client.request(
            "POST", route, json=body, user_auth=user_auth
        ).json()

    def _call(self, kind: str, method: Callable[..., Any], **params: Any) -> Any:
        """Call one tweepy.Client method, counting it and translating its failures."""
        import requests
        import tweepy

        self._requests_made[kind] += 1
        try:
            # user_auth=False: in tweepy that flag means OAuth 1.0a; an OAuth 2.0
            # user-context token travels as the bearer token.
            return method(user_auth=False, **params)
        except tweepy.HTTPException as exc:
            raise _from_x_answer(exc) from exc
        except requests.ConnectTimeout as exc:
            raise errors.TransientError(
                f"X did not accept a connection: {exc}"
            ) from exc
        except requests.ReadTimeout as exc:
            raise XTimeout(f"X sent no answer in time: {exc}") from exc
        except requests.ConnectionError as exc:
            if _dropped_after_sending(exc):
                raise XTimeout(
                    f"X dropped the connection: {exc}", lost="dropped"
                ) from exc
            raise errors.TransientError(f"X is unreachable: {exc}") from exc
        except (
            requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError,
            requests.exceptions.JSONDecodeError,
        ) as exc:
            # X answered, but the answer broke off or does not parse: whatever X did
            # (a post may well exist now) is unknown.
            raise XTimeout(
                f"X's answer could not be read: {exc}", lost="unreadable"
            ) from exc
        except requests.RequestException as exc:
            raise errors.TransientError(f"X request failed: {exc}") from exc


def _routed_session(base_url: str, timeout_s: float) -> requests.Session:
    """Build a requests session that sends tweepy's calls to `base_url` in time."""
    import requests

    class RoutedSession(requests.Session):
        last_headers: Mapping[str, str] | None = None
        last_status: int | None = None

        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            if url.startswith(TWEEPY_HOST):
                url = base_url.rstrip("/") + url.removeprefix(TWEEPY_HOST)
            kwargs.setdefault("timeout", timeout_s)

            self.last_headers, self.last_status = None, None
            response = super().request(method, url, *args, **kwargs)
            self.last_headers, self.last_status = response.headers, response.status_code
            return response

    session = RoutedSession()
    # requests reads proxies, CA bundles and ~/.netrc from the environment on every
    # call (about 0.5 ms each, decision 0014). Every call of this session goes to one
    # host, so requests' own rules are applied once, here, and the lookup is then
    # switched off: a deployment behind HTTPS_PROXY (or with REQUESTS_CA_BUNDLE)
    # keeps it. A .netrc entry no longer replaces the bearer token (decision 0015).
    found = session.merge_environment_settings(base_url, {}, None, None, None)
    session.proxies.update(found["proxies"])
    session.verify = found["verify"]
    session.trust_env = False
    return session


def _from_x_answer(exc: tweepy.HTTPException) -> errors.CartcastError:
    """Translate a tweepy HTTPException, which holds X's answer, into our error."""
    import tweepy

    status = exc.response.status_code
    detail = "; ".join(exc.api_messages) or str(exc)
    if isinstance(exc, tweepy.TooManyRequests):
        reset_at = None
        if exc.reset_time is not None:
            reset_at = dt.datetime.fromtimestamp(exc.reset_time, UTC)
        return errors.RateLimited(
            f"X rate limit reached: {detail}", reset_at=reset_at, status=status
        )
    if status >= 500:
        return errors.TransientError(f"X failed with {status}: {detail}", status=status)

    reason = _rejection_reason(status, detail, _problem_type(exc.response))
    return XRejected(
        f"X refused ({status}, {reason}): {detail}",
        reason=reason,
        status=status,
        detail=detail,
    )


def _problem_type(response: Any) -> str:
    """Return the `type` of X's problem body, or "" when there is none."""
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("type") or "") if isinstance(body, dict) else ""


def _rejection_reason(status: int, detail: str, problem_type: str = "") -> str:
    lowered = detail.lower()
    # X has sent an over-long text as 400 and, later, as 403; both say "too long".
    if "too long" in lowered:
        return "too_long"
    # X refuses a since_id older than it keeps an index for with a 400 naming the
    # parameter (rooteco/tweetscape issue 421 shows the body); the caller starts
    # over from a time instead.
    if status == 400 and "'since_id'" in lowered and "must be" in lowered:
        return "stale_since_id"
    # A page token X will not go on from is a 400 naming the parameter, its
    # message quoting the token ("The `pagination_token` query parameter value
    # [...] is not valid"); only the name is matched, not the wording. The
    # reader starts again without the token.
    if status == 400 and "pagination_token" in lowered:
        return "refused_page_token"
    if status == 403 and "duplicate content" in lowered:
        return "duplicate"
    if status == 403 and REFUSED_REPLY_MARK in lowered:
        return "refused_reply"
    if status == 403 and (
        problem_type.endswith(CREDENTIAL_PROBLEM_TYPES)
        or any(phrase in lowered for phrase in CREDENTIAL_DETAILS)
    ):
        return "credentials"
    return {
        400: "invalid_request",
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
    }.get(status, "refused")


def _dropped_after_sending(exc: requests.ConnectionError) -> bool:
    """Say if the connection broke after the request went out (an unknown outcome)."""
    from urllib3.exceptions import ProtocolError

    # requests wraps a refused connection in MaxRetryError, but a connection that X
    # closed mid-answer in ProtocolError ("Connection aborted.").
    return any(isinstance(arg, ProtocolError) for arg in exc.args)


def _mentions_from(page: dict[str, Any]) -> tuple[list[Mention], int]:
    """Parse one page of mentions; return them and how many posts were unusable."""
    includes = page.get("includes", {})
    users = {u.get("id"): u for u in includes.get("users", [])}
    media = {m.get("media_key"): m.get("type") for m in includes.get("media", [])}
    photos = {key for key, kind in media.items() if kind == "photo"}
    mentions, unusable = [], 0
    for post in page.get("data", []):
        try:
            created_at = parse_instant(post["created_at"])
            post_id, author_id = str(post["id"]), str(post["author_id"])
        except (KeyError, TypeError, ValueError):
            unusable += 1
            continue
        author = users.get(author_id, {})
        note = post.get("note_tweet")
        text = note.get("text") if isinstance(note, dict) else None
        media_keys = (post.get("attachments") or {}).get("media_keys") or []
        mentions.append(
            Mention(
                id=post_id,
                text=text if isinstance(text, str) else str(post.get("text") or ""),
                author_id=author_id,
                author_username=author.get("username"),
                author_name=author.get("name"),
                created_at=created_at,
                conversation_id=str(post.get("conversation_id") or post_id),
                in_reply_to_user_id=post.get("in_reply_to_user_id"),
                author_followers=_follower_count(author),
                photo_count=sum(key in photos for key in media_keys),
                lang=post.get("lang"),
                media_types=tuple(
                    str(media[key]) for key in media_keys if key in media
                ),
            )
        )
    return mentions, unusable


def _follower_count(author: dict[str, Any]) -> int | None:
    """The author's followers as X counts them, or None when X left them out or
    sent something that is not a count (the column is a 32-bit integer)."""
    count = (author.get("public_metrics") or {}).get("followers_count")
    if isinstance(count, bool) or not isinstance(count, int):
        return None
    return count if 0 <= count < 2**31 else None


def id_at(instant: dt.datetime) -> str:
    """Return the smallest X id a post created at `instant` can have.

    X's ids are snowflakes that sort with their creation time, so a since_id
    made this way reads everything created after `instant`.
    """
    ms = int(instant.timestamp() * 1000) - SNOWFLAKE_EPOCH_MS
    return str(max(ms, 0) << 22)


def id_time(post_id: str) -> dt.datetime:
    """Return the instant encoded in an X id (to the millisecond)."""
    ms = (int(post_id) >> 22) + SNOWFLAKE_EPOCH_MS
    return dt.datetime.fromtimestamp(ms / 1000, UTC)


def _own_posts_from(page: dict[str, Any]) -> list[CreatedPost]:
    """Parse one page of the account's own posts.

    A post with no id, text or readable time (9999-12-31T23:59:60Z lies past what
    a datetime holds) stops the read, as X's refusal would: skipping it could hide
    the very post a reconciliation looks for, and cartcast publish it again.
    """
    try:
        return [
            CreatedPost(
                id=post["id"],
                text=post["text"],
                created_at=parse_instant(post["created_at"]),
                in_reply_to=_replied_to(post),
            )
            for post in page.get("data", [])
        ]
    except (KeyError, TypeError, ValueError) as error:
        raise errors.PermanentError(
            f"X listed an own post cartcast cannot read: {error!r}"
        ) from error


def _replied_to(post: dict[str, Any]) -> str | None:
    """Return the id of the post this one answers, from `referenced_tweets`."""
    for reference in post.get("referenced_tweets") or []:
        if reference.get("type") == "replied_to":
            return str(reference["id"])
    return None


def _metrics_from(answer: dict[str, Any]) -> dict[str, PostMetrics]:
    metrics = {}
    for post in answer.get("data", []):
        public = post["public_metrics"]
        private = post.get("non_public_metrics")
        metrics[post["id"]] = PostMetrics(
            impressions=(private or public)["impression_count"],
            likes=public["like_count"],
            reposts=public["retweet_count"],
            replies=public["reply_count"],
            quotes=public["quote_count"],
            bookmarks=public["bookmark_count"],
            link_clicks=private["url_link_clicks"] if private else None,
            profile_clicks=private["user_profile_clicks"] if private else None,
        )
    return metrics


def _private_refusals(answer: dict[str, Any]) -> set[str]:
    return {
        str(error.get("resource_id") or error.get("value"))
        for error in answer.get("errors", [])
        if str(error.get("type", "")).endswith(FIELD_REFUSED_PROBLEM)
    }


def _missing_posts(answer: dict[str, Any]) -> set[str]:
    """Return the ids a lookup answered resource-not-found for: posts X does not
    have, deleted ones included (X does not say which)."""
    return {
        str(error.get("resource_id") or error.get("value"))
        for error in answer.get("errors", [])
        if str(error.get("type", "")).endswith(NOT_FOUND_PROBLEM)
        and error.get("resource_type", "tweet") == "tweet"
    }


def _rate_limit_from(headers: Mapping[str, str] | None) -> RateLimitInfo | None:
    if headers is None:
        return None
    try:
        return RateLimitInfo(
            limit=int(headers["x-rate-limit-limit"]),
            remaining=int(headers["x-rate-limit-remaining"]),
            reset_at=dt.datetime.fromtimestamp(int(headers["x-rate-limit-reset"]), UTC),
        )
    except (KeyError, ValueError):
        return None
