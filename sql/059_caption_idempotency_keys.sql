-- 059: a caption request may carry an Idempotency-Key; the first answer is kept
-- for a day, so a client's retry replays it instead of writing drafts again.

-- Scoped per brand: two brands may use one key. `request_sha256` fingerprints the
-- body, so the same key with another body is refused. `status` and `response` are
-- null only inside the transaction that claimed the key: it writes them before
-- its commit, and a second request with the key waits on the primary key until
-- then (idempotency_keys.py). Pruned by the hourly rollup tick after a day.
CREATE TABLE caption_idempotency_keys (
    brand_id        uuid NOT NULL REFERENCES brands (id) ON DELETE CASCADE,
    key             text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_sha256  text NOT NULL,
    status          integer,
    response        jsonb,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (brand_id, key)
);

CREATE INDEX caption_idempotency_keys_created_at
    ON caption_idempotency_keys (created_at);
