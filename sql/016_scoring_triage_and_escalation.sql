-- 016: how each mention was scored (engine, model, why a fallback), the author's
-- reach and the mention's photos (triage and UGC candidates), each brand's response
-- deadlines and CRM escalation webhook, and the escalation outbox (decision 0018).

-- `sentiment` and `compound` are the label and the score; these say who gave them.
ALTER TABLE mentions ADD COLUMN sentiment_engine text
    CHECK (sentiment_engine IN ('offline', 'gemini'));
ALTER TABLE mentions ADD COLUMN sentiment_model text;
-- Set when Gemini was asked but the offline scorer answered for this mention.
ALTER TABLE mentions ADD COLUMN scoring_fallback_reason text;
ALTER TABLE mentions ADD CONSTRAINT mentions_intent_known CHECK (intent IN (
    'order_issue', 'question', 'complaint', 'praise', 'spam', 'other'));

-- Filled when the poll stores the mention: the types of its attached media
-- ('photo', 'video', 'animated_gif'). The author's followers are in 015.
ALTER TABLE mentions ADD COLUMN media_types text[] NOT NULL DEFAULT '{}';
-- Praise with a photo: the brand may ask to reshare it, crediting the author.
ALTER TABLE mentions ADD COLUMN ugc_candidate boolean NOT NULL DEFAULT false;
CREATE INDEX mentions_ugc_candidates ON mentions (brand_id, posted_at)
    WHERE ugc_candidate;

-- Minutes from the mention to its answer being due, per intent; a week at most.
ALTER TABLE brands ADD COLUMN order_issue_due_min integer NOT NULL DEFAULT 60
    CHECK (order_issue_due_min BETWEEN 1 AND 10080);
ALTER TABLE brands ADD COLUMN complaint_due_min integer NOT NULL DEFAULT 60
    CHECK (complaint_due_min BETWEEN 1 AND 10080);
ALTER TABLE brands ADD COLUMN question_due_min integer NOT NULL DEFAULT 240
    CHECK (question_due_min BETWEEN 1 AND 10080);
-- The CRM's webhook for high-priority mentions and the secret that signs each
-- delivery (HMAC-SHA256); both are write-only through the API.
ALTER TABLE brands ADD COLUMN escalation_webhook_url text;
ALTER TABLE brands ADD COLUMN escalation_secret text;
ALTER TABLE brands ADD CONSTRAINT brands_escalation_signed
    CHECK (escalation_webhook_url IS NULL OR escalation_secret IS NOT NULL);

-- One row per escalated mention (UNIQUE mention_id: scoring again queues nothing).
-- The body is kept as the exact bytes sent, so every retry signs the same body.
CREATE TABLE escalation_outbox (
    id               bigserial PRIMARY KEY,
    brand_id         uuid NOT NULL REFERENCES brands (id) ON DELETE CASCADE,
    mention_id       uuid NOT NULL UNIQUE REFERENCES mentions (id) ON DELETE CASCADE,
    body             text NOT NULL,
    created_at       timestamptz NOT NULL,
    next_attempt_at  timestamptz NOT NULL,
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error       text,
    delivered_at     timestamptz,
    delivered_to     text CHECK (delivered_to IN ('webhook', 'log')),
    abandoned_at     timestamptz
);
CREATE INDEX escalation_outbox_pending ON escalation_outbox (next_attempt_at, id)
    WHERE delivered_at IS NULL AND abandoned_at IS NULL;
