-- The merchant's settings of its customer portal: which web origins (CORS) may call the
-- portal routes from a browser, in their normal spelling (`https://shop.example.com`),
-- in the merchant's order. Every process keeps all of them in memory briefly
-- (tenure_app::cors_settings), so a browser's request costs no query.
CREATE TABLE cors_settings (
    merchant_id      uuid PRIMARY KEY REFERENCES merchants (id),
    allowed_origins  text[] NOT NULL DEFAULT '{}' CHECK (cardinality(allowed_origins) <= 20),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
