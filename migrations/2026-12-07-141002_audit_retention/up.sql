-- The purge removes audit entries past their merchant's retention, oldest first per
-- merchant (docs/keys.md, "Audit trail").
CREATE INDEX audit_events_retention ON audit_events (merchant_id, created_at);
