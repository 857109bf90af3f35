-- 061: a refund delivered before its order waits for it (pending_refunds), and an
-- order a CSV file stored keeps what the file's Refunded Amount already took off
-- its total (orders.refunded_in_file), so that refund's webhook is not taken off
-- again (decision 0105).

-- Shopify sets no order between topics: refunds/create may come before the
-- order's orders/create, or for an order only a later backfill brings. The refund
-- waits here by its id (once per brand, so a second delivery is a duplicate) and
-- is taken off, then deleted, when its order is stored. Only the store's ids and
-- an amount; it goes with its brand.
CREATE TABLE pending_refunds (
    brand_id     uuid NOT NULL REFERENCES brands (id) ON DELETE CASCADE,
    refund_id    text NOT NULL,
    order_id     text NOT NULL,
    amount       numeric(12, 2) NOT NULL CHECK (amount >= 0),
    refunded_at  timestamptz,
    received_at  timestamptz NOT NULL,
    PRIMARY KEY (brand_id, refund_id)
);
CREATE INDEX pending_refunds_by_order ON pending_refunds (brand_id, order_id);

-- The part of a file's order total its Refunded Amount (or a refunded status)
-- took off, not yet matched by a delivered refund. NULL is none; nullable without
-- a default, the column is a catalog change and rewrites nothing.
ALTER TABLE orders ADD COLUMN IF NOT EXISTS refunded_in_file numeric(12, 2)
    CHECK (refunded_in_file >= 0);
