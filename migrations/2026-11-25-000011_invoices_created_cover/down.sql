CREATE INDEX invoices_created ON invoices (merchant_id, created_at, id);
DROP INDEX invoices_created_cover;
