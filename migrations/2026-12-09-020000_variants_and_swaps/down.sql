ALTER TABLE products
    DROP CONSTRAINT products_swappable_bounded,
    DROP COLUMN swappable_product_ids;

DROP INDEX plans_variant_sku;

ALTER TABLE plans
    DROP CONSTRAINT plans_variant_whole,
    DROP COLUMN variant_options,
    DROP COLUMN variant_sku,
    DROP COLUMN variant_name;
