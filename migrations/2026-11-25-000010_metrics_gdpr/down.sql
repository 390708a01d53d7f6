DROP INDEX cancellation_requests_created;
DROP FUNCTION tenure_monthly_amount(bigint, text, integer);
DROP FUNCTION tenure_typeid(text, uuid);
ALTER TABLE customers DROP COLUMN erased_at;
