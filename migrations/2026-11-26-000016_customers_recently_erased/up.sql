-- Completing an idempotent request looks up the merchant's customers erased since the
-- request began (idempotency::complete); erased customers are few, so a partial index
-- keeps that lookup off the customers table itself.
CREATE INDEX customers_erased ON customers (merchant_id, erased_at) WHERE erased_at IS NOT NULL;
