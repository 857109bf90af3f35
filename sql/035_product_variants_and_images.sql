-- A product's variants and images, as a Shopify product CSV lists them: the console's
-- catalog import keeps every variant and image of a product (decision 0033).
-- A product row stays the unit captions are written for; these rows describe it.

CREATE TABLE product_variants (
    product_id    uuid NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    position      integer NOT NULL CHECK (position >= 1),
    sku           text,
    options       text[] NOT NULL DEFAULT '{}',
    price         numeric(12, 2) NOT NULL CHECK (price >= 0),
    compare_at_price numeric(12, 2) CHECK (compare_at_price >= 0),
    stock         integer NOT NULL DEFAULT 0 CHECK (stock >= 0),
    PRIMARY KEY (product_id, position)
);

CREATE TABLE product_images (
    product_id    uuid NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    position      integer NOT NULL CHECK (position >= 1),
    url           text NOT NULL,
    alt_text      text,
    PRIMARY KEY (product_id, position)
);
