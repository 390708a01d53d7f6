ALTER TABLE products
    DROP CONSTRAINT products_quantity_limits,
    DROP COLUMN max_quantity,
    DROP COLUMN min_quantity,
    DROP COLUMN shippable;
