-- 047: the since_id the mentions read a stored X page token continues was first
-- sent with, so the resumed read sends that one again: X ties a page token to its
-- query, and the first read's since_id reaches back the overlap past the cursor.

ALTER TABLE brands ADD COLUMN mentions_resume_since_id text;

-- A token stored before this column existed has no known query: it is dropped,
-- and the next read starts again from the cursor (it stores nothing twice).
UPDATE brands SET mentions_resume_token = NULL, mentions_resume_started_at = NULL,
    mentions_pending_newest_id = NULL
WHERE mentions_resume_token IS NOT NULL;
