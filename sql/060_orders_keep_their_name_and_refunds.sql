-- 060: orders keep the store's order name ("#1001"), unique per brand, so a CSV
-- backfill keyed by Name and a webhook keyed by the numeric id find the same order
-- (decision 0103); the ids of the refunds taken off each (decision 0104); and the
-- name of a cancelled order beside its id (decisions 0100, 0103).

-- Nullable and without a default, the column is a catalog change: the table is
-- not rewritten, and the exclusive lock is held only for that change.
ALTER TABLE orders ADD COLUMN IF NOT EXISTS name text;

-- An order backfilled from a file without an Id column was keyed by its Name,
-- which Shopify writes as "#" and a number; its numeric ids never start with "#".
-- Only those rows get a new version (a row lock each, no table rewrite). A store
-- that set a prefix or suffix on its order names keeps NULL (decision 0103).
UPDATE orders SET name = external_id
WHERE webhook_id IS NULL AND external_id LIKE '#%' AND name IS NULL;

-- Migrations run in a transaction, so this cannot be CONCURRENTLY: the build
-- blocks writes to orders (not reads) for as long as it scans the whole table
-- (only the rows with a name go into it). On a large table, build it by hand
-- first with CREATE UNIQUE INDEX CONCURRENTLY and the same name and definition;
-- IF NOT EXISTS then skips it here.
CREATE UNIQUE INDEX IF NOT EXISTS orders_one_per_name ON orders (brand_id, name)
    WHERE name IS NOT NULL;

-- The refunds Shopify delivered (refunds/create) and taken off total_price, by
-- refund id, amount as text ({"929361462": "10.00"}): Shopify delivers at least
-- once, and a refund already here is not taken off again (decision 0104). NULL
-- is none; nullable without a default, it rewrites nothing either.
ALTER TABLE orders ADD COLUMN IF NOT EXISTS refunds jsonb;

-- A cancelled order is kept by its name as well as its id (decision 0103 meeting
-- 0100): a CSV keyed by Name cancels an order whose numeric id cartcast may never
-- have seen, and the order's creation by id must still be refused. 058 may be
-- applied already, so the column is added here. cancelled_orders is small (one
-- row per cancellation), so the index is cheap to build; it is not unique, as
-- an id recorded before this has no name.
ALTER TABLE cancelled_orders ADD COLUMN IF NOT EXISTS name text;
CREATE INDEX IF NOT EXISTS cancelled_orders_by_name ON cancelled_orders (brand_id, name)
    WHERE name IS NOT NULL;
