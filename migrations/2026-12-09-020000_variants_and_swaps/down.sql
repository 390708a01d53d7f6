ALTER TABLE products
    DROP CONSTRAINT products_swappable_bounded,
    DROP COLUMN swappable_product_ids;

DROP INDEX plans_variant_sku;

ALTER TABLE plans
    DROP CONSTRAINT plans_variant_named,
    DROP COLUMN variant;
