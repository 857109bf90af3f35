-- 037: the console's catalog imports kept as jobs stored in chunks, and failed console
-- sign-ins counted per client address and window (decision 0038).

-- One upload. Its products are checked when it is received; storing them runs a chunk
-- per request (the upload's own, then the progress page's), so a file of a thousand
-- products never has to fit one request.
CREATE TABLE catalog_imports (
    id            uuid PRIMARY KEY,
    brand_id      uuid NOT NULL REFERENCES brands (id) ON DELETE CASCADE,
    -- The name of the key that uploaded it.
    created_by    text NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('csv', 'json')),
    -- Data rows of the file (CSV rows, or products of a JSON feed).
    rows_total    integer NOT NULL CHECK (rows_total >= 0),
    -- Products of the file, refused ones included (a row without a Handle is none).
    products_total integer NOT NULL CHECK (products_total >= 0),
    created_at    timestamptz NOT NULL,
    finished_at   timestamptz
);
CREATE INDEX catalog_imports_by_brand ON catalog_imports (brand_id, created_at);

-- One product of an upload, or one refused row. A chunk takes pending items in
-- position order, stores each product (an upsert by SKU that replaces its variants
-- and images) and marks the item done in the same transaction: a chunk that failed
-- is taken again whole, and storing a product twice writes the same rows.
CREATE TABLE catalog_import_items (
    import_id     uuid NOT NULL REFERENCES catalog_imports (id) ON DELETE CASCADE,
    position      integer NOT NULL CHECK (position >= 0),
    -- The file line (CSV) or feed index + 1 (JSON) the product starts on.
    line          integer NOT NULL,
    -- How many data rows of the file the item covers: progress is counted in rows.
    file_rows     integer NOT NULL CHECK (file_rows >= 0),
    product       text NOT NULL DEFAULT '',
    -- The checked product, its variants and images; emptied once stored.
    payload       jsonb,
    outcome       text CHECK (outcome IN ('inserted', 'updated', 'refused')),
    message       text,
    variants      integer NOT NULL DEFAULT 0,
    images        integer NOT NULL DEFAULT 0,
    done_at       timestamptz,
    PRIMARY KEY (import_id, position),
    CHECK ((done_at IS NULL) = (outcome IS NULL))
);
CREATE INDEX catalog_import_items_pending ON catalog_import_items (import_id, position)
    WHERE done_at IS NULL;

-- Failed console sign-ins of one client address in one fixed window. Functions keep
-- no memory between requests, so the count lives here; rows of past windows are
-- deleted as new failures arrive.
CREATE TABLE console_signin_failures (
    client        text NOT NULL,
    window_start  timestamptz NOT NULL,
    failures      integer NOT NULL CHECK (failures > 0),
    PRIMARY KEY (client, window_start)
);
CREATE INDEX console_signin_failures_by_window ON console_signin_failures (window_start);
