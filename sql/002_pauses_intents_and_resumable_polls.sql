-- 002: per-brand pauses after X rate limits, the moment each post was handed to X,
-- resumable mention polls, and daily revenue that cannot overflow.

-- X answers 429 per account and endpoint family; cartcast records until when and
-- skips the brand until then instead of calling again on every tick.
ALTER TABLE brands ADD COLUMN x_posts_paused_until timestamptz;
ALTER TABLE brands ADD COLUMN x_reads_paused_until timestamptz;

-- A poll that ran out of pages keeps X's pagination token and the newest id it saw,
-- and the next poll continues from there before the cursor moves.
ALTER TABLE brands ADD COLUMN mentions_resume_token text;
ALTER TABLE brands ADD COLUMN mentions_pending_newest_id text;

-- Written just before the request to X leaves: a publisher that dies without
-- sent_at never reached X (the post can be retried); one that dies after it may
-- have (the post becomes unconfirmed).
ALTER TABLE publish_attempts ADD COLUMN sent_at timestamptz;

-- Sums of many orders: no fixed precision to overflow.
ALTER TABLE daily_kpis ALTER COLUMN revenue TYPE numeric;
ALTER TABLE daily_kpis ALTER COLUMN api_spend_usd TYPE numeric;
