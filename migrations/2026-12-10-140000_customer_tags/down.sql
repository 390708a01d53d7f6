DROP TRIGGER customer_tags_delete ON customers;
DROP TRIGGER customer_tags_update ON customers;
DROP TRIGGER customer_tags_insert ON customers;
DROP FUNCTION tenure_customer_tags_rebuild(uuid);
DROP FUNCTION tenure_customer_tags_sync();
DROP TABLE customer_tags;
