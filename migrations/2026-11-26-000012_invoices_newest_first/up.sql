-- Invoice lists are ordered by (created_at, id), newest first, so that every filter the
-- list takes (customer, status, a created_at window, a cursor) is one range of one of
-- these indexes, read backwards until the page is full. Ordered by id alone, a window
-- far in the past had to collect and sort every invoice in it for each page.
DROP INDEX invoices_customer;
DROP INDEX invoices_status;
DROP INDEX invoices_created_cover;
CREATE INDEX invoices_customer ON invoices (merchant_id, customer_id, created_at, id);
CREATE INDEX invoices_status ON invoices (merchant_id, status, created_at, id);
CREATE INDEX invoices_created ON invoices (merchant_id, created_at, id);
