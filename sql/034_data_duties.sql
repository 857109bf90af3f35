-- 034: the data duties (decision 0032): a brand's offboarding and its grace period,
-- how long the brand keeps mention texts, and a record of each removal of a mention
-- author's data that holds the counts, never the person's id or handle.

-- Offboarding: asked for, due (asked for plus the grace period), done. A brand that
-- chose to keep its daily KPIs stays as a stripped row (`offboarded_at` set) that
-- holds them; every other brand row goes.
ALTER TABLE brands
    ADD COLUMN offboarding_requested_at timestamptz,
    ADD COLUMN offboarding_requested_by text,
    ADD COLUMN offboarding_due_at timestamptz,
    ADD COLUMN offboarding_keeps_kpis boolean NOT NULL DEFAULT false,
    ADD COLUMN offboarded_at timestamptz,
    ADD CONSTRAINT brands_offboarding_has_due CHECK (
        (offboarding_requested_at IS NULL) = (offboarding_due_at IS NULL)
        AND (offboarding_requested_at IS NULL) = (offboarding_requested_by IS NULL));

-- Days a mention's text is kept; NULL is the deployment's default
-- (CARTCAST_MENTION_TEXT_RETENTION_DAYS). The API bounds it by the deployment's
-- maximum; the check only keeps date arithmetic sane.
ALTER TABLE brands ADD COLUMN mention_text_retention_days integer
    CHECK (mention_text_retention_days BETWEEN 1 AND 3660);
CREATE INDEX brands_offboarding_due ON brands (offboarding_due_at)
    WHERE offboarding_due_at IS NOT NULL AND offboarded_at IS NULL;

-- When the text went (retention or an author's request) and when the author's
-- fields went; the triage figures (sentiment, intent, priority) stay.
ALTER TABLE mentions
    ADD COLUMN text_removed_at timestamptz,
    ADD COLUMN author_removed_at timestamptz;
CREATE INDEX mentions_text_kept ON mentions (brand_id, posted_at)
    WHERE text_removed_at IS NULL;
CREATE INDEX mentions_by_author ON mentions (brand_id, author_id);
CREATE INDEX mentions_by_author_username ON mentions (brand_id, lower(author_username));

-- The export reads a brand's posts in id order, a page at a time (data_export.py).
CREATE INDEX posts_by_brand_id ON posts (brand_id, id);
-- Deleting a brand cascades through these foreign keys row by row; without an
-- index each deleted post or product would scan the whole referencing table.
CREATE INDEX x_post_intents_by_post ON x_post_intents (post_id);
CREATE INDEX posts_by_product ON posts (product_id) WHERE product_id IS NOT NULL;
CREATE INDEX caption_job_items_by_product ON caption_job_items (product_id);

CREATE TABLE author_data_removals (
    id             bigserial PRIMARY KEY,
    brand_id       uuid NOT NULL REFERENCES brands (id) ON DELETE CASCADE,
    requested_at   timestamptz NOT NULL,
    requested_by   text NOT NULL,
    -- How the person was named; the id or handle itself is not kept.
    matched_by     text NOT NULL CHECK (matched_by IN ('x_user_id', 'username')),
    mentions       integer NOT NULL CHECK (mentions >= 0),
    escalations    integer NOT NULL CHECK (escalations >= 0)
);
CREATE INDEX author_data_removals_by_brand ON author_data_removals (brand_id, id);
