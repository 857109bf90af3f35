-- 007: what image, poll and thread posts need, link-free posts and a brand's link
-- policy, the parts of a thread with their own intents, and held publish attempts.

-- Whether a brand's posts carry its product link: always, never, or at most
-- link_posts_per_month of them per brand-local calendar month (decision 0008).
ALTER TABLE brands ADD COLUMN link_policy text NOT NULL DEFAULT 'always'
    CHECK (link_policy IN ('always', 'never', 'monthly'));
ALTER TABLE brands ADD COLUMN link_posts_per_month integer
    CHECK (link_posts_per_month BETWEEN 0 AND 10000);
ALTER TABLE brands ADD CONSTRAINT brands_monthly_policy_has_allowance
    CHECK ((link_policy = 'monthly') = (link_posts_per_month IS NOT NULL));

-- Why a post that the request left to the policy has no link (the month's link
-- posts were spent); NULL when it has one, or was asked to have none.
ALTER TABLE posts ADD COLUMN link_note text;
-- A poll's 2 to 4 options and how long it runs (X: 5 minutes to 7 days).
ALTER TABLE posts ADD COLUMN poll_options text[];
ALTER TABLE posts ADD COLUMN poll_duration_minutes integer
    CHECK (poll_duration_minutes BETWEEN 5 AND 10080);
-- An image post's alt text; the image itself is the product's, read when it is sent.
ALTER TABLE posts ADD COLUMN image_alt_text text;
ALTER TABLE posts ADD CONSTRAINT posts_poll_has_options CHECK (
    (kind = 'poll') = (poll_options IS NOT NULL AND poll_duration_minutes IS NOT NULL)
    AND (poll_options IS NULL OR cardinality(poll_options) BETWEEN 2 AND 4));
ALTER TABLE posts ADD CONSTRAINT posts_image_has_alt_text
    CHECK ((kind = 'image') = (image_alt_text IS NOT NULL));

-- The link posts of a brand's month are counted on every caption request.
CREATE INDEX posts_link_posts_by_brand ON posts (brand_id, created_at)
    WHERE link IS NOT NULL;

-- A thread's parts, each one post on X. Each has its own intent: `sent_at` is
-- written just before its request leaves (and cleared when X answered "not now"),
-- `x_post_id` when X accepted it, so a retry resumes after the last confirmed part
-- and never sends one twice. posts.text holds the parts joined by a blank line.
CREATE TABLE post_parts (
    post_id          uuid NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    position         smallint NOT NULL CHECK (position BETWEEN 0 AND 24),
    text             text NOT NULL,
    weighted_length  integer NOT NULL CHECK (weighted_length BETWEEN 1 AND 280),
    has_link         boolean NOT NULL,
    sent_at          timestamptz,
    x_post_id        text UNIQUE,
    PRIMARY KEY (post_id, position)
);

-- A post whose claims the catalog no longer supports is held before it is sent.
ALTER TABLE publish_attempts DROP CONSTRAINT publish_attempts_outcome_check;
ALTER TABLE publish_attempts ADD CONSTRAINT publish_attempts_outcome_check
    CHECK (outcome IN ('published', 'failed', 'unknown', 'rate_limited', 'retry',
                       'held'));
