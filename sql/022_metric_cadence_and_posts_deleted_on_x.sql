-- 022: when each published post's metrics are next read from X, and posts X no
-- longer has: their copy removed, their figures and orders kept (decision 0022).

-- NULL until the first reading: a post is due from its publication on.
ALTER TABLE posts ADD COLUMN metrics_due_at timestamptz;
ALTER TABLE posts ADD COLUMN last_metrics_at timestamptz;
-- The first lookup that answered resource-not-found; a second one, an hour or
-- more later, marks the post deleted. A lookup that finds it clears this.
ALTER TABLE posts ADD COLUMN missing_on_x_at timestamptz;
-- Set once X twice had no such post. The state stays `published` (it was, and its
-- day's counts do not change); text, thread parts, poll options and alt text are
-- emptied in the same statement, and the post is never read again.
ALTER TABLE posts ADD COLUMN deleted_on_x_at timestamptz;

-- A deleted poll or image post keeps no options or alt text.
ALTER TABLE posts DROP CONSTRAINT posts_poll_has_options;
ALTER TABLE posts ADD CONSTRAINT posts_poll_has_options CHECK (
    (poll_options IS NULL OR cardinality(poll_options) BETWEEN 2 AND 4)
    AND (deleted_on_x_at IS NOT NULL
         OR (kind = 'poll') = (poll_options IS NOT NULL
                               AND poll_duration_minutes IS NOT NULL)));
ALTER TABLE posts DROP CONSTRAINT posts_image_has_alt_text;
ALTER TABLE posts ADD CONSTRAINT posts_image_has_alt_text CHECK (
    deleted_on_x_at IS NOT NULL OR (kind = 'image') = (image_alt_text IS NOT NULL));

-- Each rollup asks every brand for its due posts, oldest due first.
CREATE INDEX posts_metrics_due ON posts (brand_id, (COALESCE(metrics_due_at,
    published_at)))
    WHERE state = 'published' AND x_post_id IS NOT NULL AND deleted_on_x_at IS NULL;
