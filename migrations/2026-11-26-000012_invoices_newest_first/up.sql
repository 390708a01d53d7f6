-- Invoice lists are ordered by (created_at, id), newest first, so that every filter the
-- list takes (customer, status, a created_at window, a cursor) is one range of one of
-- these indexes, read backwards until the page is full. Ordered by id alone, a window
-- far in the past had to collect and sort every invoice in it for each page.
--
-- The builds come first and the drops last: building takes a lock that holds writes to
-- invoices (not reads) until the migration commits, a drop one that holds both, briefly.
-- On a large table, build the three indexes beforehand with CREATE INDEX CONCURRENTLY
-- under these names; IF NOT EXISTS then skips them and only the drops remain.
CREATE INDEX IF NOT EXISTS invoices_customer_created
    ON invoices (merchant_id, customer_id, created_at, id);
CREATE INDEX IF NOT EXISTS invoices_status_created
    ON invoices (merchant_id, status, created_at, id);
CREATE INDEX IF NOT EXISTS invoices_created
    ON invoices (merchant_id, created_at, id);
DROP INDEX invoices_customer;
DROP INDEX invoices_status;
DROP INDEX invoices_created_cover;
