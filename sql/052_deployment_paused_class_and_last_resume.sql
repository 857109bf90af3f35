-- 052: a send the operator's pause refused gets its own error class,
-- `deployment_paused`, and the operator's last resume is kept so the missed-post
-- check counts from it for posts that came due while paused (decision 0080).

-- The list of sql/013 and one more; one statement, so no moment without a check.
ALTER TABLE publish_attempts
    DROP CONSTRAINT publish_attempts_error_class_check,
    ADD CONSTRAINT publish_attempts_error_class_check CHECK (error_class IN (
        'rate_limited', 'server_error', 'network', 'timeout', 'dropped',
        'unreadable', 'duplicate', 'too_long', 'unauthorized', 'credentials',
        'refused_reply', 'forbidden', 'invalid_request', 'not_found', 'refused',
        'held_claims', 'held_budget', 'held_image', 'post_limit', 'lease_lost',
        'deployment_paused', 'part_in_doubt'));

-- At most one row: when the operator last resumed publishing. Overwritten by
-- each resume of a pause; never deleted.
CREATE TABLE publishing_resume (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    resumed_at timestamptz NOT NULL
);
