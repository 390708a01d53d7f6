-- Each process keeps the secret keys it has checked (tenure_api::auth::key_cache) and
-- must forget one as soon as it is revoked or removed, however that happens (the service,
-- an operator's UPDATE): every update or delete of a key notifies its hash, delivered to
-- the listeners when the change commits.
CREATE FUNCTION api_keys_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tenure_api_keys', encode(OLD.key_hash, 'hex'));
    RETURN NULL;
END
$$;
CREATE TRIGGER api_keys_notify AFTER UPDATE OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION api_keys_notify();
