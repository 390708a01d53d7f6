-- Retention (docs/events.md, "Retention"): events, settled webhook deliveries (with their
-- attempts) and idempotency keys are removed by the workers' purge in bounded batches.
-- A merchant's own period in days overrides the operator's default (`--retention-days`)
-- when set; null follows the operator.
ALTER TABLE billing_settings
    ADD COLUMN retention_days integer CHECK (retention_days BETWEEN 7 AND 3650);

-- What the purge looks for, per merchant and oldest first: events it may remove (the
-- `subscription` ones stay, the metrics rebuild past states from them) and deliveries
-- that are settled, so a round's cost follows what it removes, not what is kept.
CREATE INDEX events_retention ON events (merchant_id, created_at)
    WHERE resource_type <> 'subscription';
CREATE INDEX webhook_deliveries_settled_created ON webhook_deliveries (merchant_id, created_at)
    WHERE status <> 'pending';
