"""Product links that say which post sold: UTM parameters out, a post id back in.

Every link cartcast posts carries `utm_source=x`, `utm_medium=social`, the campaign
and, in `utm_content`, the id of the post (a UUID of ours, not X's id, which does not
exist until the post is published). A store records the landing page of each order
(Shopify's `landing_site`, often a bare path such as "/products/mug?utm_source=x...");
reading `utm_content` back from it attributes the order to the post.

In a post's text the link must stand as a whole token (`standalone_link_count`):
"<link>zzz", "<link>&x=1" or "<link>#frag" would be read by X's URL parser as a
longer URL, and the posted utm_content would no longer name the post.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

UTM_SOURCE = "x"
UTM_MEDIUM = "social"

# Only the canonical 8-4-4-4-12 form: uuid.UUID() would also take braces, "urn:uuid:"
# and bare hex, which no link of ours ever carries.
_UUID = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE
)


def product_link(
    store_base_url: str, product_handle: str, *, post_id: str, campaign: str | None
) -> str:
    """Build `{base}/products/{handle}` with the UTM parameters that credit `post_id`.

    Query parameters already on the base URL are kept, except utm_* ones, which this
    link owns. Raises ValueError for a base that is not an http(s) URL, a post id that
    is not a UUID, or an empty handle.
    """
    canonical_post_id = _canonical_uuid(post_id)
    if canonical_post_id is None:
        raise ValueError(f"post_id must be a UUID, got {post_id!r}")
    if not product_handle.strip():
        raise ValueError("product_handle must not be empty")
    base = urlsplit(store_base_url.strip())
    if base.scheme not in ("http", "https") or not base.netloc:
        raise ValueError(
            f"store_base_url must be an http(s) URL, got {store_base_url!r}"
        )

    path = base.path.rstrip("/") + "/products/" + quote(product_handle, safe="")

    kept = [
        (name, value)
        for name, value in parse_qsl(base.query, keep_blank_values=True)
        if not name.lower().startswith("utm_")
    ]
    utm = [("utm_source", UTM_SOURCE), ("utm_medium", UTM_MEDIUM)]
    if campaign:
        utm.append(("utm_campaign", campaign))
    utm.append(("utm_content", canonical_post_id))

    query = urlencode(kept + utm, quote_via=quote)
    return urlunsplit((base.scheme, base.netloc, path, query, base.fragment))


# What may come before the link: nothing, a space, or an opening bracket or quote.
_BEFORE_LINK = r"(?<![^\s(\[{\"'“‘«「『（])"
# What may follow it: the end of the text, a space, or sentence punctuation that X's
# URL parser (twitter-text) leaves out of a URL when nothing but a space or the end
# follows it ("see <link>." or "(<link>)!").
_AFTER_LINK = r"(?=[.,;:!?)\]}\"'”’»。、！？）」』]*(?:\s|$))"


def standalone_link_count(text: str, link: str) -> int:
    """Count the times `link` appears in `text` as a whole token, as X would link it.

    A copy glued to other characters ("<link>zzz", "x<link>") is not counted.
    """
    if not link:
        return 0
    return len(_standalone_link(link).findall(text))


def without_standalone_link(text: str, link: str) -> str:
    """Blank out each whole-token `link` in `text`, leaving any glued copy in place."""
    if not link:
        return text
    return _standalone_link(link).sub(" ", text)


def _standalone_link(link: str) -> re.Pattern[str]:
    return re.compile(_BEFORE_LINK + re.escape(link) + _AFTER_LINK)


def post_id_from_landing_site(landing_site: str | None) -> str | None:
    """Return the post id in a landing URL or path that came from one of our links.

    None when the URL is missing, did not come from X through cartcast (utm_source
    and utm_medium differ), or its utm_content is not a UUID.
    """
    if not landing_site:
        return None

    try:
        query = urlsplit(landing_site.strip()).query
    except ValueError:
        # urlsplit refuses some malformed netlocs (an unclosed "[" for one).
        return None
    params: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        params.setdefault(name.lower(), value)

    if params.get("utm_source", "").lower() != UTM_SOURCE:
        return None
    if params.get("utm_medium", "").lower() != UTM_MEDIUM:
        return None
    return _canonical_uuid(params.get("utm_content", ""))


def _canonical_uuid(value: str) -> str | None:
    value = value.strip()
    if not _UUID.fullmatch(value):
        return None
    return value.lower()
