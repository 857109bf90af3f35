-- 013: keep with each publish attempt the HTTP status X answered (null when no
-- answer came: a timeout, a refused or dropped connection) and the class of its
-- error, from the vocabulary in functions/cartcast/attempts.py (decision 0015).
ALTER TABLE publish_attempts
    ADD COLUMN x_status integer CHECK (x_status BETWEEN 100 AND 599),
    ADD COLUMN error_class text CHECK (error_class IN (
        'rate_limited', 'server_error', 'network', 'timeout', 'dropped',
        'unreadable', 'duplicate', 'too_long', 'unauthorized', 'credentials',
        'refused_reply', 'forbidden', 'invalid_request', 'not_found', 'refused',
        'held_claims', 'held_budget', 'held_image', 'post_limit', 'lease_lost',
        'part_in_doubt'));
