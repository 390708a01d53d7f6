-- A live tenant goes with its keys and their audit trail; one holding any other data
-- (customers, products, events…) makes this fail rather than lose that data.
DELETE FROM audit_events WHERE merchant_id IN (SELECT id FROM merchants WHERE livemode);
DELETE FROM api_keys WHERE merchant_id IN (SELECT id FROM merchants WHERE livemode);
DELETE FROM merchants WHERE livemode;
ALTER TABLE merchants
    DROP CONSTRAINT merchants_account_mode_key,
    DROP COLUMN livemode,
    DROP COLUMN account_id;
