-- 017: the inbox's handling of mentions (who, when, the first response), replies
-- from cartcast as posts, crisis episodes, and a brand's crisis pause (decision 0019).

-- When a person first answered a mention (marked it handled or replied), who marked
-- it handled and when, and the reply cartcast queued for it.
ALTER TABLE mentions ADD COLUMN responded_at timestamptz;
ALTER TABLE mentions ADD COLUMN handled_at timestamptz;
ALTER TABLE mentions ADD COLUMN handled_by text;
ALTER TABLE mentions ADD COLUMN reply_post_id uuid REFERENCES posts (id)
    ON DELETE SET NULL;
ALTER TABLE mentions ADD CONSTRAINT mentions_handled_has_who_and_when
    CHECK ((state = 'handled') = (handled_at IS NOT NULL AND handled_by IS NOT NULL));

-- A reply is a post that answers the X post `in_reply_to`, in the conversation
-- `reply_conversation_id`. At most one reply per conversation is live: one X
-- refused, or a person cancelled, no longer counts.
ALTER TABLE posts ADD COLUMN in_reply_to text;
ALTER TABLE posts ADD COLUMN reply_conversation_id text;
ALTER TABLE posts ADD CONSTRAINT posts_reply_has_conversation
    CHECK ((in_reply_to IS NULL) = (reply_conversation_id IS NULL));
CREATE UNIQUE INDEX posts_one_reply_per_conversation
    ON posts (brand_id, reply_conversation_id)
    WHERE reply_conversation_id IS NOT NULL
      AND state NOT IN ('failed', 'cancelled', 'rejected');
-- Replies are due when they are written, not in a posting slot: two replies, or a
-- reply and a slot's post, may share an instant.
DROP INDEX posts_one_per_slot;
CREATE UNIQUE INDEX posts_one_per_slot ON posts (brand_id, scheduled_at)
    WHERE scheduled_at IS NOT NULL AND state NOT IN ('cancelled', 'failed')
      AND in_reply_to IS NULL;

-- A brand's crisis pause: while set, its queued posts (not its replies) are held
-- and nothing new is claimed for it.
ALTER TABLE brands ADD COLUMN publishing_paused_at timestamptz;
ALTER TABLE brands ADD COLUMN publishing_paused_by text;
ALTER TABLE brands ADD COLUMN publishing_paused_reason text;

-- One row per crisis episode: the share of negative mentions in the last window
-- rose well above the brand's baseline. One open episode per brand, so the
-- episode's alert is raised once however many scoring runs see it.
CREATE TABLE crises (
    id                bigserial PRIMARY KEY,
    brand_id          uuid NOT NULL REFERENCES brands (id) ON DELETE CASCADE,
    started_at        timestamptz NOT NULL,
    ended_at          timestamptz,
    window_mentions   integer NOT NULL CHECK (window_mentions > 0),
    window_negative   integer NOT NULL CHECK (window_negative >= 0),
    baseline_share    real NOT NULL CHECK (baseline_share BETWEEN 0 AND 1)
);
CREATE UNIQUE INDEX crises_one_open_per_brand ON crises (brand_id)
    WHERE ended_at IS NULL;
-- The window and the baseline are read by the time each mention was posted.
CREATE INDEX mentions_by_brand_posted ON mentions (brand_id, posted_at)
    WHERE scored_at IS NOT NULL;
