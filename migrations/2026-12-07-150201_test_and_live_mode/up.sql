-- Test and live mode (docs/keys.md#test-and-live-mode): a merchant account is two
-- tenants, its test tenant and its live tenant, each a row of `merchants` with data of
-- its own. Every merchant-scoped table already filters by the tenant's id, so the two
-- modes cannot see each other's data. Existing merchants become the test tenant of
-- their own account.
ALTER TABLE merchants
    ADD COLUMN account_id uuid,
    ADD COLUMN livemode   boolean NOT NULL DEFAULT false;
UPDATE merchants SET account_id = id;
ALTER TABLE merchants
    ALTER COLUMN account_id SET NOT NULL,
    ALTER COLUMN livemode DROP DEFAULT,
    ADD CONSTRAINT merchants_account_mode_key UNIQUE (account_id, livemode);
