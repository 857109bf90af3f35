-- 049: a handled event records when its run finished, so a run that failed and
-- could not give its claim back (the database went away) is taken over by
-- Pub/Sub's retry instead of leaving the retry acknowledged unrun (decision 0068).

ALTER TABLE handled_events ADD COLUMN finished_at timestamptz;

-- Claims made before this migration belong to runs long over.
UPDATE handled_events SET finished_at = handled_at;
