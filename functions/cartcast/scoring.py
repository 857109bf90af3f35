"""Score stored mentions once each: sentiment and intent, then triage and escalation.

`score_mentions` is what a `score_sentiment` event runs, and `sweep_unscored` what
every poll runs after reading X, for mentions no event scored (one dropped as too
old, or lost on the way). Both are idempotent: a mention is saved only while
`scored_at` is NULL, and only the run that saves it queues its escalation.

The engine is CARTCAST_SENTIMENT_ENGINE. The offline scorer (sentiment.py) always
runs, since it is cheap and its crisis words escalate whatever the engine says,
but in a mention the engine read as happy praise (triage.py, decision 0061).
With "gemini", the mentions go to Gemini in batches of CARTCAST_SENTIMENT_BATCH_SIZE;
any mention Gemini gave no usable label keeps the offline one, and its
`scoring_fallback_reason` says why. Once the scores are committed, the brands of
the mentions just scored are checked for a crisis (crisis.py). A database outage
raises (TransientError), so Pub/Sub delivers the event again.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cartcast import crisis, escalations
from cartcast.logs import fields

if TYPE_CHECKING:
    from cartcast import sentiment, triage

# The offline scorer and triage (sentiment.py compiles about ninety regular
# expressions on import) are imported where mentions are scored: a poll whose
# sweep finds nothing left unscored never loads them.

# Mentions no event scored after this long are scored by the poll's sweep. Longer
# than mentions.SWEEP_AFTER (when the poll re-sends them to Pub/Sub), so the event
# path gets its chance first; an event dropped as too old is past it anyway.
UNSCORED_SWEEP_AFTER = dt.timedelta(minutes=20)
UNSCORED_SWEEP_MAX = 500
SWEEP_CHUNK = 100
FALLBACK_REASON_MAX = 500

SELECT_UNSCORED = """
SELECT m.id, m.brand_id, m.x_post_id, m.author_username, m.author_followers, m.text,
    m.posted_at, m.media_types, b.order_issue_due_min, b.complaint_due_min,
    b.question_due_min
FROM mentions m JOIN brands b ON b.id = m.brand_id
WHERE m.id = ANY(CAST(:ids AS uuid[])) AND m.scored_at IS NULL
ORDER BY array_position(CAST(:ids AS uuid[]), m.id)
"""
SELECT_LEFT_UNSCORED = """
SELECT id FROM mentions
WHERE scored_at IS NULL AND received_at < :before
ORDER BY received_at, id
LIMIT :limit
"""
# Every mention of a batch in one statement: `scores` is a JSON array of one
# object per mention. compound is read as double precision, the type the driver
# sent it as before, and rounded to the column's real by the assignment. The rows
# are locked first, in id order: two deliveries of one batch in different orders
# (a redelivery, the poll's sweep) would otherwise each lock a row the other
# wants next, and PostgreSQL would end one of them as a deadlock (40P01).
SAVE_SCORES = """
WITH s AS MATERIALIZED (
    SELECT * FROM jsonb_to_recordset(CAST(:scores AS jsonb)) AS s(
        id uuid, sentiment text, compound double precision, intent text,
        priority smallint, escalate boolean, reasons text[],
        response_due_at timestamptz, scorer_version text, engine text, model text,
        fallback_reason text, ugc_candidate boolean)
), locked AS MATERIALIZED (
    SELECT id FROM mentions
    WHERE id IN (SELECT id FROM s) AND scored_at IS NULL
    ORDER BY id
    FOR UPDATE
)
UPDATE mentions m SET sentiment = s.sentiment, compound = s.compound,
    intent = s.intent, priority = s.priority, escalate = s.escalate,
    reasons = s.reasons, response_due_at = s.response_due_at,
    scorer_version = s.scorer_version, sentiment_engine = s.engine,
    sentiment_model = s.model, scoring_fallback_reason = s.fallback_reason,
    ugc_candidate = s.ugc_candidate, scored_at = :now
FROM s JOIN locked ON locked.id = s.id
WHERE m.id = s.id AND m.scored_at IS NULL
RETURNING m.id, m.text_removed_at IS NULL AND m.author_removed_at IS NULL AS kept
"""


@dataclass(frozen=True)
class Label:
    """What one engine said of one mention."""

    sentiment: str
    score: float
    intent: str
    engine: str
    model: str
    reasons: tuple[str, ...]
    fallback_reason: str | None = None
    # The quota refused the batch (gemini.Classification.quota_refused): a bench
    # stops there; scoring falls back as for any other reason.
    quota_refused: bool = False


def score_mentions(runtime: Any, *, mention_ids: list[str]) -> dict[str, int]:
    """Score the given mentions not scored yet; return counts.

    Raises TransientError when the database is out of reach.
    """
    from cartcast import sentiment

    rows = runtime.database.reads().rows(SELECT_UNSCORED, ids=mention_ids)
    counts = {"scored": 0, "escalated": 0, "ugc_candidates": 0, "gemini_fallbacks": 0}
    if not rows:
        return counts
    saved_ids = []

    # Labelled outside any transaction: a Gemini call holds no row lock. Two
    # deliveries at once may both label; only the first save counts (scored_at).
    offline = {str(row["id"]): sentiment.score_mention(row["text"]) for row in rows}
    labels = label_mentions(runtime, rows, offline)
    now = runtime.clock.now()
    decisions = {
        str(row["id"]): triage_label(runtime, row, labels[str(row["id"])], offline)
        for row in rows
    }
    with runtime.database.transaction() as tx:
        # One statement for the batch; a mention another delivery scored first is
        # not in `kept`, and queues nothing.
        kept = _save_all(tx, rows, labels, decisions, now=now)
        for row in rows:
            mention_id = str(row["id"])
            if mention_id not in kept:
                continue
            decided, reasons = decisions[mention_id]
            _queue_escalation(
                tx, row, labels[mention_id], decided, reasons, kept[mention_id], now
            )
            saved_ids.append(mention_id)
            counts["scored"] += 1
            counts["escalated"] += decided.escalate
            counts["ugc_candidates"] += decided.ugc_candidate
            counts["gemini_fallbacks"] += labels[mention_id].fallback_reason is not None

    # After the commit, so the window counts these mentions (crisis.py).
    counts.update(crisis.watch_after_scoring(runtime, mention_ids=saved_ids))
    return counts


def sweep_unscored(runtime: Any) -> int:
    """Score mentions left unscored past UNSCORED_SWEEP_AFTER; return how many."""
    before = runtime.clock.now() - UNSCORED_SWEEP_AFTER
    reads = runtime.database.reads()
    ids = [
        str(row["id"])
        for row in reads.rows(
            SELECT_LEFT_UNSCORED, before=before, limit=UNSCORED_SWEEP_MAX
        )
    ]
    scored = 0
    for start in range(0, len(ids), SWEEP_CHUNK):
        chunk = ids[start : start + SWEEP_CHUNK]
        scored += score_mentions(runtime, mention_ids=chunk)["scored"]
    if ids:
        runtime.log.warning(
            "mentions no event scored were swept",
            extra=fields(found=len(ids), scored=scored),
        )
    return scored


def offline_label(score: Any) -> Label:
    """Return what the offline scorer said of a mention (a sentiment.MentionScore)."""
    from cartcast import sentiment

    return Label(
        sentiment=score.sentiment,
        score=score.compound,
        intent=score.intent,
        engine="offline",
        model=sentiment.SCORER_VERSION,
        reasons=score.reasons,
    )


def label_mentions(
    runtime: Any, rows: list[dict[str, Any]], offline: dict[str, Any]
) -> dict[str, Label]:
    """Label every row with the configured engine, offline where Gemini gave none.

    `rows` need `id` and `text`; `offline` is each id's offline MentionScore.
    bench/triage_eval.py --gemini labels its mentions through this too.
    """
    labels = {mention_id: offline_label(score) for mention_id, score in offline.items()}
    if runtime.settings.sentiment_engine != "gemini":
        return labels

    classifier = runtime.gemini_classifier()
    if classifier is None:  # settings.load refuses this; a hand-built Settings may not
        return {
            mention_id: dataclasses.replace(label, fallback_reason="gemini: no key")
            for mention_id, label in labels.items()
        }
    batch_size = runtime.settings.sentiment_batch_size
    pairs = [(str(row["id"]), row["text"]) for row in rows]
    for start in range(0, len(pairs), batch_size):
        result = classifier.classify(pairs[start : start + batch_size])
        for mention_id, label in result.labels.items():
            crisis = tuple(f"crisis:{name}" for name in offline[mention_id].crisis)
            labels[mention_id] = Label(
                sentiment=label.sentiment,
                score=label.score,
                intent=label.intent,
                engine="gemini",
                model=result.model,
                reasons=(*crisis, f"intent:{label.intent}", "engine:gemini"),
            )
        for mention_id, reason in result.rejected.items():
            labels[mention_id] = dataclasses.replace(
                labels[mention_id],
                fallback_reason=reason[:FALLBACK_REASON_MAX],
                quota_refused=result.quota_refused,
            )
    return labels


def triage_label(
    runtime: Any,
    row: dict[str, Any],
    label: Label,
    offline: dict[str, sentiment.MentionScore],
) -> tuple[triage.Triage, list[str]]:
    """Triage one labelled mention; return the decision and the reasons to store.

    `row` needs the columns of SELECT_UNSCORED that triage reads.
    """
    from cartcast import triage

    decided = triage.triage_mention(
        intent=label.intent,
        sentiment=label.sentiment,
        crisis=bool(offline[str(row["id"])].crisis),
        posted_at=row["posted_at"],
        author_followers=row["author_followers"],
        media_types=tuple(row["media_types"] or ()),
        deadlines=triage.ResponseDeadlines(
            order_issue_min=row["order_issue_due_min"],
            complaint_min=row["complaint_due_min"],
            question_min=row["question_due_min"],
        ),
        reach_followers_min=runtime.settings.reach_followers_min,
        guessed=triage.guessed_complaint(label.intent, label.sentiment, label.reasons),
    )
    reasons = [*label.reasons, *decided.reasons]
    if decided.escalate:
        reasons.append("escalate:priority_1")
    return decided, reasons


def _save_all(
    tx: Any,
    rows: list[dict[str, Any]],
    labels: dict[str, Label],
    decisions: dict[str, tuple[triage.Triage, list[str]]],
    *,
    now: dt.datetime,
) -> dict[str, bool]:
    """Save every mention still unscored, in one statement; return, for each one
    saved, whether its text and author are still kept."""
    scores = []
    for row in rows:
        mention_id = str(row["id"])
        label = labels[mention_id]
        decided, reasons = decisions[mention_id]
        due = decided.response_due_at
        scores.append(
            {
                "id": mention_id,
                "sentiment": label.sentiment,
                "compound": label.score,
                "intent": label.intent,
                "priority": decided.priority,
                "escalate": decided.escalate,
                "reasons": reasons,
                "response_due_at": due.isoformat() if due is not None else None,
                "scorer_version": label.model,
                "engine": label.engine,
                "model": label.model,
                "fallback_reason": label.fallback_reason,
                "ugc_candidate": decided.ugc_candidate,
            }
        )
    saved = tx.rows(SAVE_SCORES, scores=json.dumps(scores), now=now)
    return {str(row["id"]): row["kept"] for row in saved}


def _queue_escalation(
    tx: Any,
    row: dict[str, Any],
    label: Label,
    decided: triage.Triage,
    reasons: list[str],
    kept: bool,
    now: dt.datetime,
) -> None:
    """Queue the escalation of a mention just saved, if it is one to escalate."""
    # The text and author were read before labelling; if a retention sweep or an
    # author's removal (author_data.py) took them meanwhile, the row's lock has
    # made this save wait for it, and the escalation would quote what is gone.
    if not (decided.escalate and kept):
        return
    escalations.queue_escalation(
        tx,
        brand_id=str(row["brand_id"]),
        mention={
            **row,
            "intent": label.intent,
            "sentiment": label.sentiment,
            "priority": decided.priority,
            "response_due_at": decided.response_due_at,
            "reasons": reasons,
        },
        now=now,
    )
