-- 043: the X ids of a removed author's mentions that a poll could still read again,
-- each kept only until no poll reaches back to it (author_data.py, decision 0056).

-- The id is kept plainly: a hash of a snowflake is undone from its posted time, so
-- only the bounded keeping protects it. Rows go with their brand (offboarding) and
-- once past `forget_after` (the rollup tick's sweep, retention.py).
CREATE TABLE removed_mention_ids (
    brand_id     uuid NOT NULL REFERENCES brands (id) ON DELETE CASCADE,
    x_post_id    text NOT NULL CHECK (x_post_id ~ '^[0-9]{1,19}$'),
    forget_after timestamptz NOT NULL,
    PRIMARY KEY (brand_id, x_post_id)
);
CREATE INDEX removed_mention_ids_forget_after ON removed_mention_ids (forget_after);
