-- Products that ship, and how many of a product one subscription may hold. The
-- defaults keep every existing product as it was: not shipped, quantity fixed at 1.
ALTER TABLE products
    ADD COLUMN shippable    boolean NOT NULL DEFAULT false,
    ADD COLUMN min_quantity integer NOT NULL DEFAULT 1,
    ADD COLUMN max_quantity integer NOT NULL DEFAULT 1,
    ADD CONSTRAINT products_quantity_limits
        CHECK (min_quantity >= 1 AND max_quantity >= min_quantity AND max_quantity <= 10000);

