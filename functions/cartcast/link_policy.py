"""Which posts carry the product link: the brand's policy, and the request's wish.

X charges $0.20 for a post with a URL and $0.015 for one without (costs.py), so a
brand chooses one of three policies, stored on the brand:

    always    every post links to its product (the default)
    never     no post carries a link
    monthly   at most `link_posts_per_month` link posts per brand-local calendar month

A caption request may say `link: true` or `link: false`, or leave it out:

    request     always      never              monthly
    false       link-free   link-free          link-free
    omitted     link        link-free          link while the month's allowance
                                               lasts, then link-free with a note
    true        link        409 naming link    link, or 409 naming link when the
                                               allowance cannot cover every draft

A link post counts in the month, in the brand's time zone, in which it was drafted,
unless it was cancelled, rejected, failed or held: those never reach X. Counting
when drafts are written (not when they are published) keeps the answer known at
once; the brand's monthly X budget (costs.py) polices what is actually published,
and where the two disagree the budget wins (decisions 0008 and 0010).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass
from typing import Any

from cartcast import validation
from cartcast.db import Transaction
from cartcast.errors import Conflict, InvalidRequest

POLICIES = ("always", "never", "monthly")
LINK_POSTS_PER_MONTH_MAX = 10_000

# NO KEY, as posts.LOCK_BRAND: FOR UPDATE would make every change that logs itself
# against the brand (post_events' foreign key takes KEY SHARE) wait for it. Taken
# only once the copy is written (confirm_links), never across Gemini's call: the
# brand's publisher and schedulers take this row too, and a call can last 41 s.
LOCK_BRAND_LINK_SETTINGS = """
SELECT link_policy, link_posts_per_month FROM brands
WHERE id = :brand_id FOR NO KEY UPDATE
"""
COUNT_LINK_POSTS = """
SELECT count(*) FROM posts
WHERE brand_id = :brand_id AND link IS NOT NULL
  AND state NOT IN ('cancelled', 'rejected', 'failed', 'held')
  AND created_at >= :month_start AND created_at < :next_month_start
"""


@dataclass(frozen=True)
class LinkChoice:
    """Whether one draft carries its link, and, when the policy took it, why not."""

    has_link: bool
    note: str | None = None


def parse_settings(
    body: dict[str, Any], *, current: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Return `link_policy` and `link_posts_per_month` from a body over `current`.

    Creating a brand passes no `current` (the default is "always"); an update keeps
    what the body leaves out. The allowance belongs to "monthly" alone.
    """
    current = current or {"link_policy": "always", "link_posts_per_month": None}
    policy = body.get("link_policy", current["link_policy"])
    if policy not in POLICIES:
        raise InvalidRequest(
            f"'link_policy' must be one of {', '.join(POLICIES)}", field="link_policy"
        )

    if policy != "monthly":
        if body.get("link_posts_per_month") is not None:
            raise InvalidRequest(
                "'link_posts_per_month' goes with link_policy 'monthly' only",
                field="link_posts_per_month",
            )
        return {"link_policy": policy, "link_posts_per_month": None}

    allowance = body.get("link_posts_per_month", current["link_posts_per_month"])
    if allowance is None:
        raise InvalidRequest(
            "link_policy 'monthly' needs 'link_posts_per_month'",
            field="link_posts_per_month",
        )
    allowance = validation.integer(
        {"link_posts_per_month": allowance},
        "link_posts_per_month",
        default=0,
        minimum=0,
        maximum=LINK_POSTS_PER_MONTH_MAX,
    )
    return {"link_policy": policy, "link_posts_per_month": allowance}


def choose_links(
    tx: Transaction,
    brand: dict[str, Any],
    *,
    asked: bool | None,
    drafts: int,
    now: dt.datetime,
) -> list[LinkChoice]:
    """Decide, for each of `drafts` drafts in order, whether it carries its link.

    Raises Conflict (field `link`) when the request asks for links the policy does
    not allow; nothing has been written then.
    """
    if asked is False:
        return [LinkChoice(False)] * drafts
    policy = brand["link_policy"]
    if policy == "always":
        return [LinkChoice(True)] * drafts
    if policy == "never":
        if asked:
            raise Conflict(
                "the brand's link_policy is 'never'; ask for link-free posts "
                "(link: false) or change the policy",
                field="link",
            )
        return [LinkChoice(False)] * drafts

    # Read without a lock: confirm_links counts again, under the brand's row lock,
    # once the copy is written.
    remaining, month = _monthly_remaining(tx, brand, now)
    if asked and drafts > remaining:
        raise _allowance_conflict(brand, remaining, month, drafts)
    note = _spent_note(brand, month)
    return [
        LinkChoice(True) if index < remaining else LinkChoice(False, note)
        for index in range(drafts)
    ]


def confirm_links(
    tx: Transaction,
    brand: dict[str, Any],
    planned: list[LinkChoice],
    *,
    asked: bool | None,
    now: dt.datetime,
) -> list[LinkChoice]:
    """Check `planned` (choose_links' answer) again under the brand's row lock.

    Called once the copy is written, just before the drafts are stored, so that no
    lock is held while Gemini writes. Two requests at once would each have counted
    the same allowance: the lock, held to the commit, makes the second count the
    first's drafts. A link draft the allowance no longer covers turns link-free,
    with the note choose_links would have given it; when the request asked for
    links (`link: true`) it is refused with a Conflict as choose_links refuses.
    """
    wanted = sum(choice.has_link for choice in planned)
    if wanted == 0:
        return planned

    # The settings too may have changed since the copy was asked for, whatever
    # they were: an 'always' brand set to 'never' meanwhile pays for no link.
    current = tx.one(LOCK_BRAND_LINK_SETTINGS, brand_id=str(brand["id"]))
    if current is None or current["link_policy"] == "always":
        return planned
    brand = {**brand, **current}
    if brand["link_policy"] == "never":
        allowed, month, note = 0, "", "link-free: the brand's link_policy is 'never'"
    else:
        allowed, month = _monthly_remaining(tx, brand, now)
        note = _spent_note(brand, month)
    if wanted <= allowed:
        return planned
    if asked:
        if brand["link_policy"] == "never":
            raise Conflict(
                "the brand's link_policy became 'never' while the copy was written; "
                "ask for link-free posts (link: false)",
                field="link",
            )
        raise _allowance_conflict(brand, allowed, month, len(planned))

    confirmed = []
    for choice in planned:
        if choice.has_link and allowed > 0:
            allowed -= 1
            confirmed.append(choice)
        elif choice.has_link:
            confirmed.append(LinkChoice(False, note))
        else:
            confirmed.append(choice)
    return confirmed


def _allowance_conflict(
    brand: dict[str, Any], remaining: int, month: str, drafts: int
) -> Conflict:
    return Conflict(
        f"the brand allows {brand['link_posts_per_month']} link posts a month "
        f"and {remaining} are left for {month}; {drafts} were asked. Ask for "
        "link-free posts (link: false), fewer drafts, or wait for next month",
        field="link",
    )


def _spent_note(brand: dict[str, Any], month: str) -> str:
    return (
        f"link-free: the {brand['link_posts_per_month']} link posts allowed for "
        f"{month} are spent"
    )


def _monthly_remaining(
    tx: Transaction, brand: dict[str, Any], now: dt.datetime
) -> tuple[int, str]:
    """Return the link posts left this brand-local month, and the month's name."""
    start, end = month_bounds(now, brand["time_zone"])
    used = tx.scalar(
        COUNT_LINK_POSTS,
        brand_id=str(brand["id"]),
        month_start=start,
        next_month_start=end,
    )
    return max(0, brand["link_posts_per_month"] - used), f"{start:%Y-%m}"


def month_bounds(now: dt.datetime, time_zone: str) -> tuple[dt.datetime, dt.datetime]:
    """Return the start of `now`'s calendar month in `time_zone` and of the next."""
    zone = zoneinfo.ZoneInfo(time_zone)
    local = now.astimezone(zone)
    start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    year, month = (
        (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
    )
    # An aware datetime on a ZoneInfo takes the offset of its own wall time, so the
    # next month's midnight is right even when the clocks changed in between.
    end = start.replace(year=year, month=month)
    return start, end
