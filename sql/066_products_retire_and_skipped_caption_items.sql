-- 066: a product can be retired from the catalog (archived or drafted in the store,
-- or DELETE /v1/products/{id}) without losing the posts, attribution and reports
-- that refer to it; whether its stock is tracked, so a caption job for "all" can
-- pass over one sold out; and a caption job item skipped because its product was
-- retired while the job was open (decision 0110).

-- Nullable and without a default: a catalog change, the table is not rewritten.
-- NULL is a product on sale; the instant it was retired otherwise.
ALTER TABLE products ADD COLUMN IF NOT EXISTS retired_at timestamptz;

-- Whether the store counts the product's stock: a feed giving `stock`, a Shopify
-- CSV giving Variant Inventory Qty. A constant default is also only a catalog
-- change (PostgreSQL 11 on). Rows from before are not known to track it, so
-- their stock of 0 keeps them captioned, as before, until imported again.
ALTER TABLE products ADD COLUMN IF NOT EXISTS stock_tracked boolean NOT NULL
    DEFAULT false;

-- `skipped`: the item's product was retired before its chunk was written; `error`
-- says so. The job counts it apart from failed ones and still finishes.
ALTER TABLE caption_job_items DROP CONSTRAINT IF EXISTS caption_job_items_state_check;
ALTER TABLE caption_job_items ADD CONSTRAINT caption_job_items_state_check
    CHECK (state IN ('pending', 'done', 'failed', 'skipped'));
