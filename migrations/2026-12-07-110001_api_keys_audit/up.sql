-- Keys a merchant manages over the API (docs/keys.md): a name, the scopes of a
-- restricted key (NULL: unrestricted), the instant a rolled key stops working, and
-- when it was last used (written at most once a minute per key and process).
ALTER TABLE api_keys
    ADD COLUMN name         text,
    ADD COLUMN scopes       text[],
    ADD COLUMN expires_at   timestamptz,
    ADD COLUMN last_used_at timestamptz;

-- The cache (tenure_api::auth::key_cache) must forget a key whenever what it keeps of
-- it changes, but not when only its name or last use is written: that would empty the
-- cache of a busy key every minute for nothing.
DROP TRIGGER api_keys_notify ON api_keys;
CREATE TRIGGER api_keys_notify
    AFTER UPDATE OF merchant_id, id, key_hash, revoked_at, expires_at, scopes OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION api_keys_notify();
ALTER TABLE api_keys ENABLE ALWAYS TRIGGER api_keys_notify;

-- The audit trail: one row per state-changing merchant request (docs/keys.md).
CREATE TABLE audit_events (
    merchant_id      uuid NOT NULL REFERENCES merchants (id),
    id               uuid NOT NULL,
    api_key_id       uuid NOT NULL,
    agent            text,
    method           text NOT NULL,
    route            text NOT NULL,
    resource_id      text,
    request_id       text NOT NULL,
    idempotency_key  text,
    status           smallint NOT NULL,
    request_body     jsonb,
    created_at       timestamptz NOT NULL,
    PRIMARY KEY (merchant_id, id)
);
CREATE INDEX audit_events_by_key ON audit_events (merchant_id, api_key_id, id);
CREATE INDEX audit_events_by_resource ON audit_events (merchant_id, resource_id, id)
    WHERE resource_id IS NOT NULL;

-- Who acted, on every event a merchant request caused: the key and the agent it named.
ALTER TABLE events
    ADD COLUMN api_key_id uuid,
    ADD COLUMN agent      text,
    ADD COLUMN request_id text;
