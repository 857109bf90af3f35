-- 032: when each API key was last used, the audit trail (audit_events) beside
-- post_events, which now also keeps what a change replaced, and one view that lists
-- both newest first (decision 0031).

ALTER TABLE api_keys ADD COLUMN last_used_at timestamptz;

-- Everything a brand's keys change that is not a post (keys, mentions, the pause),
-- and what was refused. Posts keep their own log, post_events, written by the
-- trigger below; the view audit_trail reads the two as one.
CREATE TABLE audit_events (
    id          bigserial PRIMARY KEY,
    brand_id    uuid NOT NULL REFERENCES brands (id) ON DELETE CASCADE,
    at          timestamptz NOT NULL,
    -- The API key's name (names are unique per brand, revoked keys included), or
    -- "system:<function>" for a scheduled function.
    actor       text NOT NULL,
    -- "<what>.<verb>": key.created, mention.handled, access.refused, ...
    action      text NOT NULL CHECK (action ~ '^[a-z_]+\.[a-z_]+$'),
    -- "<kind>:<id or name>": key:ops-bot, mention:<uuid>, route:POST /v1/keys.
    subject     text NOT NULL,
    before      jsonb,
    after       jsonb
);
CREATE INDEX audit_events_by_brand ON audit_events (brand_id, at DESC, id DESC);

-- What each post event replaced and what it wrote, for the fields that changed
-- (state, text, poll_options, scheduled_at); NULL on rows written before 032.
ALTER TABLE post_events ADD COLUMN before jsonb, ADD COLUMN after jsonb;
CREATE INDEX post_events_by_brand ON post_events (brand_id, at DESC, id DESC);

CREATE OR REPLACE FUNCTION record_post_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    actor text := COALESCE(NULLIF(current_setting('cartcast.actor', true), ''),
                           'system');
    reason text := NULLIF(current_setting('cartcast.reason', true), '');
    old_values jsonb := '{}';
    new_values jsonb := jsonb_build_object('state', NEW.state);
BEGIN
    IF TG_OP = 'UPDATE'
       AND NEW.state IS NOT DISTINCT FROM OLD.state
       AND NEW.text IS NOT DISTINCT FROM OLD.text
       AND NEW.poll_options IS NOT DISTINCT FROM OLD.poll_options
       AND NEW.scheduled_at IS NOT DISTINCT FROM OLD.scheduled_at THEN
        RETURN NULL;
    END IF;
    IF reason IS NULL AND (actor = 'system' OR starts_with(actor, 'system:')) THEN
        reason := NEW.failure_reason;
    END IF;
    IF TG_OP = 'INSERT' THEN
        old_values := NULL;
        new_values := jsonb_build_object(
            'state', NEW.state, 'text', NEW.text,
            'poll_options', to_jsonb(NEW.poll_options),
            'scheduled_at', to_jsonb(NEW.scheduled_at));
    ELSE
        old_values := jsonb_build_object('state', OLD.state);
        IF NEW.text IS DISTINCT FROM OLD.text THEN
            old_values := old_values || jsonb_build_object('text', OLD.text);
            new_values := new_values || jsonb_build_object('text', NEW.text);
        END IF;
        IF NEW.poll_options IS DISTINCT FROM OLD.poll_options THEN
            old_values := old_values
                || jsonb_build_object('poll_options', to_jsonb(OLD.poll_options));
            new_values := new_values
                || jsonb_build_object('poll_options', to_jsonb(NEW.poll_options));
        END IF;
        IF NEW.scheduled_at IS DISTINCT FROM OLD.scheduled_at THEN
            old_values := old_values
                || jsonb_build_object('scheduled_at', to_jsonb(OLD.scheduled_at));
            new_values := new_values
                || jsonb_build_object('scheduled_at', to_jsonb(NEW.scheduled_at));
        END IF;
    END IF;
    INSERT INTO post_events (post_id, brand_id, from_state, to_state, actor, reason,
                             at, before, after)
    VALUES (NEW.id, NEW.brand_id,
            CASE WHEN TG_OP = 'UPDATE' THEN OLD.state END,
            NEW.state, actor, reason, NEW.updated_at, old_values, new_values);
    RETURN NULL;
END;
$$;

-- One trail per brand. A post event's action is post.created, post.<new state>
-- (post.approved, post.published, ...) or post.edited when the state stayed; its
-- reason, when one was given, rides along in `after`.
CREATE VIEW audit_trail AS
SELECT 'audit' AS source, a.id, a.brand_id, a.at, a.actor, a.action, a.subject,
       a.before, a.after
FROM audit_events a
UNION ALL
SELECT 'post' AS source, e.id, e.brand_id, e.at, e.actor,
       CASE WHEN e.from_state IS NULL THEN 'post.created'
            WHEN e.from_state <> e.to_state THEN 'post.' || e.to_state
            ELSE 'post.edited' END,
       'post:' || e.post_id,
       COALESCE(e.before, CASE WHEN e.from_state IS NOT NULL
                               THEN jsonb_build_object('state', e.from_state) END),
       COALESCE(e.after, jsonb_build_object('state', e.to_state))
           || CASE WHEN e.reason IS NULL THEN '{}'::jsonb
                   ELSE jsonb_build_object('reason', e.reason) END
FROM post_events e;
