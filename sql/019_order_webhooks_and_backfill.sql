-- 019: signed store order webhooks: each brand's webhook secret, and the webhook id
-- a delivery carried, so a redelivery is recognised even before its body is read
-- (decision 0020).

-- The shared secret the store signs order webhooks with. It is written through
-- PATCH /v1/brand by an admin key and never read back (has_webhook_secret).
ALTER TABLE brands ADD COLUMN order_webhook_secret text;

-- The X-Shopify-Webhook-Id of the delivery that brought the order; NULL for orders
-- posted with an API key or imported from a CSV file.
ALTER TABLE orders ADD COLUMN webhook_id text;
CREATE UNIQUE INDEX orders_one_per_webhook ON orders (brand_id, webhook_id)
    WHERE webhook_id IS NOT NULL;
