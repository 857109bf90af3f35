-- 009: when the reconciler last looked for an unconfirmed attempt's post on the
-- account's timeline, and when it settled the attempt (adopted or re-queued).
ALTER TABLE publish_attempts ADD COLUMN checked_at timestamptz;
ALTER TABLE publish_attempts ADD COLUMN reconciled_at timestamptz;
