CREATE INDEX invoices_created_cover ON invoices (merchant_id, created_at)
    INCLUDE (id, status, customer_id);
CREATE INDEX invoices_status ON invoices (merchant_id, status, id);
CREATE INDEX invoices_customer ON invoices (merchant_id, customer_id, id);
DROP INDEX invoices_created;
DROP INDEX invoices_status_created;
DROP INDEX invoices_customer_created;
