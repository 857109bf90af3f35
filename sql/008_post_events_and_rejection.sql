-- 008: a rejected state, and post_events: every change of a post's state, text or
-- schedule, with who made it (a key's name, or "system") and when (decision 0009).

ALTER TABLE posts DROP CONSTRAINT posts_state_check;
ALTER TABLE posts ADD CONSTRAINT posts_state_check CHECK (state IN (
    'needs_approval', 'approved', 'scheduled', 'publishing', 'published', 'failed',
    'unconfirmed', 'held', 'cancelled', 'rejected'));

CREATE TABLE post_events (
    id          bigserial PRIMARY KEY,
    post_id     uuid NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    brand_id    uuid NOT NULL REFERENCES brands (id) ON DELETE CASCADE,
    -- NULL for the draft's creation.
    from_state  text,
    to_state    text NOT NULL,
    -- The API key's name, or "system" (publishing, the caption drain).
    actor       text NOT NULL,
    reason      text,
    at          timestamptz NOT NULL
);
CREATE INDEX post_events_by_post ON post_events (post_id, at, id);

-- Written by the database, so that no path that moves a post (the API, publishing,
-- a migration of data by hand) can forget it. Who acts comes from the transaction's
-- setting cartcast.actor (post_events.act_as), "system" when it is unset; why from
-- cartcast.reason, or for the system's changes the post's failure_reason (publishing
-- writes why it failed, held, could not confirm or will retry a post).
-- When is the post's updated_at, which every writer sets from its clock.
CREATE FUNCTION record_post_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    actor text := COALESCE(NULLIF(current_setting('cartcast.actor', true), ''),
                           'system');
    reason text := NULLIF(current_setting('cartcast.reason', true), '');
BEGIN
    IF TG_OP = 'UPDATE'
       AND NEW.state IS NOT DISTINCT FROM OLD.state
       AND NEW.text IS NOT DISTINCT FROM OLD.text
       AND NEW.poll_options IS NOT DISTINCT FROM OLD.poll_options
       AND NEW.scheduled_at IS NOT DISTINCT FROM OLD.scheduled_at THEN
        RETURN NULL;
    END IF;
    IF reason IS NULL AND actor = 'system' THEN
        reason := NEW.failure_reason;
    END IF;
    INSERT INTO post_events (post_id, brand_id, from_state, to_state, actor, reason,
                             at)
    VALUES (NEW.id, NEW.brand_id,
            CASE WHEN TG_OP = 'UPDATE' THEN OLD.state END,
            NEW.state, actor, reason, NEW.updated_at);
    RETURN NULL;
END;
$$;

CREATE TRIGGER posts_record_event AFTER INSERT OR UPDATE ON posts
    FOR EACH ROW EXECUTE FUNCTION record_post_event();
