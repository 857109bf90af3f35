-- 011: retries with backoff (a post's not-before time and its count of X's
-- failures), X accounts marked disconnected, the brand's alert webhook and the
-- alert outbox, and a rejected post's reason on the post (decision 0011).

-- X failed (5xx, no connection) before it could have accepted the post: the post
-- waits in `scheduled` until not_before; after CARTCAST_PUBLISH_RETRIES it fails.
ALTER TABLE posts ADD COLUMN not_before timestamptz;
ALTER TABLE posts ADD COLUMN transient_failures integer NOT NULL DEFAULT 0
    CHECK (transient_failures >= 0);
-- The reviewer's reason, also kept in the rejection's event.
ALTER TABLE posts ADD COLUMN rejection_reason text;

-- X refused the brand's token (401, or a 403 about credentials): nothing is sent
-- for the brand until a new token clears these.
ALTER TABLE brands ADD COLUMN x_disconnected_at timestamptz;
ALTER TABLE brands ADD COLUMN x_disconnected_reason text;
-- Slack-compatible incoming webhook for the brand's alerts; NULL: alerts are logged.
ALTER TABLE brands ADD COLUMN alert_webhook_url text;

-- One row per alert episode: (brand, kind, episode) is the natural key, so an
-- episode raised again by a later post or run is the same alert, sent once.
CREATE TABLE alert_outbox (
    id              bigserial PRIMARY KEY,
    brand_id        uuid NOT NULL REFERENCES brands (id) ON DELETE CASCADE,
    kind            text NOT NULL,
    episode         text NOT NULL,
    text            text NOT NULL,
    created_at      timestamptz NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    -- Set once: when the webhook took it, or when it was logged for want of one.
    delivered_at    timestamptz,
    delivered_to    text CHECK (delivered_to IN ('webhook', 'log')),
    -- Set once an alert is past CARTCAST_ALERT_MAX_AGE_S undelivered.
    abandoned_at    timestamptz,
    UNIQUE (brand_id, kind, episode)
);
CREATE INDEX alert_outbox_pending ON alert_outbox (created_at, id)
    WHERE delivered_at IS NULL AND abandoned_at IS NULL;

-- The system's changes now name the function that made them
-- ("system:publish_due_posts"); their reason is still the post's failure_reason.
CREATE OR REPLACE FUNCTION record_post_event() RETURNS trigger LANGUAGE plpgsql AS $$
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
    IF reason IS NULL AND (actor = 'system' OR starts_with(actor, 'system:')) THEN
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
