"""Triage a scored mention: its priority, when its answer is due, and what follows.

The scorer (offline or Gemini) gives intent and sentiment; triage adds what the
brand and the author bring. Priority runs from 1 (answer first) to 4 (no answer
needed):

    intent        sentiment   priority   with reach   answer due
    (crisis)      any         1          1            the sooner of order/complaint
    (crisis)      praise, positive  3    3            brand's question_due_min
    order_issue   negative    1          1            brand's order_issue_due_min
    order_issue   other       2          1            brand's order_issue_due_min
    complaint     any         2          1            brand's complaint_due_min
    complaint     guessed     3          3            brand's complaint_due_min
    question      any         3          2            brand's question_due_min
    other         any         4          4            none
    praise        any         4          4            none, after "other"
    spam          any         4          4            none, last

Reach is an author with at least CARTCAST_REACH_FOLLOWERS_MIN followers: what they
say is seen by many, so a problem of theirs moves up one step. Praise never moves
up: however loud, it should never be answered before an order problem. Within a
priority, order issues come first, then the earliest due (`rank_key`).

A guessed complaint is one only the learned model read, or only a quoted claim
("your lights are 'waterproof' until it rains"), in a tone that is not negative:
a guess at sarcasm ("love getting 3 marketing emails a day 🙄").
When right it is a real complaint, so it keeps the complaint deadline; but it is
right less than half the time (20 of 51 on the tuning halves, each store left
out, decision 0045; 35 of 75 with the quoted claims, decision 0047), and as
praise ("honestly love how they don't spam me") at priority 2 it puts every
order problem the scorer misread below it. So a guess waits at priority 3,
after every order issue and every complaint read from its own
words, and reach never raises it (decision 0045).

A crisis word (an injury, a burn, a lawsuit; the offline scorer's list, whatever
engine labelled the mention) raises a mention to 1, except in one read as praise in
a positive tone: "the flowers cheered her up in hospital" is not an emergency, and
at 1 it ranked above every late order. A crisis word there may still matter (an
allergic reaction handled well), so such a mention waits at 3, answered within the
question deadline, not escalated (decision 0061).

Praise is the lowest tier above spam, below "other": it asks for nothing, and
"other" is where a problem the scorer could not read lands ("the box came with no
knives in it. lol"), so a misread order issue there still ranks above every praise
read as praise (decision 0026). Priority 1 is what escalates to the brand's CRM
(`escalations.py`). Praise with a photo is a user-generated-content candidate, to
reshare with the author's permission.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

PRIORITY_BY_INTENT = {
    "order_issue": 2,
    "complaint": 2,
    "question": 3,
    "praise": 4,
    "other": 4,
    "spam": 4,
}
# Every intent a scorer gives, as sql/016's mentions_intent_known allows them.
INTENTS = tuple(PRIORITY_BY_INTENT)
# Intents whose priority an author's reach raises by one step.
REACH_RAISES = frozenset({"order_issue", "complaint", "question"})
ESCALATE_AT_PRIORITY = 1
GUESSED_PRIORITY = 3
CRISIS_IN_PRAISE_PRIORITY = 3
# The reasons `sentiment.score_mention` gives when the learned model, or a quoted
# claim alone, made a mention a complaint: a guess at sarcasm, not a reading.
GUESSED_COMPLAINT_REASONS = frozenset({"model:complaint", "guess:quoted"})
# A mention's place within its priority (`rank_key`, and the inbox's ORDER BY):
# order issues first, praise after everything but spam. Any other intent is 1.
PLACE_IN_PRIORITY = {"order_issue": 0, "praise": 2, "spam": 3}
OTHER_PLACE = 1


@dataclass(frozen=True)
class ResponseDeadlines:
    """A brand's minutes from a mention to its answer being due, per intent."""

    order_issue_min: int = 60
    complaint_min: int = 60
    question_min: int = 240


@dataclass(frozen=True)
class Triage:
    priority: int
    response_due_at: dt.datetime | None
    escalate: bool
    ugc_candidate: bool
    reasons: tuple[str, ...]


def triage_mention(
    *,
    intent: str,
    sentiment: str,
    crisis: bool,
    posted_at: dt.datetime,
    author_followers: int | None,
    media_types: tuple[str, ...] | list[str],
    deadlines: ResponseDeadlines,
    reach_followers_min: int,
    guessed: bool = False,
) -> Triage:
    """Decide priority, due time, escalation and UGC for one scored mention.

    `guessed` marks a complaint only the model or a quoted claim read
    (`guessed_complaint`).
    """
    reasons: list[str] = []
    priority = PRIORITY_BY_INTENT.get(intent, 4)
    if intent == "order_issue" and sentiment == "negative":
        priority = 1
    guessed = guessed and intent == "complaint"
    if guessed:
        priority = GUESSED_PRIORITY
        reasons.append("priority:guessed")

    reach = author_followers is not None and author_followers >= reach_followers_min
    if reach and intent in REACH_RAISES and priority > 1 and not guessed:
        priority -= 1
        reasons.append("priority:reach")
    in_praise = crisis and intent == "praise" and sentiment == "positive"
    if in_praise:
        priority = CRISIS_IN_PRAISE_PRIORITY
        reasons.append("priority:crisis_in_praise")
    elif crisis:
        priority = 1
        reasons.append("priority:crisis")

    due_min = (
        deadlines.question_min if in_praise else _due_min(intent, crisis, deadlines)
    )
    due_at = None if due_min is None else posted_at + dt.timedelta(minutes=due_min)
    ugc = intent == "praise" and "photo" in media_types
    if ugc:
        reasons.append("ugc:photo")
    return Triage(
        priority=priority,
        response_due_at=due_at,
        escalate=priority <= ESCALATE_AT_PRIORITY,
        ugc_candidate=ugc,
        reasons=tuple(reasons),
    )


def guessed_complaint(intent: str, sentiment: str, reasons: tuple[str, ...]) -> bool:
    """Return whether a complaint is a guess, the model's or a quote's, not negative.

    `reasons` are the scorer's; a Gemini label carries none of the offline
    model's, so it is never a guess.
    """
    return (
        intent == "complaint"
        and sentiment != "negative"
        and not GUESSED_COMPLAINT_REASONS.isdisjoint(reasons)
    )


def _due_min(intent: str, crisis: bool, deadlines: ResponseDeadlines) -> int | None:
    if crisis:
        return min(deadlines.order_issue_min, deadlines.complaint_min)
    return {
        "order_issue": deadlines.order_issue_min,
        "complaint": deadlines.complaint_min,
        "question": deadlines.question_min,
    }.get(intent)


def rank_key(
    priority: int,
    response_due_at: dt.datetime | None,
    posted_at: dt.datetime,
    intent: str | None = None,
) -> tuple[int, int, float, float]:
    """Sort key of the inbox order: priority, place, the earliest due, the newest.

    Within one priority an order issue comes before anything else, whatever its
    due time: a complaint or a misread praise of the same priority must not push
    a customer's order problem down the list (decision 0018, fourth round). Praise
    and then spam come after the rest of their priority (decision 0026).
    """
    due = response_due_at.timestamp() if response_due_at else float("inf")
    return (priority, place_in_priority(intent), due, -posted_at.timestamp())


def place_in_priority(intent: str | None) -> int:
    """Return where an intent sorts within its priority: 0 first, 3 last."""
    return PLACE_IN_PRIORITY.get(intent or "", OTHER_PLACE)
