-- 003: which publish attempt holds a post's lease, and which scheduled events were
-- already handled.

-- Only the attempt that holds the lease may send the post or record X's answer: a
-- publisher that outlived its lease finds another attempt named here and stops.
ALTER TABLE posts ADD COLUMN lease_attempt_id bigint;

-- Pub/Sub delivers at least once. The first delivery of a poll or rollup tick claims
-- it here (a failed run gives the claim back), and a second delivery is acknowledged
-- without calling X, and paying, again.
CREATE TABLE handled_events (
    function    text NOT NULL,
    event_id    text NOT NULL,
    handled_at  timestamptz NOT NULL,
    PRIMARY KEY (function, event_id)
);
