DROP INDEX webhook_deliveries_settled_created;
DROP INDEX events_retention;
ALTER TABLE billing_settings DROP COLUMN retention_days;
