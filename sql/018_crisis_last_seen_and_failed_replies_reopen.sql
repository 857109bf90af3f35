-- 018: a crisis remembers when its surge was last seen, so one whose window passed
-- unseen ends before a new surge is judged; a reply that fails for good reopens
-- its mention, saying why (decision 0019).

-- The last scoring run that still saw the surge. A crisis whose window has passed
-- since then is over, even if no run came to close it.
ALTER TABLE crises ADD COLUMN last_seen_at timestamptz;
UPDATE crises SET last_seen_at = started_at;
ALTER TABLE crises ALTER COLUMN last_seen_at SET NOT NULL;

-- Why the mention's last reply failed (X refused it, a duplicate...); cleared when
-- a new reply is queued.
ALTER TABLE mentions ADD COLUMN reply_failure text;

-- Whatever path fails a reply (a refusal, a duplicate found when reconciling, a
-- person settling it), its mention goes back to open in the same transaction:
-- nobody answered the customer.
CREATE FUNCTION reopen_mention_of_failed_reply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE mentions SET state = 'open', reply_post_id = NULL, responded_at = NULL,
        handled_at = NULL, handled_by = NULL,
        reply_failure = COALESCE(NEW.failure_reason, 'the reply failed')
    WHERE reply_post_id = NEW.id;
    RETURN NULL;
END;
$$;
CREATE TRIGGER posts_reopen_mention_of_failed_reply AFTER UPDATE OF state ON posts
    FOR EACH ROW
    WHEN (NEW.state = 'failed' AND OLD.state IS DISTINCT FROM 'failed'
          AND NEW.in_reply_to IS NOT NULL)
    EXECUTE FUNCTION reopen_mention_of_failed_reply();
