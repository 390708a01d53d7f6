ALTER TABLE events DROP COLUMN request_id, DROP COLUMN agent, DROP COLUMN api_key_id;
DROP TABLE audit_events;
DROP TRIGGER api_keys_notify ON api_keys;
CREATE TRIGGER api_keys_notify AFTER UPDATE OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION api_keys_notify();
ALTER TABLE api_keys ENABLE ALWAYS TRIGGER api_keys_notify;
ALTER TABLE api_keys DROP COLUMN last_used_at, DROP COLUMN expires_at, DROP COLUMN scopes,
    DROP COLUMN name;
