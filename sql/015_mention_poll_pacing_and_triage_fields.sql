-- 015: pace each brand's mention polls, and keep what triage reads of a mention.

-- A quiet brand is polled less often, a busy one at the shortest interval
-- (decision 0017); the next poll's time is kept per brand.
ALTER TABLE brands ADD COLUMN mentions_poll_interval_s integer
    CHECK (mentions_poll_interval_s > 0);
ALTER TABLE brands ADD COLUMN mentions_next_poll_at timestamptz;

-- The author's reach when the mention was read (None when X left the author out),
-- how many photos it carries, and X's language tag.
ALTER TABLE mentions ADD COLUMN author_followers integer
    CHECK (author_followers >= 0);
ALTER TABLE mentions ADD COLUMN photo_count smallint NOT NULL DEFAULT 0
    CHECK (photo_count >= 0);
ALTER TABLE mentions ADD COLUMN lang text;
