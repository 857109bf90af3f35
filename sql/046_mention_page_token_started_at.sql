-- 046: when the mentions read a stored X page token continues was started, so a
-- token kept past removed_mentions.REREAD_MARGIN is dropped and the read starts
-- again from the cursor (decision 0056): a removed author's mention ids are kept
-- only that long past the poll's reach, and an older query could return one.

-- A token stored before this column existed has no start: it is dropped once.
ALTER TABLE brands ADD COLUMN mentions_resume_started_at timestamptz;
