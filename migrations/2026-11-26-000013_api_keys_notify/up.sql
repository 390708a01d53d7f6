-- Each process keeps the secret keys it has checked (tenure_api::auth::key_cache) and
-- must forget one as soon as it is revoked or removed, however that happens (the service,
-- an operator's UPDATE or TRUNCATE, a restore): every update or delete of a key notifies
-- its hash, a TRUNCATE notifies '*', delivered to the listeners when the change commits.
-- ENABLE ALWAYS: the triggers fire under session_replication_role = replica too
-- (pg_restore, logical replication), and the listeners refuse to trust the cache unless
-- both are enabled so.
CREATE FUNCTION api_keys_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('tenure_api_keys', '*');
    ELSE
        PERFORM pg_notify('tenure_api_keys', encode(OLD.key_hash, 'hex'));
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER api_keys_notify AFTER UPDATE OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION api_keys_notify();
CREATE TRIGGER api_keys_notify_truncate AFTER TRUNCATE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION api_keys_notify();
ALTER TABLE api_keys ENABLE ALWAYS TRIGGER api_keys_notify;
ALTER TABLE api_keys ENABLE ALWAYS TRIGGER api_keys_notify_truncate;
