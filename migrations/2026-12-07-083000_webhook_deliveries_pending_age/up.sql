-- /metrics reports how long the oldest pending webhook delivery has waited, read at every
-- scrape: the first entry of this index, instead of a scan of every pending row's heap
-- tuple. Pending rows are few (settled ones leave the index), so it stays small.
CREATE INDEX webhook_deliveries_pending_created ON webhook_deliveries (created_at)
    WHERE status = 'pending';
