-- Invoice lists filtered by a created_at window (billing history by date range) were
-- planned as a scan of the status index; this bounds them to the window.
CREATE INDEX invoices_created ON invoices (merchant_id, created_at, id);
