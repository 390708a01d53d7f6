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
-- A failed CREATE INDEX CONCURRENTLY leaves an invalid index under its name, which
-- IF NOT EXISTS would take for a built one.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
               WHERE c.relname IN ('invoices_customer_created', 'invoices_status_created',
                                   'invoices_created')
                 AND NOT i.indisvalid) THEN
        RAISE EXCEPTION 'an invoice index built beforehand is invalid: drop it and build it again';
    END IF;
END
$$;
DROP INDEX invoices_customer;
DROP INDEX invoices_status;
DROP INDEX invoices_created_cover;
