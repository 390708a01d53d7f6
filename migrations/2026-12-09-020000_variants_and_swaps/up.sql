-- Variants and cross-product swaps (issue 19). A plan may carry the variant it ships (a
-- roast and a size of coffee): its name, the merchant's SKU and up to three options, as
-- one jsonb value (`{"name", "sku"?, "options"}`; one column keeps `plans` within diesel's
-- 16 columns without its slower-to-compile 32-column tables); a product may name other
-- products its subscriptions may change plan to. The defaults keep every plan without a
-- variant and every product swappable within itself only.
ALTER TABLE plans
    ADD COLUMN variant jsonb,
    ADD CONSTRAINT plans_variant_named
        CHECK (variant IS NULL OR jsonb_typeof(variant -> 'name') = 'string');

-- A SKU names one product's goods: the check on a plan's write looks it up.
CREATE INDEX plans_variant_sku ON plans (merchant_id, (variant ->> 'sku'))
    WHERE variant ->> 'sku' IS NOT NULL;

ALTER TABLE products
    ADD COLUMN swappable_product_ids uuid[] NOT NULL DEFAULT '{}',
    ADD CONSTRAINT products_swappable_bounded
        CHECK (cardinality(swappable_product_ids) <= 20);
