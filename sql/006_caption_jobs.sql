-- 006: caption jobs: a catalog (or a list of products) captioned in chunks by the
-- scheduled drain_caption_jobs function, resumable across runs and days of quota.

CREATE TABLE caption_jobs (
    id                uuid PRIMARY KEY,
    brand_id          uuid NOT NULL REFERENCES brands (id) ON DELETE CASCADE,
    -- The name of the API key that asked (or "cli"); the drafts carry it too.
    requested_by      text NOT NULL,
    -- The caption options every chunk is written with, as POST /v1/captions takes
    -- them (campaign, tone, variants, sponsored, language).
    options           jsonb NOT NULL DEFAULT '{}',
    -- What to do while Gemini's quota is spent for hours (decision 0007).
    when_quota_spent  text NOT NULL CHECK (when_quota_spent IN ('wait', 'template')),
    state             text NOT NULL CHECK (state IN (
                          'queued', 'running', 'done', 'failed', 'cancelled')),
    products_total    integer NOT NULL CHECK (products_total > 0),
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    finished_at       timestamptz
);
CREATE INDEX caption_jobs_by_brand ON caption_jobs (brand_id, created_at);
CREATE INDEX caption_jobs_open ON caption_jobs (updated_at)
    WHERE state IN ('queued', 'running');

-- One row per product of a job. A chunk of pending rows is claimed FOR UPDATE SKIP
-- LOCKED and turned into posts in the same transaction, so a row is `done` exactly
-- when its drafts exist: a crash loses nothing and a second run writes nothing twice.
CREATE TABLE caption_job_items (
    job_id           uuid NOT NULL REFERENCES caption_jobs (id) ON DELETE CASCADE,
    position         integer NOT NULL CHECK (position >= 0),
    product_id       uuid NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    state            text NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'done', 'failed')),
    -- `mixed` when variants of one product were written by different engines.
    engine           text CHECK (engine IN ('gemini', 'template', 'mixed')),
    post_ids         uuid[] NOT NULL DEFAULT '{}',
    fallback_reason  text,
    error            text,
    updated_at       timestamptz,
    PRIMARY KEY (job_id, position),
    UNIQUE (job_id, product_id),
    CHECK ((state = 'done') = (engine IS NOT NULL))
);
CREATE INDEX caption_job_items_pending ON caption_job_items (job_id, position)
    WHERE state = 'pending';
