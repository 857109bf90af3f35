-- 012: remember which attempt X refused as a duplicate, so the reconciler can fail
-- a post whose text X calls a duplicate of a post the timeline does not show,
-- instead of re-queueing it forever (decision 0012).
ALTER TABLE publish_attempts
    ADD COLUMN refused_as_duplicate boolean NOT NULL DEFAULT false;
