-- A created_at window of invoices (repo::invoices::list_window) picks its page's ids
-- first: with id, status and customer_id in the index, the window's ids and filters come
-- from an index-only scan, and only the page's invoices are read from the table. It
-- replaces invoices_created (merchant_id, created_at, id): nothing orders by
-- (created_at, id), so this index serves every query that one did.
CREATE INDEX invoices_created_cover ON invoices (merchant_id, created_at)
    INCLUDE (id, status, customer_id);
DROP INDEX invoices_created;
