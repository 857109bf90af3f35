-- 025: an X id a person typed is not taken as X's word until X returns the post,
-- and each thread part is looked up, found missing and emptied on its own
-- (decision 0022, "Ids X never returned" and "Threads").

-- True when a person settled the post on X by hand with this id (settling.py);
-- X's own create answer and the reconciler's timeline read leave it false.
ALTER TABLE posts ADD COLUMN x_post_id_by_hand boolean NOT NULL DEFAULT false;
UPDATE posts SET x_post_id_by_hand = true
WHERE state = 'published' AND last_metrics_at IS NULL AND EXISTS (
    SELECT 1 FROM publish_attempts a
    WHERE a.post_id = posts.id AND a.error LIKE '%settled by hand: on X as%');

-- A part X answered resource-not-found for, and the part X twice had not.
ALTER TABLE post_parts ADD COLUMN missing_on_x_at timestamptz;
ALTER TABLE post_parts ADD COLUMN deleted_on_x_at timestamptz;
