-- 058: a cancelled order leaves its id behind, so a creation that comes after the
-- cancellation (late, redelivered, or in a CSV backfill) is not stored as a sale.

-- Shopify delivers each webhook at least once and in no set order, and a store's
-- own integration resends a create it saw fail: deleting the order alone let the
-- next copy of its creation store it again, counted in revenue for good. The row
-- holds no personal data, only the store's id; it goes with its brand.
CREATE TABLE cancelled_orders (
    brand_id     uuid NOT NULL REFERENCES brands (id) ON DELETE CASCADE,
    external_id  text NOT NULL,
    recorded_at  timestamptz NOT NULL,
    PRIMARY KEY (brand_id, external_id)
);
